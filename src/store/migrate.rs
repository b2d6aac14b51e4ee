//! `authgate store migrate`: the embedded store of one process copied into PostgreSQL, for a
//! move to replicas. Everything goes: accounts with their password hashes, API keys, refresh
//! tokens (spent ones too, so reuse detection still holds), the secrets of the data
//! directory (email-token key, seal key) and the user serial sequence. A row that exists in
//! the database is never overwritten, so running it again copies only what is missing.
//! Afterwards every row of the store is looked up in the database.

use std::collections::HashSet;
use std::path::PathBuf;

use super::postgres::PgStore;
use super::sled::{SledSessions, SledStore};
use crate::accounts::storage::{ApiKeyStore, StoreError, UserStore};

/// What to copy from.
pub struct Source<'a> {
    pub store: &'a SledStore,
    /// The refresh tokens, when they live in the store (not in Redis).
    pub sessions: Option<&'a SledSessions>,
    /// Secret files of the data directory, by the name the database keeps them under.
    pub secrets: Vec<(&'static str, PathBuf)>,
}

/// One kind of row: how many the store has, how many were copied, how many the database had.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub in_store: usize,
    pub copied: usize,
    pub present: usize,
    /// Not copied: the database holds a different row under one of its unique values.
    pub conflicts: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in the store, {} copied, {} already in the database",
            self.in_store, self.copied, self.present
        )?;
        if self.conflicts > 0 {
            write!(
                f,
                ", {} not copied (their email or username belongs to another account there)",
                self.conflicts
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOutcome {
    /// The data directory has none.
    Absent,
    Copied,
    /// The database holds the same one.
    Present,
    /// The database holds another one, and keeps it.
    Differs,
}

#[derive(Debug)]
pub struct Report {
    pub users: Counts,
    pub api_keys: Counts,
    /// `None` when the refresh tokens are not in the store.
    pub refresh_tokens: Option<Counts>,
    pub secrets: Vec<(&'static str, SecretOutcome)>,
}

fn failed(what: &str) -> impl Fn(StoreError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Copies `source` into `database`, then checks that every row of the store is there.
pub async fn sled_to_postgres(source: Source<'_>, database: &PgStore) -> Result<Report, String> {
    let mut secrets = Vec::new();
    for (name, path) in &source.secrets {
        let outcome = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SecretOutcome::Absent,
            Err(e) => return Err(format!("{}: {e}", path.display())),
            Ok(value) => {
                let before = database.find_secret(name).await.map_err(failed(name))?;
                let stored = database
                    .ensure_secret(name, &value)
                    .await
                    .map_err(failed(name))?;
                match (before, stored == value) {
                    (None, true) => SecretOutcome::Copied,
                    (_, true) => SecretOutcome::Present,
                    (_, false) => SecretOutcome::Differs,
                }
            }
        };
        secrets.push((*name, outcome));
    }

    let users = source.store.all().await.map_err(failed("reading users"))?;
    let mut user_counts = Counts {
        in_store: users.len(),
        ..Counts::default()
    };
    let mut conflicting = HashSet::new();
    for user in &users {
        if database
            .get(&user.id)
            .await
            .map_err(failed("users"))?
            .is_some()
        {
            user_counts.present += 1;
            continue;
        }
        match database.create(user).await {
            Ok(()) => user_counts.copied += 1,
            Err(StoreError::Unique(_)) => {
                user_counts.conflicts += 1;
                conflicting.insert(user.id.clone());
            }
            Err(e) => return Err(format!("copying a user: {e}")),
        }
    }
    let serials = source
        .store
        .serials_handed_out()
        .map_err(failed("reading the user serial"))?
        .max(users.iter().filter_map(|u| u.serial).max().unwrap_or(0));
    database
        .raise_serial(serials)
        .await
        .map_err(failed("the user serial sequence"))?;

    let keys = source
        .store
        .all_keys()
        .map_err(failed("reading API keys"))?;
    let mut key_counts = Counts {
        in_store: keys.len(),
        ..Counts::default()
    };
    for key in &keys {
        if conflicting.contains(&key.user_id) {
            key_counts.conflicts += 1;
        } else if database
            .key_by_hash(&key.hash)
            .await
            .map_err(failed("API keys"))?
            .is_some()
        {
            key_counts.present += 1;
        } else {
            database
                .insert_key(key)
                .await
                .map_err(failed("copying an API key"))?;
            key_counts.copied += 1;
        }
    }

    let tokens = match source.sessions {
        None => None,
        Some(sessions) => Some(
            sessions
                .export()
                .map_err(|e| format!("reading refresh tokens: {e}"))?,
        ),
    };
    let refresh_counts = match &tokens {
        None => None,
        Some(tokens) => {
            let mut counts = Counts {
                in_store: tokens.len(),
                ..Counts::default()
            };
            for (hash, record, used) in tokens {
                if conflicting.contains(&record.user_id) {
                    counts.conflicts += 1;
                } else if database
                    .import_refresh(hash, record, *used)
                    .await
                    .map_err(failed("copying a refresh token"))?
                {
                    counts.copied += 1;
                } else {
                    counts.present += 1;
                }
            }
            Some(counts)
        }
    };

    // Verification: every row of the store (but the conflicting) is in the database now.
    let mut missing = Vec::new();
    for user in users.iter().filter(|u| !conflicting.contains(&u.id)) {
        if database
            .get(&user.id)
            .await
            .map_err(failed("users"))?
            .is_none()
        {
            missing.push(format!("user {}", user.id));
        }
    }
    for key in keys.iter().filter(|k| !conflicting.contains(&k.user_id)) {
        if database
            .key_by_hash(&key.hash)
            .await
            .map_err(failed("API keys"))?
            .is_none()
        {
            missing.push(format!("API key {}", key.id));
        }
    }
    for (hash, record, _) in tokens.iter().flatten() {
        if !conflicting.contains(&record.user_id)
            && !database
                .has_refresh(hash)
                .await
                .map_err(failed("refresh tokens"))?
        {
            missing.push("a refresh token".to_string());
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "verification failed: {} rows of the store are not in the database (first: {})",
            missing.len(),
            missing[0]
        ));
    }
    Ok(Report {
        users: user_counts,
        api_keys: key_counts,
        refresh_tokens: refresh_counts,
        secrets,
    })
}
