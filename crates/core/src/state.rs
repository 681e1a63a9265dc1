//! The lifecycle state of a directory user in keybridge, and the user's account status
//! in Entra.
//!
//! Both are persisted by the store in their [`UserState::as_str`] / [`EntraStatus::as_str`]
//! form: those strings never change. The rules that move a user between states live in
//! [`crate::lifecycle`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::text::quote;

/// Where a user stands in enrolment. Stored as the `as_str` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// Known from the directory, no phone paired (maybe invited).
    Pending,
    /// A phone is paired with keybridge; no Entra passkey yet.
    PairedWithKeybridge,
    /// The phone's passkey is registered in Entra.
    PairedWithEntra,
}

impl UserState {
    /// Every state, in enrolment order.
    pub const ALL: [UserState; 3] = [
        UserState::Pending,
        UserState::PairedWithKeybridge,
        UserState::PairedWithEntra,
    ];

    /// The stable text form used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Pending => "pending",
            UserState::PairedWithKeybridge => "paired_with_keybridge",
            UserState::PairedWithEntra => "paired_with_entra",
        }
    }

    /// The name an admin sees in the console's tabs ("Paired with keybridge").
    pub fn label(self) -> &'static str {
        match self {
            UserState::Pending => "Pending",
            UserState::PairedWithKeybridge => "Paired with keybridge",
            UserState::PairedWithEntra => "Paired with Entra",
        }
    }
}

impl fmt::Display for UserState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserState {
    type Err = UnknownVariant;

    /// Parses the exact [`UserState::as_str`] form (as stored), nothing looser.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        UserState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownVariant::new("user state", text, &USER_STATE_NAMES))
    }
}

const USER_STATE_NAMES: [&str; 3] = ["pending", "paired_with_keybridge", "paired_with_entra"];

/// The user's account as Entra last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntraStatus {
    /// The account exists and is enabled.
    Active,
    /// The account exists but sign-in is blocked.
    Disabled,
    /// The account was deleted in Entra ("This user cannot be found in Microsoft Entra.").
    NotFound,
}

impl EntraStatus {
    /// Every status.
    pub const ALL: [EntraStatus; 3] = [
        EntraStatus::Active,
        EntraStatus::Disabled,
        EntraStatus::NotFound,
    ];

    /// The stable text form used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntraStatus::Active => "active",
            EntraStatus::Disabled => "disabled",
            EntraStatus::NotFound => "not_found",
        }
    }

    /// The warning the console shows beside a user with this status, if any.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            EntraStatus::Active => None,
            EntraStatus::Disabled => Some("This user's account is disabled in Microsoft Entra."),
            EntraStatus::NotFound => Some("This user cannot be found in Microsoft Entra."),
        }
    }
}

impl fmt::Display for EntraStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntraStatus {
    type Err = UnknownVariant;

    /// Parses the exact [`EntraStatus::as_str`] form (as stored), nothing looser.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        EntraStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownVariant::new("Entra status", text, &ENTRA_STATUS_NAMES))
    }
}

const ENTRA_STATUS_NAMES: [&str; 3] = ["active", "disabled", "not_found"];

/// A stored or submitted name that is not one of an enum's stable text forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given} is not a valid {what}: expected one of {}", .expected.join(", "))]
pub struct UnknownVariant {
    /// What was being parsed ("user state", "Entra status", ...).
    pub what: &'static str,
    /// The text given, quoted and escaped for display.
    pub given: String,
    /// The accepted forms.
    pub expected: &'static [&'static str],
}

impl UnknownVariant {
    pub(crate) fn new(what: &'static str, given: &str, expected: &'static [&'static str]) -> Self {
        UnknownVariant {
            what,
            given: quote(given),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_are_stable() {
        assert_eq!(UserState::Pending.as_str(), "pending");
        assert_eq!(
            UserState::PairedWithKeybridge.as_str(),
            "paired_with_keybridge"
        );
        assert_eq!(UserState::PairedWithEntra.as_str(), "paired_with_entra");
        assert_eq!(EntraStatus::Active.as_str(), "active");
        assert_eq!(EntraStatus::Disabled.as_str(), "disabled");
        assert_eq!(EntraStatus::NotFound.as_str(), "not_found");
    }

    #[test]
    fn from_str_round_trips_and_matches_serde() {
        for state in UserState::ALL {
            assert_eq!(state.as_str().parse::<UserState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        for status in EntraStatus::ALL {
            assert_eq!(status.as_str().parse::<EntraStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn from_str_is_exact() {
        assert!("Pending".parse::<UserState>().is_err());
        assert!(" active".parse::<EntraStatus>().is_err());
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let error = "paired".parse::<UserState>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"paired\" is not a valid user state: expected one of pending, \
             paired_with_keybridge, paired_with_entra"
        );
        let error = "deleted\n".parse::<EntraStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"deleted\\n\" is not a valid Entra status: expected one of active, disabled, not_found"
        );
    }
}
