//! The route table: longest path-segment prefix wins.

use std::sync::Arc;

use crate::config::Route;

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table from the configured routes.
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut routes: Vec<Arc<Route>> = routes.iter().cloned().map(Arc::new).collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.as_str().len()));
        RouteTable { routes }
    }

    pub fn all(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route for a canonical path (see [`super::canonical_path`]).
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.position(path).map(|n| &self.routes[n])
    }

    /// Where in [`Self::all`] the route for a canonical path is.
    pub fn position(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.prefix.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMode, RoutePrefix, Upstream};

    fn route(prefix: &str) -> Route {
        Route {
            prefix: RoutePrefix::parse(prefix).unwrap(),
            upstream: Upstream::resolve("127.0.0.1:1").unwrap(),
            auth: AuthMode::Required,
            require_verified: false,
            roles: vec![],
            strip_prefix: false,
            skip_auth_preflight: false,
            require_mfa: false,
        }
    }

    #[test]
    fn longest_segment_prefix_wins() {
        let table = RouteTable::new(&[route("/"), route("/api"), route("/api/admin/")]);
        let find = |p| table.find(p).unwrap().prefix.to_string();
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
        let table = RouteTable::new(&[route("/api")]);
        assert!(table.find("/other").is_none());
    }
}
