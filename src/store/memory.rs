//! Rate limits in process memory: fixed windows for one node, forgotten on restart and not
//! shared between replicas.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::accounts::storage::{window, RateLimiter, SessionError, Verdict};
use crate::config::Rate;

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
