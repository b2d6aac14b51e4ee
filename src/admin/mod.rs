//! The admin listener (loopback by default): `/metrics`, `/healthz`, `/readyz`, and `POST
//! /users`, through which the CLI creates accounts while the server holds the store.

pub mod client;
pub mod token;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::{Deserialize, Serialize};

use crate::accounts::{Accounts, Code, Failure, Links, NewAccount, User};
use crate::app::App;
use crate::graphql::errors::{ArgNames, ExpectedErrors};

pub struct Admin {
    app: Arc<App>,
}

/// The body of `POST /users` (and what `authgate user create` sends).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateUser {
    pub email: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub staff: bool,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Create without a password and email a set-password link (`authgate user invite`).
    #[serde(default)]
    pub invite: bool,
}

impl From<CreateUser> for NewAccount {
    fn from(c: CreateUser) -> Self {
        NewAccount {
            email: c.email,
            username: c.username,
            password: c.password,
            staff: c.staff,
            verified: c.verified,
            roles: c.roles,
        }
    }
}

/// The admin API's argument names: `password` is the new account's.
pub const CREATE_USER_ARGS: ArgNames = ArgNames {
    new_password: "password",
    current_password: "password",
};

/// The errors of a refused request, in the native form.
pub fn errors_json(failure: Failure) -> serde_json::Value {
    ExpectedErrors::new(failure, CREATE_USER_ARGS).to_json()
}

/// `user create` or `user invite`, here or through the admin listener.
pub async fn create(
    accounts: &Accounts,
    links: &dyn Links,
    request: CreateUser,
) -> Result<User, Failure> {
    if request.invite {
        accounts.registration.invite(&request.email, links).await
    } else {
        accounts.registration.create_account(request.into()).await
    }
}

/// Largest admin request body.
const MAX_BODY: usize = 16 * 1024;

impl Admin {
    pub fn new(app: Arc<App>) -> Admin {
        Admin { app }
    }

    /// The parts that are not working, by name; empty when ready.
    async fn failing(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if self.app.tokens.keys().snapshot().all().is_empty() {
            failing.push("keys");
        }
        if let Some(fetcher) = &self.app.revocation_fetcher {
            if !fetcher.loaded() {
                failing.push("revocations");
            }
        }
        if let Some(accounts) = &self.app.accounts {
            let health = accounts.health().await;
            let storage = &self.app.config.storage;
            let users = if storage.database_url().is_some() {
                "database"
            } else {
                "store"
            };
            let sessions = match (storage.redis_url(), storage.database_url()) {
                (Some(_), _) => "redis",
                (None, Some(_)) => "database",
                (None, None) => "sessions",
            };
            if !health.users {
                failing.push(users);
            }
            if !health.sessions && !failing.contains(&sessions) {
                failing.push(sessions);
            }
        }
        failing
    }

    async fn create_user(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let (Some(accounts), Some(real)) = (&self.app.accounts, &self.app.admin_token) else {
            return json(404, &serde_json::json!({"error": "not_found"}));
        };
        let presented = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token::matches(presented, real) {
            return json(401, &serde_json::json!({"error": "unauthenticated"}));
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return json(413, &serde_json::json!({"error": "too_large"})),
                Ok(None) => break,
                Err(_) => return json(400, &serde_json::json!({"error": "bad_request"})),
            }
        }
        let request: CreateUser = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                let failure = Failure::general(Code::Invalid, format!("bad request body: {e}"));
                return json(400, &serde_json::json!({ "errors": errors_json(failure) }));
            }
        };
        match create(accounts, self.app.links.as_ref(), request).await {
            Ok(user) => json(
                201,
                &serde_json::json!({ "id": user.id, "email": user.email }),
            ),
            Err(failure) => json(422, &serde_json::json!({ "errors": errors_json(failure) })),
        }
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

fn json(status: u16, value: &serde_json::Value) -> http::Response<Vec<u8>> {
    response(status, "application/json", value.to_string().into_bytes())
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        match (method.as_str(), path.as_str()) {
            (_, "/metrics") => {
                response(200, "text/plain; version=0.0.4", self.app.metrics.render())
            }
            (_, "/healthz") => json(200, &serde_json::json!({"status": "ok"})),
            (_, "/readyz") => {
                let failing = self.failing().await;
                if failing.is_empty() {
                    json(200, &serde_json::json!({"status": "ready"}))
                } else {
                    json(
                        503,
                        &serde_json::json!({ "status": "unavailable", "failing": failing }),
                    )
                }
            }
            ("POST", "/users") => self.create_user(session).await,
            _ => json(404, &serde_json::json!({"error": "not_found"})),
        }
    }
}
