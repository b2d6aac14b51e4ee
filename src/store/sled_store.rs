//! The embedded user store on sled.
//!
//! Trees: `users` (id → JSON record), `by_email` (folded primary or secondary email → id),
//! `by_username` (folded username → id), `meta` (format version). Every write changes the record
//! and its index entries in one transaction, and is acknowledged only after a flush.

use std::path::Path;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{fold, ApiKey, ApiKeyStore, StoreError, User, UserStore};

/// Bumped when the on-disk layout changes; a store of another version is refused.
const FORMAT_VERSION: u32 = 1;

pub struct SledStore {
    db: sled::Db,
    users: sled::Tree,
    by_email: sled::Tree,
    by_username: sled::Tree,
    /// key hash → ApiKey JSON
    api_keys: sled::Tree,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (normally a running server) holds the store.
    #[error("the user store in {0} is in use by another process")]
    Locked(String),
    #[error("the user store in {path}: {reason}")]
    Other { path: String, reason: String },
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

type Tx = ConflictableTransactionError<StoreError>;

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

fn abort(e: StoreError) -> Tx {
    ConflictableTransactionError::Abort(e)
}

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
    pub fn open(dir: &Path) -> Result<SledStore, OpenError> {
        let path = dir.display().to_string();
        if !dir.exists() {
            // Password hashes live here: only the owner may read the directory.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| OpenError::Other {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        }
        let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                OpenError::Locked(path.clone())
            }
            _ if e.to_string().contains("lock") => OpenError::Locked(path.clone()),
            _ => OpenError::Other {
                path: path.clone(),
                reason: e.to_string(),
            },
        })?;
        let other = |e: sled::Error| OpenError::Other {
            path: path.clone(),
            reason: e.to_string(),
        };
        let meta = db.open_tree("meta").map_err(other)?;
        match meta.get("format_version").map_err(other)? {
            None => {
                meta.insert("format_version", FORMAT_VERSION.to_string().as_bytes())
                    .map_err(other)?;
                db.flush().map_err(other)?;
            }
            Some(v) if v.as_ref() == FORMAT_VERSION.to_string().as_bytes() => {}
            Some(v) => {
                return Err(OpenError::Other {
                    path,
                    reason: format!(
                        "format version {} is not the supported {FORMAT_VERSION}",
                        String::from_utf8_lossy(&v)
                    ),
                })
            }
        }
        Ok(SledStore {
            users: db.open_tree("users").map_err(other)?,
            by_email: db.open_tree("by_email").map_err(other)?,
            by_username: db.open_tree("by_username").map_err(other)?,
            api_keys: db.open_tree("api_keys").map_err(other)?,
            db,
        })
    }

    fn lookup(&self, index: &sled::Tree, key: &str) -> Result<Option<User>, StoreError> {
        let Some(id) = index.get(fold(key).as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        match self.users.get(&id).map_err(backend)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn durable(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(|_| ()).map_err(backend)
    }

    /// The database, for other embedded stores that share it (sessions).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// How many users there are (an O(1) estimate is not offered by sled; this scans keys).
    pub fn count(&self) -> usize {
        self.users.len()
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
}

fn decode_key(bytes: &[u8]) -> Result<ApiKey, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| backend(format!("corrupt API key record: {e}")))
}

impl SledStore {
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
