//! Micro-benchmarks of the per-request work: JWT verification (cached and not), the identity
//! headers, and a GraphQL `me` round trip in-process. `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authgate::config::Config;
use authgate::gate::Identity;
use authgate::graphql::{build_schema, execute, Caller};
use authgate::jwt::{Subject, TokenService};
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
    let (token, claims) = tokens.issue(&subject(1)).unwrap();
    c.bench_function("jwt_verify_uncached", |b| {
        b.iter(|| tokens.verify_uncached(black_box(&token)).unwrap())
    });
    tokens.verify(&token).unwrap();
    c.bench_function("jwt_verify_cached", |b| {
        b.iter(|| tokens.verify(black_box(&token)).unwrap())
    });
    c.bench_function("jwt_sign", |b| {
        b.iter(|| tokens.issue(black_box(&subject(2))).unwrap())
    });
    c.bench_function("identity_headers", |b| {
        b.iter(|| Identity::from_claims(black_box(&claims)).headers())
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
