//! Secrets at rest: AES-256-GCM under a key ring.
//!
//! # Format
//!
//! A sealed value is `'K' | version (1) | key-id length | key id | 12-byte nonce | ciphertext
//! and tag`. The key id is the first 4 bytes (8 hex digits) of
//! `SHA-256("keybridge secret key id\0" || key)`, so it is derived from the key and never has to
//! be configured. The associated data binds the value to its place:
//! `"keybridge-secret\0" | table | "\0" | column | "\0" | row id | "\0" | header`, so a
//! ciphertext copied to another row, column or table fails to open.
//!
//! # Keys
//!
//! The current key seals; the current and every previous key open. A key comes from the
//! configuration (32 bytes, base64) or from a key file created on first start
//! ([`load_or_create_key_file`]: mode 0600, created atomically, never overwritten).
//!
//! # Rotating the key
//!
//! 1. Generate a new key (`SecretKey::generate().to_base64()`) and make it the current key;
//!    move the old one to the previous keys. keybridge keeps working: old values still open.
//! 2. Run [`crate::Store::rotate_secrets`] (the CLI's secret-key rotation): every sealed value
//!    is re-encrypted under the current key in one transaction, so a failure changes nothing.
//! 3. When the report says no value is left under an old key, remove it from the previous keys.
//!
//! Secrets never appear in `Debug` output or in error messages.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zeroize::{Zeroize, Zeroizing};

use crate::db::Store;
use crate::error::{Result, StoreError};

const MAGIC: u8 = b'K';
const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// What went wrong with a secret. Never carries the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A configured key is not 32 bytes of base64.
    #[error("the secret key is not valid: {0} (expected 32 random bytes, base64-encoded)")]
    BadKey(&'static str),
    /// The value was sealed under a key the ring does not hold.
    #[error(
        "{table}.{column} of {row} is encrypted under key {key_id}, which is not in the key ring: add that key to the previous secret keys"
    )]
    UnknownKey {
        /// Key id found in the ciphertext.
        key_id: String,
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Row.
        row: String,
    },
    /// Authentication failed: the value was altered, moved from another row, or the key with
    /// this id is a different key.
    #[error(
        "{table}.{column} of {row} does not decrypt: the value was altered or copied from another row"
    )]
    Tampered {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Row.
        row: String,
    },
    /// The bytes are not a sealed value of a known format version.
    #[error("{table}.{column} of {row} is not a sealed secret (unknown format)")]
    Malformed {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Row.
        row: String,
    },
    /// The decrypted bytes should have been text.
    #[error("{table}.{column} of {row} decrypted to bytes that are not UTF-8")]
    NotText {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Row.
        row: String,
    },
}

/// A secret text (client secret, private key PEM, recovery PIN). Zeroed on drop; `Debug`
/// prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(Zeroizing::new(s.into()))
    }

    /// The secret text. Call only where the value is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> SecretString {
        SecretString::new(s)
    }
}

/// One AES-256 key with its derived id. `Debug` shows the id only.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        SecretKey::from_bytes(bytes)
    }

    /// From 32 raw bytes.
    pub fn from_bytes(mut bytes: [u8; 32]) -> SecretKey {
        let mut hasher = Sha256::new();
        hasher.update(b"keybridge secret key id\0");
        hasher.update(bytes);
        let id = hex::encode(&hasher.finalize()[..4]);
        let key = Zeroizing::new(bytes);
        bytes.zeroize();
        SecretKey { id, key }
    }

    /// From base64 text (standard alphabet, padding optional, surrounding space ignored).
    pub fn from_base64(text: &str) -> Result<SecretKey, SecretError> {
        let trimmed = text.trim().trim_end_matches('=');
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trimmed)
                .map_err(|_| SecretError::BadKey("it is not base64"))?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey("it does not decode to 32 bytes"))?;
        Ok(SecretKey::from_bytes(bytes))
    }

    /// The key as base64, for a configuration file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(*self.key))
    }

    /// The derived key id (8 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }
}

/// The current key (seals) and previous keys (still open old values).
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SecretKey,
    previous: Vec<SecretKey>,
}

/// Where a sealed value lives; part of its associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretPlace<'a> {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) row: &'a str,
}

impl SecretPlace<'_> {
    fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + header.len());
        aad.extend_from_slice(b"keybridge-secret\0");
        for part in [self.table, self.column, self.row] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad.extend_from_slice(header);
        aad
    }
}

impl KeyRing {
    /// A ring sealing with `current`, opening with `current` and `previous`.
    pub fn new(current: SecretKey, previous: Vec<SecretKey>) -> KeyRing {
        KeyRing { current, previous }
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// Ids of every key in the ring, current first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(self.current.id())
            .chain(self.previous.iter().map(SecretKey::id))
            .collect()
    }

    fn find(&self, id: &str) -> Option<&SecretKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
    }

    pub(crate) fn seal(&self, place: SecretPlace<'_>, plaintext: &[u8]) -> Vec<u8> {
        let id = self.current.id.as_bytes();
        let mut out = Vec::with_capacity(3 + id.len() + NONCE_LEN + plaintext.len() + 16);
        out.push(MAGIC);
        out.push(FORMAT_VERSION);
        // Key ids are 8 hex digits; the length byte keeps the format open to others.
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = place.aad(&out);
        // Encryption with a 32-byte key and a 12-byte nonce cannot fail for inputs this size;
        // an empty output would fail to open and be reported there.
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub(crate) fn open(
        &self,
        place: SecretPlace<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let malformed = || SecretError::Malformed {
            table: place.table,
            column: place.column,
            row: place.row.to_string(),
        };
        let (key_id, header_len) = parse_header(sealed).ok_or_else(malformed)?;
        let key = self.find(key_id).ok_or_else(|| SecretError::UnknownKey {
            key_id: key_id.to_string(),
            table: place.table,
            column: place.column,
            row: place.row.to_string(),
        })?;
        let rest = &sealed[header_len..];
        if rest.len() < NONCE_LEN + 16 {
            return Err(malformed());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = place.aad(&sealed[..header_len]);
        key.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Tampered {
                table: place.table,
                column: place.column,
                row: place.row.to_string(),
            })
    }

    pub(crate) fn seal_str(&self, place: SecretPlace<'_>, secret: &SecretString) -> Vec<u8> {
        self.seal(place, secret.expose().as_bytes())
    }

    pub(crate) fn open_str(
        &self,
        place: SecretPlace<'_>,
        sealed: &[u8],
    ) -> Result<SecretString, SecretError> {
        let bytes = self.open(place, sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SecretError::NotText {
            table: place.table,
            column: place.column,
            row: place.row.to_string(),
        })?;
        Ok(SecretString::new(text))
    }
}

/// The key id a sealed value names, and the header length.
fn parse_header(sealed: &[u8]) -> Option<(&str, usize)> {
    let [magic, version, id_len, rest @ ..] = sealed else {
        return None;
    };
    if *magic != MAGIC || *version != FORMAT_VERSION {
        return None;
    }
    let id_len = usize::from(*id_len);
    let id = std::str::from_utf8(rest.get(..id_len)?).ok()?;
    Some((id, 3 + id_len))
}

/// Reads the key in `path`, or creates the file with a new random key (base64, mode 0600) when
/// it does not exist. Creation is atomic (written to a temporary file, then hard-linked into
/// place, which fails rather than overwrite), so two processes starting at once end up with
/// the same key and an existing key is never replaced.
pub fn load_or_create_key_file(path: &Path) -> Result<SecretKey> {
    let key_file_error = |reason: String| StoreError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    match fs::metadata(path) {
        Ok(_) => return read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_file_error(format!("cannot read it: {e}"))),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let key = SecretKey::generate();
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret-key"),
        uuid::Uuid::new_v4().simple()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(key.to_base64().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(key_file_error(format!(
            "cannot create it in {}: {e} (check that the directory exists and is writable)",
            dir.display()
        )));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(key_file_error(format!("cannot create it: {e}"))),
    }
}

/// Reads an existing key file (refusing one readable by other users); never creates one.
/// Used for previous keys during a rotation, which must already exist.
pub fn read_key_file(path: &Path) -> Result<SecretKey> {
    let key_file_error = |reason: String| StoreError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| key_file_error(format!("cannot read it: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_file_error(format!(
            "it is readable by other users (mode {mode:o}): run chmod 600 on it"
        )));
    }
    let text = Zeroizing::new(
        fs::read_to_string(path).map_err(|e| key_file_error(format!("cannot read it: {e}")))?,
    );
    SecretKey::from_base64(&text).map_err(|e| key_file_error(e.to_string()))
}

/// A column holding sealed values, with the constant SQL to read and rewrite it.
struct SecretColumn {
    table: &'static str,
    column: &'static str,
    /// Selects `k1`, `k2` (empty for one-column keys) and `v`.
    select: &'static str,
    /// Binds the new value, `k1`, for two-column keys `k2`, then the value read: a value
    /// changed since it was read (a credential replaced meanwhile) is left alone.
    update: &'static str,
    two_keys: bool,
}

const SECRET_COLUMNS: &[SecretColumn] = &[
    SecretColumn {
        table: "integrations",
        column: "client_secret_enc",
        select: "SELECT id AS k1, '' AS k2, client_secret_enc AS v FROM integrations WHERE client_secret_enc IS NOT NULL",
        update: "UPDATE integrations SET client_secret_enc = $1 WHERE id = $2 AND client_secret_enc = $3",
        two_keys: false,
    },
    SecretColumn {
        table: "integrations",
        column: "private_key_enc",
        select: "SELECT id AS k1, '' AS k2, private_key_enc AS v FROM integrations WHERE private_key_enc IS NOT NULL",
        update: "UPDATE integrations SET private_key_enc = $1 WHERE id = $2 AND private_key_enc = $3",
        two_keys: false,
    },
    SecretColumn {
        table: "workstation_recovery",
        column: "pin_enc",
        select: "SELECT workstation_id AS k1, user_id AS k2, pin_enc AS v FROM workstation_recovery",
        update: "UPDATE workstation_recovery SET pin_enc = $1 WHERE workstation_id = $2 AND user_id = $3 AND pin_enc = $4",
        two_keys: true,
    },
    SecretColumn {
        table: "bulk_invite_results",
        column: "link_enc",
        select: "SELECT job_id AS k1, subject AS k2, link_enc AS v FROM bulk_invite_results WHERE link_enc IS NOT NULL",
        update: "UPDATE bulk_invite_results SET link_enc = $1 WHERE job_id = $2 AND subject = $3 AND link_enc = $4",
        two_keys: true,
    },
];

/// The row id used in the associated data of a two-column key.
pub(crate) fn composite_row(k1: &str, k2: &str) -> String {
    format!("{k1}/{k2}")
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Values re-encrypted under the current key.
    pub reencrypted: usize,
    /// Of those, how many were under an older key before.
    pub moved_from_old_keys: usize,
    /// The key now sealing everything.
    pub current_key_id: String,
}

impl Store {
    /// Re-encrypts every sealed value under the key ring's current key, in one transaction:
    /// either everything moves or nothing does. Afterwards previous keys may be removed.
    pub async fn rotate_secrets(&self) -> Result<RotationReport> {
        let ring = self.keyring().clone();
        let mut db = self.db();
        let mut t = db.begin().await?;
        let mut report = RotationReport {
            current_key_id: ring.current_key_id().to_string(),
            ..RotationReport::default()
        };
        for col in SECRET_COLUMNS {
            let rows = sqlx::query(col.select).fetch_all(&mut *t).await?;
            for row in rows {
                let k1: String = row.try_get("k1")?;
                let k2: String = row.try_get("k2")?;
                let sealed: Vec<u8> = row.try_get("v")?;
                let row_id = if col.two_keys {
                    composite_row(&k1, &k2)
                } else {
                    k1.clone()
                };
                let place = SecretPlace {
                    table: col.table,
                    column: col.column,
                    row: &row_id,
                };
                let plain = ring.open(place, &sealed)?;
                let from_old_key =
                    parse_header(&sealed).map(|(id, _)| id) != Some(ring.current_key_id());
                let resealed = ring.seal(place, &plain);
                let mut q = sqlx::query(col.update).bind(resealed).bind(k1);
                if col.two_keys {
                    q = q.bind(k2);
                }
                // On PostgreSQL the read above takes no lock: a value replaced since then was
                // sealed anew by its writer and must not be overwritten with the old one.
                let done = q.bind(sealed).execute(&mut *t).await?;
                if done.rows_affected() == 0 {
                    continue;
                }
                if from_old_key {
                    report.moved_from_old_keys += 1;
                }
                report.reencrypted += 1;
            }
        }
        t.commit().await?;
        Ok(report)
    }

    /// How many sealed values each key id protects (to know when an old key can go).
    pub async fn secret_key_usage(&self) -> Result<Vec<(String, usize)>> {
        let mut conn = self.raw_pool().acquire().await?;
        let mut usage: Vec<(String, usize)> = Vec::new();
        for col in SECRET_COLUMNS {
            let rows = sqlx::query(col.select).fetch_all(&mut *conn).await?;
            for row in rows {
                let sealed: Vec<u8> = row.try_get("v")?;
                let id = parse_header(&sealed)
                    .map(|(id, _)| id.to_string())
                    .unwrap_or_else(|| "(unreadable)".to_string());
                match usage.iter_mut().find(|(k, _)| *k == id) {
                    Some((_, n)) => *n += 1,
                    None => usage.push((id, 1)),
                }
            }
        }
        usage.sort();
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(row: &str) -> SecretPlace<'_> {
        SecretPlace {
            table: "integrations",
            column: "client_secret_enc",
            row,
        }
    }

    #[test]
    fn seals_and_opens_bound_to_its_row() {
        let ring = KeyRing::new(SecretKey::generate(), vec![]);
        let sealed = ring.seal(place("a"), b"hunter2");
        assert_eq!(&*ring.open(place("a"), &sealed).unwrap(), b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert!(matches!(
            ring.open(place("b"), &sealed),
            Err(SecretError::Tampered { .. })
        ));
        let other_column = SecretPlace {
            column: "private_key_enc",
            ..place("a")
        };
        assert!(ring.open(other_column, &sealed).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            ring.open(place("a"), &flipped),
            Err(SecretError::Tampered { .. })
        ));
    }

    #[test]
    fn previous_keys_open_and_unknown_keys_are_named() {
        let old = SecretKey::generate();
        let new = SecretKey::generate();
        let old_ring = KeyRing::new(old.clone(), vec![]);
        let sealed = old_ring.seal(place("a"), b"x");
        let rotated = KeyRing::new(new.clone(), vec![old.clone()]);
        assert_eq!(&*rotated.open(place("a"), &sealed).unwrap(), b"x");
        let without_old = KeyRing::new(new, vec![]);
        match without_old.open(place("a"), &sealed) {
            Err(SecretError::UnknownKey { key_id, .. }) => assert_eq!(key_id, old.id()),
            other => panic!("expected UnknownKey, got {other:?}"),
        }
    }

    #[test]
    fn matches_an_independent_aes_gcm_vector() {
        // NIST SP 800-38D / McGrew-Viega test case 16 (AES-256, 12-byte IV, with AAD): checks
        // that the cipher we build is plain AES-256-GCM.
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        let k = SecretKey::from_bytes(bytes);
        let out = k
            .cipher()
            .encrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(
            hex::encode(&out[pt.len()..]),
            "76fc6ece0f4e1768cddf8853bb2d551b"
        );
        assert_eq!(hex::encode(&out[..16]), "522dc1f099567d07f47f37a32a84427d");
    }

    #[test]
    fn keys_parse_from_base64_and_debug_hides_them() {
        let key = SecretKey::generate();
        let text = key.to_base64();
        let again = SecretKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(!format!("{key:?}").contains(text.as_str()));
        assert!(matches!(
            SecretKey::from_base64("not base64!"),
            Err(SecretError::BadKey(_))
        ));
        assert!(matches!(
            SecretKey::from_base64("AAAA"),
            Err(SecretError::BadKey(_))
        ));
        assert_eq!(format!("{:?}", SecretString::new("hunter2")), "[redacted]");
    }

    #[test]
    fn key_file_is_created_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = load_or_create_key_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create_key_file(&path).unwrap();
        assert_eq!(first.id(), second.id());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let missing_dir = dir.path().join("nope/secret.key");
        assert!(load_or_create_key_file(&missing_dir).is_err());
    }

    #[test]
    fn racing_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load_or_create_key_file(&path).unwrap().id().to_string()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
