//! Cache invalidation across replicas through PostgreSQL's LISTEN/NOTIFY.
//!
//! Writes that a per-process cache must forget (an API key revoked, a user changed or
//! deleted) call `pg_notify` in their own transaction, so the notice goes out exactly when
//! the change commits. Each replica keeps one dedicated connection listening on the channel
//! (`PgStore::listen`) and passes what it hears to its subscribers; that connection is
//! checked every second and reopened when it breaks, and subscribers then get
//! `Invalidation::All`, because notices sent while nobody listened are lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use super::{describe, Fault, PgStore};

/// The channel every replica listens on.
const CHANNEL: &str = "authgate_invalidate";
/// How often the listening connection is checked.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What a cache must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The API key with this hash.
    ApiKey(String),
    /// Everything cached about this user (their keys included).
    User(String),
    /// Everything: notices may have been missed.
    All,
}

impl Invalidation {
    fn parse(payload: &str) -> Option<Invalidation> {
        match payload.split_once(':') {
            Some(("key", hash)) => Some(Invalidation::ApiKey(hash.to_string())),
            Some(("user", id)) => Some(Invalidation::User(id.to_string())),
            _ => None,
        }
    }
}

pub(super) async fn announce_key(
    tx: &deadpool_postgres::Transaction<'_>,
    hash: &str,
) -> Result<(), Fault> {
    tx.execute("SELECT pg_notify($1, 'key:' || $2)", &[&CHANNEL, &hash])
        .await?;
    Ok(())
}

pub(super) async fn announce_user(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: &str,
) -> Result<(), Fault> {
    tx.execute("SELECT pg_notify($1, 'user:' || $2)", &[&CHANNEL, &user_id])
        .await?;
    Ok(())
}

impl PgStore {
    /// Invalidations heard from every replica (this one included). A lagging receiver
    /// (`RecvError::Lagged`) must forget everything, as for `Invalidation::All`.
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.events.subscribe()
    }

    /// Whether invalidations are being heard right now. While not, a cache cannot know what
    /// other replicas changed and should not be trusted.
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    /// Listens for invalidations until the future is dropped; reconnects by itself. Run it on
    /// a runtime that lives as long as the server.
    pub async fn listen(&self) {
        loop {
            if let Err(reason) = self.listen_once().await {
                if self.inner.listening.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%reason, "lost the PostgreSQL invalidation channel");
                    let _ = self.inner.events.send(Invalidation::All);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn listen_once(&self) -> Result<(), String> {
        let budget = self.inner.options.connect_timeout * 2;
        let (client, mut connection) =
            tokio::time::timeout(budget, self.inner.config.connect(self.inner.tls.clone()))
                .await
                .map_err(|_| "timed out connecting".to_string())?
                .map_err(|e| describe(&e))?;
        let events = self.inner.events.clone();
        let mut driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                        if let Some(event) = Invalidation::parse(n.payload()) {
                            let _ = events.send(event);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return describe(&e),
                    None => return "connection closed".to_string(),
                }
            }
        });
        let outcome = async {
            tokio::time::timeout(budget, client.batch_execute(&format!("LISTEN {CHANNEL}")))
                .await
                .map_err(|_| "timed out subscribing".to_string())?
                .map_err(|e| describe(&e))?;
            // Anything changed before now may have been missed.
            self.inner.listening.store(true, Ordering::Relaxed);
            let _ = self.inner.events.send(Invalidation::All);
            loop {
                tokio::select! {
                    ended = &mut driver => {
                        return Err(ended.unwrap_or_else(|e| e.to_string()));
                    }
                    _ = tokio::time::sleep(HEARTBEAT) => {
                        match tokio::time::timeout(HEARTBEAT, client.simple_query("")).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return Err(describe(&e)),
                            Err(_) => return Err("no answer to the heartbeat".to_string()),
                        }
                    }
                }
            }
        }
        .await;
        driver.abort();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(
            Invalidation::parse("key:abc"),
            Some(Invalidation::ApiKey("abc".into()))
        );
        assert_eq!(
            Invalidation::parse("user:0190-ab"),
            Some(Invalidation::User("0190-ab".into()))
        );
        assert_eq!(Invalidation::parse("other"), None);
        assert_eq!(Invalidation::parse("zzz:1"), None);
    }
}
