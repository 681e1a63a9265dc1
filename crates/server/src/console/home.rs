//! `GET /console`: the landing page after login.

use askama::Template;
use axum::response::Response;

use super::flash::IncomingFlash;
use super::page::{Layout, Section, render};
use super::session::ConsoleSession;

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    username: String,
}

/// `GET /console`.
pub async fn dashboard(session: ConsoleSession, IncomingFlash(flash): IncomingFlash) -> Response {
    let page = DashboardPage {
        layout: session.layout("Dashboard", Section::Dashboard, flash),
        username: session.admin.username.clone(),
    };
    render(&page, &page.layout)
}
