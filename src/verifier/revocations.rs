//! Verifier mode: the gateway's revocation list (SPEC §13), fetched every
//! `jwt.revocations_poll` into the same list the gate consults.
//!
//! After the first fetch each request carries `?since=<cursor>`, so a list that did not
//! change costs an empty answer. A fetch that fails, or answers a document over 1 MiB or
//! malformed, changes nothing: the last good list stays in service (a metric and a log line).
//! Entries past their time are dropped here, as the gateway drops them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use pingora::connectors::http::Connector;
use tokio::sync::Mutex;

use super::http;
use crate::config::{HttpUrl, Verifier};
use crate::jwt::revocation::Document;
use crate::jwt::Revocations;
use crate::metrics::Metrics;

/// The largest revocation list read.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RevocationFetcher {
    /// `None`: no list to fetch (keys from a PEM file and no `jwt.revocations_url`).
    url: Option<HttpUrl>,
    connector: Connector,
    poll: Duration,
    list: Arc<Revocations>,
    /// The cursor of the last good document.
    cursor: Mutex<Option<String>>,
    loaded: AtomicBool,
    /// Whether the last fetch failed (so that a failure is logged once, not every second).
    failing: AtomicBool,
}

impl RevocationFetcher {
    pub fn new(config: &Verifier, list: Arc<Revocations>) -> RevocationFetcher {
        RevocationFetcher {
            loaded: AtomicBool::new(config.revocations.is_none()),
            url: config.revocations.clone(),
            connector: Connector::new(None),
            poll: config.revocations_poll,
            list,
            cursor: Mutex::new(None),
            failing: AtomicBool::new(false),
        }
    }

    /// How often [`RevocationFetcher::tick`] is to be called.
    pub fn poll(&self) -> Duration {
        self.poll
    }

    /// Whether a good list was loaded (or none is to be fetched): a verifier is ready only
    /// then.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// One fetch, merged into the list.
    pub async fn tick(&self, metrics: &Metrics) {
        let Some(base) = &self.url else {
            return;
        };
        let now = crate::clock::unix_now();
        self.list.purge(now);
        let mut cursor = self.cursor.lock().await;
        let url = match cursor.as_deref() {
            None => Ok(base.clone()),
            Some(since) => {
                let sep = if base.target().contains('?') {
                    '&'
                } else {
                    '?'
                };
                let since = utf8_percent_encode(since, NON_ALPHANUMERIC);
                HttpUrl::parse(&format!("{base}{sep}since={since}"))
            }
        };
        let fetched = match url {
            Ok(url) => http::get(&self.connector, &url, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES)
                .await
                .and_then(|body| Document::parse(&body)),
            Err(e) => Err(e),
        };
        match fetched {
            Ok(document) => {
                let entries = document.entries(self.list.keep());
                let outcome = if document.full {
                    self.list.replace(&entries);
                    "full"
                } else if self.list.apply(&entries) > 0 {
                    "changed"
                } else {
                    "unchanged"
                };
                self.list.purge(now);
                *cursor = Some(document.cursor);
                metrics.revocation_polls.with_label_values(&[outcome]).inc();
                metrics.revocation_entries.set(self.list.len() as i64);
                metrics
                    .revocations_loaded_timestamp
                    .set(crate::clock::unix_now_f64());
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(source = %base, entries = self.list.len(), "the revocation list is loaded again");
                }
                self.loaded.store(true, Ordering::Relaxed);
            }
            Err(error) => {
                metrics
                    .revocation_polls
                    .with_label_values(&["failed"])
                    .inc();
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(source = %base, %error, kept = self.list.len(), "fetching the revocation list failed; keeping the last good one");
                }
            }
        }
    }
}
