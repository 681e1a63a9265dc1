//! The tenant id and client id of an integration: GUIDs as the Entra admin center shows
//! them.
//!
//! Accepted: `8-4-4-4-12` hexadecimal digits in either case, optionally in braces, with
//! surrounding whitespace ignored (values are usually pasted). Stored and shown in the
//! lowercase hyphenated form. Common mix-ups get their own message: a tenant *domain*
//! (`contoso.onmicrosoft.com`) where the tenant GUID belongs, or a client *secret* where
//! the client id belongs (the secret is never repeated in the message).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::domain::DomainName;
use crate::text::{quote, quote_char};

/// Which identifier was being parsed; decides the wording and the hint of a [`GuidError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuidField {
    /// The Directory (tenant) ID.
    TenantId,
    /// The Application (client) ID.
    ClientId,
}

impl GuidField {
    /// Where to find the right value in the Entra admin center.
    pub fn hint(self) -> &'static str {
        match self {
            GuidField::TenantId => {
                "copy the \"Directory (tenant) ID\" from the Overview page of your app registration \
                 in the Microsoft Entra admin center (App registrations > your app > Overview)"
            }
            GuidField::ClientId => {
                "copy the \"Application (client) ID\" from the Overview page of your app registration \
                 in the Microsoft Entra admin center (App registrations > your app > Overview)"
            }
        }
    }
}

impl fmt::Display for GuidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuidField::TenantId => "tenant id",
            GuidField::ClientId => "client id",
        })
    }
}

/// What exactly is wrong with a value that should be a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidProblem {
    /// Not 36 characters between the optional braces.
    #[error("it has {length} characters instead of 36")]
    WrongLength {
        /// Characters given (without braces).
        length: usize,
    },
    /// 32 hexadecimal digits without the hyphens.
    #[error("the hyphens are missing")]
    MissingHyphens,
    /// A character that is not a hexadecimal digit.
    #[error("{character} at position {position} is not a hexadecimal digit")]
    NotHex {
        /// The character, quoted and escaped.
        character: String,
        /// 1-based position (without the opening brace).
        position: usize,
    },
    /// Something else where a hyphen belongs.
    #[error("position {position} should be a hyphen but is {character}")]
    HyphenExpected {
        /// The character found, quoted and escaped.
        character: String,
        /// 1-based position (without the opening brace).
        position: usize,
    },
    /// An opening brace without a closing one or the other way round.
    #[error("its braces do not match")]
    UnbalancedBraces,
}

/// Why a text is not a valid tenant id or client id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    /// Nothing given.
    #[error("the {field} is empty: {hint}", hint = .field.hint())]
    Empty {
        /// Which identifier.
        field: GuidField,
    },
    /// A domain name where the tenant GUID belongs.
    #[error(
        "{given} is a domain name, not a tenant id: keybridge needs the tenant's GUID; {hint}",
        hint = GuidField::TenantId.hint()
    )]
    TenantDomainGiven {
        /// The domain given, quoted.
        given: String,
    },
    /// Something shaped like a client secret; it is not repeated.
    #[error(
        "the value given as the {field} looks like a client secret (not repeated here); \
         enter the secret in the client secret field instead and {hint}",
        hint = .field.hint()
    )]
    SecretGiven {
        /// Which identifier.
        field: GuidField,
    },
    /// Not a GUID.
    #[error(
        "the {field} {given} is not a GUID: {problem}; expected 8-4-4-4-12 hexadecimal digits \
         such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (braces optional); {hint}",
        hint = .field.hint()
    )]
    NotAGuid {
        /// Which identifier.
        field: GuidField,
        /// The text given, quoted, escaped and shortened.
        given: String,
        /// What is wrong with it.
        problem: GuidProblem,
    },
    /// The all-zero GUID, which no tenant or application has.
    #[error("the {field} is the all-zero GUID, which is never a real id; {hint}", hint = .field.hint())]
    Nil {
        /// Which identifier.
        field: GuidField,
    },
}

fn parse_guid(field: GuidField, input: &str) -> Result<Uuid, GuidError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(GuidError::Empty { field });
    }
    let not_a_guid = |problem| GuidError::NotAGuid {
        field,
        given: quote(text),
        problem,
    };
    let inner = match (text.strip_prefix('{'), text.ends_with('}')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) => text,
        _ => return Err(not_a_guid(GuidProblem::UnbalancedBraces)),
    };
    let length = inner.chars().count();
    if length != 36 {
        if field == GuidField::TenantId && inner.contains('.') && DomainName::parse(inner).is_ok() {
            return Err(GuidError::TenantDomainGiven {
                given: quote(inner),
            });
        }
        if looks_like_secret(inner) {
            return Err(GuidError::SecretGiven { field });
        }
        if length == 32 && inner.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(not_a_guid(GuidProblem::MissingHyphens));
        }
        return Err(not_a_guid(GuidProblem::WrongLength { length }));
    }
    let hyphens_in_place = [8, 13, 18, 23]
        .into_iter()
        .all(|index| inner.chars().nth(index) == Some('-'));
    if !hyphens_in_place && looks_like_secret(inner) {
        return Err(GuidError::SecretGiven { field });
    }
    for (index, character) in inner.chars().enumerate() {
        let position = index + 1;
        if matches!(index, 8 | 13 | 18 | 23) {
            if character != '-' {
                return Err(not_a_guid(GuidProblem::HyphenExpected {
                    character: quote_char(character),
                    position,
                }));
            }
        } else if !character.is_ascii_hexdigit() {
            return Err(not_a_guid(GuidProblem::NotHex {
                character: quote_char(character),
                position,
            }));
        }
    }
    // The shape was checked above, so the uuid parser only converts.
    let uuid =
        Uuid::try_parse(inner).map_err(|_| not_a_guid(GuidProblem::WrongLength { length }))?;
    if uuid.is_nil() {
        return Err(GuidError::Nil { field });
    }
    Ok(uuid)
}

/// Whether `text` has the shape of an Entra client secret: current secrets are 40
/// characters with a `~` among the first few (`Abc8Q~...`), older ones 32 to 44 characters
/// of base64-like text. A GUID with a typo or two (hex digits and hyphens, almost) is not
/// one: random base64 text has far more letters beyond `f`.
fn looks_like_secret(text: &str) -> bool {
    let length = text.chars().count();
    let secret_alphabet = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '~' | '.' | '_' | '-' | '+' | '/' | '='));
    let not_guid_characters = text
        .chars()
        .filter(|c| !c.is_ascii_hexdigit() && *c != '-')
        .count();
    secret_alphabet
        && (30..=48).contains(&length)
        && (text.contains('~') || not_guid_characters >= 6)
}

macro_rules! guid_type {
    ($(#[$doc:meta])* $name:ident, $field:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses a GUID; see the module docs for the accepted forms.
            pub fn parse(text: &str) -> Result<Self, GuidError> {
                parse_guid($field, text).map($name)
            }

            /// The GUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            /// Lowercase, hyphenated.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = GuidError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

guid_type!(
    /// The Directory (tenant) ID of an Entra tenant.
    TenantId,
    GuidField::TenantId
);

guid_type!(
    /// The Application (client) ID of the app registration keybridge signs in as.
    ClientId,
    GuidField::ClientId
);

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT_HINT: &str = "copy the \"Directory (tenant) ID\" from the Overview page of your \
        app registration in the Microsoft Entra admin center (App registrations > your app > Overview)";
    const CLIENT_HINT: &str = "copy the \"Application (client) ID\" from the Overview page of your \
        app registration in the Microsoft Entra admin center (App registrations > your app > Overview)";
    const EXPECTED: &str = "expected 8-4-4-4-12 hexadecimal digits such as \
        72f988bf-86f1-41af-91ab-2d7cd011db47 (braces optional)";

    #[test]
    fn accepts_any_case_and_braces_and_normalises() {
        for given in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
            "{72F988BF-86f1-41af-91ab-2d7cd011db47}",
            "  72f988bf-86f1-41af-91ab-2d7cd011db47\n",
        ] {
            let tenant = TenantId::parse(given).unwrap();
            assert_eq!(tenant.to_string(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
            let client: ClientId = given.parse().unwrap();
            assert_eq!(client.as_uuid(), tenant.as_uuid());
        }
    }

    #[test]
    fn tenant_domain_points_to_the_directory_id() {
        assert_eq!(
            TenantId::parse("contoso.onmicrosoft.com")
                .unwrap_err()
                .to_string(),
            format!(
                "\"contoso.onmicrosoft.com\" is a domain name, not a tenant id: keybridge needs \
                 the tenant's GUID; {TENANT_HINT}"
            )
        );
        // As a client id a domain is just not a GUID.
        assert!(matches!(
            ClientId::parse("contoso.com").unwrap_err(),
            GuidError::NotAGuid {
                problem: GuidProblem::WrongLength { length: 11 },
                ..
            }
        ));
    }

    #[test]
    fn client_secret_is_recognised_and_not_repeated() {
        let secret = "Xy8Q~AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
        let message = ClientId::parse(secret).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "the value given as the client id looks like a client secret (not repeated here); \
                 enter the secret in the client secret field instead and {CLIENT_HINT}"
            )
        );
        assert!(!message.contains("AbCd"));
        // Older secrets: base64-like, no tilde.
        assert_eq!(
            ClientId::parse("q5sN2xK8vLw3hP9aZ1cR7tY4uB6eD0fGjMnQ+/o=").unwrap_err(),
            GuidError::SecretGiven {
                field: GuidField::ClientId
            }
        );
        // Pasted into the tenant field, it is not repeated either.
        assert_eq!(
            TenantId::parse(secret).unwrap_err(),
            GuidError::SecretGiven {
                field: GuidField::TenantId
            }
        );
    }

    #[test]
    fn guid_with_a_typo_is_not_taken_for_a_secret() {
        assert_eq!(
            ClientId::parse("72f988bf-86f1-41af-91ab-2d7cd011db4g")
                .unwrap_err()
                .to_string(),
            format!(
                "the client id \"72f988bf-86f1-41af-91ab-2d7cd011db4g\" is not a GUID: 'g' at \
                 position 36 is not a hexadecimal digit; {EXPECTED}; {CLIENT_HINT}"
            )
        );
        assert_eq!(
            TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db4")
                .unwrap_err()
                .to_string(),
            format!(
                "the tenant id \"72f988bf-86f1-41af-91ab-2d7cd011db4\" is not a GUID: it has 35 \
                 characters instead of 36; {EXPECTED}; {TENANT_HINT}"
            )
        );
    }

    #[test]
    fn each_shape_problem_has_its_message() {
        let problem = |text: &str| match TenantId::parse(text).unwrap_err() {
            GuidError::NotAGuid { problem, .. } => problem.to_string(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            problem("72f988bf86f141af91ab2d7cd011db47"),
            "the hyphens are missing"
        );
        assert_eq!(
            problem("72f988bf_86f1-41af-91ab-2d7cd011db47"),
            "position 9 should be a hyphen but is '_'"
        );
        assert_eq!(
            problem("{72f988bf-86f1-41af-91ab-2d7cd011db47"),
            "its braces do not match"
        );
        assert_eq!(
            problem("72f988bf-86f1-41af-91ab-2d7cd011db47}"),
            "its braces do not match"
        );
        assert_eq!(problem("tenant"), "it has 6 characters instead of 36");
    }

    #[test]
    fn empty_and_nil_are_refused_with_the_hint() {
        assert_eq!(
            TenantId::parse("   ").unwrap_err().to_string(),
            format!("the tenant id is empty: {TENANT_HINT}")
        );
        assert_eq!(
            ClientId::parse("00000000-0000-0000-0000-000000000000")
                .unwrap_err()
                .to_string(),
            format!("the client id is the all-zero GUID, which is never a real id; {CLIENT_HINT}")
        );
    }

    #[test]
    fn given_value_is_escaped_and_shortened() {
        let pasted = format!("{}\n{}", "a".repeat(50), "b".repeat(50));
        let GuidError::NotAGuid { given, .. } = TenantId::parse(&pasted).unwrap_err() else {
            panic!("expected NotAGuid");
        };
        assert_eq!(
            given,
            format!(
                "\"{}\\n{}\"… (101 characters)",
                "a".repeat(50),
                "b".repeat(13)
            )
        );
    }

    #[test]
    fn serde_validates_and_normalises() {
        let tenant: TenantId =
            serde_json::from_str("\"{72F988BF-86F1-41AF-91AB-2D7CD011DB47}\"").unwrap();
        assert_eq!(
            serde_json::to_string(&tenant).unwrap(),
            "\"72f988bf-86f1-41af-91ab-2d7cd011db47\""
        );
        let error = serde_json::from_str::<TenantId>("\"contoso.com\"").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is a domain name, not a tenant id"),
            "{error}"
        );
        assert!(serde_json::from_str::<ClientId>("42").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panic(text in "\\PC{0,60}") {
            let _ = TenantId::parse(&text).map_err(|error| error.to_string());
            let _ = ClientId::parse(&text).map_err(|error| error.to_string());
        }

        #[test]
        fn every_uuid_round_trips_in_any_case_and_braces(bytes in proptest::array::uniform16(1u8..)) {
            let uuid = Uuid::from_bytes(bytes);
            let upper = uuid.hyphenated().to_string().to_uppercase();
            let braced = format!("{{{upper}}}");
            let parsed = TenantId::parse(&braced).unwrap();
            proptest::prop_assert_eq!(parsed.as_uuid(), uuid);
            proptest::prop_assert_eq!(parsed.to_string(), uuid.hyphenated().to_string());
        }
    }
}
