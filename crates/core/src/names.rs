//! The integration's application name, its internal id, and the Entra groups named
//! after it.
//!
//! Rules (from the product keybridge follows): letters, digits, spaces, hyphens and
//! underscores; the internal id is the name without spaces and is at most
//! [`MAX_INTERNAL_ID_LEN`] characters long. The name never changes after the integration
//! is created, and it becomes part of the display names of Entra groups, so it is
//! validated strictly and stored exactly as accepted: surrounding whitespace and double
//! spaces are **refused** with a message rather than silently tidied, so that the admin
//! sees the exact name that the groups will carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::state::UnknownVariant;
use crate::text::quote_char;

/// The longest application name accepted, in characters.
///
/// The internal-id rule alone allows at most 45 characters (23 without spaces, single
/// spaces between); this wider bound answers an obviously wrong input (a pasted
/// paragraph) with a plain "too long" before the internal-id message.
pub const MAX_NAME_LEN: usize = 64;

/// The longest internal id (the name without spaces), in characters.
pub const MAX_INTERNAL_ID_LEN: usize = 23;

/// A validated application name, e.g. `Contoso Passkeys`.
///
/// Construct with [`ApplicationName::parse`] (or `str::parse`); serialises as the plain
/// string and is validated again when deserialised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApplicationName(String);

/// Why a text is not a valid application name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplicationNameError {
    /// Nothing but whitespace was given.
    #[error("the application name is empty: enter a name such as \"Contoso Passkeys\"")]
    Empty,
    /// The name starts with whitespace.
    #[error("the application name starts with a space: remove the leading space")]
    LeadingWhitespace,
    /// The name ends with whitespace.
    #[error("the application name ends with a space: remove the trailing space")]
    TrailingWhitespace,
    /// Two spaces in a row.
    #[error(
        "the application name has two spaces in a row at position {position}: use a single space between words"
    )]
    DoubleSpace {
        /// 1-based character position of the second space.
        position: usize,
    },
    /// A character outside the allowed set.
    #[error(
        "the application name cannot contain {character} (position {position}): use only letters A-Z and a-z, digits, spaces, hyphens (-) and underscores (_)"
    )]
    InvalidCharacter {
        /// The character, quoted and escaped.
        character: String,
        /// 1-based character position.
        position: usize,
    },
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("the application name is {length} characters long; the limit is {max}")]
    TooLong {
        /// The length given, in characters.
        length: usize,
        /// The limit, [`MAX_NAME_LEN`].
        max: usize,
    },
    /// The name without spaces is longer than [`MAX_INTERNAL_ID_LEN`].
    #[error(
        "the application name without spaces (its internal id \"{internal_id}\") is {length} characters long; the limit is {max}: shorten the name"
    )]
    InternalIdTooLong {
        /// The name without spaces.
        internal_id: String,
        /// Its length in characters.
        length: usize,
        /// The limit, [`MAX_INTERNAL_ID_LEN`].
        max: usize,
    },
}

impl ApplicationName {
    /// Validates `text` as an application name. See the module docs for the rules.
    pub fn parse(text: &str) -> Result<Self, ApplicationNameError> {
        if text.trim().is_empty() {
            return Err(ApplicationNameError::Empty);
        }
        if text.starts_with(char::is_whitespace) {
            return Err(ApplicationNameError::LeadingWhitespace);
        }
        if text.ends_with(char::is_whitespace) {
            return Err(ApplicationNameError::TrailingWhitespace);
        }
        let mut previous_was_space = false;
        let mut length = 0usize;
        for (index, character) in text.chars().enumerate() {
            let position = index + 1;
            length = position;
            let allowed = character.is_ascii_alphanumeric() || matches!(character, ' ' | '-' | '_');
            if !allowed {
                return Err(ApplicationNameError::InvalidCharacter {
                    character: quote_char(character),
                    position,
                });
            }
            if character == ' ' && previous_was_space {
                return Err(ApplicationNameError::DoubleSpace { position });
            }
            previous_was_space = character == ' ';
        }
        if length > MAX_NAME_LEN {
            return Err(ApplicationNameError::TooLong {
                length,
                max: MAX_NAME_LEN,
            });
        }
        let internal_id: String = text.chars().filter(|c| *c != ' ').collect();
        // Only ASCII remains, so bytes are characters.
        if internal_id.len() > MAX_INTERNAL_ID_LEN {
            return Err(ApplicationNameError::InternalIdTooLong {
                length: internal_id.len(),
                internal_id,
                max: MAX_INTERNAL_ID_LEN,
            });
        }
        Ok(ApplicationName(text.to_owned()))
    }

    /// The name as the admin entered it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The internal id: the name with its spaces removed (`ContosoPasskeys`),
    /// 1 to [`MAX_INTERNAL_ID_LEN`] characters of letters, digits, `-` and `_`.
    ///
    /// Uniqueness among integrations is the store's to enforce.
    pub fn internal_id(&self) -> String {
        self.0.chars().filter(|c| *c != ' ').collect()
    }

    /// The Entra groups this integration keeps in step, named after this application.
    pub fn group_plan(&self) -> GroupPlan {
        GroupPlan::new(self)
    }
}

impl fmt::Display for ApplicationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ApplicationName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ApplicationName {
    type Err = ApplicationNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ApplicationName::parse(text)
    }
}

impl Serialize for ApplicationName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ApplicationName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ApplicationName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The display name of the group shared by every integration of a tenant.
pub const NOT_YET_ENROLLED_GROUP: &str = "Users Not Yet Enrolled";

/// One of the four Entra groups keybridge keeps in step with users' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRole {
    /// `<Application Name> (Eligible for Pairing)`: invited users who have not paired yet.
    EligibleForPairing,
    /// `<Application Name> (Client Paired with keybridge)`: a phone is paired, no Entra
    /// passkey yet.
    PairedWithKeybridge,
    /// `<Application Name> (Client Paired with Entra)`: the phone's passkey is in Entra.
    PairedWithEntra,
    /// `Users Not Yet Enrolled`: every user without an Entra passkey. Its name carries no
    /// application name, so integrations of the same tenant share it.
    NotYetEnrolled,
}

impl GroupRole {
    /// The four roles.
    pub const ALL: [GroupRole; 4] = [
        GroupRole::EligibleForPairing,
        GroupRole::PairedWithKeybridge,
        GroupRole::PairedWithEntra,
        GroupRole::NotYetEnrolled,
    ];

    /// The stable text form used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupRole::EligibleForPairing => "eligible_for_pairing",
            GroupRole::PairedWithKeybridge => "paired_with_keybridge",
            GroupRole::PairedWithEntra => "paired_with_entra",
            GroupRole::NotYetEnrolled => "not_yet_enrolled",
        }
    }

    /// The suffix after the application name, or `None` for the shared
    /// [`NOT_YET_ENROLLED_GROUP`].
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            GroupRole::EligibleForPairing => Some("(Eligible for Pairing)"),
            GroupRole::PairedWithKeybridge => Some("(Client Paired with keybridge)"),
            GroupRole::PairedWithEntra => Some("(Client Paired with Entra)"),
            GroupRole::NotYetEnrolled => None,
        }
    }
}

impl fmt::Display for GroupRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const GROUP_ROLE_NAMES: [&str; 4] = [
    "eligible_for_pairing",
    "paired_with_keybridge",
    "paired_with_entra",
    "not_yet_enrolled",
];

impl FromStr for GroupRole {
    type Err = UnknownVariant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        GroupRole::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownVariant::new("group role", text, &GROUP_ROLE_NAMES))
    }
}

/// The names of the four Entra groups of one integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    application: ApplicationName,
}

impl GroupPlan {
    /// The plan for `application`.
    pub fn new(application: &ApplicationName) -> Self {
        GroupPlan {
            application: application.clone(),
        }
    }

    /// The Entra display name of the group with `role`, e.g.
    /// `Contoso Passkeys (Client Paired with Entra)`.
    pub fn display_name(&self, role: GroupRole) -> String {
        match role.suffix() {
            Some(suffix) => format!("{} {suffix}", self.application),
            None => NOT_YET_ENROLLED_GROUP.to_owned(),
        }
    }

    /// A `mailNickname` for creating the group through Graph (which requires one even
    /// for security groups): ASCII without spaces, at most 64 characters, e.g.
    /// `ContosoPasskeys-ClientPairedWithEntra`.
    pub fn mail_nickname(&self, role: GroupRole) -> String {
        let id = self.application.internal_id();
        match role {
            GroupRole::EligibleForPairing => format!("{id}-EligibleForPairing"),
            GroupRole::PairedWithKeybridge => format!("{id}-ClientPairedWithKeybridge"),
            GroupRole::PairedWithEntra => format!("{id}-ClientPairedWithEntra"),
            GroupRole::NotYetEnrolled => "UsersNotYetEnrolled".to_owned(),
        }
    }

    /// Every role with its display name, in [`GroupRole::ALL`] order.
    pub fn group_names(&self) -> [(GroupRole, String); 4] {
        GroupRole::ALL.map(|role| (role, self.display_name(role)))
    }

    /// The role whose display name is exactly `display_name`, if any.
    pub fn role_of(&self, display_name: &str) -> Option<GroupRole> {
        GroupRole::ALL
            .into_iter()
            .find(|role| self.display_name(*role) == display_name)
    }
}

/// The four group display names of `application`; shorthand for
/// [`GroupPlan::group_names`].
pub fn group_names(application: &ApplicationName) -> [(GroupRole, String); 4] {
    GroupPlan::new(application).group_names()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> ApplicationName {
        ApplicationName::parse(text).unwrap()
    }

    fn message(text: &str) -> String {
        ApplicationName::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn accepts_letters_digits_spaces_hyphens_underscores() {
        let accepted = name("Contoso Passkeys-2_EU");
        assert_eq!(accepted.as_str(), "Contoso Passkeys-2_EU");
        assert_eq!(accepted.internal_id(), "ContosoPasskeys-2_EU");
        assert_eq!(name("X").internal_id(), "X");
    }

    #[test]
    fn internal_id_limit_is_23_characters_without_spaces() {
        // 23 letters plus spaces: accepted.
        let at_limit = "Abcdefghij Klmnopqrst Uvw";
        assert_eq!(name(at_limit).internal_id().len(), 23);
        assert_eq!(
            message("Abcdefghij Klmnopqrst Uvwx"),
            "the application name without spaces (its internal id \"AbcdefghijKlmnopqrstUvwx\") \
             is 24 characters long; the limit is 23: shorten the name"
        );
    }

    #[test]
    fn empty_and_whitespace_only_are_empty() {
        let expected = "the application name is empty: enter a name such as \"Contoso Passkeys\"";
        assert_eq!(message(""), expected);
        assert_eq!(message("  \t "), expected);
    }

    #[test]
    fn surrounding_and_double_spaces_are_refused_not_tidied() {
        assert_eq!(
            message(" Contoso"),
            "the application name starts with a space: remove the leading space"
        );
        assert_eq!(
            message("Contoso "),
            "the application name ends with a space: remove the trailing space"
        );
        assert_eq!(
            message("Contoso\n"),
            "the application name ends with a space: remove the trailing space"
        );
        assert_eq!(
            message("Contoso  Passkeys"),
            "the application name has two spaces in a row at position 9: use a single space between words"
        );
    }

    #[test]
    fn invalid_characters_are_named_with_their_position() {
        assert_eq!(
            message("Contoso!"),
            "the application name cannot contain '!' (position 8): use only letters A-Z and a-z, \
             digits, spaces, hyphens (-) and underscores (_)"
        );
        assert_eq!(
            ApplicationName::parse("Café App").unwrap_err(),
            ApplicationNameError::InvalidCharacter {
                character: "'é'".into(),
                position: 4
            }
        );
        assert_eq!(
            ApplicationName::parse("A\tB").unwrap_err(),
            ApplicationNameError::InvalidCharacter {
                character: r"'\t'".into(),
                position: 2
            }
        );
        assert_eq!(
            ApplicationName::parse("Contoso (EU)").unwrap_err(),
            ApplicationNameError::InvalidCharacter {
                character: "'('".into(),
                position: 9
            }
        );
    }

    #[test]
    fn very_long_names_get_the_plain_length_message() {
        let long = "a ".repeat(40) + "b";
        assert_eq!(
            message(&long),
            "the application name is 81 characters long; the limit is 64"
        );
    }

    #[test]
    fn serde_is_a_validated_string() {
        let accepted: ApplicationName = serde_json::from_str("\"Contoso Passkeys\"").unwrap();
        assert_eq!(
            serde_json::to_string(&accepted).unwrap(),
            "\"Contoso Passkeys\""
        );
        let refused = serde_json::from_str::<ApplicationName>("\"Contoso/Passkeys\"").unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the application name cannot contain '/' (position 8)"),
            "{refused}"
        );
    }

    #[test]
    fn group_names_follow_the_product() {
        let plan = name("Contoso Passkeys").group_plan();
        assert_eq!(
            plan.group_names(),
            [
                (
                    GroupRole::EligibleForPairing,
                    "Contoso Passkeys (Eligible for Pairing)".to_owned()
                ),
                (
                    GroupRole::PairedWithKeybridge,
                    "Contoso Passkeys (Client Paired with keybridge)".to_owned()
                ),
                (
                    GroupRole::PairedWithEntra,
                    "Contoso Passkeys (Client Paired with Entra)".to_owned()
                ),
                (
                    GroupRole::NotYetEnrolled,
                    "Users Not Yet Enrolled".to_owned()
                ),
            ]
        );
        assert_eq!(group_names(&name("Contoso Passkeys")), plan.group_names());
        assert_eq!(
            plan.role_of("Contoso Passkeys (Client Paired with Entra)"),
            Some(GroupRole::PairedWithEntra)
        );
        assert_eq!(plan.role_of("Contoso Passkeys"), None);
    }

    #[test]
    fn mail_nicknames_fit_graph_rules_for_the_longest_name() {
        let longest = name("Abcdefghij-Klmnopqrst_U");
        let plan = longest.group_plan();
        for role in GroupRole::ALL {
            let nickname = plan.mail_nickname(role);
            assert!(nickname.len() <= 64, "{nickname}");
            assert!(
                nickname
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{nickname}"
            );
        }
        assert_eq!(
            plan.mail_nickname(GroupRole::PairedWithEntra),
            "Abcdefghij-Klmnopqrst_U-ClientPairedWithEntra"
        );
    }

    #[test]
    fn group_roles_parse_their_stable_names() {
        for role in GroupRole::ALL {
            assert_eq!(role.as_str().parse::<GroupRole>(), Ok(role));
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        assert_eq!(
            "eligible".parse::<GroupRole>().unwrap_err().to_string(),
            "\"eligible\" is not a valid group role: expected one of eligible_for_pairing, \
             paired_with_keybridge, paired_with_entra, not_yet_enrolled"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panic(text in "\\PC{0,80}") {
            if let Ok(accepted) = ApplicationName::parse(&text) {
                let id = accepted.internal_id();
                proptest::prop_assert!((1..=MAX_INTERNAL_ID_LEN).contains(&id.len()));
                proptest::prop_assert!(accepted.as_str().len() <= MAX_NAME_LEN);
                proptest::prop_assert!(!accepted.as_str().contains("  "));
                proptest::prop_assert_eq!(accepted.as_str(), text.as_str());
            }
        }

        #[test]
        fn names_from_the_allowed_alphabet_follow_the_length_rule(
            words in proptest::collection::vec("[A-Za-z0-9_-]{1,8}", 1..6)
        ) {
            let text = words.join(" ");
            let id_length = text.len() - (words.len() - 1);
            let result = ApplicationName::parse(&text);
            proptest::prop_assert_eq!(result.is_ok(), id_length <= MAX_INTERNAL_ID_LEN, "{}", text);
            if let Ok(accepted) = result {
                proptest::prop_assert_eq!(accepted.internal_id(), words.concat());
            }
        }
    }
}
