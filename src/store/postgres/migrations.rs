//! Versioned schema migrations, embedded in the binary and applied at start.
//!
//! All pending migrations run in one transaction that first takes a database-wide advisory
//! lock: a second process starting at the same moment waits on the lock, then finds the
//! schema current and does nothing. `schema_version` records each applied version with the
//! SHA-256 of its SQL; a database at a version this binary does not know is refused, and so
//! is one whose recorded migration differs from the embedded one.

use sha2::{Digest, Sha256};

use super::MIGRATE_LOCK;

struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// In order, numbered from 1 without gaps. Never edit one that has shipped: add the next.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "user serial",
        sql: include_str!("migrations/0002_user_serial.sql"),
    },
    Migration {
        version: 3,
        name: "refresh amr",
        sql: include_str!("migrations/0003_refresh_amr.sql"),
    },
    Migration {
        version: 4,
        name: "revocations",
        sql: include_str!("migrations/0004_revocations.sql"),
    },
];

/// The schema version this binary creates and expects.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

#[derive(Debug)]
pub(super) enum MigrateError {
    Db(tokio_postgres::Error),
    /// The database is at a version newer than `SCHEMA_VERSION`.
    TooNew {
        found: i32,
    },
    /// The recorded checksum of an applied migration is not the embedded one's.
    Altered {
        version: i32,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> MigrateError {
        MigrateError::Db(e)
    }
}

fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Brings the schema to `SCHEMA_VERSION`; returns the versions it applied (none when another
/// process got there first).
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, MigrateError> {
    // Waiting for the lock, and the migrations themselves, may take longer than a call.
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<(i32, String)> = tx
        .query(
            "SELECT version, checksum FROM schema_version ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if let Some(&(found, _)) = applied.iter().find(|(v, _)| *v > SCHEMA_VERSION) {
        let newest = applied.last().map(|(v, _)| *v).unwrap_or(found);
        return Err(MigrateError::TooNew { found: newest });
    }
    for (version, recorded) in &applied {
        let known = MIGRATIONS.iter().find(|m| m.version == *version);
        if known.is_none_or(|m| checksum(m.sql) != *recorded) {
            return Err(MigrateError::Altered { version: *version });
        }
    }
    let mut done = Vec::new();
    for migration in MIGRATIONS {
        if applied.iter().any(|(v, _)| *v == migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES ($1, $2, $3)",
            &[
                &migration.version,
                &migration.name,
                &checksum(migration.sql),
            ],
        )
        .await?;
        done.push(migration.version);
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i32);
    }
}
