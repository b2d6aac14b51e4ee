//! What resolvers take from the request context: the account services, the caller, the links
//! mail should carry, and the refresh-token cookie.

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Result};

use super::Caller;
use crate::accounts::{Accounts, Links, TokenPair};
use crate::app::App;
use crate::cookies::RefreshCookie;

pub fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

/// The account services; an error in verifier mode, which has none.
pub fn accounts<'a>(ctx: &Context<'a>) -> Result<&'a Accounts> {
    app(ctx).accounts.as_deref().ok_or_else(|| {
        async_graphql::Error::new("the account API is not served in verifier mode")
            .extend_with(|_, e| e.set("code", "not_found"))
    })
}

/// The logged-in user's id, if any.
pub fn caller<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<Caller>().and_then(|c| c.user_id.as_deref())
}

/// The session of the caller's token, if any.
pub fn caller_session<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<Caller>()
        .and_then(|c| c.session_id.as_deref())
}

pub fn client_ip(ctx: &Context<'_>) -> Option<IpAddr> {
    ctx.data_opt::<Caller>().and_then(|c| c.client_ip)
}

/// The links of mail sent through the native schema.
pub fn links(ctx: &Context<'_>) -> Arc<dyn Links> {
    app(ctx).links.clone()
}

/// The native schema's refresh-token cookie.
pub const REFRESH_COOKIE: &str = "authgate_refresh";

fn refresh_cookie(ctx: &Context<'_>) -> RefreshCookie {
    RefreshCookie {
        name: REFRESH_COOKIE,
        path: "/graphql".into(),
        same_site: cookie::SameSite::Strict,
        secure: app(ctx).config.server.public_url.is_https(),
    }
}

/// Sets (or, with `None`, clears) the refresh-token cookie on the response.
pub fn set_refresh_cookie(ctx: &Context<'_>, pair: Option<&TokenPair>) {
    let cookie = refresh_cookie(ctx);
    let header = match pair {
        Some(pair) => cookie.set(
            &pair.refresh_token,
            pair.refresh_expires_at - crate::jwt::unix_now(),
        ),
        None => cookie.clear(),
    };
    ctx.append_http_header("set-cookie", header);
}

/// The refresh token from the argument, or else from the cookie.
pub fn refresh_argument(ctx: &Context<'_>, argument: Option<String>) -> Option<String> {
    argument.filter(|t| !t.is_empty()).or_else(|| {
        ctx.data_opt::<Caller>()
            .and_then(|c| c.refresh_cookie.clone())
    })
}
