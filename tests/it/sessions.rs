//! Sessions and rate limits against the running binary. The same suite runs against every
//! session backend: the embedded store, a real `redis-server` on a unix socket, and a real
//! PostgreSQL holding everything.

use std::time::{Duration, Instant};

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";
const LOGIN: &str = "mutation L($email: String!, $password: String!) {
  tokenAuth(email: $email, password: $password) {
    success errors token refreshToken tokenExpiresAt refreshExpiresAt } }";
const REFRESH: &str = "mutation R($t: String) {
  refreshToken(refreshToken: $t) {
    success errors token refreshToken tokenExpiresAt refreshExpiresAt payload } }";
const REVOKE: &str = "mutation V($t: String) { revokeToken(refreshToken: $t) { success errors } }";
const REVOKE_ALL: &str = "mutation { revokeAllTokens { success errors } }";

struct Setup {
    gate: Authgate,
    sink: SmtpSink,
    backend: BackendServer,
}

/// A gateway on the chosen backend with one verified user `ada@example.com`; `None` when the
/// backend's leg is skipped.
async fn setup(backend: Backend, env: &[(&str, &str)]) -> Option<Setup> {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let builder = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n");
    let (mut builder, backend) = backend.apply(builder).await?;
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let gate = builder.start(Some(&upstream)).await;
    // The upstream's task keeps serving after this handle goes: it lives with the runtime.
    let reg = gate
        .graphql_as(
            "mutation { register(email: \"ada@example.com\", password1: \"vX9!kq2#Lm-7\", password2: \"vX9!kq2#Lm-7\") { success errors } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
    verify_by_mail(&gate, &sink, "ada@example.com", 1).await;
    Some(Setup {
        gate,
        sink,
        backend,
    })
}

async fn login(gate: &Authgate) -> Value {
    let reply = gate
        .graphql_as(
            LOGIN,
            json!({"email": "ada@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    reply["data"]["tokenAuth"].clone()
}

async fn refresh(gate: &Authgate, token: &str) -> Value {
    gate.graphql_as(REFRESH, json!({"t": token}), None).await["data"]["refreshToken"].clone()
}

fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

suite!(rotation_and_reuse_detection, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let first = login(&s.gate).await;
    assert_eq!(first["success"], true, "{first}");
    let r1 = first["refreshToken"].as_str().unwrap().to_string();
    assert!(r1.len() >= 43, "256 bits: {r1}");
    let now = authgate::jwt::unix_now();
    let refresh_exp = first["refreshExpiresAt"].as_i64().unwrap();
    assert!((now + 7 * 86400 - 10..=now + 7 * 86400 + 10).contains(&refresh_exp));

    let second = refresh(&s.gate, &r1).await;
    assert_eq!(second["success"], true, "{second}");
    let r2 = second["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(second["payload"]["email"], "ada@example.com");
    assert_eq!(second["payload"]["verified"], true);
    let access = second["token"].as_str().unwrap();
    let resp = client()
        .get(s.gate.url("/api/x"))
        .header("authorization", bearer(access))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // r1 again: theft. The whole family dies, r2 included.
    let reuse = refresh(&s.gate, &r1).await;
    assert_eq!(code(&reuse), "invalid_token");
    let after = refresh(&s.gate, &r2).await;
    assert_eq!(
        code(&after),
        "invalid_token",
        "the family is revoked: {after}"
    );
    for junk in ["", "x", &"a".repeat(300)] {
        assert_eq!(
            code(&refresh(&s.gate, junk).await),
            "invalid_token",
            "{junk:?}"
        );
    }
});

suite!(parallel_refresh_yields_one_pair, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let r1 = login(&s.gate).await["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let attempts = (0..8).map(|_| refresh(&s.gate, &r1));
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r["success"] == true).count();
    assert_eq!(wins, 1, "{results:?}");
});

fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("authgate_refresh="))
        .expect("a refresh cookie")
}

async fn post_with_cookie(gate: &Authgate, query: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(gate.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(cookie) = cookie {
        req = req.header("cookie", format!("theme=dark; authgate_refresh={cookie}"));
    }
    req.send().await.unwrap()
}

suite!(cookie_attributes_and_cookie_only_refresh, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let resp = post_with_cookie(
        &s.gate,
        "mutation { tokenAuth(email: \"ada@example.com\", password: \"vX9!kq2#Lm-7\") { success refreshToken } }",
        None,
    )
    .await;
    let cookie = set_cookie(&resp);
    let body: Value = resp.json().await.unwrap();
    let r1 = body["data"]["tokenAuth"]["refreshToken"].as_str().unwrap();
    assert!(
        cookie.starts_with(&format!("authgate_refresh={r1};")),
        "{cookie}"
    );
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/graphql",
        "Max-Age=604",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "public_url is plain http: {cookie}"
    );

    // No argument: the cookie is used, and replaced.
    let resp = post_with_cookie(
        &s.gate,
        "mutation { refreshToken { success errors refreshToken } }",
        Some(r1),
    )
    .await;
    let renewed = set_cookie(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["refreshToken"]["success"], true, "{body}");
    let r2 = body["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(renewed.starts_with(&format!("authgate_refresh={r2};")));

    // Revoking by cookie clears it.
    let resp = post_with_cookie(
        &s.gate,
        "mutation { revokeToken { success errors } }",
        Some(&r2),
    )
    .await;
    let cleared = set_cookie(&resp);
    assert!(
        cleared.starts_with("authgate_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["revokeToken"]["success"], true, "{body}");
    let resp = post_with_cookie(
        &s.gate,
        "mutation { refreshToken { success errors } }",
        Some(&r2),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body["data"]["refreshToken"]), "invalid_token");
    // No cookie, no argument.
    let resp = post_with_cookie(
        &s.gate,
        "mutation { refreshToken { success errors } }",
        None,
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body["data"]["refreshToken"]), "invalid_token");
});

suite!(revoke_one_and_all, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let a = login(&s.gate).await;
    let b = login(&s.gate).await;
    let (ra, rb) = (
        a["refreshToken"].as_str().unwrap(),
        b["refreshToken"].as_str().unwrap(),
    );
    let revoked = s.gate.graphql_as(REVOKE, json!({"t": ra}), None).await;
    assert_eq!(revoked["data"]["revokeToken"]["success"], true);
    assert_eq!(code(&refresh(&s.gate, ra).await), "invalid_token");
    let again = s.gate.graphql_as(REVOKE, json!({"t": ra}), None).await;
    assert_eq!(code(&again["data"]["revokeToken"]), "invalid_token");
    let b2 = refresh(&s.gate, rb).await;
    assert_eq!(b2["success"], true, "other sessions live on");

    let anonymous = s.gate.graphql_as(REVOKE_ALL, json!({}), None).await;
    assert_eq!(
        code(&anonymous["data"]["revokeAllTokens"]),
        "unauthenticated"
    );
    let access = b2["token"].as_str().unwrap();
    let all = s.gate.graphql_as(REVOKE_ALL, json!({}), Some(access)).await;
    assert_eq!(all["data"]["revokeAllTokens"]["success"], true, "{all}");
    let rb2 = b2["refreshToken"].as_str().unwrap();
    assert_eq!(code(&refresh(&s.gate, rb2).await), "invalid_token");
});

suite!(password_change_revokes_other_sessions, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let a = login(&s.gate).await;
    let b = login(&s.gate).await;
    let change = "mutation C($old: String!, $n1: String!, $n2: String!) {
      passwordChange(oldPassword: $old, newPassword1: $n1, newPassword2: $n2) {
        success errors token refreshToken } }";
    let access = a["token"].as_str().unwrap();
    let wrong = s
        .gate
        .graphql_as(
            change,
            json!({"old": "nope-nope-9", "n1": "Fresh-Pass-42", "n2": "Fresh-Pass-42"}),
            Some(access),
        )
        .await;
    assert_eq!(code(&wrong["data"]["passwordChange"]), "invalid_password");
    let anonymous = s
        .gate
        .graphql_as(
            change,
            json!({"old": PASSWORD, "n1": "Fresh-Pass-42", "n2": "Fresh-Pass-42"}),
            None,
        )
        .await;
    assert_eq!(
        code(&anonymous["data"]["passwordChange"]),
        "unauthenticated"
    );
    let weak = s
        .gate
        .graphql_as(
            change,
            json!({"old": PASSWORD, "n1": "password", "n2": "password"}),
            Some(access),
        )
        .await;
    assert_eq!(code(&weak["data"]["passwordChange"]), "password_too_common");

    let done = s
        .gate
        .graphql_as(
            change,
            json!({"old": PASSWORD, "n1": "Fresh-Pass-42", "n2": "Fresh-Pass-42"}),
            Some(access),
        )
        .await;
    let done = &done["data"]["passwordChange"];
    assert_eq!(done["success"], true, "{done}");
    for old in [&a, &b] {
        let r = old["refreshToken"].as_str().unwrap();
        assert_eq!(code(&refresh(&s.gate, r).await), "invalid_token");
    }
    let fresh = refresh(&s.gate, done["refreshToken"].as_str().unwrap()).await;
    assert_eq!(fresh["success"], true, "{fresh}");
    let old_login = login(&s.gate).await;
    assert_eq!(code(&old_login), "invalid_credentials");
    let new_login = s
        .gate
        .graphql_as(
            LOGIN,
            json!({"email": "ada@example.com", "password": "Fresh-Pass-42"}),
            None,
        )
        .await;
    assert_eq!(new_login["data"]["tokenAuth"]["success"], true);
});

suite!(refresh_tokens_expire, |backend| {
    let Some(s) = setup(backend, &[("AUTHGATE_JWT__REFRESH_TTL", "1s")]).await else {
        return;
    };
    let pair = login(&s.gate).await;
    let r = pair["refreshToken"].as_str().unwrap().to_string();
    sleep_past(pair["refreshExpiresAt"].as_i64().unwrap()).await;
    assert_eq!(code(&refresh(&s.gate, &r).await), "invalid_token");
});

suite!(verify_token_answers_with_claims, |backend| {
    let Some(s) = setup(backend, &[]).await else {
        return;
    };
    let access = login(&s.gate).await["token"].as_str().unwrap().to_string();
    let q = "mutation V($t: String!) { verifyToken(token: $t) { success errors payload } }";
    let ok = s.gate.graphql_as(q, json!({"t": access}), None).await;
    let ok = &ok["data"]["verifyToken"];
    assert_eq!(ok["success"], true);
    assert_eq!(ok["payload"]["email"], "ada@example.com");
    assert_eq!(ok["payload"]["iss"], s.gate.base);
    let tokens = s.gate.tokens();
    let mut expired = claims(&tokens);
    expired.exp = expired.iat - 3600;
    let bad = s
        .gate
        .graphql_as(q, json!({"t": tokens.sign(&expired).unwrap()}), None)
        .await;
    assert_eq!(code(&bad["data"]["verifyToken"]), "expired_token");
    let bad = s.gate.graphql_as(q, json!({"t": "x.y.z"}), None).await;
    assert_eq!(code(&bad["data"]["verifyToken"]), "invalid_token");
});

/// Waits until just after a window boundary of `period` seconds, so a burst fits one window.
async fn align_to_window(period: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.as_millis() as i64 % (period * 1000);
    tokio::time::sleep(Duration::from_millis((period * 1000 - into + 100) as u64)).await;
}

suite!(rate_limits_hit_and_reset, |backend| {
    let Some(s) = setup(backend, &[("AUTHGATE_RATE_LIMIT__LOGIN", "3/4s")]).await else {
        return;
    };
    align_to_window(4).await;
    for _ in 0..3 {
        assert_eq!(login(&s.gate).await["success"], true);
    }
    let limited = login(&s.gate).await;
    assert_eq!(code(&limited), "rate_limited", "{limited}");
    let message = limited["errors"]["nonFieldErrors"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("seconds"), "{message}");
    // Per IP too: another account from the same client is limited in this window.
    let other = s
        .gate
        .graphql_as(
            LOGIN,
            json!({"email": "someone@example.com", "password": "x"}),
            None,
        )
        .await;
    assert_eq!(code(&other["data"]["tokenAuth"]), "rate_limited");
    align_to_window(4).await;
    assert_eq!(login(&s.gate).await["success"], true, "a new window");
    let _ = &s.sink;
});

#[tokio::test]
async fn redis_down_and_back() {
    let Some(mut s) = setup(Backend::Redis, &[]).await else {
        return;
    };
    let access = login(&s.gate).await["token"].as_str().unwrap().to_string();
    let r = login(&s.gate).await["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let redis = s.backend.redis().expect("redis leg");
    redis.stop();

    // Proxying valid JWTs needs no Redis.
    let resp = client()
        .get(s.gate.url("/api/x"))
        .header("authorization", bearer(&access))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Account calls say so, quickly.
    let start = Instant::now();
    assert_eq!(code(&login(&s.gate).await), "service_unavailable");
    assert_eq!(code(&refresh(&s.gate, &r).await), "service_unavailable");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    let ready = client()
        .get(format!("{}/readyz", s.gate.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"status": "unavailable", "failing": ["redis"]}));

    // Back by itself (an empty Redis: old sessions are gone, new ones work).
    s.backend.redis().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = login(&s.gate).await;
        if attempt["success"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {attempt}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = client()
        .get(format!("{}/readyz", s.gate.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
