//! authgate's own endpoints on the public listener: GraphQL, GraphiQL, JWKS, OIDC discovery.
//! They always win over routes.

use std::sync::Arc;

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;

use super::pages;
use crate::app::App;
use crate::cors::Cors;
use crate::dialects::{self, Dialect, Page};
use crate::graphql::{self, AuthgateSchema};
use crate::pages::links;
use crate::reply::{ErrorBody, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Graphql,
    Jwks,
    /// `/.well-known/revocations.json` (SPEC §13)
    Revocations,
    OpenidConfiguration,
    /// `/activate/{token}`
    Activate,
    /// `/verify-email/{token}`
    VerifyEmail,
    /// `/password/reset?token=…`
    PasswordReset,
    /// `/password/set?token=…`
    PasswordSet,
    /// In verifier mode, a path of the gateway's (account API, pages, OIDC discovery): not
    /// served here; routed only when a route other than `/` names it, else 404.
    GatewayOnly,
    /// A path of the `n`-th dialect.
    Dialect(usize, dialects::Endpoint),
    /// A path under a dialect's prefix that the dialect does not have.
    DialectMissing,
}

impl Endpoint {
    /// Public documents: any origin may read them, without credentials.
    fn is_public_document(self) -> bool {
        matches!(
            self,
            Endpoint::Jwks
                | Endpoint::Revocations
                | Endpoint::OpenidConfiguration
                | Endpoint::Dialect(_, dialects::Endpoint::Jwks)
        )
    }
}

pub struct Endpoints {
    app: Arc<App>,
    schema: AuthgateSchema,
    graphiql: Option<Bytes>,
    openid_configuration: Bytes,
    dialects: Vec<Arc<dyn Dialect>>,
    cors: Cors,
}

impl Endpoints {
    pub fn new(
        app: &Arc<App>,
        schema: AuthgateSchema,
        dialects: Vec<Arc<dyn Dialect>>,
    ) -> Endpoints {
        let public_url = app.config.server.public_url.as_str();
        let discovery = serde_json::json!({
            "issuer": app.config.jwt.issuer,
            "jwks_uri": format!("{public_url}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
        });
        Endpoints {
            app: app.clone(),
            schema,
            graphiql: app
                .config
                .graphql
                .playground
                .then(|| super::bytes_of(graphql::graphiql_page("/graphql"))),
            openid_configuration: super::bytes_of(
                serde_json::to_vec(&discovery).unwrap_or_default(),
            ),
            cors: Cors::new(
                &app.config.server.cors_origins,
                dialects
                    .iter()
                    .flat_map(|d| d.allow_headers().iter().copied()),
            ),
            dialects,
        }
    }

    pub fn find(&self, path: &str) -> Option<Endpoint> {
        let endpoint = match path {
            "/.well-known/jwks.json" => return Some(Endpoint::Jwks),
            crate::config::REVOCATIONS_PATH => return Some(Endpoint::Revocations),
            "/graphql" | "/graphql/" => Endpoint::Graphql,
            "/.well-known/openid-configuration" => Endpoint::OpenidConfiguration,
            links::PASSWORD_RESET => Endpoint::PasswordReset,
            links::PASSWORD_SET => Endpoint::PasswordSet,
            _ if path.starts_with(links::ACTIVATE) => Endpoint::Activate,
            _ if path.starts_with(links::VERIFY_EMAIL) => Endpoint::VerifyEmail,
            _ => return self.find_dialect(path),
        };
        Some(match self.app.accounts {
            Some(_) => endpoint,
            None => Endpoint::GatewayOnly,
        })
    }

    fn jwks(&self) -> Reply {
        self.app.metrics.jwks_requests.inc();
        let jwks = self.app.tokens.keys().snapshot().jwks_json();
        Reply::new(200, "application/json", jwks).with_header("cache-control", "public, max-age=60")
    }

    /// The revocation list, whole or what changed after the `since` cursor. It names
    /// accounts by id and sessions by sid, nothing else.
    fn revocations(&self, query: Option<&str>) -> Reply {
        let since = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(name, _)| name == "since")
                .map(|(_, value)| value.into_owned())
        });
        let document = self
            .app
            .tokens
            .revocations()
            .document(since.as_deref(), crate::clock::unix_now());
        let body = serde_json::to_vec(&document).unwrap_or_default();
        Reply::new(200, "application/json", body).with_header("cache-control", "no-store")
    }

    /// The dialect whose prefix `path` lies under, and what the path is there.
    fn find_dialect(&self, path: &str) -> Option<Endpoint> {
        let (n, dialect) = self
            .dialects
            .iter()
            .enumerate()
            .find(|(_, d)| d.config().prefix.matches(path))?;
        let rest = &path[dialect.config().prefix.as_str().len()..];
        Some(match dialect.find(rest) {
            Some((endpoint, _)) => Endpoint::Dialect(n, endpoint),
            None => Endpoint::DialectMissing,
        })
    }

    /// The path as the access log may show it: a link token in a dialect's path left out.
    pub fn loggable_path(&self, endpoint: Endpoint, path: &str) -> Option<String> {
        let Endpoint::Dialect(n, dialects::Endpoint::Page(_)) = endpoint else {
            return None;
        };
        let dialect = &self.dialects[n];
        let prefix = dialect.config().prefix.as_str();
        let (_, token) = dialect.find(&path[prefix.len()..])?;
        let token = token?;
        Some(
            path.strip_suffix(token.as_str())
                .unwrap_or(prefix)
                .to_string(),
        )
    }

    /// Answers a request for one of our endpoints, with the CORS headers of SPEC §5.
    pub async fn serve(
        &self,
        endpoint: Endpoint,
        path: &str,
        session: &mut Session,
    ) -> Result<Reply> {
        let origin = crate::cors::origin(&session.req_header().headers);
        if endpoint != Endpoint::GatewayOnly && {
            let req = session.req_header();
            crate::cors::is_preflight(&req.method, &req.headers)
        } {
            return Ok(if endpoint.is_public_document() {
                Cors::public_preflight()
            } else {
                self.cors.preflight(origin.as_deref())
            });
        }
        let reply = self.answer(endpoint, path, session).await?;
        Ok(match endpoint {
            Endpoint::GatewayOnly => reply,
            _ if endpoint.is_public_document() => Cors::public(reply),
            _ => self.cors.decorate(reply, origin.as_deref()),
        })
    }

    async fn answer(&self, endpoint: Endpoint, path: &str, session: &mut Session) -> Result<Reply> {
        let method = session.req_header().method.clone();
        let is_get = method == http::Method::GET || method == http::Method::HEAD;
        Ok(match endpoint {
            Endpoint::Jwks if is_get => self.jwks(),
            Endpoint::Revocations if is_get => self.revocations(session.req_header().uri.query()),
            Endpoint::OpenidConfiguration if is_get => {
                Reply::new(200, "application/json", self.openid_configuration.clone())
                    .with_header("cache-control", "public, max-age=300")
            }
            Endpoint::Graphql if method == http::Method::POST => self.graphql(session).await?,
            Endpoint::Graphql if is_get => match &self.graphiql {
                Some(page) => Reply::new(200, "text/html; charset=utf-8", page.clone()),
                None => method_not_allowed("POST"),
            },
            Endpoint::Graphql => method_not_allowed(if self.graphiql.is_some() {
                "GET, POST"
            } else {
                "POST"
            }),
            Endpoint::Activate
            | Endpoint::VerifyEmail
            | Endpoint::PasswordReset
            | Endpoint::PasswordSet => {
                return self.page(endpoint, path, session).await;
            }
            Endpoint::Jwks | Endpoint::Revocations | Endpoint::OpenidConfiguration => {
                method_not_allowed("GET, HEAD")
            }
            Endpoint::GatewayOnly => Reply::json_error(
                404,
                &ErrorBody::new(
                    "not_found",
                    "the account API is served by the gateway, not by this verifier",
                ),
            ),
            Endpoint::DialectMissing => Reply::json_error(
                404,
                &ErrorBody::new("not_found", "no such path in this dialect"),
            ),
            Endpoint::Dialect(n, endpoint) => {
                return self.dialect(n, endpoint, path, session).await;
            }
        })
    }

    async fn dialect(
        &self,
        n: usize,
        endpoint: dialects::Endpoint,
        path: &str,
        session: &mut Session,
    ) -> Result<Reply> {
        let dialect = &self.dialects[n];
        let method = session.req_header().method.clone();
        let is_get = method == http::Method::GET || method == http::Method::HEAD;
        Ok(match endpoint {
            dialects::Endpoint::Graphql if method == http::Method::POST => {
                let limit = self.app.config.graphql.max_body_bytes;
                let body = match graphql_body(session, limit).await? {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                let mut caller = self.caller(session, dialect.refresh_cookie_name());
                if caller.user_id.is_none() && dialect.accepts_api_keys() {
                    caller.user_id = self.api_key_caller(session.req_header()).await;
                }
                dialect.graphql(&body, caller).await
            }
            dialects::Endpoint::Graphql if is_get => match dialect.graphiql() {
                Some(page) => Reply::new(200, "text/html; charset=utf-8", page),
                None => method_not_allowed("POST"),
            },
            dialects::Endpoint::Graphql => method_not_allowed(if dialect.graphiql().is_some() {
                "GET, POST"
            } else {
                "POST"
            }),
            dialects::Endpoint::Json(name) if method == http::Method::POST => {
                // The same type rule as GraphQL (no cross-site form can post here) and the
                // same body limit.
                let body = match graphql_body(session, JSON_LIMIT).await? {
                    Ok(body) => body,
                    Err(refusal) => return Ok(refusal),
                };
                let caller = self.caller(session, dialect.refresh_cookie_name());
                dialect.json(name, &body, caller).await
            }
            dialects::Endpoint::Json(_) => method_not_allowed("POST"),
            dialects::Endpoint::Jwks if is_get => self.jwks(),
            dialects::Endpoint::Jwks => method_not_allowed("GET, HEAD"),
            dialects::Endpoint::Page(page) => {
                let Some(accounts) = &self.app.accounts else {
                    return Ok(Reply::json_error(
                        404,
                        &ErrorBody::new("not_found", "no such page"),
                    ));
                };
                let prefix = dialect.config().prefix.as_str();
                let in_path = dialect.find(&path[prefix.len()..]).and_then(|(_, t)| t);
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                let token = in_path
                    .unwrap_or_else(|| pages::query_param(&query, dialect.link_token_parameter()));
                let min_length = self.app.config.accounts.password_min_length;
                // A page for both kinds of password link serves the one its token is.
                let purpose_of = |page: Page, token: &str| match page {
                    Page::Password(purpose) => purpose,
                    _ => accounts.recovery.password_purpose(token),
                };
                match (page, method.as_str()) {
                    (Page::Confirm, "GET") => pages::confirm(accounts, &token).await,
                    (Page::Password(_) | Page::PasswordAny, "GET") => {
                        let purpose = purpose_of(page, &token);
                        pages::password_form(accounts, purpose, &token, path, min_length).await
                    }
                    (Page::Password(_) | Page::PasswordAny, "POST") => {
                        match read_body(session, FORM_LIMIT).await? {
                            Some(body) => {
                                let purpose = purpose_of(page, &pages::form_token(&body));
                                pages::password_submit(accounts, purpose, &body, path, min_length)
                                    .await
                            }
                            None => Reply::json_error(
                                413,
                                &ErrorBody::new("payload_too_large", "form too large"),
                            ),
                        }
                    }
                    (Page::Password(_) | Page::PasswordAny, _) => method_not_allowed("GET, POST"),
                    (Page::Confirm, _) => method_not_allowed("GET"),
                }
            }
        })
    }

    async fn page(&self, endpoint: Endpoint, path: &str, session: &mut Session) -> Result<Reply> {
        let Some(accounts) = &self.app.accounts else {
            return Ok(Reply::json_error(
                404,
                &ErrorBody::new("not_found", "no such page"),
            ));
        };
        let method = session.req_header().method.clone();
        let min_length = self.app.config.accounts.password_min_length;
        let purpose = match endpoint {
            Endpoint::PasswordSet => crate::accounts::Purpose::PasswordSet,
            _ => crate::accounts::Purpose::PasswordReset,
        };
        Ok(match (endpoint, method.as_str()) {
            (Endpoint::Activate, "GET") => {
                pages::activate(accounts, &path[links::ACTIVATE.len()..]).await
            }
            (Endpoint::VerifyEmail, "GET") => {
                pages::verify_email(accounts, &path[links::VERIFY_EMAIL.len()..]).await
            }
            (Endpoint::PasswordReset | Endpoint::PasswordSet, "GET") => {
                let query = session.req_header().uri.query().unwrap_or("").to_string();
                let token = pages::query_token(&query);
                let action = pages::native_action(purpose);
                pages::password_form(accounts, purpose, &token, action, min_length).await
            }
            (Endpoint::PasswordReset | Endpoint::PasswordSet, "POST") => {
                match read_body(session, FORM_LIMIT).await? {
                    Some(body) => {
                        let action = pages::native_action(purpose);
                        pages::password_submit(accounts, purpose, &body, action, min_length).await
                    }
                    None => Reply::json_error(
                        413,
                        &ErrorBody::new("payload_too_large", "form too large"),
                    ),
                }
            }
            (Endpoint::PasswordReset | Endpoint::PasswordSet, _) => method_not_allowed("GET, POST"),
            _ => method_not_allowed("GET"),
        })
    }

    async fn graphql(&self, session: &mut Session) -> Result<Reply> {
        let limit = self.app.config.graphql.max_body_bytes;
        let body = match graphql_body(session, limit).await? {
            Ok(body) => body,
            Err(refusal) => return Ok(refusal),
        };
        let caller = self.caller(session, graphql::REFRESH_COOKIE);
        Ok(graphql::execute(&self.schema, &body, caller).await)
    }

    /// Who calls: the user of a valid token, the client's address, the refresh cookie `name`.
    fn caller(&self, session: &Session, cookie: &str) -> graphql::Caller {
        let req = session.req_header();
        let (user_id, session_id) = self.caller_id(req);
        graphql::Caller {
            user_id,
            session_id,
            client_ip: super::forward::client_ip(&self.app.config.server, session),
            refresh_cookie: crate::cookies::read(&req.headers, cookie),
        }
    }
}

impl Endpoints {
    /// The owner of a valid API key (`Authorization: Token <key>` or `X-API-Key`), if any.
    async fn api_key_caller(&self, req: &pingora::http::RequestHeader) -> Option<String> {
        let accounts = self.app.accounts.as_ref()?;
        match crate::gate::credential(&req.headers) {
            Ok(crate::gate::Credential::ApiKey(key)) => {
                match accounts.api_keys.resolve(key).await {
                    Ok(owner) => owner.map(|subject| subject.user_id),
                    Err(failure) => {
                        tracing::error!(codes = ?failure.codes(), "API key lookup failed");
                        None
                    }
                }
            }
            _ => None,
        }
    }

    /// The user behind a valid `Authorization: Bearer|JWT` token, and its session, if any.
    fn caller_id(&self, req: &pingora::http::RequestHeader) -> (Option<String>, Option<String>) {
        match crate::gate::credential(&req.headers) {
            Ok(crate::gate::Credential::Jwt(token)) => match self.app.tokens.verify(token) {
                Ok(claims) => (Some(claims.sub.clone()), claims.sid.clone()),
                Err(_) => (None, None),
            },
            _ => (None, None),
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Reply {
    Reply::json_error(
        405,
        &ErrorBody::new("method_not_allowed", format!("use {allow}")),
    )
    .with_header("allow", allow)
}

/// Largest password form body.
const FORM_LIMIT: usize = 16 * 1024;

/// Largest body of a dialect's JSON endpoint.
const JSON_LIMIT: usize = 64 * 1024;

/// How much of an oversized body is read and dropped so that the client, still sending, gets
/// to read the 413 on a live connection. Past this the connection is simply closed.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// How long draining may take at most, so a slow sender cannot hold the answer back.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The body of a `POST` to a GraphQL path, or the answer refusing it: `415` unless it is
/// declared JSON (so a cross-site form or `text/plain` request, sent without a preflight, cannot
/// run an operation), `413` over `limit` bytes. Every GraphQL path reads its body through here.
pub(super) async fn graphql_body(
    session: &mut Session,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, Reply>> {
    if !is_json_content_type(&session.req_header().headers) {
        drain(session, 0).await;
        let message = "Content-Type must be application/json";
        let reply = Reply::new(415, "application/json", graphql::error_body(message));
        return Ok(Err(reply.with_header("accept", "application/json")));
    }
    Ok(match read_body(session, limit).await? {
        Some(body) => Ok(body),
        None => Err(Reply::new(
            413,
            "application/json",
            graphql::error_body(&format!("request body is over {limit} bytes")),
        )),
    })
}

/// Whether the request has exactly one `Content-Type`, naming a JSON type a GraphQL `POST` may
/// carry (`application/json` or `application/graphql-response+json`), in any case, with any
/// parameters.
fn is_json_content_type(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default();
    let media_type = media_type.trim_matches([' ', '\t']);
    ["application/json", "application/graphql-response+json"]
        .iter()
        .any(|json| media_type.eq_ignore_ascii_case(json))
}

/// Reads the whole request body, or `None` when it exceeds `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Vec<u8>>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if n <= DRAIN_LIMIT {
            drain(session, 0).await;
        }
        return Ok(None);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            drain(session, (body.len() + chunk.len()) as u64).await;
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Reads and drops what is left of the request body, up to [`DRAIN_LIMIT`] bytes in all
/// (`seen` already read) and [`DRAIN_TIME`].
pub(super) async fn drain(session: &mut Session, mut seen: u64) {
    let read = async {
        while seen <= DRAIN_LIMIT {
            match session.read_request_body().await {
                Ok(Some(chunk)) => seen += chunk.len() as u64,
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

#[cfg(test)]
mod tests {
    use super::is_json_content_type;

    fn with(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn json_media_types_are_accepted_with_parameters_in_any_case() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "APPLICATION/JSON",
            " application/json ",
            "application/graphql-response+json",
            "Application/GraphQL-Response+JSON; charset=utf-8",
        ] {
            assert!(is_json_content_type(&with(&[value])), "{value}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for value in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-seq",
            "application/graphql",
            "application/*",
            "*/*",
            "json",
            "",
            "; application/json",
            "text/plain, application/json",
        ] {
            assert!(!is_json_content_type(&with(&[value])), "{value:?}");
        }
        assert!(!is_json_content_type(&with(&[])));
        assert!(!is_json_content_type(&with(&[
            "application/json",
            "text/plain"
        ])));
        let mut opaque = http::HeaderMap::new();
        opaque.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_bytes(b"application/json\xff").unwrap(),
        );
        assert!(!is_json_content_type(&opaque));
    }
}
