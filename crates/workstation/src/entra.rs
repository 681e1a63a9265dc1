//! Entra's FIDO2 sign-in as the workstation sees it. Windows performs this ceremony itself
//! against `login.microsoft.com`; it has no public API, so the client speaks entra-sim's
//! stand-in (`POST {authority}/{tenant}/fido/signin/start` and `/finish`, docs/entra-sim.md).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;

/// How the ceremony names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMode {
    /// Windows sign-in: the user tapped an account, Entra lists that user's credentials
    /// (`allowCredentials`).
    Windows,
    /// A browser with a security key: a usernameless (discoverable credential) request; the
    /// phone picks the credential of the account the request names.
    Web,
}

/// The result of a successful sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The token's subject (`sub`): the user's object id.
    pub subject: String,
    /// The user signed in.
    pub upn: String,
    /// The credential's signature counter Entra now holds.
    pub sign_count: u64,
}

/// A client for Entra's sign-in ceremony.
#[derive(Debug, Clone)]
pub struct EntraSignIn {
    http: reqwest::Client,
    authority: String,
}

impl EntraSignIn {
    /// A client for `authority` (e.g. `https://login.microsoftonline.com`, or entra-sim's
    /// `base_url`), trusting the system roots plus `ca_pem` when given.
    pub fn new(authority: &str, ca_pem: Option<&[u8]>) -> Result<EntraSignIn, Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(15));
        if let Some(pem) = ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Config {
                    reason: format!("the Entra CA file is not PEM: {e}"),
                })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| Error::Config {
            reason: format!("cannot set up HTTPS for Entra: {e}"),
        })?;
        Ok(EntraSignIn {
            http,
            authority: authority.trim_end_matches('/').to_owned(),
        })
    }

    async fn post(&self, url: String, body: Value) -> Result<Value, Error> {
        let response =
            self.http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| Error::EntraUnreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| Error::EntraUnreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let value: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let field = |name: &str| {
                value
                    .get(name)
                    .and_then(Value::as_str)
                    .map(|s| keybridge_device_protocol::display_safe(s, 300))
            };
            let codes = value
                .get("error_codes")
                .and_then(Value::as_array)
                .and_then(|c| c.first())
                .map(|c| format!(" AADSTS{c}"))
                .unwrap_or_default();
            return Err(Error::Entra {
                status: status.as_u16(),
                code: format!(
                    "{}{codes}",
                    field("error").unwrap_or_else(|| "error".to_owned())
                ),
                message: field("error_description").unwrap_or_else(|| format!("HTTP {status}")),
            });
        }
        Ok(value)
    }

    /// Starts a sign-in: Entra's request options (challenge, rpId, allowCredentials,
    /// userVerification), as a bare options object.
    pub async fn start(&self, tenant: &Uuid, upn: &str, mode: SignInMode) -> Result<Value, Error> {
        let body = match mode {
            SignInMode::Windows => json!({"user": upn}),
            SignInMode::Web => json!({}),
        };
        let answer = self
            .post(
                format!("{}/{tenant}/fido/signin/start", self.authority),
                body,
            )
            .await?;
        let mut options = serde_json::Map::new();
        for key in [
            "challenge",
            "rpId",
            "allowCredentials",
            "userVerification",
            "timeout",
        ] {
            if let Some(value) = answer.get(key) {
                options.insert(key.to_owned(), value.clone());
            }
        }
        if !options.contains_key("challenge") {
            return Err(Error::Protocol("Entra gave no challenge".into()));
        }
        Ok(Value::Object(options))
    }

    /// Presents the phone's assertion; returns who is signed in.
    pub async fn finish(&self, tenant: &Uuid, assertion: &Value) -> Result<SignedIn, Error> {
        let answer = self
            .post(
                format!("{}/{tenant}/fido/signin/finish", self.authority),
                json!({"credential": assertion}),
            )
            .await?;
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("Entra's answer has no token".into()))?;
        // The token came straight from Entra over TLS; its subject is read for display only.
        let subject = token
            .split('.')
            .nth(1)
            .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
            .and_then(|claims| serde_json::from_slice::<Value>(&claims).ok())
            .and_then(|claims| claims.get("sub").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| Error::Protocol("Entra's token has no subject".into()))?;
        Ok(SignedIn {
            subject,
            upn: answer
                .get("userPrincipalName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            sign_count: answer
                .get("signCount")
                .and_then(Value::as_u64)
                .unwrap_or_default(),
        })
    }
}
