//! What the upstream receives: the authorized path, identity headers, request id, and
//! `X-Forwarded-*`; and the request id on what it answers.

use std::net::IpAddr;

use http::request::Parts as ReqParts;
use http::response::Parts as RespParts;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::Ctx;
use crate::config::Server;
use crate::gate::{self, Route, IDENTITY_HEADERS};

/// Pingora's `insert_header` parses every name and keeps a second map of the names' case, both
/// grown as headers go in: ten headers that way cost more than the rest of the proxy path. The
/// upstream request is rebuilt from its parts instead, its map reserved once and our headers put
/// in by constant names. Names then reach the upstream lower-case, as over HTTP/2 (well-known
/// ones title-cased); HTTP names are case-insensitive (RFC 9110 §5.1).
pub fn rewrite_request(
    server: &Server,
    session: &Session,
    upstream: &mut RequestHeader,
    ctx: &Ctx,
) -> Result<()> {
    let route = ctx
        .route
        .as_ref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: ReqParts = std::mem::replace(upstream, empty).into();
    let result = rewrite_parts(server, session, route, &mut parts, ctx);
    *upstream = RequestHeader::from(parts);
    result
}

fn rewrite_parts(
    server: &Server,
    session: &Session,
    route: &Route,
    upstream: &mut ReqParts,
    ctx: &Ctx,
) -> Result<()> {
    // The upstream gets the path that was authorized, never the raw one.
    let target = {
        let raw = upstream.uri.path();
        let canonical = ctx.canonical.as_deref().unwrap_or(raw);
        let path = if route.strip_prefix {
            route.prefix.strip(canonical)
        } else {
            canonical
        };
        (path != raw).then(|| match upstream.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        })
    };
    if let Some(target) = target {
        upstream.uri = target
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?;
    }

    let headers = &mut upstream.headers;
    headers
        .try_reserve(ADDED_HEADERS)
        .map_err(|e| Error::because(ErrorType::InternalError, "too many headers", e))?;
    if let Some(identity) = &ctx.identity {
        for (name, value) in IDENTITY_HEADERS.iter().zip(identity.header_values()) {
            headers.insert(name.clone(), value);
        }
        // The upstream learns who called, never the caller's API key.
        if identity.method == gate::AuthMethod::ApiKey {
            headers.remove(X_API_KEY);
            let is_key = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim_start()
                        .get(..6)
                        .is_some_and(|s| s.eq_ignore_ascii_case("token "))
                });
            if is_key {
                headers.remove(http::header::AUTHORIZATION);
            }
        }
    }
    headers.insert(X_REQUEST_ID, ctx.request_id.clone());

    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let trusted = peer.is_some_and(|ip| is_trusted(server, ip));
    match peer {
        Some(ip) => {
            let chain = headers
                .get(X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
                .filter(|chain| trusted && !chain.trim().is_empty());
            let forwarded_for = match chain {
                Some(chain) => HeaderValue::try_from(format!("{chain}, {ip}")),
                None => ip_value(ip),
            }
            .map_err(|e| Error::because(ErrorType::InternalError, "x-forwarded-for", e))?;
            headers.insert(X_FORWARDED_FOR, forwarded_for);
        }
        None => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    let https = trusted
        && headers
            .get(X_FORWARDED_PROTO)
            .is_some_and(|p| p.as_bytes() == b"https");
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    Ok(())
}

/// An address as a header value; an IPv4 one without the formatting machinery, which costs
/// more than the rest of the forwarded headers together.
fn ip_value(ip: IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::try_from(ip.to_string());
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    HeaderValue::from_bytes(&text[..len])
}

/// The most headers [`rewrite_parts`] adds: the identity, the request id, two forwarded.
const ADDED_HEADERS: usize = IDENTITY_HEADERS.len() + 3;
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The upstream's answer, with the request id added: rebuilt from its parts like the request
/// (see [`rewrite_request`]), keeping a reason phrase of the upstream's own.
pub fn rewrite_response(response: &mut ResponseHeader, request_id: &HeaderValue) -> Result<()> {
    let reason = response
        .get_reason_phrase()
        .filter(|reason| Some(*reason) != response.status.canonical_reason())
        .map(str::to_owned);
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: RespParts = std::mem::replace(response, empty).into();
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    *response = ResponseHeader::from(parts);
    response.set_reason_phrase(reason.as_deref())
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the nearest
/// untrusted address in its `X-Forwarded-For` chain.
pub fn client_ip(server: &Server, session: &Session) -> Option<IpAddr> {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())?;
    if !is_trusted(server, peer) {
        return Some(peer);
    }
    let chain = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in chain.iter().rev() {
        client = *hop;
        if !is_trusted(server, *hop) {
            break;
        }
    }
    Some(client)
}

fn is_trusted(server: &Server, ip: IpAddr) -> bool {
    server.trusted_proxies.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_their_status_reason_and_headers_and_gain_the_request_id() {
        let id = HeaderValue::from_static("req-1");
        for (status, reason) in [(200, None), (200, Some("Fine")), (404, Some("Not Found"))] {
            let mut response = ResponseHeader::build(status, None).unwrap();
            response.set_reason_phrase(reason).unwrap();
            response.append_header("Set-Cookie", "a=1").unwrap();
            response.append_header("Set-Cookie", "b=2").unwrap();
            response
                .insert_header("X-Request-Id", "from-upstream")
                .unwrap();
            let reason_before = response.get_reason_phrase().map(str::to_owned);
            rewrite_response(&mut response, &id).unwrap();
            assert_eq!(response.status, status);
            assert_eq!(response.get_reason_phrase(), reason_before.as_deref());
            let cookies: Vec<_> = response.headers.get_all("set-cookie").iter().collect();
            assert_eq!(cookies, ["a=1", "b=2"]);
            assert_eq!(response.headers.get_all("x-request-id").iter().count(), 1);
            assert_eq!(response.headers["x-request-id"], "req-1");
        }
    }

    #[test]
    fn addresses_read_as_their_display_form() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.9",
            "127.0.0.1",
            "192.168.10.255",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(ip_value(ip).unwrap(), ip.to_string().as_str(), "{text}");
        }
    }
}
