//! Who the relying party is: its RP id, the origins it serves, and whether it may be
//! embedded cross-origin. Nothing here is hard-wired to Microsoft; [`RelyingParty::entra`]
//! is one preset.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::authenticator_data::AuthenticatorData;
use crate::base64url;
use crate::client_data::CollectedClientData;

/// Entra's WebAuthn RP id (`entra.md` §0).
pub const ENTRA_RP_ID: &str = "login.microsoft.com";

/// The origins Entra's ceremonies run on (`entra.md` §0): registration on
/// `https://login.microsoft.com`, browser sign-in on the other two.
pub const ENTRA_ORIGINS: [&str; 3] = [
    "https://login.microsoft.com",
    "https://login.microsoftonline.com",
    "https://login.live.com",
];

/// Whether a ceremony run in a cross-origin iframe is acceptable
/// ([WebAuthn §5.8.1](https://www.w3.org/TR/webauthn-3/#dom-collectedclientdata-crossorigin)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CrossOriginPolicy {
    /// `crossOrigin: true` is refused (Entra's behaviour), and so is any `topOrigin` member.
    #[default]
    Refuse,
    /// `crossOrigin: true` is accepted; when `top_origins` is not empty, a cross-origin call
    /// must name a `topOrigin`, and any `topOrigin` member must be one of them.
    Allow {
        /// Top-level origins the RP expects to be embedded in; empty means any.
        top_origins: Vec<String>,
    },
}

/// A WebAuthn relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    id: String,
    id_hash: [u8; 32],
    origins: Vec<String>,
    cross_origin: CrossOriginPolicy,
}

impl RelyingParty {
    /// A relying party with RP id `id` serving `origins` (compared exactly, e.g.
    /// `https://example.org`), refusing cross-origin calls.
    pub fn new(
        id: impl Into<String>,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let id = id.into();
        let id_hash = Sha256::digest(id.as_bytes()).into();
        RelyingParty {
            id,
            id_hash,
            origins: origins.into_iter().map(Into::into).collect(),
            cross_origin: CrossOriginPolicy::Refuse,
        }
    }

    /// Entra's relying party: RP id `login.microsoft.com` and the origins of [`ENTRA_ORIGINS`].
    #[must_use]
    pub fn entra() -> Self {
        Self::new(ENTRA_RP_ID, ENTRA_ORIGINS)
    }

    /// The same relying party with another cross-origin policy.
    #[must_use]
    pub fn with_cross_origin(mut self, policy: CrossOriginPolicy) -> Self {
        self.cross_origin = policy;
        self
    }

    /// The RP id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// SHA-256 of the RP id, as authenticator data carries it.
    #[must_use]
    pub fn id_hash(&self) -> &[u8; 32] {
        &self.id_hash
    }

    /// The accepted origins.
    #[must_use]
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The cross-origin policy.
    #[must_use]
    pub fn cross_origin(&self) -> &CrossOriginPolicy {
        &self.cross_origin
    }

    /// Checks the parts of client data both ceremonies share
    /// ([WebAuthn §7.1](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential) steps 7–10,
    /// [§7.2](https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion) steps 11–14).
    pub(crate) fn check_client_data(
        &self,
        client_data: &CollectedClientData,
        ceremony_type: &'static str,
        challenge: &[u8],
    ) -> Result<(), CeremonyCheckError> {
        if client_data.ceremony_type != ceremony_type {
            return Err(CeremonyCheckError::WrongType {
                expected: ceremony_type,
                found: client_data.ceremony_type.clone(),
            });
        }
        // The challenge is compared in its base64url form: the spec fixes that encoding, and a
        // constant-time compare of the strings does not leak how much of it matched.
        let expected = base64url::encode_url(challenge);
        if !bool::from(expected.as_bytes().ct_eq(client_data.challenge.as_bytes())) {
            return Err(CeremonyCheckError::ChallengeMismatch);
        }
        if !self.origins.contains(&client_data.origin) {
            return Err(CeremonyCheckError::OriginNotAllowed(
                client_data.origin.clone(),
            ));
        }
        let cross_origin = client_data.cross_origin == Some(true);
        match (&self.cross_origin, cross_origin) {
            (CrossOriginPolicy::Refuse, true) => return Err(CeremonyCheckError::CrossOrigin),
            // A listed set of top origins needs a topOrigin to check against it.
            (CrossOriginPolicy::Allow { top_origins }, true)
                if !top_origins.is_empty() && client_data.top_origin.is_none() =>
            {
                return Err(CeremonyCheckError::TopOriginMissing);
            }
            _ => {}
        }
        // §7.1 step 10, §7.2 step 14: a topOrigin, whatever crossOrigin says, must be a page
        // the relying party expects to be embedded in.
        if let Some(top) = &client_data.top_origin {
            let expected = match &self.cross_origin {
                CrossOriginPolicy::Refuse => false,
                CrossOriginPolicy::Allow { top_origins } => {
                    top_origins.is_empty() || top_origins.contains(top)
                }
            };
            if !expected {
                return Err(CeremonyCheckError::TopOriginNotAllowed(top.clone()));
            }
        }
        Ok(())
    }

    /// Checks the parts of authenticator data both ceremonies share, in the spec's order: the
    /// RP id hash is this relying party's, the user was present and, when required, verified,
    /// and a backed-up credential is backup eligible
    /// ([WebAuthn §7.1](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential),
    /// [§7.2](https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion)).
    pub(crate) fn check_authenticator_data(
        &self,
        auth_data: &AuthenticatorData,
        require_user_verification: bool,
    ) -> Result<(), CeremonyCheckError> {
        if auth_data.rp_id_hash != self.id_hash {
            return Err(CeremonyCheckError::RpIdHashMismatch(self.id.clone()));
        }
        let flags = auth_data.flags;
        if !flags.user_present() {
            return Err(CeremonyCheckError::UserNotPresent);
        }
        if require_user_verification && !flags.user_verified() {
            return Err(CeremonyCheckError::UserNotVerified);
        }
        if flags.backup_state() && !flags.backup_eligible() {
            return Err(CeremonyCheckError::BackupStateWithoutEligibility);
        }
        Ok(())
    }
}

/// A failed check shared by both ceremonies; each ceremony's error enum has a variant of the
/// same name for each (see `ceremony_check_error_into!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CeremonyCheckError {
    WrongType {
        expected: &'static str,
        found: String,
    },
    ChallengeMismatch,
    OriginNotAllowed(String),
    CrossOrigin,
    TopOriginMissing,
    TopOriginNotAllowed(String),
    RpIdHashMismatch(String),
    UserNotPresent,
    UserNotVerified,
    BackupStateWithoutEligibility,
}

/// Implements `From<CeremonyCheckError>` for a ceremony's error enum. A macro rather than a
/// shared variant: the ceremonies' public error enums list these failures as their own variants.
macro_rules! ceremony_check_error_into {
    ($target:ident) => {
        impl From<$crate::relying_party::CeremonyCheckError> for $target {
            fn from(error: $crate::relying_party::CeremonyCheckError) -> Self {
                use $crate::relying_party::CeremonyCheckError as Check;
                match error {
                    Check::WrongType { found, .. } => $target::WrongCeremonyType(found),
                    Check::ChallengeMismatch => $target::ChallengeMismatch,
                    Check::OriginNotAllowed(origin) => $target::OriginNotAllowed(origin),
                    Check::CrossOrigin => $target::CrossOriginRefused,
                    Check::TopOriginMissing => $target::TopOriginMissing,
                    Check::TopOriginNotAllowed(top) => $target::TopOriginNotAllowed(top),
                    Check::RpIdHashMismatch(rp_id) => $target::RpIdHashMismatch(rp_id),
                    Check::UserNotPresent => $target::UserNotPresent,
                    Check::UserNotVerified => $target::UserNotVerified,
                    Check::BackupStateWithoutEligibility => $target::BackupStateWithoutEligibility,
                }
            }
        }
    };
}
pub(crate) use ceremony_check_error_into;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_preset_hashes_its_rp_id() {
        let rp = RelyingParty::entra();
        assert_eq!(
            hex::encode(rp.id_hash()),
            "356c9ed4a09321b9695f1eaf918203f1b55f689da61fbc96184c157dda680c81"
        );
        assert_eq!(rp.origins().len(), 3);
        assert_eq!(rp.cross_origin(), &CrossOriginPolicy::Refuse);
    }
}
