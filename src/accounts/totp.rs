//! Two-factor authentication: time-based one-time codes (RFC 6238 with SHA-1, 6 digits and
//! 30-second steps, what every authenticator app reads) and ten single-use recovery codes.
//!
//! `setup` gives a new secret (and its `otpauth://` URL) that changes nothing until `confirm`
//! proves it with a first code; `disable` takes the password and a code. The secret is kept
//! sealed for its account ([`super::sealing`]), the recovery codes as their SHA-256. A code is
//! good once: the last step used is kept per account (read and stored again under one lock
//! per process), and the first use of a step or a recovery code is also claimed in the
//! rate-limit store, which counts atomically even for replicas racing on one code.

use std::net::IpAddr;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::core::Core;
use super::error::{Code, Failure};
use super::model::{TotpState, User};
use super::storage::Verdict;
use super::{secret, Links};
use crate::config::Rate;
use crate::jwt::unix_now;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one (clock skew, a code typed late).
pub const SKEW: i64 = 1;
/// Recovery codes given at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Secret length: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// A recovery code: 12 characters of the lowercase base32 alphabet (60 bits), shown in
/// groups of four.
const RECOVERY_LEN: usize = 12;
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Longer input is not read at all.
const MAX_INPUT: usize = 64;

/// What a new setup shows the user once: the secret (base32, for typing in) and the
/// `otpauth://` URL an authenticator app reads (usually from a QR code).
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_url: String,
}

/// A code as typed, once read: the digits of a one-time code, or a recovery code in its
/// plain form (lowercase, without separators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    OneTime(String),
    Recovery(String),
}

impl Presented {
    /// Reads what a user typed; spaces and hyphens between characters are allowed. `None`
    /// for anything that is neither a 6-digit code nor a recovery code.
    pub fn read(text: &str) -> Option<Presented> {
        if text.len() > MAX_INPUT {
            return None;
        }
        let plain: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if plain.len() == DIGITS && plain.bytes().all(|b| b.is_ascii_digit()) {
            Some(Presented::OneTime(plain))
        } else if plain.len() == RECOVERY_LEN
            && plain.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))
        {
            Some(Presented::Recovery(plain))
        } else {
            None
        }
    }
}

/// The code generator of a secret, labelled for an authenticator app.
fn generator(secret: Vec<u8>, issuer: &str, account: &str) -> TOTP {
    // A colon separates issuer and account in the label; neither may carry one.
    let issuer = issuer.replace(':', "");
    let account = account.replace(':', "");
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW as u8,
        STEP,
        secret,
        Some(issuer),
        account,
    )
}

/// The issuer an app shows beside the account: the host of the site's URL (no scheme, no
/// port, no path), or "authgate" when there is none.
pub fn issuer_of(site: &str) -> String {
    let rest = site.split_once("://").map_or(site, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if host.is_empty() {
        "authgate".to_string()
    } else {
        host.to_string()
    }
}

/// The step of the code `code`, among the step of `now` and [`SKEW`] steps either side, if it
/// is later than `last_step` (a code is good once, and never after a later one). Every
/// candidate is computed and compared in constant time.
pub fn accepted_step(secret: &[u8], code: &str, now: i64, last_step: i64) -> Option<i64> {
    let totp = generator(secret.to_vec(), "", "");
    let current = now.div_euclid(STEP as i64);
    let mut found = None;
    for step in current - SKEW..=current + SKEW {
        if step < 0 {
            continue;
        }
        let expected = totp.generate(step as u64 * STEP);
        let same: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if same && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// New recovery codes as shown (`abcd-efgh-ijkl`) and the hashes kept of them.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes: [u8; RECOVERY_LEN] = rand::random();
            let plain: String = bytes
                .iter()
                .map(|b| RECOVERY_ALPHABET[(b & 31) as usize] as char)
                .collect();
            let hash = secret::hash(&plain);
            let shown = format!("{}-{}-{}", &plain[..4], &plain[4..8], &plain[8..]);
            (shown, hash)
        })
        .unzip()
}

/// Where `plain`'s hash is among `hashes`, every one compared in constant time.
fn recovery_index(hashes: &[String], plain: &str) -> Option<usize> {
    let hash = secret::hash(plain);
    let mut found = None;
    for (i, kept) in hashes.iter().enumerate() {
        if bool::from(kept.as_bytes().ct_eq(hash.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

fn sealing_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

pub(super) fn invalid_otp() -> Failure {
    Failure::general(Code::InvalidOtp, "Invalid or already used code.")
}

fn enabled_already() -> Failure {
    Failure::general(
        Code::TotpEnabled,
        "Two-factor authentication is already on.",
    )
}

/// The secret of an account's TOTP state, opened.
fn open_secret(core: &Core, user: &User, state: &TotpState) -> Result<Vec<u8>, Failure> {
    core.sealer
        .open(&state.sealed_secret, &sealing_context(&user.id))
        .ok_or_else(|| {
            tracing::error!(user = %user.id, "the TOTP secret does not open with the sealing key");
            Failure::unavailable()
        })
}

/// How long a claimed step is remembered in the counting store (fixed windows: a code lives
/// 90 s, so a window boundary falls within its life in one case out of 40).
const STEP_CLAIM: Rate = Rate::new(1, 3600);
/// How long a claimed recovery code is remembered there (the account record forgets it at once).
const RECOVERY_CLAIM: Rate = Rate::new(1, 86_400);

/// Claims the first use of `what` (a step, a recovery code) in the counting store: of any
/// number of concurrent uses, on any replica, one is allowed.
async fn claim_first_use(core: &Core, what: String, rate: Rate) -> Result<(), Failure> {
    match core.limiter.hit(&what, rate, unix_now()).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Limited { .. }) => Err(invalid_otp()),
        Err(e) => {
            tracing::error!(error = %e, "rate limit store failed");
            Err(Failure::unavailable())
        }
    }
}

/// Checks a second factor of `user`, whose TOTP is on: a one-time code not used before, or a
/// recovery code, which is spent. The account's TOTP state is read afresh and its change (the
/// last step, the codes left) stored before the next check of this process starts; `user`
/// gets the new state.
pub(super) async fn check_second_factor(
    core: &Core,
    user: &mut User,
    typed: &str,
) -> Result<(), Failure> {
    let presented = Presented::read(typed).ok_or_else(invalid_otp)?;
    let _one_at_a_time = core.second_factor.lock().await;
    let mut fresh = core.users.get(&user.id).await?.ok_or_else(invalid_otp)?;
    let Some(mut state) = fresh.totp.clone().filter(|s| s.enabled) else {
        return Err(invalid_otp());
    };
    match presented {
        Presented::OneTime(code) => {
            let secret = open_secret(core, &fresh, &state)?;
            let step = accepted_step(&secret, &code, unix_now(), state.last_step)
                .ok_or_else(invalid_otp)?;
            let what = format!("totp-step:{}:{step}", fresh.id);
            claim_first_use(core, what, STEP_CLAIM).await?;
            state.last_step = step;
        }
        Presented::Recovery(plain) => {
            let index = recovery_index(&state.recovery_codes, &plain).ok_or_else(invalid_otp)?;
            let hash = state.recovery_codes.remove(index);
            let what = format!("totp-recovery:{}:{hash}", fresh.id);
            claim_first_use(core, what, RECOVERY_CLAIM).await?;
        }
    }
    fresh.totp = Some(state);
    core.users.update(&fresh).await?;
    user.totp = fresh.totp;
    Ok(())
}

/// Setting TOTP up, confirming and turning it off, for the caller's own account.
pub struct Totp {
    core: Arc<Core>,
}

impl Totp {
    pub(super) fn new(core: Arc<Core>) -> Totp {
        Totp { core }
    }

    /// A new secret for the caller (verified account, TOTP off). It only takes effect once a
    /// code confirms it; a setup not confirmed is replaced by the next one.
    pub async fn setup(
        &self,
        user_id: Option<&str>,
        links: &dyn Links,
    ) -> Result<Enrolment, Failure> {
        let core = &self.core;
        let mut user = core.verified(user_id).await?;
        if user.totp_enabled() {
            return Err(enabled_already());
        }
        let secret: [u8; SECRET_BYTES] = rand::random();
        user.totp = Some(TotpState {
            sealed_secret: core.sealer.seal(&secret, &sealing_context(&user.id)),
            enabled: false,
            last_step: 0,
            recovery_codes: Vec::new(),
        });
        core.users.update(&user).await?;
        let totp = generator(secret.to_vec(), &issuer_of(links.site()), &user.email);
        Ok(Enrolment {
            secret: totp.get_secret_base32(),
            otpauth_url: totp.get_url(),
        })
    }

    /// Turns TOTP on with a first code of the pending secret; returns the recovery codes (shown
    /// this once). Every other session of the account ends; `session` (the caller's) goes on.
    pub async fn confirm(
        &self,
        user_id: Option<&str>,
        session: Option<&str>,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Vec<String>, Failure> {
        let core = &self.core;
        let mut user = core.verified(user_id).await?;
        core.limit("otp", core.settings.rates.login, ip, Some(&user.id))
            .await?;
        let mut state = match user.totp.clone() {
            Some(state) if state.enabled => return Err(enabled_already()),
            Some(state) => state,
            None => {
                return Err(Failure::general(
                    Code::InvalidOtp,
                    "No two-factor setup is pending.",
                ))
            }
        };
        let Some(Presented::OneTime(code)) = Presented::read(code) else {
            return Err(invalid_otp());
        };
        let secret = open_secret(core, &user, &state)?;
        let step = accepted_step(&secret, &code, unix_now(), 0).ok_or_else(invalid_otp)?;
        claim_first_use(core, format!("totp-step:{}:{step}", user.id), STEP_CLAIM).await?;
        let (codes, hashes) = new_recovery_codes();
        state.enabled = true;
        state.last_step = step;
        state.recovery_codes = hashes;
        user.totp = Some(state);
        core.users.update(&user).await?;
        core.end_other_sessions(&user.id, session).await?;
        Ok(codes)
    }

    /// Turns TOTP off, given the password and a code (one-time or recovery). Every other
    /// session of the account ends; `session` (the caller's) goes on.
    pub async fn disable(
        &self,
        user_id: Option<&str>,
        session: Option<&str>,
        password: String,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Failure> {
        let core = &self.core;
        core.active(user_id).await?;
        core.limit("otp", core.settings.rates.login, ip, user_id)
            .await?;
        let mut user = core.confirmed(user_id, password).await?;
        if !user.totp_enabled() {
            return Err(Failure::general(
                Code::Invalid,
                "Two-factor authentication is not on.",
            ));
        }
        check_second_factor(core, &mut user, code).await?;
        user.totp = None;
        core.users.update(&user).await?;
        core.end_other_sessions(&user.id, session).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (its 8-digit values, last 6 digits).
    #[test]
    fn codes_are_rfc_6238() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let step = time / STEP as i64;
            assert_eq!(accepted_step(secret, code, time, -1), Some(step), "{time}");
        }
    }

    #[test]
    fn one_step_of_skew_and_no_replay() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let step = now / STEP as i64;
        let code = |s: i64| generator(secret.to_vec(), "", "").generate(s as u64 * STEP);
        assert_eq!(
            accepted_step(secret, &code(step - 1), now, 0),
            Some(step - 1)
        );
        assert_eq!(
            accepted_step(secret, &code(step + 1), now, 0),
            Some(step + 1)
        );
        assert_eq!(accepted_step(secret, &code(step - 2), now, 0), None);
        assert_eq!(accepted_step(secret, &code(step + 2), now, 0), None);
        assert_eq!(accepted_step(secret, &code(step), now, step), None, "used");
        assert_eq!(
            accepted_step(secret, &code(step - 1), now, step),
            None,
            "older than one used"
        );
        assert_eq!(
            accepted_step(b"another secret 12345", &code(step), now, 0),
            None
        );
    }

    #[test]
    fn typed_codes_are_read_strictly() {
        assert_eq!(
            Presented::read(" 123 456 "),
            Some(Presented::OneTime("123456".into()))
        );
        assert_eq!(
            Presented::read("ABCD-efgh-2345"),
            Some(Presented::Recovery("abcdefgh2345".into()))
        );
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "١٢٣٤٥٦",
            "abcd-efgh-2341",
            "abcd-efgh-23456",
            &"1".repeat(100),
        ] {
            assert_eq!(Presented::read(bad), None, "{bad}");
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_found_by_hash() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(hashes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(code.len(), 14);
            let Some(Presented::Recovery(plain)) = Presented::read(code) else {
                panic!("{code} reads as a recovery code");
            };
            assert_eq!(recovery_index(&hashes, &plain), Some(i));
            assert!(!hashes[i].contains(&plain));
        }
        assert_eq!(recovery_index(&hashes, "aaaaaaaaaaaa"), None);
    }

    #[test]
    fn otpauth_urls_name_the_site_and_the_account() {
        assert_eq!(issuer_of("https://auth.example.com/x"), "auth.example.com");
        assert_eq!(issuer_of("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(issuer_of("http://[::1]:8080/"), "[::1]");
        assert_eq!(issuer_of(""), "authgate");
        let totp = generator(
            b"12345678901234567890".to_vec(),
            "auth.example.com",
            "a:b@c.de",
        );
        assert_eq!(totp.get_secret_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            totp.get_url(),
            "otpauth://totp/auth.example.com:ab%40c.de?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=auth.example.com"
        );
    }
}
