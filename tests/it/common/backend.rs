//! The storage backends a test body can run against, and `suite!`, which runs one body against
//! each of them.
//!
//! Adding a backend: a variant of [`Backend`], its arm in [`Backend::apply`] (start what it
//! needs, point the server at it), and its line in `suite!`.

use super::postgres::PgServer;
use super::redis::RedisServer;
use super::Builder;

/// Where a server keeps sessions and rate limits (and, for `Postgres`, everything else).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store: sessions in sled, rate limits in memory (no Redis configured).
    Sled,
    /// A real `redis-server` of the test's own.
    Redis,
    /// Everything in PostgreSQL (no Redis): a fresh database on the shared test server.
    Postgres,
}

/// What a backend runs beside the server for one test; it stops when dropped.
pub enum BackendServer {
    None,
    Redis(RedisServer),
}

impl BackendServer {
    pub fn redis(&mut self) -> Option<&mut RedisServer> {
        match self {
            BackendServer::Redis(redis) => Some(redis),
            BackendServer::None => None,
        }
    }
}

impl Backend {
    /// Starts what this backend needs and configures `builder` for it; `None` when the leg is
    /// skipped (its server program is missing, outside CI: see [`RedisServer::start`]).
    pub async fn apply(self, builder: Builder) -> Option<(Builder, BackendServer)> {
        match self {
            Backend::Sled => Some((builder, BackendServer::None)),
            Backend::Redis => {
                let redis = RedisServer::start()?;
                let builder = builder.env("AUTHGATE_STORAGE__REDIS_URL", &redis.url());
                Some((builder, BackendServer::Redis(redis)))
            }
            Backend::Postgres => {
                let url = PgServer::shared()?.database().await;
                let builder = builder.env("AUTHGATE_STORAGE__DATABASE_URL", &url);
                Some((builder, BackendServer::None))
            }
        }
    }
}

/// `suite!(name, |backend| { ... })`: one async test body, run as one `#[tokio::test]` per
/// backend, named `name::sled`, `name::redis`, ... The body sees the calling module's items.
macro_rules! suite {
    ($name:ident, |$backend:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($backend: $crate::common::Backend) $body

            $crate::common::suite!(@leg sled = Sled);
            $crate::common::suite!(@leg redis = Redis);
            $crate::common::suite!(@leg postgres = Postgres);
        }
    };
    (@leg $leg:ident = $variant:ident) => {
        #[tokio::test]
        async fn $leg() {
            body($crate::common::Backend::$variant).await
        }
    };
}
pub(crate) use suite;
