//! Expected failures of account operations, in domain terms: which part of the input was wrong
//! ([`Field`]) and how ([`Code`]), with a plain-English explanation. Adapters turn them into
//! their wire forms (the native schema's `{"<field>": [{message, code}]}`, a dialect's error
//! types); nothing here knows those forms.

use super::storage::{SessionError, StoreError};

/// The part of an operation's input a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// Not one field: the operation as a whole.
    General,
    Email,
    Username,
    /// A new password (its policy, and its confirmation matching it).
    NewPassword,
    /// The password that proves who the caller is (an old password, a confirmation).
    CurrentPassword,
    /// An API key's name.
    KeyName,
    /// An API key's id.
    KeyId,
}

/// How an operation failed: the contract's error codes (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Invalid,
    Unique,
    PasswordTooShort,
    PasswordTooCommon,
    PasswordEntirelyNumeric,
    PasswordTooSimilar,
    PasswordTooLong,
    PasswordMismatch,
    InvalidCredentials,
    NotVerified,
    AlreadyVerified,
    InvalidToken,
    ExpiredToken,
    Unauthenticated,
    InvalidPassword,
    EmailFail,
    PasswordAlreadySet,
    RateLimited,
    Forbidden,
    ServiceUnavailable,
    /// TOTP is on and no code was given.
    OtpRequired,
    /// A one-time or recovery code that is wrong, malformed or used already.
    InvalidOtp,
    /// TOTP is already on.
    TotpEnabled,
}

impl Code {
    /// The code as the contract spells it; the one place these strings live.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Invalid => "invalid",
            Code::Unique => "unique",
            Code::PasswordTooShort => "password_too_short",
            Code::PasswordTooCommon => "password_too_common",
            Code::PasswordEntirelyNumeric => "password_entirely_numeric",
            Code::PasswordTooSimilar => "password_too_similar",
            Code::PasswordTooLong => "password_too_long",
            Code::PasswordMismatch => "password_mismatch",
            Code::InvalidCredentials => "invalid_credentials",
            Code::NotVerified => "not_verified",
            Code::AlreadyVerified => "already_verified",
            Code::InvalidToken => "invalid_token",
            Code::ExpiredToken => "expired_token",
            Code::Unauthenticated => "unauthenticated",
            Code::InvalidPassword => "invalid_password",
            Code::EmailFail => "email_fail",
            Code::PasswordAlreadySet => "password_already_set",
            Code::RateLimited => "rate_limited",
            Code::Forbidden => "forbidden",
            Code::ServiceUnavailable => "service_unavailable",
            Code::OtpRequired => "otp_required",
            Code::InvalidOtp => "invalid_otp",
            Code::TotpEnabled => "totp_enabled",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub code: Code,
    pub message: String,
}

/// Everything wrong with a request, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    problems: Vec<Problem>,
}

impl Failure {
    pub fn field(field: Field, code: Code, message: impl Into<String>) -> Failure {
        let mut failure = Failure::default();
        failure.add(field, code, message);
        failure
    }

    pub fn general(code: Code, message: impl Into<String>) -> Failure {
        Failure::field(Field::General, code, message)
    }

    pub fn add(&mut self, field: Field, code: Code, message: impl Into<String>) {
        self.problems.push(Problem {
            field,
            code,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The first problem's code: what a caller that can show one reason shows.
    pub fn code(&self) -> Option<Code> {
        self.problems.first().map(|p| p.code)
    }

    pub fn has(&self, code: Code) -> bool {
        self.problems.iter().any(|p| p.code == code)
    }

    /// Whether this is exactly one problem with `code`.
    pub fn is(&self, code: Code) -> bool {
        matches!(self.problems.as_slice(), [only] if only.code == code)
    }

    /// The codes present, for tests and logs.
    pub fn codes(&self) -> Vec<Code> {
        self.problems.iter().map(|p| p.code).collect()
    }

    pub fn invalid_email() -> Failure {
        Failure::field(Field::Email, Code::Invalid, "Enter a valid email address.")
    }

    pub fn unauthenticated() -> Failure {
        Failure::general(Code::Unauthenticated, "Unauthenticated.")
    }

    pub fn not_verified() -> Failure {
        Failure::general(Code::NotVerified, "Please verify your account.")
    }

    pub fn invalid_credentials() -> Failure {
        Failure::general(Code::InvalidCredentials, "Please, enter valid credentials.")
    }

    pub fn invalid_password() -> Failure {
        Failure::field(
            Field::CurrentPassword,
            Code::InvalidPassword,
            "Invalid password.",
        )
    }

    pub fn unavailable() -> Failure {
        Failure::general(
            Code::ServiceUnavailable,
            "The service is temporarily unavailable; try again shortly.",
        )
    }

    pub fn email_fail() -> Failure {
        Failure::general(
            Code::EmailFail,
            "Failed to send the email; nothing was changed.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Failure {
        Failure::general(Code::Forbidden, message)
    }

    pub fn taken(field: Field) -> Failure {
        let what = match field {
            Field::Username => "username",
            _ => "email",
        };
        Failure::field(
            field,
            Code::Unique,
            format!("A user with that {what} already exists."),
        )
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Unique("username") => Failure::taken(Field::Username),
            StoreError::Unique(_) => Failure::taken(Field::Email),
            StoreError::NotFound => Failure::unauthenticated(),
            StoreError::Backend(error) => {
                tracing::error!(%error, "user store failed");
                Failure::unavailable()
            }
        }
    }
}

impl From<SessionError> for Failure {
    fn from(error: SessionError) -> Failure {
        tracing::error!(%error, "session store failed");
        Failure::unavailable()
    }
}
