//! The mutations of the django dialects, once for both shapes: each is its name, the
//! original's type base name, its arguments (top-level in classic, the fields of
//! `<Base>Input` in relay), its payload fields besides `success` and `errors`, and a thin call
//! into the account services.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::State;
use crate::accounts::{
    ApiKey, Failure, LoginRequest, ProfileUpdate, Purpose, SignUp, TokenPair, User,
};
use crate::graphql::errors::{ArgNames, ExpectedErrors, ARGS, PASSWORD_CHANGE_ARGS, REGISTER_ARGS};
use crate::graphql::Caller;
use crate::jwt::unix_now;

pub(super) type Future2 = Pin<Box<dyn Future<Output = Payload> + Send>>;

/// The type of an argument (or input field).
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    Str,
    RequiredStr,
    RequiredId,
}

/// The type of a payload field.
#[derive(Debug, Clone, Copy)]
pub(super) enum OutTy {
    Str,
    Int,
    Bool,
    /// graphene's `GenericScalar` (the JWT claims).
    Generic,
    /// A list of strings (`[String!]`).
    StrList,
    User,
    ApiKey,
}

pub(super) struct Op {
    pub field: &'static str,
    pub base: &'static str,
    pub args: &'static [(&'static str, Ty)],
    pub outputs: &'static [(&'static str, OutTy)],
    pub run: fn(Call) -> Future2,
}

/// One mutation call: the shared state, the caller, and the arguments given (strings).
pub(super) struct Call {
    pub state: Arc<State>,
    pub caller: Caller,
    pub args: HashMap<&'static str, String>,
}

impl Call {
    fn get(&self, name: &str) -> String {
        self.args.get(name).cloned().unwrap_or_default()
    }

    fn opt(&self, name: &str) -> Option<String> {
        self.args.get(name).cloned()
    }

    fn user_id(&self) -> Option<&str> {
        self.caller.user_id.as_deref()
    }

    /// The session of the caller's token.
    fn session(&self) -> Option<&str> {
        self.caller.session_id.as_deref()
    }

    /// The refresh token of the argument, or else of the cookie.
    fn refresh_token(&self) -> Option<String> {
        self.opt("refreshToken")
            .filter(|t| !t.is_empty())
            .or_else(|| self.caller.refresh_cookie.clone())
    }
}

/// A value of a payload field.
pub(crate) enum Out {
    Json(serde_json::Value),
    User(Box<User>),
    ApiKey(ApiKey),
}

/// What the refresh-token cookie should become.
pub(crate) enum CookieChange {
    Set(Box<TokenPair>),
    Clear,
}

/// A mutation's answer, before it is shaped as the payload type.
#[derive(Default)]
pub(crate) struct Payload {
    pub success: bool,
    pub errors: Option<serde_json::Value>,
    pub values: Vec<(&'static str, Out)>,
    pub cookie: Option<CookieChange>,
    pub client_mutation_id: Option<String>,
}

impl Payload {
    fn done() -> Payload {
        Payload {
            success: true,
            ..Default::default()
        }
    }

    fn failed(failure: Failure, args: ArgNames) -> Payload {
        Payload {
            success: false,
            errors: Some(ExpectedErrors::new(failure, args).to_json()),
            ..Default::default()
        }
    }

    fn of(result: Result<(), Failure>) -> Payload {
        match result {
            Ok(()) => Payload::done(),
            Err(failure) => Payload::failed(failure, ARGS),
        }
    }

    fn with(mut self, name: &'static str, value: Out) -> Payload {
        self.values.push((name, value));
        self
    }

    fn json(self, name: &'static str, value: impl Into<serde_json::Value>) -> Payload {
        self.with(name, Out::Json(value.into()))
    }

    /// The fields of a token pair, and the cookie that carries its refresh token.
    fn tokens(mut self, pair: TokenPair) -> Payload {
        self = self
            .json("token", pair.token.clone())
            .json("refreshToken", pair.refresh_token.clone())
            .json("tokenExpiresAt", pair.claims.exp)
            .json("refreshExpiresAt", pair.refresh_expires_at)
            .json("refreshExpiresIn", pair.refresh_expires_at)
            .json("payload", pair.claims.to_json());
        self.cookie = Some(CookieChange::Set(Box::new(pair)));
        self
    }

    fn clearing(mut self) -> Payload {
        if self.success {
            self.cookie = Some(CookieChange::Clear);
        }
        self
    }
}

use OutTy as O;
use Ty::{RequiredId as ID, RequiredStr as S, Str as OS};

const TOKENS: &[(&str, OutTy)] = &[
    ("token", O::Str),
    ("refreshToken", O::Str),
    ("tokenExpiresAt", O::Int),
    ("refreshExpiresAt", O::Int),
    ("refreshExpiresIn", O::Int),
    ("payload", O::Generic),
];

macro_rules! run {
    ($f:ident) => {
        |call| Box::pin($f(call))
    };
}

/// Every mutation, in the order of the original's documentation, then authgate's own.
pub(super) const OPS: &[Op] = &[
    Op {
        field: "register",
        base: "Register",
        args: &[
            ("email", S),
            ("username", OS),
            ("password1", S),
            ("password2", S),
            ("firstName", OS),
            ("lastName", OS),
        ],
        outputs: TOKENS,
        run: run!(register),
    },
    Op {
        field: "verifyAccount",
        base: "VerifyAccount",
        args: &[("token", S)],
        outputs: &[],
        run: run!(verify_account),
    },
    Op {
        field: "resendActivationEmail",
        base: "ResendActivationEmail",
        args: &[("email", S)],
        outputs: &[],
        run: run!(resend_activation_email),
    },
    Op {
        field: "sendPasswordResetEmail",
        base: "SendPasswordResetEmail",
        args: &[("email", S)],
        outputs: &[],
        run: run!(send_password_reset_email),
    },
    Op {
        field: "passwordReset",
        base: "PasswordReset",
        args: &[("token", S), ("newPassword1", S), ("newPassword2", S)],
        outputs: &[],
        run: run!(password_reset),
    },
    Op {
        field: "passwordSet",
        base: "PasswordSet",
        args: &[("token", S), ("newPassword1", S), ("newPassword2", S)],
        outputs: &[],
        run: run!(password_set),
    },
    Op {
        field: "passwordChange",
        base: "PasswordChange",
        args: &[("oldPassword", S), ("newPassword1", S), ("newPassword2", S)],
        outputs: TOKENS,
        run: run!(password_change),
    },
    Op {
        field: "updateAccount",
        base: "UpdateAccount",
        args: &[("firstName", OS), ("lastName", OS), ("username", OS)],
        outputs: &[("user", O::User)],
        run: run!(update_account),
    },
    Op {
        field: "archiveAccount",
        base: "ArchiveAccount",
        args: &[("password", S)],
        outputs: &[],
        run: run!(archive_account),
    },
    Op {
        field: "deleteAccount",
        base: "DeleteAccount",
        args: &[("password", S)],
        outputs: &[],
        run: run!(delete_account),
    },
    Op {
        field: "sendSecondaryEmailActivation",
        base: "SendSecondaryEmailActivation",
        args: &[("email", S), ("password", S)],
        outputs: &[],
        run: run!(send_secondary_email_activation),
    },
    Op {
        field: "verifySecondaryEmail",
        base: "VerifySecondaryEmail",
        args: &[("token", S)],
        outputs: &[],
        run: run!(verify_secondary_email),
    },
    Op {
        field: "swapEmails",
        base: "SwapEmails",
        args: &[("password", S)],
        outputs: &[],
        run: run!(swap_emails),
    },
    Op {
        field: "removeSecondaryEmail",
        base: "RemoveSecondaryEmail",
        args: &[("password", S)],
        outputs: &[],
        run: run!(remove_secondary_email),
    },
    Op {
        field: "tokenAuth",
        base: "ObtainJSONWebToken",
        args: &[
            ("email", OS),
            ("username", OS),
            ("password", S),
            ("otp", OS),
        ],
        outputs: &[
            ("token", O::Str),
            ("refreshToken", O::Str),
            ("tokenExpiresAt", O::Int),
            ("refreshExpiresAt", O::Int),
            ("refreshExpiresIn", O::Int),
            ("payload", O::Generic),
            ("unarchiving", O::Bool),
            ("user", O::User),
        ],
        run: run!(token_auth),
    },
    Op {
        field: "verifyToken",
        base: "VerifyToken",
        args: &[("token", S)],
        outputs: &[("payload", O::Generic)],
        run: run!(verify_token),
    },
    Op {
        field: "refreshToken",
        base: "RefreshToken",
        args: &[("refreshToken", OS)],
        outputs: TOKENS,
        run: run!(refresh_token),
    },
    Op {
        field: "revokeToken",
        base: "RevokeToken",
        args: &[("refreshToken", OS)],
        outputs: &[("revoked", O::Int)],
        run: run!(revoke_token),
    },
    Op {
        field: "revokeAllTokens",
        base: "RevokeAllTokens",
        args: &[],
        outputs: &[],
        run: run!(revoke_all_tokens),
    },
    Op {
        field: "createApiKey",
        base: "CreateApiKey",
        args: &[("name", S)],
        outputs: &[("key", O::Str), ("apiKey", O::ApiKey)],
        run: run!(create_api_key),
    },
    Op {
        field: "revokeApiKey",
        base: "RevokeApiKey",
        args: &[("id", ID)],
        outputs: &[],
        run: run!(revoke_api_key),
    },
    Op {
        field: "totpSetup",
        base: "TotpSetup",
        args: &[],
        outputs: &[("secret", O::Str), ("otpauthUrl", O::Str)],
        run: run!(totp_setup),
    },
    Op {
        field: "totpConfirm",
        base: "TotpConfirm",
        args: &[("code", S)],
        outputs: &[("recoveryCodes", O::StrList)],
        run: run!(totp_confirm),
    },
    Op {
        field: "totpDisable",
        base: "TotpDisable",
        args: &[("password", S), ("code", S)],
        outputs: &[],
        run: run!(totp_disable),
    },
];

async fn register(c: Call) -> Payload {
    let input = SignUp {
        email: c.get("email"),
        username: c.opt("username"),
        password1: c.get("password1"),
        password2: c.get("password2"),
        first_name: c.opt("firstName"),
        last_name: c.opt("lastName"),
    };
    let s = &c.state;
    match s
        .accounts
        .registration
        .register(input, c.caller.client_ip, s.links.as_ref())
        .await
    {
        Ok(done) => match done.tokens {
            Some(pair) => Payload::done().tokens(pair),
            None => Payload::done(),
        },
        Err(failure) => Payload::failed(failure, REGISTER_ARGS),
    }
}

async fn verify_account(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .registration
        .verify_account(&c.get("token"))
        .await;
    Payload::of(result.map(|_| ()))
}

async fn resend_activation_email(c: Call) -> Payload {
    let s = &c.state;
    let result = s
        .accounts
        .registration
        .resend_activation(&c.get("email"), c.caller.client_ip, s.links.clone())
        .await;
    Payload::of(result)
}

async fn send_password_reset_email(c: Call) -> Payload {
    let s = &c.state;
    let result = s
        .accounts
        .recovery
        .send_password_reset(&c.get("email"), c.caller.client_ip, s.links.clone())
        .await;
    Payload::of(result)
}

async fn password_reset(c: Call) -> Payload {
    reset(c, Purpose::PasswordReset).await
}

async fn password_set(c: Call) -> Payload {
    reset(c, Purpose::PasswordSet).await
}

async fn reset(c: Call, purpose: Purpose) -> Payload {
    let result = c
        .state
        .accounts
        .recovery
        .reset_password(
            &c.get("token"),
            purpose,
            c.get("newPassword1"),
            c.get("newPassword2"),
        )
        .await;
    Payload::of(result)
}

async fn password_change(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .profile
        .change_password(
            c.user_id(),
            c.get("oldPassword"),
            c.get("newPassword1"),
            c.get("newPassword2"),
        )
        .await;
    match result {
        Ok(pair) => Payload::done().tokens(pair),
        Err(failure) => Payload::failed(failure, PASSWORD_CHANGE_ARGS),
    }
}

async fn update_account(c: Call) -> Payload {
    let update = ProfileUpdate {
        first_name: c.opt("firstName"),
        last_name: c.opt("lastName"),
        username: c.opt("username"),
    };
    match c.state.accounts.profile.update(c.user_id(), update).await {
        Ok(user) => Payload::done().with("user", Out::User(Box::new(user))),
        Err(failure) => Payload::failed(failure, ARGS),
    }
}

async fn archive_account(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .profile
        .archive(c.user_id(), c.get("password"))
        .await;
    Payload::of(result).clearing()
}

async fn delete_account(c: Call) -> Payload {
    let accounts = &c.state.accounts;
    let mode = accounts.settings().delete_mode;
    let result = accounts
        .profile
        .delete(c.user_id(), c.get("password"), mode)
        .await;
    Payload::of(result).clearing()
}

async fn send_secondary_email_activation(c: Call) -> Payload {
    let s = &c.state;
    let result = s
        .accounts
        .secondary_email
        .send_activation(
            c.user_id(),
            &c.get("email"),
            c.get("password"),
            c.caller.client_ip,
            s.links.as_ref(),
        )
        .await;
    Payload::of(result)
}

async fn verify_secondary_email(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .secondary_email
        .verify(&c.get("token"))
        .await;
    Payload::of(result)
}

async fn swap_emails(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .secondary_email
        .swap(c.user_id(), c.get("password"))
        .await;
    Payload::of(result.map(|_| ()))
}

async fn remove_secondary_email(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .secondary_email
        .remove(c.user_id(), c.get("password"))
        .await;
    Payload::of(result.map(|_| ()))
}

async fn token_auth(c: Call) -> Payload {
    let request = LoginRequest {
        email: c.opt("email"),
        username: c.opt("username"),
        password: c.get("password"),
        otp: c.opt("otp"),
    };
    match c
        .state
        .accounts
        .sessions
        .login(request, c.caller.client_ip)
        .await
    {
        Ok(done) => Payload::done()
            .json("unarchiving", done.unarchiving)
            .with("user", Out::User(Box::new(done.user)))
            .tokens(done.tokens),
        Err(failure) => Payload::failed(failure, ARGS).json("unarchiving", false),
    }
}

async fn verify_token(c: Call) -> Payload {
    let token = c.get("token");
    match c.state.accounts.sessions.verify_token(&token) {
        // Every claim as signed, the extra ones too (verification reads only the standard).
        Ok(claims) => {
            let payload = crate::jwt::decoded_claims(&token).unwrap_or_else(|| claims.to_json());
            Payload::done().json("payload", payload)
        }
        Err(failure) => Payload::failed(failure, ARGS),
    }
}

async fn refresh_token(c: Call) -> Payload {
    let presented = c.refresh_token();
    match c
        .state
        .accounts
        .sessions
        .refresh(presented.as_deref())
        .await
    {
        Ok((_, pair)) => Payload::done().tokens(pair),
        Err(failure) => {
            let mut payload = Payload::failed(failure, ARGS);
            payload.cookie = Some(CookieChange::Clear);
            payload
        }
    }
}

async fn revoke_token(c: Call) -> Payload {
    let presented = c.refresh_token();
    let result = c.state.accounts.sessions.revoke(presented.as_deref()).await;
    let mut payload = match result {
        Ok(()) => Payload::done().json("revoked", unix_now()),
        Err(failure) => Payload::failed(failure, ARGS),
    };
    payload.cookie = Some(CookieChange::Clear);
    payload
}

async fn revoke_all_tokens(c: Call) -> Payload {
    let result = c.state.accounts.sessions.revoke_all(c.user_id()).await;
    Payload::of(result).clearing()
}

async fn create_api_key(c: Call) -> Payload {
    match c
        .state
        .accounts
        .api_keys
        .create(c.user_id(), &c.get("name"))
        .await
    {
        Ok((key, record)) => Payload::done()
            .json("key", key)
            .with("apiKey", Out::ApiKey(record)),
        Err(failure) => Payload::failed(failure, ARGS),
    }
}

async fn totp_setup(c: Call) -> Payload {
    let s = &c.state;
    match s.accounts.totp.setup(c.user_id(), s.links.as_ref()).await {
        Ok(enrolment) => Payload::done()
            .json("secret", enrolment.secret)
            .json("otpauthUrl", enrolment.otpauth_url),
        Err(failure) => Payload::failed(failure, ARGS),
    }
}

async fn totp_confirm(c: Call) -> Payload {
    let code = c.get("code");
    let confirmed = c
        .state
        .accounts
        .totp
        .confirm(c.user_id(), c.session(), &code, c.caller.client_ip)
        .await;
    match confirmed {
        Ok(codes) => Payload::done().json("recoveryCodes", codes),
        Err(failure) => Payload::failed(failure, ARGS),
    }
}

async fn totp_disable(c: Call) -> Payload {
    let code = c.get("code");
    let result = c
        .state
        .accounts
        .totp
        .disable(
            c.user_id(),
            c.session(),
            c.get("password"),
            &code,
            c.caller.client_ip,
        )
        .await;
    Payload::of(result)
}

async fn revoke_api_key(c: Call) -> Payload {
    let result = c
        .state
        .accounts
        .api_keys
        .revoke(c.user_id(), &c.get("id"))
        .await;
    Payload::of(result)
}
