//! Authenticator data, parsed byte by byte
//! ([WebAuthn §6.1](https://www.w3.org/TR/webauthn-3/#sctn-authenticator-data)).
//!
//! Layout: rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian) ‖ attested credential
//! data when AT is set ‖ extensions (a CBOR map) when ED is set. Nothing may follow.

use ciborium::Value;

use crate::aaguid::Aaguid;
use crate::cbor::{self, CborError};

/// The flags byte of authenticator data, with every bit WebAuthn names
/// ([WebAuthn §6.1, table "flags"](https://www.w3.org/TR/webauthn-3/#authdata-flags)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthenticatorFlags(pub u8);

impl AuthenticatorFlags {
    /// Bit 0, UP: the user was present.
    pub const USER_PRESENT: u8 = 0x01;
    /// Bit 2, UV: the user was verified.
    pub const USER_VERIFIED: u8 = 0x04;
    /// Bit 3, BE: the credential is backup eligible.
    pub const BACKUP_ELIGIBLE: u8 = 0x08;
    /// Bit 4, BS: the credential is currently backed up.
    pub const BACKUP_STATE: u8 = 0x10;
    /// Bit 6, AT: attested credential data follows.
    pub const ATTESTED_CREDENTIAL_DATA: u8 = 0x40;
    /// Bit 7, ED: extension data follows.
    pub const EXTENSION_DATA: u8 = 0x80;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// UP.
    #[must_use]
    pub fn user_present(self) -> bool {
        self.has(Self::USER_PRESENT)
    }
    /// UV.
    #[must_use]
    pub fn user_verified(self) -> bool {
        self.has(Self::USER_VERIFIED)
    }
    /// BE.
    #[must_use]
    pub fn backup_eligible(self) -> bool {
        self.has(Self::BACKUP_ELIGIBLE)
    }
    /// BS.
    #[must_use]
    pub fn backup_state(self) -> bool {
        self.has(Self::BACKUP_STATE)
    }
    /// AT.
    #[must_use]
    pub fn attested_credential_data(self) -> bool {
        self.has(Self::ATTESTED_CREDENTIAL_DATA)
    }
    /// ED.
    #[must_use]
    pub fn extension_data(self) -> bool {
        self.has(Self::EXTENSION_DATA)
    }
}

/// Attested credential data ([WebAuthn §6.5.2](https://www.w3.org/TR/webauthn-3/#sctn-attested-credential-data)).
#[derive(Debug, Clone, PartialEq)]
pub struct AttestedCredentialData {
    /// `aaguid`: the authenticator model.
    pub aaguid: Aaguid,
    /// `credentialId`.
    pub credential_id: Vec<u8>,
    /// `credentialPublicKey`: the COSE_Key bytes as sent, not yet interpreted (see
    /// [`crate::CredentialPublicKey::from_cose`]).
    pub credential_public_key: Vec<u8>,
}

/// Parsed authenticator data. [`AuthenticatorData::parse`] keeps no reference to the input;
/// signatures are checked over the original bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// `rpIdHash`: SHA-256 of the RP id the authenticator scoped the credential to.
    pub rp_id_hash: [u8; 32],
    /// `flags`.
    pub flags: AuthenticatorFlags,
    /// `signCount`.
    pub sign_count: u32,
    /// `attestedCredentialData`, present exactly when AT is set.
    pub attested_credential_data: Option<AttestedCredentialData>,
    /// `extensions`, a CBOR map present exactly when ED is set.
    pub extensions: Option<Value>,
}

/// Why authenticator data could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorDataError {
    /// Fewer than the 37 fixed bytes.
    #[error(
        "authenticator data is {0} bytes long; it needs at least 37 (rpIdHash, flags, signCount)"
    )]
    TooShort(usize),
    /// AT is set but the attested credential data is cut short.
    #[error("attested credential data is truncated: {0}")]
    TruncatedCredentialData(&'static str),
    /// The credential public key is not one CBOR item.
    #[error("credential public key in authenticator data: {0}")]
    CredentialPublicKey(CborError),
    /// The extensions are not a CBOR map.
    #[error("authenticator data extensions: {0}")]
    Extensions(CborError),
    /// The ED flag is set and the extensions are not a map, or missing.
    #[error("the ED flag is set but no extensions map follows")]
    ExtensionsNotAMap,
    /// Bytes follow the last structure the flags announce.
    #[error("{0} unexpected byte(s) at the end of authenticator data (check the AT and ED flags)")]
    TrailingBytes(usize),
}

impl AuthenticatorData {
    /// Parses authenticator data.
    ///
    /// # Errors
    /// [`AuthenticatorDataError`] naming the part that is short, malformed or left over.
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthenticatorDataError> {
        if bytes.len() < 37 {
            return Err(AuthenticatorDataError::TooShort(bytes.len()));
        }
        let (rp_id_hash, rest) = bytes.split_at(32);
        let rp_id_hash: [u8; 32] = rp_id_hash
            .try_into()
            .map_err(|_| AuthenticatorDataError::TooShort(bytes.len()))?;
        let flags = AuthenticatorFlags(rest[0]);
        let sign_count = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let mut rest = &rest[5..];

        let attested_credential_data = if flags.attested_credential_data() {
            let (data, after) = parse_attested_credential_data(rest)?;
            rest = after;
            Some(data)
        } else {
            None
        };

        let extensions = if flags.extension_data() {
            if rest.is_empty() {
                return Err(AuthenticatorDataError::ExtensionsNotAMap);
            }
            let (value, used) =
                cbor::decode_prefix(rest).map_err(AuthenticatorDataError::Extensions)?;
            let Value::Map(entries) = &value else {
                return Err(AuthenticatorDataError::ExtensionsNotAMap);
            };
            cbor::ensure_unique_keys(entries).map_err(AuthenticatorDataError::Extensions)?;
            rest = &rest[used..];
            Some(value)
        } else {
            None
        };

        if !rest.is_empty() {
            return Err(AuthenticatorDataError::TrailingBytes(rest.len()));
        }
        Ok(AuthenticatorData {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential_data,
            extensions,
        })
    }

    /// Identifiers of the authenticator extension outputs present (text keys of the
    /// extensions map, e.g. `credProtect`, `hmac-secret`), in the order sent.
    #[must_use]
    pub fn extension_identifiers(&self) -> Vec<String> {
        match &self.extensions {
            Some(Value::Map(entries)) => entries
                .iter()
                .map(|(key, _)| match key {
                    Value::Text(text) => text.clone(),
                    other => cbor::describe(other),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn parse_attested_credential_data(
    bytes: &[u8],
) -> Result<(AttestedCredentialData, &[u8]), AuthenticatorDataError> {
    if bytes.len() < 18 {
        return Err(AuthenticatorDataError::TruncatedCredentialData(
            "AAGUID and credential id length need 18 bytes",
        ));
    }
    let mut aaguid = [0u8; 16];
    aaguid.copy_from_slice(&bytes[..16]);
    let id_length = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let rest = &bytes[18..];
    if rest.len() < id_length {
        return Err(AuthenticatorDataError::TruncatedCredentialData(
            "credential id is shorter than its length field",
        ));
    }
    let (credential_id, rest) = rest.split_at(id_length);
    if rest.is_empty() {
        return Err(AuthenticatorDataError::TruncatedCredentialData(
            "credential public key is missing",
        ));
    }
    let (_, used) =
        cbor::decode_prefix(rest).map_err(AuthenticatorDataError::CredentialPublicKey)?;
    let (public_key, rest) = rest.split_at(used);
    Ok((
        AttestedCredentialData {
            aaguid: Aaguid(aaguid),
            credential_id: credential_id.to_vec(),
            credential_public_key: public_key.to_vec(),
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8) -> Vec<u8> {
        let mut bytes = vec![0xab; 32];
        bytes.push(flags);
        bytes.extend_from_slice(&[0, 0, 1, 2]);
        bytes
    }

    #[test]
    fn parses_an_assertion_shaped_authenticator_data() {
        let parsed = AuthenticatorData::parse(&header(0x1d)).unwrap();
        assert_eq!(parsed.sign_count, 258);
        assert!(parsed.flags.user_present());
        assert!(parsed.flags.user_verified());
        assert!(parsed.flags.backup_eligible());
        assert!(parsed.flags.backup_state());
        assert!(!parsed.flags.attested_credential_data());
        assert!(parsed.attested_credential_data.is_none());
    }

    #[test]
    fn parses_credential_data_and_extensions() {
        let mut bytes = header(0xc5);
        bytes.extend_from_slice(&[9; 16]);
        bytes.extend_from_slice(&[0, 2, 0xaa, 0xbb]);
        bytes.extend_from_slice(&[0xa1, 0x01, 0x02]); // a stand-in key: {1: 2}
        bytes.extend_from_slice(&[0xa1, 0x6b]); // {"credProtect": 1}
        bytes.extend_from_slice(b"credProtect");
        bytes.push(0x01);
        let parsed = AuthenticatorData::parse(&bytes).unwrap();
        let credential = parsed.attested_credential_data.as_ref().unwrap();
        assert_eq!(credential.aaguid, Aaguid([9; 16]));
        assert_eq!(credential.credential_id, vec![0xaa, 0xbb]);
        assert_eq!(credential.credential_public_key, vec![0xa1, 0x01, 0x02]);
        assert_eq!(
            parsed.extension_identifiers(),
            vec!["credProtect".to_owned()]
        );
    }

    #[test]
    fn refuses_short_truncated_and_trailing_data() {
        assert_eq!(
            AuthenticatorData::parse(&[0; 36]),
            Err(AuthenticatorDataError::TooShort(36))
        );
        let mut trailing = header(0x01);
        trailing.push(0);
        assert_eq!(
            AuthenticatorData::parse(&trailing),
            Err(AuthenticatorDataError::TrailingBytes(1))
        );
        let mut short_id = header(0x41);
        short_id.extend_from_slice(&[0; 16]);
        short_id.extend_from_slice(&[0, 9, 1]);
        assert!(matches!(
            AuthenticatorData::parse(&short_id),
            Err(AuthenticatorDataError::TruncatedCredentialData(_))
        ));
        assert_eq!(
            AuthenticatorData::parse(&header(0x81)),
            Err(AuthenticatorDataError::ExtensionsNotAMap)
        );
        let mut not_a_map = header(0x81);
        not_a_map.push(0x01);
        assert_eq!(
            AuthenticatorData::parse(&not_a_map),
            Err(AuthenticatorDataError::ExtensionsNotAMap)
        );
    }
}
