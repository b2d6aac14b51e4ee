//! The embedded store on sled, for one process: users and API keys (`users.rs`) and refresh
//! tokens (`sessions.rs`) in one database.
//!
//! Trees: `users` (id → JSON record), `by_email` (folded primary or secondary email → id),
//! `by_username` (folded username → id), `api_keys` (key hash → JSON), `meta` (format version),
//! the `refresh_*` trees of the sessions, and `revocations` (`revocations.rs`). Every write
//! changes a record and its index entries in one transaction, and is acknowledged only after
//! a flush.

mod revocations;
mod sessions;
mod users;

pub use revocations::SledRevocations;
pub use sessions::SledSessions;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::accounts::storage::{BoxError, SessionError, StoreError};

/// Bumped when the on-disk layout changes; a store of another version is refused.
const FORMAT_VERSION: u32 = 1;

/// The most memory sled's page cache may hold (its default is 1 GiB). Account records are a
/// few hundred bytes and are read on logins and account calls, never on the proxy path; 32 MiB
/// keeps tens of thousands of them hot, and the OS page cache holds the rest of the file.
const CACHE_CAPACITY: u64 = 32 * 1024 * 1024;

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

pub(super) fn backend(e: impl Into<BoxError>) -> StoreError {
    StoreError::backend(e)
}

/// The error a transaction closure aborts with.
pub(super) type Tx<E = StoreError> = ConflictableTransactionError<E>;

/// Aborts a transaction with `e`.
pub(super) fn abort<E>(e: E) -> Tx<E> {
    ConflictableTransactionError::Abort(e)
}

/// The error of a finished transaction: what it aborted with, or sled's own.
pub(super) fn tx_err<E: From<sled::Error>>(e: TransactionError<E>) -> E {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::backend(e)
    }
}

impl From<sled::Error> for SessionError {
    fn from(e: sled::Error) -> SessionError {
        SessionError::new(e)
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
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .open()
            .map_err(|e| match &e {
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

    pub(super) async fn durable(&self) -> Result<(), StoreError> {
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
