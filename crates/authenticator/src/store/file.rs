//! [`FileStore`]: the encrypted key store in a directory.
//!
//! The directory (mode 0700) holds `keystore.kbs` (mode 0600, format in `format.rs`) and
//! `keystore.lock`. Every change is written to a temporary file in the same directory, synced,
//! renamed over `keystore.kbs`, and the directory is synced, so a crash leaves either the old
//! or the new file, never a mix. The lock file is held with an exclusive lock
//! (`File::try_lock`) for as long as the store is open and names the holder's pid.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::format::{self, Header, KdfParams, OpenFailure, StoreKey};
use super::{
    Account, AttestationIdentity, AttestationSource, CredProtect, CredentialStore, HmacSecret,
    ServerPairing, StoredCredential, WorkstationPairing, incremented,
};
use crate::encoding::{b64url, decode_lenient};
use crate::error::StoreError;
use crate::keys::{AttestationKey, CredentialKey};
use crate::presence::PinUnlocked;

/// Name of the encrypted store file inside the store directory.
pub const STORE_FILE_NAME: &str = "keystore.kbs";
/// Name of the lock file inside the store directory.
pub const LOCK_FILE_NAME: &str = "keystore.lock";
/// The shortest PIN accepted when creating a store.
pub const MIN_PIN_LEN: usize = 6;
const TEMP_PREFIX: &str = "keystore.kbs.tmp-";
/// The contents version this build writes: 2 added the server pairings. Version 1 stores
/// (no pairings) still open, and are written as version 2 at their next change.
const CONTENTS_VERSION: u32 = 2;
const OLDEST_CONTENTS_VERSION: u32 = 1;
/// Answered request ids kept (the oldest are forgotten first); far more than a device is sent
/// while a request can still be valid.
pub const MAX_ANSWERED_REQUESTS: usize = 1_000;

/// How many of the newest answered requests keep their answer until the server confirms it.
pub const MAX_UNSENT_ANSWERS: usize = 16;

/// The encrypted on-disk key store. Open means unlocked and locked against other processes.
pub struct FileStore {
    dir: PathBuf,
    path: PathBuf,
    header: Header,
    key: StoreKey,
    created_at: i64,
    attestation: Option<AttestationIdentity>,
    credentials: Vec<StoredCredential>,
    pairings: Vec<ServerPairing>,
    workstations: Vec<WorkstationPairing>,
    answered_requests: Vec<AnsweredRequest>,
    // Dropping the file releases the lock.
    _lock: File,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("credentials", &self.credentials.len())
            .field("pairings", &self.pairings.len())
            .field("attestation", &self.attestation.as_ref().map(|a| a.source))
            .finish_non_exhaustive()
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

impl FileStore {
    /// Whether `dir` holds a store file.
    pub fn exists(dir: &Path) -> bool {
        dir.join(STORE_FILE_NAME).exists()
    }

    /// Creates a new store in `dir` (created with mode 0700 if missing), protected by `pin`.
    pub fn create(
        dir: &Path,
        pin: &str,
        attestation: Option<AttestationIdentity>,
        kdf: KdfParams,
    ) -> Result<Self, StoreError> {
        let pin_len = pin.chars().count();
        if pin_len < MIN_PIN_LEN {
            return Err(StoreError::PinTooShort {
                min: MIN_PIN_LEN,
                len: pin_len,
            });
        }
        format::check_kdf(&kdf).map_err(|reason| StoreError::KeyDerivation { reason })?;
        prepare_directory(dir)?;
        let lock = acquire_lock(dir)?;
        let path = dir.join(STORE_FILE_NAME);
        if path.exists() {
            return Err(StoreError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        let header = format::new_header(kdf);
        let key =
            StoreKey::derive(pin, &header).map_err(|failure| map_failure(failure, dir, &path))?;
        let store = Self {
            dir: dir.to_path_buf(),
            path,
            header,
            key,
            created_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            attestation,
            credentials: Vec::new(),
            pairings: Vec::new(),
            workstations: Vec::new(),
            answered_requests: Vec::new(),
            _lock: lock,
        };
        store.persist()?;
        Ok(store)
    }

    /// Opens and unlocks the store in `dir`.
    pub fn open(dir: &Path, pin: &str) -> Result<Self, StoreError> {
        let path = dir.join(STORE_FILE_NAME);
        if !path.exists() {
            return Err(StoreError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        // Others who can write to the directory can replace the lock file (two holders, one
        // counter handed out twice) or swap the store file, so it must be as private as the file.
        let dir_mode = fs::metadata(dir)
            .map_err(io_error("inspect", dir))?
            .permissions()
            .mode();
        if dir_mode & 0o077 != 0 {
            return Err(StoreError::InsecurePermissions {
                path: dir.to_path_buf(),
                mode: dir_mode & 0o777,
            });
        }
        let lock = acquire_lock(dir)?;
        remove_stale_temp_files(dir)?;
        let mut file = File::open(&path).map_err(io_error("open", &path))?;
        let mode = file
            .metadata()
            .map_err(io_error("inspect", &path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::InsecurePermissions {
                path,
                mode: mode & 0o777,
            });
        }
        let mut image = Vec::new();
        file.read_to_end(&mut image)
            .map_err(io_error("read", &path))?;
        let header = format::parse_header(&image).map_err(|f| map_failure(f, dir, &path))?;
        let key = StoreKey::derive(pin, &header).map_err(|f| map_failure(f, dir, &path))?;
        let plaintext = format::open(&image, &key).map_err(|f| map_failure(f, dir, &path))?;
        let contents: PersistedContents =
            serde_json::from_slice(&plaintext).map_err(|error| StoreError::Corrupt {
                path: path.clone(),
                reason: format!("the decrypted contents are unreadable ({error})"),
            })?;
        let answered_requests = contents.answered_requests.clone();
        let workstations = contents
            .workstations
            .iter()
            .map(|w| WorkstationPairing {
                device_id: w.device_id.clone(),
                workstation_id: w.workstation_id.clone(),
                workstation_key: w.workstation_key.clone(),
                computer_name: w.computer_name.clone(),
                paired_at: w.paired_at,
            })
            .collect();
        let (attestation, credentials, pairings) =
            contents.restore().map_err(|reason| StoreError::Corrupt {
                path: path.clone(),
                reason,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            header,
            key,
            created_at: contents.created_at,
            attestation,
            credentials,
            pairings,
            workstations,
            answered_requests,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The approval that this store's PIN unlock stands for (user verified), for the CLI.
    pub fn user_verification(&self) -> PinUnlocked {
        PinUnlocked::new()
    }

    /// The servers this device is paired with (one per account), oldest first.
    pub fn pairings(&self) -> &[ServerPairing] {
        &self.pairings
    }

    /// Records a pairing, written to disk before this returns. A pairing with the same device
    /// id replaces the old one.
    pub fn add_pairing(&mut self, pairing: ServerPairing) -> Result<(), StoreError> {
        let previous = self.pairings.clone();
        self.pairings.retain(|p| p.device_id != pairing.device_id);
        self.pairings.push(pairing);
        if let Err(error) = self.persist() {
            self.pairings = previous;
            return Err(error);
        }
        Ok(())
    }

    /// Forgets the pairing with `device_id` (its device key is gone from the store once this
    /// returns `Ok(true)`); `Ok(false)` when there was none.
    pub fn remove_pairing(&mut self, device_id: &str) -> Result<bool, StoreError> {
        let previous = self.pairings.clone();
        let previous_workstations = self.workstations.clone();
        self.pairings.retain(|p| p.device_id != device_id);
        if self.pairings.len() == previous.len() {
            return Ok(false);
        }
        // A workstation paired through this account is no longer reachable either.
        self.workstations.retain(|w| w.device_id != device_id);
        if let Err(error) = self.persist() {
            self.pairings = previous;
            self.workstations = previous_workstations;
            return Err(error);
        }
        Ok(true)
    }

    /// The workstations this device paired, oldest first.
    pub fn workstations(&self) -> &[WorkstationPairing] {
        &self.workstations
    }

    /// Records a paired workstation, on disk before this returns. One with the same workstation
    /// id and device id replaces the old one.
    pub fn add_workstation(&mut self, workstation: WorkstationPairing) -> Result<(), StoreError> {
        let previous = self.workstations.clone();
        self.workstations.retain(|w| {
            !(w.workstation_id == workstation.workstation_id
                && w.device_id == workstation.device_id)
        });
        self.workstations.push(workstation);
        if let Err(error) = self.persist() {
            self.workstations = previous;
            return Err(error);
        }
        Ok(())
    }

    /// Forgets the workstation `workstation_id` for every account; `Ok(false)` when none was
    /// paired.
    pub fn remove_workstation(&mut self, workstation_id: &str) -> Result<bool, StoreError> {
        let previous = self.workstations.clone();
        self.workstations
            .retain(|w| w.workstation_id != workstation_id);
        if self.workstations.len() == previous.len() {
            return Ok(false);
        }
        if let Err(error) = self.persist() {
            self.workstations = previous;
            return Err(error);
        }
        Ok(true)
    }

    /// Whether the server request `request_id` was answered (signed or refused) before.
    pub fn was_answered(&self, request_id: &str) -> bool {
        self.answered_requests.iter().any(|a| a.id == request_id)
    }

    /// The answer to `request_id` that was recorded but not yet confirmed as received by the
    /// server: sent again, byte for byte, when the server asks again (a crash or a broken
    /// connection lost it), so that a request is answered without ever being signed twice.
    pub fn unsent_answer(&self, request_id: &str) -> Option<&str> {
        self.answered_requests
            .iter()
            .find(|a| a.id == request_id)
            .and_then(|a| a.unsent_answer.as_deref())
    }

    /// Records that `request_id` was answered with `answer` (the bytes to send), on disk before
    /// this returns, so that the device never signs the same request twice, even when the
    /// server sends it again; the answer is kept until [`FileStore::record_answer_received`].
    /// The newest [`MAX_ANSWERED_REQUESTS`] ids are kept, and unsent answers only for the newest
    /// `MAX_UNSENT_ANSWERS` of them (older requests have long expired on the server).
    pub fn record_answered(
        &mut self,
        request_id: &str,
        at: i64,
        answer: &str,
    ) -> Result<(), StoreError> {
        if self.was_answered(request_id) {
            return Ok(());
        }
        let previous = self.answered_requests.clone();
        self.answered_requests.push(AnsweredRequest {
            id: request_id.to_owned(),
            at,
            unsent_answer: Some(answer.to_owned()),
        });
        if self.answered_requests.len() > MAX_ANSWERED_REQUESTS {
            let excess = self.answered_requests.len() - MAX_ANSWERED_REQUESTS;
            self.answered_requests.drain(..excess);
        }
        let keep_from = self
            .answered_requests
            .len()
            .saturating_sub(MAX_UNSENT_ANSWERS);
        for old in &mut self.answered_requests[..keep_from] {
            old.unsent_answer = None;
        }
        if let Err(error) = self.persist() {
            self.answered_requests = previous;
            return Err(error);
        }
        Ok(())
    }

    /// Records that the server has the answer to `request_id` (it took it, or it says the request
    /// was answered or has ended): the kept bytes are dropped. Nothing is written when there
    /// were none.
    pub fn record_answer_received(&mut self, request_id: &str) -> Result<(), StoreError> {
        let Some(index) = self
            .answered_requests
            .iter()
            .position(|a| a.id == request_id && a.unsent_answer.is_some())
        else {
            return Ok(());
        };
        let kept = self.answered_requests[index].unsent_answer.take();
        if let Err(error) = self.persist() {
            self.answered_requests[index].unsent_answer = kept;
            return Err(error);
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), StoreError> {
        let contents = PersistedContents::capture(self);
        let plaintext = Zeroizing::new(serde_json::to_vec(&contents).map_err(|error| {
            StoreError::Encoding {
                reason: error.to_string(),
            }
        })?);
        let image = format::seal(&self.header, &self.key, &plaintext)
            .map_err(|reason| StoreError::Encoding { reason })?;
        write_atomically(&self.dir, &self.path, &image)
    }
}

impl CredentialStore for FileStore {
    fn attestation(&self) -> Option<&AttestationIdentity> {
        self.attestation.as_ref()
    }

    fn credentials(&self) -> &[StoredCredential] {
        &self.credentials
    }

    fn add_credential(&mut self, credential: StoredCredential) -> Result<(), StoreError> {
        if self
            .credentials
            .iter()
            .any(|c| c.credential_id == credential.credential_id)
        {
            return Err(StoreError::DuplicateCredential {
                credential_id: b64url(&credential.credential_id),
            });
        }
        self.credentials.push(credential);
        if let Err(error) = self.persist() {
            // Nothing was written: forget the credential so memory matches the disk.
            self.credentials.pop();
            return Err(error);
        }
        Ok(())
    }

    fn next_sign_count(&mut self, credential_id: &[u8]) -> Result<u32, StoreError> {
        let index = self
            .credentials
            .iter()
            .position(|c| c.credential_id == credential_id)
            .ok_or_else(|| StoreError::UnknownCredential {
                credential_id: b64url(credential_id),
            })?;
        let previous = self.credentials[index].sign_count;
        let next = incremented(&self.credentials[index])?;
        self.credentials[index].sign_count = next;
        if let Err(error) = self.persist() {
            self.credentials[index].sign_count = previous;
            return Err(error);
        }
        Ok(next)
    }
}

fn map_failure(failure: OpenFailure, dir: &Path, path: &Path) -> StoreError {
    match failure {
        OpenFailure::Corrupt(reason) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        OpenFailure::UnsupportedVersion(found) => StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: format::FORMAT_VERSION,
        },
        OpenFailure::WrongPin => StoreError::WrongPin {
            dir: dir.to_path_buf(),
        },
        OpenFailure::Kdf(reason) => StoreError::KeyDerivation { reason },
    }
}

/// Creates the directory with mode 0700, or checks an existing one.
fn prepare_directory(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error("create", dir))?;
        return Ok(());
    }
    let mode = fs::metadata(dir)
        .map_err(io_error("inspect", dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let empty = fs::read_dir(dir)
            .map_err(io_error("list", dir))?
            .next()
            .is_none();
        if !empty {
            return Err(StoreError::InsecurePermissions {
                path: dir.to_path_buf(),
                mode: mode & 0o777,
            });
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error("set permissions on", dir))?;
    }
    Ok(())
}

/// Takes the exclusive lock on `dir/keystore.lock` and writes our pid into it.
fn acquire_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error("open the lock file", &path))?;
    match lock_with_grace(&file) {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            return Err(StoreError::InUse {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(StoreError::Io {
                action: "lock",
                path,
                source,
            });
        }
    }
    file.set_len(0)
        .map_err(io_error("write the lock file", &path))?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io_error("write the lock file", &path))?;
    Ok(file)
}

/// `try_lock`, retried for a short while: a process that forks (to start any other program)
/// holds a copy of every open descriptor, our lock's included, until the child execs, so a
/// store closed and reopened by a busy multi-threaded host can find its own lock held for a
/// moment.
fn lock_with_grace(file: &File) -> Result<(), fs::TryLockError> {
    const GRACE: std::time::Duration = std::time::Duration::from_millis(500);
    const STEP: std::time::Duration = std::time::Duration::from_millis(10);
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < GRACE => {
                std::thread::sleep(STEP);
            }
            other => return other,
        }
    }
}

/// Temp files left by a crash mid-write (we hold the lock, so none is in use).
fn remove_stale_temp_files(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(entry.path()).map_err(io_error("remove", &entry.path()))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `target` (in `dir`) crash-safely with mode 0600: a temporary file in the
/// same directory, fsync, rename over `target`, fsync the directory. A crash leaves the old or
/// the new file, never a mix.
pub fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use rand_core::RngCore as _;
    let mut suffix = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut suffix);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        b64url(&suffix)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_error("create", &temp))?;
        #[cfg(feature = "fault-injection")]
        crate::fault::before_write(&mut file, bytes);
        file.write_all(bytes).map_err(io_error("write", &temp))?;
        file.sync_all().map_err(io_error("sync", &temp))?;
        drop(file);
        fs::rename(&temp, target).map_err(io_error("replace", target))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync", dir))
    })();
    if result.is_err() {
        // Best effort: a leftover temp file is also removed at the next open.
        let _ = fs::remove_file(&temp);
    }
    result
}

type Restored = (
    Option<AttestationIdentity>,
    Vec<StoredCredential>,
    Vec<ServerPairing>,
);

/// The decrypted contents, as JSON. Private: the only place key scalars are encoded.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PersistedContents {
    version: u32,
    created_at: i64,
    attestation: Option<PersistedAttestation>,
    credentials: Vec<PersistedCredential>,
    /// Absent in version 1.
    #[serde(default)]
    pairings: Vec<PersistedPairing>,
    /// Absent in version 1.
    #[serde(default)]
    answered_requests: Vec<AnsweredRequest>,
    /// Absent in stores written before workstation pairing.
    #[serde(default)]
    workstations: Vec<PersistedWorkstation>,
}

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PersistedWorkstation {
    device_id: String,
    workstation_id: String,
    workstation_key: String,
    computer_name: String,
    paired_at: i64,
}

/// A server request the device answered.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct AnsweredRequest {
    id: String,
    at: i64,
    /// The answer until the server confirmed it; absent in stores written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unsent_answer: Option<String>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PersistedPairing {
    server_url: String,
    tls_pin: String,
    device_id: String,
    device_key: String,
    upn: String,
    tenant_id: String,
    entra_user_id: String,
    integration_id: String,
    paired_at: i64,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PersistedAttestation {
    key: String,
    batch_certificate: String,
    root_certificate: String,
    source: String,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PersistedCredential {
    credential_id: String,
    rp_id: String,
    rp_name: String,
    user_id: String,
    user_name: String,
    user_display_name: String,
    tenant: Option<String>,
    key: String,
    sign_count: u32,
    cred_protect: u8,
    hmac_secret_with_uv: Option<String>,
    hmac_secret_without_uv: Option<String>,
    created_at: i64,
}

impl PersistedContents {
    fn capture(store: &FileStore) -> Self {
        Self {
            version: CONTENTS_VERSION,
            created_at: store.created_at,
            attestation: store.attestation.as_ref().map(|a| PersistedAttestation {
                key: b64url(a.key.secret_scalar().as_ref()),
                batch_certificate: b64url(&a.batch_certificate),
                root_certificate: b64url(&a.root_certificate),
                source: match a.source {
                    AttestationSource::Organisation => "organisation".to_owned(),
                    AttestationSource::DeviceLocal => "device-local".to_owned(),
                },
            }),
            credentials: store
                .credentials
                .iter()
                .map(|c| PersistedCredential {
                    credential_id: b64url(&c.credential_id),
                    rp_id: c.account.rp_id.clone(),
                    rp_name: c.account.rp_name.clone(),
                    user_id: b64url(&c.account.user_id),
                    user_name: c.account.user_name.clone(),
                    user_display_name: c.account.user_display_name.clone(),
                    tenant: c.account.tenant.clone(),
                    key: b64url(c.key.secret_scalar().as_ref()),
                    sign_count: c.sign_count,
                    cred_protect: c.cred_protect.level(),
                    hmac_secret_with_uv: c.hmac_secret.as_ref().map(|h| b64url(h.with_uv.as_ref())),
                    hmac_secret_without_uv: c
                        .hmac_secret
                        .as_ref()
                        .map(|h| b64url(h.without_uv.as_ref())),
                    created_at: c.created_at,
                })
                .collect(),
            answered_requests: store.answered_requests.clone(),
            workstations: store
                .workstations
                .iter()
                .map(|w| PersistedWorkstation {
                    device_id: w.device_id.clone(),
                    workstation_id: w.workstation_id.clone(),
                    workstation_key: w.workstation_key.clone(),
                    computer_name: w.computer_name.clone(),
                    paired_at: w.paired_at,
                })
                .collect(),
            pairings: store
                .pairings
                .iter()
                .map(|p| PersistedPairing {
                    server_url: p.server_url.clone(),
                    tls_pin: p.tls_pin.clone(),
                    device_id: p.device_id.clone(),
                    device_key: b64url(p.device_key.as_ref()),
                    upn: p.upn.clone(),
                    tenant_id: p.tenant_id.clone(),
                    entra_user_id: p.entra_user_id.clone(),
                    integration_id: p.integration_id.clone(),
                    paired_at: p.paired_at,
                })
                .collect(),
        }
    }

    fn restore(&self) -> Result<Restored, String> {
        if !(OLDEST_CONTENTS_VERSION..=CONTENTS_VERSION).contains(&self.version) {
            return Err(format!("unknown contents version {}", self.version));
        }
        let bytes = |what: &str, text: &str| {
            decode_lenient(text).ok_or_else(|| format!("{what} is not base64url"))
        };
        let attestation = match &self.attestation {
            None => None,
            Some(a) => {
                let scalar = Zeroizing::new(bytes("the batch key", &a.key)?);
                Some(AttestationIdentity {
                    key: AttestationKey::from_secret_scalar(&scalar)
                        .ok_or("the batch key is not a P-256 key")?,
                    batch_certificate: bytes("the batch certificate", &a.batch_certificate)?,
                    root_certificate: bytes("the root certificate", &a.root_certificate)?,
                    source: match a.source.as_str() {
                        "organisation" => AttestationSource::Organisation,
                        "device-local" => AttestationSource::DeviceLocal,
                        other => return Err(format!("unknown attestation source {other:?}")),
                    },
                })
            }
        };
        let secret32 = |what: &str, text: &str| -> Result<Zeroizing<[u8; 32]>, String> {
            let raw = Zeroizing::new(bytes(what, text)?);
            let mut out = Zeroizing::new([0u8; 32]);
            if raw.len() != 32 {
                return Err(format!("{what} has {} bytes, expected 32", raw.len()));
            }
            out.copy_from_slice(&raw);
            Ok(out)
        };
        let credentials = self
            .credentials
            .iter()
            .map(|c| {
                let scalar = Zeroizing::new(bytes("a credential key", &c.key)?);
                let hmac_secret = match (&c.hmac_secret_with_uv, &c.hmac_secret_without_uv) {
                    (Some(with_uv), Some(without_uv)) => Some(HmacSecret {
                        with_uv: secret32("an hmac-secret", with_uv)?,
                        without_uv: secret32("an hmac-secret", without_uv)?,
                    }),
                    _ => None,
                };
                Ok(StoredCredential {
                    credential_id: bytes("a credential id", &c.credential_id)?,
                    account: Account {
                        rp_id: c.rp_id.clone(),
                        rp_name: c.rp_name.clone(),
                        user_id: bytes("a user id", &c.user_id)?,
                        user_name: c.user_name.clone(),
                        user_display_name: c.user_display_name.clone(),
                        tenant: c.tenant.clone(),
                    },
                    key: CredentialKey::from_secret_scalar(&scalar)
                        .ok_or("a credential key is not a P-256 key")?,
                    sign_count: c.sign_count,
                    cred_protect: CredProtect::from_level(c.cred_protect)
                        .ok_or_else(|| format!("unknown credProtect level {}", c.cred_protect))?,
                    hmac_secret,
                    created_at: c.created_at,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let pairings = self
            .pairings
            .iter()
            .map(|p| {
                Ok(ServerPairing {
                    server_url: p.server_url.clone(),
                    tls_pin: p.tls_pin.clone(),
                    device_id: p.device_id.clone(),
                    device_key: secret32("a device key", &p.device_key)?,
                    upn: p.upn.clone(),
                    tenant_id: p.tenant_id.clone(),
                    entra_user_id: p.entra_user_id.clone(),
                    integration_id: p.integration_id.clone(),
                    paired_at: p.paired_at,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((attestation, credentials, pairings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairing(device_id: &str) -> ServerPairing {
        ServerPairing {
            server_url: "https://keybridge.example.com".to_owned(),
            tls_pin: "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk".to_owned(),
            device_id: device_id.to_owned(),
            device_key: Zeroizing::new([7u8; 32]),
            upn: "ana@contoso.com".to_owned(),
            tenant_id: "8d6f2c1a-0b9e-4c3d-a1f2-3e4d5c6b7a89".to_owned(),
            entra_user_id: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f".to_owned(),
            integration_id: "ContosoPasskeys".to_owned(),
            paired_at: 1_795_615_200,
        }
    }

    #[test]
    fn pairings_survive_reopening_and_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        let mut store = FileStore::create(&path, "123456", None, KdfParams::insecure_for_tests())
            .expect("created");
        store.add_pairing(pairing("device-1")).expect("added");
        store.add_pairing(pairing("device-2")).expect("added");
        drop(store);
        let mut store = FileStore::open(&path, "123456").expect("opened");
        let ids: Vec<&str> = store
            .pairings()
            .iter()
            .map(|p| p.device_id.as_str())
            .collect();
        assert_eq!(ids, ["device-1", "device-2"]);
        assert_eq!(*store.pairings()[0].device_key, [7u8; 32]);
        assert!(!format!("{:?}", store.pairings()[0]).contains("7, 7"));
        assert!(store.remove_pairing("device-1").expect("removed"));
        assert!(!store.remove_pairing("device-1").expect("nothing to remove"));
        drop(store);
        let store = FileStore::open(&path, "123456").expect("opened");
        assert_eq!(store.pairings().len(), 1);
        assert_eq!(store.pairings()[0].device_id, "device-2");
    }

    #[test]
    fn answered_requests_are_remembered_across_opening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        let mut store = FileStore::create(&path, "123456", None, KdfParams::insecure_for_tests())
            .expect("created");
        assert!(!store.was_answered("request-1"));
        store
            .record_answered("request-1", 10, "first")
            .expect("recorded");
        store
            .record_answered("request-1", 11, "second")
            .expect("recorded once");
        drop(store);
        let mut store = FileStore::open(&path, "123456").expect("opened");
        assert!(store.was_answered("request-1"));
        assert!(!store.was_answered("request-2"));
        assert_eq!(
            store.unsent_answer("request-1"),
            Some("first"),
            "the first answer is kept, never replaced"
        );
        for n in 0..MAX_ANSWERED_REQUESTS {
            store.answered_requests.push(AnsweredRequest {
                id: format!("bulk-{n}"),
                at: 0,
                unsent_answer: Some(format!("answer-{n}")),
            });
        }
        store
            .record_answered("newest", 12, "latest")
            .expect("recorded");
        assert_eq!(store.answered_requests.len(), MAX_ANSWERED_REQUESTS);
        assert!(
            !store.was_answered("request-1"),
            "the oldest is forgotten first"
        );
        assert!(store.was_answered("newest"));
        let kept = store
            .answered_requests
            .iter()
            .filter(|a| a.unsent_answer.is_some())
            .count();
        assert_eq!(kept, MAX_UNSENT_ANSWERS, "only the newest keep their bytes");
        assert_eq!(store.unsent_answer("newest"), Some("latest"));
        assert_eq!(store.unsent_answer("bulk-0"), None);
    }

    #[test]
    fn an_unsent_answer_survives_reopening_until_the_server_has_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        let mut store = FileStore::create(&path, "123456", None, KdfParams::insecure_for_tests())
            .expect("created");
        store
            .record_answered("request-1", 10, r#"{"answer":"approved"}"#)
            .expect("recorded");
        drop(store);
        // The process died before the server confirmed the answer: it is still there.
        let mut store = FileStore::open(&path, "123456").expect("opened");
        assert_eq!(
            store.unsent_answer("request-1"),
            Some(r#"{"answer":"approved"}"#)
        );
        store
            .record_answer_received("request-1")
            .expect("confirmed");
        store
            .record_answer_received("request-1")
            .expect("confirming twice is harmless");
        store
            .record_answer_received("never-seen")
            .expect("an unknown id is harmless");
        drop(store);
        let store = FileStore::open(&path, "123456").expect("opened");
        assert!(store.was_answered("request-1"), "still never signed again");
        assert_eq!(store.unsent_answer("request-1"), None);
    }

    #[test]
    fn a_version_1_store_without_pairings_still_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        let store = FileStore::create(&path, "123456", None, KdfParams::insecure_for_tests())
            .expect("created");
        // The contents as the previous version wrote them: version 1, no `pairings` member.
        let old = serde_json::json!({
            "version": 1,
            "created_at": 1_795_000_000,
            "attestation": null,
            "credentials": [],
        });
        let image =
            format::seal(&store.header, &store.key, old.to_string().as_bytes()).expect("sealed");
        write_atomically(&store.dir, &store.path, &image).expect("written");
        drop(store);
        let mut store = FileStore::open(&path, "123456").expect("a version 1 store opens");
        assert!(store.pairings().is_empty());
        // The next change writes the current version, which opens again.
        store.add_pairing(pairing("device-1")).expect("added");
        drop(store);
        let store = FileStore::open(&path, "123456").expect("opened");
        assert_eq!(store.pairings().len(), 1);
    }

    #[test]
    fn a_newer_contents_version_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store");
        let store = FileStore::create(&path, "123456", None, KdfParams::insecure_for_tests())
            .expect("created");
        let newer = serde_json::json!({
            "version": CONTENTS_VERSION + 1,
            "created_at": 1,
            "attestation": null,
            "credentials": [],
        });
        let image =
            format::seal(&store.header, &store.key, newer.to_string().as_bytes()).expect("sealed");
        write_atomically(&store.dir, &store.path, &image).expect("written");
        drop(store);
        let error = FileStore::open(&path, "123456").expect_err("refused");
        assert!(
            error.to_string().contains("unknown contents version 3"),
            "{error}"
        );
    }
}
