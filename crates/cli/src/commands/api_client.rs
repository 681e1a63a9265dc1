//! The HTTPS client of `keybridge admin` for the server's `/api/v1`: where the server is, the
//! API token, and how its certificate is trusted (a CA file, a `sha256/…` pin, or the system's
//! roots; never "accept anything").

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use keybridge_authenticator::server_client::{RefusedPin, pinned_tls_config};
use keybridge_device_protocol::TlsPin;
use serde_json::Value;
use zeroize::Zeroizing;

/// How `keybridge admin` reaches the API (shared by every subcommand that calls it).
#[derive(Debug, Clone, Args)]
pub struct ApiOptions {
    /// The keybridge server, e.g. `https://kb.contoso.com` (its `/api/v1` is added).
    #[arg(long, global = true, env = "KEYBRIDGE_API_URL", value_name = "URL")]
    pub server: Option<String>,
    /// An API token (`kbt_…`). Prefer `--token-file` or the environment: a command line is
    /// visible to other users of the machine.
    #[arg(
        long,
        global = true,
        env = "KEYBRIDGE_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A file holding the API token (wins over `--token` / `KEYBRIDGE_API_TOKEN`).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust the server certificate issued by this CA (PEM), e.g. `<data_dir>/tls/ca.pem`.
    #[arg(long, global = true, env = "KEYBRIDGE_API_CA", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the server key with this pin (`sha256/…`, printed by `keybridge serve`);
    /// wins over `--ca-file`.
    #[arg(long, global = true, env = "KEYBRIDGE_API_PIN", value_name = "PIN")]
    pub pin: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// No server was given.
    #[error("no keybridge server given: pass --server https://HOST:PORT or set KEYBRIDGE_API_URL")]
    NoServer,
    /// The server URL is not usable.
    #[error("--server {given:?}: {reason}")]
    BadServer {
        /// The text given.
        given: String,
        /// What is wrong.
        reason: String,
    },
    /// No token was given.
    #[error(
        "no API token given: pass --token-file FILE or set KEYBRIDGE_API_TOKEN (the first admin token is made on the server with `keybridge admin token create`)"
    )]
    NoToken,
    /// A local file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The pin is malformed.
    #[error("--pin: {0}")]
    BadPin(String),
    /// The CA file is not a PEM certificate.
    #[error("--ca-file {path}: not a PEM certificate ({reason})")]
    BadCa {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The server presented another key than the pinned one.
    #[error(
        "the server at {server} presented the TLS key {actual}, not the pinned {expected}: nothing was sent (check --pin against what `keybridge serve` printed)"
    )]
    PinMismatch {
        /// The server.
        server: String,
        /// The pin given.
        expected: String,
        /// The pin of the key presented.
        actual: String,
    },
    /// The connection failed (including an untrusted certificate).
    #[error("could not reach the keybridge API at {server}: {reason}")]
    Unreachable {
        /// The server.
        server: String,
        /// What happened, with the TLS hint when the certificate was not trusted.
        reason: String,
    },
    /// The API refused the request.
    #[error("{message} ({status} {code}; request id {request_id})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The envelope's code.
        code: String,
        /// The envelope's message.
        message: String,
        /// The request id to quote to the server's administrator.
        request_id: String,
    },
    /// The answer is not what the API documents.
    #[error(
        "the server's answer cannot be read ({0}); is --server a keybridge server of this version?"
    )]
    BadAnswer(String),
}

/// A client for one server's `/api/v1` with one token.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
    refused_pin: Option<RefusedPin>,
    pin: Option<TlsPin>,
    /// Print JSON instead of tables.
    pub json: bool,
}

/// A request body: JSON, or text of a given content type.
enum Body<'a> {
    Json(&'a Value),
    Text(&'static str, &'a str),
}

/// `https://host[:port][/api/v1][/]` → `https://host[:port]/api/v1`.
fn api_base(given: &str) -> Result<String, ApiCallError> {
    let bad = |reason: &str| ApiCallError::BadServer {
        given: given.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(given.trim())
        .map_err(|e| bad(&format!("not a URL ({e}); e.g. https://kb.contoso.com")))?;
    if url.scheme() != "https" {
        return Err(bad(
            "the keybridge API is served over HTTPS only: use https://",
        ));
    }
    if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "give the server's address only, e.g. https://kb.contoso.com:8443",
        ));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v1").unwrap_or(path);
    let mut text = url.as_str().to_owned();
    text.truncate(text.len() - url.path().len());
    Ok(format!("{text}{path}/api/v1"))
}

impl ApiClient {
    /// Builds the client from the options: the server, the token, and the trust to use.
    pub fn new(options: &ApiOptions) -> Result<ApiClient, ApiCallError> {
        let base = api_base(options.server.as_deref().ok_or(ApiCallError::NoServer)?)?;
        let token = match (&options.token, &options.token_file) {
            (_, Some(path)) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| ApiCallError::File {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
            ),
            (Some(token), None) => Zeroizing::new(token.trim().to_owned()),
            (None, None) => return Err(ApiCallError::NoToken),
        };
        if token.is_empty() {
            return Err(ApiCallError::NoToken);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("keybridge-admin/", env!("CARGO_PKG_VERSION")));
        let mut refused_pin = None;
        let mut pin = None;
        if let Some(text) = &options.pin {
            let parsed = TlsPin::parse(text).map_err(|e| ApiCallError::BadPin(e.to_string()))?;
            let (config, refused) =
                pinned_tls_config(parsed).map_err(|e| ApiCallError::BadPin(e.to_string()))?;
            builder = builder.tls_backend_preconfigured(config);
            refused_pin = Some(refused);
            pin = Some(parsed);
        } else if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|e| ApiCallError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let certificate =
                reqwest::Certificate::from_pem(&pem).map_err(|e| ApiCallError::BadCa {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            // Only this CA: a server of the same name with a publicly trusted certificate is
            // not the one the operator meant.
            builder = builder.tls_certs_only([certificate]);
        }
        let http = builder.build().map_err(|e| ApiCallError::Unreachable {
            server: base.clone(),
            reason: e.to_string(),
        })?;
        Ok(ApiClient {
            http,
            base,
            token,
            refused_pin,
            pin,
            json: options.json,
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> ApiCallError {
        if let (Some(refused), Some(pin)) = (&self.refused_pin, &self.pin)
            && let Some(actual) = refused.take()
        {
            return ApiCallError::PinMismatch {
                server: self.base.clone(),
                expected: pin.to_rfc7469(),
                actual: actual.to_rfc7469(),
            };
        }
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            reason = format!("{reason}: {inner}");
            source = inner.source();
        }
        if reason.contains("certificate") || reason.contains("UnknownIssuer") {
            reason.push_str(
                "; the server's certificate is not trusted: pass --ca-file (e.g. <data_dir>/tls/ca.pem) or --pin sha256/… as `keybridge serve` printed",
            );
        }
        ApiCallError::Unreachable {
            server: self.base.clone(),
            reason,
        }
    }

    /// Sends a request; `path` is relative to `/api/v1`.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ApiCallError> {
        self.send_body(method, path, query, body.map(Body::Json))
            .await
    }

    async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body<'_>>,
    ) -> Result<reqwest::Response, ApiCallError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str());
        if !query.is_empty() {
            request = request.query(query);
        }
        match body {
            Some(Body::Json(body)) => request = request.json(body),
            Some(Body::Text(content_type, text)) => {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(text.to_owned());
            }
            None => {}
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let header_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let error = &envelope["error"];
        let Some(message) = error["message"].as_str() else {
            return Err(ApiCallError::BadAnswer(format!(
                "HTTP {status} without keybridge's error envelope"
            )));
        };
        // Text from the server is made terminal-safe line by line.
        let safe = keybridge_device_protocol::terminal_safe;
        let mut message = safe(message);
        if let Some(details) = error["details"].as_array() {
            for detail in details {
                let line = safe(detail["message"].as_str().unwrap_or("?"));
                if message.contains(&line) {
                    continue;
                }
                message.push_str(&format!(
                    "\n  {}: {}",
                    safe(detail["field"].as_str().unwrap_or("?")),
                    line
                ));
            }
        }
        Err(ApiCallError::Refused {
            status,
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message,
            request_id: error["request_id"]
                .as_str()
                .map_or(header_id, str::to_owned),
        })
    }

    /// A call answered with JSON (or nothing: `Value::Null`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiCallError> {
        let response = self.send(method, path, query, body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiCallError::BadAnswer(e.to_string()))
    }

    /// `GET` answered with JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiCallError> {
        self.call(reqwest::Method::GET, path, query, None).await
    }

    /// A `POST` of a text body (e.g. a CSV file as `text/csv`) answered with JSON.
    pub async fn post_text(
        &self,
        path: &str,
        query: &[(&str, String)],
        content_type: &'static str,
        text: &str,
    ) -> Result<Value, ApiCallError> {
        let response = self
            .send_body(
                reqwest::Method::POST,
                path,
                query,
                Some(Body::Text(content_type, text)),
            )
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiCallError::BadAnswer(e.to_string()))
    }

    /// A call answered with raw bytes (downloads and exports).
    pub async fn bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, ApiCallError> {
        let response = self.send(reqwest::Method::GET, path, query, None).await?;
        Ok(response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?
            .to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::api_base;

    #[test]
    fn the_api_base_is_the_server_plus_api_v1() {
        for given in [
            "https://kb.contoso.com",
            "https://kb.contoso.com/",
            "https://kb.contoso.com/api/v1",
            "https://kb.contoso.com/api/v1/",
        ] {
            assert_eq!(
                api_base(given).unwrap(),
                "https://kb.contoso.com/api/v1",
                "{given}"
            );
        }
        assert_eq!(
            api_base("https://localhost:8443/kb/").unwrap(),
            "https://localhost:8443/kb/api/v1"
        );
        assert!(api_base("http://kb.contoso.com").is_err());
        assert!(api_base("kb.contoso.com").is_err());
    }
}
