//! Expected failures of account operations: `{"<field>": [{"message", "code"}]}`, with
//! `nonFieldErrors` for the rest. They become the `errors` of a GraphQL payload.

use std::collections::BTreeMap;

use serde::Serialize;

use super::storage::StoreError;

pub const NON_FIELD: &str = "nonFieldErrors";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub message: String,
    pub code: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Failure(pub BTreeMap<String, Vec<FieldError>>);

impl Failure {
    pub fn field(field: &str, code: &'static str, message: impl Into<String>) -> Failure {
        let mut failure = Failure::default();
        failure.add(field, code, message);
        failure
    }

    pub fn general(code: &'static str, message: impl Into<String>) -> Failure {
        Failure::field(NON_FIELD, code, message)
    }

    pub fn add(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(FieldError {
                message: message.into(),
                code,
            });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes present, for tests and logs.
    pub fn codes(&self) -> Vec<&'static str> {
        self.0.values().flatten().map(|e| e.code).collect()
    }

    pub fn invalid_email() -> Failure {
        Failure::field("email", "invalid", "Enter a valid email address.")
    }

    pub fn unauthenticated() -> Failure {
        Failure::general("unauthenticated", "Unauthenticated.")
    }

    pub fn not_verified() -> Failure {
        Failure::general("not_verified", "Please verify your account.")
    }

    pub fn invalid_credentials() -> Failure {
        Failure::general("invalid_credentials", "Please, enter valid credentials.")
    }

    pub fn unavailable() -> Failure {
        Failure::general(
            "service_unavailable",
            "The service is temporarily unavailable; try again shortly.",
        )
    }

    pub fn email_fail() -> Failure {
        Failure::general(
            "email_fail",
            "Failed to send the email; nothing was changed.",
        )
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Unique(field) => {
                let field = match field {
                    "secondary_email" | "email" => "email",
                    other => other,
                };
                Failure::field(
                    field,
                    "unique",
                    format!("A user with that {field} already exists."),
                )
            }
            StoreError::NotFound => Failure::unauthenticated(),
            StoreError::Backend(reason) => {
                tracing::error!(%reason, "user store failed");
                Failure::unavailable()
            }
        }
    }
}
