//! Browsers on other origins (SPEC §5) on one server with every dialect: preflights from a
//! listed and an unlisted origin on /graphql, every dialect's paths and the account pages;
//! the credentials header and `Vary: Origin` on actual answers; `*` on the public documents;
//! `skip_auth_preflight`. Also, on a server with low limits: rate limits and the
//! enumeration rule hold in every dialect, and dialect config is refused with exit 2.

use crate::common::dialect::*;
use crate::common::*;
use serde_json::json;

async fn preflight(gate: &Authgate, path: &str, origin: &str) -> Answer {
    let resp = client()
        .request(reqwest::Method::OPTIONS, gate.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    read(resp).await
}

#[tokio::test]
async fn preflights_grants_and_public_documents() {
    let s = setup(&[]).await;
    let gate = &s.gate;
    for path in [
        "/graphql",
        "/django/graphql",
        "/relay/graphql",
        "/krypton",
        "/password/reset",
        "/django/password-reset/some-token",
        "/krypton/form/reset/password",
    ] {
        let listed = preflight(gate, path, APP_ORIGIN).await;
        assert_eq!(listed.status, 204, "{path}: {}", listed.text);
        assert_eq!(
            listed.header("access-control-allow-origin"),
            Some(APP_ORIGIN)
        );
        assert_eq!(
            listed.header("access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            listed.header("access-control-allow-methods"),
            Some("GET, POST")
        );
        let allowed = listed.header("access-control-allow-headers").unwrap();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
        assert!(listed.header("access-control-max-age").is_some());
        assert_eq!(listed.header("vary"), Some("Origin"));
        let unlisted = preflight(gate, path, "https://evil.example.com").await;
        assert_eq!(unlisted.status, 403, "{path}");
        assert_eq!(unlisted.body["error"], "origin_not_allowed");
        assert_eq!(unlisted.header("access-control-allow-origin"), None);
    }
    assert!(preflight(gate, "/django/graphql", APP_ORIGIN)
        .await
        .header("access-control-allow-headers")
        .unwrap()
        .contains("x-csrftoken"));

    // Actual answers: the grant for the listed origin only, Vary always.
    for (origin, granted) in [(APP_ORIGIN, true), ("https://evil.example.com", false)] {
        let resp = client()
            .post(gate.url("/krypton"))
            .header("origin", origin)
            .json(&json!({"query": "{ publicKey }"}))
            .send()
            .await
            .unwrap();
        let answer = read(resp).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            granted.then_some(APP_ORIGIN)
        );
        assert_eq!(
            answer.header("access-control-allow-credentials"),
            granted.then_some("true")
        );
        assert_eq!(answer.header("vary"), Some("Origin"));
    }
    // A cross-site form post cannot run a mutation, on any GraphQL path.
    for path in ["/graphql", "/django/graphql", "/relay/graphql", "/krypton"] {
        let resp = client()
            .post(gate.url(path))
            .header("origin", APP_ORIGIN)
            .header("content-type", "text/plain")
            .body(r#"{"query":"mutation { revokeAllTokens { success } }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{path}");
    }
    // Public documents: any origin, no credentials.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/krypton/.well-known/jwks.json",
    ] {
        let resp = client()
            .get(gate.url(path))
            .header("origin", "https://anyone.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert!(resp
            .headers()
            .get("access-control-allow-credentials")
            .is_none());
        let pre = preflight(gate, path, "https://anyone.example.com").await;
        assert_eq!(pre.status, 204);
        assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    }

    // skip_auth_preflight: only the preflight passes without a token, stripped of X-Auth-*.
    let resp = client()
        .request(reqwest::Method::OPTIONS, gate.url("/preflight/items"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "DELETE")
        .header("x-auth-user-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let upstream: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(upstream["method"], "OPTIONS");
    assert!(seen(&upstream, "x-auth-user-id").is_empty());
    for request in [
        client().get(gate.url("/preflight/items")),
        client()
            .request(reqwest::Method::OPTIONS, gate.url("/preflight/items"))
            .header("origin", APP_ORIGIN),
        client()
            .request(reqwest::Method::OPTIONS, gate.url("/api/items"))
            .header("origin", APP_ORIGIN)
            .header("access-control-request-method", "DELETE"),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn rate_limits_and_enumeration_hold_in_every_dialect() {
    let s = setup(&[("AUTHGATE_RATE_LIMIT__LOGIN", "4/1m")]).await;
    let gate = &s.gate;
    let reg = Call::new(gate, "/django/graphql")
        .send(
            "mutation { register(email: \"wedge@example.com\", password1: \"vX9!kq2#Lm-7\", password2: \"vX9!kq2#Lm-7\") { success } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reg.body["data"]["register"]["success"], true,
        "{}",
        reg.text
    );
    let django = "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success errors } }";
    let krypton =
        "mutation L($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    // Four attempts on one account across three schemas; the fifth is refused everywhere.
    for (path, query, email) in [
        ("/django/graphql", django, "wedge@example.com"),
        ("/relay/graphql", "mutation L($e: String!, $p: String!) { tokenAuth(input: {email: $e, password: $p}) { success errors } }", "wedge@example.com"),
        ("/krypton", krypton, "wedge@example.com"),
        ("/graphql", django, "wedge@example.com"),
    ] {
        let answer = Call::new(gate, path)
            .send(query, json!({"e": email, "p": "Wrong-Pass-123"}))
            .await;
        assert!(!answer.text.contains("rate_limited"), "{path}: {}", answer.text);
    }
    let limited = Call::new(gate, "/django/graphql")
        .send(django, json!({"e": "wedge@example.com", "p": PASSWORD}))
        .await;
    assert_eq!(
        django_error(&limited.body["data"]["tokenAuth"]).1,
        "rate_limited"
    );
    let limited = Call::new(gate, "/krypton")
        .send(krypton, json!({"e": "wedge@example.com", "p": PASSWORD}))
        .await;
    assert_eq!(
        limited.body["errors"][0]["type"], "RateLimitError",
        "{}",
        limited.text
    );
    // Reset requests answer alike for known and unknown addresses in every dialect.
    for (path, query, field) in [
        (
            "/django/graphql",
            "mutation S($e: String!) { sendPasswordResetEmail(email: $e) { success errors } }",
            "sendPasswordResetEmail",
        ),
        (
            "/krypton",
            "query S($e: String!) { sendPasswordRecoveryEmail(email: $e) }",
            "sendPasswordRecoveryEmail",
        ),
    ] {
        let known = Call::new(gate, path)
            .send(query, json!({"e": "wedge@example.com"}))
            .await;
        let unknown = Call::new(gate, path)
            .send(query, json!({"e": "nobody@example.com"}))
            .await;
        assert_eq!(known.body, unknown.body, "{path}");
        assert!(known.body["data"][field].is_object() || known.body["data"][field] == true);
    }
}

#[test]
fn dialect_config_is_refused_with_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        (
            "[[dialects]]\nkind = \"krypton\"\nprefix = \"/graphql\"\n",
            "dialects[0].prefix",
        ),
        (
            "[[dialects]]\nkind = \"nonsense\"\nprefix = \"/x\"\n",
            "dialects[0].kind",
        ),
    ] {
        let path = dir.path().join("authgate.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
    }
}
