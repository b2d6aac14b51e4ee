//! `totpSetup`, `totpConfirm`, `totpDisable` (SPEC §14).

use async_graphql::{Context, Object, Result};

use super::context::{accounts, caller, caller_session, client_ip, links};
use super::payload::payload;

payload! {
    /// `secret` (base32) and `otpauthUrl` are shown this once; TOTP is on only after
    /// `totpConfirm`.
    TotpSetupPayload { secret: String, otpauth_url: String }
    /// The recovery codes are shown this once; authgate keeps only their hashes.
    TotpConfirmPayload { recovery_codes: Vec<String> }
    TotpDisablePayload {}
}

#[derive(Default)]
pub struct TotpMutation;

#[Object]
impl TotpMutation {
    /// A new TOTP secret for the caller's account, for an authenticator app.
    async fn totp_setup(&self, ctx: &Context<'_>) -> Result<TotpSetupPayload> {
        let links = links(ctx);
        Ok(
            match accounts(ctx)?.totp.setup(caller(ctx), links.as_ref()).await {
                Ok(enrolment) => TotpSetupPayload {
                    success: true,
                    errors: None,
                    secret: Some(enrolment.secret),
                    otpauth_url: Some(enrolment.otpauth_url),
                },
                Err(failure) => TotpSetupPayload::failed(failure),
            },
        )
    }

    /// Turns TOTP on with a first code; ends the account's other sessions.
    async fn totp_confirm(&self, ctx: &Context<'_>, code: String) -> Result<TotpConfirmPayload> {
        let totp = &accounts(ctx)?.totp;
        let confirmed = totp
            .confirm(caller(ctx), caller_session(ctx), &code, client_ip(ctx))
            .await;
        Ok(match confirmed {
            Ok(codes) => TotpConfirmPayload {
                success: true,
                errors: None,
                recovery_codes: Some(codes),
            },
            Err(failure) => TotpConfirmPayload::failed(failure),
        })
    }

    /// Turns TOTP off (the password and a code or a recovery code); ends the account's other
    /// sessions.
    async fn totp_disable(
        &self,
        ctx: &Context<'_>,
        password: String,
        code: String,
    ) -> Result<TotpDisablePayload> {
        let totp = &accounts(ctx)?.totp;
        let result = totp
            .disable(
                caller(ctx),
                caller_session(ctx),
                password,
                &code,
                client_ip(ctx),
            )
            .await;
        Ok(TotpDisablePayload::from_result(result))
    }
}
