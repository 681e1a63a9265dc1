//! Connecting, changing and removing integrations (issue 6, lifecycle 1–3).
//!
//! Creating one runs, in order: local validation (core types), a token from Entra, the
//! permission self-test, find-or-create of the four groups, the pre-flight checks (which
//! look for those groups among the policy's targets), and only then one transaction that writes the integration, its groups, the audit event and the
//! first directory-sync job. A failure at any step leaves no integration behind (groups found
//! or created before it are harmless and are found again on the next attempt).

use keybridge_core::{
    ApplicationName, ClientId, EmailAddress, GroupRole, RestrictDomains, TenantId,
};
use keybridge_graph::{CertificateCredential, ClientCredential, GraphClient, PermissionReport};
use keybridge_store::{
    Integration, IntegrationCredential, IntegrationGroups, NewAuditEvent, NewIntegration,
    SecretString,
};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult, FieldProblem, credential_error, graph_error};
use crate::jobs;
use crate::services::preflight::{self, PreflightCheck};

/// keybridge's AAGUID, which the tenant's policy must accept.
pub const KEYBRIDGE_AAGUID: &str = keybridge_authenticator::AAGUID_STRING;

/// A credential as sent by the admin: a client secret, or a certificate and its key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    /// Client secret value.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Certificate, PEM.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Its private key, PEM (unencrypted PKCS#8 or PKCS#1 RSA).
    #[serde(default)]
    pub private_key_pem: Option<String>,
}

/// A checked credential in both forms: for Graph and for the store.
pub struct ParsedCredential {
    graph: ClientCredential,
    stored: IntegrationCredential,
    /// The input field that carries it (`client_secret` or `certificate_pem`).
    field: &'static str,
}

impl CredentialInput {
    /// Checks that exactly one kind is given and that it is usable.
    pub fn parse(self) -> ApiResult<ParsedCredential> {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match (
            has(&self.client_secret),
            has(&self.certificate_pem),
            has(&self.private_key_pem),
        ) {
            (true, false, false) => {
                let secret = self.client_secret.unwrap_or_default();
                let graph = ClientCredential::secret(secret.clone())
                    .map_err(|e| credential_error(e, "client_secret"))?;
                Ok(ParsedCredential {
                    graph,
                    stored: IntegrationCredential::ClientSecret(SecretString::new(secret.trim())),
                    field: "client_secret",
                })
            }
            (false, true, true) => {
                let cert = self.certificate_pem.unwrap_or_default();
                let key = self.private_key_pem.unwrap_or_default();
                let parsed = CertificateCredential::from_pem_parts(&cert, &key)
                    .map_err(|e| credential_error(e, "certificate_pem"))?;
                Ok(ParsedCredential {
                    graph: ClientCredential::Certificate(Box::new(parsed)),
                    stored: IntegrationCredential::Certificate {
                        certificate_pem: cert,
                        private_key_pem: SecretString::new(key),
                    },
                    field: "certificate_pem",
                })
            }
            (false, true, false) => Err(ApiError::invalid(
                "private_key_pem",
                "the private key of the certificate is missing: paste it in PEM form \
                 (-----BEGIN PRIVATE KEY-----)",
            )),
            (false, false, true) => Err(ApiError::invalid(
                "certificate_pem",
                "the certificate is missing: paste the certificate (-----BEGIN CERTIFICATE-----) \
                 that was uploaded to the app registration, next to its private key",
            )),
            (false, false, false) => Err(ApiError::invalid(
                "credential",
                "give either client_secret, or certificate_pem with private_key_pem",
            )),
            (true, _, _) => Err(ApiError::invalid(
                "credential",
                "give either a client secret or a certificate with its key, not both",
            )),
        }
    }
}

/// `POST /api/v1/integrations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    /// Application name (letters, digits, spaces, hyphens, underscores).
    pub name: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Certificate, PEM.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Private key, PEM.
    #[serde(default)]
    pub private_key_pem: Option<String>,
    /// Support e-mail shown by the desktop client.
    #[serde(default)]
    pub support_email: Option<String>,
}

/// How the integration authenticates, without secrets.
#[derive(Debug, Serialize)]
pub struct CredentialView {
    /// `client_secret` or `certificate`.
    pub kind: &'static str,
    /// Certificate subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
    /// Certificate expiry (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    /// Certificate SHA-1 thumbprint, as the admin center shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_thumbprint: Option<String>,
}

/// Group object ids.
#[derive(Debug, Serialize)]
pub struct GroupsView {
    /// `<name> (Eligible for Pairing)`.
    pub eligible_for_pairing: Option<String>,
    /// `<name> (Client Paired with keybridge)`.
    pub paired_with_keybridge: Option<String>,
    /// `<name> (Client Paired with Entra)`.
    pub paired_with_entra: Option<String>,
    /// `Users Not Yet Enrolled`.
    pub not_yet_enrolled: Option<String>,
}

/// An integration as the API shows it (never its secret or private key).
#[derive(Debug, Serialize)]
pub struct IntegrationView {
    /// Id.
    pub id: String,
    /// Application name.
    pub name: String,
    /// The name without spaces.
    pub internal_id: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// The credential's kind and public details.
    pub credential: CredentialView,
    /// Native Entra login experience.
    pub native_login_enabled: bool,
    /// Allowed user domains (empty: all).
    pub restrict_domains: Vec<String>,
    /// Support e-mail.
    pub support_email: Option<String>,
    /// The four groups.
    pub groups: GroupsView,
    /// Last directory sync (RFC 3339).
    pub last_sync_at: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl From<&Integration> for IntegrationView {
    fn from(i: &Integration) -> IntegrationView {
        let credential = match &i.credential {
            IntegrationCredential::ClientSecret(_) => CredentialView {
                kind: "client_secret",
                certificate_subject: None,
                certificate_not_after: None,
                certificate_thumbprint: None,
            },
            IntegrationCredential::Certificate {
                certificate_pem,
                private_key_pem,
            } => {
                let parsed = CertificateCredential::from_pem_parts(
                    certificate_pem,
                    private_key_pem.expose(),
                )
                .ok();
                CredentialView {
                    kind: "certificate",
                    certificate_subject: parsed.as_ref().map(|c| c.subject().to_owned()),
                    certificate_not_after: parsed.as_ref().and_then(|c| {
                        c.not_after()
                            .format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    }),
                    certificate_thumbprint: parsed.as_ref().map(|c| c.thumbprint_sha1()),
                }
            }
        };
        IntegrationView {
            id: i.id.clone(),
            name: i.name.clone(),
            internal_id: i.internal_id.clone(),
            tenant_id: i.tenant_id.clone(),
            client_id: i.client_id.clone(),
            credential,
            native_login_enabled: i.native_login_enabled,
            restrict_domains: i.restrict_domains.clone(),
            support_email: i.support_email.clone(),
            groups: GroupsView {
                eligible_for_pairing: i.groups.eligible.clone(),
                paired_with_keybridge: i.groups.paired_keybridge.clone(),
                paired_with_entra: i.groups.paired_entra.clone(),
                not_yet_enrolled: i.groups.not_enrolled.clone(),
            },
            last_sync_at: i.last_sync_at.map(|t| t.to_rfc3339()),
            created_at: i.created_at.to_rfc3339(),
            updated_at: i.updated_at.to_rfc3339(),
        }
    }
}

/// The permission self-test as the API shows it.
#[derive(Debug, Serialize)]
pub struct PermissionsView {
    /// Granted application permissions (empty when unknown).
    pub granted: Vec<String>,
    /// Missing optional permissions, with what they are for.
    pub missing_optional: Vec<String>,
    /// Whether the token's permissions could be read.
    pub known: bool,
}

/// The answer to a creation.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The integration.
    pub integration: IntegrationView,
    /// Permission self-test.
    pub permissions: PermissionsView,
    /// Pre-flight checks of the tenant's FIDO2 policy.
    pub preflight: Vec<PreflightCheck>,
    /// The queued first directory sync.
    pub sync_job_id: String,
}

/// Gets a token and runs the permission self-test; missing required permissions are a 422
/// naming each one.
pub async fn verify_access(
    client: &GraphClient,
    credential_field: &str,
) -> ApiResult<PermissionReport> {
    let report = client
        .check_permissions()
        .await
        .map_err(|e| graph_error(e, credential_field))?;
    let missing = report.missing_required();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "permission_missing",
            format!(
                "permissions: the app registration lacks {}: {}",
                names.join(", "),
                keybridge_graph::permissions::GRANT_ADVICE
            ),
        )
        .with_field("permissions")
        .with_details(
            missing
                .iter()
                .map(|p| FieldProblem {
                    field: format!("permissions.{}", p.name),
                    message: p.to_string(),
                })
                .collect(),
        ));
    }
    Ok(report)
}

fn permissions_view(report: &PermissionReport) -> PermissionsView {
    match report {
        PermissionReport::Known { granted, missing } => PermissionsView {
            granted: granted.clone(),
            missing_optional: missing
                .iter()
                .filter(|p| p.optional)
                .map(ToString::to_string)
                .collect(),
            known: true,
        },
        PermissionReport::Unknown => PermissionsView {
            granted: Vec::new(),
            missing_optional: Vec::new(),
            known: false,
        },
    }
}

/// Connects a tenant. See the module docs for the order of the steps.
pub async fn create(
    app: &App,
    input: CreateIntegration,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Created> {
    let name = ApplicationName::parse(&input.name)?;
    let tenant = TenantId::parse(&input.tenant_id)?;
    let client_id = ClientId::parse(&input.client_id)?;
    let support_email = parse_support_email(input.support_email.as_deref())?;
    let credential = CredentialInput {
        client_secret: input.client_secret,
        certificate_pem: input.certificate_pem,
        private_key_pem: input.private_key_pem,
    }
    .parse()?;

    // Cheap refusals before Entra is asked anything.
    let internal_id = name.internal_id();
    if let Some(existing) = app
        .store()
        .integrations()
        .find_by_internal_id(&internal_id)
        .await?
    {
        return Err(duplicate_name(&name, &existing));
    }

    let client = app
        .graph()
        .client(
            &tenant.to_string(),
            &client_id.to_string(),
            credential.graph,
        )
        .map_err(|e| graph_error(e, credential.field))?;
    let report = verify_access(&client, credential.field).await?;
    let groups = ensure_groups(&client, &name).await?;
    let checks = preflight::run(&client, KEYBRIDGE_AAGUID, &our_groups(&groups)).await;

    let mut tx = app.store().begin().await?;
    let integration = tx
        .integrations()
        .create(NewIntegration {
            name: name.to_string(),
            internal_id,
            tenant_id: tenant.to_string(),
            client_id: client_id.to_string(),
            credential: credential.stored,
            support_email: support_email.map(|e| e.to_string()),
        })
        .await?;
    tx.integrations()
        .set_groups(&integration.id, &groups)
        .await?;
    let job = tx
        .jobs()
        .enqueue(app.attempts(jobs::directory_sync(&integration.id)))
        .await?;
    let blocking: Vec<&str> = checks
        .iter()
        .filter(|c| c.status == preflight::CheckStatus::Blocking)
        .map(|c| c.check)
        .collect();
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.create")
                    .target(format!("integration:{}", integration.id))
                    .details(serde_json::json!({
                        "name": integration.name,
                        "tenant_id": integration.tenant_id,
                        "client_id": integration.client_id,
                        "credential": credential.field,
                        "preflight_blocking": blocking,
                    })),
            ),
        )
        .await?;
    tx.commit().await?;
    let integration = app.store().integrations().get(&integration.id).await?;
    Ok(Created {
        integration: IntegrationView::from(&integration),
        permissions: permissions_view(&report),
        preflight: checks,
        sync_job_id: job.id().to_owned(),
    })
}

fn duplicate_name(name: &ApplicationName, existing: &Integration) -> ApiError {
    let message = if existing.name == name.as_str() {
        format!("name: an integration named \"{name}\" already exists: choose another name")
    } else {
        format!(
            "name: \"{name}\" has the internal id \"{}\" (the name without spaces), which the \
             integration \"{}\" already uses: choose a name that differs by more than spaces",
            existing.internal_id, existing.name
        )
    };
    ApiError::new(axum::http::StatusCode::CONFLICT, "duplicate", message).with_field("name")
}

fn parse_support_email(text: Option<&str>) -> ApiResult<Option<EmailAddress>> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => Ok(Some(EmailAddress::parse(text)?)),
    }
}

fn our_groups(groups: &IntegrationGroups) -> preflight::OurGroups {
    preflight::OurGroups {
        paired_keybridge: groups.paired_keybridge.clone(),
        all: [
            &groups.eligible,
            &groups.paired_keybridge,
            &groups.paired_entra,
            &groups.not_enrolled,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect(),
    }
}

/// Finds or creates the four groups named after the application.
async fn ensure_groups(
    client: &GraphClient,
    name: &ApplicationName,
) -> ApiResult<IntegrationGroups> {
    let mut groups = IntegrationGroups::default();
    for (role, display_name) in name.group_plan().group_names() {
        let description = format!(
            "Kept in step by keybridge for the integration \"{name}\"; do not edit its members"
        );
        let group = client
            .ensure_security_group(&display_name, Some(&description))
            .await
            .map_err(|e| graph_error(e, "credential"))?;
        let slot = match role {
            GroupRole::EligibleForPairing => &mut groups.eligible,
            GroupRole::PairedWithKeybridge => &mut groups.paired_keybridge,
            GroupRole::PairedWithEntra => &mut groups.paired_entra,
            GroupRole::NotYetEnrolled => &mut groups.not_enrolled,
        };
        *slot = Some(group.id);
    }
    Ok(groups)
}

/// `PATCH /api/v1/integrations/{id}`: only the support e-mail may change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchIntegration {
    /// Refused when different.
    #[serde(default)]
    pub name: Option<String>,
    /// Refused when different.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Refused when different.
    #[serde(default)]
    pub client_id: Option<String>,
    /// New support e-mail (`""` clears it).
    #[serde(default)]
    pub support_email: Option<String>,
}

/// Applies a PATCH.
pub async fn patch(
    app: &App,
    id: &str,
    input: PatchIntegration,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<IntegrationView> {
    let integration = app.store().integrations().get(id).await?;
    let immutable =
        |field: &str, given: &Option<String>, current: &str, same: bool| -> ApiResult<()> {
            match given {
            Some(value) if !same && value.trim() != current => Err(ApiError::invalid(
                field,
                format!(
                    "cannot be changed: delete the integration and add it again (it is {current:?})"
                ),
            )
            .with_code("immutable_field")),
            _ => Ok(()),
        }
        };
    let same_guid = |given: &Option<String>, current: &str, tenant: bool| -> bool {
        given.as_deref().is_some_and(|g| {
            if tenant {
                TenantId::parse(g).is_ok_and(|t| t.to_string() == current)
            } else {
                ClientId::parse(g).is_ok_and(|c| c.to_string() == current)
            }
        })
    };
    immutable("name", &input.name, &integration.name, false)?;
    immutable(
        "tenant_id",
        &input.tenant_id,
        &integration.tenant_id,
        same_guid(&input.tenant_id, &integration.tenant_id, true),
    )?;
    immutable(
        "client_id",
        &input.client_id,
        &integration.client_id,
        same_guid(&input.client_id, &integration.client_id, false),
    )?;
    if let Some(email) = &input.support_email {
        let parsed = parse_support_email(Some(email))?;
        let mut tx = app.store().begin().await?;
        tx.integrations()
            .set_support_email(id, parsed.as_ref().map(ToString::to_string).as_deref())
            .await?;
        tx.audit()
            .append(
                meta.stamp(
                    NewAuditEvent::new(actor, "integration.update")
                        .target(format!("integration:{id}"))
                        .details(
                            serde_json::json!({"support_email": parsed.map(|e| e.to_string())}),
                        ),
                ),
            )
            .await?;
        tx.commit().await?;
    }
    Ok(IntegrationView::from(
        &app.store().integrations().get(id).await?,
    ))
}

/// Replaces the credential after getting a token with it and checking its permissions.
pub async fn rotate_credential(
    app: &App,
    id: &str,
    input: CredentialInput,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<IntegrationView> {
    let integration = app.store().integrations().get(id).await?;
    let credential = input.parse()?;
    let client = app
        .graph()
        .client(
            &integration.tenant_id,
            &integration.client_id,
            credential.graph,
        )
        .map_err(|e| graph_error(e, credential.field))?;
    verify_access(&client, credential.field).await?;
    let mut tx = app.store().begin().await?;
    tx.integrations()
        .rotate_credential(id, &credential.stored)
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.credential.rotate")
                    .target(format!("integration:{id}"))
                    .details(serde_json::json!({"credential": credential.field})),
            ),
        )
        .await?;
    tx.commit().await?;
    app.graph().forget(id);
    Ok(IntegrationView::from(
        &app.store().integrations().get(id).await?,
    ))
}

/// Deletes an integration and, by cascade, its users and devices.
pub async fn delete(app: &App, id: &str, actor: &str, meta: &RequestMeta) -> ApiResult<()> {
    let integration = app.store().integrations().get(id).await?;
    let mut tx = app.store().begin().await?;
    tx.integrations().delete(id).await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.delete")
                    .target(format!("integration:{id}"))
                    .details(serde_json::json!({"name": integration.name})),
            ),
        )
        .await?;
    tx.commit().await?;
    app.graph().forget(id);
    Ok(())
}

/// The answer to `PUT .../native-login`.
#[derive(Debug, Serialize)]
pub struct NativeLoginView {
    /// The new setting.
    pub native_login_enabled: bool,
    /// The provisioning job queued when it was enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning_job_id: Option<String>,
    /// What the change does.
    pub message: &'static str,
}

/// What enabling does.
pub const NATIVE_LOGIN_ENABLED_MESSAGE: &str = "Native Entra login experience enabled: every user \
    already paired with keybridge gets a passkey registered in Microsoft Entra, and users who pair \
    from now on get one as soon as they pair.";
/// What disabling does.
pub const NATIVE_LOGIN_DISABLED_MESSAGE: &str = "Native Entra login experience disabled: no new \
    passkeys are registered in Microsoft Entra. Passkeys already registered stay in Entra and keep \
    working until the user unpairs or an admin deletes them.";

/// Turns the native Entra login experience on or off.
pub async fn set_native_login(
    app: &App,
    id: &str,
    enabled: bool,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<NativeLoginView> {
    let integration = app.store().integrations().get(id).await?;
    let mut tx = app.store().begin().await?;
    tx.integrations().set_native_login(id, enabled).await?;
    let job = if enabled && !integration.native_login_enabled {
        Some(
            tx.jobs()
                .enqueue(app.attempts(jobs::provision_paired_users(id)))
                .await?,
        )
    } else {
        None
    };
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.native_login")
                    .target(format!("integration:{id}"))
                    .details(serde_json::json!({"enabled": enabled})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(NativeLoginView {
        native_login_enabled: enabled,
        provisioning_job_id: job.map(|j| j.id().to_owned()),
        message: if enabled {
            NATIVE_LOGIN_ENABLED_MESSAGE
        } else {
            NATIVE_LOGIN_DISABLED_MESSAGE
        },
    })
}

/// The answer to a saved restrict-domains list.
#[derive(Debug, Serialize)]
pub struct RestrictDomainsSaved {
    /// `Restrict domains saved successfully`.
    pub message: &'static str,
    /// The list as saved: normalised, sorted, without duplicates.
    pub domains: Vec<String>,
}

/// Validates, normalises and saves the restrict-domains list.
pub async fn set_restrict_domains(
    app: &App,
    id: &str,
    domains: &[String],
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<RestrictDomainsSaved> {
    app.store().integrations().get(id).await?;
    let parsed = RestrictDomains::parse(domains)?;
    let saved: Vec<String> = parsed
        .domains()
        .iter()
        .map(|d| d.as_str().to_owned())
        .collect();
    let mut tx = app.store().begin().await?;
    tx.integrations().set_restrict_domains(id, &saved).await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.restrict_domains")
                    .target(format!("integration:{id}"))
                    .details(serde_json::json!({"domains": saved})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(RestrictDomainsSaved {
        message: "Restrict domains saved successfully",
        domains: saved,
    })
}

/// Runs the pre-flight checks again for a stored integration.
pub async fn rerun_preflight(app: &App, id: &str) -> ApiResult<Vec<PreflightCheck>> {
    let integration = app.store().integrations().get(id).await?;
    let client = app
        .graph()
        .for_integration(&integration)
        .map_err(|e| graph_error(e, "credential"))?;
    Ok(preflight::run(&client, KEYBRIDGE_AAGUID, &our_groups(&integration.groups)).await)
}

/// Queues a directory sync now.
pub async fn queue_sync(app: &App, id: &str, actor: &str, meta: &RequestMeta) -> ApiResult<String> {
    app.store().integrations().get(id).await?;
    let mut tx = app.store().begin().await?;
    let job = tx
        .jobs()
        .enqueue(app.attempts(jobs::directory_sync(id)))
        .await?;
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "integration.sync")
                    .target(format!("integration:{id}"))
                    .details(serde_json::json!({"job_id": job.id()})),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(job.id().to_owned())
}
