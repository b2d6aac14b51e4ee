//! Cookies: reading one from a request's `Cookie` headers and writing the refresh-token cookie,
//! with the `cookie` crate doing the syntax.

use cookie::{Cookie, SameSite};

/// The value of cookie `name` in `Cookie` headers; `None` when absent or empty.
pub fn read(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value_trimmed().to_string())
        .filter(|v| !v.is_empty())
}

/// How a refresh-token cookie is set: always `HttpOnly`, scoped to `path`.
#[derive(Debug, Clone)]
pub struct RefreshCookie {
    pub name: &'static str,
    pub path: String,
    pub same_site: SameSite,
    /// `Secure`, unless the public URL is plain http.
    pub secure: bool,
}

impl RefreshCookie {
    /// `Set-Cookie` for `value`, living `max_age` seconds.
    pub fn set(&self, value: &str, max_age: i64) -> String {
        Cookie::build((self.name, value))
            .http_only(true)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(cookie::time::Duration::seconds(max_age.max(0)))
            .secure(self.secure)
            .build()
            .to_string()
    }

    /// `Set-Cookie` that removes the cookie.
    pub fn clear(&self) -> String {
        self.set("", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            "cookie",
            "a=1; authgate_refresh=\"tok\"; b=2".parse().unwrap(),
        );
        headers.append("cookie", "c=3".parse().unwrap());
        assert_eq!(read(&headers, "authgate_refresh").as_deref(), Some("tok"));
        assert_eq!(read(&headers, "c").as_deref(), Some("3"));
        assert_eq!(read(&headers, "d"), None);
        headers.append("cookie", "e=".parse().unwrap());
        assert_eq!(read(&headers, "e"), None);
    }

    #[test]
    fn writes_http_only_scoped_cookies() {
        let cookie = RefreshCookie {
            name: "authgate_refresh",
            path: "/graphql".into(),
            same_site: SameSite::Strict,
            secure: false,
        };
        let set = cookie.set("v", 60);
        for part in [
            "authgate_refresh=v",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/graphql",
            "Max-Age=60",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Secure"), "{set}");
        let secure = RefreshCookie {
            secure: true,
            ..cookie
        };
        assert!(secure.clear().contains("Max-Age=0") && secure.clear().contains("Secure"));
    }
}
