//! Dialects (SPEC §11): the client-facing account APIs of other services, each served under
//! its own prefix over authgate's one account base. A dialect is an adapter like the native
//! schema: it maps the original's operations, type names, error forms, cookies, claims and
//! links onto the account services, and decides nothing itself.
//!
//! Adding a kind: a module here that builds a [`Dialect`] and one line in [`build`] (and its
//! name in `config::DialectKind`).

mod craft;
mod datetime;
mod django;
mod karrio;
mod krypton;

use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::{Accounts, Purpose};
use crate::app::App;
use crate::config::{self, DialectKind};
use crate::cookies::RefreshCookie;
use crate::graphql::Caller;
use crate::reply::Reply;

/// What a path under a dialect's prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The dialect's GraphQL endpoint: `POST` runs an operation, `GET` shows GraphiQL.
    Graphql,
    /// The JWKS, as the original published it.
    Jwks,
    /// One of authgate's account pages, at the original's path.
    Page(Page),
    /// A JSON endpoint of the original's beside GraphQL (`POST` of a JSON body, such as a
    /// REST login), by the dialect's own name for it.
    Json(&'static str),
}

/// The account pages a dialect's mail links open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Confirms an address: an account's activation, a changed primary email, or a secondary
    /// email (whichever the token was made for).
    Confirm,
    /// The new-password form of a reset link (`purpose` says which kind of link).
    Password(Purpose),
    /// The new-password form at one path for reset and set-password links alike: whichever
    /// the token was made for.
    PasswordAny,
}

/// One configured dialect, built once at start.
#[async_trait::async_trait]
pub trait Dialect: Send + Sync {
    fn config(&self) -> &config::Dialect;

    /// What `rest` (the path under the prefix, starting with `/`) is, and the link token the
    /// path itself carries, if any; `None`: no such path (a `404`).
    fn find(&self, rest: &str) -> Option<(Endpoint, Option<String>)>;

    /// The name of the refresh-token cookie its clients carry.
    fn refresh_cookie_name(&self) -> &'static str;

    /// The query parameter its page links carry the token in (`?token=…` unless it says).
    fn link_token_parameter(&self) -> &'static str {
        "token"
    }

    /// Request headers its browser clients send beyond `authorization` and `content-type`
    /// (allowed on CORS preflights).
    fn allow_headers(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether its GraphQL calls may also be made with an API key (`Authorization: Token` or
    /// `X-API-Key`), as the original's API clients do.
    fn accepts_api_keys(&self) -> bool {
        false
    }

    /// Runs one GraphQL POST body (already checked for type and size).
    async fn graphql(&self, body: &[u8], caller: Caller) -> Reply;

    /// The GraphiQL page of its GraphQL path, when `graphql.playground` is on.
    fn graphiql(&self) -> Option<Bytes>;

    /// Runs one POST body (already checked for type and size) of its [`Endpoint::Json`]
    /// endpoint `name`.
    async fn json(&self, name: &'static str, body: &[u8], caller: Caller) -> Reply {
        let _ = (name, body, caller);
        Reply::json_error(
            404,
            &crate::reply::ErrorBody::new("not_found", "no such path in this dialect"),
        )
    }
}

/// The dialects of the configuration, in the order written (none in verifier mode), each with
/// its schema built.
pub fn build(app: &Arc<App>) -> Result<Vec<Arc<dyn Dialect>>, String> {
    let Some(accounts) = &app.accounts else {
        return Ok(Vec::new());
    };
    app.config
        .dialects
        .iter()
        .map(|dialect| {
            let parts = Parts::new(app, accounts, dialect);
            match dialect.kind {
                DialectKind::DjangoGraphqlAuth => django::build(parts, django::Variant::Classic),
                DialectKind::DjangoGraphqlAuthRelay => django::build(parts, django::Variant::Relay),
                DialectKind::Krypton => krypton::build(parts),
                DialectKind::Karrio => karrio::build(parts),
                DialectKind::Craft => craft::build(parts),
            }
        })
        .collect()
}

/// What every dialect is made of.
pub(crate) struct Parts {
    pub app: Arc<App>,
    pub accounts: Arc<Accounts>,
    pub config: config::Dialect,
}

impl Parts {
    fn new(app: &Arc<App>, accounts: &Arc<Accounts>, config: &config::Dialect) -> Parts {
        Parts {
            app: app.clone(),
            accounts: accounts.clone(),
            config: config.clone(),
        }
    }

    /// The dialect's refresh-token cookie: the original's name, `HttpOnly`, `Path=<prefix>`,
    /// `SameSite` as configured, `Secure` unless the public URL is plain http.
    pub fn cookie(&self, name: &'static str) -> RefreshCookie {
        RefreshCookie {
            name,
            path: self.config.prefix.as_str().to_string(),
            same_site: match self.config.cookie_same_site {
                config::SameSite::Strict => cookie::SameSite::Strict,
                config::SameSite::Lax => cookie::SameSite::Lax,
                config::SameSite::None => cookie::SameSite::None,
            },
            secure: self.app.config.server.public_url.is_https(),
        }
    }

    /// The GraphiQL page at `path` (under the prefix), if the playground is on.
    pub fn graphiql(&self, path: &str) -> Option<Bytes> {
        self.app.config.graphql.playground.then(|| {
            let endpoint = format!("{}{path}", self.config.prefix.as_str());
            let title = format!("authgate: {}", self.config.kind.name());
            Bytes::from(crate::graphql::graphiql_page_titled(&endpoint, &title))
        })
    }

    /// Where the links of its mail start: `link_base_url`, else the public URL + prefix.
    pub fn link_base(&self) -> String {
        self.config.link_base.as_str().to_string()
    }
}

/// The token of a link in a path: what follows `page` (`/activate/`) in `rest`, if anything.
pub(crate) fn path_token(rest: &str, page: &str) -> Option<String> {
    rest.strip_prefix(page)
        .map(|token| token.trim_end_matches('/'))
        .filter(|token| !token.is_empty() && !token.contains('/'))
        .map(str::to_string)
}
