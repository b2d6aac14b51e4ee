//! The account logic: registration, verification, login, profile. It knows nothing of GraphQL,
//! HTTP or Pingora: callers pass plain values and get a value or a [`Failure`] whose codes are
//! the contract's error codes.

pub mod email_token;
pub mod errors;
pub mod lifecycle;
pub mod model;
pub mod password;
pub mod policy;
pub mod secret;
pub mod storage;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Rate;
use crate::email::{EmailKind, Mailer};
use crate::jwt::{unix_now, Claims, Subject, TokenService};
use model::fold;
pub use model::{ApiKey, User};
use storage::{
    ApiKeyStore, Consumed, RateLimiter, RefreshRecord, RefreshStore, UserStore, Verdict,
};

pub use crate::config::DeleteMode;
pub use email_token::{EmailTokens, Purpose, TokenError};
pub use errors::{Failure, FieldError};
pub use lifecycle::{UserFilter, API_KEY_PREFIX};
pub use password::{Argon2Settings, Hasher};
pub use policy::PasswordPolicy;

/// The account settings, from `[accounts]` and friends.
#[derive(Debug, Clone)]
pub struct Settings {
    pub login_by_email: bool,
    pub login_by_username: bool,
    pub allow_unverified_login: bool,
    pub email_available: bool,
    pub activation_ttl: Duration,
    pub reset_ttl: Duration,
    pub refresh_ttl: Duration,
    pub delete_mode: DeleteMode,
    /// Base of links in emails, without a trailing slash.
    pub link_base: String,
    pub rates: Rates,
}

/// The rate limits: attempts per window, per client IP and per account or email.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub login: Rate,
    pub register: Rate,
    pub email: Rate,
}

pub struct Accounts {
    store: Arc<dyn UserStore>,
    api_keys: Arc<dyn ApiKeyStore>,
    key_cache: lifecycle::ApiKeyCache,
    sessions: Arc<dyn RefreshStore>,
    limiter: Arc<dyn RateLimiter>,
    hasher: Hasher,
    policy: PasswordPolicy,
    mailer: Arc<Mailer>,
    email_tokens: EmailTokens,
    tokens: Arc<TokenService>,
    settings: Settings,
}

/// The parts an account service is made of.
pub struct Parts {
    pub store: Arc<dyn UserStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub sessions: Arc<dyn RefreshStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub hasher: Hasher,
    pub policy: PasswordPolicy,
    pub mailer: Arc<Mailer>,
    pub email_tokens: EmailTokens,
    pub tokens: Arc<TokenService>,
    pub settings: Settings,
}

/// An access token with its refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub token: String,
    pub claims: Claims,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
}

/// What `register` takes.
#[derive(Debug, Clone, Default)]
pub struct Registration {
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

/// What `login` takes: one identifier and the password.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
}

pub struct LoggedIn {
    pub user: User,
    pub tokens: TokenPair,
    pub unarchiving: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
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

/// How an activation attempt ended, for GraphQL and the HTML page alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Verified,
    AlreadyVerified,
}

pub fn valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        && !local.contains('@')
}

/// Django's username rule: 1–150 of letters, digits and `@ . + - _`.
pub fn valid_username(username: &str) -> bool {
    (1..=150).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
}

fn new_stamp() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn human(ttl: Duration) -> String {
    crate::config::Duration::secs(ttl.as_secs()).to_string()
}

impl Accounts {
    pub fn new(parts: Parts) -> Accounts {
        Accounts {
            store: parts.store,
            api_keys: parts.api_keys,
            key_cache: lifecycle::ApiKeyCache::default(),
            sessions: parts.sessions,
            limiter: parts.limiter,
            hasher: parts.hasher,
            policy: parts.policy,
            mailer: parts.mailer,
            email_tokens: parts.email_tokens,
            tokens: parts.tokens,
            settings: parts.settings,
        }
    }

    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    pub fn sessions(&self) -> &Arc<dyn RefreshStore> {
        &self.sessions
    }

    /// Counts an attempt against the client's IP and the account it names; refuses it with
    /// `rate_limited` when either is over `rate`. A store that cannot count refuses too.
    async fn limit(
        &self,
        bucket: &str,
        rate: Rate,
        ip: Option<IpAddr>,
        subject: Option<&str>,
    ) -> Result<(), Failure> {
        let now = unix_now();
        let mut keys = Vec::with_capacity(2);
        if let Some(ip) = ip {
            keys.push(format!("{bucket}:ip:{ip}"));
        }
        if let Some(subject) = subject.filter(|s| !s.is_empty()) {
            keys.push(format!("{bucket}:id:{}", fold(subject)));
        }
        let mut wait = 0;
        for key in keys {
            match self.limiter.hit(&key, rate, now).await {
                Ok(Verdict::Allowed) => {}
                Ok(Verdict::Limited { retry_after }) => wait = wait.max(retry_after),
                Err(e) => {
                    tracing::error!(error = %e, "rate limit store failed");
                    return Err(Failure::unavailable());
                }
            }
        }
        if wait > 0 {
            return Err(Failure::general(
                "rate_limited",
                format!("Too many attempts; try again in {wait} seconds."),
            ));
        }
        Ok(())
    }

    /// For requests that email an account (resend, reset): checks the address, counts the
    /// attempt, and finds the active account whose primary email it is, if any.
    async fn account_to_email(
        &self,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<Option<User>, Failure> {
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        self.limit("email", self.settings.rates.email, ip, Some(email))
            .await?;
        Ok(self
            .store
            .find_by_email(email)
            .await?
            .filter(|user| user.is_active && fold(&user.email) == fold(email)))
    }

    /// Checks and stores a new password (policy errors on `newPassword2`); a new security
    /// stamp kills every reset link made before.
    async fn apply_new_password(
        &self,
        user: &mut User,
        new1: String,
        new2: String,
    ) -> Result<(), Failure> {
        if new1 != new2 {
            return Err(Failure::field(
                "newPassword2",
                "password_mismatch",
                "The two password fields didn’t match.",
            ));
        }
        let failure = self.check_password("newPassword2", &new2, user);
        if !failure.is_empty() {
            return Err(failure);
        }
        user.password_hash = Some(self.hasher.hash(new1).await?);
        user.security_stamp = new_stamp();
        Ok(())
    }

    /// A new account record: active, unverified, no password.
    fn new_user(email: String, username: Option<String>) -> User {
        User {
            id: uuid::Uuid::now_v7().simple().to_string(),
            email,
            username,
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_active: true,
            is_staff: false,
            verified: false,
            archived: false,
            secondary_email: None,
            roles: Vec::new(),
            date_joined: unix_now(),
            last_login: None,
            security_stamp: new_stamp(),
        }
    }

    /// A new access token and refresh token; the refresh token joins `family` or starts one.
    async fn pair(&self, user: &User, family: Option<String>) -> Result<TokenPair, Failure> {
        let (token, claims) = self.issue(user)?;
        let (refresh_token, hash) = secret::new_secret();
        let refresh_expires_at = unix_now() + self.settings.refresh_ttl.as_secs() as i64;
        let record = RefreshRecord {
            user_id: user.id.clone(),
            family: family.unwrap_or_else(secret::new_family),
            expires_at: refresh_expires_at,
        };
        self.sessions.insert(&hash, &record).await.map_err(|e| {
            tracing::error!(error = %e, "storing a refresh token failed");
            Failure::unavailable()
        })?;
        Ok(TokenPair {
            token,
            claims,
            refresh_token,
            refresh_expires_at,
        })
    }

    fn session_failure(e: storage::SessionError) -> Failure {
        tracing::error!(error = %e, "session store failed");
        Failure::unavailable()
    }

    /// Exchanges a refresh token for a new pair (rotation). A token presented twice revokes its
    /// whole family.
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<(User, TokenPair), Failure> {
        let Some(token) = refresh_token.filter(|t| !t.is_empty() && t.len() <= 256) else {
            return Err(Failure::general("invalid_token", "Invalid refresh token."));
        };
        let consumed = self
            .sessions
            .consume(&secret::hash(token), unix_now())
            .await
            .map_err(Self::session_failure)?;
        let record = match consumed {
            Consumed::Rotated(record) => record,
            Consumed::Reused(record) => {
                tracing::warn!(user = %record.user_id, "refresh token reused; its family is revoked");
                return Err(Failure::general("invalid_token", "Invalid refresh token."));
            }
            Consumed::Invalid => {
                return Err(Failure::general("invalid_token", "Invalid refresh token."))
            }
        };
        let user = match self.store.get(&record.user_id).await? {
            Some(user) if user.is_active => user,
            _ => {
                let _ = self.sessions.revoke_user(&record.user_id).await;
                return Err(Failure::general("invalid_token", "Invalid refresh token."));
            }
        };
        let pair = self.pair(&user, Some(record.family)).await?;
        Ok((user, pair))
    }

    /// Revokes the session (token family) a refresh token belongs to.
    pub async fn revoke(&self, refresh_token: Option<&str>) -> Result<(), Failure> {
        let Some(token) = refresh_token.filter(|t| !t.is_empty() && t.len() <= 256) else {
            return Err(Failure::general("invalid_token", "Invalid refresh token."));
        };
        match self
            .sessions
            .revoke(&secret::hash(token))
            .await
            .map_err(Self::session_failure)?
        {
            Some(_) => Ok(()),
            None => Err(Failure::general("invalid_token", "Invalid refresh token.")),
        }
    }

    /// Logs the caller out everywhere.
    pub async fn revoke_all(&self, user_id: Option<&str>) -> Result<(), Failure> {
        let user = self.active(user_id).await?;
        self.sessions
            .revoke_user(&user.id)
            .await
            .map_err(Self::session_failure)
    }

    /// Checks an access token as the gate would and returns its claims.
    pub fn verify_token(&self, token: &str) -> Result<Claims, Failure> {
        self.tokens
            .verify(token)
            .map(|claims| Claims::clone(&claims))
            .map_err(|rejection| match rejection {
                crate::jwt::Rejection::Expired => {
                    Failure::general("expired_token", "Token expired.")
                }
                other => Failure::general("invalid_token", other.to_string()),
            })
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
        let mut user = self.verified(user_id).await?;
        if !self.hasher.verify(user.password_hash.clone(), old).await? {
            return Err(Failure::field(
                "oldPassword",
                "invalid_password",
                "Invalid password.",
            ));
        }
        self.apply_new_password(&mut user, new1, new2).await?;
        self.store.update(&user).await?;
        self.sessions
            .revoke_user(&user.id)
            .await
            .map_err(Self::session_failure)?;
        self.pair(&user, None).await
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn subject(user: &User) -> Subject {
        Subject {
            user_id: user.id.clone(),
            email: user.email.clone(),
            username: user.username.clone(),
            verified: user.verified,
            staff: user.is_staff,
            roles: user.roles.clone(),
        }
    }

    fn issue(&self, user: &User) -> Result<(String, Claims), Failure> {
        self.tokens.issue(&Self::subject(user)).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            Failure::unavailable()
        })
    }

    /// The caller's account, when it exists and is active.
    async fn active(&self, user_id: Option<&str>) -> Result<User, Failure> {
        let id = user_id.ok_or_else(Failure::unauthenticated)?;
        match self.store.get(id).await? {
            Some(user) if user.is_active => Ok(user),
            _ => Err(Failure::unauthenticated()),
        }
    }

    /// The caller's account, which must also be verified.
    pub async fn verified(&self, user_id: Option<&str>) -> Result<User, Failure> {
        let user = self.active(user_id).await?;
        if user.verified {
            Ok(user)
        } else {
            Err(Failure::not_verified())
        }
    }

    fn check_password(&self, field: &str, password: &str, user: &User) -> Failure {
        let attributes = [
            ("email", Some(user.email.as_str())),
            ("username", user.username.as_deref()),
            ("first name", Some(user.first_name.as_str())),
            ("last name", Some(user.last_name.as_str())),
        ];
        self.policy.check(field, password, &attributes)
    }

    async fn send(
        &self,
        kind: EmailKind,
        user: &User,
        to: &str,
        link: String,
        ttl: Duration,
    ) -> Result<(), Failure> {
        let name = if user.first_name.is_empty() {
            user.username.clone().unwrap_or_default()
        } else {
            user.first_name.clone()
        };
        let context = serde_json::json!({
            "link": link, "email": to, "name": name,
            "site": self.settings.link_base, "expires": human(ttl),
        });
        self.mailer.send(kind, to, context).await.map_err(|e| {
            tracing::warn!(kind = kind.name(), error = %e, "email not sent");
            Failure::email_fail()
        })
    }

    fn activation_link(&self, user: &User) -> String {
        let token = self.email_tokens.issue(
            Purpose::Activation,
            &user.id,
            &user.email,
            "",
            self.settings.activation_ttl,
        );
        format!("{}/activate/{token}", self.settings.link_base)
    }

    pub async fn register(
        &self,
        input: Registration,
        ip: Option<IpAddr>,
    ) -> Result<Registered, Failure> {
        let email = input.email.trim().to_string();
        self.limit("register", self.settings.rates.register, ip, Some(&email))
            .await?;
        let username = clean(input.username);
        let mut failure = Failure::default();
        if !valid_email(&email) {
            failure.add("email", "invalid", "Enter a valid email address.");
        }
        if let Some(name) = &username {
            if !valid_username(name) {
                failure.add(
                    "username",
                    "invalid",
                    "Enter a valid username: up to 150 letters, digits and @/./+/-/_.",
                );
            }
        }
        if input.password1 != input.password2 {
            failure.add(
                "password2",
                "password_mismatch",
                "The two password fields didn’t match.",
            );
        }
        let mut user = Self::new_user(email, username);
        user.first_name = clean(input.first_name).unwrap_or_default();
        user.last_name = clean(input.last_name).unwrap_or_default();
        if failure.is_empty() {
            failure = self.check_password("password2", &input.password2, &user);
        }
        if !failure.is_empty() {
            return Err(failure);
        }
        user.password_hash = Some(self.hasher.hash(input.password1).await?);
        self.store.create(&user).await?;
        let link = self.activation_link(&user);
        if let Err(failure) = self
            .send(
                EmailKind::Activation,
                &user,
                &user.email,
                link,
                self.settings.activation_ttl,
            )
            .await
        {
            // No half-created account: the address is free again.
            if let Err(e) = self.store.delete(&user.id).await {
                tracing::error!(error = %e, "could not roll back a registration");
            }
            return Err(failure);
        }
        let tokens = if self.settings.allow_unverified_login {
            Some(self.pair(&user, None).await?)
        } else {
            None
        };
        Ok(Registered { user, tokens })
    }

    /// Verifies the account an activation token was made for.
    pub async fn verify_account(&self, token: &str) -> Result<Activation, Failure> {
        let claims = self
            .email_tokens
            .verify(token, Purpose::Activation)
            .map_err(token_failure)?;
        let mut user = match self.store.get(&claims.user_id).await? {
            Some(user) if fold(&user.email) == fold(&claims.email) => user,
            _ => return Err(token_failure(TokenError::Invalid)),
        };
        if user.verified {
            return Err(Failure::general(
                "already_verified",
                "Account already verified.",
            ));
        }
        user.verified = true;
        self.store.update(&user).await?;
        Ok(Activation::Verified)
    }

    /// Sends a new activation email to an unverified account. Answers the same for unknown and
    /// verified accounts, at once: the email goes out in the background.
    pub async fn resend_activation(
        self: &Arc<Self>,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let user = match self.account_to_email(email, ip).await? {
            Some(user) if !user.verified => user,
            _ => return Ok(()),
        };
        let this = self.clone();
        tokio::spawn(async move {
            let link = this.activation_link(&user);
            let _ = this
                .send(
                    EmailKind::Activation,
                    &user,
                    &user.email,
                    link,
                    this.settings.activation_ttl,
                )
                .await;
        });
        Ok(())
    }

    pub async fn login(
        &self,
        request: LoginRequest,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Failure> {
        let email = clean(request.email).filter(|_| self.settings.login_by_email);
        let username = clean(request.username).filter(|_| self.settings.login_by_username);
        let named = email.as_deref().or(username.as_deref());
        self.limit("login", self.settings.rates.login, ip, named)
            .await?;
        let found = match (&email, &username) {
            (Some(email), _) => self.store.find_by_email(email).await?,
            (None, Some(name)) => self.store.find_by_username(name).await?,
            (None, None) => None,
        };
        // Unknown accounts, and accounts without a password, cost one verification too.
        let hash = found.as_ref().and_then(|u| u.password_hash.clone());
        let ok = self
            .hasher
            .verify(hash.clone(), request.password.clone())
            .await?;
        let mut user = match found {
            Some(user) if ok && user.is_active => user,
            _ => return Err(Failure::invalid_credentials()),
        };
        if !user.verified && !self.settings.allow_unverified_login {
            return Err(Failure::not_verified());
        }
        let unarchiving = user.archived;
        user.archived = false;
        user.last_login = Some(unix_now());
        if hash.as_deref().is_some_and(|h| self.hasher.needs_rehash(h)) {
            user.password_hash = Some(self.hasher.hash(request.password).await?);
        }
        self.store.update(&user).await?;
        let tokens = self.pair(&user, None).await?;
        Ok(LoggedIn {
            user,
            tokens,
            unarchiving,
        })
    }

    /// The caller's account, or `None` when not logged in (or gone).
    pub async fn me(&self, user_id: Option<&str>) -> Result<Option<User>, Failure> {
        match self.active(user_id).await {
            Ok(user) => Ok(Some(user)),
            Err(f) if f.codes() == ["unauthenticated"] => Ok(None),
            Err(f) => Err(f),
        }
    }

    pub async fn update_profile(
        &self,
        user_id: Option<&str>,
        update: ProfileUpdate,
    ) -> Result<User, Failure> {
        let mut user = self.verified(user_id).await?;
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
                    "username",
                    "invalid",
                    "Enter a valid username: up to 150 letters, digits and @/./+/-/_.",
                ));
            }
            user.username = Some(name);
        }
        self.store.update(&user).await?;
        Ok(user)
    }

    /// Whether an email is free (for sign-up forms). A deliberate, switchable signal.
    pub async fn email_available(&self, email: &str, ip: Option<IpAddr>) -> Result<bool, Failure> {
        if !self.settings.email_available {
            return Err(Failure::general(
                "forbidden",
                "emailAvailable is switched off.",
            ));
        }
        self.limit("email_available", self.settings.rates.register, ip, None)
            .await?;
        if !valid_email(email) {
            return Err(Failure::invalid_email());
        }
        Ok(self.store.find_by_email(email).await?.is_none())
    }

    /// Creates an account as an operator would: no email is sent.
    pub async fn create_account(&self, input: NewAccount) -> Result<User, Failure> {
        let email = input.email.trim().to_string();
        if !valid_email(&email) {
            return Err(Failure::invalid_email());
        }
        let username = clean(input.username);
        if username.as_deref().is_some_and(|n| !valid_username(n)) {
            return Err(Failure::field(
                "username",
                "invalid",
                "Enter a valid username.",
            ));
        }
        let mut user = Self::new_user(email, username);
        user.is_staff = input.staff;
        user.verified = input.verified;
        user.roles = input.roles;
        if let Some(password) = input.password {
            let failure = self.check_password("password", &password, &user);
            if !failure.is_empty() {
                return Err(failure);
            }
            user.password_hash = Some(self.hasher.hash(password).await?);
        }
        self.store.create(&user).await?;
        Ok(user)
    }
}

fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::Invalid => Failure::general("invalid_token", "Invalid token."),
        TokenError::Expired => Failure::general("expired_token", "Expired token."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_username_shapes() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.de", "a@b@c.de", "<a@b.co>",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_username("ada.l+x@y-z_1"));
        assert!(!valid_username(""));
        assert!(!valid_username("with space"));
        assert!(!valid_username(&"x".repeat(151)));
    }
}
