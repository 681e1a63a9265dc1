//! A new tenant: deterministic users and groups for `--users N`, plus an optional seed file.
//!
//! The same `N` always gives the same users (ids, names, disabled ones, other vendors' keys), so
//! tests and benchmarks can name them; secrets, keys and the control token are random.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore as _;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::StartError;
use crate::model::{
    AppRegistration, CertificateCredential, ClientSecret, Fido2Method, Fido2Policy, Group, Tenant,
    User, method_id_for,
};

/// The initial domain of every seeded tenant.
pub const INITIAL_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The verified domain UPNs and mails use.
pub const VERIFIED_DOMAIN: &str = "contoso.com";

/// Roles granted to the app in a new tenant \[I\]: what keybridge asks for, plus reading the policy.
pub const DEFAULT_ROLES: &[&str] = &[
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "Policy.Read.AuthenticationMethod",
];

/// Security keys from other vendors held by seeded users: (AAGUID, model).
pub const VENDOR_KEYS: &[(&str, &str)] = &[
    ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 Series"),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 Series"),
    (
        "fa2b99dc-9e39-4257-8f92-4a30d23c4118",
        "YubiKey 5 Series with NFC",
    ),
    (
        "2fc0579f-8113-47ea-b116-bb5a8db9202a",
        "YubiKey 5 Series with NFC",
    ),
    (
        "42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3",
        "Google Titan Security Key v2",
    ),
];

const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Carla", "Dmitri", "Emma", "Felix",
];
const LAST_NAMES: &[&str] = &[
    "Lima", "Schmidt", "Dubois", "Rossi", "Nowak", "Haddad", "Okafor", "Tanaka", "Silva", "Berg",
    "Kowalski", "Moreau", "Novak", "Costa", "Ivanova", "Jensen", "Khan", "Larsen", "Meyer",
    "Nakamura", "Ortiz", "Petrov", "Quist", "Reyes", "Sato", "Torres", "Ueda", "Varga", "Weber",
    "Young", "Zhang", "Fischer",
];
const JOB_TITLES: &[&str] = &[
    "Engineer",
    "Accountant",
    "Sales Manager",
    "Designer",
    "Analyst",
    "Support Specialist",
];

/// A small deterministic generator (SplitMix64): the seeded tenant must not depend on `rand`'s
/// algorithm choices between versions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_be_bytes());
        }
        out.truncate(n);
        out
    }

    fn below(&mut self, n: usize) -> usize {
        // n is small; the modulo bias is irrelevant for test data.
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// The seed file (`--seed FILE`): users, groups and grants added to the new tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedFile {
    /// Users to add.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Groups to add.
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
    /// Replaces the default granted roles.
    #[serde(default)]
    pub granted_roles: Option<Vec<String>>,
}

/// A user in the seed file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    /// Object id (random when absent).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// UPN.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// Mail.
    #[serde(default)]
    pub mail: Option<String>,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub account_enabled: bool,
    /// `Member` (default) or `Guest`.
    #[serde(default = "member")]
    pub user_type: String,
    /// Other vendors' FIDO2 methods.
    #[serde(default)]
    pub fido2_methods: Vec<SeedMethod>,
}

/// A FIDO2 method in the seed file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedMethod {
    /// AAGUID.
    pub aa_guid: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// `deviceBound` (default) or `synced`.
    #[serde(default)]
    pub passkey_type: Option<String>,
}

/// A group in the seed file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedGroup {
    /// Display name.
    pub display_name: String,
    /// Member UPNs or object ids.
    #[serde(default)]
    pub members: Vec<String>,
}

fn yes() -> bool {
    true
}
fn member() -> String {
    "Member".to_owned()
}

/// Random URL-safe text for secrets and tokens.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// An Entra-looking client secret value (40 characters, with the `~` Entra puts in) \[I\].
fn client_secret_value() -> String {
    let mut raw = random_token(30);
    raw.truncate(36);
    format!("kbS8Q~{raw}").replace(['-', '_'], ".")
}

/// Security identifier of a group, derived from its id as Entra does (`S-1-12-1-` + 4 u32).
fn security_identifier(id: Uuid) -> String {
    let b = id.as_bytes();
    let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("S-1-12-1-{}-{}-{}-{}", part(0), part(4), part(8), part(12))
}

/// A vendor security key method (no public key: it can only be listed and deleted).
pub fn vendor_method(
    credential_id: &[u8],
    aa_guid: &str,
    model: Option<String>,
    display_name: Option<String>,
    passkey_type: Option<String>,
    created: OffsetDateTime,
) -> Fido2Method {
    Fido2Method {
        id: method_id_for(credential_id),
        credential_id: URL_SAFE_NO_PAD.encode(credential_id),
        display_name: display_name
            .or_else(|| model.clone())
            .unwrap_or_else(|| "Security key".to_owned()),
        aa_guid: aa_guid.to_lowercase(),
        model,
        attestation_certificates: Vec::new(),
        attestation_level: "attested".to_owned(),
        passkey_type: passkey_type.unwrap_or_else(|| "deviceBound".to_owned()),
        created_date_time: created,
        last_used_date_time: None,
        public_key_cose: None,
        sign_count: 0,
        backup_eligible: false,
    }
}

/// Builds a new enabled member user with a WebAuthn handle; callers adjust the rest.
pub fn new_user(
    id: Uuid,
    upn: &str,
    display_name: &str,
    created: OffsetDateTime,
    handle: &[u8],
) -> User {
    let mut names = display_name.splitn(2, ' ');
    User {
        id,
        user_principal_name: upn.to_owned(),
        display_name: display_name.to_owned(),
        given_name: names.next().map(str::to_owned),
        surname: names.next().map(str::to_owned),
        mail: None,
        job_title: None,
        account_enabled: true,
        user_type: "Member".to_owned(),
        created_date_time: created,
        deleted_date_time: None,
        change_seq: 0,
        webauthn_user_id: URL_SAFE_NO_PAD.encode(handle),
        fido2_methods: Vec::new(),
    }
}

/// Creates a new tenant with `user_count` generated users and the seed file applied.
pub fn new_tenant(
    user_count: usize,
    seed: Option<&Path>,
    client_cert_der: &[u8],
) -> Result<Tenant, StartError> {
    let seed_file = match seed {
        None => SeedFile::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| StartError::Seed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
            serde_json::from_str(&text).map_err(|e| StartError::Seed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
        }
    };
    let mut rng = SplitMix(0x6B65_7962_7269_6467);
    let tenant_id = rng.uuid();
    let client_id = rng.uuid();
    let service_principal_id = rng.uuid();
    // A fixed creation time base so that the same N gives the same tenant.
    let base = time::macros::datetime!(2025-01-06 09:00:00 UTC);
    let now = OffsetDateTime::now_utc();

    let mut users = BTreeMap::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut ordered_ids = Vec::with_capacity(user_count);
    for index in 0..user_count {
        let first = FIRST_NAMES[rng.below(FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.below(LAST_NAMES.len())];
        let stem = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
        let seen = taken.entry(stem.clone()).or_insert(0);
        *seen += 1;
        let local = if *seen == 1 {
            stem
        } else {
            format!("{stem}{}", *seen)
        };
        let id = rng.uuid();
        let handle = rng.bytes(48);
        let guest = index % 50 == 49;
        let (upn, mail, user_type) = if guest {
            let external = format!("{local}@fabrikam.example");
            (
                format!("{local}_fabrikam.example#EXT#@{INITIAL_DOMAIN}"),
                Some(external),
                "Guest",
            )
        } else {
            let upn = format!("{local}@{VERIFIED_DOMAIN}");
            // Some users have no mailbox.
            let mail = (index % 11 != 10).then(|| upn.clone());
            (upn, mail, "Member")
        };
        let created = base + Duration::minutes(i64::try_from(index).unwrap_or(0));
        let mut user = new_user(id, &upn, &format!("{first} {last}"), created, &handle);
        user.mail = mail;
        user.account_enabled = index % 17 != 16;
        user.user_type = user_type.to_owned();
        user.job_title = Some(JOB_TITLES[index % JOB_TITLES.len()].to_owned());
        if index % 7 == 3 && !guest {
            let (aaguid, model) = VENDOR_KEYS[index % VENDOR_KEYS.len()];
            let credential = rng.bytes(if index % 2 == 0 { 64 } else { 32 });
            user.fido2_methods.push(vendor_method(
                &credential,
                aaguid,
                Some(model.to_owned()),
                None,
                None,
                created + Duration::days(3),
            ));
        }
        ordered_ids.push(id);
        users.insert(id, user);
    }

    let mut groups = BTreeMap::new();
    let group_specs: [(&str, usize); 4] = [
        ("All Staff", 1),
        ("Engineering", 4),
        ("Finance", 9),
        ("Contoso Admins", 40),
    ];
    for (name, every) in group_specs {
        let id = rng.uuid();
        let members: BTreeSet<Uuid> = ordered_ids.iter().step_by(every).copied().collect();
        groups.insert(
            id,
            Group {
                id,
                display_name: name.to_owned(),
                description: Some(format!("{name} (seeded by entra-sim)")),
                mail_nickname: name.to_lowercase().replace(' ', "-"),
                mail_enabled: false,
                security_enabled: true,
                group_types: Vec::new(),
                visibility: None,
                security_identifier: security_identifier(id),
                created_date_time: base,
                members,
            },
        );
    }

    let mut tenant = Tenant {
        tenant_id,
        initial_domain: INITIAL_DOMAIN.to_owned(),
        verified_domain: VERIFIED_DOMAIN.to_owned(),
        app: AppRegistration {
            client_id,
            service_principal_id,
            display_name: "keybridge".to_owned(),
            secrets: vec![ClientSecret {
                key_id: Uuid::new_v4(),
                value: client_secret_value(),
                end_date_time: now + Duration::days(730),
            }],
            certificates: vec![CertificateCredential {
                key_id: Uuid::new_v4(),
                der_base64: STANDARD.encode(client_cert_der),
            }],
            granted_roles: seed_file
                .granted_roles
                .clone()
                .unwrap_or_else(|| DEFAULT_ROLES.iter().map(|r| (*r).to_owned()).collect()),
        },
        users,
        groups,
        tombstones: BTreeMap::new(),
        change_seq: 0,
        policy: Fido2Policy::default(),
        sign_ins: Vec::new(),
        control_token: random_token(32),
        challenge_key: hex::encode(random_token(32)),
        upn_index: HashMap::new(),
    };
    tenant.reindex();
    apply_seed_file(&mut tenant, seed_file, seed)?;
    // Every object starts at sequence 1 so the first delta round returns all of them.
    let seq = tenant.next_seq();
    for user in tenant.users.values_mut() {
        user.change_seq = seq;
    }
    Ok(tenant)
}

fn apply_seed_file(
    tenant: &mut Tenant,
    seed: SeedFile,
    path: Option<&Path>,
) -> Result<(), StartError> {
    let seed_error = |detail: String| StartError::Seed {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        detail,
    };
    let now = OffsetDateTime::now_utc();
    for seed_user in seed.users {
        if tenant
            .upn_index
            .contains_key(&seed_user.user_principal_name.to_lowercase())
        {
            return Err(seed_error(format!(
                "user {} appears twice",
                seed_user.user_principal_name
            )));
        }
        let id = seed_user.id.unwrap_or_else(Uuid::new_v4);
        let mut handle = [0u8; 48];
        rand::thread_rng().fill_bytes(&mut handle);
        let mut user = new_user(
            id,
            &seed_user.user_principal_name,
            &seed_user.display_name,
            now,
            &handle,
        );
        user.mail = seed_user.mail;
        user.account_enabled = seed_user.account_enabled;
        user.user_type = seed_user.user_type;
        for method in seed_user.fido2_methods {
            let mut credential = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut credential);
            user.fido2_methods.push(vendor_method(
                &credential,
                &method.aa_guid,
                method.model,
                method.display_name,
                method.passkey_type,
                now,
            ));
        }
        tenant
            .upn_index
            .insert(user.user_principal_name.to_lowercase(), id);
        tenant.users.insert(id, user);
    }
    for seed_group in seed.groups {
        let id = Uuid::new_v4();
        let mut members = BTreeSet::new();
        for member in &seed_group.members {
            let user = tenant
                .resolve_user_id(member)
                .ok_or_else(|| seed_error(format!("group member {member} is not a user")))?;
            members.insert(user);
        }
        tenant.groups.insert(
            id,
            Group {
                id,
                display_name: seed_group.display_name.clone(),
                description: None,
                mail_nickname: seed_group.display_name.to_lowercase().replace(' ', "-"),
                mail_enabled: false,
                security_enabled: true,
                group_types: Vec::new(),
                visibility: None,
                security_identifier: security_identifier(id),
                created_date_time: now,
                members,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_count_gives_the_same_tenant() {
        let a = new_tenant(200, None, b"cert").expect("seed");
        let b = new_tenant(200, None, b"cert").expect("seed");
        assert_eq!(a.tenant_id, b.tenant_id);
        let a_upns: Vec<_> = a.users.values().map(|u| &u.user_principal_name).collect();
        let b_upns: Vec<_> = b.users.values().map(|u| &u.user_principal_name).collect();
        assert_eq!(a_upns, b_upns);
        assert_eq!(a.users.len(), 200);
        // Secrets are not deterministic.
        assert_ne!(a.app.secrets[0].value, b.app.secrets[0].value);
    }

    #[test]
    fn seeded_tenant_is_realistic() {
        let t = new_tenant(200, None, b"cert").expect("seed");
        let disabled = t.users.values().filter(|u| !u.account_enabled).count();
        let guests = t.users.values().filter(|u| u.user_type == "Guest").count();
        let with_keys = t
            .users
            .values()
            .filter(|u| !u.fido2_methods.is_empty())
            .count();
        assert!(disabled > 5, "{disabled}");
        assert_eq!(guests, 4);
        assert!(with_keys > 20, "{with_keys}");
        let upns: std::collections::HashSet<_> = t
            .users
            .values()
            .map(|u| u.user_principal_name.to_lowercase())
            .collect();
        assert_eq!(upns.len(), 200, "UPNs are unique");
        assert!(
            t.users
                .values()
                .filter(|u| u.user_type == "Member")
                .all(|u| u.user_principal_name.ends_with("@contoso.com"))
        );
        assert_eq!(t.groups.len(), 4);
    }
}
