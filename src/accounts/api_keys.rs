//! API keys: `createApiKey`, `apiKeys`, `revokeApiKey`, and the lookup the gate makes for
//! `Authorization: Token <key>` / `X-API-Key` (of these keys and of standing keys). Keys are
//! shown once and stored as SHA-256.

use std::sync::Arc;

use super::core::{subject, Core};
use super::error::{Code, Failure, Field};
use super::key_cache::CachedKey;
use super::model::ApiKey;
use super::secret;
use super::storage::StoreError;
use crate::jwt::{unix_now, Subject};

pub const API_KEY_PREFIX: &str = "agk_";

/// `lastUsedAt` is written at most this often per key.
const TOUCH_EVERY: i64 = 60;

pub struct ApiKeys {
    core: Arc<Core>,
}

impl ApiKeys {
    pub(super) fn new(core: Arc<Core>) -> ApiKeys {
        ApiKeys { core }
    }

    /// Creates an API key for the caller; the key itself is returned once, here.
    pub async fn create(
        &self,
        user_id: Option<&str>,
        name: &str,
    ) -> Result<(String, ApiKey), Failure> {
        let user = self.core.verified(user_id).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Failure::field(
                Field::KeyName,
                Code::Invalid,
                "Give the key a name of 1 to 100 characters.",
            ));
        }
        let (secret, _) = secret::new_secret();
        let key = format!("{API_KEY_PREFIX}{secret}");
        let record = ApiKey {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user.id,
            name: name.to_string(),
            prefix: key[..API_KEY_PREFIX.len() + 6].to_string(),
            hash: secret::hash(&key),
            created_at: unix_now(),
            last_used_at: None,
        };
        self.core.api_keys.insert_key(&record).await?;
        Ok((key, record))
    }

    /// The caller's own keys.
    pub async fn list(&self, user_id: Option<&str>) -> Result<Vec<ApiKey>, Failure> {
        let user = self.core.active(user_id).await?;
        Ok(self.core.api_keys.keys_of(&user.id).await?)
    }

    pub async fn revoke(&self, user_id: Option<&str>, id: &str) -> Result<(), Failure> {
        let user = self.core.active(user_id).await?;
        match self.core.api_keys.delete_key(&user.id, id).await {
            Ok(key) => {
                self.core.key_cache.forget(&key.hash);
                Ok(())
            }
            Err(StoreError::NotFound) => Err(Failure::field(
                Field::KeyId,
                Code::Invalid,
                "No such API key.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The owner of an API key, for the gate. Served from a short-lived cache; `None` for
    /// unknown or revoked keys and for owners who are deactivated.
    pub async fn resolve(&self, key: &str) -> Result<Option<Subject>, Failure> {
        let core = &self.core;
        let ours = key.starts_with(API_KEY_PREFIX) && key.len() <= 128;
        if !ours && !super::standing_keys::is_standing_key(key) {
            return Ok(None);
        }
        let hash = secret::hash(key);
        let now = unix_now();
        let mut entry = match core.key_cache.get(&hash, now) {
            Some(entry) => entry,
            None => {
                let Some(record) = core.api_keys.key_by_hash(&hash).await? else {
                    return Ok(None);
                };
                let user = match core.users.get(&record.user_id).await? {
                    Some(user) if user.is_active => user,
                    _ => return Ok(None),
                };
                let entry = CachedKey {
                    subject: subject(&user),
                    fetched: now,
                    touched: record.last_used_at.unwrap_or(0),
                };
                core.key_cache.put(&hash, entry.clone());
                entry
            }
        };
        if now - entry.touched >= TOUCH_EVERY {
            entry.touched = now;
            core.key_cache.put(&hash, entry.clone());
            let _ = core.api_keys.touch_key(&hash, now).await;
        }
        Ok(Some(entry.subject))
    }
}
