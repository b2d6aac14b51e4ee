//! GraphQL types shared by the areas of the native API: `DateTime`, `UserNode`, `ApiKey`.

use async_graphql::{InputValueError, InputValueResult, Object, Scalar, ScalarType, Value, ID};

use crate::accounts::{ApiKey, User};

/// An RFC 3339 UTC timestamp, e.g. `2026-11-22T15:04:05Z`.
pub struct DateTime(pub i64);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => humantime::parse_rfc3339(text)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| DateTime(d.as_secs() as i64))
                .ok_or_else(|| InputValueError::custom("expected an RFC 3339 timestamp")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.max(0) as u64);
        Value::String(humantime::format_rfc3339_seconds(time).to_string())
    }
}

/// The wrapper the schema uses for a user.
pub struct UserNode(pub User);

#[Object(name = "UserNode")]
impl UserNode {
    /// Opaque; equal to the JWT `sub`.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }
    async fn first_name(&self) -> Option<&str> {
        Some(self.0.first_name.as_str()).filter(|s| !s.is_empty())
    }
    async fn last_name(&self) -> Option<&str> {
        Some(self.0.last_name.as_str()).filter(|s| !s.is_empty())
    }
    async fn full_name(&self) -> Option<String> {
        Some(self.0.full_name()).filter(|s| !s.is_empty())
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
    async fn is_staff(&self) -> bool {
        self.0.is_staff
    }
    async fn verified(&self) -> bool {
        self.0.verified
    }
    async fn archived(&self) -> bool {
        self.0.archived
    }
    async fn secondary_email(&self) -> Option<&str> {
        self.0.secondary_email.as_deref()
    }
    async fn roles(&self) -> &[String] {
        &self.0.roles
    }
    async fn date_joined(&self) -> DateTime {
        DateTime(self.0.date_joined)
    }
    async fn last_login(&self) -> Option<DateTime> {
        self.0.last_login.map(DateTime)
    }
    /// Whether logins need a second factor (TOTP confirmed).
    async fn totp_enabled(&self) -> bool {
        self.0.totp_enabled()
    }
}

/// An API key as its owner sees it (never the key itself).
pub struct ApiKeyNode(pub ApiKey);

#[Object(name = "ApiKey")]
impl ApiKeyNode {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The first characters of the key.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
}
