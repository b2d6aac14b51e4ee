//! The configuration as written: the TOML file's shape, key for key, with its defaults, after
//! the `AUTHGATE_*` overrides. Choices are serde enums already; "unset" is an empty string, as
//! the file documents it. [`super::Config`] is built from this once and is what the rest of
//! authgate reads; this layer is private to `config/` and only comes back out, redacted, in
//! `check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::values::{Duration, Rate};
use super::{
    AuthMode, DeleteMode, DialectKind, LogFormat, LoginField, SameSite, SmtpTls, TransportKind,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    #[default]
    Gateway,
    Verifier,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub mode: ModeName,
    pub server: ServerSection,
    pub storage: StorageSection,
    pub jwt: JwtSection,
    pub graphql: GraphqlSection,
    pub accounts: AccountsSection,
    pub email: EmailSection,
    pub rate_limit: RateLimitSection,
    pub log: LogSection,
    pub routes: Vec<RouteSection>,
    pub dialects: Vec<DialectSection>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: String,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub cors_origins: Vec<String>,
    pub threads: usize,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    pub data_dir: PathBuf,
    pub redis_url: String,
    pub database_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSection {
    pub keys_dir: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub leeway: Duration,
    pub jwks_url: String,
    pub public_key_file: String,
    pub jwks_refresh: Duration,
    pub jwks_min_interval: Duration,
    pub revocations_url: String,
    pub revocations_poll: Duration,
    pub key_bits: usize,
    pub verify_cache_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlSection {
    pub playground: bool,
    pub introspection: bool,
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSection {
    pub login_fields: Vec<LoginField>,
    pub allow_unverified_login: bool,
    pub email_available: bool,
    pub delete_mode: DeleteMode,
    pub password_min_length: usize,
    pub activation_ttl: Duration,
    pub reset_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSection {
    pub transport: TransportKind,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_user: String,
    pub smtp_password: String,
    pub from: String,
    pub link_base_url: String,
    pub file_dir: String,
    pub templates_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSection {
    pub login: Rate,
    pub register: Rate,
    pub email: Rate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub prefix: String,
    pub upstream: String,
    #[serde(default = "RouteSection::default_auth")]
    pub auth: AuthMode,
    #[serde(default)]
    pub require_verified: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub skip_auth_preflight: bool,
    #[serde(default)]
    pub require_mfa: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectSection {
    pub kind: DialectKind,
    pub prefix: String,
    #[serde(default)]
    pub link_base_url: String,
    #[serde(default)]
    pub redirect_origins: Vec<String>,
    #[serde(default)]
    pub cookie_same_site: SameSite,
}

impl RouteSection {
    fn default_auth() -> AuthMode {
        AuthMode::Required
    }
}

/// Verified tokens remembered by default.
pub const DEFAULT_VERIFY_CACHE_SIZE: usize = 16_384;

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            mode: ModeName::Gateway,
            server: ServerSection::default(),
            storage: StorageSection::default(),
            jwt: JwtSection::default(),
            graphql: GraphqlSection::default(),
            accounts: AccountsSection::default(),
            email: EmailSection::default(),
            rate_limit: RateLimitSection::default(),
            log: LogSection::default(),
            routes: vec![RouteSection {
                prefix: "/".into(),
                upstream: "127.0.0.1:3000".into(),
                auth: AuthMode::Required,
                require_verified: false,
                roles: vec![],
                strip_prefix: false,
                skip_auth_preflight: false,
                require_mfa: false,
            }],
            dialects: vec![],
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: ([127, 0, 0, 1], 8080).into(),
            admin_listen: ([127, 0, 0, 1], 9090).into(),
            public_url: "http://127.0.0.1:8080".into(),
            trusted_proxies: vec![],
            cors_origins: vec![],
            threads: 0,
            shutdown_timeout: Duration::secs(10),
        }
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: "./data".into(),
            redis_url: String::new(),
            database_url: String::new(),
        }
    }
}

impl Default for JwtSection {
    fn default() -> Self {
        JwtSection {
            keys_dir: "./keys".into(),
            issuer: String::new(),
            audience: String::new(),
            access_ttl: Duration::secs(15 * 60),
            refresh_ttl: Duration::secs(7 * 86400),
            leeway: Duration::secs(30),
            jwks_url: String::new(),
            public_key_file: String::new(),
            jwks_refresh: Duration::secs(300),
            jwks_min_interval: Duration::secs(10),
            revocations_url: String::new(),
            revocations_poll: Duration::secs(1),
            key_bits: 2048,
            verify_cache_size: DEFAULT_VERIFY_CACHE_SIZE,
        }
    }
}

impl Default for GraphqlSection {
    fn default() -> Self {
        GraphqlSection {
            playground: true,
            introspection: true,
            max_depth: 12,
            max_complexity: 500,
            max_body_bytes: 65_536,
        }
    }
}

impl Default for AccountsSection {
    fn default() -> Self {
        AccountsSection {
            login_fields: vec![LoginField::Email, LoginField::Username],
            allow_unverified_login: true,
            email_available: true,
            delete_mode: DeleteMode::Deactivate,
            password_min_length: 8,
            activation_ttl: Duration::secs(7 * 86400),
            reset_ttl: Duration::secs(3600),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

impl Default for EmailSection {
    fn default() -> Self {
        EmailSection {
            transport: TransportKind::Log,
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_tls: SmtpTls::Starttls,
            smtp_user: String::new(),
            smtp_password: String::new(),
            from: "authgate <no-reply@localhost>".into(),
            link_base_url: String::new(),
            file_dir: String::new(),
            templates_dir: String::new(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
            access_log: false,
        }
    }
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            login: Rate::new(10, 60),
            register: Rate::new(10, 3600),
            email: Rate::new(5, 3600),
        }
    }
}
