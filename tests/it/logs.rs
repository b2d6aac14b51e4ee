//! Logs for log shippers: `log.format = "json"` gives one JSON object per line, and the access
//! log one line per finished request that names no secret the client sent.

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "Lg9!vQ2#zr-8";

fn lines(gate: &Authgate) -> Vec<Value> {
    gate.log()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .collect()
}

/// The access lines so far (written just after each response).
async fn access_lines(gate: &Authgate, at_least: usize) -> Vec<Value> {
    let mut found = Vec::new();
    eventually(std::time::Duration::from_secs(5), "access lines", || {
        found = lines(gate)
            .into_iter()
            .filter(|l| l["target"] == "authgate::access")
            .collect();
        let enough = found.len() >= at_least;
        async move { enough }
    })
    .await;
    found
}

#[tokio::test]
async fn json_lines_and_an_access_log_without_secrets() {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_LOG__FORMAT", "json")
        .env("AUTHGATE_LOG__ACCESS_LOG", "true")
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;

    let email = "logs@example.com";
    let reply = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors } }",
            json!({ "e": email, "p": PASSWORD }),
            None,
        )
        .await;
    assert_eq!(reply["data"]["register"]["success"], true, "{reply}");
    verify_by_mail(&gate, &sink, email, 1).await;
    let activation = sink.wait_for(email, 1).await.token("/activate/").unwrap();
    let login = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success token refreshToken } }",
            json!({ "e": email, "p": PASSWORD }),
            None,
        )
        .await;
    let token = login["data"]["tokenAuth"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = login["data"]["tokenAuth"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let created = gate
        .graphql_as(
            "mutation { createApiKey(name: \"ci\") { success key } }",
            json!({}),
            Some(&token),
        )
        .await;
    let api_key = created["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let me = gate
        .graphql_as("{ me { id } }", json!({}), Some(&token))
        .await;
    let user_id = me["data"]["me"]["id"].as_str().unwrap().to_string();

    let client = client();
    let proxied = client
        .get(gate.url("/api/orders?secret=q-s3cr3t-value"))
        .header("authorization", bearer(&token))
        .header("cookie", "authgate_refresh=cookie-s3cr3t")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let refused = client
        .get(gate.url("/api/orders"))
        .header("authorization", "Bearer not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let by_key = client
        .get(gate.url("/api/keys"))
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 200);

    // register, verifyAccount, tokenAuth, createApiKey, me, and the three above.
    let access = access_lines(&gate, 8).await;
    let find = |path: &str, status: u64| {
        access
            .iter()
            .find(|l| l["path"] == path && l["status"] == status)
            .unwrap_or_else(|| panic!("no access line for {path} {status}: {access:?}"))
    };
    let line = find("/api/orders", 200);
    for field in [
        "request_id",
        "method",
        "route",
        "latency_ms",
        "bytes",
        "timestamp",
        "level",
    ] {
        assert!(!line[field].is_null(), "{field} in {line}");
    }
    assert_eq!(line["method"], "GET");
    assert_eq!(line["route"], "/api");
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(line["auth"], "jwt");
    assert_eq!(line["user_id"], user_id.as_str());
    assert!(line["bytes"].as_u64().unwrap() > 0, "{line}");
    let line = find("/api/orders", 401);
    assert_eq!(line["refusal"], "bad_header");
    assert_eq!(line["auth"], "none");
    assert_eq!(line["upstream_status"], 0);
    let line = find("/api/keys", 200);
    assert_eq!(line["auth"], "api_key");
    assert_eq!(line["user_id"], user_id.as_str());
    // The GraphQL login, and the activation link with its token left out.
    assert!(
        access
            .iter()
            .any(|l| l["path"] == "/graphql" && l["route"] == "authgate" && l["method"] == "POST"),
        "{access:?}"
    );

    // Every line is JSON with a level and a message; none names a secret.
    let text = gate.log();
    for line in lines(&gate) {
        assert!(
            line["level"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    for secret in [
        token.as_str(),
        refresh.as_str(),
        api_key.as_str(),
        PASSWORD,
        activation.as_str(),
        "q-s3cr3t-value",
        "cookie-s3cr3t",
        "not.a.jwt",
    ] {
        assert!(!text.contains(secret), "the log names {secret:?}:\n{text}");
    }
}

#[tokio::test]
async fn activation_paths_are_logged_without_their_token() {
    let gate = Authgate::builder()
        .env("AUTHGATE_LOG__FORMAT", "json")
        .env("AUTHGATE_LOG__ACCESS_LOG", "true")
        .start(None)
        .await;
    let resp = client()
        .get(gate.url("/activate/link-s3cr3t.tag"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let access = access_lines(&gate, 1).await;
    assert!(
        access.iter().any(|l| l["path"] == "/activate/"),
        "{access:?}"
    );
    assert!(!gate.log().contains("link-s3cr3t"), "{}", gate.log());
}

#[tokio::test]
async fn text_stays_the_default_and_a_bad_filter_names_its_key() {
    let gate = Authgate::builder().start(None).await;
    assert!(
        gate.log().contains("authgate serving listen="),
        "{}",
        gate.log()
    );
    drop(gate);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("check-config")
        .env("AUTHGATE_LOG__LEVEL", "info,=[")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.level"));
}
