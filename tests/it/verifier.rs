//! Verifier mode: a real gateway and real verifier processes on loopback, in front of a real
//! upstream. Tokens come from the gateway's GraphQL API; the verifiers learn its keys from its
//! JWKS (or a PEM file) and check tokens on their own.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

async fn gateway(upstream: &Upstream) -> Authgate {
    Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .start(Some(upstream))
        .await
}

fn jwks_url(gate: &Authgate) -> String {
    gate.url("/.well-known/jwks.json")
}

/// A verifier of `gateway` with its own routes (default: everything to `upstream`).
fn verifier(gateway: &Authgate, routes: Option<&str>) -> Builder {
    Authgate::builder()
        .routes(routes.unwrap_or("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n"))
        .verifier(&jwks_url(gateway), &gateway.base)
        .env("AUTHGATE_JWT__JWKS_MIN_INTERVAL", "1s")
}

/// Registers an account at the gateway and returns its access token and user id.
async fn register(gate: &Authgate, email: &str) -> (String, String) {
    let reply = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors token } }",
            serde_json::json!({ "e": email, "p": PASSWORD }),
            None,
        )
        .await;
    let token = reply["data"]["register"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    let verified = gate
        .graphql_as("{ verifyToken: me { id } }", Value::Null, Some(&token))
        .await;
    let id = verified["data"]["verifyToken"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (token, id)
}

async fn get(gate: &Authgate, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(gate.url(path));
    if let Some(token) = token {
        req = req.header("authorization", bearer(token));
    }
    req.send().await.unwrap()
}

/// The sum of every sample of `name` (with any labels) whose line also contains `labels`.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// How many key loads the verifier `v` counts as failed.
async fn failed_loads(v: &Authgate) -> f64 {
    metric(
        &v.metrics().await,
        "authgate_key_loads_total",
        "result=\"failed\"",
    )
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// After a rotation at `gate`: a new account's token once the gateway signs with another key
/// than `old_token`'s (it polls its key directory every 2 s); verifier `v`, which has never
/// seen that kid, must load the JWKS again and take it, and still take `old_token`.
async fn rotation_reaches(gate: &Authgate, v: &Authgate, old_token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let new_token = loop {
        n += 1;
        let (token, _) = register(gate, &format!("new{n}@example.com")).await;
        if kid_of(&token) != kid_of(old_token) {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway still signs with the old key"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let new = &new_token;
    eventually(
        Duration::from_secs(5),
        "the verifier takes the new kid",
        move || async move { get(v, "/x", Some(new)).await.status() == 200 },
    )
    .await;
    assert_eq!(
        get(v, "/x", Some(old_token)).await.status(),
        200,
        "the old key stays published"
    );
    new_token
}

#[tokio::test]
async fn a_gateway_token_passes_two_verifiers() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    // One verifier lets the gateway's account API through (a route names it); the other not.
    let routes = "[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n\n\
                  [[routes]]\nprefix = \"/graphql\"\nupstream = \"127.0.0.1:GATEWAY\"\nauth = \"none\"\n"
        .replace("GATEWAY", &gate.port.to_string());
    let mut first = verifier(&gate, Some(&routes)).start(Some(&upstream)).await;
    let mut second = verifier(&gate, None).start(Some(&upstream)).await;
    let (token, user_id) = register(&gate, "ada@example.com").await;

    for v in [&first, &second] {
        let resp = client()
            .get(v.url("/orders?page=2"))
            .header("authorization", bearer(&token))
            .header("x-auth-user-id", "admin")
            .header("x-auth-staff", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let seen_doc: Value = resp.json().await.unwrap();
        assert_eq!(seen(&seen_doc, "x-auth-user-id"), vec![user_id.clone()]);
        assert_eq!(seen(&seen_doc, "x-auth-email"), vec!["ada@example.com"]);
        assert_eq!(seen(&seen_doc, "x-auth-staff"), vec!["false"]);
        assert_eq!(seen(&seen_doc, "x-auth-method"), vec!["jwt"]);
        assert_eq!(seen_doc["query"], "page=2");

        // The verifier publishes what it verifies with: the gateway's keys.
        let theirs: Value = get(&gate, "/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        let ours: Value = get(v, "/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(ours, theirs);

        // Attacks get the same answers as at the gateway.
        let resp = get(v, "/orders", None).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            r#"Bearer realm="authgate""#
        );
        let forged = forge_with_kid(&token, &kid_of(&token));
        let resp = get(v, "/orders", Some(&forged)).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        let resp = client()
            .get(v.url("/orders"))
            .header("x-api-key", "agk_anything")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "API keys are the gateway's to check");
    }

    // The gateway's own paths: proxied where a route names them, 404 elsewhere.
    let me = serde_json::json!({ "query": "{ me { email } }" });
    let resp = client()
        .post(first.url("/graphql"))
        .header("authorization", bearer(&token))
        .json(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["me"]["email"], "ada@example.com", "{body}");
    for path in ["/graphql", "/activate/abc", "/password/reset?token=x"] {
        let resp = get(&second, path, Some(&token)).await;
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
    let resp = get(&first, "/activate/abc", None).await;
    assert_eq!(resp.status(), 404, "no route names /activate on the first");

    // A verifier keeps nothing on disk.
    for v in [&first, &second] {
        assert!(!v.dir.path().join("data").exists());
        assert!(!v.keys_dir().exists());
    }
    first.assert_healthy().await;
    second.assert_healthy().await;
}

#[tokio::test]
async fn rotated_keys_reach_running_verifiers() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    let v = verifier(&gate, None).start(Some(&upstream)).await;
    let (old_token, _) = register(&gate, "old@example.com").await;
    assert_eq!(get(&v, "/x", Some(&old_token)).await.status(), 200);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["keys", "rotate", "--config"])
        .arg(gate.config_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let new_kid = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let new_token = rotation_reaches(&gate, &v, &old_token).await;
    assert_eq!(kid_of(&new_token), new_kid);
    let text = v.metrics().await;
    assert!(
        metric(&text, "authgate_key_loads_total", "result=\"changed\"") >= 2.0,
        "{text}"
    );
}

#[tokio::test]
async fn verifiers_keep_the_cached_keys_while_the_gateway_is_down() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    let mut v = verifier(&gate, None)
        .env("AUTHGATE_JWT__JWKS_REFRESH", "1s")
        .start(Some(&upstream))
        .await;
    let (token, _) = register(&gate, "ada@example.com").await;
    let forged_kid = forge_with_kid(&token, "no-such-kid");
    drop(gate.kill());

    // Refreshes fail now; the keys stay, and so does readiness.
    let wait = Instant::now();
    let vr = &v;
    eventually(
        Duration::from_secs(10),
        "failed refreshes are counted",
        move || async move { failed_loads(vr).await >= 2.0 },
    )
    .await;
    assert!(wait.elapsed() >= Duration::from_secs(1));
    let resp = get(&v, "/x", Some(&token)).await;
    assert_eq!(resp.status(), 200);
    let ready = client()
        .get(format!("{}/readyz", v.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // An unknown kid with the gateway gone: a quick 401, not a hang.
    let start = Instant::now();
    let resp = get(&v, "/x", Some(&forged_kid)).await;
    assert_eq!(resp.status(), 401);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    v.assert_healthy().await;
}

#[tokio::test]
async fn made_up_kids_fetch_at_most_once_per_interval() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    let v = verifier(&gate, None)
        .env("AUTHGATE_JWT__JWKS_MIN_INTERVAL", "2s")
        .start(Some(&upstream))
        .await;
    let (token, _) = register(&gate, "ada@example.com").await;
    let before = metric(&gate.metrics().await, "authgate_jwks_requests_total", "");

    // About 4 s of tokens with a fresh random kid each, 8 at a time.
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                let forged = forge_with_kid(&token, &uuid::Uuid::new_v4().to_string());
                let url = v.url("/x");
                tokio::spawn(async move {
                    client()
                        .get(url)
                        .header("authorization", bearer(&forged))
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for status in batch {
            assert_eq!(status.await.unwrap(), 401);
            sent += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let fetches = metric(&gate.metrics().await, "authgate_jwks_requests_total", "") - before;
    let allowed = (elapsed / 2.0).ceil() + 1.0;
    assert!(fetches >= 1.0, "an unknown kid does make the verifier look");
    assert!(
        fetches <= allowed,
        "{sent} made-up kids in {elapsed:.1}s caused {fetches} JWKS fetches (at most {allowed})"
    );
    let text = v.metrics().await;
    assert!(metric(&text, "authgate_key_loads_total", "result=\"throttled\"") > 0.0);
    assert_eq!(get(&v, "/x", Some(&token)).await.status(), 200);
}

/// A JWKS endpoint that misbehaves on demand: the failures a real gateway cannot be made to
/// show (garbage, oversized answers, silence), in front of the real gateway's document.
#[derive(Clone, Default)]
struct Script {
    status: u16,
    body: Vec<u8>,
    hang: bool,
}

async fn scripted_jwks(script: Arc<Mutex<Script>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let now = script.lock().unwrap().clone();
                        async move {
                            if now.hang {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(now.status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(now.body)))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn not_ready_until_keys_load_and_bad_documents_change_nothing() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    let (token, _) = register(&gate, "ada@example.com").await;
    let real = get(&gate, "/.well-known/jwks.json", None)
        .await
        .bytes()
        .await
        .unwrap();
    let script = Arc::new(Mutex::new(Script {
        status: 503,
        body: b"{}".to_vec(),
        hang: false,
    }));
    let url = scripted_jwks(script.clone()).await;
    let mut v = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .verifier(&url, &gate.base)
        .env(
            "AUTHGATE_JWT__REVOCATIONS_URL",
            &gate.url("/.well-known/revocations.json"),
        )
        .env("AUTHGATE_JWT__JWKS_MIN_INTERVAL", "1s")
        .env("AUTHGATE_JWT__JWKS_REFRESH", "1s")
        .start_unready(Some(&upstream))
        .await;

    // No keys yet: not ready, and tokens cannot be judged (503, not 401). The revocation list
    // comes from the gateway, which is up, so it may be named only until its first poll lands;
    // the keys stay named throughout.
    let readyz = format!("{}/readyz", v.admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = client().get(&readyz).send().await {
            assert_eq!(resp.status(), 503);
            let answer: Value = resp.json().await.unwrap();
            let failing = answer["failing"].as_array().cloned().unwrap_or_default();
            assert!(failing.contains(&Value::from("keys")), "{answer}");
            if failing == [Value::from("keys")] {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "readyz never named the keys alone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["health", "--config"])
        .arg(v.config_path())
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1), "{health:?}");
    let resp = get(&v, "/x", Some(&token)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        get(&v, "/x", None).await.status(),
        401,
        "no credential: still 401"
    );

    // The gateway's document appears: ready, and the token passes.
    *script.lock().unwrap() = Script {
        status: 200,
        body: real.to_vec(),
        hang: false,
    };
    v.wait_ready().await;
    assert_eq!(get(&v, "/x", Some(&token)).await.status(), 200);
    let health = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["health", "--config"])
        .arg(v.config_path())
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");

    // Garbage, a document without usable keys, an oversized one, silence: each load fails and
    // the keys in service stay.
    let huge = format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(300 * 1024));
    let bad: [(&[u8], bool); 5] = [
        (b"<html>not json</html>", false),
        (br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#, false),
        (
            br#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"}]}"#,
            false,
        ),
        (huge.as_bytes(), false),
        (b"", true),
    ];
    for (body, hang) in bad {
        let failed = failed_loads(&v).await;
        *script.lock().unwrap() = Script {
            status: 200,
            body: body.to_vec(),
            hang,
        };
        let vr = &v;
        eventually(
            Duration::from_secs(15),
            "a failed load",
            move || async move { failed_loads(vr).await > failed },
        )
        .await;
        let start = Instant::now();
        assert_eq!(get(&v, "/x", Some(&token)).await.status(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "verifying waits for no fetch"
        );
        let ready = client().get(&readyz).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
    v.assert_healthy().await;
}

#[tokio::test]
async fn a_pem_file_can_stand_in_for_the_jwks() {
    let upstream = Upstream::start().await;
    let gate = gateway(&upstream).await;
    let (token, _) = register(&gate, "ada@example.com").await;
    let reply = gate.graphql("{ publicKey }").await;
    let pem = reply["data"]["publicKey"].as_str().unwrap().to_string();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("gateway.pem");
    std::fs::write(&file, &pem).unwrap();

    let v = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .env("AUTHGATE_MODE", "verifier")
        .env("AUTHGATE_JWT__PUBLIC_KEY_FILE", file.to_str().unwrap())
        .env("AUTHGATE_JWT__ISSUER", &gate.base)
        .start(Some(&upstream))
        .await;
    assert_eq!(get(&v, "/x", Some(&token)).await.status(), 200);

    // Another key in the file: the gateway's tokens stop passing.
    let other = authgate::keys::generate(files.path(), 2048).unwrap();
    std::fs::write(&file, &other.public_pem).unwrap();
    let (vr, old) = (&v, &token);
    eventually(
        Duration::from_secs(10),
        "the new file is read",
        move || async move { get(vr, "/x", Some(old)).await.status() == 401 },
    )
    .await;
    // A broken file keeps the keys in service.
    let failed = failed_loads(&v).await;
    std::fs::write(&file, "-----BEGIN PUBLIC KEY-----\nbroken\n").unwrap();
    eventually(
        Duration::from_secs(10),
        "the broken file is read (and fails)",
        move || async move { failed_loads(vr).await > failed },
    )
    .await;
    let theirs: Value = get(&v, "/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["keys"][0]["kid"], other.kid);

    // At start, a file that cannot be used stops the server with exit code 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve", "--config"])
        .arg(v.config_path())
        .env("AUTHGATE_MODE", "verifier")
        .env("AUTHGATE_JWT__PUBLIC_KEY_FILE", file.to_str().unwrap())
        .env("AUTHGATE_JWT__ISSUER", &gate.base)
        .env("AUTHGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("AUTHGATE_SERVER__ADMIN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jwt.public_key_file"), "{err}");
}

/// `token` with its header's `kid` replaced and its signature kept: what an attacker can make.
fn forge_with_kid(token: &str, kid: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, claims, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": kid });
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{header}.{claims}.{signature}")
}

/// Lays out `files` the way the kubelet mounts a Secret: the files in a timestamped directory,
/// `..data` pointing at it, and one symlink per file through `..data`. A second call is an
/// update: a new directory, `..data` swapped atomically, the old directory removed.
fn mount_like_a_secret(dir: &std::path::Path, version: &str, files: &std::path::Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    let previous = std::fs::read_link(dir.join("..data")).ok();
    for entry in std::fs::read_dir(files).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let copy = versioned.join(&name);
        std::fs::copy(entry.path(), &copy).unwrap();
        // What `defaultMode: 0440` with an fsGroup gives.
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o440)).unwrap();
        let link = dir.join(&name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(std::path::Path::new("..data").join(&name), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if let Some(previous) = previous {
        std::fs::remove_dir_all(dir.join(previous)).unwrap();
    }
}

#[tokio::test]
async fn keys_from_a_kubernetes_secret_rotate_through_to_verifiers() {
    let upstream = Upstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let (staging, secret) = (work.path().join("staging"), work.path().join("secret"));
    std::fs::create_dir_all(&secret).unwrap();
    let authgate = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let staging_arg = staging.to_str().unwrap();
    authgate(&["keys", "generate", "--dir", staging_arg]);
    mount_like_a_secret(&secret, "v1", &staging);

    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .env("AUTHGATE_JWT__KEYS_DIR", secret.to_str().unwrap())
        .start(Some(&upstream))
        .await;
    let v = verifier(&gate, None).start(Some(&upstream)).await;
    let (old_token, _) = register(&gate, "old@example.com").await;
    assert_eq!(get(&v, "/x", Some(&old_token)).await.status(), 200);

    // The operator's rotation: a new key beside the current one, the Secret updated.
    authgate(&["keys", "generate", "--dir", staging_arg]);
    mount_like_a_secret(&secret, "v2", &staging);
    rotation_reaches(&gate, &v, &old_token).await;
}
