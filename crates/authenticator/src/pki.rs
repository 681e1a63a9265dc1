//! Attestation material: roots, batch certificates, and FIDO metadata.
//!
//! [`generate_organisation`] is what `keybridge attestation init` runs. It makes two
//! independent P-256 hierarchies and writes them with [`OrganisationAttestation::write_to_dir`]:
//!
//! | file | what | who uses it |
//! |---|---|---|
//! | `attestation-root.pem` | attestation root CA (`keyCertSign`) | relying parties (it is also in the metadata) |
//! | `batch-cert.pem` | batch attestation certificate issued by that root: subject C, O, OU=`Authenticator Attestation`, CN; `CA:FALSE`; AAGUID extension `1.3.6.1.4.1.45724.1.1.4` (non-critical) | devices (`keybridge device init --attestation-dir`), sent as `x5c[0]` |
//! | `batch-key.pem` | the batch private key, PKCS#8, mode 0600 | devices import it into their encrypted store; keep it as secret as a signing key |
//! | `metadata-statement.json` | FIDO MDS3 metadata statement for keybridge's AAGUID | admins, metadata tooling |
//! | `mds-root.pem` | the root that signs the metadata BLOB (a separate CA) | relying parties that load the BLOB (entra-sim `--mds-root`) |
//! | `mds-blob.jwt` | MDS3 BLOB: a JWS (ES256, `x5c` = the signing certificate) with one entry, status `FIDO_CERTIFIED_L1` | relying parties (entra-sim `--mds-blob`) |
//! | `README.txt` | this table | people |
//!
//! The private keys of both roots and of the BLOB signer are used once and then dropped: to
//! rotate, run `keybridge attestation init` again into a new directory. The status report is
//! the organisation's own statement for its own relying parties, not a FIDO Alliance certificate.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use rand_core::{OsRng, RngCore as _};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::encoding::{b64_standard, b64url};
use crate::error::AttestationError;
use crate::keys::AttestationKey;
use crate::store::{AttestationIdentity, AttestationSource};
use crate::{AAGUID, AAGUID_STRING};

/// OID of the FIDO AAGUID certificate extension (id-fido-gen-ce-aaguid).
pub const AAGUID_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];
/// Attestation root certificate file.
pub const ATTESTATION_ROOT_FILE: &str = "attestation-root.pem";
/// Batch attestation certificate file.
pub const BATCH_CERT_FILE: &str = "batch-cert.pem";
/// Batch attestation private key file.
pub const BATCH_KEY_FILE: &str = "batch-key.pem";
/// Metadata statement file.
pub const METADATA_STATEMENT_FILE: &str = "metadata-statement.json";
/// MDS BLOB root certificate file.
pub const MDS_ROOT_FILE: &str = "mds-root.pem";
/// MDS BLOB file.
pub const MDS_BLOB_FILE: &str = "mds-blob.jwt";
/// Explanation file.
pub const README_FILE: &str = "README.txt";

const ROOT_YEARS: i64 = 20;
const LEAF_YEARS: i64 = 15;
const BLOB_VALID_DAYS: i64 = 365;

/// What `keybridge attestation init` produces.
#[derive(Debug)]
pub struct OrganisationAttestation {
    /// Organisation name (subject O).
    pub organisation: String,
    /// Attestation root certificate (DER).
    pub root_certificate: Vec<u8>,
    /// Batch attestation certificate (DER).
    pub batch_certificate: Vec<u8>,
    batch_key: AttestationKey,
    /// The MDS3 metadata statement.
    pub metadata_statement: Value,
    /// The MDS BLOB root certificate (DER).
    pub mds_root_certificate: Vec<u8>,
    /// The MDS BLOB (JWS compact serialisation).
    pub mds_blob: String,
}

/// Settings for [`generate_organisation`].
#[derive(Debug, Clone)]
pub struct OrganisationSettings {
    /// Organisation name, used as subject O and in descriptions.
    pub organisation: String,
    /// ISO 3166 two-letter country code for subject C.
    pub country: String,
    /// "Now", for validity periods and dates.
    pub now: OffsetDateTime,
}

fn generation_error(what: &'static str) -> impl Fn(rcgen::Error) -> AttestationError {
    move |error| AttestationError::Generate {
        what,
        reason: error.to_string(),
    }
}

fn rcgen_key(key: &AttestationKey, what: &'static str) -> Result<KeyPair, AttestationError> {
    let der = key.pkcs8_der().map_err(|e| AttestationError::Generate {
        what,
        reason: e.to_string(),
    })?;
    KeyPair::try_from(der.as_slice()).map_err(generation_error(what))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    // Positive and non-zero, as RFC 5280 wants.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn base_params(
    now: OffsetDateTime,
    years: i64,
    subject: &[(DnType, &str)],
) -> Result<CertificateParams, AttestationError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(generation_error("certificate parameters"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    // Explicit validity: rcgen's default ends in the year 4096.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
    params.serial_number = Some(random_serial());
    Ok(params)
}

fn ca_params(
    now: OffsetDateTime,
    subject: &[(DnType, &str)],
) -> Result<CertificateParams, AttestationError> {
    let mut params = base_params(now, ROOT_YEARS, subject)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The AAGUID extension value: a DER OCTET STRING of the 16 AAGUID bytes.
fn aaguid_extension() -> CustomExtension {
    let mut content = vec![0x04, 0x10];
    content.extend_from_slice(&AAGUID);
    CustomExtension::from_oid_content(AAGUID_EXTENSION_OID, content)
}

/// A root and a batch certificate for `country`/`organisation`; returns (root DER, batch DER, batch key).
fn attestation_hierarchy(
    now: OffsetDateTime,
    country: &str,
    organisation: &str,
) -> Result<(Vec<u8>, Vec<u8>, AttestationKey), AttestationError> {
    let root_key = AttestationKey::generate();
    let root_pair = rcgen_key(&root_key, "attestation root key")?;
    let root_cn = format!("{organisation} keybridge Attestation Root");
    let root_params = ca_params(
        now,
        &[
            (DnType::CountryName, country),
            (DnType::OrganizationName, organisation),
            (DnType::CommonName, &root_cn),
        ],
    )?;
    let root = root_params
        .self_signed(&root_pair)
        .map_err(generation_error("attestation root certificate"))?;

    let batch_key = AttestationKey::generate();
    let batch_pair = rcgen_key(&batch_key, "batch key")?;
    let mut batch_params = base_params(
        now,
        LEAF_YEARS,
        &[
            (DnType::CountryName, country),
            (DnType::OrganizationName, organisation),
            (DnType::OrganizationalUnitName, "Authenticator Attestation"),
            (DnType::CommonName, "keybridge Batch Attestation"),
        ],
    )?;
    batch_params.is_ca = IsCa::ExplicitNoCa;
    batch_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    batch_params.use_authority_key_identifier_extension = true;
    batch_params.custom_extensions = vec![aaguid_extension()];
    let issuer = Issuer::new(root_params, &root_pair);
    let batch = batch_params
        .signed_by(&batch_pair, &issuer)
        .map_err(generation_error("batch attestation certificate"))?;
    Ok((root.der().to_vec(), batch.der().to_vec(), batch_key))
}

/// A device-local root and batch certificate for `keybridge device init` without an
/// organisation: no relying party trusts the root until an administrator loads it.
pub fn generate_device_local(now: OffsetDateTime) -> Result<AttestationIdentity, AttestationError> {
    let (root, batch, key) = attestation_hierarchy(now, "US", "keybridge device-local")?;
    Ok(AttestationIdentity::new(
        key,
        batch,
        root,
        AttestationSource::DeviceLocal,
    ))
}

/// Makes an organisation's attestation root, batch certificate and key, metadata statement,
/// and an MDS3 BLOB signed under a separate metadata root.
pub fn generate_organisation(
    settings: &OrganisationSettings,
) -> Result<OrganisationAttestation, AttestationError> {
    let organisation = settings.organisation.trim();
    if organisation.is_empty() {
        return Err(AttestationError::Generate {
            what: "attestation material",
            reason: "the organisation name is empty".to_owned(),
        });
    }
    let country = settings.country.trim();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(AttestationError::Generate {
            what: "attestation material",
            reason: format!("the country {country:?} is not a two-letter upper-case ISO 3166 code"),
        });
    }
    let now = settings.now;
    let (root_certificate, batch_certificate, batch_key) =
        attestation_hierarchy(now, country, organisation)?;
    let metadata_statement = metadata_statement(organisation, &root_certificate);

    // The BLOB's own hierarchy: metadata root -> signer.
    let mds_root_key = AttestationKey::generate();
    let mds_root_pair = rcgen_key(&mds_root_key, "metadata root key")?;
    let mds_root_cn = format!("{organisation} keybridge Metadata Root");
    let mds_root_params = ca_params(
        now,
        &[
            (DnType::CountryName, country),
            (DnType::OrganizationName, organisation),
            (DnType::CommonName, &mds_root_cn),
        ],
    )?;
    let mds_root = mds_root_params
        .self_signed(&mds_root_pair)
        .map_err(generation_error("metadata root certificate"))?;
    let signer_key = AttestationKey::generate();
    let signer_pair = rcgen_key(&signer_key, "metadata signing key")?;
    let signer_cn = format!("{organisation} keybridge Metadata Signer");
    let mut signer_params = base_params(
        now,
        LEAF_YEARS,
        &[
            (DnType::CountryName, country),
            (DnType::OrganizationName, organisation),
            (DnType::CommonName, &signer_cn),
        ],
    )?;
    signer_params.is_ca = IsCa::ExplicitNoCa;
    signer_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    signer_params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(mds_root_params, &mds_root_pair);
    let signer = signer_params
        .signed_by(&signer_pair, &issuer)
        .map_err(generation_error("metadata signing certificate"))?;

    let mds_blob = mds_blob(&metadata_statement, &signer_key, signer.der(), now)?;
    Ok(OrganisationAttestation {
        organisation: organisation.to_owned(),
        root_certificate,
        batch_certificate,
        batch_key,
        metadata_statement,
        mds_root_certificate: mds_root.der().to_vec(),
        mds_blob,
    })
}

/// The FIDO MDS3 metadata statement for keybridge's AAGUID under `root_certificate`.
pub fn metadata_statement(organisation: &str, root_certificate: &[u8]) -> Value {
    json!({
        "legalHeader": "Issued by the organisation named in the description for its own relying parties; not a FIDO Alliance certification.",
        "aaguid": AAGUID_STRING,
        "description": format!("keybridge device-bound authenticator ({organisation})"),
        "authenticatorVersion": 1,
        "protocolFamily": "fido2",
        "schema": 3,
        "upv": [{"major": 1, "minor": 0}, {"major": 1, "minor": 1}],
        "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw"],
        "publicKeyAlgAndEncodings": ["cose"],
        "attestationTypes": ["basic_full"],
        "userVerificationDetails": [[{"userVerificationMethod": "passcode_internal"}]],
        "keyProtection": ["software"],
        "isKeyRestricted": true,
        "matcherProtection": ["software"],
        "cryptoStrength": 128,
        "attachmentHint": ["external", "wireless", "network"],
        "tcDisplay": [],
        "attestationRootCertificates": [b64_standard(root_certificate)],
        "authenticatorGetInfo": {
            "versions": ["FIDO_2_0", "FIDO_2_1"],
            "extensions": ["credProtect", "hmac-secret"],
            "aaguid": AAGUID_STRING.replace('-', ""),
            "options": {"plat": false, "rk": true, "up": true, "uv": true},
            "algorithms": [{"type": "public-key", "alg": -7}],
            "transports": ["hybrid"]
        }
    })
}

fn mds_blob(
    statement: &Value,
    signer_key: &AttestationKey,
    signer_certificate: &[u8],
    now: OffsetDateTime,
) -> Result<String, AttestationError> {
    let date =
        |t: OffsetDateTime| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
    let header = json!({"alg": "ES256", "typ": "JWT", "x5c": [b64_standard(signer_certificate)]});
    let payload = json!({
        "legalHeader": statement["legalHeader"],
        // Minutes since 1970: a later `attestation init` always issues a larger number.
        "no": now.unix_timestamp() / 60,
        "nextUpdate": date(now + Duration::days(BLOB_VALID_DAYS)),
        "entries": [{
            "aaguid": AAGUID_STRING,
            "metadataStatement": statement,
            "statusReports": [{
                "status": "FIDO_CERTIFIED_L1",
                "effectiveDate": date(now),
                "certificationDescriptor": statement["description"],
                "certificateNumber": format!("KEYBRIDGE-{}", now.unix_timestamp()),
                "certificationPolicyVersion": "1.4.0",
                "certificationRequirementsVersion": "1.5.0"
            }],
            "timeOfLastStatusChange": date(now)
        }]
    });
    let encode = |value: &Value| {
        serde_json::to_vec(value).map_err(|e| AttestationError::Generate {
            what: "metadata BLOB",
            reason: e.to_string(),
        })
    };
    let signing_input = format!(
        "{}.{}",
        b64url(&encode(&header)?),
        b64url(&encode(&payload)?)
    );
    let signature = signer_key.sign_jws(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

/// The subject of a DER certificate as RFC 4514 text.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, certificate)| certificate.subject().to_string())
}

/// Wraps DER in PEM armour.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let body = b64_standard(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Reads the first PEM block with `label`.
pub fn pem_to_der(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    crate::encoding::decode_lenient(&body)
}

fn write_file(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> Result<PathBuf, AttestationError> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(|source| AttestationError::Io {
            action: "create",
            path: path.clone(),
            source,
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| AttestationError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

impl OrganisationAttestation {
    /// Writes the files listed in the module documentation into `dir` (created if missing);
    /// refuses to overwrite any of them. Returns the paths written.
    pub fn write_to_dir(&self, dir: &Path) -> Result<Vec<PathBuf>, AttestationError> {
        const FILES: [&str; 7] = [
            ATTESTATION_ROOT_FILE,
            BATCH_CERT_FILE,
            BATCH_KEY_FILE,
            METADATA_STATEMENT_FILE,
            MDS_ROOT_FILE,
            MDS_BLOB_FILE,
            README_FILE,
        ];
        if let Some(file) = FILES.iter().find(|f| dir.join(f).exists()) {
            return Err(AttestationError::WouldOverwrite {
                dir: dir.to_path_buf(),
                file,
            });
        }
        fs::create_dir_all(dir).map_err(|source| AttestationError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let key_pem = self
            .batch_key
            .pkcs8_pem()
            .map_err(|e| AttestationError::Generate {
                what: "batch key file",
                reason: e.to_string(),
            })?;
        let statement = serde_json::to_vec_pretty(&self.metadata_statement).map_err(|e| {
            AttestationError::Generate {
                what: "metadata statement",
                reason: e.to_string(),
            }
        })?;
        let readme = format!(
            "keybridge attestation material for {org}\n\
             AAGUID {aaguid}\n\n\
             {root}  attestation root CA; relying parties trust it (also inside the metadata)\n\
             {batch}  batch attestation certificate (x5c[0] of packed attestations)\n\
             {key}  batch private key (PKCS#8). SECRET: import it into devices with\n\
             \x20              `keybridge device init --store DIR --attestation-dir {dir}`\n\
             {statement}  FIDO MDS3 metadata statement for the AAGUID\n\
             {mds_root}  root of the metadata BLOB signature (entra-sim --mds-root)\n\
             {blob}  MDS3 BLOB, JWS ES256 (entra-sim --mds-blob)\n\n\
             The root and BLOB-signing private keys were discarded; run `keybridge attestation init`\n\
             into a new directory to rotate. The BLOB's FIDO_CERTIFIED_L1 status is this\n\
             organisation's own statement, not a FIDO Alliance certification.\n",
            org = self.organisation,
            aaguid = AAGUID_STRING,
            root = ATTESTATION_ROOT_FILE,
            batch = BATCH_CERT_FILE,
            key = BATCH_KEY_FILE,
            statement = METADATA_STATEMENT_FILE,
            mds_root = MDS_ROOT_FILE,
            blob = MDS_BLOB_FILE,
            dir = dir.display(),
        );
        Ok(vec![
            write_file(
                dir,
                ATTESTATION_ROOT_FILE,
                der_to_pem("CERTIFICATE", &self.root_certificate).as_bytes(),
                0o644,
            )?,
            write_file(
                dir,
                BATCH_CERT_FILE,
                der_to_pem("CERTIFICATE", &self.batch_certificate).as_bytes(),
                0o644,
            )?,
            write_file(dir, BATCH_KEY_FILE, key_pem.as_bytes(), 0o600)?,
            write_file(dir, METADATA_STATEMENT_FILE, &statement, 0o644)?,
            write_file(
                dir,
                MDS_ROOT_FILE,
                der_to_pem("CERTIFICATE", &self.mds_root_certificate).as_bytes(),
                0o644,
            )?,
            write_file(dir, MDS_BLOB_FILE, self.mds_blob.as_bytes(), 0o644)?,
            write_file(dir, README_FILE, readme.as_bytes(), 0o644)?,
        ])
    }

    /// The identity a device holds after importing this material.
    pub fn into_identity(self) -> AttestationIdentity {
        AttestationIdentity::new(
            self.batch_key,
            self.batch_certificate,
            self.root_certificate,
            AttestationSource::Organisation,
        )
    }
}

fn read_text(path: &Path) -> Result<String, AttestationError> {
    fs::read_to_string(path).map_err(|source| AttestationError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn sec1_public_key(certificate: &X509Certificate<'_>) -> Option<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(&certificate.public_key().subject_public_key.data).ok()
}

/// Imports `attestation-root.pem`, `batch-cert.pem` and `batch-key.pem` from `dir`, checking
/// that the key belongs to the certificate, that the root signed it, and that it carries
/// keybridge's AAGUID.
pub fn load_attestation_dir(dir: &Path) -> Result<AttestationIdentity, AttestationError> {
    let invalid = |file: &str, reason: String| AttestationError::InvalidImport {
        path: dir.join(file),
        reason,
    };
    let root_der = pem_to_der(&read_text(&dir.join(ATTESTATION_ROOT_FILE))?, "CERTIFICATE")
        .ok_or_else(|| invalid(ATTESTATION_ROOT_FILE, "no PEM CERTIFICATE block".into()))?;
    let batch_der = pem_to_der(&read_text(&dir.join(BATCH_CERT_FILE))?, "CERTIFICATE")
        .ok_or_else(|| invalid(BATCH_CERT_FILE, "no PEM CERTIFICATE block".into()))?;
    let key_pem = zeroize::Zeroizing::new(read_text(&dir.join(BATCH_KEY_FILE))?);
    let key = AttestationKey::from_pkcs8_pem(&key_pem)
        .map_err(|e| invalid(BATCH_KEY_FILE, e.to_string()))?;

    let (_, root) = X509Certificate::from_der(&root_der).map_err(|e| {
        invalid(
            ATTESTATION_ROOT_FILE,
            format!("not an X.509 certificate ({e})"),
        )
    })?;
    let (_, batch) = X509Certificate::from_der(&batch_der)
        .map_err(|e| invalid(BATCH_CERT_FILE, format!("not an X.509 certificate ({e})")))?;
    if sec1_public_key(&batch).as_ref() != Some(key.public_key().verifying_key()) {
        return Err(invalid(
            BATCH_KEY_FILE,
            format!("this key does not belong to {BATCH_CERT_FILE}"),
        ));
    }
    let root_key = sec1_public_key(&root)
        .ok_or_else(|| invalid(ATTESTATION_ROOT_FILE, "the root key is not P-256".into()))?;
    let signature = Signature::from_der(&batch.signature_value.data)
        .map_err(|_| invalid(BATCH_CERT_FILE, "the signature is not ECDSA".into()))?;
    root_key
        .verify(batch.tbs_certificate.as_ref(), &signature)
        .map_err(|_| {
            invalid(
                BATCH_CERT_FILE,
                format!("it was not issued by {ATTESTATION_ROOT_FILE}"),
            )
        })?;
    let aaguid_ok = batch.extensions().iter().any(|ext| {
        ext.oid
            .iter()
            .is_some_and(|arcs| arcs.eq(AAGUID_EXTENSION_OID.iter().copied()))
            && ext.value.len() == 18
            && ext.value[..2] == [0x04, 0x10]
            && ext.value[2..] == AAGUID
    });
    if !aaguid_ok {
        return Err(invalid(
            BATCH_CERT_FILE,
            format!(
                "it does not carry keybridge's AAGUID {AAGUID_STRING} in extension 1.3.6.1.4.1.45724.1.1.4"
            ),
        ));
    }
    Ok(AttestationIdentity::new(
        key,
        batch_der,
        root_der,
        AttestationSource::Organisation,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = der_to_pem("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_to_der(&pem, "CERTIFICATE"), Some(der));
        assert_eq!(pem_to_der(&pem, "PRIVATE KEY"), None);
    }

    #[test]
    fn generated_material_imports_and_mismatches_are_refused() {
        let material = generate_organisation(&OrganisationSettings {
            organisation: "Contoso".into(),
            country: "DE".into(),
            now: OffsetDateTime::now_utc(),
        })
        .expect("generates");
        let dir = tempfile::tempdir().expect("tempdir");
        let written = material.write_to_dir(dir.path()).expect("writes");
        assert_eq!(written.len(), 7);
        let identity = load_attestation_dir(dir.path()).expect("imports");
        assert_eq!(identity.source, AttestationSource::Organisation);
        assert!(matches!(
            material.write_to_dir(dir.path()),
            Err(AttestationError::WouldOverwrite { .. })
        ));

        // A batch key from another organisation does not belong to this certificate.
        let other = generate_organisation(&OrganisationSettings {
            organisation: "Fabrikam".into(),
            country: "US".into(),
            now: OffsetDateTime::now_utc(),
        })
        .expect("generates");
        let other_dir = tempfile::tempdir().expect("tempdir");
        other.write_to_dir(other_dir.path()).expect("writes");
        fs::copy(other_dir.path().join(BATCH_KEY_FILE), dir.path().join("k")).expect("copy");
        fs::rename(dir.path().join("k"), dir.path().join(BATCH_KEY_FILE)).expect("rename");
        match load_attestation_dir(dir.path()) {
            Err(AttestationError::InvalidImport { reason, .. }) => {
                assert!(reason.contains("does not belong"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A root that did not issue the batch certificate.
        fs::copy(other_dir.path().join(BATCH_KEY_FILE), dir.path().join("k")).expect("copy");
        fs::copy(
            other_dir.path().join(BATCH_CERT_FILE),
            dir.path().join(BATCH_CERT_FILE),
        )
        .expect("copy");
        match load_attestation_dir(dir.path()) {
            Err(AttestationError::InvalidImport { reason, .. }) => {
                assert!(reason.contains("not issued"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for (org, country) in [("", "US"), ("Contoso", "usa"), ("Contoso", "us")] {
            assert!(
                generate_organisation(&OrganisationSettings {
                    organisation: org.into(),
                    country: country.into(),
                    now: OffsetDateTime::now_utc(),
                })
                .is_err()
            );
        }
    }
}
