//! N gateways on one PostgreSQL (SPEC §12): each replica a real `authgate serve` process with
//! its own data directory, all sharing the database, one keys directory and one issuer, as a
//! Deployment runs them. What one replica does, every other one sees.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::postgres::PgServer;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";
const ISSUER: &str = "https://auth.replicas.test";
const REGISTER: &str = "mutation R($e: String!, $p: String!) {
  register(email: $e, password1: $p, password2: $p) { success errors } }";
const LOGIN: &str = "mutation L($e: String!, $p: String!) {
  tokenAuth(email: $e, password: $p) { success errors token refreshToken } }";
const REFRESH: &str =
    "mutation R($t: String) { refreshToken(refreshToken: $t) { success errors token refreshToken } }";

/// Replicas on one database, with the keys directory and the mail sink they share.
struct Cluster {
    gates: Vec<Authgate>,
    sink: SmtpSink,
    url: String,
    _keys: tempfile::TempDir,
    _upstream: Upstream,
}

/// A keys directory with one key pair, as a Kubernetes Secret would hold it.
fn shared_keys() -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["keys", "generate", "--dir"])
        .arg(keys.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    keys
}

fn replica(url: &str, keys: &std::path::Path, sink: &SmtpSink) -> Builder {
    Authgate::builder()
        .smtp(sink)
        .env("AUTHGATE_STORAGE__DATABASE_URL", url)
        .env("AUTHGATE_JWT__KEYS_DIR", &keys.display().to_string())
        .env("AUTHGATE_JWT__ISSUER", ISSUER)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "10000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "10000/1h")
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "10000/1h")
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n")
}

impl Cluster {
    /// `n` replicas on a fresh database of `server` (the shared one when `None`); `None` when
    /// PostgreSQL is not installed (outside CI).
    async fn start(n: usize, server: Option<&PgServer>) -> Option<Cluster> {
        let url = match server {
            Some(server) => server.database().await,
            None => PgServer::shared()?.database().await,
        };
        let sink = SmtpSink::start().await;
        let upstream = Upstream::start().await;
        let keys = shared_keys();
        let mut gates = Vec::new();
        for _ in 0..n {
            gates.push(
                replica(&url, keys.path(), &sink)
                    .start(Some(&upstream))
                    .await,
            );
        }
        Some(Cluster {
            gates,
            sink,
            url,
            _keys: keys,
            _upstream: upstream,
        })
    }

    /// A verified account made on replica 0; returns a login on replica `on`.
    async fn account(&self, email: &str, on: usize) -> Value {
        let reply = self.gates[0]
            .graphql_as(REGISTER, json!({"e": email, "p": PASSWORD}), None)
            .await;
        assert_eq!(reply["data"]["register"]["success"], true, "{reply}");
        verify_by_mail(&self.gates[0], &self.sink, email, 1).await;
        let login = login(&self.gates[on], email).await;
        assert_eq!(login["success"], true, "{login}");
        login
    }
}

async fn login(gate: &Authgate, email: &str) -> Value {
    gate.graphql_as(LOGIN, json!({"e": email, "p": PASSWORD}), None)
        .await["data"]["tokenAuth"]
        .clone()
}

fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

/// A direct connection to the database, to count what the replicas stored.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn count(url: &str, query: &str) -> i64 {
    sql(url).await.query_one(query, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn one_email_registered_100_times_over_3_replicas_is_one_account() {
    let Some(mut c) = Cluster::start(3, None).await else {
        return;
    };
    let attempts = (0..100).map(|i| {
        let gate = &c.gates[i % 3];
        async move {
            // Spelled differently: the address is unique case-insensitively.
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "Race@Example.com"
            };
            gate.graphql_as(REGISTER, json!({"e": email, "p": PASSWORD}), None)
                .await["data"]["register"]
                .clone()
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r["success"] == true).count();
    assert_eq!(wins, 1, "{results:?}");
    // The others are told the address is taken; on a machine too busy for a hundred upserts
    // of one rate-limit row within the call budget, some are told to come back instead. No
    // other outcome.
    for lost in results.iter().filter(|r| r["success"] != true) {
        let code = code(lost);
        assert!(code == "unique" || code == "service_unavailable", "{lost}");
    }
    assert!(results.iter().any(|r| code(r) == "unique"), "{results:?}");
    assert_eq!(count(&c.url, "SELECT count(*) FROM users").await, 1);
    for gate in &c.gates {
        assert_eq!(
            login(gate, "race@example.com").await["success"],
            true,
            "every replica logs the one account in"
        );
    }
    for gate in &mut c.gates {
        gate.assert_healthy().await;
    }
}

#[tokio::test]
async fn one_refresh_token_presented_on_3_replicas_rotates_once_and_the_rest_is_reuse() {
    let Some(c) = Cluster::start(3, None).await else {
        return;
    };
    let first = c.account("ada@example.com", 1).await;
    let r1 = first["refreshToken"].as_str().unwrap().to_string();
    let attempts = (0..9).map(|i| {
        let gate = &c.gates[i % 3];
        let r1 = r1.clone();
        async move {
            gate.graphql_as(REFRESH, json!({"t": r1}), None).await["data"]["refreshToken"].clone()
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<&Value> = results.iter().filter(|r| r["success"] == true).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for lost in results.iter().filter(|r| r["success"] != true) {
        assert_eq!(code(lost), "invalid_token", "{lost}");
    }
    // The other presentations were reuse: the family is revoked, the new pair included, on
    // every replica.
    let r2 = winners[0]["refreshToken"].as_str().unwrap();
    for gate in &c.gates {
        let again = gate.graphql_as(REFRESH, json!({"t": r2}), None).await;
        assert_eq!(
            code(&again["data"]["refreshToken"]),
            "invalid_token",
            "{again}"
        );
    }
    // A session made on one replica refreshes on another.
    let fresh = login(&c.gates[0], "ada@example.com").await;
    let moved = c.gates[2]
        .graphql_as(REFRESH, json!({"t": fresh["refreshToken"]}), None)
        .await;
    assert_eq!(moved["data"]["refreshToken"]["success"], true, "{moved}");
    // And its access token passes every replica's gate (one issuer, one set of keys).
    let access = moved["data"]["refreshToken"]["token"].as_str().unwrap();
    for gate in &c.gates {
        let resp = client()
            .get(gate.url("/api/x"))
            .header("authorization", bearer(access))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test]
async fn mail_links_made_on_one_replica_work_on_another() {
    let Some(c) = Cluster::start(2, None).await else {
        return;
    };
    let reply = c.gates[0]
        .graphql_as(
            REGISTER,
            json!({"e": "link@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reply["data"]["register"]["success"], true, "{reply}");
    // The activation mailed by replica 0, opened on replica 1.
    let token = c
        .sink
        .wait_for("link@example.com", 1)
        .await
        .token("/activate/")
        .expect("an activation link");
    let page = client()
        .get(c.gates[1].url(&format!("/activate/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let me = c.gates[0]
        .graphql_as(
            "{ me { verified } }",
            json!({}),
            login(&c.gates[0], "link@example.com").await["token"].as_str(),
        )
        .await;
    assert_eq!(me["data"]["me"]["verified"], true, "{me}");
    // A reset asked of replica 1, done on replica 0.
    let ask = c.gates[1]
        .graphql_as(
            "mutation S($e: String!) { sendPasswordResetEmail(email: $e) { success errors } }",
            json!({"e": "link@example.com"}),
            None,
        )
        .await;
    assert_eq!(
        ask["data"]["sendPasswordResetEmail"]["success"], true,
        "{ask}"
    );
    let reset = c
        .sink
        .wait_for("link@example.com", 2)
        .await
        .token("/password/reset")
        .expect("a reset link");
    let done = c.gates[0]
        .graphql_as(
            "mutation P($t: String!, $p: String!) { passwordReset(token: $t, newPassword1: $p, newPassword2: $p) { success errors } }",
            json!({"t": reset, "p": "Another-Pass-77"}),
            None,
        )
        .await;
    assert_eq!(done["data"]["passwordReset"]["success"], true, "{done}");
}

#[tokio::test]
async fn an_api_key_revoked_on_one_replica_is_refused_by_all_within_2s() {
    let Some(c) = Cluster::start(3, None).await else {
        return;
    };
    let access = c.account("robot@example.com", 0).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let made = c.gates[0]
        .graphql_as(
            "mutation { createApiKey(name: \"ci\") { success errors key apiKey { id } } }",
            json!({}),
            Some(&access),
        )
        .await;
    let made = &made["data"]["createApiKey"];
    assert_eq!(made["success"], true, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let status = |gate: &Authgate| {
        let req = client()
            .get(gate.url("/api/jobs"))
            .header("x-api-key", &key);
        async move { req.send().await.unwrap().status() }
    };
    // Every replica resolves it (and caches it).
    for gate in &c.gates {
        assert_eq!(status(gate).await, 200);
        assert_eq!(status(gate).await, 200);
    }
    let revoked = c.gates[0]
        .graphql_as(
            "mutation V($id: ID!) { revokeApiKey(id: $id) { success errors } }",
            json!({"id": made["apiKey"]["id"]}),
            Some(&access),
        )
        .await;
    assert_eq!(
        revoked["data"]["revokeApiKey"]["success"], true,
        "{revoked}"
    );
    let start = Instant::now();
    for gate in &c.gates {
        eventually(
            Duration::from_secs(2),
            "the revoked key refused",
            || async { status(gate).await == 401 },
        )
        .await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_replica_killed_mid_storm_loses_no_acknowledged_account() {
    let Some(mut c) = Cluster::start(3, None).await else {
        return;
    };
    let victim = c.gates.remove(1);
    let victim_url = victim.base.clone();
    let bases: Vec<String> = vec![c.gates[0].base.clone(), victim_url, c.gates[1].base.clone()];
    // 3 workers per replica registering distinct addresses until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..9 {
        let base = bases[w % 3].clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("w{w}-{i}@example.com");
                let sent = client()
                    .post(format!("{base}/graphql"))
                    .json(&json!({"query": REGISTER, "variables": {"e": email, "p": PASSWORD}}))
                    .send()
                    .await;
                let Ok(resp) = sent else { continue };
                let Ok(reply) = resp.json::<Value>().await else {
                    continue;
                };
                if reply["data"]["register"]["success"] == true {
                    acknowledged.push(email.to_lowercase());
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = victim.kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    drop(dir);
    assert!(acknowledged.len() > 10, "a storm: {}", acknowledged.len());
    let stored: Vec<String> = sql(&c.url)
        .await
        .query("SELECT address FROM user_emails", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|email| !stored.contains(email))
        .collect();
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");
    for gate in &mut c.gates {
        gate.assert_healthy().await;
    }
}

#[tokio::test]
async fn database_down_proxy_goes_on_accounts_unavailable_then_recovery() {
    let Some(mut server) = PgServer::start() else {
        return;
    };
    let c = Cluster::start(2, Some(&server)).await.unwrap();
    let first = c.account("ada@example.com", 0).await;
    let access = first["token"].as_str().unwrap().to_string();
    let refresh_token = first["refreshToken"].as_str().unwrap().to_string();
    server.stop();

    for gate in &c.gates {
        // Valid JWTs still pass.
        let resp = client()
            .get(gate.url("/api/x"))
            .header("authorization", bearer(&access))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Account calls say so within 2 s, the refresh included.
        let start = Instant::now();
        assert_eq!(
            code(&login(gate, "ada@example.com").await),
            "service_unavailable"
        );
        let refreshed = gate
            .graphql_as(REFRESH, json!({"t": refresh_token}), None)
            .await;
        assert_eq!(
            code(&refreshed["data"]["refreshToken"]),
            "service_unavailable"
        );
        let me = gate
            .graphql_as("{ me { email } }", json!({}), Some(&access))
            .await;
        assert_eq!(me["data"]["me"], Value::Null, "{me}");
        assert_eq!(
            me["errors"][0]["extensions"]["code"], "service_unavailable",
            "{me}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
        let one = Instant::now();
        let reg = gate
            .graphql_as(
                REGISTER,
                json!({"e": "new@example.com", "p": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(code(&reg["data"]["register"]), "service_unavailable");
        assert!(
            one.elapsed() < Duration::from_secs(2),
            "{:?}",
            one.elapsed()
        );
        let ready = client()
            .get(format!("{}/readyz", gate.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "unavailable", "failing": ["database"]})
        );
    }

    server.restart();
    for gate in &c.gates {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let attempt = login(gate, "ada@example.com").await;
            if attempt["success"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "no recovery: {attempt}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ready = client()
            .get(format!("{}/readyz", gate.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    }
    // The session made before the outage goes on.
    let refreshed = c.gates[1]
        .graphql_as(REFRESH, json!({"t": refresh_token}), None)
        .await;
    assert_eq!(
        refreshed["data"]["refreshToken"]["success"], true,
        "the session survived: {refreshed}"
    );
}

#[tokio::test]
async fn two_replicas_starting_at_once_on_an_empty_database_both_start() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let url = server.database().await;
    let sink = SmtpSink::start().await;
    let keys = shared_keys();
    let (a, b) = tokio::join!(
        replica(&url, keys.path(), &sink).start_unready(None),
        replica(&url, keys.path(), &sink).start_unready(None)
    );
    let (mut a, mut b) = (a, b);
    a.wait_ready().await;
    b.wait_ready().await;
    // Both agree on the secrets they made at once: a link of one works on the other.
    let reply = a
        .graphql_as(
            REGISTER,
            json!({"e": "twin@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reply["data"]["register"]["success"], true, "{reply}");
    verify_by_mail(&b, &sink, "twin@example.com", 1).await;
    // Nothing of the accounts is written under the data directories.
    for gate in [&a, &b] {
        assert!(
            !gate.dir.path().join("data").exists(),
            "{:?}",
            gate.dir.path()
        );
    }
    assert_eq!(count(&url, "SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn an_unreachable_database_is_retried_then_start_fails_in_one_line_within_60s() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [storage]\ndata_dir = \"{data}\"\n\
             database_url = \"postgresql://authgate:not-to-be-shown@%2Fnonexistent-authgate-socket/db\"\n\
             [jwt]\nkeys_dir = \"{keys}\"\n",
            data = dir.path().join("data").display(),
            keys = dir.path().join("keys").display(),
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(70) {
            let _ = child.kill();
            panic!("still running after 70 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = start.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(took > Duration::from_secs(5), "retried first: {took:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("authgate: PostgreSQL at ") && last.contains("unreachable"),
        "{stderr}"
    );
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains("not-to-be-shown"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn with_redis_too_sessions_and_limits_live_there_not_in_the_database() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let Some(mut redis) = crate::common::redis::RedisServer::start() else {
        return;
    };
    let url = server.database().await;
    let sink = SmtpSink::start().await;
    let keys = shared_keys();
    let (a, b) = (
        replica(&url, keys.path(), &sink)
            .env("AUTHGATE_STORAGE__REDIS_URL", &redis.url())
            .start(None)
            .await,
        replica(&url, keys.path(), &sink)
            .env("AUTHGATE_STORAGE__REDIS_URL", &redis.url())
            .start(None)
            .await,
    );
    let reply = a
        .graphql_as(
            REGISTER,
            json!({"e": "ada@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reply["data"]["register"]["success"], true, "{reply}");
    let session = login(&a, "ada@example.com").await;
    assert_eq!(session["success"], true, "{session}");
    let moved = b
        .graphql_as(REFRESH, json!({"t": session["refreshToken"]}), None)
        .await;
    assert_eq!(moved["data"]["refreshToken"]["success"], true, "{moved}");
    assert_eq!(count(&url, "SELECT count(*) FROM users").await, 1);
    assert_eq!(count(&url, "SELECT count(*) FROM refresh_tokens").await, 0);
    assert_eq!(count(&url, "SELECT count(*) FROM rate_limits").await, 0);

    redis.stop();
    let ready = client()
        .get(format!("{}/readyz", b.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status": "unavailable", "failing": ["redis"]}));
}
