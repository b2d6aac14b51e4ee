//! Password reset and set, archive and delete, secondary email, API keys and staff queries,
//! end to end through HTTP with a real SMTP listener.

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";
const NEW_PASSWORD: &str = "Brand-New-Pass-42";

struct Setup {
    gate: Authgate,
    sink: SmtpSink,
}

async fn setup(env: &[(&str, &str)]) -> Setup {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let mut builder = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "1000/1h")
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    Setup {
        gate: builder.start(Some(&upstream)).await,
        sink,
    }
}

impl Setup {
    async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> Value {
        self.gate.graphql_as(query, vars, token).await
    }

    /// Registers (and, if asked, verifies) a user; returns an access token for it.
    async fn user(&self, email: &str, verify: bool) -> String {
        let reg = self
            .gql(
                "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors token } }",
                json!({"e": email, "p": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
        if verify {
            verify_by_mail(&self.gate, &self.sink, email, 1).await;
        }
        reg["data"]["register"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn login(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success errors token refreshToken unarchiving } }",
            json!({"e": email, "p": password}),
            None,
        )
        .await["data"]["tokenAuth"]
            .clone()
    }
}

fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

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
    let me = s.gql("{ me { archived } }", json!({}), Some(&access)).await;
    assert_eq!(me["data"]["me"]["archived"], true);
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
const AVAILABLE: &str = "query A($e: String!) { emailAvailable(email: $e) }";

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
