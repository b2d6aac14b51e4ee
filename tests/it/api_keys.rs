//! API keys: created once, accepted at the gate, refused once revoked.

use crate::common::account::*;
use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn api_keys_work_at_the_gate_until_revoked() {
    let s = setup(&[]).await;
    let unverified = s.user("noverify@example.com", false).await;
    let create = "mutation C($n: String!) { createApiKey(name: $n) { success errors key apiKey { id name prefix createdAt lastUsedAt } } }";
    let refused = s.gql(create, json!({"n": "ci"}), Some(&unverified)).await;
    assert_eq!(code(&refused["data"]["createApiKey"]), "not_verified");

    let access = s.user("robot@example.com", true).await;
    let made = s.gql(create, json!({"n": "ci"}), Some(&access)).await;
    let made = &made["data"]["createApiKey"];
    assert_eq!(made["success"], true, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("agk_") && key.len() > 40);
    assert!(key.starts_with(made["apiKey"]["prefix"].as_str().unwrap()));
    let bad_name = s.gql(create, json!({"n": "  "}), Some(&access)).await;
    assert_eq!(code(&bad_name["data"]["createApiKey"]), "invalid");

    for (header, value) in [
        ("authorization", format!("Token {key}")),
        ("x-api-key", key.clone()),
    ] {
        let resp = client()
            .get(s.gate.url("/api/jobs"))
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{header}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(seen(&doc, "x-auth-method"), ["api_key"]);
        assert_eq!(seen(&doc, "x-auth-email"), ["robot@example.com"]);
        assert!(
            seen(&doc, "x-api-key").is_empty(),
            "the key is not forwarded"
        );
        assert!(seen(&doc, "authorization").is_empty());
    }
    let listed = s
        .gql(
            "{ apiKeys { id name prefix createdAt lastUsedAt } }",
            json!({}),
            Some(&access),
        )
        .await;
    let keys = listed["data"]["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["lastUsedAt"].is_string(), "{listed}");
    assert!(
        !listed.to_string().contains(&key),
        "the key is never shown again"
    );

    // Someone else cannot revoke it; its owner can, and it stops at once.
    let other = s.user("other@example.com", true).await;
    let revoke = "mutation V($id: ID!) { revokeApiKey(id: $id) { success errors } }";
    let id = keys[0]["id"].clone();
    let theirs = s.gql(revoke, json!({"id": id}), Some(&other)).await;
    assert_eq!(code(&theirs["data"]["revokeApiKey"]), "invalid");
    let mine = s.gql(revoke, json!({"id": id}), Some(&access)).await;
    assert_eq!(mine["data"]["revokeApiKey"]["success"], true);
    let resp = client()
        .get(s.gate.url("/api/jobs"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(s.gate.url("/api/jobs"))
        .header("x-api-key", "agk_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
