//! Rate limits in Redis, shared by every replica: `INCR` + `EXPIREAT` of the window key,
//! atomically.

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::{redis_err, RedisConnector};
use crate::accounts::storage::{window, RateLimiter, SessionError, Verdict};
use crate::config::Rate;

/// Counters in Redis: `INCR` + `EXPIREAT` of the window key, atomically.
pub struct RedisLimiter {
    redis: Arc<RedisConnector>,
    script: Script,
}

impl RedisLimiter {
    pub fn new(redis: Arc<RedisConnector>) -> RedisLimiter {
        RedisLimiter {
            redis,
            script: Script::new(
                r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[1]) end
return n
"#,
            ),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn hit(&self, key: &str, rate: Rate, now: i64) -> Result<Verdict, SessionError> {
        let (start, end) = window(rate, now);
        let mut conn = self.redis.connection().await?;
        let count: i64 = self
            .script
            .key(format!("authgate:rl:{key}:{start}"))
            .arg(end + 1)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(if count > rate.count as i64 {
            Verdict::Limited {
                retry_after: (end - now).max(1) as u64,
            }
        } else {
            Verdict::Allowed
        })
    }
}
