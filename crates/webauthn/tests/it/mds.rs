//! FIDO MDS3 BLOBs signed here under a test root, and attestation enforcement against them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keybridge_webauthn::certificate::CertificateError;
use keybridge_webauthn::mds::{MdsError, MetadataBlob};
use keybridge_webauthn::policy::{AaguidPolicy, Enforcement, PolicyError, enforce_attestation};
use keybridge_webauthn::{Aaguid, RegistrationExpectations, verify_registration};
use rcgen::{
    CertificateParams, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize,
    SigningKey as _,
};
use serde_json::json;

use crate::generated::{
    AAGUID, CertificateAuthority, Leaf, packed_registration, today, verify_for_entra,
};
use crate::support::{b64, bytes, now, vector};

const REVOKED: &str = "11111111-2222-3333-4444-555555555555";
const COMPROMISED_THEN_FIXED: &str = "22222222-2222-3333-4444-555555555555";
const KEY_COMPROMISED: &str = "33333333-2222-3333-4444-555555555555";
const NOT_CERTIFIED: &str = "44444444-2222-3333-4444-555555555555";
const NO_RESIDENT_KEYS: &str = "55555555-2222-3333-4444-555555555555";

/// Signs BLOBs under its own test root, with x5c = [signer] or [signer, intermediate].
pub struct MdsSigner {
    pub root: CertificateAuthority,
    leaf_der: Vec<u8>,
    leaf_key: KeyPair,
    intermediate_der: Option<Vec<u8>>,
    alg: &'static str,
}

impl MdsSigner {
    pub fn new(alg: &'static str) -> Self {
        Self::build(alg, false)
    }

    pub fn with_intermediate(alg: &'static str) -> Self {
        Self::build(alg, true)
    }

    fn build(alg: &'static str, intermediate: bool) -> Self {
        let root = CertificateAuthority::new("keybridge Test MDS Root");
        let leaf_key = match alg {
            "RS256" => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap(),
            _ => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "keybridge Test MDS Signer");
        params.is_ca = IsCa::ExplicitNoCa;
        let (leaf_der, intermediate_der) = if intermediate {
            let ca = root.intermediate("keybridge Test MDS Intermediate", true);
            (ca.issue(&params, &leaf_key), Some(ca.der))
        } else {
            (root.issue(&params, &leaf_key), None)
        };
        MdsSigner {
            root,
            leaf_der,
            leaf_key,
            intermediate_der,
            alg,
        }
    }

    pub fn sign(&self, payload: &serde_json::Value) -> String {
        let x5c: Vec<String> = std::iter::once(&self.leaf_der)
            .chain(self.intermediate_der.as_ref())
            .map(|der| STANDARD.encode(der))
            .collect();
        let header = json!({"alg": self.alg, "typ": "JWT", "x5c": x5c});
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let signature = self.leaf_key.sign(signing_input.as_bytes()).unwrap();
        let signature = if self.alg == "ES256" {
            // JWS carries ECDSA as fixed-size r ‖ s, not DER.
            p256::ecdsa::Signature::from_der(&signature)
                .unwrap()
                .to_bytes()
                .to_vec()
        } else {
            signature
        };
        format!("{signing_input}.{}", b64(&signature))
    }
}

fn entry(aaguid: &str, roots: &[&[u8]], reports: serde_json::Value) -> serde_json::Value {
    json!({
        "aaguid": aaguid,
        "metadataStatement": {
            "description": format!("Authenticator {aaguid}"),
            "aaguid": aaguid,
            "protocolFamily": "fido2",
            "schema": 3,
            "attestationTypes": ["basic_full"],
            "attestationRootCertificates": roots.iter().map(|der| STANDARD.encode(der)).collect::<Vec<_>>(),
            "authenticatorGetInfo": {"versions": ["FIDO_2_0", "FIDO_2_1"], "extensions": ["hmac-secret"],
                "aaguid": aaguid.replace('-', ""), "options": {"rk": true, "uv": true}}
        },
        "statusReports": reports,
        "timeOfLastStatusChange": "2025-01-01"
    })
}

pub fn payload(no: u64, attestation_root: &[u8]) -> serde_json::Value {
    let mut limited = entry(
        NO_RESIDENT_KEYS,
        &[attestation_root],
        json!([{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2023-01-01"}]),
    );
    let info = &mut limited["metadataStatement"]["authenticatorGetInfo"];
    info["options"] = json!({"rk": false, "clientPin": true});
    info["extensions"] = json!(["credProtect"]);
    json!({
        "legalHeader": "Test metadata; not for production.",
        "no": no,
        "nextUpdate": "2026-12-01",
        "entries": [
            entry(&AAGUID.to_string(), &[attestation_root],
                json!([{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-05-01"}])),
            entry(REVOKED, &[attestation_root],
                json!([{"status": "FIDO_CERTIFIED", "effectiveDate": "2023-01-01"},
                       {"status": "REVOKED", "effectiveDate": "2025-02-01"}])),
            entry(COMPROMISED_THEN_FIXED, &[attestation_root],
                json!([{"status": "ATTESTATION_KEY_COMPROMISE", "effectiveDate": "2023-01-01"},
                       {"status": "FIDO_CERTIFIED_L2", "effectiveDate": "2024-01-01"}])),
            entry(KEY_COMPROMISED, &[attestation_root],
                json!([{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2023-01-01"},
                       {"status": "USER_KEY_REMOTE_COMPROMISE", "effectiveDate": "2024-06-01"}])),
            entry(NOT_CERTIFIED, &[attestation_root],
                json!([{"status": "NOT_FIDO_CERTIFIED", "effectiveDate": "2023-01-01"}])),
            limited,
            {"statusReports": [], "timeOfLastStatusChange": "2020-01-01"}
        ]
    })
}

fn aaguid(text: &str) -> Aaguid {
    text.parse().unwrap()
}

#[test]
fn es256_and_rs256_blobs_verify_and_index_their_entries() {
    let attestation_root = CertificateAuthority::new("attestation root");
    for (alg, signer) in [
        ("ES256", MdsSigner::new("ES256")),
        ("RS256", MdsSigner::new("RS256")),
        (
            "ES256 via intermediate",
            MdsSigner::with_intermediate("ES256"),
        ),
    ] {
        let jws = signer.sign(&payload(42, &attestation_root.der));
        let blob = MetadataBlob::verify(&jws, &signer.root.der, Some(41), today())
            .unwrap_or_else(|error| panic!("{alg}: {error}"));
        assert_eq!(blob.serial_number(), 42);
        assert_eq!(blob.next_update(), "2026-12-01");
        assert!(!blob.is_past_next_update(today()));
        let after = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(); // 2027-01-15
        assert!(blob.is_past_next_update(after));
        assert_eq!(blob.lookup(&AAGUID).unwrap().parsed_aaguid(), Some(AAGUID));
        assert_eq!(
            blob.legal_header(),
            Some("Test metadata; not for production.")
        );
        let entry = blob.lookup(&AAGUID).expect("the certified entry is kept");
        assert_eq!(
            entry.description(),
            Some(format!("Authenticator {AAGUID}").as_str())
        );
        assert!(entry.is_fido_certified());
        assert_eq!(
            entry.attestation_root_certificates().unwrap(),
            vec![attestation_root.der.clone()]
        );
        assert_eq!(entry.latest_status().unwrap().status, "FIDO_CERTIFIED_L1");
        // The latest status decides: revoked and compromised entries go, fixed ones stay.
        assert!(blob.lookup(&aaguid(REVOKED)).is_none(), "{alg}");
        assert!(blob.lookup(&aaguid(KEY_COMPROMISED)).is_none(), "{alg}");
        assert!(
            blob.lookup(&aaguid(COMPROMISED_THEN_FIXED)).is_some(),
            "{alg}"
        );
        assert_eq!(blob.dropped_entries().len(), 2);
        assert_eq!(blob.entries().len(), 5);
        assert_eq!(
            blob.lookup(&aaguid(NO_RESIDENT_KEYS))
                .unwrap()
                .entra_requirement_gaps(),
            vec![
                "cannot store resident keys",
                "supports neither hmac-secret nor prf"
            ]
        );
        assert!(entry.entra_requirement_gaps().is_empty());
    }
}

#[test]
fn blob_not_newer_than_the_last_is_refused() {
    let signer = MdsSigner::new("ES256");
    let jws = signer.sign(&payload(42, &[0]));
    for previous in [42, 43] {
        assert_eq!(
            MetadataBlob::verify(&jws, &signer.root.der, Some(previous), today()).unwrap_err(),
            MdsError::StaleSerialNumber {
                previous,
                received: 42
            }
        );
    }
    assert!(MetadataBlob::verify(&jws, &signer.root.der, None, today()).is_ok());
}

#[test]
fn blob_under_another_root_is_refused() {
    let signer = MdsSigner::new("ES256");
    let jws = signer.sign(&payload(1, &[0]));
    let other = CertificateAuthority::new("keybridge Test MDS Root");
    assert_eq!(
        MetadataBlob::verify(&jws, &other.der, None, today()).unwrap_err(),
        MdsError::UntrustedChain(CertificateError::BadSignature(0))
    );
    let unrelated = CertificateAuthority::new("Somebody else");
    assert_eq!(
        MetadataBlob::verify(&jws, &unrelated.der, None, today()).unwrap_err(),
        MdsError::UntrustedChain(CertificateError::UntrustedRoot(1))
    );
}

#[test]
fn tampered_blob_is_refused() {
    let signer = MdsSigner::new("ES256");
    let jws = signer.sign(&payload(7, &[0]));
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    parts[1] = b64(payload(8, &[0]).to_string().as_bytes());
    assert_eq!(
        MetadataBlob::verify(&parts.join("."), &signer.root.der, None, today()).unwrap_err(),
        MdsError::BadSignature
    );
    assert_eq!(
        MetadataBlob::verify("a.b", &signer.root.der, None, today()).unwrap_err(),
        MdsError::NotCompactJws
    );
    assert!(matches!(
        MetadataBlob::verify("e30.e30.AA", &signer.root.der, None, today()).unwrap_err(),
        MdsError::Malformed { part: "header", .. }
    ));
}

#[test]
fn enforced_attestation_accepts_a_chain_to_the_metadata_root() {
    let attestation_root = CertificateAuthority::new("attestation root");
    let signer = MdsSigner::new("ES256");
    let blob = MetadataBlob::verify(
        &signer.sign(&payload(3, &attestation_root.der)),
        &signer.root.der,
        None,
        today(),
    )
    .unwrap();
    let registration = verify_for_entra(
        &packed_registration(&attestation_root, &Leaf::default()),
        &[],
        today(),
    )
    .unwrap();
    let entry = enforce_attestation(&registration, &blob, today()).unwrap();
    assert_eq!(
        entry.description(),
        Some(format!("Authenticator {AAGUID}").as_str())
    );
}

#[test]
fn enforced_attestation_refuses_what_metadata_does_not_vouch_for() {
    let attestation_root = CertificateAuthority::new("attestation root");
    let signer = MdsSigner::new("ES256");
    let blob = MetadataBlob::verify(
        &signer.sign(&payload(3, &attestation_root.der)),
        &signer.root.der,
        None,
        today(),
    )
    .unwrap();

    // Issued under another root than the one metadata lists for this AAGUID.
    let rogue = CertificateAuthority::new("attestation root");
    let registration =
        verify_for_entra(&packed_registration(&rogue, &Leaf::default()), &[], today()).unwrap();
    let error = enforce_attestation(&registration, &blob, today()).unwrap_err();
    assert_eq!(
        error,
        PolicyError::UntrustedChain(CertificateError::BadSignature(0))
    );
    assert_eq!(error.code(), "error_attestation_required");

    // No AAGUID extension in the certificate.
    let leaf = Leaf {
        aaguid_extension: None,
        ..Leaf::default()
    };
    let registration =
        verify_for_entra(&packed_registration(&attestation_root, &leaf), &[], today()).unwrap();
    assert_eq!(
        enforce_attestation(&registration, &blob, today()).unwrap_err(),
        PolicyError::MissingAaguidExtension
    );

    // `none` and self attestation vouch for nothing.
    for (name, kind) in [("none.ES256", "none"), ("packed-self.ES256", "self")] {
        let vector = vector(name);
        let rp = vector.relying_party();
        let challenge = bytes(&vector.challenge);
        let registration = verify_registration(
            &vector.registration_response(),
            &RegistrationExpectations {
                require_user_verification: false,
                ..RegistrationExpectations::new(&rp, &challenge, now())
            },
        )
        .unwrap();
        assert_eq!(
            enforce_attestation(&registration, &blob, today()).unwrap_err(),
            PolicyError::NotAttested(kind)
        );
    }

    // An AAGUID metadata does not know.
    let mut unknown = verify_for_entra(
        &packed_registration(&attestation_root, &Leaf::default()),
        &[],
        today(),
    )
    .unwrap();
    unknown.aaguid = aaguid(REVOKED);
    assert_eq!(
        enforce_attestation(&unknown, &blob, today()).unwrap_err(),
        PolicyError::UnknownAuthenticator(aaguid(REVOKED))
    );
    unknown.aaguid = aaguid(NOT_CERTIFIED);
    assert_eq!(
        enforce_attestation(&unknown, &blob, today()).unwrap_err(),
        PolicyError::NotCertified(aaguid(NOT_CERTIFIED))
    );
    unknown.aaguid = aaguid(NO_RESIDENT_KEYS);
    assert_eq!(
        enforce_attestation(&unknown, &blob, today()).unwrap_err(),
        PolicyError::RequirementsNotMet {
            aaguid: aaguid(NO_RESIDENT_KEYS),
            gaps: "cannot store resident keys, supports neither hmac-secret nor prf".into()
        }
    );
}

#[test]
fn aaguid_policy_allows_and_blocks() {
    let listed = AAGUID;
    let other = Aaguid([7; 16]);
    let allow = AaguidPolicy {
        is_enforced: true,
        enforcement: Enforcement::Allow,
        aaguids: vec![listed],
    };
    assert_eq!(allow.check(&listed), Ok(()));
    assert_eq!(
        allow.check(&other),
        Err(PolicyError::AaguidNotAllowed(other))
    );
    assert_eq!(
        allow.check(&other).unwrap_err().code(),
        "error_aaguid_restricted"
    );
    let block = AaguidPolicy {
        enforcement: Enforcement::Block,
        ..allow.clone()
    };
    assert_eq!(
        block.check(&listed),
        Err(PolicyError::AaguidBlocked(listed))
    );
    assert_eq!(block.check(&other), Ok(()));
    let off = AaguidPolicy {
        is_enforced: false,
        ..allow
    };
    assert_eq!(off.check(&other), Ok(()));
    assert_eq!(AaguidPolicy::unrestricted().check(&listed), Ok(()));
}
