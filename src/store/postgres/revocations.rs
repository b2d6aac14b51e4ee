//! The revocation list in PostgreSQL, shared by every replica.
//!
//! Each row carries the database clock of its last write (`recorded`, milliseconds). A
//! replica reads what was recorded since its previous read; the cursor it keeps is the
//! database clock of that read minus a margin, because a row stamped just before a read may
//! commit just after it. Rows are read again within the margin; merging them is idempotent.

use async_trait::async_trait;

use super::{Fault, PgStore};
use crate::accounts::storage::{Revocation, RevocationKind, RevocationStore, StoreError};

/// How far back each read reaches before the previous one (ms): far longer than the
/// one-statement transaction of a write can take between stamping and committing.
const MARGIN_MS: i64 = 5_000;

const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn tag(kind: RevocationKind) -> i8 {
    match kind {
        RevocationKind::Account => b'a' as i8,
        RevocationKind::Session => b's' as i8,
    }
}

#[async_trait]
impl RevocationStore for PgStore {
    async fn record(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let kinds: Vec<i8> = entries.iter().map(|e| tag(e.kind)).collect();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let ats: Vec<i64> = entries.iter().map(|e| e.at).collect();
        let untils: Vec<i64> = entries.iter().map(|e| e.until).collect();
        Ok(pg!(self, |client| {
            let statement = client
                .prepare_cached(&format!(
                    "INSERT INTO revocations (kind, id, at, until, recorded) \
                     SELECT kind, id, at, until, {NOW_MS} \
                     FROM unnest($1::\"char\"[], $2::text[], $3::bigint[], $4::bigint[]) \
                          AS e (kind, id, at, until) \
                     ON CONFLICT (kind, id) DO UPDATE SET \
                         at = GREATEST(revocations.at, EXCLUDED.at), \
                         until = GREATEST(revocations.until, EXCLUDED.until), \
                         recorded = EXCLUDED.recorded"
                ))
                .await?;
            client
                .execute(&statement, &[&kinds, &ids, &ats, &untils])
                .await?;
            Ok(())
        })?)
    }

    async fn changes(&self, cursor: Option<i64>) -> Result<(Vec<Revocation>, i64), StoreError> {
        Ok(pg!(self, |client| {
            let now: i64 = client
                .query_one(&format!("SELECT {NOW_MS}"), &[])
                .await?
                .try_get(0)?;
            let statement = client
                .prepare_cached("SELECT kind, id, at, until FROM revocations WHERE recorded >= $1")
                .await?;
            let rows = client
                .query(&statement, &[&cursor.unwrap_or(i64::MIN)])
                .await?;
            let mut found = Vec::with_capacity(rows.len());
            for row in rows {
                let kind = match row.try_get::<_, i8>(0)? as u8 {
                    b'a' => RevocationKind::Account,
                    b's' => RevocationKind::Session,
                    other => return Err(Fault::Corrupt(format!("revocation kind {other}"))),
                };
                found.push(Revocation {
                    kind,
                    id: row.try_get(1)?,
                    at: row.try_get(2)?,
                    until: row.try_get(3)?,
                });
            }
            Ok((found, now - MARGIN_MS))
        })?)
    }

    async fn expire(&self, now: i64) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            client
                .execute("DELETE FROM revocations WHERE until < $1", &[&now])
                .await?;
            Ok(())
        })?)
    }

    fn shared(&self) -> bool {
        true
    }
}
