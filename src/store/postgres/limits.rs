//! Rate limits in PostgreSQL, shared by every replica: one row per key and fixed window,
//! counted by an atomic upsert. Past windows are swept (`PgStore::sweep`).

use async_trait::async_trait;

use super::PgStore;
use crate::accounts::storage::{window, RateLimiter, SessionError, Verdict};
use crate::config::Rate;

const HIT: &str = "INSERT INTO rate_limits (key, window_start, window_end, count) \
     VALUES ($1, $2, $3, 1) \
     ON CONFLICT (key, window_start) \
     DO UPDATE SET count = LEAST(rate_limits.count, 2147483646) + 1 \
     RETURNING count";

#[async_trait]
impl RateLimiter for PgStore {
    async fn hit(&self, key: &str, rate: Rate, now: i64) -> Result<Verdict, SessionError> {
        self.sweep_if_due(now);
        let (start, end) = window(rate, now);
        let count: i32 = pg!(self, |client| {
            let stmt = client.prepare_cached(HIT).await?;
            Ok(client
                .query_one(&stmt, &[&key, &start, &end])
                .await?
                .try_get(0)?)
        })?;
        Ok(if i64::from(count) > i64::from(rate.count) {
            Verdict::Limited {
                retry_after: (end - now).max(1) as u64,
            }
        } else {
            Verdict::Allowed
        })
    }
}
