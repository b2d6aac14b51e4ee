//! What `authgate store migrate` needs beyond the store traits: rows copied in as they were
//! (spent refresh tokens too), never over a row that exists.

use super::{Fault, PgStore};
use crate::accounts::storage::{RefreshRecord, StoreError};

impl PgStore {
    /// Stores a refresh token as it was, used or not, with its family; `false` when a token
    /// with this hash is there already (left as it is).
    pub async fn import_refresh(
        &self,
        hash: &str,
        record: &RefreshRecord,
        used: bool,
    ) -> Result<bool, StoreError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO refresh_families (family, user_id, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (family) DO NOTHING",
                &[&record.family, &record.user_id, &record.expires_at],
            )
            .await?;
            let inserted = tx
                .execute(
                    "INSERT INTO refresh_tokens (hash, family, user_id, expires_at, used, amr) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
                    &[
                        &hash,
                        &record.family,
                        &record.user_id,
                        &record.expires_at,
                        &used,
                        &record.amr.join(" "),
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok::<bool, Fault>(inserted == 1)
        })?)
    }

    /// Whether a refresh token with this hash is stored.
    pub async fn has_refresh(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(pg!(self, |client| {
            let row = client
                .query_opt("SELECT 1 FROM refresh_tokens WHERE hash = $1", &[&hash])
                .await?;
            Ok::<bool, Fault>(row.is_some())
        })?)
    }

    /// Moves the user serial sequence past `handed_out`, never back.
    pub async fn raise_serial(&self, handed_out: i64) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            client
                .execute(
                    "SELECT setval('user_serial', GREATEST($1, \
                     (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END \
                      FROM user_serial), 1))",
                    &[&handed_out],
                )
                .await?;
            Ok::<(), Fault>(())
        })?)
    }
}
