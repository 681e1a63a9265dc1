//! OData details: `$filter` literals, query-string encoding, FIDO2 method ids.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// A `$filter` string literal: single-quoted, with every `'` doubled
/// (`O'Brien` → `'O''Brien'`).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Encodes query parameters for Graph: spaces as `%20` (never `+`, which OData would read
/// literally), reserved characters percent-encoded, and `$ , ' ( ) :` kept readable.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.' | b'_' | b'~' | b'$' | b',' | b'\'' | b'(' | b')' | b':' | b'@' | b'/'
            );
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The id Entra gives the FIDO2 method of a credential (entra.md §4.7): base64url of the
/// credential id without padding, followed by one digit, the number of `=` removed.
pub fn fido2_method_id(credential_id: &[u8]) -> String {
    let padded = URL_SAFE.encode(credential_id);
    let unpadded = padded.trim_end_matches('=');
    let removed = padded.len() - unpadded.len();
    format!("{unpadded}{removed}")
}

/// Decodes a credential id as Entra and browsers may write it: base64url or standard base64,
/// padded or not, or the padding-digit form of [`fido2_method_id`].
pub fn decode_credential_id(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    // The digit form: the body's length plus the removed padding is a multiple of 4.
    if let Some(digit) = text
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .filter(|d| *d <= 2)
        && let Some(body) = text.get(..text.len() - 1)
        && (body.len() + digit as usize).is_multiple_of(4)
        && let Ok(bytes) = URL_SAFE_NO_PAD.decode(body)
    {
        return Some(bytes);
    }
    let unpadded = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(unpadded)
        .ok()
        .or_else(|| STANDARD_NO_PAD.decode(unpadded).ok())
        .or_else(|| STANDARD.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals_double_single_quotes() {
        assert_eq!(
            quote_literal("Acme (Eligible for Pairing)"),
            "'Acme (Eligible for Pairing)'"
        );
        assert_eq!(quote_literal("O'Brien's group"), "'O''Brien''s group'");
        assert_eq!(quote_literal("''"), "''''''");
        assert_eq!(quote_literal(""), "''");
    }

    #[test]
    fn query_encoding_keeps_odata_readable_and_spaces_as_percent_20() {
        let filter = format!("displayName eq {}", quote_literal("R&D + Ops #1"));
        let query = encode_query(&[("$filter", &filter), ("$select", "id,displayName")]);
        assert_eq!(
            query,
            "$filter=displayName%20eq%20'R%26D%20%2B%20Ops%20%231'&$select=id,displayName"
        );
        // Any standard decoder gets the original back.
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(decoded[0].1, "displayName eq 'R&D + Ops #1'");
        assert_eq!(encode_query(&[("q", "é")]), "q=%C3%A9");
    }

    #[test]
    fn method_ids_carry_the_number_of_padding_characters() {
        // 32 bytes → 44 padded characters, one '=' → 43 + "1".
        let id32 = fido2_method_id(&[0xAB; 32]);
        assert_eq!(id32.len(), 44);
        assert!(id32.ends_with('1'));
        // 16 bytes → 24 padded characters, two '=' → 22 + "2".
        let id16 = fido2_method_id(&[0x01; 16]);
        assert_eq!(id16, "AQEBAQEBAQEBAQEBAQEBAQ2");
        // 48 bytes → no padding → 64 + "0".
        assert!(fido2_method_id(&[0xFF; 48]).ends_with("__0"));
        // The example id of entra.md §4.7 decodes to 32 bytes and encodes back the same.
        let example = "Xd-q6r1BdYMX35ikRUkK66uS9jF7ZWEnfG9dJWBJMko1";
        let bytes = decode_credential_id(example).expect("decodes");
        assert_eq!(bytes.len(), 32);
        assert_eq!(fido2_method_id(&bytes), example);
    }

    #[test]
    fn credential_ids_decode_leniently() {
        let id = [0xFB, 0xEF, 0x01, 0x02, 0x03];
        for form in [
            URL_SAFE_NO_PAD.encode(id),
            URL_SAFE.encode(id),
            STANDARD.encode(id),
            STANDARD_NO_PAD.encode(id),
            fido2_method_id(&id),
        ] {
            assert_eq!(
                decode_credential_id(&form).as_deref(),
                Some(&id[..]),
                "{form}"
            );
        }
        assert_eq!(decode_credential_id("not base64 !"), None);
    }
}
