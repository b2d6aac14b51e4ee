//! django-graphql-auth (with django-graphql-jwt 0.3.x), classic and relay (SPEC §11): the
//! native operations under the original's type names, plus what its clients select
//! (`refreshExpiresIn`, `payload`, `revokeToken { revoked }`, `UserNode.pk`, Relay global ids,
//! the `users` filters). The schema is built at start from one table of operations
//! ([`ops`]), in the classic shape (arguments at the top, payload type `Register`) or the
//! relay one (`input: RegisterInput!`, payload `RegisterPayload` echoing `clientMutationId`).

mod ops;
mod schema;

use std::sync::Arc;

use bytes::Bytes;

use super::{path_token, Dialect, Endpoint, Page, Parts};
use crate::accounts::{Accounts, Links, Purpose, User};
use crate::app::App;
use crate::config;
use crate::cookies::RefreshCookie;
use crate::graphql::{self, Caller};
use crate::jwt::{Claims, ExtraClaims};
use crate::reply::Reply;

/// Which of the original's two schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `graphql_auth.mutations`: arguments at the top level.
    Classic,
    /// `graphql_auth.relay`: one `input` argument, `clientMutationId` echoed.
    Relay,
}

/// The refresh-token cookie of django-graphql-jwt.
pub const REFRESH_COOKIE: &str = "JWT-refresh-token";

const GRAPHQL: &str = "/graphql";
const ACTIVATE: &str = "/activate/";
const PASSWORD_RESET: &str = "/password-reset/";
const PASSWORD_SET: &str = "/password-set/";

/// What the resolvers share, in the schema's data.
pub(crate) struct State {
    pub app: Arc<App>,
    pub accounts: Arc<Accounts>,
    pub links: Arc<dyn Links>,
    pub cookie: RefreshCookie,
}

struct Django {
    config: config::Dialect,
    schema: async_graphql::dynamic::Schema,
    graphiql: Option<Bytes>,
}

pub(super) fn build(parts: Parts, variant: Variant) -> Result<Arc<dyn Dialect>, String> {
    let state = Arc::new(State {
        accounts: Arc::new(parts.accounts.with_claims(claims)),
        links: Arc::new(DjangoLinks {
            base: parts.link_base(),
        }),
        cookie: parts.cookie(REFRESH_COOKIE),
        app: parts.app.clone(),
    });
    let schema = schema::build(state, variant, &parts.app.config.graphql)?;
    Ok(Arc::new(Django {
        graphiql: parts.graphiql(GRAPHQL),
        config: parts.config,
        schema,
    }))
}

/// django-graphql-jwt's own claim beside ours: `origIat` (`username` is a standard claim).
fn claims(_: &User, claims: &Claims) -> ExtraClaims {
    let mut extra = ExtraClaims::new();
    extra.insert("origIat".into(), claims.iat.into());
    extra
}

#[async_trait::async_trait]
impl Dialect for Django {
    fn config(&self) -> &config::Dialect {
        &self.config
    }

    fn find(&self, rest: &str) -> Option<(Endpoint, Option<String>)> {
        if rest == GRAPHQL || rest == "/graphql/" {
            return Some((Endpoint::Graphql, None));
        }
        [
            (ACTIVATE, Page::Confirm),
            (PASSWORD_RESET, Page::Password(Purpose::PasswordReset)),
            (PASSWORD_SET, Page::Password(Purpose::PasswordSet)),
        ]
        .into_iter()
        .find_map(|(path, page)| {
            path_token(rest, path).map(|token| (Endpoint::Page(page), Some(token)))
        })
    }

    fn refresh_cookie_name(&self) -> &'static str {
        REFRESH_COOKIE
    }

    fn allow_headers(&self) -> &'static [&'static str] {
        // Django frontends often send the CSRF header on every call.
        &["x-csrftoken"]
    }

    async fn graphql(&self, body: &[u8], caller: Caller) -> Reply {
        graphql::execute(&self.schema, body, caller).await
    }

    fn graphiql(&self) -> Option<Bytes> {
        self.graphiql.clone()
    }
}

/// The original's links: `/activate/<token>` (accounts and secondary emails alike),
/// `/password-reset/<token>`, `/password-set/<token>`.
struct DjangoLinks {
    base: String,
}

impl Links for DjangoLinks {
    fn site(&self) -> &str {
        &self.base
    }

    fn activation(&self, _: &User, token: &str) -> String {
        format!("{}{ACTIVATE}{token}", self.base)
    }

    fn password_reset(&self, _: &User, token: &str) -> String {
        format!("{}{PASSWORD_RESET}{token}", self.base)
    }

    fn password_set(&self, _: &User, token: &str) -> String {
        format!("{}{PASSWORD_SET}{token}", self.base)
    }

    fn secondary_email(&self, _: &User, token: &str) -> String {
        format!("{}{ACTIVATE}{token}", self.base)
    }
}
