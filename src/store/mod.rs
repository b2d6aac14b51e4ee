//! Where accounts live. The account logic sees only the [`UserStore`] trait; `sled` is the one
//! backend. Emails (primary and secondary) and usernames are unique case-insensitively.

pub mod sled_store;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use sled_store::SledStore;

/// One account, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// argon2id PHC string; `None` for accounts created without a password.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
    pub verified: bool,
    pub archived: bool,
    #[serde(default)]
    pub secondary_email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Unix seconds.
    pub date_joined: i64,
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Changes whenever the password changes; email tokens bound to it die with it.
    pub security_stamp: String,
}

impl User {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (`email`, `username`, `secondary_email`) is taken.
    #[error("{0} is already taken")]
    Unique(&'static str),
    #[error("no such user")]
    NotFound,
    #[error("user store: {0}")]
    Backend(String),
}

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
}

/// A machine credential: the key itself is shown once and stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub hash: String,
    pub created_at: i64,
    #[serde(default)]
    pub last_used_at: Option<i64>,
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

/// The normalized form unique indexes use.
pub fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}
