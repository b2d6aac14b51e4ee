//! Refresh tokens in the embedded store, for single-node use without Redis. Lives in the same
//! sled database as the users, in its own trees; every change is one transaction, then a flush.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use sled::Transactional;

use super::{abort, tx_err};
use crate::accounts::storage::{BoxError, Consumed, RefreshRecord, RefreshStore, SessionError};

pub struct SledSessions {
    db: sled::Db,
    tokens: sled::Tree,
    families: sled::Tree,
    users: sled::Tree,
    /// Families revoked lately, to the Unix second until which nothing is issued into them:
    /// a rotation racing the reuse that revoked its family must not leave a live token.
    revoked: sled::Tree,
    /// When the tombstones were last swept (Unix seconds).
    swept: std::sync::atomic::AtomicI64,
}

/// How long a revoked family refuses new tokens. A rotation stores its new token a few
/// milliseconds after it consumed the old one, so a race is over long before this.
const TOMBSTONE_SECS: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Stored {
    record: RefreshRecord,
    used: bool,
}

type Tx = super::Tx<SessionError>;

fn err(e: impl Into<BoxError>) -> SessionError {
    SessionError::new(e)
}

fn list(tree: &TransactionalTree, key: &str) -> Result<Vec<String>, Tx> {
    Ok(match tree.get(key.as_bytes())? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Vec::new(),
    })
}

fn put_list(tree: &TransactionalTree, key: &str, items: &[String]) -> Result<(), Tx> {
    if items.is_empty() {
        tree.remove(key.as_bytes())?;
    } else {
        let bytes = serde_json::to_vec(items).map_err(|e| abort(err(e)))?;
        tree.insert(key.as_bytes(), bytes)?;
    }
    Ok(())
}

/// The trees a change of sessions touches, in one transaction.
struct Trees<'a> {
    tokens: &'a TransactionalTree,
    families: &'a TransactionalTree,
    users: &'a TransactionalTree,
    revoked: &'a TransactionalTree,
}

fn revoke_family(t: &Trees, user: &str, family: &str) -> Result<(), Tx> {
    let Trees {
        tokens,
        families,
        users,
        revoked,
    } = t;
    for hash in list(families, family)? {
        tokens.remove(hash.as_bytes())?;
    }
    families.remove(family.as_bytes())?;
    let until = crate::clock::unix_now() + TOMBSTONE_SECS;
    revoked.insert(family.as_bytes(), &until.to_be_bytes())?;
    let mut owned = list(users, user)?;
    owned.retain(|f| f != family);
    put_list(users, user, &owned)
}

fn until_of(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or(0)
}

fn load(tokens: &TransactionalTree, hash: &str) -> Result<Option<Stored>, Tx> {
    Ok(tokens
        .get(hash.as_bytes())?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

impl SledSessions {
    pub fn new(db: &sled::Db) -> Result<SledSessions, SessionError> {
        let open = |name: &str| db.open_tree(name).map_err(SessionError::new);
        Ok(SledSessions {
            db: db.clone(),
            tokens: open("refresh_tokens")?,
            families: open("refresh_families")?,
            users: open("refresh_users")?,
            revoked: open("refresh_revoked")?,
            swept: Default::default(),
        })
    }

    /// Runs `f` over the four trees in one transaction.
    fn transact<T>(&self, f: impl Fn(&Trees) -> Result<T, Tx>) -> Result<T, SessionError> {
        (&self.tokens, &self.families, &self.users, &self.revoked)
            .transaction(|(tokens, families, users, revoked)| {
                f(&Trees {
                    tokens,
                    families,
                    users,
                    revoked,
                })
            })
            .map_err(tx_err)
    }

    /// Drops the tombstones past their time, at most once a minute (they are few: one per
    /// family revoked within the last [`TOMBSTONE_SECS`]).
    fn sweep_tombstones(&self, now: i64) {
        use std::sync::atomic::Ordering;
        let last = self.swept.load(Ordering::Relaxed);
        if now - last < 60
            || self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for (family, until) in self.revoked.iter().flatten() {
            if until_of(&until) < now {
                let _ = self
                    .revoked
                    .compare_and_swap(&family, Some(until), None::<&[u8]>);
            }
        }
    }

    async fn durable(&self) -> Result<(), SessionError> {
        self.db.flush_async().await.map(|_| ()).map_err(err)
    }

    /// Every stored refresh token: its hash, its record and whether it was used (for
    /// `authgate store migrate`; used tokens must go along for reuse detection to hold).
    pub fn export(&self) -> Result<Vec<(String, RefreshRecord, bool)>, SessionError> {
        let mut all = Vec::new();
        for entry in self.tokens.iter() {
            let (hash, bytes) = entry.map_err(err)?;
            let stored: Stored = serde_json::from_slice(&bytes).map_err(err)?;
            let hash = String::from_utf8(hash.to_vec()).map_err(err)?;
            all.push((hash, stored.record, stored.used));
        }
        Ok(all)
    }
}

#[async_trait]
impl RefreshStore for SledSessions {
    async fn insert(&self, token_hash: &str, record: &RefreshRecord) -> Result<(), SessionError> {
        let stored = serde_json::to_vec(&Stored {
            record: record.clone(),
            used: false,
        })
        .map_err(err)?;
        let now = crate::clock::unix_now();
        self.sweep_tombstones(now);
        self.transact(|t| {
            let Trees {
                tokens,
                families,
                users,
                revoked,
            } = t;
            if let Some(until) = revoked.get(record.family.as_bytes())? {
                if until_of(&until) >= now {
                    // Revoked while this token was being made: it is born dead.
                    return Ok(());
                }
            }
            tokens.insert(token_hash.as_bytes(), stored.clone())?;
            let mut members = list(families, &record.family)?;
            members.push(token_hash.to_string());
            put_list(families, &record.family, &members)?;
            let mut owned = list(users, &record.user_id)?;
            if !owned.contains(&record.family) {
                owned.push(record.family.clone());
                put_list(users, &record.user_id, &owned)?;
            }
            Ok(())
        })?;
        self.durable().await
    }

    async fn consume(&self, token_hash: &str, now: i64) -> Result<Consumed, SessionError> {
        let consumed = self.transact(|t| {
            let tokens = t.tokens;
            let Some(mut stored) = load(tokens, token_hash)? else {
                return Ok(Consumed::Invalid);
            };
            if stored.record.expires_at < now {
                return Ok(Consumed::Invalid);
            }
            if stored.used {
                let r = &stored.record;
                revoke_family(t, &r.user_id, &r.family)?;
                return Ok(Consumed::Reused(stored.record));
            }
            stored.used = true;
            let bytes = serde_json::to_vec(&stored).map_err(|e| abort(err(e)))?;
            tokens.insert(token_hash.as_bytes(), bytes)?;
            Ok(Consumed::Rotated(stored.record))
        })?;
        if consumed != Consumed::Invalid {
            self.durable().await?;
        }
        Ok(consumed)
    }

    async fn revoke(&self, token_hash: &str) -> Result<Option<RefreshRecord>, SessionError> {
        let revoked = self.transact(|t| {
            let Some(stored) = load(t.tokens, token_hash)? else {
                return Ok(None);
            };
            let r = &stored.record;
            revoke_family(t, &r.user_id, &r.family)?;
            Ok(Some(stored.record))
        })?;
        self.durable().await?;
        Ok(revoked)
    }

    async fn revoke_user(&self, user_id: &str) -> Result<Vec<String>, SessionError> {
        let revoked = self.transact(|t| {
            let owned = list(t.users, user_id)?;
            for family in &owned {
                revoke_family(t, user_id, family)?;
            }
            t.users.remove(user_id.as_bytes())?;
            Ok(owned)
        })?;
        self.durable().await?;
        Ok(revoked)
    }

    async fn revoke_user_except(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<Vec<String>, SessionError> {
        let revoked = self.transact(|t| {
            let others: Vec<String> = list(t.users, user_id)?
                .into_iter()
                .filter(|family| family != keep)
                .collect();
            for family in &others {
                revoke_family(t, user_id, family)?;
            }
            Ok(others)
        })?;
        self.durable().await?;
        Ok(revoked)
    }

    async fn ping(&self) -> bool {
        true
    }
}
