//! The shared state of a running server: configuration, keys and tokens, routes, accounts,
//! metrics. Built once at start-up; the proxy, the GraphQL schema and the admin listener read it.

use std::sync::Arc;

use crate::accounts::storage::{
    ApiKeyStore, RateLimiter, RefreshStore, RevocationStore, SessionError, StoreError, UserStore,
};
use crate::accounts::{self, Accounts, Argon2Settings, EmailTokens, Hasher, Links, PasswordPolicy};
use crate::config::{Backend, Config, Mode};
use crate::email::Mailer;
use crate::gate::RouteTable;
use crate::jwt::TokenService;
use crate::keys::{KeyError, KeyRing};
use crate::metrics::Metrics;
use crate::pages::links::NativeLinks;
use crate::store::memory::MemoryLimiter;
use crate::store::postgres::{Invalidation, PgError, PgOptions, PgStore};
use crate::store::redis::{RedisConnector, RedisLimiter, RedisSessions};
use crate::store::sled::{OpenError, SledRevocations, SledSessions, SledStore};
use crate::verifier::{KeyFetcher, RevocationFetcher};

/// The key that seals secrets at rest, beside the email-token key in the data directory
/// (with a database, it is kept there instead).
pub const SEAL_KEY_FILE: &str = "seal.key";

pub struct App {
    pub config: Config,
    pub tokens: Arc<TokenService>,
    pub routes: RouteTable,
    pub metrics: Metrics,
    /// The account API; `None` in verifier mode.
    pub accounts: Option<Arc<Accounts>>,
    /// Where a verifier's keys come from; `None` in gateway mode.
    pub key_fetcher: Option<Arc<KeyFetcher>>,
    /// Where a verifier's revocation list comes from; `None` in gateway mode.
    pub revocation_fetcher: Option<Arc<RevocationFetcher>>,
    /// A random secret that the local CLI presents to the admin listener (`user create` while
    /// the server holds the store). Kept in the data directory, mode 0600, or in the database.
    pub admin_token: Option<String>,
    /// The database the accounts live in, when configured (its invalidation channel).
    pub database: Option<PgStore>,
    /// The links of mail sent through the native schema and the CLI.
    pub links: Arc<dyn Links>,
}

/// Why the server (or a CLI command) could not start; each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration problem, one line naming the key (exit 2).
    #[error("{0}")]
    Config(String),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error(transparent)]
    Sessions(#[from] SessionError),
    #[error("revocation list: {0}")]
    Revocations(#[source] StoreError),
    /// The database could not be reached in time, refused us, or is of a newer schema.
    #[error("{0}")]
    Database(#[source] PgError),
    #[error("reading the shared secrets from PostgreSQL at {target}: {source}")]
    Secrets {
        target: String,
        #[source]
        source: StoreError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Io { what, source }
    }
}

impl App {
    pub fn new(config: Config) -> Result<Arc<App>, StartError> {
        let keys = Arc::new(match config.mode {
            Mode::Gateway => KeyRing::open_or_init(&config.jwt.keys_dir, config.jwt.key_bits)?,
            Mode::Verifier(_) => KeyRing::published_elsewhere(),
        });
        let tokens = Arc::new(
            TokenService::new(
                keys.clone(),
                &config.jwt.issuer,
                config.jwt.audience.as_deref(),
                config.jwt.access_ttl,
                config.jwt.leeway,
            )
            .with_cache_size(config.jwt.verify_cache_size),
        );
        let routes = RouteTable::new(&config.routes);
        let (accounts, admin_token, key_fetcher, revocation_fetcher, database) = match &config.mode
        {
            Mode::Gateway => {
                let stores = open_stores(&config)?;
                let admin_token = match &stores.secrets.admin_token {
                    Some(token) => token.clone(),
                    None => crate::admin::token::create(&config.storage.data_dir)
                        .map_err(StartError::io("admin token"))?,
                };
                let database = stores.database.clone();
                let accounts = build_accounts(&config, stores, tokens.clone())?;
                load_revocations(&accounts)?;
                if let Some(database) = &database {
                    // The load ran on a runtime of its own, which has ended.
                    database.release_idle();
                }
                (
                    Some(Arc::new(accounts)),
                    Some(admin_token),
                    None,
                    None,
                    database,
                )
            }
            Mode::Verifier(verifier) => {
                let fetcher =
                    KeyFetcher::new(verifier, keys.clone()).map_err(StartError::Config)?;
                let revocations = RevocationFetcher::new(verifier, tokens.revocations().clone());
                (
                    None,
                    None,
                    Some(Arc::new(fetcher)),
                    Some(Arc::new(revocations)),
                    None,
                )
            }
        };
        Ok(Arc::new(App {
            tokens,
            routes,
            metrics: Metrics::new(),
            accounts,
            admin_token,
            key_fetcher,
            revocation_fetcher,
            database,
            links: native_links(&config),
            config,
        }))
    }
}

/// Loads the persisted revocation list before anything is served, so that a restart refuses
/// what was refused before it (SPEC §13).
fn load_revocations(accounts: &Accounts) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::io("revocation list"))?;
    let entries = runtime
        .block_on(accounts.revocations().load(crate::clock::unix_now()))
        .map_err(StartError::Revocations)?;
    tracing::debug!(entries, "revocation list loaded");
    Ok(())
}

/// The stores the account logic runs over and the secrets it keeps, as `[storage]` chose them.
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub sessions: Arc<dyn RefreshStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub revocations: Arc<dyn RevocationStore>,
    pub secrets: Secrets,
    /// The database, when the accounts live in one.
    pub database: Option<PgStore>,
}

/// The keys of the email tokens and of sealing, and (with a database) the admin token: files
/// in the data directory for one process, rows of the database shared by every replica.
pub struct Secrets {
    pub email_token_key: [u8; 32],
    pub seal_key: [u8; 32],
    /// `None`: the server makes one per start in the data directory.
    pub admin_token: Option<String>,
}

/// Opens the stores `[storage]` names: the one place that chooses backends. With a database,
/// sled is not opened and nothing is written under `data_dir`. Call it outside any async
/// runtime (the database is reached on a runtime of its own for the start).
pub fn open_stores(config: &Config) -> Result<Stores, StartError> {
    match &config.storage.backend {
        Backend::Embedded { redis_url } => {
            let store = Arc::new(SledStore::open(&config.storage.data_dir)?);
            let (sessions, limiter): (Arc<dyn RefreshStore>, Arc<dyn RateLimiter>) = match redis_url
            {
                None => (
                    Arc::new(SledSessions::new(store.db())?),
                    Arc::new(MemoryLimiter::default()),
                ),
                Some(url) => redis(url)?,
            };
            let dir = &config.storage.data_dir;
            let key = |name: &str| {
                crate::files::key_file(&dir.join(name))
                    .map_err(StartError::io(dir.display().to_string()))
            };
            let revocations =
                Arc::new(SledRevocations::new(store.db()).map_err(StartError::Revocations)?);
            Ok(Stores {
                users: store.clone(),
                api_keys: store,
                sessions,
                limiter,
                revocations,
                secrets: Secrets {
                    email_token_key: key(accounts::email_token::KEY_FILE)?,
                    seal_key: key(SEAL_KEY_FILE)?,
                    admin_token: None,
                },
                database: None,
            })
        }
        Backend::Database {
            database_url,
            redis_url,
        } => {
            let (database, secrets) = open_database(database_url)?;
            let (sessions, limiter): (Arc<dyn RefreshStore>, Arc<dyn RateLimiter>) = match redis_url
            {
                None => (Arc::new(database.clone()), Arc::new(database.clone())),
                Some(url) => redis(url)?,
            };
            Ok(Stores {
                users: Arc::new(database.clone()),
                api_keys: Arc::new(database.clone()),
                sessions,
                limiter,
                revocations: Arc::new(database.clone()),
                secrets,
                database: Some(database),
            })
        }
    }
}

/// Where refresh tokens and rate limits go.
type Shared = (Arc<dyn RefreshStore>, Arc<dyn RateLimiter>);

fn redis(url: &str) -> Result<Shared, StartError> {
    let redis = Arc::new(
        RedisConnector::new(url)
            .map_err(|e| StartError::Config(format!("config key `storage.redis_url`: {e}")))?,
    );
    Ok((
        Arc::new(RedisSessions::new(redis.clone())),
        Arc::new(RedisLimiter::new(redis)),
    ))
}

/// Connects to the database (retrying while it is unreachable), migrates its schema and reads
/// the shared secrets, on a runtime that lives only for that.
fn open_database(url: &str) -> Result<(PgStore, Secrets), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StartError::io("a runtime for the database"))?;
    let opened = runtime.block_on(async {
        let store = PgStore::connect(url, PgOptions::default())
            .await
            .map_err(StartError::Database)?;
        let secret = |source| StartError::Secrets {
            target: store.target().to_string(),
            source,
        };
        let email_token_key = store.email_token_key().await.map_err(secret)?;
        let seal_key = store.seal_key().await.map_err(secret)?;
        let admin_token = store.admin_token().await.map_err(secret)?;
        Ok::<_, StartError>((
            store.clone(),
            Secrets {
                email_token_key,
                seal_key,
                admin_token: Some(admin_token),
            },
        ))
    });
    if let Ok((store, _)) = &opened {
        // Their connections were driven by this runtime, which ends here.
        store.release_idle();
    }
    opened
}

/// Makes the per-process caches forget what other replicas change, as the database announces
/// it; while the announcements cannot be heard, the caches are emptied every second. Runs
/// until dropped, on a runtime that lives as long as the server.
pub async fn follow_database(database: PgStore, accounts: Arc<Accounts>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = database.subscribe();
    let listen = database.listen();
    tokio::pin!(listen);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut listen => return,
            event = events.recv() => match event {
                Ok(Invalidation::ApiKey(hash)) => accounts.forget_api_key(&hash),
                Ok(Invalidation::User(id)) => accounts.forget_user(&id),
                Ok(Invalidation::All) | Err(RecvError::Lagged(_)) => accounts.forget_cached(),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if !database.listening() {
                    accounts.forget_cached();
                }
            }
        }
    }
}

/// The account service over the given stores.
pub fn build_accounts(
    config: &Config,
    stores: Stores,
    tokens: Arc<TokenService>,
) -> Result<Accounts, StartError> {
    let hasher = Hasher::new(Argon2Settings {
        memory_kib: config.accounts.argon2_memory_kib,
        iterations: config.accounts.argon2_iterations,
        parallelism: config.accounts.argon2_parallelism,
    })
    .map_err(StartError::Config)?;
    let mailer = Mailer::from_config(&config.email).map_err(StartError::Config)?;
    accounts::policy::preload();
    Ok(Accounts::new(accounts::Parts {
        users: stores.users,
        api_keys: stores.api_keys,
        sessions: stores.sessions,
        limiter: stores.limiter,
        revocations: stores.revocations,
        hasher,
        policy: PasswordPolicy {
            min_length: config.accounts.password_min_length,
        },
        mailer: Arc::new(mailer),
        email_tokens: EmailTokens::new(stores.secrets.email_token_key),
        sealer: accounts::sealing::Sealer::new(stores.secrets.seal_key),
        tokens,
        settings: accounts::Settings {
            login_by_email: config.accounts.login_by_email,
            login_by_username: config.accounts.login_by_username,
            allow_unverified_login: config.accounts.allow_unverified_login,
            email_available: config.accounts.email_available,
            activation_ttl: config.accounts.activation_ttl,
            reset_ttl: config.accounts.reset_ttl,
            refresh_ttl: config.jwt.refresh_ttl,
            delete_mode: config.accounts.delete_mode,
            rates: accounts::Rates {
                login: config.rate_limit.login,
                register: config.rate_limit.register,
                email: config.rate_limit.email,
            },
        },
    }))
}

/// The links of mail sent through the native schema: authgate's own pages, under
/// `email.link_base_url` or the public URL.
pub fn native_links(config: &Config) -> Arc<dyn Links> {
    Arc::new(NativeLinks::new(config.email.link_base.as_str()))
}
