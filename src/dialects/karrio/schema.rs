//! Karrio's account schema (the current dashboard's names: snake_case, every mutation taking
//! `input:` of a named input type, non-null payloads) over the account services. Expected
//! failures of a mutation are its payload's `errors: [{field, messages}]`, under the input's
//! field names (`__all__` for the operation as a whole); a missing login is a GraphQL error
//! with `"code": "authentication_required", "status_code": 401` beside the message, as
//! Karrio's error formatter writes it.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, InputObject, Object, Schema, SimpleObject,
};

use super::State;
use crate::accounts::{Code, Failure, Field, ProfileUpdate, Purpose, ShownKey, SignUp, User};
use crate::config;
use crate::dialects::datetime::DateTime;
use crate::graphql::Caller;

pub type KarrioSchema = Schema<Query, Mutation, EmptySubscription>;

/// The label of the key `token` shows (Karrio's `TokenType.label`).
const KEY_LABEL: &str = "Karrio API key";
/// Django's key for errors of a form as a whole.
const ALL: &str = "__all__";

pub fn build(state: Arc<State>, limits: &config::Graphql) -> KarrioSchema {
    let mut builder = Schema::build(Query, Mutation, EmptySubscription)
        .data(state)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The response as Karrio's formatter writes it: what an error's extensions say (`code`,
/// `status_code`) sits beside its message.
pub fn karrio_body(response: &async_graphql::Response) -> Vec<u8> {
    let mut doc = serde_json::to_value(response).unwrap_or_default();
    if let Some(errors) = doc.get_mut("errors").and_then(|e| e.as_array_mut()) {
        for error in errors.iter_mut() {
            let Some(object) = error.as_object_mut() else {
                continue;
            };
            if let Some(serde_json::Value::Object(extensions)) = object.remove("extensions") {
                for (name, value) in extensions {
                    object.entry(name).or_insert(value);
                }
            }
        }
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A GraphQL error as Karrio's API exceptions are: a code and an HTTP-like status beside the
/// message.
fn api_error(code: &str, status: u16, message: impl Into<String>) -> async_graphql::Error {
    let code = code.to_string();
    async_graphql::Error::new(message.into()).extend_with(move |_, e| {
        e.set("code", code.as_str());
        e.set("status_code", i32::from(status));
    })
}

fn not_authenticated() -> async_graphql::Error {
    api_error("authentication_required", 401, "You are not authenticated")
}

/// A failure where there is no payload to carry it (the queries).
fn query_failed(failure: Failure) -> async_graphql::Error {
    let Some(problem) = failure.problems().first() else {
        return api_error("invalid", 400, "Invalid request.");
    };
    let status = match problem.code {
        Code::Unauthenticated => return not_authenticated(),
        Code::RateLimited => 429,
        Code::ServiceUnavailable => 503,
        Code::Forbidden | Code::NotVerified => 403,
        _ => 400,
    };
    api_error(problem.code.as_str(), status, problem.message.clone())
}

/// `ErrorType`: one input field's messages.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "ErrorType", rename_fields = "snake_case")]
pub struct ErrorType {
    field: String,
    messages: Vec<String>,
}

/// A mutation's failure as its payload's `errors`, under the input's names (`name` maps a
/// domain field; `None`: the form as a whole); no login is a GraphQL error instead.
fn field_errors(
    failure: Failure,
    name: impl Fn(Field) -> Option<&'static str>,
) -> async_graphql::Result<Vec<ErrorType>> {
    if failure.has(Code::Unauthenticated) {
        return Err(not_authenticated());
    }
    let mut errors: Vec<ErrorType> = Vec::new();
    for problem in failure.problems() {
        let field = name(problem.field).unwrap_or(ALL);
        match errors.iter_mut().find(|e| e.field == field) {
            Some(error) => error.messages.push(problem.message.clone()),
            None => errors.push(ErrorType {
                field: field.to_string(),
                messages: vec![problem.message.clone()],
            }),
        }
    }
    Ok(errors)
}

fn one_error(field: &str, message: &str) -> Vec<ErrorType> {
    vec![ErrorType {
        field: field.to_string(),
        messages: vec![message.to_string()],
    }]
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

/// `UserType`: the caller's account as Karrio shows it.
pub struct UserType(User);

#[Object(name = "UserType", rename_fields = "snake_case")]
impl UserType {
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn full_name(&self) -> String {
        self.0.full_name()
    }
    async fn is_staff(&self) -> bool {
        self.0.is_staff
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    /// authgate has one administrator flag: staff.
    async fn is_superuser(&self) -> Option<bool> {
        Some(self.0.is_staff)
    }
    async fn date_joined(&self) -> DateTime {
        DateTime(self.0.date_joined)
    }
    async fn last_login(&self) -> Option<DateTime> {
        self.0.last_login.map(DateTime)
    }
    /// The account's roles.
    async fn permissions(&self) -> Option<Vec<String>> {
        Some(self.0.roles.clone())
    }
}

/// `TokenType`: the caller's Karrio key.
pub struct TokenType(ShownKey);

#[Object(name = "TokenType", rename_fields = "snake_case")]
impl TokenType {
    async fn object_type(&self) -> &str {
        "token"
    }
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn label(&self) -> &str {
        &self.0.label
    }
    async fn test_mode(&self) -> bool {
        false
    }
    async fn created(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    async fn permissions(&self) -> Option<Vec<String>> {
        Some(Vec::new())
    }
}

#[derive(InputObject)]
#[graphql(name = "RegisterUserMutationInput", rename_fields = "snake_case")]
pub struct RegisterUserInput {
    email: String,
    #[graphql(name = "password1")]
    password1: String,
    #[graphql(name = "password2")]
    password2: String,
    redirect_url: Option<String>,
    full_name: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "RegisterUserMutation", rename_fields = "snake_case")]
pub struct RegisterUserMutation {
    errors: Option<Vec<ErrorType>>,
    user: Option<UserType>,
}

#[derive(InputObject)]
#[graphql(name = "ConfirmEmailMutationInput", rename_fields = "snake_case")]
pub struct ConfirmEmailInput {
    token: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ConfirmEmailMutation", rename_fields = "snake_case")]
pub struct ConfirmEmailMutation {
    errors: Option<Vec<ErrorType>>,
    success: bool,
}

#[derive(InputObject)]
#[graphql(
    name = "RequestPasswordResetMutationInput",
    rename_fields = "snake_case"
)]
pub struct RequestPasswordResetInput {
    email: String,
    redirect_url: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "RequestPasswordResetMutation", rename_fields = "snake_case")]
pub struct RequestPasswordResetMutation {
    errors: Option<Vec<ErrorType>>,
    email: String,
    redirect_url: String,
}

#[derive(InputObject)]
#[graphql(
    name = "ConfirmPasswordResetMutationInput",
    rename_fields = "snake_case"
)]
pub struct ConfirmPasswordResetInput {
    uid: String,
    token: String,
    #[graphql(name = "new_password1")]
    new_password1: String,
    #[graphql(name = "new_password2")]
    new_password2: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ConfirmPasswordResetMutation", rename_fields = "snake_case")]
pub struct ConfirmPasswordResetMutation {
    errors: Option<Vec<ErrorType>>,
    user: Option<UserType>,
}

#[derive(InputObject)]
#[graphql(name = "ChangePasswordMutationInput", rename_fields = "snake_case")]
pub struct ChangePasswordInput {
    old_password: String,
    #[graphql(name = "new_password1")]
    new_password1: String,
    #[graphql(name = "new_password2")]
    new_password2: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ChangePasswordMutation", rename_fields = "snake_case")]
pub struct ChangePasswordMutation {
    errors: Option<Vec<ErrorType>>,
    user: Option<UserType>,
}

#[derive(InputObject)]
#[graphql(name = "UpdateUserInput", rename_fields = "snake_case")]
pub struct UpdateUserInput {
    email: Option<String>,
    full_name: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "UserUpdateMutation", rename_fields = "snake_case")]
pub struct UserUpdateMutation {
    errors: Option<Vec<ErrorType>>,
    user: Option<UserType>,
}

#[derive(InputObject)]
#[graphql(name = "TokenMutationInput", rename_fields = "snake_case")]
pub struct TokenMutationInput {
    key: Option<String>,
    password: Option<String>,
    refresh: Option<bool>,
}

#[derive(SimpleObject)]
#[graphql(name = "TokenMutation", rename_fields = "snake_case")]
pub struct TokenMutation {
    errors: Option<Vec<ErrorType>>,
    token: Option<TokenType>,
}

/// Karrio's one `full_name` as authgate's first and last name: split at the first space
/// (`full_name()` joins them back as given).
fn names(full_name: &str) -> (String, String) {
    match full_name.trim().split_once(' ') {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (full_name.trim().to_string(), String::new()),
    }
}

fn some_if_any(errors: Vec<ErrorType>) -> Option<Vec<ErrorType>> {
    Some(errors).filter(|e| !e.is_empty())
}

pub struct Query;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl Query {
    /// The caller's account.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<UserType> {
        let me = state(ctx).accounts.profile.me(user_id(ctx)).await;
        match me.map_err(query_failed)? {
            Some(user) => Ok(UserType(user)),
            None => Err(not_authenticated()),
        }
    }

    /// The caller's key, made on the first ask; the same key on every later one.
    async fn token(
        &self,
        ctx: &Context<'_>,
        org_id: Option<String>,
    ) -> async_graphql::Result<TokenType> {
        let _ = org_id; // one key per account: authgate has no organisations
        let keys = &state(ctx).accounts.standing_keys;
        let shown = keys.get(user_id(ctx), None, KEY_LABEL).await;
        Ok(TokenType(shown.map_err(query_failed)?))
    }
}

pub struct Mutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl Mutation {
    async fn register_user(
        &self,
        ctx: &Context<'_>,
        input: RegisterUserInput,
    ) -> async_graphql::Result<RegisterUserMutation> {
        let s = state(ctx);
        let redirect = match s.redirect(input.redirect_url.as_deref()) {
            Ok(redirect) => redirect,
            Err(message) => {
                return Ok(RegisterUserMutation {
                    errors: Some(one_error("redirect_url", message)),
                    user: None,
                })
            }
        };
        let (first, last) = names(input.full_name.as_deref().unwrap_or_default());
        let sign_up = SignUp {
            email: input.email,
            username: None,
            password1: input.password1,
            password2: input.password2,
            first_name: Some(first),
            last_name: Some(last),
        };
        let links = s.links(redirect.as_deref());
        let done = s
            .accounts
            .registration
            .register(sign_up, client_ip(ctx), links.as_ref())
            .await;
        Ok(match done {
            Ok(registered) => RegisterUserMutation {
                errors: None,
                user: Some(UserType(registered.user)),
            },
            Err(failure) => RegisterUserMutation {
                errors: some_if_any(field_errors(failure, |field| match field {
                    Field::Email | Field::Username => Some("email"),
                    Field::NewPassword => Some("password2"),
                    _ => None,
                })?),
                user: None,
            },
        })
    }

    async fn confirm_email(
        &self,
        ctx: &Context<'_>,
        input: ConfirmEmailInput,
    ) -> async_graphql::Result<ConfirmEmailMutation> {
        let verified = state(ctx)
            .accounts
            .registration
            .verify_account(&input.token)
            .await;
        Ok(match verified {
            Ok(_) => ConfirmEmailMutation {
                errors: None,
                success: true,
            },
            Err(failure) => ConfirmEmailMutation {
                errors: some_if_any(field_errors(failure, |_| Some("token"))?),
                success: false,
            },
        })
    }

    /// Mails a reset link to a confirmed account (the confirmation mail to an unconfirmed
    /// one, nothing to an unknown address) and answers alike in every case.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        input: RequestPasswordResetInput,
    ) -> async_graphql::Result<RequestPasswordResetMutation> {
        let s = state(ctx);
        let echo = |errors| RequestPasswordResetMutation {
            errors,
            email: input.email.clone(),
            redirect_url: input.redirect_url.clone().unwrap_or_default(),
        };
        let redirect = match s.redirect(input.redirect_url.as_deref()) {
            Ok(redirect) => redirect,
            Err(message) => return Ok(echo(Some(one_error("redirect_url", message)))),
        };
        let sent = s
            .accounts
            .recovery
            .send_password_reset(&input.email, client_ip(ctx), s.links(redirect.as_deref()))
            .await;
        Ok(match sent {
            Ok(()) => echo(None),
            Err(failure) => echo(some_if_any(field_errors(failure, |field| match field {
                Field::Email => Some("email"),
                _ => None,
            })?)),
        })
    }

    async fn confirm_password_reset(
        &self,
        ctx: &Context<'_>,
        input: ConfirmPasswordResetInput,
    ) -> async_graphql::Result<ConfirmPasswordResetMutation> {
        let recovery = &state(ctx).accounts.recovery;
        let purpose = Purpose::PasswordReset;
        let failed = |failure: Failure| -> async_graphql::Result<ConfirmPasswordResetMutation> {
            Ok(ConfirmPasswordResetMutation {
                errors: some_if_any(field_errors(failure, |field| match field {
                    Field::NewPassword => Some("new_password2"),
                    _ => Some("token"),
                })?),
                user: None,
            })
        };
        // The link's uid must name the account its token was made for.
        let user = match recovery.password_token_user(&input.token, purpose).await {
            Ok(user) if super::uid(&user) == input.uid.trim() => user,
            Ok(_) => return failed(Failure::general(Code::InvalidToken, "Invalid token.")),
            Err(failure) => return failed(failure),
        };
        let reset = recovery
            .reset_password(
                &input.token,
                purpose,
                input.new_password1,
                input.new_password2,
            )
            .await;
        match reset {
            Ok(()) => {
                let me = state(ctx).accounts.profile.me(Some(&user.id)).await;
                Ok(ConfirmPasswordResetMutation {
                    errors: None,
                    user: me.ok().flatten().map(UserType),
                })
            }
            Err(failure) => failed(failure),
        }
    }

    /// Changes the password; every session of the account ends (the client logs in again).
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<ChangePasswordMutation> {
        let accounts = &state(ctx).accounts;
        let changed = accounts
            .profile
            .change_password(
                user_id(ctx),
                input.old_password,
                input.new_password1,
                input.new_password2,
            )
            .await;
        Ok(match changed {
            Ok(_) => ChangePasswordMutation {
                errors: None,
                user: accounts
                    .profile
                    .me(user_id(ctx))
                    .await
                    .map_err(query_failed)?
                    .map(UserType),
            },
            Err(failure) => {
                let wrong_old = failure.is(Code::InvalidPassword);
                let errors = if wrong_old {
                    one_error(
                        "old_password",
                        "Your old password was entered incorrectly. Please enter it again.",
                    )
                } else {
                    field_errors(failure, |field| match field {
                        Field::NewPassword => Some("new_password2"),
                        Field::CurrentPassword => Some("old_password"),
                        _ => None,
                    })?
                };
                ChangePasswordMutation {
                    errors: some_if_any(errors),
                    user: None,
                }
            }
        })
    }

    /// Changes the full name and the email; a new email replaces the old at once, unconfirmed
    /// until the link mailed to it is followed (the old address gets a notice).
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> async_graphql::Result<UserUpdateMutation> {
        let s = state(ctx);
        let profile = &s.accounts.profile;
        let failed = |failure: Failure| -> async_graphql::Result<UserUpdateMutation> {
            Ok(UserUpdateMutation {
                errors: some_if_any(field_errors(failure, |field| match field {
                    Field::Email => Some("email"),
                    _ => None,
                })?),
                user: None,
            })
        };
        if let Some(full_name) = input.full_name {
            let (first, last) = names(&full_name);
            let update = ProfileUpdate {
                first_name: Some(first),
                last_name: Some(last),
                username: None,
            };
            if let Err(failure) = profile.update(user_id(ctx), update).await {
                return failed(failure);
            }
        }
        if let Some(email) = input.email.filter(|e| !e.trim().is_empty()) {
            let links = s.links(None);
            let changed = profile
                .change_email(user_id(ctx), &email, client_ip(ctx), links.as_ref())
                .await;
            if let Err(failure) = changed {
                return failed(failure);
            }
        }
        match profile.me(user_id(ctx)).await {
            Ok(Some(user)) => Ok(UserUpdateMutation {
                errors: None,
                user: Some(UserType(user)),
            }),
            Ok(None) => Err(not_authenticated()),
            Err(failure) => failed(failure),
        }
    }

    /// The caller's key; with `refresh: true` a new one, the old refused from now on. A
    /// `password`, when given, must be right.
    async fn mutate_token(
        &self,
        ctx: &Context<'_>,
        input: TokenMutationInput,
    ) -> async_graphql::Result<TokenMutation> {
        let keys = &state(ctx).accounts.standing_keys;
        let _ = input.key; // the caller has one key; it is the one answered
        let shown = if input.refresh == Some(true) {
            keys.replace(user_id(ctx), input.password, KEY_LABEL).await
        } else {
            keys.get(user_id(ctx), input.password, KEY_LABEL).await
        };
        Ok(match shown {
            Ok(shown) => TokenMutation {
                errors: None,
                token: Some(TokenType(shown)),
            },
            Err(failure) => TokenMutation {
                errors: some_if_any(field_errors(failure, |field| match field {
                    Field::CurrentPassword => Some("password"),
                    _ => None,
                })?),
                token: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_split_at_the_first_space() {
        assert_eq!(names("Jane Doe"), ("Jane".into(), "Doe".into()));
        assert_eq!(
            names(" Mary Ann  Smith "),
            ("Mary".into(), "Ann  Smith".into())
        );
        assert_eq!(names("Cher"), ("Cher".into(), String::new()));
        assert_eq!(names(""), (String::new(), String::new()));
    }
}
