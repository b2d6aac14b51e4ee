//! The rest of an account's life: password reset and set, archive and delete, the secondary
//! email, API keys, and the staff view of users.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::model::{fold, ApiKey, User};
use super::storage::StoreError;
use super::{token_failure, valid_email, Accounts, DeleteMode, Failure, Purpose};
use crate::email::EmailKind;
use crate::jwt::{unix_now, Subject};

/// Filters of the staff `users` query.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub email: Option<String>,
    pub username: Option<String>,
    pub verified: Option<bool>,
    pub archived: Option<bool>,
    pub is_staff: Option<bool>,
    /// Case-insensitive substring of email, username or name.
    pub search: Option<String>,
}

impl UserFilter {
    fn keeps(&self, user: &User) -> bool {
        let eq = |a: &Option<String>, b: Option<&str>| {
            a.as_deref()
                .is_none_or(|a| b.is_some_and(|b| fold(a) == fold(b)))
        };
        let search = self.search.as_deref().map(fold).filter(|s| !s.is_empty());
        eq(&self.email, Some(&user.email))
            && eq(&self.username, user.username.as_deref())
            && self.verified.is_none_or(|v| v == user.verified)
            && self.archived.is_none_or(|v| v == user.archived)
            && self.is_staff.is_none_or(|v| v == user.is_staff)
            && search.is_none_or(|needle| {
                [
                    Some(user.email.as_str()),
                    user.username.as_deref(),
                    Some(user.first_name.as_str()),
                    Some(user.last_name.as_str()),
                ]
                .into_iter()
                .flatten()
                .any(|field| fold(field).contains(&needle))
            })
    }
}

/// Recently resolved API keys: hash → (owner as a token subject, when looked up, last recorded
/// use). Bounded; entries live a minute so role or status changes reach the gate soon, and a
/// revoke in this process removes its entry at once.
#[derive(Default)]
pub struct ApiKeyCache {
    entries: Mutex<HashMap<String, CachedKey>>,
}

#[derive(Clone)]
struct CachedKey {
    subject: Subject,
    fetched: i64,
    touched: i64,
}

const KEY_CACHE_TTL: i64 = 60;
const KEY_CACHE_MAX: usize = 10_000;
/// `lastUsedAt` is written at most this often per key.
const TOUCH_EVERY: i64 = 60;
pub const API_KEY_PREFIX: &str = "agk_";

impl ApiKeyCache {
    fn get(&self, hash: &str, now: i64) -> Option<CachedKey> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|e| now - e.fetched < KEY_CACHE_TTL)
            .cloned()
    }

    fn put(&self, hash: &str, entry: CachedKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= KEY_CACHE_MAX {
            entries.clear();
        }
        entries.insert(hash.to_string(), entry);
    }

    fn forget(&self, hash: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
    }

    fn forget_user(&self, user_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.subject.user_id != user_id);
    }
}

impl Accounts {
    fn reset_link(&self, user: &User, purpose: Purpose, page: &str, ttl: Duration) -> String {
        let token =
            self.email_tokens
                .issue(purpose, &user.id, &user.email, &user.security_stamp, ttl);
        format!("{}/password/{page}?token={token}", self.settings.link_base)
    }

    /// Sends a reset link to a verified account, the activation email to an unverified one,
    /// nothing for unknown addresses, and answers the same at once in every case.
    pub async fn send_password_reset(
        self: &Arc<Self>,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let Some(user) = self.account_to_email(email, ip).await? else {
            return Ok(());
        };
        let this = self.clone();
        tokio::spawn(async move {
            let ttl = this.settings.reset_ttl;
            let _ = if user.verified {
                let link = this.reset_link(&user, Purpose::PasswordReset, "reset", ttl);
                this.send(EmailKind::PasswordReset, &user, &user.email, link, ttl)
                    .await
            } else {
                let link = this.activation_link(&user);
                let ttl = this.settings.activation_ttl;
                this.send(EmailKind::Activation, &user, &user.email, link, ttl)
                    .await
            };
        });
        Ok(())
    }

    /// The account a reset or set-password token is for, if the token is still good.
    pub async fn password_token_user(
        &self,
        token: &str,
        purpose: Purpose,
    ) -> Result<User, Failure> {
        let claims = self
            .email_tokens
            .verify(token, purpose)
            .map_err(token_failure)?;
        match self.store.get(&claims.user_id).await? {
            // The stamp changes with the password: a used or outdated token dies.
            Some(user)
                if user.is_active
                    && user.security_stamp == claims.stamp
                    && fold(&user.email) == fold(&claims.email) =>
            {
                Ok(user)
            }
            _ => Err(token_failure(super::TokenError::Invalid)),
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
        if purpose == Purpose::PasswordSet {
            // A genuine set-password link for an account that has a password by now (set
            // through this very link, or otherwise) says so rather than just "invalid".
            let claims = self
                .email_tokens
                .verify(token, purpose)
                .map_err(token_failure)?;
            if let Some(user) = self.store.get(&claims.user_id).await? {
                if user.password_hash.is_some() {
                    return Err(Failure::general(
                        "password_already_set",
                        "A password is already set for this account.",
                    ));
                }
            }
        }
        let mut user = self.password_token_user(token, purpose).await?;
        self.apply_new_password(&mut user, new1, new2).await?;
        user.verified = true;
        self.store.update(&user).await?;
        self.sessions
            .revoke_user(&user.id)
            .await
            .map_err(Self::session_failure)
    }

    /// Creates an account without a password and emails it a set-password link.
    pub async fn invite(&self, email: &str) -> Result<User, Failure> {
        let user = self
            .create_account(super::NewAccount {
                email: email.to_string(),
                ..Default::default()
            })
            .await?;
        let ttl = self.settings.activation_ttl;
        let link = self.reset_link(&user, Purpose::PasswordSet, "set", ttl);
        if let Err(failure) = self
            .send(EmailKind::PasswordSet, &user, &user.email, link, ttl)
            .await
        {
            let _ = self.store.delete(&user.id).await;
            return Err(failure);
        }
        Ok(user)
    }

    /// A verified caller who also proves the password.
    async fn confirmed(&self, user_id: Option<&str>, password: String) -> Result<User, Failure> {
        let user = self.verified(user_id).await?;
        if !self
            .hasher
            .verify(user.password_hash.clone(), password)
            .await?
        {
            return Err(Failure::field(
                "password",
                "invalid_password",
                "Invalid password.",
            ));
        }
        Ok(user)
    }

    pub async fn archive(&self, user_id: Option<&str>, password: String) -> Result<(), Failure> {
        let mut user = self.confirmed(user_id, password).await?;
        user.archived = true;
        self.store.update(&user).await?;
        self.sessions
            .revoke_user(&user.id)
            .await
            .map_err(Self::session_failure)
    }

    pub async fn delete(
        &self,
        user_id: Option<&str>,
        password: String,
        mode: DeleteMode,
    ) -> Result<(), Failure> {
        let mut user = self.confirmed(user_id, password).await?;
        self.sessions
            .revoke_user(&user.id)
            .await
            .map_err(Self::session_failure)?;
        self.api_keys.delete_keys_of(&user.id).await?;
        self.key_cache.forget_user(&user.id);
        match mode {
            DeleteMode::Hard => self.store.delete(&user.id).await?,
            DeleteMode::Deactivate => {
                user.is_active = false;
                self.store.update(&user).await?;
            }
        }
        Ok(())
    }

    pub async fn send_secondary_email_activation(
        &self,
        user_id: Option<&str>,
        email: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let user = self.confirmed(user_id, password).await?;
        let email = email.trim();
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        self.limit("email", self.settings.rates.email, ip, Some(&user.email))
            .await?;
        if self.store.find_by_email(email).await?.is_some() {
            return Err(Failure::field(
                "email",
                "unique",
                "A user with that email already exists.",
            ));
        }
        let ttl = self.settings.activation_ttl;
        let token = self.email_tokens.issue(
            Purpose::SecondaryEmail,
            &user.id,
            email,
            &user.security_stamp,
            ttl,
        );
        let link = format!("{}/verify-email/{token}", self.settings.link_base);
        self.send(EmailKind::SecondaryEmail, &user, email, link, ttl)
            .await
    }

    pub async fn verify_secondary_email(&self, token: &str) -> Result<(), Failure> {
        let claims = self
            .email_tokens
            .verify(token, Purpose::SecondaryEmail)
            .map_err(token_failure)?;
        let mut user = match self.store.get(&claims.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(token_failure(super::TokenError::Invalid)),
        };
        if user.secondary_email.as_deref().map(fold) == Some(fold(&claims.email)) {
            return Err(Failure::general(
                "already_verified",
                "Email already verified.",
            ));
        }
        user.secondary_email = Some(claims.email);
        self.store.update(&user).await.map_err(|e| match e {
            StoreError::Unique(_) => {
                Failure::field("email", "unique", "A user with that email already exists.")
            }
            other => other.into(),
        })
    }

    pub async fn swap_emails(
        &self,
        user_id: Option<&str>,
        password: String,
    ) -> Result<User, Failure> {
        let mut user = self.confirmed(user_id, password).await?;
        let Some(secondary) = user.secondary_email.take() else {
            return Err(Failure::general(
                "invalid",
                "There is no secondary email to swap with.",
            ));
        };
        user.secondary_email = Some(std::mem::replace(&mut user.email, secondary));
        self.store.update(&user).await?;
        Ok(user)
    }

    pub async fn remove_secondary_email(
        &self,
        user_id: Option<&str>,
        password: String,
    ) -> Result<User, Failure> {
        let mut user = self.confirmed(user_id, password).await?;
        if user.secondary_email.take().is_none() {
            return Err(Failure::general("invalid", "There is no secondary email."));
        }
        self.store.update(&user).await?;
        Ok(user)
    }

    /// Creates an API key for the caller; the key itself is returned once, here.
    pub async fn create_api_key(
        &self,
        user_id: Option<&str>,
        name: &str,
    ) -> Result<(String, ApiKey), Failure> {
        let user = self.verified(user_id).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Failure::field(
                "name",
                "invalid",
                "Give the key a name of 1 to 100 characters.",
            ));
        }
        let (secret, _) = super::secret::new_secret();
        let key = format!("{API_KEY_PREFIX}{secret}");
        let record = ApiKey {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: user.id,
            name: name.to_string(),
            prefix: key[..API_KEY_PREFIX.len() + 6].to_string(),
            hash: super::secret::hash(&key),
            created_at: unix_now(),
            last_used_at: None,
        };
        self.api_keys.insert_key(&record).await?;
        Ok((key, record))
    }

    pub async fn api_keys_of(&self, user_id: Option<&str>) -> Result<Vec<ApiKey>, Failure> {
        let user = self.active(user_id).await?;
        Ok(self.api_keys.keys_of(&user.id).await?)
    }

    pub async fn revoke_api_key(&self, user_id: Option<&str>, id: &str) -> Result<(), Failure> {
        let user = self.active(user_id).await?;
        match self.api_keys.delete_key(&user.id, id).await {
            Ok(key) => {
                self.key_cache.forget(&key.hash);
                Ok(())
            }
            Err(StoreError::NotFound) => Err(Failure::field("id", "invalid", "No such API key.")),
            Err(e) => Err(e.into()),
        }
    }

    /// The owner of an API key, for the gate. Served from a short-lived cache; `None` for
    /// unknown or revoked keys and for owners who are deactivated.
    pub async fn resolve_api_key(&self, key: &str) -> Result<Option<Subject>, Failure> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let hash = super::secret::hash(key);
        let now = unix_now();
        let mut entry = match self.key_cache.get(&hash, now) {
            Some(entry) => entry,
            None => {
                let Some(record) = self.api_keys.key_by_hash(&hash).await? else {
                    return Ok(None);
                };
                let user = match self.store.get(&record.user_id).await? {
                    Some(user) if user.is_active => user,
                    _ => return Ok(None),
                };
                let entry = CachedKey {
                    subject: Accounts::subject(&user),
                    fetched: now,
                    touched: record.last_used_at.unwrap_or(0),
                };
                self.key_cache.put(&hash, entry.clone());
                entry
            }
        };
        if now - entry.touched >= TOUCH_EVERY {
            entry.touched = now;
            self.key_cache.put(&hash, entry.clone());
            let _ = self.api_keys.touch_key(&hash, now).await;
        }
        Ok(Some(entry.subject))
    }

    /// Staff (or the user themself) may read a user.
    pub async fn user_for(&self, caller: Option<&str>, id: &str) -> Result<Option<User>, Failure> {
        let me = self.active(caller).await?;
        if !me.is_staff && me.id != id {
            return Err(Failure::general("forbidden", "Staff only."));
        }
        Ok(self.store.get(id).await?)
    }

    /// Staff only: users matching `filter`, in the order they joined.
    pub async fn list_users(
        &self,
        caller: Option<&str>,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Failure> {
        let me = self.active(caller).await?;
        if !me.is_staff {
            return Err(Failure::general("forbidden", "Staff only."));
        }
        let mut users: Vec<User> = self
            .store
            .all()
            .await?
            .into_iter()
            .filter(|u| filter.keeps(u))
            .collect();
        // Ids are UUIDv7: time-ordered to the millisecond within the same second.
        users.sort_by(|a, b| (a.date_joined, &a.id).cmp(&(b.date_joined, &b.id)));
        Ok(users)
    }
}
