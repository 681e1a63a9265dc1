//! Lenient base64 decoding, as Entra is lenient.
//!
//! WebAuthn's JSON encodes bytes as base64url without padding
//! ([WebAuthn §5.1](https://www.w3.org/TR/webauthn-3/#sctn-credential-json)), but clients
//! that talk to Graph also send padded base64url and standard base64 (see `entra.md` §4.3).
//! [`decode_lenient`] accepts all of these; [`encode_url`] always writes the canonical form.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT_CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT_CONFIG);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT_CONFIG);

/// Why a base64 field could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// The text mixes the base64url (`-`, `_`) and standard (`+`, `/`) alphabets.
    #[error(
        "the value mixes base64url ('-', '_') and standard base64 ('+', '/') characters; send one encoding"
    )]
    MixedAlphabets,
    /// The text is not base64 in either alphabet.
    #[error("the value is neither base64url nor base64: {0}")]
    Invalid(#[from] base64::DecodeError),
}

/// Decodes padded or unpadded base64url, or padded or unpadded standard base64.
///
/// # Errors
/// [`Base64Error`] when the text mixes the two alphabets or is not base64 at all.
pub fn decode_lenient(text: &str) -> Result<Vec<u8>, Base64Error> {
    let url_chars = text.bytes().any(|b| b == b'-' || b == b'_');
    let standard_chars = text.bytes().any(|b| b == b'+' || b == b'/');
    match (url_chars, standard_chars) {
        (true, true) => Err(Base64Error::MixedAlphabets),
        (false, true) => Ok(STANDARD_LENIENT.decode(text)?),
        _ => Ok(URL_LENIENT.decode(text)?),
    }
}

/// Encodes bytes as unpadded base64url, the form WebAuthn and Graph use.
#[must_use]
pub fn encode_url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form_entra_accepts() {
        let bytes = [0xfb, 0xff, 0xfe, 0x01];
        for text in ["-__-AQ", "-__-AQ==", "+//+AQ", "+//+AQ=="] {
            assert_eq!(decode_lenient(text).unwrap(), bytes, "{text}");
        }
        assert_eq!(encode_url(&bytes), "-__-AQ");
    }

    #[test]
    fn refuses_mixed_and_invalid_text() {
        assert_eq!(decode_lenient("-+AA"), Err(Base64Error::MixedAlphabets));
        assert!(matches!(
            decode_lenient("a$b"),
            Err(Base64Error::Invalid(_))
        ));
        assert!(matches!(decode_lenient("A"), Err(Base64Error::Invalid(_))));
    }
}
