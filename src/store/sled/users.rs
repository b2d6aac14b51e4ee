//! Users and API keys in sled.

use async_trait::async_trait;
use sled::transaction::TransactionalTree;
use sled::Transactional;

use super::{abort, backend, tx_err, SledStore, Tx};
use crate::accounts::model::{fold, ApiKey, User};
use crate::accounts::storage::{ApiKeyStore, StoreError, UserStore};

fn encode(user: &User) -> Result<Vec<u8>, Tx> {
    serde_json::to_vec(user).map_err(|e| abort(backend(e)))
}

fn decode(bytes: &[u8]) -> Result<User, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| backend(format!("corrupt user record: {e}")))
}

/// Index keys of a user: (tree, key, field name for `Unique`).
fn email_keys(user: &User) -> Vec<(String, &'static str)> {
    let mut keys = vec![(fold(&user.email), "email")];
    if let Some(secondary) = &user.secondary_email {
        keys.push((fold(secondary), "secondary_email"));
    }
    keys
}

fn username_key(user: &User) -> Option<String> {
    user.username.as_deref().map(fold)
}

/// Claims `key` in `index` for `id`, or aborts with `Unique(field)` if another user has it.
fn claim(index: &TransactionalTree, key: &str, id: &str, field: &'static str) -> Result<(), Tx> {
    match index.get(key.as_bytes())? {
        Some(owner) if owner.as_ref() != id.as_bytes() => Err(abort(StoreError::Unique(field))),
        _ => {
            index.insert(key.as_bytes(), id.as_bytes())?;
            Ok(())
        }
    }
}

impl SledStore {
    fn lookup(&self, index: &sled::Tree, key: &str) -> Result<Option<User>, StoreError> {
        let Some(id) = index.get(fold(key).as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        match self.users.get(&id).map_err(backend)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl UserStore for SledStore {
    async fn create(&self, user: &User) -> Result<(), StoreError> {
        (&self.users, &self.by_email, &self.by_username)
            .transaction(|(users, emails, names)| {
                if users.get(user.id.as_bytes())?.is_some() {
                    return Err(abort(backend("duplicate user id")));
                }
                for (key, field) in email_keys(user) {
                    if emails.get(key.as_bytes())?.is_some() {
                        return Err(abort(StoreError::Unique(field)));
                    }
                    emails.insert(key.as_bytes(), user.id.as_bytes())?;
                }
                if let Some(key) = username_key(user) {
                    if names.get(key.as_bytes())?.is_some() {
                        return Err(abort(StoreError::Unique("username")));
                    }
                    names.insert(key.as_bytes(), user.id.as_bytes())?;
                }
                users.insert(user.id.as_bytes(), encode(user)?)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.durable().await
    }

    async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        match self.users.get(id.as_bytes()).map_err(backend)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.lookup(&self.by_email, email)
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.lookup(&self.by_username, username)
    }

    async fn update(&self, user: &User) -> Result<(), StoreError> {
        (&self.users, &self.by_email, &self.by_username)
            .transaction(|(users, emails, names)| {
                let old = match users.get(user.id.as_bytes())? {
                    Some(bytes) => decode(&bytes).map_err(abort)?,
                    None => return Err(abort(StoreError::NotFound)),
                };
                let new_emails = email_keys(user);
                for (key, _) in email_keys(&old) {
                    if !new_emails.iter().any(|(k, _)| *k == key) {
                        emails.remove(key.as_bytes())?;
                    }
                }
                for (key, field) in &new_emails {
                    claim(emails, key, &user.id, field)?;
                }
                let new_name = username_key(user);
                if let Some(key) = username_key(&old) {
                    if new_name.as_deref() != Some(key.as_str()) {
                        names.remove(key.as_bytes())?;
                    }
                }
                if let Some(key) = &new_name {
                    claim(names, key, &user.id, "username")?;
                }
                users.insert(user.id.as_bytes(), encode(user)?)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.durable().await
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        (&self.users, &self.by_email, &self.by_username)
            .transaction(|(users, emails, names)| {
                let old = match users.remove(id.as_bytes())? {
                    Some(bytes) => decode(&bytes).map_err(abort)?,
                    None => return Err(abort(StoreError::NotFound)),
                };
                for (key, _) in email_keys(&old) {
                    emails.remove(key.as_bytes())?;
                }
                if let Some(key) = username_key(&old) {
                    names.remove(key.as_bytes())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.durable().await
    }

    async fn ping(&self) -> bool {
        self.db.get("ping").is_ok()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.durable().await
    }

    async fn all(&self) -> Result<Vec<User>, StoreError> {
        let users = self.users.clone();
        tokio::task::spawn_blocking(move || {
            users
                .iter()
                .values()
                .map(|v| v.map_err(backend).and_then(|bytes| decode(&bytes)))
                .collect::<Result<Vec<User>, StoreError>>()
        })
        .await
        .map_err(backend)?
    }

    async fn next_serial(&self) -> Result<i64, StoreError> {
        // sled's ids are monotonic across restarts (a crash skips ahead, never back).
        let id = self.db.generate_id().map_err(backend)?;
        i64::try_from(id + 1).map_err(backend)
    }
}

fn decode_key(bytes: &[u8]) -> Result<ApiKey, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| backend(format!("corrupt API key record: {e}")))
}

impl SledStore {
    /// Every API key (for `authgate store migrate`).
    pub fn all_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.api_keys
            .iter()
            .values()
            .map(|value| decode_key(&value.map_err(backend)?))
            .collect()
    }

    /// A number at least as high as every serial handed out so far.
    pub fn serials_handed_out(&self) -> Result<i64, StoreError> {
        let id = self.db.generate_id().map_err(backend)?;
        i64::try_from(id).map_err(backend)
    }

    fn scan_keys(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys = Vec::new();
        for value in self.api_keys.iter().values() {
            let key = decode_key(&value.map_err(backend)?)?;
            if key.user_id == user_id {
                keys.push(key);
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }
}

#[async_trait]
impl ApiKeyStore for SledStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(key).map_err(backend)?;
        self.api_keys
            .insert(key.hash.as_bytes(), bytes)
            .map_err(backend)?;
        self.durable().await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        match self.api_keys.get(hash.as_bytes()).map_err(backend)? {
            Some(bytes) => decode_key(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn keys_of(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        self.scan_keys(user_id)
    }

    async fn delete_key(&self, user_id: &str, id: &str) -> Result<ApiKey, StoreError> {
        let key = self
            .scan_keys(user_id)?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or(StoreError::NotFound)?;
        self.api_keys.remove(key.hash.as_bytes()).map_err(backend)?;
        self.durable().await?;
        Ok(key)
    }

    async fn touch_key(&self, hash: &str, at: i64) -> Result<(), StoreError> {
        let Some(current) = self.api_keys.get(hash.as_bytes()).map_err(backend)? else {
            return Ok(());
        };
        let mut key = decode_key(&current)?;
        key.last_used_at = Some(at);
        let bytes = serde_json::to_vec(&key).map_err(backend)?;
        // Swapped only if unchanged: a concurrent revoke wins.
        let _ = self
            .api_keys
            .compare_and_swap(hash.as_bytes(), Some(current), Some(bytes))
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_keys_of(&self, user_id: &str) -> Result<(), StoreError> {
        for key in self.scan_keys(user_id)? {
            self.api_keys.remove(key.hash.as_bytes()).map_err(backend)?;
        }
        self.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::OpenError;

    fn user(id: &str, email: &str, username: Option<&str>) -> User {
        User {
            id: id.into(),
            email: email.into(),
            username: username.map(str::to_string),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_active: true,
            is_staff: false,
            verified: false,
            archived: false,
            secondary_email: None,
            roles: vec![],
            date_joined: 0,
            last_login: None,
            security_stamp: "s".into(),
            serial: None,
            standing_key: None,
            totp: None,
        }
    }

    #[tokio::test]
    async fn indexes_stay_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .create(&user("a", "Ada@Example.com", Some("Ada")))
            .await
            .unwrap();
        assert!(matches!(
            store.create(&user("b", "ada@EXAMPLE.com", None)).await,
            Err(StoreError::Unique("email"))
        ));
        assert!(matches!(
            store.create(&user("b", "b@example.com", Some("ADA"))).await,
            Err(StoreError::Unique("username"))
        ));
        store
            .create(&user("b", "b@example.com", Some("bob")))
            .await
            .unwrap();
        assert_eq!(
            store
                .find_by_email("ADA@example.COM")
                .await
                .unwrap()
                .unwrap()
                .id,
            "a"
        );
        assert_eq!(
            store.find_by_username("BOB").await.unwrap().unwrap().id,
            "b"
        );

        // Renaming frees the old name and claims the new one; taking another's is refused.
        let mut a = store.get("a").await.unwrap().unwrap();
        a.username = Some("ada2".into());
        a.secondary_email = Some("alt@example.com".into());
        store.update(&a).await.unwrap();
        assert!(store.find_by_username("ada").await.unwrap().is_none());
        assert_eq!(
            store
                .find_by_email("ALT@example.com")
                .await
                .unwrap()
                .unwrap()
                .id,
            "a"
        );
        let mut b = store.get("b").await.unwrap().unwrap();
        b.username = Some("Ada2".into());
        assert!(matches!(
            store.update(&b).await,
            Err(StoreError::Unique("username"))
        ));
        b.username = Some("bob".into());
        b.secondary_email = Some("alt@EXAMPLE.com".into());
        assert!(matches!(
            store.update(&b).await,
            Err(StoreError::Unique("secondary_email"))
        ));
        // A failed update changed nothing.
        assert_eq!(store.get("b").await.unwrap().unwrap().secondary_email, None);

        store.delete("a").await.unwrap();
        assert!(store
            .find_by_email("ada@example.com")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .find_by_email("alt@example.com")
            .await
            .unwrap()
            .is_none());
        store
            .create(&user("c", "ada@example.com", Some("ada2")))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn data_survives_reopen_and_second_opener_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .create(&user("a", "a@example.com", None))
                .await
                .unwrap();
            assert!(matches!(
                SledStore::open(dir.path()),
                Err(OpenError::Locked(_))
            ));
        }
        // sled's flusher thread lets go of the file lock shortly after the last handle drops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let store = loop {
            match SledStore::open(dir.path()) {
                Ok(store) => break store,
                Err(OpenError::Locked(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(store.get("a").await.unwrap().is_some());
    }
}
