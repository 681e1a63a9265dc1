//! The workstation's state: `workstation.json` in a 0700 directory, mode 0600, replaced
//! atomically (temporary file, fsync, rename). It holds the workstation's private key, so it is
//! as sensitive as an SSH host key; on Windows the key would live in the TPM instead
//! (`docs/workstation.md`).

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

use crate::error::Error;

/// The file name inside the state directory.
pub const STATE_FILE: &str = "workstation.json";
/// The state format this build writes.
pub const STATE_VERSION: u32 = 1;

/// What an enrolled workstation remembers.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredState {
    /// Format version.
    pub version: u32,
    /// The server's base URL.
    pub server_url: String,
    /// The server's TLS pin (base64url).
    pub tls_pin: String,
    /// The Workstation ID.
    pub workstation_id: Uuid,
    /// The workstation key's secret scalar, base64url. Never printed.
    pub workstation_key: String,
    /// The computer name registered.
    pub computer_name: String,
    /// The integration's internal id.
    pub integration_id: String,
    /// The Entra tenant.
    pub tenant_id: Uuid,
    /// When the install token was exchanged, Unix seconds.
    pub enrolled_at: i64,
}

impl Drop for StoredState {
    fn drop(&mut self) {
        self.workstation_key.zeroize();
    }
}

impl std::fmt::Debug for StoredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredState")
            .field("server_url", &self.server_url)
            .field("workstation_id", &self.workstation_id)
            .field("computer_name", &self.computer_name)
            .field("workstation_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl StoredState {
    /// The state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Whether `dir` holds a state file.
    pub fn exists(dir: &Path) -> bool {
        StoredState::path(dir).exists()
    }

    /// Reads the state; refuses a file others can read.
    pub fn load(dir: &Path) -> Result<StoredState, Error> {
        let path = StoredState::path(dir);
        if !path.exists() {
            return Err(Error::NotEnrolled {
                dir: dir.to_path_buf(),
            });
        }
        let state_error = |reason: String| Error::State {
            path: path.clone(),
            reason,
        };
        let mode = std::fs::metadata(&path)
            .map_err(|e| state_error(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(state_error(format!(
                "its mode is {:o}, readable by others; it holds the workstation's key: `chmod 600` it, or enrol again if others may have read it",
                mode & 0o777
            )));
        }
        let text = std::fs::read(&path).map_err(|e| state_error(e.to_string()))?;
        let state: StoredState = serde_json::from_slice(&text)
            .map_err(|e| state_error(format!("it is damaged ({e}); enrol again")))?;
        if state.version != STATE_VERSION {
            return Err(state_error(format!(
                "format version {} is unknown to this build; update keybridge",
                state.version
            )));
        }
        Ok(state)
    }

    /// Writes the state crash-safely with mode 0600 (directory 0700, created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = StoredState::path(dir);
        let state_error = |reason: String| Error::State {
            path: path.clone(),
            reason,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| state_error(format!("cannot create its directory: {e}")))?;
        }
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| state_error(e.to_string()))?;
        let written = keybridge_authenticator::write_atomically(dir, &path, &json);
        json.zeroize();
        written.map_err(|e| state_error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StoredState {
        StoredState {
            version: STATE_VERSION,
            server_url: "https://kb.example.com".into(),
            tls_pin: "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk".into(),
            workstation_id: Uuid::from_u128(1),
            workstation_key: "c2VjcmV0".into(),
            computer_name: "DESKTOP-7".into(),
            integration_id: "ContosoPasskeys".into(),
            tenant_id: Uuid::from_u128(2),
            enrolled_at: 1_795_615_200,
        }
    }

    #[test]
    fn saved_private_and_read_back() {
        let temp = tempfile::tempdir().expect("temp");
        let dir = temp.path().join("ws");
        assert!(matches!(
            StoredState::load(&dir),
            Err(Error::NotEnrolled { .. })
        ));
        state().save(&dir).expect("saved");
        let mode = std::fs::metadata(StoredState::path(&dir))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = StoredState::load(&dir).expect("loads");
        assert_eq!(back.workstation_id, Uuid::from_u128(1));
        assert!(!format!("{back:?}").contains("c2VjcmV0"));

        std::fs::set_permissions(
            StoredState::path(&dir),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let error = StoredState::load(&dir).expect_err("too open");
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(
            StoredState::path(&dir),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        std::fs::write(StoredState::path(&dir), b"{not json").expect("damage");
        let error = StoredState::load(&dir).expect_err("damaged");
        assert!(error.to_string().contains("damaged"), "{error}");
    }
}
