//! Integrations in the console: the list (every role), adding one, and its settings page
//! (admins only): read-only identity, pre-flight checks with how to fix each, credential
//! rotation, the native Entra login experience, restrict domains and the desktop-client
//! download. Every rule and every Entra call is the integrations service's
//! (`services::integrations`); these handlers only turn forms into its inputs and its
//! answers and refusals into pages.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keybridge_store::Integration;
use serde::Deserialize;

use super::error::ConsoleError;
use super::flash::{Flash, IncomingFlash};
use super::forms::FieldErrors;
use super::page::{Layout, Section, render, render_status};
use super::session::{ConsoleSession, CsrfForm};
use crate::app::App;
use crate::auth::{AdminOnly, AnyRole, RequestMeta};
use crate::services::integrations::{
    self as service, CreateIntegration, CredentialInput, IntegrationView,
};
use crate::services::preflight::{CheckStatus, PreflightCheck};

/// One row of the integrations table.
#[derive(Debug)]
pub struct IntegrationRow {
    /// Id.
    pub id: String,
    /// Application name.
    pub name: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Client id.
    pub client_id: String,
    /// "Client secret" or "Certificate".
    pub credential: &'static str,
    /// Whether native login is on.
    pub native_login: bool,
    /// Last sync, or "not yet".
    pub last_sync: String,
}

impl From<&Integration> for IntegrationRow {
    fn from(i: &Integration) -> Self {
        let view = IntegrationView::from(i);
        IntegrationRow {
            id: view.id,
            name: view.name,
            tenant_id: view.tenant_id,
            client_id: view.client_id,
            credential: credential_label(view.credential.kind),
            native_login: view.native_login_enabled,
            last_sync: view.last_sync_at.unwrap_or_else(|| "not yet".to_owned()),
        }
    }
}

fn credential_label(kind: &str) -> &'static str {
    if kind == "certificate" {
        "Certificate"
    } else {
        "Client secret"
    }
}

#[derive(Template)]
#[template(path = "console/integrations.html")]
struct ListPage {
    layout: Layout,
    integrations: Vec<IntegrationRow>,
    can_manage: bool,
}

/// `GET /console/integrations`.
pub async fn list(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, ConsoleError> {
    let integrations = app
        .store()
        .integrations()
        .list()
        .await?
        .iter()
        .map(IntegrationRow::from)
        .collect();
    let page = ListPage {
        layout: session.layout("Integrations", Section::Integrations, flash),
        integrations,
        can_manage: session.session.role == keybridge_store::Role::Admin,
    };
    Ok(render(&page, &page.layout))
}

/// The "Add integration" form as typed (secrets are never sent back to the page).
#[derive(Debug, Default, Deserialize)]
pub struct NewIntegrationForm {
    /// Application name.
    #[serde(default)]
    pub name: String,
    /// Directory (tenant) id.
    #[serde(default)]
    pub tenant_id: String,
    /// Application (client) id.
    #[serde(default)]
    pub client_id: String,
    /// `secret` or `certificate`.
    #[serde(default)]
    pub credential_kind: String,
    /// Client secret.
    #[serde(default)]
    pub client_secret: String,
    /// Certificate PEM.
    #[serde(default)]
    pub certificate_pem: String,
    /// Private key PEM.
    #[serde(default)]
    pub private_key_pem: String,
    /// Support e-mail.
    #[serde(default)]
    pub support_email: String,
}

#[derive(Template)]
#[template(path = "console/integration_new.html")]
struct NewPage {
    layout: Layout,
    form: NewIntegrationForm,
    errors: FieldErrors,
    use_certificate: bool,
}

const NEW_FIELDS: &[&str] = &[
    "name",
    "tenant_id",
    "client_id",
    "client_secret",
    "certificate_pem",
    "private_key_pem",
    "support_email",
];

/// `GET /console/integrations/new`.
pub async fn new_form(
    session: ConsoleSession<AdminOnly>,
    IncomingFlash(flash): IncomingFlash,
) -> Response {
    let page = NewPage {
        layout: session.layout("Add integration", Section::Integrations, flash),
        form: NewIntegrationForm::default(),
        errors: FieldErrors::none(),
        use_certificate: false,
    };
    render(&page, &page.layout)
}

fn some(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| text.to_owned())
}

/// `POST /console/integrations`: creates the integration (the service checks the name rules,
/// the ids, the credential and the tenant's permissions) and shows its settings with the
/// pre-flight results; a refusal shows the form again with the message next to its field.
pub async fn create(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    CsrfForm(form): CsrfForm<NewIntegrationForm>,
) -> Result<Response, ConsoleError> {
    let use_certificate = form.credential_kind == "certificate";
    let input = CreateIntegration {
        name: form.name.clone(),
        tenant_id: form.tenant_id.clone(),
        client_id: form.client_id.clone(),
        client_secret: if use_certificate {
            None
        } else {
            some(&form.client_secret)
        },
        certificate_pem: if use_certificate {
            some(&form.certificate_pem)
        } else {
            None
        },
        private_key_pem: if use_certificate {
            some(&form.private_key_pem)
        } else {
            None
        },
        support_email: some(&form.support_email),
    };
    match service::create(&app, input, &session.actor(), &meta).await {
        Ok(created) => {
            let integration = app
                .store()
                .integrations()
                .get(&created.integration.id)
                .await?;
            let flash = Flash::success(format!(
                "Integration \"{}\" added. A first directory sync has started.",
                integration.name
            ));
            settings_page(
                &session,
                &integration,
                Some(flash),
                Some(created.preflight),
                Extra::default(),
                StatusCode::CREATED,
            )
        }
        Err(error) => {
            let errors = FieldErrors::from_api(error, NEW_FIELDS)?;
            let page = NewPage {
                layout: session.layout("Add integration", Section::Integrations, None),
                form: NewIntegrationForm {
                    client_secret: String::new(),
                    private_key_pem: String::new(),
                    ..form
                },
                errors,
                use_certificate,
            };
            Ok(render_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &page,
                &page.layout,
            ))
        }
    }
}

/// One pre-flight finding as the page shows it.
#[derive(Debug)]
pub struct CheckRow {
    /// Stable id.
    pub check: &'static str,
    /// "OK", "Warning" or "Blocking".
    pub status: &'static str,
    /// CSS state class.
    pub class: &'static str,
    /// What was found.
    pub message: String,
    /// How to fix it.
    pub fix: Option<String>,
}

impl From<PreflightCheck> for CheckRow {
    fn from(check: PreflightCheck) -> Self {
        let (status, class) = match check.status {
            CheckStatus::Ok => ("OK", "ok"),
            CheckStatus::Warning => ("Warning", "warning"),
            CheckStatus::Blocking => ("Blocking", "failed"),
        };
        CheckRow {
            check: check.check,
            status,
            class,
            message: check.message,
            fix: check.fix,
        }
    }
}

/// What a settings page shows besides the integration.
#[derive(Debug, Default)]
struct Extra {
    domains_text: Option<String>,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "console/integration_settings.html")]
struct SettingsPage {
    layout: Layout,
    integration: IntegrationView,
    credential_label: &'static str,
    preflight: Option<Vec<CheckRow>>,
    blocking: usize,
    domains_text: String,
    errors: FieldErrors,
    enable_message: &'static str,
    disable_message: &'static str,
}

/// What enabling the native Entra login experience does, as the settings page explains it.
const ENABLE_EXPLANATION: &str = "every user already paired with keybridge gets a passkey \
    registered in Microsoft Entra, and users who pair from now on get one as soon as they pair. \
    They then sign in to Microsoft with the passkey on their phone.";

/// What disabling it does.
const DISABLE_EXPLANATION: &str = "No new passkeys are registered in Microsoft Entra. Passkeys \
    already registered stay in Entra and keep working until the user unpairs or an admin \
    deletes them.";

fn settings_page(
    session: &ConsoleSession<AdminOnly>,
    integration: &Integration,
    flash: Option<Flash>,
    preflight: Option<Vec<PreflightCheck>>,
    extra: Extra,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let view = IntegrationView::from(integration);
    let preflight: Option<Vec<CheckRow>> =
        preflight.map(|checks| checks.into_iter().map(CheckRow::from).collect());
    let blocking = preflight.as_ref().map_or(0, |rows| {
        rows.iter().filter(|r| r.class == "failed").count()
    });
    let page = SettingsPage {
        layout: session.layout(
            format!("{} settings", view.name),
            Section::Integrations,
            flash,
        ),
        credential_label: credential_label(view.credential.kind),
        domains_text: extra
            .domains_text
            .unwrap_or_else(|| view.restrict_domains.join("\n")),
        integration: view,
        preflight,
        blocking,
        errors: extra.errors,
        enable_message: ENABLE_EXPLANATION,
        disable_message: DISABLE_EXPLANATION,
    };
    Ok(render_status(status, &page, &page.layout))
}

/// `GET /console/integrations/{id}`.
pub async fn settings(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    IncomingFlash(flash): IncomingFlash,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let integration = app.store().integrations().get(&id).await?;
    settings_page(
        &session,
        &integration,
        flash,
        None,
        Extra::default(),
        StatusCode::OK,
    )
}

/// A form with no fields of its own.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /console/integrations/{id}/preflight`: runs the checks again and shows them.
pub async fn preflight(
    State(app): State<App>,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Result<Response, ConsoleError> {
    let integration = app.store().integrations().get(&id).await?;
    match service::rerun_preflight(&app, &id).await {
        Ok(checks) => settings_page(
            &session,
            &integration,
            None,
            Some(checks),
            Extra::default(),
            StatusCode::OK,
        ),
        Err(error) => {
            let errors = FieldErrors::from_api(error, &[])?;
            settings_page(
                &session,
                &integration,
                Some(Flash::error(errors.get("form").unwrap_or_default())),
                None,
                Extra::default(),
                StatusCode::BAD_GATEWAY,
            )
        }
    }
}

/// The native-login form.
#[derive(Debug, Deserialize)]
pub struct NativeLoginForm {
    /// `true` to enable, `false` to disable.
    pub enabled: String,
}

/// `POST /console/integrations/{id}/native-login`.
pub async fn native_login(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<NativeLoginForm>,
) -> Result<Response, ConsoleError> {
    let enabled = match form.enabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "enabled is {other:?}: expected true or false"
            )));
        }
    };
    let done = service::set_native_login(&app, &id, enabled, &session.actor(), &meta)
        .await
        .map_err(api_to_console)?;
    Ok(Flash::success(done.message).redirect(&format!("/console/integrations/{id}")))
}

/// The restrict-domains form: one domain per line (commas also separate).
#[derive(Debug, Deserialize)]
pub struct RestrictDomainsForm {
    /// The text of the editor.
    #[serde(default)]
    pub domains: String,
}

/// `POST /console/integrations/{id}/restrict-domains`.
pub async fn restrict_domains(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RestrictDomainsForm>,
) -> Result<Response, ConsoleError> {
    let domains: Vec<String> = form
        .domains
        .split(['\n', ','])
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    match service::set_restrict_domains(&app, &id, &domains, &session.actor(), &meta).await {
        Ok(saved) => {
            Ok(Flash::success(saved.message).redirect(&format!("/console/integrations/{id}")))
        }
        Err(error) => {
            let errors = FieldErrors::from_api(error, &["domains"])?;
            let integration = app.store().integrations().get(&id).await?;
            settings_page(
                &session,
                &integration,
                None,
                None,
                Extra {
                    domains_text: Some(form.domains),
                    errors,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// The credential-rotation form.
#[derive(Debug, Deserialize)]
pub struct RotateForm {
    /// `secret` or `certificate`.
    #[serde(default)]
    pub credential_kind: String,
    /// New client secret.
    #[serde(default)]
    pub client_secret: String,
    /// New certificate.
    #[serde(default)]
    pub certificate_pem: String,
    /// Its key.
    #[serde(default)]
    pub private_key_pem: String,
}

/// `POST /console/integrations/{id}/credential`.
pub async fn rotate_credential(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<RotateForm>,
) -> Result<Response, ConsoleError> {
    let use_certificate = form.credential_kind == "certificate";
    let input = if use_certificate {
        CredentialInput {
            client_secret: None,
            certificate_pem: some(&form.certificate_pem),
            private_key_pem: some(&form.private_key_pem),
        }
    } else {
        CredentialInput {
            client_secret: some(&form.client_secret),
            certificate_pem: None,
            private_key_pem: None,
        }
    };
    match service::rotate_credential(&app, &id, input, &session.actor(), &meta).await {
        Ok(_) => Ok(Flash::success(
            "Credential rotated: keybridge now signs in to Entra with the new one.",
        )
        .redirect(&format!("/console/integrations/{id}"))),
        Err(error) => {
            let mut errors = FieldErrors::from_api(
                error,
                &["client_secret", "certificate_pem", "private_key_pem"],
            )?;
            if let Some(general) = errors.get("form") {
                errors.add("client_secret", &general);
            }
            let integration = app.store().integrations().get(&id).await?;
            settings_page(
                &session,
                &integration,
                None,
                None,
                Extra {
                    domains_text: None,
                    errors,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// `POST /console/integrations/{id}/desktop-client`: the desktop-client zip (a POST, since
/// each download issues an install token).
pub async fn desktop_client(
    State(app): State<App>,
    meta: RequestMeta,
    session: ConsoleSession<AdminOnly>,
    Path(id): Path<String>,
    CsrfForm(Empty {}): CsrfForm<Empty>,
) -> Result<Response, ConsoleError> {
    let download = crate::services::desktop_client::build(&app, &id, None, &session.actor(), &meta)
        .await
        .map_err(api_to_console)?;
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", download.file_name))
            .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        download.bytes,
    )
        .into_response())
}

/// A service refusal outside a form: its message on an error page.
fn api_to_console(error: crate::error::ApiError) -> ConsoleError {
    if error.status() == StatusCode::NOT_FOUND {
        ConsoleError::NotFound
    } else if error.status().is_server_error() {
        ConsoleError::Internal(error.to_string())
    } else {
        ConsoleError::BadRequest(error.message().to_owned())
    }
}
