//! [`GraphClient`]: configuration, and the one place where requests are sent, paced, traced
//! and retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use url::Url;

use crate::clock::{Clock, SystemClock};
use crate::cloud::Cloud;
use crate::credentials::{AssertionAlgorithm, ClientCredential};
use crate::error::{GraphError, RequestIds, ServiceError};
use crate::limiter::{Fido2Pacing, RateLimiter, RateLimits, RequestCost, TenantSize};
use crate::odata;
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::token::{AccessToken, TokenProvider, TokenSettings, transport_error};

/// Everything needed to build a [`GraphClient`].
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Directory (tenant) id: a GUID or a verified domain.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret or certificate.
    pub credential: ClientCredential,
    /// Endpoints.
    pub cloud: Cloud,
    /// Extra trusted CA certificates (PEM, one or more), e.g. entra-sim's test CA.
    pub ca_bundle_pem: Option<String>,
    /// Client-side pacing.
    pub rate_limits: RateLimits,
    /// When FIDO2 calls other than lists are paced to the reports budget.
    pub fido2_pacing: Fido2Pacing,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Time limit of one HTTP request.
    pub request_timeout: Duration,
    /// Time limit to open a connection.
    pub connect_timeout: Duration,
    /// Signature algorithm of certificate assertions (PS256 falls back to RS256 by itself).
    pub assertion_algorithm: AssertionAlgorithm,
}

impl GraphConfig {
    /// A configuration for the global cloud with default pacing and retries.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: ClientCredential,
    ) -> Self {
        Self {
            tenant: tenant.into().trim().to_owned(),
            client_id: client_id.into().trim().to_owned(),
            credential,
            cloud: Cloud::Global,
            ca_bundle_pem: None,
            rate_limits: RateLimits::default(),
            fido2_pacing: Fido2Pacing::default(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            assertion_algorithm: AssertionAlgorithm::default(),
        }
    }

    /// Sets the cloud or custom endpoints.
    pub fn with_cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Trusts the CA certificates in `pem` in addition to the system's.
    pub fn with_ca_bundle_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_bundle_pem = Some(pem.into());
        self
    }

    /// Sets the client-side pacing.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Sets when FIDO2 calls other than lists are paced to the reports budget.
    pub fn with_fido2_pacing(mut self, pacing: Fido2Pacing) -> Self {
        self.fido2_pacing = pacing;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-request time limit.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// A Graph API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/v1.0`: the default.
    V1,
    /// `/beta`: only where a feature needs it.
    Beta,
}

impl ApiVersion {
    fn segment(self) -> &'static str {
        match self {
            Self::V1 => "v1.0",
            Self::Beta => "beta",
        }
    }
}

/// Counters of what the client sent, for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent to Graph (retries included, token requests excluded).
    pub requests: u64,
    /// Answers with status 429 (batch items included).
    pub throttled: u64,
    /// Retries after a transient failure or a 429.
    pub retries: u64,
    /// Access tokens fetched.
    pub token_fetches: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
}

/// The Microsoft Graph client. Cheap to clone; clones share the token cache and the limiter.
#[derive(Clone)]
pub struct GraphClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("tenant", &self.inner.tenant)
            .field("graph_root", &self.inner.graph_root.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    http: reqwest::Client,
    tokens: TokenProvider,
    pub(crate) limiter: RateLimiter,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retry: RetryPolicy,
    pub(crate) graph_root: Url,
    tenant: String,
    counters: Counters,
}

/// One logical Graph request.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub body: Option<&'a serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
    /// Safe to send twice (retried after 5xx, timeouts and broken connections).
    pub idempotent: bool,
    /// The application permission the call needs, named in a 403.
    pub permission: Option<&'static str>,
    /// Overrides the cost computed from method and URL (`$batch`).
    pub cost: Option<RequestCost>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, url: Url) -> Self {
        let idempotent = method != Method::POST;
        Self {
            method,
            url,
            body: None,
            headers: Vec::new(),
            idempotent,
            permission: None,
            cost: None,
        }
    }

    pub(crate) fn body(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn permission(mut self, permission: &'static str) -> Self {
        self.permission = Some(permission);
        self
    }
}

/// A successful answer.
pub(crate) struct Reply {
    pub body: Vec<u8>,
    pub ids: RequestIds,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self, during: &str) -> Result<T, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::UnexpectedResponse {
            during: during.to_owned(),
            detail: e.to_string(),
            ids: self.ids.clone(),
        })
    }
}

/// The outcome of one HTTP exchange.
enum Attempt {
    Answer {
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
        ids: RequestIds,
    },
    NoAnswer(GraphError),
    /// An answer this client will not use (too large); sending again would not help.
    Refused(GraphError),
}

/// Largest Graph answer read into memory. A page of 999 users with every property selected,
/// or a `$batch` of 20 such answers, stays well below it; anything larger is refused rather
/// than buffered, so a misbehaving endpoint cannot exhaust memory.
pub(crate) const MAX_GRAPH_BODY_BYTES: usize = 32 << 20;

/// Why a body could not be read.
pub(crate) enum BodyError {
    /// Longer than the limit (by `Content-Length` or as it arrived).
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads a response body, stopping as soon as it exceeds `limit` bytes.
pub(crate) async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error for an answer longer than `limit`.
pub(crate) fn too_large(during: &str, limit: usize, ids: RequestIds) -> GraphError {
    GraphError::UnexpectedResponse {
        during: during.to_owned(),
        detail: format!(
            "the answer is larger than {} KiB, more than any valid answer; it was not read",
            limit / 1024
        ),
        ids,
    }
}

impl GraphClient {
    /// Builds a client. Nothing is sent until the first call.
    pub fn new(config: GraphConfig) -> Result<Self, GraphError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Builds a client reading time and sleeping through `clock` (tests).
    pub fn with_clock(config: GraphConfig, clock: Arc<dyn Clock>) -> Result<Self, GraphError> {
        if config.tenant.is_empty() || config.tenant.contains(['/', '?', '#', ' ']) {
            return Err(GraphError::Config(format!(
                "the tenant id '{}' is not a GUID or domain name",
                config.tenant
            )));
        }
        if config.client_id.is_empty() {
            return Err(GraphError::Config("the client id is empty".to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // Neither the token endpoint nor the Graph calls made here redirect. Following a
            // 307/308 would re-send the client secret or assertion, or the bearer token on the
            // same host, to wherever the Location points, bypassing the Graph-host check on
            // paging links; a redirect is reported as the error it is instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keybridge-graph/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_bundle_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| GraphError::Config(format!("the CA bundle cannot be read: {e}")))?;
            if certificates.is_empty() {
                return Err(GraphError::Config(
                    "the CA bundle holds no certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| GraphError::Config(format!("the HTTP client cannot be built: {e}")))?;
        let token_url = config.cloud.token_endpoint(&config.tenant)?;
        let tokens = TokenProvider::new(TokenSettings {
            http: http.clone(),
            token_url,
            client_id: config.client_id.clone(),
            scope: config.cloud.graph_scope(),
            credential: config.credential,
            algorithm: config.assertion_algorithm,
            clock: clock.clone(),
            retry: config.retry.clone(),
        });
        let limiter = RateLimiter::new(config.rate_limits, clock.clone());
        limiter.set_fido2_pacing(config.fido2_pacing);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                tokens,
                limiter,
                clock,
                retry: config.retry,
                graph_root: config.cloud.graph_root(),
                tenant: config.tenant,
                counters: Counters::default(),
            }),
        })
    }

    /// Sets the pacing for a tenant of this size (call it once the user count is known).
    pub fn set_tenant_size(&self, size: TenantSize) {
        self.inner.limiter.set_limits(RateLimits::documented(size));
    }

    /// Replaces the pacing.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.inner.limiter.set_limits(limits);
    }

    /// Whether FIDO2 calls are paced to the reports budget now (configured, or after a 429).
    pub fn fido2_on_reports_budget(&self) -> bool {
        self.inner.limiter.fido2_on_reports_budget()
    }

    /// What was sent so far.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            token_fetches: self.inner.tokens.fetch_count(),
        }
    }

    /// A valid access token (cached). Mostly for the permission self-test; never log it.
    pub async fn access_token(&self) -> Result<AccessToken, GraphError> {
        self.inner.tokens.get().await
    }

    /// The Graph root URL (without version).
    pub fn graph_root(&self) -> &Url {
        &self.inner.graph_root
    }

    /// `{root}/{version}/{segments...}?{query}`; segments are percent-encoded one by one.
    pub(crate) fn url(
        &self,
        version: ApiVersion,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Url {
        let mut url = self.inner.graph_root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(version.segment()).extend(segments);
        }
        if !query.is_empty() {
            url.set_query(Some(&odata::encode_query(query)));
        }
        url
    }

    /// Whether `link` (a stored `@odata.deltaLink`, say) points at this client's Graph host, so
    /// that it can be followed. A link saved while another Graph URL was configured cannot.
    pub fn is_own_link(&self, link: &str) -> bool {
        self.link(link).is_ok()
    }

    /// A URL Graph gave us (`@odata.nextLink`, `@odata.deltaLink`), used verbatim, but only on
    /// the Graph host: the token must never go anywhere else.
    pub(crate) fn link(&self, link: &str) -> Result<Url, GraphError> {
        let url = Url::parse(link).map_err(|e| GraphError::UnexpectedResponse {
            during: "following a paging link".to_owned(),
            detail: format!("'{link}' is not a URL: {e}"),
            ids: RequestIds::default(),
        })?;
        let root = &self.inner.graph_root;
        if url.scheme() != root.scheme()
            || url.host_str() != root.host_str()
            || url.port_or_known_default() != root.port_or_known_default()
        {
            return Err(GraphError::UnexpectedResponse {
                during: "following a paging link".to_owned(),
                detail: format!(
                    "the link points to {} instead of the Graph host",
                    url.origin().ascii_serialization()
                ),
                ids: RequestIds::default(),
            });
        }
        Ok(url)
    }

    /// Sends a call and returns a 2xx answer, retrying what is safe to retry.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Reply, GraphError> {
        let inner = &self.inner;
        let cost = call.cost.unwrap_or_else(|| {
            let relative = relative_path(&inner.graph_root, &call.url);
            RequestCost::of(call.method.as_str(), &relative)
        });
        let mut retries = 0u32;
        let mut refreshed_token = false;
        loop {
            inner.limiter.acquire(cost).await;
            let token = inner.tokens.get().await?;
            let attempt = self.attempt(call, &token, retries).await;
            let can_retry = retries + 1 < inner.retry.max_attempts;
            match attempt {
                Attempt::NoAnswer(error) => {
                    if call.idempotent && can_retry {
                        let wait = inner.retry.random_backoff(retries);
                        tracing::warn!(error = %error, ?wait, "no answer from Graph; retrying");
                        inner.clock.sleep(wait).await;
                        retries += 1;
                        inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    return Err(error);
                }
                Attempt::Refused(error) => return Err(error),
                Attempt::Answer {
                    status,
                    headers,
                    body,
                    ids,
                } => {
                    if (200..300).contains(&status) {
                        return Ok(Reply { body, ids });
                    }
                    let detail = ServiceError::from_body(status, &body, ids);
                    if status == 401
                        && detail.code == "InvalidAuthenticationToken"
                        && !refreshed_token
                    {
                        // Expired or revoked early: fetch a new token once and try again.
                        tracing::info!("Graph refused the access token; fetching a new one");
                        inner.tokens.invalidate(&token).await;
                        refreshed_token = true;
                        continue;
                    }
                    let retry_after = headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
                    let throttled = status == 429;
                    if throttled && cost.fido2_requests > 0 {
                        fido2_throttled(&inner.limiter, &headers);
                    }
                    let transient = matches!(status, 500 | 502 | 503 | 504);
                    if throttled || (transient && call.idempotent) {
                        let wait =
                            retry_after.unwrap_or_else(|| inner.retry.random_backoff(retries));
                        if can_retry && wait <= inner.retry.max_retry_after {
                            tracing::warn!(status, ?wait, "Graph asked to retry later");
                            if throttled || retry_after.is_some() {
                                // Everyone using this client waits: the budget is spent.
                                inner.limiter.pause_until(inner.clock.now() + wait);
                            } else {
                                inner.clock.sleep(wait).await;
                            }
                            retries += 1;
                            inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    if throttled || (status == 503 && retry_after.is_some()) {
                        return Err(GraphError::Throttled {
                            retry_after,
                            detail: Box::new(detail),
                        });
                    }
                    return Err(GraphError::from_service(detail, call.permission));
                }
            }
        }
    }

    async fn attempt(&self, call: &Call<'_>, token: &AccessToken, retry: u32) -> Attempt {
        let inner = &self.inner;
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let span = tracing::info_span!(
            "graph_request",
            method = %call.method,
            path = %call.url.path(),
            client_request_id = %client_request_id,
            retry,
            request_id = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        async {
            let mut request = inner
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(token.secret())
                .header("client-request-id", &client_request_id)
                .header("return-client-request-id", "true");
            for (name, value) in &call.headers {
                request = request.header(*name, value);
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }
            inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let response = match request.send().await {
                Ok(response) => response,
                Err(source) => {
                    let error = transport_error(source, "calling Microsoft Graph", &call.url);
                    tracing::warn!(error = %error, "Graph request failed");
                    return Attempt::NoAnswer(error);
                }
            };
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let request_id = header_text(&headers, "request-id");
            let span = tracing::Span::current();
            span.record("status", status);
            if let Some(id) = &request_id {
                span.record("request_id", id.as_str());
            }
            if let Some(percentage) = header_text(&headers, "x-ms-throttle-limit-percentage")
                .and_then(|v| v.parse::<f64>().ok())
            {
                inner.limiter.observe_throttle_percentage(percentage);
            }
            if status == 429 {
                inner.counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            let ids = RequestIds {
                request_id,
                client_request_id: Some(client_request_id.clone()),
            };
            match read_body_limited(response, MAX_GRAPH_BODY_BYTES).await {
                Ok(body) => {
                    tracing::debug!(status, "Graph answered");
                    Attempt::Answer {
                        status,
                        headers,
                        body,
                        ids,
                    }
                }
                Err(BodyError::TooLarge) => {
                    let error = too_large("reading Graph's answer", MAX_GRAPH_BODY_BYTES, ids);
                    tracing::warn!(error = %error, "Graph answer refused");
                    Attempt::Refused(error)
                }
                Err(BodyError::Transport(source)) => {
                    Attempt::NoAnswer(transport_error(source, "reading Graph's answer", &call.url))
                }
            }
        }
        .instrument(span)
        .await
    }

    /// GET a JSON document.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        permission: &'static str,
        during: &str,
    ) -> Result<T, GraphError> {
        let reply = self
            .send(&Call::new(Method::GET, url).permission(permission))
            .await?;
        reply.json(during)
    }

    pub(crate) fn count_throttled(&self, n: u64) {
        self.inner
            .counters
            .throttled
            .fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_retry(&self) {
        self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// A 429 on a FIDO2 call: unless Graph names the write quota as the cause, the reports budget
/// may cover FIDO2 calls in this tenant, so they are paced to it for a while.
fn fido2_throttled(limiter: &RateLimiter, headers: &HeaderMap) {
    let information = header_text(headers, "x-ms-throttle-information");
    if information
        .as_deref()
        .is_some_and(|i| i.eq_ignore_ascii_case("WriteLimitExceeded"))
    {
        return;
    }
    let scope = header_text(headers, "x-ms-throttle-scope");
    let hold = limiter.observe_fido2_throttled();
    tracing::warn!(
        scope = scope.as_deref().unwrap_or("-"),
        information = information.as_deref().unwrap_or("-"),
        hold_minutes = hold.as_secs() / 60,
        "Graph throttled a FIDO2 call: FIDO2 calls are paced to the authentication-methods \
         reports budget (5 requests per 10 s) for a while"
    );
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The path and query of `url` below the Graph root, starting with `/`.
pub(crate) fn relative_path(root: &Url, url: &Url) -> String {
    let root_path = root.path().trim_end_matches('/');
    let path = url.path().strip_prefix(root_path).unwrap_or(url.path());
    match url.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> GraphClient {
        let credential = ClientCredential::secret("s").expect("secret");
        let config = GraphConfig::new("contoso.onmicrosoft.com", "client", credential).with_cloud(
            Cloud::custom("https://localhost:8443", "https://localhost:8443/v1.0").expect("urls"),
        );
        GraphClient::new(config).expect("client")
    }

    #[test]
    fn upns_with_ext_markers_are_percent_encoded_in_the_path() {
        let client = client();
        let url = client.url(
            ApiVersion::V1,
            &["users", "o'neil_fabrikam.com#EXT#@contoso.onmicrosoft.com"],
            &[("$select", "id,displayName")],
        );
        assert_eq!(
            url.as_str(),
            "https://localhost:8443/v1.0/users/o'neil_fabrikam.com%23EXT%23@contoso.onmicrosoft.com?$select=id,displayName"
        );
        let beta = client.url(ApiVersion::Beta, &["users", "a/b?c"], &[]);
        assert_eq!(beta.as_str(), "https://localhost:8443/beta/users/a%2Fb%3Fc");
    }

    #[test]
    fn links_must_stay_on_the_graph_host() {
        let client = client();
        assert!(
            client
                .link("https://localhost:8443/v1.0/users?$skiptoken=abc")
                .is_ok()
        );
        assert!(client.link("https://localhost:9999/v1.0/users").is_err());
        assert!(client.link("http://localhost:8443/v1.0/users").is_err());
        assert!(
            client
                .link("https://graph.microsoft.com/v1.0/users")
                .is_err()
        );
    }

    #[test]
    fn costs_are_computed_below_the_graph_root() {
        let root = Url::parse("https://sim.example/graph/").expect("url");
        let url = Url::parse("https://sim.example/graph/v1.0/users?$top=999").expect("url");
        assert_eq!(relative_path(&root, &url), "/v1.0/users?$top=999");
    }

    #[test]
    fn bad_configuration_is_refused() {
        let credential = ClientCredential::secret("s").expect("secret");
        let error =
            GraphClient::new(GraphConfig::new("a/b", "client", credential.clone())).unwrap_err();
        assert!(error.to_string().contains("tenant id"), "{error}");
        let error = GraphClient::new(GraphConfig::new("t", " ", credential.clone())).unwrap_err();
        assert!(error.to_string().contains("client id"), "{error}");
        let error = GraphClient::new(
            GraphConfig::new("t", "c", credential).with_ca_bundle_pem("no pem here"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("CA bundle"), "{error}");
    }
}
