//! Staff queries: paging, filters, and refusal for everyone else.

use crate::common::account::*;
use serde_json::{json, Value};

#[tokio::test]
async fn staff_queries_page_and_refuse_others() {
    let s = setup(&[]).await;
    let out = {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args([
                "user",
                "create",
                "--staff",
                "--verified",
                "--email",
                "boss@example.com",
                "--config",
            ])
            .arg(s.gate.dir.path().join("authgate.toml"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut plain = String::new();
    for i in 0..5 {
        let token = s.user(&format!("u{i}@example.com"), i % 2 == 0).await;
        if i == 1 {
            plain = token;
        }
    }
    let boss = s.login("boss@example.com", PASSWORD).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let page = "query P($after: String, $verified: Boolean, $search: String) {
      users(first: 2, after: $after, verified: $verified, search: $search) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { cursor node { email isStaff } } } }";
    let mut seen_emails = Vec::new();
    let mut after = Value::Null;
    loop {
        let reply = s.gql(page, json!({"after": after}), Some(&boss)).await;
        let users = &reply["data"]["users"];
        assert_eq!(users["totalCount"], 6, "{reply}");
        for edge in users["edges"].as_array().unwrap() {
            seen_emails.push(edge["node"]["email"].as_str().unwrap().to_string());
        }
        if users["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen_emails.len(), 6);
    assert_eq!(seen_emails[0], "boss@example.com", "in joining order");
    let verified = s.gql(page, json!({"verified": false}), Some(&boss)).await;
    assert_eq!(verified["data"]["users"]["totalCount"], 2);
    let search = s.gql(page, json!({"search": "U3@"}), Some(&boss)).await;
    assert_eq!(
        search["data"]["users"]["edges"][0]["node"]["email"],
        "u3@example.com"
    );

    let refused = s.gql(page, json!({}), Some(&plain)).await;
    assert!(refused["data"]["users"].is_null(), "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["code"], "forbidden");

    // `user(id)`: staff, or oneself.
    let me = s.gql("{ me { id } }", json!({}), Some(&plain)).await;
    let my_id = me["data"]["me"]["id"].clone();
    let q = "query U($id: ID!) { user(id: $id) { email } }";
    let own = s.gql(q, json!({"id": my_id}), Some(&plain)).await;
    assert_eq!(own["data"]["user"]["email"], "u1@example.com");
    let boss_id = s.gql("{ me { id } }", json!({}), Some(&boss)).await["data"]["me"]["id"].clone();
    let other = s.gql(q, json!({"id": boss_id}), Some(&plain)).await;
    assert_eq!(other["errors"][0]["extensions"]["code"], "forbidden");
    let staff = s.gql(q, json!({"id": my_id}), Some(&boss)).await;
    assert_eq!(staff["data"]["user"]["email"], "u1@example.com");
}
