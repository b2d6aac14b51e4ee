//! Assembles the running server: the public listener (proxy), the admin listener, and the
//! background key watcher, on Pingora; then runs until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::app::{App, StartError};
use crate::config::Config;
use crate::graphql;
use crate::proxy::Proxy;

/// How often the key directory is checked for rotated keys.
const KEY_POLL: Duration = Duration::from_secs(2);

pub fn run(config: Config) -> Result<(), StartError> {
    // Bind once ourselves first so that a taken port is a one-line error, not a panic.
    for (key, addr) in [
        ("server.listen", config.server.listen),
        ("server.admin_listen", config.server.admin_listen),
    ] {
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Io {
            what: format!("{key} {addr}"),
            source,
        })?;
    }
    let app = App::new(config)?;
    let config = &app.config;

    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(config.server.shutdown_timeout.as_secs()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let schema = graphql::build_schema(app.clone(), &config.graphql);
    let mut public = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(app.clone(), schema),
        "authgate public listener",
    );
    public.add_tcp(&config.server.listen.to_string());

    let mut admin = Service::new(
        "authgate admin listener".to_string(),
        Admin::new(app.clone()),
    );
    admin.add_tcp(&config.server.admin_listen.to_string());

    let watcher = background_service("authgate key watcher", KeyWatcher { app: app.clone() });

    let public = server.add_service(public);
    let admin = server.add_service(admin);
    // /readyz must not answer before the public listener does.
    admin.add_dependency(&public);
    server.add_service(watcher);
    tracing::info!(
        listen = %config.server.listen,
        admin = %config.server.admin_listen,
        mode = ?config.mode,
        kid = ?app.tokens.keys().snapshot().current().map(|key| key.kid.clone()),
        "authgate serving"
    );
    server.run(RunArgs::default());
    if let Some(accounts) = &app.accounts {
        // Pingora's runtimes are gone; a small one makes the last flush.
        let flushed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(accounts.flush()).map_err(|e| e.to_string()));
        if let Err(e) = flushed {
            tracing::error!(error = %e, "final flush of the user store failed");
        }
    }
    tracing::info!("authgate stopped");
    Ok(())
}

/// Picks up rotated or retired keys: a gateway polls its key directory, a verifier asks its
/// [`crate::verifier::KeyFetcher`] whether a load is due; both reload at once on SIGHUP.
struct KeyWatcher {
    app: Arc<App>,
}

#[async_trait]
impl BackgroundService for KeyWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; polling only");
                None
            }
        };
        let mut tick = tokio::time::interval(KEY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: reloading keys");
                    true
                }
                _ = shutdown.changed() => return,
            };
            if let Some(fetcher) = &self.app.key_fetcher {
                fetcher.tick(&self.app.metrics, hup).await;
                continue;
            }
            let app = self.app.clone();
            let result =
                tokio::task::spawn_blocking(move || app.tokens.keys().reload_if_changed()).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "key reload failed; keeping the previous keys")
                }
                Err(e) => tracing::error!(error = %e, "key reload task failed"),
            }
        }
    }
}
