//! Registration ceremony verification
//! ([WebAuthn §7.1](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential)).

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::aaguid::Aaguid;
use crate::attestation::{
    AttestationObject, AttestationObjectError, AttestationStatement, AttestationStatementError,
    PackedStatement,
};
use crate::authenticator_data::AuthenticatorFlags;
use crate::certificate::{self, CertificateError, SignatureCheckError};
use crate::client_data::{ClientDataError, CollectedClientData};
use crate::cose::{CoseAlgorithm, CoseKeyError, CredentialPublicKey, SignatureError};
use crate::relying_party::{RelyingParty, ceremony_check_error_into};

/// Longest credential id a relying party accepts ([WebAuthn §7.1 step 24](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential)).
pub const MAX_CREDENTIAL_ID_LENGTH: usize = 1023;

/// Longest format name accepted unverified, as Entra does when attestation is not enforced
/// (`entra.md` §4.5).
pub const MAX_UNVERIFIED_FORMAT_LENGTH: usize = 32;

/// An authenticator's answer to `navigator.credentials.create()`, as bytes
/// ([`AuthenticatorAttestationResponse`](https://www.w3.org/TR/webauthn-3/#authenticatorattestationresponse)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationResponse {
    /// The credential `id` the client reported, when it did; it must equal the one in authData.
    pub credential_id: Option<Vec<u8>>,
    /// `clientDataJSON`, the exact bytes.
    pub client_data_json: Vec<u8>,
    /// `attestationObject`.
    pub attestation_object: Vec<u8>,
}

/// What to do with attestation formats this crate does not verify (tpm, android-key, apple,
/// fido-u2f, custom names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsupportedFormats {
    /// Refuse them with [`RegistrationError::UnsupportedFormat`].
    #[default]
    Refuse,
    /// Accept them unverified (names up to 32 characters), as Entra does when attestation is
    /// not enforced; the result reports [`AttestationType::Unverified`].
    AcceptUnverified,
}

/// What the relying party expects of a registration.
#[derive(Debug, Clone)]
pub struct RegistrationExpectations<'a> {
    /// The relying party (RP id, origins, cross-origin policy).
    pub relying_party: &'a RelyingParty,
    /// The challenge issued for this ceremony, raw bytes.
    pub challenge: &'a [u8],
    /// Whether UV must be set (Entra requires it for every FIDO2 operation).
    pub require_user_verification: bool,
    /// Root certificates (DER) that `packed` x5c chains must lead to; when empty, chains are
    /// reported [`ChainTrust::Unverified`].
    pub trust_anchors: &'a [Vec<u8>],
    /// Policy for formats this crate does not verify.
    pub unsupported_formats: UnsupportedFormats,
    /// The time against which certificate validity is checked.
    pub now: OffsetDateTime,
}

impl<'a> RegistrationExpectations<'a> {
    /// Expectations with UV required, no trust anchors and unknown formats refused.
    #[must_use]
    pub fn new(relying_party: &'a RelyingParty, challenge: &'a [u8], now: OffsetDateTime) -> Self {
        RegistrationExpectations {
            relying_party,
            challenge,
            require_user_verification: true,
            trust_anchors: &[],
            unsupported_formats: UnsupportedFormats::Refuse,
            now,
        }
    }
}

/// Whether an x5c chain was verified up to a trust anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTrust {
    /// The chain leads to `trust_anchors[anchor_index]`.
    Anchored {
        /// Index into the trust anchors given.
        anchor_index: usize,
    },
    /// No trust anchor was given: the signature, the certificate requirements, the links
    /// within x5c and the validity dates were checked, the root was not.
    Unverified,
}

/// An attestation certificate chain (`x5c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationChain {
    /// The certificates, DER, attestation certificate first.
    pub certificates: Vec<Vec<u8>>,
    /// Their SHA-1 thumbprints, lowercase hex (Graph's `attestationCertificates`).
    pub sha1_thumbprints: Vec<String>,
    /// The AAGUID of the id-fido-gen-ce-aaguid extension, when the certificate has one.
    pub aaguid_extension: Option<Aaguid>,
    /// How far the chain was verified.
    pub trust: ChainTrust,
}

/// The attestation type established
/// ([WebAuthn §6.5.4](https://www.w3.org/TR/webauthn-3/#sctn-attestation-types)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationType {
    /// `none`: nothing is attested.
    None,
    /// `packed` without x5c: signed by the credential key itself.
    SelfAttestation,
    /// `packed` with x5c: signed by an attestation key with a certificate chain.
    Basic(AttestationChain),
    /// A format this crate does not verify, accepted by policy.
    Unverified {
        /// The format name.
        fmt: String,
    },
}

/// A registration that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedRegistration {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The credential public key (its COSE bytes are [`CredentialPublicKey::cose_bytes`]).
    pub public_key: CredentialPublicKey,
    /// The credential's algorithm.
    pub algorithm: CoseAlgorithm,
    /// The signature counter.
    pub sign_count: u32,
    /// The authenticator data flags.
    pub flags: AuthenticatorFlags,
    /// The authenticator model.
    pub aaguid: Aaguid,
    /// The attestation format name.
    pub fmt: String,
    /// The attestation type and, for x5c, the chain.
    pub attestation: AttestationType,
    /// Identifiers of the authenticator extension outputs present in authData.
    pub extensions: Vec<String>,
    /// The parsed client data.
    pub client_data: CollectedClientData,
}

/// Why a registration was refused. [`RegistrationError::code`] gives a stable identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// `clientDataJSON` does not parse.
    #[error(transparent)]
    ClientData(#[from] ClientDataError),
    /// `type` is not `webauthn.create`.
    #[error("clientDataJSON type is \"{0}\"; a registration needs \"webauthn.create\"")]
    WrongCeremonyType(String),
    /// The challenge is not the one issued.
    #[error(
        "clientDataJSON challenge is not the challenge issued for this registration; request new creation options"
    )]
    ChallengeMismatch,
    /// The origin is not one of the relying party's.
    #[error("clientDataJSON origin \"{0}\" is not an allowed origin of this relying party")]
    OriginNotAllowed(String),
    /// `crossOrigin` is true and the relying party refuses that.
    #[error(
        "clientDataJSON says the ceremony ran in a cross-origin iframe, which this relying party refuses"
    )]
    CrossOriginRefused,
    /// `crossOrigin` is true, the relying party lists top origins, and `topOrigin` is absent.
    #[error(
        "clientDataJSON says the ceremony ran in a cross-origin iframe but names no topOrigin, which this relying party requires"
    )]
    TopOriginMissing,
    /// `topOrigin` is not one the relying party expects to be embedded in.
    #[error("clientDataJSON topOrigin \"{0}\" is not an allowed top-level origin")]
    TopOriginNotAllowed(String),
    /// The attestation object does not parse.
    #[error(transparent)]
    AttestationObject(#[from] AttestationObjectError),
    /// rpIdHash is not SHA-256 of the RP id.
    #[error(
        "authenticator data rpIdHash is not SHA-256 of the RP id \"{0}\"; the credential was made for another relying party"
    )]
    RpIdHashMismatch(String),
    /// UP is not set.
    #[error("the authenticator did not report user presence (UP flag clear)")]
    UserNotPresent,
    /// UV is required and not set.
    #[error(
        "user verification is required but the authenticator did not verify the user (UV flag clear)"
    )]
    UserNotVerified,
    /// BS is set while BE is not.
    #[error("authenticator data has the backup state (BS) flag without backup eligibility (BE)")]
    BackupStateWithoutEligibility,
    /// AT is not set: no credential in the response.
    #[error("authenticator data has no attested credential data (AT flag clear)")]
    NoAttestedCredentialData,
    /// The credential id exceeds 1023 bytes.
    #[error("credential id is {0} bytes long; at most 1023 are allowed")]
    CredentialIdTooLong(usize),
    /// The client's `id` differs from the credential id in authData.
    #[error("the credential id sent by the client differs from the one in authenticator data")]
    CredentialIdMismatch,
    /// The credential key's algorithm is not ES256 or RS256.
    #[error(
        "credential algorithm {0} is not supported; only ES256 (-7) and RS256 (-257) are accepted"
    )]
    UnsupportedAlgorithm(i64),
    /// The credential key is malformed.
    #[error(transparent)]
    CredentialPublicKey(CoseKeyError),
    /// The attestation statement does not have its format's syntax.
    #[error(transparent)]
    AttestationStatement(#[from] AttestationStatementError),
    /// The format is not verified by this crate and policy refuses it.
    #[error("attestation format \"{0}\" is not accepted; use \"packed\" or \"none\"")]
    UnsupportedFormat(String),
    /// `attStmt.alg` does not match the signing key.
    #[error("attestation statement alg {statement_alg} does not match the {key}")]
    AttestationAlgorithmMismatch {
        /// `attStmt.alg`.
        statement_alg: i64,
        /// Which key it should match.
        key: &'static str,
    },
    /// The attestation signature does not verify.
    #[error("the attestation signature does not verify: {0}")]
    AttestationSignature(SignatureError),
    /// The attestation certificate breaks a requirement of WebAuthn §8.2.1 or is malformed.
    #[error("attestation certificate: {0}")]
    AttestationCertificate(CertificateError),
    /// The certificate's AAGUID extension differs from authData's AAGUID.
    #[error(
        "the attestation certificate is for AAGUID {certificate}, but authenticator data says {authenticator_data}"
    )]
    AaguidMismatch {
        /// AAGUID in the certificate extension.
        certificate: Aaguid,
        /// AAGUID in authenticator data.
        authenticator_data: Aaguid,
    },
    /// The chain does not verify up to a trust anchor.
    #[error("the attestation certificate chain is not trusted: {0}")]
    UntrustedAttestation(CertificateError),
}

impl RegistrationError {
    /// A stable identifier for the failure, named after the Graph subCodes entra-sim reports
    /// (`entra.md` §4.8).
    #[must_use]
    pub fn code(&self) -> &'static str {
        use RegistrationError as E;
        match self {
            E::ClientData(_)
            | E::WrongCeremonyType(_)
            | E::OriginNotAllowed(_)
            | E::CrossOriginRefused
            | E::TopOriginMissing
            | E::TopOriginNotAllowed(_) => "error_invalid_client_data",
            E::ChallengeMismatch => "error_invalid_challenge",
            E::RpIdHashMismatch(_) => "error_invalid_rp_id",
            E::UserNotPresent | E::UserNotVerified => "error_user_verification_required",
            E::UnsupportedAlgorithm(_) => "error_unsupported_algorithm",
            E::UnsupportedFormat(_)
            | E::AttestationCertificate(_)
            | E::AaguidMismatch { .. }
            | E::UntrustedAttestation(_) => "error_attestation_required",
            E::AttestationObject(_)
            | E::BackupStateWithoutEligibility
            | E::NoAttestedCredentialData
            | E::CredentialIdTooLong(_)
            | E::CredentialIdMismatch
            | E::CredentialPublicKey(_)
            | E::AttestationStatement(_)
            | E::AttestationAlgorithmMismatch { .. }
            | E::AttestationSignature(_) => "error_invalid_request",
        }
    }
}

ceremony_check_error_into!(RegistrationError);

/// Verifies a registration ([WebAuthn §7.1](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential)),
/// in the spec's order: client data, authenticator data, credential key, attestation.
///
/// Not done here (the caller's job): that the challenge was issued to this user, is unexpired
/// and unused; that the credential id is not registered yet; attestation policy against FIDO
/// metadata (see [`crate::policy`]).
///
/// # Errors
/// The first failed check, as a [`RegistrationError`].
pub fn verify_registration(
    response: &RegistrationResponse,
    expectations: &RegistrationExpectations<'_>,
) -> Result<VerifiedRegistration, RegistrationError> {
    let client_data = CollectedClientData::parse(&response.client_data_json)?;
    expectations.relying_party.check_client_data(
        &client_data,
        "webauthn.create",
        expectations.challenge,
    )?;
    let client_data_hash = Sha256::digest(&response.client_data_json);

    let attestation_object = AttestationObject::parse(&response.attestation_object)?;
    let auth_data = &attestation_object.authenticator_data;
    expectations
        .relying_party
        .check_authenticator_data(auth_data, expectations.require_user_verification)?;
    let Some(credential) = &auth_data.attested_credential_data else {
        return Err(RegistrationError::NoAttestedCredentialData);
    };
    if credential.credential_id.len() > MAX_CREDENTIAL_ID_LENGTH {
        return Err(RegistrationError::CredentialIdTooLong(
            credential.credential_id.len(),
        ));
    }
    if let Some(sent) = &response.credential_id
        && *sent != credential.credential_id
    {
        return Err(RegistrationError::CredentialIdMismatch);
    }
    let public_key =
        CredentialPublicKey::from_cose(&credential.credential_public_key).map_err(|error| {
            match error {
                CoseKeyError::UnsupportedAlgorithm(alg) => {
                    RegistrationError::UnsupportedAlgorithm(alg)
                }
                other => RegistrationError::CredentialPublicKey(other),
            }
        })?;

    let mut signed = Vec::with_capacity(attestation_object.authenticator_data_bytes.len() + 32);
    signed.extend_from_slice(&attestation_object.authenticator_data_bytes);
    signed.extend_from_slice(&client_data_hash);

    let attestation = match attestation_object.statement()? {
        AttestationStatement::None => AttestationType::None,
        AttestationStatement::Packed(packed) if packed.x5c.is_empty() => {
            verify_packed_self(&packed, &public_key, &signed)?
        }
        AttestationStatement::Packed(packed) => {
            verify_packed_x5c(&packed, credential.aaguid, &signed, expectations)?
        }
        AttestationStatement::Other { fmt } => match expectations.unsupported_formats {
            UnsupportedFormats::AcceptUnverified
                if !fmt.is_empty() && fmt.chars().count() <= MAX_UNVERIFIED_FORMAT_LENGTH =>
            {
                AttestationType::Unverified { fmt }
            }
            _ => return Err(RegistrationError::UnsupportedFormat(fmt)),
        },
    };

    Ok(VerifiedRegistration {
        credential_id: credential.credential_id.clone(),
        algorithm: public_key.algorithm(),
        public_key,
        sign_count: auth_data.sign_count,
        flags: auth_data.flags,
        aaguid: credential.aaguid,
        fmt: attestation_object.fmt.clone(),
        attestation,
        extensions: auth_data.extension_identifiers(),
        client_data,
    })
}

/// `packed` self attestation: the credential key signed, with the same algorithm.
fn verify_packed_self(
    packed: &PackedStatement,
    public_key: &CredentialPublicKey,
    signed: &[u8],
) -> Result<AttestationType, RegistrationError> {
    if packed.alg != public_key.algorithm().id() {
        return Err(RegistrationError::AttestationAlgorithmMismatch {
            statement_alg: packed.alg,
            key: "credential public key (self attestation)",
        });
    }
    public_key
        .verify(signed, &packed.sig)
        .map_err(RegistrationError::AttestationSignature)?;
    Ok(AttestationType::SelfAttestation)
}

/// `packed` with x5c ([WebAuthn §8.2](https://www.w3.org/TR/webauthn-3/#sctn-packed-attestation)).
fn verify_packed_x5c(
    packed: &PackedStatement,
    aaguid: Aaguid,
    signed: &[u8],
    expectations: &RegistrationExpectations<'_>,
) -> Result<AttestationType, RegistrationError> {
    let parsed = packed
        .x5c
        .iter()
        .enumerate()
        .map(|(index, der)| certificate::parse(der, index))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RegistrationError::AttestationCertificate)?;
    let leaf = &parsed[0];
    certificate::verify_with_certificate_key(leaf, packed.alg, signed, &packed.sig).map_err(
        |error| match error {
            SignatureCheckError::AlgorithmDoesNotFitKey => {
                RegistrationError::AttestationAlgorithmMismatch {
                    statement_alg: packed.alg,
                    key: "attestation certificate's key",
                }
            }
            SignatureCheckError::Invalid => {
                RegistrationError::AttestationSignature(SignatureError::Invalid)
            }
        },
    )?;
    let aaguid_extension = certificate::check_packed_attestation_certificate(leaf)
        .map_err(RegistrationError::AttestationCertificate)?;
    if let Some(in_certificate) = aaguid_extension
        && in_certificate != aaguid
    {
        return Err(RegistrationError::AaguidMismatch {
            certificate: in_certificate,
            authenticator_data: aaguid,
        });
    }
    certificate::verify_links(&parsed, expectations.now)
        .map_err(RegistrationError::UntrustedAttestation)?;
    let trust = if expectations.trust_anchors.is_empty() {
        ChainTrust::Unverified
    } else {
        let anchor_index = certificate::find_anchor(
            &packed.x5c,
            &parsed,
            expectations.trust_anchors,
            expectations.now,
        )
        .map_err(RegistrationError::UntrustedAttestation)?;
        ChainTrust::Anchored { anchor_index }
    };
    Ok(AttestationType::Basic(AttestationChain {
        sha1_thumbprints: packed
            .x5c
            .iter()
            .map(|der| certificate::sha1_thumbprint(der))
            .collect(),
        certificates: packed.x5c.clone(),
        aaguid_extension,
        trust,
    }))
}
