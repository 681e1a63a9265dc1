//! X.509 checks: the `packed` attestation certificate requirements
//! ([WebAuthn §8.2.1](https://www.w3.org/TR/webauthn-3/#sctn-packed-attestation-cert-requirements)),
//! certificate path verification up to a caller-given trust anchor (signatures checked with
//! aws-lc-rs), and signatures made by a certificate's key.
//!
//! Path verification here is deliberately small: names chain, every issuer in `x5c` is a CA,
//! signatures verify, and every certificate (anchor included) is valid at the caller's `now`.
//! It does not check revocation, name constraints or policies.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::aaguid::Aaguid;

/// id-fido-gen-ce-aaguid ([WebAuthn §8.2.1](https://www.w3.org/TR/webauthn-3/#sctn-packed-attestation-cert-requirements)).
pub const OID_FIDO_GEN_CE_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_CURVE_P256: &str = "1.2.840.10045.3.1.7";
const OID_CURVE_P384: &str = "1.3.132.0.34";
const OID_CURVE_P521: &str = "1.3.132.0.35";

/// Why a certificate, or a path of them, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The DER does not parse as an X.509 certificate.
    #[error("certificate {index} of the chain is not a valid DER X.509 certificate: {reason}")]
    Malformed {
        /// Position: 0 = leaf; trust anchors are numbered after the chain.
        index: usize,
        /// Parser message.
        reason: String,
    },
    /// The `x5c` array is empty.
    #[error("the attestation statement's x5c array is empty")]
    EmptyChain,
    /// The attestation certificate is not version 3.
    #[error("the attestation certificate must be X.509 version 3")]
    NotVersion3,
    /// A subject attribute required of attestation certificates is missing or wrong.
    #[error("the attestation certificate subject {0}")]
    Subject(&'static str),
    /// The attestation certificate is a CA certificate.
    #[error("the attestation certificate must have basicConstraints CA=false")]
    LeafIsCa,
    /// The AAGUID extension is critical, malformed, or unreadable.
    #[error("the attestation certificate's id-fido-gen-ce-aaguid extension {0}")]
    AaguidExtension(&'static str),
    /// A certificate is outside its validity period at `now`.
    #[error(
        "certificate {index} of the chain is not valid at {now} (valid {not_before} to {not_after})"
    )]
    OutsideValidity {
        /// Position in the chain (anchors follow the chain).
        index: usize,
        /// The time checked, unix seconds.
        now: i64,
        /// Start of validity, unix seconds.
        not_before: i64,
        /// End of validity, unix seconds.
        not_after: i64,
    },
    /// An issuing certificate in `x5c` is not a CA.
    #[error("certificate {0} of the chain issues another certificate but is not a CA")]
    IssuerNotCa(usize),
    /// A certificate's issuer name is not the next certificate's subject.
    #[error(
        "certificate {0} of the chain names an issuer that is not the next certificate's subject"
    )]
    NameMismatch(usize),
    /// A certificate's signature does not verify with its issuer's key.
    #[error("the signature of certificate {0} of the chain does not verify with its issuer's key")]
    BadSignature(usize),
    /// A signature or key algorithm this verifier does not support.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// No trust anchor issued the top of the chain.
    #[error("the certificate chain does not lead to any of the {0} trusted root certificate(s)")]
    UntrustedRoot(usize),
}

pub(crate) fn parse(der: &[u8], index: usize) -> Result<X509Certificate<'_>, CertificateError> {
    match X509Certificate::from_der(der) {
        Ok(([], certificate)) => Ok(certificate),
        Ok((rest, _)) => Err(CertificateError::Malformed {
            index,
            reason: format!("{} trailing byte(s)", rest.len()),
        }),
        Err(error) => Err(CertificateError::Malformed {
            index,
            reason: error.to_string(),
        }),
    }
}

/// Checks the requirements on a `packed` attestation certificate and returns the AAGUID of
/// its id-fido-gen-ce-aaguid extension when present.
pub(crate) fn check_packed_attestation_certificate(
    leaf: &X509Certificate<'_>,
) -> Result<Option<Aaguid>, CertificateError> {
    // X509Version counts from zero: 2 is version 3.
    if leaf.version().0 != 2 {
        return Err(CertificateError::NotVersion3);
    }
    let subject = leaf.subject();
    let country = subject.iter_country().next();
    if country.is_none() {
        return Err(CertificateError::Subject("lacks C (country)"));
    }
    let organization = subject.iter_organization().next().map(|a| a.as_str());
    if !matches!(organization, Some(Ok(text)) if !text.is_empty()) {
        return Err(CertificateError::Subject(
            "lacks O (the authenticator vendor)",
        ));
    }
    let unit = subject
        .iter_organizational_unit()
        .next()
        .map(|a| a.as_str());
    if !matches!(unit, Some(Ok("Authenticator Attestation"))) {
        return Err(CertificateError::Subject(
            "must have OU \"Authenticator Attestation\"",
        ));
    }
    let common_name = subject.iter_common_name().next().map(|a| a.as_str());
    if !matches!(common_name, Some(Ok(text)) if !text.is_empty()) {
        return Err(CertificateError::Subject("lacks CN"));
    }
    match leaf.basic_constraints() {
        Ok(Some(constraints)) if constraints.value.ca => return Err(CertificateError::LeafIsCa),
        // An absent extension means CA=false (RFC 5280 §4.2.1.9).
        Ok(Some(_) | None) => {}
        Err(error) => {
            return Err(CertificateError::Malformed {
                index: 0,
                reason: format!("basicConstraints: {error}"),
            });
        }
    }
    let mut found = None;
    for extension in leaf.extensions() {
        if extension.oid.to_id_string() != OID_FIDO_GEN_CE_AAGUID {
            continue;
        }
        if found.is_some() {
            return Err(CertificateError::AaguidExtension("appears twice"));
        }
        if extension.critical {
            return Err(CertificateError::AaguidExtension("must not be critical"));
        }
        // extnValue holds a DER OCTET STRING of 16 bytes.
        let value = extension.value;
        if value.len() != 18 || value[0] != 0x04 || value[1] != 0x10 {
            return Err(CertificateError::AaguidExtension(
                "is not an OCTET STRING of 16 bytes",
            ));
        }
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(&value[2..]);
        found = Some(Aaguid(aaguid));
    }
    Ok(found)
}

fn check_validity(
    certificate: &X509Certificate<'_>,
    index: usize,
    now: i64,
) -> Result<(), CertificateError> {
    let not_before = certificate.validity().not_before.timestamp();
    let not_after = certificate.validity().not_after.timestamp();
    if now < not_before || now > not_after {
        return Err(CertificateError::OutsideValidity {
            index,
            now,
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// The curve named in an EC SubjectPublicKeyInfo, as an OID string.
fn ec_curve(issuer: &X509Certificate<'_>) -> Result<String, CertificateError> {
    issuer
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.as_oid().ok())
        .map(|oid| oid.to_id_string())
        .ok_or_else(|| {
            CertificateError::UnsupportedAlgorithm("EC key without a named curve".into())
        })
}

/// Picks the aws-lc-rs algorithm for a certificate signature algorithm OID and issuer key.
fn certificate_signature_algorithm(
    signature_oid: &str,
    issuer: &X509Certificate<'_>,
) -> Result<&'static dyn VerificationAlgorithm, CertificateError> {
    let key_oid = issuer.public_key().algorithm.algorithm.to_id_string();
    let algorithm: &'static dyn VerificationAlgorithm = match (signature_oid, key_oid.as_str()) {
        ("1.2.840.113549.1.1.11", OID_RSA_ENCRYPTION) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", OID_RSA_ENCRYPTION) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", OID_RSA_ENCRYPTION) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (ecdsa, OID_EC_PUBLIC_KEY) if ecdsa.starts_with("1.2.840.10045.4.3.") => {
            match (ecdsa, ec_curve(issuer)?.as_str()) {
                ("1.2.840.10045.4.3.2", OID_CURVE_P256) => &signature::ECDSA_P256_SHA256_ASN1,
                ("1.2.840.10045.4.3.3", OID_CURVE_P256) => &signature::ECDSA_P256_SHA384_ASN1,
                ("1.2.840.10045.4.3.4", OID_CURVE_P256) => &signature::ECDSA_P256_SHA512_ASN1,
                ("1.2.840.10045.4.3.2", OID_CURVE_P384) => &signature::ECDSA_P384_SHA256_ASN1,
                ("1.2.840.10045.4.3.3", OID_CURVE_P384) => &signature::ECDSA_P384_SHA384_ASN1,
                ("1.2.840.10045.4.3.4", OID_CURVE_P384) => &signature::ECDSA_P384_SHA512_ASN1,
                ("1.2.840.10045.4.3.4", OID_CURVE_P521) => &signature::ECDSA_P521_SHA512_ASN1,
                (ecdsa, curve) => {
                    return Err(CertificateError::UnsupportedAlgorithm(format!(
                        "certificate signature {ecdsa} with an EC key on curve {curve}"
                    )));
                }
            }
        }
        (signature, key) => {
            return Err(CertificateError::UnsupportedAlgorithm(format!(
                "certificate signature {signature} with a {key} key"
            )));
        }
    };
    Ok(algorithm)
}

/// Whether `child` (at `index`) carries a valid signature by `issuer`'s key.
fn signed_by(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    index: usize,
) -> Result<(), CertificateError> {
    let signature_oid = child.signature_algorithm.algorithm.to_id_string();
    let algorithm = certificate_signature_algorithm(&signature_oid, issuer)?;
    let key = UnparsedPublicKey::new(algorithm, &*issuer.public_key().subject_public_key.data);
    key.verify(child.tbs_certificate.as_ref(), &child.signature_value.data)
        .map_err(|_| CertificateError::BadSignature(index))
}

/// Verifies that `chain` (leaf first, DER) leads to one of `anchors` (DER) and that every
/// certificate is valid at `now`; returns the index of the anchor that closed the path.
///
/// The top of `chain` may be an anchor itself or be issued by one.
///
/// # Errors
/// [`CertificateError`] naming the certificate and the check that failed.
pub fn verify_chain(
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<usize, CertificateError> {
    let parsed = chain
        .iter()
        .enumerate()
        .map(|(index, der)| parse(der, index))
        .collect::<Result<Vec<_>, _>>()?;
    verify_parsed_chain(chain, &parsed, anchors, now)
}

pub(crate) fn verify_parsed_chain(
    chain: &[Vec<u8>],
    parsed: &[X509Certificate<'_>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<usize, CertificateError> {
    verify_links(parsed, now)?;
    find_anchor(chain, parsed, anchors, now)
}

/// Checks every certificate's validity at `now` and each link of the chain (names, CA flag,
/// signature), without looking for a trust anchor.
pub(crate) fn verify_links(
    parsed: &[X509Certificate<'_>],
    now: OffsetDateTime,
) -> Result<(), CertificateError> {
    let now = now.unix_timestamp();
    if parsed.is_empty() {
        return Err(CertificateError::EmptyChain);
    }
    for (index, certificate) in parsed.iter().enumerate() {
        check_validity(certificate, index, now)?;
    }
    for (index, pair) in parsed.windows(2).enumerate() {
        let (child, issuer) = (&pair[0], &pair[1]);
        if child.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(CertificateError::NameMismatch(index));
        }
        if !issuer.is_ca() {
            return Err(CertificateError::IssuerNotCa(index + 1));
        }
        signed_by(child, issuer, index)?;
    }
    Ok(())
}

/// Finds the anchor that is, or issued, the top of an already link-checked chain.
pub(crate) fn find_anchor(
    chain: &[Vec<u8>],
    parsed: &[X509Certificate<'_>],
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<usize, CertificateError> {
    let now = now.unix_timestamp();
    // `chain` and `parsed` are the same certificates, DER and parsed.
    let (Some(top), Some(top_der)) = (parsed.last(), chain.last()) else {
        return Err(CertificateError::EmptyChain);
    };
    let top_index = parsed.len() - 1;
    let mut last_failure = None;
    for (anchor_index, anchor_der) in anchors.iter().enumerate() {
        if anchor_der == top_der {
            return Ok(anchor_index);
        }
        let anchor = parse(anchor_der, parsed.len() + anchor_index)?;
        if top.issuer().as_raw() != anchor.subject().as_raw() {
            continue;
        }
        match signed_by(top, &anchor, top_index)
            .and_then(|()| check_validity(&anchor, parsed.len() + anchor_index, now))
        {
            Ok(()) => return Ok(anchor_index),
            Err(error) => last_failure = Some(error),
        }
    }
    Err(last_failure.unwrap_or(CertificateError::UntrustedRoot(anchors.len())))
}

/// Verifies an attestation signature made with the key of an X.509 certificate, for a COSE
/// algorithm in `attStmt.alg` (ES256 with a DER signature, RS256, or ES384/ES512 on their curves).
pub(crate) fn verify_with_certificate_key(
    certificate: &X509Certificate<'_>,
    cose_alg: i64,
    message: &[u8],
    signature_bytes: &[u8],
) -> Result<(), SignatureCheckError> {
    let spki = certificate.public_key();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let algorithm: &'static dyn VerificationAlgorithm = match (cose_alg, key_oid.as_str()) {
        (-7, OID_EC_PUBLIC_KEY)
            if ec_curve(certificate).ok().as_deref() == Some(OID_CURVE_P256) =>
        {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        (-35, OID_EC_PUBLIC_KEY)
            if ec_curve(certificate).ok().as_deref() == Some(OID_CURVE_P384) =>
        {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        (-36, OID_EC_PUBLIC_KEY)
            if ec_curve(certificate).ok().as_deref() == Some(OID_CURVE_P521) =>
        {
            &signature::ECDSA_P521_SHA512_ASN1
        }
        (-257, OID_RSA_ENCRYPTION) => &signature::RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(SignatureCheckError::AlgorithmDoesNotFitKey),
    };
    UnparsedPublicKey::new(algorithm, &*spki.subject_public_key.data)
        .verify(message, signature_bytes)
        .map_err(|_| SignatureCheckError::Invalid)
}

/// Outcome of [`verify_with_certificate_key`] when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureCheckError {
    /// `attStmt.alg` is not an algorithm the certificate's key can make.
    AlgorithmDoesNotFitKey,
    /// The signature does not verify.
    Invalid,
}

/// Lowercase hex SHA-1 thumbprint of a DER certificate (Graph's `attestationCertificates`).
#[must_use]
pub fn sha1_thumbprint(der: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(der))
}
