//! What the account logic keeps: users and API keys, as records of plain values.

use serde::{Deserialize, Serialize};

/// One account, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// argon2id PHC string; `None` for accounts created without a password.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
    pub verified: bool,
    pub archived: bool,
    #[serde(default)]
    pub secondary_email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Unix seconds.
    pub date_joined: i64,
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Changes whenever the password changes; email tokens bound to it die with it.
    pub security_stamp: String,
    /// A stable positive number, unique among users, given by the store (for clients that
    /// want an integer key, such as django's `pk`); `None` for accounts older than numbers
    /// until their next login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<i64>,
    /// The account's standing key (a key its owner may read again), sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_key: Option<StandingKey>,
    /// Two-factor authentication, once set up (pending until confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpState>,
}

/// An account's TOTP (`accounts::totp`): its secret, sealed, and what makes codes single-use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    /// The secret, sealed for this account (`accounts::sealing`); never kept in the clear.
    pub sealed_secret: String,
    /// False from setup until a first code confirms it: until then logins ignore it.
    #[serde(default)]
    pub enabled: bool,
    /// The last time step a code was accepted for; no code of it or before is taken again.
    #[serde(default)]
    pub last_step: i64,
    /// The SHA-256 (hex) of each recovery code not used yet.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

impl User {
    /// Whether logins need a second factor.
    pub fn totp_enabled(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.enabled)
    }

    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

/// A machine credential: the key itself is shown once and stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub hash: String,
    pub created_at: i64,
    #[serde(default)]
    pub last_used_at: Option<i64>,
}

/// A key shown again on every ask (as some services' clients expect): an [`ApiKey`] like any
/// other for the gate (stored by hash), plus a copy sealed under the account's context so the
/// owner can read it back. Never kept in plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingKey {
    /// The id of its [`ApiKey`].
    pub key_id: String,
    pub hash: String,
    /// `Sealer::seal` of the key, bound to the account.
    pub sealed: String,
    pub created_at: i64,
}

/// The normalized form unique indexes use.
pub fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}
