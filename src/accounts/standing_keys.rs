//! Standing keys: one key per account that its owner may read again, for clients written
//! against services that show the same key on every ask. At the gate it is an API key like any
//! other (stored by its hash in the key store, resolved through the key cache); the copy shown
//! again is sealed in the account record, bound to the account, never kept in plain text.
//! Replacing it refuses the old key at once (the key is deleted and the cache forgets it).
//! Keys are made and replaced one at a time per process; two gateways making an account's
//! first key at the same instant could each make one, and the one not kept in the record
//! stays an ordinary API key of the account (listed by `apiKeys`, revocable there).

use std::sync::Arc;

use super::core::Core;
use super::error::Failure;
use super::model::{ApiKey, StandingKey, User};
use super::secret;
use super::storage::StoreError;
use crate::jwt::unix_now;

/// Standing keys are `key_` and 32 lower-case hex digits (128 random bits).
pub const STANDING_KEY_PREFIX: &str = "key_";
const RANDOM_BYTES: usize = 16;

/// Whether `key` has the form of a standing key.
pub fn is_standing_key(key: &str) -> bool {
    key.strip_prefix(STANDING_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_BYTES * 2
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A standing key as its owner sees it.
#[derive(Debug, Clone)]
pub struct ShownKey {
    pub key: String,
    pub label: String,
    /// Unix seconds.
    pub created_at: i64,
}

fn context(user_id: &str) -> String {
    format!("standing-key:{user_id}")
}

pub struct StandingKeys {
    core: Arc<Core>,
}

impl StandingKeys {
    pub(super) fn new(core: Arc<Core>) -> StandingKeys {
        StandingKeys { core }
    }

    /// The caller's standing key, made (under `label`) on the first ask, or again when the
    /// last one was revoked as an API key. A `password`, when given, must be the account's.
    pub async fn get(
        &self,
        user_id: Option<&str>,
        password: Option<String>,
        label: &str,
    ) -> Result<ShownKey, Failure> {
        let user = match password {
            Some(password) => self.core.confirmed(user_id, password).await?,
            None => self.core.verified(user_id).await?,
        };
        let _one_at_a_time = self.core.standing_keys.lock().await;
        let user = self.core.verified(Some(&user.id)).await?;
        match self.current(&user).await? {
            Some(shown) => Ok(shown),
            None => self.make(user, label).await,
        }
    }

    /// A new standing key for the caller; the old one is refused from now on. A `password`,
    /// when given, must be the account's.
    pub async fn replace(
        &self,
        user_id: Option<&str>,
        password: Option<String>,
        label: &str,
    ) -> Result<ShownKey, Failure> {
        let user = match password {
            Some(password) => self.core.confirmed(user_id, password).await?,
            None => self.core.verified(user_id).await?,
        };
        let _one_at_a_time = self.core.standing_keys.lock().await;
        let user = self.core.verified(Some(&user.id)).await?;
        self.make(user, label).await
    }

    /// The key the account record holds, if it still stands as an API key and opens.
    async fn current(&self, user: &User) -> Result<Option<ShownKey>, Failure> {
        let Some(standing) = &user.standing_key else {
            return Ok(None);
        };
        let record = match self.core.api_keys.key_by_hash(&standing.hash).await? {
            Some(record) if record.user_id == user.id => record,
            _ => return Ok(None),
        };
        let opened = self
            .core
            .sealer
            .open(&standing.sealed, &context(&user.id))
            .and_then(|plain| String::from_utf8(plain).ok());
        let Some(key) = opened else {
            tracing::error!(user = %user.id, "a standing key does not open; it is replaced");
            return Ok(None);
        };
        Ok(Some(ShownKey {
            key,
            label: record.name,
            created_at: standing.created_at,
        }))
    }

    /// Ends the account's standing key, if any, and makes a new one. The old key goes first:
    /// whatever fails afterwards, it is refused, and the next ask makes a key again.
    async fn make(&self, mut user: User, label: &str) -> Result<ShownKey, Failure> {
        let core = &self.core;
        if let Some(old) = user.standing_key.take() {
            match core.api_keys.delete_key(&user.id, &old.key_id).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            core.key_cache.forget(&old.hash);
        }
        let random: [u8; RANDOM_BYTES] = rand::random();
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{STANDING_KEY_PREFIX}{hex}");
        let now = unix_now();
        let record = ApiKey {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user.id.clone(),
            name: label.to_string(),
            prefix: key[..STANDING_KEY_PREFIX.len() + 6].to_string(),
            hash: secret::hash(&key),
            created_at: now,
            last_used_at: None,
        };
        core.api_keys.insert_key(&record).await?;
        user.standing_key = Some(StandingKey {
            key_id: record.id.clone(),
            hash: record.hash.clone(),
            sealed: core.sealer.seal(key.as_bytes(), &context(&user.id)),
            created_at: now,
        });
        if let Err(e) = core.users.update(&user).await {
            let _ = core.api_keys.delete_key(&user.id, &record.id).await;
            return Err(e.into());
        }
        Ok(ShownKey {
            key,
            label: record.name,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_standing_key;

    #[test]
    fn the_form_of_standing_keys() {
        assert!(is_standing_key("key_6d956c1f9d093a5d2fd3dc0555452253"));
        for not in [
            "",
            "key_",
            "key_6d956c1f9d093a5d2fd3dc055545225",
            "key_6d956c1f9d093a5d2fd3dc05554522533",
            "key_6D956C1F9D093A5D2FD3DC0555452253",
            "key_0csfjeroij4i5jo9c2adb1e444lk867x",
            "agk_6d956c1f9d093a5d2fd3dc0555452253",
            "KEY_6d956c1f9d093a5d2fd3dc0555452253",
        ] {
            assert!(!is_standing_key(not), "{not}");
        }
    }
}
