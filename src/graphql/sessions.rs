//! `tokenAuth`, `refreshToken`, `verifyToken`, `revokeToken`, `revokeAllTokens`.

use async_graphql::{Context, Json, Object, Result};

use super::context::{accounts, caller, client_ip, refresh_argument, set_refresh_cookie};
use super::payload::payload;
use super::types::UserNode;
use crate::accounts::LoginRequest;
use crate::jwt::Claims;

payload! {
    TokenAuthPayload {
        token: String,
        refresh_token: String,
        token_expires_at: i64,
        refresh_expires_at: i64,
        unarchiving: bool,
        user: UserNode,
    }
    RefreshTokenPayload {
        token: String,
        refresh_token: String,
        token_expires_at: i64,
        refresh_expires_at: i64,
        payload: Json<serde_json::Value>,
    }
    VerifyTokenPayload { payload: Json<serde_json::Value> }
    RevokeTokenPayload {}
    RevokeAllTokensPayload {}
}

fn claims_json(claims: &Claims) -> Json<serde_json::Value> {
    Json(serde_json::to_value(claims).unwrap_or_default())
}

#[derive(Default)]
pub struct SessionsMutation;

#[Object]
impl SessionsMutation {
    async fn token_auth(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        password: String,
        #[graphql(desc = "A one-time code or a recovery code, for accounts with TOTP on.")]
        otp: Option<String>,
    ) -> Result<TokenAuthPayload> {
        let request = LoginRequest {
            email,
            username,
            password,
            otp,
        };
        Ok(
            match accounts(ctx)?.sessions.login(request, client_ip(ctx)).await {
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
                Err(failure) => TokenAuthPayload::failed(failure),
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
        Ok(
            match accounts(ctx)?.sessions.refresh(presented.as_deref()).await {
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
                    RefreshTokenPayload::failed(failure)
                }
            },
        )
    }

    async fn verify_token(&self, ctx: &Context<'_>, token: String) -> Result<VerifyTokenPayload> {
        Ok(match accounts(ctx)?.sessions.verify_token(&token) {
            Ok(claims) => VerifyTokenPayload {
                success: true,
                payload: Some(claims_json(&claims)),
                errors: None,
            },
            Err(failure) => VerifyTokenPayload::failed(failure),
        })
    }

    /// Ends the session of a refresh token (argument, or the cookie).
    async fn revoke_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> Result<RevokeTokenPayload> {
        let presented = refresh_argument(ctx, refresh_token);
        let result = accounts(ctx)?.sessions.revoke(presented.as_deref()).await;
        set_refresh_cookie(ctx, None);
        Ok(RevokeTokenPayload::from_result(result))
    }

    /// Logs the caller out everywhere: every refresh token of the account dies.
    async fn revoke_all_tokens(&self, ctx: &Context<'_>) -> Result<RevokeAllTokensPayload> {
        let result = accounts(ctx)?.sessions.revoke_all(caller(ctx)).await;
        if result.is_ok() {
            set_refresh_cookie(ctx, None);
        }
        Ok(RevokeAllTokensPayload::from_result(result))
    }
}
