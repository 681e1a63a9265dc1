//! `GET /console/tokens`: the API tokens (admins only).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keybridge_store::ApiToken;

use super::error::ConsoleError;
use super::flash::IncomingFlash;
use super::page::{Layout, Section, render};
use super::session::ConsoleSession;
use crate::app::App;
use crate::auth::AdminOnly;

/// One row of the token table.
#[derive(Debug)]
pub struct TokenRow {
    /// Name.
    pub name: String,
    /// `kbt_` + the first characters.
    pub prefix: String,
    /// Role.
    pub role: &'static str,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last used, or "never".
    pub last_used: String,
    /// Active, expired or revoked.
    pub state: &'static str,
}

impl TokenRow {
    fn of(token: &ApiToken, now: keybridge_store::Timestamp) -> TokenRow {
        let state = if token.revoked_at.is_some() {
            "revoked"
        } else if token.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        TokenRow {
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            role: token.role.as_str(),
            created_at: token.created_at.to_rfc3339(),
            last_used: token
                .last_used_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".to_owned()),
            state,
        }
    }
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
}

/// `GET /console/tokens`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, ConsoleError> {
    let now = keybridge_store::Timestamp::now();
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
    };
    Ok(render(&page, &page.layout))
}
