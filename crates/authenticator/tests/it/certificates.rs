//! The attestation certificates' fields, read with x509-parser (FIDO packed rules, WebAuthn
//! L3 §8.2.1; reference/entra.md §4.5).

use keybridge_authenticator::AAGUID;
use keybridge_authenticator::pki::AAGUID_EXTENSION_OID;
use x509_parser::prelude::*;

use crate::support::organisation;

/// ECDSA P-256 SHA-256 signature check of `cert` under `issuer`'s key, with p256.
fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let Ok(key) =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&issuer.public_key().subject_public_key.data)
    else {
        return false;
    };
    let Ok(signature) = p256::ecdsa::Signature::from_der(&cert.signature_value.data) else {
        return false;
    };
    key.verify(cert.tbs_certificate.as_ref(), &signature)
        .is_ok()
}

fn oid_is(oid: &x509_parser::der_parser::oid::Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter()
        .is_some_and(|mut it| it.by_ref().eq(arcs.iter().copied()))
}

fn attribute(name: &X509Name<'_>, oid: &x509_parser::der_parser::oid::Oid<'_>) -> Vec<String> {
    name.iter_by_oid(oid)
        .map(|a| a.as_str().expect("string attribute").to_owned())
        .collect()
}

#[test]
fn batch_certificate_meets_the_packed_attestation_rules() {
    let material = organisation();
    let (_, batch) = X509Certificate::from_der(&material.batch_certificate).expect("batch DER");
    let (_, root) = X509Certificate::from_der(&material.root_certificate).expect("root DER");

    assert_eq!(batch.version(), X509Version::V3);
    let subject = batch.subject();
    assert_eq!(
        attribute(subject, &x509_parser::oid_registry::OID_X509_COUNTRY_NAME),
        ["DE"]
    );
    assert_eq!(
        attribute(
            subject,
            &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME
        ),
        ["Contoso Test"]
    );
    assert_eq!(
        attribute(
            subject,
            &x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT
        ),
        ["Authenticator Attestation"]
    );
    assert_eq!(
        attribute(subject, &x509_parser::oid_registry::OID_X509_COMMON_NAME).len(),
        1
    );

    let constraints = batch
        .basic_constraints()
        .expect("parses")
        .expect("basicConstraints present");
    assert!(
        !constraints.value.ca,
        "the batch certificate must not be a CA"
    );

    let aaguid = batch
        .extensions()
        .iter()
        .find(|e| oid_is(&e.oid, AAGUID_EXTENSION_OID))
        .expect("AAGUID extension present");
    assert!(
        !aaguid.critical,
        "the AAGUID extension must not be critical"
    );
    let mut expected = vec![0x04, 0x10];
    expected.extend_from_slice(&AAGUID);
    assert_eq!(
        aaguid.value,
        expected.as_slice(),
        "DER OCTET STRING of the 16 AAGUID bytes"
    );

    let key_usage = batch
        .key_usage()
        .expect("parses")
        .expect("keyUsage present");
    assert!(key_usage.value.digital_signature());
    assert!(!key_usage.value.key_cert_sign());

    // Issued by the root, with explicit (not year 4096) validity inside the root's.
    assert_eq!(batch.issuer(), root.subject());
    let batch_years = (batch.validity().not_after.timestamp()
        - batch.validity().not_before.timestamp())
        / (365 * 86400);
    assert!((14..=16).contains(&batch_years), "{batch_years} years");
    assert!(batch.validity().not_after <= root.validity().not_after);
    assert!(batch.validity().is_valid());
    assert_eq!(
        batch.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    assert_eq!(
        batch.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );
    assert!(
        signed_by(&batch, &root),
        "root signed the batch certificate"
    );
    assert!(!signed_by(&batch, &batch), "and nothing else did");
}

#[test]
fn roots_are_p256_cas_with_key_cert_sign_and_the_mds_root_is_separate() {
    let material = organisation();
    let (_, root) = X509Certificate::from_der(&material.root_certificate).expect("root");
    let (_, mds_root) =
        X509Certificate::from_der(&material.mds_root_certificate).expect("mds root");
    for cert in [&root, &mds_root] {
        let constraints = cert.basic_constraints().expect("parses").expect("present");
        assert!(constraints.value.ca);
        assert!(
            cert.key_usage()
                .expect("parses")
                .expect("present")
                .value
                .key_cert_sign()
        );
        assert_eq!(cert.issuer(), cert.subject(), "self-signed");
        assert!(signed_by(cert, cert), "self-signature verifies");
        assert!(cert.validity().is_valid());
        assert!(
            cert.validity().not_after.timestamp()
                < ::time::OffsetDateTime::now_utc().unix_timestamp() + 21 * 365 * 86400
        );
    }
    assert_ne!(root.subject(), mds_root.subject());
    assert_ne!(root.public_key().raw, mds_root.public_key().raw);
}
