//! Where credentials live: the [`CredentialStore`] trait, its records, and two stores
//! ([`MemoryStore`] for tests, [`FileStore`] encrypted on disk).

mod file;
mod format;
mod memory;

use std::fmt;

use serde::Serialize;

pub use file::{
    FileStore, LOCK_FILE_NAME, MAX_ANSWERED_REQUESTS, MIN_PIN_LEN, STORE_FILE_NAME,
    write_atomically,
};
pub use format::KdfParams;
pub use memory::MemoryStore;

use crate::encoding::b64url;
use crate::error::StoreError;
use crate::keys::{AttestationKey, CredentialKey};

/// The credential protection level of CTAP 2.1 `credProtect` (§12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CredProtect {
    /// 1: usable with or without user verification.
    UserVerificationOptional,
    /// 2: without user verification only when the relying party names the credential id.
    UserVerificationOptionalWithCredentialIdList,
    /// 3: only with user verification.
    UserVerificationRequired,
}

impl CredProtect {
    /// The CTAP integer value (1, 2 or 3).
    pub fn level(self) -> u8 {
        match self {
            Self::UserVerificationOptional => 1,
            Self::UserVerificationOptionalWithCredentialIdList => 2,
            Self::UserVerificationRequired => 3,
        }
    }

    /// From the CTAP integer value.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::UserVerificationOptional),
            2 => Some(Self::UserVerificationOptionalWithCredentialIdList),
            3 => Some(Self::UserVerificationRequired),
            _ => None,
        }
    }
}

/// The relying-party account a credential belongs to. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The relying party id (e.g. `login.microsoft.com`).
    pub rp_id: String,
    /// The relying party's display name.
    pub rp_name: String,
    /// The user handle (`user.id`), returned as `userHandle` in assertions.
    pub user_id: Vec<u8>,
    /// The user name (Entra: the UPN).
    pub user_name: String,
    /// The user's display name.
    pub user_display_name: String,
    /// The tenant this account belongs to, when the caller knows it (creation options do not say).
    pub tenant: Option<String>,
}

/// The per-credential secrets of CTAP's `hmac-secret` extension (CredRandomWithUV/WithoutUV).
pub struct HmacSecret {
    pub(crate) with_uv: zeroize::Zeroizing<[u8; 32]>,
    pub(crate) without_uv: zeroize::Zeroizing<[u8; 32]>,
}

impl HmacSecret {
    /// Two fresh random secrets.
    pub fn generate() -> Self {
        use rand_core::RngCore as _;
        let mut with_uv = zeroize::Zeroizing::new([0u8; 32]);
        let mut without_uv = zeroize::Zeroizing::new([0u8; 32]);
        rand_core::OsRng.fill_bytes(with_uv.as_mut());
        rand_core::OsRng.fill_bytes(without_uv.as_mut());
        Self {
            with_uv,
            without_uv,
        }
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret(<redacted>)")
    }
}

/// One resident credential (passkey) with its private key.
#[derive(Debug)]
pub struct StoredCredential {
    /// The credential id (32 random bytes for credentials made by keybridge).
    pub credential_id: Vec<u8>,
    /// Whose credential it is.
    pub account: Account,
    /// The private key; it never leaves the store.
    pub(crate) key: CredentialKey,
    /// The last signature counter value used (0 after creation).
    pub sign_count: u32,
    /// The `credProtect` level the credential was created with.
    pub cred_protect: CredProtect,
    /// The `hmac-secret` secrets, when the relying party asked for them at creation.
    pub(crate) hmac_secret: Option<HmacSecret>,
    /// Creation time, seconds since 1970 (UTC).
    pub created_at: i64,
}

impl StoredCredential {
    /// The credential's public key.
    pub fn public_key(&self) -> crate::keys::PublicKey {
        self.key.public_key()
    }

    /// Whether the credential was created with `hmac-secret`.
    pub fn has_hmac_secret(&self) -> bool {
        self.hmac_secret.is_some()
    }

    /// A secret-free summary, for listings and errors.
    pub fn summary(&self) -> AccountSummary {
        AccountSummary {
            credential_id: b64url(&self.credential_id),
            rp_id: self.account.rp_id.clone(),
            rp_name: self.account.rp_name.clone(),
            user_id: b64url(&self.account.user_id),
            user_name: self.account.user_name.clone(),
            user_display_name: self.account.user_display_name.clone(),
            tenant: self.account.tenant.clone(),
            sign_count: self.sign_count,
            cred_protect: self.cred_protect.level(),
            hmac_secret: self.hmac_secret.is_some(),
            created_at: time::OffsetDateTime::from_unix_timestamp(self.created_at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
        }
    }
}

/// What `keybridge device accounts` and `info` show about a credential: no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    /// base64url credential id.
    pub credential_id: String,
    /// Relying party id.
    pub rp_id: String,
    /// Relying party name.
    pub rp_name: String,
    /// base64url user handle.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// User display name.
    pub user_display_name: String,
    /// Tenant, when known.
    pub tenant: Option<String>,
    /// Last signature counter value.
    pub sign_count: u32,
    /// credProtect level (1-3).
    pub cred_protect: u8,
    /// Whether hmac-secret was created.
    pub hmac_secret: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

impl fmt::Display for AccountSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.user_name)?;
        if let Some(tenant) = &self.tenant {
            write!(f, " (tenant {tenant})")?;
        }
        write!(f, " credential {}", self.credential_id)
    }
}

/// Where the batch attestation material came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationSource {
    /// Imported from `keybridge attestation init` output: the organisation's root.
    Organisation,
    /// Generated on this device by `keybridge device init` without `--attestation-dir`: its
    /// root is trusted by nobody until an administrator loads it.
    DeviceLocal,
}

/// The batch attestation key and certificates a store holds.
#[derive(Debug)]
pub struct AttestationIdentity {
    pub(crate) key: AttestationKey,
    /// The batch attestation certificate (DER), sent as `x5c[0]`.
    pub batch_certificate: Vec<u8>,
    /// The attestation root certificate (DER) that issued it; relying parties trust this one.
    pub root_certificate: Vec<u8>,
    /// Organisation or device-local.
    pub source: AttestationSource,
}

impl AttestationIdentity {
    /// Builds an identity from a key and its certificates. Use
    /// [`crate::pki::load_attestation_dir`] to import and check files.
    pub fn new(
        key: AttestationKey,
        batch_certificate: Vec<u8>,
        root_certificate: Vec<u8>,
        source: AttestationSource,
    ) -> Self {
        Self {
            key,
            batch_certificate,
            root_certificate,
            source,
        }
    }

    /// The root certificate as PEM.
    pub fn root_certificate_pem(&self) -> String {
        crate::pki::der_to_pem("CERTIFICATE", &self.root_certificate)
    }

    /// The root certificate's subject (RFC 4514 text), or an empty string if it does not parse.
    pub fn root_subject(&self) -> String {
        crate::pki::certificate_subject(&self.root_certificate).unwrap_or_default()
    }
}

/// Storage of resident credentials and the batch attestation identity.
///
/// Implementations persist every change before returning `Ok`: in particular
/// [`CredentialStore::next_sign_count`] must make the new counter durable before the
/// authenticator releases an assertion carrying it, so that the counter never goes back.
pub trait CredentialStore {
    /// The batch attestation identity, if the store has one.
    fn attestation(&self) -> Option<&AttestationIdentity>;

    /// Every credential in the store.
    fn credentials(&self) -> &[StoredCredential];

    /// Adds a credential and persists it.
    fn add_credential(&mut self, credential: StoredCredential) -> Result<(), StoreError>;

    /// Increments the credential's signature counter, persists it, and returns the new value.
    fn next_sign_count(&mut self, credential_id: &[u8]) -> Result<u32, StoreError>;
}

/// Shared check for stores: the counter increment with overflow detection.
pub(crate) fn incremented(credential: &StoredCredential) -> Result<u32, StoreError> {
    credential
        .sign_count
        .checked_add(1)
        .ok_or_else(|| StoreError::CounterExhausted {
            credential_id: b64url(&credential.credential_id),
        })
}

/// This device's pairing with a keybridge server for one account (`keybridge device pair`):
/// where the server is, the TLS pin it is trusted by, and the device key its requests are
/// signed with. Kept only in the encrypted store.
#[derive(Clone)]
pub struct ServerPairing {
    /// The server's base URL, as in the pairing payload.
    pub server_url: String,
    /// The server's TLS pin (base64url SHA-256 of its certificate's SubjectPublicKeyInfo).
    pub tls_pin: String,
    /// The device id the server gave (`KB-Device-Id`).
    pub device_id: String,
    /// The device key's secret scalar (P-256). Never printed or exported.
    pub device_key: zeroize::Zeroizing<[u8; 32]>,
    /// The account's user principal name.
    pub upn: String,
    /// The account's Entra tenant id.
    pub tenant_id: String,
    /// The account's Entra object id.
    pub entra_user_id: String,
    /// The server's integration id.
    pub integration_id: String,
    /// When the pairing was made, Unix seconds.
    pub paired_at: i64,
}

/// A workstation this device paired for one of its accounts (`keybridge device
/// pair-workstation`): the key its sign-in bindings must be signed with. Public data only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkstationPairing {
    /// The device id of the account's pairing ([`ServerPairing::device_id`]).
    pub device_id: String,
    /// The workstation's id.
    pub workstation_id: String,
    /// The workstation's public key (base64url SEC1), from its QR code.
    pub workstation_key: String,
    /// Its name.
    pub computer_name: String,
    /// When it was paired, Unix seconds.
    pub paired_at: i64,
}

impl fmt::Debug for ServerPairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPairing")
            .field("server_url", &self.server_url)
            .field("tls_pin", &self.tls_pin)
            .field("device_id", &self.device_id)
            .field("device_key", &"<redacted>")
            .field("upn", &self.upn)
            .field("tenant_id", &self.tenant_id)
            .field("entra_user_id", &self.entra_user_id)
            .field("integration_id", &self.integration_id)
            .field("paired_at", &self.paired_at)
            .finish()
    }
}
