//! One server with a real SMTP listener and a real upstream, and the steps the account-life
//! tests share (register and verify a user, log in, read an error code).

use super::smtp::SmtpSink;
use super::*;
use serde_json::{json, Value};

pub const PASSWORD: &str = "vX9!kq2#Lm-7";
pub const NEW_PASSWORD: &str = "Brand-New-Pass-42";

pub struct Setup {
    pub gate: Authgate,
    pub sink: SmtpSink,
}

pub async fn setup(env: &[(&str, &str)]) -> Setup {
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
    pub async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> Value {
        self.gate.graphql_as(query, vars, token).await
    }

    /// Registers (and, if asked, verifies) a user; returns an access token for it.
    pub async fn user(&self, email: &str, verify: bool) -> String {
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

    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.gql(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success errors token refreshToken unarchiving } }",
            json!({"e": email, "p": password}),
            None,
        )
        .await["data"]["tokenAuth"]
            .clone()
    }
}

pub fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

pub const AVAILABLE: &str = "query A($e: String!) { emailAvailable(email: $e) }";
