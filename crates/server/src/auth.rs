//! Who is calling: the [`AdminAuth`] extractor for `/api/v1` and the [`RequestMeta`] of every
//! request (request id and source address, for the audit log).
//!
//! An API token is sent as `Authorization: Bearer kbt_...`. The store keeps only its SHA-256
//! and finds the token by that hash, so the presented secret is never compared byte by byte
//! with a stored one (nothing to time). A missing, malformed, unknown, expired or revoked
//! token is a 401; a valid token whose role is too low is a 403 naming the role needed.
//!
//! `AdminAuth` is an extractor that fails, not an `Option`: a handler that takes it cannot
//! run for an unauthenticated caller, and a bad token is never mistaken for "no token".

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use keybridge_store::{API_TOKEN_PREFIX, ApiToken, NewAuditEvent, Role, Timestamp};

use crate::app::App;
use crate::error::ApiError;

/// A role requirement for [`AdminAuth`].
pub trait RoleRequirement: Send + Sync + 'static {
    /// Whether `role` may pass.
    fn allows(role: Role) -> bool;
    /// The roles that pass, for the 403 message.
    const NEEDED: &'static str;
}

/// Any role: admin, helpdesk or auditor (read-only endpoints).
#[derive(Debug)]
pub struct AnyRole;
impl RoleRequirement for AnyRole {
    fn allows(_: Role) -> bool {
        true
    }
    const NEEDED: &'static str = "admin, helpdesk or auditor";
}

/// Admin or helpdesk (users and devices).
#[derive(Debug)]
pub struct HelpdeskOrAdmin;
impl RoleRequirement for HelpdeskOrAdmin {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Helpdesk)
    }
    const NEEDED: &'static str = "admin or helpdesk";
}

/// Admin only (integration settings, tokens).
#[derive(Debug)]
pub struct AdminOnly;
impl RoleRequirement for AdminOnly {
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
    const NEEDED: &'static str = "admin";
}

/// An authenticated API caller whose role meets `R`.
#[derive(Debug)]
pub struct AdminAuth<R: RoleRequirement = AnyRole> {
    /// The token used.
    pub token: ApiToken,
    _requirement: PhantomData<R>,
}

impl<R: RoleRequirement> AdminAuth<R> {
    /// The audit actor: `token:<id>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token.id)
    }
}

/// What to tell a caller without a usable token.
const HOW_TO_GET_A_TOKEN: &str = "send `Authorization: Bearer <token>` with an API token; an admin \
     creates one with POST /api/v1/tokens, or on the server with `keybridge admin token create --role admin --name NAME`";

impl<R: RoleRequirement> FromRequestParts<App> for AdminAuth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(format!(
                "this endpoint needs an API token: {HOW_TO_GET_A_TOKEN}"
            ))
            .with_code("missing_token")
        })?;
        let value = header.to_str().map_err(|_| {
            ApiError::unauthorized(format!(
                "the Authorization header is not readable text: {HOW_TO_GET_A_TOKEN}"
            ))
            .with_code("invalid_token")
        })?;
        let secret = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(ApiError::unauthorized(format!(
                    "the Authorization header must use the Bearer scheme: {HOW_TO_GET_A_TOKEN}"
                ))
                .with_code("invalid_token"));
            }
        };
        if !secret.starts_with(API_TOKEN_PREFIX) {
            return Err(ApiError::unauthorized(format!(
                "the bearer value is not a keybridge API token (those start with {API_TOKEN_PREFIX}): {HOW_TO_GET_A_TOKEN}"
            ))
            .with_code("invalid_token"));
        }
        let token = app
            .store()
            .api_tokens()
            .authenticate(secret, Timestamp::now())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "the API token is not valid: it is unknown, has expired or was revoked; {HOW_TO_GET_A_TOKEN}"
                ))
                .with_code("invalid_token")
            })?;
        if !R::allows(token.role) {
            return Err(ApiError::forbidden(format!(
                "this action needs the role {}; the API token \"{}\" has the role {}",
                R::NEEDED,
                token.name,
                token.role.as_str()
            )));
        }
        Ok(AdminAuth {
            token,
            _requirement: PhantomData,
        })
    }
}

/// The request id and the client's address, for audit events.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// The peer address.
    pub source_addr: Option<String>,
}

impl RequestMeta {
    /// Stamps an audit event with this request.
    pub fn stamp(&self, event: NewAuditEvent) -> NewAuditEvent {
        event.request(self.source_addr.clone(), self.request_id.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestMeta {
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            source_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string()),
        })
    }
}
