//! The revocation list the gate consults after every signature check (SPEC §13).
//!
//! Two maps: accounts with a `not_before` (a token issued strictly before it is refused) and
//! sessions (`sid`, a refresh-token family) whose every token is refused. Every entry has the
//! time after which it can no longer refuse a token that would otherwise pass, and is
//! dropped then, so the list holds at most one token lifetime of revocations.
//!
//! The check is two hash lookups under a read lock that writers take only to merge a few
//! entries or drop old ones. Every change gets a sequence number, so the published document
//! can answer "what changed since this cursor"; a cursor names the process's epoch too, so a
//! cursor from before a restart (or from another replica) is answered with the whole list.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::Claims;

/// What an entry refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevocationKind {
    /// Every token of an account issued before `at` (`not_before`).
    Account,
    /// Every token of one session (`sid`).
    Session,
}

/// One entry: for an account, `at` is its `not_before`; for a session, `at` is the time
/// after which none of its tokens can be valid anyway. `until` is when the entry is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub id: String,
    pub at: i64,
    pub until: i64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    until: i64,
    seq: u64,
}

#[derive(Default)]
struct List {
    accounts: HashMap<Box<str>, Entry>,
    sessions: HashMap<Box<str>, Entry>,
    /// The sequence number of the last change.
    seq: u64,
}

impl List {
    fn map(&mut self, kind: RevocationKind) -> &mut HashMap<Box<str>, Entry> {
        match kind {
            RevocationKind::Account => &mut self.accounts,
            RevocationKind::Session => &mut self.sessions,
        }
    }
}

fn merge(list: &mut List, entries: &[Revocation]) -> usize {
    let mut changed = 0;
    for entry in entries {
        let seq = list.seq + 1;
        let map = list.map(entry.kind);
        match map.get_mut(entry.id.as_str()) {
            Some(old) if old.at >= entry.at && old.until >= entry.until => continue,
            Some(old) => {
                *old = Entry {
                    at: old.at.max(entry.at),
                    until: old.until.max(entry.until),
                    seq,
                }
            }
            None => {
                let fresh = Entry {
                    at: entry.at,
                    until: entry.until,
                    seq,
                };
                map.insert(entry.id.as_str().into(), fresh);
            }
        }
        list.seq = seq;
        changed += 1;
    }
    changed
}

/// The longest id accepted from a published document (ours are 32 hex digits).
const MAX_ID_LEN: usize = 128;
/// Times beyond this (year 36812) are not times we issue.
const MAX_TIME: i64 = 1 << 40;

/// The in-memory revocation list of one process.
pub struct Revocations {
    list: RwLock<List>,
    /// Names this process's sequence numbers in cursors.
    epoch: String,
    /// How long an account's `not_before` is kept (access_ttl + leeway): what a receiver of a
    /// published document, which carries `not_before` only, uses to date the entry.
    keep: i64,
}

/// The published document (SPEC §13).
#[derive(Debug, Serialize, Deserialize)]
pub struct Document {
    pub not_before: HashMap<String, i64>,
    pub sids: HashMap<String, i64>,
    pub cursor: String,
    pub full: bool,
}

impl Document {
    /// Parses a document as served by a gateway; anything malformed, or carrying an id or a
    /// time that no gateway issues, is refused whole.
    pub fn parse(bytes: &[u8]) -> Result<Document, String> {
        let document: Document =
            serde_json::from_slice(bytes).map_err(|e| format!("not a revocation list: {e}"))?;
        if document.cursor.is_empty()
            || document.cursor.len() > MAX_ID_LEN
            || !document.cursor.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("the cursor is not a short printable string".into());
        }
        for (id, at) in document.not_before.iter().chain(&document.sids) {
            if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("an id is not a short printable string".into());
            }
            if !(0..MAX_TIME).contains(at) {
                return Err(format!("{at} is not a time"));
            }
        }
        Ok(document)
    }

    /// The entries, dated with `keep` for the accounts' `not_before`.
    pub fn entries(&self, keep: i64) -> Vec<Revocation> {
        let accounts = self.not_before.iter().map(|(id, &at)| Revocation {
            kind: RevocationKind::Account,
            id: id.clone(),
            at,
            until: at + keep,
        });
        let sessions = self.sids.iter().map(|(id, &at)| Revocation {
            kind: RevocationKind::Session,
            id: id.clone(),
            at,
            until: at,
        });
        accounts.chain(sessions).collect()
    }
}

impl Revocations {
    /// An empty list; `keep` is how long an account's `not_before` matters (access_ttl plus
    /// leeway, in seconds).
    pub fn new(keep: i64) -> Revocations {
        Revocations {
            list: RwLock::new(List::default()),
            epoch: format!("{:08x}", rand::random::<u32>()),
            keep,
        }
    }

    /// How long an account's `not_before` entry is kept after it.
    pub fn keep(&self) -> i64 {
        self.keep
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, List> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, List> {
        self.list.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the list refuses a token with these (verified) claims at `now`.
    pub fn refuses(&self, claims: &Claims, now: i64) -> bool {
        let list = self.read();
        if list.accounts.is_empty() && list.sessions.is_empty() {
            return false;
        }
        if let Some(sid) = &claims.sid {
            if list
                .sessions
                .get(sid.as_str())
                .is_some_and(|e| now <= e.until)
            {
                return true;
            }
        }
        list.accounts
            .get(claims.sub.as_str())
            .is_some_and(|e| claims.iat < e.at && now <= e.until)
    }

    /// Merges entries in (for each id the later times win); returns how many changed.
    pub fn apply(&self, entries: &[Revocation]) -> usize {
        if entries.is_empty() {
            return 0;
        }
        merge(&mut self.write(), entries)
    }

    /// Replaces the whole list at once (a verifier given a full document): no request sees
    /// it half replaced.
    pub fn replace(&self, entries: &[Revocation]) {
        let mut list = self.write();
        list.accounts.clear();
        list.sessions.clear();
        list.seq += 1;
        merge(&mut list, entries);
    }

    /// Drops the entries past their time; returns how many.
    pub fn purge(&self, now: i64) -> usize {
        let mut list = self.write();
        let before = list.accounts.len() + list.sessions.len();
        list.accounts.retain(|_, e| now <= e.until);
        list.sessions.retain(|_, e| now <= e.until);
        before - list.accounts.len() - list.sessions.len()
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        let list = self.read();
        list.accounts.len() + list.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The published document: what changed after `since` (a cursor of ours), or the whole
    /// list when there is no cursor or it is not one of this process's.
    pub fn document(&self, since: Option<&str>, now: i64) -> Document {
        let list = self.read();
        let after = since
            .and_then(|cursor| cursor.strip_prefix(self.epoch.as_str()))
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|seq| seq.parse::<u64>().ok())
            .filter(|&seq| seq <= list.seq);
        let wanted = |e: &&Entry| now <= e.until && after.is_none_or(|seq| e.seq > seq);
        let pick = |map: &HashMap<Box<str>, Entry>| -> HashMap<String, i64> {
            map.iter()
                .filter(|(_, e)| wanted(e))
                .map(|(id, e)| (id.to_string(), e.at))
                .collect()
        };
        Document {
            not_before: pick(&list.accounts),
            sids: pick(&list.sessions),
            cursor: format!("{}.{}", self.epoch, list.seq),
            full: after.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: Option<&str>, iat: i64) -> Claims {
        Claims {
            iss: "i".into(),
            aud: None,
            sub: sub.into(),
            iat,
            nbf: iat,
            exp: iat + 900,
            jti: "j".into(),
            email: "e".into(),
            username: None,
            verified: true,
            staff: false,
            roles: vec![],
            sid: sid.map(str::to_string),
            amr: vec![],
            extra: Default::default(),
        }
    }

    fn account(id: &str, at: i64) -> Revocation {
        Revocation {
            kind: RevocationKind::Account,
            id: id.into(),
            at,
            until: at + 930,
        }
    }

    fn session(id: &str, at: i64) -> Revocation {
        Revocation {
            kind: RevocationKind::Session,
            id: id.into(),
            at,
            until: at,
        }
    }

    #[test]
    fn refuses_tokens_issued_before_not_before_and_of_listed_sessions() {
        let list = Revocations::new(930);
        assert!(!list.refuses(&claims("u1", Some("s1"), 100), 100));
        assert_eq!(list.apply(&[account("u1", 200), session("s9", 1100)]), 2);
        assert!(list.refuses(&claims("u1", None, 199), 250), "issued before");
        assert!(
            !list.refuses(&claims("u1", None, 200), 250),
            "issued in that second"
        );
        assert!(
            !list.refuses(&claims("u2", None, 100), 250),
            "another account"
        );
        assert!(
            list.refuses(&claims("u2", Some("s9"), 5000), 1000),
            "listed sid"
        );
        assert!(!list.refuses(&claims("u2", Some("s8"), 100), 1000));
        assert!(
            !list.refuses(&claims("u2", Some("s9"), 100), 1101),
            "past its time"
        );
        assert!(
            !list.refuses(&claims("u1", None, 199), 1131),
            "past its time"
        );
    }

    #[test]
    fn merges_keep_the_later_time_and_count_changes() {
        let list = Revocations::new(930);
        assert_eq!(list.apply(&[account("u1", 200)]), 1);
        assert_eq!(list.apply(&[account("u1", 200)]), 0, "nothing new");
        assert_eq!(list.apply(&[account("u1", 100)]), 0, "older");
        assert_eq!(list.apply(&[account("u1", 300)]), 1);
        assert!(list.refuses(&claims("u1", None, 250), 300));
        assert_eq!(list.len(), 1);
        assert_eq!(list.purge(1229), 0);
        assert_eq!(list.purge(1231), 1);
        assert!(list.is_empty());
    }

    #[test]
    fn documents_answer_deltas_for_own_cursors_and_the_whole_list_otherwise() {
        let list = Revocations::new(930);
        list.apply(&[account("u1", 200), session("s1", 1000)]);
        let full = list.document(None, 300);
        assert!(full.full);
        assert_eq!(full.not_before["u1"], 200);
        assert_eq!(full.sids["s1"], 1000);
        let same = list.document(Some(&full.cursor), 300);
        assert!(!same.full);
        assert!(same.not_before.is_empty() && same.sids.is_empty());
        assert_eq!(same.cursor, full.cursor);
        list.apply(&[session("s2", 1000)]);
        let delta = list.document(Some(&full.cursor), 300);
        assert!(!delta.full);
        assert_eq!(delta.sids.keys().collect::<Vec<_>>(), ["s2"]);
        assert!(delta.not_before.is_empty());
        for stale in [
            "",
            "junk",
            "0.1",
            "ffffffff.99999",
            &format!("{}.999", list.epoch),
        ] {
            let answer = list.document(Some(stale), 300);
            assert!(answer.full, "{stale}");
            assert_eq!(answer.sids.len(), 2);
        }
        assert!(
            list.document(None, 1001).sids.is_empty(),
            "old ones left out"
        );
    }

    #[test]
    fn published_documents_parse_back_and_bad_ones_are_refused() {
        let list = Revocations::new(930);
        list.apply(&[account("u1", 200), session("s1", 1000)]);
        let bytes = serde_json::to_vec(&list.document(None, 300)).unwrap();
        let parsed = Document::parse(&bytes).unwrap();
        let mut entries = parsed.entries(930);
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(entries, [session("s1", 1000), account("u1", 200)]);
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"not_before\":{},\"sids\":{},\"cursor\":\"c\"}",
            b"{\"not_before\":{},\"sids\":{},\"cursor\":\"\",\"full\":true}",
            b"{\"not_before\":{\"u\":\"1\"},\"sids\":{},\"cursor\":\"c\",\"full\":true}",
            b"{\"not_before\":{\"u\":-1},\"sids\":{},\"cursor\":\"c\",\"full\":true}",
            b"{\"not_before\":{},\"sids\":{\"\":1},\"cursor\":\"c\",\"full\":true}",
            b"{\"not_before\":{},\"sids\":{\"a b\":1},\"cursor\":\"c\",\"full\":true}",
            b"{\"not_before\":{},\"sids\":{\"s\":1.5},\"cursor\":\"c\",\"full\":true}",
        ] {
            assert!(
                Document::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_replaced_list_keeps_only_the_new_entries() {
        let list = Revocations::new(930);
        list.apply(&[account("u1", 200)]);
        list.replace(&[session("s1", 1000)]);
        assert!(!list.refuses(&claims("u1", None, 100), 300));
        assert!(list.refuses(&claims("u1", Some("s1"), 100), 300));
    }
}
