//! Headless Chromium for console tests, driven over CDP with chromiumoxide.
//!
//! [`TestBrowser::launch`] starts Debian's `/usr/bin/chromium` headless with a fresh
//! temporary profile and the flags that keep it off the network (only loopback is used).
//! Certificate errors are ignored, so a test server's self-made certificate loads; the test
//! server's public URL should be `https://localhost:PORT` (WebAuthn accepts `localhost` as an
//! RP id and as a secure origin).
//!
//! [`TestPage`] wraps a tab: navigation, clicks, typing, reading text, waiting for a
//! condition, screenshots (PNG files under `<target dir>/console-screenshots/`) and a CDP
//! virtual WebAuthn authenticator ([`TestPage::add_authenticator`]) whose user verification
//! can be switched off and whose signatures can be made bogus.
//!
//! A machine without Chromium fails the test (never skips it) with a message saying to run
//! `scripts/test`, which installs it.

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddVirtualAuthenticatorParams, AuthenticatorId, AuthenticatorProtocol, AuthenticatorTransport,
    Credential, Ctap2Version, EnableParams, GetCredentialsParams, SetResponseOverrideBitsParams,
    SetUserVerifiedParams, VirtualAuthenticatorOptions,
};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt as _;

pub use chromiumoxide;
pub use chromiumoxide::cdp::browser_protocol::network::CookieSameSite;
pub use chromiumoxide::cdp::browser_protocol::web_authn::AuthenticatorId as VirtualAuthenticatorId;

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long [`TestPage::wait_for`] waits before failing.
pub const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// A browser step that failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Chromium is not installed.
    #[error(
        "Chromium was not found at {CHROMIUM}: run scripts/test (it installs the Debian package \
         `chromium`), or apt-get install -y chromium"
    )]
    NotInstalled,
    /// Launching or talking to Chromium failed.
    #[error("Chromium: {0}")]
    Cdp(String),
    /// A condition did not become true in time.
    #[error("waited {WAIT_LIMIT:?} for {0}")]
    Timeout(String),
    /// Writing a screenshot failed.
    #[error("screenshot {path}: {source}")]
    Screenshot {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn cdp(error: impl std::fmt::Display) -> BrowserError {
    BrowserError::Cdp(error.to_string())
}

/// A headless Chromium with its own temporary profile; closed when dropped.
pub struct TestBrowser {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for TestBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBrowser").finish_non_exhaustive()
    }
}

impl TestBrowser {
    /// Starts Chromium headless.
    pub async fn launch() -> Result<TestBrowser, BrowserError> {
        if !std::path::Path::new(CHROMIUM).exists() {
            return Err(BrowserError::NotInstalled);
        }
        let profile = tempfile::tempdir().map_err(cdp)?;
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .new_headless_mode()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .args([
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
            ])
            .build()
            .map_err(BrowserError::Cdp)?;
        let (browser, mut handler) = Browser::launch(config).await.map_err(cdp)?;
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    // Errors of single CDP messages do not stop the browser; keep polling.
                    continue;
                }
            }
        });
        Ok(TestBrowser {
            browser,
            handler,
            _profile: profile,
        })
    }

    /// Opens a tab at `url`.
    pub async fn open(&self, url: &str) -> Result<TestPage, BrowserError> {
        // A blank tab first: chromiumoxide tells a new tab to ignore certificate errors after
        // creating it, so a first navigation to the test server could still see them.
        let page = self.browser.new_page("about:blank").await.map_err(cdp)?;
        let page = TestPage { page };
        page.goto(url).await?;
        Ok(page)
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

impl Drop for TestBrowser {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

/// One tab.
#[derive(Debug, Clone)]
pub struct TestPage {
    page: Page,
}

/// Options of a virtual authenticator.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatorSetup {
    /// Whether it verifies the user (UV) — on by default.
    pub user_verified: bool,
    /// Whether new credentials are backup eligible (BE) — off by default.
    pub backup_eligible: bool,
}

impl Default for AuthenticatorSetup {
    fn default() -> Self {
        AuthenticatorSetup {
            user_verified: true,
            backup_eligible: false,
        }
    }
}

impl TestPage {
    /// The chromiumoxide page, for what this wrapper does not offer.
    pub fn inner(&self) -> &Page {
        &self.page
    }

    /// Navigates to `url` and waits for the load.
    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        self.page.goto(url).await.map_err(cdp)?;
        self.page.wait_for_navigation().await.map_err(cdp)?;
        Ok(())
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String, BrowserError> {
        Ok(self.page.url().await.map_err(cdp)?.unwrap_or_default())
    }

    /// Evaluates a JavaScript expression (awaiting a promise) and returns its JSON value.
    pub async fn eval(&self, expression: &str) -> Result<serde_json::Value, BrowserError> {
        let result = self.page.evaluate(expression).await.map_err(cdp)?;
        Ok(result.value().cloned().unwrap_or(serde_json::Value::Null))
    }

    /// The text of the first element matching `selector` (empty when none).
    pub async fn text(&self, selector: &str) -> Result<String, BrowserError> {
        let selector = serde_json::to_string(selector).map_err(cdp)?;
        let value = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector}); return e ? e.innerText : ''; }})()"
            ))
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Whether an element matching `selector` exists and is visible.
    pub async fn is_visible(&self, selector: &str) -> Result<bool, BrowserError> {
        let selector = serde_json::to_string(selector).map_err(cdp)?;
        let value = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector}); \
                 return !!e && !e.hidden && e.offsetParent !== null; }})()"
            ))
            .await?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) -> Result<(), BrowserError> {
        let element = self.page.find_element(selector).await.map_err(cdp)?;
        element.click().await.map_err(cdp)?;
        Ok(())
    }

    /// Types `text` into the element matching `selector` (after clicking it).
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<(), BrowserError> {
        let element = self.page.find_element(selector).await.map_err(cdp)?;
        element.click().await.map_err(cdp)?;
        element.type_str(text).await.map_err(cdp)?;
        Ok(())
    }

    /// Polls the JavaScript condition `expression` until it is true (at most [`WAIT_LIMIT`]).
    pub async fn wait_for(&self, expression: &str) -> Result<(), BrowserError> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            // Errors while a navigation replaces the document are expected: poll again.
            if let Ok(value) = self.eval(expression).await
                && value.as_bool() == Some(true)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BrowserError::Timeout(expression.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's path (and query) is `path`.
    pub async fn wait_for_path(&self, path: &str) -> Result<(), BrowserError> {
        let path = serde_json::to_string(path).map_err(cdp)?;
        self.wait_for(&format!(
            "document.readyState === 'complete' && (location.pathname + location.search) === {path}"
        ))
        .await
    }

    /// Saves a full-page PNG as `<target dir>/console-screenshots/NAME.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf, BrowserError> {
        let dir = crate::target_dir().join("console-screenshots");
        std::fs::create_dir_all(&dir).map_err(|source| BrowserError::Screenshot {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{name}.png"));
        let bytes = self
            .page
            .screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .full_page(true)
                    .build(),
            )
            .await
            .map_err(cdp)?;
        std::fs::write(&path, bytes).map_err(|source| BrowserError::Screenshot {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Gives this tab a CTAP2 virtual authenticator (internal transport, resident keys, user
    /// verification) that answers prompts by itself.
    pub async fn add_authenticator(
        &self,
        setup: AuthenticatorSetup,
    ) -> Result<AuthenticatorId, BrowserError> {
        self.page
            .execute(EnableParams::builder().enable_ui(false).build())
            .await
            .map_err(cdp)?;
        let options = VirtualAuthenticatorOptions::builder()
            .protocol(AuthenticatorProtocol::Ctap2)
            .ctap2_version(Ctap2Version::Ctap21)
            .transport(AuthenticatorTransport::Internal)
            .has_resident_key(true)
            .has_user_verification(true)
            .is_user_verified(setup.user_verified)
            .automatic_presence_simulation(true)
            .default_backup_eligibility(setup.backup_eligible)
            .build()
            .map_err(BrowserError::Cdp)?;
        let added = self
            .page
            .execute(AddVirtualAuthenticatorParams::new(options))
            .await
            .map_err(cdp)?;
        Ok(added.result.authenticator_id)
    }

    /// Sets whether the authenticator verifies the user (UV) from now on.
    pub async fn set_user_verified(
        &self,
        authenticator: &AuthenticatorId,
        verified: bool,
    ) -> Result<(), BrowserError> {
        self.page
            .execute(SetUserVerifiedParams::new(authenticator.clone(), verified))
            .await
            .map_err(cdp)?;
        Ok(())
    }

    /// Makes the authenticator's next answers carry a bogus signature, or UV=false even though
    /// it claims to have verified the user (`bad_uv`), or neither.
    pub async fn override_responses(
        &self,
        authenticator: &AuthenticatorId,
        bogus_signature: bool,
        bad_uv: bool,
    ) -> Result<(), BrowserError> {
        let params = SetResponseOverrideBitsParams::builder()
            .authenticator_id(authenticator.clone())
            .is_bogus_signature(bogus_signature)
            .is_bad_uv(bad_uv)
            .is_bad_up(false)
            .build()
            .map_err(BrowserError::Cdp)?;
        self.page.execute(params).await.map_err(cdp)?;
        Ok(())
    }

    /// The credentials the authenticator holds.
    pub async fn credentials(
        &self,
        authenticator: &AuthenticatorId,
    ) -> Result<Vec<Credential>, BrowserError> {
        let got = self
            .page
            .execute(GetCredentialsParams::new(authenticator.clone()))
            .await
            .map_err(cdp)?;
        Ok(got.result.credentials.clone())
    }
}
