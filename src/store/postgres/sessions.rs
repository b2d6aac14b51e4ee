//! Refresh tokens in PostgreSQL, shared by every replica.
//!
//! Rotation is one conditional `UPDATE ... WHERE NOT used RETURNING`: of any number of
//! concurrent presentations of one token, on any replicas, exactly one finds it unused. The
//! others find it used (reuse: the family is revoked) or already gone with its family.
//!
//! Revoking a family marks its `refresh_families` row revoked and deletes its tokens, in one
//! transaction that locks the family row first. Issuing a token upserts the family row (the
//! same lock) and stores the token only while the family is not revoked, so a rotation that
//! races a reuse cannot leave a live token behind in a revoked family (RFC 9700 §4.14.2).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{Fault, PgStore};
use crate::accounts::storage::{Consumed, RefreshRecord, RefreshStore, SessionError};

fn record(row: &Row) -> Result<RefreshRecord, Fault> {
    Ok(RefreshRecord {
        user_id: row.try_get(0)?,
        family: row.try_get(1)?,
        expires_at: row.try_get(2)?,
        amr: row
            .try_get::<_, String>(3)?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    })
}

const INSERT: &str = "WITH family AS ( \
         INSERT INTO refresh_families (family, user_id, expires_at) VALUES ($2, $3, $4) \
         ON CONFLICT (family) DO UPDATE \
         SET expires_at = GREATEST(refresh_families.expires_at, EXCLUDED.expires_at) \
         RETURNING revoked) \
     INSERT INTO refresh_tokens (hash, family, user_id, expires_at, amr) \
     SELECT $1, $2, $3, $4, $5 FROM family WHERE NOT family.revoked \
     ON CONFLICT (hash) DO NOTHING";

const ROTATE: &str = "UPDATE refresh_tokens SET used = true \
     WHERE hash = $1 AND NOT used AND expires_at >= $2 \
     RETURNING user_id, family, expires_at, amr";

const LOOK: &str =
    "SELECT user_id, family, expires_at, amr, used FROM refresh_tokens WHERE hash = $1";

/// Revokes one family; the family row is locked (and marked) before its tokens are deleted.
async fn revoke_family(tx: &deadpool_postgres::Transaction<'_>, family: &str) -> Result<(), Fault> {
    tx.execute(
        "UPDATE refresh_families SET revoked = true WHERE family = $1",
        &[&family],
    )
    .await?;
    tx.execute("DELETE FROM refresh_tokens WHERE family = $1", &[&family])
        .await?;
    Ok(())
}

#[async_trait]
impl RefreshStore for PgStore {
    async fn insert(&self, token_hash: &str, record: &RefreshRecord) -> Result<(), SessionError> {
        self.sweep_if_due(crate::clock::unix_now());
        Ok(pg!(self, |client| {
            let stmt = client.prepare_cached(INSERT).await?;
            client
                .execute(
                    &stmt,
                    &[
                        &token_hash,
                        &record.family,
                        &record.user_id,
                        &record.expires_at,
                        &record.amr.join(" "),
                    ],
                )
                .await?;
            Ok(())
        })?)
    }

    async fn consume(&self, token_hash: &str, now: i64) -> Result<Consumed, SessionError> {
        Ok(pg!(self, |client| {
            let rotate = client.prepare_cached(ROTATE).await?;
            if let Some(row) = client.query_opt(&rotate, &[&token_hash, &now]).await? {
                return Ok(Consumed::Rotated(record(&row)?));
            }
            let tx = client.transaction().await?;
            let look = tx.prepare_cached(LOOK).await?;
            let Some(row) = tx.query_opt(&look, &[&token_hash]).await? else {
                return Ok(Consumed::Invalid);
            };
            let found = record(&row)?;
            let used: bool = row.try_get(4)?;
            if found.expires_at < now || !used {
                return Ok(Consumed::Invalid);
            }
            revoke_family(&tx, &found.family).await?;
            tx.commit().await?;
            Ok(Consumed::Reused(found))
        })?)
    }

    async fn revoke(&self, token_hash: &str) -> Result<Option<RefreshRecord>, SessionError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            let look = tx.prepare_cached(LOOK).await?;
            let Some(row) = tx.query_opt(&look, &[&token_hash]).await? else {
                return Ok(None);
            };
            let found = record(&row)?;
            revoke_family(&tx, &found.family).await?;
            tx.commit().await?;
            Ok(Some(found))
        })?)
    }

    async fn revoke_user(&self, user_id: &str) -> Result<Vec<String>, SessionError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    "UPDATE refresh_families SET revoked = true \
                     WHERE user_id = $1 AND NOT revoked RETURNING family",
                    &[&user_id],
                )
                .await?;
            let revoked = rows
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            tx.execute(
                "DELETE FROM refresh_tokens WHERE family IN \
                 (SELECT family FROM refresh_families WHERE user_id = $1)",
                &[&user_id],
            )
            .await?;
            tx.commit().await?;
            Ok(revoked)
        })?)
    }

    async fn revoke_user_except(
        &self,
        user_id: &str,
        keep: &str,
    ) -> Result<Vec<String>, SessionError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    "UPDATE refresh_families SET revoked = true \
                     WHERE user_id = $1 AND family <> $2 AND NOT revoked RETURNING family",
                    &[&user_id, &keep],
                )
                .await?;
            let revoked = rows
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            tx.execute(
                "DELETE FROM refresh_tokens WHERE family IN \
                 (SELECT family FROM refresh_families WHERE user_id = $1 AND family <> $2)",
                &[&user_id, &keep],
            )
            .await?;
            tx.commit().await?;
            Ok(revoked)
        })?)
    }

    async fn ping(&self) -> bool {
        self.answers().await
    }
}
