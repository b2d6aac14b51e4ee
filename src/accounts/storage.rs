//! What the account logic needs from storage, as small traits. `crate::store` implements each
//! of them once per backend; nothing here knows which backend runs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::model::{ApiKey, User};
use crate::config::Rate;
pub use crate::jwt::{Revocation, RevocationKind};

/// A backend's own error, kept as the source of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (`email`, `username`, `secondary_email`) is taken.
    #[error("{0} is already taken")]
    Unique(&'static str),
    #[error("no such user")]
    NotFound,
    #[error("user store: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    pub fn backend(error: impl Into<BoxError>) -> StoreError {
        StoreError::Backend(error.into())
    }
}

/// Users, with case-insensitively unique emails (primary and secondary) and usernames.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a new user; fails with `Unique` when its email or username is taken.
    async fn create(&self, user: &User) -> Result<(), StoreError>;
    async fn get(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// By primary or secondary email, case-insensitively.
    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Replaces a user, keeping the unique indexes consistent.
    async fn update(&self, user: &User) -> Result<(), StoreError>;
    /// Removes a user and frees its email and username.
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> bool;
    /// Makes every acknowledged write durable (called on shutdown).
    async fn flush(&self) -> Result<(), StoreError>;
    /// Every user (for the staff queries); runs off the async threads.
    async fn all(&self) -> Result<Vec<User>, StoreError>;
    /// A positive number never handed out before (a user's [`User::serial`]).
    async fn next_serial(&self) -> Result<i64, StoreError>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn keys_of(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Removes the user's key `id`; `NotFound` when the user has no such key.
    async fn delete_key(&self, user_id: &str, id: &str) -> Result<ApiKey, StoreError>;
    /// Records a use (best effort, not flushed).
    async fn touch_key(&self, hash: &str, at: i64) -> Result<(), StoreError>;
    /// Removes every key of a user (account deletion).
    async fn delete_keys_of(&self, user_id: &str) -> Result<(), StoreError>;
}

/// What is stored for each refresh token (keyed by the token's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub user_id: String,
    pub family: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// How the login that started the family proved itself (the tokens' `amr`); empty for
    /// families stored before it was kept, which were all started by a password.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
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
pub struct SessionError(#[source] pub BoxError);

impl SessionError {
    pub fn new(error: impl Into<BoxError>) -> SessionError {
        SessionError(error.into())
    }
}

/// Refresh tokens: opaque, random, stored hashed, single-use, grouped in families.
///
/// Presenting a token rotates it: the token is marked used and a new one of the same family is
/// issued. Presenting a used token again is theft (RFC 9700 §4.14.2): the whole family is
/// revoked.
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Stores a new active token.
    async fn insert(&self, token_hash: &str, record: &RefreshRecord) -> Result<(), SessionError>;
    /// Marks an active token used, atomically: of two concurrent calls, one rotates.
    async fn consume(&self, token_hash: &str, now: i64) -> Result<Consumed, SessionError>;
    /// Revokes the family of a token; returns whose it was.
    async fn revoke(&self, token_hash: &str) -> Result<Option<RefreshRecord>, SessionError>;
    /// Revokes every family of a user (logout everywhere); returns the families that were
    /// live, whose access tokens must be refused too.
    async fn revoke_user(&self, user_id: &str) -> Result<Vec<String>, SessionError>;
    /// Revokes every family of a user but `keep` (the caller's session goes on); returns the
    /// families that were revoked.
    async fn revoke_user_except(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<Vec<String>, SessionError>;
    async fn ping(&self) -> bool;
}

/// The outcome of counting one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; seconds until the window resets.
    Limited {
        retry_after: u64,
    },
}

/// Rate limits: fixed windows counted per key (`login:ip:203.0.113.9`, `login:id:ada@x`).
/// Every attempt counts, successful or not.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one attempt under `key` and says whether it is within `rate`.
    async fn hit(&self, key: &str, rate: Rate, now: i64) -> Result<Verdict, SessionError>;
}

/// The fixed window `now` falls in: (start, end) in Unix seconds.
pub fn window(rate: Rate, now: i64) -> (i64, i64) {
    let period = rate.period.as_std().as_secs().max(1) as i64;
    let start = now - now.rem_euclid(period);
    (start, start + period)
}

/// The persisted revocation list (SPEC §13): accounts' `not_before` and revoked sessions.
/// Recording an id already there keeps the later times. Entries past their `until` may be
/// dropped at any time.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records entries, durably when it returns.
    async fn record(&self, entries: &[Revocation]) -> Result<(), StoreError>;
    /// What was recorded after `cursor` (everything with `None`), and the cursor to ask with
    /// next. An entry may be answered more than once.
    async fn changes(&self, cursor: Option<i64>) -> Result<(Vec<Revocation>, i64), StoreError>;
    /// Drops the entries past their time.
    async fn expire(&self, now: i64) -> Result<(), StoreError>;
    /// Whether other processes write to it too (then it is read for their entries).
    fn shared(&self) -> bool;
}
