//! The route table: longest path-segment prefix wins.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::config::{self, AuthMode};

#[derive(Debug)]
pub struct Route {
    /// Normalized prefix: no trailing slash except the root `/`.
    pub prefix: String,
    pub upstream: SocketAddr,
    pub auth: AuthMode,
    pub require_verified: bool,
    pub roles: Vec<String>,
    pub strip_prefix: bool,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table from validated configuration.
    pub fn new(routes: &[config::Route]) -> Result<RouteTable, String> {
        let mut compiled = Vec::with_capacity(routes.len());
        for (i, r) in routes.iter().enumerate() {
            compiled.push(Arc::new(Route {
                prefix: normalize_prefix(&r.prefix),
                upstream: resolve_upstream(&r.upstream)
                    .map_err(|e| format!("config key `routes[{i}].upstream`: {e}"))?,
                auth: r.auth,
                require_verified: r.require_verified,
                roles: r.roles.clone(),
                strip_prefix: r.strip_prefix,
            }));
        }
        compiled.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(RouteTable { routes: compiled })
    }

    pub fn all(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route for a canonical path (see [`super::canonical_path`]).
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| matches_prefix(&r.prefix, path))
    }
}

pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, never `/apix`.
pub fn matches_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path the upstream sees when the route strips its prefix: `/api/users` → `/users`.
pub fn strip(prefix: &str, path: &str) -> String {
    if prefix == "/" {
        return path.to_string();
    }
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    }
}

/// `host:port` resolved once at start-up.
pub fn resolve_upstream(upstream: &str) -> Result<SocketAddr, String> {
    if upstream.contains("://") {
        return Err(format!("`{upstream}`: write host:port, without a scheme"));
    }
    upstream
        .to_socket_addrs()
        .map_err(|e| format!("`{upstream}` is not a reachable host:port ({e})"))?
        .next()
        .ok_or_else(|| format!("`{upstream}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str) -> config::Route {
        config::Route {
            prefix: prefix.into(),
            upstream: "127.0.0.1:1".into(),
            auth: AuthMode::Required,
            require_verified: false,
            roles: vec![],
            strip_prefix: false,
        }
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let table = RouteTable::new(&[route("/"), route("/api"), route("/api/admin/")]).unwrap();
        let find = |p| table.find(p).unwrap().prefix.clone();
        assert_eq!(find("/"), "/");
        assert_eq!(find("/api"), "/api");
        assert_eq!(find("/api/"), "/api");
        assert_eq!(find("/apix"), "/");
        assert_eq!(find("/api/adminx"), "/api");
        assert_eq!(find("/api/admin"), "/api/admin");
        assert_eq!(find("/api/admin/users"), "/api/admin");
    }

    #[test]
    fn no_root_route_means_no_match() {
        let table = RouteTable::new(&[route("/api")]).unwrap();
        assert!(table.find("/other").is_none());
    }

    #[test]
    fn strip_prefix_keeps_a_path() {
        assert_eq!(strip("/api", "/api/users"), "/users");
        assert_eq!(strip("/api", "/api"), "/");
        assert_eq!(strip("/", "/x"), "/x");
    }

    #[test]
    fn upstreams_must_be_host_port() {
        assert!(resolve_upstream("127.0.0.1:3000").is_ok());
        assert!(resolve_upstream("localhost:3000").is_ok());
        assert!(resolve_upstream("http://127.0.0.1:3000").is_err());
        assert!(resolve_upstream("127.0.0.1").is_err());
    }
}
