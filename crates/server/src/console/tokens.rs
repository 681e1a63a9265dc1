//! API tokens in the console (admins only): the list, creating one (its secret is shown
//! once, on the page that answers the creation) and revoking one. The rules are the API's
//! (`api_v1::tokens`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keybridge_store::{ApiToken, Timestamp};
use serde::Deserialize;

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::forms::FieldErrors;
use super::page::{Layout, Section, render_status};
use super::session::{ConsoleSession, CsrfForm};
use crate::api_v1::tokens::{CreateToken, create_token, revoke_token};
use crate::app::App;
use crate::auth::{AdminOnly, RequestMeta};

/// One row of the token table.
#[derive(Debug)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `kbt_` + the first characters.
    pub prefix: String,
    /// Role.
    pub role: &'static str,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expires, or "never".
    pub expires: String,
    /// Last used, or "never".
    pub last_used: String,
    /// Active, expired or revoked.
    pub state: &'static str,
}

impl TokenRow {
    fn of(token: &ApiToken, now: Timestamp) -> TokenRow {
        let state = if token.revoked_at.is_some() {
            "revoked"
        } else if token.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        TokenRow {
            id: token.id.clone(),
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            role: token.role.as_str(),
            created_at: token.created_at.to_rfc3339(),
            expires: token
                .expires_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".to_owned()),
            last_used: token
                .last_used_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".to_owned()),
            state,
        }
    }
}

/// The "Create token" form.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Role.
    #[serde(default)]
    pub role: String,
    /// Days until it expires; empty: never.
    #[serde(default)]
    pub expires_in_days: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    form: CreateForm,
    errors: FieldErrors,
    created_secret: Option<String>,
}

async fn page(
    app: &App,
    session: &ConsoleSession<AdminOnly>,
    flash: Option<Flash>,
    form: CreateForm,
    errors: FieldErrors,
    created_secret: Option<String>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let now = Timestamp::now();
    let tokens = app
        .store()
        .api_tokens()
        .list()
        .await?
        .iter()
        .map(|t| TokenRow::of(t, now))
        .collect();
    let page = TokensPage {
        layout: session.layout("API tokens", Section::Tokens, flash),
        tokens,
        form,
        errors,
        created_secret,
    };
    Ok(render_status(status, &page, &page.layout))
}

/// `GET /console/tokens`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, ConsoleError> {
    page(
        &app,
        &session,
        flash,
        CreateForm {
            role: "auditor".to_owned(),
            ..CreateForm::default()
        },
        FieldErrors::none(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /console/tokens`: creates a token and shows its secret once.
pub async fn create(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    CsrfForm(form): CsrfForm<CreateForm>,
) -> Result<Response, ConsoleError> {
    let days = form.expires_in_days.trim();
    let expires_in_days = if days.is_empty() {
        None
    } else {
        match days.parse::<u32>() {
            Ok(d) => Some(d),
            Err(_) => {
                let mut errors = FieldErrors::none();
                errors.add(
                    "expires_in_days",
                    &format!("expires_in_days: {days:?} is not a whole number of days"),
                );
                return page(
                    &app,
                    &session,
                    None,
                    form,
                    errors,
                    None,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    };
    let body = CreateToken {
        name: form.name.clone(),
        role: form.role.clone(),
        expires_in_days,
    };
    match create_token(&app, &body, &session.actor(), &meta).await {
        Ok((token, secret)) => {
            page(
                &app,
                &session,
                Some(Flash::success(format!(
                    "API token \"{}\" created. Copy it now: it is shown only this once.",
                    token.name
                ))),
                CreateForm {
                    role: "auditor".to_owned(),
                    ..CreateForm::default()
                },
                FieldErrors::none(),
                Some(secret),
                StatusCode::CREATED,
            )
            .await
        }
        Err(error) => {
            let errors = FieldErrors::from_api(error, &["name", "role", "expires_in_days"])?;
            page(
                &app,
                &session,
                None,
                form,
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// An empty form.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /console/tokens/{id}/revoke`.
pub async fn revoke(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Result<Response, ConsoleError> {
    let token = app.store().api_tokens().get(&id).await?;
    revoke_token(&app, &id, &session.actor(), &meta)
        .await
        .map_err(|e| ConsoleError::BadRequest(e.message().to_owned()))?;
    Ok(
        Flash::success(format!("API token \"{}\" revoked.", token.name))
            .redirect("/console/tokens"),
    )
}
