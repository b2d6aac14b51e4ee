//! Refresh tokens: opaque, random, stored hashed, single-use, grouped in families.
//!
//! Presenting a token rotates it: the token is marked used and a new one of the same family is
//! issued. Presenting a used token again is theft (RFC 9700 §4.14.2): the whole family is
//! revoked. Two backends behind [`RefreshStore`]: Redis (shared by replicas) and sled (single
//! node, survives restarts).

mod redis_store;
mod sled_store;

use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use redis_store::{redis_err as redis_error, RedisConnector, RedisSessions};
pub use sled_store::SledSessions;

/// What is stored for each refresh token (keyed by the token's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub user_id: String,
    pub family: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// It was active and is now used: issue the next one in its family.
    Rotated(RefreshRecord),
    /// It had been used already: its family is now revoked.
    Reused(RefreshRecord),
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct SessionError(pub String);

#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Stores a new active token.
    async fn insert(&self, token_hash: &str, record: &RefreshRecord) -> Result<(), SessionError>;
    /// Marks an active token used, atomically: of two concurrent calls, one rotates.
    async fn consume(&self, token_hash: &str, now: i64) -> Result<Consumed, SessionError>;
    /// Revokes the family of a token; returns whose it was.
    async fn revoke(&self, token_hash: &str) -> Result<Option<RefreshRecord>, SessionError>;
    /// Revokes every family of a user (logout everywhere).
    async fn revoke_user(&self, user_id: &str) -> Result<(), SessionError>;
    async fn ping(&self) -> bool;
}

/// A new random refresh token (256 bits) and the hash it is stored under.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn new_family() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub type SharedStore = Arc<dyn RefreshStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, hash(&a));
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 64);
    }
}
