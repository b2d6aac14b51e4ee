//! Users and API keys in PostgreSQL.
//!
//! A user is one `users` row (the record as JSON) plus one `user_emails` row per folded
//! address and one `user_names` row for the folded username. Addresses and names are claimed
//! with `INSERT ... ON CONFLICT DO NOTHING` inside the user's transaction: of two replicas
//! claiming one address at once, the second waits for the first to commit and then finds it
//! taken, so the loser gets `Unique` and its transaction (the whole create or update) is
//! rolled back. Changes that per-process caches must forget are announced with `pg_notify`
//! in the same transaction (delivered on commit).

use async_trait::async_trait;
use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::notify::{announce_key, announce_user};
use super::{retryable, Fault, PgStore, LONG_BUDGET};
use crate::accounts::model::{fold, ApiKey, User};
use crate::accounts::storage::{ApiKeyStore, StoreError, UserStore};

fn encode(user: &User) -> Result<String, Fault> {
    serde_json::to_string(user).map_err(|e| Fault::Corrupt(e.to_string()))
}

fn decode(row: &Row) -> Result<User, Fault> {
    let text: String = row.try_get(0)?;
    serde_json::from_str(&text).map_err(|e| Fault::Corrupt(format!("user record: {e}")))
}

/// Folded addresses of a user with the field each comes from, primary first.
fn email_keys(user: &User) -> Vec<(String, &'static str)> {
    let mut keys = vec![(fold(&user.email), "email")];
    if let Some(secondary) = &user.secondary_email {
        keys.push((fold(secondary), "secondary_email"));
    }
    keys
}

const CLAIM_EMAIL_NEW: &str =
    "INSERT INTO user_emails (address, user_id) VALUES ($1, $2) ON CONFLICT (address) DO NOTHING";
const CLAIM_NAME_NEW: &str =
    "INSERT INTO user_names (name, user_id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
/// Claims an address for a user that may hold it already: a row comes back when it is ours.
const CLAIM_EMAIL: &str = "INSERT INTO user_emails (address, user_id) VALUES ($1, $2) \
     ON CONFLICT (address) DO UPDATE SET user_id = EXCLUDED.user_id \
     WHERE user_emails.user_id = EXCLUDED.user_id RETURNING 1";
const CLAIM_NAME: &str = "INSERT INTO user_names (name, user_id) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET user_id = EXCLUDED.user_id \
     WHERE user_names.user_id = EXCLUDED.user_id RETURNING 1";

impl PgStore {
    async fn user_where(&self, sql: &'static str, key: String) -> Result<Option<User>, StoreError> {
        Ok(pg!(self, |client| {
            let stmt = client.prepare_cached(sql).await?;
            match client.query_opt(&stmt, &[&key]).await? {
                Some(row) => decode(&row).map(Some),
                None => Ok(None),
            }
        })?)
    }
}

/// Runs a user transaction again when the database chose it as a deadlock victim (two
/// replicas claiming each other's addresses in opposite orders).
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut attempts = 0;
        loop {
            attempts += 1;
            match $attempt.await {
                Err(Fault::Db(e)) if retryable(&e) && attempts < 3 => continue,
                other => break other,
            }
        }
    }};
}

async fn create(client: &mut Object, user: &User, record: &str) -> Result<(), Fault> {
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO users (id, email, username, date_joined, record) \
             VALUES ($1, $2, $3, $4, CAST($5::text AS jsonb)) ON CONFLICT (id) DO NOTHING",
            &[
                &user.id,
                &user.email,
                &user.username,
                &user.date_joined,
                &record,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(Fault::Other("duplicate user id".into()));
    }
    let claim_email = tx.prepare_cached(CLAIM_EMAIL_NEW).await?;
    for (key, field) in email_keys(user) {
        if tx.execute(&claim_email, &[&key, &user.id]).await? == 0 {
            return Err(Fault::Unique(field));
        }
    }
    if let Some(name) = user.username.as_deref().map(fold) {
        let claim = tx.prepare_cached(CLAIM_NAME_NEW).await?;
        if tx.execute(&claim, &[&name, &user.id]).await? == 0 {
            return Err(Fault::Unique("username"));
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn update(client: &mut Object, user: &User, record: &str) -> Result<(), Fault> {
    let tx = client.transaction().await?;
    // Locks the row: two updates of one user run one after the other.
    if tx
        .query_opt("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.id])
        .await?
        .is_none()
    {
        return Err(Fault::NotFound);
    }
    let emails = email_keys(user);
    let addresses: Vec<&str> = emails.iter().map(|(k, _)| k.as_str()).collect();
    tx.execute(
        "DELETE FROM user_emails WHERE user_id = $1 AND address <> ALL($2)",
        &[&user.id, &addresses],
    )
    .await?;
    let claim_email = tx.prepare_cached(CLAIM_EMAIL).await?;
    for &(ref key, field) in &emails {
        if tx
            .query_opt(&claim_email, &[key, &user.id])
            .await?
            .is_none()
        {
            return Err(Fault::Unique(field));
        }
    }
    let name = user.username.as_deref().map(fold);
    tx.execute(
        "DELETE FROM user_names WHERE user_id = $1 AND name IS DISTINCT FROM $2",
        &[&user.id, &name],
    )
    .await?;
    if let Some(name) = &name {
        let claim = tx.prepare_cached(CLAIM_NAME).await?;
        if tx.query_opt(&claim, &[name, &user.id]).await?.is_none() {
            return Err(Fault::Unique("username"));
        }
    }
    tx.execute(
        "UPDATE users SET email = $2, username = $3, date_joined = $4, \
         record = CAST($5::text AS jsonb) WHERE id = $1",
        &[
            &user.id,
            &user.email,
            &user.username,
            &user.date_joined,
            &record,
        ],
    )
    .await?;
    announce_user(&tx, &user.id).await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl UserStore for PgStore {
    async fn create(&self, user: &User) -> Result<(), StoreError> {
        let record = encode(user)?;
        Ok(pg!(self, |client| {
            retrying!(create(&mut *client, user, &record))
        })?)
    }

    async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.user_where(
            "SELECT record::text FROM users WHERE id = $1",
            id.to_string(),
        )
        .await
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.user_where(
            "SELECT u.record::text FROM user_emails e JOIN users u ON u.id = e.user_id \
             WHERE e.address = $1",
            fold(email),
        )
        .await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.user_where(
            "SELECT u.record::text FROM user_names n JOIN users u ON u.id = n.user_id \
             WHERE n.name = $1",
            fold(username),
        )
        .await
    }

    async fn update(&self, user: &User) -> Result<(), StoreError> {
        let record = encode(user)?;
        Ok(pg!(self, |client| {
            retrying!(update(&mut *client, user, &record))
        })?)
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            // Its addresses, name and API keys go with it (ON DELETE CASCADE).
            if tx
                .execute("DELETE FROM users WHERE id = $1", &[&id])
                .await?
                == 0
            {
                return Err(Fault::NotFound);
            }
            announce_user(&tx, id).await?;
            tx.commit().await?;
            Ok(())
        })?)
    }

    async fn ping(&self) -> bool {
        self.answers().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged write was a committed transaction.
        Ok(())
    }

    async fn all(&self) -> Result<Vec<User>, StoreError> {
        Ok(pg!(self, LONG_BUDGET, |client| {
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL statement_timeout = '30s'")
                .await?;
            let rows = tx
                .query(
                    "SELECT record::text FROM users ORDER BY id COLLATE \"C\"",
                    &[],
                )
                .await?;
            tx.commit().await?;
            rows.iter().map(decode).collect()
        })?)
    }

    async fn next_serial(&self) -> Result<i64, StoreError> {
        Ok(pg!(self, |client| {
            let stmt = client
                .prepare_cached("SELECT nextval('user_serial')")
                .await?;
            let row = client.query_one(&stmt, &[]).await?;
            Ok::<i64, Fault>(row.try_get(0)?)
        })?)
    }
}

fn decode_key(row: &Row) -> Result<ApiKey, Fault> {
    Ok(ApiKey {
        hash: row.try_get(0)?,
        id: row.try_get(1)?,
        user_id: row.try_get(2)?,
        name: row.try_get(3)?,
        prefix: row.try_get(4)?,
        created_at: row.try_get(5)?,
        last_used_at: row.try_get(6)?,
    })
}

const KEY_BY_HASH: &str = "SELECT hash, id, user_id, name, prefix, created_at, last_used_at \
     FROM api_keys WHERE hash = $1";

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            // Like the embedded store, a key stored again under its hash replaces the old one.
            client
                .execute(
                    "INSERT INTO api_keys (hash, id, user_id, name, prefix, created_at, \
                     last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (hash) DO UPDATE SET id = EXCLUDED.id, \
                     user_id = EXCLUDED.user_id, name = EXCLUDED.name, prefix = EXCLUDED.prefix, \
                     created_at = EXCLUDED.created_at, last_used_at = EXCLUDED.last_used_at",
                    &[
                        &key.hash,
                        &key.id,
                        &key.user_id,
                        &key.name,
                        &key.prefix,
                        &key.created_at,
                        &key.last_used_at,
                    ],
                )
                .await?;
            Ok(())
        })?)
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(pg!(self, |client| {
            let stmt = client.prepare_cached(KEY_BY_HASH).await?;
            match client.query_opt(&stmt, &[&hash]).await? {
                Some(row) => decode_key(&row).map(Some),
                None => Ok(None),
            }
        })?)
    }

    async fn keys_of(&self, user_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        Ok(pg!(self, |client| {
            client
                .query(
                    "SELECT hash, id, user_id, name, prefix, created_at, last_used_at \
                     FROM api_keys WHERE user_id = $1 ORDER BY created_at, id",
                    &[&user_id],
                )
                .await?
                .iter()
                .map(decode_key)
                .collect()
        })?)
    }

    async fn delete_key(&self, user_id: &str, id: &str) -> Result<ApiKey, StoreError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    "DELETE FROM api_keys WHERE user_id = $1 AND id = $2 \
                     RETURNING hash, id, user_id, name, prefix, created_at, last_used_at",
                    &[&user_id, &id],
                )
                .await?
                .ok_or(Fault::NotFound)?;
            let key = decode_key(&row)?;
            announce_key(&tx, &key.hash).await?;
            tx.commit().await?;
            Ok(key)
        })?)
    }

    async fn touch_key(&self, hash: &str, at: i64) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            let stmt = client
                .prepare_cached("UPDATE api_keys SET last_used_at = $2 WHERE hash = $1")
                .await?;
            client.execute(&stmt, &[&hash, &at]).await?;
            Ok(())
        })?)
    }

    async fn delete_keys_of(&self, user_id: &str) -> Result<(), StoreError> {
        Ok(pg!(self, |client| {
            let tx = client.transaction().await?;
            let deleted = tx
                .execute("DELETE FROM api_keys WHERE user_id = $1", &[&user_id])
                .await?;
            if deleted > 0 {
                announce_user(&tx, user_id).await?;
            }
            tx.commit().await?;
            Ok(())
        })?)
    }
}
