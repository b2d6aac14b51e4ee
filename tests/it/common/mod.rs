//! Test harness: the real `authgate` binary on ephemeral ports with a temp dir, in front of a
//! real HTTP upstream that echoes what it received.
#![allow(dead_code)]

pub mod account;
pub mod backend;
pub mod dialect;
pub mod postgres;
pub mod redis;
pub mod smtp;
pub mod webdriver;

pub(crate) use backend::suite;
pub use backend::{Backend, BackendServer};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::jwt::{Claims, Subject, TokenService};
use authgate::keys::KeyRing;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A port that nothing listens on (bound, then let go): for an upstream or a relay that is
/// down. Never for something that is to listen on it later: another test may take it first.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `check` holds (polling every 50 ms), or panics with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sleeps until a token that expires at the unix second `expires_at` is expired for the server
/// (same clock): past that whole second. Time itself must pass here; no longer than that.
pub async fn sleep_past(expires_at: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let target = Duration::from_secs((expires_at + 1).max(0) as u64) + Duration::from_millis(10);
    tokio::time::sleep(target.saturating_sub(now)).await;
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A real HTTP/1.1 server that answers every request with what it saw:
/// `{"method", "path", "query", "headers": {name: [values]}}`.
/// `/big?bytes=N` answers N bytes; `/upload` answers the body's length and checksum;
/// `/ws` accepts an upgrade and echoes bytes back.
pub struct Upstream {
    pub addr: SocketAddr,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(echo))
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr }
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path == "/big" {
        let n: usize = query
            .strip_prefix("bytes=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    if path == "/ws" {
        let response = Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Full::new(Bytes::new()))
            .unwrap();
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut io = TokioIo::new(upgraded);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Ok(response);
    }
    let method = req.method().to_string();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let sum: u64 = body.iter().map(|b| *b as u64).sum();
    let doc = serde_json::json!({
        "method": method, "path": path, "query": query, "headers": headers,
        "body_len": body.len(), "body_sum": sum,
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(doc.to_string())))
        .unwrap())
}

/// One running `authgate serve`.
pub struct Authgate {
    pub base: String,
    pub admin: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub struct Builder {
    routes: String,
    env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
}

impl Builder {
    /// `[[routes]]` tables; `{upstream}` is replaced by the upstream's address.
    pub fn routes(mut self, routes: &str) -> Self {
        self.routes = routes.to_string();
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Reuse a data/keys directory (e.g. one prepared with keys).
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// A verifier that learns its keys from `jwks_url` and takes tokens of `issuer`.
    pub fn verifier(self, jwks_url: &str, issuer: &str) -> Self {
        self.env("AUTHGATE_MODE", "verifier")
            .env("AUTHGATE_JWT__JWKS_URL", jwks_url)
            .env("AUTHGATE_JWT__ISSUER", issuer)
    }

    /// Send email through a real SMTP listener.
    pub fn smtp(self, sink: &smtp::SmtpSink) -> Self {
        self.env("AUTHGATE_EMAIL__TRANSPORT", "smtp")
            .env("AUTHGATE_EMAIL__SMTP_HOST", "127.0.0.1")
            .env("AUTHGATE_EMAIL__SMTP_PORT", &sink.port.to_string())
            .env("AUTHGATE_EMAIL__SMTP_TLS", "none")
    }

    pub async fn start(self, upstream: Option<&Upstream>) -> Authgate {
        let mut gate = self.start_unready(upstream).await;
        gate.wait_ready().await;
        gate
    }

    /// Starts the process and returns once it has reported its ports, ready or not.
    ///
    /// The server is told to listen on port 0 (both listeners, and `public_url`): the kernel
    /// picks free ports in the child itself, which holds them from then on, so no other test
    /// can take them in between. The child names them in its `authgate serving` log line; the
    /// harness then writes them into `authgate.toml`, so that CLI commands given that file
    /// (`health`, `user create`, `keys rotate`) reach this server.
    pub async fn start_unready(self, upstream: Option<&Upstream>) -> Authgate {
        let dir = self.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let upstream_addr = upstream
            .map(|u| u.addr.to_string())
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        let routes = self.routes.replace("{upstream}", &upstream_addr);
        let config = |listen: &str, admin_listen: &str| {
            format!(
                r#"
[server]
listen = "{listen}"
admin_listen = "{admin_listen}"
public_url = "http://{listen}"
threads = 1
shutdown_timeout = "1s"

[storage]
data_dir = "{data}"

[jwt]
keys_dir = "{keys}"

{routes}
"#,
                data = dir.path().join("data").display(),
                keys = dir.path().join("keys").display(),
            )
        };
        let config_path = dir.path().join("authgate.toml");
        std::fs::write(&config_path, config("127.0.0.1:0", "127.0.0.1:0")).unwrap();
        // A new log: a restart on the same directory must not read the last run's ports.
        let log_path = dir.path().join("authgate.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .envs(self.env)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let (listen, admin) = match reported_ports(&mut child, &log_path).await {
            Ok(ports) => ports,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("authgate {why}:\n{log}");
            }
        };
        std::fs::write(
            &config_path,
            config(&listen.to_string(), &admin.to_string()),
        )
        .unwrap();
        Authgate {
            base: format!("http://{listen}"),
            admin: format!("http://{admin}"),
            port: listen.port(),
            dir,
            child,
        }
    }
}

/// The public and admin addresses from the child's `authgate serving` log line, once written
/// (30 s at most); an error when the child exits first.
async fn reported_ports(child: &mut Child, log: &Path) -> Result<(SocketAddr, SocketAddr), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Only whole lines: the child may be halfway through writing the last one.
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        if let Some(ports) = whole.lines().find_map(serving_line) {
            return Ok(ports);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before reporting its ports"));
        }
        if Instant::now() > deadline {
            return Err("reported no ports within 30s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `... authgate serving listen=127.0.0.1:P admin=127.0.0.1:Q ...` → (listen, admin); the
/// same line as JSON (`log.format = "json"`) has them as fields.
fn serving_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if line.starts_with('{') {
        let doc: Value = serde_json::from_str(line).ok()?;
        if doc["message"] != "authgate serving" {
            return None;
        }
        let field = |name: &str| doc[name].as_str()?.parse().ok();
        return Some((field("listen")?, field("admin")?));
    }
    let fields = line.split_once("authgate serving ")?.1;
    let field = |name: &str| {
        fields
            .split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .and_then(|value| value.parse().ok())
    };
    Some((field("listen=")?, field("admin=")?))
}

impl Authgate {
    pub fn builder() -> Builder {
        Builder {
            routes: String::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// Waits until `/readyz` answers 200 and the public listener accepts (30 s at most).
    pub async fn wait_ready(&mut self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "authgate exited with {status} before ready:\n{}",
                    self.log()
                );
            }
            if let Ok(resp) = client.get(format!("{}/readyz", self.admin)).send().await {
                let public = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
                if resp.status() == 200 && public {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("authgate not ready after 30s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("authgate.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("authgate.toml")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A token service over this server's keys, as the server itself signs.
    pub fn tokens(&self) -> TokenService {
        tokens_for(&self.keys_dir(), &self.base, None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The metrics once they contain every one of `needles` (requests are counted just after
    /// their response is written), or as they are after 5 s.
    pub async fn metrics_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics().await;
            if needles.iter().all(|n| text.contains(n)) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn graphql(&self, query: &str) -> Value {
        self.graphql_as(query, serde_json::json!({}), None).await
    }

    /// A GraphQL call with variables, optionally as a logged-in user.
    pub async fn graphql_as(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut req = client()
            .post(self.url("/graphql"))
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.header("authorization", bearer(token));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Stops the server the hard way (SIGKILL) and hands back its directory.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Healthy and still proxying: used after every bad input.
    pub async fn assert_healthy(&mut self) {
        assert!(self.is_running(), "authgate died:\n{}", self.log());
        let resp = client()
            .get(format!("{}/healthz", self.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = client()
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

impl Drop for Authgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tokens_for(keys_dir: &Path, issuer: &str, audience: Option<&str>) -> TokenService {
    TokenService::new(
        Arc::new(KeyRing::open(keys_dir).unwrap()),
        issuer,
        audience,
        Duration::from_secs(900),
        Duration::from_secs(30),
    )
}

pub fn subject() -> Subject {
    Subject {
        user_id: "u_123".into(),
        email: "ada@example.com".into(),
        username: Some("ada".into()),
        verified: true,
        staff: false,
        roles: vec!["reader".into()],
    }
}

/// Claims as the server would issue them, for tests that tamper with one field.
pub fn claims(tokens: &TokenService) -> Claims {
    tokens.issue(&subject()).unwrap().1
}

/// Verifies `email` with the token of the `nth` mail sent to it (an activation email).
pub async fn verify_by_mail(gate: &Authgate, sink: &smtp::SmtpSink, email: &str, nth: usize) {
    let token = sink
        .wait_for(email, nth)
        .await
        .token("/activate/")
        .expect("an activation link");
    let reply = gate
        .graphql_as(
            "mutation V($t: String!) { verifyAccount(token: $t) { success errors } }",
            serde_json::json!({ "t": token }),
            None,
        )
        .await;
    assert_eq!(reply["data"]["verifyAccount"]["success"], true, "{reply}");
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The echo upstream's view of one header (all values).
pub fn seen(doc: &Value, header: &str) -> Vec<String> {
    doc["headers"][header]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}
