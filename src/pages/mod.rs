//! authgate's own HTML pages (link results, password forms) and the links that lead to them.
//! Small, no JavaScript, autoescaped templates.

pub mod links;

use std::sync::OnceLock;

const LAYOUT: &str = include_str!("layout.html");
const RESULT: &str = include_str!("result.html");
const PASSWORD_FORM: &str = include_str!("password_form.html");

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.add_template("layout.html", LAYOUT)
            .expect("built-in template parses");
        env.add_template("result.html", RESULT)
            .expect("built-in template parses");
        env.add_template("password_form.html", PASSWORD_FORM)
            .expect("built-in template parses");
        env
    })
}

/// A one-message result page. `ok` chooses the tone.
pub fn result(title: &str, message: &str, ok: bool) -> String {
    env()
        .get_template("result.html")
        .and_then(|t| t.render(minijinja::context! { title, message, ok }))
        .unwrap_or_else(|_| format!("<!doctype html><title>authgate</title><p>{}</p>", ok))
}

/// The form of `/password/reset` and `/password/set`, with any errors of the last attempt.
pub fn password_form(
    title: &str,
    action: &str,
    token: &str,
    errors: &[String],
    min_length: usize,
) -> String {
    let button = if action.ends_with("/set") {
        "Set password"
    } else {
        "Change password"
    };
    env()
        .get_template("password_form.html")
        .and_then(|t| {
            t.render(minijinja::context! { title, action, token, errors, min_length, button })
        })
        .unwrap_or_else(|_| "<!doctype html><title>authgate</title><p>error</p>".to_string())
}

/// Parses an `application/x-www-form-urlencoded` body or query string.
pub fn form_fields(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn forms_parse() {
        let fields = super::form_fields(b"token=a%2Bb.c&new_password1=p+q%26r&x");
        assert_eq!(fields[0], ("token".into(), "a+b.c".into()));
        assert_eq!(fields[1], ("new_password1".into(), "p q&r".into()));
        assert_eq!(fields[2], ("x".into(), "".into()));
        let page = super::password_form("T", "/password/reset", "t\"k", &["bad <x>".into()], 8);
        assert!(
            page.contains("value=\"t&quot;k\"") && page.contains("bad &lt;x&gt;"),
            "{page}"
        );
    }

    #[test]
    fn pages_escape() {
        let page = super::result("<b>", "a & b", true);
        assert!(page.contains("&lt;b&gt;") && page.contains("a &amp; b"));
    }
}
