//! `keybridge.json`, from the console's "Download desktop client" zip.

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// The format version this client reads.
pub const CONFIG_FORMAT_VERSION: u32 = 1;

/// What the desktop client needs to join: the server, its TLS pin and an install token.
#[derive(Clone, Deserialize)]
pub struct DesktopConfig {
    /// Format version (1).
    pub version: u32,
    /// The server's public URL.
    pub server_url: String,
    /// The integration the workstation joins.
    pub integration_id: String,
    /// `sha256/<base64>` of the server's public key.
    pub tls_pin: String,
    /// The install token (`kbi_…`), a secret.
    pub install_token: String,
    /// Shown when something goes wrong.
    #[serde(default)]
    pub support_email: Option<String>,
}

impl std::fmt::Debug for DesktopConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopConfig")
            .field("server_url", &self.server_url)
            .field("integration_id", &self.integration_id)
            .field("tls_pin", &self.tls_pin)
            .field("install_token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl DesktopConfig {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<DesktopConfig, Error> {
        let text = std::fs::read(path).map_err(|e| Error::Config {
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        DesktopConfig::parse(&text)
    }

    /// Reads and checks the JSON.
    pub fn parse(json: &[u8]) -> Result<DesktopConfig, Error> {
        let config: DesktopConfig = serde_json::from_slice(json).map_err(|e| Error::Config {
            reason: format!("it is not the expected JSON ({e})"),
        })?;
        if config.version != CONFIG_FORMAT_VERSION {
            return Err(Error::Config {
                reason: format!(
                    "format version {} is not {CONFIG_FORMAT_VERSION}, the one this client reads; update the client",
                    config.version
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_download_and_refuses_other_versions() {
        let json = br#"{"version":1,"keybridge_version":"0.1.0","server_url":"https://kb.example.com/",
            "integration_id":"ContosoPasskeys","integration_name":"Contoso","tls_pin":"sha256/AAAA",
            "install_token":"kbi_secret","install_token_expires_at":"2026-12-25T00:00:00Z","support_email":null}"#;
        let config = DesktopConfig::parse(json).expect("parses");
        assert_eq!(config.install_token, "kbi_secret");
        assert!(!format!("{config:?}").contains("kbi_secret"));
        let newer = String::from_utf8_lossy(json).replace("\"version\":1", "\"version\":2");
        let error = DesktopConfig::parse(newer.as_bytes()).expect_err("version 2");
        assert!(error.to_string().contains("format version 2"), "{error}");
        assert!(DesktopConfig::parse(b"{}").is_err());
    }
}
