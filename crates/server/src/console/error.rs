//! What a console page answers when it cannot do what was asked: an HTML page with the
//! status, a heading and what to do (never the API's JSON envelope), or a redirect to the
//! login page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keybridge_store::StoreError;

use super::page::{Layout, render_status};

/// A console failure, rendered as a page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: go to the login page, then back to `next`.
    LoginRequired {
        /// The page asked for.
        next: String,
    },
    /// The admin's role is too low.
    Forbidden {
        /// The roles that may.
        needed: &'static str,
        /// The admin's role.
        role: &'static str,
    },
    /// The request came from another site (Origin or Sec-Fetch-Site).
    CrossSite,
    /// The form's CSRF token is missing or not the session's.
    BadCsrfToken,
    /// No such page.
    NotFound,
    /// The input is not acceptable; the message says why.
    BadRequest(String),
    /// A one-time link that cannot be used (expired, used or unknown).
    LinkRejected(String),
    /// A store or template failure: logged, shown as a 500 without details.
    Internal(String),
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

impl ConsoleError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ConsoleError::LoginRequired { .. } => (
                StatusCode::UNAUTHORIZED,
                "Sign in required",
                "Sign in to the console with your passkey.".to_owned(),
            ),
            ConsoleError::Forbidden { needed, role } => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!(
                    "This page needs the role {needed}; you are signed in with the role {role}. \
                     Ask an admin if you need it."
                ),
            ),
            ConsoleError::CrossSite => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "This request did not come from a keybridge console page, so it was refused. \
                 Open the console again and retry from there."
                    .to_owned(),
            ),
            ConsoleError::BadCsrfToken => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token is missing or does not belong to your session \
                 (the page may be from an earlier session). Reload the page and try again."
                    .to_owned(),
            ),
            ConsoleError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no console page at this address.".to_owned(),
            ),
            ConsoleError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "Cannot do that", message.clone())
            }
            ConsoleError::LinkRejected(message) => (
                StatusCode::GONE,
                "This link cannot be used",
                message.clone(),
            ),
            ConsoleError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not finish this request; the details are in its log. \
                 Try again, and tell the operator if it keeps failing."
                    .to_owned(),
            ),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::LoginRequired { next } = &self {
            let target = format!(
                "/console/login?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        if let ConsoleError::Internal(detail) = &self {
            tracing::error!(error = %detail, "console request failed");
        }
        let (status, heading, message) = self.parts();
        let page = ErrorPage {
            layout: Layout::anonymous(heading),
            heading: heading.to_owned(),
            message,
        };
        render_status(status, &page, &page.layout)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> ConsoleError {
        match &error {
            StoreError::NotFound { .. } => ConsoleError::NotFound,
            StoreError::Invalid { .. } | StoreError::Duplicate { .. } => {
                ConsoleError::BadRequest(error.to_string())
            }
            StoreError::TokenRejected { .. } => ConsoleError::LinkRejected(error.to_string()),
            _ => ConsoleError::Internal(error.to_string()),
        }
    }
}
