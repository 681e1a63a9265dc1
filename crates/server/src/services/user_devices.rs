//! What User Management shows for one user beyond the list row: the phones paired with
//! keybridge with their passkeys and workstations (Device Details, from the store), and every
//! FIDO2 method Entra holds for the user (read through Graph), ours marked.

use keybridge_graph::Fido2Method;
use keybridge_store::{Credential, CredentialStatus, Timestamp, WorkstationStatus};
use serde::Serialize;

use crate::app::App;
use crate::error::{ApiError, ApiResult, graph_error};

/// One paired phone as Device Details' "Mobile Devices" tab shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MobileDevice {
    /// Device ID (the phone's row id).
    pub device_id: String,
    /// The name the phone gave.
    pub name: String,
    /// Model.
    pub model: String,
    /// Mobile OS.
    pub os: String,
    /// Paired (RFC 3339).
    pub created_at: String,
    /// Last request from the phone (RFC 3339).
    pub last_seen_at: Option<String>,
    /// When its unpairing was requested (RFC 3339): the unpair job is deleting its passkey
    /// from Entra, then the phone.
    pub unpairing_since: Option<String>,
    /// The passkeys the phone holds for the user ("Authenticators").
    pub authenticators: Vec<Authenticator>,
    /// The workstations paired with the phone.
    pub workstations: Vec<WorkstationView>,
    /// The account (UPN) the phone signs in as.
    pub username: String,
    /// The Entra tenant ("Domain ID").
    pub domain_id: String,
    /// Other accounts (their Device IDs) the same phone proved it holds when it paired a
    /// workstation: non-empty means one authenticator holds several accounts.
    pub other_accounts_on_device: Vec<String>,
    /// The console's warning when the phone holds several accounts.
    pub warning: Option<String>,
}

/// A passkey one of our phones holds.
#[derive(Debug, Clone, Serialize)]
pub struct Authenticator {
    /// The WebAuthn credential id (base64url): the FIDO ID.
    pub fido_id: String,
    /// The relying party ("Web Domains"), `login.microsoft.com` for Entra.
    pub web_domain: String,
    /// `created`, `registered`, `removed` or `failed`.
    pub status: &'static str,
    /// Entra's method id once registered.
    pub entra_method_id: Option<String>,
    /// Last sign-in with it (RFC 3339).
    pub last_used_at: Option<String>,
}

/// A workstation paired with a phone.
#[derive(Debug, Clone, Serialize)]
pub struct WorkstationView {
    /// Workstation ID.
    pub id: String,
    /// Computer name.
    pub name: String,
    /// `active` or `revoked`.
    pub status: &'static str,
}

/// A FIDO2 method Entra holds for the user.
#[derive(Debug, Clone, Serialize)]
pub struct EntraMethod {
    /// Entra's method id.
    pub id: String,
    /// Device Name (Entra's display name).
    pub device_name: String,
    /// Last Active: the last sign-in keybridge saw with it (ours only; Graph does not say).
    pub last_active: Option<String>,
    /// Registered (RFC 3339, as Entra gives it).
    pub created: Option<String>,
    /// The authenticator model, when Entra knows it.
    pub model: Option<String>,
    /// The authenticator's AAGUID.
    pub aaguid: Option<String>,
    /// SHA-1 thumbprints of its attestation certificates.
    pub attestation_certificates: Vec<String>,
    /// One of our phones holds it.
    pub ours: bool,
}

/// The phones paired with keybridge for a user, newest first.
pub async fn mobile_devices(app: &App, user_id: &str) -> ApiResult<Vec<MobileDevice>> {
    let store = app.store();
    let user = store.users().get(user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    let credentials = store.credentials().list_for_user(user_id).await?;
    let mut devices = Vec::new();
    for phone in store.phones().list_for_user(user_id).await? {
        let workstations = store
            .workstations()
            .list_for_phone(&phone.id)
            .await?
            .into_iter()
            .map(|w| WorkstationView {
                id: w.id,
                name: w.name,
                status: match w.status {
                    WorkstationStatus::Active => "active",
                    WorkstationStatus::Revoked => "revoked",
                },
            })
            .collect();
        let other_accounts_on_device = other_accounts_on_device(app, &phone.id).await?;
        let warning = several_accounts_warning(&other_accounts_on_device);
        devices.push(MobileDevice {
            other_accounts_on_device,
            warning,
            authenticators: credentials
                .iter()
                .filter(|c| c.phone_id == phone.id)
                .map(|c| Authenticator {
                    fido_id: c.credential_id.clone(),
                    web_domain: c.rp_id.clone(),
                    status: c.status.as_str(),
                    entra_method_id: c.entra_method_id.clone(),
                    last_used_at: c.last_used_at.map(Timestamp::to_rfc3339),
                })
                .collect(),
            workstations,
            device_id: phone.id,
            name: phone.name,
            model: phone.model,
            os: phone.os,
            created_at: phone.created_at.to_rfc3339(),
            last_seen_at: phone.last_seen_at.map(Timestamp::to_rfc3339),
            unpairing_since: phone.unpairing_at.map(Timestamp::to_rfc3339),
            username: user.upn.clone(),
            domain_id: integration.tenant_id.clone(),
        });
    }
    devices.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Ok(devices)
}

/// The other accounts (phone rows, i.e. Device IDs) that the authenticator behind `phone_id`
/// proved it holds: a workstation paired for several accounts of one phone links them all.
pub async fn other_accounts_on_device(app: &App, phone_id: &str) -> ApiResult<Vec<String>> {
    let store = app.store();
    let mut others: Vec<String> = Vec::new();
    for workstation in store.workstations().list_for_phone(phone_id).await? {
        for other in store.workstations().phones(&workstation.id).await? {
            if other != phone_id && !others.contains(&other) {
                others.push(other);
            }
        }
    }
    Ok(others)
}

/// What admins are told about an authenticator that holds several accounts: Windows security
/// keys are known to pick the last account added, so the reason the phone asks matters.
pub fn several_accounts_warning(other_accounts: &[String]) -> Option<String> {
    (!other_accounts.is_empty()).then(|| {
        format!(
            "This phone holds {} accounts: each sign-in names its account, and the phone asks \
             the user to choose when several of its passkeys could answer.",
            other_accounts.len() + 1
        )
    })
}

/// Whether Entra's method is the one a credential of ours became: by the method id recorded
/// at registration, else by the credential id Entra's method id is derived from.
fn is_ours(method: &Fido2Method, credentials: &[Credential]) -> Option<usize> {
    credentials.iter().position(|c| {
        c.status != CredentialStatus::Removed
            && (c.entra_method_id.as_deref() == Some(method.id.as_str())
                || method
                    .id
                    .strip_prefix(c.credential_id.as_str())
                    .is_some_and(|rest| rest.len() <= 1))
    })
}

/// Every FIDO2 method Entra holds for the user (ours marked), read now through Graph.
pub async fn entra_methods(app: &App, user_id: &str) -> ApiResult<Vec<EntraMethod>> {
    let store = app.store();
    let user = store.users().get(user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    let credentials = store.credentials().list_for_user(user_id).await?;
    let client = app
        .graph()
        .for_integration(&integration)
        .map_err(|e| graph_error(e, "credential"))?;
    let methods = client
        .list_fido2_methods(&user.entra_object_id)
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "entra_unavailable",
                format!(
                    "Entra's FIDO2 methods for {} could not be read: {e}; try again in a moment",
                    user.upn
                ),
            )
        })?;
    Ok(methods
        .into_iter()
        .map(|method| {
            let ours = is_ours(&method, &credentials).map(|i| &credentials[i]);
            EntraMethod {
                device_name: method
                    .display_name
                    .clone()
                    .unwrap_or_else(|| "(no name)".to_owned()),
                last_active: ours.and_then(|c| c.last_used_at.map(Timestamp::to_rfc3339)),
                created: method.created_date_time.clone(),
                model: method.model.clone(),
                aaguid: method.aa_guid.clone(),
                attestation_certificates: method.attestation_certificates.clone(),
                ours: ours.is_some(),
                id: method.id,
            }
        })
        .collect())
}
