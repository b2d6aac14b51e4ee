//! Sessions: `tokenAuth` (login), `refreshToken` (rotation with reuse detection),
//! `revokeToken`, `revokeAllTokens`, and `verifyToken`.

use std::net::IpAddr;
use std::sync::Arc;

use super::core::{clean, Core};
use super::error::{Code, Failure};
use super::model::User;
use super::secret;
use super::storage::Consumed;
use super::{totp, ClaimsFor, TokenPair};
use crate::jwt::{unix_now, Claims, Rejection, AMR_OTP, AMR_PASSWORD};

/// What `login` takes: one identifier, the password, and a second factor (a one-time code or
/// a recovery code) for accounts with TOTP on; ignored for the others.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
    pub otp: Option<String>,
}

pub struct LoggedIn {
    pub user: User,
    pub tokens: TokenPair,
    pub unarchiving: bool,
}

/// Refresh tokens we are willing to look up; ours are 43 characters.
const MAX_REFRESH_TOKEN: usize = 256;

fn invalid_refresh() -> Failure {
    Failure::general(Code::InvalidToken, "Invalid refresh token.")
}

fn presented(refresh_token: Option<&str>) -> Result<&str, Failure> {
    refresh_token
        .filter(|t| !t.is_empty() && t.len() <= MAX_REFRESH_TOKEN)
        .ok_or_else(invalid_refresh)
}

pub struct Sessions {
    core: Arc<Core>,
    claims: ClaimsFor,
}

impl Sessions {
    pub(super) fn new(core: Arc<Core>, claims: ClaimsFor) -> Sessions {
        Sessions { core, claims }
    }

    /// Checks the password of the account an identifier names and starts a session. Unknown
    /// accounts, and accounts without a password, cost one verification too.
    pub async fn login(
        &self,
        request: LoginRequest,
        ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Failure> {
        let core = &self.core;
        let settings = &core.settings;
        let email = clean(request.email).filter(|_| settings.login_by_email);
        let username = clean(request.username).filter(|_| settings.login_by_username);
        let named = email.as_deref().or(username.as_deref());
        core.limit("login", settings.rates.login, ip, named).await?;
        let found = match (&email, &username) {
            (Some(email), _) => core.users.find_by_email(email).await?,
            (None, Some(name)) => core.users.find_by_username(name).await?,
            (None, None) => None,
        };
        let hash = found.as_ref().and_then(|u| u.password_hash.clone());
        let ok = core
            .hasher
            .verify(hash.clone(), request.password.clone())
            .await?;
        let mut user = match found {
            Some(user) if ok && user.is_active => user,
            _ => return Err(Failure::invalid_credentials()),
        };
        if !user.verified && !settings.allow_unverified_login {
            return Err(Failure::not_verified());
        }
        // The password is right: only now does the second factor answer anything.
        let mut amr = vec![AMR_PASSWORD.to_string()];
        if user.totp_enabled() {
            let Some(otp) = request.otp.as_deref() else {
                return Err(Failure::general(
                    Code::OtpRequired,
                    "A one-time code from the authenticator app, or a recovery code, is needed.",
                ));
            };
            totp::check_second_factor(core, &mut user, otp).await?;
            amr.push(AMR_OTP.to_string());
        }
        let unarchiving = user.archived;
        user.archived = false;
        user.last_login = Some(unix_now());
        core.number(&mut user).await?;
        if hash.as_deref().is_some_and(|h| core.hasher.needs_rehash(h)) {
            user.password_hash = Some(core.hasher.hash(request.password).await?);
        }
        core.users.update(&user).await?;
        let tokens = core.pair(&user, None, amr, self.claims).await?;
        Ok(LoggedIn {
            user,
            tokens,
            unarchiving,
        })
    }

    /// Exchanges a refresh token for a new pair (rotation). A token presented twice revokes its
    /// whole family.
    pub async fn refresh(&self, refresh_token: Option<&str>) -> Result<(User, TokenPair), Failure> {
        let core = &self.core;
        let token = presented(refresh_token)?;
        let record = match core
            .sessions
            .consume(&secret::hash(token), unix_now())
            .await?
        {
            Consumed::Rotated(record) => record,
            Consumed::Reused(record) => {
                tracing::warn!(user = %record.user_id, "refresh token reused; its family is revoked");
                let _ = core
                    .revocations
                    .end_sessions(&[record.family], unix_now())
                    .await;
                return Err(invalid_refresh());
            }
            Consumed::Invalid => return Err(invalid_refresh()),
        };
        let user = match core.users.get(&record.user_id).await? {
            Some(user) if user.is_active => user,
            _ => {
                let _ = core.end_sessions(&record.user_id).await;
                return Err(invalid_refresh());
            }
        };
        let pair = core
            .pair(&user, Some(record.family), record.amr, self.claims)
            .await?;
        Ok((user, pair))
    }

    /// Revokes the session (token family) a refresh token belongs to, its access tokens
    /// included.
    pub async fn revoke(&self, refresh_token: Option<&str>) -> Result<(), Failure> {
        let token = presented(refresh_token)?;
        let now = unix_now();
        match self.core.sessions.revoke(&secret::hash(token)).await? {
            Some(record) => {
                self.core
                    .revocations
                    .end_sessions(&[record.family], now)
                    .await
            }
            None => Err(invalid_refresh()),
        }
    }

    /// Logs the caller out everywhere.
    pub async fn revoke_all(&self, user_id: Option<&str>) -> Result<(), Failure> {
        let user = self.core.active(user_id).await?;
        self.core.end_sessions(&user.id).await
    }

    /// Checks an access token as the gate would and returns its claims.
    pub fn verify_token(&self, token: &str) -> Result<Claims, Failure> {
        self.core
            .tokens
            .verify(token)
            .map(|claims| Claims::clone(&claims))
            .map_err(|rejection| match rejection {
                Rejection::Expired => Failure::general(Code::ExpiredToken, "Token expired."),
                other => Failure::general(Code::InvalidToken, other.to_string()),
            })
    }
}
