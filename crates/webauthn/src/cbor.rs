//! Small helpers over `ciborium::Value`: decoding one item from the front of a byte
//! string, and map look-ups that refuse duplicate keys (CTAP2 canonical CBOR forbids them,
//! and two values for one key would let a parser pick the wrong one).

use ciborium::Value;

/// Limit on CBOR nesting: no WebAuthn structure is deeper than a few levels.
const RECURSION_LIMIT: usize = 16;

/// Why CBOR could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The bytes are not one well-formed CBOR data item.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// Bytes were left over after the CBOR item.
    #[error("{0} unexpected byte(s) after the CBOR item")]
    TrailingBytes(usize),
    /// A map holds the same key twice.
    #[error("the CBOR map holds the key {0} more than once")]
    DuplicateKey(String),
}

/// Decodes one CBOR item from the front of `bytes` and returns it with the number of bytes it used.
pub(crate) fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), CborError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, RECURSION_LIMIT)
        .map_err(|error| CborError::Malformed(error.to_string()))?;
    Ok((value, bytes.len() - rest.len()))
}

/// Decodes exactly one CBOR item that spans all of `bytes`.
pub(crate) fn decode_exact(bytes: &[u8]) -> Result<Value, CborError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CborError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Looks `key` up in a map's entries, refusing a key that appears twice.
pub(crate) fn lookup<'a>(
    entries: &'a [(Value, Value)],
    key: &Value,
) -> Result<Option<&'a Value>, CborError> {
    let mut found = None;
    for (candidate, value) in entries {
        if candidate == key {
            if found.is_some() {
                return Err(CborError::DuplicateKey(describe(key)));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// A short human-readable rendering of a CBOR key for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Integer(integer) => i128::from(*integer).to_string(),
        Value::Text(text) => format!("\"{text}\""),
        other => format!("{other:?}"),
    }
}

/// Reads a CBOR integer as `i64`, if it is one and fits.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(integer) => i64::try_from(i128::from(*integer)).ok(),
        _ => None,
    }
}

/// Refuses any duplicate key in a map (used where the whole map is handed on, not looked up).
pub(crate) fn ensure_unique_keys(entries: &[(Value, Value)]) -> Result<(), CborError> {
    for (index, (key, _)) in entries.iter().enumerate() {
        if entries[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(CborError::DuplicateKey(describe(key)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_decoding_reports_the_bytes_used() {
        // {1: 2} followed by two stray bytes.
        let bytes = [0xa1, 0x01, 0x02, 0xff, 0x00];
        let (value, used) = decode_prefix(&bytes).unwrap();
        assert_eq!(used, 3);
        assert_eq!(value, Value::Map(vec![(Value::from(1), Value::from(2))]));
        assert_eq!(decode_exact(&bytes), Err(CborError::TrailingBytes(2)));
    }

    #[test]
    fn truncated_and_deep_cbor_are_refused() {
        assert!(matches!(
            decode_exact(&[0xa1, 0x01]),
            Err(CborError::Malformed(_))
        ));
        let deep = [0x81; 64];
        assert!(matches!(decode_exact(&deep), Err(CborError::Malformed(_))));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let entries = vec![
            (Value::from(1), Value::from(2)),
            (Value::from(1), Value::from(3)),
        ];
        assert!(matches!(
            lookup(&entries, &Value::from(1)),
            Err(CborError::DuplicateKey(_))
        ));
        assert!(matches!(
            ensure_unique_keys(&entries),
            Err(CborError::DuplicateKey(_))
        ));
    }
}
