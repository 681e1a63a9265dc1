//! The client data a browser or platform collected for a ceremony
//! ([WebAuthn §5.8.1](https://www.w3.org/TR/webauthn-3/#dictdef-collectedclientdata)).

use serde::Deserialize;

/// `CollectedClientData`, decoded from the exact `clientDataJSON` bytes the client sent
/// (the verifier hashes those bytes, never a re-encoding).
///
/// Unknown members (such as the spec's `extraData` example or `tokenBinding`) are ignored,
/// as [WebAuthn §5.8.1.2](https://www.w3.org/TR/webauthn-3/#clientdatajson-verification) requires.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CollectedClientData {
    /// `type`: `webauthn.create` for registration, `webauthn.get` for assertion.
    #[serde(rename = "type")]
    pub ceremony_type: String,
    /// `challenge`: the relying party's challenge, base64url without padding.
    pub challenge: String,
    /// `origin`: the fully qualified origin of the requester.
    pub origin: String,
    /// `crossOrigin`: true when the call came from an iframe not same-origin with its ancestors.
    #[serde(rename = "crossOrigin", default)]
    pub cross_origin: Option<bool>,
    /// `topOrigin`: the top-level origin, present only for cross-origin calls.
    #[serde(rename = "topOrigin", default)]
    pub top_origin: Option<String>,
}

/// `clientDataJSON` is not the JSON object WebAuthn defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("clientDataJSON is not a valid CollectedClientData object: {0}")]
pub struct ClientDataError(pub String);

impl CollectedClientData {
    /// Parses `clientDataJSON` (UTF-8 JSON).
    ///
    /// # Errors
    /// [`ClientDataError`] when the bytes are not JSON, a member is missing or has the wrong
    /// type, or a member appears twice.
    pub fn parse(client_data_json: &[u8]) -> Result<Self, ClientDataError> {
        serde_json::from_slice(client_data_json).map_err(|error| ClientDataError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_and_ignores_unknown_ones() {
        let parsed = CollectedClientData::parse(
            br#"{"type":"webauthn.get","challenge":"AQ","origin":"https://a.example","crossOrigin":true,"topOrigin":"https://b.example","extraData":1}"#,
        )
        .unwrap();
        assert_eq!(parsed.ceremony_type, "webauthn.get");
        assert_eq!(parsed.cross_origin, Some(true));
        assert_eq!(parsed.top_origin.as_deref(), Some("https://b.example"));
    }

    #[test]
    fn refuses_missing_duplicate_and_mistyped_members() {
        for bad in [
            &br#"{"type":"webauthn.get","origin":"https://a.example"}"#[..],
            br#"{"type":"webauthn.get","type":"webauthn.create","challenge":"AQ","origin":"o"}"#,
            br#"{"type":"webauthn.get","challenge":"AQ","origin":"o","crossOrigin":"yes"}"#,
            b"not json",
        ] {
            assert!(CollectedClientData::parse(bad).is_err());
        }
    }
}
