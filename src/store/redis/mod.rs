//! Redis: one lazily made, self-healing connection shared by the refresh-token store and the
//! rate limiter. Commands fail fast (about a second) while Redis is down, and work again once
//! it is back.

mod limits;
mod sessions;

pub use limits::RedisLimiter;
pub use sessions::RedisSessions;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::accounts::storage::SessionError;

/// Prefix of every key authgate writes.
pub(crate) const PREFIX: &str = "authgate:";

/// A lazily made, self-healing connection to Redis.
pub struct RedisConnector {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
}

impl RedisConnector {
    pub fn new(url: &str) -> Result<RedisConnector, String> {
        Ok(RedisConnector {
            client: redis::Client::open(url).map_err(|e| e.to_string())?,
            manager: OnceCell::new(),
        })
    }

    pub async fn connection(&self) -> Result<ConnectionManager, SessionError> {
        self.manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(1000)))
                    .set_response_timeout(Some(Duration::from_millis(1000)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(redis_err)
    }

    pub async fn ping(&self) -> bool {
        let Ok(mut conn) = self.connection().await else {
            return false;
        };
        let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
        pong.is_ok()
    }
}

pub fn redis_err(e: redis::RedisError) -> SessionError {
    SessionError::new(e)
}
