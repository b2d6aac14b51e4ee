//! The shared state of a running server: configuration, keys and tokens, routes, accounts,
//! metrics. Built once at start-up; the proxy, the GraphQL schema and the admin listener read it.

use std::sync::Arc;

use crate::accounts::storage::{RateLimiter, RefreshStore, SessionError, StoreError};
use crate::accounts::{self, Accounts, Argon2Settings, EmailTokens, Hasher, Links, PasswordPolicy};
use crate::config::{Config, Mode};
use crate::email::Mailer;
use crate::gate::RouteTable;
use crate::jwt::TokenService;
use crate::keys::{KeyError, KeyRing};
use crate::metrics::Metrics;
use crate::pages::links::NativeLinks;
use crate::store::memory::MemoryLimiter;
use crate::store::redis::{RedisConnector, RedisLimiter, RedisSessions};
use crate::store::sled::{OpenError, SledRevocations, SledSessions, SledStore};
use crate::verifier::{KeyFetcher, RevocationFetcher};

/// The key that seals secrets at rest, beside the email-token key in the data directory.
const SEAL_KEY_FILE: &str = "seal.key";

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
    /// the server holds the store). Kept in the data directory, mode 0600.
    pub admin_token: Option<String>,
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
        let (accounts, admin_token, key_fetcher, revocation_fetcher) = match &config.mode {
            Mode::Gateway => {
                let store = SledStore::open(&config.storage.data_dir)?;
                let accounts = build_accounts(&config, Arc::new(store), tokens.clone())?;
                load_revocations(&accounts)?;
                let admin_token = crate::admin::token::create(&config.storage.data_dir)
                    .map_err(StartError::io("admin token"))?;
                (Some(Arc::new(accounts)), Some(admin_token), None, None)
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

/// The account service over a given store (also used by the CLI when no server runs).
pub fn build_accounts(
    config: &Config,
    store: Arc<SledStore>,
    tokens: Arc<TokenService>,
) -> Result<Accounts, StartError> {
    // Sessions and rate limits: Redis when configured (shared by replicas), else embedded.
    let (sessions, limiter): (Arc<dyn RefreshStore>, Arc<dyn RateLimiter>) =
        match &config.storage.redis_url {
            None => {
                let sessions = SledSessions::new(store.db())?;
                (Arc::new(sessions), Arc::new(MemoryLimiter::default()))
            }
            Some(url) => {
                let redis = Arc::new(RedisConnector::new(url).map_err(|e| {
                    StartError::Config(format!("config key `storage.redis_url`: {e}"))
                })?);
                (
                    Arc::new(RedisSessions::new(redis.clone())),
                    Arc::new(RedisLimiter::new(redis)),
                )
            }
        };
    let revocations = SledRevocations::new(store.db()).map_err(StartError::Revocations)?;
    let hasher = Hasher::new(Argon2Settings {
        memory_kib: config.accounts.argon2_memory_kib,
        iterations: config.accounts.argon2_iterations,
        parallelism: config.accounts.argon2_parallelism,
    })
    .map_err(StartError::Config)?;
    let mailer = Mailer::from_config(&config.email).map_err(StartError::Config)?;
    let email_tokens = EmailTokens::open(&config.storage.data_dir).map_err(StartError::io(
        config.storage.data_dir.display().to_string(),
    ))?;
    let sealer = accounts::sealing::Sealer::new(
        crate::files::key_file(&config.storage.data_dir.join(SEAL_KEY_FILE)).map_err(
            StartError::io(config.storage.data_dir.display().to_string()),
        )?,
    );
    accounts::policy::preload();
    Ok(Accounts::new(accounts::Parts {
        api_keys: store.clone(),
        users: store,
        sessions,
        limiter,
        revocations: Arc::new(revocations),
        hasher,
        policy: PasswordPolicy {
            min_length: config.accounts.password_min_length,
        },
        mailer: Arc::new(mailer),
        email_tokens,
        sealer,
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
