//! Sign-up and activation: `register`, `verifyAccount`, `resendActivationEmail`,
//! `emailAvailable`, and accounts an operator makes (`authgate user create|invite`).

use std::net::IpAddr;
use std::sync::Arc;

use super::core::{clean, token_failure, Core};
use super::email_token::{Purpose, TokenError};
use super::error::{Code, Failure, Field};
use super::model::{fold, User};
use super::{valid_email, valid_username, ClaimsFor, Links, TokenPair};
use crate::email::EmailKind;

/// What `register` takes.
#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub username: Option<String>,
    pub password1: String,
    pub password2: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

pub struct Registered {
    pub user: User,
    /// Tokens, when unverified accounts may log in.
    pub tokens: Option<TokenPair>,
}

/// An operator-made account (`authgate user create`).
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub email: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub staff: bool,
    pub verified: bool,
    pub roles: Vec<String>,
}

/// How an activation attempt ended, for every adapter alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Verified,
    AlreadyVerified,
}

const BAD_USERNAME: &str = "Enter a valid username: up to 150 letters, digits and @/./+/-/_.";

pub struct Registration {
    core: Arc<Core>,
    claims: ClaimsFor,
}

impl Registration {
    pub(super) fn new(core: Arc<Core>, claims: ClaimsFor) -> Registration {
        Registration { core, claims }
    }

    /// Creates an account and sends its activation email; with unverified logins allowed,
    /// also a first session. A mail that cannot be sent leaves no account behind.
    pub async fn register(
        &self,
        input: SignUp,
        ip: Option<IpAddr>,
        links: &dyn Links,
    ) -> Result<Registered, Failure> {
        let core = &self.core;
        let email = input.email.trim().to_string();
        core.limit("register", core.settings.rates.register, ip, Some(&email))
            .await?;
        let username = clean(input.username);
        let mut failure = Failure::default();
        if !valid_email(&email) {
            failure.add(Field::Email, Code::Invalid, "Enter a valid email address.");
        }
        if username
            .as_deref()
            .is_some_and(|name| !valid_username(name))
        {
            failure.add(Field::Username, Code::Invalid, BAD_USERNAME);
        }
        if input.password1 != input.password2 {
            failure.add(
                Field::NewPassword,
                Code::PasswordMismatch,
                "The two password fields didn’t match.",
            );
        }
        let mut user = Core::new_user(email, username);
        user.first_name = clean(input.first_name).unwrap_or_default();
        user.last_name = clean(input.last_name).unwrap_or_default();
        if failure.is_empty() {
            failure = core.check_password(&input.password2, &user);
        }
        if !failure.is_empty() {
            return Err(failure);
        }
        user.password_hash = Some(core.hasher.hash(input.password1).await?);
        core.number(&mut user).await?;
        core.users.create(&user).await?;
        if let Err(failure) = core.send_activation(&user, links).await {
            // No half-created account: the address is free again.
            if let Err(e) = core.users.delete(&user.id).await {
                tracing::error!(error = %e, "could not roll back a registration");
            }
            return Err(failure);
        }
        let tokens = if core.settings.allow_unverified_login {
            Some(core.pair(&user, None, Vec::new(), self.claims).await?)
        } else {
            None
        };
        Ok(Registered { user, tokens })
    }

    /// Verifies the account an activation token was made for.
    pub async fn verify_account(&self, token: &str) -> Result<Activation, Failure> {
        let claims = self
            .core
            .email_tokens
            .verify(token, Purpose::Activation)
            .map_err(token_failure)?;
        let mut user = match self.core.users.get(&claims.user_id).await? {
            Some(user) if fold(&user.email) == fold(&claims.email) => user,
            _ => return Err(token_failure(TokenError::Invalid)),
        };
        if user.verified {
            return Err(Failure::general(
                Code::AlreadyVerified,
                "Account already verified.",
            ));
        }
        user.verified = true;
        self.core.users.update(&user).await?;
        Ok(Activation::Verified)
    }

    /// Sends a new activation email to an unverified account. Answers the same for unknown and
    /// verified accounts, at once: the email goes out in the background.
    pub async fn resend_activation(
        &self,
        email: &str,
        ip: Option<IpAddr>,
        links: Arc<dyn Links>,
    ) -> Result<(), Failure> {
        let user = match self.core.account_to_email(email, ip).await? {
            Some(user) if !user.verified => user,
            _ => return Ok(()),
        };
        let core = self.core.clone();
        tokio::spawn(async move {
            let _ = core.send_activation(&user, links.as_ref()).await;
        });
        Ok(())
    }

    /// Whether an email is free (for sign-up forms). A deliberate, switchable signal.
    pub async fn email_available(&self, email: &str, ip: Option<IpAddr>) -> Result<bool, Failure> {
        let core = &self.core;
        if !core.settings.email_available {
            return Err(Failure::forbidden("emailAvailable is switched off."));
        }
        core.limit("email_available", core.settings.rates.register, ip, None)
            .await?;
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        Ok(core.users.find_by_email(email).await?.is_none())
    }

    /// Creates an account as an operator would: no email is sent.
    pub async fn create_account(&self, input: NewAccount) -> Result<User, Failure> {
        let core = &self.core;
        let email = input.email.trim().to_string();
        if !valid_email(&email) {
            return Err(Failure::invalid_email());
        }
        let username = clean(input.username);
        if username.as_deref().is_some_and(|n| !valid_username(n)) {
            return Err(Failure::field(
                Field::Username,
                Code::Invalid,
                "Enter a valid username.",
            ));
        }
        let mut user = Core::new_user(email, username);
        user.is_staff = input.staff;
        user.verified = input.verified;
        user.roles = input.roles;
        if let Some(password) = input.password {
            let failure = core.check_password(&password, &user);
            if !failure.is_empty() {
                return Err(failure);
            }
            user.password_hash = Some(core.hasher.hash(password).await?);
        }
        core.number(&mut user).await?;
        core.users.create(&user).await?;
        Ok(user)
    }

    /// Creates an account without a password and emails it a set-password link.
    pub async fn invite(&self, email: &str, links: &dyn Links) -> Result<User, Failure> {
        let user = self
            .create_account(NewAccount {
                email: email.to_string(),
                ..Default::default()
            })
            .await?;
        let core = &self.core;
        let ttl = core.settings.activation_ttl;
        let token = core.email_token(Purpose::PasswordSet, &user, &user.email, ttl);
        let link = links.password_set(&user, &token);
        if let Err(failure) = core
            .send(EmailKind::PasswordSet, &user, &user.email, link, ttl, links)
            .await
        {
            let _ = core.users.delete(&user.id).await;
            return Err(failure);
        }
        Ok(user)
    }
}
