//! The error type of every operation, with messages that tell an admin what to fix.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::credentials::CredentialError;

/// The identifiers that tie one request to Microsoft's logs; quote them in a support case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// Graph's `request-id` response header (or the token endpoint's `trace_id`).
    pub request_id: Option<String>,
    /// The `client-request-id` this client sent (echoed by the service).
    pub client_request_id: Option<String>,
}

impl fmt::Display for RequestIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request-id {}, client-request-id {}",
            self.request_id.as_deref().unwrap_or("none"),
            self.client_request_id.as_deref().unwrap_or("none")
        )
    }
}

/// An error answer from Microsoft Graph: status, `error.code`, `error.message` and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`, e.g. `Request_ResourceNotFound`.
    pub code: String,
    /// `error.message` (for FIDO2 errors, the inner `message.value`).
    pub message: String,
    /// The FIDO2 `subCode` (e.g. `error_user_group_restriction_policy_failure`) when Graph sent one.
    pub sub_code: Option<String>,
    /// Request identifiers.
    pub ids: RequestIds,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)?;
        if let Some(sub_code) = &self.sub_code {
            write!(f, " (subCode {sub_code})")?;
        }
        write!(f, " [{}]", self.ids)
    }
}

impl ServiceError {
    /// Parses a Graph error body (`{"error":{"code","message","innerError"}}`), falling back
    /// to the raw text when the body is not in that shape.
    pub fn from_body(status: u16, body: &[u8], ids: RequestIds) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Body,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default, rename = "innerError", alias = "innererror")]
            inner: Option<Inner>,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(rename = "request-id")]
            request_id: Option<String>,
            #[serde(rename = "client-request-id")]
            client_request_id: Option<String>,
        }
        let mut ids = ids;
        match serde_json::from_slice::<Envelope>(body) {
            Ok(envelope) => {
                if let Some(inner) = envelope.error.inner {
                    ids.request_id = ids.request_id.or(inner.request_id);
                    ids.client_request_id = ids.client_request_id.or(inner.client_request_id);
                }
                let (message, sub_code) = unwrap_odata_message(&envelope.error.message);
                Self {
                    status,
                    code: envelope.error.code,
                    message,
                    sub_code,
                    ids,
                }
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.chars().take(500).collect();
                Self {
                    status,
                    code: String::new(),
                    message: text,
                    sub_code: None,
                    ids,
                }
            }
        }
    }
}

/// FIDO2 POST failures carry a JSON string in `error.message`:
/// `{"odata.error":{"code","message":{"value"},"values":[{"item":"subCode","value"}]}}`.
fn unwrap_odata_message(message: &str) -> (String, Option<String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(message) else {
        return (message.to_owned(), None);
    };
    let Some(odata) = value.get("odata.error") else {
        return (message.to_owned(), None);
    };
    let text = odata
        .pointer("/message/value")
        .and_then(|v| v.as_str())
        .or_else(|| odata.get("message").and_then(|v| v.as_str()))
        .unwrap_or(message)
        .to_owned();
    let sub_code = odata
        .get("values")
        .and_then(|v| v.as_array())
        .and_then(|values| {
            values.iter().find_map(|item| {
                (item.get("item").and_then(|i| i.as_str()) == Some("subCode"))
                    .then(|| {
                        item.get("value")
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    })
                    .flatten()
            })
        });
    let sub_code = sub_code.or_else(|| {
        odata
            .get("code")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    });
    (text, sub_code)
}

/// A refusal to issue or accept a token, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The OAuth `error` (`invalid_client`, ...) or Graph's `error.code`.
    pub error: String,
    /// The AADSTS number, when the token endpoint sent one.
    pub aadsts: Option<u32>,
    /// The service's description (first line only: the rest is trace data).
    pub description: String,
    /// What the admin should do.
    pub hint: String,
    /// Request identifiers.
    pub ids: RequestIds,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hint)?;
        match self.aadsts {
            Some(code) => write!(f, " (AADSTS{code}, {}: {})", self.error, self.description)?,
            None => write!(f, " ({}: {})", self.error, self.description)?,
        }
        write!(f, " [{}]", self.ids)
    }
}

/// What to fix for the AADSTS codes a client-credentials request can meet (entra.md §1.5).
pub fn aadsts_hint(code: u32) -> &'static str {
    match code {
        7000215 => {
            "the client secret is wrong: enter the secret's Value (shown once, when it was created), \
             not its Secret ID, from App registrations > Certificates & secrets"
        }
        7000222 => {
            "the client secret has expired: create a new one under App registrations > Certificates & \
             secrets and update the integration"
        }
        7000216 => "no client secret or certificate assertion was sent: configure a credential",
        700016 => {
            "no application with this client id exists in the tenant: check the Application (client) \
             ID and the Directory (tenant) ID on the app registration's Overview page"
        }
        90002 => {
            "the tenant was not found: check the Directory (tenant) ID and the cloud (global, US Government, China)"
        }
        700027 => {
            "the certificate is not registered for this app, or the assertion's signature does not \
             verify: upload the certificate (public part) under App registrations > Certificates & secrets"
        }
        1000502 => {
            "the certificate registered for the app is outside its validity period: upload a current one"
        }
        700024 => "the client assertion is outside its validity window: check this server's clock",
        700021 => {
            "the client assertion names another app: the client id does not match the certificate's app"
        }
        50027 => "the client assertion is malformed: the certificate or key may be damaged",
        70011 | 1002012 => "the requested scope is invalid: check the cloud and Graph URL settings",
        70003 | 900144 => "the token request is malformed (grant type)",
        _ => "Entra refused the token request",
    }
}

/// Every error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The token endpoint refused the credentials, or Graph refused the access token.
    #[error("not authorized: {0}")]
    Unauthorized(Box<AuthFailure>),
    /// Graph answered 403: the app lacks a permission.
    #[error("{}", forbidden_message(*.missing_permission, .detail))]
    Forbidden {
        /// The application permission the call needs, when known.
        missing_permission: Option<&'static str>,
        /// Graph's answer.
        detail: Box<ServiceError>,
    },
    /// Graph answered 404.
    #[error("not found in Microsoft Entra: {0}")]
    NotFound(Box<ServiceError>),
    /// Graph answered 429 (or 503) and the wait was longer than the client retries by itself,
    /// or the retries ran out.
    #[error("Microsoft Graph is throttling this app{}: {detail}; run fewer jobs at once or retry later", retry_after_text(*.retry_after))]
    Throttled {
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
        /// Graph's answer.
        detail: Box<ServiceError>,
    },
    /// Graph answered 409.
    #[error("conflict in Microsoft Entra: {0}")]
    Conflict(Box<ServiceError>),
    /// Graph answered 400 (bad request, validation, FIDO2 registration refused).
    #[error("Microsoft Graph refused the request: {0}")]
    InvalidRequest(Box<ServiceError>),
    /// Any other error answer from Graph (5xx after retries, 405, ...).
    #[error("Microsoft Graph error: {0}")]
    Service(Box<ServiceError>),
    /// The request did not get an HTTP answer (DNS, TLS, connection, timeout).
    #[error(
        "could not reach {host} while {during} ({kind}): {source}; check the network, proxy and CA settings"
    )]
    Transport {
        /// What the client was doing.
        during: String,
        /// The host it tried to reach.
        host: String,
        /// Timeout, connection or other.
        kind: TransportKind,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The certificate, key or secret is unusable.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The client configuration is invalid.
    #[error("invalid Microsoft Graph client configuration: {0}")]
    Config(String),
    /// A 2xx answer whose body this client could not understand.
    #[error("unexpected answer while {during}: {detail} [{ids}]")]
    UnexpectedResponse {
        /// What the client was doing.
        during: String,
        /// What was wrong.
        detail: String,
        /// Request identifiers.
        ids: RequestIds,
    },
    /// An argument was refused before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The request timed out (it may or may not have been processed).
    Timeout,
    /// The connection could not be opened (nothing was sent).
    Connect,
    /// The connection broke or another I/O error (it may or may not have been processed).
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connection failed",
            Self::Other => "connection error",
        })
    }
}

fn forbidden_message(missing: Option<&'static str>, detail: &ServiceError) -> String {
    match missing {
        Some(permission) => format!(
            "the app lacks the application permission {permission}: {} [{}]",
            crate::permissions::GRANT_ADVICE,
            detail
        ),
        None => format!(
            "the app lacks a permission for this call: check its API permissions and admin consent [{detail}]"
        ),
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {} s)", d.as_secs()))
        .unwrap_or_default()
}

impl GraphError {
    /// The request identifiers of a service error, if any.
    pub fn request_ids(&self) -> Option<&RequestIds> {
        match self {
            Self::Unauthorized(failure) => Some(&failure.ids),
            Self::Forbidden { detail, .. } | Self::Throttled { detail, .. } => Some(&detail.ids),
            Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::InvalidRequest(detail)
            | Self::Service(detail) => Some(&detail.ids),
            Self::UnexpectedResponse { ids, .. } => Some(ids),
            _ => None,
        }
    }

    /// Whether the same request may succeed later (throttling, outages, network trouble), so
    /// that a job should be rescheduled rather than failed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Transport { .. } => true,
            Self::Service(detail) => {
                detail.status >= 500 || detail.code == "temporarily_unavailable"
            }
            _ => false,
        }
    }

    /// How long Graph asked to wait, for a throttled request.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Graph's answer, for errors that carry one.
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Self::Forbidden { detail, .. } | Self::Throttled { detail, .. } => Some(detail),
            Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::InvalidRequest(detail)
            | Self::Service(detail) => Some(detail),
            _ => None,
        }
    }

    /// Maps a Graph error answer to its variant. `permission` names what the call needs.
    pub(crate) fn from_service(detail: ServiceError, permission: Option<&'static str>) -> Self {
        let detail = Box::new(detail);
        match detail.status {
            400 => Self::InvalidRequest(detail),
            401 => Self::Unauthorized(Box::new(AuthFailure {
                error: detail.code.clone(),
                aadsts: None,
                description: detail.message.clone(),
                hint: "Microsoft Graph refused the access token even after a fresh one was fetched: \
                       check that the Graph URL belongs to the same cloud as the authority, and this \
                       server's clock"
                    .to_owned(),
                ids: detail.ids.clone(),
            })),
            403 => Self::Forbidden { missing_permission: permission, detail },
            404 => Self::NotFound(detail),
            409 => Self::Conflict(detail),
            429 => Self::Throttled { retry_after: None, detail },
            _ => Self::Service(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_body_with_inner_ids() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist.",
            "innerError":{"date":"2026-05-01T10:00:00","request-id":"r-1","client-request-id":"c-1"}}}"#;
        let error = ServiceError::from_body(404, body, RequestIds::default());
        assert_eq!(error.code, "Request_ResourceNotFound");
        assert_eq!(error.ids.request_id.as_deref(), Some("r-1"));
        assert_eq!(error.ids.client_request_id.as_deref(), Some("c-1"));
        let text = GraphError::from_service(error, None).to_string();
        assert!(
            text.contains("not found") && text.contains("request-id r-1"),
            "{text}"
        );
    }

    #[test]
    fn fido2_error_message_is_unwrapped_with_its_sub_code() {
        let inner = r#"{"odata.error":{"code":"badRequest","message":{"lang":"en","value":"User is not targeted."},"values":[{"item":"subCode","value":"error_user_group_restriction_policy_failure"}]}}"#;
        let body = serde_json::json!({"error":{"code":"badRequest","message":inner}}).to_string();
        let error = ServiceError::from_body(400, body.as_bytes(), RequestIds::default());
        assert_eq!(error.message, "User is not targeted.");
        assert_eq!(
            error.sub_code.as_deref(),
            Some("error_user_group_restriction_policy_failure")
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text() {
        let error =
            ServiceError::from_body(502, b"<html>Bad Gateway</html>", RequestIds::default());
        assert_eq!(error.message, "<html>Bad Gateway</html>");
        assert!(matches!(
            GraphError::from_service(error, None),
            GraphError::Service(_)
        ));
    }

    #[test]
    fn forbidden_names_the_permission_and_the_fix() {
        let detail = ServiceError::from_body(
            403,
            br#"{"error":{"code":"accessDenied","message":"Request Authorization failed"}}"#,
            RequestIds::default(),
        );
        let text = GraphError::from_service(detail, Some("UserAuthenticationMethod.ReadWrite.All"))
            .to_string();
        assert!(
            text.contains("UserAuthenticationMethod.ReadWrite.All"),
            "{text}"
        );
        assert!(text.contains("admin consent"), "{text}");
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let detail = |status| ServiceError::from_body(status, b"{}", RequestIds::default());
        assert!(GraphError::from_service(detail(503), None).is_transient());
        assert!(
            GraphError::Throttled {
                retry_after: Some(Duration::from_secs(3)),
                detail: Box::new(detail(429))
            }
            .is_transient()
        );
        assert!(!GraphError::from_service(detail(404), None).is_transient());
        assert!(!GraphError::from_service(detail(400), None).is_transient());
        assert!(!GraphError::InvalidArgument("x".into()).is_transient());
    }

    #[test]
    fn aadsts_hints_say_what_to_fix() {
        assert!(aadsts_hint(7000215).contains("not its Secret ID"));
        assert!(aadsts_hint(7000222).contains("expired"));
        assert!(aadsts_hint(700016).contains("client id"));
        assert!(aadsts_hint(90002).contains("tenant"));
        assert!(aadsts_hint(700027).contains("certificate"));
    }
}
