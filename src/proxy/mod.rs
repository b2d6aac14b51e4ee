//! The public listener: a Pingora `ProxyHttp` that answers authgate's own endpoints itself and
//! forwards everything else through the gatekeeper. It only translates between HTTP and
//! [`crate::gate`] / [`crate::graphql`].

pub(crate) mod forward;
mod own;
mod pages;
mod respond;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::app::App;
use crate::config::AuthMode;
use crate::gate::{self, Cause, Credential, Identity, Outcome, Route};
use crate::graphql::AuthgateSchema;
use crate::jwt::Rejection;
use crate::metrics::Metrics;
use crate::pages::links;
use prometheus::{Histogram, IntCounter};

use crate::reply::ErrorBody;

/// Per-request state.
pub struct Ctx {
    request_id: HeaderValue,
    /// Which of [`Proxy::series`] the request counts in.
    series: usize,
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    /// The canonical path, as authorized, when it is not the request's path as sent.
    canonical: Option<String>,
    upstream_start: Option<Instant>,
    /// Why the gate refused the request, for the access log.
    refusal: Option<&'static str>,
    /// The path the access log shows when it is not the request's (a link token left out).
    log_path: Option<String>,
    upstream_status: u16,
    /// When the request began, if the access log is on (it shows the latency).
    started: Option<Instant>,
}

/// The series of our own endpoints, and of requests no route matches; routes follow.
const OWN_SERIES: usize = 0;
const NO_ROUTE_SERIES: usize = 1;
const ROUTE_SERIES: usize = 2;

/// The labelled metrics of one `route` label, each looked up in its vector the first time it
/// is used and kept, so a request hashes no label strings.
struct Series {
    label: Arc<str>,
    upstream_seconds: OnceLock<Histogram>,
    /// By status code, 0 to 599, then any other.
    statuses: Box<[OnceLock<IntCounter>]>,
}

impl Series {
    fn new(label: &str) -> Series {
        Series {
            label: Arc::from(label),
            upstream_seconds: OnceLock::new(),
            statuses: (0..=STATUS_LABELS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn requests(&self, metrics: &Metrics, status: u16) -> &IntCounter {
        let slot = usize::from(status).min(STATUS_LABELS);
        self.statuses[slot].get_or_init(|| {
            metrics
                .requests
                .with_label_values(&[&*self.label, status_label(status)])
        })
    }

    fn upstream_seconds(&self, metrics: &Metrics) -> &Histogram {
        self.upstream_seconds
            .get_or_init(|| metrics.upstream_seconds.with_label_values(&[&*self.label]))
    }
}

/// The gate's outcomes that pass, counted without a label lookup.
#[derive(Default)]
struct Passed {
    anonymous: OnceLock<IntCounter>,
    jwt: OnceLock<IntCounter>,
    api_key: OnceLock<IntCounter>,
}

/// The public listener, in both modes: authgate's own endpoints, then the gate, then the
/// upstream.
pub struct Proxy {
    app: Arc<App>,
    own: own::Endpoints,
    /// [`OWN_SERIES`], [`NO_ROUTE_SERIES`], then one per route in the route table's order.
    series: Vec<Series>,
    passed: Passed,
}

impl Proxy {
    pub fn new(
        app: Arc<App>,
        schema: AuthgateSchema,
        dialects: Vec<Arc<dyn crate::dialects::Dialect>>,
    ) -> Proxy {
        let series = ["authgate", "none"]
            .into_iter()
            .map(Series::new)
            .chain(
                app.routes
                    .all()
                    .iter()
                    .map(|r| Series::new(r.prefix.as_str())),
            )
            .collect();
        Proxy {
            own: own::Endpoints::new(&app, schema, dialects),
            app,
            series,
            passed: Passed::default(),
        }
    }

    fn count_passed(&self, identity: Option<&Identity>) {
        let auth = &self.app.metrics.auth;
        let (cell, labels) = match identity.map(|i| i.method) {
            None => (&self.passed.anonymous, ["anonymous", "none"]),
            Some(method) => {
                let cell = match method {
                    gate::AuthMethod::Jwt => &self.passed.jwt,
                    gate::AuthMethod::ApiKey => &self.passed.api_key,
                };
                (cell, ["allowed", method.as_str()])
            }
        };
        cell.get_or_init(|| auth.with_label_values(&labels)).inc();
    }

    /// The endpoint of ours that serves `path`, if any.
    fn own_endpoint(&self, path: &str) -> Option<own::Endpoint> {
        self.own.find(path).filter(|endpoint| {
            // A verifier routes the gateway's paths only where a route names them.
            *endpoint != own::Endpoint::GatewayOnly
                || self
                    .app
                    .routes
                    .find(path)
                    .is_none_or(|r| r.prefix.is_root())
        })
    }

    async fn serve_own(
        &self,
        endpoint: own::Endpoint,
        path: String,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.series = OWN_SERIES;
        ctx.log_path = self.own.loggable_path(endpoint, &path);
        let reply = self.own.serve(endpoint, &path, session).await?;
        respond::reply(session, &ctx.request_id, reply).await
    }

    async fn authorize(&self, route: &Route, req: &RequestHeader) -> Outcome {
        if route.auth == AuthMode::None {
            return Outcome::Anonymous;
        }
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
                        if Box::pin(fetcher.unknown_kid(&self.app.metrics)).await {
                            let again = gate::credential(&req.headers);
                            return gate::authorize(route, again, &self.app.tokens, |_| None);
                        }
                        outcome
                    }
                    _ => outcome,
                }
            }
            Ok(Credential::ApiKey(key)) => {
                let owner = Box::pin(self.api_key_owner(key)).await;
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

/// A client-supplied request id is kept when it is short and plain; otherwise we make one (a
/// random UUID, from the thread's generator: no system call per request).
fn request_id(req: &RequestHeader) -> HeaderValue {
    if let Some(value) = req.headers.get("x-request-id") {
        let bytes = value.as_bytes();
        let ok = (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if ok {
            return value.clone();
        }
    }
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Removes every `X-Auth-*` header the client sent.
fn strip_identity_headers(req: &mut RequestHeader) {
    let spoofed = |name: &http::HeaderName| name.as_str().starts_with(gate::IDENTITY_PREFIX);
    if !req.headers.keys().any(spoofed) {
        return;
    }
    let names: Vec<http::HeaderName> = req.headers.keys().filter(|n| spoofed(n)).cloned().collect();
    for name in names {
        req.remove_header(&name);
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: HeaderValue::from_static(""),
            series: NO_ROUTE_SERIES,
            route: None,
            identity: None,
            canonical: None,
            upstream_start: None,
            refusal: None,
            log_path: None,
            upstream_status: 0,
            started: self.app.config.log.access_log.then(Instant::now),
        }
    }

    // The rare branches (our own endpoints, refusals) are boxed futures of their own, so the
    // state of this one stays small: it is moved on every request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id = request_id(session.req_header());
        strip_identity_headers(session.req_header_mut());

        let path = match gate::canonical_path(session.req_header().uri.path()) {
            Ok(path) => path,
            Err(e) => {
                let body = ErrorBody::new("invalid_request", e.to_string());
                Box::pin(respond::json(session, &ctx.request_id, 400, &body, None)).await?;
                return Ok(true);
            }
        };
        if let Some(endpoint) = self.own_endpoint(&path) {
            let path = path.into_owned();
            Box::pin(self.serve_own(endpoint, path, session, ctx)).await?;
            return Ok(true);
        }
        let Some(n) = self.app.routes.position(&path) else {
            let body = ErrorBody::new("not_found", "no route matches this path");
            Box::pin(respond::json(session, &ctx.request_id, 404, &body, None)).await?;
            return Ok(true);
        };
        let route = self.app.routes.all()[n].clone();
        ctx.series = ROUTE_SERIES + n;
        ctx.canonical = match path {
            Cow::Owned(path) => Some(path),
            Cow::Borrowed(_) => None,
        };
        let req = session.req_header();
        // Browsers send no credentials on a preflight; such a route lets it through as is.
        let outcome =
            if route.skip_auth_preflight && crate::cors::is_preflight(&req.method, &req.headers) {
                Outcome::Anonymous
            } else {
                self.authorize(&route, req).await
            };
        match outcome {
            Outcome::Anonymous => self.count_passed(None),
            Outcome::Authenticated(identity) => {
                self.count_passed(Some(&identity));
                ctx.identity = Some(identity);
            }
            Outcome::Denied(denial) => {
                let reason = denial.cause.reason();
                self.app
                    .metrics
                    .auth
                    .with_label_values(&["denied", reason])
                    .inc();
                ctx.refusal = Some(reason);
                Box::pin(respond::denial(session, &ctx.request_id, &denial)).await?;
                return Ok(true);
            }
        }
        ctx.route = Some(route);
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
            self.series[ctx.series]
                .upstream_seconds(&self.app.metrics)
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
        forward::rewrite_response(response, &ctx.request_id)
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
        let series = &self.series[ctx.series];
        series.requests(&self.app.metrics, status).inc();
        if let Some(started) = ctx.started {
            access_log(session, ctx, &series.label, started, status);
        }
    }
}

/// One line per finished request. Never the query string, a header value, a cookie or a
/// token: who asked is the user id the gate established.
fn access_log(session: &Session, ctx: &Ctx, route: &str, started: Instant, status: u16) {
    let req = session.req_header();
    let (auth, user_id) = match &ctx.identity {
        Some(identity) => (identity.method.as_str(), identity.user_id()),
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
        request_id = ctx.request_id.to_str().unwrap_or(""),
        method = %req.method,
        path,
        route,
        status,
        upstream_status = ctx.upstream_status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        bytes = session.body_bytes_sent(),
        auth,
        user_id,
        refusal = ctx.refusal.unwrap_or(""),
        "request"
    );
}

/// Status codes 0 to 599 are labels of their own; any other is `other`.
const STATUS_LABELS: usize = 600;

/// Status codes as metric labels, made once.
fn status_label(status: u16) -> &'static str {
    static LABELS: OnceLock<Vec<String>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..STATUS_LABELS).map(|code| code.to_string()).collect());
    labels
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

/// Bytes of a fixed document, cheap to clone per request.
pub(crate) fn bytes_of(text: impl Into<Vec<u8>>) -> Bytes {
    Bytes::from(text.into())
}
