//! Pre-flight checks: would the tenant's Passkey (FIDO2) policy let keybridge register its
//! users' passkeys? Each check names the exact setting to change in the Microsoft Entra
//! admin center. A check never fails the integration: native login stays disabled until the
//! admin enables it, so blockers are reported, not refused.

use keybridge_graph::{Fido2Policy, GraphClient, GraphError};
use serde::Serialize;
use serde_json::Value;

/// Where the policy lives in the admin center.
pub const POLICY_PATH: &str = "Microsoft Entra admin center > Protection > Authentication methods > Policies > Passkey (FIDO2)";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Nothing to do.
    Ok,
    /// Works, but some users or features may be affected.
    Warning,
    /// Provisioning will be refused by Entra until the setting is changed.
    Blocking,
}

/// One pre-flight finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreflightCheck {
    /// Stable id: `policy_readable`, `method_enabled`, `users_in_scope`, `self_service_setup`,
    /// `attestation`, `key_restrictions`, `passkey_profiles`.
    pub check: &'static str,
    /// Result.
    pub status: CheckStatus,
    /// What was found.
    pub message: String,
    /// The exact setting to change, when something must change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl PreflightCheck {
    fn ok(check: &'static str, message: impl Into<String>) -> PreflightCheck {
        PreflightCheck {
            check,
            status: CheckStatus::Ok,
            message: message.into(),
            fix: None,
        }
    }

    fn problem(
        check: &'static str,
        status: CheckStatus,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> PreflightCheck {
        PreflightCheck {
            check,
            status,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// keybridge's groups as the policy check sees them.
#[derive(Debug, Clone, Default)]
pub struct OurGroups {
    /// `(Client Paired with keybridge)`: users in it are the ones that get passkeys.
    pub paired_keybridge: Option<String>,
    /// Every keybridge group id, to spot one that is excluded.
    pub all: Vec<String>,
}

/// Reads the tenant's FIDO2 policy and evaluates it for `aaguid`.
pub async fn run(client: &GraphClient, aaguid: &str, groups: &OurGroups) -> Vec<PreflightCheck> {
    match client.fido2_policy().await {
        Ok(policy) => evaluate(&policy, aaguid, groups),
        Err(error @ GraphError::Forbidden { .. }) => vec![PreflightCheck::problem(
            "policy_readable",
            CheckStatus::Warning,
            format!("the Passkey (FIDO2) policy could not be read, so it was not checked: {error}"),
            "grant the application permission Policy.Read.AuthenticationMethod and admin consent \
             (App registrations > your app > API permissions), then run the pre-flight checks again",
        )],
        Err(error) => vec![PreflightCheck::problem(
            "policy_readable",
            CheckStatus::Warning,
            format!("the Passkey (FIDO2) policy could not be read, so it was not checked: {error}"),
            "run the pre-flight checks again once Microsoft Entra answers",
        )],
    }
}

/// Evaluates a FIDO2 policy for keybridge's AAGUID and groups.
pub fn evaluate(policy: &Fido2Policy, aaguid: &str, groups: &OurGroups) -> Vec<PreflightCheck> {
    let mut checks = Vec::new();

    if policy.state.as_deref() == Some("enabled") {
        checks.push(PreflightCheck::ok(
            "method_enabled",
            "the Passkey (FIDO2) method is enabled",
        ));
    } else {
        checks.push(PreflightCheck::problem(
            "method_enabled",
            CheckStatus::Blocking,
            "the Passkey (FIDO2) method is disabled in this tenant, so Entra refuses every passkey",
            format!("{POLICY_PATH} > Enable and Target: turn Enable on"),
        ));
    }

    let all_users = policy.include_targets.iter().any(|t| t.id == "all_users");
    let ours_included = groups
        .paired_keybridge
        .as_ref()
        .is_some_and(|g| policy.include_targets.iter().any(|t| &t.id == g));
    if policy.include_targets.is_empty() {
        checks.push(PreflightCheck::problem(
            "users_in_scope",
            CheckStatus::Blocking,
            "no user is targeted by the Passkey (FIDO2) method",
            format!(
                "{POLICY_PATH} > Enable and Target > Include: add All users, or the group \
                 \"<Application Name> (Client Paired with keybridge)\""
            ),
        ));
    } else if ours_included {
        checks.push(PreflightCheck::ok(
            "users_in_scope",
            "keybridge's group (Client Paired with keybridge) is targeted",
        ));
    } else if !all_users {
        checks.push(PreflightCheck::problem(
            "users_in_scope",
            CheckStatus::Warning,
            "the Passkey (FIDO2) method targets selected groups only: users outside them cannot \
             get a passkey",
            format!(
                "{POLICY_PATH} > Enable and Target > Include: add All users, or the group \
                 \"<Application Name> (Client Paired with keybridge)\""
            ),
        ));
    } else {
        checks.push(PreflightCheck::ok(
            "users_in_scope",
            "all users are targeted",
        ));
    }
    let excluded_ours: Vec<&str> = policy
        .exclude_targets
        .iter()
        .filter(|t| groups.all.contains(&t.id))
        .map(|t| t.id.as_str())
        .collect();
    if !excluded_ours.is_empty() {
        checks.push(PreflightCheck::problem(
            "users_in_scope",
            CheckStatus::Blocking,
            format!(
                "keybridge's own group(s) {} are excluded from the Passkey (FIDO2) method, so their \
                 members' passkeys will be refused",
                excluded_ours.join(", ")
            ),
            format!("{POLICY_PATH} > Enable and Target > Exclude: remove keybridge's groups"),
        ));
    } else if !policy.exclude_targets.is_empty() {
        checks.push(PreflightCheck::problem(
            "users_in_scope",
            CheckStatus::Warning,
            format!(
                "{} group(s) or user(s) are excluded from the Passkey (FIDO2) method: their \
                 passkeys will be refused",
                policy.exclude_targets.len()
            ),
            format!(
                "{POLICY_PATH} > Enable and Target > Exclude: remove users who should use keybridge"
            ),
        ));
    }

    if policy.is_self_service_registration_allowed == Some(true) {
        checks.push(PreflightCheck::ok(
            "self_service_setup",
            "self-service set up is allowed",
        ));
    } else {
        checks.push(PreflightCheck::problem(
            "self_service_setup",
            CheckStatus::Blocking,
            "self-service set up is not allowed, and Graph's passkey provisioning needs it",
            format!("{POLICY_PATH} > Configure > Allow self-service set up: Yes"),
        ));
    }

    if policy.is_attestation_enforced == Some(true) {
        checks.push(PreflightCheck::problem(
            "attestation",
            CheckStatus::Blocking,
            format!(
                "attestation is enforced: Entra then accepts only authenticators listed in the FIDO \
                 Metadata Service, and keybridge's AAGUID {aaguid} is not listed there"
            ),
            format!("{POLICY_PATH} > Configure > Enforce attestation: No"),
        ));
    } else {
        checks.push(PreflightCheck::ok(
            "attestation",
            "attestation is not enforced",
        ));
    }

    match &policy.key_restrictions {
        Some(restrictions) if restrictions.is_enforced == Some(true) => {
            let listed = restrictions
                .aa_guids
                .iter()
                .any(|g| g.trim().eq_ignore_ascii_case(aaguid));
            let allow = restrictions
                .enforcement_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("allow"));
            match (allow, listed) {
                (true, false) => checks.push(PreflightCheck::problem(
                    "key_restrictions",
                    CheckStatus::Blocking,
                    format!("key restrictions allow only listed AAGUIDs, and {aaguid} is not listed"),
                    format!(
                        "{POLICY_PATH} > Configure > Enforce key restrictions: Yes, Restrict specific \
                         keys: Allow, and add the AAGUID {aaguid} (or set Enforce key restrictions: No)"
                    ),
                )),
                (false, true) => checks.push(PreflightCheck::problem(
                    "key_restrictions",
                    CheckStatus::Blocking,
                    format!("key restrictions block keybridge's AAGUID {aaguid}"),
                    format!(
                        "{POLICY_PATH} > Configure > Restrict specific keys (Block): remove the AAGUID {aaguid}"
                    ),
                )),
                _ => checks.push(PreflightCheck::ok(
                    "key_restrictions",
                    "key restrictions allow keybridge's AAGUID",
                )),
            }
        }
        _ => checks.push(PreflightCheck::ok(
            "key_restrictions",
            "no key restrictions are enforced",
        )),
    }

    checks.extend(evaluate_profiles(&policy.passkey_profiles, aaguid));
    checks
}

/// Passkey profiles (the newer form of attestation and key restrictions): a profile that
/// enforces attestation, leaves out device-bound passkeys or restricts keys away from ours.
fn evaluate_profiles(profiles: &[Value], aaguid: &str) -> Vec<PreflightCheck> {
    let mut checks = Vec::new();
    for profile in profiles {
        let name = profile
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let mut problems = Vec::new();
        if profile
            .get("attestationEnforcement")
            .and_then(Value::as_str)
            == Some("registrationOnly")
        {
            problems.push(format!(
                "Enforce attestation is on (keybridge's AAGUID {aaguid} is not in the FIDO Metadata Service): set it to No"
            ));
        }
        if let Some(types) = profile.get("passkeyTypes").and_then(Value::as_str)
            && !types.split(',').any(|t| t.trim() == "deviceBound")
        {
            problems.push("device-bound passkeys are not allowed: allow Device-bound".to_owned());
        }
        if let Some(restrictions) = profile.get("keyRestrictions")
            && restrictions.get("isEnforced").and_then(Value::as_bool) == Some(true)
        {
            let listed = restrictions
                .get("aaGuids")
                .and_then(Value::as_array)
                .is_some_and(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .any(|g| g.trim().eq_ignore_ascii_case(aaguid))
                });
            let allow =
                restrictions.get("enforcementType").and_then(Value::as_str) == Some("allow");
            if allow && !listed {
                problems.push(format!(
                    "key restrictions allow only listed AAGUIDs: add {aaguid}"
                ));
            } else if !allow && listed {
                problems.push(format!("key restrictions block {aaguid}: remove it"));
            }
        }
        if !problems.is_empty() {
            checks.push(PreflightCheck::problem(
                "passkey_profiles",
                CheckStatus::Blocking,
                format!("the passkey profile \"{name}\" would refuse keybridge's passkeys"),
                format!(
                    "{POLICY_PATH} > Configure > passkey profile \"{name}\": {}",
                    problems.join("; ")
                ),
            ));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "f6773e06-415d-4c83-ba1c-c91297b3d387";

    fn policy(value: serde_json::Value) -> Fido2Policy {
        serde_json::from_value(value).expect("policy JSON")
    }

    fn status_of(checks: &[PreflightCheck], id: &str) -> Vec<CheckStatus> {
        checks
            .iter()
            .filter(|c| c.check == id)
            .map(|c| c.status)
            .collect()
    }

    #[test]
    fn entra_defaults_pass() {
        let checks = evaluate(
            &policy(
                serde_json::json!({"id":"Fido2","state":"enabled","isSelfServiceRegistrationAllowed":true,
                "isAttestationEnforced":false,"includeTargets":[{"id":"all_users","targetType":"group"}],
                "excludeTargets":[],"keyRestrictions":{"isEnforced":false,"enforcementType":"block","aaGuids":[]}}),
            ),
            OURS,
            &OurGroups::default(),
        );
        assert!(
            checks.iter().all(|c| c.status == CheckStatus::Ok),
            "{checks:?}"
        );
    }

    #[test]
    fn each_blocker_names_its_setting() {
        let checks = evaluate(
            &policy(
                serde_json::json!({"state":"disabled","isSelfServiceRegistrationAllowed":false,
                "isAttestationEnforced":true,"includeTargets":[],"excludeTargets":[],
                "keyRestrictions":{"isEnforced":true,"enforcementType":"allow","aaGuids":["cb69481e-8ff7-4039-93ec-0a2729a154a8"]}}),
            ),
            OURS,
            &OurGroups::default(),
        );
        for (id, setting) in [
            ("method_enabled", "Enable and Target: turn Enable on"),
            ("users_in_scope", "Include: add All users"),
            ("self_service_setup", "Allow self-service set up: Yes"),
            ("attestation", "Enforce attestation: No"),
            ("key_restrictions", OURS),
        ] {
            let check = checks.iter().find(|c| c.check == id).expect(id);
            assert_eq!(check.status, CheckStatus::Blocking, "{id}");
            assert!(
                check.fix.as_deref().is_some_and(|f| f.contains(setting)),
                "{id}: {check:?}"
            );
        }
    }

    #[test]
    fn a_block_list_naming_our_aaguid_blocks_and_other_lists_pass() {
        let blocked = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"all_users"}],
                "keyRestrictions":{"isEnforced":true,"enforcementType":"block","aaGuids":[OURS.to_uppercase()]}}),
            ),
            OURS,
            &OurGroups::default(),
        );
        assert_eq!(
            status_of(&blocked, "key_restrictions"),
            [CheckStatus::Blocking]
        );
        let allowed = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"all_users"}],
                "keyRestrictions":{"isEnforced":true,"enforcementType":"allow","aaGuids":[OURS]}}),
            ),
            OURS,
            &OurGroups::default(),
        );
        assert_eq!(status_of(&allowed, "key_restrictions"), [CheckStatus::Ok]);
    }

    #[test]
    fn group_targets_and_exclusions_warn() {
        let checks = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"0b1c9a52-0000-4000-8000-000000000001","targetType":"group"}],
                "excludeTargets":[{"id":"0b1c9a52-0000-4000-8000-000000000002","targetType":"group"}]}),
            ),
            OURS,
            &OurGroups::default(),
        );
        assert_eq!(
            status_of(&checks, "users_in_scope"),
            [CheckStatus::Warning, CheckStatus::Warning]
        );
    }

    #[test]
    fn our_group_as_the_target_is_enough_and_excluding_it_blocks() {
        let groups = OurGroups {
            paired_keybridge: Some("0b1c9a52-0000-4000-8000-00000000000a".to_owned()),
            all: vec![
                "0b1c9a52-0000-4000-8000-00000000000a".to_owned(),
                "0b1c9a52-0000-4000-8000-00000000000b".to_owned(),
            ],
        };
        let targeted = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"0b1c9a52-0000-4000-8000-00000000000a","targetType":"group"}]}),
            ),
            OURS,
            &groups,
        );
        assert_eq!(status_of(&targeted, "users_in_scope"), [CheckStatus::Ok]);
        let excluded = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"all_users"}],
                "excludeTargets":[{"id":"0b1c9a52-0000-4000-8000-00000000000b","targetType":"group"}]}),
            ),
            OURS,
            &groups,
        );
        assert_eq!(
            status_of(&excluded, "users_in_scope"),
            [CheckStatus::Ok, CheckStatus::Blocking]
        );
    }

    #[test]
    fn a_profile_enforcing_attestation_blocks() {
        let checks = evaluate(
            &policy(
                serde_json::json!({"state":"enabled","isSelfServiceRegistrationAllowed":true,
                "includeTargets":[{"id":"all_users"}],
                "passkeyProfiles":[{"id":"p1","name":"Default passkey profile","passkeyTypes":"synced",
                    "attestationEnforcement":"registrationOnly"}]}),
            ),
            OURS,
            &OurGroups::default(),
        );
        let profile = checks
            .iter()
            .find(|c| c.check == "passkey_profiles")
            .expect("profile check");
        assert_eq!(profile.status, CheckStatus::Blocking);
        let fix = profile.fix.as_deref().unwrap_or_default();
        assert!(
            fix.contains("Enforce attestation") && fix.contains("Device-bound"),
            "{fix}"
        );
    }
}
