//! The revocation list in the embedded store: one tree, `revocations`, keyed by kind and id
//! (`a:<user id>`, `s:<sid>`), each value `{at, until, seq}` where `seq` is a number sled
//! hands out in increasing order, so `changes` can answer what came after a cursor.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::backend;
use crate::accounts::storage::{Revocation, RevocationKind, RevocationStore, StoreError};

pub struct SledRevocations {
    db: sled::Db,
    tree: sled::Tree,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    at: i64,
    until: i64,
    seq: i64,
}

fn key(kind: RevocationKind, id: &str) -> Vec<u8> {
    let tag = match kind {
        RevocationKind::Account => "a:",
        RevocationKind::Session => "s:",
    };
    [tag.as_bytes(), id.as_bytes()].concat()
}

fn entry(key: &[u8], value: &[u8]) -> Option<(Revocation, i64)> {
    let stored: Stored = serde_json::from_slice(value).ok()?;
    let kind = match key.get(..2)? {
        b"a:" => RevocationKind::Account,
        b"s:" => RevocationKind::Session,
        _ => return None,
    };
    let id = std::str::from_utf8(&key[2..]).ok()?.to_string();
    Some((
        Revocation {
            kind,
            id,
            at: stored.at,
            until: stored.until,
        },
        stored.seq,
    ))
}

impl SledRevocations {
    pub fn new(db: &sled::Db) -> Result<SledRevocations, StoreError> {
        Ok(SledRevocations {
            db: db.clone(),
            tree: db.open_tree("revocations")?,
        })
    }
}

#[async_trait]
impl RevocationStore for SledRevocations {
    async fn record(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        for revocation in entries {
            let seq = self.db.generate_id()? as i64;
            let mut failed = None;
            self.tree
                .fetch_and_update(key(revocation.kind, &revocation.id), |old| {
                    let old = old.and_then(|bytes| serde_json::from_slice::<Stored>(bytes).ok());
                    let merged = Stored {
                        at: old
                            .as_ref()
                            .map_or(revocation.at, |o| o.at.max(revocation.at)),
                        until: old
                            .as_ref()
                            .map_or(revocation.until, |o| o.until.max(revocation.until)),
                        seq,
                    };
                    match serde_json::to_vec(&merged) {
                        Ok(bytes) => Some(bytes),
                        Err(e) => {
                            failed = Some(e);
                            old.and_then(|o| serde_json::to_vec(&o).ok())
                        }
                    }
                })?;
            if let Some(e) = failed {
                return Err(backend(e));
            }
        }
        self.db.flush_async().await?;
        Ok(())
    }

    async fn changes(&self, cursor: Option<i64>) -> Result<(Vec<Revocation>, i64), StoreError> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || {
            let after = cursor.unwrap_or(-1);
            let mut last = after.max(0);
            let mut found = Vec::new();
            for item in tree.iter() {
                let (key, value) = item?;
                if let Some((revocation, seq)) = entry(&key, &value) {
                    last = last.max(seq);
                    if seq > after {
                        found.push(revocation);
                    }
                }
            }
            Ok((found, last))
        })
        .await
        .map_err(backend)?
    }

    async fn expire(&self, now: i64) -> Result<(), StoreError> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || {
            for item in tree.iter() {
                let (key, value) = item?;
                if entry(&key, &value).is_none_or(|(r, _)| r.until < now) {
                    // Only if it was not renewed meanwhile.
                    let _ = tree.compare_and_swap(&key, Some(value), None::<&[u8]>)?;
                }
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(backend)??;
        self.db.flush_async().await?;
        Ok(())
    }

    fn shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(kind: RevocationKind, id: &str, at: i64, until: i64) -> Revocation {
        Revocation {
            kind,
            id: id.into(),
            at,
            until,
        }
    }

    #[tokio::test]
    async fn records_merge_survive_a_reopen_and_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let account = |at| revocation(RevocationKind::Account, "u1", at, at + 100);
        let session = revocation(RevocationKind::Session, "u1", 500, 500);
        {
            let db = sled::open(dir.path()).unwrap();
            let store = SledRevocations::new(&db).unwrap();
            store
                .record(&[account(200), session.clone()])
                .await
                .unwrap();
            store.record(&[account(100)]).await.unwrap();
            let (all, cursor) = store.changes(None).await.unwrap();
            assert_eq!(all.len(), 2);
            assert!(all.contains(&account(200)), "the later time kept");
            assert!(all.contains(&session), "same id, other kind");
            assert!(store.changes(Some(cursor)).await.unwrap().0.is_empty());
            store.record(&[account(250)]).await.unwrap();
            let (later, _) = store.changes(Some(cursor)).await.unwrap();
            assert_eq!(later, [account(250)]);
        }
        let db = sled::open(dir.path()).unwrap();
        let store = SledRevocations::new(&db).unwrap();
        assert_eq!(store.changes(None).await.unwrap().0.len(), 2, "persisted");
        store.expire(400).await.unwrap();
        assert_eq!(
            store.changes(None).await.unwrap().0,
            std::slice::from_ref(&session)
        );
        store.expire(501).await.unwrap();
        assert!(store.changes(None).await.unwrap().0.is_empty());
    }
}
