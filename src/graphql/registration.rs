//! `register`, `verifyAccount`, `resendActivationEmail`, `emailAvailable`.

use async_graphql::{Context, Object, Result};

use super::context::{accounts, client_ip, links, set_refresh_cookie};
use super::errors::{query_error, REGISTER_ARGS};
use super::payload::payload;
use crate::accounts::SignUp;

payload! {
    RegisterPayload { token: String, refresh_token: String }
    VerifyAccountPayload {}
    ResendActivationEmailPayload {}
}

#[derive(Default)]
pub struct RegistrationQuery;

#[Object]
impl RegistrationQuery {
    /// Whether an email address is free to register (rate-limited; can be switched off).
    async fn email_available(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        accounts(ctx)?
            .registration
            .email_available(&email, client_ip(ctx))
            .await
            .map_err(query_error)
    }
}

#[derive(Default)]
pub struct RegistrationMutation;

#[Object]
impl RegistrationMutation {
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
        let input = SignUp {
            email,
            username,
            password1,
            password2,
            first_name,
            last_name,
        };
        let links = links(ctx);
        let registered = accounts(ctx)?
            .registration
            .register(input, client_ip(ctx), links.as_ref())
            .await;
        Ok(match registered {
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
            Err(failure) => RegisterPayload::failed_as(failure, REGISTER_ARGS),
        })
    }

    async fn verify_account(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<VerifyAccountPayload> {
        let result = accounts(ctx)?.registration.verify_account(&token).await;
        Ok(VerifyAccountPayload::from_result(result.map(|_| ())))
    }

    async fn resend_activation_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<ResendActivationEmailPayload> {
        let result = accounts(ctx)?
            .registration
            .resend_activation(&email, client_ip(ctx), links(ctx))
            .await;
        Ok(ResendActivationEmailPayload::from_result(result))
    }
}
