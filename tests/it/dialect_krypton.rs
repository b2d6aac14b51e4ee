//! The krypton dialect at `/krypton` through HTTP against the real binary, sending the
//! documents krypton's JS client sends (its variable types, `Authorization: Bearer`, the
//! `refreshToken` cookie) and reading what it reads (`errors[0].type`, the JWT payload).
//! The client itself is not published to the npm registry, so its documents are replayed here.

use crate::common::dialect::*;
use crate::common::*;
use serde_json::{json, Value};

const GQL: &str = "/krypton";
const COOKIE: &str = "refreshToken";

const REGISTER: &str =
    "mutation register($fields: UserRegisterInput!) { register(fields: $fields) }";
const LOGIN: &str = "mutation login($email: String!, $password: String!) {
  login(email: $email, password: $password) { token expiryDate user { _id email email_verified } } }";
const REFRESH: &str = "mutation { refreshToken { token, expiryDate } }";
const UPDATE: &str = "mutation updateMe($fields: UserUpdateInput!) {
  updateMe(fields: $fields) { token expiryDate } }";

fn bearer_of(answer: &Answer, field: &str) -> String {
    bearer(
        answer.body["data"][field]["token"]
            .as_str()
            .expect("a token"),
    )
}

/// The one error of an answer, exactly as the client reads it.
fn krypton_error(answer: &Answer) -> (String, String) {
    let error = &answer.body["errors"][0];
    let keys: Vec<&String> = error.as_object().expect("an error").keys().collect();
    assert_eq!(
        keys,
        ["message", "type"],
        "exactly message and type: {}",
        answer.text
    );
    (
        error["type"].as_str().unwrap().to_string(),
        error["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn krypton_client_flow_and_errors() {
    let s = setup(&[]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);

    // register → true; the verification mail carries the original's link.
    let reg = call()
        .send(
            REGISTER,
            json!({"fields": {"email": "han@example.com", "password": PASSWORD, "username": "han"}}),
        )
        .await;
    assert_eq!(reg.body["data"]["register"], true, "{}", reg.text);
    let taken = call()
        .send(
            REGISTER,
            json!({"fields": {"email": "HAN@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(krypton_error(&taken).0, "EmailAlreadyExistsError");
    assert_eq!(taken.body["data"]["register"], Value::Null);
    let short = call()
        .send(
            REGISTER,
            json!({"fields": {"email": "short@example.com", "password": "abc"}}),
        )
        .await;
    assert_eq!(krypton_error(&short).0, "UserValidationError");
    let invalid = call()
        .send(
            REGISTER,
            json!({"fields": {"email": "not-an-email", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(
        krypton_error(&invalid),
        (
            "UserValidationError".into(),
            "This email address is not valid.".into()
        )
    );
    let mail = s.sink.wait_for("han@example.com", 1).await;
    let link = mail
        .link("/krypton/user/email/confirmation?token=")
        .expect("a confirmation link");

    // login before confirming: the JWT carries krypton's claims; the cookie its name.
    let login = call()
        .send(
            LOGIN,
            json!({"email": "han@example.com", "password": PASSWORD}),
        )
        .await;
    let data = &login.body["data"]["login"];
    assert!(data["token"].is_string(), "{}", login.text);
    assert!(data["expiryDate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(data["user"]["email_verified"], false);
    let claims = jwt_claims(data["token"].as_str().unwrap());
    assert_eq!(claims["_id"], claims["sub"]);
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["email"], "han@example.com");
    let set = login.set_cookie(COOKIE).expect("the refresh cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("Path=/krypton"),
        "{set}"
    );
    let cookie = login.cookie(COOKIE).unwrap();

    // The confirmation page of the link verifies the address.
    let page = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let me = call()
        .auth(bearer_of(&login, "login"))
        .send("{ me { _id email email_verified username } }", json!({}))
        .await;
    assert_eq!(me.body["data"]["me"]["email_verified"], true, "{}", me.text);
    assert_eq!(me.body["data"]["me"]["username"], "han");
    let verified_again = call()
        .auth(bearer_of(&login, "login"))
        .send("query { sendVerificationEmail }", json!({}))
        .await;
    assert_eq!(
        krypton_error(&verified_again).0,
        "EmailAlreadyConfirmedError"
    );
    let nobody = call().send("{ me { _id } }", json!({})).await;
    assert_eq!(
        krypton_error(&nobody),
        (
            "UnauthorizedError".into(),
            "User not found, please log in.".into()
        )
    );

    // refreshToken by the cookie only; the rotated one used again revokes the family.
    let refreshed = call()
        .cookie(COOKIE, &cookie)
        .send(REFRESH, json!({}))
        .await;
    let next = refreshed.cookie(COOKIE).expect("a rotated cookie");
    assert!(
        refreshed.body["data"]["refreshToken"]["token"].is_string(),
        "{}",
        refreshed.text
    );
    assert_eq!(
        jwt_claims(
            refreshed.body["data"]["refreshToken"]["token"]
                .as_str()
                .unwrap()
        )["email_verified"],
        true
    );
    let reused = call()
        .cookie(COOKIE, &cookie)
        .send(REFRESH, json!({}))
        .await;
    assert_eq!(
        krypton_error(&reused),
        ("UnauthorizedError".into(), "Please login.".into())
    );
    let family = call().cookie(COOKIE, &next).send(REFRESH, json!({})).await;
    assert_eq!(krypton_error(&family).0, "UnauthorizedError");
    let no_cookie = call().send(REFRESH, json!({})).await;
    assert_eq!(krypton_error(&no_cookie).0, "UnauthorizedError");

    // Bad credentials: the same answer for an unknown email and a wrong password.
    let unknown = call()
        .send(
            LOGIN,
            json!({"email": "ghost@example.com", "password": PASSWORD}),
        )
        .await;
    let wrong = call()
        .send(
            LOGIN,
            json!({"email": "han@example.com", "password": "Wrong-Pass-123"}),
        )
        .await;
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(
        krypton_error(&unknown),
        ("UserNotFoundError".into(), "Wrong credentials.".into())
    );
    assert_eq!(unknown.body["data"]["login"], Value::Null);

    // updateMe: the password (wrong previous one refused), then the email, which goes
    // unverified with a mail to the new address and a notice to the old one.
    let login = call()
        .send(
            LOGIN,
            json!({"email": "han@example.com", "password": PASSWORD}),
        )
        .await;
    let session = login.cookie(COOKIE).unwrap();
    let wrong_old = call()
        .auth(bearer_of(&login, "login"))
        .cookie(COOKIE, &session)
        .send(
            UPDATE,
            json!({"fields": {"previousPassword": "nope-nope-1", "password": NEW_PASSWORD}}),
        )
        .await;
    assert_eq!(
        krypton_error(&wrong_old),
        (
            "WrongPasswordError".into(),
            "Your previous password is wrong.".into()
        )
    );
    let session = wrong_old
        .cookie(COOKIE)
        .expect("the session goes on, rotated");
    let changed = call()
        .auth(bearer_of(&login, "login"))
        .cookie(COOKIE, &session)
        .send(
            UPDATE,
            json!({"fields": {"previousPassword": PASSWORD, "password": NEW_PASSWORD}}),
        )
        .await;
    assert!(
        changed.body["data"]["updateMe"]["token"].is_string(),
        "{}",
        changed.text
    );
    let session = changed.cookie(COOKIE).unwrap();
    let email = call()
        .auth(bearer_of(&changed, "updateMe"))
        .cookie(COOKIE, &session)
        .send(UPDATE, json!({"fields": {"email": "solo@example.com"}}))
        .await;
    let token = email.body["data"]["updateMe"]["token"]
        .as_str()
        .expect("a token");
    let claims = jwt_claims(token);
    assert_eq!(claims["email"], "solo@example.com");
    assert_eq!(claims["email_verified"], false);
    let notice = s.sink.wait_for("han@example.com", 2).await;
    assert!(
        notice.text().contains("no longer han@example.com"),
        "{}",
        notice.text()
    );
    let confirm = s.sink.wait_for("solo@example.com", 1).await;
    let confirm_link = confirm
        .link("/krypton/user/email/confirmation?token=")
        .expect("a confirmation link");
    assert_eq!(
        get(gate, &confirm_link[gate.base.len()..]).await.status,
        200
    );
    let without_cookie = call()
        .auth(bearer(token))
        .send(UPDATE, json!({"fields": {"username": "solo"}}))
        .await;
    assert_eq!(krypton_error(&without_cookie).0, "UnauthorizedError");

    // Public queries: _id, username, email_verified; never an email, not even as a filter.
    let user_id = claims["sub"].as_str().unwrap();
    let one = call()
        .send(
            "query userOne($filter: FilterFindOneUserPublicInfoInput!) { userOne(filter: $filter) { ...f } }
             fragment f on UserPublicInfo { _id username email_verified }",
            json!({"filter": {"username": "han"}}),
        )
        .await;
    assert_eq!(one.body["data"]["userOne"]["_id"], user_id, "{}", one.text);
    assert_eq!(one.body["data"]["userOne"]["email_verified"], true);
    let by_ids = call()
        .send(
            "query userByIds($ids: [MongoID]!) { userByIds(_ids: $ids) { _id } }",
            json!({"ids": [user_id, "nope"]}),
        )
        .await;
    assert_eq!(
        by_ids.body["data"]["userByIds"].as_array().unwrap().len(),
        1
    );
    let count = call()
        .send(
            "query userCount($filter: FilterUserPublicInfoInput!) { userCount(filter: $filter) }",
            json!({"filter": {"email_verified": true}}),
        )
        .await;
    assert_eq!(count.body["data"]["userCount"], 1, "{}", count.text);
    let page = call()
        .send(
            "query userPagination($filter: FilterFindManyUserPublicInfoInput!, $page: Int!, $perPage: Int!) {
               userPagination(filter: $filter, page: $page, perPage: $perPage) { ...f } }
             fragment f on UserPublicInfoPagination { items { _id } pageInfo { currentPage perPage pageCount itemCount hasNextPage hasPreviousPage } }",
            json!({"filter": {}, "page": 1, "perPage": 5}),
        )
        .await;
    assert_eq!(
        page.body["data"]["userPagination"]["pageInfo"]["itemCount"], 1,
        "{}",
        page.text
    );
    for leak in [
        "{ userOne(filter: {email: \"solo@example.com\"}) { _id } }",
        "{ userMany { email } }",
    ] {
        let refused = call().send(leak, json!({})).await;
        assert_eq!(refused.status, 200);
        assert_eq!(
            refused.body["errors"][0]["type"], "GraphQLError",
            "{}",
            refused.text
        );
        assert!(!refused.text.contains("solo@example.com") || leak.contains("solo"));
    }

    // Password recovery by the mailed form at the original's path.
    let recover = "query sendPasswordRecoveryEmail($email: String!) { sendPasswordRecoveryEmail(email: $email) }";
    for address in ["solo@example.com", "ghost@example.com"] {
        let sent = call().send(recover, json!({"email": address})).await;
        assert_eq!(sent.body["data"]["sendPasswordRecoveryEmail"], true);
    }
    let mail = s.sink.wait_for("solo@example.com", 2).await;
    let link = mail
        .link("/krypton/form/reset/password?token=")
        .expect("a reset link");
    let form = get(gate, &link[gate.base.len()..]).await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("<form"));
    let token = mail.token("/krypton/form/reset/password?token=").unwrap();
    let reset = "mutation R($p: String!, $t: String!) { resetMyPassword(password: $p, passwordRecoveryToken: $t) { notifications { type message } } }";
    let bad = call().send(reset, json!({"p": PASSWORD, "t": "x.y"})).await;
    assert_eq!(
        krypton_error(&bad),
        ("UnauthorizedError".into(), "Unvalid token.".into())
    );
    let done = call().send(reset, json!({"p": PASSWORD, "t": token})).await;
    assert_eq!(
        done.body["data"]["resetMyPassword"]["notifications"][0],
        json!({"type": "SUCCESS", "message": "Your password is updated."})
    );

    // The account made here logs in natively and through django; its token passes the gate.
    let native = gate
        .graphql_as(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success token } }",
            json!({"e": "solo@example.com", "p": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(native["data"]["tokenAuth"]["success"], true, "{native}");
    let django = Call::new(gate, "/django/graphql")
        .send(
            "mutation L($e: String!, $p: String!) { tokenAuth(email: $e, password: $p) { success token } }",
            json!({"e": "solo@example.com", "p": PASSWORD}),
        )
        .await;
    assert_eq!(django.body["data"]["tokenAuth"]["success"], true);
    let login = call()
        .send(
            LOGIN,
            json!({"email": "solo@example.com", "password": PASSWORD}),
        )
        .await;
    let (status, upstream) = through_gate(gate, &bearer_of(&login, "login")).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&upstream, "x-auth-email"), ["solo@example.com"]);
    assert_eq!(seen(&upstream, "x-auth-user-id"), [user_id]);

    // JWKS under the prefix; logout; deleteMe.
    let jwks = get(gate, "/krypton/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    assert!(jwks.body["keys"][0]["n"].is_string());
    let session = login.cookie(COOKIE).unwrap();
    let logout = call()
        .auth(bearer_of(&login, "login"))
        .cookie(COOKIE, &session)
        .send("mutation { logout }", json!({}))
        .await;
    assert_eq!(logout.body["data"]["logout"], true, "{}", logout.text);
    let after = call()
        .cookie(COOKIE, &session)
        .send(REFRESH, json!({}))
        .await;
    assert_eq!(krypton_error(&after).0, "UnauthorizedError");
    // Logging out ended the session's access token too (SPEC §13): a new login deletes.
    let revoked = call()
        .auth(bearer_of(&login, "login"))
        .send(
            "mutation deleteMe($password: String!) { deleteMe(password: $password) }",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(krypton_error(&revoked).0, "UnauthorizedError");
    let login = call()
        .send(
            LOGIN,
            json!({"email": "solo@example.com", "password": PASSWORD}),
        )
        .await;
    let wrong = call()
        .auth(bearer_of(&login, "login"))
        .send(
            "mutation deleteMe($password: String!) { deleteMe(password: $password) }",
            json!({"password": "nope-nope-1"}),
        )
        .await;
    assert_eq!(krypton_error(&wrong).0, "WrongPasswordError");
    let deleted = call()
        .auth(bearer_of(&login, "login"))
        .send(
            "mutation deleteMe($password: String!) { deleteMe(password: $password) }",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(deleted.body["data"]["deleteMe"], true, "{}", deleted.text);

    // Type names by introspection, and bad input.
    let names = type_names(gate, GQL).await;
    for name in [
        "User",
        "UserPublicInfo",
        "UserRegisterInput",
        "UserUpdateInput",
        "UserAndToken",
        "Token",
        "Notifications",
        "FilterFindOneUserPublicInfoInput",
        "FilterFindManyUserPublicInfoInput",
        "FilterUserPublicInfoInput",
        "UserPublicInfoPagination",
        "PaginationInfo",
        "MongoID",
        "Date",
    ] {
        assert!(names.iter().any(|n| n == name), "krypton lacks {name}");
    }
    let c = call();
    assert_eq!(c.raw("text/plain", b"{}".to_vec()).await.status, 415);
    assert_eq!(
        c.raw("application/json", b"[1,2".to_vec()).await.status,
        400
    );
    let syntax = c.send("mutation { login(", json!({})).await;
    assert_eq!(syntax.status, 200);
    assert_eq!(syntax.body["errors"][0]["type"], "GraphQLError");
    assert_eq!(get(gate, "/krypton/unknown/path").await.status, 404);
    assert_eq!(get(gate, "/krypton").await.status, 200, "GraphiQL");
}

#[tokio::test]
async fn a_store_that_is_down_leaves_the_refresh_cookie_be() {
    let Some(mut redis) = crate::common::redis::RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let s = setup(&[("AUTHGATE_STORAGE__REDIS_URL", url.as_str())]).await;
    let gate = &s.gate;
    let call = || Call::new(gate, GQL);
    let reg = call()
        .send(
            REGISTER,
            json!({"fields": {"email": "leia@example.com", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(reg.body["data"]["register"], true, "{}", reg.text);
    let login = call()
        .send(
            LOGIN,
            json!({"email": "leia@example.com", "password": PASSWORD}),
        )
        .await;
    let cookie = login
        .cookie(COOKIE)
        .unwrap_or_else(|| panic!("{}", login.text));

    // Sessions unreachable: the refresh says so and the browser keeps its session cookie,
    // since the session may well be alive.
    redis.stop();
    let down = call()
        .cookie(COOKIE, &cookie)
        .send(REFRESH, json!({}))
        .await;
    assert_eq!(
        krypton_error(&down).0,
        "ServiceUnavailableError",
        "{}",
        down.text
    );
    assert_eq!(down.set_cookie(COOKIE), None, "the cookie stays");

    // A dead token still clears it.
    redis.restart();
    eventually(
        std::time::Duration::from_secs(10),
        "a refused refresh once Redis is back",
        || async {
            let dead = call()
                .cookie(COOKIE, "not-a-live-refresh-token")
                .send(REFRESH, json!({}))
                .await;
            dead.body["errors"][0]["type"] != "ServiceUnavailableError"
                && dead.set_cookie(COOKIE).is_some()
        },
    )
    .await;
}
