//! The attestation object and the attestation statement formats this crate verifies
//! ([WebAuthn §6.5.4](https://www.w3.org/TR/webauthn-3/#sctn-generating-an-attestation-object),
//! [§8.2 packed](https://www.w3.org/TR/webauthn-3/#sctn-packed-attestation),
//! [§8.7 none](https://www.w3.org/TR/webauthn-3/#sctn-none-attestation)).

use ciborium::Value;

use crate::authenticator_data::{AuthenticatorData, AuthenticatorDataError};
use crate::cbor::{self, CborError};

/// Why an attestation object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationObjectError {
    /// Not one well-formed CBOR item, or bytes left over.
    #[error("attestationObject: {0}")]
    Cbor(#[from] CborError),
    /// The CBOR is not a map with text `fmt`, map `attStmt` and bytes `authData`.
    #[error("attestationObject {0}")]
    Shape(&'static str),
    /// The embedded authenticator data is malformed.
    #[error("attestationObject authData: {0}")]
    AuthenticatorData(#[from] AuthenticatorDataError),
}

/// A decoded attestation object: `{fmt, attStmt, authData}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationObject {
    /// `fmt`: the attestation statement format identifier.
    pub fmt: String,
    /// `attStmt`, as a CBOR map.
    pub attestation_statement: Vec<(Value, Value)>,
    /// `authData`: the exact bytes (signatures cover these).
    pub authenticator_data_bytes: Vec<u8>,
    /// `authData`, parsed.
    pub authenticator_data: AuthenticatorData,
}

impl AttestationObject {
    /// Parses an attestation object; it must be one CBOR map and nothing after it.
    ///
    /// # Errors
    /// [`AttestationObjectError`] naming what is malformed or missing.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestationObjectError> {
        let value = cbor::decode_exact(bytes)?;
        let Value::Map(entries) = value else {
            return Err(AttestationObjectError::Shape("is not a CBOR map"));
        };
        let fmt = match cbor::lookup(&entries, &Value::Text("fmt".into()))? {
            Some(Value::Text(fmt)) => fmt.clone(),
            Some(_) => return Err(AttestationObjectError::Shape("fmt is not a text string")),
            None => return Err(AttestationObjectError::Shape("lacks fmt")),
        };
        let attestation_statement = match cbor::lookup(&entries, &Value::Text("attStmt".into()))? {
            Some(Value::Map(statement)) => {
                cbor::ensure_unique_keys(statement)?;
                statement.clone()
            }
            Some(_) => return Err(AttestationObjectError::Shape("attStmt is not a map")),
            None => return Err(AttestationObjectError::Shape("lacks attStmt")),
        };
        let authenticator_data_bytes =
            match cbor::lookup(&entries, &Value::Text("authData".into()))? {
                Some(Value::Bytes(bytes)) => bytes.clone(),
                Some(_) => {
                    return Err(AttestationObjectError::Shape(
                        "authData is not a byte string",
                    ));
                }
                None => return Err(AttestationObjectError::Shape("lacks authData")),
            };
        let authenticator_data = AuthenticatorData::parse(&authenticator_data_bytes)?;
        Ok(AttestationObject {
            fmt,
            attestation_statement,
            authenticator_data_bytes,
            authenticator_data,
        })
    }

    /// Interprets `attStmt` according to `fmt`.
    ///
    /// # Errors
    /// [`AttestationStatementError`] when the statement does not have its format's syntax.
    pub fn statement(&self) -> Result<AttestationStatement, AttestationStatementError> {
        AttestationStatement::from_cbor(&self.fmt, &self.attestation_statement)
    }
}

/// Why an attestation statement does not have its format's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationStatementError {
    /// `none` with a non-empty statement.
    #[error("a \"none\" attestation statement must be an empty map")]
    NoneNotEmpty,
    /// A field is missing or has the wrong type.
    #[error("the \"{fmt}\" attestation statement field {field} is missing or malformed")]
    Field {
        /// The format.
        fmt: String,
        /// The field.
        field: &'static str,
    },
    /// A field this format does not define.
    #[error("the \"packed\" attestation statement has an unknown field {0}")]
    UnknownField(String),
    /// Duplicate map keys.
    #[error("attestation statement: {0}")]
    Cbor(#[from] CborError),
}

/// `attStmt` of the `packed` format ([WebAuthn §8.2](https://www.w3.org/TR/webauthn-3/#sctn-packed-attestation)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedStatement {
    /// `alg`: COSE algorithm of the signature.
    pub alg: i64,
    /// `sig`: the attestation signature over `authData ‖ SHA-256(clientDataJSON)`.
    pub sig: Vec<u8>,
    /// `x5c`: the attestation certificate (first) and its chain, DER; empty for self attestation.
    pub x5c: Vec<Vec<u8>>,
}

/// An attestation statement, interpreted by format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationStatement {
    /// `none`: no attestation.
    None,
    /// `packed`.
    Packed(PackedStatement),
    /// Any other format: not interpreted.
    Other {
        /// The format identifier.
        fmt: String,
    },
}

impl AttestationStatement {
    fn from_cbor(
        fmt: &str,
        statement: &[(Value, Value)],
    ) -> Result<Self, AttestationStatementError> {
        match fmt {
            "none" => {
                if statement.is_empty() {
                    Ok(AttestationStatement::None)
                } else {
                    Err(AttestationStatementError::NoneNotEmpty)
                }
            }
            "packed" => parse_packed(statement).map(AttestationStatement::Packed),
            other => Ok(AttestationStatement::Other {
                fmt: other.to_owned(),
            }),
        }
    }
}

fn parse_packed(
    statement: &[(Value, Value)],
) -> Result<PackedStatement, AttestationStatementError> {
    let field = |field: &'static str| AttestationStatementError::Field {
        fmt: "packed".into(),
        field,
    };
    for (key, _) in statement {
        match key {
            Value::Text(name) if matches!(name.as_str(), "alg" | "sig" | "x5c") => {}
            other => {
                return Err(AttestationStatementError::UnknownField(cbor::describe(
                    other,
                )));
            }
        }
    }
    let alg = cbor::lookup(statement, &Value::Text("alg".into()))?
        .and_then(cbor::as_i64)
        .ok_or_else(|| field("alg"))?;
    let sig = match cbor::lookup(statement, &Value::Text("sig".into()))? {
        Some(Value::Bytes(sig)) => sig.clone(),
        _ => return Err(field("sig")),
    };
    let x5c = match cbor::lookup(statement, &Value::Text("x5c".into()))? {
        None => Vec::new(),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::Bytes(der) => Ok(der.clone()),
                _ => Err(field("x5c")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(field("x5c")),
    };
    Ok(PackedStatement { alg, sig, x5c })
}
