//! User Management (`/console/users`): the user list with its tabs, search and pages, a row's
//! Entra passkeys, Device Details, invitations, deletion and unpairing, and the live refresh
//! the page's script polls. Every rule and query is the API's (`api_v1::users`) or a
//! service's; this module only renders.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keybridge_core::UserState;
use keybridge_store::Integration;
use serde::{Deserialize, Serialize};

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::page::{Layout, Section, render, render_fragment};
use super::session::{ConsoleSession, CsrfForm};
use crate::api_v1::users::{Counts, ListQuery, UserView, list_page};
use crate::app::App;
use crate::auth::{AdminOnly, AnyRole, HelpdeskOrAdmin, RequestMeta, RoleRequirement};
use crate::error::ApiError;
use crate::services::user_devices::{self, EntraMethod, MobileDevice};
use crate::services::{invites, unpair, user_delete};

/// Rows per page.
pub const PAGE_SIZE: u32 = 50;

/// The list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    /// The integration (default: the first).
    #[serde(default)]
    pub integration: Option<String>,
    /// Tab: `pending` (default), `paired_with_keybridge` or `paired_with_entra`.
    #[serde(default)]
    pub state: Option<String>,
    /// Search text.
    #[serde(default)]
    pub search: Option<String>,
    /// Cursor of the page.
    #[serde(default)]
    pub after: Option<String>,
    /// Rows per page (default [`PAGE_SIZE`]; the API's limits apply).
    #[serde(default)]
    pub limit: Option<u32>,
}

struct Tab {
    state: &'static str,
    label: &'static str,
    count: i64,
    href: String,
    current: bool,
}

struct Row {
    user: UserView,
    state_label: &'static str,
    last_active: String,
}

struct IntegrationOption {
    id: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    layout: Layout,
    integrations: Vec<IntegrationOption>,
    integration_id: String,
    tabs: Vec<Tab>,
    state: String,
    search: String,
    rows: Vec<Row>,
    next_href: Option<String>,
    first_href: Option<String>,
    can_change: bool,
}

#[derive(Template)]
#[template(path = "console/users_empty.html")]
struct NoIntegrationPage {
    layout: Layout,
}

fn state_label(state: &str) -> &'static str {
    state
        .parse::<UserState>()
        .map(UserState::label)
        .unwrap_or("Unknown")
}

fn when(rfc3339: Option<&str>) -> String {
    rfc3339.map_or_else(
        || "Never".to_owned(),
        |t| t.replace('T', " ").trim_end_matches('Z').to_owned(),
    )
}

fn list_href(
    integration: &str,
    state: &str,
    search: &str,
    limit: u32,
    after: Option<&str>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("integration", integration);
    query.append_pair("state", state);
    if !search.is_empty() {
        query.append_pair("search", search);
    }
    if limit != PAGE_SIZE {
        query.append_pair("limit", &limit.to_string());
    }
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    format!("/console/users?{}", query.finish())
}

fn console_error(error: ApiError) -> ConsoleError {
    if error.status() == StatusCode::NOT_FOUND {
        ConsoleError::NotFound
    } else if error.status().is_client_error() {
        ConsoleError::BadRequest(error.message().to_owned())
    } else {
        ConsoleError::Internal(error.message().to_owned())
    }
}

async fn pick_integration(
    app: &App,
    wanted: Option<&str>,
) -> Result<(Vec<Integration>, Option<Integration>), ConsoleError> {
    let all = app.store().integrations().list().await?;
    let chosen = match wanted.filter(|w| !w.is_empty()) {
        Some(id) => Some(
            all.iter()
                .find(|i| i.id == id)
                .cloned()
                .ok_or(ConsoleError::NotFound)?,
        ),
        None => all.first().cloned(),
    };
    Ok((all, chosen))
}

/// `GET /console/users`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
    Query(query): Query<UsersQuery>,
) -> Result<Response, ConsoleError> {
    let (all, chosen) = pick_integration(&app, query.integration.as_deref()).await?;
    let Some(integration) = chosen else {
        let page = NoIntegrationPage {
            layout: session.layout("User Management", Section::Users, flash),
        };
        return Ok(render(&page, &page.layout));
    };
    let state = query
        .state
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "pending".to_owned());
    let search = query.search.unwrap_or_default().trim().to_owned();
    let limit = query.limit.unwrap_or(PAGE_SIZE);
    let page = list_page(
        &app,
        &integration.id,
        ListQuery {
            state: Some(state.clone()),
            search: Some(search.clone()),
            after: query.after.clone(),
            limit: Some(limit),
            ..ListQuery::default()
        },
    )
    .await
    .map_err(console_error)?;
    let tabs = [
        (UserState::Pending, page.counts.pending),
        (
            UserState::PairedWithKeybridge,
            page.counts.paired_with_keybridge,
        ),
        (UserState::PairedWithEntra, page.counts.paired_with_entra),
    ]
    .into_iter()
    .map(|(s, count)| Tab {
        state: s.as_str(),
        label: s.label(),
        count,
        href: list_href(&integration.id, s.as_str(), &search, limit, None),
        current: s.as_str() == state,
    })
    .collect();
    let rows = page
        .items
        .into_iter()
        .map(|user| Row {
            state_label: state_label(user.state),
            last_active: when(user.last_active.as_deref()),
            user,
        })
        .collect();
    let view = UsersPage {
        layout: session.layout("User Management", Section::Users, flash),
        integrations: all
            .iter()
            .map(|i| IntegrationOption {
                id: i.id.clone(),
                name: i.name.clone(),
                selected: i.id == integration.id,
            })
            .collect(),
        next_href: page
            .next
            .as_deref()
            .map(|n| list_href(&integration.id, &state, &search, limit, Some(n))),
        first_href: query
            .after
            .is_some()
            .then(|| list_href(&integration.id, &state, &search, limit, None)),
        integration_id: integration.id,
        tabs,
        state,
        search,
        rows,
        can_change: HelpdeskOrAdmin::allows(session.session.role),
    };
    Ok(render(&view, &view.layout))
}

/// `GET /console/users/live?integration=…&ids=a,b`: the tab counts and the listed users'
/// current state, for the page's live refresh.
#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    /// The integration.
    pub integration: String,
    /// Comma-separated user ids shown on the page (at most a page).
    #[serde(default)]
    pub ids: String,
}

/// One row's live fields.
#[derive(Debug, Serialize)]
pub struct LiveUser {
    /// Id.
    pub id: String,
    /// State (`pending`, …).
    pub state: &'static str,
    /// Its label ("Paired with Entra").
    pub state_label: &'static str,
    /// Phones.
    pub device_count: i64,
    /// Last active, as the page shows it.
    pub last_active: String,
    /// The row's warning.
    pub warning: Option<&'static str>,
}

/// The live refresh's answer.
#[derive(Debug, Serialize)]
pub struct LiveView {
    /// Tab counts.
    pub counts: Counts,
    /// The users asked for that still exist.
    pub users: Vec<LiveUser>,
}

/// `GET /console/users/live`.
pub async fn live(
    State(app): State<App>,
    _session: ConsoleSession<AnyRole>,
    Query(query): Query<LiveQuery>,
) -> Result<Json<LiveView>, ConsoleError> {
    let store = app.store();
    store.integrations().get(&query.integration).await?;
    let counts = store.users().count_by_state(&query.integration).await?;
    let ids: Vec<&str> = query
        .ids
        .split(',')
        .filter(|id| !id.is_empty())
        .take(PAGE_SIZE as usize)
        .collect();
    // One query for the page's rows: the refresh runs every few seconds per open page.
    let users = store
        .users()
        .get_many(&query.integration, &ids)
        .await?
        .into_iter()
        .map(|item| {
            let view = crate::api_v1::users::view(&item.user, None);
            LiveUser {
                state_label: state_label(view.state),
                state: view.state,
                device_count: item.device_count,
                last_active: when(view.last_active.as_deref()),
                warning: view.warning,
                id: view.id,
            }
        })
        .collect();
    Ok(Json(LiveView {
        counts: Counts {
            pending: counts.pending,
            paired_with_keybridge: counts.paired_with_keybridge,
            paired_with_entra: counts.paired_with_entra,
        },
        users,
    }))
}

#[derive(Template)]
#[template(path = "console/user_methods.html")]
struct MethodsFragment {
    user_id: String,
    upn: String,
    methods: Vec<EntraMethod>,
    error: Option<String>,
    can_delete: bool,
    csrf_token: String,
    back: String,
}

/// `GET /console/users/{id}/methods`: the FIDO2 methods Entra holds for the user (the
/// expanded row), read now through Graph.
pub async fn methods(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let user = app.store().users().get(&id).await?;
    let (methods, error) = match user_devices::entra_methods(&app, &id).await {
        Ok(methods) => (methods, None),
        Err(error) => (Vec::new(), Some(error.message().to_owned())),
    };
    let fragment = MethodsFragment {
        user_id: id,
        back: list_href(
            &user.integration_id,
            user.state.as_str(),
            "",
            PAGE_SIZE,
            None,
        ),
        upn: user.upn,
        methods,
        error,
        can_delete: AdminOnly::allows(session.session.role),
        csrf_token: session.session.csrf_token.clone(),
    };
    Ok(render_fragment(&fragment))
}

/// Device Details' query.
#[derive(Debug, Default, Deserialize)]
pub struct DevicesQuery {
    /// `mobile` (default) or `keys`.
    #[serde(default)]
    pub tab: Option<String>,
}

#[derive(Template)]
#[template(path = "console/user_devices.html")]
struct DevicesPage {
    layout: Layout,
    user: UserView,
    state_label: &'static str,
    tab: &'static str,
    mobile: Vec<MobileDevice>,
    keys: Vec<EntraMethod>,
    keys_error: Option<String>,
    can_change: bool,
    can_delete: bool,
    /// Where a method's Delete comes back to.
    back: String,
}

/// `GET /console/users/{id}/devices`: Device Details (Mobile Devices, Security Keys).
pub async fn devices(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
    Path(id): Path<String>,
    Query(query): Query<DevicesQuery>,
) -> Result<Response, ConsoleError> {
    let user = app.store().users().get(&id).await?;
    let phones = app.store().phones().list_for_user(&id).await?;
    let view = crate::api_v1::users::view(&user, Some(i64::try_from(phones.len()).unwrap_or(0)));
    let tab = if query.tab.as_deref() == Some("keys") {
        "keys"
    } else {
        "mobile"
    };
    let mobile = user_devices::mobile_devices(&app, &id)
        .await
        .map_err(console_error)?;
    let (keys, keys_error) = if tab == "keys" {
        match user_devices::entra_methods(&app, &id).await {
            // Security keys: what Entra holds that is not one of our phones.
            Ok(methods) => (methods.into_iter().filter(|m| !m.ours).collect(), None),
            Err(error) => (Vec::new(), Some(error.message().to_owned())),
        }
    } else {
        (Vec::new(), None)
    };
    let page = DevicesPage {
        layout: session.layout(
            format!("Device Details: {}", user.upn),
            Section::Users,
            flash,
        ),
        state_label: state_label(view.state),
        user: view,
        tab,
        mobile,
        keys,
        keys_error,
        can_change: HelpdeskOrAdmin::allows(session.session.role),
        can_delete: AdminOnly::allows(session.session.role),
        back: format!("/console/users/{id}/devices?tab=keys"),
    };
    Ok(render(&page, &page.layout))
}

#[derive(Template)]
#[template(path = "console/user_invited.html")]
struct InvitedPage {
    layout: Layout,
    upn: String,
    link: String,
    expires_at: String,
    back: String,
}

/// The invitation form: nothing but the CSRF token (and where to go back to).
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    /// The list page to go back to.
    #[serde(default)]
    pub back: Option<String>,
}

pub(crate) fn back_to(back: Option<&str>) -> String {
    // Only a console path: never an open redirect.
    back.filter(|b| b.starts_with("/console/") && !b.starts_with("//"))
        .unwrap_or("/console/users")
        .to_owned()
}

/// `POST /console/users/{id}/invite`: a new invitation; the link is shown once, on the page
/// this answers (never in a cookie or a redirect).
pub async fn invite(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Result<Response, ConsoleError> {
    let back = back_to(form.back.as_deref());
    let user = app.store().users().get(&id).await?;
    match invites::invite_user(&app, &id, None, &session.actor(), &meta).await {
        Ok(invited) => {
            let page = InvitedPage {
                layout: session.layout("Invitation created", Section::Users, None),
                upn: user.upn,
                link: invited.link.clone(),
                expires_at: when(Some(&invited.invite.expires_at)),
                back,
            };
            Ok(render(&page, &page.layout))
        }
        Err(error) => Ok(Flash::error(error.message().to_owned()).redirect(&back)),
    }
}

/// The deletion form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    /// The username typed to confirm.
    #[serde(default)]
    pub confirm: String,
    /// The list page to go back to.
    #[serde(default)]
    pub back: Option<String>,
}

/// `POST /console/users/{id}/delete`: queues the deletion (the API's rules: the typed
/// username must match).
pub async fn delete(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Result<Response, ConsoleError> {
    let back = back_to(form.back.as_deref());
    Ok(
        match user_delete::request(&app, &id, form.confirm.trim(), &session.actor(), &meta).await {
            Ok(job_id) => Flash::success(format!(
                "The user is being deleted (job {job_id}); they leave the list when it finishes."
            ))
            .redirect(&back),
            Err(error) => Flash::error(error.message().to_owned()).redirect(&back),
        },
    )
}

/// The unpair form: only the CSRF token.
#[derive(Debug, Deserialize)]
pub struct UnpairForm {}

/// `POST /console/users/{id}/phones/{phone_id}/unpair`: the API's unpair (a job that deletes
/// the phone's passkey from Entra first, then moves the user back to Pending).
pub async fn unpair(
    State(app): State<App>,
    session: ConsoleSession<HelpdeskOrAdmin>,
    meta: RequestMeta,
    Path((id, phone_id)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<UnpairForm>,
) -> Result<Response, ConsoleError> {
    let back = format!("/console/users/{id}/devices");
    Ok(
        match unpair::request_by_admin(&app, &id, &phone_id, &session.actor(), &meta).await {
            Ok(job_id) => Flash::success(format!(
                "The phone is being unpaired (job {job_id}): its passkey is deleted from \
                 Microsoft Entra first, then the user is back in Pending."
            ))
            .redirect(&back),
            Err(error) => Flash::error(error.message().to_owned()).redirect(&back),
        },
    )
}
