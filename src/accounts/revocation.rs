//! Immediate revocation (SPEC §13): what a session-ending event adds to the revocation list,
//! how long each entry is kept, and keeping the in-memory list the gate reads in step with
//! the persisted one.
//!
//! An event goes into the in-memory list first (it holds on this process at once), then into
//! the store (a restart keeps it; other replicas read it from there).

use std::sync::Arc;

use tokio::sync::Mutex;

use super::error::Failure;
use super::storage::{Revocation, RevocationKind, RevocationStore, StoreError};
use crate::jwt::Revocations;

/// How often a shared store is swept of entries past their time.
const SWEEP_EVERY: i64 = 60;

pub struct RevocationList {
    store: Arc<dyn RevocationStore>,
    live: Arc<Revocations>,
    /// access_ttl + leeway: how long an event can matter.
    keep: i64,
    /// Where reading the store's changes goes on, and when it was last swept.
    sync: Mutex<SyncState>,
}

#[derive(Default)]
struct SyncState {
    cursor: Option<i64>,
    swept: i64,
}

impl RevocationList {
    pub fn new(store: Arc<dyn RevocationStore>, live: Arc<Revocations>) -> RevocationList {
        let keep = live.keep();
        RevocationList {
            store,
            live,
            keep,
            sync: Mutex::new(SyncState::default()),
        }
    }

    /// The entries of a session-ending event of an account at `now`: its `not_before`, and
    /// each session it still had.
    pub fn account_entries(&self, user_id: &str, sids: &[String], now: i64) -> Vec<Revocation> {
        let mut entries = Vec::with_capacity(sids.len() + 1);
        entries.push(Revocation {
            kind: RevocationKind::Account,
            id: user_id.to_string(),
            at: now,
            until: now + self.keep,
        });
        entries.extend(sids.iter().map(|sid| self.session_entry(sid, now)));
        entries
    }

    fn session_entry(&self, sid: &str, now: i64) -> Revocation {
        // No token of the session was issued after now: none is valid past now + keep.
        Revocation {
            kind: RevocationKind::Session,
            id: sid.to_string(),
            at: now + self.keep,
            until: now + self.keep,
        }
    }

    /// Refuses every access token the account holds: those issued before `now`, and those
    /// of its sessions `sids`.
    pub async fn end_account(
        &self,
        user_id: &str,
        sids: &[String],
        now: i64,
    ) -> Result<(), Failure> {
        self.add(self.account_entries(user_id, sids, now)).await
    }

    /// Refuses every access token of sessions `sids`.
    pub async fn end_sessions(&self, sids: &[String], now: i64) -> Result<(), Failure> {
        let entries = sids
            .iter()
            .map(|sid| self.session_entry(sid, now))
            .collect();
        self.add(entries).await
    }

    async fn add(&self, entries: Vec<Revocation>) -> Result<(), Failure> {
        self.live.apply(&entries);
        self.store.record(&entries).await.map_err(|e| {
            tracing::error!(error = %e, "the revocation could not be stored; it holds on this process until it restarts");
            Failure::unavailable()
        })
    }

    /// Loads the stored list (at start, before serving).
    pub async fn load(&self, now: i64) -> Result<usize, StoreError> {
        let mut state = self.sync.lock().await;
        let (entries, cursor) = self.store.changes(None).await?;
        state.cursor = Some(cursor);
        self.live.apply(&entries);
        self.live.purge(now);
        Ok(self.live.len())
    }

    /// Called every second: drops what is past its time, and with a shared store, merges the
    /// entries other processes recorded.
    pub async fn sync(&self, now: i64) -> Result<(), StoreError> {
        self.live.purge(now);
        let mut state = self.sync.lock().await;
        if self.store.shared() {
            let (entries, cursor) = self.store.changes(state.cursor).await?;
            state.cursor = Some(cursor);
            self.live.apply(&entries);
        }
        if now - state.swept >= SWEEP_EVERY {
            state.swept = now;
            self.store.expire(now).await?;
        }
        Ok(())
    }

    /// The in-memory list.
    pub fn live(&self) -> &Arc<Revocations> {
        &self.live
    }
}
