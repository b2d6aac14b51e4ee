//! Key publishing and rotation through the running server.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::*;
use authgate::keys;
use rsa::pkcs8::DecodePublicKey;
use serde_json::Value;

async fn jwks(gate: &Authgate) -> Value {
    client()
        .get(gate.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn start() -> (Upstream, Authgate) {
    let upstream = Upstream::start().await;
    let gate = Authgate::builder()
        .routes("[[routes]]\nprefix = \"/\"\nupstream = \"{upstream}\"\n")
        .start(Some(&upstream))
        .await;
    (upstream, gate)
}

#[tokio::test]
async fn jwks_public_key_and_discovery_agree() {
    let (_up, gate) = start().await;
    let set = jwks(&gate).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["e"], "AQAB");

    // publicKey is the same key as the JWK, and the kid is its RFC 7638 thumbprint.
    let reply = gate.graphql("{ publicKey }").await;
    let pem = reply["data"]["publicKey"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let public = rsa::RsaPublicKey::from_public_key_pem(pem).unwrap();
    let from_pem = keys::Jwk::from_public(&public);
    assert_eq!(jwk["n"], from_pem.n);
    assert_eq!(jwk["kid"], keys::thumbprint(&public));

    // Tokens carry that kid.
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
    assert_eq!(header.typ.as_deref(), Some("JWT"));

    let discovery: Value = client()
        .get(gate.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], gate.base);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", gate.base)
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
}

#[tokio::test]
async fn private_key_is_mode_0600() {
    let (_up, gate) = start().await;
    let set = keys::KeyRing::open(&gate.keys_dir()).unwrap().snapshot();
    let mode = std::fs::metadata(set.current().unwrap().file.as_ref().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

async fn wait_for_kids(gate: &Authgate, expected: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let set = jwks(gate).await;
        let kids: Vec<String> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        if kids.len() == expected || Instant::now() > deadline {
            return kids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rotation_is_picked_up_and_old_tokens_stay_valid() {
    let (_up, gate) = start().await;
    let old_token = gate.tokens().issue(&subject()).unwrap().0;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();

    // `authgate keys rotate` while the server runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["keys", "rotate", "--config"])
        .arg(gate.dir.path().join("authgate.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_kid, old_kid);

    let kids = wait_for_kids(&gate, 2, Duration::from_secs(10)).await;
    assert_eq!(kids, [new_kid.clone(), old_kid.clone()], "newest first");
    // publicKey now shows the new signing key.
    let reply = gate.graphql("{ publicKey }").await;
    let public =
        rsa::RsaPublicKey::from_public_key_pem(reply["data"]["publicKey"].as_str().unwrap())
            .unwrap();
    assert_eq!(keys::thumbprint(&public), new_kid);

    let new_token = gate.tokens().issue(&subject()).unwrap().0;
    for token in [&old_token, &new_token] {
        let resp = client()
            .get(gate.url("/x"))
            .header("authorization", bearer(token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // Retiring the old key revokes what it signed; SIGHUP makes it immediate.
    keys::retire(&gate.keys_dir(), &old_kid).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gate.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let kids = wait_for_kids(&gate, 1, Duration::from_secs(10)).await;
    assert_eq!(kids, [new_kid]);
    let resp = client()
        .get(gate.url("/x"))
        .header("authorization", bearer(&old_token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_description"], "unknown key id");
}

#[tokio::test]
async fn a_broken_key_file_keeps_the_previous_keys_in_service() {
    let (_up, mut gate) = start().await;
    let token = gate.tokens().issue(&subject()).unwrap().0;
    let bad = gate.keys_dir().join("9999999999-broken.key.pem");
    std::fs::write(&bad, "not a key").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let g = &gate;
    eventually(
        Duration::from_secs(10),
        "the key watcher tries the broken file",
        move || async move { g.log().contains("key reload failed") },
    )
    .await;
    let resp = client()
        .get(gate.url("/x"))
        .header("authorization", bearer(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(gate.log().contains("key reload failed"), "{}", gate.log());
    gate.assert_healthy().await;
}
