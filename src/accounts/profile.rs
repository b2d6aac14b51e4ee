//! The caller's own account: `me`, `updateAccount`, `passwordChange`, `archiveAccount`,
//! `deleteAccount`.

use std::sync::Arc;

use std::net::IpAddr;

use super::core::Core;
use super::email_token::Purpose;
use super::error::{Code, Failure, Field};
use super::model::{fold, User};
use super::storage::StoreError;
use super::{valid_email, valid_username, ClaimsFor, DeleteMode, Links, TokenPair};
use crate::email::EmailKind;

#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

pub struct Profile {
    core: Arc<Core>,
    claims: ClaimsFor,
}

impl Profile {
    pub(super) fn new(core: Arc<Core>, claims: ClaimsFor) -> Profile {
        Profile { core, claims }
    }

    /// The caller's account, or `None` when not logged in (or gone).
    pub async fn me(&self, user_id: Option<&str>) -> Result<Option<User>, Failure> {
        match self.core.active(user_id).await {
            Ok(user) => Ok(Some(user)),
            Err(f) if f.is(Code::Unauthenticated) => Ok(None),
            Err(f) => Err(f),
        }
    }

    pub async fn update(
        &self,
        user_id: Option<&str>,
        update: ProfileUpdate,
    ) -> Result<User, Failure> {
        let mut user = self.core.verified(user_id).await?;
        if let Some(first) = update.first_name {
            user.first_name = first.trim().to_string();
        }
        if let Some(last) = update.last_name {
            user.last_name = last.trim().to_string();
        }
        if let Some(name) = update.username {
            let name = name.trim().to_string();
            if !valid_username(&name) {
                return Err(Failure::field(
                    Field::Username,
                    Code::Invalid,
                    "Enter a valid username: up to 150 letters, digits and @/./+/-/_.",
                ));
            }
            user.username = Some(name);
        }
        self.core.users.update(&user).await?;
        Ok(user)
    }

    /// Replaces the caller's primary email at once: the new address is unverified until the
    /// link mailed to it is followed (tokens issued from now on say `verified: false`), and
    /// the old address gets a notice. A mail that cannot be sent to the new address changes
    /// nothing. Asking for the address the account has already is a no-op.
    pub async fn change_email(
        &self,
        user_id: Option<&str>,
        email: &str,
        ip: Option<IpAddr>,
        links: &dyn Links,
    ) -> Result<User, Failure> {
        let core = &self.core;
        let before = core.active(user_id).await?;
        let email = email.trim();
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        if fold(email) == fold(&before.email) {
            return Ok(before);
        }
        core.limit("email", core.settings.rates.email, ip, Some(&before.email))
            .await?;
        let mut user = before.clone();
        match core.users.find_by_email(email).await? {
            // The account's own secondary address moves up; it is proven again like any other.
            Some(owner) if owner.id == user.id => user.secondary_email = None,
            Some(_) => return Err(Failure::taken(Field::Email)),
            None => {}
        }
        user.email = email.to_string();
        user.verified = false;
        core.users.update(&user).await.map_err(|e| match e {
            StoreError::Unique(_) => Failure::taken(Field::Email),
            other => other.into(),
        })?;
        let ttl = core.settings.activation_ttl;
        let token = core.email_token(Purpose::Activation, &user, &user.email, ttl);
        let link = links.activation(&user, &token);
        let sent = core
            .send(EmailKind::EmailChange, &user, &user.email, link, ttl, links)
            .await;
        if let Err(failure) = sent {
            if let Err(e) = core.users.update(&before).await {
                tracing::error!(error = %e, "could not roll back an email change");
            }
            return Err(failure);
        }
        // The notice is best effort: the change is made and proven through the new address.
        let _ = core
            .send(
                EmailKind::EmailChanged,
                &before,
                &before.email,
                links.site().to_string(),
                ttl,
                links,
            )
            .await;
        Ok(user)
    }

    /// Changes the password (the old one must match), revokes every session, and returns a
    /// fresh pair for this one.
    pub async fn change_password(
        &self,
        user_id: Option<&str>,
        old: String,
        new1: String,
        new2: String,
    ) -> Result<TokenPair, Failure> {
        let core = &self.core;
        let mut user = core.verified(user_id).await?;
        if !core.hasher.verify(user.password_hash.clone(), old).await? {
            return Err(Failure::invalid_password());
        }
        core.apply_new_password(&mut user, new1, new2).await?;
        core.users.update(&user).await?;
        core.end_sessions(&user.id).await?;
        core.pair(&user, None, Vec::new(), self.claims).await
    }

    /// Archives the account (the next login unarchives it); every session ends.
    pub async fn archive(&self, user_id: Option<&str>, password: String) -> Result<(), Failure> {
        let mut user = self.core.confirmed(user_id, password).await?;
        user.archived = true;
        self.core.users.update(&user).await?;
        self.core.end_sessions(&user.id).await
    }

    /// Deletes the account as `mode` says; sessions and API keys end with it.
    pub async fn delete(
        &self,
        user_id: Option<&str>,
        password: String,
        mode: DeleteMode,
    ) -> Result<(), Failure> {
        let core = &self.core;
        let mut user = core.confirmed(user_id, password).await?;
        core.end_sessions(&user.id).await?;
        core.api_keys.delete_keys_of(&user.id).await?;
        core.key_cache.forget_user(&user.id);
        match mode {
            DeleteMode::Hard => core.users.delete(&user.id).await?,
            DeleteMode::Deactivate => {
                user.is_active = false;
                core.users.update(&user).await?;
            }
        }
        Ok(())
    }
}
