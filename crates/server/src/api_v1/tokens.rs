//! `/api/v1/tokens`: admin API tokens (admin role only). The token text is shown once, at
//! creation; the store keeps only its hash.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use keybridge_store::{ApiToken, NewAuditEvent, Role, Store, StoreError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::{AdminAuth, AdminOnly, RequestMeta};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;

/// The tokens routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

/// Longest expiry accepted, in days.
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// An API token as listed (never its secret).
#[derive(Debug, Serialize)]
pub struct TokenView {
    /// Id (to revoke it).
    pub id: String,
    /// Name.
    pub name: String,
    /// First characters, to recognise it.
    pub prefix: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: &'static str,
    /// Who created it (`token:<id>` or `local-cli`).
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    pub revoked_at: Option<String>,
    /// RFC 3339, last authenticated use.
    pub last_used_at: Option<String>,
}

impl From<&ApiToken> for TokenView {
    fn from(token: &ApiToken) -> TokenView {
        TokenView {
            id: token.id.clone(),
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            role: token.role.as_str(),
            created_by: token.created_by.clone(),
            created_at: token.created_at.to_rfc3339(),
            expires_at: token.expires_at.map(Timestamp::to_rfc3339),
            revoked_at: token.revoked_at.map(Timestamp::to_rfc3339),
            last_used_at: token.last_used_at.map(Timestamp::to_rfc3339),
        }
    }
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name to recognise it by.
    pub name: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: String,
    /// Days until it expires (none: never).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// The answer to a creation: the only time the token text is shown.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// The token to send as `Authorization: Bearer ...`; store it now, it is not shown again.
    pub token: String,
    /// Its record.
    pub api_token: TokenView,
}

/// Parses a role name, for the API and the CLI.
pub fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text.trim()).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("{text:?} is not a role: use admin, helpdesk or auditor"),
        )
    })
}

fn check_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(
            "name",
            "give the token a name, e.g. \"ci-export\"",
        ));
    }
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "at most 100 characters"));
    }
    Ok(name)
}

fn expiry(days: Option<u32>) -> Result<Option<Timestamp>, ApiError> {
    match days {
        None => Ok(None),
        Some(0) => Err(ApiError::invalid(
            "expires_in_days",
            "must be at least 1 (leave it out for a token that does not expire)",
        )),
        Some(d) if d > MAX_EXPIRY_DAYS => Err(ApiError::invalid(
            "expires_in_days",
            format!("at most {MAX_EXPIRY_DAYS} days"),
        )),
        Some(d) => Ok(Some(
            Timestamp::now().plus(Duration::from_secs(u64::from(d) * 86_400)),
        )),
    }
}

async fn create(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let (token, secret) = create_token(&app, &body, &auth.actor(), &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret,
            api_token: TokenView::from(&token),
        }),
    ))
}

/// Creates an API token for `actor` (the API and the console). Returns the record and the
/// token text, shown once.
pub async fn create_token(
    app: &App,
    body: &CreateToken,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<(ApiToken, String)> {
    let name = check_name(&body.name)?;
    let role = parse_role(&body.role)?;
    let expires_at = expiry(body.expires_in_days)?;
    let mut tx = app.store().begin().await?;
    let (token, secret) = tx
        .api_tokens()
        .create(name, role, actor, expires_at)
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "api_token.create")
                    .target(format!("api_token:{}", token.id))
                    .details(serde_json::json!({"name": token.name, "role": role.as_str()})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok((token, secret))
}

async fn list(
    State(app): State<App>,
    _auth: AdminAuth<AdminOnly>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = app.store().api_tokens().list().await?;
    Ok(Json(tokens.iter().map(TokenView::from).collect()))
}

async fn revoke(
    State(app): State<App>,
    auth: AdminAuth<AdminOnly>,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_token(&app, &id, &auth.actor(), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes an API token (the API and the console).
pub async fn revoke_token(app: &App, id: &str, actor: &str, meta: &RequestMeta) -> ApiResult<()> {
    let mut tx = app.store().begin().await?;
    tx.api_tokens().revoke(id, Timestamp::now()).await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "api_token.revoke").target(format!("api_token:{id}")),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Why a local token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The name or expiry is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates an API token directly in the database, for the first admin (`keybridge admin token
/// create`), with the audit actor `local-cli`. Returns the record and the token text.
pub async fn create_token_locally(
    store: &Store,
    name: &str,
    role: Role,
    expires_in_days: Option<u32>,
) -> Result<(ApiToken, String), BootstrapError> {
    let name = check_name(name).map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    let expires_at =
        expiry(expires_in_days).map_err(|e| BootstrapError::Invalid(e.message().to_owned()))?;
    let mut tx = store.begin().await?;
    let (token, secret) = tx
        .api_tokens()
        .create(name, role, LOCAL_ACTOR, expires_at)
        .await?;
    tx.audit()
        .append(
            NewAuditEvent::new(LOCAL_ACTOR, "api_token.create")
                .target(format!("api_token:{}", token.id))
                .details(serde_json::json!({"name": token.name, "role": role.as_str()})),
        )
        .await?;
    tx.commit().await?;
    Ok((token, secret))
}

/// The audit actor of tokens made on the server's command line.
pub const LOCAL_ACTOR: &str = "local-cli";
