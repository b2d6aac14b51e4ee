//! Configuration: the TOML file, `AUTHGATE_<SECTION>__<KEY>` environment overrides, defaults,
//! and validation with one-line errors that name the offending key.
//!
//! Two stages, once, at start: `file.rs` is the file as written (serde, defaults, overrides);
//! [`Config`] is what it means, as typed values: enums for choices, `Option` for what may be
//! unset, resolved upstreams, parsed URLs, the verifier's one key source. Everything else in
//! authgate reads [`Config`]; nothing re-parses a string from it. This module is a leaf: it
//! imports nothing from the rest of the crate.

mod env;
mod file;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};

pub use file::DEFAULT_VERIFY_CACHE_SIZE;
use file::{FileConfig, ModeName};
pub use values::{Duration, HttpUrl, Origin, Rate, RoutePrefix, Upstream};

/// A configuration problem, always reported as one line naming the key (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn at(key: impl std::fmt::Display, what: impl std::fmt::Display) -> Self {
        ConfigError(format!("config key `{key}`: {what}"))
    }
}

/// What this process is.
// Built once at start and read in place: the size of the verifier's variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Accounts, GraphQL and the proxy; owns the user store and signs tokens.
    Gateway,
    /// Proxy only: verifies tokens against the gateway's published keys.
    Verifier(Verifier),
}

/// A verifier's keys: where they come from and how often they are loaded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub keys: KeySource,
    /// A JWKS is loaded again this often in any case ...
    pub jwks_refresh: StdDuration,
    /// ... and never twice within this (unknown kids, retries).
    pub jwks_min_interval: StdDuration,
    /// The gateway's revocation list (SPEC §13): `jwt.revocations_url`, by default the JWKS
    /// URL's origin + `/.well-known/revocations.json`; `None` with a PEM file and no URL.
    pub revocations: Option<HttpUrl>,
    /// How often the revocation list is fetched.
    pub revocations_poll: StdDuration,
}

/// Where a gateway publishes its revocation list.
pub const REVOCATIONS_PATH: &str = "/.well-known/revocations.json";

/// Where a verifier's keys come from: exactly one of `jwt.jwks_url`, `jwt.public_key_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Jwks(HttpUrl),
    PemFile(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    Optional,
    None,
}

/// How `deleteAccount` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    /// The account stays (email taken) but can never log in again.
    Deactivate,
    /// The record is removed; the email is free again.
    Hard,
}

/// An identifier `tokenAuth` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginField {
    Email,
    Username,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Log,
    Smtp,
    File,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// tracing's human format (colours on a terminal).
    Text,
    /// One JSON object per line: timestamp, level, target, message and the fields.
    Json,
}

/// Which original account API a dialect serves (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DialectKind {
    #[serde(rename = "django-graphql-auth")]
    DjangoGraphqlAuth,
    #[serde(rename = "django-graphql-auth-relay")]
    DjangoGraphqlAuthRelay,
    #[serde(rename = "krypton")]
    Krypton,
    #[serde(rename = "karrio")]
    Karrio,
    #[serde(rename = "craft")]
    Craft,
}

impl DialectKind {
    pub fn name(self) -> &'static str {
        match self {
            DialectKind::DjangoGraphqlAuth => "django-graphql-auth",
            DialectKind::DjangoGraphqlAuthRelay => "django-graphql-auth-relay",
            DialectKind::Krypton => "krypton",
            DialectKind::Karrio => "karrio",
            DialectKind::Craft => "craft",
        }
    }
}

/// A cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    #[default]
    Strict,
    Lax,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub server: Server,
    pub storage: Storage,
    pub jwt: Jwt,
    pub graphql: Graphql,
    pub accounts: Accounts,
    pub email: Email,
    pub rate_limit: RateLimits,
    pub log: Log,
    /// Longest prefix first.
    pub routes: Vec<Route>,
    /// The original account APIs served beside the native one, in the order written.
    pub dialects: Vec<Dialect>,
    /// The file as written (after overrides), for `check-config`.
    written: FileConfig,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: HttpUrl,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins allowed to call authgate's own endpoints (CORS, with credentials).
    pub cors_origins: Vec<Origin>,
    /// Worker threads of the public listener; at least 1 (0 in the file: one per core).
    pub threads: usize,
    /// After SIGTERM, how long to finish in-flight requests before exiting.
    pub shutdown_timeout: StdDuration,
}

#[derive(Debug, Clone)]
pub struct Storage {
    /// sled's directory; nothing is written there with a database.
    pub data_dir: PathBuf,
    pub backend: Backend,
}

/// Where the account state lives. The variants are all there is: with a database, sessions and
/// rate limits are shared (Redis or the database itself), so no configuration can give
/// replicas sharing one account base separate session or limit state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One process: users in sled; sessions in sled and rate limits in memory, or both in
    /// Redis.
    Embedded { redis_url: Option<String> },
    /// N replicas: users in PostgreSQL; sessions and rate limits in Redis when set, else in
    /// PostgreSQL too.
    Database {
        database_url: String,
        redis_url: Option<String>,
    },
}

impl Storage {
    /// Redis for sessions and rate limits, when configured.
    pub fn redis_url(&self) -> Option<&str> {
        match &self.backend {
            Backend::Embedded { redis_url } | Backend::Database { redis_url, .. } => {
                redis_url.as_deref()
            }
        }
    }

    /// PostgreSQL for everything else, when configured.
    pub fn database_url(&self) -> Option<&str> {
        match &self.backend {
            Backend::Database { database_url, .. } => Some(database_url),
            Backend::Embedded { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Jwt {
    pub keys_dir: PathBuf,
    /// Placed in and required from every token.
    pub issuer: String,
    pub audience: Option<String>,
    pub access_ttl: StdDuration,
    pub refresh_ttl: StdDuration,
    pub leeway: StdDuration,
    /// Size of newly generated keys (first start, `keys rotate`): 2048, 3072 or 4096.
    pub key_bits: usize,
    /// Verified tokens remembered to skip repeated RSA verifications; 0 turns the cache off.
    pub verify_cache_size: usize,
}

#[derive(Debug, Clone)]
pub struct Graphql {
    pub playground: bool,
    pub introspection: bool,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    pub login_by_email: bool,
    pub login_by_username: bool,
    pub allow_unverified_login: bool,
    pub email_available: bool,
    pub delete_mode: DeleteMode,
    pub password_min_length: usize,
    pub activation_ttl: StdDuration,
    pub reset_ttl: StdDuration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone)]
pub struct Email {
    pub transport: Transport,
    /// The `From` mailbox, e.g. `authgate <no-reply@localhost>`.
    pub from: String,
    /// Base of links in mail: `email.link_base_url`, else `server.public_url`.
    pub link_base: HttpUrl,
    /// Templates that replace the built-in ones of the same name.
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Transport {
    /// Messages go to the log.
    Log,
    /// One `.eml` file per message in this directory.
    File(PathBuf),
    Smtp(Smtp),
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User and password, when the relay wants them.
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub login: Rate,
    pub register: Rate,
    pub email: Rate,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing env-filter (`info`, `authgate=debug,pingora=warn`); `RUST_LOG` wins when set.
    pub level: String,
    /// One line per finished request on the public listener.
    pub access_log: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            level: "info".into(),
            access_log: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: RoutePrefix,
    pub upstream: Upstream,
    pub auth: AuthMode,
    pub require_verified: bool,
    /// Any of these; empty: any authenticated user.
    pub roles: Vec<String>,
    pub strip_prefix: bool,
    /// CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) pass to
    /// the upstream without credentials.
    pub skip_auth_preflight: bool,
    /// Only access tokens of a login with a second factor (`amr` has `otp`) pass; API keys
    /// never do.
    pub require_mfa: bool,
}

/// One `[[dialects]]` table: an original's client-facing API under `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub kind: DialectKind,
    pub prefix: RoutePrefix,
    /// Where links in mail sent through this dialect point: `link_base_url`, else
    /// `server.public_url` + `prefix` (authgate serves those pages).
    pub link_base: HttpUrl,
    /// Origins a client's redirect URL may use (Karrio); default: the link base's origin.
    pub redirect_origins: Vec<Origin>,
    pub cookie_same_site: SameSite,
}

/// authgate's own top-level paths: a dialect prefix may not be one, lie under one, or hold one.
pub const OWN_PATHS: &[&str] = &[
    "/graphql",
    "/.well-known",
    "/activate",
    "/verify-email",
    "/password",
];

impl Config {
    /// Loads the effective configuration: defaults, then the file (if any), then the
    /// `AUTHGATE_*` variables of `env`, then validation.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => read_toml(path)?,
            None => toml::Table::new(),
        };
        let from_env = env::apply_overrides(&mut tree, env)?;
        let written: FileConfig = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().message().trim().replace('\n', "; ");
                match from_env.iter().find(|(key, _)| *key == path) {
                    Some((_, var)) => ConfigError(format!("{var} (config key `{path}`): {inner}")),
                    None if path == "." => ConfigError(format!("config: {inner}")),
                    None => ConfigError::at(path, inner),
                }
            })?;
        Config::from_written(written)
    }

    /// Loads from the process environment.
    pub fn from_process(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, std::env::vars())
    }

    /// The embedded defaults (what `serve` runs on with no file and no environment).
    pub fn defaults() -> Config {
        Config::from_written(FileConfig::default()).expect("the defaults are valid")
    }

    /// The same configuration once listeners on port 0 got their ports from the kernel: the
    /// real addresses, and a public URL written with port 0 (with what derives from it: the
    /// issuer, the link base) on the public listener's port.
    pub fn with_bound_ports(&self, listen: SocketAddr, admin_listen: SocketAddr) -> Config {
        let mut written = self.written.clone();
        written.server.listen = listen;
        written.server.admin_listen = admin_listen;
        if let Some(url) = values::with_port(&written.server.public_url, listen.port()) {
            written.server.public_url = url;
        }
        Config::from_written(written).unwrap_or_else(|_| self.clone())
    }

    pub fn is_gateway(&self) -> bool {
        self.mode == Mode::Gateway
    }

    /// The effective configuration as TOML, with secrets replaced by `"<redacted>"`.
    pub fn to_redacted_toml(&self) -> String {
        let mut copy = self.written.clone();
        if !copy.email.smtp_password.is_empty() {
            copy.email.smtp_password = "<redacted>".into();
        }
        copy.storage.redis_url = values::redact_url_password(&copy.storage.redis_url);
        copy.storage.database_url = values::redact_database_url(&copy.storage.database_url);
        toml::to_string(&copy).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    fn from_written(written: FileConfig) -> Result<Config, ConfigError> {
        let f = &written;
        let public_url = HttpUrl::parse(&f.server.public_url)
            .map_err(|what| ConfigError::at("server.public_url", what))?;
        if f.server.listen == f.server.admin_listen && f.server.listen.port() != 0 {
            return Err(ConfigError::at(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        if ![2048, 3072, 4096].contains(&f.jwt.key_bits) {
            return Err(ConfigError::at(
                "jwt.key_bits",
                "must be 2048, 3072 or 4096",
            ));
        }
        for (key, ttl) in [
            ("jwt.access_ttl", f.jwt.access_ttl),
            ("jwt.refresh_ttl", f.jwt.refresh_ttl),
        ] {
            if ttl.is_zero() {
                return Err(ConfigError::at(key, "must be longer than 0s"));
            }
        }
        let mode = match f.mode {
            ModeName::Gateway => {
                for (key, value) in [
                    ("jwt.jwks_url", &f.jwt.jwks_url),
                    ("jwt.public_key_file", &f.jwt.public_key_file),
                ] {
                    // A gateway signs its own tokens: a key source here is most likely a
                    // forgotten `mode = "verifier"`, which would refuse the real gateway's.
                    if !value.is_empty() {
                        return Err(ConfigError::at(
                            key,
                            "only used with mode = \"verifier\" (a gateway publishes its own keys)",
                        ));
                    }
                }
                Mode::Gateway
            }
            ModeName::Verifier => Mode::Verifier(verifier(f)?),
        };
        if f.graphql.max_depth == 0 || f.graphql.max_complexity == 0 {
            return Err(ConfigError::at(
                "graphql.max_depth",
                "depth and complexity limits must be at least 1",
            ));
        }
        if f.graphql.max_body_bytes < 1024 {
            return Err(ConfigError::at(
                "graphql.max_body_bytes",
                "must be at least 1024",
            ));
        }
        let redis = &f.storage.redis_url;
        if !redis.is_empty()
            && !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| redis.starts_with(scheme))
        {
            return Err(ConfigError::at(
                "storage.redis_url",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        let database = &f.storage.database_url;
        if !database.is_empty()
            && !["postgres://", "postgresql://"]
                .iter()
                .any(|scheme| database.starts_with(scheme))
        {
            return Err(ConfigError::at(
                "storage.database_url",
                "must start with postgres:// or postgresql://",
            ));
        }
        let backend = match non_empty(database) {
            None => Backend::Embedded {
                redis_url: non_empty(redis),
            },
            Some(database_url) => Backend::Database {
                database_url,
                redis_url: non_empty(redis),
            },
        };
        let link_base = match f.email.link_base_url.as_str() {
            "" => public_url.clone(),
            text => HttpUrl::parse(text).map_err(|e| ConfigError::at("email.link_base_url", e))?,
        };
        let issuer = match f.jwt.issuer.as_str() {
            "" => public_url.as_str().to_string(),
            text => text.to_string(),
        };
        let config = Config {
            mode,
            server: Server {
                listen: f.server.listen,
                admin_listen: f.server.admin_listen,
                public_url: public_url.clone(),
                cors_origins: origins("server.cors_origins", &f.server.cors_origins)?,
                trusted_proxies: f.server.trusted_proxies.clone(),
                threads: match f.server.threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                },
                shutdown_timeout: f.server.shutdown_timeout.as_std(),
            },
            storage: Storage {
                data_dir: f.storage.data_dir.clone(),
                backend,
            },
            jwt: Jwt {
                keys_dir: f.jwt.keys_dir.clone(),
                issuer,
                audience: non_empty(&f.jwt.audience),
                access_ttl: f.jwt.access_ttl.as_std(),
                refresh_ttl: f.jwt.refresh_ttl.as_std(),
                leeway: f.jwt.leeway.as_std(),
                key_bits: f.jwt.key_bits,
                verify_cache_size: f.jwt.verify_cache_size,
            },
            graphql: Graphql {
                playground: f.graphql.playground,
                introspection: f.graphql.introspection,
                max_depth: f.graphql.max_depth,
                max_complexity: f.graphql.max_complexity,
                max_body_bytes: f.graphql.max_body_bytes,
            },
            accounts: Accounts {
                login_by_email: f.accounts.login_fields.contains(&LoginField::Email),
                login_by_username: f.accounts.login_fields.contains(&LoginField::Username),
                allow_unverified_login: f.accounts.allow_unverified_login,
                email_available: f.accounts.email_available,
                delete_mode: f.accounts.delete_mode,
                password_min_length: f.accounts.password_min_length,
                activation_ttl: f.accounts.activation_ttl.as_std(),
                reset_ttl: f.accounts.reset_ttl.as_std(),
                argon2_memory_kib: f.accounts.argon2_memory_kib,
                argon2_iterations: f.accounts.argon2_iterations,
                argon2_parallelism: f.accounts.argon2_parallelism,
            },
            email: Email {
                transport: transport(&f.email)?,
                from: f.email.from.clone(),
                link_base,
                templates_dir: non_empty(&f.email.templates_dir).map(PathBuf::from),
            },
            rate_limit: RateLimits {
                login: f.rate_limit.login,
                register: f.rate_limit.register,
                email: f.rate_limit.email,
            },
            log: Log {
                format: f.log.format,
                level: log_level(&f.log.level)?,
                access_log: f.log.access_log,
            },
            routes: routes(&f.routes)?,
            dialects: dialects(f, &public_url)?,
            written,
        };
        Ok(config)
    }
}

fn log_level(level: &str) -> Result<String, ConfigError> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| level.to_string())
        .map_err(|e| ConfigError::at("log.level", format!("`{level}` is not a log filter ({e})")))
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// A verifier learns its keys from exactly one place and must know whose tokens it takes.
fn verifier(f: &FileConfig) -> Result<Verifier, ConfigError> {
    let jwt = &f.jwt;
    let keys = match (jwt.jwks_url.as_str(), jwt.public_key_file.as_str()) {
        ("", "") => {
            return Err(ConfigError::at(
                "jwt.jwks_url",
                "mode = \"verifier\" needs jwt.jwks_url (the gateway's /.well-known/jwks.json) or jwt.public_key_file",
            ))
        }
        (_, file) if !jwt.jwks_url.is_empty() && !file.is_empty() => {
            return Err(ConfigError::at(
                "jwt.public_key_file",
                "set either jwt.jwks_url or jwt.public_key_file, not both",
            ))
        }
        (url, "") => KeySource::Jwks(
            HttpUrl::parse(url).map_err(|what| ConfigError::at("jwt.jwks_url", what))?,
        ),
        (_, file) => KeySource::PemFile(PathBuf::from(file)),
    };
    if jwt.issuer.is_empty() {
        return Err(ConfigError::at(
            "jwt.issuer",
            "required with mode = \"verifier\": the gateway's issuer (its jwt.issuer, or else its server.public_url)",
        ));
    }
    if jwt.jwks_min_interval.as_std() < StdDuration::from_secs(1) {
        return Err(ConfigError::at(
            "jwt.jwks_min_interval",
            "must be at least 1s",
        ));
    }
    if jwt.jwks_refresh.as_std() < jwt.jwks_min_interval.as_std() {
        return Err(ConfigError::at(
            "jwt.jwks_refresh",
            "must be at least jwt.jwks_min_interval",
        ));
    }
    let revocations = match (jwt.revocations_url.as_str(), &keys) {
        ("", KeySource::Jwks(jwks)) => Some(
            HttpUrl::parse(&format!("{}{REVOCATIONS_PATH}", jwks.origin()))
                .map_err(|what| ConfigError::at("jwt.jwks_url", what))?,
        ),
        ("", KeySource::PemFile(_)) => None,
        (url, _) => {
            Some(HttpUrl::parse(url).map_err(|what| ConfigError::at("jwt.revocations_url", what))?)
        }
    };
    if jwt.revocations_poll.as_std() < StdDuration::from_millis(100) {
        return Err(ConfigError::at(
            "jwt.revocations_poll",
            "must be at least 100ms",
        ));
    }
    Ok(Verifier {
        keys,
        jwks_refresh: jwt.jwks_refresh.as_std(),
        jwks_min_interval: jwt.jwks_min_interval.as_std(),
        revocations,
        revocations_poll: jwt.revocations_poll.as_std(),
    })
}

fn transport(email: &file::EmailSection) -> Result<Transport, ConfigError> {
    Ok(match email.transport {
        TransportKind::Log => Transport::Log,
        TransportKind::File => match non_empty(&email.file_dir) {
            Some(dir) => Transport::File(PathBuf::from(dir)),
            None => {
                return Err(ConfigError::at(
                    "email.file_dir",
                    "required when email.transport = \"file\"",
                ))
            }
        },
        TransportKind::Smtp => {
            let Some(host) = non_empty(&email.smtp_host) else {
                return Err(ConfigError::at(
                    "email.smtp_host",
                    "required when email.transport = \"smtp\"",
                ));
            };
            Transport::Smtp(Smtp {
                host,
                port: email.smtp_port,
                tls: email.smtp_tls,
                credentials: non_empty(&email.smtp_user)
                    .map(|user| (user, email.smtp_password.clone())),
            })
        }
    })
}

fn routes(sections: &[file::RouteSection]) -> Result<Vec<Route>, ConfigError> {
    let mut routes: Vec<Route> = Vec::with_capacity(sections.len());
    for (i, route) in sections.iter().enumerate() {
        let key = |field: &str| format!("routes[{i}].{field}");
        let prefix = RoutePrefix::parse(&route.prefix)
            .map_err(|what| ConfigError::at(key("prefix"), what))?;
        if routes.iter().any(|r| r.prefix == prefix) {
            return Err(ConfigError::at(
                key("prefix"),
                format!("`{}` is declared twice", route.prefix),
            ));
        }
        routes.push(Route {
            prefix,
            upstream: Upstream::resolve(&route.upstream)
                .map_err(|what| ConfigError::at(key("upstream"), what))?,
            auth: route.auth,
            require_verified: route.require_verified,
            roles: route.roles.clone(),
            strip_prefix: route.strip_prefix,
            skip_auth_preflight: route.skip_auth_preflight,
            require_mfa: route.require_mfa,
        });
    }
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.as_str().len()));
    Ok(routes)
}

fn origins(key: &str, texts: &[String]) -> Result<Vec<Origin>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Origin::parse(text).map_err(|what| ConfigError::at(format!("{key}[{i}]"), what))
        })
        .collect()
}

/// The `[[dialects]]` tables, with the refusals of SPEC §11: a prefix that is `/`, one of
/// authgate's own paths (or under or above one), or overlaps another dialect's; a route at or
/// under a dialect's prefix; URLs that are not absolute http(s); `SameSite=None` without https;
/// any dialect on a verifier.
fn dialects(f: &FileConfig, public_url: &HttpUrl) -> Result<Vec<Dialect>, ConfigError> {
    let mut dialects: Vec<Dialect> = Vec::with_capacity(f.dialects.len());
    for (i, section) in f.dialects.iter().enumerate() {
        let key = |field: &str| format!("dialects[{i}].{field}");
        if f.mode == ModeName::Verifier {
            return Err(ConfigError::at(
                "dialects",
                "dialects serve accounts: only with mode = \"gateway\"",
            ));
        }
        let prefix = RoutePrefix::parse(&section.prefix)
            .map_err(|what| ConfigError::at(key("prefix"), what))?;
        if prefix.is_root() {
            return Err(ConfigError::at(
                key("prefix"),
                "must not be `/`: name a path such as `/django`",
            ));
        }
        for own in OWN_PATHS {
            let own = RoutePrefix::parse(own).expect("own paths are prefixes");
            if own.contains(&prefix) || prefix.contains(&own) {
                return Err(ConfigError::at(
                    key("prefix"),
                    format!("`{prefix}` collides with authgate's own path `{own}`"),
                ));
            }
        }
        if let Some(other) = dialects
            .iter()
            .find(|d| d.prefix.contains(&prefix) || prefix.contains(&d.prefix))
        {
            return Err(ConfigError::at(
                key("prefix"),
                format!(
                    "`{prefix}` overlaps the prefix `{}` of another dialect",
                    other.prefix
                ),
            ));
        }
        if let Some(route) = f
            .routes
            .iter()
            .position(|r| RoutePrefix::parse(&r.prefix).is_ok_and(|route| prefix.contains(&route)))
        {
            return Err(ConfigError::at(
                format!("routes[{route}].prefix"),
                format!("lies at or under the prefix `{prefix}` of dialects[{i}]: dialect paths are authgate's own"),
            ));
        }
        let link_base = match section.link_base_url.as_str() {
            "" => HttpUrl::parse(&format!("{}{prefix}", public_url.as_str()))
                .map_err(|what| ConfigError::at("server.public_url", what))?,
            text => {
                HttpUrl::parse(text).map_err(|what| ConfigError::at(key("link_base_url"), what))?
            }
        };
        let mut redirect_origins = origins(&key("redirect_origins"), &section.redirect_origins)?;
        if redirect_origins.is_empty() {
            redirect_origins.push(Origin::of(&link_base));
        }
        if section.cookie_same_site == SameSite::None && !public_url.is_https() {
            return Err(ConfigError::at(
                key("cookie_same_site"),
                "\"none\" needs an https server.public_url (browsers drop SameSite=None cookies without Secure)",
            ));
        }
        dialects.push(Dialect {
            kind: section.kind,
            prefix,
            link_base,
            redirect_origins,
            cookie_same_site: section.cookie_same_site,
        });
    }
    Ok(dialects)
}

fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        ConfigError(format!(
            "config file {} line {line}: {}",
            path.display(),
            e.message().trim().replace('\n', "; ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authgate.toml");
        std::fs::write(&path, toml_text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_need_nothing() {
        let config = Config::load(None, Vec::new()).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.jwt.access_ttl.as_secs(), 900);
        assert_eq!(config.jwt.issuer, "http://127.0.0.1:8080");
        assert_eq!(config.email.link_base.as_str(), "http://127.0.0.1:8080");
        assert!(config.storage.redis_url().is_none() && config.jwt.audience.is_none());
        assert!(config.storage.database_url().is_none());
        assert!(matches!(config.email.transport, Transport::Log));
        assert_eq!(config.routes.len(), 1);
    }

    /// The documented example is the defaults, key for key: it cannot drift from the code.
    #[test]
    fn example_config_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/authgate.toml");
        let example = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(
            toml::to_string(&example.written).unwrap(),
            toml::to_string(&FileConfig::default()).unwrap()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults = toml::Table::try_from(FileConfig::default()).unwrap();
        for (section, value) in &defaults {
            match value {
                toml::Value::Table(keys) => {
                    for key in keys.keys() {
                        assert!(
                            text.contains(&format!("\n{key} = ")),
                            "config/authgate.toml does not document {section}.{key}"
                        );
                    }
                }
                _ => assert!(
                    text.contains(&format!("\n{section} = "))
                        || ["routes", "dialects"].contains(&section.as_str())
                ),
            }
        }
        for key in [
            "kind",
            "prefix",
            "link_base_url",
            "redirect_origins",
            "cookie_same_site",
        ] {
            assert!(
                text.contains(&format!("\n# {key} = ")),
                "config/authgate.toml does not document dialects.{key}"
            );
        }
    }

    #[test]
    fn dialects_are_typed_and_refused_where_they_collide() {
        let config = load(
            "[server]\ncors_origins = [\"HTTPS://App.example.com\"]\n[[dialects]]\nkind = \"krypton\"\nprefix = \"/auth/krypton/\"\n[[dialects]]\nkind = \"django-graphql-auth-relay\"\nprefix = \"/relay\"\nlink_base_url = \"https://app.example.com/account\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.server.cors_origins[0].as_str(),
            "https://app.example.com"
        );
        let [krypton, relay] = &config.dialects[..] else {
            panic!("two dialects: {:?}", config.dialects);
        };
        assert_eq!(krypton.kind, DialectKind::Krypton);
        assert_eq!(krypton.prefix.as_str(), "/auth/krypton");
        assert_eq!(
            krypton.link_base.as_str(),
            "http://127.0.0.1:8080/auth/krypton"
        );
        assert_eq!(krypton.cookie_same_site, SameSite::Strict);
        assert_eq!(
            relay.redirect_origins[0].as_str(),
            "https://app.example.com"
        );
        let route = "[[routes]]\nprefix = \"/\"\nupstream = \"127.0.0.1:1\"\n";
        let dialect = |kind: &str, prefix: &str| {
            format!("[[dialects]]\nkind = \"{kind}\"\nprefix = \"{prefix}\"\n")
        };
        let cases: Vec<(String, &str)> = vec![
            (dialect("karrio-ish", "/k"), "dialects[0].kind"),
            (dialect("krypton", ""), "dialects[0].prefix"),
            (dialect("krypton", "/"), "dialects[0].prefix"),
            (dialect("krypton", "/graphql"), "dialects[0].prefix"),
            (dialect("krypton", "/password/x"), "dialects[0].prefix"),
            (dialect("krypton", "/.well-known"), "dialects[0].prefix"),
            (dialect("krypton", "/activate"), "dialects[0].prefix"),
            (
                dialect("krypton", "/a") + &dialect("django-graphql-auth", "/a/b"),
                "dialects[1].prefix",
            ),
            (
                dialect("krypton", "/a/b") + &dialect("django-graphql-auth", "/a"),
                "dialects[1].prefix",
            ),
            (
                format!("{route}[[routes]]\nprefix = \"/k/x\"\nupstream = \"127.0.0.1:1\"\n")
                    + &dialect("krypton", "/k"),
                "routes[1].prefix",
            ),
            (
                dialect("krypton", "/k") + "link_base_url = \"app.example.com\"\n",
                "dialects[0].link_base_url",
            ),
            (
                dialect("krypton", "/k") + "redirect_origins = [\"https://*.example.com\"]\n",
                "dialects[0].redirect_origins[0]",
            ),
            (
                dialect("krypton", "/k") + "cookie_same_site = \"none\"\n",
                "dialects[0].cookie_same_site",
            ),
            (
                dialect("krypton", "/k") + "cookie_same_site = \"sometimes\"\n",
                "dialects[0].cookie_same_site",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\n"
                    .to_string()
                    + &dialect("krypton", "/k"),
                "dialects",
            ),
            (
                "[server]\ncors_origins = [\"https://app.example.com/path\"]\n".into(),
                "server.cors_origins[0]",
            ),
        ];
        for (text, key) in &cases {
            let err = load(text, &[]).expect_err(text).to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
        // Beside a catch-all route, and with SameSite=None on https: fine.
        let fine = format!("[server]\npublic_url = \"https://auth.example.com\"\n{route}")
            + &dialect("django-graphql-auth", "/django")
            + "cookie_same_site = \"none\"\n";
        assert_eq!(load(&fine, &[]).unwrap().dialects.len(), 1);
    }

    #[test]
    fn env_overrides_file_and_keeps_types() {
        let config = load(
            "[jwt]\naccess_ttl = \"5m\"\n[graphql]\nmax_depth = 4\n",
            &[
                ("AUTHGATE_JWT__ACCESS_TTL", "1h"),
                ("AUTHGATE_GRAPHQL__MAX_DEPTH", "7"),
                ("AUTHGATE_GRAPHQL__PLAYGROUND", "false"),
                (
                    "AUTHGATE_SERVER__TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.0.0/16",
                ),
                ("AUTHGATE_PORT", "tcp://10.0.0.1:8080"),
            ],
        )
        .unwrap();
        assert_eq!(config.jwt.access_ttl.as_secs(), 3600);
        assert_eq!(config.graphql.max_depth, 7);
        assert!(!config.graphql.playground);
        assert_eq!(config.server.trusted_proxies.len(), 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("[server]\nlisten = \"nope\"\n", &[], "server.listen"),
            ("[jwt]\naccess_ttl = \"15x\"\n", &[], "jwt.access_ttl"),
            ("[server]\nlisten_port = 1\n", &[], "server"),
            (
                "[rate_limit]\nlogin = \"ten per minute\"\n",
                &[],
                "rate_limit.login",
            ),
            (
                "[[routes]]\nprefix = \"api\"\nupstream = \"127.0.0.1:1\"\n",
                &[],
                "routes[0].prefix",
            ),
            (
                "[[routes]]\nprefix = \"/\"\nupstream = \"nowhere\"\n",
                &[],
                "routes[0].upstream",
            ),
            (
                "[[routes]]\nprefix = \"/\"\nupstream = \"127.0.0.1:1\"\nauth = \"maybe\"\n",
                &[],
                "routes[0].auth",
            ),
            (
                "",
                &[("AUTHGATE_GRAPHQL__MAX_DEPTH", "deep")],
                "AUTHGATE_GRAPHQL__MAX_DEPTH",
            ),
            (
                "",
                &[("AUTHGATE_SERVER__NOPE", "1")],
                "AUTHGATE_SERVER__NOPE",
            ),
            ("[email]\ntransport = \"pigeon\"\n", &[], "email.transport"),
            ("mode = \"verifier\"\n", &[], "jwt.jwks_url"),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"gateway:8080/jwks\"\nissuer = \"i\"\n",
                &[],
                "jwt.jwks_url",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/jwks\"\n",
                &[],
                "jwt.issuer",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\npublic_key_file = \"k.pem\"\nissuer = \"i\"\n",
                &[],
                "jwt.public_key_file",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\njwks_min_interval = \"0s\"\n",
                &[],
                "jwt.jwks_min_interval",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\njwks_refresh = \"5s\"\n",
                &[],
                "jwt.jwks_refresh",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\nrevocations_url = \"g/r\"\n",
                &[],
                "jwt.revocations_url",
            ),
            (
                "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\nrevocations_poll = \"10ms\"\n",
                &[],
                "jwt.revocations_poll",
            ),
            ("[jwt]\njwks_url = \"http://g/jwks\"\n", &[], "jwt.jwks_url"),
            (
                "",
                &[("AUTHGATE_JWT__PUBLIC_KEY_FILE", "gateway.pem")],
                "jwt.public_key_file",
            ),
        ];
        for (text, env, key) in cases {
            let err = load(text, env).expect_err(text).to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn verifier_needs_a_key_source_and_an_issuer() {
        let config = load(
            "mode = \"verifier\"\n[jwt]\njwks_url = \"http://gateway:8080/.well-known/jwks.json\"\nissuer = \"https://auth.example.com\"\n",
            &[],
        )
        .unwrap();
        let Mode::Verifier(verifier) = &config.mode else {
            panic!("a verifier: {config:?}");
        };
        assert!(
            matches!(&verifier.keys, KeySource::Jwks(url) if url.host() == "gateway" && url.port() == 8080)
        );
        assert_eq!(
            verifier.revocations.as_ref().map(HttpUrl::as_str),
            Some("http://gateway:8080/.well-known/revocations.json"),
            "beside the JWKS by default"
        );
        assert_eq!(verifier.revocations_poll, StdDuration::from_secs(1));
        assert_eq!(config.jwt.issuer, "https://auth.example.com");
        let config = load(
            "mode = \"verifier\"\n[jwt]\njwks_url = \"http://g/j\"\nissuer = \"i\"\n",
            &[
                (
                    "AUTHGATE_JWT__REVOCATIONS_URL",
                    "https://list.example/r.json",
                ),
                ("AUTHGATE_JWT__REVOCATIONS_POLL", "250ms"),
            ],
        )
        .unwrap();
        let Mode::Verifier(verifier) = &config.mode else {
            panic!("a verifier: {config:?}");
        };
        assert_eq!(
            verifier.revocations.as_ref().map(HttpUrl::as_str),
            Some("https://list.example/r.json")
        );
        assert_eq!(verifier.revocations_poll, StdDuration::from_millis(250));
        let config = load(
            "",
            &[
                ("AUTHGATE_MODE", "verifier"),
                ("AUTHGATE_JWT__PUBLIC_KEY_FILE", "/etc/authgate/gateway.pem"),
                ("AUTHGATE_JWT__ISSUER", "https://auth.example.com"),
            ],
        )
        .unwrap();
        assert!(matches!(
            &config.mode,
            Mode::Verifier(Verifier { keys: KeySource::PemFile(path), .. })
                if path == Path::new("/etc/authgate/gateway.pem")
        ));
    }

    #[test]
    fn syntax_errors_give_a_line() {
        let err = load("[server]\nlisten = \n", &[]).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn redaction_hides_secrets() {
        let config = load(
            "[storage]\nredis_url = \"redis://app:s3cret@redis:6379/0\"\n[email]\nsmtp_password = \"hunter2\"\n",
            &[],
        )
        .unwrap();
        let text = config.to_redacted_toml();
        assert!(
            !text.contains("s3cret") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(
            text.contains("redis://app:<redacted>@redis:6379/0"),
            "{text}"
        );
        // The rendered TOML loads back.
        let again = load(&text, &[]).unwrap();
        assert_eq!(again.server.listen, config.server.listen);
    }

    #[test]
    fn a_database_shares_sessions_and_limits_and_shows_without_its_password() {
        let config = load(
            "[storage]\ndatabase_url = \"postgres://app:s3cret@db.internal:5433/auth?sslmode=require\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.storage.backend,
            Backend::Database {
                database_url: "postgres://app:s3cret@db.internal:5433/auth?sslmode=require".into(),
                redis_url: None,
            }
        );
        let text = config.to_redacted_toml();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("postgres://app:<redacted>@db.internal:5433/auth?sslmode=require"),
            "{text}"
        );
        let with_redis = load(
            "[storage]\ndatabase_url = \"postgresql://db/auth\"\n",
            &[("AUTHGATE_STORAGE__REDIS_URL", "redis://r:6379")],
        )
        .unwrap();
        assert_eq!(with_redis.storage.redis_url(), Some("redis://r:6379"));
        assert_eq!(
            with_redis.storage.database_url(),
            Some("postgresql://db/auth")
        );
        let from_env = load("", &[("AUTHGATE_STORAGE__DATABASE_URL", "postgres://db/x")]).unwrap();
        assert_eq!(from_env.storage.database_url(), Some("postgres://db/x"));
        let err = load("[storage]\ndatabase_url = \"mysql://db/x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("storage.database_url"), "{err}");
    }
}
