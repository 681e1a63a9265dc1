//! Inviting many users from User Management (`/console/users/invite`): an Entra group or a
//! CSV file, previewed first (the group's name and member count; the file's first rows and its
//! good and bad lines with reasons), then queued as the API's bulk invitation job
//! (`services::bulk_invites::start`), whose progress the Jobs page shows.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keybridge_core::invite_list::MAX_INVITE_ROWS;
use keybridge_core::{BadRow, InviteList, RestrictDomains};
use serde::Deserialize;

use super::error::ConsoleError;
use super::flash::Flash;
use super::forms::FieldErrors;
use super::page::{Layout, Section, render, render_status};
use super::session::{ConsoleSession, CsrfForm};
use crate::app::App;
use crate::auth::{HelpdeskOrAdmin, RequestMeta};
use crate::error::ApiError;
use crate::services::bulk_invites::{self, BulkSource};
use crate::services::group_lookup::{self, GroupSummary};

/// The largest CSV file the console takes (the form carries it as text).
pub const MAX_CSV_BYTES: usize = 1024 * 1024;

/// Rows of a good file shown before confirming.
const PREVIEW_ROWS: usize = 10;

/// The page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct InviteQuery {
    /// The integration (default: the first).
    #[serde(default)]
    pub integration: Option<String>,
}

/// A good file's preview.
struct CsvPreview {
    column: String,
    first: Vec<(usize, String)>,
    total: usize,
}

/// What the CSV form shows under it.
#[derive(Default)]
struct CsvState {
    text: String,
    valid: usize,
    bad: Vec<BadRow>,
    preview: Option<CsvPreview>,
}

#[derive(Template)]
#[template(path = "console/users_invite.html")]
struct InvitePage {
    layout: Layout,
    integration_id: String,
    integration_name: String,
    group: String,
    groups: Vec<GroupSummary>,
    csv: CsvState,
    errors: FieldErrors,
    max_csv_bytes: usize,
    max_csv_label: String,
}

/// The group form: `step` is `preview` (look the group up) or `confirm` (queue the job).
#[derive(Debug, Deserialize)]
pub struct GroupForm {
    /// The integration.
    pub integration: String,
    /// What the admin typed: a group name or object id.
    #[serde(default)]
    pub group: String,
    /// The object id picked on the preview (confirm step).
    #[serde(default)]
    pub group_id: Option<String>,
    /// `preview` or `confirm`.
    #[serde(default)]
    pub step: Option<String>,
}

/// The CSV form: `step` is `preview` (check the file) or `confirm` (queue the job).
#[derive(Debug, Deserialize)]
pub struct CsvForm {
    /// The integration.
    pub integration: String,
    /// The file's text (read by the page's script from the file input, or pasted).
    #[serde(default)]
    pub csv: String,
    /// `preview` or `confirm`.
    #[serde(default)]
    pub step: Option<String>,
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

impl InvitePage {
    async fn new(
        app: &App,
        session: &ConsoleSession<HelpdeskOrAdmin>,
        integration: Option<&str>,
    ) -> Result<InvitePage, ConsoleError> {
        let all = app.store().integrations().list().await?;
        let chosen = match integration.filter(|i| !i.is_empty()) {
            Some(id) => all.iter().find(|i| i.id == id),
            None => all.first(),
        }
        .ok_or(ConsoleError::NotFound)?;
        Ok(InvitePage {
            layout: session.layout("Invite users", Section::Users, None),
            integration_id: chosen.id.clone(),
            integration_name: chosen.name.clone(),
            group: String::new(),
            groups: Vec::new(),
            csv: CsvState::default(),
            errors: FieldErrors::none(),
            max_csv_bytes: MAX_CSV_BYTES,
            max_csv_label: size_label(MAX_CSV_BYTES),
        })
    }

    /// The page again with a refusal next to its field (422), or the error page for a
    /// server failure.
    fn refused(mut self, error: ApiError, field: &str) -> Result<Response, ConsoleError> {
        self.errors = FieldErrors::from_api(error, &[field])?;
        if let Some(message) = self.errors.get("form") {
            self.errors = FieldErrors::none();
            self.errors.add(field, &message);
        }
        Ok(render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &self,
            &self.layout,
        ))
    }
}

/// `GET /console/users/invite`: the group and CSV forms.
pub async fn page(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    Query(query): Query<InviteQuery>,
) -> Result<Response, ConsoleError> {
    let page = InvitePage::new(&app, &session, query.integration.as_deref()).await?;
    Ok(render(&page, &page.layout))
}

fn to_job(job_id: &str, what: &str) -> Response {
    Flash::success(format!(
        "Inviting {what}: the job below invites each user and lists who could not be invited."
    ))
    .redirect(&format!("/console/jobs/{job_id}"))
}

/// `POST /console/users/invite/group`.
pub async fn group(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    meta: RequestMeta,
    CsrfForm(form): CsrfForm<GroupForm>,
) -> Result<Response, ConsoleError> {
    let mut page = InvitePage::new(&app, &session, Some(&form.integration)).await?;
    page.group = form.group.trim().to_owned();
    if form.step.as_deref() == Some("confirm") {
        let Some(group_id) = form.group_id.filter(|g| !g.trim().is_empty()) else {
            return page.refused(
                ApiError::invalid("group", "pick the group to invite"),
                "group",
            );
        };
        return match bulk_invites::start(
            &app,
            &page.integration_id,
            BulkSource::Group(group_id),
            None,
            &session.actor(),
            &meta,
        )
        .await
        {
            Ok(queued) => Ok(to_job(&queued.job_id, "the group's members")),
            Err(error) => page.refused(error, "group"),
        };
    }
    match group_lookup::find(&app, &page.integration_id, &page.group).await {
        Ok(groups) => {
            page.groups = groups;
            Ok(render(&page, &page.layout))
        }
        Err(error) => page.refused(error, "group"),
    }
}

/// `POST /console/users/invite/csv`.
pub async fn csv(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    meta: RequestMeta,
    CsrfForm(form): CsrfForm<CsvForm>,
) -> Result<Response, ConsoleError> {
    let mut page = InvitePage::new(&app, &session, Some(&form.integration)).await?;
    if form.csv.len() > MAX_CSV_BYTES {
        return page.refused(
            ApiError::invalid(
                "csv",
                format!(
                    "the file is {}; at most {} can be sent at once: split it into smaller files",
                    size_label(form.csv.len()),
                    size_label(MAX_CSV_BYTES)
                ),
            ),
            "csv",
        );
    }
    page.csv.text = form.csv;
    // A refused confirmation shows the same line-by-line check as the preview.
    let mut refused_confirmation = None;
    if form.step.as_deref() == Some("confirm") {
        match bulk_invites::start(
            &app,
            &page.integration_id,
            BulkSource::Csv(page.csv.text.clone()),
            None,
            &session.actor(),
            &meta,
        )
        .await
        {
            Ok(queued) => {
                return Ok(to_job(
                    &queued.job_id,
                    &format!("{} users", queued.users.unwrap_or_default()),
                ));
            }
            Err(error) if error.status().is_client_error() => refused_confirmation = Some(error),
            Err(error) => return page.refused(error, "csv"),
        }
    }
    let integration = app.store().integrations().get(&page.integration_id).await?;
    let restrict = RestrictDomains::parse(&integration.restrict_domains)
        .map_err(|e| ConsoleError::Internal(format!("stored restrict domains are invalid: {e}")))?;
    let check = match InviteList::check(&page.csv.text, &restrict) {
        Ok(check) => check,
        Err(error) => return page.refused(ApiError::invalid("csv", error), "csv"),
    };
    page.csv.valid = check.rows.len();
    page.csv.bad = check.bad;
    let refusal = if !page.csv.bad.is_empty() {
        Some(format!(
            "{} line(s) of the file cannot be used, so nothing was invited: correct them and \
             check the file again",
            page.csv.bad.len()
        ))
    } else if check.rows.is_empty() {
        Some("the file lists no users: add one address per line under the header".to_owned())
    } else if check.rows.len() > MAX_INVITE_ROWS {
        Some(format!(
            "the file lists {} users; at most {MAX_INVITE_ROWS} can be invited at once: split \
             the file",
            check.rows.len()
        ))
    } else {
        None
    };
    if let Some(message) = refusal {
        return page.refused(ApiError::invalid("csv", message), "csv");
    }
    if let Some(error) = refused_confirmation {
        return page.refused(error, "csv");
    }
    page.csv.preview = Some(CsvPreview {
        column: check.column,
        total: check.rows.len(),
        first: check
            .rows
            .iter()
            .take(PREVIEW_ROWS)
            .map(|r| (r.line, r.upn.to_string()))
            .collect(),
    });
    Ok(render(&page, &page.layout))
}
