//! The one HTTP request a verifier makes: `GET` of the gateway's JWKS, over Pingora's own
//! client (plain or rustls, no second HTTP stack), bounded in time and size.

use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

/// A parsed `jwt.jwks_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, as sent.
    target: String,
}

impl JwksUrl {
    pub fn parse(text: &str) -> Result<JwksUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not a URL ({e})"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{text}` must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{text}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "`{text}`: credentials in the URL are not supported"
            ));
        }
        let host = authority.host().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok(JwksUrl {
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host,
            target,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

impl std::fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.target)
    }
}

/// Fetches `url`; the body of a 200 answer, or why not. Never waits longer than `timeout`
/// and never reads more than `limit` bytes.
pub async fn get(
    connector: &Connector,
    url: &JwksUrl,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, String> {
    tokio::time::timeout(timeout, fetch(connector, url, limit))
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs_f32()))?
}

async fn fetch(connector: &Connector, url: &JwksUrl, limit: usize) -> Result<Vec<u8>, String> {
    let addr = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.host))?;
    let peer = HttpPeer::new(addr, url.tls, url.host.clone());
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut request =
        RequestHeader::build("GET", url.target.as_bytes(), None).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_refuse_what_we_cannot_fetch() {
        let url = JwksUrl::parse("http://gateway.auth.svc:8080/.well-known/jwks.json").unwrap();
        assert_eq!(url.host, "gateway.auth.svc");
        assert_eq!(url.port, 8080);
        assert_eq!(url.target, "/.well-known/jwks.json");
        assert_eq!(url.host_header(), "gateway.auth.svc:8080");
        let url = JwksUrl::parse("https://auth.example.com/jwks?v=1").unwrap();
        assert_eq!((url.tls, url.port), (true, 443));
        assert_eq!(url.to_string(), "https://auth.example.com/jwks?v=1");
        let url = JwksUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!((url.host.as_str(), url.target.as_str()), ("::1", "/"));
        assert_eq!(url.host_header(), "[::1]:9000");

        for (bad, says) in [
            ("gateway/jwks", "not a URL"),
            ("ftp://gateway/jwks", "http:// or https://"),
            ("http://user:pw@gateway/jwks", "credentials"),
            ("http:// bad", "not a URL"),
            ("", "not a URL"),
        ] {
            let err = JwksUrl::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
