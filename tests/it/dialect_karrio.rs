//! The karrio dialect at `/karrio` through HTTP against the real binary, as Karrio's dashboard
//! and API clients talk to it: the REST token endpoints with JSON bodies, GraphQL documents
//! with `input:` variables of the original's type names and `Authorization: Bearer`, keys as
//! `Authorization: Token key_…` and `X-API-Key`, links read from real mail.

use crate::common::dialect::*;
use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::{json, Value};

const GQL: &str = "/karrio/graphql";
const DASHBOARD: &str = "http://app.test:3000";

const KARRIO: &str = r#"
[[routes]]
prefix = "/api"
upstream = "{upstream}"

[[dialects]]
kind = "karrio"
prefix = "/karrio"
redirect_origins = ["http://app.test:3000"]
"#;

const REGISTER: &str = "mutation register_user($data: RegisterUserMutationInput!) {
  register_user(input: $data) { user { email full_name is_staff date_joined } errors { field messages } } }";
const CONFIRM_EMAIL: &str = "mutation confirm_email($data: ConfirmEmailMutationInput!) {
  confirm_email(input: $data) { success } }";
const REQUEST_RESET: &str =
    "mutation request_password_reset($data: RequestPasswordResetMutationInput!) {
  request_password_reset(input: $data) { errors { field messages } } }";
const CONFIRM_RESET: &str =
    "mutation confirm_password_reset($data: ConfirmPasswordResetMutationInput!) {
  confirm_password_reset(input: $data) { errors { field messages } } }";
const CHANGE_PASSWORD: &str = "mutation change_password($data: ChangePasswordMutationInput!) {
  change_password(input: $data) { errors { field messages } } }";
const UPDATE_USER: &str = "mutation update_user($data: UpdateUserInput!) {
  update_user(input: $data) { user { email full_name is_staff is_superuser last_login date_joined permissions } errors { field messages } } }";
const MUTATE_TOKEN: &str = "mutation mutate_token($data: TokenMutationInput!) {
  mutate_token(input: $data) { token { key } errors { field messages } } }";
const GET_USER: &str =
    "query GetUser { user { email full_name is_staff is_superuser last_login date_joined permissions } }";
const GET_TOKEN: &str =
    "query GetToken($org_id: String) { token(org_id: $org_id) { key created } }";

struct Karrio {
    gate: Authgate,
    sink: SmtpSink,
    _upstream: Upstream,
    backend: BackendServer,
}

async fn karrio(env: &[(&str, &str)]) -> Karrio {
    karrio_on(Backend::Sled, env)
        .await
        .expect("the embedded store")
}

/// A server with the karrio dialect on `backend` (`None`: that leg is skipped here).
async fn karrio_on(backend: Backend, env: &[(&str, &str)]) -> Option<Karrio> {
    let sink = SmtpSink::start().await;
    let upstream = Upstream::start().await;
    let builder = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__LOGIN", "1000/1m")
        .env("AUTHGATE_RATE_LIMIT__REGISTER", "1000/1h")
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "1000/1h")
        .env("AUTHGATE_ACCOUNTS__ARGON2_MEMORY_KIB", "1024")
        .env("AUTHGATE_ACCOUNTS__ARGON2_ITERATIONS", "1")
        .routes(KARRIO);
    let (mut builder, server) = backend.apply(builder).await?;
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    Some(Karrio {
        gate: builder.start(Some(&upstream)).await,
        sink,
        _upstream: upstream,
        backend: server,
    })
}

impl Karrio {
    fn gql(&self) -> Call<'_> {
        Call::new(&self.gate, GQL)
    }

    async fn gql_as(&self, access: &str, query: &str, data: Value) -> Answer {
        self.gql()
            .auth(bearer(access))
            .send(query, json!({ "data": data }))
            .await
    }

    async fn rest(&self, path: &str, body: Value) -> Answer {
        Call::new(&self.gate, path)
            .raw("application/json", body.to_string().into_bytes())
            .await
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        self.rest(
            "/karrio/api/token",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` through Karrio and confirms it by the mailed link; the access token.
    async fn account(&self, email: &str) -> String {
        let reg = self
            .gql()
            .send(
                REGISTER,
                json!({"data": {"email": email, "password1": PASSWORD, "password2": PASSWORD,
                                "redirect_url": format!("{DASHBOARD}/email")}}),
            )
            .await;
        assert!(
            reg.body["data"]["register_user"]["user"].is_object(),
            "{}",
            reg.text
        );
        let token = self
            .sink
            .wait_for(email, 1)
            .await
            .token(&format!("{DASHBOARD}/email/"))
            .expect("a confirmation link");
        let confirmed = self
            .gql()
            .send(CONFIRM_EMAIL, json!({"data": {"token": token}}))
            .await;
        assert_eq!(confirmed.body["data"]["confirm_email"]["success"], true);
        let login = self.login(email, PASSWORD).await;
        assert_eq!(login.status, 201, "{}", login.text);
        login.body["access"].as_str().unwrap().to_string()
    }
}

/// A payload's errors as `(field, first message)`.
fn field_errors(payload: &Value) -> Vec<(String, String)> {
    payload["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["messages"][0].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The one REST error code of a refusal.
fn rest_code(answer: &Answer) -> &str {
    answer.body["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

/// The upstream's view of a request to `/api/...` with `header: value`.
async fn with_header(gate: &Authgate, header: &str, value: &str) -> (u16, Value) {
    let resp = client()
        .get(gate.url("/api/whoami"))
        .header(header, value)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

suite!(karrio_dashboard_flow_register_to_delete, |backend| {
    let Some(k) = karrio_on(backend, &[]).await else {
        return;
    };
    let gate = &k.gate;

    // A redirect_url off the allowed origins, or without a scheme, is refused: no account, no
    // mail.
    for bad in [
        "https://evil.example.net/email",
        "localhost:3000/email",
        "http://user@app.test:3000/email",
    ] {
        let refused = k
            .gql()
            .send(
                REGISTER,
                json!({"data": {"email": "ana@example.com", "password1": PASSWORD,
                                "password2": PASSWORD, "redirect_url": bad}}),
            )
            .await;
        let payload = &refused.body["data"]["register_user"];
        assert_eq!(payload["user"], Value::Null, "{}", refused.text);
        assert_eq!(field_errors(payload)[0].0, "redirect_url", "{bad}");
    }

    // Field errors under the input's names, in the payload.
    let mismatch = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "ana@example.com", "password1": PASSWORD,
                            "password2": "other-Pass-99", "redirect_url": format!("{DASHBOARD}/email")}}),
        )
        .await;
    assert_eq!(
        field_errors(&mismatch.body["data"]["register_user"]),
        [(
            "password2".to_string(),
            "The two password fields didn’t match.".to_string()
        )]
    );
    let weak = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "not-an-email", "password1": "12345678",
                            "password2": "12345678", "redirect_url": format!("{DASHBOARD}/email")}}),
        )
        .await;
    let fields: Vec<String> = field_errors(&weak.body["data"]["register_user"])
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert_eq!(fields, ["email"], "{}", weak.text);
    assert!(k.sink.mails_to("ana@example.com").is_empty());

    // register → mail with <redirect_url>/<token> → confirm_email.
    let reg = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "ana@example.com", "password1": PASSWORD, "password2": PASSWORD,
                            "redirect_url": format!("{DASHBOARD}/email"), "full_name": "Ana Lima"}}),
        )
        .await;
    let user = &reg.body["data"]["register_user"]["user"];
    assert_eq!(user["email"], "ana@example.com", "{}", reg.text);
    assert_eq!(user["full_name"], "Ana Lima");
    assert_eq!(user["is_staff"], false);
    assert!(user["date_joined"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(reg.body["data"]["register_user"]["errors"], Value::Null);
    let taken = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "ANA@example.com", "password1": PASSWORD, "password2": PASSWORD}}),
        )
        .await;
    assert_eq!(
        field_errors(&taken.body["data"]["register_user"])[0].0,
        "email"
    );
    let mail = k.sink.wait_for("ana@example.com", 1).await;
    let token = mail
        .token(&format!("{DASHBOARD}/email/"))
        .expect("a link <redirect_url>/<token>");
    let bad = k
        .gql()
        .send(CONFIRM_EMAIL, json!({"data": {"token": "forged.token"}}))
        .await;
    assert_eq!(bad.body["data"]["confirm_email"]["success"], false);
    let confirmed = k
        .gql()
        .send(CONFIRM_EMAIL, json!({"data": {"token": token}}))
        .await;
    assert_eq!(
        confirmed.body["data"]["confirm_email"]["success"], true,
        "{}",
        confirmed.text
    );

    // REST login: 201 {access, refresh}, simplejwt's claims beside authgate's.
    let login = k.login("ana@example.com", PASSWORD).await;
    assert_eq!(login.status, 201, "{}", login.text);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let access = login.body["access"].as_str().unwrap().to_string();
    let refresh = login.body["refresh"].as_str().unwrap().to_string();
    let claims = jwt_claims(&access);
    assert_eq!(claims["user_id"], claims["sub"]);
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["is_verified"], true);
    assert_eq!(claims["verified"], true);
    assert!(login.set_cookie("karrio_refresh_token").is_none());
    assert!(
        login.headers.get("set-cookie").is_none(),
        "no Karrio cookies"
    );

    // The user query.
    let me = k
        .gql()
        .auth(bearer(&access))
        .send(GET_USER, json!({}))
        .await;
    let u = &me.body["data"]["user"];
    assert_eq!(u["email"], "ana@example.com", "{}", me.text);
    assert_eq!(u["full_name"], "Ana Lima");
    assert_eq!(u["is_active"], Value::Null, "not selected");
    assert!(u["last_login"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(u["permissions"], json!([]));

    // Refresh rotates; the used refresh token again is reuse and ends the family.
    let refreshed = k
        .rest("/karrio/api/token/refresh", json!({"refresh": refresh}))
        .await;
    assert_eq!(refreshed.status, 201, "{}", refreshed.text);
    let next = refreshed.body["refresh"].as_str().unwrap().to_string();
    assert_ne!(next, refresh);
    let reused = k
        .rest("/karrio/api/token/refresh", json!({"refresh": refresh}))
        .await;
    assert_eq!(reused.status, 401);
    assert_eq!(rest_code(&reused), "token_not_valid");
    let family = k
        .rest("/karrio/api/token/refresh", json!({"refresh": next}))
        .await;
    assert_eq!(family.status, 401, "the family died with the reuse");
    // Its access token died with it (SPEC §13); a new login has a live one.
    let dead = k
        .rest("/karrio/api/token/verify", json!({"token": access}))
        .await;
    assert_eq!(dead.status, 401, "{}", dead.text);
    let access = k.login("ana@example.com", PASSWORD).await.body["access"]
        .as_str()
        .unwrap()
        .to_string();

    // verify: 200 {} for a good token, 401 for a forged one.
    let ok = k
        .rest("/karrio/api/token/verify", json!({"token": access}))
        .await;
    assert_eq!((ok.status, ok.body.clone()), (200, json!({})));
    let mut forged = access.clone();
    forged.pop();
    forged.push(if access.ends_with('A') { 'B' } else { 'A' });
    let refused = k
        .rest("/karrio/api/token/verify", json!({"token": forged}))
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(rest_code(&refused), "token_not_valid");

    // change_password: a wrong old password under old_password; then every session ends.
    let login = k.login("ana@example.com", PASSWORD).await;
    let session = login.body["refresh"].as_str().unwrap().to_string();
    let wrong = k
        .gql_as(
            &access,
            CHANGE_PASSWORD,
            json!({"old_password": "Not-The-Pass-1", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        field_errors(&wrong.body["data"]["change_password"]),
        [(
            "old_password".to_string(),
            "Your old password was entered incorrectly. Please enter it again.".to_string()
        )]
    );
    let changed = k
        .gql_as(
            &access,
            CHANGE_PASSWORD,
            json!({"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        changed.body["data"]["change_password"]["errors"],
        Value::Null,
        "{}",
        changed.text
    );
    let ended = k
        .rest("/karrio/api/token/refresh", json!({"refresh": session}))
        .await;
    assert_eq!(ended.status, 401);
    assert_eq!(k.login("ana@example.com", PASSWORD).await.status, 401);

    // Reset: <redirect_url>?uidb64=<uid>&token=<token>; the uid must match the token.
    let reset_to = format!("{DASHBOARD}/password/reset");
    let refused = k
        .gql()
        .send(
            REQUEST_RESET,
            json!({"data": {"email": "ana@example.com", "redirect_url": "https://evil.example.net/reset"}}),
        )
        .await;
    assert_eq!(
        field_errors(&refused.body["data"]["request_password_reset"])[0].0,
        "redirect_url"
    );
    let asked = k
        .gql()
        .send(
            REQUEST_RESET,
            json!({"data": {"email": "ana@example.com", "redirect_url": reset_to}}),
        )
        .await;
    let unknown = k
        .gql()
        .send(
            REQUEST_RESET,
            json!({"data": {"email": "ghost@example.com", "redirect_url": reset_to}}),
        )
        .await;
    assert_eq!(asked.body, unknown.body, "no enumeration");
    assert_eq!(
        asked.body["data"]["request_password_reset"]["errors"],
        Value::Null
    );
    let mail = k.sink.wait_for("ana@example.com", 2).await;
    assert!(
        k.sink
            .mails_to("ana@example.com")
            .iter()
            .all(|m| !m.text().contains("evil.example.net")),
        "nothing mailed for the refused redirect"
    );
    let link = mail
        .link(&format!("{reset_to}?uidb64="))
        .expect("a reset link");
    let query = link.split_once('?').unwrap().1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    let (uid, token) = (param("uidb64"), param("token"));
    let wrong_uid = k
        .gql()
        .send(
            CONFIRM_RESET,
            json!({"data": {"uid": "Mw", "token": token, "new_password1": PASSWORD, "new_password2": PASSWORD}}),
        )
        .await;
    assert_eq!(
        field_errors(&wrong_uid.body["data"]["confirm_password_reset"])[0].0,
        "token"
    );
    let weak = k
        .gql()
        .send(
            CONFIRM_RESET,
            json!({"data": {"uid": uid, "token": token, "new_password1": "123", "new_password2": "123"}}),
        )
        .await;
    assert_eq!(
        field_errors(&weak.body["data"]["confirm_password_reset"])[0].0,
        "new_password2"
    );
    let reset = k
        .gql()
        .send(
            CONFIRM_RESET,
            json!({"data": {"uid": uid, "token": token, "new_password1": PASSWORD, "new_password2": PASSWORD}}),
        )
        .await;
    assert_eq!(
        reset.body["data"]["confirm_password_reset"]["errors"],
        Value::Null,
        "{}",
        reset.text
    );
    let again = k
        .gql()
        .send(
            CONFIRM_RESET,
            json!({"data": {"uid": uid, "token": token, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}}),
        )
        .await;
    assert_eq!(
        field_errors(&again.body["data"]["confirm_password_reset"])[0].0,
        "token",
        "a reset token is single-use"
    );

    // update_user: full name, then a new email (unconfirmed, mailed; the old one notified).
    let login = k.login("ana@example.com", PASSWORD).await;
    let access = login.body["access"].as_str().unwrap().to_string();
    let updated = k
        .gql_as(
            &access,
            UPDATE_USER,
            json!({"full_name": "Ana Maria Lima", "email": "ana.lima@example.com"}),
        )
        .await;
    let user = &updated.body["data"]["update_user"]["user"];
    assert_eq!(user["email"], "ana.lima@example.com", "{}", updated.text);
    assert_eq!(user["full_name"], "Ana Maria Lima");
    let notice = k.sink.wait_for("ana@example.com", 3).await;
    assert!(
        notice.text().contains("no longer ana@example.com"),
        "{}",
        notice.text()
    );
    let confirm = k.sink.wait_for("ana.lima@example.com", 1).await;
    let link = confirm
        .link("/karrio/email/")
        .expect("a confirmation link on the dialect's page");
    let login = k.login("ana.lima@example.com", PASSWORD).await;
    let claims = jwt_claims(login.body["access"].as_str().unwrap());
    assert_eq!(claims["verified"], false, "unconfirmed until the link");
    let page = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let login = k.login("ana.lima@example.com", PASSWORD).await;
    let access = login.body["access"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&access)["verified"], true);

    // The account logs in natively too, and is deleted there; Karrio's login then refuses.
    let native = gate
        .graphql_as(
            "mutation D($p: String!) { deleteAccount(password: $p) { success errors } }",
            json!({"p": PASSWORD}),
            Some(&access),
        )
        .await;
    assert_eq!(native["data"]["deleteAccount"]["success"], true, "{native}");
    let gone = k.login("ana.lima@example.com", PASSWORD).await;
    assert_eq!(gone.status, 401);
    let me = k
        .gql()
        .auth(bearer(&access))
        .send(GET_USER, json!({}))
        .await;
    assert_eq!(me.body["errors"][0]["code"], "authentication_required");
});

#[tokio::test]
async fn karrio_keys_work_at_the_gate_and_die_on_refresh() {
    let k = karrio(&[]).await;
    let gate = &k.gate;
    let access = k.account("kim@example.com").await;

    // token: made on the first ask, the same key on every later one.
    let first = k
        .gql()
        .auth(bearer(&access))
        .send(GET_TOKEN, json!({}))
        .await;
    let key = first.body["data"]["token"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", first.text))
        .to_string();
    assert!(key.starts_with("key_") && key.len() == 36, "{key}");
    assert!(key[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(first.body["data"]["token"]["created"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    let again = k
        .gql()
        .auth(bearer(&access))
        .send(GET_TOKEN, json!({"org_id": "org_1"}))
        .await;
    assert_eq!(again.body["data"]["token"]["key"], key.as_str());
    let mutated = k.gql_as(&access, MUTATE_TOKEN, json!({})).await;
    assert_eq!(
        mutated.body["data"]["mutate_token"]["token"]["key"],
        key.as_str()
    );

    // The key passes the gate as `Token` and as `X-API-Key`.
    for (header, value) in [
        ("authorization", format!("Token {key}")),
        ("x-api-key", key.clone()),
    ] {
        let (status, upstream) = with_header(gate, header, &value).await;
        assert_eq!(status, 200, "{header}");
        assert_eq!(seen(&upstream, "x-auth-email"), ["kim@example.com"]);
        assert_eq!(seen(&upstream, "x-auth-method"), ["api_key"]);
        assert!(seen(&upstream, "x-api-key").is_empty());
        assert!(seen(&upstream, "authorization").is_empty());
    }

    // Karrio's API clients call GraphQL with the key itself.
    let by_key = k
        .gql()
        .auth(format!("Token {key}"))
        .send(GET_TOKEN, json!({}))
        .await;
    assert_eq!(
        by_key.body["data"]["token"]["key"],
        key.as_str(),
        "{}",
        by_key.text
    );
    let by_header = read(
        client()
            .post(gate.url(GQL))
            .header("content-type", "application/json")
            .header("x-api-key", &key)
            .body(json!({"query": GET_USER}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        by_header.body["data"]["user"]["email"], "kim@example.com",
        "{}",
        by_header.text
    );

    // Never in plain text in the store: its hash is on disk, the key is not.
    let hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let data = gate.dir.path().to_path_buf();
    let mut found_hash = false;
    for _ in 0..50 {
        let files = read_all(&data);
        assert!(
            !files.windows(key.len()).any(|w| w == key.as_bytes()),
            "the key is stored in plain text"
        );
        found_hash = files.windows(hash.len()).any(|w| w == hash.as_bytes());
        if found_hash {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found_hash, "the store files were read");

    // mutate_token(refresh: true): a wrong password refused; then a new key, the old one
    // refused at once (both headers), the new one shown by `token`.
    let wrong = k
        .gql_as(
            &access,
            MUTATE_TOKEN,
            json!({"refresh": true, "password": "Not-The-Pass-1", "key": key}),
        )
        .await;
    assert_eq!(
        field_errors(&wrong.body["data"]["mutate_token"])[0].0,
        "password",
        "{}",
        wrong.text
    );
    assert_eq!(with_header(gate, "x-api-key", &key).await.0, 200);
    let renewed = k
        .gql_as(&access, MUTATE_TOKEN, json!({"refresh": true}))
        .await;
    let new_key = renewed.body["data"]["mutate_token"]["token"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", renewed.text))
        .to_string();
    assert_ne!(new_key, key);
    assert_eq!(with_header(gate, "x-api-key", &key).await.0, 401);
    assert_eq!(
        with_header(gate, "authorization", &format!("Token {key}"))
            .await
            .0,
        401
    );
    assert_eq!(with_header(gate, "x-api-key", &new_key).await.0, 200);
    let dead = k
        .gql()
        .auth(format!("Token {key}"))
        .send(GET_USER, json!({}))
        .await;
    assert_eq!(dead.body["errors"][0]["code"], "authentication_required");
    let shown = k
        .gql()
        .auth(bearer(&access))
        .send(GET_TOKEN, json!({}))
        .await;
    assert_eq!(shown.body["data"]["token"]["key"], new_key.as_str());
    let with_password = k
        .gql_as(
            &access,
            MUTATE_TOKEN,
            json!({"refresh": true, "password": PASSWORD}),
        )
        .await;
    let third = with_password.body["data"]["mutate_token"]["token"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(with_header(gate, "x-api-key", &new_key).await.0, 401);
    assert_eq!(with_header(gate, "x-api-key", &third).await.0, 200);

    // The key is an API key natively too: revoked there, it dies, and `token` makes another.
    let listed = gate
        .graphql_as("{ apiKeys { id name prefix } }", json!({}), Some(&access))
        .await;
    let keys = listed["data"]["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert!(third.starts_with(keys[0]["prefix"].as_str().unwrap()));
    let id = keys[0]["id"].as_str().unwrap();
    let revoked = gate
        .graphql_as(
            "mutation R($id: ID!) { revokeApiKey(id: $id) { success } }",
            json!({"id": id}),
            Some(&access),
        )
        .await;
    assert_eq!(revoked["data"]["revokeApiKey"]["success"], true);
    assert_eq!(with_header(gate, "x-api-key", &third).await.0, 401);
    let made = k
        .gql()
        .auth(bearer(&access))
        .send(GET_TOKEN, json!({}))
        .await;
    let fourth = made.body["data"]["token"]["key"].as_str().unwrap();
    assert_ne!(fourth, third);
    assert_eq!(with_header(gate, "x-api-key", fourth).await.0, 200);

    // Without a login: Karrio's authentication_required error, HTTP 200.
    for (query, vars) in [
        (GET_TOKEN, json!({})),
        (GET_USER, json!({})),
        (MUTATE_TOKEN, json!({"data": {"refresh": true}})),
        (
            CHANGE_PASSWORD,
            json!({"data": {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}}),
        ),
        (UPDATE_USER, json!({"data": {"full_name": "X"}})),
    ] {
        let nobody = k.gql().send(query, vars).await;
        assert_eq!(nobody.status, 200);
        let error = &nobody.body["errors"][0];
        assert_eq!(error["code"], "authentication_required", "{}", nobody.text);
        assert_eq!(error["status_code"], 401);
        assert_eq!(error["message"], "You are not authenticated");
        assert!(error.get("extensions").is_none());
    }
    let forged = k
        .gql()
        .auth("Bearer not.a.jwt")
        .send(GET_TOKEN, json!({}))
        .await;
    assert_eq!(forged.body["errors"][0]["code"], "authentication_required");
    assert_eq!(forged.body["data"], Value::Null);
}

/// Every byte of every file under `dir`.
fn read_all(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(content) = std::fs::read(&path) {
            bytes.extend_from_slice(&content);
        }
    }
    bytes
}

#[tokio::test]
async fn karrio_refusals_bad_input_limits_and_other_schemas() {
    let k = karrio(&[
        ("AUTHGATE_RATE_LIMIT__LOGIN", "5/1h"),
        ("AUTHGATE_RATE_LIMIT__EMAIL", "3/1h"),
    ])
    .await;
    let gate = &k.gate;

    // A native account logs in through Karrio's REST endpoint, and a Karrio token is good
    // natively and at the gate.
    let native = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, password1: $p, password2: $p) { success errors } }",
            json!({"e": "nat@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(native["data"]["register"]["success"], true, "{native}");
    verify_by_mail(gate, &k.sink, "nat@example.com", 1).await;
    let login = k.login("nat@example.com", PASSWORD).await;
    assert_eq!(login.status, 201, "{}", login.text);
    let access = login.body["access"].as_str().unwrap();
    let me = gate
        .graphql_as("{ me { email verified } }", json!({}), Some(access))
        .await;
    assert_eq!(me["data"]["me"]["email"], "nat@example.com");
    let (status, upstream) = through_gate(gate, &bearer(access)).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&upstream, "x-auth-email"), ["nat@example.com"]);
    let native_login = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { token } }",
            json!({"e": "nat@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    let native_token = native_login["data"]["tokenAuth"]["token"].as_str().unwrap();
    let karrio_me = k
        .gql()
        .auth(bearer(native_token))
        .send(GET_USER, json!({}))
        .await;
    assert_eq!(karrio_me.body["data"]["user"]["email"], "nat@example.com");

    // Bad credentials: 401, the same body for an unknown account and a wrong password.
    let unknown = k.login("ghost@example.com", PASSWORD).await;
    let wrong = k.login("nat@example.com", "Wrong-Pass-123").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(rest_code(&unknown), "no_active_account");
    assert_eq!(
        unknown.body["errors"][0]["message"],
        "No active account found with the given credentials"
    );

    // Bad REST bodies: each answered clearly.
    let token = "/karrio/api/token";
    let call = Call::new(gate, token);
    let text = call.raw("text/plain", b"{}".to_vec()).await;
    assert_eq!(text.status, 415);
    let form = call
        .raw(
            "application/x-www-form-urlencoded",
            b"email=a&password=b".to_vec(),
        )
        .await;
    assert_eq!(form.status, 415);
    for junk in [&b"{\"email\": "[..], b"[1, 2]", b"\xff\xfe", b"", b"null"] {
        let answer = call.raw("application/json", junk.to_vec()).await;
        assert_eq!(answer.status, 400, "{:?}", String::from_utf8_lossy(junk));
        assert_eq!(rest_code(&answer), "parse_error");
    }
    let missing = k.rest(token, json!({"email": "nat@example.com"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(rest_code(&missing), "validation");
    assert_eq!(
        missing.body["errors"][0]["details"]["password"][0],
        "This field is required."
    );
    let typed = k
        .rest(
            token,
            json!({"email": "nat@example.com", "password": 12345}),
        )
        .await;
    assert_eq!(typed.status, 400);
    assert!(typed.body["errors"][0]["details"]["password"].is_array());
    let otp_typed = k
        .rest(
            token,
            json!({"email": "nat@example.com", "password": PASSWORD, "otp": 123456}),
        )
        .await;
    assert_eq!(otp_typed.status, 400);
    let with_otp = k
        .rest(
            token,
            json!({"email": "nat@example.com", "password": PASSWORD, "otp": "123456"}),
        )
        .await;
    assert_eq!(
        with_otp.status, 201,
        "otp is ignored for an account without TOTP"
    );
    let huge = json!({"email": "nat@example.com", "password": "x".repeat(70 * 1024)});
    let oversized = k.rest(token, huge).await;
    assert_eq!(oversized.status, 413);
    let empty_refresh = k
        .rest("/karrio/api/token/refresh", json!({"refresh": ""}))
        .await;
    assert_eq!(empty_refresh.status, 400);
    let junk_refresh = k
        .rest(
            "/karrio/api/token/refresh",
            json!({"refresh": "x".repeat(5000)}),
        )
        .await;
    assert_eq!(junk_refresh.status, 401);
    let get_token = get(gate, token).await;
    assert_eq!(get_token.status, 405);
    assert_eq!(get(gate, "/karrio/api/unknown").await.status, 404);
    assert_eq!(get(gate, "/karrio/graphql").await.status, 200, "GraphiQL");

    // Bad GraphQL input: GraphQL errors, never a 500.
    let wrong_type = k
        .gql()
        .send(CONFIRM_EMAIL, json!({"data": {"token": 5}}))
        .await;
    assert_eq!(wrong_type.status, 200);
    assert!(wrong_type.body["errors"][0]["message"].is_string());
    let no_input = k
        .gql()
        .send("mutation { confirm_email { success } }", json!({}))
        .await;
    assert!(no_input.body["errors"][0]["message"].is_string());
    let camel = k.gql().send("{ user { fullName } }", json!({})).await;
    assert!(
        camel.body["errors"][0]["message"].is_string(),
        "snake_case only"
    );
    assert_eq!(
        Call::new(gate, GQL)
            .raw("application/json", b"{\"query\": ".to_vec())
            .await
            .status,
        400
    );
    let names = type_names(gate, GQL).await;
    for name in [
        "RegisterUserMutationInput",
        "RegisterUserMutation",
        "ConfirmEmailMutationInput",
        "RequestPasswordResetMutationInput",
        "ConfirmPasswordResetMutationInput",
        "ChangePasswordMutationInput",
        "UpdateUserInput",
        "UserUpdateMutation",
        "TokenMutationInput",
        "TokenMutation",
        "UserType",
        "TokenType",
        "ErrorType",
        "DateTime",
    ] {
        assert!(names.iter().any(|n| n == name), "karrio lacks {name}");
    }

    // authgate's own refusals in the payload, under `__all__`: a fourth reset request within
    // the hour from one client, for addresses known or not, is refused alike.
    let reset_to = format!("{DASHBOARD}/password/reset");
    let mut answers = Vec::new();
    for email in [
        "a1@example.com",
        "nat@example.com",
        "a3@example.com",
        "nat@example.com",
    ] {
        let asked = k
            .gql()
            .send(
                REQUEST_RESET,
                json!({"data": {"email": email, "redirect_url": reset_to}}),
            )
            .await;
        answers.push(field_errors(&asked.body["data"]["request_password_reset"]));
    }
    assert_eq!(answers[..3], [vec![], vec![], vec![]]);
    assert_eq!(answers[3].len(), 1, "{answers:?}");
    assert_eq!(answers[3][0].0, "__all__");
    assert!(
        answers[3][0].1.starts_with("Too many attempts"),
        "{answers:?}"
    );

    // Rate limits count every login attempt, Karrio's and native alike (5 an hour here, all
    // spent above by REST and native logins), whatever the answer was.
    let limited = k.login("nat@example.com", PASSWORD).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(rest_code(&limited), "throttled");
}

#[tokio::test]
async fn karrio_keys_first_asked_at_once_are_one_key() {
    let k = karrio(&[]).await;
    let access = k.account("par@example.com").await;
    let asks = (0..8).map(|_| {
        let call = k.gql().auth(bearer(&access));
        async move { call.send(GET_TOKEN, json!({})).await }
    });
    let answers = futures_util::future::join_all(asks).await;
    let keys: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| {
            a.body["data"]["token"]["key"]
                .as_str()
                .unwrap_or_else(|| panic!("{}", a.text))
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = keys.into_iter().next().unwrap();
    assert_eq!(with_header(&k.gate, "x-api-key", &key).await.0, 200);
    let listed = k
        .gate
        .graphql_as("{ apiKeys { id } }", json!({}), Some(&access))
        .await;
    assert_eq!(
        listed["data"]["apiKeys"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
}

/// Dependencies down: mail that cannot be sent leaves no account and says so in the payload;
/// with Redis (sessions and limits) stopped the REST endpoints answer `503` at once, valid
/// access tokens still pass the gate, and service resumes when Redis is back.
#[tokio::test]
async fn karrio_answers_clearly_when_smtp_or_redis_is_down() {
    let Some(mut k) = karrio_on(Backend::Redis, &[]).await else {
        return;
    };
    k.sink.refuse(true);
    let refused = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "dee@example.com", "password1": PASSWORD, "password2": PASSWORD}}),
        )
        .await;
    let payload = &refused.body["data"]["register_user"];
    assert_eq!(payload["user"], Value::Null, "{}", refused.text);
    assert_eq!(field_errors(payload)[0].0, "__all__");
    k.sink.refuse(false);
    assert_eq!(k.login("dee@example.com", PASSWORD).await.status, 401);
    let access = k.account("dee@example.com").await;
    let refresh = k.login("dee@example.com", PASSWORD).await.body["refresh"]
        .as_str()
        .unwrap()
        .to_string();

    let redis = k.backend.redis().expect("the redis leg");
    redis.stop();
    let started = std::time::Instant::now();
    let login = k.login("dee@example.com", PASSWORD).await;
    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(rest_code(&login), "service_unavailable");
    let refreshed = k
        .rest("/karrio/api/token/refresh", json!({"refresh": refresh}))
        .await;
    assert_eq!(refreshed.status, 503, "{}", refreshed.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, _) = through_gate(&k.gate, &bearer(&access)).await;
    assert_eq!(status, 200, "valid tokens pass without Redis");
    let me = k
        .gql()
        .auth(bearer(&access))
        .send(GET_USER, json!({}))
        .await;
    assert_eq!(me.body["data"]["user"]["email"], "dee@example.com");

    k.backend.redis().unwrap().restart();
    eventually(
        std::time::Duration::from_secs(15),
        "logins again after Redis is back",
        || async { k.login("dee@example.com", PASSWORD).await.status == 201 },
    )
    .await;
}

/// Without a `redirect_url` the links open authgate's own pages under the prefix, which
/// confirm and reset like the dashboard's would.
#[tokio::test]
async fn karrio_links_without_redirect_url_open_authgates_pages() {
    let k = karrio(&[("AUTHGATE_LOG__ACCESS_LOG", "true")]).await;
    let gate = &k.gate;
    let reg = k
        .gql()
        .send(
            REGISTER,
            json!({"data": {"email": "pat@example.com", "password1": PASSWORD, "password2": PASSWORD}}),
        )
        .await;
    assert!(
        reg.body["data"]["register_user"]["user"].is_object(),
        "{}",
        reg.text
    );
    let link = k
        .sink
        .wait_for("pat@example.com", 1)
        .await
        .link("/karrio/email/")
        .expect("a link to the dialect's confirmation page");
    let page = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let confirmation = link.rsplit_once('/').unwrap().1.to_string();
    let login = k.login("pat@example.com", PASSWORD).await;
    assert_eq!(
        jwt_claims(login.body["access"].as_str().unwrap())["verified"],
        true
    );

    let asked = k
        .gql()
        .send(REQUEST_RESET, json!({"data": {"email": "pat@example.com"}}))
        .await;
    assert_eq!(
        asked.body["data"]["request_password_reset"]["errors"],
        Value::Null,
        "{}",
        asked.text
    );
    let mail = k.sink.wait_for("pat@example.com", 2).await;
    let link = mail
        .link("/karrio/password/reset?uidb64=")
        .expect("a link to the dialect's reset form");
    let form = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(form.status, 200, "{}", form.text);
    assert!(
        form.text.contains("name=\"new_password1\""),
        "{}",
        form.text
    );
    let token = link.rsplit_once("token=").unwrap().1.to_string();
    let posted = client()
        .post(gate.url("/karrio/password/reset"))
        .form(&[
            ("token", token.as_str()),
            ("new_password1", NEW_PASSWORD),
            ("new_password2", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(k.login("pat@example.com", NEW_PASSWORD).await.status, 201);
    assert_eq!(k.login("pat@example.com", PASSWORD).await.status, 401);
    let mut log = String::new();
    eventually(
        std::time::Duration::from_secs(5),
        "the pages' requests in the access log",
        || {
            log = gate.log();
            let seen = log.contains("/karrio/email") && log.contains("/karrio/password/reset");
            async move { seen }
        },
    )
    .await;
    for secret in [&token, &confirmation] {
        assert!(
            !log.contains(secret.as_str()),
            "a link's token is not logged"
        );
    }
}
