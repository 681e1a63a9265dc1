//! The authenticator's model identifier.

use std::fmt;
use std::str::FromStr;

/// An AAGUID: the 128-bit identifier of an authenticator model
/// ([WebAuthn §6.5.1](https://www.w3.org/TR/webauthn-3/#aaguid)).
///
/// Displayed as a lowercase hyphenated GUID, the form Graph returns in `aaGuid`; parsed
/// case-insensitively with or without hyphens (FIDO metadata writes both forms).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aaguid(pub [u8; 16]);

impl Aaguid {
    /// The all-zero AAGUID that authenticators send when they do not identify their model.
    pub const ZERO: Aaguid = Aaguid([0; 16]);

    /// Whether this is the all-zero AAGUID.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The 16 raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Aaguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_bytes(self.0).hyphenated().fmt(f)
    }
}

impl fmt::Debug for Aaguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aaguid({self})")
    }
}

/// The text given as an AAGUID is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an AAGUID; write 32 hexadecimal digits, with or without hyphens")]
pub struct AaguidParseError(pub String);

impl FromStr for Aaguid {
    type Err = AaguidParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let simple_or_hyphenated = trimmed.len() == 32 || trimmed.len() == 36;
        match uuid::Uuid::try_parse(trimmed) {
            Ok(parsed) if simple_or_hyphenated => Ok(Aaguid(parsed.into_bytes())),
            _ => Err(AaguidParseError(text.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_text_forms() {
        let hyphenated: Aaguid = "8446CCB9-AB1D-B374-750B-2367FF6F3A1F".parse().unwrap();
        let simple: Aaguid = "8446ccb9ab1db374750b2367ff6f3a1f".parse().unwrap();
        assert_eq!(hyphenated, simple);
        assert_eq!(
            hyphenated.to_string(),
            "8446ccb9-ab1d-b374-750b-2367ff6f3a1f"
        );
        assert!(Aaguid::ZERO.is_zero());
        assert!(
            "{8446ccb9-ab1d-b374-750b-2367ff6f3a1f}"
                .parse::<Aaguid>()
                .is_err()
        );
        assert!("not-a-guid".parse::<Aaguid>().is_err());
    }
}
