//! Errors. Each message says what went wrong and what to do about it.

use std::path::PathBuf;

use crate::store::AccountSummary;

/// Errors of the key store ([`crate::FileStore`], [`crate::MemoryStore`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "create" ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the store's lock.
    #[error(
        "the key store at {} is in use by another process ({}); wait for it to finish or stop it, then try again",
        dir.display(),
        pid.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
    )]
    InUse {
        /// The store directory.
        dir: PathBuf,
        /// The process id written in the lock file, when readable.
        pid: Option<u32>,
    },
    /// No store exists in the directory.
    #[error("there is no key store at {}; create one with `keybridge device init --store {}`", dir.display(), dir.display())]
    NotFound {
        /// The store directory.
        dir: PathBuf,
    },
    /// `init` was asked to create a store where one exists.
    #[error("a key store already exists at {}; it was left untouched (choose another directory to create a new one)", dir.display())]
    AlreadyExists {
        /// The store directory.
        dir: PathBuf,
    },
    /// The PIN does not open the store.
    #[error("wrong PIN for the key store at {}; nothing was changed, try again with the right PIN", dir.display())]
    WrongPin {
        /// The store directory.
        dir: PathBuf,
    },
    /// The store file fails its integrity checks (bad magic, truncated, failed authentication).
    #[error(
        "the key store file {} is damaged ({reason}); keybridge did not change it. Restore it from a backup, or move it away and create a new store with `keybridge device init`",
        path.display()
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// The store directory or file can be read by other users.
    #[error("{} has mode {mode:o}, readable by other users; run `chmod go-rwx {}` and try again", path.display(), path.display())]
    InsecurePermissions {
        /// The directory or file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file was written by a newer keybridge.
    #[error("the key store file {} has format version {found}, this keybridge reads version {supported}; upgrade keybridge", path.display())]
    UnsupportedVersion {
        /// The store file.
        path: PathBuf,
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The PIN is too short to protect the store.
    #[error("the PIN must have at least {min} characters (it has {len}); choose a longer PIN")]
    PinTooShort {
        /// Minimum length.
        min: usize,
        /// Length given.
        len: usize,
    },
    /// Key derivation failed (bad parameters in the header or out of memory).
    #[error("could not derive the store key from the PIN: {reason}")]
    KeyDerivation {
        /// Argon2's message.
        reason: String,
    },
    /// A credential's signature counter reached its maximum.
    #[error(
        "the signature counter of credential {credential_id} is exhausted; create a new passkey for this account"
    )]
    CounterExhausted {
        /// base64url credential id.
        credential_id: String,
    },
    /// The credential id is not in the store.
    #[error("credential {credential_id} is not in this key store")]
    UnknownCredential {
        /// base64url credential id.
        credential_id: String,
    },
    /// A credential with the same id already exists (random ids collide only through a bug).
    #[error("credential {credential_id} already exists in this key store")]
    DuplicateCredential {
        /// base64url credential id.
        credential_id: String,
    },
    /// Encoding the store's contents failed.
    #[error("could not encode the key store contents: {reason}")]
    Encoding {
        /// The encoder's message.
        reason: String,
    },
}

/// Errors of the authenticator's ceremonies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticatorError {
    /// The options JSON is malformed or misses a required member.
    #[error(
        "the WebAuthn options are not valid: {reason}; pass creation options (a `publicKey` object or Graph's webauthnCredentialCreationOptions) or request options"
    )]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The relying party offers no algorithm keybridge can sign with.
    #[error(
        "the relying party offers no ES256 (-7) key type (offered: {offered:?}); keybridge signs only with ES256, so no passkey was created"
    )]
    UnsupportedAlgorithm {
        /// The `alg` values offered.
        offered: Vec<i64>,
    },
    /// The origin is malformed or not allowed (not https).
    #[error("the origin {origin:?} is not usable: {reason}")]
    InvalidOrigin {
        /// The origin given.
        origin: String,
        /// Why it is refused.
        reason: String,
    },
    /// The rp id does not belong to the origin (a foreign relying party).
    #[error(
        "the relying party id {rp_id:?} does not match the origin {origin:?}: the origin's host must be {rp_id} or one of its subdomains; refusing to sign for a foreign relying party"
    )]
    RpIdMismatch {
        /// The origin given.
        origin: String,
        /// The rp id asked for.
        rp_id: String,
    },
    /// Graph's `challengeTimeoutDateTime` has passed.
    #[error("the challenge expired at {expired_at}; fetch new creation options and try again")]
    ChallengeExpired {
        /// The expiry from the options.
        expired_at: String,
    },
    /// The store already holds one of the `excludeCredentials`.
    #[error(
        "this device already holds a passkey for {user_name:?} at {rp_id} (credential {credential_id}) and the relying party excludes it; no new passkey was created. Use the existing one, or delete it at the relying party first"
    )]
    CredentialExcluded {
        /// The rp id.
        rp_id: String,
        /// The account holding the excluded credential.
        user_name: String,
        /// base64url id of the excluded credential.
        credential_id: String,
    },
    /// No credential in the store can answer the request.
    #[error("no passkey in this key store for {rp_id}{}; check the rp id, or create a passkey first with `keybridge device make-credential`",
        if *allowed > 0 { format!(" among the {allowed} credential(s) the relying party allows") } else { String::new() })]
    NoCredential {
        /// The rp id.
        rp_id: String,
        /// How many ids `allowCredentials` listed (0 = none, discoverable request).
        allowed: usize,
    },
    /// Several accounts match and nothing says which one to use.
    #[error("{} accounts at {rp_id} match this request: {}; choose one with `--account <credential id or user name>`",
        candidates.len(),
        candidates.iter().map(AccountSummary::to_string).collect::<Vec<_>>().join("; "))]
    AmbiguousAccount {
        /// The rp id.
        rp_id: String,
        /// The matching accounts.
        candidates: Vec<AccountSummary>,
    },
    /// The account selector matched no candidate.
    #[error("no account matching {selector:?} can answer this request at {rp_id} (candidates: {}); pass a credential id or user name from `keybridge device accounts`",
        candidates.iter().map(AccountSummary::to_string).collect::<Vec<_>>().join("; "))]
    AccountNotFound {
        /// The selector given.
        selector: String,
        /// The rp id.
        rp_id: String,
        /// The accounts that would match without the selector.
        candidates: Vec<AccountSummary>,
    },
    /// The relying party requires user verification and the user was not verified.
    #[error(
        "the relying party requires user verification and the user was not verified; unlock the store with the PIN"
    )]
    UserVerificationRequired,
    /// The user declined.
    #[error("the user declined the request: {reason}")]
    Declined {
        /// What the approval said.
        reason: String,
    },
    /// Packed (batch) attestation was asked for and the store has no batch certificate.
    #[error(
        "this key store has no batch attestation certificate; import one with `keybridge device init --attestation-dir DIR`, or use self or none attestation"
    )]
    NoAttestationCertificate,
    /// A key-store error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cryptographic operation failed.
    #[error("cryptographic error: {reason}")]
    Crypto {
        /// What failed.
        reason: String,
    },
    /// Encoding an output failed.
    #[error("could not encode the response: {reason}")]
    Encoding {
        /// What failed.
        reason: String,
    },
}

/// Errors of attestation material handling (`keybridge attestation init`, importing a batch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Certificate or key generation failed.
    #[error("could not create the {what}: {reason}")]
    Generate {
        /// Which item.
        what: &'static str,
        /// The library's message.
        reason: String,
    },
    /// The output directory already holds attestation files.
    #[error("{} already contains {file}; refusing to overwrite attestation material (choose an empty directory)", dir.display())]
    WouldOverwrite {
        /// The output directory.
        dir: PathBuf,
        /// The first existing file found.
        file: &'static str,
    },
    /// An imported file is missing or unusable.
    #[error("{} is not usable: {reason}", path.display())]
    InvalidImport {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
