//! `me`, `updateAccount`, `passwordChange`, `archiveAccount`, `deleteAccount`.

use async_graphql::{Context, Object, Result};

use super::context::{accounts, caller, set_refresh_cookie};
use super::errors::{query_error, PASSWORD_CHANGE_ARGS};
use super::payload::payload;
use super::types::UserNode;
use crate::accounts::ProfileUpdate;

payload! {
    UpdateAccountPayload { user: UserNode }
    PasswordChangePayload { token: String, refresh_token: String }
    ArchiveAccountPayload {}
    DeleteAccountPayload {}
}

#[derive(Default)]
pub struct ProfileQuery;

#[Object]
impl ProfileQuery {
    /// The logged-in user; null when not authenticated.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        let user = accounts(ctx)?
            .profile
            .me(caller(ctx))
            .await
            .map_err(query_error)?;
        Ok(user.map(UserNode))
    }
}

#[derive(Default)]
pub struct ProfileMutation;

#[Object]
impl ProfileMutation {
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
            match accounts(ctx)?.profile.update(caller(ctx), update).await {
                Ok(user) => UpdateAccountPayload {
                    success: true,
                    user: Some(UserNode(user)),
                    ..Default::default()
                },
                Err(failure) => UpdateAccountPayload::failed(failure),
            },
        )
    }

    async fn password_change(
        &self,
        ctx: &Context<'_>,
        old_password: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordChangePayload> {
        let result = accounts(ctx)?
            .profile
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
            Err(failure) => PasswordChangePayload::failed_as(failure, PASSWORD_CHANGE_ARGS),
        })
    }

    async fn archive_account(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<ArchiveAccountPayload> {
        let result = accounts(ctx)?.profile.archive(caller(ctx), password).await;
        if result.is_ok() {
            set_refresh_cookie(ctx, None);
        }
        Ok(ArchiveAccountPayload::from_result(result))
    }

    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<DeleteAccountPayload> {
        let accounts = accounts(ctx)?;
        let mode = accounts.settings().delete_mode;
        let result = accounts.profile.delete(caller(ctx), password, mode).await;
        if result.is_ok() {
            set_refresh_cookie(ctx, None);
        }
        Ok(DeleteAccountPayload::from_result(result))
    }
}
