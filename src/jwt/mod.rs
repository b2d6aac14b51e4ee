//! RS256 access tokens: the claims, signing with the current key, and verification that
//! rejects everything RFC 8725 warns about, each with a reason a client can read.

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyRing, KeySet};

mod cache;
pub mod revocation;
pub use cache::VerifiedCache;
pub use revocation::{Revocation, RevocationKind, Revocations};

/// The claims of an authgate access token (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub email: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub staff: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The session (refresh-token family) the token was issued in; the same through rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// How the login that started the session proved itself (RFC 8176 values): [`AMR_PASSWORD`],
    /// then [`AMR_OTP`] after a second factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Claims an adapter adds beside these (a dialect's, SPEC §11): signed with the token but
    /// never read back by verification, which needs none of them. A name of a claim above is
    /// never overridden by an extra one.
    #[serde(skip)]
    pub extra: ExtraClaims,
}

/// The `amr` of a login by password (RFC 8176).
pub const AMR_PASSWORD: &str = "pwd";
/// The `amr` added by a one-time code or a recovery code (RFC 8176).
pub const AMR_OTP: &str = "otp";

/// Claims beyond the standard ones, by name.
pub type ExtraClaims = serde_json::Map<String, serde_json::Value>;

impl Claims {
    /// Whether the login behind this token gave a second factor.
    pub fn has_second_factor(&self) -> bool {
        self.amr.iter().any(|method| method == AMR_OTP)
    }

    /// Every claim as the token carries it: the standard ones and the extra ones.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            for (name, extra) in &self.extra {
                map.entry(name.clone()).or_insert_with(|| extra.clone());
            }
        }
        value
    }
}

/// Who a token is for: what the account logic hands to [`TokenService::issue`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub user_id: String,
    pub email: String,
    pub username: Option<String>,
    pub verified: bool,
    pub staff: bool,
    pub roles: Vec<String>,
}

/// The session a token is issued in, beside who it is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The refresh-token family (the `sid` claim).
    pub sid: Option<String>,
    /// How its login proved itself (the `amr` claim); empty: the claim is left out.
    pub amr: Vec<String>,
}

/// Why a token was refused. `reason()` is a stable label (metrics, logs); `to_string()` the
/// `error_description` a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("token is not three base64url segments")]
    Malformed,
    #[error("token header is not valid base64url JSON")]
    BadHeader,
    #[error("algorithm `{0}` is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("header `{0}` is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("unknown key id")]
    UnknownKid,
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("claims are missing or malformed")]
    Claims,
    /// A verifier that has not loaded the gateway's keys yet cannot judge any token.
    #[error("verification keys are not loaded yet")]
    NoKeys,
    /// Its session was ended (logout everywhere, password change, revoked...), SPEC §13.
    #[error("token revoked")]
    Revoked,
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadHeader => "bad_header",
            Rejection::Algorithm(_) => "algorithm",
            Rejection::ForbiddenHeader(_) => "forbidden_header",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::Signature => "signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Issuer => "issuer",
            Rejection::Audience => "audience",
            Rejection::Claims => "claims",
            Rejection::NoKeys => "no_keys",
            Rejection::Revoked => "revoked",
        }
    }
}

/// The parts of a JOSE header we look at before any key is touched, borrowed from the decoded
/// header where they need no unescaping; the key-location members are only seen, not read.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
}

/// Signs and verifies access tokens with the live key ring.
pub struct TokenService {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: Option<String>,
    access_ttl: i64,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: i64,
    cache: VerifiedCache,
    revocations: Arc<Revocations>,
}

/// Verified tokens remembered by default.
pub const DEFAULT_CACHE_SIZE: usize = 16_384;

/// The largest token we are willing to look at; real ones are well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

impl TokenService {
    pub fn new(
        keys: Arc<KeyRing>,
        issuer: &str,
        audience: Option<&str>,
        access_ttl: std::time::Duration,
        leeway: std::time::Duration,
    ) -> TokenService {
        TokenService {
            keys,
            issuer: issuer.to_string(),
            audience: audience.map(str::to_string),
            access_ttl: access_ttl.as_secs() as i64,
            leeway: leeway.as_secs() as i64,
            cache: VerifiedCache::new(DEFAULT_CACHE_SIZE),
            revocations: Arc::new(Revocations::new((access_ttl + leeway).as_secs() as i64)),
        }
    }

    /// Sets how many verified tokens are remembered (0: none).
    pub fn with_cache_size(mut self, entries: usize) -> TokenService {
        self.cache = VerifiedCache::new(entries);
        self
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The revocation list every verification consults.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Seconds of clock skew allowed.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// Seconds an access token lives.
    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    /// Issues an access token for `subject`; returns it with its claims.
    pub fn issue(
        &self,
        subject: &Subject,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.issue_with(subject, |_| ExtraClaims::new())
    }

    /// Issues an access token for `subject` that also carries the claims `extra` makes from
    /// the standard ones.
    pub fn issue_with(
        &self,
        subject: &Subject,
        extra: impl FnOnce(&Claims) -> ExtraClaims,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.issue_in(subject, &Session::default(), extra)
    }

    /// Issues an access token for `subject` in `session`, with the claims `extra` makes.
    pub fn issue_in(
        &self,
        subject: &Subject,
        session: &Session,
        extra: impl FnOnce(&Claims) -> ExtraClaims,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let now = unix_now();
        let mut claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            email: subject.email.clone(),
            username: subject.username.clone(),
            verified: subject.verified,
            staff: subject.staff,
            roles: subject.roles.clone(),
            sid: session.sid.clone(),
            amr: session.amr.clone(),
            extra: ExtraClaims::new(),
        };
        claims.extra = extra(&claims);
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs arbitrary claims with the current key (also used by tests to mint edge cases).
    /// Fails when the current key has no private half (a verifier never signs).
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let set = self.keys.snapshot();
        let (kid, encoding) = set
            .current()
            .and_then(|key| Some((&key.kid, key.encoding.as_ref()?)))
            .ok_or(ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(kid.clone());
        if claims.extra.is_empty() {
            jsonwebtoken::encode(&header, claims, encoding)
        } else {
            jsonwebtoken::encode(&header, &claims.to_json(), encoding)
        }
    }

    /// Verifies a compact JWS and returns its claims; tokens seen before come from the cache.
    /// A revoked token is refused whether it came from the cache or not.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, Rejection> {
        let set = self.keys.snapshot();
        let now = unix_now();
        let claims = match self.cache.get(token, set.generation(), now, self.leeway) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_with(token, &set, now)?);
                self.cache.put(token, claims.clone(), set.generation());
                claims
            }
        };
        if self.revocations.refuses(&claims, now) {
            return Err(Rejection::Revoked);
        }
        Ok(claims)
    }

    /// Verifies without the cache (for benchmarks and for callers that must not use it).
    pub fn verify_uncached(&self, token: &str) -> Result<Claims, Rejection> {
        let now = unix_now();
        let claims = self.verify_with(token, &self.keys.snapshot(), now)?;
        if self.revocations.refuses(&claims, now) {
            return Err(Rejection::Revoked);
        }
        Ok(claims)
    }

    /// One pass over the token: each part base64-decoded once into one buffer, the header
    /// read borrowing, the signature checked with the key parsed at load, the claims parsed
    /// once and then checked (RFC 7519 §7.2, RFC 8725 §3).
    fn verify_with(&self, token: &str, set: &KeySet, now: i64) -> Result<Claims, Rejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Rejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let mut buf = Vec::with_capacity(token.len() * 3 / 4 + 4);
        URL_SAFE_NO_PAD
            .decode_vec(header_b64, &mut buf)
            .map_err(|_| Rejection::BadHeader)?;
        let key = {
            let header: RawHeader =
                serde_json::from_slice(&buf).map_err(|_| Rejection::BadHeader)?;
            match header.alg.as_deref() {
                Some("RS256") => {}
                Some(other) => return Err(Rejection::Algorithm(truncate(other))),
                None => return Err(Rejection::Algorithm("(none given)".into())),
            }
            for (name, present) in [
                ("jku", header.jku.is_some()),
                ("x5u", header.x5u.is_some()),
                ("jwk", header.jwk.is_some()),
                ("x5c", header.x5c.is_some()),
                ("crit", header.crit.is_some()),
            ] {
                if present {
                    return Err(Rejection::ForbiddenHeader(name));
                }
            }
            match (header.kid.as_deref(), set.current()) {
                (_, None) => return Err(Rejection::NoKeys),
                (Some(kid), Some(_)) => set.get(kid).ok_or(Rejection::UnknownKid)?,
                (None, Some(current)) => current,
            }
        };

        buf.clear();
        URL_SAFE_NO_PAD
            .decode_vec(signature_b64, &mut buf)
            .map_err(|_| Rejection::Malformed)?;
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify_rs256(signed.as_bytes(), &buf) {
            return Err(Rejection::Signature);
        }

        buf.clear();
        URL_SAFE_NO_PAD
            .decode_vec(payload_b64, &mut buf)
            .map_err(|_| Rejection::Malformed)?;
        let claims: Claims = serde_json::from_slice(&buf).map_err(|_| Rejection::Claims)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    /// The time, issuer and audience rules, in this order (a token failing several gets the
    /// first reason).
    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), Rejection> {
        // NumericDate is seconds since the epoch; before it is not a time we issue.
        if claims.exp < 0 || claims.nbf < 0 {
            return Err(Rejection::Claims);
        }
        if claims.exp < now - self.leeway {
            return Err(Rejection::Expired);
        }
        if claims.nbf > now + self.leeway {
            return Err(Rejection::NotYetValid);
        }
        if claims.iss != self.issuer {
            return Err(Rejection::Issuer);
        }
        if let Some(audience) = &self.audience {
            if claims.aud.as_deref() != Some(audience.as_str()) {
                return Err(Rejection::Audience);
            }
        }
        Ok(())
    }
}

/// Every claim of a token, without checking anything: for showing the claims of a token that
/// was verified already (its extra claims included, which verification does not read).
pub fn decoded_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn truncate(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(16)
        .collect()
}

pub use crate::clock::unix_now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_claims_are_signed_beside_and_never_override_the_standard_ones() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyRing::open_or_init(dir.path(), 2048).unwrap());
        let second = std::time::Duration::from_secs(1);
        let tokens = TokenService::new(keys, "iss", None, 60 * second, second);
        let subject = Subject {
            user_id: "u1".into(),
            email: "a@b.co".into(),
            ..Default::default()
        };
        let (token, claims) = tokens
            .issue_with(&subject, |claims| {
                let mut extra = ExtraClaims::new();
                extra.insert("origIat".into(), claims.iat.into());
                extra.insert("sub".into(), "forged".into());
                extra
            })
            .unwrap();
        let signed = decoded_claims(&token).unwrap();
        assert_eq!(signed["origIat"], claims.iat);
        assert_eq!(signed["sub"], "u1");
        let verified = tokens.verify_uncached(&token).unwrap();
        assert_eq!(verified.sub, "u1");
        assert!(
            verified.extra.is_empty(),
            "verification reads no extra claim"
        );
        let (plain, _) = tokens.issue(&subject).unwrap();
        assert!(decoded_claims(&plain).unwrap().get("origIat").is_none());
        assert!(decoded_claims(&plain).unwrap().get("sid").is_none());
    }

    #[test]
    fn tokens_of_a_session_carry_its_sid() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeyRing::open_or_init(dir.path(), 2048).unwrap());
        let second = std::time::Duration::from_secs(1);
        let tokens = TokenService::new(keys, "iss", None, 60 * second, second);
        let session = Session {
            sid: Some("f1".into()),
            amr: vec![AMR_PASSWORD.into(), AMR_OTP.into()],
        };
        let (token, _) = tokens
            .issue_in(&Subject::default(), &session, |_| ExtraClaims::new())
            .unwrap();
        assert_eq!(decoded_claims(&token).unwrap()["sid"], "f1");
        assert_eq!(
            decoded_claims(&token).unwrap()["amr"],
            serde_json::json!(["pwd", "otp"])
        );
        let verified = tokens.verify_uncached(&token).unwrap();
        assert_eq!(verified.sid.as_deref(), Some("f1"));
        assert!(verified.has_second_factor());
        let (plain, _) = tokens.issue(&Subject::default()).unwrap();
        assert!(decoded_claims(&plain).unwrap().get("amr").is_none());
        assert!(!tokens.verify_uncached(&plain).unwrap().has_second_factor());
    }
}
