//! krypton-auth's schema (graphql-compose names) over the account services, and its error
//! form: every expected failure is a GraphQL error `{"message", "type": "<ErrorType>"}` and
//! nothing else; other errors (a malformed query, an unknown field) keep their message and
//! place and are typed `GraphQLError`, as the original's error formatter does.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, InputObject, InputValueError,
    InputValueResult, Object, Scalar, ScalarType, Schema, SimpleObject, Value,
};

use super::State;
use crate::accounts::{
    Code, Failure, Field, LoginRequest, Order, ProfileUpdate, PublicFilter, PublicUser, Purpose,
    SignUp, TokenPair, User,
};
use crate::config;
use crate::graphql::Caller;

pub type KryptonSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build(state: Arc<State>, limits: &config::Graphql) -> KryptonSchema {
    let mut builder = Schema::build(Query, Mutation, EmptySubscription)
        .data(state)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The response as the original's error formatter writes it.
pub fn krypton_body(response: &async_graphql::Response) -> Vec<u8> {
    let mut doc = serde_json::to_value(response).unwrap_or_default();
    if let Some(errors) = doc.get_mut("errors").and_then(|e| e.as_array_mut()) {
        for error in errors.iter_mut() {
            let kind = error
                .pointer("/extensions/type")
                .and_then(|t| t.as_str())
                .map(str::to_string);
            let message = error.get("message").cloned().unwrap_or_default();
            *error = match kind {
                Some(kind) => serde_json::json!({ "message": message, "type": kind }),
                None => {
                    let mut plain = serde_json::Map::new();
                    plain.insert("message".into(), message);
                    for key in ["locations", "path"] {
                        if let Some(value) = error.get(key) {
                            plain.insert(key.into(), value.clone());
                        }
                    }
                    plain.insert("type".into(), "GraphQLError".into());
                    serde_json::Value::Object(plain)
                }
            };
        }
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// An operational error of the original: `type` names its error class.
fn error(kind: &'static str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("type", kind))
}

fn please_login() -> async_graphql::Error {
    error("UnauthorizedError", "Please login.")
}

/// A domain failure as the original's error class, with the original's message where it has
/// one for this failure.
fn failed(failure: Failure) -> async_graphql::Error {
    let Some(problem) = failure.problems().first() else {
        return error("UserValidationError", "Invalid request.");
    };
    let message = problem.message.clone();
    match problem.code {
        Code::RateLimited => error("RateLimitError", message),
        Code::ServiceUnavailable => error("ServiceUnavailableError", message),
        Code::EmailFail => error("EmailNotSentError", "The email could not be sent."),
        Code::Unauthenticated => please_login(),
        Code::InvalidCredentials => error("UserNotFoundError", "Wrong credentials."),
        Code::Unique if problem.field == Field::Username => {
            error("UsernameAlreadyExistsError", "Username already exists.")
        }
        Code::Unique => error("EmailAlreadyExistsError", "Email already exists."),
        Code::Invalid if problem.field == Field::Email => {
            error("UserValidationError", "This email address is not valid.")
        }
        Code::InvalidPassword => error("WrongPasswordError", "You entered a wrong password."),
        Code::InvalidToken => error("UnauthorizedError", "Unvalid token."),
        Code::ExpiredToken => error(
            "UpdatePasswordTooLateError",
            "This link has expired, please ask a new one.",
        ),
        Code::AlreadyVerified => error(
            "EmailAlreadyConfirmedError",
            "Your email adress has already been confirmed.",
        ),
        Code::NotVerified => error(
            "UnauthorizedError",
            "Please confirm your email address first.",
        ),
        Code::Forbidden => error("UnauthorizedError", message),
        // Not in the original, which has no second factor: named in its manner.
        Code::OtpRequired => error("OtpRequiredError", "A one-time code is required."),
        Code::InvalidOtp => error("WrongOtpError", "You entered a wrong one-time code."),
        _ => error(
            "UserValidationError",
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

fn user_id<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    caller(ctx).and_then(|c| c.user_id.as_deref())
}

fn client_ip(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    caller(ctx).and_then(|c| c.client_ip)
}

fn cookie_token(ctx: &Context<'_>) -> Option<String> {
    caller(ctx).and_then(|c| c.refresh_cookie.clone())
}

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

/// `MongoID`: an id as a string (authgate's ids are not Mongo ObjectIds, but strings all the
/// same).
pub struct MongoId(pub String);

#[Scalar(name = "MongoID")]
impl ScalarType for MongoId {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => Ok(MongoId(text)),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// `Date`: an ISO-8601 UTC time with milliseconds, as graphql-compose writes dates.
pub struct Date(pub i64);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => humantime::parse_rfc3339_weak(text)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| Date(d.as_millis() as i64))
                .ok_or_else(|| InputValueError::custom("expected an ISO-8601 date")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0.max(0) as u64);
        Value::String(humantime::format_rfc3339_millis(at).to_string())
    }
}

/// What anyone may know of an account.
#[derive(SimpleObject)]
#[graphql(name = "UserPublicInfo")]
pub struct UserPublicInfo {
    #[graphql(name = "_id")]
    id: MongoId,
    #[graphql(name = "email_verified")]
    email_verified: Option<bool>,
    username: Option<String>,
}

impl From<PublicUser> for UserPublicInfo {
    fn from(user: PublicUser) -> Self {
        UserPublicInfo {
            id: MongoId(user.id),
            email_verified: Some(user.verified),
            username: user.username,
        }
    }
}

/// The caller's own account.
pub struct KryptonUser(User);

#[Object(name = "User")]
impl KryptonUser {
    #[graphql(name = "_id")]
    async fn id(&self) -> MongoId {
        MongoId(self.0.id.clone())
    }
    #[graphql(name = "email_verified")]
    async fn email_verified(&self) -> Option<bool> {
        Some(self.0.verified)
    }
    async fn email(&self) -> Option<&str> {
        Some(self.0.email.as_str())
    }
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }
}

#[derive(SimpleObject)]
#[graphql(name = "UserAndToken")]
pub struct UserAndToken {
    #[graphql(name = "expiryDate")]
    expiry_date: Date,
    token: String,
    user: Option<KryptonUser>,
}

impl UserAndToken {
    fn of(user: User, pair: &TokenPair) -> UserAndToken {
        UserAndToken {
            expiry_date: Date(pair.claims.exp * 1000),
            token: pair.token.clone(),
            user: Some(KryptonUser(user)),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Token")]
pub struct Token {
    #[graphql(name = "expiryDate")]
    expiry_date: Date,
    token: String,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "NotificationType")]
pub enum NotificationType {
    #[graphql(name = "ERROR")]
    Error,
    #[graphql(name = "INFO")]
    Info,
    #[graphql(name = "SUCCESS")]
    Success,
    #[graphql(name = "WARNING")]
    Warning,
}

#[derive(SimpleObject)]
#[graphql(name = "Notification")]
pub struct Notification {
    message: String,
    #[graphql(name = "type")]
    kind: NotificationType,
}

#[derive(SimpleObject)]
#[graphql(name = "Notifications")]
pub struct Notifications {
    notifications: Option<Vec<Option<Notification>>>,
}

#[derive(InputObject)]
#[graphql(name = "UserRegisterInput")]
pub struct UserRegisterInput {
    email: Option<String>,
    password: String,
    username: Option<String>,
}

#[derive(InputObject)]
#[graphql(name = "UserUpdateInput")]
pub struct UserUpdateInput {
    email: Option<String>,
    password: Option<String>,
    #[graphql(name = "previousPassword")]
    previous_password: Option<String>,
    username: Option<String>,
}

/// graphql-compose-mongoose's filter inputs, over the public fields only (never an email).
macro_rules! filters {
    ($($name:ident = $graphql:literal),*) => {$(
        #[derive(InputObject, Default)]
        #[graphql(name = $graphql)]
        pub struct $name {
            #[graphql(name = "_id")]
            id: Option<MongoId>,
            #[graphql(name = "email_verified")]
            email_verified: Option<bool>,
            username: Option<String>,
            #[graphql(name = "_ids")]
            ids: Option<Vec<Option<MongoId>>>,
        }

        impl From<$name> for PublicFilter {
            fn from(f: $name) -> PublicFilter {
                PublicFilter {
                    id: f.id.map(|id| id.0),
                    ids: f.ids.map(|ids| ids.into_iter().flatten().map(|id| id.0).collect()),
                    username: f.username,
                    verified: f.email_verified,
                }
            }
        }
    )*};
}

filters! {
    FilterFindOne = "FilterFindOneUserPublicInfoInput",
    FilterFindMany = "FilterFindManyUserPublicInfoInput",
    FilterCount = "FilterUserPublicInfoInput"
}

/// The sort enums: by `_id` only (the other sorts of the original are out of scope).
macro_rules! sorts {
    ($($name:ident = $graphql:literal),*) => {$(
        #[derive(Enum, Clone, Copy, PartialEq, Eq)]
        #[graphql(name = $graphql)]
        pub enum $name {
            #[graphql(name = "_ID_ASC")]
            IdAsc,
            #[graphql(name = "_ID_DESC")]
            IdDesc,
        }

        impl From<Option<$name>> for Order {
            fn from(sort: Option<$name>) -> Order {
                match sort {
                    Some($name::IdDesc) => Order::IdDescending,
                    _ => Order::IdAscending,
                }
            }
        }
    )*};
}

sorts! {
    SortByIds = "SortFindByIdsUserPublicInfoInput",
    SortOne = "SortFindOneUserPublicInfoInput",
    SortMany = "SortFindManyUserPublicInfoInput"
}

#[derive(SimpleObject)]
#[graphql(name = "PaginationInfo")]
pub struct PaginationInfo {
    #[graphql(name = "currentPage")]
    current_page: i32,
    #[graphql(name = "perPage")]
    per_page: i32,
    #[graphql(name = "pageCount")]
    page_count: Option<i32>,
    #[graphql(name = "itemCount")]
    item_count: Option<i32>,
    #[graphql(name = "hasNextPage")]
    has_next_page: Option<bool>,
    #[graphql(name = "hasPreviousPage")]
    has_previous_page: Option<bool>,
}

#[derive(SimpleObject)]
#[graphql(name = "UserPublicInfoPagination")]
pub struct UserPublicInfoPagination {
    count: Option<i32>,
    items: Option<Vec<Option<UserPublicInfo>>>,
    #[graphql(name = "pageInfo")]
    page_info: PaginationInfo,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn window(list: Vec<PublicUser>, skip: Option<i32>, limit: Option<i32>) -> Vec<PublicUser> {
    let skip = skip.unwrap_or(0).max(0) as usize;
    let limit = limit.unwrap_or(1000).max(0) as usize;
    list.into_iter().skip(skip).take(limit).collect()
}

fn public(list: Vec<PublicUser>) -> Vec<Option<UserPublicInfo>> {
    list.into_iter().map(|u| Some(u.into())).collect()
}

pub struct Query;

#[Object]
impl Query {
    #[graphql(name = "userById")]
    async fn user_by_id(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "_id")] id: MongoId,
    ) -> async_graphql::Result<Option<UserPublicInfo>> {
        let found = state(ctx).accounts.directory.get(&id.0).await;
        Ok(found.map_err(failed)?.map(Into::into))
    }

    #[graphql(name = "userByIds")]
    async fn user_by_ids(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "_ids")] ids: Vec<Option<MongoId>>,
        #[graphql(default = 1000)] limit: Option<i32>,
        sort: Option<SortByIds>,
    ) -> async_graphql::Result<Option<Vec<Option<UserPublicInfo>>>> {
        let filter = PublicFilter {
            ids: Some(ids.into_iter().flatten().map(|id| id.0).collect()),
            ..Default::default()
        };
        let list = state(ctx).accounts.directory.find(&filter, sort.into());
        Ok(Some(public(window(
            list.await.map_err(failed)?,
            None,
            limit,
        ))))
    }

    #[graphql(name = "userOne")]
    async fn user_one(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterFindOne>,
        skip: Option<i32>,
        sort: Option<SortOne>,
    ) -> async_graphql::Result<Option<UserPublicInfo>> {
        let filter = filter.unwrap_or_default().into();
        let list = state(ctx).accounts.directory.find(&filter, sort.into());
        let list = window(list.await.map_err(failed)?, skip, Some(1));
        Ok(list.into_iter().next().map(Into::into))
    }

    #[graphql(name = "userMany")]
    async fn user_many(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterFindMany>,
        skip: Option<i32>,
        #[graphql(default = 1000)] limit: Option<i32>,
        sort: Option<SortMany>,
    ) -> async_graphql::Result<Option<Vec<Option<UserPublicInfo>>>> {
        let filter = filter.unwrap_or_default().into();
        let list = state(ctx).accounts.directory.find(&filter, sort.into());
        Ok(Some(public(window(
            list.await.map_err(failed)?,
            skip,
            limit,
        ))))
    }

    #[graphql(name = "userCount")]
    async fn user_count(
        &self,
        ctx: &Context<'_>,
        filter: Option<FilterCount>,
    ) -> async_graphql::Result<Option<i32>> {
        let filter = filter.unwrap_or_default().into();
        let list = state(ctx)
            .accounts
            .directory
            .find(&filter, Order::IdAscending);
        Ok(Some(count(list.await.map_err(failed)?.len())))
    }

    #[graphql(name = "userPagination")]
    async fn user_pagination(
        &self,
        ctx: &Context<'_>,
        page: Option<i32>,
        #[graphql(name = "perPage", default = 20)] per_page: Option<i32>,
        filter: Option<FilterFindMany>,
        sort: Option<SortMany>,
    ) -> async_graphql::Result<Option<UserPublicInfoPagination>> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(20);
        if page < 1 || per_page < 1 {
            return Err(error(
                "UserValidationError",
                "page and perPage must be at least 1.",
            ));
        }
        let filter = filter.unwrap_or_default().into();
        let list = state(ctx).accounts.directory.find(&filter, sort.into());
        let list = list.await.map_err(failed)?;
        let total = list.len();
        let pages = total.div_ceil(per_page as usize);
        let skip = (page as usize - 1).saturating_mul(per_page as usize);
        let items: Vec<PublicUser> = list
            .into_iter()
            .skip(skip)
            .take(per_page as usize)
            .collect();
        Ok(Some(UserPublicInfoPagination {
            count: Some(count(total)),
            page_info: PaginationInfo {
                current_page: page,
                per_page,
                page_count: Some(count(pages)),
                item_count: Some(count(total)),
                has_next_page: Some((page as usize) < pages),
                has_previous_page: Some(page > 1),
            },
            items: Some(public(items)),
        }))
    }

    #[graphql(name = "emailAvailable")]
    async fn email_available(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<Option<bool>> {
        let registration = &state(ctx).accounts.registration;
        let free = registration.email_available(&email, client_ip(ctx)).await;
        Ok(Some(free.map_err(failed)?))
    }

    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<KryptonUser>> {
        let me = state(ctx).accounts.profile.me(user_id(ctx)).await;
        match me.map_err(failed)? {
            Some(user) => Ok(Some(KryptonUser(user))),
            None => Err(error("UnauthorizedError", "User not found, please log in.")),
        }
    }

    #[graphql(name = "publicKey")]
    async fn public_key(&self, ctx: &Context<'_>) -> Option<String> {
        let keys = state(ctx).app.tokens.keys().snapshot();
        keys.current().map(|key| key.public_pem.clone())
    }

    /// `true` for every well-formed address, known or not (no enumeration).
    #[graphql(name = "sendPasswordRecoveryEmail")]
    async fn send_password_recovery_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<Option<bool>> {
        let s = state(ctx);
        let sent = s
            .accounts
            .recovery
            .send_password_reset(&email, client_ip(ctx), s.links.clone())
            .await;
        sent.map_err(failed)?;
        Ok(Some(true))
    }

    #[graphql(name = "sendVerificationEmail")]
    async fn send_verification_email(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<bool>> {
        let s = state(ctx);
        let Some(user) = s.accounts.profile.me(user_id(ctx)).await.map_err(failed)? else {
            return Err(please_login());
        };
        if user.verified {
            return Err(failed(Failure::general(Code::AlreadyVerified, "")));
        }
        let sent = s
            .accounts
            .registration
            .resend_activation(&user.email, client_ip(ctx), s.links.clone())
            .await;
        sent.map_err(failed)?;
        Ok(Some(true))
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    #[graphql(name = "deleteMe")]
    async fn delete_me(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> async_graphql::Result<Option<bool>> {
        let accounts = &state(ctx).accounts;
        let mode = accounts.settings().delete_mode;
        let deleted = accounts.profile.delete(user_id(ctx), password, mode).await;
        deleted.map_err(failed)?;
        set_cookie(ctx, None);
        Ok(Some(true))
    }

    /// Starts a session: the token in the answer, the refresh token in the cookie. A session
    /// whose cookie the client still carries ends first. `otp`: a one-time code or a recovery
    /// code, for accounts with TOTP on.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        otp: Option<String>,
    ) -> async_graphql::Result<Option<UserAndToken>> {
        let sessions = &state(ctx).accounts.sessions;
        let request = LoginRequest {
            email: Some(email),
            username: None,
            password,
            otp,
        };
        let done = sessions
            .login(request, client_ip(ctx))
            .await
            .map_err(failed)?;
        if let Some(previous) = cookie_token(ctx) {
            let _ = sessions.revoke(Some(&previous)).await;
        }
        set_cookie(ctx, Some(&done.tokens));
        Ok(Some(UserAndToken::of(done.user, &done.tokens)))
    }

    /// Ends the session of the refresh cookie.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<bool>> {
        let (Some(_), Some(token)) = (user_id(ctx), cookie_token(ctx)) else {
            return Err(please_login());
        };
        let sessions = &state(ctx).accounts.sessions;
        set_cookie(ctx, None);
        sessions
            .revoke(Some(&token))
            .await
            .map_err(|_| please_login())?;
        Ok(Some(true))
    }

    /// A new token for the session of the refresh cookie, which rotates.
    #[graphql(name = "refreshToken")]
    async fn refresh_token(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Token>> {
        let Some(presented) = cookie_token(ctx) else {
            return Err(please_login());
        };
        let sessions = &state(ctx).accounts.sessions;
        match sessions.refresh(Some(&presented)).await {
            Ok((_, pair)) => {
                set_cookie(ctx, Some(&pair));
                Ok(Some(Token {
                    expiry_date: Date(pair.claims.exp * 1000),
                    token: pair.token,
                }))
            }
            // A store that is down says so and leaves the cookie be (the session may well be
            // alive); a dead token goes.
            Err(failure) if failure.is(Code::ServiceUnavailable) => Err(failed(failure)),
            Err(_) => {
                set_cookie(ctx, None);
                Err(please_login())
            }
        }
    }

    async fn register(
        &self,
        ctx: &Context<'_>,
        fields: UserRegisterInput,
    ) -> async_graphql::Result<Option<bool>> {
        let s = state(ctx);
        let input = SignUp {
            email: fields.email.unwrap_or_default(),
            username: fields.username,
            password1: fields.password.clone(),
            password2: fields.password,
            first_name: None,
            last_name: None,
        };
        let done = s
            .accounts
            .registration
            .register(input, client_ip(ctx), s.links.as_ref())
            .await;
        done.map_err(failed)?;
        Ok(Some(true))
    }

    #[graphql(name = "resetMyPassword")]
    async fn reset_my_password(
        &self,
        ctx: &Context<'_>,
        password: String,
        #[graphql(name = "passwordRecoveryToken")] token: String,
    ) -> async_graphql::Result<Option<Notifications>> {
        let recovery = &state(ctx).accounts.recovery;
        let reset = recovery
            .reset_password(&token, Purpose::PasswordReset, password.clone(), password)
            .await;
        reset.map_err(failed)?;
        Ok(Some(Notifications {
            notifications: Some(vec![Some(Notification {
                message: "Your password is updated.".into(),
                kind: NotificationType::Success,
            })]),
        }))
    }

    /// Changes the profile: `email` (the new address is unverified until its link is
    /// followed; the old one gets a notice), `username`, and with `previousPassword` the
    /// password (every other session ends). Needs the token and the session's refresh
    /// cookie, which rotates; the answer carries a token with the new claims.
    #[graphql(name = "updateMe")]
    async fn update_me(
        &self,
        ctx: &Context<'_>,
        fields: UserUpdateInput,
    ) -> async_graphql::Result<Option<UserAndToken>> {
        let s = state(ctx);
        let accounts = &s.accounts;
        let (Some(me), Some(cookie)) = (user_id(ctx), cookie_token(ctx)) else {
            return Err(please_login());
        };
        let (owner, mut pair) = match accounts.sessions.refresh(Some(&cookie)).await {
            Ok(session) => session,
            Err(_) => {
                set_cookie(ctx, None);
                return Err(please_login());
            }
        };
        if owner.id != me {
            let _ = accounts.sessions.revoke(Some(&pair.refresh_token)).await;
            set_cookie(ctx, None);
            return Err(please_login());
        }
        let result = update(ctx, s, me, fields, &mut pair).await;
        set_cookie(ctx, Some(&pair));
        let user = result?;
        Ok(Some(UserAndToken::of(user, &pair)))
    }
}

/// The changes of `updateMe`, in the order that can fail most first; `pair` is kept current.
async fn update(
    ctx: &Context<'_>,
    s: &State,
    me: &str,
    fields: UserUpdateInput,
    pair: &mut TokenPair,
) -> async_graphql::Result<User> {
    let accounts = &s.accounts;
    if let Some(password) = fields.password {
        let Some(previous) = fields.previous_password else {
            return Err(error(
                "UserValidationError",
                "Please provide your previous password.",
            ));
        };
        let changed = accounts
            .profile
            .change_password(Some(me), previous, password.clone(), password)
            .await;
        *pair = changed.map_err(|failure| match failure.code() {
            Some(Code::InvalidPassword) => {
                error("WrongPasswordError", "Your previous password is wrong.")
            }
            _ => failed(failure),
        })?;
    }
    let mut renew = false;
    if let Some(email) = fields.email {
        let changed = accounts
            .profile
            .change_email(Some(me), &email, client_ip(ctx), s.links.as_ref())
            .await;
        changed.map_err(failed)?;
        renew = true;
    }
    if let Some(username) = fields.username {
        let update = ProfileUpdate {
            username: Some(username),
            ..Default::default()
        };
        accounts
            .profile
            .update(Some(me), update)
            .await
            .map_err(failed)?;
        renew = true;
    }
    if renew {
        // The claims changed: the same session, a token that says so.
        let (_, next) = accounts
            .sessions
            .refresh(Some(&pair.refresh_token))
            .await
            .map_err(failed)?;
        *pair = next;
    }
    let user = accounts.profile.me(Some(me)).await.map_err(failed)?;
    user.ok_or_else(please_login)
}
