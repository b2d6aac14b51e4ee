//! Assembles the running server: the public listener (proxy), the admin listener, the
//! background key watcher, the revocation list's and (with a database) the database
//! follower, on Pingora; then runs until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::TcpSocketOptions;
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
    let public_port = Port::claim("server.listen", config.server.listen)?;
    let admin_port = Port::claim("server.admin_listen", config.server.admin_listen)?;
    let config = config.with_bound_ports(public_port.addr, admin_port.addr);
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
    let dialects = crate::dialects::build(&app).map_err(StartError::Config)?;
    let mut public = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(app.clone(), schema, dialects),
        "authgate public listener",
    );
    public_port.add_to(&mut public);

    let mut admin = Service::new(
        "authgate admin listener".to_string(),
        Admin::new(app.clone()),
    );
    admin_port.add_to(&mut admin);

    let watcher = background_service("authgate key watcher", KeyWatcher { app: app.clone() });
    let revocations = background_service(
        "authgate revocation list",
        RevocationWatcher { app: app.clone() },
    );

    let public = server.add_service(public);
    let admin = server.add_service(admin);
    // /readyz must not answer before the public listener does.
    admin.add_dependency(&public);
    server.add_service(watcher);
    server.add_service(revocations);
    if let (Some(database), Some(accounts)) = (&app.database, &app.accounts) {
        server.add_service(background_service(
            "authgate database follower",
            DatabaseFollower {
                database: database.clone(),
                accounts: accounts.clone(),
            },
        ));
    }
    // The ports as bound (port 0 resolved): what a supervisor, or the integration tests, read
    // to find a server started on `127.0.0.1:0`.
    tracing::info!(
        listen = %config.server.listen,
        admin = %config.server.admin_listen,
        mode = if config.is_gateway() { "gateway" } else { "verifier" },
        kid = app
            .tokens
            .keys()
            .snapshot()
            .current()
            .map_or(String::new(), |key| key.kid.clone()),
        "authgate serving"
    );
    server.run(RunArgs::default());
    // The claimed ports are held until Pingora's listeners are closed.
    drop((public_port, admin_port));
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

/// One listener's address as Pingora is to bind it.
///
/// Pingora binds its listeners itself, from an address string, when the server runs. For a
/// fixed port we bind it once first and let go, so that a port already taken is a one-line
/// error rather than Pingora's panic. For port 0 the kernel picks a free port, and the port
/// must stay ours until Pingora binds it: we keep a socket bound to it (`SO_REUSEPORT`, never
/// listening) for the life of the server, and Pingora binds the same address with
/// `SO_REUSEPORT` too. Meanwhile no other socket can bind that port (only one of the same user
/// that also sets `SO_REUSEPORT`, on purpose), the kernel hands it to no other `bind(0)` or
/// outgoing connection, and, as it never listens, the held socket takes no connection. What is
/// left is a connection attempt before Pingora listens: refused, as for any server not yet up.
struct Port {
    addr: SocketAddr,
    held: Option<tokio::net::TcpSocket>,
}

impl Port {
    fn claim(key: &str, addr: SocketAddr) -> Result<Port, StartError> {
        let failed = |source: std::io::Error| StartError::Io {
            what: format!("{key} {addr}"),
            source,
        };
        if addr.port() != 0 {
            std::net::TcpListener::bind(addr).map_err(failed)?;
            return Ok(Port { addr, held: None });
        }
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(failed)?;
        socket.set_reuseport(true).map_err(failed)?;
        socket.bind(addr).map_err(failed)?;
        let addr = socket.local_addr().map_err(failed)?;
        Ok(Port {
            addr,
            held: Some(socket),
        })
    }

    fn add_to<A>(&self, service: &mut Service<A>) {
        let addr = self.addr.to_string();
        if self.held.is_some() {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            service.add_tcp_with_settings(&addr, options);
        } else {
            service.add_tcp(&addr);
        }
    }
}

/// Keeps this replica's caches in step with the others' changes (`app::follow_database`).
struct DatabaseFollower {
    database: crate::store::postgres::PgStore,
    accounts: Arc<crate::accounts::Accounts>,
}

#[async_trait]
impl BackgroundService for DatabaseFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = crate::app::follow_database(self.database.clone(), self.accounts.clone()) => {}
            _ = shutdown.changed() => {}
        }
    }
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

/// How often a gateway drops old revocations and reads the ones other replicas stored.
const REVOCATION_SYNC: Duration = Duration::from_secs(1);

/// Keeps the revocation list in step: a gateway with its store (entries of other replicas,
/// old ones dropped), a verifier with the gateway's published list.
struct RevocationWatcher {
    app: Arc<App>,
}

#[async_trait]
impl BackgroundService for RevocationWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let every = match &self.app.revocation_fetcher {
            Some(fetcher) => fetcher.poll(),
            None => REVOCATION_SYNC,
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let metrics = &self.app.metrics;
            if let Some(fetcher) = &self.app.revocation_fetcher {
                fetcher.tick(metrics).await;
                continue;
            }
            let Some(accounts) = &self.app.accounts else {
                return;
            };
            let list = accounts.revocations();
            match list.sync(crate::clock::unix_now()).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the revocation store answers again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "reading the revocation store failed; the list in memory stays in service");
                }
                Err(_) => {}
            }
            metrics.revocation_entries.set(list.live().len() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Port;

    #[tokio::test]
    async fn a_claimed_port_is_held_for_pingora_alone() {
        let port = Port::claim("server.listen", "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = port.addr;
        assert_ne!(addr.port(), 0);
        assert!(std::net::TcpListener::bind(addr).is_err(), "a plain bind");
        let reuse_addr = tokio::net::TcpSocket::new_v4().unwrap();
        reuse_addr.set_reuseaddr(true).unwrap();
        assert!(reuse_addr.bind(addr).is_err(), "SO_REUSEADDR alone");

        // Bound as Pingora binds it (SO_REUSEADDR and SO_REUSEPORT), the listener gets every
        // connection: the held socket never listens, so it takes none.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.set_reuseport(true).unwrap();
        socket.bind(addr).unwrap();
        let listener = socket.listen(64).unwrap();
        for _ in 0..20 {
            let both =
                async { tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept()) };
            let (client, accepted) = tokio::time::timeout(std::time::Duration::from_secs(5), both)
                .await
                .expect("accepted within 5 s");
            client.unwrap();
            accepted.unwrap();
        }
        drop(port);
    }
}
