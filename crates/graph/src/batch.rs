//! JSON batching (`POST /$batch`, entra.md §2.4): up to 20 requests per batch; items answered
//! 429 (or 503/504 for safe methods) are resent in a later batch after the longest
//! `Retry-After` among them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ApiVersion, Call, GraphClient};
use crate::error::{GraphError, RequestIds, ServiceError};
use crate::limiter::RequestCost;
use crate::retry::parse_retry_after;

/// Graph's limit of requests per batch.
pub const MAX_BATCH_SIZE: usize = 20;

/// One request inside a `$batch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRequest {
    /// Unique (case-insensitively) within the batch.
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// URL relative to the version root, e.g. `/groups/{id}/members/$ref`.
    pub url: String,
    /// Request headers (`Content-Type` is added with a body).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl BatchRequest {
    /// A request without a body.
    pub fn new(id: impl Into<String>, method: &str, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
        }
    }

    /// Adds a JSON body (and the `Content-Type` Graph requires with it).
    pub fn with_body(mut self, body: Value) -> Self {
        self.headers
            .insert("Content-Type".to_owned(), "application/json".to_owned());
        self.body = Some(body);
        self
    }

    fn is_safe_to_repeat(&self) -> bool {
        // `method` is public, so it may be set without `new` and in any case.
        !self.method.eq_ignore_ascii_case("POST")
    }
}

/// The answer to one batched request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResponse {
    /// The request's id.
    pub id: String,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any.
    #[serde(default)]
    pub body: Option<Value>,
}

impl BatchResponse {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Retry-After` of a throttled item.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("Retry-After")
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()))
    }

    /// Graph's error, for a non-2xx item.
    pub fn service_error(&self) -> Option<ServiceError> {
        if self.is_success() {
            return None;
        }
        let body = self.body.as_ref().map(Value::to_string).unwrap_or_default();
        let ids = RequestIds {
            request_id: self.header("request-id").map(str::to_owned),
            client_request_id: self.header("client-request-id").map(str::to_owned),
        };
        Some(ServiceError::from_body(self.status, body.as_bytes(), ids))
    }

    /// The item's error as a [`GraphError`], for a non-2xx item.
    pub fn error(&self, permission: Option<&'static str>) -> Option<GraphError> {
        self.service_error().map(|detail| match detail.status {
            429 => GraphError::Throttled {
                retry_after: self.retry_after(),
                detail: Box::new(detail),
            },
            _ => GraphError::from_service(detail, permission),
        })
    }
}

#[derive(Deserialize)]
struct BatchEnvelope {
    responses: Vec<BatchResponse>,
}

impl GraphClient {
    /// Runs any number of requests through `$batch`, 20 per batch, and returns one answer per
    /// request in the order given. Throttled items are resent after the longest wait.
    pub async fn batch(
        &self,
        requests: Vec<BatchRequest>,
    ) -> Result<Vec<BatchResponse>, GraphError> {
        self.batch_with_permission(requests, None).await
    }

    pub(crate) async fn batch_with_permission(
        &self,
        requests: Vec<BatchRequest>,
        permission: Option<&'static str>,
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let mut seen = std::collections::HashSet::new();
        for request in &requests {
            if !seen.insert(request.id.to_ascii_lowercase()) {
                return Err(GraphError::InvalidArgument(format!(
                    "batch request id '{}' is used twice (ids are compared case-insensitively)",
                    request.id
                )));
            }
        }
        let order: Vec<String> = requests.iter().map(|r| r.id.to_ascii_lowercase()).collect();
        let mut done: HashMap<String, BatchResponse> = HashMap::with_capacity(requests.len());
        let mut pending = requests;
        let mut round = 0u32;
        while !pending.is_empty() {
            let mut again = Vec::new();
            let mut longest_wait = Duration::ZERO;
            let mut throttled_seen = false;
            let last_round = round + 1 >= self.inner.retry.max_attempts;
            for chunk in pending.chunks(MAX_BATCH_SIZE) {
                let answers = self.send_one_batch(chunk, permission).await?;
                for request in chunk {
                    let key = request.id.to_ascii_lowercase();
                    let Some(answer) = answers
                        .iter()
                        .find(|a| a.id.eq_ignore_ascii_case(&request.id))
                    else {
                        return Err(GraphError::UnexpectedResponse {
                            during: "reading a $batch answer".to_owned(),
                            detail: format!("no answer for request '{}'", request.id),
                            ids: RequestIds::default(),
                        });
                    };
                    let throttled = answer.status == 429;
                    if throttled {
                        self.count_throttled(1);
                    }
                    let transient = matches!(answer.status, 500 | 502 | 503 | 504)
                        && request.is_safe_to_repeat();
                    if (throttled || transient) && !last_round {
                        let wait = answer
                            .retry_after()
                            .unwrap_or_else(|| self.inner.retry.random_backoff(round));
                        longest_wait = longest_wait.max(wait);
                        throttled_seen |= throttled;
                        again.push((request.clone(), answer.clone()));
                    } else {
                        done.insert(key, answer.clone());
                    }
                }
            }
            if longest_wait > self.inner.retry.max_retry_after {
                // Too long to wait here: hand the 429s to the caller, who can reschedule.
                for (request, answer) in again.drain(..) {
                    done.insert(request.id.to_ascii_lowercase(), answer);
                }
            }
            if !again.is_empty() {
                tracing::warn!(items = again.len(), wait = ?longest_wait, "resending throttled batch items");
                if throttled_seen {
                    self.inner
                        .limiter
                        .pause_until(self.inner.clock.now() + longest_wait);
                } else {
                    self.inner.clock.sleep(longest_wait).await;
                }
                for _ in &again {
                    self.count_retry();
                }
            }
            pending = again.into_iter().map(|(request, _)| request).collect();
            round += 1;
        }
        order
            .into_iter()
            .map(|key| {
                done.remove(&key)
                    .ok_or_else(|| GraphError::UnexpectedResponse {
                        during: "reading a $batch answer".to_owned(),
                        detail: format!("no answer for request '{key}'"),
                        ids: RequestIds::default(),
                    })
            })
            .collect()
    }

    async fn send_one_batch(
        &self,
        chunk: &[BatchRequest],
        permission: Option<&'static str>,
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let cost = chunk
            .iter()
            .map(|r| RequestCost::of(&r.method, &r.url))
            .fold(RequestCost::default(), RequestCost::plus);
        let body = serde_json::json!({ "requests": chunk });
        let url = self.url(ApiVersion::V1, &["$batch"], &[]);
        let mut call = Call::new(Method::POST, url).body(&body);
        call.idempotent = chunk.iter().all(BatchRequest::is_safe_to_repeat);
        call.cost = Some(cost);
        call.permission = permission;
        let envelope: BatchEnvelope = self.send(&call).await?.json("reading a $batch answer")?;
        Ok(envelope.responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialise_as_graph_expects() {
        let request = BatchRequest::new("1", "post", "/groups/g/members/$ref")
            .with_body(serde_json::json!({"@odata.id": "x"}));
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":"1","method":"POST","url":"/groups/g/members/$ref",
                "headers":{"Content-Type":"application/json"},"body":{"@odata.id":"x"}})
        );
        let plain = serde_json::to_value(BatchRequest::new("2", "GET", "/users/u")).unwrap();
        assert_eq!(
            plain,
            serde_json::json!({"id":"2","method":"GET","url":"/users/u"})
        );
    }

    #[test]
    fn item_errors_and_retry_after() {
        let answer: BatchResponse = serde_json::from_value(serde_json::json!({
            "id":"3","status":429,"headers":{"retry-after":"7"},
            "body":{"error":{"code":"TooManyRequests","message":"Please retry again later."}}
        }))
        .unwrap();
        assert_eq!(answer.retry_after(), Some(Duration::from_secs(7)));
        let error = answer.error(None).unwrap();
        assert!(
            matches!(
                error,
                GraphError::Throttled {
                    retry_after: Some(_),
                    ..
                }
            ),
            "{error:?}"
        );
        let ok: BatchResponse =
            serde_json::from_value(serde_json::json!({"id":"4","status":204})).unwrap();
        assert!(ok.is_success() && ok.error(None).is_none());
    }
}
