//! PostgreSQL, for N replicas sharing one account base (`storage.database_url`): users and
//! API keys (`users.rs`), refresh tokens (`sessions.rs`), rate limits (`limits.rs`), the
//! revocation list (`revocations.rs`), the secrets every replica must agree on (here), and
//! cross-replica cache invalidation (`notify.rs`). The schema is versioned (`migrations.rs`).
//!
//! The driver is tokio-postgres with a deadpool pool and TLS through rustls (`tls.rs`).
//! Every call has one time budget (`PgOptions::op_timeout`, 1.5 s by default) covering the
//! wait for a connection and the queries: with the database down or frozen a call fails
//! within it, and a connection that timed out or broke is thrown away rather than reused, so
//! service resumes by itself once the database is back. The server cancels a statement that
//! outlives the budget too (`statement_timeout`), so an abandoned call holds no lock.

/// Runs `$body` (an async block's contents, with `$client: &mut Object`) on a pooled
/// connection within `$budget`; evaluates to `Result<T, Fault>`. See `Conn::finish`.
macro_rules! pg {
    ($store:expr, $budget:expr, |$client:ident| $body:block) => {{
        match $store.conn($budget).await {
            Err(e) => Err(e),
            Ok(mut conn) => {
                let deadline = conn.deadline;
                let outcome = ::tokio::time::timeout_at(
                    deadline,
                    $crate::store::postgres::faulting(async {
                        let $client = &mut conn.client;
                        $body
                    }),
                )
                .await;
                conn.finish(outcome)
            }
        }
    }};
    ($store:expr, |$client:ident| $body:block) => {
        pg!($store, $store.op_timeout(), |$client| $body)
    };
}

mod import;
mod limits;
mod migrations;
mod notify;
mod revocations;
mod sessions;
mod tls;
mod users;

pub use migrations::SCHEMA_VERSION;
pub use notify::Invalidation;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::accounts::storage::{SessionError, StoreError};

/// How the store talks to PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool.
    pub max_connections: usize,
    /// The whole budget of one call: waiting for a connection, then its queries.
    pub op_timeout: Duration,
    /// Opening one connection (TCP, TLS, authentication).
    pub connect_timeout: Duration,
    /// How long `connect` keeps retrying an unreachable database at start.
    pub start_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            max_connections: 16,
            op_timeout: Duration::from_millis(1500),
            connect_timeout: Duration::from_millis(1000),
            start_timeout: Duration::from_secs(50),
        }
    }
}

/// Why the store could not start. None of these texts contains the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `storage.database_url` is malformed or asks for something unsupported.
    #[error("config key `storage.database_url`: {0}")]
    Config(String),
    /// Still unreachable when `start_timeout` ran out.
    #[error("PostgreSQL at {target} is unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    /// The database was migrated by a newer authgate.
    #[error(
        "the database schema is version {found}, newer than version {supported} that this \
         authgate knows; run a newer authgate"
    )]
    SchemaTooNew { found: i32, supported: i32 },
    /// Anything else: authentication refused, a migration failed, ...
    #[error("PostgreSQL at {target}: {reason}")]
    Failed { target: String, reason: String },
}

/// What a query can come to, before it is told in the trait's own error type.
#[derive(Debug)]
pub(super) enum Fault {
    Db(tokio_postgres::Error),
    /// No connection or no answer in time.
    Unavailable(String),
    Unique(&'static str),
    NotFound,
    Corrupt(String),
    Other(String),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Fault {
        Fault::Db(e)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Db(e) => f.write_str(&describe(e)),
            Fault::Unavailable(reason) => write!(f, "database unavailable: {reason}"),
            Fault::Unique(field) => write!(f, "{field} is already taken"),
            Fault::NotFound => f.write_str("not found"),
            Fault::Corrupt(reason) => write!(f, "corrupt row: {reason}"),
            Fault::Other(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Fault {
    /// A connection or TLS error keeps the driver's error as its source. A server error does
    /// not: its SQLSTATE and message are in ours, and its DETAIL can quote row values (an
    /// email) that no log should hold.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fault::Db(e) if e.as_db_error().is_none() => Some(e),
            _ => None,
        }
    }
}

impl From<Fault> for StoreError {
    fn from(fault: Fault) -> StoreError {
        match fault {
            Fault::Unique(field) => StoreError::Unique(field),
            Fault::NotFound => StoreError::NotFound,
            other => StoreError::backend(other),
        }
    }
}

impl From<Fault> for SessionError {
    fn from(fault: Fault) -> SessionError {
        SessionError::new(fault)
    }
}

/// A driver error in words: the SQLSTATE and message of a server error (never its DETAIL,
/// which can quote row values), or the kind and cause of a connection error.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Errors worth running a transaction again for.
pub(super) fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_SERIALIZATION_FAILURE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

/// Pins an async block's output to `Result<_, Fault>` (so `?` inside it knows its target).
pub(super) fn faulting<T, F: Future<Output = Result<T, Fault>>>(f: F) -> F {
    f
}

/// A pooled connection and the deadline of the call it serves.
pub(super) struct Conn {
    pub(super) client: Object,
    pub(super) deadline: Instant,
}

impl Conn {
    /// The call's result; a connection that timed out (it may still be busy with the
    /// abandoned statement) or broke is thrown away so the pool opens a fresh one.
    pub(super) fn finish<T>(
        self,
        outcome: Result<Result<T, Fault>, tokio::time::error::Elapsed>,
    ) -> Result<T, Fault> {
        match outcome {
            Err(_) => {
                drop(Object::take(self.client));
                Err(Fault::Unavailable("no answer in time".into()))
            }
            Ok(Err(Fault::Db(e))) if e.as_db_error().is_none() => {
                drop(Object::take(self.client));
                Err(Fault::Unavailable(describe(&e)))
            }
            Ok(other) => other,
        }
    }
}

/// The database-wide advisory lock that schema migrations hold (`pg_locks.objid` shows its
/// low 32 bits); a process waiting on it at start is waiting for another one's migration.
pub const MIGRATE_LOCK: i64 = 0x6175_7468_6761_7465; // "authgate"
/// Held by the replica sweeping expired rows.
const SWEEP_LOCK: i64 = MIGRATE_LOCK + 1;

/// Seconds between sweeps of expired refresh tokens and rate-limit windows.
const SWEEP_EVERY: i64 = 60;
/// Budget of the calls that may read a lot (every user; the sweep).
const LONG_BUDGET: Duration = Duration::from_secs(30);

/// The PostgreSQL store. Cheap to clone; every clone shares the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    options: PgOptions,
    target: String,
    events: broadcast::Sender<Invalidation>,
    listening: AtomicBool,
    next_sweep: AtomicI64,
}

/// `host:port/db as user`, for logs and errors: what was dialled, without the password.
fn target(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "{}/{} as {}",
        if hosts.is_empty() {
            "localhost".to_string()
        } else {
            hosts.join(",")
        },
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)")
    )
}

/// What one start attempt came to.
enum Attempt {
    /// The database could not be reached (or is starting): try again.
    Retry(String),
    Fatal(PgError),
}

/// Whether the TLS layer refused the server (its certificate, most likely): a verdict
/// that trying again will not change.
fn tls_refused(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// Whether an error means "not reachable yet" rather than "refused".
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => !tls_refused(e),
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                ]
                .contains(code)
        }
    }
}

impl PgStore {
    /// Connects, creates or migrates the schema (one process at a time: the others wait),
    /// and opens the pool. An unreachable database is retried until `start_timeout`; a
    /// refused login, a malformed URL or a schema newer than this binary fail at once.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, PgError> {
        let (mut config, tls) = tls::parse(url).map_err(PgError::Config)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("authgate");
        }
        if config.get_tcp_user_timeout().is_none() {
            // Unacknowledged data for this long closes the socket (a peer gone silently).
            config.tcp_user_timeout(Duration::from_secs(10));
        }
        let target = target(&config);
        let deadline = Instant::now() + options.start_timeout;
        loop {
            match Self::migrate_once(&config, &tls, &target, deadline).await {
                Ok(()) => break,
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    if Instant::now() + Duration::from_millis(500) >= deadline {
                        return Err(PgError::Unreachable { target, reason });
                    }
                    tracing::warn!(%target, %reason, "PostgreSQL not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let pool = Self::pool(&config, &tls, &options).map_err(|reason| PgError::Failed {
            target: target.clone(),
            reason,
        })?;
        let (events, _) = broadcast::channel(1024);
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                options,
                target,
                events,
                listening: AtomicBool::new(false),
                next_sweep: AtomicI64::new(0),
            }),
        })
    }

    async fn migrate_once(
        config: &tokio_postgres::Config,
        tls: &MakeRustlsConnect,
        target: &str,
        deadline: Instant,
    ) -> Result<(), Attempt> {
        let failed = |reason: String| {
            Attempt::Fatal(PgError::Failed {
                target: target.to_string(),
                reason,
            })
        };
        let (mut client, connection) =
            match tokio::time::timeout_at(deadline, config.connect(tls.clone())).await {
                Err(_) => return Err(Attempt::Retry("timed out connecting".into())),
                Ok(Err(e)) if transient(&e) => return Err(Attempt::Retry(describe(&e))),
                Ok(Err(e)) => return Err(failed(describe(&e))),
                Ok(Ok(pair)) => pair,
            };
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let outcome = tokio::time::timeout_at(deadline, migrations::migrate(&mut client)).await;
        drop(client);
        let _ = driver.await;
        match outcome {
            Err(_) => Err(failed(
                "timed out waiting for the schema migration (another process holds its lock)"
                    .into(),
            )),
            Ok(Ok(applied)) => {
                if !applied.is_empty() {
                    tracing::info!(%target, ?applied, "database schema migrated");
                }
                Ok(())
            }
            Ok(Err(migrations::MigrateError::TooNew { found })) => {
                Err(Attempt::Fatal(PgError::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                }))
            }
            Ok(Err(migrations::MigrateError::Altered { version })) => Err(failed(format!(
                "migration {version} recorded in the database differs from this authgate's"
            ))),
            Ok(Err(migrations::MigrateError::Db(e))) if transient(&e) => {
                Err(Attempt::Retry(describe(&e)))
            }
            Ok(Err(migrations::MigrateError::Db(e))) => {
                Err(failed(format!("schema migration: {}", describe(&e))))
            }
        }
    }

    fn pool(
        config: &tokio_postgres::Config,
        tls: &MakeRustlsConnect,
        options: &PgOptions,
    ) -> Result<Pool, String> {
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let settings = format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = 10000",
            options.op_timeout.as_millis().max(1)
        );
        Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.op_timeout))
            // Bounded by the call's own deadline; a burst of new connections on a busy
            // database may take longer than one connect alone.
            .create_timeout(Some(options.op_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .post_create(deadpool_postgres::Hook::async_fn(move |client, _| {
                let settings = settings.clone();
                Box::pin(async move {
                    client
                        .batch_execute(&settings)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Where the store points, without the password (for logs and `/readyz`).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// A connection from the pool, waited for no longer than `budget`; the deadline it
    /// carries bounds the rest of the call.
    pub(super) async fn conn(&self, budget: Duration) -> Result<Conn, Fault> {
        let deadline = Instant::now() + budget;
        match tokio::time::timeout_at(deadline, self.inner.pool.get()).await {
            Err(_) => Err(Fault::Unavailable("no connection in time".into())),
            Ok(Err(e)) => Err(Fault::Unavailable(pool_error(&e))),
            Ok(Ok(client)) => Ok(Conn { client, deadline }),
        }
    }

    pub(super) fn op_timeout(&self) -> Duration {
        self.inner.options.op_timeout
    }

    /// Whether the database answers, within the call budget (for `/readyz`).
    pub async fn answers(&self) -> bool {
        pg!(self, |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .is_ok()
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i32, StoreError> {
        Ok(pg!(self, |client| {
            let row = client
                .query_one("SELECT max(version) FROM schema_version", &[])
                .await?;
            Ok(row.try_get::<_, Option<i32>>(0)?.unwrap_or(0))
        })?)
    }

    /// The secret `name`, the same on every replica: the first caller's `candidate` is
    /// stored, every later caller (on any replica) gets that one back.
    pub async fn ensure_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(pg!(self, |client| {
            // Two statements: the SELECT's snapshot must see a row that a concurrent first
            // writer committed while this INSERT waited for it.
            client
                .execute(
                    "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &candidate],
                )
                .await?;
            let row = client
                .query_one("SELECT value FROM shared_secrets WHERE name = $1", &[&name])
                .await?;
            Ok(row.try_get::<_, Vec<u8>>(0)?)
        })?)
    }

    /// The secret `name`, when one is stored.
    pub async fn find_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(pg!(self, |client| {
            let row = client
                .query_opt("SELECT value FROM shared_secrets WHERE name = $1", &[&name])
                .await?;
            Ok(match row {
                Some(row) => Some(row.try_get::<_, Vec<u8>>(0)?),
                None => None,
            })
        })?)
    }

    /// The key that signs email tokens (activation, reset, ...), shared by every replica.
    pub async fn email_token_key(&self) -> Result<[u8; 32], StoreError> {
        let candidate: [u8; 32] = rand::random();
        let value = self.ensure_secret("email_token_key", &candidate).await?;
        value
            .try_into()
            .map_err(|_| StoreError::backend("shared secret email_token_key: not 32 bytes"))
    }

    /// The key that seals secrets at rest (`accounts::sealing`), shared by every replica.
    pub async fn seal_key(&self) -> Result<[u8; 32], StoreError> {
        let candidate: [u8; 32] = rand::random();
        let value = self.ensure_secret("seal_key", &candidate).await?;
        value
            .try_into()
            .map_err(|_| StoreError::backend("shared secret seal_key: not 32 bytes"))
    }

    /// Closes the idle connections of the pool: after calls made on a runtime that is about
    /// to end (the start-up's), whose connections would end with it.
    pub fn release_idle(&self) {
        self.inner.pool.retain(|_, _| false);
    }

    /// The admin listener's token, shared by every replica (64 hex digits).
    pub async fn admin_token(&self) -> Result<String, StoreError> {
        let candidate: [u8; 32] = rand::random();
        let value = self.ensure_secret("admin_token", &candidate).await?;
        if value.len() != 32 {
            return Err(StoreError::backend(
                "shared secret admin_token: not 32 bytes",
            ));
        }
        Ok(value.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Deletes expired refresh tokens, long-expired revoked families and past rate-limit
    /// windows. One replica sweeps at a time; `false` when another one was at it.
    pub async fn sweep(&self, now: i64) -> Result<bool, StoreError> {
        Ok(pg!(self, LONG_BUDGET, |client| {
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL statement_timeout = '30s'")
                .await?;
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&SWEEP_LOCK])
                .await?
                .try_get(0)?;
            if !locked {
                return Ok(false);
            }
            tx.execute("DELETE FROM refresh_tokens WHERE expires_at < $1", &[&now])
                .await?;
            // A revoked family stays a day past its last token, as a tombstone.
            tx.execute(
                "DELETE FROM refresh_families WHERE expires_at < $1",
                &[&(now - 86_400)],
            )
            .await?;
            tx.execute("DELETE FROM rate_limits WHERE window_end < $1", &[&now])
                .await?;
            tx.commit().await?;
            Ok(true)
        })?)
    }

    /// Starts a sweep in the background when one is due (about once a minute per replica).
    pub(super) fn sweep_if_due(&self, now: i64) {
        let due = self.inner.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .inner
                .next_sweep
                .compare_exchange(due, now + SWEEP_EVERY, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.sweep(now).await {
                tracing::warn!(error = %e, "sweeping expired rows failed");
            }
        });
    }
}

fn pool_error(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(_) => "timed out waiting for a connection".into(),
        PoolError::PostCreateHook(e) => match e {
            HookError::Backend(e) => describe(e),
            HookError::Message(m) => m.to_string(),
        },
        other => other.to_string(),
    }
}
