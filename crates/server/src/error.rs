//! The API's one error type and its JSON envelope.
//!
//! Every handler returns [`ApiResult<T>`]. An [`ApiError`] carries the HTTP status, a stable
//! machine-readable `code`, a message for the admin (what went wrong and what to do) and,
//! when one input is at fault, the `field` that names it. The `From` impls decide, source by
//! source, what a caller may see:
//!
//! - `keybridge-core` validation errors → 422 naming the field (`tenant_id: ...`);
//! - store `NotFound` → 404, unique violations → 409 naming the field;
//! - Graph credential and permission refusals → 422 saying what to fix in Entra;
//! - Entra unreachable or throttling → 502/503 with Graph's own explanation;
//! - anything else → 500 whose detail is only logged, next to the request id.
//!
//! The envelope is `{"error":{"code","message","field"?,"details"?,"request_id"}}`. The
//! request id is added by [`error_envelope`], the middleware that also logs internal errors,
//! because the error itself is built before the request's id is known.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keybridge_core::{
    AddressError, ApplicationNameError, GuidError, GuidField, RestrictDomainsError,
};
use keybridge_graph::{CredentialError, GraphError};
use keybridge_store::StoreError;
use serde::Serialize;

/// Result alias of every handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// One input problem inside a larger refusal (e.g. each bad entry of a domain list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The input at fault, e.g. `domains[2]`.
    pub field: String,
    /// What is wrong with it and what is expected.
    pub message: String,
}

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    details: Vec<FieldProblem>,
    /// Logged with the request id, never sent.
    internal: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
            internal: None,
        }
    }

    /// 422 for one input: the message is prefixed with the field's name.
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> ApiError {
        let field = field.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {message}"),
        )
        .with_field(field)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401, with the hint to send a token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A 500 whose `detail` is logged with the request id and never sent.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; the administrator can find the cause in \
             the server log under this request id",
        );
        error.internal = Some(detail.to_string());
        error
    }

    /// Names the input at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// Adds per-input problems.
    pub fn with_details(mut self, details: Vec<FieldProblem>) -> ApiError {
        self.details = details;
        self
    }

    /// Replaces the code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The input at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// Per-input problems (e.g. each bad entry of a list).
    pub fn details(&self) -> &[FieldProblem] {
        &self.details
    }
}

/// The JSON body of an error answer.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The inside of [`ErrorEnvelope`].
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// Stable code (`invalid_input`, `not_found`, `duplicate`, `unauthorized`, ...).
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// The input at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Several inputs at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldProblem>,
    /// The request's `x-request-id`, to quote to the administrator.
    pub request_id: String,
}

impl ApiError {
    fn envelope(&self, request_id: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
                details: self.details.clone(),
                request_id: request_id.to_owned(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is written again by `error_envelope` once the request id is known; this one
        // stands when the middleware is not in place (unit tests of handlers).
        let mut response = (self.status, Json(self.envelope(""))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keybridge\""),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Middleware: writes the request id into error envelopes and logs internal errors with it.
pub async fn error_envelope(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let method = request.method().clone();
    let uri_path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let Some(error) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    match &error.internal {
        Some(detail) => tracing::error!(
            request_id = %request_id, %method, path = %uri_path, error = %detail,
            "request failed"
        ),
        None => tracing::info!(
            request_id = %request_id, %method, path = %uri_path, status = error.status.as_u16(),
            code = error.code, "request refused"
        ),
    }
    let headers = response.headers().clone();
    let mut rebuilt = (error.status, Json(error.envelope(&request_id))).into_response();
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

impl From<ApplicationNameError> for ApiError {
    fn from(error: ApplicationNameError) -> ApiError {
        ApiError::invalid("name", error)
    }
}

impl From<GuidError> for ApiError {
    fn from(error: GuidError) -> ApiError {
        let field = match guid_field(&error) {
            GuidField::ClientId => "client_id",
            GuidField::TenantId => "tenant_id",
        };
        ApiError::invalid(field, error)
    }
}

fn guid_field(error: &GuidError) -> GuidField {
    match error {
        GuidError::Empty { field }
        | GuidError::SecretGiven { field }
        | GuidError::NotAGuid { field, .. }
        | GuidError::Nil { field } => *field,
        GuidError::TenantDomainGiven { .. } => GuidField::TenantId,
    }
}

impl From<RestrictDomainsError> for ApiError {
    fn from(error: RestrictDomainsError) -> ApiError {
        let details = error
            .invalid
            .iter()
            .map(|entry| FieldProblem {
                field: format!("domains[{}]", entry.index),
                message: entry.error.to_string(),
            })
            .collect();
        ApiError::invalid("domains", &error).with_details(details)
    }
}

impl From<AddressError> for ApiError {
    fn from(error: AddressError) -> ApiError {
        ApiError::invalid("support_email", error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
            StoreError::Duplicate { field, .. } => {
                let api_field = match *field {
                    "name" | "internal id" => "name",
                    other => other,
                };
                ApiError::new(StatusCode::CONFLICT, "duplicate", error.to_string())
                    .with_field(api_field)
            }
            StoreError::Invalid { field, reason } => ApiError::invalid(*field, reason),
            StoreError::TokenRejected { .. } => {
                ApiError::new(StatusCode::GONE, "token_rejected", error.to_string())
            }
            _ => ApiError::internal(error),
        }
    }
}

/// Maps a Graph failure to what the admin must fix. `credential_field` names the input that
/// held the credential (`client_secret` or `certificate_pem`).
pub fn graph_error(error: GraphError, credential_field: &str) -> ApiError {
    match &error {
        GraphError::Unauthorized(failure) => {
            let field = match failure.aadsts {
                Some(700016) | Some(700021) => "client_id",
                Some(90002) => "tenant_id",
                _ => credential_field,
            };
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "credential_rejected",
                format!("{field}: Microsoft Entra refused the credential: {error}"),
            )
            .with_field(field)
        }
        GraphError::Forbidden { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "permission_missing",
            format!("permissions: {error}"),
        )
        .with_field("permissions"),
        GraphError::Credential(inner) => credential_error(inner.clone(), credential_field),
        GraphError::Throttled { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "entra_throttling",
            error.to_string(),
        ),
        GraphError::Transport { .. } | GraphError::Service(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "entra_unavailable",
            error.to_string(),
        ),
        GraphError::Config(_) => ApiError::internal(error),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "entra_error", error.to_string()),
    }
}

/// Maps an unusable certificate, key or secret to the input at fault.
pub fn credential_error(error: CredentialError, credential_field: &str) -> ApiError {
    let field = match &error {
        CredentialError::EmptySecret => "client_secret",
        CredentialError::NoPrivateKey(_)
        | CredentialError::SeveralPrivateKeys(_)
        | CredentialError::EncryptedKey { .. }
        | CredentialError::InvalidKey(_)
        | CredentialError::KeyDoesNotMatch(_) => "private_key_pem",
        CredentialError::NoCertificate
        | CredentialError::InvalidCertificate(_)
        | CredentialError::NotYetValid { .. }
        | CredentialError::Expired { .. } => "certificate_pem",
        CredentialError::NotRsa { what, .. } if *what == "private key" => "private_key_pem",
        CredentialError::NotRsa { .. } => "certificate_pem",
        _ => credential_field,
    };
    ApiError::invalid(field, error).with_code("invalid_credential")
}

impl From<GraphError> for ApiError {
    fn from(error: GraphError) -> ApiError {
        graph_error(error, "credential")
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::UNPROCESSABLE_ENTITY {
            "invalid_input"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, format!("body: {}", rejection.body_text())).with_field("body")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_errors_name_the_field() {
        let error: ApiError = keybridge_core::TenantId::parse("not-a-guid")
            .map(|_| ())
            .map_err(ApiError::from)
            .expect_err("not a GUID");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.field(), Some("tenant_id"));
        assert!(
            error.message().starts_with("tenant_id: "),
            "{}",
            error.message()
        );
    }

    #[test]
    fn client_id_errors_name_the_client_id() {
        let error = ApiError::from(keybridge_core::ClientId::parse("xyz").expect_err("not a GUID"));
        assert_eq!(error.field(), Some("client_id"));
    }

    #[test]
    fn duplicates_are_409_naming_the_field() {
        let error = ApiError::from(StoreError::Duplicate {
            entity: "an integration",
            field: "internal id",
        });
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert_eq!(error.field(), Some("name"));
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let error = ApiError::internal("password=hunter2 in a driver message");
        assert!(!error.message().contains("hunter2"));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
