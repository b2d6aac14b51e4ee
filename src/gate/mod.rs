//! Gatekeeping, free of any HTTP server: which route a path takes, which credential a request
//! carries, and whether it may pass and as whom. The proxy only translates the answer.

mod path;
mod routes;

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::AuthMode;
use crate::jwt::{Claims, Rejection, Subject, TokenService};

pub use crate::config::Route;
pub use path::{canonical_path, PathError};
pub use routes::RouteTable;

/// Every header the upstream may trust. Client-sent ones are always removed first.
pub const IDENTITY_PREFIX: &str = "x-auth-";

/// A credential found on a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    Missing,
    Jwt(&'a str),
    ApiKey(&'a str),
}

/// Finds the credential: `Authorization: Bearer|JWT <jwt>`, `Authorization: Token <key>`, or
/// `X-API-Key: <key>`. Ambiguity (a header twice) is an error, never a guess.
pub fn credential(headers: &HeaderMap) -> Result<Credential<'_>, &'static str> {
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        return Err("more than one Authorization header");
    }
    if let Some(value) = first {
        let value = value
            .to_str()
            .map_err(|_| "Authorization header is not visible ASCII")?;
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("jwt") {
            if rest.is_empty() {
                return Err("empty bearer token");
            }
            return Ok(Credential::Jwt(rest));
        }
        if scheme.eq_ignore_ascii_case("token") {
            if rest.is_empty() {
                return Err("empty API key");
            }
            return Ok(Credential::ApiKey(rest));
        }
        // Another scheme (Basic, ...) is for the upstream, not for us.
    }
    let mut api_keys = headers.get_all("x-api-key").iter();
    match (api_keys.next(), api_keys.next()) {
        (None, _) => Ok(Credential::Missing),
        (Some(_), Some(_)) => Err("more than one X-API-Key header"),
        (Some(value), None) => {
            let key = value
                .to_str()
                .map_err(|_| "X-API-Key header is not visible ASCII")?
                .trim();
            if key.is_empty() {
                Err("empty API key")
            } else {
                Ok(Credential::ApiKey(key))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    ApiKey,
}

/// A verified caller, as the upstream will learn it from the `X-Auth-*` headers. A token's
/// caller shares the verified claims (no copy of them per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    who: Who,
    pub method: AuthMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Token(Arc<Claims>),
    Key(Subject),
}

/// The identity headers' names, in the order [`Identity::header_values`] gives their values.
/// (Lower-case, as HTTP/2 writes every name; names are case-insensitive, RFC 9110 §5.1.)
pub static IDENTITY_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-auth-user-id"),
    HeaderName::from_static("x-auth-email"),
    HeaderName::from_static("x-auth-username"),
    HeaderName::from_static("x-auth-verified"),
    HeaderName::from_static("x-auth-staff"),
    HeaderName::from_static("x-auth-roles"),
    HeaderName::from_static("x-auth-method"),
];

impl Identity {
    /// An API key's owner.
    pub fn from_subject(subject: Subject, method: AuthMethod) -> Identity {
        Identity {
            who: Who::Key(subject),
            method,
        }
    }

    /// A verified token's caller.
    pub fn from_claims(claims: Arc<Claims>) -> Identity {
        Identity {
            who: Who::Token(claims),
            method: AuthMethod::Jwt,
        }
    }

    pub fn user_id(&self) -> &str {
        self.fields().user_id
    }

    pub fn verified(&self) -> bool {
        self.fields().verified
    }

    pub fn roles(&self) -> &[String] {
        self.fields().roles
    }

    /// The caller's fields, borrowed from the token's claims or from the key's owner.
    fn fields(&self) -> Fields<'_> {
        match &self.who {
            Who::Token(claims) => Fields {
                user_id: &claims.sub,
                email: &claims.email,
                username: claims.username.as_deref(),
                verified: claims.verified,
                staff: claims.staff,
                roles: &claims.roles,
            },
            Who::Key(subject) => Fields {
                user_id: &subject.user_id,
                email: &subject.email,
                username: subject.username.as_deref(),
                verified: subject.verified,
                staff: subject.staff,
                roles: &subject.roles,
            },
        }
    }

    /// The values of [`IDENTITY_HEADERS`], in that order.
    pub fn header_values(&self) -> [HeaderValue; 7] {
        let fields = self.fields();
        let flag = |on: bool| HeaderValue::from_static(if on { "true" } else { "false" });
        let roles = match fields.roles {
            [] => HeaderValue::from_static(""),
            [one] => header_safe(one),
            many => header_safe(&many.join(",")),
        };
        [
            header_safe(fields.user_id),
            header_safe(fields.email),
            header_safe(fields.username.unwrap_or("")),
            flag(fields.verified),
            flag(fields.staff),
            roles,
            HeaderValue::from_static(self.method.as_str()),
        ]
    }
}

struct Fields<'a> {
    user_id: &'a str,
    email: &'a str,
    username: Option<&'a str>,
    verified: bool,
    staff: bool,
    roles: &'a [String],
}

impl AuthMethod {
    /// The `X-Auth-Method` value, and the label of metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// Header values cannot carry control characters; our own data never has them, but a header
/// must not be the place where that assumption breaks. (`HeaderValue` refuses exactly the
/// bytes below, so the common case is one check and one copy.)
fn header_safe(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| {
        let clean: String = value.chars().filter(|c| !c.is_control()).collect();
        HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static(""))
    })
}

/// Why a request may not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No credential at all on a route that needs one.
    Missing,
    /// A credential header that cannot be read (twice, empty, not ASCII).
    BadCredential(&'static str),
    /// An API key nobody owns (any more).
    UnknownApiKey,
    /// A JWT that does not verify.
    Token(Rejection),
    /// A `require_verified` route and an unverified account.
    Unverified,
    /// A `roles` route and none of them.
    InsufficientRole,
    /// A `require_mfa` route and a token of a login without a second factor, or an API key.
    MfaRequired,
}

impl Cause {
    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Cause::Missing => "missing",
            Cause::BadCredential(_) => "bad_credential",
            Cause::UnknownApiKey => "api_key",
            Cause::Token(rejection) => rejection.reason(),
            Cause::Unverified => "unverified",
            Cause::InsufficientRole => "insufficient_role",
            Cause::MfaRequired => "mfa_required",
        }
    }
}

/// A refusal as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub cause: Cause,
    /// 401 or 403; 503 when a verifier cannot judge tokens yet.
    pub status: u16,
    /// The RFC 6750 / JSON `error`; `None` when no credential was given at all.
    pub error: Option<&'static str>,
    pub description: String,
}

impl From<Cause> for Denial {
    fn from(cause: Cause) -> Denial {
        let (status, error, description) = match &cause {
            Cause::Missing => (401, None, "authentication required".to_string()),
            Cause::BadCredential(what) => (401, Some("invalid_token"), what.to_string()),
            Cause::UnknownApiKey => (
                401,
                Some("invalid_token"),
                "unknown or revoked API key".to_string(),
            ),
            // Not the client's fault, and perhaps a valid token: say so, not 401.
            Cause::Token(rejection @ Rejection::NoKeys) => {
                (503, Some("temporarily_unavailable"), rejection.to_string())
            }
            Cause::Token(rejection) => (401, Some("invalid_token"), rejection.to_string()),
            Cause::Unverified => (
                403,
                Some("unverified"),
                "this route requires a verified account".to_string(),
            ),
            Cause::InsufficientRole => (
                403,
                Some("insufficient_role"),
                "this route requires one of the roles it lists".to_string(),
            ),
            Cause::MfaRequired => (
                403,
                Some("mfa_required"),
                "this route requires a login with a second factor".to_string(),
            ),
        };
        Denial {
            cause,
            status,
            error,
            description,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Pass without identity headers.
    Anonymous,
    /// Pass with identity headers.
    Authenticated(Identity),
    Denied(Denial),
}

/// Decides a request on `route`, given what [`credential`] found. `api_key_owner` answers who
/// owns an API key (the caller looks keys up beforehand; this stays free of I/O).
pub fn authorize(
    route: &Route,
    found: Result<Credential<'_>, &'static str>,
    tokens: &TokenService,
    api_key_owner: impl FnOnce(&str) -> Option<Identity>,
) -> Outcome {
    if route.auth == AuthMode::None {
        return Outcome::Anonymous;
    }
    let denied = |cause: Cause| Outcome::Denied(cause.into());
    let mut second_factor = false;
    let identity = match found {
        Err(what) => return denied(Cause::BadCredential(what)),
        Ok(Credential::Missing) => {
            return match route.auth {
                AuthMode::Optional => Outcome::Anonymous,
                _ => denied(Cause::Missing),
            }
        }
        Ok(Credential::ApiKey(key)) => match api_key_owner(key) {
            Some(identity) => identity,
            None => return denied(Cause::UnknownApiKey),
        },
        Ok(Credential::Jwt(token)) => match tokens.verify(token) {
            Ok(claims) => {
                second_factor = claims.has_second_factor();
                Identity::from_claims(claims)
            }
            Err(rejection) => return denied(Cause::Token(rejection)),
        },
    };
    if route.require_mfa && !second_factor {
        return denied(Cause::MfaRequired);
    }
    if route.require_verified && !identity.verified() {
        return denied(Cause::Unverified);
    }
    if !route.roles.is_empty() && !route.roles.iter().any(|r| identity.roles().contains(r)) {
        return denied(Cause::InsufficientRole);
    }
    Outcome::Authenticated(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn credentials_are_found() {
        assert_eq!(credential(&headers(&[])), Ok(Credential::Missing));
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer a.b.c")])),
            Ok(Credential::Jwt("a.b.c"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "JWT a.b.c")])),
            Ok(Credential::Jwt("a.b.c"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer   a.b.c ")])),
            Ok(Credential::Jwt("a.b.c"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Token k1")])),
            Ok(Credential::ApiKey("k1"))
        );
        assert_eq!(
            credential(&headers(&[("x-api-key", "k2")])),
            Ok(Credential::ApiKey("k2"))
        );
        assert_eq!(
            credential(&headers(&[("authorization", "Basic dXNlcjpwYXNz")])),
            Ok(Credential::Missing)
        );
    }

    #[test]
    fn ambiguous_or_empty_credentials_are_errors() {
        assert!(credential(&headers(&[("authorization", "Bearer")])).is_err());
        assert!(credential(&headers(&[("authorization", "Bearer  ")])).is_err());
        assert!(credential(&headers(&[
            ("authorization", "Bearer a"),
            ("authorization", "Bearer b")
        ]))
        .is_err());
        assert!(credential(&headers(&[("x-api-key", "a"), ("x-api-key", "b")])).is_err());
        assert!(credential(&headers(&[("x-api-key", "")])).is_err());
    }

    #[test]
    fn a_missing_second_factor_is_a_403_of_its_own() {
        let denial = Denial::from(Cause::MfaRequired);
        assert_eq!(
            (denial.status, denial.error, denial.cause.reason()),
            (403, Some("mfa_required"), "mfa_required")
        );
    }

    #[test]
    fn identity_headers_never_carry_control_characters() {
        let subject = Subject {
            user_id: "u1".into(),
            email: "a@b.c\r\nX-Evil: 1".into(),
            username: None,
            verified: true,
            staff: false,
            roles: vec!["admin".into(), "ops".into()],
        };
        let h = Identity::from_subject(subject, AuthMethod::Jwt).header_values();
        assert_eq!(h[1], "a@b.cX-Evil: 1");
        assert_eq!(h[2], "");
        assert_eq!(h[3], "true");
        assert_eq!(h[4], "false");
        assert_eq!(h[5], "admin,ops");
        assert_eq!(h[6], "jwt");
        let subject = Subject {
            user_id: "u2".into(),
            email: "e@x.y".into(),
            username: Some("bob\u{7f}".into()),
            verified: false,
            staff: true,
            roles: vec!["one\n".into()],
        };
        let h = Identity::from_subject(subject, AuthMethod::ApiKey).header_values();
        assert_eq!(
            h.iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>(),
            ["u2", "e@x.y", "bob", "false", "true", "one", "api_key"]
        );
    }
}
