//! The command line: `serve`, `keys`, `user`, `store`, `health`, `check-config`. Exit codes: 0 ok, 1 the operation failed,
//! 2 bad configuration or arguments (clap exits 2 for bad arguments itself).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::StartError;
use crate::config::{Config, ConfigError};
use crate::keys;

#[derive(Parser)]
#[command(
    name = "authgate",
    version,
    about = "Authentication sidecar: accounts, RS256 gatekeeping proxy, key publishing"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (public and admin listeners).
    Serve {
        /// TOML configuration file; without one, embedded defaults and AUTHGATE_* variables.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the running server is ready (its admin /readyz answers 200), else 1;
    /// for container health checks, where there is no shell or curl.
    Health {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage accounts (works whether or not the server is running).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Move the account store.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy the embedded store of the config's data_dir into PostgreSQL (server stopped);
    /// rows already there are kept, so it can run again. Prints the counts.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The database, postgres://user:password@host:port/db (sslmode as in libpq).
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input unless --no-password.
    Create {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        /// Staff may use the staff-only queries.
        #[arg(long)]
        staff: bool,
        /// Mark the email as verified (no activation email is sent either way).
        #[arg(long)]
        verified: bool,
        /// A role for the token's `roles` claim; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Create the account without a password.
        #[arg(long)]
        no_password: bool,
    },
    /// Create an account without a password and email it a link to set one.
    Invite {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new RSA key pair in DIR; it becomes the signing key there.
    Generate {
        #[arg(long, default_value = "./keys")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
        bits: usize,
    },
    /// Add a new signing key to the configured keys dir; older keys stay published.
    Rotate {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_parser = parse_bits)]
        bits: Option<usize>,
    },
    /// List the published keys, newest (signing) first.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Stop publishing a key: tokens signed with it are refused from then on.
    Retire {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The key's kid, as `keys list` shows it.
        kid: String,
    },
}

fn parse_bits(text: &str) -> Result<usize, String> {
    match text {
        "2048" | "3072" | "4096" => Ok(text.parse().unwrap_or(2048)),
        _ => Err("use 2048, 3072 or 4096".into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl From<StartError> for CliError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Config(msg) => CliError::Config(ConfigError(msg)),
            // A database URL the driver cannot use is a bad config too (it names the key).
            StartError::Database(crate::store::postgres::PgError::Config(msg)) => CliError::Config(
                ConfigError(format!("config key `storage.database_url`: {msg}")),
            ),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<keys::KeyError> for CliError {
    fn from(e: keys::KeyError) -> Self {
        CliError::Failed(e.to_string())
    }
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::from_process(config.as_deref())?;
            init_logging(&config.log);
            crate::server::run(config)?;
        }
        Command::CheckConfig { config } => {
            let config = Config::from_process(config.as_deref())?;
            print!("{}", config.to_redacted_toml());
        }
        Command::Health { config } => {
            // Every failure is 1 here, a bad configuration too: container health checks
            // reserve 2.
            let config = Config::from_process(config.as_deref())
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let ready = crate::admin::client::readiness(&config).map_err(CliError::Failed)?;
            println!("{ready}");
        }
        Command::Keys { action } => keys_command(action)?,
        Command::User { action } => user_command(action)?,
        Command::Store {
            action: StoreCommand::Migrate { config, to },
        } => migrate(config, &to)?,
    }
    Ok(())
}

fn keys_command(action: KeysCommand) -> Result<(), CliError> {
    init_logging(&Default::default());
    match action {
        KeysCommand::Generate { dir, bits } => {
            print_new_key(&keys::generate(&dir, bits)?);
        }
        KeysCommand::Rotate { config, bits } => {
            let config = Config::from_process(config.as_deref())?;
            let bits = bits.unwrap_or(config.jwt.key_bits);
            print_new_key(&keys::generate(&config.jwt.keys_dir, bits)?);
        }
        KeysCommand::List { config } => {
            let config = Config::from_process(config.as_deref())?;
            let ring = keys::KeyRing::open(&config.jwt.keys_dir)?;
            let set = ring.snapshot();
            for (i, key) in set.all().iter().enumerate() {
                let role = if i == 0 { "signing" } else { "published" };
                println!("{}\t{}\t{} bits\t{role}", key.kid, key.created, key.bits);
            }
        }
        KeysCommand::Retire { config, kid } => {
            let config = Config::from_process(config.as_deref())?;
            keys::retire(&config.jwt.keys_dir, &kid)?;
            println!("retired {kid}");
        }
    }
    Ok(())
}

fn print_new_key(key: &std::sync::Arc<keys::Key>) {
    let file = key.file.as_deref().unwrap_or(std::path::Path::new(""));
    println!("{} {}", key.kid, file.display());
}

fn user_command(action: UserCommand) -> Result<(), CliError> {
    let (config, email, username, staff, verified, roles, no_password, invite) = match action {
        UserCommand::Create {
            config,
            email,
            username,
            staff,
            verified,
            roles,
            no_password,
        } => (
            config,
            email,
            username,
            staff,
            verified,
            roles,
            no_password,
            false,
        ),
        UserCommand::Invite { config, email } => {
            (config, email, None, false, false, Vec::new(), true, true)
        }
    };
    let config = Config::from_process(config.as_deref())?;
    init_logging(&config.log);
    let password = if no_password {
        None
    } else {
        let mut input = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
            .map_err(|e| CliError::Failed(format!("reading the password from stdin: {e}")))?;
        let password = input.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(CliError::Failed(
                "no password on standard input (use --no-password for none)".into(),
            ));
        }
        Some(password)
    };
    let request = crate::admin::CreateUser {
        email,
        username,
        password,
        staff,
        verified,
        roles,
        invite,
    };
    let (id, email) =
        crate::admin::client::create_user(&config, request).map_err(CliError::Failed)?;
    println!("{id} {email}");
    Ok(())
}

/// `authgate store migrate`: sled of the config's data_dir into the database at `to`.
fn migrate(config: Option<PathBuf>, to: &str) -> Result<(), CliError> {
    use crate::store::migrate::{self, SecretOutcome};
    use crate::store::sled::{OpenError, SledSessions, SledStore};
    let config = Config::from_process(config.as_deref())?;
    init_logging(&config.log);
    let dir = &config.storage.data_dir;
    if !dir.join("conf").exists() {
        return Err(CliError::Failed(format!(
            "no embedded store in {} (storage.data_dir)",
            dir.display()
        )));
    }
    let store = SledStore::open(dir).map_err(|e| match e {
        OpenError::Locked(path) => CliError::Failed(format!(
            "the store in {path} is in use: stop the server before migrating"
        )),
        other => CliError::Failed(other.to_string()),
    })?;
    let sessions = match config.storage.redis_url() {
        Some(_) => None,
        None => Some(SledSessions::new(store.db()).map_err(|e| CliError::Failed(e.to_string()))?),
    };
    let source = migrate::Source {
        store: &store,
        sessions: sessions.as_ref(),
        secrets: vec![
            (
                "email_token_key",
                dir.join(crate::accounts::email_token::KEY_FILE),
            ),
            ("seal_key", dir.join(crate::app::SEAL_KEY_FILE)),
        ],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let report = runtime.block_on(async {
        let database = crate::store::postgres::PgStore::connect(to, Default::default())
            .await
            .map_err(|e| match e {
                crate::store::postgres::PgError::Config(what) => {
                    CliError::Config(ConfigError(format!("--to: {what}")))
                }
                other => CliError::Failed(other.to_string()),
            })?;
        migrate::sled_to_postgres(source, &database)
            .await
            .map_err(CliError::Failed)
    })?;
    println!("users: {}", report.users);
    println!("api keys: {}", report.api_keys);
    match report.refresh_tokens {
        Some(counts) => println!("refresh tokens: {counts}"),
        None => println!("refresh tokens: in Redis (storage.redis_url), left there"),
    }
    for (name, outcome) in report.secrets {
        let said = match outcome {
            SecretOutcome::Absent => "none in the data directory",
            SecretOutcome::Copied => "copied",
            SecretOutcome::Present => "already in the database",
            SecretOutcome::Differs => {
                "the database holds another one and keeps it (tokens made before do not carry over)"
            }
        };
        println!("{name}: {said}");
    }
    println!("verified: every row of the store is in the database");
    Ok(())
}

/// Logs to standard error as `[log]` says: its filter unless `RUST_LOG` is set, and text
/// (colours only on a terminal) or one JSON object per line.
fn init_logging(log: &crate::config::Log) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        crate::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init(),
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
