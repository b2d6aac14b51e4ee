//! The command line with a database: `store migrate` from a gateway's sled store into
//! PostgreSQL (what comes along, counted; run again, nothing overwritten), and `user create`
//! straight into the database while replicas run.

use std::process::{Command, Output, Stdio};

use crate::common::postgres::PgServer;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";

fn authgate(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_sled_store_migrates_to_postgres_with_everything_and_again_without_overwriting() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let url = server.database().await;
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let routes = "[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n";

    // One gateway on sled: an account, a rotated session, an API key, a reset link in flight.
    let gate = Authgate::builder()
        .smtp(&sink)
        .routes(routes)
        .start(Some(&upstream))
        .await;
    let reg = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p, username: \"ada\") { success errors } }",
            json!({"e": "ada@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
    verify_by_mail(&gate, &sink, "ada@example.com", 1).await;
    let login = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success token refreshToken } }",
            json!({"e": "ada@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    let login = &login["data"]["tokenAuth"];
    let access = login["token"].as_str().unwrap().to_string();
    let r1 = login["refreshToken"].as_str().unwrap().to_string();
    let refresh =
        "mutation R($t: String) { refreshToken(refreshToken: $t) { success errors refreshToken } }";
    let rotated = gate.graphql_as(refresh, json!({"t": r1}), None).await;
    let r2 = rotated["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let made = gate
        .graphql_as(
            "mutation { createApiKey(name: \"ci\") { success key } }",
            json!({}),
            Some(&access),
        )
        .await;
    let key = made["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let asked = gate
        .graphql_as(
            "mutation { sendPasswordResetEmail(email: \"ada@example.com\") { success } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(asked["data"]["sendPasswordResetEmail"]["success"], true);
    let reset = sink
        .wait_for("ada@example.com", 2)
        .await
        .token("/password/reset")
        .unwrap();

    // While the server holds the store, migrating is refused.
    let config = gate.config_path();
    let config = config.to_str().unwrap().to_string();
    let busy = authgate(
        &["store", "migrate", "--config", &config, "--to", &url],
        None,
        &[],
    );
    assert_eq!(busy.status.code(), Some(1), "{busy:?}");
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("stop the server"),
        "{busy:?}"
    );
    let dir = gate.kill();

    let first = authgate(
        &["store", "migrate", "--config", &config, "--to", &url],
        None,
        &[],
    );
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let said = stdout(&first);
    assert!(said.contains("users: 1 in the store, 1 copied"), "{said}");
    assert!(
        said.contains("api keys: 1 in the store, 1 copied"),
        "{said}"
    );
    let (tokens, copied, _) = counts(&said, "refresh tokens");
    assert!(tokens >= 2 && copied == tokens, "{said}");
    assert!(said.contains("email_token_key: copied"), "{said}");
    assert!(said.contains("seal_key: copied"), "{said}");
    assert!(said.contains("verified"), "{said}");
    assert!(!said.contains(server_password()), "no password: {said}");

    let again = authgate(
        &["store", "migrate", "--config", &config, "--to", &url],
        None,
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    let said = stdout(&again);
    assert!(
        said.contains("users: 1 in the store, 0 copied, 1 already in the database"),
        "{said}"
    );
    assert_eq!(
        counts(&said, "refresh tokens"),
        (tokens, 0, tokens),
        "{said}"
    );
    assert!(
        said.contains("email_token_key: already in the database"),
        "{said}"
    );

    // A replica on the database: the account, its password, its key, its reset link.
    let replica = Authgate::builder()
        .smtp(&sink)
        .routes(routes)
        .env("AUTHGATE_STORAGE__DATABASE_URL", &url)
        .env(
            "AUTHGATE_JWT__KEYS_DIR",
            &dir.path().join("keys").display().to_string(),
        )
        .start(Some(&upstream))
        .await;
    let resp = client()
        .get(replica.url("/api/jobs"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the API key came along");
    // The spent r1 came along: presenting it is reuse, which revokes r2 as well.
    let reuse = replica.graphql_as(refresh, json!({"t": r1}), None).await;
    assert_eq!(code(&reuse["data"]["refreshToken"]), "invalid_token");
    let after = replica.graphql_as(refresh, json!({"t": r2}), None).await;
    assert_eq!(
        code(&after["data"]["refreshToken"]),
        "invalid_token",
        "{after}"
    );
    let done = replica
        .graphql_as(
            "mutation P($t: String!, $p: String!) { passwordReset(token: $t, newPassword1: $p, newPassword2: $p) { success errors } }",
            json!({"t": reset, "p": "Another-Pass-77"}),
            None,
        )
        .await;
    assert_eq!(done["data"]["passwordReset"]["success"], true, "{done}");
    let relogin = replica
        .graphql_as(
            "mutation { tokenAuth(username: \"ada\", password: \"Another-Pass-77\") { success errors } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(relogin["data"]["tokenAuth"]["success"], true, "{relogin}");

    // user create goes straight to the database while the replica runs (the same
    // configuration: the database URL from the environment, as in a pod).
    let database = [("AUTHGATE_STORAGE__DATABASE_URL", url.as_str())];
    let replica_config = replica.config_path();
    let created = authgate(
        &[
            "user",
            "create",
            "--config",
            replica_config.to_str().unwrap(),
            "--email",
            "ops@example.com",
            "--staff",
            "--verified",
        ],
        Some("Ops-Pass-2026!\n"),
        &database,
    );
    assert_eq!(created.status.code(), Some(0), "{created:?}");
    assert!(stdout(&created).contains("ops@example.com"));
    let ops = replica
        .graphql_as(
            "mutation { tokenAuth(email: \"ops@example.com\", password: \"Ops-Pass-2026!\") { success errors } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(ops["data"]["tokenAuth"]["success"], true, "{ops}");
    let taken = authgate(
        &[
            "user",
            "invite",
            "--config",
            replica_config.to_str().unwrap(),
            "--email",
            "ADA@example.com",
        ],
        None,
        &database,
    );
    assert_eq!(taken.status.code(), Some(1), "{taken:?}");
    assert!(
        !replica.dir.path().join("data").exists(),
        "nothing under data_dir"
    );
}

/// (in the store, copied, already there) of the line about `what`.
fn counts(said: &str, what: &str) -> (usize, usize, usize) {
    let line = said
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{what}: ")))
        .unwrap_or_else(|| panic!("no {what} line: {said}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

fn server_password() -> &'static str {
    crate::common::postgres::PASSWORD
}

#[tokio::test]
async fn migrate_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n",
            dir.path().join("none").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let nothing = authgate(
        &[
            "store",
            "migrate",
            "--config",
            config,
            "--to",
            "postgres://x@127.0.0.1/db",
        ],
        None,
        &[],
    );
    assert_eq!(nothing.status.code(), Some(1), "{nothing:?}");
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no embedded store"));
    assert!(!dir.path().join("none").exists(), "nothing created");
    // A database URL the driver cannot use is a bad config: exit 2, naming the key.
    let bad = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve", "--config", config])
        .env(
            "AUTHGATE_STORAGE__DATABASE_URL",
            "postgres://app:s3cret-pw@db.internal/auth?sslmode=sometimes",
        )
        .env("AUTHGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("AUTHGATE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .env(
            "AUTHGATE_JWT__KEYS_DIR",
            dir.path().join("keys").display().to_string(),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("storage.database_url") && err.contains("sslmode"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
    // check-config shows a database URL without its password.
    let shown = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["check-config", "--config", config])
        .env(
            "AUTHGATE_STORAGE__DATABASE_URL",
            "postgres://app:s3cret-pw@db.internal:5432/auth?sslmode=require",
        )
        .output()
        .unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let text = stdout(&shown);
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(
        text.contains("postgres://app:<redacted>@db.internal:5432/auth?sslmode=require"),
        "{text}"
    );
}
