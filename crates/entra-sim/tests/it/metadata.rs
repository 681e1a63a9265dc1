//! Attestation enforcement with a FIDO MDS3 BLOB signed under a test root (`--mds-blob`,
//! `--mds-root`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use reqwest::Method;
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::common::start_with;
use crate::registration::authenticator;

const AAGUID: &str = "7d1351a6-e097-4852-b8bf-c9ac5c9ce4a3";

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    der: Vec<u8>,
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        params,
        key,
    }
}

fn leaf(issuer: &Ca, aaguid: &str, attestation: bool) -> (String, Vec<u8>, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "Test Vendor");
    dn.push(
        DnType::OrganizationalUnitName,
        if attestation {
            "Authenticator Attestation"
        } else {
            "Metadata"
        },
    );
    dn.push(DnType::CommonName, "Test leaf");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    if attestation {
        let mut content = vec![0x04, 0x10];
        content.extend_from_slice(uuid::Uuid::parse_str(aaguid).expect("aaguid").as_bytes());
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4],
            content,
        )];
    }
    validity(&mut params);
    let issuer = Issuer::from_params(&issuer.params, &issuer.key);
    let cert = params.signed_by(&key, &issuer).expect("signed");
    (cert.pem(), cert.der().to_vec(), key)
}

/// Writes a BLOB listing AAGUID with `attestation_root` as its root, signed under `mds_root`.
fn blob(
    dir: &std::path::Path,
    mds_root: &Ca,
    attestation_root: &Ca,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (_, signer_der, signer_key) = leaf(mds_root, AAGUID, false);
    let payload = json!({
        "legalHeader": "test metadata", "no": 7, "nextUpdate": "2099-01-01",
        "entries": [{
            "aaguid": AAGUID,
            "metadataStatement": {
                "aaguid": AAGUID, "description": "Test Vendor Key", "protocolFamily": "fido2", "schema": 3,
                "attestationTypes": ["basic_full"],
                "attestationRootCertificates": [STANDARD.encode(&attestation_root.der)],
                "authenticatorGetInfo": {"versions": ["FIDO_2_0", "FIDO_2_1"], "extensions": ["credProtect", "hmac-secret"],
                    "aaguid": AAGUID.replace('-', ""), "options": {"rk": true, "up": true, "uv": true, "clientPin": true}}
            },
            "statusReports": [{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2024-01-01"}],
            "timeOfLastStatusChange": "2024-01-01"
        }]
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![STANDARD.encode(&signer_der)]);
    let key = jsonwebtoken::EncodingKey::from_ec_pem(signer_key.serialize_pem().as_bytes())
        .expect("ec key");
    let jws = jsonwebtoken::encode(&header, &payload, &key).expect("sign blob");
    let blob_path = dir.join("blob.jwt");
    let root_path = dir.join("mds-root.pem");
    std::fs::write(&blob_path, jws).expect("write blob");
    std::fs::write(&root_path, &mds_root.pem).expect("write root");
    (blob_path, root_path)
}

async fn options(h: &crate::common::Harness, token: &str, uid: &str) -> Value {
    h.get(
        &format!("/v1.0/users/{uid}/authentication/fido2Methods/creationOptions"),
        token,
    )
    .await
    .2["publicKey"]
        .clone()
}

async fn post(
    h: &crate::common::Harness,
    token: &str,
    uid: &str,
    credential: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    h.graph(
        Method::POST,
        &format!("/v1.0/users/{uid}/authentication/fido2Methods"),
        token,
        Some(json!({"publicKeyCredential": credential})),
    )
    .await
}

#[tokio::test]
async fn enforced_attestation_needs_a_chain_to_the_metadata_root() {
    let files = tempfile::tempdir().expect("dir");
    let mds_root = ca("Test MDS root");
    let attestation_root = ca("Test attestation root");
    let (blob_path, root_path) = blob(files.path(), &mds_root, &attestation_root);
    let h = start_with(5, |c| {
        c.mds_blob = Some(blob_path.clone());
        c.mds_root = Some(root_path.clone());
    })
    .await;
    let token = h.token().await;
    h.control(
        Method::PATCH,
        "/policy",
        Some(json!({"isAttestationEnforced": true})),
    )
    .await;
    let (_, _, users) = h
        .get("/v1.0/users?$select=id,userType&$top=5", &token)
        .await;
    let uid = users["value"]
        .as_array()
        .expect("v")
        .iter()
        .find(|u| u["userType"] == "Member")
        .expect("member")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let (leaf_pem, leaf_der, leaf_key) = leaf(&attestation_root, AAGUID, true);
    // Self attestation is refused while enforced.
    let made = authenticator(json!({"op": "create", "options": options(&h, &token, &uid).await, "fmt": "packed-self", "aaguid": AAGUID})).await;
    let (status, _, body) = post(&h, &token, &uid, made["credential"].clone()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("error_attestation_required")
    );

    // A chain to the metadata root, for the listed AAGUID: attested, with the model.
    let x5c = json!({"key_pem": leaf_key.serialize_pem(), "chain_pem": [leaf_pem]});
    let made = authenticator(json!({"op": "create", "options": options(&h, &token, &uid).await, "fmt": "packed-x5c", "aaguid": AAGUID, "attestation": x5c})).await;
    let (status, _, method) = post(&h, &token, &uid, made["credential"].clone()).await;
    assert_eq!(status, 201, "{method}");
    assert_eq!(method["attestationLevel"], "attested");
    assert_eq!(method["model"], "Test Vendor Key");
    assert_eq!(method["displayName"], "Test Vendor Key");
    assert_eq!(
        method["attestationCertificates"],
        json!([hex::encode(sha1::Sha1::digest(&leaf_der))])
    );

    // A chain to another root is refused.
    let stranger = ca("Stranger root");
    let (other_pem, _, other_key) = leaf(&stranger, AAGUID, true);
    let x5c = json!({"key_pem": other_key.serialize_pem(), "chain_pem": [other_pem]});
    let made = authenticator(json!({"op": "create", "options": options(&h, &token, &uid).await, "fmt": "packed-x5c", "aaguid": AAGUID, "attestation": x5c})).await;
    let (status, _, body) = post(&h, &token, &uid, made["credential"].clone()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("error_attestation_required"),
        "{body}"
    );

    // An AAGUID in authData that differs from the certificate's.
    let (leaf_pem, _, leaf_key) = leaf(&attestation_root, AAGUID, true);
    let x5c = json!({"key_pem": leaf_key.serialize_pem(), "chain_pem": [leaf_pem]});
    let made = authenticator(json!({"op": "create", "options": options(&h, &token, &uid).await, "fmt": "packed-x5c", "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "attestation": x5c})).await;
    let (status, _, body) = post(&h, &token, &uid, made["credential"].clone()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("error_attestation_required"),
        "{body}"
    );
}

#[tokio::test]
async fn a_blob_that_does_not_verify_stops_the_start() {
    let files = tempfile::tempdir().expect("dir");
    let mds_root = ca("Test MDS root");
    let other_root = ca("Other root");
    let (blob_path, _) = blob(files.path(), &mds_root, &other_root);
    let wrong_root = files.path().join("wrong.pem");
    std::fs::write(&wrong_root, &other_root.pem).expect("write");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = keybridge_entra_sim::SimConfig::new(dir.path().to_path_buf());
    config.mds_blob = Some(blob_path);
    config.mds_root = Some(wrong_root);
    let error = keybridge_entra_sim::EntraSim::start(config)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, keybridge_entra_sim::StartError::Metadata { .. }),
        "{error}"
    );
}
