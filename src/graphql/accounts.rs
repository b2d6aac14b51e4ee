//! Account queries and mutations: each resolver turns arguments into a call on
//! [`crate::accounts::Accounts`] and its result into a payload. No logic lives here.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Json, Object, Result, SimpleObject};

use super::types::{ExpectedErrors, UserNode};
use super::Caller;
use crate::accounts::{Accounts, Failure, LoginRequest, ProfileUpdate, Registration, TokenPair};
use crate::app::App;

/// The refresh-token cookie.
pub const REFRESH_COOKIE: &str = "authgate_refresh";

/// A mutation payload: `success`, `errors`, and the named extra fields (all nullable).
macro_rules! payload {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(SimpleObject, Default)]
        pub struct $name {
            pub success: bool,
            pub errors: Option<ExpectedErrors>,
            $(pub $field: Option<$ty>,)*
        }

        impl From<Failure> for $name {
            #[allow(clippy::needless_update)]
            fn from(failure: Failure) -> Self {
                $name { success: false, errors: Some(ExpectedErrors(failure)), ..Default::default() }
            }
        }
    };
}

payload!(RegisterPayload {
    token: String,
    refresh_token: String
});
payload!(VerifyAccountPayload {});
payload!(ResendActivationEmailPayload {});
payload!(TokenAuthPayload {
    token: String,
    refresh_token: String,
    token_expires_at: i64,
    refresh_expires_at: i64,
    unarchiving: bool,
    user: UserNode,
});
payload!(UpdateAccountPayload { user: UserNode });
payload!(RefreshTokenPayload {
    token: String,
    refresh_token: String,
    token_expires_at: i64,
    refresh_expires_at: i64,
    payload: Json<serde_json::Value>,
});
payload!(VerifyTokenPayload { payload: Json<serde_json::Value> });
payload!(RevokeTokenPayload {});
payload!(RevokeAllTokensPayload {});
payload!(PasswordChangePayload {
    token: String,
    refresh_token: String
});

pub(super) fn accounts<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Accounts>> {
    ctx.data_unchecked::<Arc<App>>()
        .accounts
        .as_ref()
        .ok_or_else(|| {
            async_graphql::Error::new("the account API is not served in verifier mode")
                .extend_with(|_, e| e.set("code", "not_found"))
        })
}

pub(super) fn caller<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<Caller>().and_then(|c| c.user_id.as_deref())
}

pub(super) fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    ctx.data_opt::<Caller>().and_then(|c| c.client_ip)
}

/// Sets (or, with `None`, clears) the refresh-token cookie on the response.
pub(super) fn set_refresh_cookie(ctx: &Context<'_>, pair: Option<&TokenPair>) {
    let app = ctx.data_unchecked::<Arc<App>>();
    let secure = if app.config.server.public_url.is_https() {
        "; Secure"
    } else {
        ""
    };
    let (value, max_age) = match pair {
        Some(pair) => (
            pair.refresh_token.as_str(),
            (pair.refresh_expires_at - crate::jwt::unix_now()).max(0),
        ),
        None => ("", 0),
    };
    ctx.append_http_header(
        "set-cookie",
        format!("{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/graphql; Max-Age={max_age}{secure}"),
    );
}

/// The refresh token from the argument, or else from the cookie.
fn refresh_argument(ctx: &Context<'_>, argument: Option<String>) -> Option<String> {
    argument.filter(|t| !t.is_empty()).or_else(|| {
        ctx.data_opt::<Caller>()
            .and_then(|c| c.refresh_cookie.clone())
    })
}

fn claims_json(claims: &crate::jwt::Claims) -> Json<serde_json::Value> {
    Json(serde_json::to_value(claims).unwrap_or_default())
}

/// A failure of a query (queries have no payload): a GraphQL error with `extensions.code`.
pub(super) fn query_error(failure: Failure) -> async_graphql::Error {
    let code = failure.codes().first().copied().unwrap_or("invalid");
    let message = failure
        .0
        .values()
        .flatten()
        .next()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The logged-in user; null when not authenticated.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let user = accounts(ctx)?.me(caller(ctx)).await.map_err(query_error)?;
        Ok(user.map(UserNode))
    }

    /// Whether an email address is free to register (rate-limited; can be switched off).
    async fn email_available(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        accounts(ctx)?
            .email_available(&email, client_ip(ctx))
            .await
            .map_err(query_error)
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        ctx: &Context<'_>,
        email: String,
        username: Option<String>,
        password1: String,
        password2: String,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> Result<RegisterPayload> {
        let input = Registration {
            email,
            username,
            password1,
            password2,
            first_name,
            last_name,
        };
        Ok(match accounts(ctx)?.register(input, client_ip(ctx)).await {
            Ok(done) => {
                if let Some(pair) = &done.tokens {
                    set_refresh_cookie(ctx, Some(pair));
                }
                RegisterPayload {
                    success: true,
                    token: done.tokens.as_ref().map(|p| p.token.clone()),
                    refresh_token: done.tokens.map(|p| p.refresh_token),
                    ..Default::default()
                }
            }
            Err(failure) => failure.into(),
        })
    }

    async fn verify_account(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<VerifyAccountPayload> {
        Ok(match accounts(ctx)?.verify_account(&token).await {
            Ok(_) => VerifyAccountPayload {
                success: true,
                ..Default::default()
            },
            Err(failure) => failure.into(),
        })
    }

    async fn resend_activation_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<ResendActivationEmailPayload> {
        Ok(
            match accounts(ctx)?
                .resend_activation(&email, client_ip(ctx))
                .await
            {
                Ok(()) => ResendActivationEmailPayload {
                    success: true,
                    ..Default::default()
                },
                Err(failure) => failure.into(),
            },
        )
    }

    async fn token_auth(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        password: String,
    ) -> Result<TokenAuthPayload> {
        let request = LoginRequest {
            email,
            username,
            password,
        };
        Ok(match accounts(ctx)?.login(request, client_ip(ctx)).await {
            Ok(done) => {
                set_refresh_cookie(ctx, Some(&done.tokens));
                TokenAuthPayload {
                    success: true,
                    token_expires_at: Some(done.tokens.claims.exp),
                    refresh_expires_at: Some(done.tokens.refresh_expires_at),
                    token: Some(done.tokens.token),
                    refresh_token: Some(done.tokens.refresh_token),
                    unarchiving: Some(done.unarchiving),
                    user: Some(UserNode(done.user)),
                    errors: None,
                }
            }
            Err(failure) => failure.into(),
        })
    }

    async fn update_account(
        &self,
        ctx: &Context<'_>,
        first_name: Option<String>,
        last_name: Option<String>,
        username: Option<String>,
    ) -> Result<UpdateAccountPayload> {
        let update = ProfileUpdate {
            first_name,
            last_name,
            username,
        };
        Ok(
            match accounts(ctx)?.update_profile(caller(ctx), update).await {
                Ok(user) => UpdateAccountPayload {
                    success: true,
                    user: Some(UserNode(user)),
                    ..Default::default()
                },
                Err(failure) => failure.into(),
            },
        )
    }

    /// Exchanges a refresh token (argument, or the cookie) for a new pair.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<RefreshTokenPayload> {
        let presented = refresh_argument(ctx, refresh_token);
        Ok(match accounts(ctx)?.refresh(presented.as_deref()).await {
            Ok((_, pair)) => {
                set_refresh_cookie(ctx, Some(&pair));
                RefreshTokenPayload {
                    success: true,
                    token_expires_at: Some(pair.claims.exp),
                    refresh_expires_at: Some(pair.refresh_expires_at),
                    payload: Some(claims_json(&pair.claims)),
                    token: Some(pair.token),
                    refresh_token: Some(pair.refresh_token),
                    errors: None,
                }
            }
            Err(failure) => {
                set_refresh_cookie(ctx, None);
                failure.into()
            }
        })
    }

    async fn verify_token(&self, ctx: &Context<'_>, token: String) -> Result<VerifyTokenPayload> {
        Ok(match accounts(ctx)?.verify_token(&token) {
            Ok(claims) => VerifyTokenPayload {
                success: true,
                payload: Some(claims_json(&claims)),
                errors: None,
            },
            Err(failure) => failure.into(),
        })
    }

    /// Ends the session of a refresh token (argument, or the cookie).
    async fn revoke_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<RevokeTokenPayload> {
        let presented = refresh_argument(ctx, refresh_token);
        let result = accounts(ctx)?.revoke(presented.as_deref()).await;
        set_refresh_cookie(ctx, None);
        Ok(match result {
            Ok(()) => RevokeTokenPayload {
                success: true,
                errors: None,
            },
            Err(failure) => failure.into(),
        })
    }

    /// Logs the caller out everywhere: every refresh token of the account dies.
    async fn revoke_all_tokens(&self, ctx: &Context<'_>) -> Result<RevokeAllTokensPayload> {
        Ok(match accounts(ctx)?.revoke_all(caller(ctx)).await {
            Ok(()) => {
                set_refresh_cookie(ctx, None);
                RevokeAllTokensPayload {
                    success: true,
                    errors: None,
                }
            }
            Err(failure) => failure.into(),
        })
    }

    async fn password_change(
        &self,
        ctx: &Context<'_>,
        old_password: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordChangePayload> {
        let result = accounts(ctx)?
            .change_password(caller(ctx), old_password, new_password1, new_password2)
            .await;
        Ok(match result {
            Ok(pair) => {
                set_refresh_cookie(ctx, Some(&pair));
                PasswordChangePayload {
                    success: true,
                    token: Some(pair.token),
                    refresh_token: Some(pair.refresh_token),
                    errors: None,
                }
            }
            Err(failure) => failure.into(),
        })
    }
}
