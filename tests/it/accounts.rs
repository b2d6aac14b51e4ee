//! The account API through HTTP against the real binary, with a real SMTP listener capturing
//! the mail and a real upstream behind the proxy.

use std::time::Instant;

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";

const REGISTER: &str =
    "mutation R($email: String!, $username: String, $p1: String!, $p2: String!, $first: String) {
  register(email: $email, username: $username, password1: $p1, password2: $p2, firstName: $first) {
    success errors token refreshToken } }";
const VERIFY: &str =
    "mutation V($token: String!) { verifyAccount(token: $token) { success errors } }";
const LOGIN: &str = "mutation L($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) {
    success errors token tokenExpiresAt unarchiving user { id email username verified } } }";
const ME: &str = "{ me { id email username firstName lastName fullName isActive isStaff verified archived secondaryEmail roles dateJoined lastLogin } }";

async fn start(sink: &SmtpSink, upstream: Option<&Upstream>, env: &[(&str, &str)]) -> Authgate {
    // Limits high enough for these tests; tests/sessions.rs exercises the limits themselves.
    let mut builder = Authgate::builder()
        .smtp(sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n");
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    builder.start(upstream).await
}

async fn register(
    gate: &Authgate,
    email: &str,
    username: Option<&str>,
    p1: &str,
    p2: &str,
) -> Value {
    let reply = gate
        .graphql_as(
            REGISTER,
            json!({"email": email, "username": username, "p1": p1, "p2": p2}),
            None,
        )
        .await;
    reply["data"]["register"].clone()
}

async fn login(gate: &Authgate, vars: Value) -> Value {
    gate.graphql_as(LOGIN, vars, None).await["data"]["tokenAuth"].clone()
}

fn codes(payload: &Value) -> Vec<String> {
    payload["errors"]
        .as_object()
        .map(|fields| {
            fields
                .values()
                .flat_map(|list| list.as_array().unwrap().iter())
                .map(|e| e["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn field_codes(payload: &Value, field: &str) -> Vec<String> {
    payload["errors"][field]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| e["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn register_verify_login_me_and_call_an_api() {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let gate = start(&sink, Some(&upstream), &[]).await;

    let reg = register(&gate, "Ada@Example.com", Some("ada"), PASSWORD, PASSWORD).await;
    assert_eq!(reg["success"], true, "{reg}");
    assert!(reg["errors"].is_null());
    assert!(
        reg["token"].is_string(),
        "unverified login is allowed by default"
    );

    let mail = sink.wait_for("Ada@Example.com", 1).await;
    assert!(
        mail.data.contains("Subject: Activate your account"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let link = mail.link("/activate/").expect("activation link");
    assert!(link.starts_with(&gate.base), "{link}");
    let token = mail.token("/activate/").unwrap();

    // Before verifying, `me` says so.
    let early = reg["token"].as_str().unwrap();
    let me = gate.graphql_as(ME, json!({}), Some(early)).await;
    assert_eq!(me["data"]["me"]["verified"], false);

    let verified = gate.graphql_as(VERIFY, json!({"token": token}), None).await;
    assert_eq!(
        verified["data"]["verifyAccount"]["success"], true,
        "{verified}"
    );
    let again = gate.graphql_as(VERIFY, json!({"token": token}), None).await;
    assert_eq!(codes(&again["data"]["verifyAccount"]), ["already_verified"]);

    let auth = login(
        &gate,
        json!({"email": "ada@example.COM", "password": PASSWORD}),
    )
    .await;
    assert_eq!(auth["success"], true, "{auth}");
    assert_eq!(auth["unarchiving"], false);
    assert_eq!(auth["user"]["verified"], true);
    let expires = auth["tokenExpiresAt"].as_i64().unwrap();
    let now = authgate::jwt::unix_now();
    assert!(
        (now + 890..=now + 910).contains(&expires),
        "15 minutes: {expires}"
    );
    let jwt = auth["token"].as_str().unwrap().to_string();

    let me = gate.graphql_as(ME, json!({}), Some(&jwt)).await;
    let me = &me["data"]["me"];
    assert_eq!(me["email"], "Ada@Example.com");
    assert_eq!(me["username"], "ada");
    assert_eq!(me["isActive"], true);
    assert_eq!(me["isStaff"], false);
    assert_eq!(me["archived"], false);
    assert_eq!(me["roles"], json!([]));
    assert!(me["dateJoined"].as_str().unwrap().ends_with('Z'));
    assert!(me["lastLogin"].is_string());
    assert_eq!(me["id"], auth["user"]["id"]);

    // The token works at the gate: the upstream learns who called.
    let resp = client()
        .get(gate.url("/api/orders"))
        .header("authorization", bearer(&jwt))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-auth-user-id"), [me["id"].as_str().unwrap()]);
    assert_eq!(seen(&doc, "x-auth-email"), ["Ada@Example.com"]);
    assert_eq!(seen(&doc, "x-auth-username"), ["ada"]);
    assert_eq!(seen(&doc, "x-auth-verified"), ["true"]);

    // Not logged in: `me` is null.
    let anonymous = gate.graphql(ME).await;
    assert!(anonymous["data"]["me"].is_null(), "{anonymous}");
    let forged = gate.graphql_as(ME, json!({}), Some("a.b.c")).await;
    assert!(forged["data"]["me"].is_null(), "{forged}");
}

#[tokio::test]
async fn the_activation_link_page_verifies() {
    let sink = SmtpSink::start().await;
    let mut gate = start(&sink, None, &[]).await;
    register(&gate, "page@example.com", None, PASSWORD, PASSWORD).await;
    let link = sink
        .wait_for("page@example.com", 1)
        .await
        .link("/activate/")
        .unwrap();

    let page = |url: String| async move {
        let resp = client().get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        (status, resp.text().await.unwrap())
    };
    let (status, html) = page(link.clone()).await;
    assert_eq!(status, 200);
    assert!(html.contains("Account verified"), "{html}");
    assert!(!html.contains("<script"));
    let (status, html) = page(link.clone()).await;
    assert_eq!(status, 200);
    assert!(html.contains("Already verified"), "{html}");
    let (status, html) = page(gate.url("/activate/forged.token")).await;
    assert_eq!(status, 400);
    assert!(html.contains("Invalid link"), "{html}");
    let (status, _) = page(gate.url(&format!("/activate/{}", "A".repeat(5000)))).await;
    assert_eq!(status, 400);

    let auth = login(
        &gate,
        json!({"email": "page@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(auth["user"]["verified"], true);
    gate.assert_healthy().await;
}

#[tokio::test]
async fn registration_errors_have_their_codes() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    let first = register(
        &gate,
        "taken@example.com",
        Some("taken"),
        PASSWORD,
        PASSWORD,
    )
    .await;
    assert_eq!(first["success"], true);

    // (email, username, password1, password2, field, code)
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, &'a str);
    let cases: &[Case] = &[
        ("not-an-email", None, PASSWORD, PASSWORD, "email", "invalid"),
        (
            "a@example.com",
            Some("bad name"),
            PASSWORD,
            PASSWORD,
            "username",
            "invalid",
        ),
        (
            "a@example.com",
            None,
            PASSWORD,
            "other-Pass-99",
            "password2",
            "password_mismatch",
        ),
        (
            "a@example.com",
            None,
            "Zq9!x",
            "Zq9!x",
            "password2",
            "password_too_short",
        ),
        (
            "a@example.com",
            None,
            "password1",
            "password1",
            "password2",
            "password_too_common",
        ),
        (
            "a@example.com",
            None,
            "3141592653589",
            "3141592653589",
            "password2",
            "password_entirely_numeric",
        ),
        (
            "marguerite@example.com",
            None,
            "marguerite1",
            "marguerite1",
            "password2",
            "password_too_similar",
        ),
        (
            "TAKEN@Example.com",
            None,
            PASSWORD,
            PASSWORD,
            "email",
            "unique",
        ),
        (
            "b@example.com",
            Some("TAKEN"),
            PASSWORD,
            PASSWORD,
            "username",
            "unique",
        ),
    ];
    for (email, username, p1, p2, field, code) in cases {
        let reply = register(&gate, email, *username, p1, p2).await;
        assert_eq!(reply["success"], false, "{email} {code}");
        assert!(reply["token"].is_null());
        assert!(
            field_codes(&reply, field).iter().any(|c| c == code),
            "{email}: expected {field}/{code} in {reply}"
        );
    }
    let long = "Aa1!".repeat(33);
    let reply = register(&gate, "long@example.com", None, &long, &long).await;
    assert_eq!(field_codes(&reply, "password2"), ["password_too_long"]);
    // Only the successful registration sent mail.
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn login_by_username_and_its_failures() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    register(&gate, "lin@example.com", Some("Linus"), PASSWORD, PASSWORD).await;

    let ok = login(&gate, json!({"username": "linus", "password": PASSWORD})).await;
    assert_eq!(ok["success"], true, "{ok}");
    for vars in [
        json!({"username": "linus", "password": "wrong-password"}),
        json!({"username": "nobody", "password": PASSWORD}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
        json!({"password": PASSWORD}),
    ] {
        let reply = login(&gate, vars.clone()).await;
        assert_eq!(codes(&reply), ["invalid_credentials"], "{vars}");
        assert!(reply["token"].is_null());
    }
}

#[tokio::test]
async fn login_fields_and_unverified_login_are_configurable() {
    let sink = SmtpSink::start().await;
    let gate = start(
        &sink,
        None,
        &[
            ("AUTHGATE_ACCOUNTS__LOGIN_FIELDS", "email"),
            ("AUTHGATE_ACCOUNTS__ALLOW_UNVERIFIED_LOGIN", "false"),
        ],
    )
    .await;
    let reg = register(
        &gate,
        "strict@example.com",
        Some("strict"),
        PASSWORD,
        PASSWORD,
    )
    .await;
    assert_eq!(reg["success"], true);
    assert!(
        reg["token"].is_null(),
        "no token before verification: {reg}"
    );

    let reply = login(
        &gate,
        json!({"email": "strict@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(codes(&reply), ["not_verified"]);
    let reply = login(&gate, json!({"username": "strict", "password": PASSWORD})).await;
    assert_eq!(
        codes(&reply),
        ["invalid_credentials"],
        "username login is off"
    );

    let token = sink
        .wait_for("strict@example.com", 1)
        .await
        .token("/activate/")
        .unwrap();
    gate.graphql_as(VERIFY, json!({"token": token}), None).await;
    let reply = login(
        &gate,
        json!({"email": "strict@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(reply["success"], true);
}

#[tokio::test]
async fn email_tokens_refuse_forgery_and_expire() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[("AUTHGATE_ACCOUNTS__ACTIVATION_TTL", "1s")]).await;
    register(&gate, "exp@example.com", None, PASSWORD, PASSWORD).await;
    let token = sink
        .wait_for("exp@example.com", 1)
        .await
        .token("/activate/")
        .unwrap();
    // Issued before the mail came: it expires at this second at the latest.
    let expires_at = authgate::jwt::unix_now() + 1;

    for forged in ["", "x", "a.b", &format!("{token}x"), &token[1..]] {
        let reply = gate
            .graphql_as(VERIFY, json!({"token": forged}), None)
            .await;
        assert_eq!(
            codes(&reply["data"]["verifyAccount"]),
            ["invalid_token"],
            "{forged:?}"
        );
    }
    sleep_past(expires_at).await;
    let reply = gate.graphql_as(VERIFY, json!({"token": token}), None).await;
    assert_eq!(codes(&reply["data"]["verifyAccount"]), ["expired_token"]);

    // A new one, asked for by email, works (and unknown emails answer the same).
    let resend =
        "mutation S($email: String!) { resendActivationEmail(email: $email) { success errors } }";
    for email in ["exp@example.com", "unknown@example.com"] {
        let reply = gate.graphql_as(resend, json!({"email": email}), None).await;
        assert_eq!(
            reply["data"]["resendActivationEmail"]["success"], true,
            "{email}"
        );
    }
    let mail = sink.wait_for("exp@example.com", 2).await;
    assert!(sink.mails_to("unknown@example.com").is_empty());
    let fresh = mail.token("/activate/").unwrap();
    assert_ne!(fresh, token);
    let reply = gate.graphql_as(VERIFY, json!({"token": fresh}), None).await;
    // The fresh token is also short-lived: it verifies, or (on a slow machine) has expired,
    // but its signature is good.
    let payload = &reply["data"]["verifyAccount"];
    assert!(
        payload["success"] == true || codes(payload) == ["expired_token"],
        "{reply}"
    );
}

#[tokio::test]
async fn update_account_needs_a_verified_login() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    let update = "mutation U($first: String, $username: String) {
        updateAccount(firstName: $first, lastName: \"Lovelace\", username: $username) {
          success errors user { firstName lastName fullName username } } }";

    let reply = gate.graphql_as(update, json!({"first": "Ada"}), None).await;
    assert_eq!(codes(&reply["data"]["updateAccount"]), ["unauthenticated"]);

    let reg = register(&gate, "upd@example.com", Some("upd"), PASSWORD, PASSWORD).await;
    let early = reg["token"].as_str().unwrap().to_string();
    let reply = gate
        .graphql_as(update, json!({"first": "Ada"}), Some(&early))
        .await;
    assert_eq!(codes(&reply["data"]["updateAccount"]), ["not_verified"]);

    let token = sink
        .wait_for("upd@example.com", 1)
        .await
        .token("/activate/")
        .unwrap();
    gate.graphql_as(VERIFY, json!({"token": token}), None).await;
    register(
        &gate,
        "other@example.com",
        Some("other"),
        PASSWORD,
        PASSWORD,
    )
    .await;

    let reply = gate
        .graphql_as(update, json!({"first": "Ada"}), Some(&early))
        .await;
    let payload = &reply["data"]["updateAccount"];
    assert_eq!(payload["success"], true, "{reply}");
    assert_eq!(payload["user"]["fullName"], "Ada Lovelace");
    let reply = gate
        .graphql_as(update, json!({"username": "OTHER"}), Some(&early))
        .await;
    assert_eq!(codes(&reply["data"]["updateAccount"]), ["unique"]);
    let reply = gate
        .graphql_as(update, json!({"username": "ada_l"}), Some(&early))
        .await;
    assert_eq!(reply["data"]["updateAccount"]["user"]["username"], "ada_l");
    let again = login(&gate, json!({"username": "ada_l", "password": PASSWORD})).await;
    assert_eq!(again["success"], true);
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_make_one_account() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    let attempts = (0..6).map(|i| {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        register(&gate, email, None, PASSWORD, PASSWORD)
    });
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r["success"] == true).count();
    assert_eq!(wins, 1, "{results:?}");
    for loser in results.iter().filter(|r| r["success"] == false) {
        assert_eq!(field_codes(loser, "email"), ["unique"], "{loser}");
    }
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn smtp_failure_is_email_fail_and_leaves_the_email_free() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    sink.refuse(true);
    let reply = register(&gate, "mailfail@example.com", None, PASSWORD, PASSWORD).await;
    assert_eq!(codes(&reply), ["email_fail"], "{reply}");
    assert!(reply["token"].is_null());
    let available = gate
        .graphql_as(
            "query A($e: String!) { emailAvailable(email: $e) }",
            json!({"e": "mailfail@example.com"}),
            None,
        )
        .await;
    assert_eq!(available["data"]["emailAvailable"], true, "{available}");
    let reply = login(
        &gate,
        json!({"email": "mailfail@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(codes(&reply), ["invalid_credentials"]);

    sink.refuse(false);
    let reply = register(&gate, "mailfail@example.com", None, PASSWORD, PASSWORD).await;
    assert_eq!(reply["success"], true, "{reply}");
}

#[tokio::test]
async fn smtp_down_is_email_fail() {
    // Nothing listens on this port.
    let port = free_port();
    let mut gate = Authgate::builder()
        .env("AUTHGATE_EMAIL__TRANSPORT", "smtp")
        .env("AUTHGATE_EMAIL__SMTP_HOST", "127.0.0.1")
        .env("AUTHGATE_EMAIL__SMTP_PORT", &port.to_string())
        .env("AUTHGATE_EMAIL__SMTP_TLS", "none")
        .start(None)
        .await;
    let reply = register(&gate, "down@example.com", None, PASSWORD, PASSWORD).await;
    assert_eq!(codes(&reply), ["email_fail"], "{reply}");
    gate.assert_healthy().await;
}

#[tokio::test]
async fn accounts_survive_a_hard_restart() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    let reg = register(
        &gate,
        "durable@example.com",
        Some("durable"),
        PASSWORD,
        PASSWORD,
    )
    .await;
    assert_eq!(reg["success"], true);
    // SIGKILL right after the acknowledgement: the write was flushed before it.
    let dir = gate.kill();
    let gate = Authgate::builder().smtp(&sink).dir(dir).start(None).await;
    let reply = login(&gate, json!({"username": "durable", "password": PASSWORD})).await;
    assert_eq!(reply["success"], true, "{reply}");
}

#[tokio::test]
async fn unknown_users_cost_as_much_as_wrong_passwords() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    register(&gate, "timing@example.com", None, PASSWORD, PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7 {
        for (email, into) in [
            ("timing@example.com", &mut known),
            (&*format!("nobody{i}@example.com"), &mut unknown),
        ] {
            let start = Instant::now();
            let reply = login(&gate, json!({"email": email, "password": "Wrong-Pass-123"})).await;
            into.push(start.elapsed());
            assert_eq!(codes(&reply), ["invalid_credentials"]);
        }
    }
    known.sort();
    unknown.sort();
    let ratio = unknown[3].as_secs_f64() / known[3].as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "median unknown/known = {ratio:.2} ({unknown:?} vs {known:?})"
    );
}

#[tokio::test]
async fn email_available_can_be_switched_off() {
    let sink = SmtpSink::start().await;
    let gate = start(
        &sink,
        None,
        &[("AUTHGATE_ACCOUNTS__EMAIL_AVAILABLE", "false")],
    )
    .await;
    let reply = gate
        .graphql("{ emailAvailable(email: \"x@example.com\") }")
        .await;
    assert!(reply["data"].is_null(), "{reply}");
    assert_eq!(reply["errors"][0]["extensions"]["code"], "forbidden");
}

#[tokio::test]
async fn user_create_works_with_and_without_a_running_server() {
    let sink = SmtpSink::start().await;
    let gate = start(&sink, None, &[]).await;
    let config = gate.dir.path().join("authgate.toml");
    let create = |email: &str, extra: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["user", "create", "--config"])
            .arg(&config)
            .args(["--email", email])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // The server holds the store: the CLI goes through the admin listener.
    let out = create(
        "ops@example.com",
        &[
            "--staff",
            "--verified",
            "--role",
            "ops",
            "--username",
            "ops",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = create("OPS@example.com", &[], &format!("{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unique") && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = create("weak@example.com", &[], "password\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password_too_common"));

    let auth = login(&gate, json!({"username": "ops", "password": PASSWORD})).await;
    assert_eq!(auth["success"], true, "{auth}");
    let me = gate.graphql_as(ME, json!({}), auth["token"].as_str()).await;
    assert_eq!(me["data"]["me"]["isStaff"], true);
    assert_eq!(me["data"]["me"]["verified"], true);
    assert_eq!(me["data"]["me"]["roles"], json!(["ops"]));
    assert!(
        sink.mails().is_empty(),
        "operator-made accounts get no activation mail"
    );

    // With the server stopped, the CLI opens the store itself.
    let dir = gate.kill();
    let config = dir.path().join("authgate.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["user", "create", "--no-password", "--config"])
        .arg(&config)
        .args(["--email", "offline@example.com"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gate = Authgate::builder().smtp(&sink).dir(dir).start(None).await;
    let available = gate
        .graphql("{ emailAvailable(email: \"offline@example.com\") }")
        .await;
    assert_eq!(available["data"]["emailAvailable"], false);
    // Without a password nobody can log in to it.
    let reply = login(
        &gate,
        json!({"email": "offline@example.com", "password": ""}),
    )
    .await;
    assert_eq!(codes(&reply), ["invalid_credentials"]);
}
