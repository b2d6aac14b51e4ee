//! A small W3C WebDriver client for Debian's headless Chromium (through `chromedriver`), enough
//! to load a page, fill fields, click and read. Without Chromium installed the browser test is
//! skipped with a printed reason, except under CI (`CI=true`), where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    base: String,
    session: String,
    driver: Child,
    /// chromedriver's output and the browser profile.
    _work: tempfile::TempDir,
    http: reqwest::Client,
}

/// The port of `ChromeDriver was started successfully on port N.` in chromedriver's output.
fn started_on(log: &str) -> Option<u16> {
    log.lines()
        .filter(|line| line.contains("started successfully"))
        .find_map(|line| {
            line.trim_end()
                .trim_end_matches('.')
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
}

fn installed(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (skip) outside CI when
    /// they are not installed.
    pub async fn start() -> Option<Browser> {
        if !installed("/usr/bin/chromium") || !installed("/usr/bin/chromedriver") {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "chromium and chromium-driver are not installed; CI must run the browser test"
                );
            }
            eprintln!(
                "SKIPPED: chromium/chromedriver are not installed, the browser test did not run"
            );
            return None;
        }
        // chromedriver picks a free port itself and names it on stdout.
        let work = tempfile::tempdir().unwrap();
        let log_path = work.path().join("chromedriver.log");
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg("--port=0")
            .stdout(std::fs::File::create(&log_path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(port) = started_on(&log) {
                break port;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver named no port in 20s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let http = super::client();
        let base = format!("http://127.0.0.1:{port}");
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(resp) => resp
                    .json::<Value>()
                    .await
                    .ok()
                    .is_some_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = work.path().join("profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=800,700",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let reply: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {reply}"))
            .to_string();
        Some(Browser {
            base,
            session,
            driver,
            _work: work,
            http,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let reply: Value = req.send().await.unwrap().json().await.unwrap();
        if reply["value"]["error"].is_string() {
            return Err(reply["value"].clone());
        }
        Ok(reply["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The element matching a CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let reply: Value = self
                .http
                .post(url)
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = reply["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let value = self
            .call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// The text of `css` once it reads `expected` (a click's navigation may still be under
    /// way: the old page's element, or a stale one, is looked at again), or as it is after
    /// 10 s.
    pub async fn text_once(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.find(css).await;
            let path = format!("/element/{id}/text");
            let text = match self.try_call(reqwest::Method::GET, &path, None).await {
                Ok(value) => value.as_str().unwrap_or_default().to_string(),
                Err(error) if error["error"] == "stale element reference" => String::new(),
                Err(error) => panic!("WebDriver {path}: {error}"),
            };
            if text == expected || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the current page.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .unwrap()
    }

    pub async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
