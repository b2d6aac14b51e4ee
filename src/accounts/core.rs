//! What every account service shares: the stores, the hasher and policy, the mailer and email
//! tokens, the token service, the settings, and the small steps several operations take
//! (counting an attempt, finding the caller, checking a new password, issuing a token pair).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::email_token::{EmailTokens, Purpose, TokenError};
use super::error::{Code, Failure, Field};
use super::model::{fold, User};
use super::password::Hasher;
use super::policy::PasswordPolicy;
use super::secret;
use super::storage::{ApiKeyStore, RateLimiter, RefreshRecord, RefreshStore, UserStore, Verdict};
use super::{ClaimsFor, Links, Settings, TokenPair};
use crate::config::Rate;
use crate::email::{EmailKind, Mailer};
use crate::jwt::{unix_now, Claims, Session, Subject, TokenService, AMR_PASSWORD};

pub(super) struct Core {
    pub users: Arc<dyn UserStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub sessions: Arc<dyn RefreshStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub hasher: Hasher,
    pub policy: PasswordPolicy,
    pub mailer: Arc<Mailer>,
    pub email_tokens: EmailTokens,
    pub sealer: super::sealing::Sealer,
    pub tokens: Arc<TokenService>,
    pub settings: Settings,
    pub key_cache: super::key_cache::KeyCache,
    /// Standing keys are made and replaced one at a time.
    pub standing_keys: tokio::sync::Mutex<()>,
    /// Held while a second factor is checked and spent, so that two logins of this process
    /// never both read an account's TOTP state before either has stored its change.
    pub second_factor: tokio::sync::Mutex<()>,
    pub revocations: super::revocation::RevocationList,
}

pub(super) fn new_stamp() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A trimmed value, `None` when empty.
pub(super) fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub(super) fn token_failure(e: TokenError) -> Failure {
    match e {
        TokenError::Invalid => Failure::general(Code::InvalidToken, "Invalid token."),
        TokenError::Expired => Failure::general(Code::ExpiredToken, "Expired token."),
    }
}

fn human(ttl: Duration) -> String {
    crate::config::Duration::secs(ttl.as_secs()).to_string()
}

/// The token subject of a user: what access tokens and the gate say about them.
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

impl Core {
    /// Counts an attempt against the client's IP and the account it names; refuses it with
    /// `rate_limited` when either is over `rate`. A store that cannot count refuses too.
    pub async fn limit(
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
                Code::RateLimited,
                format!("Too many attempts; try again in {wait} seconds."),
            ));
        }
        Ok(())
    }

    /// For requests that email an account (resend, reset): checks the address, counts the
    /// attempt, and finds the active account whose primary email it is, if any.
    pub async fn account_to_email(
        &self,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<Option<User>, Failure> {
        if !super::valid_email(email) {
            return Err(Failure::invalid_email());
        }
        self.limit("email", self.settings.rates.email, ip, Some(email))
            .await?;
        Ok(self
            .users
            .find_by_email(email)
            .await?
            .filter(|user| user.is_active && fold(&user.email) == fold(email)))
    }

    /// Checks and stores a new password (policy errors on the new password); a new security
    /// stamp kills every reset link made before.
    pub async fn apply_new_password(
        &self,
        user: &mut User,
        new1: String,
        new2: String,
    ) -> Result<(), Failure> {
        if new1 != new2 {
            return Err(Failure::field(
                Field::NewPassword,
                Code::PasswordMismatch,
                "The two password fields didn’t match.",
            ));
        }
        let failure = self.check_password(&new2, user);
        if !failure.is_empty() {
            return Err(failure);
        }
        user.password_hash = Some(self.hasher.hash(new1).await?);
        user.security_stamp = new_stamp();
        Ok(())
    }

    /// Every password rule `password` breaks for `user`.
    pub fn check_password(&self, password: &str, user: &User) -> Failure {
        let attributes = [
            ("email", Some(user.email.as_str())),
            ("username", user.username.as_deref()),
            ("first name", Some(user.first_name.as_str())),
            ("last name", Some(user.last_name.as_str())),
        ];
        self.policy.check(password, &attributes)
    }

    /// A new account record: active, unverified, no password.
    pub fn new_user(email: String, username: Option<String>) -> User {
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
            serial: None,
            standing_key: None,
            totp: None,
        }
    }

    /// Gives `user` its stable number if it has none yet (accounts made before numbers were).
    pub async fn number(&self, user: &mut User) -> Result<(), Failure> {
        if user.serial.is_none() {
            user.serial = Some(self.users.next_serial().await?);
        }
        Ok(())
    }

    /// A new access token for `user` in `session`, carrying the extra claims `extra` makes.
    pub fn issue(
        &self,
        user: &User,
        session: &Session,
        extra: ClaimsFor,
    ) -> Result<(String, Claims), Failure> {
        let made = self
            .tokens
            .issue_in(&subject(user), session, |claims| extra(user, claims));
        made.map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            Failure::unavailable()
        })
    }

    /// A new access token and refresh token; the refresh token joins `family` or starts one
    /// whose login proved itself by `amr` (a password when empty).
    pub async fn pair(
        &self,
        user: &User,
        family: Option<String>,
        amr: Vec<String>,
        extra: ClaimsFor,
    ) -> Result<TokenPair, Failure> {
        let family = family.unwrap_or_else(secret::new_family);
        let amr = if amr.is_empty() {
            vec![AMR_PASSWORD.to_string()]
        } else {
            amr
        };
        let session = Session {
            sid: Some(family.clone()),
            amr: amr.clone(),
        };
        let (token, claims) = self.issue(user, &session, extra)?;
        let (refresh_token, hash) = secret::new_secret();
        let refresh_expires_at = unix_now() + self.settings.refresh_ttl.as_secs() as i64;
        let record = RefreshRecord {
            user_id: user.id.clone(),
            family,
            expires_at: refresh_expires_at,
            amr,
        };
        self.sessions.insert(&hash, &record).await?;
        Ok(TokenPair {
            token,
            claims,
            refresh_token,
            refresh_expires_at,
        })
    }

    /// Ends every session of a user: its refresh tokens die, and every access token it holds
    /// is refused from now on (SPEC §13).
    pub async fn end_sessions(&self, user_id: &str) -> Result<(), Failure> {
        let now = unix_now();
        let sids = self.sessions.revoke_user(user_id).await?;
        self.revocations.end_account(user_id, &sids, now).await
    }

    /// Ends every session of a user but `keep` (the caller's own); all of them without one.
    pub async fn end_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<(), Failure> {
        match keep {
            Some(family) => {
                let now = unix_now();
                let sids = self.sessions.revoke_user_except(user_id, family).await?;
                self.revocations.end_sessions(&sids, now).await
            }
            None => self.end_sessions(user_id).await,
        }
    }

    /// The caller's account, when it exists and is active.
    pub async fn active(&self, user_id: Option<&str>) -> Result<User, Failure> {
        let id = user_id.ok_or_else(Failure::unauthenticated)?;
        match self.users.get(id).await? {
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

    /// A verified caller who also proves the password.
    pub async fn confirmed(
        &self,
        user_id: Option<&str>,
        password: String,
    ) -> Result<User, Failure> {
        let user = self.verified(user_id).await?;
        if !self
            .hasher
            .verify(user.password_hash.clone(), password)
            .await?
        {
            return Err(Failure::invalid_password());
        }
        Ok(user)
    }

    /// A signed email token for `user` and `purpose`.
    pub fn email_token(&self, purpose: Purpose, user: &User, to: &str, ttl: Duration) -> String {
        // Activation binds to the address only; the others also to the password's stamp.
        let stamp = match purpose {
            Purpose::Activation => "",
            _ => user.security_stamp.as_str(),
        };
        self.email_tokens.issue(purpose, &user.id, to, stamp, ttl)
    }

    /// Renders and sends one message about `user` to `to`.
    pub async fn send(
        &self,
        kind: EmailKind,
        user: &User,
        to: &str,
        link: String,
        ttl: Duration,
        links: &dyn Links,
    ) -> Result<(), Failure> {
        let name = if user.first_name.is_empty() {
            user.username.clone().unwrap_or_default()
        } else {
            user.first_name.clone()
        };
        let context = serde_json::json!({
            "link": link, "email": to, "name": name,
            "site": links.site(), "expires": human(ttl),
        });
        self.mailer.send(kind, to, context).await.map_err(|e| {
            tracing::warn!(kind = kind.name(), error = %e, "email not sent");
            Failure::email_fail()
        })
    }

    /// Sends the activation email of an unverified account.
    pub async fn send_activation(&self, user: &User, links: &dyn Links) -> Result<(), Failure> {
        let ttl = self.settings.activation_ttl;
        let token = self.email_token(Purpose::Activation, user, &user.email, ttl);
        let link = links.activation(user, &token);
        self.send(EmailKind::Activation, user, &user.email, link, ttl, links)
            .await
    }
}
