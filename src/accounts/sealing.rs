//! Secrets the account logic must read back (TOTP seeds, keys a client is shown again), kept
//! encrypted at rest: AES-256-GCM (aws-lc-rs) under one 256-bit key, a random nonce per value,
//! and a context string bound in as associated data so a value sealed for one purpose or owner
//! cannot be opened as another.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Sealer {
        let key = UnboundKey::new(&AES_256_GCM, &key).expect("AES-256 takes a 32-byte key");
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// `base64url(nonce ‖ ciphertext ‖ tag)` of `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("sealing in memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext of a value sealed for `context`; `None` when it was not (another key,
    /// another context, a changed byte).
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let sealer = Sealer::new([1; 32]);
        let sealed = sealer.seal(b"seed", "totp:u1");
        assert_ne!(
            sealed,
            sealer.seal(b"seed", "totp:u1"),
            "a fresh nonce each time"
        );
        assert_eq!(
            sealer.open(&sealed, "totp:u1").as_deref(),
            Some(&b"seed"[..])
        );
        assert_eq!(sealer.open(&sealed, "totp:u2"), None);
        assert_eq!(Sealer::new([2; 32]).open(&sealed, "totp:u1"), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            sealer.open(&String::from_utf8(tampered).unwrap(), "totp:u1"),
            None
        );
        for junk in ["", "x", "!!!!", &"A".repeat(10)] {
            assert_eq!(sealer.open(junk, "totp:u1"), None);
        }
    }
}
