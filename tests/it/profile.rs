//! The caller's own account: archive and delete, and which mutations need a login and a
//! verified account.

use crate::common::account::*;
use serde_json::json;

#[tokio::test]
async fn archive_then_login_unarchives() {
    let s = setup(&[]).await;
    let access = s.user("arch@example.com", true).await;
    let session = s.login("arch@example.com", PASSWORD).await;
    let archive = "mutation A($p: String!) { archiveAccount(password: $p) { success errors } }";
    let wrong = s.gql(archive, json!({"p": "nope"}), Some(&access)).await;
    assert_eq!(code(&wrong["data"]["archiveAccount"]), "invalid_password");
    let done = s.gql(archive, json!({"p": PASSWORD}), Some(&access)).await;
    assert_eq!(done["data"]["archiveAccount"]["success"], true);
    // Archiving ends every session, access tokens included (SPEC §13).
    let me = s.gql("{ me { archived } }", json!({}), Some(&access)).await;
    assert_eq!(me["data"]["me"], serde_json::Value::Null, "{me}");
    let refresh = s
        .gql(
            "mutation R($t: String) { refreshToken(refreshToken: $t) { success errors } }",
            json!({"t": session["refreshToken"]}),
            None,
        )
        .await;
    assert_eq!(code(&refresh["data"]["refreshToken"]), "invalid_token");
    let back = s.login("arch@example.com", PASSWORD).await;
    assert_eq!(back["success"], true);
    assert_eq!(back["unarchiving"], true);
    let me = s
        .gql("{ me { archived } }", json!({}), back["token"].as_str())
        .await;
    assert_eq!(me["data"]["me"]["archived"], false);
    assert_eq!(
        s.login("arch@example.com", PASSWORD).await["unarchiving"],
        false
    );
}

const DELETE: &str = "mutation D($p: String!) { deleteAccount(password: $p) { success errors } }";

#[tokio::test]
async fn delete_deactivates_by_default() {
    let s = setup(&[]).await;
    let access = s.user("gone@example.com", true).await;
    let done = s.gql(DELETE, json!({"p": PASSWORD}), Some(&access)).await;
    assert_eq!(done["data"]["deleteAccount"]["success"], true, "{done}");
    assert_eq!(
        code(&s.login("gone@example.com", PASSWORD).await),
        "invalid_credentials"
    );
    let me = s.gql("{ me { id } }", json!({}), Some(&access)).await;
    assert!(me["data"]["me"].is_null());
    let available = s
        .gql(AVAILABLE, json!({"e": "gone@example.com"}), None)
        .await;
    assert_eq!(
        available["data"]["emailAvailable"], false,
        "deactivated keeps the email"
    );
}

#[tokio::test]
async fn hard_delete_frees_the_email() {
    let s = setup(&[("AUTHGATE_ACCOUNTS__DELETE_MODE", "hard")]).await;
    let access = s.user("hard@example.com", true).await;
    let done = s.gql(DELETE, json!({"p": PASSWORD}), Some(&access)).await;
    assert_eq!(done["data"]["deleteAccount"]["success"], true);
    assert_eq!(
        code(&s.login("hard@example.com", PASSWORD).await),
        "invalid_credentials"
    );
    let available = s
        .gql(AVAILABLE, json!({"e": "hard@example.com"}), None)
        .await;
    assert_eq!(available["data"]["emailAvailable"], true);
    s.user("hard@example.com", false).await;
}

#[tokio::test]
async fn protected_mutations_need_a_login_and_a_verified_account() {
    let s = setup(&[]).await;
    let unverified = s.user("half@example.com", false).await;
    let calls = [
        ("archiveAccount", "mutation { archiveAccount(password: \"x\") { success errors } }", true),
        ("deleteAccount", "mutation { deleteAccount(password: \"x\") { success errors } }", true),
        ("passwordChange", "mutation { passwordChange(oldPassword: \"x\", newPassword1: \"y\", newPassword2: \"y\") { success errors } }", true),
        ("sendSecondaryEmailActivation", "mutation { sendSecondaryEmailActivation(email: \"a@b.co\", password: \"x\") { success errors } }", true),
        ("swapEmails", "mutation { swapEmails(password: \"x\") { success errors } }", true),
        ("removeSecondaryEmail", "mutation { removeSecondaryEmail(password: \"x\") { success errors } }", true),
        ("createApiKey", "mutation { createApiKey(name: \"k\") { success errors } }", true),
        ("updateAccount", "mutation { updateAccount(firstName: \"A\") { success errors } }", true),
        ("revokeAllTokens", "mutation { revokeAllTokens { success errors } }", false),
        ("revokeApiKey", "mutation { revokeApiKey(id: \"nope\") { success errors } }", false),
    ];
    for (name, query, needs_verified) in calls {
        let anonymous = s.gql(query, json!({}), None).await;
        assert_eq!(
            code(&anonymous["data"][name]),
            "unauthenticated",
            "{name}: {anonymous}"
        );
        if needs_verified {
            let half = s.gql(query, json!({}), Some(&unverified)).await;
            assert_eq!(code(&half["data"][name]), "not_verified", "{name}: {half}");
        }
    }
}
