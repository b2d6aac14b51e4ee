//! JWK export (RFC 7517) and the RFC 7638 thumbprint used as `kid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A published RSA verification key.
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub n: String,
    pub e: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
}

impl Jwk {
    pub fn from_public(key: &RsaPublicKey) -> Jwk {
        let (n, e) = modulus_exponent(key);
        Jwk {
            kty: "RSA",
            kid: thumbprint_of(&n, &e),
            n,
            e,
            alg: "RS256",
            use_: "sig",
        }
    }
}

/// A JWK as a publisher may write it; only RSA signature keys for RS256 are taken.
#[derive(Deserialize)]
struct PublishedJwk {
    kty: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct PublishedJwks {
    keys: Vec<serde_json::Value>,
}

/// The RS256 verification keys of a JWK Set document (RFC 7517 §5), in document order.
/// Members for other algorithms or uses are passed over; a malformed RSA member, a weak key,
/// a repeated `kid` or no usable key at all refuses the whole document.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<super::Key>, String> {
    let doc: PublishedJwks =
        serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    if doc.keys.len() > super::MAX_PUBLISHED_KEYS {
        return Err(format!(
            "{} keys (at most {})",
            doc.keys.len(),
            super::MAX_PUBLISHED_KEYS
        ));
    }
    let mut keys = Vec::new();
    for (i, member) in doc.keys.into_iter().enumerate() {
        let jwk: PublishedJwk =
            serde_json::from_value(member).map_err(|e| format!("keys[{i}]: {e}"))?;
        let rsa_signing = jwk.kty.as_deref() == Some("RSA")
            && jwk.alg.as_deref().is_none_or(|alg| alg == "RS256")
            && jwk.use_.as_deref().is_none_or(|use_| use_ == "sig");
        if !rsa_signing {
            continue;
        }
        let number = |field: &str, value: Option<String>| {
            let text = value.ok_or_else(|| format!("keys[{i}]: no `{field}`"))?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map(|bytes| rsa::BigUint::from_bytes_be(&bytes))
                .map_err(|_| format!("keys[{i}]: `{field}` is not base64url"))
        };
        let public = RsaPublicKey::new(number("n", jwk.n)?, number("e", jwk.e)?)
            .map_err(|e| format!("keys[{i}]: not a usable RSA key ({e})"))?;
        keys.push(
            super::Key::from_public(&public, jwk.kid).map_err(|e| format!("keys[{i}]: {e}"))?,
        );
    }
    super::check_published(&keys)?;
    Ok(keys)
}

fn modulus_exponent(key: &RsaPublicKey) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    )
}

/// RFC 7638: SHA-256 over the required members in lexical order, no whitespace, base64url.
pub fn thumbprint(key: &RsaPublicKey) -> String {
    let (n, e) = modulus_exponent(key);
    thumbprint_of(&n, &e)
}

fn thumbprint_of(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key of RFC 7638 §3.1 and the thumbprint the RFC gives for it.
    #[test]
    fn jwks_round_trips_and_skips_other_keys() {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let ours = Jwk::from_public(&RsaPublicKey::from(&private));
        let doc = serde_json::json!({ "keys": [
            { "kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
              "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "ec" },
            { "kty": "RSA", "n": ours.n, "e": ours.e, "use": "enc", "kid": "for-encryption" },
            { "kty": "RSA", "n": ours.n, "e": ours.e, "alg": "PS256", "kid": "pss" },
            ours,
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, ours.kid);
        assert_eq!(keys[0].jwk.n, ours.n);
        assert!(keys[0].encoding.is_none());
    }

    #[test]
    fn bad_jwks_documents_are_refused_whole() {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let ours = Jwk::from_public(&RsaPublicKey::from(&private));
        let weak = Jwk::from_public(&RsaPublicKey::from(
            &rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap(),
        ));
        let many: Vec<_> = (0..40).map(|_| ours.clone()).collect();
        let cases = [
            ("[]".to_string(), "not a JWK Set"),
            ("{\"keys\": 1}".to_string(), "not a JWK Set"),
            ("\u{0}".to_string(), "not a JWK Set"),
            (r#"{"keys": []}"#.to_string(), "no RS256 public keys"),
            (
                r#"{"keys": [{"kty": "RSA", "e": "AQAB"}]}"#.to_string(),
                "no `n`",
            ),
            (
                r#"{"keys": [{"kty": "RSA", "n": "***", "e": "AQAB"}]}"#.to_string(),
                "not base64url",
            ),
            (
                r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#.to_string(),
                "not a usable RSA key",
            ),
            (
                serde_json::json!({"keys": [weak]}).to_string(),
                "at least 2048",
            ),
            (
                serde_json::json!({"keys": [ours, ours]}).to_string(),
                "appears twice",
            ),
            (
                serde_json::json!({ "keys": many }).to_string(),
                "at most 32",
            ),
            (r#"{"keys": [{"kty": 7}]}"#.to_string(), "keys[0]"),
        ];
        for (doc, expected) in cases {
            let err = parse_jwks(doc.as_bytes()).unwrap_err();
            assert!(
                err.contains(expected),
                "{doc}: {err:?} should say {expected:?}"
            );
        }
    }

    #[test]
    fn rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint_of(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
