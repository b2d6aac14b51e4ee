//! Configuration: the TOML file, `AUTHGATE_<SECTION>__<KEY>` environment overrides, defaults,
//! and validation with one-line errors that name the offending key.

mod env;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use values::{Duration, Rate};

/// A configuration problem, always reported as one line naming the key (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn at(key: impl std::fmt::Display, what: impl std::fmt::Display) -> Self {
        ConfigError(format!("config key `{key}`: {what}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Accounts, GraphQL and the proxy; owns the user store.
    #[default]
    Gateway,
    /// Proxy only: verifies tokens against the gateway's published keys.
    Verifier,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub server: ServerSection,
    pub storage: StorageSection,
    pub jwt: JwtSection,
    pub graphql: GraphqlSection,
    pub accounts: AccountsSection,
    pub email: EmailSection,
    pub rate_limit: RateLimitSection,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: String,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Worker threads of the public listener; 0 means one per core.
    pub threads: usize,
    /// After SIGTERM, how long to finish in-flight requests before exiting.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    pub data_dir: PathBuf,
    pub redis_url: String,
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
    /// Verifier mode: how often the keys are loaded again in any case.
    pub jwks_refresh: Duration,
    /// Verifier mode: the least time between two loads (unknown kids, retries).
    pub jwks_min_interval: Duration,
    /// Size of newly generated keys (first start, `keys rotate`).
    pub key_bits: usize,
    /// Verified tokens remembered to skip repeated RSA verifications; 0 turns the cache off.
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
    pub login_fields: Vec<String>,
    pub allow_unverified_login: bool,
    pub email_available: bool,
    pub delete_mode: String,
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
    pub transport: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    Optional,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub prefix: String,
    pub upstream: String,
    #[serde(default = "Route::default_auth")]
    pub auth: AuthMode,
    #[serde(default)]
    pub require_verified: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub strip_prefix: bool,
}

impl Route {
    fn default_auth() -> AuthMode {
        AuthMode::Required
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Gateway,
            server: ServerSection::default(),
            storage: StorageSection::default(),
            jwt: JwtSection::default(),
            graphql: GraphqlSection::default(),
            accounts: AccountsSection::default(),
            email: EmailSection::default(),
            rate_limit: RateLimitSection::default(),
            routes: vec![Route {
                prefix: "/".into(),
                upstream: "127.0.0.1:3000".into(),
                auth: AuthMode::Required,
                require_verified: false,
                roles: vec![],
                strip_prefix: false,
            }],
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
            key_bits: 2048,
            verify_cache_size: crate::jwt::DEFAULT_CACHE_SIZE,
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
            login_fields: vec!["email".into(), "username".into()],
            allow_unverified_login: true,
            email_available: true,
            delete_mode: "deactivate".into(),
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
            transport: "log".into(),
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_tls: "starttls".into(),
            smtp_user: String::new(),
            smtp_password: String::new(),
            from: "authgate <no-reply@localhost>".into(),
            link_base_url: String::new(),
            file_dir: String::new(),
            templates_dir: String::new(),
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
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().message().trim().replace('\n', "; ");
                match from_env.iter().find(|(key, _)| *key == path) {
                    Some((_, var)) => ConfigError(format!("{var} (config key `{path}`): {inner}")),
                    None if path == "." => ConfigError(format!("config: {inner}")),
                    None => ConfigError::at(path, inner),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads from the process environment.
    pub fn from_process(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, std::env::vars())
    }

    /// The issuer placed in and required from every token.
    pub fn issuer(&self) -> &str {
        if self.jwt.issuer.is_empty() {
            self.server.public_url.trim_end_matches('/')
        } else {
            &self.jwt.issuer
        }
    }

    /// Base of links in emails, without a trailing slash.
    pub fn link_base(&self) -> &str {
        if self.email.link_base_url.is_empty() {
            self.server.public_url.trim_end_matches('/')
        } else {
            self.email.link_base_url.trim_end_matches('/')
        }
    }

    pub fn audience(&self) -> Option<&str> {
        (!self.jwt.audience.is_empty()).then_some(self.jwt.audience.as_str())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.server.public_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::at(
                "server.public_url",
                format!("`{url}` must start with http:// or https://"),
            ));
        }
        // Port 0 on both is two ports, each picked by the kernel at start.
        if self.server.listen == self.server.admin_listen && self.server.listen.port() != 0 {
            return Err(ConfigError::at(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        if ![2048, 3072, 4096].contains(&self.jwt.key_bits) {
            return Err(ConfigError::at(
                "jwt.key_bits",
                "must be 2048, 3072 or 4096",
            ));
        }
        if self.jwt.access_ttl.is_zero() {
            return Err(ConfigError::at("jwt.access_ttl", "must be longer than 0s"));
        }
        if self.jwt.refresh_ttl.is_zero() {
            return Err(ConfigError::at("jwt.refresh_ttl", "must be longer than 0s"));
        }
        self.validate_key_source()?;
        if self.graphql.max_depth == 0 || self.graphql.max_complexity == 0 {
            return Err(ConfigError::at(
                "graphql.max_depth",
                "depth and complexity limits must be at least 1",
            ));
        }
        if self.graphql.max_body_bytes < 1024 {
            return Err(ConfigError::at(
                "graphql.max_body_bytes",
                "must be at least 1024",
            ));
        }
        for field in &self.accounts.login_fields {
            if field != "email" && field != "username" {
                return Err(ConfigError::at(
                    "accounts.login_fields",
                    format!("unknown field `{field}` (expected email, username)"),
                ));
            }
        }
        one_of(
            "accounts.delete_mode",
            &self.accounts.delete_mode,
            &["deactivate", "hard"],
        )?;
        one_of(
            "email.transport",
            &self.email.transport,
            &["log", "smtp", "file"],
        )?;
        one_of(
            "email.smtp_tls",
            &self.email.smtp_tls,
            &["none", "starttls", "tls"],
        )?;
        if self.email.transport == "smtp" && self.email.smtp_host.is_empty() {
            return Err(ConfigError::at(
                "email.smtp_host",
                "required when email.transport = \"smtp\"",
            ));
        }
        if self.email.transport == "file" && self.email.file_dir.is_empty() {
            return Err(ConfigError::at(
                "email.file_dir",
                "required when email.transport = \"file\"",
            ));
        }
        let redis = &self.storage.redis_url;
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
        let mut seen = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let key = |field: &str| format!("routes[{i}].{field}");
            if !route.prefix.starts_with('/') {
                return Err(ConfigError::at(key("prefix"), "must start with `/`"));
            }
            if route.prefix.contains(['?', '#', '%']) || route.prefix.contains("//") {
                return Err(ConfigError::at(
                    key("prefix"),
                    "must be a plain path (no `?`, `#`, `%` or `//`)",
                ));
            }
            if !seen.insert(crate::gate::normalize_prefix(&route.prefix)) {
                return Err(ConfigError::at(
                    key("prefix"),
                    format!("`{}` is declared twice", route.prefix),
                ));
            }
            crate::gate::resolve_upstream(&route.upstream)
                .map_err(|what| ConfigError::at(key("upstream"), what))?;
        }
        Ok(())
    }

    /// A verifier learns its keys from exactly one place and must know whose tokens it takes;
    /// a gateway signs its own, so a key source there is a mistake (most likely a forgotten
    /// `mode = "verifier"`) that would refuse every token of the real gateway.
    fn validate_key_source(&self) -> Result<(), ConfigError> {
        let jwt = &self.jwt;
        let sources = [
            ("jwt.jwks_url", !jwt.jwks_url.is_empty()),
            ("jwt.public_key_file", !jwt.public_key_file.is_empty()),
        ];
        if self.mode == Mode::Gateway {
            if let Some((key, _)) = sources.iter().find(|(_, set)| *set) {
                return Err(ConfigError::at(
                    key,
                    "only used with mode = \"verifier\" (a gateway publishes its own keys)",
                ));
            }
            return Ok(());
        }
        match sources {
            [(_, false), (_, false)] => {
                return Err(ConfigError::at(
                    "jwt.jwks_url",
                    "mode = \"verifier\" needs jwt.jwks_url (the gateway's /.well-known/jwks.json) or jwt.public_key_file",
                ))
            }
            [(_, true), (_, true)] => {
                return Err(ConfigError::at(
                    "jwt.public_key_file",
                    "set either jwt.jwks_url or jwt.public_key_file, not both",
                ))
            }
            [(_, true), _] => {
                crate::verifier::JwksUrl::parse(&jwt.jwks_url)
                    .map_err(|what| ConfigError::at("jwt.jwks_url", what))?;
            }
            _ => {}
        }
        if jwt.issuer.is_empty() {
            return Err(ConfigError::at(
                "jwt.issuer",
                "required with mode = \"verifier\": the gateway's issuer (its jwt.issuer, or else its server.public_url)",
            ));
        }
        if jwt.jwks_min_interval.as_std() < std::time::Duration::from_secs(1) {
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
        Ok(())
    }

    /// The effective configuration as TOML, with secrets replaced by `"<redacted>"`.
    pub fn to_redacted_toml(&self) -> String {
        let mut copy = self.clone();
        if !copy.email.smtp_password.is_empty() {
            copy.email.smtp_password = "<redacted>".into();
        }
        copy.storage.redis_url = values::redact_url_password(&copy.storage.redis_url);
        toml::to_string(&copy).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::at(
            key,
            format!("`{value}` is not one of {}", allowed.join(", ")),
        ))
    }
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
        assert_eq!(config.jwt.access_ttl.as_std().as_secs(), 900);
        assert_eq!(config.issuer(), "http://127.0.0.1:8080");
        assert_eq!(config.routes.len(), 1);
    }

    /// The documented example is the defaults, key for key: it cannot drift from the code.
    #[test]
    fn example_config_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/authgate.toml");
        let example = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(
            toml::to_string(&example).unwrap(),
            toml::to_string(&Config::default()).unwrap()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
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
                _ => assert!(text.contains(&format!("\n{section} = ")) || section == "routes"),
            }
        }
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
        assert_eq!(config.jwt.access_ttl.as_std().as_secs(), 3600);
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
        assert_eq!(config.mode, Mode::Verifier);
        assert_eq!(config.issuer(), "https://auth.example.com");
        let config = load(
            "",
            &[
                ("AUTHGATE_MODE", "verifier"),
                ("AUTHGATE_JWT__PUBLIC_KEY_FILE", "/etc/authgate/gateway.pem"),
                ("AUTHGATE_JWT__ISSUER", "https://auth.example.com"),
            ],
        )
        .unwrap();
        assert_eq!(config.jwt.public_key_file, "/etc/authgate/gateway.pem");
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
}
