//! Karrio (SPEC §11): its account GraphQL at `<prefix>/graphql` (snake_case names, every
//! mutation taking `input:`, field errors in the payload as `errors: [{field, messages}]`,
//! `authentication_required` errors), its REST token endpoints (`/api/token`,
//! `/api/token/refresh`, `/api/token/verify`), its `key_…` keys shown again by the `token`
//! query (authgate's standing keys), links built on the client's `redirect_url` (checked
//! against `redirect_origins`), and the `user_id` / `token_type` / `is_verified` claims.

mod rest;
mod schema;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;

use super::{path_token, Dialect, Endpoint, Page, Parts};
use crate::accounts::{Accounts, Failure, LoggedIn, LoginRequest, Purpose, User};
use crate::config::{self, HttpUrl, Origin};
use crate::graphql::{self, Caller};
use crate::jwt::{Claims, ExtraClaims};
use crate::reply::Reply;

const GRAPHQL: &str = "/graphql";
const TOKEN: &str = "/api/token";
const TOKEN_REFRESH: &str = "/api/token/refresh";
const TOKEN_VERIFY: &str = "/api/token/verify";
/// The pages the dashboard has for its links, served by authgate when no `redirect_url` is
/// given: `/email/<token>` confirms an address, `/password/reset?uidb64=…&token=…` resets.
const CONFIRM_PAGE: &str = "/email";
const RESET_PAGE: &str = "/password/reset";
/// Not a page of the original's (it has no invitations): set-password links of this dialect.
const SET_PAGE: &str = "/password/set";

/// No Karrio cookie is read or set (SPEC §11): the refresh token travels in REST bodies.
const NO_COOKIE: &str = "karrio_refresh_token";

pub(crate) struct State {
    pub accounts: Arc<Accounts>,
    /// `link_base_url` (or the public URL + prefix), where links go without a `redirect_url`.
    pub link_base: String,
    pub redirect_origins: Vec<Origin>,
}

struct Karrio {
    config: config::Dialect,
    state: Arc<State>,
    schema: schema::KarrioSchema,
    graphiql: Option<Bytes>,
}

pub(super) fn build(parts: Parts) -> Result<Arc<dyn Dialect>, String> {
    let state = Arc::new(State {
        accounts: Arc::new(parts.accounts.with_claims(claims)),
        link_base: parts.link_base(),
        redirect_origins: parts.config.redirect_origins.clone(),
    });
    Ok(Arc::new(Karrio {
        schema: schema::build(state.clone(), &parts.app.config.graphql),
        graphiql: parts.graphiql(GRAPHQL),
        config: parts.config,
        state,
    }))
}

/// The claims of djangorestframework-simplejwt that Karrio's clients read: `user_id` (the
/// account id, = `sub`), `token_type` and `is_verified` (false only for a login that still
/// owes its second factor; every login here has given what the account needs).
fn claims(_: &User, claims: &Claims) -> ExtraClaims {
    let mut extra = ExtraClaims::new();
    extra.insert("user_id".into(), claims.sub.clone().into());
    extra.insert("token_type".into(), "access".into());
    extra.insert("is_verified".into(), true.into());
    extra
}

/// The login of the REST token endpoint, in one place. `otp` is the second factor's code
/// where the client sends one beside the password (SPEC §14).
pub(crate) async fn login(
    state: &State,
    email: String,
    password: String,
    otp: Option<String>,
    caller: &Caller,
) -> Result<LoggedIn, Failure> {
    let request = LoginRequest {
        email: Some(email),
        username: None,
        password,
        otp,
    };
    state
        .accounts
        .sessions
        .login(request, caller.client_ip)
        .await
}

impl State {
    /// The links of mail sent for one call: built on the client's `redirect_url` when it gave
    /// one (already checked), on the dialect's pages otherwise.
    pub fn links(&self, redirect: Option<&str>) -> Arc<KarrioLinks> {
        Arc::new(KarrioLinks::new(&self.link_base, redirect))
    }

    /// A client's `redirect_url`, checked ([`check_redirect`]).
    pub fn redirect(&self, url: Option<&str>) -> Result<Option<String>, &'static str> {
        check_redirect(&self.redirect_origins, url)
    }
}

/// A client's `redirect_url`: `None` when absent or empty, an error message when it is not an
/// absolute http(s) URL on one of `origins` (userinfo, no scheme, a fragment, a backslash or
/// a space: refused).
fn check_redirect(origins: &[Origin], url: Option<&str>) -> Result<Option<String>, &'static str> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if url.len() > 2048 || url.contains(['#', '\\']) || url.chars().any(char::is_whitespace) {
        return Err("Enter a valid URL.");
    }
    let parsed = HttpUrl::parse(url).map_err(|_| "Enter a valid URL.")?;
    if !origins.contains(&Origin::of(&parsed)) {
        return Err("This redirect URL is not allowed.");
    }
    Ok(Some(parsed.as_str().to_string()))
}

/// The uid of Karrio's reset links (`uidb64`): the account id, base64url without padding.
pub(crate) fn uid(user: &User) -> String {
    URL_SAFE_NO_PAD.encode(user.id.as_bytes())
}

/// The original's links: `<confirm>/<token>` and `<reset>?uidb64=<uid>&token=<token>`.
pub(crate) struct KarrioLinks {
    site: String,
    confirm: String,
    reset: String,
    set: String,
}

impl KarrioLinks {
    fn new(base: &str, redirect: Option<&str>) -> KarrioLinks {
        let (confirm, reset) = match redirect {
            Some(url) => (url.to_string(), url.to_string()),
            None => (
                format!("{base}{CONFIRM_PAGE}"),
                format!("{base}{RESET_PAGE}"),
            ),
        };
        KarrioLinks {
            site: base.to_string(),
            confirm,
            reset,
            set: format!("{base}{SET_PAGE}"),
        }
    }
}

fn with_query(url: &str, query: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{query}")
}

impl crate::accounts::Links for KarrioLinks {
    fn site(&self) -> &str {
        &self.site
    }

    fn activation(&self, _: &User, token: &str) -> String {
        format!("{}/{token}", self.confirm.trim_end_matches('/'))
    }

    fn password_reset(&self, user: &User, token: &str) -> String {
        with_query(&self.reset, &format!("uidb64={}&token={token}", uid(user)))
    }

    fn password_set(&self, user: &User, token: &str) -> String {
        with_query(&self.set, &format!("uidb64={}&token={token}", uid(user)))
    }

    fn secondary_email(&self, _: &User, token: &str) -> String {
        format!("{}/{token}", self.confirm.trim_end_matches('/'))
    }
}

#[async_trait::async_trait]
impl Dialect for Karrio {
    fn config(&self) -> &config::Dialect {
        &self.config
    }

    fn find(&self, rest: &str) -> Option<(Endpoint, Option<String>)> {
        let endpoint = match rest.trim_end_matches('/') {
            GRAPHQL => Endpoint::Graphql,
            TOKEN => Endpoint::Json(rest::TOKEN),
            TOKEN_REFRESH => Endpoint::Json(rest::REFRESH),
            TOKEN_VERIFY => Endpoint::Json(rest::VERIFY),
            RESET_PAGE => Endpoint::Page(Page::Password(Purpose::PasswordReset)),
            SET_PAGE => Endpoint::Page(Page::Password(Purpose::PasswordSet)),
            _ => {
                let token = path_token(rest, &format!("{CONFIRM_PAGE}/"))?;
                return Some((Endpoint::Page(Page::Confirm), Some(token)));
            }
        };
        Some((endpoint, None))
    }

    fn refresh_cookie_name(&self) -> &'static str {
        NO_COOKIE
    }

    fn allow_headers(&self) -> &'static [&'static str] {
        &["x-org-id", "x-test-mode", "x-api-key"]
    }

    /// Karrio's API clients call GraphQL with their key (`Authorization: Token key_…`).
    fn accepts_api_keys(&self) -> bool {
        true
    }

    async fn graphql(&self, body: &[u8], caller: Caller) -> Reply {
        let request = match graphql::parse_request(body) {
            Ok(request) => request,
            Err(refusal) => return refusal,
        };
        let response = self.schema.execute(request.data(caller)).await;
        let body = schema::karrio_body(&response);
        graphql::reply_with_headers(body, &response)
    }

    fn graphiql(&self) -> Option<Bytes> {
        self.graphiql.clone()
    }

    async fn json(&self, name: &'static str, body: &[u8], caller: Caller) -> Reply {
        rest::serve(&self.state, name, body, &caller).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Links;

    fn origins(list: &[&str]) -> Vec<Origin> {
        list.iter().map(|o| Origin::parse(o).unwrap()).collect()
    }

    #[test]
    fn redirect_urls_must_be_on_a_listed_origin() {
        let allowed = origins(&["https://app.example.com", "http://localhost:3000"]);
        let check = |url: &str| check_redirect(&allowed, Some(url));
        assert_eq!(
            check("https://app.example.com/password/reset").unwrap(),
            Some("https://app.example.com/password/reset".to_string())
        );
        assert!(check("HTTPS://APP.example.com:443/email").is_ok());
        assert!(check("http://localhost:3000/email").is_ok());
        assert_eq!(check_redirect(&allowed, None), Ok(None));
        assert_eq!(check_redirect(&allowed, Some(" ")), Ok(None));
        for refused in [
            "https://evil.example.net/reset",
            "https://app.example.com.evil.net/reset",
            "http://app.example.com/reset",
            "https://app.example.com:8443/reset",
            "localhost:3000/password/reset",
            "//app.example.com/reset",
            "/password/reset",
            "https://user@app.example.com/reset",
            "https://app.example.com@evil.net/reset",
            "https://app.example.com/a b",
            "https://app.example.com/reset#x",
            "javascript:alert(1)",
            "ftp://app.example.com/",
        ] {
            assert!(check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn links_follow_the_originals_format() {
        let links = KarrioLinks::new(
            "https://auth.example.com/k",
            Some("https://app.example.com/p"),
        );
        let user: User = serde_json::from_value(serde_json::json!({
            "id": "u1", "email": "a@b.co", "is_active": true, "is_staff": false,
            "verified": false, "archived": false, "date_joined": 0, "security_stamp": "s"
        }))
        .unwrap();
        assert_eq!(links.activation(&user, "t"), "https://app.example.com/p/t");
        assert_eq!(
            links.password_reset(&user, "t"),
            "https://app.example.com/p?uidb64=dTE&token=t"
        );
        let pages = KarrioLinks::new("https://auth.example.com/k", None);
        assert_eq!(
            pages.activation(&user, "t"),
            "https://auth.example.com/k/email/t"
        );
        assert_eq!(
            pages.password_reset(&user, "t"),
            "https://auth.example.com/k/password/reset?uidb64=dTE&token=t"
        );
        let queried = KarrioLinks::new("https://a.co", Some("https://a.co/r?x=1"));
        assert_eq!(
            queried.password_reset(&user, "t"),
            "https://a.co/r?x=1&uidb64=dTE&token=t"
        );
    }
}
