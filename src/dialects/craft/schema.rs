//! The plugin's schema (webonyx names) over the account services, and its error form: every
//! expected failure is a GraphQL error exactly `{"message", "extensions": {"code":
//! "INVALID"}}`, with the plugin's default message where it has one for that failure and
//! authgate's own otherwise (rate limits, the password policy, bad or used link codes). Other
//! errors (a malformed query, a wrong argument type) keep the form async-graphql gives them.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, Interface, Object, Schema, SimpleObject, Value, ID,
};

use super::{State, SCHEMA_NAME};
use crate::accounts::{
    Code, Failure, Field, LoginRequest, ProfileUpdate, Purpose, SignUp, TokenPair, User,
};
use crate::config;
use crate::dialects::datetime::DateTime;
use crate::graphql::Caller;

pub type CraftSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build(state: Arc<State>, limits: &config::Graphql) -> CraftSchema {
    let mut builder = Schema::build(Query, Mutation, EmptySubscription)
        .data(state)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The one `extensions.code` of the plugin's errors.
const INVALID: &str = "INVALID";

// The plugin's default messages (its settings model), for the failures it names.
const INVALID_HEADER: &str = "Invalid Authorization Header";
const INVALID_LOGIN: &str = "We couldn't log you in with the provided details";
const INVALID_PASSWORD_MATCH: &str = "Passwords do not match";
const INVALID_PASSWORD_UPDATE: &str = "We couldn't update the password with the provided details";
const INVALID_REFRESH_TOKEN: &str = "Invalid Refresh Token";
const INVALID_EMAIL_ADDRESS: &str = "Invalid email address";
const USER_NOT_ACTIVATED: &str = "Please activate your account";
const USER_NOT_FOUND: &str = "We couldn't find any matching users";
const EMAIL_SENT: &str = "You will receive an email if it matches an account in our system";
const USER_ACTIVATED: &str = "Successfully activated user";
const PASSWORD_SAVED: &str = "Successfully saved password";
const PASSWORD_UPDATED: &str = "Successfully updated password";
const ACCOUNT_DELETED: &str = "Successfully deleted account";

/// The response as the plugin's clients read it: its own errors carry nothing but `message`
/// and `extensions.code`; `data` keeps the order of the query.
pub fn craft_body(response: &async_graphql::Response) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        data: &'a Value,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        errors: Vec<serde_json::Value>,
    }
    let invalid = Value::from(INVALID);
    let errors = response
        .errors
        .iter()
        .map(|error| {
            let code = error.extensions.as_ref().and_then(|e| e.get("code"));
            if code == Some(&invalid) {
                serde_json::json!({ "message": error.message, "extensions": { "code": INVALID } })
            } else {
                serde_json::to_value(error).unwrap_or_default()
            }
        })
        .collect();
    let body = Body {
        data: &response.data,
        errors,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An error of the plugin's.
fn invalid(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", INVALID))
}

/// A domain failure under the plugin's message where it has one, else authgate's own.
fn failed(failure: Failure) -> async_graphql::Error {
    let Some(problem) = failure.problems().first() else {
        return invalid("Cannot validate request");
    };
    match problem.code {
        Code::InvalidCredentials => invalid(INVALID_LOGIN),
        Code::NotVerified => invalid(USER_NOT_ACTIVATED),
        Code::Unauthenticated => invalid(INVALID_HEADER),
        Code::PasswordMismatch => invalid(INVALID_PASSWORD_MATCH),
        // A wrong password where one proves who the caller is.
        Code::InvalidPassword => invalid(INVALID_LOGIN),
        Code::Invalid if problem.field == Field::Email => invalid(INVALID_EMAIL_ADDRESS),
        Code::Unique if problem.field == Field::Username => {
            invalid("Username has already been taken.")
        }
        Code::Unique => invalid("Email has already been taken."),
        Code::InvalidToken => invalid("This link is not valid, or was already used."),
        Code::ExpiredToken => invalid("This link has expired; ask for a new one."),
        Code::AlreadyVerified => invalid("This account is already activated."),
        // Rate limits, the password policy, mail or a store down: authgate's words.
        _ => invalid(
            failure
                .problems()
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<State> {
    ctx.data_unchecked::<Arc<State>>()
}

fn caller<'a>(ctx: &Context<'a>) -> Option<&'a Caller> {
    ctx.data_opt::<Caller>()
}

/// The logged-in caller (`Authorization: JWT …` or `Bearer …`), or the plugin's error for a
/// missing or bad header.
fn me<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a str> {
    caller(ctx)
        .and_then(|c| c.user_id.as_deref())
        .ok_or_else(|| invalid(INVALID_HEADER))
}

fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    caller(ctx).and_then(|c| c.client_ip)
}

fn cookie_token(ctx: &Context<'_>) -> Option<String> {
    caller(ctx).and_then(|c| c.refresh_cookie.clone())
}

/// The refresh token a call presents: the cookie's, which wins, else the argument's.
fn presented_refresh(ctx: &Context<'_>, argument: Option<String>) -> Option<String> {
    cookie_token(ctx).or(argument.filter(|t| !t.is_empty()))
}

/// Sets the refresh cookie to `pair`'s token, or with `None` removes it.
fn set_cookie(ctx: &Context<'_>, pair: Option<&TokenPair>) {
    let cookie = &state(ctx).cookie;
    let header = match pair {
        Some(pair) => cookie.set(
            &pair.refresh_token,
            pair.refresh_expires_at - crate::jwt::unix_now(),
        ),
        None => cookie.clear(),
    };
    ctx.append_http_header("set-cookie", header);
}

/// The account id a link's `id` names: authgate's id, or the same UUID written with dashes
/// (the form `uid` shows).
fn account_key(id: &str) -> String {
    match uuid::Uuid::try_parse(id.trim()) {
        Ok(uuid) => uuid.simple().to_string(),
        Err(_) => id.trim().to_string(),
    }
}

/// Checks that the `id` of a link names the account its `code` was made for.
fn same_account(owner: Result<String, Failure>, id: &str) -> async_graphql::Result<()> {
    match owner {
        Ok(owner) if owner == account_key(id) => Ok(()),
        Ok(_) => Err(failed(Failure::general(Code::InvalidToken, ""))),
        Err(failure) => Err(failed(failure)),
    }
}

/// First and last name from Craft's `fullName` (split at the first space), each overridden by
/// `firstName` / `lastName` when given.
fn names(
    full: Option<String>,
    first: Option<String>,
    last: Option<String>,
) -> (Option<String>, Option<String>) {
    let (full_first, full_last) = match full.as_deref().map(str::trim) {
        Some(full) => match full.split_once(char::is_whitespace) {
            Some((a, b)) => (Some(a.to_string()), Some(b.trim().to_string())),
            None => (Some(full.to_string()), Some(String::new())),
        },
        None => (None, None),
    };
    (first.or(full_first), last.or(full_last))
}

/// A Craft user element, over an account.
pub struct CraftUser(User);

impl CraftUser {
    fn display_name(&self) -> String {
        let full = self.0.full_name();
        if !full.is_empty() {
            return full;
        }
        self.0
            .username
            .clone()
            .unwrap_or_else(|| self.0.email.clone())
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

#[Object(name = "User")]
impl CraftUser {
    /// The account's id (the token's `sub`).
    async fn id(&self) -> Option<ID> {
        Some(ID(self.0.id.clone()))
    }
    /// The same id as a dashed UUID.
    async fn uid(&self) -> Option<String> {
        Some(match uuid::Uuid::try_parse(&self.0.id) {
            Ok(uuid) => uuid.hyphenated().to_string(),
            Err(_) => self.0.id.clone(),
        })
    }
    async fn email(&self) -> Option<String> {
        Some(self.0.email.clone())
    }
    /// The username, else the email (Craft makes the email the username of accounts
    /// registered without one).
    async fn username(&self) -> Option<String> {
        Some(
            self.0
                .username
                .clone()
                .unwrap_or_else(|| self.0.email.clone()),
        )
    }
    async fn full_name(&self) -> Option<String> {
        non_empty(&self.0.full_name())
    }
    async fn first_name(&self) -> Option<String> {
        non_empty(&self.0.first_name)
    }
    async fn last_name(&self) -> Option<String> {
        non_empty(&self.0.last_name)
    }
    /// The first name, else the name.
    async fn friendly_name(&self) -> Option<String> {
        Some(non_empty(&self.0.first_name).unwrap_or_else(|| self.display_name()))
    }
    /// The full name, else the username, else the email.
    async fn name(&self) -> String {
        self.display_name()
    }
    /// `active`, `pending` (not yet verified) or `inactive` (deactivated).
    async fn status(&self) -> Option<String> {
        let status = if !self.0.is_active {
            "inactive"
        } else if !self.0.verified {
            "pending"
        } else {
            "active"
        };
        Some(status.to_string())
    }
    async fn date_created(&self) -> Option<DateTime> {
        Some(DateTime(self.0.date_joined))
    }
}

/// Craft's interface of user elements; `User` is its one implementation here.
// Clippy reads the repeated `ty = ...` of the field list as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(Interface)]
#[graphql(
    name = "UserInterface",
    field(name = "id", ty = "Option<ID>"),
    field(name = "uid", ty = "Option<String>"),
    field(name = "email", ty = "Option<String>"),
    field(name = "username", ty = "Option<String>"),
    field(name = "full_name", ty = "Option<String>"),
    field(name = "first_name", ty = "Option<String>"),
    field(name = "last_name", ty = "Option<String>"),
    field(name = "friendly_name", ty = "Option<String>"),
    field(name = "name", ty = "String"),
    field(name = "status", ty = "Option<String>"),
    field(name = "date_created", ty = "Option<DateTime>")
)]
pub enum UserInterface {
    User(CraftUser),
}

impl From<User> for UserInterface {
    fn from(user: User) -> Self {
        UserInterface::User(CraftUser(user))
    }
}

/// What the plugin's log-in mutations answer. Expiries are milliseconds since the epoch.
#[derive(SimpleObject)]
#[graphql(name = "Auth")]
pub struct Auth {
    user: Option<UserInterface>,
    schema: Option<String>,
    jwt: Option<String>,
    jwt_expires_at: Option<f64>,
    refresh_token: Option<String>,
    refresh_token_expires_at: Option<f64>,
    requires_two_factor: Option<bool>,
}

impl Auth {
    fn of(user: User, pair: Option<&TokenPair>, requires_two_factor: bool) -> Auth {
        Auth {
            user: Some(user.into()),
            schema: Some(SCHEMA_NAME.to_string()),
            jwt: pair.map(|p| p.token.clone()),
            jwt_expires_at: pair.map(|p| (p.claims.exp * 1000) as f64),
            refresh_token: pair.map(|p| p.refresh_token.clone()),
            refresh_token_expires_at: pair.map(|p| (p.refresh_expires_at * 1000) as f64),
            requires_two_factor: Some(requires_two_factor),
        }
    }
}

/// Every password log-in of this dialect goes through here: the account services check the
/// identifier (an email, or else a username, as the plugin's `email` argument takes both) and
/// the password, and the answer is the plugin's `Auth`, the refresh cookie set. A login that
/// still owes a second factor (TOTP on, no `otp` given; SPEC §14) answers `Auth` with
/// `requiresTwoFactor: true` and nothing else: no user, no tokens.
async fn log_in(
    ctx: &Context<'_>,
    identifier: String,
    password: String,
    otp: Option<String>,
) -> Result<Auth, Failure> {
    let request = if identifier.contains('@') {
        LoginRequest {
            email: Some(identifier),
            password,
            otp,
            ..Default::default()
        }
    } else {
        LoginRequest {
            username: Some(identifier),
            password,
            otp,
            ..Default::default()
        }
    };
    let sessions = &state(ctx).accounts.sessions;
    match sessions.login(request, client_ip(ctx)).await {
        Ok(done) => {
            set_cookie(ctx, Some(&done.tokens));
            Ok(Auth::of(done.user, Some(&done.tokens), false))
        }
        Err(failure) if failure.codes().contains(&Code::OtpRequired) => Ok(Auth {
            user: None,
            schema: Some(SCHEMA_NAME.to_string()),
            jwt: None,
            jwt_expires_at: None,
            refresh_token: None,
            refresh_token_expires_at: None,
            requires_two_factor: Some(true),
        }),
        Err(failure) => Err(failure),
    }
}

pub struct Query;

#[Object]
impl Query {
    /// The logged-in user.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<UserInterface>> {
        let me = me(ctx)?;
        match state(ctx).accounts.profile.me(Some(me)).await {
            Ok(Some(user)) => Ok(Some(user.into())),
            Ok(None) => Err(invalid(USER_NOT_FOUND)),
            Err(failure) => Err(failed(failure)),
        }
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Logs a user in: the tokens in the answer, the refresh token also in the cookie.
    async fn authenticate(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        #[graphql(desc = "A current TOTP code or a recovery code, for accounts with TOTP on.")]
        otp: Option<String>,
    ) -> async_graphql::Result<Auth> {
        log_in(ctx, email, password, otp).await.map_err(failed)
    }

    /// Creates an account and mails its activation link; tokens when unverified accounts may
    /// log in.
    #[allow(clippy::too_many_arguments)]
    async fn register(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        username: Option<String>,
        full_name: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> async_graphql::Result<Auth> {
        let s = state(ctx);
        let (first_name, last_name) = names(full_name, first_name, last_name);
        let input = SignUp {
            email,
            username,
            password1: password.clone(),
            password2: password,
            first_name,
            last_name,
        };
        let registration = &s.accounts.registration;
        let done = registration
            .register(input, client_ip(ctx), s.links.as_ref())
            .await
            .map_err(failed)?;
        if let Some(pair) = &done.tokens {
            set_cookie(ctx, Some(pair));
        }
        Ok(Auth::of(done.user, done.tokens.as_ref(), false))
    }

    /// A new pair for the refresh token of the cookie (or else of the argument), which is
    /// spent; presenting a spent one ends its whole session.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> async_graphql::Result<Auth> {
        let Some(presented) = presented_refresh(ctx, refresh_token) else {
            return Err(invalid(INVALID_REFRESH_TOKEN));
        };
        let sessions = &state(ctx).accounts.sessions;
        match sessions.refresh(Some(&presented)).await {
            Ok((user, pair)) => {
                set_cookie(ctx, Some(&pair));
                Ok(Auth::of(user, Some(&pair), false))
            }
            // A store that is down says so and leaves the cookie be; a dead token goes.
            Err(failure) if failure.is(Code::ServiceUnavailable) => Err(failed(failure)),
            Err(_) => {
                if cookie_token(ctx).is_some() {
                    set_cookie(ctx, None);
                }
                Err(invalid(INVALID_REFRESH_TOKEN))
            }
        }
    }

    /// Ends the session of the refresh token of the cookie (or else of the argument).
    async fn delete_refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> async_graphql::Result<bool> {
        let Some(presented) = presented_refresh(ctx, refresh_token) else {
            return Err(invalid(INVALID_REFRESH_TOKEN));
        };
        let ended = state(ctx).accounts.sessions.revoke(Some(&presented)).await;
        let gone = match &ended {
            Ok(()) => true,
            Err(failure) => failure.is(Code::InvalidToken),
        };
        if gone && cookie_token(ctx).is_some() {
            set_cookie(ctx, None);
        }
        match ended {
            Ok(()) => Ok(true),
            Err(failure) if failure.is(Code::InvalidToken) => Err(invalid(INVALID_REFRESH_TOKEN)),
            Err(failure) => Err(failed(failure)),
        }
    }

    /// Ends every session of the logged-in user.
    async fn delete_refresh_tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let me = me(ctx)?;
        let sessions = &state(ctx).accounts.sessions;
        sessions.revoke_all(Some(me)).await.map_err(failed)?;
        set_cookie(ctx, None);
        Ok(true)
    }

    /// Verifies the account of an activation (or email-change) link's `code` and `id`.
    async fn activate_user(
        &self,
        ctx: &Context<'_>,
        code: String,
        id: String,
    ) -> async_graphql::Result<String> {
        let accounts = &state(ctx).accounts;
        same_account(
            accounts.recovery.token_account(&code, Purpose::Activation),
            &id,
        )?;
        accounts
            .registration
            .verify_account(&code)
            .await
            .map_err(failed)?;
        Ok(USER_ACTIVATED.to_string())
    }

    /// Mails a new activation link to an unverified account; the same answer for every
    /// address.
    async fn resend_activation(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<String> {
        let s = state(ctx);
        let registration = &s.accounts.registration;
        registration
            .resend_activation(&email, client_ip(ctx), s.links.clone())
            .await
            .map_err(failed)?;
        Ok(EMAIL_SENT.to_string())
    }

    /// Mails a password link (the activation link to an unverified account); the same answer
    /// for every address.
    async fn forgotten_password(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<String> {
        let s = state(ctx);
        let recovery = &s.accounts.recovery;
        recovery
            .send_password_reset(&email, client_ip(ctx), s.links.clone())
            .await
            .map_err(failed)?;
        Ok(EMAIL_SENT.to_string())
    }

    /// Sets the password of a reset or invitation link's `code` and `id`; the account ends
    /// verified and every session ends.
    async fn set_password(
        &self,
        ctx: &Context<'_>,
        password: String,
        code: String,
        id: String,
    ) -> async_graphql::Result<String> {
        let recovery = &state(ctx).accounts.recovery;
        let purpose = recovery.password_purpose(&code);
        same_account(recovery.token_account(&code, purpose), &id)?;
        recovery
            .reset_password(&code, purpose, password.clone(), password)
            .await
            .map_err(failed)?;
        Ok(PASSWORD_SAVED.to_string())
    }

    /// Changes the logged-in user's password: every session ends, and the cookie carries
    /// the new one this call starts.
    async fn update_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
        confirm_password: String,
    ) -> async_graphql::Result<String> {
        let me = me(ctx)?;
        if new_password != confirm_password {
            return Err(invalid(INVALID_PASSWORD_MATCH));
        }
        let profile = &state(ctx).accounts.profile;
        let pair = profile
            .change_password(Some(me), current_password, new_password, confirm_password)
            .await
            .map_err(|failure| match failure.code() {
                Some(Code::InvalidPassword) => invalid(INVALID_PASSWORD_UPDATE),
                _ => failed(failure),
            })?;
        set_cookie(ctx, Some(&pair));
        Ok(PASSWORD_UPDATED.to_string())
    }

    /// Changes the logged-in user's profile; a new `email` is unverified until the link
    /// mailed to it is followed (the old address gets a notice).
    #[allow(clippy::too_many_arguments)]
    async fn update_viewer(
        &self,
        ctx: &Context<'_>,
        email: Option<String>,
        username: Option<String>,
        full_name: Option<String>,
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> async_graphql::Result<Option<UserInterface>> {
        let me = me(ctx)?;
        let s = state(ctx);
        let profile = &s.accounts.profile;
        let (first_name, last_name) = names(full_name, first_name, last_name);
        if username.is_some() || first_name.is_some() || last_name.is_some() {
            let update = ProfileUpdate {
                first_name,
                last_name,
                username,
            };
            profile.update(Some(me), update).await.map_err(failed)?;
        }
        if let Some(email) = email {
            profile
                .change_email(Some(me), &email, client_ip(ctx), s.links.as_ref())
                .await
                .map_err(failed)?;
        }
        match profile.me(Some(me)).await.map_err(failed)? {
            Some(user) => Ok(Some(user.into())),
            None => Err(invalid(USER_NOT_FOUND)),
        }
    }

    /// Deletes the logged-in user's account (as `accounts.delete_mode` says), with the
    /// password given twice.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        password: String,
        confirm_password: String,
    ) -> async_graphql::Result<String> {
        let me = me(ctx)?;
        if password != confirm_password {
            return Err(invalid(INVALID_PASSWORD_MATCH));
        }
        let accounts = &state(ctx).accounts;
        let mode = accounts.settings().delete_mode;
        accounts
            .profile
            .delete(Some(me), password, mode)
            .await
            .map_err(failed)?;
        set_cookie(ctx, None);
        Ok(ACCOUNT_DELETED.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_split_at_the_first_space() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            names(some("James Edmonston"), None, None),
            (some("James"), some("Edmonston"))
        );
        assert_eq!(
            names(some(" Ada  King Lovelace "), None, None),
            (some("Ada"), some("King Lovelace"))
        );
        assert_eq!(names(some("Cher"), None, None), (some("Cher"), some("")));
        assert_eq!(
            names(some("Ada Lovelace"), some("Augusta"), None),
            (some("Augusta"), some("Lovelace"))
        );
        assert_eq!(names(None, None, some("King")), (None, some("King")));
    }

    #[test]
    fn link_ids_may_be_dashed() {
        let id = "0190a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(account_key(id), id);
        assert_eq!(account_key("0190a1b2-c3d4-e5f6-0718-293a4b5c6d7e"), id);
        assert_eq!(account_key(" not-a-uuid "), "not-a-uuid");
    }

    #[test]
    fn own_errors_are_message_and_code_only() {
        let mut response = async_graphql::Response::new(Value::Null);
        let mut error =
            invalid(INVALID_LOGIN).into_server_error(async_graphql::Pos { line: 2, column: 3 });
        error.path = vec![async_graphql::PathSegment::Field("authenticate".into())];
        response.errors.push(error);
        response.errors.push(async_graphql::ServerError::new(
            "Unknown field \"nope\"",
            Some(async_graphql::Pos { line: 1, column: 3 }),
        ));
        let body: serde_json::Value = serde_json::from_slice(&craft_body(&response)).unwrap();
        assert_eq!(
            body["errors"][0],
            serde_json::json!({"message": INVALID_LOGIN, "extensions": {"code": "INVALID"}})
        );
        assert_eq!(body["errors"][1]["locations"][0]["line"], 1);
    }
}
