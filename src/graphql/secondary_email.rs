//! `sendSecondaryEmailActivation`, `verifySecondaryEmail`, `swapEmails`, `removeSecondaryEmail`.

use async_graphql::{Context, Object, Result};

use super::context::{accounts, caller, client_ip, links};
use super::payload::payload;

payload! {
    SendSecondaryEmailActivationPayload {}
    VerifySecondaryEmailPayload {}
    SwapEmailsPayload {}
    RemoveSecondaryEmailPayload {}
}

#[derive(Default)]
pub struct SecondaryEmailMutation;

#[Object]
impl SecondaryEmailMutation {
    async fn send_secondary_email_activation(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<SendSecondaryEmailActivationPayload> {
        let links = links(ctx);
        let result = accounts(ctx)?
            .secondary_email
            .send_activation(
                caller(ctx),
                &email,
                password,
                client_ip(ctx),
                links.as_ref(),
            )
            .await;
        Ok(SendSecondaryEmailActivationPayload::from_result(result))
    }

    async fn verify_secondary_email(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<VerifySecondaryEmailPayload> {
        let result = accounts(ctx)?.secondary_email.verify(&token).await;
        Ok(VerifySecondaryEmailPayload::from_result(result))
    }

    async fn swap_emails(&self, ctx: &Context<'_>, password: String) -> Result<SwapEmailsPayload> {
        let result = accounts(ctx)?
            .secondary_email
            .swap(caller(ctx), password)
            .await;
        Ok(SwapEmailsPayload::from_result(result.map(|_| ())))
    }

    async fn remove_secondary_email(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<RemoveSecondaryEmailPayload> {
        let result = accounts(ctx)?
            .secondary_email
            .remove(caller(ctx), password)
            .await;
        Ok(RemoveSecondaryEmailPayload::from_result(result.map(|_| ())))
    }
}
