//! What the upstream receives: the authorized path, identity headers, request id, and
//! `X-Forwarded-*`.

use std::net::IpAddr;

use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::Ctx;
use crate::config::Server;
use crate::gate;

pub fn rewrite_request(
    server: &Server,
    session: &Session,
    upstream: &mut RequestHeader,
    ctx: &Ctx,
) -> Result<()> {
    // The upstream gets the path that was authorized, never the raw one.
    let route = ctx
        .route
        .as_ref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
    let path = if route.strip_prefix {
        route.prefix.strip(&ctx.path)
    } else {
        ctx.path.clone()
    };
    if path != upstream.uri.path() {
        let target = match upstream.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "rewriting the path", e))?;
        upstream.set_uri(uri);
    }

    if let Some(identity) = &ctx.identity {
        for (name, value) in identity.headers() {
            upstream.insert_header(name, value)?;
        }
        // The upstream learns who called, never the caller's API key.
        if identity.method == gate::AuthMethod::ApiKey {
            upstream.remove_header("x-api-key");
            let is_key = upstream
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim_start()
                        .get(..6)
                        .is_some_and(|s| s.eq_ignore_ascii_case("token "))
                });
            if is_key {
                upstream.remove_header("authorization");
            }
        }
    }
    upstream.insert_header("x-request-id", ctx.request_id.as_str())?;

    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let trusted = peer.is_some_and(|ip| is_trusted(server, ip));
    let forwarded_for = match (peer, trusted) {
        (Some(ip), true) => match upstream
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(chain) if !chain.trim().is_empty() => format!("{chain}, {ip}"),
            _ => ip.to_string(),
        },
        (Some(ip), false) => ip.to_string(),
        (None, _) => String::new(),
    };
    if forwarded_for.is_empty() {
        upstream.remove_header("x-forwarded-for");
    } else {
        upstream.insert_header("x-forwarded-for", forwarded_for)?;
    }
    let client_proto = upstream
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| trusted && (*p == "https" || *p == "http"))
        .map(str::to_string);
    upstream.insert_header(
        "x-forwarded-proto",
        client_proto.unwrap_or_else(|| "http".into()),
    )?;
    Ok(())
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
