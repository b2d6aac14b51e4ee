//! The public listener: a Pingora `ProxyHttp` that answers authgate's own endpoints itself and
//! forwards everything else through the gatekeeper. It only translates between HTTP and
//! [`crate::gate`] / [`crate::graphql`].

pub(crate) mod forward;
mod own;
mod pages;
mod respond;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::app::App;
use crate::gate::{self, Cause, Credential, Identity, Outcome, Route};
use crate::graphql::AuthgateSchema;
use crate::jwt::Rejection;
use crate::pages::links;

use crate::reply::ErrorBody;

/// Per-request state.
pub struct Ctx {
    request_id: String,
    /// Metrics label: the route prefix, `authgate` for our own endpoints, `none` for no match.
    label: Arc<str>,
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    /// The canonical path, as authorized.
    path: String,
    upstream_start: Option<Instant>,
    /// Why the gate refused the request, for the access log.
    refusal: Option<&'static str>,
    /// The path the access log shows when it is not the request's (a link token left out).
    log_path: Option<String>,
    upstream_status: u16,
    started: Instant,
}

/// The public listener, in both modes: authgate's own endpoints, then the gate, then the
/// upstream.
pub struct Proxy {
    app: Arc<App>,
    own: own::Endpoints,
    label_own: Arc<str>,
    label_none: Arc<str>,
    route_labels: Vec<(Arc<Route>, Arc<str>)>,
}

impl Proxy {
    pub fn new(
        app: Arc<App>,
        schema: AuthgateSchema,
        dialects: Vec<Arc<dyn crate::dialects::Dialect>>,
    ) -> Proxy {
        let route_labels = app
            .routes
            .all()
            .iter()
            .map(|r| (r.clone(), Arc::from(r.prefix.as_str())))
            .collect();
        Proxy {
            own: own::Endpoints::new(&app, schema, dialects),
            app,
            label_own: Arc::from("authgate"),
            label_none: Arc::from("none"),
            route_labels,
        }
    }

    fn label_for(&self, route: &Arc<Route>) -> Arc<str> {
        self.route_labels
            .iter()
            .find(|(r, _)| Arc::ptr_eq(r, route))
            .map(|(_, label)| label.clone())
            .unwrap_or_else(|| self.label_none.clone())
    }

    async fn authorize(&self, route: &Route, req: &RequestHeader) -> Outcome {
        let found = gate::credential(&req.headers);
        match found {
            Ok(Credential::Jwt(_)) => {
                let start = Instant::now();
                let outcome = gate::authorize(route, found, &self.app.tokens, |_| None);
                self.app
                    .metrics
                    .jwt_verify_seconds
                    .observe(start.elapsed().as_secs_f64());
                match (&outcome, &self.app.key_fetcher) {
                    // A verifier may be behind the gateway's keys: load them (throttled) and
                    // judge the token once more.
                    (Outcome::Denied(denial), Some(fetcher))
                        if matches!(
                            denial.cause,
                            Cause::Token(Rejection::UnknownKid | Rejection::NoKeys)
                        ) =>
                    {
                        if fetcher.unknown_kid(&self.app.metrics).await {
                            let again = gate::credential(&req.headers);
                            return gate::authorize(route, again, &self.app.tokens, |_| None);
                        }
                        outcome
                    }
                    _ => outcome,
                }
            }
            Ok(Credential::ApiKey(key)) if route.auth != crate::config::AuthMode::None => {
                let owner = self.api_key_owner(key).await;
                gate::authorize(route, found, &self.app.tokens, |_| owner)
            }
            _ => gate::authorize(route, found, &self.app.tokens, |_| None),
        }
    }

    async fn api_key_owner(&self, key: &str) -> Option<Identity> {
        let accounts = self.app.accounts.as_ref()?;
        match accounts.api_keys.resolve(key).await {
            Ok(subject) => subject.map(|s| Identity::from_subject(s, gate::AuthMethod::ApiKey)),
            Err(failure) => {
                tracing::error!(codes = ?failure.codes(), "API key lookup failed");
                None
            }
        }
    }
}

/// A client-supplied request id is kept when it is short and plain; otherwise we make one.
fn request_id(req: &RequestHeader) -> String {
    if let Some(value) = req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        let ok = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            return value.to_string();
        }
    }
    uuid::Uuid::new_v4().to_string()
}

/// Removes every `X-Auth-*` header the client sent.
fn strip_identity_headers(req: &mut RequestHeader) {
    let spoofed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with(gate::IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: String::new(),
            label: self.label_none.clone(),
            route: None,
            identity: None,
            path: String::new(),
            upstream_start: None,
            refusal: None,
            log_path: None,
            upstream_status: 0,
            started: Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id = request_id(session.req_header());
        strip_identity_headers(session.req_header_mut());

        let path = match gate::canonical_path(session.req_header().uri.path()) {
            Ok(path) => path,
            Err(e) => {
                let body = ErrorBody::new("invalid_request", e.to_string());
                respond::json(session, &ctx.request_id, 400, &body, None).await?;
                return Ok(true);
            }
        };
        let own = self.own.find(&path).filter(|endpoint| {
            // A verifier routes the gateway's paths only where a route names them.
            *endpoint != own::Endpoint::GatewayOnly
                || self
                    .app
                    .routes
                    .find(&path)
                    .is_none_or(|r| r.prefix.is_root())
        });
        if let Some(endpoint) = own {
            ctx.label = self.label_own.clone();
            ctx.log_path = self.own.loggable_path(endpoint, &path);
            let reply = self.own.serve(endpoint, &path, session).await?;
            respond::reply(session, &ctx.request_id, reply).await?;
            return Ok(true);
        }
        let Some(route) = self.app.routes.find(&path).cloned() else {
            let body = ErrorBody::new("not_found", "no route matches this path");
            respond::json(session, &ctx.request_id, 404, &body, None).await?;
            return Ok(true);
        };
        ctx.label = self.label_for(&route);
        let metrics = &self.app.metrics.auth;
        let req = session.req_header();
        // Browsers send no credentials on a preflight; such a route lets it through as is.
        let outcome =
            if route.skip_auth_preflight && crate::cors::is_preflight(&req.method, &req.headers) {
                Outcome::Anonymous
            } else {
                self.authorize(&route, req).await
            };
        match outcome {
            Outcome::Anonymous => metrics.with_label_values(&["anonymous", "none"]).inc(),
            Outcome::Authenticated(identity) => {
                let method = match identity.method {
                    gate::AuthMethod::Jwt => "jwt",
                    gate::AuthMethod::ApiKey => "api_key",
                };
                metrics.with_label_values(&["allowed", method]).inc();
                ctx.identity = Some(identity);
            }
            Outcome::Denied(denial) => {
                let reason = denial.cause.reason();
                metrics.with_label_values(&["denied", reason]).inc();
                ctx.refusal = Some(reason);
                respond::denial(session, &ctx.request_id, &denial).await?;
                return Ok(true);
            }
        }
        ctx.route = Some(route);
        ctx.path = path;
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let route = ctx.route.as_ref().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "no route chosen before upstream_peer",
            )
        })?;
        let mut peer = HttpPeer::new(route.upstream.addr, false, String::new());
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        forward::rewrite_request(&self.app.config.server, session, upstream, ctx)?;
        ctx.upstream_start = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = upstream_response.status.as_u16();
        if let Some(start) = ctx.upstream_start.take() {
            self.app
                .metrics
                .upstream_seconds
                .with_label_values(&[&ctx.label])
                .observe(start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 && session.response_written().is_none() {
            // Pingora closes the client connection after a failed proxy attempt, whatever we
            // return (only errors before proxying honour `can_reuse_downstream`): say so in the
            // response, or a keep-alive client sends its next request into a closed socket.
            session.set_keepalive(None);
            // Read what is left of the request body first (bounded): closing on unread bytes
            // sends a reset, which can cost the client the answer.
            own::drain(session, 0).await;
            let body = match code {
                502 => ErrorBody::new("bad_gateway", "the upstream is unreachable or failed"),
                400 => ErrorBody::new("bad_request", "the request could not be read"),
                413 => ErrorBody::new("payload_too_large", "the request body is too large"),
                _ => ErrorBody::new("internal_error", "the request could not be completed"),
            };
            let _ = respond::json(session, &ctx.request_id, code, &body, None).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map_or(0, |resp| resp.status.as_u16());
        self.app
            .metrics
            .requests
            .with_label_values(&[&*ctx.label, status_label(status)])
            .inc();
        if self.app.config.log.access_log {
            access_log(session, ctx, status);
        }
    }
}

/// One line per finished request. Never the query string, a header value, a cookie or a
/// token: who asked is the user id the gate established.
fn access_log(session: &Session, ctx: &Ctx, status: u16) {
    let req = session.req_header();
    let (auth, user_id) = match &ctx.identity {
        Some(identity) => (
            match identity.method {
                gate::AuthMethod::Jwt => "jwt",
                gate::AuthMethod::ApiKey => "api_key",
            },
            identity.user_id.as_str(),
        ),
        None => ("none", ""),
    };
    // Link tokens travel in these paths: the log shows which page, not which token.
    let path = ctx.log_path.as_deref().unwrap_or(req.uri.path());
    let path = [links::ACTIVATE, links::VERIFY_EMAIL]
        .into_iter()
        .find(|prefix| path.starts_with(prefix))
        .unwrap_or(path);
    tracing::info!(
        target: "authgate::access",
        request_id = %ctx.request_id,
        method = %req.method,
        path,
        route = &*ctx.label,
        status,
        upstream_status = ctx.upstream_status,
        latency_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        bytes = session.body_bytes_sent(),
        auth,
        user_id,
        refusal = ctx.refusal.unwrap_or(""),
        "request"
    );
}

/// Status codes as metric labels, made once.
fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..600).map(|code| code.to_string()).collect());
    labels.get(status as usize).map_or("other", String::as_str)
}

/// Bytes of a fixed document, cheap to clone per request.
pub(crate) fn bytes_of(text: impl Into<Vec<u8>>) -> Bytes {
    Bytes::from(text.into())
}
