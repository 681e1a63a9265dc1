//! Agreement with independent verifiers from PyPI: py_webauthn 3.0.1 for whole ceremonies and
//! python-fido2 2.2.1 for `packed` attestation statements, through
//! `tests/interop/webauthn_verify.py`. Every case (W3C vectors, their mutations, generated
//! attestations) goes to both sides as the same WebAuthn JSON; the verdicts must agree except
//! for the disagreements listed in [`INTENDED_DISAGREEMENTS`], each with its reason.
//!
//! python-fido2's verdict covers only the `packed` attestation statement, so it is compared
//! only on cases whose outcome the statement decides (`statement_decides`): unmodified
//! registrations with a supported credential key, changed attestation signatures, algorithms
//! and roots, and the generated attestation certificates. A changed challenge, say, leaves the
//! statement valid, and fido2 rightly says so.

use std::io::Write as _;
use std::process::{Command, Stdio};

use ciborium::Value;
use keybridge_webauthn::{
    AssertionExpectations, CredentialPublicKey, CrossOriginPolicy, PublicKeyCredentialJson,
    RegistrationExpectations, RelyingParty, StoredCredential, verify_assertion,
    verify_registration,
};
use serde_json::json;

use crate::generated::{CHALLENGE, CertificateAuthority, Leaf, packed_registration};
use crate::support::{Vector, b64, bytes, now, vectors};

/// Cases where keybridge-webauthn and an independent verifier are meant to differ:
/// (case name, verifier, keybridge accepts, the other accepts, why).
const INTENDED_DISAGREEMENTS: &[(&str, &str, bool, bool, &str)] = &[
    (
        "none.ES256.crossOrigin/cross-origin-refused",
        "webauthn",
        false,
        true,
        "py_webauthn does not look at crossOrigin; keybridge refuses it unless the relying party allows iframes (Entra does not)",
    ),
    (
        "generated/organizational-unit-wrong",
        "webauthn",
        false,
        true,
        "py_webauthn does not check the attestation certificate requirements of WebAuthn §8.2.1 (python-fido2 and keybridge do)",
    ),
    (
        "generated/leaf-is-ca",
        "webauthn",
        false,
        true,
        "py_webauthn does not check basicConstraints of the attestation certificate (python-fido2 and keybridge do)",
    ),
    (
        "generated/aaguid-extension-mismatch",
        "webauthn",
        false,
        true,
        "py_webauthn does not compare the certificate's AAGUID extension with authData (python-fido2 and keybridge do)",
    ),
];

/// One case as both sides see it.
struct Case {
    name: String,
    kind: &'static str,
    rp: RelyingParty,
    challenge: Vec<u8>,
    require_user_verification: bool,
    root_certs: Vec<Vec<u8>>,
    credential: serde_json::Value,
    /// Assertions: the registered key, counter and BE.
    stored: Option<(Vec<u8>, u32, bool)>,
    /// Whether the `packed` attestation statement alone decides the outcome.
    statement_decides: bool,
}

impl Case {
    fn to_json(&self) -> serde_json::Value {
        let mut value = json!({
            "name": self.name,
            "kind": self.kind,
            "rp_id": self.rp.id(),
            "origins": self.rp.origins(),
            "challenge": b64(&self.challenge),
            "require_user_verification": self.require_user_verification,
            "root_certs": self.root_certs.iter().map(|der| b64(der)).collect::<Vec<_>>(),
            "credential": self.credential,
        });
        if let Some((key, count, _)) = &self.stored {
            value["credential_public_key"] = json!(b64(key));
            value["sign_count"] = json!(count);
        }
        value
    }

    /// keybridge-webauthn's verdict, from the same JSON the other side reads.
    fn keybridge_accepts(&self) -> Result<(), String> {
        let credential = PublicKeyCredentialJson::from_json(self.credential.to_string().as_bytes())
            .map_err(|error| error.to_string())?;
        match &self.stored {
            None => {
                let response = credential.to_registration().map_err(|e| e.to_string())?;
                verify_registration(
                    &response,
                    &RegistrationExpectations {
                        require_user_verification: self.require_user_verification,
                        trust_anchors: &self.root_certs,
                        ..RegistrationExpectations::new(&self.rp, &self.challenge, now())
                    },
                )
                .map(drop)
                .map_err(|error| format!("{}: {error}", error.code()))
            }
            Some((key, count, backup_eligible)) => {
                let response = credential.to_assertion().map_err(|e| e.to_string())?;
                let public_key = CredentialPublicKey::from_cose(key).map_err(|e| e.to_string())?;
                verify_assertion(
                    &response,
                    &StoredCredential {
                        credential_id: &response.credential_id,
                        public_key: &public_key,
                        sign_count: *count,
                        backup_eligible: *backup_eligible,
                        user_handle: None,
                    },
                    &AssertionExpectations {
                        relying_party: &self.rp,
                        challenge: &self.challenge,
                        require_user_verification: self.require_user_verification,
                    },
                )
                .map(drop)
                .map_err(|error| format!("{}: {error}", error.code()))
            }
        }
    }
}

fn registration_json(
    credential_id: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> serde_json::Value {
    json!({
        "id": b64(credential_id), "rawId": b64(credential_id), "type": "public-key",
        "response": {"clientDataJSON": b64(client_data_json), "attestationObject": b64(attestation_object)},
        "clientExtensionResults": {}
    })
}

fn registration_case(vector: &Vector, suffix: &str) -> Case {
    let response = vector.registration_response();
    Case {
        name: format!("{}{suffix}", vector.name),
        kind: "registration",
        rp: vector.relying_party(),
        challenge: bytes(&vector.challenge),
        require_user_verification: false,
        root_certs: vector.anchors(),
        credential: registration_json(
            &bytes(&vector.credential_id),
            &response.client_data_json,
            &response.attestation_object,
        ),
        stored: None,
        statement_decides: suffix.is_empty()
            && CredentialPublicKey::from_cose(&bytes(&vector.credential_public_key)).is_ok(),
    }
}

fn assertion_case(vector: &Vector, suffix: &str) -> Case {
    let response = vector.assertion_response();
    Case {
        name: format!("{}/assertion{suffix}", vector.name),
        kind: "assertion",
        rp: vector.relying_party(),
        challenge: bytes(&vector.authentication.challenge),
        require_user_verification: false,
        root_certs: Vec::new(),
        credential: json!({
            "id": b64(&response.credential_id), "rawId": b64(&response.credential_id), "type": "public-key",
            "response": {"clientDataJSON": b64(&response.client_data_json),
                         "authenticatorData": b64(&response.authenticator_data),
                         "signature": b64(&response.signature), "userHandle": null},
            "clientExtensionResults": {}
        }),
        stored: Some((
            bytes(&vector.credential_public_key),
            0,
            vector.expected.flags.backup_eligible,
        )),
        statement_decides: false,
    }
}

/// Rewrites the attestation object of a registration case.
fn rewrite_attestation(case: &mut Case, change: impl FnOnce(&mut Vec<(Value, Value)>)) {
    let text = case.credential["response"]["attestationObject"]
        .as_str()
        .unwrap();
    let Value::Map(mut entries) = ciborium::de::from_reader::<Value, _>(&bytes(text)[..]).unwrap()
    else {
        panic!("attestation object is a map")
    };
    change(&mut entries);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
    case.credential["response"]["attestationObject"] = json!(b64(&out));
}

fn member<'a>(entries: &'a mut [(Value, Value)], key: &str) -> &'a mut Value {
    entries
        .iter_mut()
        .find(|(k, _)| *k == Value::Text(key.into()))
        .map(|(_, v)| v)
        .unwrap()
}

fn set_b64(case: &mut Case, field: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let mut value = bytes(case.credential["response"][field].as_str().unwrap());
    change(&mut value);
    case.credential["response"][field] = json!(b64(&value));
}

fn cases() -> Vec<Case> {
    let all = vectors();
    let find = |name: &str| all.iter().find(|v| v.name == name).unwrap().clone();
    let mut cases = Vec::new();

    for vector in &all {
        cases.push(registration_case(vector, ""));
        let key = bytes(&vector.credential_public_key);
        if CredentialPublicKey::from_cose(&key).is_ok() {
            cases.push(assertion_case(vector, ""));
        }
    }

    // Registration mutations.
    for name in ["none.ES256", "packed.ES256", "packed.RS256"] {
        let vector = find(name);
        let mut case = registration_case(&vector, "/changed-challenge");
        case.challenge = bytes(&vector.authentication.challenge);
        cases.push(case);
        let mut case = registration_case(&vector, "/other-origin");
        case.rp = RelyingParty::new(vector.rp_id.clone(), ["https://evil.example"]);
        cases.push(case);
        let mut case = registration_case(&vector, "/other-rp-id");
        case.rp = RelyingParty::new("example.com", [vector.origin.clone()]);
        cases.push(case);
    }
    let mut case = registration_case(&find("none.ES256"), "/user-verification-required");
    case.require_user_verification = true;
    cases.push(case);
    for name in ["packed.ES256", "packed-self.ES256", "packed.RS256"] {
        let mut case = registration_case(&find(name), "/flipped-attestation-signature");
        rewrite_attestation(&mut case, |entries| {
            let Value::Map(statement) = member(entries, "attStmt") else {
                panic!()
            };
            let Value::Bytes(sig) = member(statement, "sig") else {
                panic!()
            };
            let last = sig.len() - 1;
            sig[last] ^= 0x01;
        });
        case.statement_decides = true;
        cases.push(case);
    }
    let mut case = registration_case(&find("packed.ES256"), "/unrelated-root");
    case.root_certs = vec![crate::generated::unrelated_root_der()];
    case.statement_decides = true;
    cases.push(case);
    let mut case = registration_case(&find("packed.ES256"), "/truncated");
    set_b64(&mut case, "attestationObject", |object| {
        object.truncate(object.len() / 2)
    });
    cases.push(case);
    let mut case = registration_case(&find("packed-self.ES256"), "/alg-mismatch");
    rewrite_attestation(&mut case, |entries| {
        let Value::Map(statement) = member(entries, "attStmt") else {
            panic!()
        };
        *member(statement, "alg") = Value::from(-257);
    });
    case.statement_decides = true;
    cases.push(case);
    for (suffix, flip) in [("/up-clear", 0x01u8), ("/bs-without-be", 0x08)] {
        let mut case = registration_case(&find("none.ES256"), suffix);
        rewrite_attestation(&mut case, |entries| {
            let Value::Bytes(auth_data) = member(entries, "authData") else {
                panic!()
            };
            auth_data[32] &= !flip;
        });
        cases.push(case);
    }
    let mut case = registration_case(&find("none.ES256"), "/auth-data-trailing-bytes");
    rewrite_attestation(&mut case, |entries| {
        let Value::Bytes(auth_data) = member(entries, "authData") else {
            panic!()
        };
        auth_data.extend_from_slice(&[0, 0]);
    });
    cases.push(case);
    let mut case = registration_case(&find("none.ES256.crossOrigin"), "/cross-origin-refused");
    case.rp = RelyingParty::new("example.org", ["https://example.org"]);
    cases.push(case);
    let mut case = registration_case(&find("none.ES256.crossOrigin"), "/cross-origin-allowed");
    case.rp = case.rp.with_cross_origin(CrossOriginPolicy::Allow {
        top_origins: vec![],
    });
    cases.push(case);

    // Generated packed attestations for Entra's relying party.
    let authority = CertificateAuthority::new("keybridge Test Attestation Root");
    let generated = [
        ("generated/good", Leaf::default()),
        (
            "generated/organizational-unit-wrong",
            Leaf {
                organizational_unit: Some("Engineering"),
                ..Leaf::default()
            },
        ),
        (
            "generated/leaf-is-ca",
            Leaf {
                is_ca: true,
                ..Leaf::default()
            },
        ),
        (
            "generated/aaguid-extension-mismatch",
            Leaf {
                aaguid_extension: Some((keybridge_webauthn::Aaguid([3; 16]), false)),
                ..Leaf::default()
            },
        ),
    ];
    for (name, leaf) in generated {
        let response = packed_registration(&authority, &leaf);
        cases.push(Case {
            name: name.into(),
            kind: "registration",
            rp: RelyingParty::entra(),
            challenge: CHALLENGE.to_vec(),
            require_user_verification: true,
            root_certs: vec![authority.der.clone()],
            credential: registration_json(
                response.credential_id.as_deref().unwrap(),
                &response.client_data_json,
                &response.attestation_object,
            ),
            stored: None,
            statement_decides: true,
        });
    }

    // Assertion mutations.
    for name in ["packed.ES256", "packed.RS256", "none.ES256"] {
        let vector = find(name);
        let mut case = assertion_case(&vector, "/flipped-signature");
        set_b64(&mut case, "signature", |signature| signature[12] ^= 0x10);
        cases.push(case);
        let mut case = assertion_case(&vector, "/changed-challenge");
        case.challenge = bytes(&vector.challenge);
        cases.push(case);
        let mut case = assertion_case(&vector, "/other-origin");
        case.rp = RelyingParty::new(vector.rp_id.clone(), ["https://evil.example"]);
        cases.push(case);
        let mut case = assertion_case(&vector, "/other-rp-id");
        case.rp = RelyingParty::new("example.net", [vector.origin.clone()]);
        cases.push(case);
        let mut case = assertion_case(&vector, "/counter-not-increasing");
        if let Some((_, count, _)) = &mut case.stored {
            *count = 5;
        }
        cases.push(case);
        let mut case = assertion_case(&vector, "/auth-data-trailing-bytes");
        set_b64(&mut case, "authenticatorData", |data| data.push(0));
        cases.push(case);
    }
    let mut case = assertion_case(&find("packed-self.ES256"), "/user-verification-required");
    case.require_user_verification = true;
    cases.push(case);
    cases
}

#[test]
fn keybridge_agrees_with_py_webauthn_and_python_fido2() {
    let cases = cases();
    let script = keybridge_testkit::interop::script("webauthn_verify.py");
    let input = json!({"cases": cases.iter().map(Case::to_json).collect::<Vec<_>>()}).to_string();
    let mut child = Command::new(keybridge_testkit::interop::python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the interop Python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdicts.len(), cases.len());

    let mut report = Vec::new();
    let mut unexpected = Vec::new();
    let mut compared = 0;
    for (case, verdict) in cases.iter().zip(&verdicts) {
        assert_eq!(verdict["name"], case.name.as_str());
        let ours = case.keybridge_accepts();
        for verifier in ["webauthn", "fido2"] {
            let theirs = &verdict[verifier];
            if theirs.is_null() || (verifier == "fido2" && !case.statement_decides) {
                continue;
            }
            compared += 1;
            let their_accept = theirs["accepted"].as_bool().unwrap();
            let intended = INTENDED_DISAGREEMENTS
                .iter()
                .find(|(name, who, ..)| *name == case.name && *who == verifier);
            let line = format!(
                "{:<55} {:<8} keybridge={:<60} {verifier}={}",
                case.name,
                verifier,
                match &ours {
                    Ok(()) => "accept".to_owned(),
                    Err(e) => format!("reject ({})", e.chars().take(48).collect::<String>()),
                },
                if their_accept {
                    "accept".to_owned()
                } else {
                    format!(
                        "reject ({})",
                        theirs["reason"]
                            .as_str()
                            .unwrap_or("")
                            .chars()
                            .take(70)
                            .collect::<String>()
                    )
                },
            );
            report.push(line.clone());
            let agrees = match intended {
                Some((_, _, ours_expected, theirs_expected, _)) => {
                    ours.is_ok() == *ours_expected && their_accept == *theirs_expected
                }
                None => ours.is_ok() == their_accept,
            };
            if !agrees {
                let prefix = if intended.is_some() {
                    "listed disagreement no longer holds: "
                } else {
                    ""
                };
                unexpected.push(format!("{prefix}{line}"));
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(compared > 80, "only {compared} verdicts compared");
    assert!(
        unexpected.is_empty(),
        "verdicts differ:\n{}",
        unexpected.join("\n")
    );
    // The intended disagreements must all have been exercised.
    for (name, ..) in INTENDED_DISAGREEMENTS {
        assert!(
            cases.iter().any(|case| case.name == *name),
            "no case {name}"
        );
    }
}

/// MDS3 BLOBs signed here: keybridge's [`MetadataBlob::verify`] and python-fido2's BLOB check
/// must agree on every one. (python-fido2 checks neither validity dates nor `no`, so the
/// cases stay inside validity and pass no previous number.)
#[test]
fn mds_blob_verdicts_agree_with_python_fido2() {
    use crate::mds::{MdsSigner, payload};
    use keybridge_webauthn::mds::MetadataBlob;

    let attestation_root = CertificateAuthority::new("attestation root");
    let mut blobs: Vec<(String, String, Vec<u8>)> = Vec::new();
    for (name, signer) in [
        ("es256", MdsSigner::new("ES256")),
        ("rs256", MdsSigner::new("RS256")),
        ("es256-intermediate", MdsSigner::with_intermediate("ES256")),
        ("rs256-intermediate", MdsSigner::with_intermediate("RS256")),
    ] {
        let blob = signer.sign(&payload(17, &attestation_root.der));
        blobs.push((
            format!("{name}/good"),
            blob.clone(),
            signer.root.der.clone(),
        ));
        let other_root = CertificateAuthority::new("keybridge Test MDS Root");
        blobs.push((
            format!("{name}/other-root-same-name"),
            blob.clone(),
            other_root.der,
        ));
        let mut parts: Vec<String> = blob.split('.').map(str::to_owned).collect();
        parts[1] = b64(payload(18, &attestation_root.der).to_string().as_bytes());
        blobs.push((
            format!("{name}/payload-changed"),
            parts.join("."),
            signer.root.der.clone(),
        ));
        let mut parts: Vec<String> = blob.split('.').map(str::to_owned).collect();
        let mut signature = bytes(&parts[2]);
        signature[5] ^= 0x01;
        parts[2] = b64(&signature);
        blobs.push((
            format!("{name}/signature-flipped"),
            parts.join("."),
            signer.root.der.clone(),
        ));
    }
    let input = json!({"cases": blobs.iter().map(|(name, blob, root)| json!({
        "name": name, "kind": "mds_blob", "blob": blob, "root": b64(root),
    })).collect::<Vec<_>>()});
    let script = keybridge_testkit::interop::script("webauthn_verify.py");
    let mut child = Command::new(keybridge_testkit::interop::python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the interop Python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdicts.len(), blobs.len());

    let mut accepted = 0;
    for ((name, blob, root), verdict) in blobs.iter().zip(&verdicts) {
        let ours = MetadataBlob::verify(blob, root, None, crate::generated::today());
        let theirs = &verdict["fido2"];
        assert_eq!(
            ours.is_ok(),
            theirs["accepted"].as_bool().unwrap(),
            "{name}: keybridge {:?}, python-fido2 {theirs}",
            ours.as_ref().err()
        );
        if let Ok(blob) = ours {
            accepted += 1;
            assert_eq!(json!(blob.serial_number()), theirs["value"], "{name}");
        }
        assert_eq!(
            name.ends_with("/good"),
            verdict["fido2"]["accepted"] == json!(true),
            "{name}"
        );
    }
    assert_eq!(accepted, 4);
}
