//! Browsers on other origins (SPEC §5): which origins may call authgate's own endpoints with
//! credentials, the answers to their preflights, and the headers of actual responses. Plain
//! values in, a [`Reply`] out; the proxy applies them.

use http::{HeaderMap, Method};

use crate::config::Origin;
use crate::reply::{ErrorBody, Reply};

/// How long a browser may keep a preflight's answer.
const MAX_AGE: &str = "600";

/// The request headers every client of ours may send.
const ALLOW_HEADERS: &[&str] = &["authorization", "content-type", "x-request-id"];

/// The one `Origin` of a request, if it has exactly one readable one.
pub fn origin(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(http::header::ORIGIN).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().map(str::to_string),
        _ => None,
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The origins of `server.cors_origins` and the headers their requests may carry.
pub struct Cors {
    origins: Vec<Origin>,
    allow_headers: String,
}

impl Cors {
    /// `extra_headers`: what dialects' clients send beyond the common headers.
    pub fn new<'a>(origins: &[Origin], extra_headers: impl Iterator<Item = &'a str>) -> Cors {
        let mut headers: Vec<&str> = ALLOW_HEADERS.to_vec();
        for header in extra_headers {
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
        Cors {
            origins: origins.to_vec(),
            allow_headers: headers.join(", "),
        }
    }

    /// Whether `origin` (as the browser sent it) is listed; compared exactly, as browsers
    /// send the serialized origin.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        origin.is_some_and(|origin| self.origins.iter().any(|o| o.as_str() == origin))
    }

    /// The answer to a preflight: `204` with the grant for a listed origin, `403` otherwise.
    pub fn preflight(&self, origin: Option<&str>) -> Reply {
        match origin.filter(|o| self.allows(Some(o))) {
            Some(origin) => Reply::new(204, "text/plain", Vec::new())
                .with_header("access-control-allow-origin", origin)
                .with_header("access-control-allow-credentials", "true")
                .with_header("access-control-allow-methods", "GET, POST")
                .with_header("access-control-allow-headers", self.allow_headers.clone())
                .with_header("access-control-max-age", MAX_AGE)
                .with_header("vary", "Origin"),
            None => Reply::json_error(
                403,
                &ErrorBody::new(
                    "origin_not_allowed",
                    "this origin may not call authgate from a browser (server.cors_origins)",
                ),
            )
            .with_header("vary", "Origin"),
        }
    }

    /// An actual response: the grant for a listed origin; `Vary: Origin` always, since the
    /// answer depends on it.
    pub fn decorate(&self, reply: Reply, origin: Option<&str>) -> Reply {
        let reply = match origin.filter(|o| self.allows(Some(o))) {
            Some(origin) => reply
                .with_header("access-control-allow-origin", origin)
                .with_header("access-control-allow-credentials", "true"),
            None => reply,
        };
        reply.with_header("vary", "Origin")
    }

    /// A preflight for a public document (JWKS, discovery): anyone, no credentials.
    pub fn public_preflight() -> Reply {
        Reply::new(204, "text/plain", Vec::new())
            .with_header("access-control-allow-origin", "*")
            .with_header("access-control-allow-methods", "GET, HEAD")
            .with_header("access-control-max-age", MAX_AGE)
    }

    /// A public document's answer: readable by any origin.
    pub fn public(reply: Reply) -> Reply {
        reply.with_header("access-control-allow-origin", "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn listed_origins_get_the_grant_and_others_nothing() {
        let origins = [Origin::parse("https://app.example.com").unwrap()];
        let cors = Cors::new(&origins, ["x-csrftoken", "authorization"].into_iter());
        let ok = cors.preflight(Some("https://app.example.com"));
        assert_eq!(ok.status, 204);
        assert_eq!(
            header(&ok, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            header(&ok, "access-control-allow-headers"),
            Some("authorization, content-type, x-request-id, x-csrftoken")
        );
        for other in [Some("https://evil.example.com"), Some("null"), None] {
            let refused = cors.preflight(other);
            assert_eq!(refused.status, 403);
            assert_eq!(header(&refused, "access-control-allow-origin"), None);
        }
        let plain = cors.decorate(Reply::new(200, "application/json", "{}"), Some("http://x"));
        assert_eq!(header(&plain, "access-control-allow-origin"), None);
        assert_eq!(header(&plain, "vary"), Some("Origin"));
    }
}
