//! The admin listener (loopback by default): `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::app::App;

pub struct Admin {
    app: Arc<App>,
}

impl Admin {
    pub fn new(app: Arc<App>) -> Admin {
        Admin { app }
    }

    /// The parts that are not working, by name; empty when ready.
    fn failing(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if self.app.tokens.keys().snapshot().all().is_empty() {
            failing.push("keys");
        }
        failing
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => response(200, "text/plain; version=0.0.4", self.app.metrics.render()),
            "/healthz" => response(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => {
                let failing = self.failing();
                if failing.is_empty() {
                    response(200, "application/json", br#"{"status":"ready"}"#.to_vec())
                } else {
                    let body = serde_json::json!({ "status": "unavailable", "failing": failing });
                    response(503, "application/json", body.to_string().into_bytes())
                }
            }
            _ => response(
                404,
                "application/json",
                br#"{"error":"not_found"}"#.to_vec(),
            ),
        }
    }
}
