//! Registration policy: AAGUID restrictions (`fido2KeyRestrictions`) and attestation
//! enforcement against FIDO metadata (`entra.md` §4.5, §4.6, §5).

use time::OffsetDateTime;

use crate::aaguid::Aaguid;
use crate::certificate::{self, CertificateError};
use crate::mds::{MdsError, MetadataBlob, MetadataEntry};
use crate::registration::{AttestationType, VerifiedRegistration};

/// Whether the AAGUID list allows or blocks (`fido2KeyRestrictions.enforcementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Only the listed AAGUIDs may register or sign in.
    Allow,
    /// The listed AAGUIDs may not.
    Block,
}

/// An AAGUID restriction, like Graph's `fido2KeyRestrictions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaguidPolicy {
    /// `isEnforced`: when false the list is ignored.
    pub is_enforced: bool,
    /// `enforcementType`.
    pub enforcement: Enforcement,
    /// `aaGuids`.
    pub aaguids: Vec<Aaguid>,
}

impl AaguidPolicy {
    /// A policy that restricts nothing.
    #[must_use]
    pub fn unrestricted() -> Self {
        AaguidPolicy {
            is_enforced: false,
            enforcement: Enforcement::Block,
            aaguids: Vec::new(),
        }
    }

    /// Checks an AAGUID against the policy.
    ///
    /// # Errors
    /// [`PolicyError::AaguidNotAllowed`] or [`PolicyError::AaguidBlocked`].
    pub fn check(&self, aaguid: &Aaguid) -> Result<(), PolicyError> {
        if !self.is_enforced {
            return Ok(());
        }
        let listed = self.aaguids.contains(aaguid);
        match (self.enforcement, listed) {
            (Enforcement::Allow, false) => Err(PolicyError::AaguidNotAllowed(*aaguid)),
            (Enforcement::Block, true) => Err(PolicyError::AaguidBlocked(*aaguid)),
            _ => Ok(()),
        }
    }
}

/// Why a registration failed a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Allow list in force and the AAGUID is not on it.
    #[error("authenticator model {0} is not on the allowed list of the FIDO2 key restrictions")]
    AaguidNotAllowed(Aaguid),
    /// Block list in force and the AAGUID is on it.
    #[error("authenticator model {0} is blocked by the FIDO2 key restrictions")]
    AaguidBlocked(Aaguid),
    /// Attestation is enforced and the registration has no x5c attestation.
    #[error(
        "attestation is enforced but the registration carries no certificate chain (attestation {0})"
    )]
    NotAttested(&'static str),
    /// Attestation is enforced and the certificate lacks the AAGUID extension.
    #[error(
        "attestation is enforced but the attestation certificate has no id-fido-gen-ce-aaguid extension"
    )]
    MissingAaguidExtension,
    /// No metadata for the AAGUID.
    #[error("authenticator model {0} is not in the FIDO metadata (or its entry was revoked)")]
    UnknownAuthenticator(Aaguid),
    /// Metadata entry is not certified.
    #[error("authenticator model {0} is not FIDO certified according to its metadata")]
    NotCertified(Aaguid),
    /// The metadata shows the model lacks something Entra requires.
    #[error("authenticator model {aaguid} does not meet the attestation requirements: {gaps}")]
    RequirementsNotMet {
        /// The model.
        aaguid: Aaguid,
        /// What it lacks, comma-separated.
        gaps: String,
    },
    /// The metadata entry's root certificates are unreadable.
    #[error("metadata of the authenticator model: {0}")]
    Metadata(MdsError),
    /// The chain does not lead to the metadata's roots for this AAGUID.
    #[error(
        "the attestation chain does not lead to a root listed in the FIDO metadata for this model: {0}"
    )]
    UntrustedChain(CertificateError),
}

impl PolicyError {
    /// A stable identifier, named after entra-sim's Graph subCodes.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::AaguidNotAllowed(_) | PolicyError::AaguidBlocked(_) => {
                "error_aaguid_restricted"
            }
            _ => "error_attestation_required",
        }
    }
}

/// For an "attestation enforced" policy: checks that a verified registration carries a
/// `packed` x5c chain whose certificate names the AAGUID, that the AAGUID has a (not revoked)
/// metadata entry meeting Entra's requirements ([`MetadataEntry::entra_requirement_gaps`]),
/// and that the chain leads to one of that entry's attestation roots at `now`. Returns the
/// metadata entry.
///
/// # Errors
/// [`PolicyError`] naming the missing or failed part.
pub fn enforce_attestation<'m>(
    registration: &VerifiedRegistration,
    metadata: &'m MetadataBlob,
    now: OffsetDateTime,
) -> Result<&'m MetadataEntry, PolicyError> {
    let chain = match &registration.attestation {
        AttestationType::Basic(chain) => chain,
        AttestationType::None => return Err(PolicyError::NotAttested("none")),
        AttestationType::SelfAttestation => return Err(PolicyError::NotAttested("self")),
        AttestationType::Unverified { .. } => {
            return Err(PolicyError::NotAttested("unverified format"));
        }
    };
    if chain.aaguid_extension.is_none() {
        return Err(PolicyError::MissingAaguidExtension);
    }
    let aaguid = registration.aaguid;
    let entry = metadata
        .lookup(&aaguid)
        .ok_or(PolicyError::UnknownAuthenticator(aaguid))?;
    if !entry.is_fido_certified() {
        return Err(PolicyError::NotCertified(aaguid));
    }
    let gaps = entry.entra_requirement_gaps();
    if !gaps.is_empty() {
        return Err(PolicyError::RequirementsNotMet {
            aaguid,
            gaps: gaps.join(", "),
        });
    }
    let roots = entry
        .attestation_root_certificates()
        .map_err(PolicyError::Metadata)?;
    certificate::verify_chain(&chain.certificates, &roots, now)
        .map_err(PolicyError::UntrustedChain)?;
    Ok(entry)
}
