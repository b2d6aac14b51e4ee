//! Micro-benchmarks of the per-request work: JWT verification (cached and not), the
//! revocation check (empty and with 10,000 entries), the identity headers, and a GraphQL `me`
//! round trip in-process. `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authgate::config::Config;
use authgate::gate::Identity;
use authgate::graphql::{build_schema, execute, Caller};
use authgate::jwt::{Revocation, RevocationKind, Subject, TokenService};
use authgate::keys::KeyRing;
use criterion::{criterion_group, criterion_main, Criterion};

fn subject(i: usize) -> Subject {
    Subject {
        user_id: format!("user-{i}"),
        email: format!("user{i}@example.com"),
        username: Some(format!("user{i}")),
        verified: true,
        staff: false,
        roles: vec!["reader".into(), "writer".into()],
    }
}

fn jwt(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeyRing::open_or_init(dir.path(), 2048).unwrap());
    let tokens = TokenService::new(
        keys,
        "http://127.0.0.1:8080",
        None,
        Duration::from_secs(900),
        Duration::from_secs(30),
    );
    // A session's token, as logins issue them (with a sid).
    let (token, claims) = tokens
        .issue_in(
            &subject(1),
            &authgate::jwt::Session {
                sid: Some("5f0c6ad1e4b94c0e8f3a2b1c0d9e8f7a".into()),
                amr: vec!["pwd".into()],
            },
            |_| Default::default(),
        )
        .unwrap();
    c.bench_function("jwt_verify_uncached", |b| {
        b.iter(|| tokens.verify_uncached(black_box(&token)).unwrap())
    });
    tokens.verify(&token).unwrap();
    c.bench_function("jwt_verify_cached", |b| {
        b.iter(|| tokens.verify(black_box(&token)).unwrap())
    });
    // The revocation check (SPEC §13) on its own and inside the cached verify, with an
    // empty list and with 10,000 entries (half accounts, half sessions), none of them this
    // token's: the cost every request pays.
    let list = tokens.revocations();
    c.bench_function("revocation_check_0_entries", |b| {
        b.iter(|| list.refuses(black_box(&claims), black_box(claims.iat)))
    });
    let entries: Vec<Revocation> = (0..10_000)
        .map(|i| Revocation {
            kind: if i % 2 == 0 {
                RevocationKind::Account
            } else {
                RevocationKind::Session
            },
            id: format!("{i:032x}"),
            at: claims.iat,
            until: claims.iat + 3600,
        })
        .collect();
    list.apply(&entries);
    assert_eq!(list.len(), 10_000);
    c.bench_function("revocation_check_10000_entries", |b| {
        b.iter(|| list.refuses(black_box(&claims), black_box(claims.iat)))
    });
    c.bench_function("jwt_verify_cached_10000_revocations", |b| {
        b.iter(|| tokens.verify(black_box(&token)).unwrap())
    });
    c.bench_function("jwt_sign", |b| {
        b.iter(|| tokens.issue(black_box(&subject(2))).unwrap())
    });
    c.bench_function("identity_headers", |b| {
        let claims = std::sync::Arc::new(claims.clone());
        b.iter(|| Identity::from_claims(black_box(claims.clone())).header_values())
    });
}

fn graphql_me(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.storage.data_dir = dir.path().join("data");
    config.jwt.keys_dir = dir.path().join("keys");
    let app = authgate::app::App::new(config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let accounts = app.accounts.clone().unwrap();
    let user = runtime
        .block_on(
            accounts
                .registration
                .create_account(authgate::accounts::NewAccount {
                    email: "me@example.com".into(),
                    verified: true,
                    ..Default::default()
                }),
        )
        .unwrap();
    let schema = build_schema(app.clone(), &app.config.graphql);
    let body = br#"{"query":"{ me { id email username verified roles dateJoined } }"}"#;
    c.bench_function("graphql_me_round_trip", |b| {
        b.iter(|| {
            let caller = Caller {
                user_id: Some(user.id.clone()),
                ..Default::default()
            };
            let reply = runtime.block_on(execute(&schema, black_box(body), caller));
            assert_eq!(reply.status, 200);
            reply
        })
    });
}

criterion_group!(benches, jwt, graphql_me);
criterion_main!(benches);
