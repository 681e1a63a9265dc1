//! What every console page shares: the [`Layout`] its template extends `base.html` with,
//! and [`render`], which turns a template into an answer (and clears a shown flash message).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::assets;
use super::flash::{CLEAR_FLASH, Flash};

/// The console's sections, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/console`.
    Dashboard,
    /// `/console/integrations`.
    Integrations,
    /// `/console/users`.
    Users,
    /// `/console/jobs`.
    Jobs,
    /// `/console/audit`.
    Audit,
    /// `/console/tokens`.
    Tokens,
    /// Pages outside the navigation (login, errors).
    None,
}

/// One navigation link.
#[derive(Debug, Clone)]
pub struct NavLink {
    /// Label.
    pub label: &'static str,
    /// Path.
    pub href: &'static str,
    /// Whether it is the current section (`aria-current="page"`).
    pub current: bool,
}

const NAV: [(Section, &str, &str); 6] = [
    (Section::Dashboard, "Dashboard", "/console"),
    (
        Section::Integrations,
        "Integrations",
        "/console/integrations",
    ),
    (Section::Users, "Users", "/console/users"),
    (Section::Jobs, "Jobs", "/console/jobs"),
    (Section::Audit, "Audit", "/console/audit"),
    (Section::Tokens, "API tokens", "/console/tokens"),
];

/// The signed-in admin as the layout shows them.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Display name (or username).
    pub name: String,
    /// `admin`, `helpdesk` or `auditor`.
    pub role: &'static str,
}

/// What `base.html` needs: every page template has a `layout: Layout` field.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The page title (also the `<title>`, followed by " · keybridge").
    pub title: String,
    /// Navigation links (empty when nobody is signed in).
    pub nav: Vec<NavLink>,
    /// Who is signed in.
    pub signed_in: Option<SignedIn>,
    /// The session's CSRF token, for the hidden `csrf_token` field of every POST form (and the
    /// `x-csrf-token` header of scripts' fetches, read from `<meta name="csrf-token">`).
    pub csrf_token: String,
    /// A one-shot message.
    pub flash: Option<Flash>,
    /// The stylesheet's URL.
    pub css_url: String,
    /// The script's URL.
    pub js_url: String,
}

impl Layout {
    /// The layout of a page shown to somebody not signed in (login, errors, enrolment).
    pub fn anonymous(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            nav: Vec::new(),
            signed_in: None,
            csrf_token: String::new(),
            flash: None,
            css_url: assets::css_url(),
            js_url: assets::js_url(),
        }
    }

    /// The layout of a signed-in page in `section`.
    pub fn signed_in(
        title: impl Into<String>,
        section: Section,
        who: SignedIn,
        csrf_token: &str,
        flash: Option<Flash>,
    ) -> Layout {
        Layout {
            title: title.into(),
            nav: NAV
                .iter()
                .map(|(s, label, href)| NavLink {
                    label,
                    href,
                    current: *s == section,
                })
                .collect(),
            signed_in: Some(who),
            csrf_token: csrf_token.to_owned(),
            flash,
            css_url: assets::css_url(),
            js_url: assets::js_url(),
        }
    }
}

/// Renders a page with status 200.
pub fn render(template: &impl Template, layout: &Layout) -> Response {
    render_status(StatusCode::OK, template, layout)
}

/// Renders a page with `status`; clears the flash cookie when the page showed a message.
pub fn render_status(status: StatusCode, template: &impl Template, layout: &Layout) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            if layout.flash.is_some() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, HeaderValue::from_static(CLEAR_FLASH));
            }
            response
        }
        Err(error) => {
            tracing::error!(%error, "console template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; the details are in the server log",
            )
                .into_response()
        }
    }
}

/// Renders an HTML fragment (a part of a page a script loads), status 200.
pub fn render_fragment(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => super::error::ConsoleError::Internal(error.to_string()).into_response(),
    }
}
