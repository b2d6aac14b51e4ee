//! The account logic, in small services with one file each: `registration` (sign-up,
//! activation, operator-made accounts), `sessions` (login, refresh, logout), `recovery`
//! (password reset and set), `profile` (the caller's own account), `secondary_email`,
//! `api_keys` (+ `standing_keys`, keys shown again) and `staff`. They share `core` (stores,
//! hasher, mailer, tokens, settings).
//!
//! It knows nothing of GraphQL, HTTP, Pingora or any dialect: callers pass plain values and
//! get a value or a [`Failure`] naming a domain [`Field`] and a typed [`Code`]. Where mail
//! carries a link, the caller says how links look ([`Links`]); what the stores must do is in
//! [`storage`], implemented per backend in `crate::store`.

pub mod api_keys;
mod core;
pub mod directory;
pub mod email_token;
pub mod error;
mod key_cache;
pub mod model;
pub mod password;
pub mod policy;
pub mod profile;
pub mod recovery;
pub mod registration;
pub mod revocation;
pub mod sealing;
pub mod secondary_email;
pub mod secret;
pub mod sessions;
pub mod staff;
pub mod standing_keys;
pub mod storage;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Rate;
use crate::email::Mailer;
use crate::jwt::{Claims, ExtraClaims, TokenService};

pub use self::core::subject;
pub use crate::config::DeleteMode;
pub use api_keys::{ApiKeys, API_KEY_PREFIX};
pub use directory::{Directory, Order, PublicFilter, PublicUser};
pub use email_token::{EmailTokens, Purpose, TokenError};
pub use error::{Code, Failure, Field, Problem};
pub use model::{ApiKey, TotpState, User};
pub use password::{Argon2Settings, Hasher};
pub use policy::PasswordPolicy;
pub use profile::{Profile, ProfileUpdate};
pub use recovery::Recovery;
pub use registration::{Activation, NewAccount, Registered, Registration, SignUp};
pub use revocation::RevocationList;
pub use secondary_email::SecondaryEmail;
pub use sessions::{LoggedIn, LoginRequest, Sessions};
pub use staff::{Staff, UserFilter};
pub use standing_keys::{ShownKey, StandingKeys};
use storage::{ApiKeyStore, RateLimiter, RefreshStore, RevocationStore, UserStore};
pub use totp::{Enrolment, Totp};

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
    pub rates: Rates,
}

/// The rate limits: attempts per window, per client IP and per account or email.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub login: Rate,
    pub register: Rate,
    pub email: Rate,
}

/// How the links in mail look: each adapter (authgate's own pages, a dialect) has its format.
/// The token is already made; the link only says where it goes.
pub trait Links: Send + Sync {
    /// The site the mail speaks for (the `site` of the templates).
    fn site(&self) -> &str;
    fn activation(&self, user: &User, token: &str) -> String;
    fn password_reset(&self, user: &User, token: &str) -> String;
    fn password_set(&self, user: &User, token: &str) -> String;
    fn secondary_email(&self, user: &User, token: &str) -> String;
}

/// The claims an adapter adds to the access tokens issued through it, made from the account
/// and the standard claims (a dialect's extra claims, SPEC §11). [`no_extra_claims`] for none.
pub type ClaimsFor = fn(&User, &Claims) -> ExtraClaims;

/// The native schema's tokens: the standard claims only.
pub fn no_extra_claims(_: &User, _: &Claims) -> ExtraClaims {
    ExtraClaims::new()
}

/// An access token with its refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub token: String,
    pub claims: Claims,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
}

/// The parts an account service is made of.
pub struct Parts {
    pub users: Arc<dyn UserStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub sessions: Arc<dyn RefreshStore>,
    pub limiter: Arc<dyn RateLimiter>,
    /// The persisted revocation list (SPEC §13).
    pub revocations: Arc<dyn RevocationStore>,
    pub hasher: Hasher,
    pub policy: PasswordPolicy,
    pub mailer: Arc<Mailer>,
    pub email_tokens: EmailTokens,
    /// Encrypts what must be read back (TOTP seeds, keys shown again).
    pub sealer: sealing::Sealer,
    pub tokens: Arc<TokenService>,
    pub settings: Settings,
}

/// Which stores answer (for `/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub users: bool,
    pub sessions: bool,
}

/// Every account service, over one shared core.
pub struct Accounts {
    pub registration: Registration,
    pub sessions: Sessions,
    pub recovery: Recovery,
    pub profile: Profile,
    pub secondary_email: SecondaryEmail,
    pub api_keys: ApiKeys,
    pub staff: Staff,
    pub directory: Directory,
    pub standing_keys: StandingKeys,
    pub totp: Totp,
    core: Arc<core::Core>,
}

impl Accounts {
    pub fn new(parts: Parts) -> Accounts {
        let core = Arc::new(core::Core {
            users: parts.users,
            api_keys: parts.api_keys,
            sessions: parts.sessions,
            limiter: parts.limiter,
            hasher: parts.hasher,
            policy: parts.policy,
            mailer: parts.mailer,
            email_tokens: parts.email_tokens,
            sealer: parts.sealer,
            settings: parts.settings,
            key_cache: Default::default(),
            standing_keys: Default::default(),
            second_factor: Default::default(),
            revocations: RevocationList::new(parts.revocations, parts.tokens.revocations().clone()),
            tokens: parts.tokens,
        });
        Accounts::over(core, no_extra_claims)
    }

    fn over(core: Arc<core::Core>, claims: ClaimsFor) -> Accounts {
        Accounts {
            registration: Registration::new(core.clone(), claims),
            sessions: Sessions::new(core.clone(), claims),
            recovery: Recovery::new(core.clone()),
            profile: Profile::new(core.clone(), claims),
            secondary_email: SecondaryEmail::new(core.clone()),
            api_keys: ApiKeys::new(core.clone()),
            staff: Staff::new(core.clone()),
            directory: Directory::new(core.clone()),
            standing_keys: StandingKeys::new(core.clone()),
            totp: Totp::new(core.clone()),
            core,
        }
    }

    /// The same accounts (one store, one set of sessions and limits) whose access tokens also
    /// carry the claims `claims` makes: what an adapter with its own claims (a dialect) uses.
    pub fn with_claims(&self, claims: ClaimsFor) -> Accounts {
        Accounts::over(self.core.clone(), claims)
    }

    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// The revocation list: loaded at start, kept in step by a background task.
    pub fn revocations(&self) -> &RevocationList {
        &self.core.revocations
    }

    /// Both stores asked at once, so a store that is down costs one time budget, not two.
    pub async fn health(&self) -> Health {
        let (users, sessions) = tokio::join!(self.core.users.ping(), self.core.sessions.ping());
        Health { users, sessions }
    }

    /// Forgets the cached owner of the API key with this hash (changed elsewhere).
    pub fn forget_api_key(&self, hash: &str) {
        self.core.key_cache.forget(hash);
    }

    /// Forgets everything cached about this user (changed elsewhere).
    pub fn forget_user(&self, user_id: &str) {
        self.core.key_cache.forget_user(user_id);
    }

    /// Forgets every cached lookup (changes elsewhere may have been missed).
    pub fn forget_cached(&self) {
        self.core.key_cache.clear();
    }

    /// Makes every acknowledged write durable (on shutdown).
    pub async fn flush(&self) -> Result<(), storage::StoreError> {
        self.core.users.flush().await
    }
}

/// Whether `email` is an address we send to: RFC 5322 syntax (checked by the `email_address`
/// crate) in its plain `local@domain` form, with a dotted domain and no display name.
pub fn valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(['<', '>'])
        && email_address::EmailAddress::is_valid(email)
}

/// Django's username rule: 1–150 of letters, digits and `@ . + - _`.
pub fn valid_username(username: &str) -> bool {
    (1..=150).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
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
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a@b.co.",
            "a b@c.de",
            "a@b@c.de",
            "<a@b.co>",
            "Ada <a@b.co>",
            "a@b..co",
            "a\u{0}@b.co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_username("ada.l+x@y-z_1"));
        assert!(!valid_username(""));
        assert!(!valid_username("with space"));
        assert!(!valid_username(&"x".repeat(151)));
    }
}
