//! The lifecycle state of a directory user in keybridge.

use serde::{Deserialize, Serialize};

/// Where a user stands in enrolment. Stored as the `as_str` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The stable text form used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Pending => "pending",
            UserState::PairedWithKeybridge => "paired_with_keybridge",
            UserState::PairedWithEntra => "paired_with_entra",
        }
    }
}

/// The user's account as Entra last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The stable text form used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntraStatus::Active => "active",
            EntraStatus::Disabled => "disabled",
            EntraStatus::NotFound => "not_found",
        }
    }
}
