//! User principal names and e-mail addresses: `local@domain`.
//!
//! The local part is a dot-atom of ASCII characters (RFC 5322 `atext`: letters, digits
//! and ``!#$%&'*+-/=?^_`{|}~``, dots between them, at most 64 characters); quoted local
//! parts and non-ASCII local parts are refused, as Entra refuses them in UPNs. The domain
//! is a [`DomainName`], so it is lowercased and IDN-normalised. Surrounding whitespace is
//! ignored.
//!
//! Entra treats UPNs case-insensitively, so equality, ordering and hashing ignore ASCII
//! case; the local part keeps the case it was given for display. Guest UPNs such as
//! `ana_fabrikam.com#EXT#@contoso.onmicrosoft.com` are valid.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{DomainName, DomainNameError};
use crate::text::{quote, quote_char};

/// The longest local part (before `@`), in characters (RFC 5321).
pub const MAX_LOCAL_PART_LEN: usize = 64;

/// What kind of address was being parsed; decides the wording of an [`AddressError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// A user principal name.
    Upn,
    /// An e-mail address.
    Email,
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressKind::Upn => "user principal name",
            AddressKind::Email => "e-mail address",
        })
    }
}

/// Why a text is not a valid UPN or e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing given.
    #[error("the {kind} is empty: enter one such as ana@contoso.com")]
    Empty {
        /// UPN or e-mail address.
        kind: AddressKind,
    },
    /// No `@`.
    #[error(
        "{given} is not a valid {kind}: it has no '@' (expected name@domain, e.g. ana@contoso.com)"
    )]
    MissingAt {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
    },
    /// More than one `@`.
    #[error("{given} is not a valid {kind}: it has more than one '@'")]
    SeveralAts {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
    },
    /// Nothing before `@`.
    #[error("{given} is not a valid {kind}: the name before '@' is empty")]
    EmptyLocalPart {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
    },
    /// The local part is too long.
    #[error(
        "{given} is not a valid {kind}: the name before '@' is {length} characters long; the limit is {max}"
    )]
    LocalPartTooLong {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted and shortened.
        given: String,
        /// Its length in characters.
        length: usize,
        /// The limit, [`MAX_LOCAL_PART_LEN`].
        max: usize,
    },
    /// A character not allowed before `@`.
    #[error(
        "{given} is not a valid {kind}: {character} at position {position} is not allowed before '@'"
    )]
    InvalidCharacter {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
        /// The character, quoted and escaped.
        character: String,
        /// 1-based character position in the whole input.
        position: usize,
    },
    /// A dot at the start or end of the local part, or two in a row.
    #[error(
        "{given} is not a valid {kind}: the name before '@' cannot start or end with a dot or have two dots in a row"
    )]
    MisplacedDot {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
    },
    /// The part after `@` is not a valid domain name.
    #[error("{given} is not a valid {kind}: {source}")]
    Domain {
        /// UPN or e-mail address.
        kind: AddressKind,
        /// The input, quoted.
        given: String,
        /// What is wrong with the domain.
        source: DomainNameError,
    },
}

/// The shared representation of both address types.
#[derive(Debug, Clone)]
struct Address {
    local: String,
    domain: DomainName,
}

impl Address {
    fn parse(kind: AddressKind, input: &str) -> Result<Self, AddressError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(AddressError::Empty { kind });
        }
        let given = || quote(text);
        let Some((local, domain)) = text.split_once('@') else {
            return Err(AddressError::MissingAt {
                kind,
                given: given(),
            });
        };
        if domain.contains('@') {
            return Err(AddressError::SeveralAts {
                kind,
                given: given(),
            });
        }
        if local.is_empty() {
            return Err(AddressError::EmptyLocalPart {
                kind,
                given: given(),
            });
        }
        for (index, character) in local.chars().enumerate() {
            if !is_local_part_char(character) {
                return Err(AddressError::InvalidCharacter {
                    kind,
                    given: given(),
                    character: quote_char(character),
                    position: index + 1,
                });
            }
        }
        // Only ASCII remains, so bytes are characters.
        if local.len() > MAX_LOCAL_PART_LEN {
            return Err(AddressError::LocalPartTooLong {
                kind,
                given: given(),
                length: local.len(),
                max: MAX_LOCAL_PART_LEN,
            });
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(AddressError::MisplacedDot {
                kind,
                given: given(),
            });
        }
        let domain = DomainName::parse(domain).map_err(|source| AddressError::Domain {
            kind,
            given: given(),
            source,
        })?;
        Ok(Address {
            local: local.to_owned(),
            domain,
        })
    }

    fn lowercase_local(&self) -> impl Iterator<Item = u8> + '_ {
        self.local.bytes().map(|byte| byte.to_ascii_lowercase())
    }
}

fn is_local_part_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(character)
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.local.eq_ignore_ascii_case(&other.local) && self.domain == other.domain
    }
}

impl Eq for Address {}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in self.lowercase_local() {
            state.write_u8(byte);
        }
        state.write_u8(b'@');
        self.domain.hash(state);
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lowercase_local()
            .cmp(other.lowercase_local())
            .then_with(|| self.domain.cmp(&other.domain))
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Address);

        impl $name {
            /// Validates `text`; see the module docs for the rules.
            pub fn parse(text: &str) -> Result<Self, AddressError> {
                Address::parse($kind, text).map($name)
            }

            /// The part before `@`, in the case given.
            pub fn local_part(&self) -> &str {
                &self.0.local
            }

            /// The part after `@`, normalised.
            pub fn domain(&self) -> &DomainName {
                &self.0.domain
            }

            /// The whole address lowercased: the key to store and compare by.
            pub fn normalized(&self) -> String {
                format!("{}@{}", self.0.local.to_ascii_lowercase(), self.0.domain)
            }
        }

        impl fmt::Display for $name {
            /// `local@domain`, the local part in the case given, the domain normalised.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}@{}", self.0.local, self.0.domain)
            }
        }

        impl FromStr for $name {
            type Err = AddressError;

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

address_type!(
    /// A user principal name as Entra holds it (`ana@contoso.com`); compares without
    /// regard to ASCII case.
    Upn,
    AddressKind::Upn
);

address_type!(
    /// An e-mail address (`support@contoso.com`), e.g. the support address in the desktop
    /// client's configuration; same rules and comparison as [`Upn`].
    EmailAddress,
    AddressKind::Email
);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn message(text: &str) -> String {
        Upn::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_and_normalises_the_domain_only() {
        let upn = Upn::parse(" Ana.Lima@Contoso.COM ").unwrap();
        assert_eq!(upn.local_part(), "Ana.Lima");
        assert_eq!(upn.domain().as_str(), "contoso.com");
        assert_eq!(upn.to_string(), "Ana.Lima@contoso.com");
        assert_eq!(upn.normalized(), "ana.lima@contoso.com");
        let idn = Upn::parse("jan@Bücher.example").unwrap();
        assert_eq!(idn.to_string(), "jan@xn--bcher-kva.example");
    }

    #[test]
    fn equality_and_hash_ignore_case() {
        let a = Upn::parse("Ana@Contoso.com").unwrap();
        let b = Upn::parse("ana@contoso.COM").unwrap();
        let c = Upn::parse("ana2@contoso.com").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let set: HashSet<Upn> = [a, b, c].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn guest_and_special_local_parts_are_valid() {
        let guest = Upn::parse("ana_fabrikam.com#EXT#@contoso.onmicrosoft.com").unwrap();
        assert_eq!(guest.domain().as_str(), "contoso.onmicrosoft.com");
        assert!(EmailAddress::parse("o'brien+tag@contoso.com").is_ok());
    }

    #[test]
    fn each_error_has_its_message() {
        assert_eq!(
            message(""),
            "the user principal name is empty: enter one such as ana@contoso.com"
        );
        assert_eq!(
            message("ana"),
            "\"ana\" is not a valid user principal name: it has no '@' (expected name@domain, e.g. ana@contoso.com)"
        );
        assert_eq!(
            message("ana@b@contoso.com"),
            "\"ana@b@contoso.com\" is not a valid user principal name: it has more than one '@'"
        );
        assert_eq!(
            message("@contoso.com"),
            "\"@contoso.com\" is not a valid user principal name: the name before '@' is empty"
        );
        assert_eq!(
            message("ana lima@contoso.com"),
            "\"ana lima@contoso.com\" is not a valid user principal name: ' ' at position 4 is not allowed before '@'"
        );
        assert_eq!(
            message("josé@contoso.com"),
            "\"josé@contoso.com\" is not a valid user principal name: 'é' at position 4 is not allowed before '@'"
        );
        assert_eq!(
            message(".ana@contoso.com"),
            "\".ana@contoso.com\" is not a valid user principal name: the name before '@' cannot \
             start or end with a dot or have two dots in a row"
        );
        assert!(matches!(
            Upn::parse("ana..lima@contoso.com").unwrap_err(),
            AddressError::MisplacedDot { .. }
        ));
        assert!(matches!(
            Upn::parse("ana.@contoso.com").unwrap_err(),
            AddressError::MisplacedDot { .. }
        ));
        let long = format!("{}@contoso.com", "a".repeat(65));
        assert_eq!(
            message(&long),
            format!(
                "\"{}\"… (77 characters) is not a valid user principal name: the name before '@' \
                 is 65 characters long; the limit is 64",
                "a".repeat(64)
            )
        );
        assert!(Upn::parse(&format!("{}@contoso.com", "a".repeat(64))).is_ok());
        assert_eq!(
            EmailAddress::parse("ana@contoso").unwrap_err().to_string(),
            "\"ana@contoso\" is not a valid e-mail address: \"contoso\" is not a full domain name: \
             add its suffix, e.g. contoso.com"
        );
        assert_eq!(
            message("ana@"),
            "\"ana@\" is not a valid user principal name: the domain name is empty: enter a domain such as contoso.com"
        );
    }

    #[test]
    fn serde_is_a_validated_string() {
        let upn: Upn = serde_json::from_str("\"Ana@CONTOSO.com\"").unwrap();
        assert_eq!(serde_json::to_string(&upn).unwrap(), "\"Ana@contoso.com\"");
        let error = serde_json::from_str::<EmailAddress>("\"not-an-address\"").unwrap_err();
        assert!(
            error.to_string().contains("is not a valid e-mail address"),
            "{error}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panic(text in "\\PC{0,80}") {
            if let Ok(upn) = Upn::parse(&text) {
                // Display is a normal form that parses back to an equal value.
                let again = Upn::parse(&upn.to_string()).unwrap();
                proptest::prop_assert_eq!(&again, &upn);
                proptest::prop_assert_eq!(again.to_string(), upn.to_string());
            }
        }

        #[test]
        fn case_never_matters(local in "[A-Za-z0-9._%+-]{1,20}", domain in "[A-Za-z]{1,10}\\.[A-Za-z]{2,4}") {
            let text = format!("{local}@{domain}");
            if let Ok(upn) = Upn::parse(&text) {
                let upper = Upn::parse(&text.to_uppercase()).unwrap();
                let lower = Upn::parse(&text.to_lowercase()).unwrap();
                proptest::prop_assert_eq!(&upper, &lower);
                proptest::prop_assert_eq!(upper.normalized(), upn.normalized());
            }
        }
    }
}
