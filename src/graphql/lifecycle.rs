//! Password reset and set, archive and delete, secondary email, API keys, staff queries:
//! resolvers that translate to [`crate::accounts::Accounts`] and back.

use async_graphql::connection::{query, Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result, SimpleObject, ID};

use super::accounts::{accounts, caller, client_ip, query_error, set_refresh_cookie};
use super::types::{DateTime, ExpectedErrors, UserNode};
use crate::accounts::ApiKey;
use crate::accounts::{Failure, Purpose, UserFilter};

macro_rules! simple_payload {
    ($($name:ident),* $(,)?) => {$(
        #[derive(SimpleObject, Default)]
        pub struct $name {
            pub success: bool,
            pub errors: Option<ExpectedErrors>,
        }

        impl From<Result<(), Failure>> for $name {
            fn from(result: Result<(), Failure>) -> Self {
                match result {
                    Ok(()) => $name { success: true, errors: None },
                    Err(failure) => $name { success: false, errors: Some(ExpectedErrors(failure)) },
                }
            }
        }
    )*};
}

simple_payload!(
    SendPasswordResetEmailPayload,
    PasswordResetPayload,
    PasswordSetPayload,
    ArchiveAccountPayload,
    DeleteAccountPayload,
    SendSecondaryEmailActivationPayload,
    VerifySecondaryEmailPayload,
    SwapEmailsPayload,
    RemoveSecondaryEmailPayload,
    RevokeApiKeyPayload,
);

/// An API key as its owner sees it (never the key itself).
pub struct ApiKeyNode(pub ApiKey);

#[Object(name = "ApiKey")]
impl ApiKeyNode {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The first characters of the key.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}

#[derive(SimpleObject, Default)]
pub struct CreateApiKeyPayload {
    pub success: bool,
    pub errors: Option<ExpectedErrors>,
    /// The key: shown this once, stored only as a hash.
    pub key: Option<String>,
    pub api_key: Option<ApiKeyNode>,
}

#[derive(SimpleObject)]
pub struct TotalCount {
    pub total_count: usize,
}

pub type UserConnection = Connection<usize, UserNode, TotalCount, EmptyFields>;

#[derive(Default)]
pub struct LifecycleQuery;

#[Object]
impl LifecycleQuery {
    /// Staff only: users, filtered, as a Relay connection.
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        email: Option<String>,
        username: Option<String>,
        verified: Option<bool>,
        archived: Option<bool>,
        is_staff: Option<bool>,
        search: Option<String>,
    ) -> Result<Option<UserConnection>> {
        let filter = UserFilter {
            email,
            username,
            verified,
            archived,
            is_staff,
            search,
        };
        let list = accounts(ctx)?
            .list_users(caller(ctx), &filter)
            .await
            .map_err(query_error)?;
        let connection = query(
            after,
            before,
            first,
            last,
            |after, before, first, last| async move {
                let total = list.len();
                let mut start = after.map_or(0, |a: usize| a.saturating_add(1)).min(total);
                let mut end = before.unwrap_or(total).min(total).max(start);
                if let Some(first) = first {
                    end = end.min(start + first);
                }
                if let Some(last) = last {
                    start = start.max(end.saturating_sub(last));
                }
                let mut connection = Connection::with_additional_fields(
                    start > 0,
                    end < total,
                    TotalCount { total_count: total },
                );
                connection.edges.extend(
                    list[start..end]
                        .iter()
                        .enumerate()
                        .map(|(i, user)| Edge::new(start + i, UserNode(user.clone()))),
                );
                Ok::<_, async_graphql::Error>(connection)
            },
        )
        .await?;
        Ok(Some(connection))
    }

    /// Staff, or the user themself.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserNode>> {
        let user = accounts(ctx)?
            .user_for(caller(ctx), &id)
            .await
            .map_err(query_error)?;
        Ok(user.map(UserNode))
    }

    /// The caller's own API keys.
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKeyNode>> {
        let keys = accounts(ctx)?
            .api_keys_of(caller(ctx))
            .await
            .map_err(query_error)?;
        Ok(keys.into_iter().map(ApiKeyNode).collect())
    }
}

#[derive(Default)]
pub struct LifecycleMutation;

#[Object]
impl LifecycleMutation {
    /// Always `success` for a well-formed address (no enumeration); a verified account gets a
    /// reset link, an unverified one the activation email.
    async fn send_password_reset_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<SendPasswordResetEmailPayload> {
        let accounts = accounts(ctx)?;
        Ok(accounts
            .send_password_reset(&email, client_ip(ctx))
            .await
            .into())
    }

    async fn password_reset(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordResetPayload> {
        let result = accounts(ctx)?
            .reset_password(&token, Purpose::PasswordReset, new_password1, new_password2)
            .await;
        Ok(result.into())
    }

    async fn password_set(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordSetPayload> {
        let result = accounts(ctx)?
            .reset_password(&token, Purpose::PasswordSet, new_password1, new_password2)
            .await;
        Ok(result.into())
    }

    async fn archive_account(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<ArchiveAccountPayload> {
        let result = accounts(ctx)?.archive(caller(ctx), password).await;
        if result.is_ok() {
            set_refresh_cookie(ctx, None);
        }
        Ok(result.into())
    }

    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<DeleteAccountPayload> {
        let accounts = accounts(ctx)?;
        let mode = accounts.settings().delete_mode;
        let result = accounts.delete(caller(ctx), password, mode).await;
        if result.is_ok() {
            set_refresh_cookie(ctx, None);
        }
        Ok(result.into())
    }

    async fn send_secondary_email_activation(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<SendSecondaryEmailActivationPayload> {
        let result = accounts(ctx)?
            .send_secondary_email_activation(caller(ctx), &email, password, client_ip(ctx))
            .await;
        Ok(result.into())
    }

    async fn verify_secondary_email(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<VerifySecondaryEmailPayload> {
        Ok(accounts(ctx)?.verify_secondary_email(&token).await.into())
    }

    async fn swap_emails(&self, ctx: &Context<'_>, password: String) -> Result<SwapEmailsPayload> {
        let result = accounts(ctx)?.swap_emails(caller(ctx), password).await;
        Ok(result.map(|_| ()).into())
    }

    async fn remove_secondary_email(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<RemoveSecondaryEmailPayload> {
        let result = accounts(ctx)?
            .remove_secondary_email(caller(ctx), password)
            .await;
        Ok(result.map(|_| ()).into())
    }

    async fn create_api_key(&self, ctx: &Context<'_>, name: String) -> Result<CreateApiKeyPayload> {
        Ok(
            match accounts(ctx)?.create_api_key(caller(ctx), &name).await {
                Ok((key, record)) => CreateApiKeyPayload {
                    success: true,
                    errors: None,
                    key: Some(key),
                    api_key: Some(ApiKeyNode(record)),
                },
                Err(failure) => CreateApiKeyPayload {
                    errors: Some(ExpectedErrors(failure)),
                    ..Default::default()
                },
            },
        )
    }

    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<RevokeApiKeyPayload> {
        Ok(accounts(ctx)?.revoke_api_key(caller(ctx), &id).await.into())
    }
}
