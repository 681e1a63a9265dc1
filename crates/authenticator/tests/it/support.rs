//! Shared helpers: options, the Python verifier, stores, and child processes.

use std::path::Path;

use keybridge_authenticator::pki::{
    OrganisationAttestation, OrganisationSettings, generate_organisation,
};
use keybridge_authenticator::{
    Approval, ApprovalRequest, AttestationIdentity, Authenticator, CreationOptions, Declined,
    FileStore, KdfParams, MemoryStore, b64url,
};
use serde_json::{Value, json};

pub const RP_ID: &str = "login.microsoft.com";
pub const ORIGIN: &str = "https://login.microsoft.com";
pub const PIN: &str = "493817";

/// Approves everything with user verification, as the PIN-unlocked CLI does.
pub fn verified(_: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
    Ok(Approval {
        user_verified: true,
    })
}

pub type Approver = fn(&ApprovalRequest<'_>) -> Result<Approval, Declined>;

/// Graph-shaped creation options for `user_name` with a fresh random challenge.
pub fn graph_options(user_name: &str, user_id: &[u8]) -> (Value, String) {
    let challenge = b64url(&rand_bytes(48));
    let options = json!({
        "challengeTimeoutDateTime": "2099-01-01T00:00:00Z",
        "publicKey": {
            "rp": {"id": RP_ID, "name": "Microsoft"},
            "user": {"id": b64url(user_id), "name": user_name, "displayName": user_name},
            "challenge": challenge,
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
            "timeout": 60000,
            "excludeCredentials": [],
            "authenticatorSelection": {"authenticatorAttachment": "cross-platform", "requireResidentKey": true, "userVerification": "required"},
            "attestation": "direct",
            "extensions": {"hmacCreateSecret": true, "enforceCredentialProtectionPolicy": true, "credentialProtectionPolicy": "userVerificationOptional"}
        }
    });
    (options, challenge)
}

pub fn parse_creation(value: &Value) -> CreationOptions {
    CreationOptions::from_json(&value.to_string()).expect("valid creation options")
}

pub fn request_options(challenge: &str, allow: &[&[u8]]) -> Value {
    json!({"publicKey": {
        "challenge": challenge,
        "rpId": RP_ID,
        "allowCredentials": allow.iter().map(|id| json!({"type": "public-key", "id": b64url(id)})).collect::<Vec<_>>(),
        "userVerification": "required"
    }})
}

pub fn rand_bytes(n: usize) -> Vec<u8> {
    use rand_core::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes
}

pub fn organisation() -> OrganisationAttestation {
    generate_organisation(&OrganisationSettings {
        organisation: "Contoso Test".into(),
        country: "DE".into(),
        now: time::OffsetDateTime::now_utc(),
    })
    .expect("attestation material")
}

/// A memory-store authenticator with the organisation's batch identity; returns it with the
/// root PEM.
pub fn memory_phone() -> (Authenticator<MemoryStore, Approver>, String) {
    let identity = organisation().into_identity();
    let root_pem = identity.root_certificate_pem();
    (
        Authenticator::new(
            MemoryStore::with_attestation(identity),
            verified as Approver,
        ),
        root_pem,
    )
}

pub fn create_file_store(dir: &Path, attestation: Option<AttestationIdentity>) -> FileStore {
    FileStore::create(dir, PIN, attestation, KdfParams::insecure_for_tests())
        .expect("store created")
}

/// Runs `tests/interop/authenticator_verify.py COMMAND` with `request` on stdin.
/// Returns Ok(result JSON) or Err(the verifier's complaint).
pub fn verify(command: &str, request: &Value) -> Result<Value, String> {
    let output = keybridge_testkit::interop::run_script(
        "authenticator_verify.py",
        &[command],
        request.to_string().as_bytes(),
    );
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("verifier prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

pub fn verify_ok(command: &str, request: &Value) -> Value {
    verify(command, request).unwrap_or_else(|error| panic!("independent verifier refused: {error}"))
}
