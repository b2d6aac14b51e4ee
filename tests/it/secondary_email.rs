//! A second address: confirmation by mail, swap, removal, uniqueness across accounts.

use crate::common::account::*;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn secondary_email_flow() {
    let s = setup(&[]).await;
    let access = s.user("main@example.com", true).await;
    s.user("other@example.com", false).await;
    let send = "mutation S($e: String!, $p: String!) { sendSecondaryEmailActivation(email: $e, password: $p) { success errors } }";
    let wrong = s
        .gql(
            send,
            json!({"e": "alt@example.com", "p": "nope"}),
            Some(&access),
        )
        .await;
    assert_eq!(
        code(&wrong["data"]["sendSecondaryEmailActivation"]),
        "invalid_password"
    );
    let taken = s
        .gql(
            send,
            json!({"e": "OTHER@example.com", "p": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(
        code(&taken["data"]["sendSecondaryEmailActivation"]),
        "unique"
    );
    let ok = s
        .gql(
            send,
            json!({"e": "alt@example.com", "p": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(
        ok["data"]["sendSecondaryEmailActivation"]["success"], true,
        "{ok}"
    );
    let mail = s.sink.wait_for("alt@example.com", 1).await;
    let link = mail.link("/verify-email/").unwrap();
    let page = client().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Email confirmed"));
    let token = mail.token("/verify-email/").unwrap();
    let again = s
        .gql(
            "mutation V($t: String!) { verifySecondaryEmail(token: $t) { success errors } }",
            json!({"t": token}),
            None,
        )
        .await;
    assert_eq!(
        code(&again["data"]["verifySecondaryEmail"]),
        "already_verified"
    );

    let me = s
        .gql("{ me { email secondaryEmail } }", json!({}), Some(&access))
        .await;
    assert_eq!(me["data"]["me"]["secondaryEmail"], "alt@example.com");
    assert_eq!(
        s.login("ALT@example.com", PASSWORD).await["success"],
        true,
        "login by secondary"
    );
    let dup = s
        .gql("mutation { register(email: \"alt@example.com\", password1: \"vX9!kq2#Lm-7\", password2: \"vX9!kq2#Lm-7\") { success errors } }", json!({}), None)
        .await;
    assert_eq!(code(&dup["data"]["register"]), "unique");

    let swap = "mutation W($p: String!) { swapEmails(password: $p) { success errors } }";
    assert_eq!(
        s.gql(swap, json!({"p": PASSWORD}), Some(&access)).await["data"]["swapEmails"]["success"],
        true
    );
    let me = s
        .gql("{ me { email secondaryEmail } }", json!({}), Some(&access))
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({"email": "alt@example.com", "secondaryEmail": "main@example.com"})
    );
    let remove =
        "mutation X($p: String!) { removeSecondaryEmail(password: $p) { success errors } }";
    assert_eq!(
        s.gql(remove, json!({"p": PASSWORD}), Some(&access)).await["data"]["removeSecondaryEmail"]
            ["success"],
        true
    );
    let me = s
        .gql("{ me { email secondaryEmail } }", json!({}), Some(&access))
        .await;
    assert!(me["data"]["me"]["secondaryEmail"].is_null());
    let available = s
        .gql(AVAILABLE, json!({"e": "main@example.com"}), None)
        .await;
    assert_eq!(
        available["data"]["emailAvailable"], true,
        "the removed address is free"
    );
}
