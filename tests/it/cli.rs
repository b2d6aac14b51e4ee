//! The command line: exit codes, one-line errors that name the key, key files.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use crate::common::*;

fn authgate(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_config_exits_2_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("[server]\nlisten = \"localhost\"\n", "server.listen"),
        ("[jwt]\naccess_ttl = \"forever\"\n", "jwt.access_ttl"),
        ("[graphql]\nmax_depth = \"deep\"\n", "graphql.max_depth"),
        (
            "[[routes]]\nprefix = \"/\"\nupstream = \"127.0.0.1:1\"\nauth = \"sometimes\"\n",
            "routes[0].auth",
        ),
        ("[server]\nlisen = \"127.0.0.1:1\"\n", "server"),
        ("[server\n", "line 1"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        for command in ["serve", "check-config"] {
            let out = authgate(
                &[command, "--config", path.to_str().unwrap()],
                &[],
                dir.path(),
            );
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} {text}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            assert!(err.contains(key), "{err} should name {key}");
        }
    }
    let out = authgate(
        &["check-config"],
        &[("AUTHGATE_JWT__LEEWAY", "soon")],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("AUTHGATE_JWT__LEEWAY"),
        "{}",
        stderr(&out)
    );

    let out = authgate(
        &["check-config", "--config", "/nonexistent.toml"],
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = authgate(&["serve", "--bogus"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_prints_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = authgate(
        &["check-config"],
        &[
            (
                "AUTHGATE_STORAGE__REDIS_URL",
                "redis://app:hunter2@127.0.0.1:6379/0",
            ),
            ("AUTHGATE_EMAIL__SMTP_PASSWORD", "s3cret"),
            ("AUTHGATE_JWT__ACCESS_TTL", "5m"),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
    assert!(text.contains("access_ttl = \"5m\""), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    let parsed: toml::Table = text.parse().unwrap();
    assert_eq!(parsed["mode"].as_str(), Some("gateway"));
}

#[test]
fn keys_generate_writes_a_private_0600_pair_and_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = authgate(
        &["keys", "generate", "--dir", "k", "--bits", "3072"],
        &[],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let kid = line.split_whitespace().next().unwrap().to_string();
    assert_eq!(kid.len(), 43, "base64url SHA-256: {kid}");
    let mut private = 0;
    for entry in std::fs::read_dir(dir.path().join("k")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if name.ends_with(".key.pem") {
            private += 1;
            assert_eq!(mode, 0o600, "{name}");
        } else {
            assert!(name.ends_with(".pub.pem"), "{name}");
        }
    }
    assert_eq!(private, 1);

    let out = authgate(
        &["keys", "list"],
        &[("AUTHGATE_JWT__KEYS_DIR", "k")],
        dir.path(),
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains(&kid) && listing.contains("3072 bits"),
        "{listing}"
    );

    let out = authgate(&["keys", "generate", "--bits", "1024"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_world_readable_private_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = authgate(&["keys", "generate", "--dir", "keys"], &[], dir.path());
    assert!(out.status.success());
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = authgate(
        &["serve"],
        &[
            ("AUTHGATE_SERVER__LISTEN", "127.0.0.1:0"),
            ("AUTHGATE_SERVER__ADMIN_LISTEN", "127.0.0.1:1"),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_taken_port_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = authgate(
        &["serve"],
        &[("AUTHGATE_SERVER__LISTEN", &addr)],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("server.listen") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn one_port_for_both_listeners_is_refused_but_port_0_for_both_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let both = |addr: &str| {
        authgate(
            &["check-config"],
            &[
                ("AUTHGATE_SERVER__LISTEN", addr),
                ("AUTHGATE_SERVER__ADMIN_LISTEN", addr),
            ],
            dir.path(),
        )
    };
    let out = both("127.0.0.1:7000");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("server.admin_listen"),
        "{}",
        stderr(&out)
    );
    let out = both("127.0.0.1:0");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every harnessed server runs so (see `common::Builder::start_unready`); this is what it
/// relies on, said once.
#[tokio::test]
async fn listeners_on_port_0_are_reported_held_and_named_by_the_public_url() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;
    let admin: std::net::SocketAddr = gate.admin.trim_start_matches("http://").parse().unwrap();
    assert_ne!(gate.port, 0);
    assert_ne!(admin.port(), 0);
    let log = gate.log();
    assert!(
        log.contains(&format!(
            "authgate serving listen=127.0.0.1:{} admin={admin}",
            gate.port
        )),
        "{log}"
    );
    for taken in [format!("127.0.0.1:{}", gate.port), admin.to_string()] {
        let err = std::net::TcpListener::bind(&taken).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{taken}");
    }
    // public_url = "http://127.0.0.1:0": the issuer and the published URLs carry the real port.
    let discovery: serde_json::Value = client()
        .get(gate.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], gate.base);
    assert_eq!(discovery["jwks_uri"], gate.url("/.well-known/jwks.json"));
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let resp = client()
        .get(gate.url("/x"))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the port-0 issuer is the one checked");
}

#[test]
fn health_is_1_when_nothing_answers_or_the_config_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("127.0.0.1:{port}");
    let out = authgate(
        &["health"],
        &[("AUTHGATE_SERVER__ADMIN_LISTEN", admin.as_str())],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&admin), "{}", stderr(&out));
    // Docker reads 2 as reserved: a bad configuration is unhealthy, 1, with its reason.
    let out = authgate(&["health"], &[("AUTHGATE_JWT__LEEWAY", "soon")], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("AUTHGATE_JWT__LEEWAY"));
}
