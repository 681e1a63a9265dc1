//! Registrations made here with generated attestation certificates, to exercise the
//! certificate requirements of WebAuthn §8.2.1 that the W3C vectors all satisfy, and the
//! attestation policy against FIDO metadata.

use ciborium::Value;
use keybridge_webauthn::certificate::CertificateError;
use keybridge_webauthn::{
    Aaguid, AttestationType, ChainTrust, RegistrationError, RegistrationExpectations,
    RegistrationResponse, RelyingParty, VerifiedRegistration, verify_registration,
};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SigningKey as _,
};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::support::b64;

pub const AAGUID: Aaguid = Aaguid([
    0x6d, 0x44, 0xba, 0x9b, 0xf6, 0xec, 0x2e, 0x49, 0xb9, 0x30, 0x0c, 0x8f, 0xe9, 0x20, 0xcb, 0x73,
]);
pub const CHALLENGE: &[u8] = b"a challenge issued by creationOptions";

/// A self-signed root that has nothing to do with the vectors.
pub fn unrelated_root_der() -> Vec<u8> {
    CertificateAuthority::new("Unrelated Root").der
}

/// A root CA that can issue certificates.
pub struct CertificateAuthority {
    pub key: KeyPair,
    pub params: CertificateParams,
    pub der: Vec<u8>,
}

impl CertificateAuthority {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let der = params.self_signed(&key).unwrap().der().to_vec();
        CertificateAuthority { key, params, der }
    }

    /// An intermediate issued by this authority; `is_ca: false` makes a certificate that
    /// must not issue others.
    pub fn intermediate(&self, name: &str, is_ca: bool) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = if is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let der = self.issue(&params, &key);
        CertificateAuthority { key, params, der }
    }

    pub fn issue(&self, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
        let issuer = Issuer::new(self.params.clone(), &self.key);
        params.signed_by(key, &issuer).unwrap().der().to_vec()
    }
}

/// How the attestation certificate deviates from a good one.
#[derive(Clone)]
pub struct Leaf {
    pub organizational_unit: Option<&'static str>,
    pub is_ca: bool,
    /// AAGUID in the certificate extension and whether it is critical.
    pub aaguid_extension: Option<(Aaguid, bool)>,
    pub not_after: OffsetDateTime,
    /// Certificates appended to x5c after the attestation certificate.
    pub chain: Vec<Vec<u8>>,
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf {
            organizational_unit: Some("Authenticator Attestation"),
            is_ca: false,
            aaguid_extension: Some((AAGUID, false)),
            not_after: OffsetDateTime::from_unix_timestamp(4_000_000_000).unwrap(),
            chain: Vec::new(),
        }
    }
}

/// A `packed` x5c registration for Entra's RP, signed by a leaf issued by `authority`.
pub fn packed_registration(authority: &CertificateAuthority, leaf: &Leaf) -> RegistrationResponse {
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CountryName, "SE");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "keybridge tests");
    if let Some(unit) = leaf.organizational_unit {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, unit);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, "keybridge test authenticator");
    params.is_ca = if leaf.is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    params.not_before = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    params.not_after = leaf.not_after;
    if let Some((aaguid, critical)) = leaf.aaguid_extension {
        let mut content = vec![0x04, 0x10];
        content.extend_from_slice(aaguid.as_bytes());
        let mut extension =
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4], content);
        extension.set_criticality(critical);
        params.custom_extensions.push(extension);
    }
    let leaf_der = authority.issue(&params, &leaf_key);

    let credential_key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = credential_key.verifying_key().to_encoded_point(false);
    let cose_key = encode(&Value::Map(vec![
        (Value::from(1), Value::from(2)),
        (Value::from(3), Value::from(-7)),
        (Value::from(-1), Value::from(1)),
        (Value::from(-2), Value::Bytes(point.x().unwrap().to_vec())),
        (Value::from(-3), Value::Bytes(point.y().unwrap().to_vec())),
    ]));
    let credential_id = [0x5a; 32];
    let mut auth_data = Sha256::digest(b"login.microsoft.com").to_vec();
    auth_data.push(0x45); // UP | UV | AT; BE = BS = 0 (device-bound)
    auth_data.extend_from_slice(&0u32.to_be_bytes());
    auth_data.extend_from_slice(AAGUID.as_bytes());
    auth_data.extend_from_slice(&32u16.to_be_bytes());
    auth_data.extend_from_slice(&credential_id);
    auth_data.extend_from_slice(&cose_key);

    let client_data_json = format!(
        r#"{{"type":"webauthn.create","challenge":"{}","origin":"https://login.microsoft.com","crossOrigin":false}}"#,
        b64(CHALLENGE)
    )
    .into_bytes();
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&Sha256::digest(&client_data_json));
    let sig = leaf_key.sign(&signed).unwrap();
    let attestation_object = encode(&Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text("packed".into())),
        (
            Value::Text("attStmt".into()),
            Value::Map(vec![
                (Value::Text("alg".into()), Value::from(-7)),
                (Value::Text("sig".into()), Value::Bytes(sig)),
                (
                    Value::Text("x5c".into()),
                    Value::Array(
                        std::iter::once(leaf_der)
                            .chain(leaf.chain.iter().cloned())
                            .map(Value::Bytes)
                            .collect(),
                    ),
                ),
            ]),
        ),
        (Value::Text("authData".into()), Value::Bytes(auth_data)),
    ]));
    RegistrationResponse {
        credential_id: Some(credential_id.to_vec()),
        client_data_json,
        attestation_object,
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

pub fn today() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
}

pub fn verify_for_entra(
    response: &RegistrationResponse,
    anchors: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<VerifiedRegistration, RegistrationError> {
    let rp = RelyingParty::entra();
    verify_registration(
        response,
        &RegistrationExpectations {
            trust_anchors: anchors,
            ..RegistrationExpectations::new(&rp, CHALLENGE, now)
        },
    )
}

#[test]
fn good_attestation_certificate_verifies_for_entra() {
    let authority = CertificateAuthority::new("keybridge Test Attestation Root");
    let response = packed_registration(&authority, &Leaf::default());
    let verified =
        verify_for_entra(&response, std::slice::from_ref(&authority.der), today()).unwrap();
    assert_eq!(verified.aaguid, AAGUID);
    assert!(verified.flags.user_verified());
    let AttestationType::Basic(chain) = verified.attestation else {
        panic!("expected basic attestation")
    };
    assert_eq!(chain.trust, ChainTrust::Anchored { anchor_index: 0 });
    assert_eq!(chain.aaguid_extension, Some(AAGUID));

    let unverified = verify_for_entra(&response, &[], today()).unwrap();
    let AttestationType::Basic(chain) = unverified.attestation else {
        panic!()
    };
    assert_eq!(chain.trust, ChainTrust::Unverified);
}

#[test]
fn leaf_without_the_attestation_unit_is_refused() {
    let authority = CertificateAuthority::new("root");
    let leaf = Leaf {
        organizational_unit: Some("Engineering"),
        ..Leaf::default()
    };
    let result = verify_for_entra(&packed_registration(&authority, &leaf), &[], today());
    assert!(
        matches!(
            result,
            Err(RegistrationError::AttestationCertificate(
                CertificateError::Subject(_)
            ))
        ),
        "{result:?}"
    );
    let leaf = Leaf {
        organizational_unit: None,
        ..Leaf::default()
    };
    let result = verify_for_entra(&packed_registration(&authority, &leaf), &[], today());
    assert!(matches!(
        result,
        Err(RegistrationError::AttestationCertificate(
            CertificateError::Subject(_)
        ))
    ));
}

#[test]
fn ca_leaf_is_refused() {
    let authority = CertificateAuthority::new("root");
    let leaf = Leaf {
        is_ca: true,
        ..Leaf::default()
    };
    assert_eq!(
        verify_for_entra(&packed_registration(&authority, &leaf), &[], today()),
        Err(RegistrationError::AttestationCertificate(
            CertificateError::LeafIsCa
        ))
    );
}

#[test]
fn aaguid_extension_must_match_and_not_be_critical() {
    let authority = CertificateAuthority::new("root");
    let other = Aaguid([1; 16]);
    let leaf = Leaf {
        aaguid_extension: Some((other, false)),
        ..Leaf::default()
    };
    let result = verify_for_entra(&packed_registration(&authority, &leaf), &[], today());
    assert_eq!(
        result,
        Err(RegistrationError::AaguidMismatch {
            certificate: other,
            authenticator_data: AAGUID
        })
    );
    assert_eq!(result.unwrap_err().code(), "error_attestation_required");
    let leaf = Leaf {
        aaguid_extension: Some((AAGUID, true)),
        ..Leaf::default()
    };
    assert_eq!(
        verify_for_entra(&packed_registration(&authority, &leaf), &[], today()),
        Err(RegistrationError::AttestationCertificate(
            CertificateError::AaguidExtension("must not be critical")
        ))
    );
    let leaf = Leaf {
        aaguid_extension: None,
        ..Leaf::default()
    };
    let verified = verify_for_entra(&packed_registration(&authority, &leaf), &[], today()).unwrap();
    let AttestationType::Basic(chain) = verified.attestation else {
        panic!()
    };
    assert_eq!(chain.aaguid_extension, None);
}

#[test]
fn expired_attestation_certificate_is_refused() {
    let authority = CertificateAuthority::new("root");
    let leaf = Leaf {
        not_after: OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        ..Leaf::default()
    };
    let result = verify_for_entra(
        &packed_registration(&authority, &leaf),
        std::slice::from_ref(&authority.der),
        today(),
    );
    assert!(
        matches!(
            result,
            Err(RegistrationError::UntrustedAttestation(
                CertificateError::OutsideValidity { index: 0, .. }
            ))
        ),
        "{result:?}"
    );
}

#[test]
fn chain_through_an_intermediate_is_anchored_at_the_root() {
    let root = CertificateAuthority::new("root");
    let intermediate = root.intermediate("intermediate", true);
    let leaf = Leaf {
        chain: vec![intermediate.der.clone()],
        ..Leaf::default()
    };
    let response = packed_registration(&intermediate, &leaf);
    let verified = verify_for_entra(&response, std::slice::from_ref(&root.der), today()).unwrap();
    let AttestationType::Basic(chain) = verified.attestation else {
        panic!()
    };
    assert_eq!(chain.certificates.len(), 2);
    assert_eq!(chain.sha1_thumbprints.len(), 2);
    assert_eq!(chain.trust, ChainTrust::Anchored { anchor_index: 0 });

    // The intermediate alone as anchor also closes the path.
    let anchored_at_intermediate =
        verify_for_entra(&response, std::slice::from_ref(&intermediate.der), today()).unwrap();
    assert!(matches!(
        anchored_at_intermediate.attestation,
        AttestationType::Basic(_)
    ));

    // Without the intermediate in x5c, the root cannot be reached.
    let missing = packed_registration(&intermediate, &Leaf::default());
    assert_eq!(
        verify_for_entra(&missing, std::slice::from_ref(&root.der), today()),
        Err(RegistrationError::UntrustedAttestation(
            CertificateError::UntrustedRoot(1)
        ))
    );
}

#[test]
fn issuer_that_is_not_a_ca_breaks_the_chain() {
    let root = CertificateAuthority::new("root");
    let not_a_ca = root.intermediate("not a CA", false);
    let leaf = Leaf {
        chain: vec![not_a_ca.der.clone()],
        ..Leaf::default()
    };
    assert_eq!(
        verify_for_entra(&packed_registration(&not_a_ca, &leaf), &[], today()),
        Err(RegistrationError::UntrustedAttestation(
            CertificateError::IssuerNotCa(1)
        ))
    );
}

#[test]
fn x5c_in_the_wrong_order_is_refused() {
    let root = CertificateAuthority::new("root");
    let intermediate = root.intermediate("intermediate", true);
    // x5c = [leaf, root]: the leaf names the intermediate as issuer, not the root.
    let leaf = Leaf {
        chain: vec![root.der.clone()],
        ..Leaf::default()
    };
    assert_eq!(
        verify_for_entra(&packed_registration(&intermediate, &leaf), &[], today()),
        Err(RegistrationError::UntrustedAttestation(
            CertificateError::NameMismatch(0)
        ))
    );
}
