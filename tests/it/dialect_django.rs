//! The django-graphql-auth dialects (classic at `/django`, relay at `/relay`) through HTTP
//! against the real binary, as the original's clients call them: `Authorization: JWT`, the
//! `JWT-refresh-token` cookie, the original's payload type names and error forms, its links
//! in real mail.

use crate::common::dialect::*;
use crate::common::*;
use serde_json::{json, Value};

const GQL: &str = "/django/graphql";
const COOKIE: &str = "JWT-refresh-token";

const REGISTER: &str =
    "mutation R($email: String!, $username: String!, $p1: String!, $p2: String!) {
  register(email: $email, username: $username, password1: $p1, password2: $p2) {
    success errors token refreshToken refreshExpiresIn payload } }";
const VERIFY: &str =
    "mutation V($token: String!) { verifyAccount(token: $token) { success errors } }";
const LOGIN: &str = "mutation L($email: String, $username: String, $password: String!) {
  tokenAuth(email: $email, username: $username, password: $password) {
    success errors token refreshToken refreshExpiresIn payload unarchiving
    user { id pk email username verified } } }";
const REFRESH: &str = "mutation F($t: String) { refreshToken(refreshToken: $t) {
  success errors token refreshToken refreshExpiresIn payload } }";
const ME: &str = "{ me { id pk email username verified isActive dateJoined } }";

fn jwt(token: &Value) -> String {
    format!("JWT {}", token.as_str().expect("a token"))
}

async fn gql(s: &Setup, query: &str, vars: Value, auth: Option<String>) -> Answer {
    Call::new(&s.gate, GQL)
        .auth_opt(auth)
        .send(query, vars)
        .await
}

#[tokio::test]
async fn classic_client_flow_from_register_to_delete() {
    let s = setup(&[]).await;
    let gate = &s.gate;

    // register → the activation mail carries the original's link under the prefix.
    let reg = gql(
        &s,
        REGISTER,
        json!({"email": "luke@example.com", "username": "luke", "p1": PASSWORD, "p2": PASSWORD}),
        None,
    )
    .await;
    let payload = &reg.body["data"]["register"];
    assert_eq!(payload["success"], true, "{}", reg.text);
    assert!(payload["refreshExpiresIn"].as_i64().unwrap() > 0);
    let mail = s.sink.wait_for("luke@example.com", 1).await;
    let link = mail.link("/django/activate/").expect("an activation link");
    assert!(
        link.starts_with(&format!("{}/django/activate/", gate.base)),
        "{link}"
    );
    let token = mail.token("/django/activate/").unwrap();
    let verified = gql(&s, VERIFY, json!({"token": token}), None).await;
    assert_eq!(verified.body["data"]["verifyAccount"]["success"], true);
    let again = gql(&s, VERIFY, json!({"token": token}), None).await;
    assert_eq!(
        django_error(&again.body["data"]["verifyAccount"]),
        ("nonFieldErrors".into(), "already_verified".into())
    );

    // tokenAuth: the token and its claims (the original's origIat beside authgate's), the
    // refresh cookie under the prefix.
    let login = gql(
        &s,
        LOGIN,
        json!({"username": "luke", "password": PASSWORD}),
        None,
    )
    .await;
    let auth = &login.body["data"]["tokenAuth"];
    assert_eq!(auth["success"], true, "{}", login.text);
    assert_eq!(auth["unarchiving"], false);
    let claims = jwt_claims(auth["token"].as_str().unwrap());
    assert_eq!(claims["username"], "luke");
    assert_eq!(claims["origIat"], claims["iat"]);
    assert_eq!(auth["payload"]["origIat"], claims["iat"]);
    assert_eq!(auth["payload"]["sub"], claims["sub"]);
    let user = &auth["user"];
    let pk = user["pk"].as_i64().expect("a pk");
    assert!(pk > 0);
    use base64::Engine;
    let global = base64::engine::general_purpose::STANDARD.encode(format!("UserNode:{pk}"));
    assert_eq!(user["id"], global.as_str());
    let set = login.set_cookie(COOKIE).expect("the refresh cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/django"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert_eq!(
        login.cookie(COOKIE).unwrap(),
        auth["refreshToken"].as_str().unwrap()
    );

    // me, with the original's header prefix; user(id:) takes the global id and the sub.
    let me = gql(&s, ME, json!({}), Some(jwt(&auth["token"]))).await;
    assert_eq!(me.body["data"]["me"]["email"], "luke@example.com");
    assert_eq!(me.body["data"]["me"]["pk"], pk);
    for id in [global.clone(), claims["sub"].as_str().unwrap().to_string()] {
        let found = gql(
            &s,
            "query U($id: ID!) { user(id: $id) { pk username } }",
            json!({"id": id}),
            Some(jwt(&auth["token"])),
        )
        .await;
        assert_eq!(found.body["data"]["user"]["pk"], pk, "{}", found.text);
    }
    let anonymous = gql(&s, ME, json!({}), None).await;
    assert_eq!(anonymous.body["data"]["me"], Value::Null);

    // The token passes the gate with the identity headers.
    let (status, seen_by_upstream) = through_gate(gate, &jwt(&auth["token"])).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen(&seen_by_upstream, "x-auth-email"),
        ["luke@example.com"]
    );
    assert_eq!(seen(&seen_by_upstream, "x-auth-verified"), ["true"]);
    assert_eq!(seen(&seen_by_upstream, "x-auth-method"), ["jwt"]);

    // refresh by the cookie, then by the argument; the rotated token used again revokes the
    // whole family, the newest pair included.
    let by_cookie = Call::new(gate, GQL)
        .cookie(COOKIE, auth["refreshToken"].as_str().unwrap())
        .send(REFRESH, json!({}))
        .await;
    let first = &by_cookie.body["data"]["refreshToken"];
    assert_eq!(first["success"], true, "{}", by_cookie.text);
    assert!(first["payload"]["origIat"].is_i64());
    assert_eq!(
        by_cookie.cookie(COOKIE).unwrap(),
        first["refreshToken"].as_str().unwrap()
    );
    let by_argument = gql(&s, REFRESH, json!({"t": first["refreshToken"]}), None).await;
    let second = &by_argument.body["data"]["refreshToken"];
    assert_eq!(second["success"], true, "{}", by_argument.text);
    let reused = gql(&s, REFRESH, json!({"t": first["refreshToken"]}), None).await;
    assert_eq!(
        django_error(&reused.body["data"]["refreshToken"]),
        ("nonFieldErrors".into(), "invalid_token".into())
    );
    assert_eq!(
        reused.cookie(COOKIE).as_deref(),
        Some(""),
        "the cookie is cleared"
    );
    let family_gone = gql(&s, REFRESH, json!({"t": second["refreshToken"]}), None).await;
    assert_eq!(
        django_error(&family_gone.body["data"]["refreshToken"]).1,
        "invalid_token"
    );

    // Reuse ended the session, its access tokens too (SPEC §13).
    let verify_token =
        "mutation V($t: String!) { verifyToken(token: $t) { success errors payload } }";
    let revoked = gql(&s, verify_token, json!({"t": second["token"]}), None).await;
    assert_eq!(
        django_error(&revoked.body["data"]["verifyToken"]).1,
        "invalid_token"
    );

    // verifyToken shows every claim; revokeToken says when.
    let fresh = gql(
        &s,
        LOGIN,
        json!({"email": "luke@example.com", "password": PASSWORD}),
        None,
    )
    .await;
    let verify = gql(
        &s,
        verify_token,
        json!({"t": fresh.body["data"]["tokenAuth"]["token"]}),
        None,
    )
    .await;
    assert_eq!(
        verify.body["data"]["verifyToken"]["payload"]["username"],
        "luke"
    );
    assert!(verify.body["data"]["verifyToken"]["payload"]["origIat"].is_i64());
    let session = gql(
        &s,
        LOGIN,
        json!({"email": "luke@example.com", "password": PASSWORD}),
        None,
    )
    .await;
    let session = session.body["data"]["tokenAuth"].clone();
    let revoke = gql(
        &s,
        "mutation R($t: String) { revokeToken(refreshToken: $t) { success errors revoked } }",
        json!({"t": session["refreshToken"]}),
        None,
    )
    .await;
    assert!(
        revoke.body["data"]["revokeToken"]["revoked"]
            .as_i64()
            .unwrap()
            > 0
    );

    // passwordChange: errors under the original's argument names, then new tokens.
    let change = "mutation C($o: String!, $a: String!, $b: String!) {
      passwordChange(oldPassword: $o, newPassword1: $a, newPassword2: $b) {
        success errors token refreshToken } }";
    let login = gql(
        &s,
        LOGIN,
        json!({"username": "luke", "password": PASSWORD}),
        None,
    )
    .await;
    let token = login.body["data"]["tokenAuth"]["token"].clone();
    let wrong = gql(
        &s,
        change,
        json!({"o": "nope-nope-nope", "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
        Some(jwt(&token)),
    )
    .await;
    assert_eq!(
        django_error(&wrong.body["data"]["passwordChange"]),
        ("oldPassword".into(), "invalid_password".into())
    );
    let weak = gql(
        &s,
        change,
        json!({"o": PASSWORD, "a": "12345678", "b": "12345678"}),
        Some(jwt(&token)),
    )
    .await;
    assert_eq!(
        django_error(&weak.body["data"]["passwordChange"]).0,
        "newPassword2"
    );
    let done = gql(
        &s,
        change,
        json!({"o": PASSWORD, "a": NEW_PASSWORD, "b": NEW_PASSWORD}),
        Some(jwt(&token)),
    )
    .await;
    let done = &done.body["data"]["passwordChange"];
    assert_eq!(done["success"], true);
    assert!(done["token"].is_string() && done["refreshToken"].is_string());

    // reset by the mailed link (the original's path), on the page and by GraphQL.
    let send = "mutation S($e: String!) { sendPasswordResetEmail(email: $e) { success errors } }";
    for email in ["luke@example.com", "nobody@example.com"] {
        let sent = gql(&s, send, json!({"e": email}), None).await;
        assert_eq!(sent.body["data"]["sendPasswordResetEmail"]["success"], true);
    }
    let mail = s.sink.wait_for("luke@example.com", 2).await;
    let link = mail.link("/django/password-reset/").expect("a reset link");
    let token = mail.token("/django/password-reset/").unwrap();
    let page = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("<form") && page.text.contains("password-reset"),
        "{}",
        page.text
    );
    let reset = gql(
        &s,
        "mutation P($t: String!, $a: String!, $b: String!) {
          passwordReset(token: $t, newPassword1: $a, newPassword2: $b) { success errors } }",
        json!({"t": token, "a": PASSWORD, "b": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(
        reset.body["data"]["passwordReset"]["success"], true,
        "{}",
        reset.text
    );
    assert!(s.sink.mails_to("nobody@example.com").is_empty());

    // delete with the password; the account logs in no more.
    let login = gql(
        &s,
        LOGIN,
        json!({"username": "luke", "password": PASSWORD}),
        None,
    )
    .await;
    let token = login.body["data"]["tokenAuth"]["token"].clone();
    let delete = gql(
        &s,
        "mutation D($p: String!) { deleteAccount(password: $p) { success errors } }",
        json!({"p": PASSWORD}),
        Some(jwt(&token)),
    )
    .await;
    assert_eq!(delete.body["data"]["deleteAccount"]["success"], true);
    assert_eq!(delete.cookie(COOKIE).as_deref(), Some(""));
    let gone = gql(
        &s,
        LOGIN,
        json!({"username": "luke", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(
        django_error(&gone.body["data"]["tokenAuth"]),
        ("nonFieldErrors".into(), "invalid_credentials".into())
    );
}

#[tokio::test]
async fn relay_inputs_type_names_errors_and_bad_input() {
    let s = setup(&[]).await;
    let gate = &s.gate;

    // Introspection shows the original's names in both shapes.
    let classic = type_names(gate, GQL).await;
    for name in [
        "Register",
        "ObtainJSONWebToken",
        "RefreshToken",
        "VerifyToken",
        "RevokeToken",
        "PasswordChange",
        "UserNode",
        "UserNodeConnection",
        "UserNodeEdge",
        "PageInfo",
        "Node",
        "ExpectedErrorType",
        "GenericScalar",
    ] {
        assert!(classic.iter().any(|n| n == name), "classic lacks {name}");
    }
    let relay = type_names(gate, "/relay/graphql").await;
    for name in [
        "RegisterInput",
        "RegisterPayload",
        "ObtainJSONWebTokenInput",
        "ObtainJSONWebTokenPayload",
        "RefreshTokenInput",
        "RefreshTokenPayload",
        "RevokeAllTokensInput",
        "CreateApiKeyPayload",
    ] {
        assert!(relay.iter().any(|n| n == name), "relay lacks {name}");
    }

    // Relay: one input, clientMutationId echoed, the same account base.
    let register = "mutation R($input: RegisterInput!) { register(input: $input) {
        success errors token clientMutationId } }";
    let reg = Call::new(gate, "/relay/graphql")
        .send(
            register,
            json!({"input": {"email": "leia@example.com", "username": "leia",
                   "password1": PASSWORD, "password2": PASSWORD, "clientMutationId": "m-1"}}),
        )
        .await;
    let payload = &reg.body["data"]["register"];
    assert_eq!(payload["success"], true, "{}", reg.text);
    assert_eq!(payload["clientMutationId"], "m-1");
    let mail = s.sink.wait_for("leia@example.com", 1).await;
    assert!(
        mail.link("/relay/activate/").is_some(),
        "the relay dialect's own links"
    );
    let login = Call::new(gate, "/relay/graphql")
        .send(
            "mutation L($input: ObtainJSONWebTokenInput!) { tokenAuth(input: $input) {
               success errors token clientMutationId user { username } } }",
            json!({"input": {"email": "leia@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(
        login.body["data"]["tokenAuth"]["success"], true,
        "{}",
        login.text
    );
    assert_eq!(
        login.body["data"]["tokenAuth"]["clientMutationId"],
        Value::Null
    );

    // Every error form with the input that makes it.
    let taken = gql(
        &s,
        REGISTER,
        json!({"email": "LEIA@example.com", "username": "other", "p1": PASSWORD, "p2": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(
        django_error(&taken.body["data"]["register"]),
        ("email".into(), "unique".into())
    );
    let weak = gql(
        &s,
        REGISTER,
        json!({"email": "weak@example.com", "username": "weak", "p1": "123456", "p2": "123456"}),
        None,
    )
    .await;
    let codes: Vec<&str> = weak.body["data"]["register"]["errors"]["password2"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(codes.contains(&"password_too_short") && codes.contains(&"password_entirely_numeric"));
    let mismatch = gql(
        &s,
        REGISTER,
        json!({"email": "mm@example.com", "username": "mm", "p1": PASSWORD, "p2": NEW_PASSWORD}),
        None,
    )
    .await;
    assert_eq!(
        django_error(&mismatch.body["data"]["register"]),
        ("password2".into(), "password_mismatch".into())
    );
    // Unknown email and wrong password answer alike.
    let unknown = gql(
        &s,
        LOGIN,
        json!({"email": "ghost@example.com", "password": PASSWORD}),
        None,
    )
    .await;
    let wrong = gql(
        &s,
        LOGIN,
        json!({"email": "leia@example.com", "password": "Wrong-Pass-123"}),
        None,
    )
    .await;
    assert_eq!(
        unknown.body["data"]["tokenAuth"], wrong.body["data"]["tokenAuth"],
        "no enumeration"
    );
    assert_eq!(
        django_error(&unknown.body["data"]["tokenAuth"]),
        ("nonFieldErrors".into(), "invalid_credentials".into())
    );
    let anonymous = gql(
        &s,
        "mutation { updateAccount(firstName: \"X\") { success errors } }",
        json!({}),
        None,
    )
    .await;
    assert_eq!(
        django_error(&anonymous.body["data"]["updateAccount"]),
        ("nonFieldErrors".into(), "unauthenticated".into())
    );
    let forged = gql(
        &s,
        "mutation { verifyToken(token: \"a.b.c\") { success errors payload } }",
        json!({}),
        None,
    )
    .await;
    assert_eq!(
        django_error(&forged.body["data"]["verifyToken"]).1,
        "invalid_token"
    );
    let bad_link = gql(&s, VERIFY, json!({"token": "x.y"}), None).await;
    assert_eq!(
        django_error(&bad_link.body["data"]["verifyAccount"]).1,
        "invalid_token"
    );
    // Staff only, as natively.
    let users = gql(
        &s,
        "{ users(status_Verified: false) { edges { node { pk } } } }",
        json!({}),
        None,
    )
    .await;
    assert_eq!(users.body["data"]["users"], Value::Null);
    assert_eq!(
        users.body["errors"][0]["extensions"]["code"],
        "unauthenticated"
    );

    // Bad input: clear errors, never a 500.
    let call = Call::new(gate, GQL);
    assert_eq!(call.raw("text/plain", b"{}".to_vec()).await.status, 415);
    assert_eq!(
        call.raw("application/json", b"{nope".to_vec()).await.status,
        400
    );
    assert_eq!(
        call.raw("application/json", vec![0xff, 0xfe]).await.status,
        400
    );
    let big = format!("{{\"query\": \"{}\"}}", "x".repeat(70_000));
    assert_eq!(
        call.raw("application/json", big.into_bytes()).await.status,
        413
    );
    let unknown_field = call.send("{ me { password } }", json!({})).await;
    assert_eq!(unknown_field.status, 200);
    assert!(unknown_field.body["errors"][0]["message"].is_string());
    let missing = call
        .send(
            "mutation { register(email: \"a@b.co\") { success } }",
            json!({}),
        )
        .await;
    assert_eq!(missing.status, 200);
    assert!(missing.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("password1"));
    let deep = format!("{{ me {} }}", "{ id ".repeat(20) + &"}".repeat(20));
    assert_eq!(call.send(&deep, json!({})).await.status, 200);
    assert_eq!(get(gate, "/django/nothing-here").await.status, 404);
    assert_eq!(get(gate, "/django/graphql").await.status, 200, "GraphiQL");
    s.gate.metrics().await;
}
