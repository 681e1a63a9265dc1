//! The emulated tenant: directory objects, the app registration, the FIDO2 policy, and sign-ins.
//! These are entra-sim's own types (never shared with a Graph client); Graph's JSON is produced
//! from them by the handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The whole emulated tenant, as persisted in the snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The directory (tenant) id.
    pub tenant_id: Uuid,
    /// `<name>.onmicrosoft.com`.
    pub initial_domain: String,
    /// The verified custom domain that UPNs and mails use.
    pub verified_domain: String,
    /// The one app registration keybridge signs in as.
    pub app: AppRegistration,
    /// Users by object id (including soft-deleted ones, which carry `deleted_date_time`).
    pub users: BTreeMap<Uuid, User>,
    /// Groups by object id.
    pub groups: BTreeMap<Uuid, Group>,
    /// Hard-deleted users: object id → change sequence number of the deletion (for delta).
    pub tombstones: BTreeMap<Uuid, u64>,
    /// Last change sequence number handed out (delta tokens are built on it).
    pub change_seq: u64,
    /// The FIDO2 authentication-methods policy.
    pub policy: Fido2Policy,
    /// Completed or refused sign-in ceremonies, newest last.
    pub sign_ins: Vec<SignInRecord>,
    /// Secret guarding the control API.
    pub control_token: String,
    /// Key (hex) that seals FIDO2 challenges so they are stateless, like Entra's.
    pub challenge_key: String,
    /// UPN (lowercase) → object id; rebuilt after loading.
    #[serde(skip)]
    pub upn_index: HashMap<String, Uuid>,
}

/// The app registration and its service principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    /// Application (client) id.
    pub client_id: Uuid,
    /// Object id of the service principal (the `oid`/`sub` of app tokens).
    pub service_principal_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Client secrets.
    pub secrets: Vec<ClientSecret>,
    /// Certificate credentials.
    pub certificates: Vec<CertificateCredential>,
    /// Application permissions granted (admin-consented) to the app.
    pub granted_roles: Vec<String>,
}

/// A client secret: its id (what admins often paste by mistake) and value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// The secret's id (`keyId`).
    pub key_id: Uuid,
    /// The secret value.
    pub value: String,
    /// After this instant the secret is refused with AADSTS7000222.
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
}

/// A certificate credential: the certificate only (the private key stays with the client).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCredential {
    /// The credential's id.
    pub key_id: Uuid,
    /// DER, standard base64.
    pub der_base64: String,
}

/// A directory user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id.
    pub id: Uuid,
    /// UPN.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// Given name.
    pub given_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Mail (nullable).
    pub mail: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Sign-in allowed.
    pub account_enabled: bool,
    /// `Member` or `Guest`.
    pub user_type: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// Soft-deletion time (the user is then invisible except to delta).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub deleted_date_time: Option<OffsetDateTime>,
    /// Change sequence number of the last change (delta query).
    pub change_seq: u64,
    /// WebAuthn user handle (base64url, 48 bytes), stable per user \[I\].
    pub webauthn_user_id: String,
    /// The user's FIDO2 methods.
    pub fido2_methods: Vec<Fido2Method>,
}

/// A registered FIDO2 security key or passkey.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Method {
    /// Graph id: base64url(credentialId) + padding digit.
    pub id: String,
    /// Credential id, base64url without padding.
    pub credential_id: String,
    /// Display name.
    pub display_name: String,
    /// AAGUID, lowercase GUID string.
    pub aa_guid: String,
    /// Model from metadata, when known.
    pub model: Option<String>,
    /// SHA-1 thumbprints (lowercase hex) of the attestation chain.
    pub attestation_certificates: Vec<String>,
    /// `attested` or `notAttested`.
    pub attestation_level: String,
    /// `deviceBound` or `synced`.
    pub passkey_type: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// Last sign-in with it.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_date_time: Option<OffsetDateTime>,
    /// COSE public key (base64url), absent for methods seeded without a key.
    pub public_key_cose: Option<String>,
    /// Last signature counter seen.
    pub sign_count: u32,
    /// Backup eligibility (BE) at registration.
    pub backup_eligible: bool,
}

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    pub id: Uuid,
    /// Display name (not unique).
    pub display_name: String,
    /// Description.
    pub description: Option<String>,
    /// Mail nickname.
    pub mail_nickname: String,
    /// Mail-enabled.
    pub mail_enabled: bool,
    /// Security-enabled.
    pub security_enabled: bool,
    /// `groupTypes`.
    pub group_types: Vec<String>,
    /// Visibility.
    pub visibility: Option<String>,
    /// Security identifier (`S-1-12-1-...`).
    pub security_identifier: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// Member user ids.
    pub members: BTreeSet<Uuid>,
}

/// The FIDO2 authentication-methods policy (§5 of the reference).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fido2Policy {
    /// `enabled` or `disabled`.
    pub state: String,
    /// Users or groups excluded.
    pub exclude_targets: Vec<PolicyTarget>,
    /// Users or groups included (`all_users` or a group id).
    pub include_targets: Vec<PolicyTarget>,
    /// Allow self-service setup.
    pub is_self_service_registration_allowed: bool,
    /// Attestation enforced.
    pub is_attestation_enforced: bool,
    /// Legacy AAGUID restrictions.
    pub key_restrictions: KeyRestrictions,
    /// Id of the default profile, once profiles are enabled.
    pub default_passkey_profile: Option<String>,
    /// Passkey profiles.
    pub passkey_profiles: Vec<PasskeyProfile>,
}

/// An include or exclude target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTarget {
    /// `all_users`, a group id or a user id.
    pub id: String,
    /// `group` or `user`.
    pub target_type: String,
    /// Registration required (include targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_registration_required: Option<bool>,
    /// Profiles this include target allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_passkey_profiles: Option<Vec<String>>,
}

/// `fido2KeyRestrictions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyRestrictions {
    /// Restrictions enforced.
    pub is_enforced: bool,
    /// `allow` or `block`.
    pub enforcement_type: String,
    /// The AAGUIDs.
    pub aa_guids: Vec<String>,
}

/// `passkeyProfile`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyProfile {
    /// Profile id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `deviceBound`, `synced` or `deviceBound,synced`.
    pub passkey_types: String,
    /// `disabled` or `registrationOnly`.
    pub attestation_enforcement: String,
    /// AAGUID restrictions.
    pub key_restrictions: KeyRestrictions,
}

/// One sign-in ceremony outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInRecord {
    /// Id of the sign-in.
    pub id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// UPN at the time.
    pub user_principal_name: String,
    /// The method used, when known.
    pub method_id: Option<String>,
    /// AAGUID of the method, when known.
    pub aa_guid: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_date_time: OffsetDateTime,
    /// `success` or `failure`.
    pub status: String,
    /// AADSTS-like code of the failure.
    pub error_code: Option<u32>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Counter went backwards or did not grow: a possible cloned authenticator.
    pub possible_clone: bool,
    /// The counter presented.
    pub sign_count: u32,
}

impl Default for Fido2Policy {
    /// The policy of entra-sim's new tenant \[I\]: enabled for all users, self-service on,
    /// attestation off, no restrictions, no profiles.
    fn default() -> Self {
        Self {
            state: "enabled".to_owned(),
            exclude_targets: Vec::new(),
            include_targets: vec![PolicyTarget {
                id: "all_users".to_owned(),
                target_type: "group".to_owned(),
                is_registration_required: Some(false),
                allowed_passkey_profiles: None,
            }],
            is_self_service_registration_allowed: true,
            is_attestation_enforced: false,
            key_restrictions: KeyRestrictions {
                is_enforced: false,
                enforcement_type: "block".to_owned(),
                aa_guids: Vec::new(),
            },
            default_passkey_profile: None,
            passkey_profiles: Vec::new(),
        }
    }
}

impl Tenant {
    /// Rebuilds the indexes that are not persisted.
    pub fn reindex(&mut self) {
        self.upn_index = self
            .users
            .values()
            .map(|u| (u.user_principal_name.to_lowercase(), u.id))
            .collect();
    }

    /// The next change sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.change_seq += 1;
        self.change_seq
    }

    /// Whether `name` is this tenant (GUID or one of its domains, case-insensitive).
    pub fn is_tenant(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.tenant_id.to_string())
            || name.eq_ignore_ascii_case(&self.initial_domain)
            || name.eq_ignore_ascii_case(&self.verified_domain)
    }

    /// Finds a live (not soft-deleted) user by object id or UPN.
    pub fn find_user(&self, key: &str) -> Option<&User> {
        let id = self.resolve_user_id(key)?;
        self.users
            .get(&id)
            .filter(|u| u.deleted_date_time.is_none())
    }

    /// Object id of a live user named by object id or UPN.
    pub fn resolve_user_id(&self, key: &str) -> Option<Uuid> {
        let id = match Uuid::parse_str(key) {
            Ok(id) => id,
            Err(_) => *self.upn_index.get(&key.to_lowercase())?,
        };
        self.users
            .get(&id)
            .filter(|u| u.deleted_date_time.is_none())
            .map(|u| u.id)
    }
}

/// Formats a time as Graph does in entities: `2026-05-01T10:15:30Z`.
pub fn graph_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Graph's method id for a credential id: unpadded base64url plus the count of `=` removed.
pub fn method_id_for(credential_id: &[u8]) -> String {
    use base64::Engine as _;
    let padded = base64::engine::general_purpose::URL_SAFE.encode(credential_id);
    let trimmed = padded.trim_end_matches('=');
    let removed = padded.len() - trimmed.len();
    format!("{trimmed}{removed}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_id_carries_the_padding_digit() {
        // 32-byte id → 43 characters + "1"; 16-byte → 22 + "2"; 33 bytes → 44 + "0".
        let id32 = method_id_for(&[0xAB; 32]);
        assert_eq!(id32.len(), 44);
        assert!(id32.ends_with('1'));
        let id16 = method_id_for(&[0x01; 16]);
        assert_eq!(id16.len(), 23);
        assert!(id16.ends_with('2'));
        assert!(method_id_for(&[0; 33]).ends_with('0'));
    }

    #[test]
    fn graph_time_has_no_fraction() {
        let t = time::macros::datetime!(2026-05-01 10:15:30.123 UTC);
        assert_eq!(graph_time(t), "2026-05-01T10:15:30Z");
    }
}
