//! Domain names (the part of a UPN after `@`) and the "restrict domains" login setting.
//!
//! A [`DomainName`] is a bare host name: no scheme, path, port, user info or wildcard,
//! at least two labels, not an IP address. International names are accepted and kept
//! in their ASCII (punycode) form, lowercase, without a trailing dot, so that
//! `Bücher.Example.` and `xn--bcher-kva.example` are the same domain. Surrounding
//! whitespace is ignored; whitespace inside is an error.
//!
//! [`RestrictDomains`] is the validated list an admin saves. A user is allowed when the
//! domain of their UPN is **exactly** one of the list: subdomains are not implied, because
//! Entra verifies every domain (subdomains included) separately and an admin who means
//! `eu.contoso.com` should say so.

use std::fmt;
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Upn;
use crate::text::{quote, quote_char};

/// The longest domain name in its ASCII form, without the trailing dot (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;
/// The longest label (the text between dots) in its ASCII form (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// A validated, normalised domain name such as `contoso.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a text is not a bare domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    /// Nothing given.
    #[error("the domain name is empty: enter a domain such as contoso.com")]
    Empty,
    /// A URL scheme such as `https://`.
    #[error("{given} starts with \"{scheme}://\": enter only the domain name{}", suggest(.suggestion))]
    Scheme {
        /// The input, quoted.
        given: String,
        /// The scheme before `://`.
        scheme: String,
        /// The bare domain the input seems to mean, if any.
        suggestion: Option<String>,
    },
    /// A path, query or fragment after the host.
    #[error("{given} contains a path: enter only the domain name{}", suggest(.suggestion))]
    Path {
        /// The input, quoted.
        given: String,
        /// The bare domain the input seems to mean, if any.
        suggestion: Option<String>,
    },
    /// User info or an e-mail address (`@`).
    #[error("{given} contains '@': enter only the domain name, the part after '@'{}", suggest(.suggestion))]
    Userinfo {
        /// The input, quoted.
        given: String,
        /// The bare domain the input seems to mean, if any.
        suggestion: Option<String>,
    },
    /// A port such as `:443`.
    #[error("{given} contains the port \":{port}\": enter only the domain name{}", suggest(.suggestion))]
    Port {
        /// The input, quoted.
        given: String,
        /// The port digits.
        port: String,
        /// The bare domain the input seems to mean, if any.
        suggestion: Option<String>,
    },
    /// A wildcard such as `*.contoso.com`.
    #[error(
        "{given} contains a wildcard '*': wildcards are not supported; list each domain, e.g. contoso.com"
    )]
    Wildcard {
        /// The input, quoted.
        given: String,
    },
    /// Whitespace inside the name.
    #[error("{given} contains a space at position {position}: a domain name has no spaces")]
    Whitespace {
        /// The input, quoted.
        given: String,
        /// 1-based character position.
        position: usize,
    },
    /// A character not allowed in a host name.
    #[error(
        "{given} contains {character} at position {position}: a domain name has only letters, digits, hyphens and dots"
    )]
    InvalidCharacter {
        /// The input, quoted.
        given: String,
        /// The character, quoted and escaped.
        character: String,
        /// 1-based character position.
        position: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("{given} has an empty label (a leading dot or two dots in a row)")]
    EmptyLabel {
        /// The input, quoted.
        given: String,
    },
    /// A label longer than [`MAX_LABEL_LEN`].
    #[error("the label {label} is {length} characters long; a label has at most {max}")]
    LabelTooLong {
        /// The label in ASCII form, quoted and shortened.
        label: String,
        /// Its length in ASCII form.
        length: usize,
        /// The limit, [`MAX_LABEL_LEN`].
        max: usize,
    },
    /// A label that starts or ends with a hyphen.
    #[error("the label {label} starts or ends with a hyphen, which a domain name does not allow")]
    HyphenAtLabelEdge {
        /// The label in ASCII form, quoted.
        label: String,
    },
    /// The whole name is longer than [`MAX_DOMAIN_LEN`].
    #[error("the domain name is {length} characters long; the limit is {max}")]
    TooLong {
        /// Its length in ASCII form.
        length: usize,
        /// The limit, [`MAX_DOMAIN_LEN`].
        max: usize,
    },
    /// Only one label.
    #[error("{given} is not a full domain name: add its suffix, e.g. contoso.com")]
    SingleLabel {
        /// The input, quoted.
        given: String,
    },
    /// An IPv4 address.
    #[error("{given} is an IP address: enter a domain name such as contoso.com")]
    IpAddress {
        /// The input, quoted.
        given: String,
    },
    /// An international name that IDNA processing refuses.
    #[error("{given} is not a valid international domain name")]
    InvalidInternationalName {
        /// The input, quoted.
        given: String,
    },
}

fn suggest(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(domain) => format!(" ({domain})"),
        None => String::new(),
    }
}

impl DomainName {
    /// Validates and normalises `text`; see the module docs.
    pub fn parse(text: &str) -> Result<Self, DomainNameError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(DomainNameError::Empty);
        }
        check_not_a_url(text)?;
        let given = || quote(text);
        for (index, character) in text.chars().enumerate() {
            let position = index + 1;
            if character.is_whitespace() {
                return Err(DomainNameError::Whitespace {
                    given: given(),
                    position,
                });
            }
        }
        if text.contains('*') {
            return Err(DomainNameError::Wildcard { given: given() });
        }
        if let Some((host, port)) = text.rsplit_once(':')
            && !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
        {
            return Err(DomainNameError::Port {
                given: given(),
                port: port.to_owned(),
                suggestion: suggestion_for(host),
            });
        }
        for (index, character) in text.chars().enumerate() {
            let allowed = !character.is_ascii()
                || character.is_ascii_alphanumeric()
                || matches!(character, '-' | '.');
            if !allowed {
                return Err(DomainNameError::InvalidCharacter {
                    given: given(),
                    character: quote_char(character),
                    position: index + 1,
                });
            }
        }
        // IDNA maps (lowercases, NFC, full-width dots to dots) and punycodes. STD3 rules
        // refuse what a mapping might produce outside letters, digits and hyphens; hyphen
        // placement and lengths are checked below with our own messages.
        let ascii = Uts46::new()
            .to_ascii(
                text.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Ignore,
            )
            .map_err(|_| DomainNameError::InvalidInternationalName { given: given() })?;
        let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
        if ascii.is_empty() {
            return Err(DomainNameError::EmptyLabel { given: given() });
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.iter().any(|label| label.is_empty()) {
            return Err(DomainNameError::EmptyLabel { given: given() });
        }
        for label in &labels {
            if label.len() > MAX_LABEL_LEN {
                return Err(DomainNameError::LabelTooLong {
                    label: quote(label),
                    length: label.len(),
                    max: MAX_LABEL_LEN,
                });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainNameError::HyphenAtLabelEdge {
                    label: quote(label),
                });
            }
        }
        if ascii.len() > MAX_DOMAIN_LEN {
            return Err(DomainNameError::TooLong {
                length: ascii.len(),
                max: MAX_DOMAIN_LEN,
            });
        }
        if labels.len() < 2 {
            return Err(DomainNameError::SingleLabel { given: given() });
        }
        // No top-level domain is all digits, so this is an address, not a name.
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(DomainNameError::IpAddress { given: given() });
        }
        Ok(DomainName(ascii.to_owned()))
    }

    /// The ASCII form: lowercase, punycode for international labels, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Unicode form for display (`bücher.example`).
    pub fn to_unicode(&self) -> String {
        idna::domain_to_unicode(&self.0).0
    }
}

/// Answers URL-shaped input (`https://contoso.com/x`, `ana@contoso.com`) with the
/// matching error and a guess at the domain meant.
fn check_not_a_url(text: &str) -> Result<(), DomainNameError> {
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(DomainNameError::Scheme {
            given: quote(text),
            scheme: scheme.chars().take(16).collect(),
            suggestion: suggestion_for(rest),
        });
    }
    if let Some(index) = text.find(['/', '?', '#', '\\']) {
        return Err(DomainNameError::Path {
            given: quote(text),
            suggestion: suggestion_for(&text[..index]),
        });
    }
    if let Some((_, host)) = text.rsplit_once('@') {
        return Err(DomainNameError::Userinfo {
            given: quote(text),
            suggestion: suggestion_for(host),
        });
    }
    Ok(())
}

/// The bare domain in a URL-like text, if it yields a valid one.
fn suggestion_for(text: &str) -> Option<String> {
    let host = text.split(['/', '?', '#', '\\']).next().unwrap_or(text);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    if host.is_empty() || host.contains(['/', '@', ':']) {
        return None;
    }
    DomainName::parse(host).ok().map(|domain| domain.0)
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for DomainName {
    type Err = DomainNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DomainName::parse(text)
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DomainName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The "restrict domains" login setting: sorted, without duplicates. Empty means no
/// restriction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct RestrictDomains(Vec<DomainName>);

/// One entry of a domain list that is not a bare domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{index}] {error}")]
pub struct InvalidDomainEntry {
    /// 0-based index of the entry in the list given.
    pub index: usize,
    /// What is wrong with it.
    pub error: DomainNameError,
}

/// Every invalid entry of a domain list (not only the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} of {total} restricted domains {} not valid: {}",
    .invalid.len(),
    if .invalid.len() == 1 { "is" } else { "are" },
    .invalid.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct RestrictDomainsError {
    /// The entries refused, in list order.
    pub invalid: Vec<InvalidDomainEntry>,
    /// How many entries were given.
    pub total: usize,
}

/// A user whose domain the restriction leaves out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{upn} cannot be invited or pair a phone: the domain {domain} is not one of this \
     integration's restricted domains ({allowed}); add it under Login settings > Restrict domains \
     or choose a user of an allowed domain"
)]
pub struct DomainNotAllowed {
    /// The user's UPN.
    pub upn: String,
    /// The user's domain.
    pub domain: String,
    /// The allowed domains, comma-separated.
    pub allowed: String,
}

impl RestrictDomains {
    /// No restriction: every domain is allowed.
    pub fn unrestricted() -> Self {
        RestrictDomains(Vec::new())
    }

    /// Validates every entry, reporting all invalid ones with their index; the valid
    /// result is normalised, sorted and de-duplicated.
    pub fn parse<I, S>(entries: I) -> Result<Self, RestrictDomainsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains = Vec::new();
        let mut invalid = Vec::new();
        let mut total = 0usize;
        for (index, entry) in entries.into_iter().enumerate() {
            total += 1;
            match DomainName::parse(entry.as_ref()) {
                Ok(domain) => domains.push(domain),
                Err(error) => invalid.push(InvalidDomainEntry { index, error }),
            }
        }
        if invalid.is_empty() {
            Ok(RestrictDomains::from_domains(domains))
        } else {
            Err(RestrictDomainsError { invalid, total })
        }
    }

    /// The list of already validated domains, sorted and de-duplicated.
    pub fn from_domains(domains: impl IntoIterator<Item = DomainName>) -> Self {
        let mut domains: Vec<DomainName> = domains.into_iter().collect();
        domains.sort();
        domains.dedup();
        RestrictDomains(domains)
    }

    /// Whether the list is empty, that is, every domain is allowed.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// The domains, sorted.
    pub fn domains(&self) -> &[DomainName] {
        &self.0
    }

    /// Whether `domain` is allowed: no restriction, or exactly listed.
    pub fn allows_domain(&self, domain: &DomainName) -> bool {
        self.is_unrestricted() || self.0.binary_search(domain).is_ok()
    }

    /// Whether the user with `upn` may be invited and pair a phone.
    pub fn allows(&self, upn: &Upn) -> bool {
        self.allows_domain(upn.domain())
    }

    /// Like [`RestrictDomains::allows`], with the message for the admin when refused.
    pub fn check(&self, upn: &Upn) -> Result<(), DomainNotAllowed> {
        if self.allows(upn) {
            return Ok(());
        }
        Err(DomainNotAllowed {
            upn: upn.to_string(),
            domain: upn.domain().to_string(),
            allowed: self
                .0
                .iter()
                .map(DomainName::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

impl Serialize for RestrictDomains {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RestrictDomains {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        RestrictDomains::parse(&entries).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> String {
        DomainName::parse(text).unwrap().as_str().to_owned()
    }

    fn message(text: &str) -> String {
        DomainName::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn normalises_case_trailing_dot_and_whitespace() {
        assert_eq!(domain("Contoso.COM"), "contoso.com");
        assert_eq!(domain("contoso.com."), "contoso.com");
        assert_eq!(domain("  eu.contoso.com\n"), "eu.contoso.com");
        assert_eq!(domain("my-company.co.uk"), "my-company.co.uk");
        assert_eq!(domain("contoso.onmicrosoft.com"), "contoso.onmicrosoft.com");
    }

    #[test]
    fn international_names_become_punycode() {
        // Punycode of "bücher" per RFC 3492's algorithm, as published in IDNA examples.
        assert_eq!(domain("Bücher.example"), "xn--bcher-kva.example");
        assert_eq!(domain("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(
            DomainName::parse("bücher.example").unwrap(),
            DomainName::parse("XN--BCHER-KVA.EXAMPLE.").unwrap()
        );
        assert_eq!(
            DomainName::parse("xn--bcher-kva.example")
                .unwrap()
                .to_unicode(),
            "bücher.example"
        );
        // Ideographic full stop is a dot in IDNA.
        assert_eq!(domain("例え。jp"), domain("例え.jp"));
        assert_eq!(
            message("xn--zz.example"),
            "\"xn--zz.example\" is not a valid international domain name"
        );
    }

    #[test]
    fn url_parts_get_specific_messages_and_a_suggestion() {
        assert_eq!(
            message("https://contoso.com/"),
            "\"https://contoso.com/\" starts with \"https://\": enter only the domain name (contoso.com)"
        );
        assert_eq!(
            message("contoso.com/login"),
            "\"contoso.com/login\" contains a path: enter only the domain name (contoso.com)"
        );
        assert_eq!(
            message("ana@contoso.com"),
            "\"ana@contoso.com\" contains '@': enter only the domain name, the part after '@' (contoso.com)"
        );
        assert_eq!(
            message("contoso.com:443"),
            "\"contoso.com:443\" contains the port \":443\": enter only the domain name (contoso.com)"
        );
        assert_eq!(
            message("https://user@contoso.com:8443/x"),
            "\"https://user@contoso.com:8443/x\" starts with \"https://\": enter only the domain name (contoso.com)"
        );
        // No suggestion when the rest is no domain either.
        assert_eq!(
            message("https://"),
            "\"https://\" starts with \"https://\": enter only the domain name"
        );
    }

    #[test]
    fn wildcards_spaces_and_characters_are_refused() {
        assert_eq!(
            message("*.contoso.com"),
            "\"*.contoso.com\" contains a wildcard '*': wildcards are not supported; list each domain, e.g. contoso.com"
        );
        assert_eq!(
            message("contoso .com"),
            "\"contoso .com\" contains a space at position 8: a domain name has no spaces"
        );
        assert_eq!(
            message("con_toso.com"),
            "\"con_toso.com\" contains '_' at position 4: a domain name has only letters, digits, hyphens and dots"
        );
        assert_eq!(
            message("[::1]"),
            "\"[::1]\" contains '[' at position 1: a domain name has only letters, digits, hyphens and dots"
        );
    }

    #[test]
    fn label_rules() {
        let empty = "has an empty label (a leading dot or two dots in a row)";
        assert_eq!(message("contoso..com"), format!("\"contoso..com\" {empty}"));
        assert_eq!(message(".contoso.com"), format!("\".contoso.com\" {empty}"));
        assert_eq!(
            message("contoso.com.."),
            format!("\"contoso.com..\" {empty}")
        );
        assert_eq!(message("."), format!("\".\" {empty}"));
        let long_label = "a".repeat(64);
        assert_eq!(
            message(&format!("{long_label}.com")),
            format!("the label \"{long_label}\" is 64 characters long; a label has at most 63")
        );
        assert_eq!(domain(&format!("{}.com", "a".repeat(63))).len(), 67);
        assert_eq!(
            message("-contoso.com"),
            "the label \"-contoso\" starts or ends with a hyphen, which a domain name does not allow"
        );
        assert_eq!(
            message("contoso-.com"),
            "the label \"contoso-\" starts or ends with a hyphen, which a domain name does not allow"
        );
    }

    #[test]
    fn whole_name_length_limit() {
        // 4 labels of 63 + 3 dots = 255 characters.
        let too_long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(
            message(&too_long),
            "the domain name is 255 characters long; the limit is 253"
        );
        let at_limit = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert_eq!(domain(&at_limit).len(), 253);
    }

    #[test]
    fn single_labels_and_addresses_are_not_domains() {
        assert_eq!(
            message("contoso"),
            "\"contoso\" is not a full domain name: add its suffix, e.g. contoso.com"
        );
        assert_eq!(
            message("10.0.0.1"),
            "\"10.0.0.1\" is an IP address: enter a domain name such as contoso.com"
        );
        assert_eq!(
            message("   "),
            "the domain name is empty: enter a domain such as contoso.com"
        );
    }

    #[test]
    fn restrict_domains_sorts_dedups_and_reports_every_bad_entry() {
        let list = RestrictDomains::parse(["fabrikam.com", "Contoso.com", "contoso.com."]).unwrap();
        let names: Vec<&str> = list.domains().iter().map(DomainName::as_str).collect();
        assert_eq!(names, ["contoso.com", "fabrikam.com"]);

        let error = RestrictDomains::parse(["https://contoso.com", "fabrikam.com", "", "*.x.com"])
            .unwrap_err();
        assert_eq!(
            error
                .invalid
                .iter()
                .map(|entry| entry.index)
                .collect::<Vec<_>>(),
            [0, 2, 3]
        );
        assert_eq!(
            error.to_string(),
            "3 of 4 restricted domains are not valid: \
             [0] \"https://contoso.com\" starts with \"https://\": enter only the domain name (contoso.com); \
             [2] the domain name is empty: enter a domain such as contoso.com; \
             [3] \"*.x.com\" contains a wildcard '*': wildcards are not supported; list each domain, e.g. contoso.com"
        );
        let one = RestrictDomains::parse(["ok.com", "bad"]).unwrap_err();
        assert!(
            one.to_string()
                .starts_with("1 of 2 restricted domains is not valid: [1] ")
        );
    }

    #[test]
    fn allows_exact_domains_only_and_empty_allows_all() {
        let list = RestrictDomains::parse(["contoso.com"]).unwrap();
        let ana = Upn::parse("ana@Contoso.com").unwrap();
        let eu = Upn::parse("eva@eu.contoso.com").unwrap();
        assert!(list.allows(&ana));
        assert!(!list.allows(&eu));
        assert!(RestrictDomains::unrestricted().allows(&eu));
        assert!(
            RestrictDomains::parse(Vec::<String>::new())
                .unwrap()
                .is_unrestricted()
        );
        assert_eq!(
            list.check(&eu).unwrap_err().to_string(),
            "eva@eu.contoso.com cannot be invited or pair a phone: the domain eu.contoso.com is not \
             one of this integration's restricted domains (contoso.com); add it under Login settings \
             > Restrict domains or choose a user of an allowed domain"
        );
        assert_eq!(list.check(&ana), Ok(()));
    }

    #[test]
    fn serde_validates_every_entry() {
        let list: RestrictDomains = serde_json::from_str(r#"["B.com","a.com","a.com"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["a.com","b.com"]"#
        );
        let error =
            serde_json::from_str::<RestrictDomains>(r#"["a.com","a b.com","c"]"#).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("[1] \"a b.com\" contains a space at position 2"),
            "{text}"
        );
        assert!(
            text.contains("[2] \"c\" is not a full domain name"),
            "{text}"
        );
        let domain: DomainName = serde_json::from_str("\"Contoso.COM\"").unwrap();
        assert_eq!(domain.as_str(), "contoso.com");
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panic(text in "\\PC{0,80}") {
            if let Ok(parsed) = DomainName::parse(&text) {
                let ascii = parsed.as_str();
                proptest::prop_assert!(ascii.is_ascii() && ascii.len() <= MAX_DOMAIN_LEN);
                proptest::prop_assert_eq!(ascii.to_ascii_lowercase(), ascii);
                // Normal form is a fixed point.
                proptest::prop_assert_eq!(DomainName::parse(ascii), Ok(parsed.clone()));
            }
        }

        #[test]
        fn ldh_names_are_accepted_lowercased(
            labels in proptest::collection::vec("[a-zA-Z]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", 2..5)
        ) {
            let text = labels.join(".");
            // A label starting with "xn--" must be valid punycode; others pass as they are.
            if !labels.iter().any(|label| label.to_ascii_lowercase().starts_with("xn--")) {
                let parsed = DomainName::parse(&text).unwrap();
                proptest::prop_assert_eq!(parsed.as_str(), text.to_ascii_lowercase());
            }
        }

        #[test]
        fn restrict_domains_reports_exactly_the_bad_entries(
            entries in proptest::collection::vec(
                proptest::prop_oneof!["[a-z]{1,6}\\.com", "https://[a-z]{1,6}\\.com", "[a-z]{1,6}"],
                0..8,
            )
        ) {
            let bad: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, entry)| DomainName::parse(entry).is_err())
                .map(|(index, _)| index)
                .collect();
            match RestrictDomains::parse(&entries) {
                Ok(list) => {
                    proptest::prop_assert!(bad.is_empty());
                    let domains = list.domains();
                    proptest::prop_assert!(domains.windows(2).all(|pair| pair[0] < pair[1]));
                }
                Err(error) => {
                    let reported: Vec<usize> = error.invalid.iter().map(|entry| entry.index).collect();
                    proptest::prop_assert_eq!(reported, bad);
                    proptest::prop_assert_eq!(error.total, entries.len());
                }
            }
        }
    }
}
