//! Access tokens from the token endpoint (OAuth 2.0 client credentials), cached until shortly
//! before they expire, with one refresh for any number of concurrent callers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::Instrument as _;
use url::Url;

use crate::client::{BodyError, read_body_limited, too_large};
use crate::clock::Clock;
use crate::credentials::{AssertionAlgorithm, ClientCredential};
use crate::error::{AuthFailure, GraphError, RequestIds, ServiceError, TransportKind, aadsts_hint};
use crate::retry::RetryPolicy;

/// Largest token endpoint answer read into memory (a real one is a few KiB).
const MAX_TOKEN_BODY_BYTES: usize = 1 << 20;

/// Refresh this long before expiry (or at half the lifetime, for short-lived tokens).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// An app-only access token. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    refresh_at: Instant,
    expires_at: Instant,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The bearer token. Never log it.
    pub fn secret(&self) -> &str {
        &self.value
    }

    /// When the token stops being valid.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

pub(crate) struct TokenProvider {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    scope: String,
    credential: ClientCredential,
    algorithm: std::sync::Mutex<AssertionAlgorithm>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

pub(crate) struct TokenSettings {
    pub http: reqwest::Client,
    pub token_url: Url,
    pub client_id: String,
    pub scope: String,
    pub credential: ClientCredential,
    pub algorithm: AssertionAlgorithm,
    pub clock: Arc<dyn Clock>,
    pub retry: RetryPolicy,
}

impl TokenProvider {
    pub(crate) fn new(settings: TokenSettings) -> Self {
        Self {
            http: settings.http,
            token_url: settings.token_url,
            client_id: settings.client_id,
            scope: settings.scope,
            credential: settings.credential,
            algorithm: std::sync::Mutex::new(settings.algorithm),
            clock: settings.clock,
            retry: settings.retry,
            cache: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many tokens were fetched so far.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one. Concurrent callers wait on one fetch.
    pub(crate) async fn get(&self) -> Result<AccessToken, GraphError> {
        let mut cached = self.cache.lock().await;
        if let Some(token) = cached.as_ref()
            && self.clock.now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Drops `rejected` from the cache (after Graph answered 401 for it), unless another caller
    /// already replaced it, so that many 401s still cause one refresh.
    pub(crate) async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cache.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(&t.value, &rejected.value))
        {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<AccessToken, GraphError> {
        let algorithm = *self
            .algorithm
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.fetch_with(algorithm).await {
            // Fall back to RS256 + x5t once when the service does not take the PS256 assertion.
            Err(GraphError::Unauthorized(failure))
                if algorithm == AssertionAlgorithm::Ps256
                    && matches!(self.credential, ClientCredential::Certificate(_))
                    && matches!(failure.aadsts, Some(50027 | 700027 | 5002723)) =>
            {
                tracing::warn!(aadsts = ?failure.aadsts, "PS256 client assertion refused; retrying with RS256");
                let token = self
                    .fetch_with(AssertionAlgorithm::Rs256)
                    .await
                    .map_err(|_| GraphError::Unauthorized(failure.clone()))?;
                *self
                    .algorithm
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = AssertionAlgorithm::Rs256;
                Ok(token)
            }
            other => other,
        }
    }

    async fn fetch_with(&self, algorithm: AssertionAlgorithm) -> Result<AccessToken, GraphError> {
        let mut retry = 0;
        loop {
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let span = tracing::info_span!(
                "entra_token",
                client_request_id = %client_request_id,
                request_id = tracing::field::Empty,
                status = tracing::field::Empty,
            );
            let outcome = self
                .fetch_once(algorithm, &client_request_id)
                .instrument(span)
                .await;
            let transient = match &outcome {
                Err(GraphError::Transport { .. }) => true,
                Err(GraphError::Service(detail)) => {
                    detail.status >= 500
                        || detail.status == 429
                        || detail.code == "temporarily_unavailable"
                }
                Err(GraphError::Throttled { .. }) => true,
                _ => false,
            };
            if !transient || retry + 1 >= self.retry.max_attempts {
                return outcome;
            }
            let wait = self.retry.random_backoff(retry);
            tracing::warn!(?wait, "token request failed; retrying");
            self.clock.sleep(wait).await;
            retry += 1;
        }
    }

    async fn fetch_once(
        &self,
        algorithm: AssertionAlgorithm,
        client_request_id: &str,
    ) -> Result<AccessToken, GraphError> {
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".to_owned()),
        ];
        match &self.credential {
            ClientCredential::Secret(secret) => {
                form.push(("client_secret", secret.expose().to_owned()))
            }
            ClientCredential::Certificate(certificate) => {
                let assertion = certificate.client_assertion(
                    &self.client_id,
                    self.token_url.as_str(),
                    algorithm,
                    time::OffsetDateTime::now_utc(),
                )?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let sent_at = self.clock.now();
        let response = self
            .http
            .post(self.token_url.clone())
            .header("client-request-id", client_request_id)
            .header("return-client-request-id", "true")
            .form(&form)
            .send()
            .await
            .map_err(|source| {
                transport_error(source, "requesting an access token", &self.token_url)
            })?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-ms-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let span = tracing::Span::current();
        span.record("status", status.as_u16());
        if let Some(id) = &request_id {
            span.record("request_id", id.as_str());
        }
        let ids = RequestIds {
            request_id,
            client_request_id: Some(client_request_id.to_owned()),
        };
        let body = match read_body_limited(response, MAX_TOKEN_BODY_BYTES).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Err(too_large(
                    "reading the token response",
                    MAX_TOKEN_BODY_BYTES,
                    ids,
                ));
            }
            Err(BodyError::Transport(source)) => {
                return Err(transport_error(
                    source,
                    "reading the token response",
                    &self.token_url,
                ));
            }
        };
        if status.is_success() {
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| GraphError::UnexpectedResponse {
                    during: "reading the token response".to_owned(),
                    detail: e.to_string(),
                    ids: ids.clone(),
                })?;
            let lifetime = parsed
                .expires_in
                .as_ref()
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(3599));
            let margin = REFRESH_MARGIN.min(lifetime / 2);
            self.fetches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(lifetime_s = lifetime.as_secs(), "access token issued");
            return Ok(AccessToken {
                value: Arc::from(parsed.access_token),
                refresh_at: sent_at + lifetime - margin,
                expires_at: sent_at + lifetime,
            });
        }
        let error: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        if error.error.is_empty() {
            // Not an OAuth error body: a proxy or an outage.
            return Err(GraphError::Service(Box::new(ServiceError::from_body(
                status.as_u16(),
                &body,
                ids,
            ))));
        }
        if status.is_server_error()
            || status.as_u16() == 429
            || matches!(
                error.error.as_str(),
                "temporarily_unavailable" | "server_error"
            )
        {
            // An outage, not a verdict on the credential: retried like any transient failure.
            let message = error
                .error_description
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            return Err(GraphError::Service(Box::new(ServiceError {
                status: status.as_u16(),
                code: error.error,
                message,
                sub_code: None,
                ids,
            })));
        }
        let aadsts = error
            .error_codes
            .first()
            .copied()
            .or_else(|| parse_aadsts(&error.error_description));
        let description = error
            .error_description
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let description = match aadsts {
            Some(code) => description
                .trim_start_matches(&format!("AADSTS{code}: "))
                .to_owned(),
            None => description,
        };
        let hint = match aadsts {
            Some(code) => aadsts_hint(code).to_owned(),
            None => "Entra refused the token request".to_owned(),
        };
        tracing::warn!(error = %error.error, aadsts = ?aadsts, "token request refused");
        Err(GraphError::Unauthorized(Box::new(AuthFailure {
            error: error.error,
            aadsts,
            description,
            hint,
            ids: RequestIds {
                request_id: error.trace_id.or(ids.request_id),
                client_request_id: error.correlation_id.or(ids.client_request_id),
            },
        })))
    }
}

fn parse_aadsts(description: &str) -> Option<u32> {
    let start = description.find("AADSTS")? + "AADSTS".len();
    let digits: String = description[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(crate) fn transport_error(source: reqwest::Error, during: &str, url: &Url) -> GraphError {
    let kind = if source.is_timeout() {
        TransportKind::Timeout
    } else if source.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    GraphError::Transport {
        during: during.to_owned(),
        host: url.host_str().unwrap_or_default().to_owned(),
        kind,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aadsts_numbers_come_from_the_description_when_codes_are_missing() {
        assert_eq!(
            parse_aadsts("AADSTS7000215: Invalid client secret provided."),
            Some(7000215)
        );
        assert_eq!(parse_aadsts("no code here"), None);
    }
}
