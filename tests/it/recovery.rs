//! Password reset and set (invited accounts), by GraphQL and by the HTML form, end to end
//! through HTTP with a real SMTP listener.

use crate::common::account::*;
use crate::common::*;
use serde_json::json;

const SEND_RESET: &str =
    "mutation S($e: String!) { sendPasswordResetEmail(email: $e) { success errors } }";
const RESET: &str = "mutation R($t: String!, $a: String!, $b: String!) {
  passwordReset(token: $t, newPassword1: $a, newPassword2: $b) { success errors } }";
const SET: &str = "mutation R($t: String!, $a: String!, $b: String!) {
  passwordSet(token: $t, newPassword1: $a, newPassword2: $b) { success errors } }";

#[tokio::test]
async fn password_reset_by_graphql() {
    let s = setup(&[]).await;
    s.user("reset@example.com", true).await;
    let session = s.login("reset@example.com", PASSWORD).await;

    // Unknown and known addresses answer alike; only the known one gets mail.
    for email in ["reset@example.com", "ghost@example.com"] {
        let reply = s.gql(SEND_RESET, json!({"e": email}), None).await;
        assert_eq!(reply["data"]["sendPasswordResetEmail"]["success"], true);
    }
    let mail = s.sink.wait_for("reset@example.com", 2).await;
    assert!(mail.data.contains("Subject: Reset your password"));
    let link = mail.link("/password/reset?token=").expect("reset link");
    assert!(link.starts_with(&s.gate.base));
    let token = mail.token("/password/reset?token=").unwrap();
    assert!(s.sink.mails_to("ghost@example.com").is_empty());

    let mismatch = s
        .gql(
            RESET,
            json!({"t": token, "a": NEW_PASSWORD, "b": "other"}),
            None,
        )
        .await;
    assert_eq!(
        code(&mismatch["data"]["passwordReset"]),
        "password_mismatch"
    );
    let weak = s
        .gql(
            RESET,
            json!({"t": token, "a": "password", "b": "password"}),
            None,
        )
        .await;
    assert_eq!(code(&weak["data"]["passwordReset"]), "password_too_common");
    let forged = s
        .gql(
            RESET,
            json!({"t": "x.y", "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(code(&forged["data"]["passwordReset"]), "invalid_token");

    let done = s
        .gql(
            RESET,
            json!({"t": token, "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(done["data"]["passwordReset"]["success"], true, "{done}");
    // Single use, sessions revoked, new password in force.
    let again = s
        .gql(
            RESET,
            json!({"t": token, "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(code(&again["data"]["passwordReset"]), "invalid_token");
    let refresh = s
        .gql(
            "mutation R($t: String) { refreshToken(refreshToken: $t) { success errors } }",
            json!({"t": session["refreshToken"]}),
            None,
        )
        .await;
    assert_eq!(code(&refresh["data"]["refreshToken"]), "invalid_token");
    assert_eq!(
        code(&s.login("reset@example.com", PASSWORD).await),
        "invalid_credentials"
    );
    assert_eq!(
        s.login("reset@example.com", NEW_PASSWORD).await["success"],
        true
    );
}

#[tokio::test]
async fn reset_tokens_die_when_the_password_changes_and_expire() {
    let s = setup(&[("AUTHGATE_ACCOUNTS__RESET_TTL", "2s")]).await;
    let access = s.user("stale@example.com", true).await;
    s.gql(SEND_RESET, json!({"e": "stale@example.com"}), None)
        .await;
    let token = s
        .sink
        .wait_for("stale@example.com", 2)
        .await
        .token("/password/reset?token=")
        .unwrap();
    // The password changes another way first.
    let change = s
        .gql(
            "mutation C($o: String!, $n: String!) { passwordChange(oldPassword: $o, newPassword1: $n, newPassword2: $n) { success errors } }",
            json!({"o": PASSWORD, "n": NEW_PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(
        change["data"]["passwordChange"]["success"], true,
        "{change}"
    );
    let late = s
        .gql(
            RESET,
            json!({"t": token, "a": "Third-Pass-77", "b": "Third-Pass-77"}),
            None,
        )
        .await;
    assert_eq!(code(&late["data"]["passwordReset"]), "invalid_token");

    s.gql(SEND_RESET, json!({"e": "stale@example.com"}), None)
        .await;
    let token = s
        .sink
        .wait_for("stale@example.com", 3)
        .await
        .token("/password/reset?token=")
        .unwrap();
    // Issued before the mail came, with the 2 s reset_ttl.
    sleep_past(authgate::jwt::unix_now() + 2).await;
    let expired = s
        .gql(
            RESET,
            json!({"t": token, "a": "Third-Pass-77", "b": "Third-Pass-77"}),
            None,
        )
        .await;
    assert_eq!(code(&expired["data"]["passwordReset"]), "expired_token");
}

#[tokio::test]
async fn reset_for_an_unverified_account_sends_the_activation_email() {
    let s = setup(&[]).await;
    s.user("unver@example.com", false).await;
    s.gql(SEND_RESET, json!({"e": "unver@example.com"}), None)
        .await;
    let mail = s.sink.wait_for("unver@example.com", 2).await;
    assert!(
        mail.data.contains("Subject: Activate your account"),
        "{}",
        mail.data
    );
    assert!(mail.link("/password/reset").is_none());
}

#[tokio::test]
async fn the_reset_page_sets_a_new_password() {
    let s = setup(&[]).await;
    s.user("page@example.com", true).await;
    s.gql(SEND_RESET, json!({"e": "page@example.com"}), None)
        .await;
    let link = s
        .sink
        .wait_for("page@example.com", 2)
        .await
        .link("/password/reset?token=")
        .unwrap();
    let token = link.split("token=").nth(1).unwrap().to_string();

    let resp = client().get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let html = resp.text().await.unwrap();
    for needle in [
        "name=\"new_password1\"",
        "name=\"new_password2\"",
        "method=\"post\"",
        &format!("value=\"{token}\""),
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    let post = |a: &str, b: &str| {
        client()
            .post(s.gate.url("/password/reset"))
            .form(&[
                ("token", token.as_str()),
                ("new_password1", a),
                ("new_password2", b),
            ])
            .send()
    };
    let resp = post(NEW_PASSWORD, "different").await.unwrap();
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("class=\"error\"") && html.contains("match"),
        "{html}"
    );
    assert!(
        html.contains("name=\"new_password1\""),
        "the form stays usable"
    );

    let resp = post(NEW_PASSWORD, NEW_PASSWORD).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Password changed"));
    assert_eq!(
        s.login("page@example.com", NEW_PASSWORD).await["success"],
        true
    );
    let resp = client().get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Invalid link"));
    let resp = client()
        .get(s.gate.url("/password/reset?token=garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn invited_accounts_set_their_password_once() {
    let s = setup(&[]).await;
    // The CLI runs off this runtime's thread: the SMTP listener lives on it.
    let config = s.gate.dir.path().join("authgate.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["user", "invite", "--config"])
            .arg(config)
            .args(["--email", "invited@example.com"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.sink.wait_for("invited@example.com", 1).await;
    assert!(mail.data.contains("Subject: Set your password"));
    let link = mail.link("/password/set?token=").unwrap();
    let token = mail.token("/password/set?token=").unwrap();
    let page = client().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Choose your password"));
    // No password yet: nobody can log in.
    assert_eq!(
        code(&s.login("invited@example.com", "").await),
        "invalid_credentials"
    );

    let set = s
        .gql(
            SET,
            json!({"t": token, "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(set["data"]["passwordSet"]["success"], true, "{set}");
    let again = s
        .gql(
            SET,
            json!({"t": token, "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(code(&again["data"]["passwordSet"]), "password_already_set");
    let auth = s.login("invited@example.com", NEW_PASSWORD).await;
    assert_eq!(auth["success"], true);
    let me = s
        .gql("{ me { verified } }", json!({}), auth["token"].as_str())
        .await;
    assert_eq!(
        me["data"]["me"]["verified"], true,
        "setting the password proves the email"
    );
}
