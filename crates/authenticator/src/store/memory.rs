//! An in-memory [`CredentialStore`] for tests and for embedding where the host persists nothing.

use super::{AttestationIdentity, CredentialStore, StoredCredential, incremented};
use crate::encoding::b64url;
use crate::error::StoreError;

/// A store that lives only in memory. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    attestation: Option<AttestationIdentity>,
    credentials: Vec<StoredCredential>,
}

impl MemoryStore {
    /// An empty store without attestation material.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding a batch attestation identity.
    pub fn with_attestation(attestation: AttestationIdentity) -> Self {
        Self {
            attestation: Some(attestation),
            credentials: Vec::new(),
        }
    }
}

impl CredentialStore for MemoryStore {
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
        Ok(())
    }

    fn next_sign_count(&mut self, credential_id: &[u8]) -> Result<u32, StoreError> {
        let credential = self
            .credentials
            .iter_mut()
            .find(|c| c.credential_id == credential_id)
            .ok_or_else(|| StoreError::UnknownCredential {
                credential_id: b64url(credential_id),
            })?;
        let next = incremented(credential)?;
        credential.sign_count = next;
        Ok(next)
    }
}
