//! The WebAuthn JSON a client posts, read as leniently as Entra reads it
//! ([WebAuthn §5.1 `toJSON()`](https://www.w3.org/TR/webauthn-3/#dom-publickeycredential-tojson),
//! `entra.md` §4.3): `rawId` and `type` may be missing, binary fields may be padded or
//! unpadded base64url or standard base64, `clientDataJSON` may be spelt `clientDataJson`,
//! and `clientExtensionResults`, `authenticatorAttachment` and other members are ignored.

use serde::Deserialize;

use crate::assertion::AssertionResponse;
use crate::base64url::{self, Base64Error};
use crate::registration::RegistrationResponse;

/// A `PublicKeyCredential` in its JSON form, for registration or assertion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyCredentialJson {
    /// `id`: the credential id, base64url.
    pub id: String,
    /// `rawId`: the same bytes; optional.
    #[serde(default)]
    pub raw_id: Option<String>,
    /// `type`: `public-key` when present.
    #[serde(rename = "type", default)]
    pub credential_type: Option<String>,
    /// `response`.
    pub response: AuthenticatorResponseJson,
}

/// `response` of a [`PublicKeyCredentialJson`]: the union of the attestation and assertion
/// response members.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorResponseJson {
    /// `clientDataJSON` (also accepted as `clientDataJson`).
    #[serde(rename = "clientDataJSON", alias = "clientDataJson")]
    pub client_data_json: String,
    /// `attestationObject` (registration).
    #[serde(default)]
    pub attestation_object: Option<String>,
    /// `authenticatorData` (assertion).
    #[serde(default)]
    pub authenticator_data: Option<String>,
    /// `signature` (assertion).
    #[serde(default)]
    pub signature: Option<String>,
    /// `userHandle` (assertion); null or empty means none.
    #[serde(default)]
    pub user_handle: Option<String>,
}

/// Why a JSON credential could not be turned into a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialJsonError {
    /// The JSON does not have the credential's shape.
    #[error("the credential JSON is malformed: {0}")]
    Json(String),
    /// A binary member is not base64.
    #[error("credential member {field}: {source}")]
    Base64 {
        /// The member.
        field: &'static str,
        /// What was wrong.
        source: Base64Error,
    },
    /// A member the ceremony needs is missing.
    #[error("credential member {0} is missing")]
    Missing(&'static str),
    /// `rawId` and `id` differ.
    #[error("credential rawId and id name different credentials")]
    RawIdMismatch,
    /// `type` is not `public-key`.
    #[error("credential type is \"{0}\"; only \"public-key\" is accepted")]
    WrongType(String),
}

impl CredentialJsonError {
    /// A stable identifier for the failure (`error_invalid_request`: the body is malformed).
    #[must_use]
    pub fn code(&self) -> &'static str {
        "error_invalid_request"
    }
}

fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, CredentialJsonError> {
    base64url::decode_lenient(text).map_err(|source| CredentialJsonError::Base64 { field, source })
}

impl PublicKeyCredentialJson {
    /// Parses the JSON text of a credential.
    ///
    /// # Errors
    /// [`CredentialJsonError::Json`] when it is not a credential object.
    pub fn from_json(json: &[u8]) -> Result<Self, CredentialJsonError> {
        serde_json::from_slice(json).map_err(|error| CredentialJsonError::Json(error.to_string()))
    }

    fn credential_id(&self) -> Result<Vec<u8>, CredentialJsonError> {
        if let Some(kind) = &self.credential_type
            && kind != "public-key"
        {
            return Err(CredentialJsonError::WrongType(kind.clone()));
        }
        let id = decode("id", &self.id)?;
        if let Some(raw_id) = &self.raw_id
            && decode("rawId", raw_id)? != id
        {
            return Err(CredentialJsonError::RawIdMismatch);
        }
        Ok(id)
    }

    /// The registration response this JSON carries.
    ///
    /// # Errors
    /// [`CredentialJsonError`] naming the bad or missing member.
    pub fn to_registration(&self) -> Result<RegistrationResponse, CredentialJsonError> {
        let credential_id = self.credential_id()?;
        let attestation_object = self
            .response
            .attestation_object
            .as_deref()
            .ok_or(CredentialJsonError::Missing("response.attestationObject"))?;
        Ok(RegistrationResponse {
            credential_id: Some(credential_id),
            client_data_json: decode("response.clientDataJSON", &self.response.client_data_json)?,
            attestation_object: decode("response.attestationObject", attestation_object)?,
        })
    }

    /// The assertion response this JSON carries.
    ///
    /// # Errors
    /// [`CredentialJsonError`] naming the bad or missing member.
    pub fn to_assertion(&self) -> Result<AssertionResponse, CredentialJsonError> {
        let credential_id = self.credential_id()?;
        let authenticator_data = self
            .response
            .authenticator_data
            .as_deref()
            .ok_or(CredentialJsonError::Missing("response.authenticatorData"))?;
        let signature = self
            .response
            .signature
            .as_deref()
            .ok_or(CredentialJsonError::Missing("response.signature"))?;
        let user_handle = match self.response.user_handle.as_deref() {
            None | Some("") => None,
            Some(text) => Some(decode("response.userHandle", text)?),
        };
        Ok(AssertionResponse {
            credential_id,
            client_data_json: decode("response.clientDataJSON", &self.response.client_data_json)?,
            authenticator_data: decode("response.authenticatorData", authenticator_data)?,
            signature: decode("response.signature", signature)?,
            user_handle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_shapes_entra_accepts() {
        let json = br#"{"id":"AQID","response":{"clientDataJson":"e30=","attestationObject":"oA"},
            "clientExtensionResults":{"credProps":{"rk":true}},"authenticatorAttachment":"cross-platform","@odata.type":"x"}"#;
        let parsed = PublicKeyCredentialJson::from_json(json).unwrap();
        let registration = parsed.to_registration().unwrap();
        assert_eq!(registration.credential_id, Some(vec![1, 2, 3]));
        assert_eq!(registration.client_data_json, b"{}");
        assert_eq!(registration.attestation_object, vec![0xa0]);
    }

    #[test]
    fn refuses_inconsistent_or_incomplete_credentials() {
        let mismatch = br#"{"id":"AQID","rawId":"AQIE","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}"#;
        assert_eq!(
            PublicKeyCredentialJson::from_json(mismatch)
                .unwrap()
                .to_registration(),
            Err(CredentialJsonError::RawIdMismatch)
        );
        let wrong_type = br#"{"id":"AQID","type":"password","response":{"clientDataJSON":"e30","attestationObject":"oA"}}"#;
        assert!(matches!(
            PublicKeyCredentialJson::from_json(wrong_type)
                .unwrap()
                .to_registration(),
            Err(CredentialJsonError::WrongType(_))
        ));
        let no_signature =
            br#"{"id":"AQID","response":{"clientDataJSON":"e30","authenticatorData":"AA"}}"#;
        assert_eq!(
            PublicKeyCredentialJson::from_json(no_signature)
                .unwrap()
                .to_assertion(),
            Err(CredentialJsonError::Missing("response.signature"))
        );
        let bad_base64 =
            br#"{"id":"A$","response":{"clientDataJSON":"e30","attestationObject":"oA"}}"#;
        assert!(matches!(
            PublicKeyCredentialJson::from_json(bad_base64)
                .unwrap()
                .to_registration(),
            Err(CredentialJsonError::Base64 { field: "id", .. })
        ));
        assert!(PublicKeyCredentialJson::from_json(b"{}").is_err());
    }
}
