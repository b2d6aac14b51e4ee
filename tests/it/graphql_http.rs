//! The GraphQL endpoint over HTTP: limits and bad input.

use crate::common::*;
use serde_json::{json, Value};

async fn start(env: &[(&str, &str)]) -> Authgate {
    let mut builder = Authgate::builder();
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    builder.start(None).await
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_stays_healthy() {
    let mut gate = start(&[]).await;
    let url = gate.url("/graphql");

    // Over 64 KiB, declared by Content-Length.
    let big = json!({ "query": format!("{{ publicKey }} #{}", "x".repeat(70_000)) });
    let resp = client().post(&url).json(&big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("65536"));

    // Over 64 KiB, streamed without Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8192])).collect();
    let resp = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Exactly at the limit is read (and is then just malformed JSON).
    let resp = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(vec![b' '; 65_536])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    for (body, what) in [
        (b"{not json".to_vec(), "not a GraphQL JSON request"),
        (vec![0xff, 0xfe, 0x00], "not UTF-8"),
        (b"[]".to_vec(), "not a GraphQL JSON request"),
        (b"".to_vec(), "not a GraphQL JSON request"),
    ] {
        let resp = client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{what}");
        let reply: Value = resp.json().await.unwrap();
        assert!(
            reply["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(what),
            "{reply}"
        );
    }

    // Syntax errors and unknown fields are GraphQL errors, not HTTP failures.
    for query in ["{ publicKey", "{ nope }", "{ publicKey { x } }"] {
        let reply = gate.graphql(query).await;
        assert!(
            reply["errors"][0]["message"].is_string(),
            "{query}: {reply}"
        );
        assert!(
            reply.get("data").is_none() || reply["data"].is_null(),
            "{reply}"
        );
    }
    gate.assert_healthy().await;
}

#[tokio::test]
async fn depth_and_complexity_limits_apply() {
    let gate = start(&[("AUTHGATE_GRAPHQL__MAX_DEPTH", "3")]).await;
    let deep = "{ __schema { types { fields { type { name } } } } }";
    let reply = gate.graphql(deep).await;
    let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{reply}");

    let gate = start(&[("AUTHGATE_GRAPHQL__MAX_COMPLEXITY", "2")]).await;
    let reply = gate
        .graphql("{ a: publicKey b: publicKey c: publicKey }")
        .await;
    let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{reply}");
    let reply = gate.graphql("{ publicKey }").await;
    assert!(reply["data"]["publicKey"].is_string(), "{reply}");
}

#[tokio::test]
async fn introspection_and_playground_can_be_switched_off() {
    let gate = start(&[]).await;
    let reply = gate.graphql("{ __schema { queryType { name } } }").await;
    assert_eq!(reply["data"]["__schema"]["queryType"]["name"], "Query");
    let resp = client().get(gate.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("graphiql"));

    let gate = start(&[
        ("AUTHGATE_GRAPHQL__INTROSPECTION", "false"),
        ("AUTHGATE_GRAPHQL__PLAYGROUND", "false"),
    ])
    .await;
    let reply = gate.graphql("{ __schema { queryType { name } } }").await;
    assert!(reply["data"]["__schema"].is_null(), "{reply}");
    let resp = client().get(gate.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let reply = gate.graphql("{ publicKey }").await;
    assert!(reply["data"]["publicKey"].is_string());
}

#[tokio::test]
async fn own_endpoints_win_over_routes_and_ignore_spoofed_identity() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\nauth = \"none\"\n")
        .start(Some(&upstream))
        .await;
    let resp = client()
        .post(gate.url("/graphql"))
        .header("x-auth-user-id", "admin")
        .json(&json!({ "query": "{ publicKey }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reply: Value = resp.json().await.unwrap();
    assert!(reply["data"]["publicKey"].is_string(), "{reply}");
    let resp = client()
        .delete(gate.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn invalid_utf8_anywhere_in_the_body_is_400() {
    let mut gate = start(&[]).await;
    // The bad bytes sit in a field nobody reads, in a key, and in an unused variable.
    for body in [
        &b"{\"query\": \"{ publicKey }\", \"x\": \"\xff\"}"[..],
        &b"{\"query\": \"{ publicKey }\", \"\xc3\x28\": 1}"[..],
        &b"{\"query\": \"{ publicKey }\", \"variables\": {\"v\": \"\xed\xa0\x80\"}}"[..],
    ] {
        let resp = client()
            .post(gate.url("/graphql"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let shown = String::from_utf8_lossy(body);
        assert_eq!(resp.status(), 400, "{shown}");
        let reply: Value = resp.json().await.unwrap();
        assert_eq!(
            reply["errors"][0]["message"], "request body is not UTF-8",
            "{reply}"
        );
    }
    gate.assert_healthy().await;
}

#[tokio::test]
async fn a_post_must_declare_json_or_is_415() {
    let mut gate = start(&[]).await;
    let body = r#"{"query": "{ publicKey }"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = client().post(gate.url("/graphql")).body(body);
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 415, "{content_type:?}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let reply: Value = resp.json().await.unwrap();
        let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("application/json"), "{reply}");
        assert!(reply.get("data").is_none(), "{reply}");
    }
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/graphql-response+json",
    ] {
        let resp = client()
            .post(gate.url("/graphql"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{content_type}");
        let reply: Value = resp.json().await.unwrap();
        assert!(
            reply["data"]["publicKey"].is_string(),
            "{content_type}: {reply}"
        );
    }
    gate.assert_healthy().await;
}
