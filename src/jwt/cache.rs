//! A bounded cache of verified tokens, so a client that sends the same token on every request
//! pays for one RSA verification, not thousands.
//!
//! Keyed by the whole token string (a changed byte is a different token and a full
//! verification). An entry is never served past the token's `exp` (plus leeway), and it only
//! counts for the key set it was verified under: any key change (rotation, retirement) makes
//! every entry a miss.

//!
//! The entries live in a `quick_cache` cache: sharded locks, so threads do not queue on one
//! mutex, and S3-FIFO eviction, so a flood of tokens seen once (each a miss anyway) does not
//! push out the tokens that come back on every request.

use std::sync::Arc;

use super::Claims;

#[derive(Clone)]
struct Entry {
    claims: Arc<Claims>,
    generation: u64,
}

pub struct VerifiedCache {
    /// `None` when the cache is off (capacity 0).
    entries: Option<quick_cache::sync::Cache<Box<str>, Entry>>,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            entries: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)),
        }
    }

    /// The claims of a token verified under key-set `generation`, if still within `exp`.
    pub fn get(&self, token: &str, generation: u64, now: i64, leeway: i64) -> Option<Arc<Claims>> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(token)?;
        if entry.generation == generation && now <= entry.claims.exp + leeway {
            return Some(entry.claims);
        }
        entries.remove(token);
        None
    }

    pub fn put(&self, token: &str, claims: Arc<Claims>, generation: u64) {
        let Some(entries) = &self.entries else {
            return;
        };
        entries.insert(token.into(), Entry { claims, generation });
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "i".into(),
            aud: None,
            sub: "s".into(),
            iat: 0,
            nbf: 0,
            exp,
            jti: "j".into(),
            email: "e".into(),
            username: None,
            verified: true,
            staff: false,
            roles: vec![],
            sid: None,
            extra: Default::default(),
        })
    }

    #[test]
    fn hits_only_for_the_same_token_keys_and_time() {
        let cache = VerifiedCache::new(2);
        cache.put("t1", claims(100), 1);
        assert!(cache.get("t1", 1, 100, 0).is_some());
        assert!(cache.get("t1x", 1, 100, 0).is_none());
        assert!(cache.get("t1", 1, 105, 10).is_some(), "within leeway");
        assert!(cache.get("t1", 1, 101, 0).is_none(), "never past exp");
        assert!(cache.get("t1", 1, 50, 0).is_none(), "and gone");
        cache.put("t2", claims(100), 1);
        assert!(cache.get("t2", 2, 50, 0).is_none(), "another key set");
        // Bounded.
        for i in 0..10 {
            cache.put(&format!("k{i}"), claims(100), 1);
        }
        assert!(cache.len() <= 2);
        assert!(VerifiedCache::new(0).get("t", 1, 0, 0).is_none());
    }
}
