//! Refresh tokens in Redis. Each operation is one Lua script, so rotation and family
//! revocation are atomic however many replicas share the Redis.
//!
//! Keys (prefix `authgate:`): `rt:<hash>` a hash {u: user, f: family, x: expiry, s: a|u,
//! m: the family's amr, space-separated; absent in tokens stored before it} expiring with the token; `rf:<family>` the set of its token hashes; `ru:<user>` the set of
//! the user's families. The scripts touch keys they derive, so they need one Redis (not
//! Redis Cluster).

use async_trait::async_trait;
use redis::Script;

use super::{redis_err, RedisConnector, PREFIX};
use crate::accounts::storage::{Consumed, RefreshRecord, RefreshStore, SessionError};

pub struct RedisSessions {
    redis: std::sync::Arc<RedisConnector>,
    insert: Script,
    consume: Script,
    revoke: Script,
    revoke_user: Script,
    revoke_user_except: Script,
}

/// Deletes a family and its tokens, leaving a tombstone (`rx:`) for five minutes so that a
/// rotation racing the revocation cannot store a live token into it; used by the scripts
/// below.
const REVOKE_FAMILY: &str = r#"
local function revoke_family(prefix, user, family)
  local fam = prefix .. 'rf:' .. family
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do
    redis.call('DEL', prefix .. 'rt:' .. h)
  end
  redis.call('DEL', fam)
  redis.call('SREM', prefix .. 'ru:' .. user, family)
  redis.call('SET', prefix .. 'rx:' .. family, '1', 'EX', 300)
end
"#;

impl RedisSessions {
    pub fn new(redis: std::sync::Arc<RedisConnector>) -> RedisSessions {
        RedisSessions {
            redis,
            insert: Script::new(
                r#"
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'f', ARGV[2], 'x', ARGV[3], 's', 'a', 'm', ARGV[5])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('EXPIREAT', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIREAT', KEYS[3], ARGV[3])
return 1
"#,
            ),
            consume: Script::new(&format!(
                r#"{REVOKE_FAMILY}
local v = redis.call('HMGET', KEYS[1], 'u', 'f', 'x', 's', 'm')
if not v[1] then return {{'0'}} end
if tonumber(v[3]) < tonumber(ARGV[1]) then return {{'0'}} end
if v[4] == 'a' then
  redis.call('HSET', KEYS[1], 's', 'u')
  return {{'1', v[1], v[2], v[3], v[5] or ''}}
end
revoke_family(ARGV[2], v[1], v[2])
return {{'2', v[1], v[2], v[3], v[5] or ''}}
"#
            )),
            revoke: Script::new(&format!(
                r#"{REVOKE_FAMILY}
local v = redis.call('HMGET', KEYS[1], 'u', 'f', 'x', 'm')
if not v[1] then return {{'0'}} end
revoke_family(ARGV[1], v[1], v[2])
return {{'1', v[1], v[2], v[3], v[4] or ''}}
"#
            )),
            revoke_user: Script::new(&format!(
                r#"{REVOKE_FAMILY}
local owned = redis.call('SMEMBERS', KEYS[1])
for _, family in ipairs(owned) do
  revoke_family(ARGV[1], ARGV[2], family)
end
redis.call('DEL', KEYS[1])
return owned
"#
            )),
            revoke_user_except: Script::new(&format!(
                r#"{REVOKE_FAMILY}
local revoked = {{}}
for _, family in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if family ~= ARGV[3] then
    revoke_family(ARGV[1], ARGV[2], family)
    table.insert(revoked, family)
  end
end
return revoked
"#
            )),
        }
    }

    fn record(reply: &[String]) -> Option<RefreshRecord> {
        match reply {
            [_, user, family, expires, rest @ ..] => Some(RefreshRecord {
                user_id: user.clone(),
                family: family.clone(),
                expires_at: expires.parse().unwrap_or(0),
                amr: rest
                    .first()
                    .map(|amr| amr.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

#[async_trait]
impl RefreshStore for RedisSessions {
    async fn insert(&self, token_hash: &str, record: &RefreshRecord) -> Result<(), SessionError> {
        let mut conn = self.redis.connection().await?;
        let _: i64 = self
            .insert
            .key(format!("{PREFIX}rt:{token_hash}"))
            .key(format!("{PREFIX}rf:{}", record.family))
            .key(format!("{PREFIX}ru:{}", record.user_id))
            .key(format!("{PREFIX}rx:{}", record.family))
            .arg(&record.user_id)
            .arg(&record.family)
            .arg(record.expires_at)
            .arg(token_hash)
            .arg(record.amr.join(" "))
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn consume(&self, token_hash: &str, now: i64) -> Result<Consumed, SessionError> {
        let mut conn = self.redis.connection().await?;
        let reply: Vec<String> = self
            .consume
            .key(format!("{PREFIX}rt:{token_hash}"))
            .arg(now)
            .arg(PREFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(
            match (reply.first().map(String::as_str), Self::record(&reply)) {
                (Some("1"), Some(record)) => Consumed::Rotated(record),
                (Some("2"), Some(record)) => Consumed::Reused(record),
                _ => Consumed::Invalid,
            },
        )
    }

    async fn revoke(&self, token_hash: &str) -> Result<Option<RefreshRecord>, SessionError> {
        let mut conn = self.redis.connection().await?;
        let reply: Vec<String> = self
            .revoke
            .key(format!("{PREFIX}rt:{token_hash}"))
            .arg(PREFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(Self::record(&reply))
    }

    async fn revoke_user(&self, user_id: &str) -> Result<Vec<String>, SessionError> {
        let mut conn = self.redis.connection().await?;
        let revoked: Vec<String> = self
            .revoke_user
            .key(format!("{PREFIX}ru:{user_id}"))
            .arg(PREFIX)
            .arg(user_id)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(revoked)
    }

    async fn revoke_user_except(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<Vec<String>, SessionError> {
        let mut conn = self.redis.connection().await?;
        let revoked: Vec<String> = self
            .revoke_user_except
            .key(format!("{PREFIX}ru:{user_id}"))
            .arg(PREFIX)
            .arg(user_id)
            .arg(keep)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(revoked)
    }

    async fn ping(&self) -> bool {
        self.redis.ping().await
    }
}
