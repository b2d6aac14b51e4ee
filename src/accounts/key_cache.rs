//! The API keys the gate resolved lately, so a key sent on every request costs one store read
//! a minute, not one per request.

use crate::jwt::Subject;

/// How long a resolved key is believed: role or status changes reach the gate this soon.
const CACHE_TTL: i64 = 60;
const CACHE_ENTRIES: usize = 10_000;

/// Recently resolved API keys: hash → owner, bounded (quick_cache: sharded, S3-FIFO). A
/// revoke or a deletion in this process removes the entries at once; one in another replica
/// when the store announces it (`Accounts::forget_api_key` and friends).
pub(super) struct KeyCache {
    entries: quick_cache::sync::Cache<String, CachedKey>,
}

#[derive(Clone)]
pub(super) struct CachedKey {
    pub subject: Subject,
    pub fetched: i64,
    pub touched: i64,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            entries: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        }
    }
}

impl KeyCache {
    pub(super) fn get(&self, hash: &str, now: i64) -> Option<CachedKey> {
        let entry = self.entries.get(hash)?;
        if now - entry.fetched < CACHE_TTL {
            return Some(entry);
        }
        self.entries.remove(hash);
        None
    }

    pub(super) fn put(&self, hash: &str, entry: CachedKey) {
        self.entries.insert(hash.to_string(), entry);
    }

    pub(super) fn forget(&self, hash: &str) {
        self.entries.remove(hash);
    }

    pub(super) fn clear(&self) {
        self.entries.clear();
    }

    pub(super) fn forget_user(&self, user_id: &str) {
        self.entries.retain(|_, e| e.subject.user_id != user_id);
    }
}
