//! Karrio's REST token endpoints (djangorestframework-simplejwt views): `POST /api/token`
//! `{email, password}` → `201 {access, refresh}`, `POST /api/token/refresh {refresh}` →
//! `201 {access, refresh}` (rotated: authgate's refresh tokens are single-use), `POST
//! /api/token/verify {token}` → `200 {}`. Refusals are Karrio's error document
//! `{"errors": [{"code", "message"}]}`: bad credentials and bad tokens `401`, bad input `400`,
//! authgate's own refusals `429` / `503`.

use serde_json::{json, Map, Value};

use super::{login, State};
use crate::accounts::{Code, Failure, TokenPair};
use crate::graphql::Caller;
use crate::reply::Reply;

pub const TOKEN: &str = "token";
pub const REFRESH: &str = "token_refresh";
pub const VERIFY: &str = "token_verify";

fn errors(status: u16, code: &str, message: &str, details: Option<Value>) -> Reply {
    let mut error = json!({ "code": code, "message": message });
    if let Some(details) = details {
        error["details"] = details;
    }
    let body = json!({ "errors": [error] });
    Reply::new(
        status,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
    .with_header("cache-control", "no-store")
}

fn pair(pair: &TokenPair) -> Reply {
    let body = json!({ "access": pair.token, "refresh": pair.refresh_token });
    Reply::new(
        201,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
    .with_header("cache-control", "no-store")
}

fn invalid_token() -> Reply {
    errors(401, "token_not_valid", "Token is invalid or expired", None)
}

/// A refusal of authgate's own (rate limit, a store down) in the same document; `None` for
/// the failures each endpoint answers its own way.
fn own_refusal(failure: &Failure) -> Option<Reply> {
    let problem = failure.problems().first()?;
    match problem.code {
        Code::RateLimited => Some(errors(429, "throttled", &problem.message, None)),
        Code::ServiceUnavailable => {
            Some(errors(503, "service_unavailable", &problem.message, None))
        }
        _ => None,
    }
}

/// A login owed or refused its second factor (SPEC §14; the original has none): `401` with
/// authgate's code, told only after the password was right.
fn second_factor(failure: &Failure) -> Option<Reply> {
    match failure.problems().first()?.code {
        Code::OtpRequired => Some(errors(
            401,
            "otp_required",
            "A one-time code from the authenticator app is required",
            None,
        )),
        Code::InvalidOtp => Some(errors(401, "invalid_otp", "Invalid one-time code", None)),
        _ => None,
    }
}

/// The body's string fields `names` (each required), or the `400` that says what is wrong.
fn fields<const N: usize>(body: &[u8], names: [&str; N]) -> Result<[String; N], Reply> {
    let parsed: Result<Map<String, Value>, _> = serde_json::from_slice(body);
    let object =
        parsed.map_err(|e| errors(400, "parse_error", &format!("JSON parse error - {e}"), None))?;
    let mut problems = Map::new();
    let values = names.map(|name| match object.get(name) {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::String(_)) => {
            problems.insert(name.into(), json!(["This field may not be blank."]));
            String::new()
        }
        Some(Value::Null) | None => {
            problems.insert(name.into(), json!(["This field is required."]));
            String::new()
        }
        Some(_) => {
            problems.insert(name.into(), json!(["Not a valid string."]));
            String::new()
        }
    });
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(errors(
            400,
            "validation",
            "Invalid input.",
            Some(Value::Object(problems)),
        ))
    }
}

/// An optional string field (`otp`): absent, null or empty is `None`; another type is `400`.
fn optional(body: &[u8], name: &str) -> Result<Option<String>, Reply> {
    let object: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone()).filter(|t| !t.is_empty())),
        Some(_) => {
            let mut problems = Map::new();
            problems.insert(name.into(), json!(["Not a valid string."]));
            Err(errors(
                400,
                "validation",
                "Invalid input.",
                Some(Value::Object(problems)),
            ))
        }
    }
}

pub async fn serve(state: &State, name: &str, body: &[u8], caller: &Caller) -> Reply {
    let answer = match name {
        TOKEN => obtain(state, body, caller).await,
        REFRESH => refresh(state, body).await,
        VERIFY => verify(state, body),
        _ => Err(errors(404, "not_found", "Not found.", None)),
    };
    answer.unwrap_or_else(|refusal| refusal)
}

async fn obtain(state: &State, body: &[u8], caller: &Caller) -> Result<Reply, Reply> {
    let [email, password] = fields(body, ["email", "password"])?;
    let otp = optional(body, "otp")?;
    match login(state, email, password, otp, caller).await {
        Ok(done) => Ok(pair(&done.tokens)),
        Err(failure) => Err(own_refusal(&failure)
            .or_else(|| second_factor(&failure))
            .unwrap_or_else(|| {
                // Unknown account, wrong password, deactivated or not yet confirmed: the
                // original answers all of these alike.
                errors(
                    401,
                    "no_active_account",
                    "No active account found with the given credentials",
                    None,
                )
            })),
    }
}

async fn refresh(state: &State, body: &[u8]) -> Result<Reply, Reply> {
    let [token] = fields(body, ["refresh"])?;
    match state.accounts.sessions.refresh(Some(&token)).await {
        Ok((_, next)) => Ok(pair(&next)),
        Err(failure) => Err(own_refusal(&failure).unwrap_or_else(invalid_token)),
    }
}

fn verify(state: &State, body: &[u8]) -> Result<Reply, Reply> {
    let [token] = fields(body, ["token"])?;
    match state.accounts.sessions.verify_token(&token) {
        Ok(_) => Ok(Reply::new(200, "application/json", &b"{}"[..])),
        Err(_) => Err(invalid_token()),
    }
}
