//! Verifier mode: where a sidecar gets the keys it verifies with, and when it fetches them
//! again.
//!
//! The keys come from the gateway's JWKS (`jwt.jwks_url`) or a PEM file
//! (`jwt.public_key_file`) and go into the same [`KeyRing`] the gate reads. A JWKS is loaded
//! again every `jwt.jwks_refresh`, on SIGHUP, and when a token names a `kid` we do not know;
//! never twice within `jwt.jwks_min_interval`, so tokens with made-up kids cannot make a
//! verifier hammer its gateway. A PEM file is read again whenever it changes. A failed load
//! keeps the last good keys in service.
//!
//! The gateway's revocation list comes from `revocations.rs`, fetched every
//! `jwt.revocations_poll`.

mod http;
mod revocations;

pub use revocations::{RevocationFetcher, MAX_DOCUMENT_BYTES};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pingora::connectors::http::Connector;
use tokio::sync::Mutex;

use crate::config::{HttpUrl, KeySource, Verifier};
use crate::keys::{self, KeyRing};
use crate::metrics::Metrics;

/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS document read (32 RSA-4096 keys are about 25 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where a verifier's keys come from.
pub enum Source {
    Jwks {
        url: HttpUrl,
        connector: Box<Connector>,
    },
    PemFile(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Jwks { url, .. } => write!(f, "{url}"),
            Source::PemFile(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Timing of the loads, behind one async lock: holding it is what "a load is running" means.
#[derive(Default)]
struct Attempts {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    /// The PEM file as last read: (length, modified).
    file_stamp: Option<(u64, SystemTime)>,
}

pub struct KeyFetcher {
    source: Source,
    ring: Arc<KeyRing>,
    refresh: Duration,
    min_interval: Duration,
    attempts: Mutex<Attempts>,
}

impl KeyFetcher {
    /// The fetcher of a verifier's configuration. A PEM file is read now: one that cannot be
    /// used is a configuration error, found at start. Errors name their config key.
    pub fn new(config: &Verifier, ring: Arc<KeyRing>) -> Result<KeyFetcher, String> {
        let mut attempts = Attempts::default();
        let source = match &config.keys {
            KeySource::Jwks(url) => Source::Jwks {
                url: url.clone(),
                connector: Box::new(Connector::new(None)),
            },
            KeySource::PemFile(path) => {
                attempts.file_stamp = file_stamp(path);
                let keys = read_pem_file(path)
                    .map_err(|e| format!("config key `jwt.public_key_file`: {e}"))?;
                ring.replace(keys);
                Source::PemFile(path.clone())
            }
        };
        Ok(KeyFetcher {
            source,
            ring,
            refresh: config.jwks_refresh,
            min_interval: config.jwks_min_interval,
            attempts: Mutex::new(attempts),
        })
    }

    /// Called on every tick of the key watcher (and with `now` on SIGHUP). A JWKS is loaded
    /// when no keys are in service yet or `jwks_refresh` has passed, never within
    /// `jwks_min_interval` of the previous attempt; a PEM file whenever it changed.
    pub async fn tick(&self, metrics: &Metrics, now: bool) {
        let mut attempts = self.attempts.lock().await;
        let due = match &self.source {
            Source::PemFile(path) => now || file_stamp(path) != attempts.file_stamp,
            Source::Jwks { .. } => {
                let stale = now
                    || self.ring.snapshot().all().is_empty()
                    || attempts
                        .last_success
                        .is_none_or(|t| t.elapsed() >= self.refresh);
                stale && self.may_attempt(&attempts)
            }
        };
        if due {
            self.load(&mut attempts, metrics).await;
        }
    }

    /// After a token named a `kid` we do not know: loads the JWKS again unless a load was
    /// attempted within `jwks_min_interval`. Returns true when the key set changed (by this
    /// load, or by one that was running when we asked), so that the token is worth verifying
    /// again. A PEM file is not read for this: a change to it is seen within one tick.
    pub async fn unknown_kid(&self, metrics: &Metrics) -> bool {
        if matches!(self.source, Source::PemFile(_)) {
            return false;
        }
        let before = self.ring.snapshot().generation();
        let mut attempts = match self.attempts.try_lock() {
            Ok(attempts) => attempts,
            Err(_) => {
                // A load is running: its result is the answer.
                drop(self.attempts.lock().await);
                return self.ring.snapshot().generation() != before;
            }
        };
        if !self.may_attempt(&attempts) {
            metrics.key_loads.with_label_values(&["throttled"]).inc();
            return false;
        }
        self.load(&mut attempts, metrics).await;
        self.ring.snapshot().generation() != before
    }

    fn may_attempt(&self, attempts: &Attempts) -> bool {
        attempts
            .last_attempt
            .is_none_or(|t| t.elapsed() >= self.min_interval)
    }

    async fn load(&self, attempts: &mut Attempts, metrics: &Metrics) {
        attempts.last_attempt = Some(Instant::now());
        let result = match &self.source {
            Source::Jwks { url, connector } => {
                http::get(connector, url, FETCH_TIMEOUT, MAX_JWKS_BYTES)
                    .await
                    .and_then(|body| keys::parse_jwks(&body))
            }
            Source::PemFile(path) => {
                attempts.file_stamp = file_stamp(path);
                read_pem_file(path)
            }
        };
        match result {
            Ok(keys) => {
                attempts.last_success = Some(Instant::now());
                let changed = self.ring.replace(keys);
                let outcome = if changed { "changed" } else { "unchanged" };
                metrics.key_loads.with_label_values(&[outcome]).inc();
                metrics
                    .keys_loaded_timestamp
                    .set(crate::clock::unix_now_f64());
            }
            Err(error) => {
                metrics.key_loads.with_label_values(&["failed"]).inc();
                let kept = self.ring.snapshot().all().len();
                tracing::warn!(source = %self.source, %error, kept, "loading the published keys failed; keeping the previous ones");
            }
        }
    }
}

/// Reads a PEM file of public keys.
fn read_pem_file(path: &std::path::Path) -> Result<Vec<keys::Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    keys::parse_public_pems(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_stamp(path: &std::path::Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)))
}
