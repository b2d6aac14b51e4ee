//! Account queries and mutations: each resolver turns arguments into a call on
//! [`crate::accounts::Accounts`] and its result into a payload. No logic lives here.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, Result, SimpleObject};

use super::types::{ExpectedErrors, UserNode};
use super::Caller;
use crate::accounts::{Accounts, Failure, LoginRequest, ProfileUpdate, Registration};
use crate::app::App;

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

fn accounts<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Accounts>> {
    ctx.data_unchecked::<Arc<App>>()
        .accounts
        .as_ref()
        .ok_or_else(|| {
            async_graphql::Error::new("the account API is not served in verifier mode")
                .extend_with(|_, e| e.set("code", "not_found"))
        })
}

fn caller<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<Caller>().and_then(|c| c.user_id.as_deref())
}

/// A failure of a query (queries have no payload): a GraphQL error with `extensions.code`.
fn query_error(failure: Failure) -> async_graphql::Error {
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
            .email_available(&email)
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
        Ok(match accounts(ctx)?.register(input).await {
            Ok(done) => RegisterPayload {
                success: true,
                token: done.token.map(|(token, _)| token),
                ..Default::default()
            },
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
        Ok(match accounts(ctx)?.resend_activation(&email).await {
            Ok(()) => ResendActivationEmailPayload {
                success: true,
                ..Default::default()
            },
            Err(failure) => failure.into(),
        })
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
        Ok(match accounts(ctx)?.login(request).await {
            Ok(done) => TokenAuthPayload {
                success: true,
                token: Some(done.token),
                token_expires_at: Some(done.claims.exp),
                unarchiving: Some(done.unarchiving),
                user: Some(UserNode(done.user)),
                ..Default::default()
            },
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
}
