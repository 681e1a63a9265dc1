//! Loading the W3C vectors and building expectations for them.

use keybridge_webauthn::base64url::{decode_lenient, encode_url};
use keybridge_webauthn::{
    AssertionResponse, CrossOriginPolicy, RegistrationResponse, RelyingParty,
};
use serde::Deserialize;
use time::OffsetDateTime;

/// One vector of `data/w3c-webauthn-l3.json` (see `data/README.md`).
#[derive(Debug, Clone, Deserialize)]
pub struct Vector {
    pub name: String,
    pub rp_id: String,
    pub origin: String,
    pub cross_origin: bool,
    pub top_origin: Option<String>,
    pub challenge: String,
    pub credential_id: String,
    pub aaguid: String,
    pub credential_public_key: String,
    pub registration: Registration,
    pub expected: Expected,
    pub authentication: Authentication,
    pub attestation_ca_cert_der: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registration {
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    #[serde(rename = "attestationObject")]
    pub attestation_object: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub fmt: String,
    pub alg: i64,
    pub attestation_alg: Option<i64>,
    pub x5c: bool,
    #[serde(flatten)]
    pub flags: Flags,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Flags {
    pub user_present: bool,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub sign_count: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Authentication {
    pub challenge: String,
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    #[serde(rename = "authenticatorData")]
    pub authenticator_data: String,
    pub signature: String,
    pub user_handle: Option<String>,
    pub expected: Flags,
}

pub fn vectors() -> Vec<Vector> {
    let text = include_str!("data/w3c-webauthn-l3.json");
    serde_json::from_str(text).expect("the vendored vectors parse")
}

pub fn vector(name: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|vector| vector.name == name)
        .unwrap_or_else(|| panic!("no vector named {name}"))
}

pub fn bytes(text: &str) -> Vec<u8> {
    decode_lenient(text).expect("vector fields are base64url")
}

/// A date inside the validity of every vector certificate (2024 to 3024).
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).expect("a valid timestamp")
}

impl Vector {
    /// The relying party the vector was made for, accepting cross-origin calls only when the
    /// vector is a cross-origin one.
    pub fn relying_party(&self) -> RelyingParty {
        let rp = RelyingParty::new(self.rp_id.clone(), [self.origin.clone()]);
        if self.cross_origin {
            rp.with_cross_origin(CrossOriginPolicy::Allow {
                top_origins: self.top_origin.iter().cloned().collect(),
            })
        } else {
            rp
        }
    }

    pub fn registration_response(&self) -> RegistrationResponse {
        RegistrationResponse {
            credential_id: Some(bytes(&self.credential_id)),
            client_data_json: bytes(&self.registration.client_data_json),
            attestation_object: bytes(&self.registration.attestation_object),
        }
    }

    pub fn assertion_response(&self) -> AssertionResponse {
        AssertionResponse {
            credential_id: bytes(&self.credential_id),
            client_data_json: bytes(&self.authentication.client_data_json),
            authenticator_data: bytes(&self.authentication.authenticator_data),
            signature: bytes(&self.authentication.signature),
            user_handle: self.authentication.user_handle.as_deref().map(bytes),
        }
    }

    pub fn anchors(&self) -> Vec<Vec<u8>> {
        self.attestation_ca_cert_der
            .iter()
            .map(|der| bytes(der))
            .collect()
    }
}

/// Re-encodes bytes the way vectors store them, for building JSON cases.
pub fn b64(bytes: &[u8]) -> String {
    encode_url(bytes)
}
