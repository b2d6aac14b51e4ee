//! Every refresh-token store through the library API, with one body each: what must hold
//! whichever store keeps the sessions.

use std::sync::Arc;

use crate::common::postgres::PgServer;
use crate::common::redis::RedisServer;
use authgate::accounts::storage::{Consumed, RefreshRecord, RefreshStore};
use authgate::store::postgres::{PgOptions, PgStore};
use authgate::store::redis::{RedisConnector, RedisSessions};
use authgate::store::sled::{SledSessions, SledStore};

fn record(family: &str, expires_at: i64) -> RefreshRecord {
    RefreshRecord {
        user_id: "u1".into(),
        family: family.into(),
        expires_at,
        amr: vec!["pwd".into()],
    }
}

/// A rotation that lost the race with the reuse of its token: the reuse revoked the family
/// between the rotation's consume and its insert of the next token. That next token must be
/// born dead, or the family lives on (RFC 9700: reuse revokes the family, the new pair too).
async fn a_rotation_racing_a_reuse_stores_a_dead_token(store: &dyn RefreshStore) {
    let exp = authgate::clock::unix_now() + 3600;
    store.insert("h-first", &record("fam", exp)).await.unwrap();
    // The winner consumes the first token...
    assert!(matches!(
        store.consume("h-first", exp - 3600).await.unwrap(),
        Consumed::Rotated(_)
    ));
    // ...a thief presents it again before the winner stored its next token...
    assert!(matches!(
        store.consume("h-first", exp - 3600).await.unwrap(),
        Consumed::Reused(_)
    ));
    // ...and the winner stores it now.
    store.insert("h-second", &record("fam", exp)).await.unwrap();
    assert_eq!(
        store.consume("h-second", exp - 3600).await.unwrap(),
        Consumed::Invalid,
        "a token issued into a family revoked by reuse must not work"
    );
    // Other families are untouched.
    store.insert("h-other", &record("fam2", exp)).await.unwrap();
    assert!(matches!(
        store.consume("h-other", exp - 3600).await.unwrap(),
        Consumed::Rotated(_)
    ));
}

#[tokio::test]
async fn sled_refuses_tokens_into_a_family_revoked_by_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let sessions = SledSessions::new(store.db()).unwrap();
    a_rotation_racing_a_reuse_stores_a_dead_token(&sessions).await;
}

#[tokio::test]
async fn redis_refuses_tokens_into_a_family_revoked_by_reuse() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let connector = Arc::new(RedisConnector::new(&redis.url()).unwrap());
    a_rotation_racing_a_reuse_stores_a_dead_token(&RedisSessions::new(connector)).await;
}

#[tokio::test]
async fn postgres_refuses_tokens_into_a_family_revoked_by_reuse() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let url = server.database().await;
    let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    a_rotation_racing_a_reuse_stores_a_dead_token(&store).await;
}
