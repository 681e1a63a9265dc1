//! FIDO Metadata Service v3 BLOBs
//! ([FIDO MDS 3.0 §3.1](https://fidoalliance.org/specs/mds/fido-metadata-service-v3.0-ps-20210518.html#metadata-blob),
//! [metadata statement](https://fidoalliance.org/specs/mds/fido-metadata-statement-v3.0-ps-20210518.html)),
//! as far as attestation enforcement needs them (`entra.md` §6).
//!
//! [`MetadataBlob::verify`] checks the JWS signature and its `x5c` chain up to the root
//! certificate the caller pins, refuses a serial number `no` that is not above the previous
//! one, and drops entries whose latest status is `REVOKED` or a `*_COMPROMISE`. Revocation
//! lists (CRLs) of the signing chain are not fetched: this crate does no I/O.

use std::collections::HashMap;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::aaguid::Aaguid;
use crate::base64url;
use crate::certificate::{self, CertificateError};

/// Why a metadata BLOB was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdsError {
    /// Not three dot-separated base64url parts.
    #[error("the metadata BLOB is not a compact JWS (header.payload.signature)")]
    NotCompactJws,
    /// A part is not base64url, or header/payload are not the expected JSON.
    #[error("the metadata BLOB {part} is malformed: {reason}")]
    Malformed {
        /// Which part.
        part: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The JWS algorithm is not supported.
    #[error(
        "the metadata BLOB is signed with \"{0}\"; RS256, PS256, ES256 and ES384 are supported"
    )]
    UnsupportedAlgorithm(String),
    /// The header has no `x5c`.
    #[error("the metadata BLOB header has no x5c certificate chain")]
    MissingCertificateChain,
    /// The chain does not lead to the pinned root.
    #[error("the metadata BLOB signing chain is not trusted: {0}")]
    UntrustedChain(CertificateError),
    /// The signature does not verify with the signing certificate.
    #[error("the metadata BLOB signature does not verify with its signing certificate")]
    BadSignature,
    /// `no` did not grow.
    #[error(
        "metadata BLOB number {received} is not above the last one loaded ({previous}); refusing a replayed or older BLOB"
    )]
    StaleSerialNumber {
        /// The previous `no`.
        previous: u64,
        /// This BLOB's `no`.
        received: u64,
    },
}

/// The payload of a metadata BLOB (`MetadataBLOBPayload`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobPayload {
    #[serde(default)]
    legal_header: Option<String>,
    no: u64,
    next_update: String,
    entries: Vec<MetadataEntry>,
}

/// One `MetadataBLOBPayloadEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataEntry {
    /// `aaguid` (FIDO2 authenticators).
    #[serde(default)]
    pub aaguid: Option<String>,
    /// `metadataStatement`.
    #[serde(default)]
    pub metadata_statement: Option<MetadataStatement>,
    /// `statusReports`.
    #[serde(default)]
    pub status_reports: Vec<StatusReport>,
    /// `timeOfLastStatusChange`.
    #[serde(default)]
    pub time_of_last_status_change: Option<String>,
}

/// The fields of a `MetadataStatement` that matter for enforcement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataStatement {
    /// `description`: the model name.
    #[serde(default)]
    pub description: Option<String>,
    /// `aaguid`.
    #[serde(default)]
    pub aaguid: Option<String>,
    /// `protocolFamily` (`fido2`, `u2f`, `uaf`).
    #[serde(default)]
    pub protocol_family: Option<String>,
    /// `schema` (3).
    #[serde(default)]
    pub schema: Option<u32>,
    /// `attestationTypes` (`basic_full`, `attca`, `none`, ...).
    #[serde(default)]
    pub attestation_types: Vec<String>,
    /// `attestationRootCertificates`: standard base64 DER.
    #[serde(default)]
    pub attestation_root_certificates: Vec<String>,
    /// `authenticatorGetInfo`.
    #[serde(default)]
    pub authenticator_get_info: Option<AuthenticatorGetInfo>,
}

/// The `authenticatorGetInfo` of a metadata statement (CTAP 2.1 §6.4 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorGetInfo {
    /// `versions` (`FIDO_2_0`, `FIDO_2_1`, `U2F_V2`).
    #[serde(default)]
    pub versions: Vec<String>,
    /// `extensions` (`hmac-secret`, `credProtect`, ...).
    #[serde(default)]
    pub extensions: Vec<String>,
    /// `aaguid`, hex without hyphens.
    #[serde(default)]
    pub aaguid: Option<String>,
    /// `options` (`rk`, `uv`, `clientPin`, `up`, ...).
    #[serde(default)]
    pub options: HashMap<String, bool>,
}

/// A `StatusReport`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// `status`, e.g. `FIDO_CERTIFIED_L1` or `REVOKED`.
    pub status: String,
    /// `effectiveDate` (`YYYY-MM-DD`).
    #[serde(default)]
    pub effective_date: Option<String>,
    /// `certificationDescriptor`.
    #[serde(default)]
    pub certification_descriptor: Option<String>,
    /// `certificateNumber`.
    #[serde(default)]
    pub certificate_number: Option<String>,
}

impl MetadataEntry {
    /// The latest status report: the one with the latest `effectiveDate`; among equal or
    /// missing dates, the last listed.
    #[must_use]
    pub fn latest_status(&self) -> Option<&StatusReport> {
        self.status_reports
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| {
                a.effective_date
                    .as_deref()
                    .unwrap_or("")
                    .cmp(b.effective_date.as_deref().unwrap_or(""))
                    .then(ia.cmp(ib))
            })
            .map(|(_, report)| report)
    }

    /// Whether any status report says `FIDO_CERTIFIED` at some level.
    #[must_use]
    pub fn is_fido_certified(&self) -> bool {
        self.status_reports
            .iter()
            .any(|report| report.status.starts_with("FIDO_CERTIFIED"))
    }

    /// The requirements Entra places on an authenticator when attestation is enforced
    /// (`entra.md` §4.5, §6) that this entry does not meet, each named: FIDO certified at any
    /// level, `FIDO_2_0` or later in `versions`, `uv` or `clientPin`, `rk`, and the
    /// `hmac-secret` or `prf` extension. Empty when all are met.
    #[must_use]
    pub fn entra_requirement_gaps(&self) -> Vec<&'static str> {
        let mut gaps = Vec::new();
        if !self.is_fido_certified() {
            gaps.push("not FIDO certified");
        }
        let info = self
            .metadata_statement
            .as_ref()
            .and_then(|statement| statement.authenticator_get_info.as_ref());
        let Some(info) = info else {
            gaps.push("no authenticatorGetInfo in the metadata statement");
            return gaps;
        };
        if !info
            .versions
            .iter()
            .any(|version| version.starts_with("FIDO_2_"))
        {
            gaps.push("does not support FIDO 2.0 or later");
        }
        let option = |name: &str| info.options.get(name).copied().unwrap_or(false);
        if !option("uv") && !option("clientPin") {
            gaps.push("offers neither user verification nor a client PIN");
        }
        if !option("rk") {
            gaps.push("cannot store resident keys");
        }
        if !info
            .extensions
            .iter()
            .any(|ext| ext == "hmac-secret" || ext == "prf")
        {
            gaps.push("supports neither hmac-secret nor prf");
        }
        gaps
    }

    /// The model name from the metadata statement.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.metadata_statement.as_ref()?.description.as_deref()
    }

    /// The attestation root certificates, DER.
    ///
    /// # Errors
    /// [`MdsError::Malformed`] when one is not base64.
    pub fn attestation_root_certificates(&self) -> Result<Vec<Vec<u8>>, MdsError> {
        let Some(statement) = &self.metadata_statement else {
            return Ok(Vec::new());
        };
        statement
            .attestation_root_certificates
            .iter()
            .map(|text| {
                base64url::decode_lenient(text).map_err(|error| MdsError::Malformed {
                    part: "attestationRootCertificates",
                    reason: error.to_string(),
                })
            })
            .collect()
    }

    /// The entry's AAGUID (`aaguid`, else the metadata statement's), when it is a valid GUID.
    #[must_use]
    pub fn parsed_aaguid(&self) -> Option<Aaguid> {
        let text = self
            .aaguid
            .as_deref()
            .or_else(|| self.metadata_statement.as_ref()?.aaguid.as_deref())?;
        text.parse().ok()
    }
}

/// Whether a status means the authenticator must no longer be trusted.
#[must_use]
pub fn is_revoking_status(status: &str) -> bool {
    status == "REVOKED" || status.ends_with("_COMPROMISE")
}

/// A verified metadata BLOB, indexed by AAGUID.
#[derive(Debug, Clone)]
pub struct MetadataBlob {
    no: u64,
    next_update: String,
    legal_header: Option<String>,
    entries: Vec<MetadataEntry>,
    by_aaguid: HashMap<Aaguid, usize>,
    dropped: Vec<MetadataEntry>,
}

#[derive(Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

impl MetadataBlob {
    /// Verifies a BLOB (the JWS compact text) against the pinned `root` certificate (DER) at
    /// `now`, refuses it unless its `no` is above `previous_no`, and indexes its entries.
    ///
    /// # Errors
    /// [`MdsError`] naming the failed check.
    pub fn verify(
        jws: &str,
        root: &[u8],
        previous_no: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Self, MdsError> {
        let jws = jws.trim();
        let mut parts = jws.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MdsError::NotCompactJws);
        };
        let malformed = |part: &'static str, reason: String| MdsError::Malformed { part, reason };
        let header_bytes = base64url::decode_lenient(header_b64)
            .map_err(|e| malformed("header", e.to_string()))?;
        let header: JwsHeader = serde_json::from_slice(&header_bytes)
            .map_err(|e| malformed("header", e.to_string()))?;
        let signature = base64url::decode_lenient(signature_b64)
            .map_err(|e| malformed("signature", e.to_string()))?;
        if header.x5c.is_empty() {
            return Err(MdsError::MissingCertificateChain);
        }
        let chain = header
            .x5c
            .iter()
            .map(|text| {
                base64url::decode_lenient(text).map_err(|e| malformed("x5c", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let parsed = chain
            .iter()
            .enumerate()
            .map(|(index, der)| certificate::parse(der, index))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MdsError::UntrustedChain)?;
        certificate::verify_parsed_chain(&chain, &parsed, &[root.to_vec()], now)
            .map_err(MdsError::UntrustedChain)?;

        use aws_lc_rs::signature;
        let algorithm: &'static dyn signature::VerificationAlgorithm = match header.alg.as_str() {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
            other => return Err(MdsError::UnsupportedAlgorithm(other.to_owned())),
        };
        let signing_input_length = header_b64.len() + 1 + payload_b64.len();
        let signing_input = &jws.as_bytes()[..signing_input_length];
        signature::UnparsedPublicKey::new(
            algorithm,
            &*parsed[0].public_key().subject_public_key.data,
        )
        .verify(signing_input, &signature)
        .map_err(|_| MdsError::BadSignature)?;

        let payload_bytes = base64url::decode_lenient(payload_b64)
            .map_err(|e| malformed("payload", e.to_string()))?;
        let payload: BlobPayload = serde_json::from_slice(&payload_bytes)
            .map_err(|e| malformed("payload", e.to_string()))?;
        if let Some(previous) = previous_no
            && payload.no <= previous
        {
            return Err(MdsError::StaleSerialNumber {
                previous,
                received: payload.no,
            });
        }

        let (entries, dropped): (Vec<_>, Vec<_>) = payload.entries.into_iter().partition(|entry| {
            !entry
                .latest_status()
                .is_some_and(|report| is_revoking_status(&report.status))
        });
        let by_aaguid = entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| Some((entry.parsed_aaguid()?, index)))
            .collect();
        Ok(MetadataBlob {
            no: payload.no,
            next_update: payload.next_update,
            legal_header: payload.legal_header,
            entries,
            by_aaguid,
            dropped,
        })
    }

    /// The BLOB's serial number `no`; pass it as `previous_no` when loading the next one.
    #[must_use]
    pub fn serial_number(&self) -> u64 {
        self.no
    }

    /// `nextUpdate` (`YYYY-MM-DD`).
    #[must_use]
    pub fn next_update(&self) -> &str {
        &self.next_update
    }

    /// Whether `now` is past `nextUpdate` (a newer BLOB should have been published and
    /// loaded); an unreadable `nextUpdate` counts as past.
    #[must_use]
    pub fn is_past_next_update(&self, now: OffsetDateTime) -> bool {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        match time::Date::parse(&self.next_update, &format) {
            Ok(next_update) => now.date() > next_update,
            Err(_) => true,
        }
    }

    /// `legalHeader`.
    #[must_use]
    pub fn legal_header(&self) -> Option<&str> {
        self.legal_header.as_deref()
    }

    /// The entries kept (revoked and compromised ones are dropped).
    #[must_use]
    pub fn entries(&self) -> &[MetadataEntry] {
        &self.entries
    }

    /// The entries dropped because their latest status is `REVOKED` or a compromise.
    #[must_use]
    pub fn dropped_entries(&self) -> &[MetadataEntry] {
        &self.dropped
    }

    /// The kept entry for an AAGUID.
    #[must_use]
    pub fn lookup(&self, aaguid: &Aaguid) -> Option<&MetadataEntry> {
        self.by_aaguid
            .get(aaguid)
            .map(|&index| &self.entries[index])
    }
}
