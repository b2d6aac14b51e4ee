//! The API keys the gate resolved lately, so a key sent on every request costs one store read
//! a minute, not one per request.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::jwt::Subject;

/// How long a resolved key is believed: role or status changes reach the gate this soon.
const CACHE_TTL: i64 = 60;
const CACHE_ENTRIES: usize = 10_000;

/// Recently resolved API keys: hash → owner, bounded (least recently used goes first). A
/// revoke or a deletion in this process removes the entries at once.
pub(super) struct KeyCache {
    entries: Mutex<LruCache<String, CachedKey>>,
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
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, CachedKey>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self, hash: &str, now: i64) -> Option<CachedKey> {
        let mut entries = self.lock();
        match entries.get(hash) {
            Some(entry) if now - entry.fetched < CACHE_TTL => Some(entry.clone()),
            Some(_) => {
                entries.pop(hash);
                None
            }
            None => None,
        }
    }

    pub(super) fn put(&self, hash: &str, entry: CachedKey) {
        self.lock().put(hash.to_string(), entry);
    }

    pub(super) fn forget(&self, hash: &str) {
        self.lock().pop(hash);
    }

    pub(super) fn forget_user(&self, user_id: &str) {
        let mut entries = self.lock();
        let theirs: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.subject.user_id == user_id)
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in theirs {
            entries.pop(&hash);
        }
    }
}
