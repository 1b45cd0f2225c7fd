//! A real browser for the dashboard's tests: Debian's `chromedriver` started on a free port,
//! driving Debian's `chromium` headless, spoken to over W3C WebDriver (plain HTTP and JSON:
//! no client library). Panics, never skips, when either is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::free_port;
use super::process::Process;

/// The WebDriver element reference key (W3C WebDriver, section 12.2).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver with one Chromium session; both end on `Drop`.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    _driver: Process,
}

/// One element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session (a `width` x `height` window).
    pub async fn start(width: u32, height: u32) -> Browser {
        for tool in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver \
                 (scripts/install-test-deps.sh does)"
            );
        }
        let port = free_port();
        let driver = Process::spawn(
            "chromedriver",
            Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1"),
        )
        .expect("start chromedriver");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{root}/status")).send().await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            },
        }}});
        let session: Value = client
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session JSON");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}\n{}", driver.log()))
            .to_owned();
        Browser {
            base: format!("{root}/session/{id}"),
            client,
            _driver: driver,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("WebDriver command")
            .json()
            .await
            .expect("WebDriver JSON");
        assert!(
            answer["value"].get("error").is_none(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn go(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .expect("a URL")
            .to_owned()
    }

    /// Waits (up to 30 s) until the current URL ends with `suffix`: a click that submits a
    /// form returns before the next page has loaded.
    pub async fn wait_url(&self, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = self.url().await;
            if url.ends_with(suffix) {
                // The new page's document is ready once its URL shows.
                let ready = self
                    .command(
                        reqwest::Method::POST,
                        "/execute/sync",
                        Some(json!({"script": "return document.readyState", "args": []})),
                    )
                    .await;
                if ready == "complete" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, not at ...{suffix}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's HTML as the browser holds it.
    pub async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .expect("the source")
            .to_owned()
    }

    /// The elements a CSS selector matches.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.find_all("css selector", css).await
    }

    /// The elements an XPath expression matches.
    pub async fn all_xpath(&self, xpath: &str) -> Vec<Element> {
        self.find_all("xpath", xpath).await
    }

    async fn find_all(&self, using: &str, value: &str) -> Vec<Element> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": using, "value": value})),
            )
            .await;
        found
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().expect("an element").to_owned()))
            .collect()
    }

    /// The one element a CSS selector matches (panics on none or several).
    pub async fn one(&self, css: &str) -> Element {
        let mut found = self.all(css).await;
        assert_eq!(found.len(), 1, "{css} on {}", self.url().await);
        found.remove(0)
    }

    /// The one element an XPath expression matches.
    pub async fn one_xpath(&self, xpath: &str) -> Element {
        let mut found = self.all_xpath(xpath).await;
        assert_eq!(found.len(), 1, "{xpath} on {}", self.url().await);
        found.remove(0)
    }

    /// Types `text` into an element.
    pub async fn type_into(&self, element: &Element, text: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks an element (a click that submits a form waits for the next page).
    pub async fn click(&self, element: &Element) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await;
    }

    /// An element's visible text.
    pub async fn text(&self, element: &Element) -> String {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/text", element.0),
            None,
        )
        .await
        .as_str()
        .expect("text")
        .to_owned()
    }

    /// An element's attribute.
    pub async fn attribute(&self, element: &Element, name: &str) -> String {
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", element.0),
            None,
        )
        .await
        .as_str()
        .expect("an attribute")
        .to_owned()
    }

    /// Chooses the `<option>` with `value` in the `<select>` matched by `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let option = self.one(&format!("{css} option[value=\"{value}\"]")).await;
        self.click(&option).await;
    }

    /// A cookie of the current page: its value, and its attributes as WebDriver reports them.
    pub async fn cookie(&self, name: &str) -> Value {
        self.command(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Saves a screenshot of the page as `target/test-output/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("a PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
        std::fs::create_dir_all(&dir).expect("the output directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver itself is killed by its `Process`.
        let url = self.base.clone();
        let _ = std::thread::spawn(move || {
            let _ = Command::new("curl")
                .args(["-s", "-X", "DELETE", &url])
                .output();
        })
        .join();
    }
}
