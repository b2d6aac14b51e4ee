//! Small value types of the configuration, each parsed once with one error text: human
//! durations (`15m`, `7d`), rates (`10/1m`), absolute http(s) URLs, route prefixes and upstream
//! addresses.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `30s`, `15m`, `7d`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole units read best: 900s is written `15m`, 604800s `7d`.
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() != 0 {
            return write!(f, "{}", humantime::format_duration(self.0));
        }
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
            if secs != 0 && secs % size == 0 {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(Duration)
            .map_err(|e| format!("`{text}` is not a duration like 30s, 15m, 7d ({e})"))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A rate limit written `N/period`, e.g. `10/1m`: at most N attempts per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn new(count: u32, period_secs: u64) -> Self {
        Rate {
            count,
            period: Duration::secs(period_secs),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}` is not a rate like 10/1m (attempts/period)");
        let (count, period) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period: Duration = period.parse().map_err(|_| bad())?;
        if count == 0 || period.is_zero() {
            return Err(format!("`{text}`: count and period must be above 0"));
        }
        Ok(Rate { count, period })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// An absolute `http://` or `https://` URL without credentials: the public URL, link bases,
/// the JWKS URL. Kept as written (minus a trailing slash) and as its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    text: String,
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, `/` when there is none.
    target: String,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
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
        Ok(HttpUrl {
            text: text.trim_end_matches('/').to_string(),
            tls,
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host,
            target,
        })
    }

    /// As written, without a trailing slash: a base that paths are appended to.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_https(&self) -> bool {
        self.tls
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path and query, as a request target.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `host[:port]` as a `Host` header says it (the default port left out).
    pub fn host_header(&self) -> String {
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

    /// `scheme://host[:port]`, default ports left out: what browsers send as `Origin`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host_header().to_ascii_lowercase())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A browser origin, `scheme://host[:port]` (http or https, no path, no credentials, no
/// wildcard), kept normalized as browsers send it in `Origin`: lower case, default port left
/// out. Two origins are the same exactly when their texts are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    pub fn parse(text: &str) -> Result<Origin, String> {
        if text.contains('*') {
            return Err(format!(
                "`{text}`: wildcards are not allowed; list each origin"
            ));
        }
        let url = HttpUrl::parse(text)?;
        if url.target() != "/" {
            return Err(format!(
                "`{text}` is not an origin: write scheme://host[:port], without a path"
            ));
        }
        Ok(Origin(url.origin()))
    }

    /// The origin of a URL (its scheme, host and port).
    pub fn of(url: &HttpUrl) -> Origin {
        Origin(url.origin())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A route prefix, normalized: starts with `/`, no trailing slash except the root `/`. It
/// matches whole path segments: `/api` matches `/api` and `/api/x`, never `/apix`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePrefix(String);

impl RoutePrefix {
    pub fn parse(text: &str) -> Result<RoutePrefix, String> {
        if !text.starts_with('/') {
            return Err("must start with `/`".into());
        }
        if text.contains(['?', '#', '%']) || text.contains("//") {
            return Err("must be a plain path (no `?`, `#`, `%` or `//`)".into());
        }
        let trimmed = text.trim_end_matches('/');
        Ok(RoutePrefix(if trimmed.is_empty() {
            "/".to_string()
        } else {
            trimmed.to_string()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Whether a canonical path lies under this prefix.
    pub fn matches(&self, path: &str) -> bool {
        if self.is_root() {
            return true;
        }
        match path.strip_prefix(self.0.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether `other` is this prefix or lies under it.
    pub fn contains(&self, other: &RoutePrefix) -> bool {
        self.matches(&other.0)
    }

    /// The path without this prefix: `/api/users` → `/users`, `/api` → `/`.
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        if self.is_root() {
            return path;
        }
        let rest = path.strip_prefix(self.0.as_str()).unwrap_or(path);
        if rest.is_empty() {
            "/"
        } else {
            rest
        }
    }
}

impl fmt::Display for RoutePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain-HTTP upstream `host:port`, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub text: String,
    pub addr: SocketAddr,
}

impl Upstream {
    pub fn resolve(text: &str) -> Result<Upstream, String> {
        if text.contains("://") {
            return Err(format!("`{text}`: write host:port, without a scheme"));
        }
        let addr = text
            .to_socket_addrs()
            .map_err(|e| format!("`{text}` is not a reachable host:port ({e})"))?
            .next()
            .ok_or_else(|| format!("`{text}` resolves to no address"))?;
        Ok(Upstream {
            text: text.to_string(),
            addr,
        })
    }
}

/// `url` with the port `port` when it names port 0 (`http://127.0.0.1:0/...`): a public URL
/// written for a listener on port 0. `None` for any other URL, which stays as written.
pub fn with_port(url: &str, port: u16) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.strip_suffix(":0")?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}:{port}{tail}"))
}

/// `redis://user:secret@host/0` becomes `redis://user:<redacted>@host/0`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map(|(user, _)| user);
    match user {
        Some(user) => format!("{}{user}:<redacted>{}", &url[..scheme_end + 3], &rest[at..]),
        // `redis://secret@host` puts the password where the user would be.
        None => format!("{}<redacted>{}", &url[..scheme_end + 3], &rest[at..]),
    }
}

/// A PostgreSQL URL as it may be shown: the password in the user info, and a `password`
/// parameter, replaced by `<redacted>`; host, port, user, database and the other parameters
/// stay readable. Unlike Redis, a lone user info (`postgres://app@db`) is the user name.
pub fn redact_database_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let rest = &head[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let mut out = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:<redacted>{}",
                &head[..scheme_end + 3],
                &rest[at..]
            ),
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{key}=<redacted>")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_lose_only_their_passwords() {
        assert_eq!(redact_database_url(""), "");
        assert_eq!(
            redact_database_url("postgres://app:pw@db:5432/auth"),
            "postgres://app:<redacted>@db:5432/auth"
        );
        assert_eq!(
            redact_database_url("postgres://app@db/auth"),
            "postgres://app@db/auth"
        );
        assert_eq!(
            redact_database_url("postgresql://app:p%40ss@db/auth?sslmode=verify-full&password=x"),
            "postgresql://app:<redacted>@db/auth?sslmode=verify-full&password=<redacted>"
        );
        assert_eq!(
            redact_database_url("postgres://%2Fvar%2Frun/auth?user=a&password=b"),
            "postgres://%2Fvar%2Frun/auth?user=a&password=<redacted>"
        );
    }

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [("15m", 900), ("7d", 604800), ("30s", 30), ("1h 30m", 5400)] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_std().as_secs(), secs);
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
        assert!("15x".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }

    #[test]
    fn rates_parse() {
        let r: Rate = "10/1m".parse().unwrap();
        assert_eq!((r.count, r.period.as_std().as_secs()), (10, 60));
        for bad in ["10", "x/1m", "0/1m", "10/0s", "10/forever"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(redact_url_password(""), "");
        assert_eq!(redact_url_password("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url_password("redis://u:p@h:6379/0"),
            "redis://u:<redacted>@h:6379/0"
        );
        assert_eq!(redact_url_password("redis://:p@h"), "redis://:<redacted>@h");
        assert_eq!(redact_url_password("redis://p@h"), "redis://<redacted>@h");
    }

    #[test]
    fn http_urls_parse_with_defaults_and_refuse_what_we_cannot_fetch() {
        let url = HttpUrl::parse("http://gateway.auth.svc:8080/.well-known/jwks.json").unwrap();
        assert_eq!(url.host(), "gateway.auth.svc");
        assert_eq!(url.port(), 8080);
        assert_eq!(url.target(), "/.well-known/jwks.json");
        assert_eq!(url.host_header(), "gateway.auth.svc:8080");
        assert_eq!(url.origin(), "http://gateway.auth.svc:8080");
        let url = HttpUrl::parse("https://Auth.example.com:443/jwks?v=1").unwrap();
        assert_eq!((url.is_https(), url.port()), (true, 443));
        assert_eq!(url.origin(), "https://auth.example.com");
        let url = HttpUrl::parse("http://[::1]:9000/").unwrap();
        assert_eq!((url.host(), url.target()), ("::1", "/"));
        assert_eq!(url.host_header(), "[::1]:9000");
        assert_eq!(url.as_str(), "http://[::1]:9000");
        for (bad, says) in [
            ("gateway/jwks", "not a URL"),
            ("ftp://gateway/jwks", "http:// or https://"),
            ("http://user:pw@gateway/jwks", "credentials"),
            ("http:// bad", "not a URL"),
            ("", "not a URL"),
        ] {
            let err = HttpUrl::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn origins_are_normalized_and_strict() {
        let origin = Origin::parse("HTTPS://App.Example.com:443/").unwrap();
        assert_eq!(origin.as_str(), "https://app.example.com");
        assert_eq!(
            Origin::parse("http://localhost:3000").unwrap().as_str(),
            "http://localhost:3000"
        );
        for bad in [
            "https://*.example.com",
            "*",
            "app.example.com",
            "https://app.example.com/path",
            "https://u:p@app.example.com",
            "ftp://app.example.com",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let api = RoutePrefix::parse("/api/").unwrap();
        assert_eq!(api.as_str(), "/api");
        assert!(api.matches("/api") && api.matches("/api/") && api.matches("/api/x"));
        assert!(!api.matches("/apix") && !api.matches("/"));
        assert!(RoutePrefix::parse("/").unwrap().matches("/anything"));
        assert_eq!(api.strip("/api/users"), "/users");
        assert_eq!(api.strip("/api"), "/");
        assert!(api.contains(&RoutePrefix::parse("/api/admin").unwrap()));
        assert!(!api.contains(&RoutePrefix::parse("/apix").unwrap()));
        for bad in ["api", "/a?b", "/a#b", "/a%2f", "/a//b"] {
            assert!(RoutePrefix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstreams_must_be_host_port() {
        assert!(Upstream::resolve("127.0.0.1:3000").is_ok());
        assert!(Upstream::resolve("localhost:3000").is_ok());
        assert!(Upstream::resolve("http://127.0.0.1:3000").is_err());
        assert!(Upstream::resolve("127.0.0.1").is_err());
    }

    #[test]
    fn a_public_url_on_port_0_takes_the_bound_port() {
        for (url, expected) in [
            ("http://127.0.0.1:0", Some("http://127.0.0.1:4242")),
            (
                "https://[::1]:0/auth?x=1",
                Some("https://[::1]:4242/auth?x=1"),
            ),
            ("http://localhost:0#top", Some("http://localhost:4242#top")),
            ("http://127.0.0.1:8080", None),
            ("http://127.0.0.1:10", None),
            ("http://127.0.0.1", None),
            ("http://user:0@host", None),
            ("http://:0", None),
            ("no scheme:0", None),
        ] {
            assert_eq!(with_port(url, 4242).as_deref(), expected, "{url}");
        }
    }
}
