//! FIDO2 pieces shared by registration and sign-in: sealed challenges, the loaded FIDO
//! metadata, and the authentication-methods policy decisions (§4.4–§4.6, §5, §7).
//! The WebAuthn verification itself is `keybridge-webauthn`'s.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keybridge_webauthn::mds::MetadataBlob;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StartError;
use crate::model::{Fido2Policy, KeyRestrictions, PasskeyProfile, Tenant};

/// A verified FIDO MDS3 BLOB loaded with `--mds-blob` / `--mds-root`.
pub(crate) struct Metadata {
    pub blob: MetadataBlob,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metadata(no {})", self.blob.serial_number())
    }
}

/// Loads and verifies the BLOB against the root (PEM or DER).
pub(crate) fn load_metadata(blob: &Path, root: &Path) -> Result<Metadata, StartError> {
    let jws = std::fs::read_to_string(blob).map_err(|e| StartError::Metadata {
        detail: format!("{}: {e}", blob.display()),
    })?;
    let root_bytes = std::fs::read(root).map_err(|e| StartError::Metadata {
        detail: format!("{}: {e}", root.display()),
    })?;
    let root_der = match x509_parser::pem::parse_x509_pem(&root_bytes) {
        Ok((_, pem)) => pem.contents,
        Err(_) => root_bytes,
    };
    let blob =
        MetadataBlob::verify(&jws, &root_der, None, OffsetDateTime::now_utc()).map_err(|e| {
            StartError::Metadata {
                detail: format!(
                    "the BLOB {} does not verify against {}: {e}",
                    blob.display(),
                    root.display()
                ),
            }
        })?;
    Ok(Metadata { blob })
}

/// What a registration challenge binds \[I\]: Entra's is an opaque JWE; entra-sim's is
/// `payload ‖ HMAC-SHA256(payload)`, base64url, so it is stateless as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedChallenge {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub expires: i64,
}

/// Seals a challenge for a user.
pub(crate) fn seal_challenge(key_hex: &str, challenge: &SealedChallenge) -> String {
    let nonce = Uuid::new_v4().simple().to_string();
    let payload = format!(
        "kbc1.{}.{}.{}.{nonce}",
        challenge.tenant_id.simple(),
        challenge.user_id.simple(),
        challenge.expires
    );
    let tag = aws_lc_rs::hmac::sign(&mac_key(key_hex), payload.as_bytes());
    let mut raw = payload.into_bytes();
    raw.extend_from_slice(tag.as_ref());
    URL_SAFE_NO_PAD.encode(raw)
}

fn mac_key(key_hex: &str) -> aws_lc_rs::hmac::Key {
    let key = hex::decode(key_hex).unwrap_or_else(|_| key_hex.as_bytes().to_vec());
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key)
}

/// Opens a sealed challenge (the raw bytes the client put, base64url, in clientDataJSON).
pub(crate) fn open_challenge(key_hex: &str, raw: &[u8]) -> Option<SealedChallenge> {
    if raw.len() < 33 {
        return None;
    }
    let (payload, tag) = raw.split_at(raw.len() - 32);
    aws_lc_rs::hmac::verify(&mac_key(key_hex), payload, tag).ok()?;
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.split('.');
    if parts.next()? != "kbc1" {
        return None;
    }
    Some(SealedChallenge {
        tenant_id: Uuid::parse_str(parts.next()?).ok()?,
        user_id: Uuid::parse_str(parts.next()?).ok()?,
        expires: parts.next()?.parse().ok()?,
    })
}

/// A refusal by the policy, with the subCode entra-sim reports (§4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyRefusal {
    pub sub_code: &'static str,
    pub message: String,
}

fn refuse(sub_code: &'static str, message: impl Into<String>) -> PolicyRefusal {
    PolicyRefusal {
        sub_code,
        message: message.into(),
    }
}

fn target_matches(tenant: &Tenant, user: Uuid, id: &str, target_type: &str) -> bool {
    if id.eq_ignore_ascii_case("all_users") {
        return true;
    }
    let Ok(target) = Uuid::parse_str(id) else {
        return false;
    };
    if target_type.eq_ignore_ascii_case("user") {
        return target == user;
    }
    target == user
        || tenant
            .groups
            .get(&target)
            .is_some_and(|g| g.members.contains(&user))
}

/// The user is in scope of the policy; returns the profiles that apply (empty: legacy settings).
pub(crate) fn user_in_scope(
    tenant: &Tenant,
    user: Uuid,
) -> Result<Vec<&PasskeyProfile>, PolicyRefusal> {
    let policy = &tenant.policy;
    if !policy.state.eq_ignore_ascii_case("enabled") {
        return Err(refuse(
            "error_fido2_method_disabled",
            "The FIDO2 authentication method is disabled in the authentication methods policy.",
        ));
    }
    let not_targeted = || {
        refuse(
            "error_user_group_restriction_policy_failure",
            "The user is not targeted by the FIDO2 authentication method policy.",
        )
    };
    if policy
        .exclude_targets
        .iter()
        .any(|t| target_matches(tenant, user, &t.id, &t.target_type))
    {
        return Err(not_targeted());
    }
    let included: Vec<_> = policy
        .include_targets
        .iter()
        .filter(|t| target_matches(tenant, user, &t.id, &t.target_type))
        .collect();
    if included.is_empty() {
        return Err(not_targeted());
    }
    if policy.passkey_profiles.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<&str> = included
        .iter()
        .flat_map(|t| {
            t.allowed_passkey_profiles
                .iter()
                .flatten()
                .map(String::as_str)
        })
        .collect();
    if ids.is_empty()
        && let Some(default) = &policy.default_passkey_profile
    {
        ids.push(default);
    }
    Ok(policy
        .passkey_profiles
        .iter()
        .filter(|p| ids.iter().any(|id| id.eq_ignore_ascii_case(&p.id)))
        .collect())
}

/// What a credential is, as the policy sees it.
#[derive(Debug, Clone)]
pub(crate) struct CredentialFacts {
    pub aaguid: String,
    pub synced: bool,
    pub attested: bool,
}

fn check_restrictions(r: &KeyRestrictions, aaguid: &str) -> Result<(), PolicyRefusal> {
    if !r.is_enforced {
        return Ok(());
    }
    let listed = r.aa_guids.iter().any(|a| a.eq_ignore_ascii_case(aaguid));
    let allow = r.enforcement_type.eq_ignore_ascii_case("allow");
    if allow != listed {
        return Err(refuse(
            "error_aaguid_restricted",
            format!(
                "The authenticator model {aaguid} is not allowed by the FIDO2 key restrictions."
            ),
        ));
    }
    Ok(())
}

fn check_profile(
    profile: &PasskeyProfile,
    facts: &CredentialFacts,
    registration: bool,
) -> Result<(), PolicyRefusal> {
    let kind = if facts.synced {
        "synced"
    } else {
        "deviceBound"
    };
    if !profile
        .passkey_types
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(kind))
    {
        return Err(refuse(
            "error_passkey_type_not_allowed",
            format!(
                "Passkeys of type {kind} are not allowed by passkey profile '{}'.",
                profile.name
            ),
        ));
    }
    if registration
        && profile
            .attestation_enforcement
            .eq_ignore_ascii_case("registrationOnly")
        && !facts.attested
    {
        return Err(refuse(
            "error_attestation_required",
            format!("Passkey profile '{}' requires attestation.", profile.name),
        ));
    }
    check_restrictions(&profile.key_restrictions, &facts.aaguid)
}

/// Checks a credential against the policy (registration: attestation too; sign-in: not).
pub(crate) fn check_credential(
    policy: &Fido2Policy,
    profiles: &[&PasskeyProfile],
    facts: &CredentialFacts,
    registration: bool,
) -> Result<(), PolicyRefusal> {
    if profiles.is_empty() {
        if registration && policy.is_attestation_enforced && !facts.attested {
            return Err(refuse(
                "error_attestation_required",
                "Attestation is enforced: the passkey must carry a packed attestation chaining to a FIDO metadata root.",
            ));
        }
        return check_restrictions(&policy.key_restrictions, &facts.aaguid);
    }
    let mut first_error = None;
    for profile in profiles {
        match check_profile(profile, facts, registration) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        refuse(
            "error_user_group_restriction_policy_failure",
            "No passkey profile applies to the user.",
        )
    }))
}

/// Whether the policy wants attestation for this user (legacy flag or any scoped profile).
pub(crate) fn attestation_wanted(policy: &Fido2Policy, profiles: &[&PasskeyProfile]) -> bool {
    if profiles.is_empty() {
        policy.is_attestation_enforced
    } else {
        profiles.iter().all(|p| {
            p.attestation_enforcement
                .eq_ignore_ascii_case("registrationOnly")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_challenges_open_only_with_their_key() {
        let c = SealedChallenge {
            tenant_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            expires: 1_900_000_000,
        };
        let sealed = seal_challenge("00112233", &c);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("b64");
        assert_eq!(open_challenge("00112233", &raw), Some(c));
        assert_eq!(open_challenge("44556677", &raw), None);
        let mut tampered = raw.clone();
        tampered[10] ^= 1;
        assert_eq!(open_challenge("00112233", &tampered), None);
    }

    #[test]
    fn key_restrictions_allow_and_block() {
        let mut policy = Fido2Policy::default();
        let facts = CredentialFacts {
            aaguid: "cb69481e-8ff7-4039-93ec-0a2729a154a8".into(),
            synced: false,
            attested: false,
        };
        assert!(check_credential(&policy, &[], &facts, true).is_ok());
        policy.key_restrictions = KeyRestrictions {
            is_enforced: true,
            enforcement_type: "block".into(),
            aa_guids: vec!["CB69481E-8FF7-4039-93EC-0A2729A154A8".into()],
        };
        let e = check_credential(&policy, &[], &facts, true).expect_err("blocked");
        assert_eq!(e.sub_code, "error_aaguid_restricted");
        policy.key_restrictions.enforcement_type = "allow".into();
        assert!(check_credential(&policy, &[], &facts, true).is_ok());
        policy.is_attestation_enforced = true;
        let e = check_credential(&policy, &[], &facts, true).expect_err("not attested");
        assert_eq!(e.sub_code, "error_attestation_required");
        // Attestation is not re-checked at sign-in.
        assert!(check_credential(&policy, &[], &facts, false).is_ok());
    }
}
