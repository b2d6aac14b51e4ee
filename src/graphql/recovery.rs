//! `sendPasswordResetEmail`, `passwordReset`, `passwordSet`.

use async_graphql::{Context, Object, Result};

use super::context::{accounts, client_ip, links};
use super::payload::payload;
use crate::accounts::Purpose;

payload! {
    SendPasswordResetEmailPayload {}
    PasswordResetPayload {}
    PasswordSetPayload {}
}

#[derive(Default)]
pub struct RecoveryMutation;

#[Object]
impl RecoveryMutation {
    /// Always `success` for a well-formed address (no enumeration); a verified account gets a
    /// reset link, an unverified one the activation email.
    async fn send_password_reset_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<SendPasswordResetEmailPayload> {
        let result = accounts(ctx)?
            .recovery
            .send_password_reset(&email, client_ip(ctx), links(ctx))
            .await;
        Ok(SendPasswordResetEmailPayload::from_result(result))
    }

    async fn password_reset(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordResetPayload> {
        let result = accounts(ctx)?
            .recovery
            .reset_password(&token, Purpose::PasswordReset, new_password1, new_password2)
            .await;
        Ok(PasswordResetPayload::from_result(result))
    }

    async fn password_set(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password1: String,
        new_password2: String,
    ) -> Result<PasswordSetPayload> {
        let result = accounts(ctx)?
            .recovery
            .reset_password(&token, Purpose::PasswordSet, new_password1, new_password2)
            .await;
        Ok(PasswordSetPayload::from_result(result))
    }
}
