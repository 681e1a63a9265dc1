//! Registration policy: AAGUID restrictions (`fido2KeyRestrictions`) and attestation
//! enforcement against FIDO metadata (`entra.md` §4.5, §4.6, §5).

use time::OffsetDateTime;

use crate::aaguid::{Aaguid, AaguidParseError};
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

    /// Builds the policy from Graph's `fido2KeyRestrictions` values: `isEnforced`,
    /// `enforcementType` (`allow` or `block`, any case) and `aaGuids` (GUID strings, any case,
    /// with or without hyphens).
    ///
    /// # Errors
    /// [`KeyRestrictionsError`] naming the unknown enforcement type or the bad AAGUID.
    pub fn from_key_restrictions(
        is_enforced: bool,
        enforcement_type: &str,
        aaguids: &[impl AsRef<str>],
    ) -> Result<Self, KeyRestrictionsError> {
        let enforcement = match enforcement_type.to_ascii_lowercase().as_str() {
            "allow" => Enforcement::Allow,
            "block" => Enforcement::Block,
            _ => {
                return Err(KeyRestrictionsError::EnforcementType(
                    enforcement_type.to_owned(),
                ));
            }
        };
        let aaguids = aaguids
            .iter()
            .map(|text| text.as_ref().parse())
            .collect::<Result<Vec<Aaguid>, _>>()?;
        Ok(AaguidPolicy {
            is_enforced,
            enforcement,
            aaguids,
        })
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

/// Graph key restrictions that cannot be turned into an [`AaguidPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRestrictionsError {
    /// `enforcementType` is neither `allow` nor `block`.
    #[error("enforcementType '{0}' is not one of 'allow' or 'block'")]
    EnforcementType(String),
    /// An entry of `aaGuids` is not a GUID.
    #[error("aaGuids: {0}")]
    Aaguid(#[from] AaguidParseError),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_restrictions_parse_as_graph_writes_them() {
        let policy = AaguidPolicy::from_key_restrictions(
            true,
            "Allow",
            &[
                "CB69481E-8FF7-4039-93EC-0A2729A154A8",
                "ee882879721c491397753dfcce97072a",
            ],
        )
        .unwrap();
        assert_eq!(policy.enforcement, Enforcement::Allow);
        assert_eq!(
            policy.check(&"cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap()),
            Ok(())
        );
        assert!(policy.check(&Aaguid::ZERO).is_err());
        assert_eq!(
            AaguidPolicy::from_key_restrictions(
                true,
                "deny",
                &["cb69481e-8ff7-4039-93ec-0a2729a154a8"]
            ),
            Err(KeyRestrictionsError::EnforcementType("deny".into()))
        );
        assert!(matches!(
            AaguidPolicy::from_key_restrictions(false, "block", &["not-a-guid"]),
            Err(KeyRestrictionsError::Aaguid(_))
        ));
    }
}
