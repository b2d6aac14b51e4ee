//! krypton-auth (SPEC §11): its whole schema at the prefix itself, with the original's type
//! names (krypton's JS client declares its variables with them), errors shaped exactly
//! `{"message", "type"}`, the `refreshToken` cookie, the `_id` / `email_verified` claims, the
//! JWKS under the prefix, and the confirmation page and reset form at the original's paths.

mod schema;

use std::sync::Arc;

use bytes::Bytes;

use super::{Dialect, Endpoint, Page, Parts};
use crate::accounts::{Accounts, Links, Purpose, User};
use crate::app::App;
use crate::config;
use crate::cookies::RefreshCookie;
use crate::graphql::{self, Caller};
use crate::jwt::{Claims, ExtraClaims};
use crate::reply::Reply;

/// krypton-auth's refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refreshToken";

const CONFIRMATION: &str = "/user/email/confirmation";
const RESET_FORM: &str = "/form/reset/password";
/// Not a page of the original's (it has no invitations): where a set-password link of mail
/// sent through this dialect would lead.
const SET_FORM: &str = "/form/set/password";
const JWKS: &str = "/.well-known/jwks.json";

pub(crate) struct State {
    pub app: Arc<App>,
    pub accounts: Arc<Accounts>,
    pub links: Arc<dyn Links>,
    pub cookie: RefreshCookie,
}

struct Krypton {
    config: config::Dialect,
    schema: schema::KryptonSchema,
    graphiql: Option<Bytes>,
}

pub(super) fn build(parts: Parts) -> Result<Arc<dyn Dialect>, String> {
    let state = Arc::new(State {
        accounts: Arc::new(parts.accounts.with_claims(claims)),
        links: Arc::new(KryptonLinks {
            base: parts.link_base(),
        }),
        cookie: parts.cookie(REFRESH_COOKIE),
        app: parts.app.clone(),
    });
    Ok(Arc::new(Krypton {
        schema: schema::build(state, &parts.app.config.graphql),
        graphiql: parts.graphiql(""),
        config: parts.config,
    }))
}

/// The claims krypton's clients read from the token: its user document's `_id` and
/// `email_verified` (the email and username are standard claims).
fn claims(_: &User, claims: &Claims) -> ExtraClaims {
    let mut extra = ExtraClaims::new();
    extra.insert("_id".into(), claims.sub.clone().into());
    extra.insert("email_verified".into(), claims.verified.into());
    extra
}

#[async_trait::async_trait]
impl Dialect for Krypton {
    fn config(&self) -> &config::Dialect {
        &self.config
    }

    fn find(&self, rest: &str) -> Option<(Endpoint, Option<String>)> {
        let endpoint = match rest.trim_end_matches('/') {
            "" => Endpoint::Graphql,
            JWKS => Endpoint::Jwks,
            CONFIRMATION => Endpoint::Page(Page::Confirm),
            RESET_FORM => Endpoint::Page(Page::Password(Purpose::PasswordReset)),
            SET_FORM => Endpoint::Page(Page::Password(Purpose::PasswordSet)),
            _ => return None,
        };
        Some((endpoint, None))
    }

    fn refresh_cookie_name(&self) -> &'static str {
        REFRESH_COOKIE
    }

    async fn graphql(&self, body: &[u8], caller: Caller) -> Reply {
        let request = match graphql::parse_request(body) {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        let response = self.schema.execute(request.data(caller)).await;
        let body = schema::krypton_body(&response);
        graphql::reply_with_headers(body, &response)
    }

    fn graphiql(&self) -> Option<Bytes> {
        self.graphiql.clone()
    }
}

/// The original's links: `<base>/user/email/confirmation?token=…` and
/// `<base>/form/reset/password?token=…`.
struct KryptonLinks {
    base: String,
}

impl Links for KryptonLinks {
    fn site(&self) -> &str {
        &self.base
    }

    fn activation(&self, _: &User, token: &str) -> String {
        format!("{}{CONFIRMATION}?token={token}", self.base)
    }

    fn password_reset(&self, _: &User, token: &str) -> String {
        format!("{}{RESET_FORM}?token={token}", self.base)
    }

    fn password_set(&self, _: &User, token: &str) -> String {
        format!("{}{SET_FORM}?token={token}", self.base)
    }

    fn secondary_email(&self, _: &User, token: &str) -> String {
        format!("{}{CONFIRMATION}?token={token}", self.base)
    }
}
