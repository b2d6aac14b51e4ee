//! Craft CMS's GraphQL Authentication plugin (SPEC §11): its mutations and `viewer` query at
//! `<prefix>/api` with the original's type names (`Auth`, `UserInterface`, `User`), string
//! results and default messages, errors `{"message", "extensions": {"code": "INVALID"}}`, the
//! `gql_refreshToken` cookie (ahead of the argument), expiries in milliseconds, the claims
//! `fullName`, `groups`, `admin` and `schema`, and the pages of Craft's own mail links,
//! `/verifyemail?code=…&id=…` and `/setpassword?code=…&id=…`, under the prefix.

mod schema;

use std::sync::Arc;

use bytes::Bytes;

use super::{Dialect, Endpoint, Page, Parts};
use crate::accounts::{Accounts, Links, User};
use crate::config;
use crate::cookies::RefreshCookie;
use crate::graphql::{self, Caller};
use crate::jwt::{Claims, ExtraClaims};
use crate::reply::Reply;

/// The plugin's refresh-token cookie.
pub const REFRESH_COOKIE: &str = "gql_refreshToken";

/// What `Auth.schema` and the `schema` claim name: the one schema authgate serves.
pub const SCHEMA_NAME: &str = "authgate";

const GRAPHQL: &str = "/api";
/// Craft's `verifyEmailPath`: activation and a changed email alike.
const VERIFY_EMAIL: &str = "/verifyemail";
/// Craft's `setPasswordPath`: password resets and invitations alike.
const SET_PASSWORD: &str = "/setpassword";

pub(crate) struct State {
    pub accounts: Arc<Accounts>,
    pub links: Arc<dyn Links>,
    pub cookie: RefreshCookie,
}

struct Craft {
    config: config::Dialect,
    schema: schema::CraftSchema,
    graphiql: Option<Bytes>,
}

pub(super) fn build(parts: Parts) -> Result<Arc<dyn Dialect>, String> {
    let state = Arc::new(State {
        accounts: Arc::new(parts.accounts.with_claims(claims)),
        links: Arc::new(CraftLinks {
            base: parts.link_base(),
        }),
        cookie: parts.cookie(REFRESH_COOKIE),
    });
    Ok(Arc::new(Craft {
        schema: schema::build(state, &parts.app.config.graphql),
        graphiql: parts.graphiql(GRAPHQL),
        config: parts.config,
    }))
}

/// The claims the plugin's clients read from the token besides the standard ones (`sub`,
/// `email`): `fullName`, `groups` (authgate's roles), `admin` (staff) and `schema`.
fn claims(user: &User, claims: &Claims) -> ExtraClaims {
    let mut extra = ExtraClaims::new();
    extra.insert("fullName".into(), user.full_name().into());
    extra.insert("groups".into(), claims.roles.clone().into());
    extra.insert("admin".into(), claims.staff.into());
    extra.insert("schema".into(), SCHEMA_NAME.into());
    extra
}

#[async_trait::async_trait]
impl Dialect for Craft {
    fn config(&self) -> &config::Dialect {
        &self.config
    }

    fn find(&self, rest: &str) -> Option<(Endpoint, Option<String>)> {
        let endpoint = match rest.trim_end_matches('/') {
            GRAPHQL => Endpoint::Graphql,
            VERIFY_EMAIL => Endpoint::Page(Page::Confirm),
            SET_PASSWORD => Endpoint::Page(Page::PasswordAny),
            _ => return None,
        };
        Some((endpoint, None))
    }

    fn refresh_cookie_name(&self) -> &'static str {
        REFRESH_COOKIE
    }

    fn link_token_parameter(&self) -> &'static str {
        "code"
    }

    async fn graphql(&self, body: &[u8], caller: Caller) -> Reply {
        let request = match graphql::parse_request(body) {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        let response = self.schema.execute(request.data(caller)).await;
        let body = schema::craft_body(&response);
        graphql::reply_with_headers(body, &response)
    }

    fn graphiql(&self) -> Option<Bytes> {
        self.graphiql.clone()
    }
}

/// Craft's links: `<base>/verifyemail?code=…&id=…` and `<base>/setpassword?code=…&id=…`, the
/// code being authgate's signed email token and the id the account's (`sub`).
struct CraftLinks {
    base: String,
}

impl CraftLinks {
    fn link(&self, path: &str, user: &User, token: &str) -> String {
        format!("{}{path}?code={token}&id={}", self.base, user.id)
    }
}

impl Links for CraftLinks {
    fn site(&self) -> &str {
        &self.base
    }

    fn activation(&self, user: &User, token: &str) -> String {
        self.link(VERIFY_EMAIL, user, token)
    }

    fn password_reset(&self, user: &User, token: &str) -> String {
        self.link(SET_PASSWORD, user, token)
    }

    fn password_set(&self, user: &User, token: &str) -> String {
        self.link(SET_PASSWORD, user, token)
    }

    fn secondary_email(&self, user: &User, token: &str) -> String {
        self.link(VERIFY_EMAIL, user, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made the way the stores read them back, so that fields added later keep their defaults.
    fn user() -> User {
        serde_json::from_value(serde_json::json!({
            "id": "0190a1b2c3d4e5f60718293a4b5c6d7e", "email": "ada@example.com",
            "username": "ada", "first_name": "Ada", "last_name": "Lovelace",
            "is_active": true, "is_staff": true, "verified": true, "archived": false,
            "roles": ["editors"], "date_joined": 0, "security_stamp": "",
        }))
        .unwrap()
    }

    #[test]
    fn links_carry_the_code_and_the_account_id() {
        let links = CraftLinks {
            base: "https://app.example.com/craft".into(),
        };
        let user = user();
        assert_eq!(
            links.activation(&user, "a.b"),
            format!(
                "https://app.example.com/craft/verifyemail?code=a.b&id={}",
                user.id
            )
        );
        assert_eq!(
            links.password_reset(&user, "c.d"),
            links.password_set(&user, "c.d")
        );
        assert!(links
            .password_reset(&user, "c.d")
            .starts_with("https://app.example.com/craft/setpassword?code=c.d&id="));
    }

    #[test]
    fn claims_are_the_plugins() {
        let user = user();
        let standard: Claims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": user.id, "iat": 0, "nbf": 0, "exp": 0, "jti": "j",
            "email": user.email, "username": user.username, "verified": true, "staff": true,
            "roles": user.roles,
        }))
        .unwrap();
        let extra = claims(&user, &standard);
        assert_eq!(extra["fullName"], "Ada Lovelace");
        assert_eq!(extra["groups"], serde_json::json!(["editors"]));
        assert_eq!(extra["admin"], true);
        assert_eq!(extra["schema"], SCHEMA_NAME);
    }
}
