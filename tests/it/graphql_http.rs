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
        let resp = client().post(&url).body(body).send().await.unwrap();
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
