//! Immediate revocation (SPEC §13) through HTTP: every session-ending event refuses the
//! tokens issued before it at the gateway and at a verifier while newer ones pass, the
//! published list (deltas, no emails, restarts, ageing out), a verifier without its gateway
//! or given bad documents, and the PostgreSQL store shared by two replicas.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::postgres::PgServer;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use authgate::accounts::storage::{RefreshRecord, RefreshStore, RevocationStore};
use authgate::accounts::RevocationList;
use authgate::jwt::{Claims, Revocations};
use authgate::store::postgres::{PgOptions, PgStore};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";
const NEW_PASSWORD: &str = "Brand-New-Pass-42";
const LOGIN: &str = "mutation L($e: String!, $p: String!) {
  tokenAuth(email: $e, password: $p) { success errors token refreshToken } }";
const REFRESH: &str = "mutation R($t: String) {
  refreshToken(refreshToken: $t) { success errors token refreshToken } }";
const REVOKE: &str = "mutation V($t: String) { revokeToken(refreshToken: $t) { success errors } }";
const REVOKE_ALL: &str = "mutation { revokeAllTokens { success errors } }";
const VERIFY: &str = "mutation V($t: String!) { verifyToken(token: $t) { success errors } }";
const LIST: &str = "/.well-known/revocations.json";

struct Gateway {
    gate: Authgate,
    sink: SmtpSink,
    _backend: BackendServer,
}

fn gateway_builder(sink: &SmtpSink) -> Builder {
    Authgate::builder()
        .smtp(sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "1000/1h")
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
}

async fn gateway(backend: Backend, env: &[(&str, &str)], upstream: &Upstream) -> Option<Gateway> {
    let sink = SmtpSink::start().await;
    let (mut builder, backend) = backend.apply(gateway_builder(&sink)).await?;
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    Some(Gateway {
        gate: builder.start(Some(upstream)).await,
        sink,
        _backend: backend,
    })
}

/// A session: its access token and refresh token.
#[derive(Clone, Debug)]
struct Session {
    token: String,
    refresh: String,
}

impl Gateway {
    async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> Value {
        self.gate.graphql_as(query, vars, token).await
    }

    /// Registers and verifies `email`; returns its user id.
    async fn user(&self, email: &str) -> String {
        let reg = self
            .gql(
                "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors token } }",
                json!({"e": email, "p": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
        verify_by_mail(&self.gate, &self.sink, email, 1).await;
        claims_of(reg["data"]["register"]["token"].as_str().unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn login(&self, email: &str, password: &str) -> Session {
        let reply = self
            .gql(LOGIN, json!({"e": email, "p": password}), None)
            .await;
        let payload = &reply["data"]["tokenAuth"];
        assert_eq!(payload["success"], true, "{reply}");
        Session {
            token: payload["token"].as_str().unwrap().to_string(),
            refresh: payload["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    async fn mutate(&self, name: &str, query: &str, vars: Value, token: Option<&str>) -> Value {
        let reply = self.gql(query, vars, token).await;
        assert_eq!(reply["data"][name]["success"], true, "{name}: {reply}");
        reply["data"][name].clone()
    }
}

/// The claims of a token, unchecked.
fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn get(gate: &Authgate, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gate.url(path))
        .header("authorization", bearer(token))
        .send()
        .await
        .unwrap()
}

/// Whether `gate` refuses `token` as revoked, everywhere a token counts: the proxy (401 with
/// a "revoked" challenge), `me` (null) and `verifyToken` (`invalid_token`) on a gateway.
async fn refused(gate: &Authgate, token: &str, gateway: bool) -> bool {
    let resp = get(gate, "/api/x", token).await;
    if resp.status() != 401 {
        assert_eq!(
            resp.status(),
            200,
            "a valid or a revoked token, nothing else"
        );
        return false;
    }
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"authgate\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("revoked"), "{challenge}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    if gateway {
        let me = gate
            .graphql_as("{ me { id } }", Value::Null, Some(token))
            .await;
        assert_eq!(me["data"]["me"], Value::Null, "{me}");
        let verified = gate.graphql_as(VERIFY, json!({ "t": token }), None).await;
        let payload = &verified["data"]["verifyToken"];
        assert_eq!(payload["success"], false, "{verified}");
        assert_eq!(
            payload["errors"]["nonFieldErrors"][0]["code"], "invalid_token",
            "{verified}"
        );
    }
    true
}

async fn passes(gate: &Authgate, token: &str) -> bool {
    get(gate, "/api/x", token).await.status() == 200
}

/// Waits (at most `within`) until `gate` refuses `token` as revoked.
async fn refused_within(gate: &Authgate, token: &str, within: Duration, gateway: bool) {
    eventually(within, "the older token refused", || async {
        refused(gate, token, gateway).await
    })
    .await;
}

const EVENTS: [&str; 5] = [
    "revokeAllTokens",
    "passwordChange",
    "passwordReset",
    "archiveAccount",
    "deleteAccount",
];

/// Runs one session-ending event for `email` (holding `session`); returns the token it gave
/// back, or the next login's, when the account can still log in.
async fn end_sessions(g: &Gateway, event: &str, email: &str, session: &Session) -> Option<String> {
    let token = Some(session.token.as_str());
    let password = json!({ "p": PASSWORD });
    match event {
        "revokeAllTokens" => {
            g.mutate(event, REVOKE_ALL, json!({}), token).await;
        }
        "passwordChange" => {
            let done = g
                .mutate(
                    event,
                    "mutation C($o: String!, $n: String!) { passwordChange(oldPassword: $o, newPassword1: $n, newPassword2: $n) { success errors token } }",
                    json!({ "o": PASSWORD, "n": NEW_PASSWORD }),
                    token,
                )
                .await;
            return Some(done["token"].as_str().unwrap().to_string());
        }
        "passwordReset" => {
            g.mutate(
                "sendPasswordResetEmail",
                "mutation S($e: String!) { sendPasswordResetEmail(email: $e) { success errors } }",
                json!({ "e": email }),
                None,
            )
            .await;
            let link = g.sink.wait_for(email, 2).await;
            let reset = link.token("/password/reset?token=").unwrap();
            g.mutate(
                event,
                "mutation R($t: String!, $n: String!) { passwordReset(token: $t, newPassword1: $n, newPassword2: $n) { success errors } }",
                json!({ "t": reset, "n": NEW_PASSWORD }),
                None,
            )
            .await;
        }
        "archiveAccount" => {
            g.mutate(
                event,
                "mutation A($p: String!) { archiveAccount(password: $p) { success errors } }",
                password,
                token,
            )
            .await;
        }
        "deleteAccount" => {
            g.mutate(
                event,
                "mutation D($p: String!) { deleteAccount(password: $p) { success errors } }",
                password,
                token,
            )
            .await;
            return None;
        }
        other => panic!("no event {other}"),
    }
    let password = if event == "revokeAllTokens" || event == "archiveAccount" {
        PASSWORD
    } else {
        NEW_PASSWORD
    };
    Some(g.login(email, password).await.token)
}

suite!(
    session_ending_events_refuse_older_tokens_at_the_gateway,
    |backend| {
        let upstream = Upstream::start().await;
        let Some(g) = gateway(backend, &[], &upstream).await else {
            return;
        };
        let bystander = "bystander@example.com";
        g.user(bystander).await;
        let other = g.login(bystander, PASSWORD).await;
        for event in EVENTS {
            let email = format!("{}@example.com", event.to_lowercase());
            g.user(&email).await;
            let first = g.login(&email, PASSWORD).await;
            let second = g.login(&email, PASSWORD).await;
            assert!(passes(&g.gate, &first.token).await);
            assert!(passes(&g.gate, &second.token).await);

            let newer = end_sessions(&g, event, &email, &first).await;
            for older in [&first, &second] {
                refused_within(&g.gate, &older.token, Duration::from_secs(1), true).await;
            }
            if let Some(newer) = newer {
                assert!(
                    passes(&g.gate, &newer).await,
                    "{event}: a token issued after it"
                );
                let me = g.gql("{ me { id } }", Value::Null, Some(&newer)).await;
                assert!(me["data"]["me"]["id"].is_string(), "{event}: {me}");
            }
            // The refresh tokens died with the sessions.
            let refreshed = g.gql(REFRESH, json!({ "t": second.refresh }), None).await;
            assert_eq!(
                refreshed["data"]["refreshToken"]["success"], false,
                "{event}"
            );
            assert!(
                passes(&g.gate, &other.token).await,
                "{event}: another account"
            );
        }
        let text = g.gate.metrics_with(&["reason=\"revoked\""]).await;
        assert!(
            text.contains("authgate_auth_total{outcome=\"denied\",reason=\"revoked\"}"),
            "{text}"
        );
    }
);

suite!(revoke_token_and_reuse_end_one_session_only, |backend| {
    let upstream = Upstream::start().await;
    let Some(g) = gateway(backend, &[], &upstream).await else {
        return;
    };
    let email = "ada@example.com";
    g.user(email).await;
    let one = g.login(email, PASSWORD).await;
    let two = g.login(email, PASSWORD).await;
    assert_ne!(claims_of(&one.token)["sid"], claims_of(&two.token)["sid"]);

    g.mutate("revokeToken", REVOKE, json!({ "t": one.refresh }), None)
        .await;
    refused_within(&g.gate, &one.token, Duration::from_secs(1), true).await;
    assert!(
        passes(&g.gate, &two.token).await,
        "the other session goes on"
    );

    // Rotation keeps the session id; presenting a used refresh token again ends the session.
    let rotated = g
        .mutate("refreshToken", REFRESH, json!({ "t": two.refresh }), None)
        .await;
    let rotated_token = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(
        claims_of(&rotated_token)["sid"],
        claims_of(&two.token)["sid"]
    );
    assert!(passes(&g.gate, &rotated_token).await);
    let reused = g.gql(REFRESH, json!({ "t": two.refresh }), None).await;
    assert_eq!(reused["data"]["refreshToken"]["success"], false);
    for token in [&two.token, &rotated_token] {
        refused_within(&g.gate, token, Duration::from_secs(1), true).await;
    }
    let three = g.login(email, PASSWORD).await;
    assert!(passes(&g.gate, &three.token).await, "a new login");
});

#[tokio::test]
async fn the_list_is_published_without_emails_and_survives_a_restart() {
    let upstream = Upstream::start().await;
    // One issuer across the restart (the port changes).
    let issuer = "https://auth.example.com";
    let g = gateway(
        Backend::Sled,
        &[("AUTHGATE_JWT__ISSUER", issuer)],
        &upstream,
    )
    .await
    .unwrap();
    let email = "grace@example.com";
    let id = g.user(email).await;
    let session = g.login(email, PASSWORD).await;
    let sid = claims_of(&session.token)["sid"]
        .as_str()
        .unwrap()
        .to_string();

    let empty: Value = client()
        .get(g.gate.url(LIST))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["full"], true);
    assert_eq!(empty["not_before"], json!({}));
    g.mutate(
        "revokeAllTokens",
        REVOKE_ALL,
        json!({}),
        Some(&session.token),
    )
    .await;

    let resp = client()
        .get(g.gate.url(LIST))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = resp.text().await.unwrap();
    assert!(!text.contains(email) && !text.contains("grace"), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["full"], true);
    let not_before = list["not_before"][&id].as_i64().unwrap();
    assert!(not_before >= claims_of(&session.token)["iat"].as_i64().unwrap());
    let sid_until = list["sids"][&sid].as_i64().unwrap();
    assert!(
        sid_until >= not_before + 900,
        "exp of its last token + leeway at least"
    );
    assert!(sid_until <= not_before + 900 + 30 + 1);
    let cursor = list["cursor"].as_str().unwrap().to_string();

    // Deltas: nothing new, then only the new session.
    let since = |cursor: &str| g.gate.url(&format!("{LIST}?since={cursor}"));
    let same: Value = client()
        .get(since(&cursor))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(same["full"], false);
    assert_eq!(same["not_before"], json!({}));
    assert_eq!(same["sids"], json!({}));
    let next = g.login(email, PASSWORD).await;
    g.mutate("revokeToken", REVOKE, json!({ "t": next.refresh }), None)
        .await;
    let delta: Value = client()
        .get(since(&cursor))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delta["full"], false);
    let next_sid = claims_of(&next.token)["sid"].as_str().unwrap().to_string();
    assert_eq!(
        delta["sids"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        [&next_sid]
    );
    let stale: Value = client()
        .get(since("nonsense"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stale["full"], true);
    let after = g.login(email, PASSWORD).await;

    // A restart on the same directory refuses what was refused before it.
    let Gateway {
        gate,
        sink,
        _backend,
    } = g;
    let dir = gate.kill();
    let restarted = gateway_builder(&sink)
        .env("AUTHGATE_JWT__ISSUER", issuer)
        .dir(dir)
        .start(Some(&upstream))
        .await;
    assert!(refused(&restarted, &session.token, true).await);
    assert!(refused(&restarted, &next.token, true).await);
    assert!(passes(&restarted, &after.token).await);
    let again: Value = client()
        .get(restarted.url(&format!("{LIST}?since={cursor}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["full"], true,
        "a cursor from before the restart: the whole list"
    );
    assert_eq!(again["not_before"][&id], not_before);
    assert!(again["sids"].get(&sid).is_some() && again["sids"].get(&next_sid).is_some());
}

#[tokio::test]
async fn entries_age_out_after_one_token_lifetime() {
    let upstream = Upstream::start().await;
    let env = [
        ("AUTHGATE_JWT__ACCESS_TTL", "2s"),
        ("AUTHGATE_JWT__LEEWAY", "1s"),
    ];
    let g = gateway(Backend::Sled, &env, &upstream).await.unwrap();
    let email = "short@example.com";
    g.user(email).await;
    let session = g.login(email, PASSWORD).await;
    g.mutate(
        "revokeAllTokens",
        REVOKE_ALL,
        json!({}),
        Some(&session.token),
    )
    .await;
    let list: Value = client()
        .get(g.gate.url(LIST))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["not_before"].as_object().unwrap().len(), 1, "{list}");
    let not_before = list["not_before"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_i64()
        .unwrap();
    // Its not_before, and the sessions of the registration and of the login.
    assert_eq!(list["sids"].as_object().unwrap().len(), 2, "{list}");
    let text = g
        .gate
        .metrics_with(&["authgate_revocation_entries 3"])
        .await;
    assert!(text.contains("authgate_revocation_entries 3"), "{text}");
    sleep_past(not_before + 3).await;
    let gate = &g.gate;
    eventually(Duration::from_secs(3), "the list empties", || async move {
        let list: Value = client()
            .get(gate.url(LIST))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["not_before"] == json!({}) && list["sids"] == json!({})
    })
    .await;
    let text = g
        .gate
        .metrics_with(&["authgate_revocation_entries 0"])
        .await;
    assert!(text.contains("authgate_revocation_entries 0"), "{text}");
}

/// The sum of every sample of `name` whose line also contains `labels`.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn failed_polls(v: &Authgate) -> f64 {
    metric(
        &v.metrics().await,
        "authgate_revocation_polls_total",
        "outcome=\"failed\"",
    )
}

fn verifier_of(gate: &Authgate) -> Builder {
    Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .verifier(&gate.url("/.well-known/jwks.json"), &gate.base)
}

#[tokio::test]
async fn verifiers_refuse_within_two_seconds_and_keep_the_list_without_the_gateway() {
    let upstream = Upstream::start().await;
    let g = gateway(Backend::Sled, &[], &upstream).await.unwrap();
    let mut v = verifier_of(&g.gate).start(Some(&upstream)).await;
    g.user("ada@example.com").await;
    g.user("bob@example.com").await;
    let one = g.login("ada@example.com", PASSWORD).await;
    let two = g.login("ada@example.com", PASSWORD).await;
    let bob = g.login("bob@example.com", PASSWORD).await;
    for token in [&one.token, &two.token, &bob.token] {
        assert!(passes(&v, token).await);
    }

    g.mutate("revokeToken", REVOKE, json!({ "t": one.refresh }), None)
        .await;
    refused_within(&v, &one.token, Duration::from_secs(2), false).await;
    assert!(passes(&v, &two.token).await, "the other session goes on");

    g.mutate("revokeAllTokens", REVOKE_ALL, json!({}), Some(&bob.token))
        .await;
    refused_within(&v, &bob.token, Duration::from_secs(2), false).await;
    let bob_again = g.login("bob@example.com", PASSWORD).await;
    assert!(
        passes(&v, &bob_again.token).await,
        "a token issued after it, at once"
    );

    // Every session-ending event reaches the verifier.
    for event in EVENTS {
        let email = format!("v-{}@example.com", event.to_lowercase());
        g.user(&email).await;
        let session = g.login(&email, PASSWORD).await;
        let newer = end_sessions(&g, event, &email, &session).await;
        refused_within(&v, &session.token, Duration::from_secs(2), false).await;
        if let Some(newer) = newer {
            assert!(passes(&v, &newer).await, "{event}: a token issued after it");
        }
    }
    let text = v.metrics().await;
    assert!(
        metric(
            &text,
            "authgate_revocation_polls_total",
            "outcome=\"changed\""
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "authgate_auth_total", "reason=\"revoked\"") >= 1.0,
        "{text}"
    );

    // Nothing changes any more: a poll costs an empty delta.
    let vr = &v;
    eventually(
        Duration::from_secs(5),
        "an unchanged poll",
        move || async move {
            let text = vr.metrics().await;
            metric(
                &text,
                "authgate_revocation_polls_total",
                "outcome=\"unchanged\"",
            ) >= 1.0
        },
    )
    .await;

    // The gateway goes away: what the verifier knew holds, the rest passes, no 5xx.
    let Gateway { gate, .. } = g;
    drop(gate.kill());
    let vr = &v;
    eventually(
        Duration::from_secs(10),
        "failed polls counted",
        move || async move { failed_polls(vr).await >= 2.0 },
    )
    .await;
    assert!(refused(&v, &one.token, false).await);
    assert!(refused(&v, &bob.token, false).await);
    assert!(passes(&v, &two.token).await);
    assert!(passes(&v, &bob_again.token).await);
    let ready = client()
        .get(format!("{}/readyz", v.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(v.log().contains("fetching the revocation list failed"));
    v.assert_healthy().await;
}

/// A revocation list that answers whatever the test says: the bad documents a real gateway
/// cannot be made to serve.
async fn scripted_list(script: Arc<Mutex<(u16, Vec<u8>)>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                        let (status, body) = script.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}{LIST}")
}

#[tokio::test]
async fn a_verifier_is_ready_after_its_first_list_and_bad_documents_change_nothing() {
    let upstream = Upstream::start().await;
    let g = gateway(Backend::Sled, &[], &upstream).await.unwrap();
    g.user("ada@example.com").await;
    g.user("bob@example.com").await;
    let ada = g.login("ada@example.com", PASSWORD).await;
    let bob = g.login("bob@example.com", PASSWORD).await;
    g.mutate("revokeAllTokens", REVOKE_ALL, json!({}), Some(&ada.token))
        .await;
    let real = client()
        .get(g.gate.url(LIST))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let script = Arc::new(Mutex::new((503, b"{}".to_vec())));
    let url = scripted_list(script.clone()).await;
    let mut v = verifier_of(&g.gate)
        .env("AUTHGATE_JWT__REVOCATIONS_URL", &url)
        .start_unready(Some(&upstream))
        .await;
    let readyz = format!("{}/readyz", v.admin);
    let failing: Value = loop {
        if let Ok(resp) = client().get(&readyz).send().await {
            let body: Value = resp.json().await.unwrap();
            if body["failing"] == json!(["revocations"]) {
                break body;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failing["status"], "unavailable");

    *script.lock().unwrap() = (200, real.to_vec());
    v.wait_ready().await;
    assert!(refused(&v, &ada.token, false).await);
    assert!(passes(&v, &bob.token).await);

    let huge = format!(
        "{{\"not_before\": {{}}, \"sids\": {{}}, \"cursor\": \"c\", \"full\": true, \"pad\": \"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    let bad: [&[u8]; 7] = [
        b"<html>not json</html>",
        br#"{"not_before": {}, "sids": {}, "cursor": "c", "full": tr"#,
        br#"{"not_before": {}, "sids": {}, "full": true}"#,
        br#"{"not_before": {"u": "soon"}, "sids": {}, "cursor": "c", "full": true}"#,
        br#"{"not_before": {}, "sids": {"s": -5}, "cursor": "c", "full": true}"#,
        br#"{"not_before": {}, "sids": {"a\nb": 5}, "cursor": "c", "full": true}"#,
        huge.as_bytes(),
    ];
    for body in bad {
        let before = failed_polls(&v).await;
        *script.lock().unwrap() = (200, body.to_vec());
        let vr = &v;
        eventually(
            Duration::from_secs(5),
            "a failed poll",
            move || async move { failed_polls(vr).await > before },
        )
        .await;
        assert!(
            refused(&v, &ada.token, false).await,
            "{}",
            String::from_utf8_lossy(&body[..40.min(body.len())])
        );
        assert!(passes(&v, &bob.token).await);
        let ready = client().get(&readyz).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
    v.assert_healthy().await;
}

fn claims(sub: &str, sid: &str, iat: i64) -> Claims {
    Claims {
        iss: "i".into(),
        aud: None,
        sub: sub.into(),
        iat,
        nbf: iat,
        exp: iat + 900,
        jti: "j".into(),
        email: "e@example.com".into(),
        username: None,
        verified: true,
        staff: false,
        roles: vec![],
        sid: Some(sid.into()),
        amr: vec![],
        extra: Default::default(),
    }
}

fn now() -> i64 {
    authgate::jwt::unix_now()
}

#[tokio::test]
async fn postgres_replicas_see_each_others_revocations() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let url = server.database().await;
    let connect = || async {
        Arc::new(
            PgStore::connect(&url, PgOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    let (a, b) = (connect().await, connect().await);
    let list_a = RevocationList::new(a.clone(), Arc::new(Revocations::new(930)));
    let list_b = RevocationList::new(b.clone(), Arc::new(Revocations::new(930)));
    list_a.load(now()).await.unwrap();
    list_b.load(now()).await.unwrap();

    // Logging out everywhere on replica A lists the live sessions that revoke_user returns.
    let t = now();
    a.insert(
        "h1",
        &RefreshRecord {
            user_id: "u1".into(),
            family: "f1".into(),
            expires_at: t + 60,
            amr: vec![],
        },
    )
    .await
    .unwrap();
    a.insert(
        "h2",
        &RefreshRecord {
            user_id: "u1".into(),
            family: "f2".into(),
            expires_at: t + 60,
            amr: vec![],
        },
    )
    .await
    .unwrap();
    let mut sids = a.revoke_user("u1").await.unwrap();
    sids.sort();
    assert_eq!(sids, ["f1", "f2"]);
    assert!(
        a.revoke_user("u1").await.unwrap().is_empty(),
        "none live any more"
    );
    list_a.end_account("u1", &sids, t).await.unwrap();
    list_a.end_sessions(&["f9".to_string()], t).await.unwrap();
    assert!(
        list_a.live().refuses(&claims("u1", "other", t - 1), t),
        "at once on A"
    );

    // Replica B sees it on its next sync (every second when serving).
    let older = claims("u1", "other", t - 1);
    let same_second = claims("u1", "f1", t);
    assert!(!list_b.live().refuses(&older, t));
    list_b.sync(t).await.unwrap();
    assert!(list_b.live().refuses(&older, t));
    assert!(
        list_b.live().refuses(&same_second, t),
        "its session is listed"
    );
    assert!(list_b.live().refuses(&claims("u2", "f9", t), t));
    assert!(
        !list_b.live().refuses(&claims("u1", "new", t), t),
        "issued after"
    );
    assert!(!list_b.live().refuses(&claims("u2", "f3", t - 100), t));
    assert_eq!(list_b.live().len(), 4);

    // A later event on B reaches A; an unchanged store syncs to nothing new.
    list_b.end_account("u2", &[], t + 5).await.unwrap();
    list_a.sync(t + 5).await.unwrap();
    assert!(list_a.live().refuses(&claims("u2", "x", t + 4), t + 5));
    list_a.sync(t + 5).await.unwrap();
    assert_eq!(list_a.live().len(), 5);

    // A restarted replica loads the list; old entries are swept from the store.
    let c = connect().await;
    let list_c = RevocationList::new(c.clone(), Arc::new(Revocations::new(930)));
    assert_eq!(list_c.load(t).await.unwrap(), 5);
    c.expire(t + 932).await.unwrap();
    let (left, _) = c.changes(None).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "only u2's not_before is still in its time: {left:?}"
    );
    assert!(c.shared());
}

/// The dialects end sessions through the same account services: a django client's
/// `revokeToken` and `revokeAllTokens` refuse its tokens at the gate at once.
#[tokio::test]
async fn dialect_logouts_refuse_tokens_at_the_gate() {
    use crate::common::dialect::{self, Call};
    let s = dialect::setup(&[]).await;
    let reg = s
        .gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors } }",
            json!({"e": "luke@example.com", "p": dialect::PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
    let login = || async {
        let answer = Call::new(&s.gate, "/django/graphql")
            .send(
                "mutation L($e: String, $p: String!) { tokenAuth(email: $e, password: $p) { success errors token refreshToken } }",
                json!({"e": "luke@example.com", "p": dialect::PASSWORD}),
            )
            .await;
        let auth = answer.body["data"]["tokenAuth"].clone();
        assert_eq!(auth["success"], true, "{}", answer.text);
        (
            format!("JWT {}", auth["token"].as_str().unwrap()),
            auth["refreshToken"].as_str().unwrap().to_string(),
        )
    };
    let (one, one_refresh) = login().await;
    let (two, _) = login().await;
    assert_eq!(dialect::through_gate(&s.gate, &one).await.0, 200);

    let revoke = Call::new(&s.gate, "/django/graphql")
        .send(
            "mutation R($t: String) { revokeToken(refreshToken: $t) { success errors } }",
            json!({"t": one_refresh}),
        )
        .await;
    assert_eq!(
        revoke.body["data"]["revokeToken"]["success"], true,
        "{}",
        revoke.text
    );
    let (status, body) = dialect::through_gate(&s.gate, &one).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    assert_eq!(dialect::through_gate(&s.gate, &two).await.0, 200);

    let all = Call::new(&s.gate, "/django/graphql")
        .auth(two.clone())
        .send("mutation { revokeAllTokens { success errors } }", json!({}))
        .await;
    assert_eq!(
        all.body["data"]["revokeAllTokens"]["success"], true,
        "{}",
        all.text
    );
    assert_eq!(dialect::through_gate(&s.gate, &two).await.0, 401);
    let (three, _) = login().await;
    assert_eq!(dialect::through_gate(&s.gate, &three).await.0, 200);
}
