//! The HTTP requests a verifier makes: `GET` of the gateway's JWKS or revocation list, over Pingora's own
//! client (plain or rustls, no second HTTP stack), bounded in time and size.

use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::config::HttpUrl;

/// Fetches `url`; the body of a 200 answer, or why not. Never waits longer than `timeout`
/// and never reads more than `limit` bytes.
pub async fn get(
    connector: &Connector,
    url: &HttpUrl,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, String> {
    tokio::time::timeout(timeout, fetch(connector, url, limit))
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs_f32()))?
}

async fn fetch(connector: &Connector, url: &HttpUrl, limit: usize) -> Result<Vec<u8>, String> {
    let addr = tokio::net::lookup_host((url.host(), url.port()))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", url.host()))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.host()))?;
    let peer = HttpPeer::new(addr, url.is_https(), url.host().to_string());
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut request =
        RequestHeader::build("GET", url.target().as_bytes(), None).map_err(|e| e.to_string())?;
    for (name, value) in [
        ("host", url.host_header()),
        ("accept", "application/json".to_string()),
        (
            "user-agent",
            concat!("authgate/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ] {
        request
            .insert_header(name, value)
            .map_err(|e| e.to_string())?;
    }
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    session
        .read_response_header()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let status = session
        .response_header()
        .map_or(0, |header| header.status.as_u16());
    if status != 200 {
        return Err(format!("answered HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
