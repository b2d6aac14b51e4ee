//! Rate limits: fixed windows counted per key (`login:ip:203.0.113.9`, `login:id:ada@x`), in
//! Redis (shared by every replica) or in memory (one node). Every attempt counts, successful
//! or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redis::Script;

use crate::config::Rate;
use crate::sessions::{RedisConnector, SessionError};

/// The outcome of counting one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; seconds until the window resets.
    Limited {
        retry_after: u64,
    },
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one attempt under `key` and says whether it is within `rate`.
    async fn hit(&self, key: &str, rate: Rate, now: i64) -> Result<Verdict, SessionError>;
}

fn window(rate: Rate, now: i64) -> (i64, i64) {
    let period = rate.period.as_std().as_secs().max(1) as i64;
    let start = now - now.rem_euclid(period);
    (start, start + period)
}

/// In-process counters; forgotten on restart, not shared between replicas.
#[derive(Default)]
pub struct MemoryLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// Entries kept before expired windows are swept.
const MEMORY_SWEEP_AT: usize = 100_000;

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn hit(&self, key: &str, rate: Rate, now: i64) -> Result<Verdict, SessionError> {
        let (_, end) = window(rate, now);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MEMORY_SWEEP_AT {
            windows.retain(|_, (window_end, _)| *window_end > now);
        }
        let entry = windows.entry(key.to_string()).or_insert((end, 0));
        if entry.0 != end {
            *entry = (end, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(if entry.1 > rate.count {
            Verdict::Limited {
                retry_after: (end - now).max(1) as u64,
            }
        } else {
            Verdict::Allowed
        })
    }
}

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
            .map_err(crate::sessions::redis_error)?;
        Ok(if count > rate.count as i64 {
            Verdict::Limited {
                retry_after: (end - now).max(1) as u64,
            }
        } else {
            Verdict::Allowed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_windows_count_and_reset() {
        let limiter = MemoryLimiter::default();
        let rate = Rate::new(2, 60);
        let t = 1_000_040; // 20 s into a minute window
        assert_eq!(limiter.hit("k", rate, t).await.unwrap(), Verdict::Allowed);
        assert_eq!(
            limiter.hit("k", rate, t + 1).await.unwrap(),
            Verdict::Allowed
        );
        assert_eq!(
            limiter.hit("k", rate, t + 2).await.unwrap(),
            Verdict::Limited { retry_after: 38 }
        );
        assert_eq!(
            limiter.hit("other", rate, t).await.unwrap(),
            Verdict::Allowed
        );
        assert_eq!(
            limiter.hit("k", rate, t + 40).await.unwrap(),
            Verdict::Allowed
        );
    }
}
