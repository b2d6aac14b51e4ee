//! The shared state of a running server: configuration, keys and tokens, routes, metrics.
//! Built once at start-up; the proxy, the GraphQL schema and the admin listener read it.

use std::sync::Arc;

use crate::config::Config;
use crate::gate::RouteTable;
use crate::jwt::TokenService;
use crate::keys::{KeyError, KeyRing};
use crate::metrics::Metrics;

pub struct App {
    pub config: Config,
    pub tokens: TokenService,
    pub routes: RouteTable,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Other(String),
}

impl App {
    pub fn new(config: Config) -> Result<Arc<App>, StartError> {
        let keys = Arc::new(KeyRing::open_or_init(
            &config.jwt.keys_dir,
            config.jwt.key_bits,
        )?);
        let tokens = TokenService::new(
            keys,
            config.issuer(),
            config.audience(),
            config.jwt.access_ttl.as_std(),
            config.jwt.leeway.as_std(),
        );
        let routes = RouteTable::new(&config.routes).map_err(StartError::Config)?;
        Ok(Arc::new(App {
            config,
            tokens,
            routes,
            metrics: Metrics::new(),
        }))
    }
}
