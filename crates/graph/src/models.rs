//! Graph resources as keybridge reads them. Field names follow Graph's JSON (camelCase);
//! properties this crate does not model are kept in `extra` so nothing is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A `user` ([user resource](https://learn.microsoft.com/graph/api/resources/user)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id (GUID).
    pub id: String,
    /// Sign-in name.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Primary e-mail address (nullable).
    #[serde(default)]
    pub mail: Option<String>,
    /// Whether the account may sign in (returned only when `$select`ed).
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// `Member` or `Guest` (guests cannot get passkeys).
    #[serde(default)]
    pub user_type: Option<String>,
    /// Other selected properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// Whether this is a guest (B2B) account.
    pub fn is_guest(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("guest"))
    }
}

/// One entry of a users delta page.
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    /// The user was created or changed (only changed properties may be present).
    Updated(User),
    /// The user was removed from the directory.
    Removed {
        /// Object id.
        id: String,
        /// `changed` (soft-deleted, restorable) or `deleted` (permanently).
        reason: String,
    },
}

/// A `group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Display name (not unique).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Mail alias.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Security group.
    #[serde(default)]
    pub security_enabled: Option<bool>,
    /// Mail-enabled.
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    /// Creation time (ISO 8601).
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Other properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A member of a group (a `directoryObject`: user, group, device, service principal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryObject {
    /// `#microsoft.graph.user`, `#microsoft.graph.group`, ...
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// Object id.
    pub id: String,
    /// For users.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Other properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Any authentication method of a user (`#microsoft.graph.fido2AuthenticationMethod`,
/// `#microsoft.graph.passwordAuthenticationMethod`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationMethod {
    /// The method's type.
    #[serde(rename = "@odata.type", default)]
    pub odata_type: String,
    /// Method id.
    pub id: String,
    /// Type-specific properties.
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// A FIDO2 passkey registered for a user (`fido2AuthenticationMethod`, entra.md §4.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Method {
    /// Method id: base64url(credential id) + one padding digit on the real service.
    pub id: String,
    /// Name shown to the user.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Registration time (ISO 8601).
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Authenticator model AAGUID (lowercase GUID).
    #[serde(default)]
    pub aa_guid: Option<String>,
    /// Authenticator model, when known from the FIDO metadata.
    #[serde(default)]
    pub model: Option<String>,
    /// SHA-1 thumbprints of the attestation chain.
    #[serde(default)]
    pub attestation_certificates: Vec<String>,
    /// `attested` or `notAttested`.
    #[serde(default)]
    pub attestation_level: Option<String>,
    /// `deviceBound` or `synced`.
    #[serde(default)]
    pub passkey_type: Option<String>,
    /// Other properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Fido2Method {
    /// The registration time, when present and well-formed.
    pub fn created(&self) -> Option<time::OffsetDateTime> {
        let text = self.created_date_time.as_deref()?;
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    }

    /// The credential id, decoded from the method id (padding-digit form or plain base64url).
    pub fn credential_id(&self) -> Option<Vec<u8>> {
        crate::odata::decode_credential_id(&self.id)
    }
}

/// `webauthnCredentialCreationOptions`: what the authenticator needs to create the passkey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptions {
    /// When the challenge stops being accepted.
    #[serde(default)]
    pub challenge_timeout_date_time: Option<String>,
    /// The WebAuthn options, to pass to the authenticator (copy `challenge` verbatim).
    pub public_key: PublicKeyCreationOptions,
    /// Other properties (`@odata.context`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `webauthnPublicKeyCredentialCreationOptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyCreationOptions {
    /// Relying party (`login.microsoft.com`).
    pub rp: RelyingParty,
    /// The user handle and names.
    pub user: UserEntity,
    /// The challenge, base64url; goes verbatim into clientDataJSON.
    pub challenge: String,
    /// Ceremony timeout in milliseconds.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Accepted key algorithms.
    #[serde(default)]
    pub pub_key_cred_params: Vec<CredentialParameters>,
    /// Credentials the user already has.
    #[serde(default)]
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Authenticator requirements.
    #[serde(default)]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    /// `direct`, `none`, ...
    #[serde(default)]
    pub attestation: Option<String>,
    /// Extension inputs (open type).
    #[serde(default)]
    pub extensions: Option<Value>,
    /// Other properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `webauthnPublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelyingParty {
    /// RP id.
    pub id: String,
    /// RP name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `webauthnPublicKeyCredentialUserEntity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// User handle (base64url).
    pub id: String,
    /// UPN.
    #[serde(default)]
    pub name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `webauthnPublicKeyCredentialParameters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialParameters {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// COSE algorithm (-7 ES256, -257 RS256).
    pub alg: i64,
}

/// `webauthnPublicKeyCredentialDescriptor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialDescriptor {
    /// Credential id (base64url).
    pub id: String,
    /// `public-key`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Transports.
    #[serde(default)]
    pub transports: Vec<String>,
}

/// `webauthnAuthenticatorSelectionCriteria`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `platform` or `cross-platform`.
    #[serde(default)]
    pub authenticator_attachment: Option<String>,
    /// Discoverable credential required.
    #[serde(default)]
    pub require_resident_key: Option<bool>,
    /// `required`, `preferred`, `discouraged`.
    #[serde(default)]
    pub user_verification: Option<String>,
}

/// The authenticator's answer to register as a FIDO2 method (entra.md §4.3). Binary fields
/// are raw bytes; they are sent base64url without padding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFido2Method {
    /// Name shown to the user (optional).
    pub display_name: Option<String>,
    /// The credential id from authenticator data.
    pub credential_id: Vec<u8>,
    /// The exact clientDataJSON bytes the authenticator signed.
    pub client_data_json: Vec<u8>,
    /// The CBOR attestation object.
    pub attestation_object: Vec<u8>,
    /// Client extension outputs (open type; `{}` when none).
    pub client_extension_results: Value,
    /// The authenticator's AAGUID, used to recognise the method after an uncertain POST when
    /// its id is not derived from the credential id.
    pub aaguid: Option<uuid::Uuid>,
}

/// The FIDO2 authentication-methods policy (`fido2AuthenticationMethodConfiguration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Policy {
    /// `Fido2`.
    #[serde(default)]
    pub id: Option<String>,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub state: Option<String>,
    /// Must be true for provisioning.
    #[serde(default)]
    pub is_self_service_registration_allowed: Option<bool>,
    /// Attestation enforced at registration (deprecated in favour of profiles).
    #[serde(default)]
    pub is_attestation_enforced: Option<bool>,
    /// AAGUID allow/block list (deprecated in favour of profiles).
    #[serde(default)]
    pub key_restrictions: Option<KeyRestrictions>,
    /// Who may use the method.
    #[serde(default)]
    pub include_targets: Vec<PolicyTarget>,
    /// Who may not (wins over include).
    #[serde(default)]
    pub exclude_targets: Vec<PolicyTarget>,
    /// Id of the default passkey profile, once profiles are enabled.
    #[serde(default)]
    pub default_passkey_profile: Option<String>,
    /// Passkey profiles (open shape).
    #[serde(default)]
    pub passkey_profiles: Vec<Value>,
    /// Other properties.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Fido2Policy {
    /// Whether keybridge can provision passkeys under this policy (enabled, self-service on).
    pub fn allows_provisioning(&self) -> bool {
        self.state.as_deref() == Some("enabled")
            && self.is_self_service_registration_allowed == Some(true)
    }
}

/// `fido2KeyRestrictions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRestrictions {
    /// AAGUIDs.
    #[serde(default)]
    pub aa_guids: Vec<String>,
    /// `allow` or `block`.
    #[serde(default)]
    pub enforcement_type: Option<String>,
    /// Whether the list applies.
    #[serde(default)]
    pub is_enforced: Option<bool>,
}

/// An include or exclude target of the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTarget {
    /// `all_users` or a group/user id.
    pub id: String,
    /// `group` or `user`.
    #[serde(default)]
    pub target_type: Option<String>,
    /// Other properties (`isRegistrationRequired`, `allowedPasskeyProfiles`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The fields of the FIDO2 policy to change; unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2PolicyPatch {
    /// `enabled` or `disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Self-service registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_self_service_registration_allowed: Option<bool>,
    /// Attestation enforcement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_attestation_enforced: Option<bool>,
    /// AAGUID restrictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_restrictions: Option<KeyRestrictions>,
    /// Replaces the include targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_targets: Option<Vec<PolicyTarget>>,
    /// Replaces the exclude targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_targets: Option<Vec<PolicyTarget>>,
}
