//! The PostgreSQL backend through the library API, on real PostgreSQL servers: the semantics
//! the embedded store has (unique case-insensitive addresses and names, atomic rotation,
//! reuse detection, fixed windows), held across several pools on one database (what N
//! replicas are), the schema migrations, and the database going away and coming back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::eventually;
use crate::common::postgres::{PgServer, PASSWORD};
use authgate::accounts::model::{ApiKey, User};
use authgate::accounts::storage::{
    ApiKeyStore, Consumed, RateLimiter, RefreshRecord, RefreshStore, StoreError, UserStore, Verdict,
};
use authgate::config::Rate;
use authgate::store::postgres::{
    Invalidation, PgError, PgOptions, PgStore, MIGRATE_LOCK, SCHEMA_VERSION,
};

fn user(id: &str, email: &str, username: Option<&str>) -> User {
    User {
        id: id.into(),
        email: email.into(),
        username: username.map(str::to_string),
        first_name: String::new(),
        last_name: String::new(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        is_active: true,
        is_staff: false,
        verified: false,
        archived: false,
        secondary_email: None,
        roles: vec!["reader".into()],
        date_joined: 1_700_000_000,
        last_login: None,
        security_stamp: "s".into(),
        serial: None,
        standing_key: None,
        totp: None,
    }
}

fn key(user_id: &str, id: &str, hash: &str, created_at: i64) -> ApiKey {
    ApiKey {
        id: id.into(),
        user_id: user_id.into(),
        name: format!("key {id}"),
        prefix: "agk_abcd".into(),
        hash: hash.into(),
        created_at,
        last_used_at: None,
    }
}

fn refresh(user_id: &str, family: &str, expires_at: i64) -> RefreshRecord {
    RefreshRecord {
        user_id: user_id.into(),
        family: family.into(),
        expires_at,
        amr: vec![],
    }
}

async fn connect(url: &str) -> PgStore {
    PgStore::connect(url, PgOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh database on the shared server and a store on it; `None` when skipped.
async fn fresh() -> Option<(String, PgStore)> {
    let url = PgServer::shared()?.database().await;
    let store = connect(&url).await;
    Some((url, store))
}

/// A plain client, for looking at the tables themselves.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn indexes_stay_consistent() {
    let Some((_, store)) = fresh().await else {
        return;
    };
    store
        .create(&user("a", "Ada@Example.com", Some("Ada")))
        .await
        .unwrap();
    assert!(matches!(
        store.create(&user("b", "ada@EXAMPLE.com", None)).await,
        Err(StoreError::Unique("email"))
    ));
    assert!(matches!(
        store.create(&user("b", "b@example.com", Some("ADA"))).await,
        Err(StoreError::Unique("username"))
    ));
    // Both taken: the email is named, as the embedded store does.
    assert!(matches!(
        store
            .create(&user("b", " ADA@example.com ", Some("ada")))
            .await,
        Err(StoreError::Unique("email"))
    ));
    assert!(matches!(
        store.create(&user("a", "other@example.com", None)).await,
        Err(StoreError::Backend(_))
    ));
    store
        .create(&user("b", "b@example.com", Some("bob")))
        .await
        .unwrap();
    let ada = store
        .find_by_email("ADA@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada, user("a", "Ada@Example.com", Some("Ada")));
    assert_eq!(
        store.find_by_username("BOB").await.unwrap().unwrap().id,
        "b"
    );
    assert!(store
        .find_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_none());

    // Renaming frees the old name and claims the new one; taking another's is refused.
    let mut a = store.get("a").await.unwrap().unwrap();
    a.username = Some("ada2".into());
    a.secondary_email = Some("alt@example.com".into());
    store.update(&a).await.unwrap();
    assert!(store.find_by_username("ada").await.unwrap().is_none());
    assert_eq!(
        store
            .find_by_email("ALT@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        "a"
    );
    let mut b = store.get("b").await.unwrap().unwrap();
    b.username = Some("Ada2".into());
    assert!(matches!(
        store.update(&b).await,
        Err(StoreError::Unique("username"))
    ));
    b.username = Some("bob".into());
    b.secondary_email = Some("alt@EXAMPLE.com".into());
    b.first_name = "Changed".into();
    assert!(matches!(
        store.update(&b).await,
        Err(StoreError::Unique("secondary_email"))
    ));
    // A failed update changed nothing.
    let unchanged = store.get("b").await.unwrap().unwrap();
    assert_eq!(unchanged.secondary_email, None);
    assert_eq!(unchanged.first_name, "");
    assert_eq!(
        store.find_by_username("bob").await.unwrap().unwrap().id,
        "b"
    );

    // Swapping: the secondary becomes the primary and the old primary goes.
    let mut a = store.get("a").await.unwrap().unwrap();
    a.email = "alt@example.com".into();
    a.secondary_email = None;
    store.update(&a).await.unwrap();
    assert!(store
        .find_by_email("ada@example.com")
        .await
        .unwrap()
        .is_none());
    store
        .create(&user("c", "ada@example.com", Some("carol")))
        .await
        .unwrap();

    assert!(matches!(
        store.update(&user("zz", "zz@example.com", None)).await,
        Err(StoreError::NotFound)
    ));
    let ids: Vec<String> = store
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);

    store.delete("a").await.unwrap();
    assert!(store
        .find_by_email("alt@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store.find_by_username("ada2").await.unwrap().is_none());
    assert!(store.get("a").await.unwrap().is_none());
    assert!(matches!(store.delete("a").await, Err(StoreError::NotFound)));
    store
        .create(&user("d", "alt@example.com", Some("ada2")))
        .await
        .unwrap();
    assert!(UserStore::ping(&store).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_parallel_registrations_of_one_email_make_one_account() {
    let Some((url, first)) = fresh().await else {
        return;
    };
    let replicas = [first, connect(&url).await, connect(&url).await];
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = replicas[i % 3].clone();
        // The same address in several spellings.
        let email = if i % 2 == 0 {
            "Race@Example.com"
        } else {
            " race@example.COM"
        };
        tasks.push(tokio::spawn(async move {
            store
                .create(&user(&format!("u{i:03}"), email, Some(&format!("name{i}"))))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Unique("email")) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(created, 1);
    let winner = replicas[1]
        .find_by_email("race@example.com")
        .await
        .unwrap()
        .unwrap();
    let client = sql(&url).await;
    assert_eq!(count(&client, "users").await, 1);
    assert_eq!(count(&client, "user_emails").await, 1);
    // The losers' usernames were rolled back with them.
    assert_eq!(count(&client, "user_names").await, 1);
    assert_eq!(
        replicas[2]
            .find_by_username(winner.username.as_deref().unwrap())
            .await
            .unwrap()
            .unwrap()
            .id,
        winner.id
    );

    // One username from many emails: one account too.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = replicas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            store
                .create(&user(
                    &format!("n{i:03}"),
                    &format!("n{i}@example.com"),
                    Some("Taken"),
                ))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Unique("username")) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(count(&client, "users").await, 2);
}

#[tokio::test]
async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family() {
    let Some((url, store)) = fresh().await else {
        return;
    };
    let t = now();
    store
        .insert("h1", &refresh("u", "f", t + 100))
        .await
        .unwrap();
    assert_eq!(
        store.consume("h1", t).await.unwrap(),
        Consumed::Rotated(refresh("u", "f", t + 100))
    );
    store
        .insert("h2", &refresh("u", "f", t + 200))
        .await
        .unwrap();
    // h1 again: theft. The family goes, h2 with it.
    assert_eq!(
        store.consume("h1", t).await.unwrap(),
        Consumed::Reused(refresh("u", "f", t + 100))
    );
    assert_eq!(store.consume("h2", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(store.consume("h1", t).await.unwrap(), Consumed::Invalid);
    // A token issued into a revoked family (a rotation that lost the race) is dead at birth.
    store
        .insert("h3", &refresh("u", "f", t + 300))
        .await
        .unwrap();
    assert_eq!(store.consume("h3", t).await.unwrap(), Consumed::Invalid);

    // revoke: the family of a token, whoever held it.
    store
        .insert("g1", &refresh("u", "g", t + 100))
        .await
        .unwrap();
    assert_eq!(
        store.consume("g1", t).await.unwrap(),
        Consumed::Rotated(refresh("u", "g", t + 100))
    );
    store
        .insert("g2", &refresh("u", "g", t + 100))
        .await
        .unwrap();
    assert_eq!(
        store.revoke("g1").await.unwrap(),
        Some(refresh("u", "g", t + 100))
    );
    assert_eq!(store.consume("g2", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(store.revoke("g1").await.unwrap(), None);
    assert_eq!(store.revoke("unknown").await.unwrap(), None);

    // Expired: invalid, used or not.
    store.insert("e1", &refresh("u", "e", t - 1)).await.unwrap();
    assert_eq!(store.consume("e1", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(
        store.consume("unknown", t).await.unwrap(),
        Consumed::Invalid
    );

    // Logout everywhere: every family of that user, nobody else's.
    store
        .insert("x1", &refresh("v", "x", t + 100))
        .await
        .unwrap();
    store
        .insert("y1", &refresh("v", "y", t + 100))
        .await
        .unwrap();
    store
        .insert("z1", &refresh("w", "z", t + 1000))
        .await
        .unwrap();
    store.revoke_user("v").await.unwrap();
    assert_eq!(store.consume("x1", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(store.consume("y1", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(
        store.consume("z1", t).await.unwrap(),
        Consumed::Rotated(refresh("w", "z", t + 1000))
    );
    // A login after the logout starts a family that works.
    store
        .insert("x2", &refresh("v", "x2", t + 1000))
        .await
        .unwrap();
    assert!(matches!(
        store.consume("x2", t).await.unwrap(),
        Consumed::Rotated(_)
    ));
    assert!(RefreshStore::ping(&store).await);

    // The sweep drops what expired and keeps what did not.
    let client = sql(&url).await;
    assert!(store.sweep(t + 150).await.unwrap());
    let left: Vec<String> = client
        .query("SELECT hash FROM refresh_tokens ORDER BY hash", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["x2", "z1"]);
    // Families stay (revoked ones as tombstones) a day past their last token.
    assert!(store.sweep(t + 300 + 86_401).await.unwrap());
    let families: Vec<String> = client
        .query("SELECT family FROM refresh_families ORDER BY family", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(families, ["x2", "z"]);
    assert!(store.sweep(t + 1000 + 86_401).await.unwrap());
    assert_eq!(count(&client, "refresh_families").await, 0);
}

#[tokio::test]
async fn families_keep_their_amr_and_one_can_outlive_the_others() {
    let Some((_, store)) = fresh().await else {
        return;
    };
    let t = now();
    let with_otp = RefreshRecord {
        amr: vec!["pwd".into(), "otp".into()],
        ..refresh("u", "kept", t + 100)
    };
    store.insert("k1", &with_otp).await.unwrap();
    store
        .insert("o1", &refresh("u", "other", t + 100))
        .await
        .unwrap();
    store
        .insert("w1", &refresh("w", "someone", t + 100))
        .await
        .unwrap();
    assert_eq!(
        store.consume("k1", t).await.unwrap(),
        Consumed::Rotated(with_otp.clone())
    );
    store.insert("k2", &with_otp).await.unwrap();
    store.revoke_user_except("u", "kept").await.unwrap();
    assert_eq!(store.consume("o1", t).await.unwrap(), Consumed::Invalid);
    assert_eq!(
        store.consume("k2", t).await.unwrap(),
        Consumed::Rotated(with_otp.clone())
    );
    assert!(matches!(
        store.consume("w1", t).await.unwrap(),
        Consumed::Rotated(_)
    ));
    // Reuse reports the family's amr too, and a revoked family takes no new token.
    assert_eq!(
        store.consume("k2", t).await.unwrap(),
        Consumed::Reused(with_otp.clone())
    );
    store.insert("k3", &with_otp).await.unwrap();
    assert_eq!(store.consume("k3", t).await.unwrap(), Consumed::Invalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_parallel_refreshes_of_one_token_make_one_new_pair() {
    let Some((url, first)) = fresh().await else {
        return;
    };
    let replicas = [first, connect(&url).await, connect(&url).await];
    let t = now();
    replicas[0]
        .insert("start", &refresh("u", "fam", t + 600))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = replicas[i % 3].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = store.consume("start", t).await.unwrap();
            if let Consumed::Rotated(record) = &outcome {
                // What the account logic does next: the new refresh token of the family.
                store
                    .insert(&format!("next{i}"), &refresh("u", &record.family, t + 600))
                    .await
                    .unwrap();
            }
            (i, outcome)
        }));
    }
    let (mut rotated, mut reused, mut invalid) = (Vec::new(), 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (i, Consumed::Rotated(_)) => rotated.push(i),
            (_, Consumed::Reused(record)) => {
                assert_eq!(record, refresh("u", "fam", t + 600));
                reused += 1
            }
            (_, Consumed::Invalid) => invalid += 1,
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation");
    assert!(reused >= 1, "the other presentations are reuse");
    assert_eq!(reused + invalid, 29);
    // Reuse revoked the family, the new pair included.
    let next = format!("next{}", rotated[0]);
    for store in &replicas {
        assert_eq!(store.consume(&next, t).await.unwrap(), Consumed::Invalid);
    }
    let client = sql(&url).await;
    assert_eq!(count(&client, "refresh_tokens").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_fixed_windows_shared_by_replicas() {
    let Some((url, a)) = fresh().await else {
        return;
    };
    let b = connect(&url).await;
    let rate = Rate::new(2, 60);
    let t = 1_000_040; // 20 s into a minute window
    assert_eq!(a.hit("k", rate, t).await.unwrap(), Verdict::Allowed);
    assert_eq!(b.hit("k", rate, t + 1).await.unwrap(), Verdict::Allowed);
    assert_eq!(
        a.hit("k", rate, t + 2).await.unwrap(),
        Verdict::Limited { retry_after: 38 }
    );
    assert_eq!(
        b.hit("k", rate, t + 3).await.unwrap(),
        Verdict::Limited { retry_after: 37 }
    );
    assert_eq!(b.hit("other", rate, t).await.unwrap(), Verdict::Allowed);
    assert_eq!(a.hit("k", rate, t + 40).await.unwrap(), Verdict::Allowed);

    // Counted atomically: 50 attempts at once on two replicas, 10 allowed.
    let rate = Rate::new(10, 3600);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.hit("burst", rate, t).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == Verdict::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);

    // Past windows are swept; the current ones stay.
    let client = sql(&url).await;
    assert!(a.sweep(t + 60).await.unwrap());
    let keys: Vec<String> = client
        .query("SELECT key FROM rate_limits ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["burst", "k"]);
}

/// Waits for `wanted` on `events`, at most `within`.
async fn heard(
    events: &mut tokio::sync::broadcast::Receiver<Invalidation>,
    wanted: Invalidation,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if event == wanted => return true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

async fn until_listening(store: &PgStore) {
    eventually(Duration::from_secs(10), "the listener connects", || async {
        store.listening()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_invalidations_across_replicas() {
    let Some((url, a)) = fresh().await else {
        return;
    };
    let b = connect(&url).await;
    let mut events = b.subscribe();
    let listener = tokio::spawn({
        let b = b.clone();
        async move { b.listen().await }
    });
    until_listening(&b).await;

    a.create(&user("u1", "u1@example.com", None)).await.unwrap();
    a.create(&user("u2", "u2@example.com", None)).await.unwrap();
    a.insert_key(&key("u1", "k2", "hash2", 20)).await.unwrap();
    a.insert_key(&key("u1", "k1", "hash1", 10)).await.unwrap();
    a.insert_key(&key("u2", "k3", "hash3", 5)).await.unwrap();
    assert_eq!(
        b.key_by_hash("hash1").await.unwrap(),
        Some(key("u1", "k1", "hash1", 10))
    );
    assert_eq!(b.key_by_hash("nope").await.unwrap(), None);
    let ids: Vec<String> = b
        .keys_of("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["k1", "k2"]);
    b.touch_key("hash1", 99).await.unwrap();
    b.touch_key("nope", 99).await.unwrap();
    assert_eq!(
        a.key_by_hash("hash1").await.unwrap().unwrap().last_used_at,
        Some(99)
    );
    // A key of someone else is not found, and stays.
    assert!(matches!(
        a.delete_key("u2", "k1").await,
        Err(StoreError::NotFound)
    ));
    assert!(a.key_by_hash("hash1").await.unwrap().is_some());

    // Revoked on one replica: the other hears of it within 2 s.
    let revoked = Instant::now();
    assert_eq!(
        a.delete_key("u1", "k1").await.unwrap(),
        ApiKey {
            last_used_at: Some(99),
            ..key("u1", "k1", "hash1", 10)
        }
    );
    assert!(
        heard(
            &mut events,
            Invalidation::ApiKey("hash1".into()),
            Duration::from_secs(2)
        )
        .await
    );
    assert!(revoked.elapsed() < Duration::from_secs(2));
    assert_eq!(b.key_by_hash("hash1").await.unwrap(), None);

    a.delete_keys_of("u1").await.unwrap();
    assert!(
        heard(
            &mut events,
            Invalidation::User("u1".into()),
            Duration::from_secs(2)
        )
        .await
    );
    assert!(b.keys_of("u1").await.unwrap().is_empty());

    let mut u2 = a.get("u2").await.unwrap().unwrap();
    u2.roles = vec!["admin".into()];
    a.update(&u2).await.unwrap();
    assert!(
        heard(
            &mut events,
            Invalidation::User("u2".into()),
            Duration::from_secs(2)
        )
        .await
    );

    // Deleting a user takes their keys along.
    a.delete("u2").await.unwrap();
    assert!(
        heard(
            &mut events,
            Invalidation::User("u2".into()),
            Duration::from_secs(2)
        )
        .await
    );
    assert_eq!(b.key_by_hash("hash3").await.unwrap(), None);
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_shared_secrets() {
    let Some((url, a)) = fresh().await else {
        return;
    };
    let b = connect(&url).await;
    let (x, y) = tokio::join!(
        a.ensure_secret("probe", b"from a"),
        b.ensure_secret("probe", b"from b")
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x, y);
    assert!(x == b"from a" || x == b"from b");
    assert_eq!(a.ensure_secret("probe", b"later").await.unwrap(), x);

    let (ka, kb) = tokio::join!(a.email_token_key(), b.email_token_key());
    assert_eq!(ka.unwrap(), kb.unwrap());
    let (ta, tb) = tokio::join!(a.admin_token(), b.admin_token());
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta, tb);
    assert_eq!(ta.len(), 64);
    assert!(ta.chars().all(|c| c.is_ascii_hexdigit()));
    // A replica started later reads the same ones.
    let c = connect(&url).await;
    assert_eq!(c.admin_token().await.unwrap(), ta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_second_starter_waits() {
    let Some(pg) = PgServer::shared() else {
        return;
    };
    // Several replicas starting at the same moment on an empty database.
    let url = pg.database().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, PgOptions::default()).await })
        })
        .collect();
    for start in starts {
        let store = start.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    }
    let client = sql(&url).await;
    assert_eq!(
        count(&client, "schema_version").await,
        SCHEMA_VERSION as i64
    );

    // While another process holds the migration lock, a starter waits, then goes on.
    let url = pg.database().await;
    let holder = sql(&url).await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await
        .unwrap();
    let start = tokio::spawn({
        let url = url.clone();
        async move { PgStore::connect(&url, PgOptions::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !start.is_finished(),
        "the starter did not wait for the lock"
    );
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await
        .unwrap();
    let store = tokio::time::timeout(Duration::from_secs(10), start)
        .await
        .expect("the starter went on once the lock was free")
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(store.answers().await);
}

#[tokio::test]
async fn a_newer_or_altered_schema_is_refused() {
    let Some((url, _store)) = fresh().await else {
        return;
    };
    let client = sql(&url).await;
    client
        .execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES ($1, 'future', 'x')",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let started = Instant::now();
    match PgStore::connect(&url, PgOptions::default()).await {
        Err(e @ PgError::SchemaTooNew { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&(SCHEMA_VERSION + 1).to_string()), "{text}");
            assert!(text.contains(&SCHEMA_VERSION.to_string()), "{text}");
        }
        Err(e) => panic!("unexpected: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused without retrying"
    );

    client
        .execute(
            "DELETE FROM schema_version WHERE version > $1",
            &[&SCHEMA_VERSION],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE schema_version SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    match PgStore::connect(&url, PgOptions::default()).await {
        Err(e @ PgError::Failed { .. }) => assert!(e.to_string().contains("differs"), "{e}"),
        Err(e) => panic!("unexpected: {e}"),
        Ok(_) => panic!("an altered migration was accepted"),
    }
}

#[tokio::test]
async fn a_refused_login_fails_at_once_and_names_no_password() {
    let Some(pg) = PgServer::shared() else {
        return;
    };
    let url = pg.database().await.replace(PASSWORD, "wrong-password-4711");
    let started = Instant::now();
    let err = match PgStore::connect(&url, PgOptions::default()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a wrong password was accepted"),
    };
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
    assert!(!err.contains("wrong-password-4711"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(err.contains("authgate"), "names the user: {err}");
}

/// Runs blocking server control off the async threads.
async fn control(pg: &mut PgServer, what: impl FnOnce(&mut PgServer)) {
    tokio::task::block_in_place(|| what(pg));
}

async fn fails_fast<T: std::fmt::Debug, E: std::fmt::Display>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> String {
    let started = Instant::now();
    let outcome = call.await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{what} took {took:?}");
    match outcome {
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains(PASSWORD), "{text}");
            text
        }
        Ok(v) => panic!("{what} succeeded with the database down: {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_goes_away_and_comes_back() {
    let Some(mut pg) = PgServer::start() else {
        return;
    };
    let url = pg.database().await;
    let store = connect(&url).await;
    let mut events = store.subscribe();
    let listener = tokio::spawn({
        let store = store.clone();
        async move { store.listen().await }
    });
    until_listening(&store).await;
    store
        .create(&user("u", "u@example.com", None))
        .await
        .unwrap();
    let t = now();
    store
        .insert("r1", &refresh("u", "f", t + 600))
        .await
        .unwrap();

    // Stopped: every call fails within 2 s, none hangs.
    control(&mut pg, PgServer::stop).await;
    fails_fast("get", store.get("u")).await;
    fails_fast("create", store.create(&user("v", "v@example.com", None))).await;
    fails_fast("consume", store.consume("r1", t)).await;
    fails_fast("hit", store.hit("k", Rate::new(5, 60), t)).await;
    fails_fast("key_by_hash", store.key_by_hash("h")).await;
    let started = Instant::now();
    assert!(!store.answers().await);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(heard(&mut events, Invalidation::All, Duration::from_secs(3)).await);
    assert!(!store.listening());

    // Back: the same store works again, from the first call on.
    control(&mut pg, PgServer::restart).await;
    assert_eq!(
        store.get("u").await.unwrap().unwrap().email,
        "u@example.com"
    );
    assert!(matches!(
        store.consume("r1", t).await.unwrap(),
        Consumed::Rotated(_)
    ));
    store
        .create(&user("v", "v@example.com", None))
        .await
        .unwrap();
    assert!(store.answers().await);
    // The listener reconnects by itself and says caches may have missed something.
    assert!(heard(&mut events, Invalidation::All, Duration::from_secs(5)).await);
    until_listening(&store).await;
    store.insert_key(&key("v", "k", "hk", 1)).await.unwrap();
    store.delete_key("v", "k").await.unwrap();
    assert!(
        heard(
            &mut events,
            Invalidation::ApiKey("hk".into()),
            Duration::from_secs(2)
        )
        .await
    );

    // Frozen (the host unresponsive, connections open): calls still fail within 2 s.
    pg.freeze();
    fails_fast("get while frozen", store.get("u")).await;
    fails_fast("consume while frozen", store.consume("r1", t)).await;
    let started = Instant::now();
    assert!(!store.answers().await);
    assert!(started.elapsed() < Duration::from_secs(2));
    pg.thaw();
    eventually(
        Duration::from_secs(5),
        "reads work after thawing",
        || async { store.get("u").await.is_ok_and(|found| found.is_some()) },
    )
    .await;
    assert!(store.answers().await);

    // Starting while the database is down: `connect` waits for it.
    control(&mut pg, PgServer::stop).await;
    let start = tokio::spawn({
        let url = url.clone();
        async move {
            PgStore::connect(
                &url,
                PgOptions {
                    start_timeout: Duration::from_secs(30),
                    ..PgOptions::default()
                },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!start.is_finished());
    control(&mut pg, PgServer::restart).await;
    let late = start.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(late.get("v").await.unwrap().unwrap().id, "v");

    // Still down when the start budget runs out: a one-line reason, no password.
    control(&mut pg, PgServer::stop).await;
    let started = Instant::now();
    let err = match PgStore::connect(
        &url,
        PgOptions {
            start_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .await
    {
        Err(e) => e,
        Ok(_) => panic!("connected to a stopped server"),
    };
    assert!(matches!(err, PgError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
    let text = err.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains('\n'), "{text}");
    listener.abort();
}

/// How many of authgate's connections to database `db` use TLS, and how many do not.
async fn tls_use(admin: &tokio_postgres::Client, db: &str) -> (i64, i64) {
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'authgate'",
            &[&db],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_follows_sslmode() {
    let Some(pg) = PgServer::start_tls() else {
        return;
    };
    let tls = pg.tls().unwrap();
    let admin = sql(&pg.url("postgres")).await;
    let ca = tls.ca.display().to_string().replace('/', "%2F");
    let other = tls
        .ca
        .with_file_name("server.crt")
        .display()
        .to_string()
        .replace('/', "%2F");
    let quick = PgOptions {
        start_timeout: Duration::from_secs(3),
        ..PgOptions::default()
    };
    // (host, parameters, connects, over TLS)
    let cases = [
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            true,
            true,
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            true,
            true,
        ),
        ("localhost", "sslmode=require".to_string(), true, true),
        ("localhost", String::new(), true, true),
        ("localhost", "sslmode=disable".to_string(), true, false),
        // The certificate names localhost, not the address.
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            false,
            true,
        ),
        // A private CA is not among the system's roots.
        ("localhost", "sslmode=verify-full".to_string(), false, true),
        (
            "localhost",
            "sslmode=verify-ca&sslrootcert=system".to_string(),
            false,
            true,
        ),
        // With a root certificate, require checks the chain (as libpq does): the server's own
        // certificate is no root of its chain.
        (
            "localhost",
            format!("sslmode=require&sslrootcert={other}"),
            false,
            true,
        ),
    ];
    for (host, params, connects, encrypted) in cases {
        let url = pg.database().await;
        let db = url.rsplit('/').next().unwrap().to_string();
        let started = Instant::now();
        let outcome = PgStore::connect(&pg.tcp_url(host, &db, &params), quick.clone()).await;
        match (outcome, connects) {
            (Ok(store), true) => {
                assert!(store.answers().await, "{host} {params}");
                let (with, without) = tls_use(&admin, &db).await;
                if encrypted {
                    assert!(
                        with > 0 && without == 0,
                        "{host} {params}: {with}/{without}"
                    );
                } else {
                    assert!(
                        with == 0 && without > 0,
                        "{host} {params}: {with}/{without}"
                    );
                }
            }
            (Err(e), false) => {
                let text = e.to_string();
                assert!(text.contains("certificate"), "{host} {params}: {text}");
                assert!(!text.contains(PASSWORD), "{text}");
                // A refused certificate is not retried until the start budget runs out.
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "{host} {params}: {text}"
                );
            }
            (Ok(_), false) => panic!("{host} {params}: connected"),
            (Err(e), true) => panic!("{host} {params}: {e}"),
        }
    }
}
