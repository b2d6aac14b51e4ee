//! A second address per account: `sendSecondaryEmailActivation`, `verifySecondaryEmail`,
//! `swapEmails`, `removeSecondaryEmail`. Addresses stay unique across primary and secondary.

use std::net::IpAddr;
use std::sync::Arc;

use super::core::{token_failure, Core};
use super::email_token::{Purpose, TokenError};
use super::error::{Code, Failure, Field};
use super::model::{fold, User};
use super::storage::StoreError;
use super::{valid_email, Links};
use crate::email::EmailKind;

pub struct SecondaryEmail {
    core: Arc<Core>,
}

impl SecondaryEmail {
    pub(super) fn new(core: Arc<Core>) -> SecondaryEmail {
        SecondaryEmail { core }
    }

    /// Mails a confirmation link to a new secondary address of the (password-proving) caller.
    pub async fn send_activation(
        &self,
        user_id: Option<&str>,
        email: &str,
        password: String,
        ip: Option<IpAddr>,
        links: &dyn Links,
    ) -> Result<(), Failure> {
        let core = &self.core;
        let user = core.confirmed(user_id, password).await?;
        let email = email.trim();
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        core.limit("email", core.settings.rates.email, ip, Some(&user.email))
            .await?;
        if core.users.find_by_email(email).await?.is_some() {
            return Err(Failure::taken(Field::Email));
        }
        let ttl = core.settings.activation_ttl;
        let token = core.email_token(Purpose::SecondaryEmail, &user, email, ttl);
        let link = links.secondary_email(&user, &token);
        core.send(EmailKind::SecondaryEmail, &user, email, link, ttl, links)
            .await
    }

    pub async fn verify(&self, token: &str) -> Result<(), Failure> {
        let core = &self.core;
        let claims = core
            .email_tokens
            .verify(token, Purpose::SecondaryEmail)
            .map_err(token_failure)?;
        let mut user = match core.users.get(&claims.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(token_failure(TokenError::Invalid)),
        };
        if user.secondary_email.as_deref().map(fold) == Some(fold(&claims.email)) {
            return Err(Failure::general(
                Code::AlreadyVerified,
                "Email already verified.",
            ));
        }
        user.secondary_email = Some(claims.email);
        core.users.update(&user).await.map_err(|e| match e {
            StoreError::Unique(_) => Failure::taken(Field::Email),
            other => other.into(),
        })
    }

    pub async fn swap(&self, user_id: Option<&str>, password: String) -> Result<User, Failure> {
        let mut user = self.core.confirmed(user_id, password).await?;
        let Some(secondary) = user.secondary_email.take() else {
            return Err(Failure::general(
                Code::Invalid,
                "There is no secondary email to swap with.",
            ));
        };
        user.secondary_email = Some(std::mem::replace(&mut user.email, secondary));
        self.core.users.update(&user).await?;
        Ok(user)
    }

    pub async fn remove(&self, user_id: Option<&str>, password: String) -> Result<User, Failure> {
        let mut user = self.core.confirmed(user_id, password).await?;
        if user.secondary_email.take().is_none() {
            return Err(Failure::general(
                Code::Invalid,
                "There is no secondary email.",
            ));
        }
        self.core.users.update(&user).await?;
        Ok(user)
    }
}
