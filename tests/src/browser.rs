//! [`Browser`]: headless Chromium from Debian's `chromium` package, driven
//! over WebDriver by the system's `chromedriver` (package
//! `chromium-driver`), each started on a free port for one test and
//! stopped by its process id. Never a downloaded browser or driver.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::fresh_dir;
use crate::redis_server::free_port;

/// The browser binary: `$CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// The driver binary: `$CHROMEDRIVER`, else Debian's.
fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned())
}

/// A `chromedriver` process and one headless browser session on it.
pub struct Browser {
    driver: Child,
    /// The WebDriver session.
    pub client: Client,
    profile: PathBuf,
}

impl Browser {
    /// Starts the driver and a headless browser with a fresh profile.
    pub async fn start(name: &str) -> Self {
        for (what, path, package) in [
            ("chromium", chromium(), "chromium"),
            ("chromedriver", chromedriver(), "chromium-driver"),
        ] {
            assert!(
                Path::new(&path).exists(),
                "no {what} at `{path}`: install Debian's `{package}` package (`.ci/run` does)"
            );
        }
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", chromedriver()));
        let profile = fresh_dir(&format!("chromium-{name}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": chromium(),
                // As root, in a sandbox of its own and with no network
                // beyond this machine: no sandbox of Chromium's, and none
                // of the background connections a closed network refuses.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "no browser session from chromedriver on port {port}: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self {
            driver,
            client,
            profile,
        }
    }

    /// Waits up to `within` for an element matching the CSS `selector`
    /// whose text is `text` (or any text, with `None`); fails naming it
    /// and showing the page's text.
    pub async fn wait_for(&self, selector: &str, text: Option<&str>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(found) = self.client.find_all(Locator::Css(selector)).await {
                for element in found {
                    let shown = element.text().await.unwrap_or_default();
                    if text.is_none_or(|t| shown.trim() == t) {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                let body = match self.client.find(Locator::Css("body")).await {
                    Ok(body) => body.text().await.unwrap_or_default(),
                    Err(e) => format!("(no body: {e})"),
                };
                panic!(
                    "no `{selector}` with text {text:?} within {within:?}; the page shows:\n{body}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        let element = self
            .client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}`: {e}"));
        element.text().await.unwrap_or_default()
    }

    /// Types `text` into the field matching `selector`, after clearing it.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}`: {e}"));
        field.clear().await.expect("clearing the field");
        field.send_keys(text).await.expect("typing");
    }

    /// Waits up to `within` until no element matches `selector`.
    pub async fn wait_gone(&self, selector: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .map(|found| found.is_empty())
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "`{selector}` still there after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the first element matching `selector` is shown.
    pub async fn is_shown(&self, selector: &str) -> bool {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}`: {e}"))
            .is_displayed()
            .await
            .expect("asking whether it is shown")
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no `{selector}`: {e}"))
            .click()
            .await
            .expect("clicking");
    }

    /// Saves a screenshot of the page at `path` (PNG).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's folder");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the session and stops the driver and the browser.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed half-way still stops its driver (which takes
        // its browser with it).
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
