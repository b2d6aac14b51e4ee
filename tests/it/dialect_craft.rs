//! The craft dialect at `/craft/api` through HTTP against the real binary, sending the
//! documents of the plugin's client guide (`authenticate`, `register`, `refreshToken`, ...)
//! with `Authorization: JWT …` and the `gql_refreshToken` cookie, and reading what its clients
//! read: `Auth` with millisecond expiries, string results, `errors[0].message` with
//! `extensions.code = "INVALID"`, the token's claims, and the `code` / `id` of mailed links.

use crate::common::dialect::*;
use crate::common::*;
use serde_json::{json, Value};

const GQL: &str = "/craft/api";
const COOKIE: &str = "gql_refreshToken";

const AUTH: &str = "jwt jwtExpiresAt refreshToken refreshTokenExpiresAt requiresTwoFactor schema
  user { id uid email username fullName firstName lastName friendlyName name status dateCreated
         ... on User { id } }";

fn authenticate() -> String {
    format!(
        "mutation Authenticate($email: String!, $password: String!) {{
      authenticate(email: $email, password: $password) {{ {AUTH} }} }}"
    )
}

fn register() -> String {
    format!("mutation Register($email: String!, $password: String!, $username: String, $fullName: String) {{
      register(email: $email, password: $password, username: $username, fullName: $fullName) {{ {AUTH} }} }}")
}

fn refresh() -> String {
    format!(
        "mutation RefreshToken($refreshToken: String) {{
      refreshToken(refreshToken: $refreshToken) {{ {AUTH} }} }}"
    )
}

const VIEWER: &str = "query { viewer { id email fullName status ... on User { username } } }";
const ACTIVATE: &str =
    "mutation ActivateUser($code: String!, $id: String!) { activateUser(code: $code, id: $id) }";
const FORGOTTEN: &str =
    "mutation ForgottenPassword($email: String!) { forgottenPassword(email: $email) }";
const RESEND: &str =
    "mutation ResendActivation($email: String!) { resendActivation(email: $email) }";
const SET_PASSWORD: &str =
    "mutation SetPassword($password: String!, $code: String!, $id: String!) {
  setPassword(password: $password, code: $code, id: $id) }";
const UPDATE_PASSWORD: &str = "mutation UpdatePassword($c: String!, $n: String!, $k: String!) {
  updatePassword(currentPassword: $c, newPassword: $n, confirmPassword: $k) }";
const DELETE_ACCOUNT: &str = "mutation DeleteAccount($p: String!, $c: String!) {
  deleteAccount(password: $p, confirmPassword: $c) }";
const DELETE_TOKEN: &str =
    "mutation DeleteRefreshToken($t: String) { deleteRefreshToken(refreshToken: $t) }";

const INVALID_LOGIN: &str = "We couldn't log you in with the provided details";
const INVALID_HEADER: &str = "Invalid Authorization Header";
const INVALID_REFRESH: &str = "Invalid Refresh Token";
const EMAIL_SENT: &str = "You will receive an email if it matches an account in our system";

/// The one error of an answer, checked to be exactly the plugin's shape; its message.
fn craft_error(answer: &Answer) -> String {
    let errors = answer.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{}", answer.text);
    let error = &errors[0];
    let mut keys: Vec<&String> = error.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["extensions", "message"],
        "exactly message and extensions: {}",
        answer.text
    );
    assert_eq!(
        error["extensions"],
        json!({"code": "INVALID"}),
        "{}",
        answer.text
    );
    error["message"].as_str().unwrap().to_string()
}

fn jwt_header(token: &str) -> String {
    format!("JWT {token}")
}

/// `Authorization: JWT …` for the `jwt` of an `Auth` answer under `field`.
fn jwt_of(answer: &Answer, field: &str) -> String {
    jwt_header(
        answer.body["data"][field]["jwt"]
            .as_str()
            .unwrap_or_else(|| panic!("a jwt: {}", answer.text)),
    )
}

/// The `code` and `id` of a mailed Craft link.
fn code_and_id(link: &str) -> (String, String) {
    let link = link.replace("&amp;", "&");
    let query = link.split_once('?').expect("a query").1;
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {link}"))
            .to_string()
    };
    (param("code"), param("id"))
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

#[tokio::test]
async fn craft_client_flow_from_register_to_delete() {
    let s = setup(&[("AUTHGATE_LOG__ACCESS_LOG", "true")]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);

    // register → Auth with the user, tokens and their expiries in milliseconds.
    let reg = call()
        .send(
            &register(),
            json!({"email": "james@example.com", "password": PASSWORD, "fullName": "James Edmonston"}),
        )
        .await;
    let auth = &reg.body["data"]["register"];
    let jwt = auth["jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", reg.text));
    let claims = jwt_claims(jwt);
    let user_id = claims["sub"].as_str().unwrap().to_string();
    assert_eq!(auth["user"]["id"], user_id);
    assert_eq!(auth["user"]["fullName"], "James Edmonston");
    assert_eq!(auth["user"]["firstName"], "James");
    assert_eq!(auth["user"]["lastName"], "Edmonston");
    assert_eq!(auth["user"]["friendlyName"], "James");
    assert_eq!(auth["user"]["status"], "pending");
    assert_eq!(
        auth["user"]["username"], "james@example.com",
        "Craft's default"
    );
    assert!(auth["user"]["dateCreated"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));
    assert_eq!(auth["schema"], "authgate");
    assert_eq!(auth["requiresTwoFactor"], false);
    let exp_ms = auth["jwtExpiresAt"].as_f64().expect("a number");
    assert_eq!(exp_ms, claims["exp"].as_f64().unwrap() * 1000.0);
    let refresh_ms = auth["refreshTokenExpiresAt"].as_f64().unwrap();
    assert!(refresh_ms > now_ms() + 6.0 * 86_400_000.0, "{refresh_ms}");
    // The claims the plugin's clients decode.
    assert_eq!(claims["fullName"], "James Edmonston");
    assert_eq!(claims["groups"], json!([]));
    assert_eq!(claims["admin"], false);
    assert_eq!(claims["schema"], "authgate");
    assert_eq!(claims["email"], "james@example.com");
    // The refresh token is in the answer and in the cookie, with the contract's attributes.
    let set = reg.set_cookie(COOKIE).expect("the refresh cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/craft", "Max-Age="] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http public_url: {set}");
    assert_eq!(reg.cookie(COOKIE).as_deref(), auth["refreshToken"].as_str());

    let taken = call()
        .send(
            &register(),
            json!({"email": "JAMES@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(craft_error(&taken), "Email has already been taken.");
    assert_eq!(taken.body["data"], Value::Null);

    // The activation mail carries Craft's link; `activateUser` takes its code and id.
    let mail = s.sink.wait_for("james@example.com", 1).await;
    let link = mail
        .link("/craft/verifyemail?code=")
        .expect("a verifyemail link");
    let (code, id) = code_and_id(&link);
    assert_eq!(id, user_id);
    let viewer = call().auth(jwt_header(jwt)).send(VIEWER, json!({})).await;
    assert_eq!(
        viewer.body["data"]["viewer"]["status"], "pending",
        "{}",
        viewer.text
    );
    let other = call()
        .send(ACTIVATE, json!({"code": code, "id": "someone-else"}))
        .await;
    assert_eq!(
        craft_error(&other),
        "This link is not valid, or was already used."
    );
    let activated = call().send(ACTIVATE, json!({"code": code, "id": id})).await;
    assert_eq!(
        activated.body["data"]["activateUser"], "Successfully activated user",
        "{}",
        activated.text
    );
    let again = call().send(ACTIVATE, json!({"code": code, "id": id})).await;
    assert_eq!(craft_error(&again), "This account is already activated.");
    let viewer = call().auth(jwt_header(jwt)).send(VIEWER, json!({})).await;
    assert_eq!(viewer.body["data"]["viewer"]["status"], "active");
    assert_eq!(viewer.body["data"]["viewer"]["email"], "james@example.com");
    let bearer_viewer = call().auth(bearer(jwt)).send(VIEWER, json!({})).await;
    assert_eq!(bearer_viewer.body["data"], viewer.body["data"]);

    // authenticate: unknown account and wrong password answer alike.
    let unknown = call()
        .send(
            &authenticate(),
            json!({"email": "ghost@example.com", "password": PASSWORD}),
        )
        .await;
    let wrong = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": "Wrong-Pass-123"}),
        )
        .await;
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(craft_error(&unknown), INVALID_LOGIN);
    assert_eq!(unknown.body["data"], Value::Null);
    let login = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        login.body["data"]["authenticate"]["user"]["status"], "active",
        "{}",
        login.text
    );
    let cookie = login.cookie(COOKIE).expect("a cookie");

    // refreshToken by the cookie; the spent one presented again ends the whole session.
    let refreshed = call()
        .cookie(COOKIE, &cookie)
        .send(&refresh(), json!({}))
        .await;
    let rotated = refreshed.cookie(COOKIE).expect("a rotated cookie");
    assert_ne!(rotated, cookie);
    assert_eq!(
        refreshed.body["data"]["refreshToken"]["refreshToken"].as_str(),
        Some(rotated.as_str())
    );
    assert_eq!(
        refreshed.body["data"]["refreshToken"]["user"]["email"],
        "james@example.com"
    );
    let reused = call()
        .cookie(COOKIE, &cookie)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&reused), INVALID_REFRESH);
    assert_eq!(reused.cookie(COOKIE).as_deref(), Some(""), "cleared");
    let family = call()
        .cookie(COOKIE, &rotated)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(
        craft_error(&family),
        INVALID_REFRESH,
        "the family is revoked"
    );

    // The argument serves clients without cookies; the cookie wins over it.
    let login = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    let token = login.body["data"]["authenticate"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let by_argument = call()
        .send(&refresh(), json!({"refreshToken": token}))
        .await;
    let token = by_argument.body["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", by_argument.text))
        .to_string();
    let cookie_first = call()
        .cookie(COOKIE, &token)
        .send(&refresh(), json!({"refreshToken": "not-a-token"}))
        .await;
    assert!(
        cookie_first.body["data"]["refreshToken"]["jwt"].is_string(),
        "{}",
        cookie_first.text
    );
    let session = cookie_first.cookie(COOKIE).unwrap();
    let dead_cookie = call()
        .cookie(COOKIE, "not-a-token")
        .send(&refresh(), json!({"refreshToken": session}))
        .await;
    assert_eq!(craft_error(&dead_cookie), INVALID_REFRESH);
    let none = call().send(&refresh(), json!({})).await;
    assert_eq!(craft_error(&none), INVALID_REFRESH);

    // updatePassword: needs the token; the plugin's messages; every session ends and the
    // cookie carries the one this call starts.
    let jwt = jwt_of(&cookie_first, "refreshToken");
    let update = |c: &str, n: &str, k: &str| json!({"c": c, "n": n, "k": k});
    let anonymous = call()
        .send(
            UPDATE_PASSWORD,
            update(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert_eq!(craft_error(&anonymous), INVALID_HEADER);
    let mismatch = call()
        .auth(&jwt)
        .send(UPDATE_PASSWORD, update(PASSWORD, NEW_PASSWORD, "other"))
        .await;
    assert_eq!(craft_error(&mismatch), "Passwords do not match");
    let wrong_current = call()
        .auth(&jwt)
        .send(
            UPDATE_PASSWORD,
            update("Wrong-Pass-123", NEW_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert_eq!(
        craft_error(&wrong_current),
        "We couldn't update the password with the provided details"
    );
    let weak = call()
        .auth(&jwt)
        .send(UPDATE_PASSWORD, update(PASSWORD, "12345678", "12345678"))
        .await;
    assert!(craft_error(&weak).contains("numeric"), "{}", weak.text);
    let updated = call()
        .auth(&jwt)
        .cookie(COOKIE, &session)
        .send(
            UPDATE_PASSWORD,
            update(PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
        )
        .await;
    assert_eq!(
        updated.body["data"]["updatePassword"], "Successfully updated password",
        "{}",
        updated.text
    );
    let continued = updated.cookie(COOKIE).expect("a new session's cookie");
    let old = call()
        .cookie(COOKIE, &session)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&old), INVALID_REFRESH, "sessions end");
    let goes_on = call()
        .cookie(COOKIE, &continued)
        .send(&refresh(), json!({}))
        .await;
    assert!(goes_on.body["data"]["refreshToken"]["jwt"].is_string());
    let old_password = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(craft_error(&old_password), INVALID_LOGIN);

    // forgottenPassword → /setpassword?code=&id= → setPassword (the page serves it too).
    let sent = call()
        .send(FORGOTTEN, json!({"email": "james@example.com"}))
        .await;
    assert_eq!(sent.body["data"]["forgottenPassword"], EMAIL_SENT);
    let mail = s.sink.wait_for("james@example.com", 2).await;
    let link = mail
        .link("/craft/setpassword?code=")
        .expect("a setpassword link");
    let page = get(gate, &link[gate.base.len()..].replace("&amp;", "&")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("<form"), "{}", page.text);
    let (code, id) = code_and_id(&link);
    assert_eq!(id, user_id);
    let elsewhere = call()
        .send(
            SET_PASSWORD,
            json!({"password": PASSWORD, "code": code, "id": "0190a1b2-c3d4-e5f6-0718-293a4b5c6d7e"}),
        )
        .await;
    assert_eq!(
        craft_error(&elsewhere),
        "This link is not valid, or was already used."
    );
    let saved = call()
        .send(
            SET_PASSWORD,
            json!({"password": PASSWORD, "code": code, "id": id}),
        )
        .await;
    assert_eq!(
        saved.body["data"]["setPassword"], "Successfully saved password",
        "{}",
        saved.text
    );
    let spent = call()
        .send(
            SET_PASSWORD,
            json!({"password": NEW_PASSWORD, "code": code, "id": id}),
        )
        .await;
    assert_eq!(
        craft_error(&spent),
        "This link is not valid, or was already used."
    );
    let after_reset = call()
        .cookie(COOKIE, &continued)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(
        craft_error(&after_reset),
        INVALID_REFRESH,
        "a reset ends sessions"
    );

    // deleteRefreshToken by the argument; deleteRefreshTokens for every session.
    let login = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    let jwt = jwt_of(&login, "authenticate");
    let first = login.body["data"]["authenticate"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = call().send(DELETE_TOKEN, json!({"t": first})).await;
    assert_eq!(
        deleted.body["data"]["deleteRefreshToken"], true,
        "{}",
        deleted.text
    );
    let gone = call()
        .send(&refresh(), json!({"refreshToken": first}))
        .await;
    assert_eq!(craft_error(&gone), INVALID_REFRESH);
    let twice = call().send(DELETE_TOKEN, json!({"t": first})).await;
    assert_eq!(craft_error(&twice), INVALID_REFRESH);
    let second = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await
        .cookie(COOKIE)
        .unwrap();
    let anonymous = call()
        .send("mutation { deleteRefreshTokens }", json!({}))
        .await;
    assert_eq!(craft_error(&anonymous), INVALID_HEADER);
    // The first session's access token died with its refresh token (SPEC §13): a live one.
    let dead = call()
        .auth(&jwt)
        .send("mutation { deleteRefreshTokens }", json!({}))
        .await;
    assert_eq!(craft_error(&dead), INVALID_HEADER);
    let live = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    let jwt = jwt_of(&live, "authenticate");
    let all = call()
        .auth(&jwt)
        .send("mutation { deleteRefreshTokens }", json!({}))
        .await;
    assert_eq!(
        all.body["data"]["deleteRefreshTokens"], true,
        "{}",
        all.text
    );
    assert_eq!(all.cookie(COOKIE).as_deref(), Some(""));
    let ended = call()
        .cookie(COOKIE, &second)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&ended), INVALID_REFRESH);
    // Logging out everywhere also ended the access token it was called with (SPEC §13).
    let after = call()
        .auth(&jwt)
        .send("{ viewer { email } }", json!({}))
        .await;
    assert_eq!(craft_error(&after), INVALID_HEADER);
    let again = call()
        .send(
            &authenticate(),
            json!({"email": "james@example.com", "password": PASSWORD}),
        )
        .await;
    let jwt = jwt_of(&again, "authenticate");

    // updateViewer: names, then the email (unverified at once, confirmed by its link).
    let named = call()
        .auth(&jwt)
        .send(
            "mutation { updateViewer(fullName: \"Jim Edmonston\", username: \"jim\") { fullName firstName username } }",
            json!({}),
        )
        .await;
    assert_eq!(
        named.body["data"]["updateViewer"],
        json!({"fullName": "Jim Edmonston", "firstName": "Jim", "username": "jim"}),
        "{}",
        named.text
    );
    let moved = call()
        .auth(&jwt)
        .send(
            "mutation { updateViewer(email: \"jim@example.com\") { email status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        moved.body["data"]["updateViewer"],
        json!({"email": "jim@example.com", "status": "pending"}),
        "{}",
        moved.text
    );
    let notice = s.sink.wait_for("james@example.com", 3).await;
    assert!(
        notice.text().contains("no longer james@example.com"),
        "{}",
        notice.text()
    );
    let confirm = s.sink.wait_for("jim@example.com", 1).await;
    let link = confirm
        .link("/craft/verifyemail?code=")
        .expect("a verifyemail link");
    let page = get(gate, &link[gate.base.len()..].replace("&amp;", "&")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let viewer = call().auth(&jwt).send(VIEWER, json!({})).await;
    assert_eq!(viewer.body["data"]["viewer"]["status"], "active");
    let by_username = call()
        .send(
            &authenticate(),
            json!({"email": "jim", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        by_username.body["data"]["authenticate"]["user"]["email"], "jim@example.com",
        "the email argument takes a username too: {}",
        by_username.text
    );

    // deleteAccount: the password twice, and right.
    let delete = |p: &str, c: &str| json!({"p": p, "c": c});
    let mismatch = call()
        .auth(&jwt)
        .send(DELETE_ACCOUNT, delete(PASSWORD, "other"))
        .await;
    assert_eq!(craft_error(&mismatch), "Passwords do not match");
    let wrong = call()
        .auth(&jwt)
        .send(DELETE_ACCOUNT, delete("Wrong-Pass-123", "Wrong-Pass-123"))
        .await;
    assert_eq!(craft_error(&wrong), INVALID_LOGIN);
    let deleted = call()
        .auth(&jwt)
        .send(DELETE_ACCOUNT, delete(PASSWORD, PASSWORD))
        .await;
    assert_eq!(
        deleted.body["data"]["deleteAccount"], "Successfully deleted account",
        "{}",
        deleted.text
    );
    let gone = call()
        .send(
            &authenticate(),
            json!({"email": "jim@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(craft_error(&gone), INVALID_LOGIN);
    // The deleted account's token is refused outright (SPEC §13).
    let viewer = call().auth(&jwt).send(VIEWER, json!({})).await;
    assert_eq!(craft_error(&viewer), INVALID_HEADER);

    // The log has the requests, and none of the secrets they carried.
    let log = gate.log();
    assert!(log.contains("/craft/api") && log.contains("/craft/setpassword"));
    let token = jwt.trim_start_matches("JWT ");
    for secret in [PASSWORD, NEW_PASSWORD, token, &code, &first, &second] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[tokio::test]
async fn craft_errors_bad_input_and_type_names() {
    let s = setup(&[]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);

    // What needs a login answers the plugin's error without one, and with a forged token.
    let forged = "JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    for header in [None, Some(forged.to_string())] {
        for query in [
            VIEWER,
            "mutation { deleteRefreshTokens }",
            "mutation { updateViewer(fullName: \"X\") { id } }",
            "mutation { deleteAccount(password: \"a\", confirmPassword: \"a\") }",
            "mutation { updatePassword(currentPassword: \"a\", newPassword: \"b\", confirmPassword: \"b\") }",
        ] {
            let answer = call().auth_opt(header.clone()).send(query, json!({})).await;
            assert_eq!(answer.status, 200);
            assert_eq!(craft_error(&answer), INVALID_HEADER, "{query}");
        }
    }

    // Registration refusals: a bad address, the password policy (authgate's words).
    let bad_email = call()
        .send(
            &register(),
            json!({"email": "not-an-email", "password": PASSWORD}),
        )
        .await;
    assert_eq!(craft_error(&bad_email), "Invalid email address");
    let short = call()
        .send(
            &register(),
            json!({"email": "short@example.com", "password": "abc"}),
        )
        .await;
    assert!(craft_error(&short).contains("short"), "{}", short.text);
    let common = call()
        .send(
            &register(),
            json!({"email": "common@example.com", "password": "password123"}),
        )
        .await;
    assert!(craft_error(&common).contains("common"), "{}", common.text);
    assert!(s.sink.mails_to("short@example.com").is_empty());

    // Link codes that are forged, or of the wrong kind.
    let forged_code = call()
        .send(ACTIVATE, json!({"code": "x.y", "id": "x"}))
        .await;
    assert_eq!(
        craft_error(&forged_code),
        "This link is not valid, or was already used."
    );
    let forged_set = call()
        .send(
            SET_PASSWORD,
            json!({"password": PASSWORD, "code": "nope", "id": "x"}),
        )
        .await;
    assert_eq!(
        craft_error(&forged_set),
        "This link is not valid, or was already used."
    );
    let reg = call()
        .send(
            &register(),
            json!({"email": "wedge@example.com", "password": PASSWORD}),
        )
        .await;
    let user_id = reg.body["data"]["register"]["user"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", reg.text))
        .to_string();
    let activation = s.sink.wait_for("wedge@example.com", 1).await;
    let (code, id) = code_and_id(&activation.link("/craft/verifyemail?code=").unwrap());
    assert_eq!(id, user_id);
    let wrong_kind = call()
        .send(
            SET_PASSWORD,
            json!({"password": NEW_PASSWORD, "code": code, "id": id}),
        )
        .await;
    assert_eq!(
        craft_error(&wrong_kind),
        "This link is not valid, or was already used."
    );
    // The dashed form of the id (what `uid` shows) names the same account.
    let uid = reg.body["data"]["register"]["user"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(uid.replace('-', ""), user_id);
    let by_uid = call()
        .send(ACTIVATE, json!({"code": code, "id": uid}))
        .await;
    assert_eq!(
        by_uid.body["data"]["activateUser"], "Successfully activated user",
        "{}",
        by_uid.text
    );
    // The pages of bad links say so, and a page path with nothing after it is not a crash.
    let bad_page = get(gate, "/craft/verifyemail?code=forged&id=x").await;
    assert_eq!(bad_page.status, 400);
    let bad_form = get(gate, "/craft/setpassword").await;
    assert_eq!(bad_form.status, 400);

    // Wrong types, unknown fields, missing arguments, syntax: GraphQL errors, HTTP 200.
    for query in [
        "mutation { authenticate(email: 5, password: \"x\") { jwt } }",
        "mutation { authenticate(email: \"a@b.co\") { jwt } }",
        "mutation { authenticate(email: \"a@b.co\", password: \"x\") { nope } }",
        "query { viewer { ... on Nope { id } } }",
        "mutation { authenticate(",
    ] {
        let answer = call().send(query, json!({})).await;
        assert_eq!(answer.status, 200, "{query}");
        assert!(
            answer.body["errors"][0]["message"].is_string(),
            "{query}: {}",
            answer.text
        );
        assert_ne!(answer.body["errors"][0]["extensions"]["code"], "INVALID");
    }
    let typed = call()
        .send(
            "mutation A($email: String!, $password: String!) { authenticate(email: $email, password: $password) { jwt } }",
            json!({"email": ["x"], "password": {"a": 1}}),
        )
        .await;
    assert_eq!(typed.status, 200);
    assert!(
        typed.body["errors"][0]["message"].is_string(),
        "{}",
        typed.text
    );
    let c = call();
    assert_eq!(c.raw("text/plain", b"{}".to_vec()).await.status, 415);
    assert_eq!(
        c.raw("application/json", b"{\"query\":".to_vec())
            .await
            .status,
        400
    );
    assert_eq!(
        c.raw("application/json", vec![0xff, 0xfe, b'{'])
            .await
            .status,
        400
    );
    let huge = json!({"query": format!("{{ viewer {{ id }} }} #{}", "x".repeat(70_000))});
    assert_eq!(
        c.raw("application/json", huge.to_string().into_bytes())
            .await
            .status,
        413
    );

    // Introspection shows the original's names; GraphiQL and unknown paths.
    let names = type_names(gate, GQL).await;
    for name in ["Auth", "UserInterface", "User", "DateTime"] {
        assert!(names.iter().any(|n| n == name), "craft lacks {name}");
    }
    let fields = call()
        .send(
            "{ __type(name: \"Auth\") { fields { name type { name kind } } } }",
            json!({}),
        )
        .await;
    let auth_fields: Vec<(String, String)> = fields.body["data"]["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (field, ty) in [
        ("user", "UserInterface"),
        ("schema", "String"),
        ("jwt", "String"),
        ("jwtExpiresAt", "Float"),
        ("refreshToken", "String"),
        ("refreshTokenExpiresAt", "Float"),
        ("requiresTwoFactor", "Boolean"),
    ] {
        assert!(
            auth_fields.contains(&(field.to_string(), ty.to_string())),
            "Auth.{field}: {ty} in {auth_fields:?}"
        );
    }
    let mutations = call()
        .send(
            "{ __schema { mutationType { fields { name } } } }",
            json!({}),
        )
        .await;
    let mutations = mutations.body["data"]["__schema"]["mutationType"]["fields"].to_string();
    for name in [
        "authenticate",
        "register",
        "refreshToken",
        "deleteRefreshToken",
        "deleteRefreshTokens",
        "activateUser",
        "resendActivation",
        "forgottenPassword",
        "setPassword",
        "updatePassword",
        "updateViewer",
        "deleteAccount",
    ] {
        assert!(mutations.contains(&format!("\"{name}\"")), "no {name}");
    }
    assert_eq!(get(gate, GQL).await.status, 200, "GraphiQL");
    assert_eq!(get(gate, "/craft").await.status, 404);
    assert_eq!(get(gate, "/craft/graphql").await.status, 404);
    let mut gate = s.gate;
    gate.assert_healthy().await;
}

#[tokio::test]
async fn craft_accounts_are_everyones() {
    let s = setup(&[]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);

    // Registered natively, logged in through craft; its token passes the gate.
    let native = gate
        .graphql_as(
            "mutation R($e: String!, $p: String!) { register(email: $e, username: \"leia\", password1: $p, password2: $p) { success errors } }",
            json!({"e": "leia@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(native["data"]["register"]["success"], true, "{native}");
    let login = call()
        .send(
            &authenticate(),
            json!({"email": "leia@example.com", "password": PASSWORD}),
        )
        .await;
    let jwt = login.body["data"]["authenticate"]["jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", login.text))
        .to_string();
    assert_eq!(
        login.body["data"]["authenticate"]["user"]["username"],
        "leia"
    );
    for header in [jwt_header(&jwt), bearer(&jwt)] {
        let (status, upstream) = through_gate(gate, &header).await;
        assert_eq!(status, 200, "{header}");
        assert_eq!(seen(&upstream, "x-auth-email"), ["leia@example.com"]);
    }
    let me = gate
        .graphql_as("{ me { email } }", json!({}), Some(&jwt))
        .await;
    assert_eq!(me["data"]["me"]["email"], "leia@example.com", "{me}");

    // Registered through craft, logged in natively and through krypton and django; a native
    // token is a craft viewer.
    let reg = call()
        .send(
            &register(),
            json!({"email": "luke@example.com", "password": PASSWORD, "username": "luke"}),
        )
        .await;
    assert!(
        reg.body["data"]["register"]["jwt"].is_string(),
        "{}",
        reg.text
    );
    let native = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success token } }",
            json!({"e": "luke@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(native["data"]["tokenAuth"]["success"], true, "{native}");
    let token = native["data"]["tokenAuth"]["token"].as_str().unwrap();
    let viewer = call().auth(jwt_header(token)).send(VIEWER, json!({})).await;
    assert_eq!(
        viewer.body["data"]["viewer"]["username"], "luke",
        "{}",
        viewer.text
    );
    let krypton = Call::new(gate, "/krypton")
        .send(
            "mutation L($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({"e": "luke@example.com", "p": PASSWORD}),
        )
        .await;
    assert!(
        krypton.body["data"]["login"]["token"].is_string(),
        "{}",
        krypton.text
    );
    let django = Call::new(gate, "/django/graphql")
        .send(
            "mutation L($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { success } }",
            json!({"u": "luke", "p": PASSWORD}),
        )
        .await;
    assert_eq!(django.body["data"]["tokenAuth"]["success"], true);

    // A password changed through craft is the password everywhere.
    let jwt = jwt_of(&reg, "register");
    let verify = s.sink.wait_for("luke@example.com", 1).await;
    let (code, id) = code_and_id(&verify.link("/craft/verifyemail?code=").unwrap());
    let page = get(gate, &format!("/craft/verifyemail?code={code}&id={id}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let changed = call()
        .auth(&jwt)
        .send(
            UPDATE_PASSWORD,
            json!({"c": PASSWORD, "n": NEW_PASSWORD, "k": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        changed.body["data"]["updatePassword"], "Successfully updated password",
        "{}",
        changed.text
    );
    let native = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success } }",
            json!({"e": "luke@example.com", "p": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(native["data"]["tokenAuth"]["success"], true, "{native}");

    // An invitation's set-password link (mailed natively) opens the craft page too, which
    // serves whichever kind of password link its code is.
    let config = gate.config_path();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["user", "invite", "--config"])
            .arg(config)
            .args(["--email", "mara@example.com"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let invite = s.sink.wait_for("mara@example.com", 1).await;
    let token = invite.token("/password/set?token=").expect("a set link");
    let form = get(gate, &format!("/craft/setpassword?code={token}&id=x")).await;
    assert_eq!(form.status, 200, "{}", form.text);
    assert!(form.text.contains("Choose your password"), "{}", form.text);
    let posted = client()
        .post(gate.url("/craft/setpassword"))
        .form(&[
            ("token", token.as_str()),
            ("new_password1", NEW_PASSWORD),
            ("new_password2", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let mara = call()
        .send(
            &authenticate(),
            json!({"email": "mara@example.com", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        mara.body["data"]["authenticate"]["user"]["status"], "active",
        "{}",
        mara.text
    );
}

#[tokio::test]
async fn craft_rate_limits_and_enumeration() {
    let s = setup(&[
        ("AUTHGATE_RATE_LIMIT__LOGIN", "3/1m"),
        ("AUTHGATE_RATE_LIMIT__EMAIL", "5/1h"),
    ])
    .await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);
    let reg = call()
        .send(
            &register(),
            json!({"email": "biggs@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(
        reg.body["data"]["register"]["jwt"].is_string(),
        "{}",
        reg.text
    );

    // Reset and resend answer alike, word for word, for known and unknown addresses; only
    // the known one gets mail (the activation link, as the account is unverified).
    for query in [FORGOTTEN, RESEND] {
        let known = call()
            .send(query, json!({"email": "biggs@example.com"}))
            .await;
        let unknown = call()
            .send(query, json!({"email": "nobody@example.com"}))
            .await;
        assert_eq!(known.body, unknown.body, "{query}");
        assert_eq!(known.text, unknown.text);
        let field = if query == FORGOTTEN {
            "forgottenPassword"
        } else {
            "resendActivation"
        };
        assert_eq!(known.body["data"][field], EMAIL_SENT);
    }
    s.sink.wait_for("biggs@example.com", 3).await;
    assert!(s.sink.mails_to("nobody@example.com").is_empty());
    let malformed = call().send(FORGOTTEN, json!({"email": "nobody"})).await;
    assert_eq!(craft_error(&malformed), "Invalid email address");

    // Three log-in attempts on the account, then a refusal in the same shape, right password
    // or not, and the native schema counts the same attempts.
    for _ in 0..3 {
        let wrong = call()
            .send(
                &authenticate(),
                json!({"email": "biggs@example.com", "password": "Wrong-Pass-123"}),
            )
            .await;
        assert_eq!(craft_error(&wrong), INVALID_LOGIN);
    }
    let limited = call()
        .send(
            &authenticate(),
            json!({"email": "biggs@example.com", "password": PASSWORD}),
        )
        .await;
    let message = craft_error(&limited);
    assert!(message.contains("Too many attempts"), "{message}");
    let native = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success errors } }",
            json!({"e": "biggs@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        native["data"]["tokenAuth"]["errors"]["nonFieldErrors"][0]["code"], "rate_limited",
        "{native}"
    );
    // Mail requests count per client and per address: the sixth within the hour is refused.
    let more = call()
        .send(FORGOTTEN, json!({"email": "biggs@example.com"}))
        .await;
    assert_eq!(more.body["data"]["forgottenPassword"], EMAIL_SENT);
    let over = call()
        .send(FORGOTTEN, json!({"email": "biggs@example.com"}))
        .await;
    assert!(
        craft_error(&over).contains("Too many attempts"),
        "{}",
        over.text
    );
}

#[tokio::test]
async fn craft_browsers_on_other_origins() {
    let s = setup(&[]).await;
    let gate = &s.gate;
    for (path, origin, status) in [
        (GQL, APP_ORIGIN, 204),
        ("/craft/verifyemail", APP_ORIGIN, 204),
        ("/craft/setpassword", APP_ORIGIN, 204),
        (GQL, "https://evil.example.com", 403),
    ] {
        let resp = client()
            .request(reqwest::Method::OPTIONS, gate.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
            .await
            .unwrap();
        let answer = read(resp).await;
        assert_eq!(
            answer.status, status,
            "{path} from {origin}: {}",
            answer.text
        );
        let granted = (status == 204).then_some(origin);
        assert_eq!(answer.header("access-control-allow-origin"), granted);
    }
    // The log-in answer to a listed origin grants it, with credentials, and sets the cookie.
    let resp = client()
        .post(gate.url(GQL))
        .header("origin", APP_ORIGIN)
        .json(&json!({
            "query": register(),
            "variables": {"email": "wedge@example.com", "password": PASSWORD},
        }))
        .send()
        .await
        .unwrap();
    let answer = read(resp).await;
    assert!(
        answer.body["data"]["register"]["jwt"].is_string(),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(answer.set_cookie(COOKIE).is_some());
}

#[tokio::test]
async fn craft_under_load_and_with_dependencies_down() {
    let s = setup(&[("AUTHGATE_ACCOUNTS__ALLOW_UNVERIFIED_LOGIN", "false")]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);

    // The mail relay down: register fails in the plugin's error form and leaves no account.
    s.sink.refuse(true);
    let refused = call()
        .send(
            &register(),
            json!({"email": "porkins@example.com", "password": PASSWORD}),
        )
        .await;
    assert!(craft_error(&refused).contains("email"), "{}", refused.text);
    s.sink.refuse(false);

    // Unverified accounts may not log in here: register answers the user without tokens,
    // and authenticate says so only to the right password.
    let reg = call()
        .send(
            &register(),
            json!({"email": "porkins@example.com", "password": PASSWORD}),
        )
        .await;
    let auth = &reg.body["data"]["register"];
    assert_eq!(auth["user"]["email"], "porkins@example.com", "{}", reg.text);
    assert_eq!(auth["jwt"], Value::Null);
    assert_eq!(auth["refreshToken"], Value::Null);
    assert!(reg.set_cookie(COOKIE).is_none());
    let pending = call()
        .send(
            &authenticate(),
            json!({"email": "porkins@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(craft_error(&pending), "Please activate your account");
    let wrong = call()
        .send(
            &authenticate(),
            json!({"email": "porkins@example.com", "password": "Wrong-Pass-123"}),
        )
        .await;
    assert_eq!(craft_error(&wrong), INVALID_LOGIN);
    let mail = s.sink.wait_for("porkins@example.com", 1).await;
    let (code, id) = code_and_id(&mail.link("/craft/verifyemail?code=").unwrap());
    let activated = call().send(ACTIVATE, json!({"code": code, "id": id})).await;
    assert_eq!(
        activated.body["data"]["activateUser"],
        "Successfully activated user"
    );

    // One refresh token presented ten times at once: exactly one new pair.
    let login = call()
        .send(
            &authenticate(),
            json!({"email": "porkins@example.com", "password": PASSWORD}),
        )
        .await;
    let token = login.body["data"]["authenticate"]["refreshToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", login.text))
        .to_string();
    let query = refresh();
    let answers = futures_util::future::join_all((0..10).map(|_| {
        let query = query.clone();
        let token = token.clone();
        async move {
            Call::new(gate, GQL)
                .send(&query, json!({"refreshToken": token}))
                .await
        }
    }))
    .await;
    let (fresh, refused): (Vec<&Answer>, Vec<&Answer>) = answers
        .iter()
        .partition(|a| a.body["data"]["refreshToken"]["jwt"].is_string());
    assert_eq!(fresh.len(), 1, "exactly one rotation");
    for answer in refused {
        assert_eq!(craft_error(answer), INVALID_REFRESH);
    }
    // The other nine were reuse, which revoked the family: the new pair with it (RFC 9700),
    // however the rotation and the revocation interleaved.
    let new_token = fresh[0].body["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .expect("the new refresh token")
        .to_string();
    let after = Call::new(gate, GQL)
        .send(&query, json!({"refreshToken": new_token}))
        .await;
    assert_eq!(craft_error(&after), INVALID_REFRESH, "{}", after.text);
}

suite!(craft_sessions_on_every_backend, |backend| {
    let (redis, database) = match backend {
        Backend::Sled => (None, None),
        Backend::Redis => match crate::common::redis::RedisServer::start() {
            Some(redis) => (Some(redis), None),
            None => return,
        },
        Backend::Postgres => match crate::common::postgres::PgServer::shared() {
            Some(pg) => (None, Some(pg.database().await)),
            None => return,
        },
    };
    let url = redis.as_ref().map(|r| r.url());
    let mut env = Vec::new();
    if let Some(url) = &url {
        env.push(("AUTHGATE_STORAGE__REDIS_URL", url.as_str()));
    }
    if let Some(url) = &database {
        env.push(("AUTHGATE_STORAGE__DATABASE_URL", url.as_str()));
    }
    let s = setup(&env).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);
    let reg = call()
        .send(
            &register(),
            json!({"email": "dak@example.com", "password": PASSWORD}),
        )
        .await;
    let first = reg.cookie(COOKIE).unwrap_or_else(|| panic!("{}", reg.text));
    let jwt = jwt_of(&reg, "register");
    let next = call()
        .cookie(COOKIE, &first)
        .send(&refresh(), json!({}))
        .await
        .cookie(COOKIE)
        .expect("rotated");
    let reused = call()
        .cookie(COOKIE, &first)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&reused), INVALID_REFRESH);
    let family = call()
        .cookie(COOKIE, &next)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&family), INVALID_REFRESH);
    let other = call()
        .send(
            &authenticate(),
            json!({"email": "dak@example.com", "password": PASSWORD}),
        )
        .await;
    // The reused family's access token is refused now; the other session's works.
    let refused = call()
        .auth(&jwt)
        .send("mutation { deleteRefreshTokens }", json!({}))
        .await;
    assert_eq!(craft_error(&refused), INVALID_HEADER);
    let jwt = jwt_of(&other, "authenticate");
    let other = other.cookie(COOKIE).unwrap();
    let all = call()
        .auth(&jwt)
        .send("mutation { deleteRefreshTokens }", json!({}))
        .await;
    assert_eq!(
        all.body["data"]["deleteRefreshTokens"], true,
        "{}",
        all.text
    );
    let ended = call()
        .cookie(COOKIE, &other)
        .send(&refresh(), json!({}))
        .await;
    assert_eq!(craft_error(&ended), INVALID_REFRESH);

    // Redis down: log-ins and refreshes say so in the plugin's form; back, they work again.
    if let Some(mut redis) = redis {
        let session = call()
            .send(
                &authenticate(),
                json!({"email": "dak@example.com", "password": PASSWORD}),
            )
            .await
            .cookie(COOKIE)
            .unwrap();
        redis.stop();
        let down = call()
            .cookie(COOKIE, &session)
            .send(&refresh(), json!({}))
            .await;
        assert!(
            craft_error(&down).contains("temporarily unavailable"),
            "{}",
            down.text
        );
        assert_eq!(down.set_cookie(COOKIE), None, "the session's cookie stays");
        let logout = call()
            .cookie(COOKIE, &session)
            .send(DELETE_TOKEN, json!({}))
            .await;
        assert!(craft_error(&logout).contains("temporarily unavailable"));
        assert_eq!(logout.set_cookie(COOKIE), None);
        let login = call()
            .send(
                &authenticate(),
                json!({"email": "dak@example.com", "password": PASSWORD}),
            )
            .await;
        assert!(
            craft_error(&login).contains("temporarily unavailable"),
            "{}",
            login.text
        );
        redis.restart();
        eventually(
            std::time::Duration::from_secs(10),
            "log-ins once Redis is back",
            || async {
                call()
                    .send(
                        &authenticate(),
                        json!({"email": "dak@example.com", "password": PASSWORD}),
                    )
                    .await
                    .body["data"]["authenticate"]["jwt"]
                    .is_string()
            },
        )
        .await;
    }
});
