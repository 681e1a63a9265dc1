//! Console sessions: the `__Host-kb_session` cookie, the [`ConsoleSession`] extractor with
//! its role requirement, and the CSRF-checked body extractors [`CsrfForm`] and [`CsrfJson`].
//!
//! The cookie holds a random token; the database keeps its SHA-256 with the admin, the CSRF
//! token and the idle and absolute expiry (`console.session_idle_minutes`,
//! `console.session_max_hours`). Each request pushes the idle expiry forward, never past the
//! absolute one. The cookie is `__Host-`-prefixed (so only this origin over HTTPS can set
//! it, for the whole site), `Secure`, `HttpOnly` and `SameSite=Strict`.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use keybridge_store::{Admin, AdminSession, Timestamp};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use super::error::ConsoleError;
use super::flash::{Flash, cookie};
use super::page::{Layout, Section, SignedIn};
use crate::app::App;
use crate::auth::{AnyRole, RoleRequirement};

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-kb_session";

/// The form field every console POST form carries.
pub const CSRF_FIELD: &str = "csrf_token";

/// The header a script's fetch carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(token: &str, max_age_seconds: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}"
    ))
    .ok()
}

/// The `Set-Cookie` value that removes the session cookie.
pub const CLEAR_SESSION: &str =
    "__Host-kb_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0";

/// The session token the request's cookie carries.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).filter(|v| !v.is_empty())
}

/// A signed-in admin whose role meets `R`. Without a live session the page redirects to the
/// login page (and back afterwards); with a lower role it answers a 403 page naming the role.
#[derive(Debug)]
pub struct ConsoleSession<R: RoleRequirement = AnyRole> {
    /// The admin.
    pub admin: Admin,
    /// The session (role, CSRF token, expiry).
    pub session: AdminSession,
    token: String,
    _requirement: PhantomData<R>,
}

/// The session's CSRF token, left in the request's extensions by [`ConsoleSession`] for
/// [`CsrfForm`] and [`CsrfJson`].
#[derive(Debug, Clone)]
struct ExpectedCsrf(String);

impl<R: RoleRequirement> ConsoleSession<R> {
    /// The audit actor: `admin:<username>`.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.admin.username)
    }

    /// The cookie's token (to revoke the session at logout).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The layout of a page in `section` for this admin.
    pub fn layout(
        &self,
        title: impl Into<String>,
        section: Section,
        flash: Option<Flash>,
    ) -> Layout {
        let name = if self.admin.display_name.trim().is_empty() {
            self.admin.username.clone()
        } else {
            self.admin.display_name.clone()
        };
        Layout::signed_in(
            title,
            section,
            SignedIn {
                name,
                role: self.session.role.as_str(),
            },
            &self.session.csrf_token,
            flash,
        )
    }
}

impl<R: RoleRequirement> FromRequestParts<App> for ConsoleSession<R> {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ConsoleError> {
        let next = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/console".to_owned())
        } else {
            "/console".to_owned()
        };
        let Some(token) = session_token(&parts.headers) else {
            return Err(ConsoleError::LoginRequired { next });
        };
        let now = Timestamp::now();
        let store = app.store();
        let Some(session) = store.admins().session(&token, now).await? else {
            return Err(ConsoleError::LoginRequired { next });
        };
        store
            .admins()
            .touch_session(&token, app.config().console.session_idle, now)
            .await?;
        let admin = store.admins().get(&session.admin_id).await?;
        if !R::allows(session.role) {
            return Err(ConsoleError::Forbidden {
                needed: R::NEEDED,
                role: session.role.as_str(),
            });
        }
        parts
            .extensions
            .insert(ExpectedCsrf(session.csrf_token.clone()));
        Ok(ConsoleSession {
            admin,
            session,
            token,
            _requirement: PhantomData,
        })
    }
}

fn csrf_matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

fn expected_csrf(request: &Request) -> Result<String, ConsoleError> {
    request
        .extensions()
        .get::<ExpectedCsrf>()
        .map(|e| e.0.clone())
        .ok_or_else(|| {
            ConsoleError::Internal(
                "a CSRF-checked body was extracted without a ConsoleSession before it".to_owned(),
            )
        })
}

/// A URL-encoded form body whose `csrf_token` field must be the session's (compared in
/// constant time); a handler takes it after its [`ConsoleSession`]. A missing or wrong token
/// is a 403 page. `T` is the rest of the form.
#[derive(Debug)]
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<App> for CsrfForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, _: &App) -> Result<Self, ConsoleError> {
        let expected = expected_csrf(&request)?;
        let bytes = axum::body::to_bytes(request.into_body(), 4 * 1024 * 1024)
            .await
            .map_err(|_| {
                ConsoleError::BadRequest("the form is too large (4 MiB at most)".to_owned())
            })?;
        let presented = url::form_urlencoded::parse(&bytes)
            .find(|(key, _)| key == CSRF_FIELD)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        if !csrf_matches(&expected, &presented) {
            return Err(ConsoleError::BadCsrfToken);
        }
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&bytes)
            .filter(|(key, _)| key != CSRF_FIELD)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let value = serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        );
        serde_json::from_value(value)
            .map(CsrfForm)
            .map_err(|e| ConsoleError::BadRequest(format!("the form is incomplete: {e}")))
    }
}

/// A JSON body from a console script, whose `x-csrf-token` header must be the session's.
#[derive(Debug)]
pub struct CsrfJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<App> for CsrfJson<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ConsoleError> {
        let expected = expected_csrf(&request)?;
        let presented = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !csrf_matches(&expected, &presented) {
            return Err(ConsoleError::BadCsrfToken);
        }
        let axum::Json(value) = axum::Json::<T>::from_request(request, app)
            .await
            .map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
        Ok(CsrfJson(value))
    }
}

/// Adds the headers that set a new session cookie to `response`.
pub fn set_session_cookie(response: &mut axum::response::Response, token: &str, max_age: u64) {
    if let Some(value) = session_cookie(token, max_age) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_match_only_when_equal_and_present() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", ""));
        assert!(!csrf_matches("", ""));
    }
}
