//! One server with every dialect kind configured (django at `/django`, django-relay at
//! `/relay`, krypton at `/krypton`, craft at `/craft`, karrio at `/karrio`), a real SMTP
//! listener, a real upstream behind `/api`, and an HTTP client that speaks to a dialect as its original's clients do (their header
//! prefixes, their cookies).

use super::smtp::SmtpSink;
use super::*;
use serde_json::{json, Value};

pub const PASSWORD: &str = "vX9!kq2#Lm-7";
pub const NEW_PASSWORD: &str = "Brand-New-Pass-42";
/// The browser origin the servers list in `server.cors_origins`.
pub const APP_ORIGIN: &str = "http://app.test:3000";

pub const DIALECTS: &str = r#"
[[routes]]
prefix = "/api"
upstream = "{upstream}"

[[routes]]
prefix = "/preflight"
upstream = "{upstream}"
skip_auth_preflight = true

[[dialects]]
kind = "django-graphql-auth"
prefix = "/django"

[[dialects]]
kind = "django-graphql-auth-relay"
prefix = "/relay"

[[dialects]]
kind = "krypton"
prefix = "/krypton"

[[dialects]]
kind = "craft"
prefix = "/craft"

[[dialects]]
kind = "karrio"
prefix = "/karrio"
"#;

pub struct Setup {
    pub gate: Authgate,
    pub sink: SmtpSink,
    pub upstream: Upstream,
}

/// A server with every dialect; `env` adds or overrides settings (rate limits are high unless
/// it says otherwise; argon2 is cheap, as the hash's strength is not under test here).
pub async fn setup(env: &[(&str, &str)]) -> Setup {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let mut builder = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "1000/1h")
        .env("AUTHGATE_ACCOUNTS__ARGON2_MEMORY_KIB", "1024")
        .env("AUTHGATE_ACCOUNTS__ARGON2_ITERATIONS", "1")
        .env("AUTHGATE_SERVER__CORS_ORIGINS", APP_ORIGIN)
        .routes(DIALECTS);
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    Setup {
        gate: builder.start(Some(&upstream)).await,
        sink,
        upstream,
    }
}

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The `Set-Cookie` of cookie `name`, whole (value and attributes).
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The value cookie `name` is set to (empty when it is cleared).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let set = self.set_cookie(name)?;
        let pair = set.split(';').next()?;
        Some(pair[name.len() + 1..].trim_matches('"').to_string())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to `path` as a dialect's client sends it.
pub struct Call<'a> {
    pub gate: &'a Authgate,
    pub path: &'a str,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
}

impl<'a> Call<'a> {
    pub fn new(gate: &'a Authgate, path: &'a str) -> Call<'a> {
        Call {
            gate,
            path,
            authorization: None,
            cookie: None,
        }
    }

    pub fn auth(mut self, header: impl Into<String>) -> Self {
        self.authorization = Some(header.into());
        self
    }

    pub fn auth_opt(mut self, header: Option<String>) -> Self {
        self.authorization = header;
        self
    }

    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        self.cookie = Some(format!("{name}={value}"));
        self
    }

    pub async fn send(&self, query: &str, variables: Value) -> Answer {
        let body = json!({ "query": query, "variables": variables });
        self.raw("application/json", body.to_string().into_bytes())
            .await
    }

    pub async fn raw(&self, content_type: &str, body: Vec<u8>) -> Answer {
        let mut req = client()
            .post(self.gate.url(self.path))
            .header("content-type", content_type)
            .body(body);
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth);
        }
        if let Some(cookie) = &self.cookie {
            req = req.header("cookie", cookie);
        }
        read(req.send().await.unwrap()).await
    }
}

pub async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

pub async fn get(gate: &Authgate, path: &str) -> Answer {
    read(client().get(gate.url(path)).send().await.unwrap()).await
}

/// The payload claims of a JWT (unchecked).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The upstream's view of a request to `/api/...` made with `authorization`.
pub async fn through_gate(gate: &Authgate, authorization: &str) -> (u16, Value) {
    let resp = client()
        .get(gate.url("/api/whoami"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The first code of a django payload's `errors`, and its field.
pub fn django_error(payload: &Value) -> (String, String) {
    payload["errors"]
        .as_object()
        .and_then(|fields| fields.iter().next())
        .map(|(field, list)| {
            (
                field.clone(),
                list[0]["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

/// The names of every type in a schema, by introspection.
pub async fn type_names(gate: &Authgate, path: &str) -> Vec<String> {
    let answer = Call::new(gate, path)
        .send("{ __schema { types { name } } }", json!({}))
        .await;
    answer.body["data"]["__schema"]["types"]
        .as_array()
        .unwrap_or_else(|| panic!("introspection of {path}: {}", answer.text))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}
