//! Password recovery: `sendPasswordResetEmail`, `passwordReset`, and `passwordSet` for
//! invited accounts. Every answer is the same for known and unknown addresses.

use std::net::IpAddr;
use std::sync::Arc;

use super::core::{token_failure, Core};
use super::email_token::{Purpose, TokenError};
use super::error::{Code, Failure};
use super::model::{fold, User};
use super::Links;
use crate::email::EmailKind;

pub struct Recovery {
    core: Arc<Core>,
}

impl Recovery {
    pub(super) fn new(core: Arc<Core>) -> Recovery {
        Recovery { core }
    }

    /// Sends a reset link to a verified account, the activation email to an unverified one,
    /// nothing for unknown addresses, and answers the same at once in every case.
    pub async fn send_password_reset(
        &self,
        email: &str,
        ip: Option<IpAddr>,
        links: Arc<dyn Links>,
    ) -> Result<(), Failure> {
        let Some(user) = self.core.account_to_email(email, ip).await? else {
            return Ok(());
        };
        let core = self.core.clone();
        tokio::spawn(async move {
            let links = links.as_ref();
            let _ = if user.verified {
                let ttl = core.settings.reset_ttl;
                let token = core.email_token(Purpose::PasswordReset, &user, &user.email, ttl);
                let link = links.password_reset(&user, &token);
                core.send(
                    EmailKind::PasswordReset,
                    &user,
                    &user.email,
                    link,
                    ttl,
                    links,
                )
                .await
            } else {
                core.send_activation(&user, links).await
            };
        });
        Ok(())
    }

    /// Which kind of password link a token belongs to, for a page or an operation that takes
    /// both at one address: `PasswordSet` (an invitation) when it was signed for that, expired
    /// or not, else `PasswordReset` (whatever it is then fails as a reset token would).
    pub fn password_purpose(&self, token: &str) -> Purpose {
        match self.core.email_tokens.verify(token, Purpose::PasswordSet) {
            Ok(_) | Err(TokenError::Expired) => Purpose::PasswordSet,
            Err(TokenError::Invalid) => Purpose::PasswordReset,
        }
    }

    /// The id of the account an email token was signed for (`purpose`), for a link that also
    /// names its account beside the token: the caller checks the two agree. Nothing else
    /// about the token (what it binds to) is checked here.
    pub fn token_account(&self, token: &str, purpose: Purpose) -> Result<String, Failure> {
        let claims = self
            .core
            .email_tokens
            .verify(token, purpose)
            .map_err(token_failure)?;
        Ok(claims.user_id)
    }

    /// The account a reset or set-password token is for, if the token is still good.
    pub async fn password_token_user(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<User, Failure> {
        let claims = self
            .core
            .email_tokens
            .verify(token, purpose)
            .map_err(token_failure)?;
        match self.core.users.get(&claims.user_id).await? {
            // The stamp changes with the password: a used or outdated token dies.
            Some(user)
                if user.is_active
                    && user.security_stamp == claims.stamp
                    && fold(&user.email) == fold(&claims.email) =>
            {
                Ok(user)
            }
            _ => Err(token_failure(TokenError::Invalid)),
        }
    }

    /// `passwordReset` (purpose `PasswordReset`) and `passwordSet` (purpose `PasswordSet`).
    /// The account ends verified (the email was proven), with every session revoked.
    pub async fn reset_password(
        &self,
        token: &str,
        purpose: Purpose,
        new1: String,
        new2: String,
    ) -> Result<(), Failure> {
        let core = &self.core;
        if purpose == Purpose::PasswordSet {
            // A genuine set-password link for an account that has a password by now (set
            // through this very link, or otherwise) says so rather than just "invalid".
            let claims = core
                .email_tokens
                .verify(token, purpose)
                .map_err(token_failure)?;
            if let Some(user) = core.users.get(&claims.user_id).await? {
                if user.password_hash.is_some() {
                    return Err(Failure::general(
                        Code::PasswordAlreadySet,
                        "A password is already set for this account.",
                    ));
                }
            }
        }
        let mut user = self.password_token_user(token, purpose).await?;
        core.apply_new_password(&mut user, new1, new2).await?;
        user.verified = true;
        core.users.update(&user).await?;
        core.end_sessions(&user.id).await
    }
}
