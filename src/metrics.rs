//! Prometheus metrics, all named `authgate_*`, in a registry of our own.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests answered on the public listener, by route prefix (or `authgate` for our own
    /// endpoints, `none` for no match) and status.
    pub requests: IntCounterVec,
    /// Gatekeeping outcomes: `outcome` is allowed|anonymous|denied, `reason` why.
    pub auth: IntCounterVec,
    /// Time from sending the request upstream to its response header, by route.
    pub upstream_seconds: HistogramVec,
    /// Time spent verifying a JWT (signature and claims).
    pub jwt_verify_seconds: prometheus::Histogram,
    /// JWKS documents served (verifiers fetching keys show up here).
    pub jwks_requests: prometheus::IntCounter,
    /// Verifier mode: loads of the gateway's keys by result (changed, unchanged, failed, or
    /// throttled: an unknown kid within `jwt.jwks_min_interval` of the last load).
    pub key_loads: IntCounterVec,
    /// Verifier mode: when the published keys were last loaded successfully (Unix seconds).
    pub keys_loaded_timestamp: prometheus::Gauge,
    /// Verifier mode: fetches of the gateway's revocation list by outcome (full, changed,
    /// unchanged, failed). Refusals of revoked tokens are `authgate_auth_total{reason="revoked"}`.
    pub revocation_polls: IntCounterVec,
    /// Entries in the revocation list the gate consults.
    pub revocation_entries: prometheus::IntGauge,
    /// Verifier mode: when the revocation list was last fetched successfully (Unix seconds).
    pub revocations_loaded_timestamp: prometheus::Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "authgate_http_requests_total",
                "Requests answered on the public listener",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let auth = IntCounterVec::new(
            Opts::new("authgate_auth_total", "Gatekeeping outcomes by reason"),
            &["outcome", "reason"],
        )
        .expect("valid metric");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "authgate_upstream_duration_seconds",
                "Time to the upstream's response header",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let jwt_verify_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "authgate_jwt_verify_duration_seconds",
                "Time to verify one JWT",
            )
            .buckets(vec![
                0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005,
            ]),
        )
        .expect("valid metric");
        let jwks_requests =
            prometheus::IntCounter::new("authgate_jwks_requests_total", "JWKS documents served")
                .expect("valid metric");
        let key_loads = IntCounterVec::new(
            Opts::new(
                "authgate_key_loads_total",
                "Loads of the gateway's published keys (verifier mode)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let keys_loaded_timestamp = prometheus::Gauge::new(
            "authgate_keys_loaded_timestamp_seconds",
            "When the published keys were last loaded (verifier mode)",
        )
        .expect("valid metric");
        let revocation_polls = IntCounterVec::new(
            Opts::new(
                "authgate_revocation_polls_total",
                "Fetches of the gateway's revocation list by outcome (verifier mode)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let revocation_entries = prometheus::IntGauge::new(
            "authgate_revocation_entries",
            "Entries in the revocation list the gate consults",
        )
        .expect("valid metric");
        let revocations_loaded_timestamp = prometheus::Gauge::new(
            "authgate_revocations_loaded_timestamp_seconds",
            "When the revocation list was last fetched (verifier mode)",
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(auth.clone()),
            Box::new(upstream_seconds.clone()),
            Box::new(jwt_verify_seconds.clone()),
            Box::new(jwks_requests.clone()),
            Box::new(key_loads.clone()),
            Box::new(keys_loaded_timestamp.clone()),
            Box::new(revocation_polls.clone()),
            Box::new(revocation_entries.clone()),
            Box::new(revocations_loaded_timestamp.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            auth,
            upstream_seconds,
            jwt_verify_seconds,
            jwks_requests,
            key_loads,
            keys_loaded_timestamp,
            revocation_polls,
            revocation_entries,
            revocations_loaded_timestamp,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
