//! Two-factor authentication through HTTP (SPEC §14): enrolment, logins with and without a
//! code, replay, skew, recovery codes, rate limits, sessions ended, `require_mfa` routes, bad
//! codes, the dialects, and the secret at rest. The codes are computed here from the secret
//! the server gave, by this file's own RFC 6238.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::smtp::SmtpSink;
use crate::common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

const PASSWORD: &str = "vX9!kq2#Lm-7";
const EMAIL: &str = "ada@example.com";
const LOGIN: &str = "mutation L($e: String!, $p: String!, $o: String) {
  tokenAuth(email: $e, password: $p, otp: $o) { success errors token refreshToken } }";
const REFRESH: &str = "mutation R($t: String) {
  refreshToken(refreshToken: $t) { success errors token refreshToken payload } }";
const SETUP: &str = "mutation { totpSetup { success errors secret otpauthUrl } }";
const CONFIRM: &str =
    "mutation C($c: String!) { totpConfirm(code: $c) { success errors recoveryCodes } }";
const DISABLE: &str = "mutation D($p: String!, $c: String!) {
  totpDisable(password: $p, code: $c) { success errors } }";
const ME: &str = "{ me { email totpEnabled } }";

/// RFC 4648 base32 (no padding), as authenticator apps read the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let index = alphabet.iter().position(|a| *a == c).expect("base32") as u32;
        value = (value << 5) | index;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// The 6-digit code of `step` (RFC 6238 over RFC 4226, HMAC-SHA-1).
fn code_at(secret: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0xf) as usize;
    let number = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", number % 1_000_000)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The current step, once at least `margin` seconds of it are left (so that a test's calls
/// all fall in it).
async fn step_with(margin: u64) -> u64 {
    let left = 30 - now() % 30;
    if left < margin {
        tokio::time::sleep(Duration::from_secs(left) + Duration::from_millis(100)).await;
    }
    now() / 30
}

#[test]
fn the_tests_own_totp_is_rfc_6238() {
    let secret = b"12345678901234567890";
    assert_eq!(code_at(secret, 59 / 30), "287082");
    assert_eq!(code_at(secret, 1_234_567_890 / 30), "005924");
    assert_eq!(base32_decode("GEZDGNBVGY3TQOJQ"), b"1234567890");
}

struct Setup {
    gate: Authgate,
    _sink: SmtpSink,
    backend: BackendServer,
}

/// A gateway on `backend` with a verified `ada@example.com`; `None` when the leg is skipped.
async fn setup(backend: Backend, env: &[(&str, &str)], routes: &str) -> Option<Setup> {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let builder = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .routes(routes);
    let (mut builder, backend) = backend.apply(builder).await?;
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let gate = builder.start(Some(&upstream)).await;
    let reg = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors } }",
            json!({"e": EMAIL, "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(reg["data"]["register"]["success"], true, "{reg}");
    verify_by_mail(&gate, &sink, EMAIL, 1).await;
    Some(Setup {
        gate,
        _sink: sink,
        backend,
    })
}

const API_ROUTE: &str = "[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n";

impl Setup {
    async fn gql(&self, query: &str, vars: Value, token: Option<&str>) -> Value {
        self.gate.graphql_as(query, vars, token).await
    }

    async fn login(&self, password: &str, otp: Option<&str>) -> Value {
        let vars = json!({"e": EMAIL, "p": password, "o": otp});
        self.gql(LOGIN, vars, None).await["data"]["tokenAuth"].clone()
    }

    /// A logged-in session: (access token, refresh token).
    async fn session(&self, otp: Option<&str>) -> (String, String) {
        let done = self.login(PASSWORD, otp).await;
        assert_eq!(done["success"], true, "{done}");
        (text(&done["token"]), text(&done["refreshToken"]))
    }

    async fn refresh(&self, refresh_token: &str) -> Value {
        let vars = json!({"t": refresh_token});
        self.gql(REFRESH, vars, None).await["data"]["refreshToken"].clone()
    }

    /// Sets TOTP up and confirms it as `token`'s caller; returns the secret and the recovery
    /// codes.
    async fn enrol(&self, token: &str) -> (Vec<u8>, Vec<String>) {
        let made = self.gql(SETUP, json!({}), Some(token)).await["data"]["totpSetup"].clone();
        assert_eq!(made["success"], true, "{made}");
        let secret = base32_decode(made["secret"].as_str().unwrap());
        let step = step_with(5).await;
        let confirmed = self
            .gql(CONFIRM, json!({"c": code_at(&secret, step)}), Some(token))
            .await["data"]["totpConfirm"]
            .clone();
        assert_eq!(confirmed["success"], true, "{confirmed}");
        let codes = confirmed["recoveryCodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(text)
            .collect();
        (secret, codes)
    }

    async fn totp_enabled(&self, token: &str) -> bool {
        let me = self.gql(ME, json!({}), Some(token)).await;
        me["data"]["me"]["totpEnabled"].as_bool().unwrap()
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn code(payload: &Value) -> String {
    payload["errors"]
        .as_object()
        .and_then(|f| f.values().next())
        .and_then(|list| list[0]["code"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The `amr` claim of an access token.
fn amr(token: &str) -> Value {
    authgate::jwt::decoded_claims(token).unwrap()["amr"].clone()
}

suite!(enrol_confirm_and_log_in_with_codes, |backend| {
    let Some(mut s) = setup(backend, &[], API_ROUTE).await else {
        return;
    };
    let (caller, caller_refresh) = s.session(None).await;
    let (_, other_refresh) = s.session(None).await;
    assert_eq!(amr(&caller), json!(["pwd"]));
    assert!(!s.totp_enabled(&caller).await);

    // Setup shows a secret and its URL, and changes nothing yet.
    let made = s.gql(SETUP, json!({}), Some(&caller)).await["data"]["totpSetup"].clone();
    assert_eq!(made["success"], true, "{made}");
    let secret_text = text(&made["secret"]);
    let url = text(&made["otpauthUrl"]);
    assert!(
        url.starts_with("otpauth://totp/127.0.0.1:ada%40example.com?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret_text}")), "{url}");
    assert!(url.contains("issuer=127.0.0.1"), "{url}");
    let secret = base32_decode(&secret_text);
    assert_eq!(secret.len(), 20);
    assert!(!s.totp_enabled(&caller).await);
    assert_eq!(s.login(PASSWORD, None).await["success"], true);

    // A wrong or malformed code does not confirm; one step of skew does.
    let step = step_with(20).await;
    for bad in [code_at(&secret, step + 2), "abcdef".into(), "".into()] {
        let refused = s.gql(CONFIRM, json!({"c": bad}), Some(&caller)).await;
        assert_eq!(
            code(&refused["data"]["totpConfirm"]),
            "invalid_otp",
            "{refused}"
        );
    }
    let confirmed = s
        .gql(
            CONFIRM,
            json!({"c": code_at(&secret, step - 1)}),
            Some(&caller),
        )
        .await["data"]["totpConfirm"]
        .clone();
    assert_eq!(confirmed["success"], true, "{confirmed}");
    let recovery: Vec<String> = confirmed["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(recovery.len(), 10);
    assert!(s.totp_enabled(&caller).await);

    // The other sessions ended; the caller's goes on, and keeps its password-only amr.
    assert_eq!(code(&s.refresh(&other_refresh).await), "invalid_token");
    let refreshed = s.refresh(&caller_refresh).await;
    assert_eq!(refreshed["success"], true, "{refreshed}");
    assert_eq!(amr(&text(&refreshed["token"])), json!(["pwd"]));
    let again = s.gql(SETUP, json!({}), Some(&caller)).await;
    assert_eq!(code(&again["data"]["totpSetup"]), "totp_enabled");

    // No code: no tokens. A wrong password says so whether or not a code came with it.
    let missing = s.login(PASSWORD, None).await;
    assert_eq!(code(&missing), "otp_required", "{missing}");
    assert!(missing["token"].is_null() && missing["refreshToken"].is_null());
    for otp in [
        None,
        Some(code_at(&secret, step)),
        Some("000000".to_string()),
    ] {
        let wrong = s.login("not-the-password", otp.as_deref()).await;
        assert_eq!(code(&wrong), "invalid_credentials", "{wrong}");
    }

    // Wrong, malformed, replayed, too old or too far ahead: invalid_otp, never a 500.
    let used = code_at(&secret, step - 1);
    let good: Vec<String> = (step - 1..=step + 1).map(|t| code_at(&secret, t)).collect();
    let wrong = ["123456", "654321", "111111"]
        .into_iter()
        .find(|c| !good.iter().any(|g| g == c))
        .unwrap();
    for bad in [
        used.as_str(),
        wrong,
        "abcdef",
        "1234567",
        "12345",
        "",
        "  ",
        "१२३४५६",
        &"9".repeat(10_000),
        &code_at(&secret, step + 2),
    ] {
        let refused = s.login(PASSWORD, Some(bad)).await;
        assert_eq!(code(&refused), "invalid_otp", "{bad:.20}: {refused}");
        assert!(refused["token"].is_null());
    }

    // The current code works once; the next step's too; an older one after it no more.
    let (with_code, with_code_refresh) = s.session(Some(&code_at(&secret, step))).await;
    assert_eq!(amr(&with_code), json!(["pwd", "otp"]));
    let replay = s.login(PASSWORD, Some(&code_at(&secret, step))).await;
    assert_eq!(code(&replay), "invalid_otp");
    assert_eq!(
        s.login(PASSWORD, Some(&code_at(&secret, step + 1))).await["success"],
        true
    );
    let older = s.login(PASSWORD, Some(&code_at(&secret, step))).await;
    assert_eq!(code(&older), "invalid_otp");
    // Refreshed tokens keep the amr of the login that started the family.
    let refreshed = s.refresh(&with_code_refresh).await;
    assert_eq!(amr(&text(&refreshed["token"])), json!(["pwd", "otp"]));
    assert_eq!(refreshed["payload"]["amr"], json!(["pwd", "otp"]));

    // A recovery code works once, however it is typed.
    let (by_recovery, by_recovery_refresh) = s.session(Some(&recovery[0])).await;
    assert_eq!(amr(&by_recovery), json!(["pwd", "otp"]));
    assert_eq!(
        code(&s.login(PASSWORD, Some(&recovery[0])).await),
        "invalid_otp"
    );
    let typed = recovery[1].replace('-', " ").to_uppercase();
    assert_eq!(s.login(PASSWORD, Some(&typed)).await["success"], true);
    assert_eq!(
        code(&s.login(PASSWORD, Some(&recovery[1])).await),
        "invalid_otp"
    );

    // Disabling takes the password and a code, and ends the other sessions.
    let (_, survivor_refresh) = s.session(Some(&recovery[2])).await;
    let vars = |p: &str, c: &str| json!({"p": p, "c": c});
    let refused = s
        .gql(
            DISABLE,
            vars("not-the-password", &recovery[3]),
            Some(&by_recovery),
        )
        .await;
    assert_eq!(code(&refused["data"]["totpDisable"]), "invalid_password");
    let refused = s
        .gql(DISABLE, vars(PASSWORD, "000000"), Some(&by_recovery))
        .await;
    assert_eq!(code(&refused["data"]["totpDisable"]), "invalid_otp");
    let unauthenticated = s.gql(DISABLE, vars(PASSWORD, &recovery[3]), None).await;
    assert_eq!(
        code(&unauthenticated["data"]["totpDisable"]),
        "unauthenticated"
    );
    let done = s
        .gql(DISABLE, vars(PASSWORD, &recovery[3]), Some(&by_recovery))
        .await;
    assert_eq!(done["data"]["totpDisable"]["success"], true, "{done}");
    assert!(!s.totp_enabled(&by_recovery).await);
    assert_eq!(code(&s.refresh(&survivor_refresh).await), "invalid_token");
    assert_eq!(
        code(&s.refresh(&text(&refreshed["refreshToken"])).await),
        "invalid_token"
    );
    let goes_on = s.refresh(&by_recovery_refresh).await;
    assert_eq!(
        goes_on["success"], true,
        "the caller's session goes on: {goes_on}"
    );
    assert_eq!(amr(&text(&goes_on["token"])), json!(["pwd", "otp"]));

    // Off again: the password alone logs in, and a code sent along is ignored.
    let plain = s.login(PASSWORD, None).await;
    assert_eq!(plain["success"], true, "{plain}");
    assert_eq!(amr(&text(&plain["token"])), json!(["pwd"]));
    assert_eq!(s.login(PASSWORD, Some("garbage")).await["success"], true);
    s.gate.assert_healthy().await;
});

suite!(otp_attempts_count_against_the_login_limit, |backend| {
    let env = [("AUTHGATE_RATE_LIMIT__LOGIN", "4/1m")];
    let Some(s) = setup(backend, &env, API_ROUTE).await else {
        return;
    };
    let token = s.session(None).await.0;
    let (secret, _) = s.enrol(&token).await;
    for _ in 0..3 {
        assert_eq!(
            code(&s.login(PASSWORD, Some("000000")).await),
            "invalid_otp"
        );
    }
    let step = step_with(3).await;
    let limited = s.login(PASSWORD, Some(&code_at(&secret, step))).await;
    assert_eq!(code(&limited), "rate_limited", "{limited}");
    assert!(limited["token"].is_null());
});

suite!(a_code_sent_by_many_at_once_logs_in_one, |backend| {
    let Some(mut s) = setup(backend, &[], API_ROUTE).await else {
        return;
    };
    let token = s.session(None).await.0;
    let (secret, recovery) = s.enrol(&token).await;
    let step = step_with(8).await;
    for typed in [code_at(&secret, step + 1), recovery[0].clone()] {
        let answers =
            futures_util::future::join_all((0..8).map(|_| s.login(PASSWORD, Some(&typed)))).await;
        let won = answers.iter().filter(|a| a["success"] == true).count();
        assert_eq!(won, 1, "{answers:?}");
        for lost in answers.iter().filter(|a| a["success"] != true) {
            assert_eq!(code(lost), "invalid_otp", "{lost}");
        }
    }
    // The store gone: a clear refusal, no tokens, never a 500.
    if let Some(redis) = s.backend.redis() {
        redis.stop();
        let down = s.login(PASSWORD, Some(&recovery[1])).await;
        assert_eq!(code(&down), "service_unavailable", "{down}");
        assert!(down["token"].is_null());
        s.backend.redis().unwrap().restart();
        let back = s.login(PASSWORD, Some(&recovery[1])).await;
        assert_eq!(back["success"], true, "{back}");
        s.gate.assert_healthy().await;
    }
});

#[tokio::test]
async fn codes_cannot_be_set_up_without_a_verified_login() {
    let Some(s) = setup(Backend::Sled, &[], API_ROUTE).await else {
        return;
    };
    let anonymous = s.gql(SETUP, json!({}), None).await;
    assert_eq!(code(&anonymous["data"]["totpSetup"]), "unauthenticated");
    let confirm = s.gql(CONFIRM, json!({"c": "123456"}), None).await;
    assert_eq!(code(&confirm["data"]["totpConfirm"]), "unauthenticated");

    let reg = s
        .gql(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success token } }",
            json!({"e": "new@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    let unverified = text(&reg["data"]["register"]["token"]);
    let refused = s.gql(SETUP, json!({}), Some(&unverified)).await;
    assert_eq!(
        code(&refused["data"]["totpSetup"]),
        "not_verified",
        "{refused}"
    );

    // Confirming with nothing set up, or with a forged token, changes nothing.
    let token = s.session(None).await.0;
    let nothing = s.gql(CONFIRM, json!({"c": "123456"}), Some(&token)).await;
    assert_eq!(code(&nothing["data"]["totpConfirm"]), "invalid_otp");
    let forged = format!("{token}x");
    let refused = s.gql(SETUP, json!({}), Some(&forged)).await;
    assert_eq!(code(&refused["data"]["totpSetup"]), "unauthenticated");
    assert!(!s.totp_enabled(&token).await);
}

#[tokio::test]
async fn require_mfa_routes_take_only_tokens_of_a_second_factor() {
    let routes = "[[routes]]\nprefix = \"/api\"\nupstream = \"{upstream}\"\n\n\
                  [[routes]]\nprefix = \"/admin\"\nupstream = \"{upstream}\"\nrequire_mfa = true\n";
    let Some(s) = setup(Backend::Sled, &[], routes).await else {
        return;
    };
    let (password_only, _) = s.session(None).await;
    let key = s
        .gql(
            "mutation { createApiKey(name: \"ci\") { success key } }",
            json!({}),
            Some(&password_only),
        )
        .await["data"]["createApiKey"]["key"]
        .clone();
    let key = text(&key);
    let (secret, _) = s.enrol(&password_only).await;
    let step = step_with(3).await;
    let (with_otp, _) = s.session(Some(&code_at(&secret, step + 1))).await;

    let get = |path: &str, header: Option<(&str, String)>| {
        let mut req = client().get(s.gate.url(path));
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        req.send()
    };
    let refused = get("/admin/x", Some(("authorization", bearer(&password_only))))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "mfa_required", "{body}");
    for header in [
        ("x-api-key", key.clone()),
        ("authorization", format!("Token {key}")),
    ] {
        let refused = get("/admin/x", Some(header)).await.unwrap();
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "mfa_required");
    }
    let none = get("/admin/x", None).await.unwrap();
    assert_eq!(none.status(), 401);
    let passed = get("/admin/x", Some(("authorization", bearer(&with_otp))))
        .await
        .unwrap();
    assert_eq!(passed.status(), 200);
    let doc: Value = passed.json().await.unwrap();
    assert_eq!(doc["path"], "/admin/x");
    // Other routes take both kinds of token, and the key.
    for header in [
        ("authorization", bearer(&password_only)),
        ("authorization", bearer(&with_otp)),
        ("x-api-key", key.clone()),
    ] {
        assert_eq!(get("/api/x", Some(header)).await.unwrap().status(), 200);
    }
}

/// Every byte under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend(bytes);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_secret_and_the_recovery_codes_are_not_stored_in_the_clear() {
    let Some(s) = setup(Backend::Sled, &[], API_ROUTE).await else {
        return;
    };
    let token = s.session(None).await.0;
    let made = s.gql(SETUP, json!({}), Some(&token)).await["data"]["totpSetup"].clone();
    let secret_text = text(&made["secret"]);
    let secret = base32_decode(&secret_text);
    let step = step_with(3).await;
    let confirmed = s
        .gql(CONFIRM, json!({"c": code_at(&secret, step)}), Some(&token))
        .await;
    let codes = confirmed["data"]["totpConfirm"]["recoveryCodes"].clone();
    let dir = s.gate.dir.path().join("data");
    let stored = all_bytes(&dir);
    // The store is read as written: the account's email is there in the clear.
    assert!(contains(&stored, EMAIL.as_bytes()));
    assert!(!contains(&stored, secret_text.as_bytes()));
    assert!(!contains(&stored, &secret));
    for recovery in codes.as_array().unwrap() {
        let shown = text(recovery);
        assert!(!contains(&stored, shown.as_bytes()));
        assert!(!contains(&stored, shown.replace('-', "").as_bytes()));
    }
    // ...and still works after a restart, from what was stored.
    let dir = s.gate.kill();
    let gate = Authgate::builder()
        .dir(dir)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .start(None)
        .await;
    let step = step_with(3).await;
    let vars = json!({"e": EMAIL, "p": PASSWORD, "o": code_at(&secret, step + 1)});
    let done = gate.graphql_as(LOGIN, vars, None).await;
    assert_eq!(done["data"]["tokenAuth"]["success"], true, "{done}");
}

#[tokio::test]
async fn dialects_serve_totp_and_take_otp_where_the_password_goes() {
    use crate::common::dialect::{self, django_error, jwt_claims, Call};
    let s = dialect::setup(&[]).await;
    let gate = &s.gate;
    let django = |token: Option<&str>| {
        Call::new(gate, "/django/graphql").auth_opt(token.map(|t| format!("JWT {t}")))
    };
    let reg = django(None)
        .send(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors token } }",
            json!({"e": EMAIL, "p": PASSWORD}),
        )
        .await;
    assert_eq!(
        reg.body["data"]["register"]["success"], true,
        "{}",
        reg.text
    );
    verify_by_mail(gate, &s.sink, EMAIL, 1).await;
    let token = text(&reg.body["data"]["register"]["token"]);

    // django: the native operations under the original's payload names, me.totpEnabled.
    let made = django(Some(&token))
        .send(
            "mutation { totpSetup { success errors secret otpauthUrl } }",
            json!({}),
        )
        .await;
    let made = &made.body["data"]["totpSetup"];
    assert_eq!(made["success"], true, "{made}");
    let secret = base32_decode(made["secret"].as_str().unwrap());
    let step = step_with(10).await;
    let confirm =
        "mutation C($c: String!) { totpConfirm(code: $c) { success errors recoveryCodes } }";
    let bad = django(Some(&token))
        .send(confirm, json!({"c": "12ab56"}))
        .await;
    assert_eq!(
        django_error(&bad.body["data"]["totpConfirm"]).1,
        "invalid_otp"
    );
    let confirmed = django(Some(&token))
        .send(confirm, json!({"c": code_at(&secret, step)}))
        .await;
    let codes = confirmed.body["data"]["totpConfirm"]["recoveryCodes"].clone();
    assert_eq!(
        codes.as_array().map(Vec::len),
        Some(10),
        "{}",
        confirmed.text
    );
    let me = django(Some(&token))
        .send("{ me { email totpEnabled } }", json!({}))
        .await;
    assert_eq!(me.body["data"]["me"]["totpEnabled"], true, "{}", me.text);

    let login = "mutation L($e: String!, $p: String!, $o: String) {
      tokenAuth(email: $e, password: $p, otp: $o) { success errors token payload } }";
    let missing = django(None)
        .send(login, json!({"e": EMAIL, "p": PASSWORD}))
        .await;
    let missing = &missing.body["data"]["tokenAuth"];
    assert_eq!(django_error(missing).1, "otp_required", "{missing}");
    assert!(missing["token"].is_null());
    let done = django(None)
        .send(
            login,
            json!({"e": EMAIL, "p": PASSWORD, "o": code_at(&secret, step + 1)}),
        )
        .await;
    let done = &done.body["data"]["tokenAuth"];
    assert_eq!(done["success"], true, "{done}");
    assert_eq!(done["payload"]["amr"], json!(["pwd", "otp"]));

    // relay: the same, with one input.
    let relay = Call::new(gate, "/relay/graphql")
        .send(
            "mutation L($input: ObtainJSONWebTokenInput!) { tokenAuth(input: $input) { success errors } }",
            json!({"input": {"email": EMAIL, "password": PASSWORD, "otp": "000000"}}),
        )
        .await;
    assert_eq!(
        django_error(&relay.body["data"]["tokenAuth"]).1,
        "invalid_otp",
        "{}",
        relay.text
    );

    // krypton: login(email, password, otp) and errors in its form.
    let krypton = "mutation login($email: String!, $password: String!, $otp: String) {
      login(email: $email, password: $password, otp: $otp) { token } }";
    let kind = |answer: &dialect::Answer| text(&answer.body["errors"][0]["type"]);
    let call = |vars: Value| async move { Call::new(gate, "/krypton").send(krypton, vars).await };
    let missing = call(json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(kind(&missing), "OtpRequiredError", "{}", missing.text);
    let wrong = call(json!({"email": EMAIL, "password": PASSWORD, "otp": "0"})).await;
    assert_eq!(kind(&wrong), "WrongOtpError", "{}", wrong.text);
    let bad_password = call(json!({"email": EMAIL, "password": "nope-nope", "otp": "0"})).await;
    assert_eq!(kind(&bad_password), "UserNotFoundError");

    // craft: authenticate(email, password, otp); a code owed is requiresTwoFactor, no tokens.
    let craft = "mutation A($e: String!, $p: String!, $o: String) {
      authenticate(email: $e, password: $p, otp: $o) { jwt refreshToken requiresTwoFactor user { id } } }";
    let owed = Call::new(gate, "/craft/api")
        .send(craft, json!({"e": EMAIL, "p": PASSWORD}))
        .await;
    let auth = &owed.body["data"]["authenticate"];
    assert_eq!(auth["requiresTwoFactor"], true, "{}", owed.text);
    assert!(auth["jwt"].is_null() && auth["refreshToken"].is_null() && auth["user"].is_null());
    assert!(owed.set_cookie("gql_refreshToken").is_none());
    let wrong = Call::new(gate, "/craft/api")
        .send(craft, json!({"e": EMAIL, "p": PASSWORD, "o": "0"}))
        .await;
    assert!(wrong.body["data"].is_null(), "{}", wrong.text);
    let done = Call::new(gate, "/craft/api")
        .send(
            craft,
            json!({"e": EMAIL, "p": PASSWORD, "o": text(&codes[1])}),
        )
        .await;
    let auth = &done.body["data"]["authenticate"];
    assert_eq!(auth["requiresTwoFactor"], false, "{}", done.text);
    assert_eq!(
        jwt_claims(&text(&auth["jwt"]))["amr"],
        json!(["pwd", "otp"])
    );

    // karrio: the REST login takes otp beside the password.
    let rest = |body: Value| async move {
        Call::new(gate, "/karrio/api/token")
            .raw("application/json", body.to_string().into_bytes())
            .await
    };
    let code_of = |answer: &dialect::Answer| text(&answer.body["errors"][0]["code"]);
    let owed = rest(json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!((owed.status, code_of(&owed)), (401, "otp_required".into()));
    let wrong = rest(json!({"email": EMAIL, "password": PASSWORD, "otp": "0"})).await;
    assert_eq!((wrong.status, code_of(&wrong)), (401, "invalid_otp".into()));
    let bad_password = rest(json!({"email": EMAIL, "password": "nope-nope", "otp": "0"})).await;
    assert_eq!(code_of(&bad_password), "no_active_account", "no oracle");
    let done = rest(json!({"email": EMAIL, "password": PASSWORD, "otp": text(&codes[2])})).await;
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(
        jwt_claims(&text(&done.body["access"]))["amr"],
        json!(["pwd", "otp"])
    );

    let recovery = text(&codes[0]);
    let done = call(json!({"email": EMAIL, "password": PASSWORD, "otp": recovery})).await;
    let token = text(&done.body["data"]["login"]["token"]);
    assert_eq!(
        jwt_claims(&token)["amr"],
        json!(["pwd", "otp"]),
        "{}",
        done.text
    );
}

/// A refresh token as stored before families kept their amr: plain text and its hash.
fn old_token() -> (String, String) {
    let token = "a-refresh-token-stored-before-families-kept-their-amr".to_string();
    let hash = authgate::accounts::secret::hash(&token);
    (token, hash)
}

/// What refreshing a token of an old family gives: a pair of a password login, same family.
async fn refreshes_as_a_password_login(s: &Setup, token: &str) {
    let refreshed = s.refresh(token).await;
    assert_eq!(refreshed["success"], true, "{refreshed}");
    let claims = authgate::jwt::decoded_claims(&text(&refreshed["token"])).unwrap();
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["sid"], "oldfamily");
    let next = s.refresh(&text(&refreshed["refreshToken"])).await;
    assert_eq!(next["success"], true, "{next}");
}

#[tokio::test]
async fn families_stored_before_amr_was_kept_refresh_as_password_logins_in_sled() {
    let Some(s) = setup(Backend::Sled, &[], API_ROUTE).await else {
        return;
    };
    let token = s.session(None).await.0;
    let me = s.gql("{ me { id } }", json!({}), Some(&token)).await;
    let user_id = text(&me["data"]["me"]["id"]);
    let (old, hash) = old_token();
    let Setup {
        gate,
        _sink,
        backend,
    } = s;
    let dir = gate.kill();
    {
        let db = sled::open(dir.path().join("data")).unwrap();
        let record = json!({"record": {"user_id": user_id, "family": "oldfamily",
            "expires_at": now() + 3600}, "used": false});
        db.open_tree("refresh_tokens")
            .unwrap()
            .insert(hash.as_bytes(), record.to_string().as_bytes())
            .unwrap();
        db.open_tree("refresh_families")
            .unwrap()
            .insert("oldfamily", json!([hash]).to_string().as_bytes())
            .unwrap();
        db.open_tree("refresh_users")
            .unwrap()
            .insert(
                user_id.as_bytes(),
                json!(["oldfamily"]).to_string().as_bytes(),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let gate = Authgate::builder().dir(dir).start(None).await;
    let s = Setup {
        gate,
        _sink,
        backend,
    };
    refreshes_as_a_password_login(&s, &old).await;
}

#[tokio::test]
async fn families_stored_before_amr_was_kept_refresh_as_password_logins_in_redis() {
    let Some(s) = setup(Backend::Redis, &[], API_ROUTE).await else {
        return;
    };
    let token = s.session(None).await.0;
    let me = s.gql("{ me { id } }", json!({}), Some(&token)).await;
    let user_id = text(&me["data"]["me"]["id"]);
    let (old, hash) = old_token();
    let BackendServer::Redis(redis) = &s.backend else {
        panic!("a redis backend");
    };
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let expires = (now() + 3600).to_string();
    let key = format!("authgate:rt:{hash}");
    let _: () = ::redis::cmd("HSET")
        .arg(&key)
        .arg(&["u", &user_id, "f", "oldfamily", "x", &expires, "s", "a"][..])
        .query(&mut conn)
        .unwrap();
    let _: () = ::redis::cmd("SADD")
        .arg("authgate:rf:oldfamily")
        .arg(&hash)
        .query(&mut conn)
        .unwrap();
    let _: () = ::redis::cmd("SADD")
        .arg(format!("authgate:ru:{user_id}"))
        .arg("oldfamily")
        .query(&mut conn)
        .unwrap();
    refreshes_as_a_password_login(&s, &old).await;
}
