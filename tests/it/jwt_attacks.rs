//! The RFC 8725 attack matrix against a running gateway: every forged, altered or malformed
//! token is a 401 with `error="invalid_token"` and a reason, and the server stays healthy.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token with any header, any payload and any signature bytes.
fn forge(header: Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Re-signs `claims` with our real key but with extra header fields.
fn with_header_field(gate: &Authgate, field: &str, value: Value) -> String {
    let tokens = gate.tokens();
    let good = tokens.sign(&claims(&tokens)).unwrap();
    let mut parts = good.split('.');
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let mut header = header.as_object().unwrap().clone();
    header.insert(field.into(), value);
    // The signature no longer matches the header, but the header must be refused before
    // any key is chosen: that is what the reason shows.
    format!(
        "{}.{}.{}",
        b64(&Value::Object(header)),
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

async fn assert_refused(gate: &Authgate, token: &str, reason_part: &str, case: &str) {
    let resp = client()
        .get(gate.url("/api"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{case}");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge
            .starts_with(r#"Bearer realm="authgate", error="invalid_token", error_description=""#),
        "{case}: {challenge}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{case}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(reason_part),
        "{case}: {description:?} should mention {reason_part:?}"
    );
    assert!(
        challenge.contains(description.replace('"', "'").as_str()),
        "{case}"
    );
}

#[tokio::test]
async fn attack_matrix_is_refused_with_reasons() {
    let upstream = Upstream::start().await;
    let mut gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;
    let tokens = gate.tokens();
    let set = tokens.keys().snapshot();
    let ours = set.current().unwrap();
    let good = tokens.sign(&claims(&tokens)).unwrap();
    let payload: Value = serde_json::to_value(claims(&tokens)).unwrap();

    // alg: none, with and without a signature.
    let none = forge(json!({"alg": "none", "typ": "JWT"}), &payload, b"");
    assert_refused(&gate, &none, "algorithm", "alg none").await;
    let none_upper = forge(json!({"alg": "NONE"}), &payload, b"x");
    assert_refused(&gate, &none_upper, "algorithm", "alg NONE").await;

    // HS256 keyed with our public key PEM (the classic key-confusion attack).
    let hs = jsonwebtoken::encode(
        &Header {
            kid: Some(ours.kid.clone()),
            ..Header::new(Algorithm::HS256)
        },
        &payload,
        &EncodingKey::from_secret(ours.public_pem.as_bytes()),
    )
    .unwrap();
    assert_refused(&gate, &hs, "algorithm", "HS256 with public key").await;

    // A foreign RSA key that claims our kid.
    let foreign = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let foreign_pem = foreign.to_pkcs8_pem(LineEnding::LF).unwrap();
    let forged = jsonwebtoken::encode(
        &Header {
            kid: Some(ours.kid.clone()),
            ..Header::new(Algorithm::RS256)
        },
        &payload,
        &EncodingKey::from_rsa_pem(foreign_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_refused(&gate, &forged, "signature", "foreign key, our kid").await;

    // Tampered payload: staff escalated, signature kept.
    let mut escalated = payload.clone();
    escalated["staff"] = json!(true);
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    assert_refused(&gate, &tampered, "signature", "tampered payload").await;

    // Time and audience claims, correctly signed.
    let mut expired = claims(&tokens);
    expired.exp = expired.iat - 3600;
    assert_refused(&gate, &tokens.sign(&expired).unwrap(), "expired", "expired").await;
    let mut early = claims(&tokens);
    early.nbf = early.iat + 3600;
    early.exp = early.nbf + 900;
    assert_refused(
        &gate,
        &tokens.sign(&early).unwrap(),
        "not valid yet",
        "nbf future",
    )
    .await;
    let mut wrong_iss = claims(&tokens);
    wrong_iss.iss = "https://evil.example".into();
    assert_refused(
        &gate,
        &tokens.sign(&wrong_iss).unwrap(),
        "issuer",
        "wrong iss",
    )
    .await;

    // Unknown kid.
    let unknown = forge(
        json!({"alg": "RS256", "typ": "JWT", "kid": "no-such-key"}),
        &payload,
        parts[2].as_bytes(),
    );
    assert_refused(&gate, &unknown, "unknown key", "unknown kid").await;

    // Key-location headers that would let the token choose its own key.
    for (field, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        ("x5c", json!(["MIIB"])),
    ] {
        let token = with_header_field(&gate, field, value);
        assert_refused(&gate, &token, field, field).await;
    }

    // Structurally broken tokens.
    let truncated = &good[..good.len() - 10];
    assert_refused(&gate, truncated, "signature", "truncated signature").await;
    let two_parts = format!("{}.{}", parts[0], parts[1]);
    assert_refused(&gate, &two_parts, "three", "two segments").await;
    assert_refused(&gate, "%%%.%%%.%%%", "header", "garbage base64").await;
    assert_refused(&gate, "e30.e30.e30", "algorithm", "empty JSON objects").await;
    let not_json = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode("not json"),
        parts[1],
        parts[2]
    );
    assert_refused(&gate, &not_json, "header", "header not JSON").await;
    let huge = "a".repeat(9000) + ".b.c";
    assert_refused(&gate, &huge, "three", "oversized token").await;

    // Empty bearer, and a bearer given twice.
    for auth in ["Bearer", "Bearer ", "JWT"] {
        let resp = client()
            .get(gate.url("/api"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "empty bearer token");
    }
    let resp = client()
        .get(gate.url("/api"))
        .header("authorization", bearer(&good))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // And the genuine token still passes.
    let resp = client()
        .get(gate.url("/api"))
        .header("authorization", bearer(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gate.assert_healthy().await;

    let metrics = gate.metrics().await;
    for reason in [
        "algorithm",
        "signature",
        "expired",
        "not_yet_valid",
        "issuer",
        "unknown_kid",
        "forbidden_header",
        "malformed",
        "bad_header",
    ] {
        assert!(
            metrics.contains(&format!(
                r#"authgate_auth_total{{outcome="denied",reason="{reason}"}}"#
            )),
            "no metric for {reason}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn audience_is_checked_when_configured() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .env("AUTHGATE_JWT__AUDIENCE", "orders-api")
        .start(Some(&upstream))
        .await;
    let tokens = tokens_for(&gate.keys_dir(), &gate.base, Some("orders-api"));
    let good = tokens.issue(&subject()).unwrap().0;
    let resp = client()
        .get(gate.url("/x"))
        .header("authorization", bearer(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut wrong = claims(&tokens);
    wrong.aud = Some("billing-api".into());
    assert_refused(
        &gate,
        &tokens.sign(&wrong).unwrap(),
        "audience",
        "wrong aud",
    )
    .await;
    let mut missing = claims(&tokens);
    missing.aud = None;
    assert_refused(&gate, &tokens.sign(&missing).unwrap(), "audience", "no aud").await;
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew() {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;
    let tokens = gate.tokens();
    let mut just_expired = claims(&tokens);
    just_expired.exp = just_expired.iat - 5; // within the default 30s leeway
    let resp = client()
        .get(gate.url("/x"))
        .header(
            "authorization",
            bearer(&tokens.sign(&just_expired).unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
