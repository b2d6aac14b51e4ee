//! authgate's own HTML pages (activation result, and later password forms). Small, no
//! JavaScript, autoescaped templates.

use std::sync::OnceLock;

const RESULT: &str = include_str!("result.html");

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.add_template("result.html", RESULT)
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

#[cfg(test)]
mod tests {
    #[test]
    fn pages_escape() {
        let page = super::result("<b>", "a & b", true);
        assert!(page.contains("&lt;b&gt;") && page.contains("a &amp; b"));
    }
}
