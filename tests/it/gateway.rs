//! Gatekeeping through the real binary: identity headers, spoofing, route modes, roles,
//! verification, errors, streaming and upgrades.

use crate::common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTES: &str = r#"
[[routes]]
prefix = "/"
upstream = "{upstream}"
auth = "required"

[[routes]]
prefix = "/public"
upstream = "{upstream}"
auth = "none"

[[routes]]
prefix = "/maybe"
upstream = "{upstream}"
auth = "optional"

[[routes]]
prefix = "/admin"
upstream = "{upstream}"
roles = ["admin", "ops"]

[[routes]]
prefix = "/verified"
upstream = "{upstream}"
require_verified = true

[[routes]]
prefix = "/svc"
upstream = "{upstream}"
strip_prefix = true
"#;

async fn start() -> (Upstream, Authgate) {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes(ROUTES)
        .start(Some(&upstream))
        .await;
    (upstream, gate)
}

const SPOOFED: [(&str, &str); 4] = [
    ("X-Auth-User-Id", "admin"),
    ("X-Auth-Staff", "true"),
    ("x-auth-roles", "admin"),
    ("X-AUTH-Anything", "1"),
];

fn spoofed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    SPOOFED.iter().fold(req, |req, (k, v)| req.header(*k, *v))
}

fn auth_headers(doc: &Value) -> Vec<String> {
    doc["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("x-auth-"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn valid_token_passes_with_identity_and_spoofed_headers_are_replaced() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let resp = spoofed(client().get(gate.url("/orders?id=7")))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["path"], "/orders");
    assert_eq!(doc["query"], "id=7");
    assert_eq!(seen(&doc, "x-auth-user-id"), ["u_123"]);
    assert_eq!(seen(&doc, "x-auth-email"), ["ada@example.com"]);
    assert_eq!(seen(&doc, "x-auth-username"), ["ada"]);
    assert_eq!(seen(&doc, "x-auth-verified"), ["true"]);
    assert_eq!(seen(&doc, "x-auth-staff"), ["false"]);
    assert_eq!(seen(&doc, "x-auth-roles"), ["reader"]);
    assert_eq!(seen(&doc, "x-auth-method"), ["jwt"]);
    assert!(seen(&doc, "x-auth-anything").is_empty());
    assert_eq!(seen(&doc, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&doc, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&doc, "x-request-id").len(), 1);
}

#[tokio::test]
async fn the_clients_own_headers_reach_the_upstream_whole_beside_ours() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    for path in ["/svc/items?a=1&b=two", "/public/items?a=1&b=two"] {
        let resp = spoofed(client().post(gate.url(path)))
            .header("authorization", bearer(&token))
            .header("x-trace", "one")
            .header("x-trace", "two")
            .header("X-Mixed-Case", "kept")
            .header("x-request-id", "req-42")
            .header("x-forwarded-for", "203.0.113.9")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["x-request-id"], "req-42");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["method"], "POST");
        assert_eq!(doc["query"], "a=1&b=two");
        assert_eq!(seen(&doc, "x-trace"), ["one", "two"], "{path}");
        assert_eq!(seen(&doc, "x-mixed-case"), ["kept"]);
        assert_eq!(seen(&doc, "authorization"), [bearer(&token)]);
        assert_eq!(seen(&doc, "x-request-id"), ["req-42"]);
        // An untrusted peer's chain is replaced, never extended.
        assert_eq!(seen(&doc, "x-forwarded-for"), ["127.0.0.1"]);
        assert!(seen(&doc, "x-auth-anything").is_empty());
        if path.starts_with("/svc") {
            assert_eq!(doc["path"], "/items");
            assert_eq!(seen(&doc, "x-auth-user-id"), ["u_123"]);
        } else {
            assert_eq!(doc["path"], "/public/items");
            assert!(auth_headers(&doc).is_empty());
        }
    }
}

#[tokio::test]
async fn jwt_prefix_is_accepted() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let resp = client()
        .get(gate.url("/x"))
        .header("authorization", format!("JWT {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn none_and_optional_routes_strip_spoofed_headers() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;

    // auth = "none": no identity whatever the credentials, spoofed headers gone.
    for auth in [
        None,
        Some(bearer(&token)),
        Some("Bearer garbage".to_string()),
    ] {
        let mut req = spoofed(client().get(gate.url("/public/page")));
        if let Some(auth) = &auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{auth:?}");
        let doc: Value = resp.json().await.unwrap();
        assert!(auth_headers(&doc).is_empty(), "{auth:?}: {doc}");
    }

    // auth = "optional": none passes bare, valid adds identity, invalid is 401.
    let resp = spoofed(client().get(gate.url("/maybe")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(auth_headers(&doc).is_empty(), "{doc}");

    let resp = spoofed(client().get(gate.url("/maybe/x")))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-auth-user-id"), ["u_123"]);
    assert_eq!(seen(&doc, "x-auth-staff"), ["false"]);

    let resp = client()
        .get(gate.url("/maybe"))
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn missing_credentials_get_a_bare_challenge() {
    let (_up, gate) = start().await;
    let resp = client().get(gate.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="authgate""#
    );
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn roles_and_verification_are_enforced() {
    let (_up, gate) = start().await;
    let tokens = gate.tokens();
    let reader = tokens.issue(&subject()).unwrap().0;
    let mut ops = subject();
    ops.roles = vec!["ops".into()];
    let ops = tokens.issue(&ops).unwrap().0;
    let mut unverified = subject();
    unverified.verified = false;
    let unverified = tokens.issue(&unverified).unwrap().0;

    let get = |path: &'static str, token: String| {
        let url = gate.url(path);
        async move {
            client()
                .get(url)
                .header("authorization", bearer(&token))
                .send()
                .await
                .unwrap()
        }
    };
    let resp = get("/admin/users", reader.clone()).await;
    assert_eq!(resp.status(), 403);
    assert!(!resp.headers().contains_key("www-authenticate"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_role");

    let resp = get("/admin/users", ops).await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-auth-roles"), ["ops"]);

    let resp = get("/verified", unverified.clone()).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unverified");
    assert_eq!(get("/verified", reader).await.status(), 200);
    // An unverified account still passes where verification is not required.
    let resp = get("/x", unverified).await;
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-auth-verified"), ["false"]);
}

#[tokio::test]
async fn routes_match_by_segment_and_strip_prefix() {
    let (_up, gate) = start().await;
    // `/publicity` is not under `/public`: it falls to `/`, which requires a token.
    let resp = client().get(gate.url("/publicity")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client().get(gate.url("/public")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let token = gate.tokens().issue(&subject()).unwrap().0;
    let resp = client()
        .get(gate.url("/svc/items/1?x=y"))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["path"], "/items/1");
    assert_eq!(doc["query"], "x=y");
}

/// Raw HTTP/1.1 exchange, for requests a well-behaved client library would not send.
async fn raw(port: u16, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn path_tricks_cannot_reach_a_protected_route() {
    let (_up, mut gate) = start().await;
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public%2F..%2Fadmin",
        "/public/..%5Cadmin",
    ] {
        let resp = raw(
            gate.port,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains("invalid_request"), "{path}: {resp}");
    }
    // Doubled slashes and encoded letters are read as the path they mean: `/admin` needs a role.
    for path in ["//admin", "/%61dmin", "/public//../admin"] {
        let resp = raw(
            gate.port,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            resp.starts_with("HTTP/1.1 401") || resp.starts_with("HTTP/1.1 400"),
            "{path}: {resp}"
        );
    }
    gate.assert_healthy().await;
}

#[tokio::test]
async fn request_id_is_kept_or_made() {
    let (_up, gate) = start().await;
    let resp = client()
        .get(gate.url("/public"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-request-id"), ["abc-123"]);

    let resp = client()
        .get(gate.url("/public"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "bad id with spaces");
    assert_eq!(id.len(), 36);
    // Denials carry one too.
    let resp = client().get(gate.url("/x")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn forwarded_for_from_untrusted_clients_is_replaced() {
    let (_up, gate) = start().await;
    let resp = client()
        .get(gate.url("/public"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&doc, "x-forwarded-proto"), ["http"]);
}

#[tokio::test]
async fn forwarded_for_from_trusted_proxies_is_extended() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes(ROUTES)
        .env("AUTHGATE_SERVER__TRUSTED_PROXIES", "127.0.0.0/8")
        .start(Some(&upstream))
        .await;
    let resp = client()
        .get(gate.url("/public"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(seen(&doc, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(seen(&doc, "x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn no_matching_route_is_404_json() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;
    let resp = client().get(gate.url("/elsewhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn upstream_down_is_502_json() {
    // No upstream is started: the route points at a closed port.
    let mut gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\nauth = \"none\"\n")
        .start(None)
        .await;
    let resp = client().get(gate.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");
    gate.assert_healthy().await;
}

#[tokio::test]
async fn large_bodies_pass_both_ways_intact() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let n = 8 * 1024 * 1024 + 13;
    let resp = client()
        .get(gate.url(&format!("/big?bytes={n}")))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), n);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

    let upload: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 7) as u8).collect();
    let sum: u64 = upload.iter().map(|b| *b as u64).sum();
    let resp = client()
        .post(gate.url("/upload"))
        .header("authorization", bearer(&token))
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["body_len"], upload.len());
    assert_eq!(doc["body_sum"], sum);
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gate.port))
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in [&b"hello"[..], &b"through the gate"[..]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_exact(&mut echoed),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test]
async fn websocket_upgrade_without_token_is_refused() {
    let (_up, gate) = start().await;
    let resp = raw(
        gate.port,
        "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

#[tokio::test]
async fn denials_keep_the_connection_alive() {
    let (_up, gate) = start().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gate.port))
        .await
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    }
}

#[tokio::test]
async fn metrics_count_requests_and_outcomes() {
    let (_up, gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    client()
        .get(gate.url("/x"))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    client().get(gate.url("/x")).send().await.unwrap();
    let needles = [
        r#"authgate_http_requests_total{route="/",status="200"} 1"#,
        r#"authgate_http_requests_total{route="/",status="401"} 1"#,
        r#"authgate_auth_total{outcome="allowed",reason="jwt"} 1"#,
        r#"authgate_auth_total{outcome="denied",reason="missing"} 1"#,
        "authgate_upstream_duration_seconds_count{route=\"/\"} 1",
        "authgate_jwt_verify_duration_seconds_count 1",
    ];
    let metrics = gate.metrics_with(&needles).await;
    for needle in needles {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

/// An upstream that answers `200 ok` on keep-alive connections until it is stopped. Stopping
/// closes its listener; the connections it holds (those the gateway pooled) stay open but close
/// on their next request without answering, as when a request races a server going away.
struct StoppableUpstream {
    addr: std::net::SocketAddr,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl StoppableUpstream {
    async fn start() -> StoppableUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stopped.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let stopped = flag.load(std::sync::atomic::Ordering::SeqCst);
                        async move {
                            if stopped {
                                return Err(std::io::Error::other("stopped"));
                            }
                            Ok(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StoppableUpstream {
            addr,
            stopped,
            accepting,
        }
    }

    async fn stop(self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.accepting.abort();
        let _ = self.accepting.await;
    }
}

/// One HTTP/1.1 response read off a raw connection.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn announces_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads exactly one response (header, then `Content-Length` bytes unless `head`); an early
/// end, a reset or a timeout is an error naming what was received.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    head: bool,
) -> Result<RawResponse, String> {
    let timeout = std::time::Duration::from_secs(3);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err(format!("connection ended after {} bytes", buf.len())),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("{e} after {} bytes", buf.len())),
            Err(_) => return Err(format!("no complete header after {} bytes", buf.len())),
        }
    };
    let text = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line in {text:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut response = RawResponse {
        status,
        headers,
        body: buf[header_end..].to_vec(),
    };
    let length: usize = if head {
        0
    } else {
        response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no content-length in {text:?}"))?
    };
    while response.body.len() < length {
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err(format!("body ended at {} bytes", response.body.len())),
            Ok(Ok(n)) => response.body.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("{e} in the body")),
            Err(_) => return Err("body timed out".into()),
        }
    }
    if response.body.len() > length {
        return Err(format!(
            "{} bytes past the response",
            response.body.len() - length
        ));
    }
    Ok(response)
}

/// Sends `request` on the client's keep-alive connection (a new one when there is none) and
/// reads the answer. A response announcing `Connection: close` must then be followed by the
/// close; otherwise the connection is kept for the next request. A failed exchange drops it.
async fn keep_alive_exchange(
    port: u16,
    connection: &mut Option<tokio::net::TcpStream>,
    request: &[u8],
    head: bool,
) -> Result<RawResponse, String> {
    let mut stream = match connection.take() {
        Some(stream) => stream,
        None => tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?,
    };
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let response = read_response(&mut stream, head).await?;
    if response.announces_close() {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            stream.read_to_end(&mut rest),
        )
        .await;
        if !matches!(read, Ok(Ok(0))) {
            return Err(format!("not closed after Connection: close ({read:?})"));
        }
    } else {
        *connection = Some(stream);
    }
    Ok(response)
}

#[tokio::test]
async fn upstream_stopping_gives_every_keep_alive_client_a_complete_502() {
    let upstream = StoppableUpstream::start().await;
    let mut gate = Authgate::builder()
        .routes(&format!(
            "[[routes]]\nprefix = \"/\"\nupstream = \"{}\"\nauth = \"none\"\n",
            upstream.addr
        ))
        .start(None)
        .await;
    let port = gate.port;
    const CLIENTS: usize = 16;
    const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
    const HEAD: &[u8] = b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n";

    // Warm: every client gets a 200 at once, so the gateway pools several upstream connections.
    let warm = (0..CLIENTS).map(|_| async move {
        let mut connection = None;
        let response = keep_alive_exchange(port, &mut connection, GET, false).await;
        (connection, response)
    });
    let mut connections = Vec::new();
    for (connection, response) in futures_util::future::join_all(warm).await {
        let response = response.unwrap();
        assert_eq!(response.status, 200);
        connections.push(connection);
    }

    upstream.stop().await;

    // Each client sends a GET, a POST with a body, a HEAD and a GET on its connection.
    let post = {
        let body = vec![b'x'; 512 * 1024];
        let mut request = format!(
            "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        request
    };
    let clients = connections.into_iter().map(|mut connection| {
        let post = post.clone();
        async move {
            let mut outcomes = Vec::new();
            for (request, head) in [(GET, false), (&post[..], false), (HEAD, true), (GET, false)] {
                let outcome = keep_alive_exchange(port, &mut connection, request, head).await;
                outcomes.push(outcome.and_then(|response| {
                    let json = response.header("content-type") == Some("application/json");
                    let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
                    let complete = head || body["error"] == "bad_gateway";
                    if response.status == 502 && json && complete {
                        Ok(())
                    } else {
                        Err(format!(
                            "status {} {:?} {}",
                            response.status,
                            response.headers,
                            String::from_utf8_lossy(&response.body)
                        ))
                    }
                }));
            }
            outcomes
        }
    });
    let failures: Vec<String> = futures_util::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:#?}",
        failures.len(),
        CLIENTS * 4
    );
    gate.assert_healthy().await;
}
