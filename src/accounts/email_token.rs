//! Signed, expiring email tokens (activation, password reset, secondary email, password set).
//!
//! A token is `base64url(JSON claims) . base64url(HMAC-SHA256(key, purpose | claims))`. The key
//! is 256 random bits kept in the data directory (mode 0600); each token also carries a 128-bit
//! random nonce. Tokens are single-use by what they bind to: activation dies once the account is
//! verified, reset and set-password die when the password (its security stamp) changes.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::unix_now;
use crate::files::key_file;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Activation,
    PasswordReset,
    SecondaryEmail,
    PasswordSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaims {
    #[serde(rename = "p")]
    pub purpose: Purpose,
    #[serde(rename = "u")]
    pub user_id: String,
    /// The address the token was sent to.
    #[serde(rename = "e")]
    pub email: String,
    /// The user's security stamp when the token was made.
    #[serde(rename = "s")]
    pub stamp: String,
    #[serde(rename = "x")]
    pub expires: i64,
    #[serde(rename = "n")]
    nonce: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
}

pub struct EmailTokens {
    key: [u8; 32],
}

/// The key's file in the data directory (one process; replicas keep it in their database).
pub const KEY_FILE: &str = "email-token.key";

impl EmailTokens {
    pub fn new(key: [u8; 32]) -> EmailTokens {
        EmailTokens { key }
    }

    /// Loads the key from `data_dir`, creating it on first use.
    pub fn open(data_dir: &Path) -> std::io::Result<EmailTokens> {
        key_file(&data_dir.join(KEY_FILE)).map(EmailTokens::new)
    }

    fn mac(&self, purpose: Purpose, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(format!("{purpose:?}|").as_bytes());
        mac.update(payload.as_bytes());
        mac
    }

    pub fn issue(
        &self,
        purpose: Purpose,
        user_id: &str,
        email: &str,
        stamp: &str,
        ttl: std::time::Duration,
    ) -> String {
        let nonce: [u8; 16] = rand::random();
        let claims = EmailClaims {
            purpose,
            user_id: user_id.to_string(),
            email: email.to_string(),
            stamp: stamp.to_string(),
            expires: unix_now() + ttl.as_secs() as i64,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = self.mac(purpose, &payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the signature (in constant time), the purpose, then the expiry. The caller checks
    /// what the token binds to (user, email, stamp).
    pub fn verify(&self, token: &str, purpose: Purpose) -> Result<EmailClaims, TokenError> {
        if token.len() > 2048 {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = token.trim().split_once('.').ok_or(TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(purpose, payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)?;
        let claims: EmailClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if claims.purpose != purpose {
            return Err(TokenError::Invalid);
        }
        if unix_now() > claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn tokens_verify_only_for_their_purpose_and_time() {
        let tokens = EmailTokens::new([7; 32]);
        let t = tokens.issue(
            Purpose::Activation,
            "u1",
            "a@b.c",
            "",
            Duration::from_secs(60),
        );
        let claims = tokens.verify(&t, Purpose::Activation).unwrap();
        assert_eq!(
            (claims.user_id.as_str(), claims.email.as_str()),
            ("u1", "a@b.c")
        );
        assert_eq!(
            tokens.verify(&t, Purpose::PasswordReset),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            EmailTokens::new([8; 32]).verify(&t, Purpose::Activation),
            Err(TokenError::Invalid)
        );
        let mut tampered = t.clone();
        tampered.insert(3, 'A');
        assert_eq!(
            tokens.verify(&tampered, Purpose::Activation),
            Err(TokenError::Invalid)
        );
        for junk in ["", ".", "a.b", "....", &"x".repeat(5000)] {
            assert_eq!(
                tokens.verify(junk, Purpose::Activation),
                Err(TokenError::Invalid)
            );
        }
        let expired = tokens.issue(Purpose::Activation, "u1", "a@b.c", "", Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            tokens.verify(&expired, Purpose::Activation),
            Err(TokenError::Expired)
        );
        // Two tokens for the same thing differ (random nonce).
        let again = tokens.issue(
            Purpose::Activation,
            "u1",
            "a@b.c",
            "",
            Duration::from_secs(60),
        );
        assert_ne!(t, again);
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = EmailTokens::open(dir.path()).unwrap();
        let b = EmailTokens::open(dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
