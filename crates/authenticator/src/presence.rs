//! User approval: the [`UserPresence`] trait and its implementations.
//!
//! The authenticator asks before every ceremony. A phone app would show a dialog; the CLI
//! counts running the command as presence and the PIN that unlocked the store as verification
//! ([`PinUnlocked`]); tests pass closures.

use std::fmt;

/// Which ceremony the user is asked to approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// Creating a passkey (makeCredential).
    Registration,
    /// Signing in (getAssertion).
    Authentication,
}

/// What the user is asked to approve; shown to the user by interactive implementations.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    /// Registration or sign-in.
    pub ceremony: Ceremony,
    /// The relying party id.
    pub rp_id: &'a str,
    /// The origin the request claims to come from.
    pub origin: &'a str,
    /// The account's user name.
    pub user_name: &'a str,
    /// The account's display name.
    pub user_display_name: &'a str,
    /// Whether the relying party requires user verification.
    pub user_verification_required: bool,
}

impl fmt::Display for ApprovalRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.ceremony {
            Ceremony::Registration => "create a passkey",
            Ceremony::Authentication => "sign in",
        };
        write!(
            f,
            "{action} for {} at {} (origin {})",
            self.user_name, self.rp_id, self.origin
        )
    }
}

/// The user's answer when they approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// True when the user was verified (PIN or a biometric stand-in), which sets the UV flag.
    pub user_verified: bool,
}

/// The user declined, or could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Declined {
    /// Why, in words for the user.
    pub reason: String,
}

/// Asks the user to approve a ceremony. Returning `Ok` means the user was present (UP).
pub trait UserPresence {
    /// Asks for approval of `request`.
    fn approve(&mut self, request: &ApprovalRequest<'_>) -> Result<Approval, Declined>;
}

impl<F> UserPresence for F
where
    F: FnMut(&ApprovalRequest<'_>) -> Result<Approval, Declined>,
{
    fn approve(&mut self, request: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
        self(request)
    }
}

/// Approval for the CLI: the user unlocked the key store with the PIN for this very command,
/// which is user verification, and ran the command, which is presence.
///
/// Only [`crate::FileStore::user_verification`] makes one, so holding it shows that a store was
/// opened with its PIN.
#[derive(Debug)]
pub struct PinUnlocked {
    _private: (),
}

impl PinUnlocked {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }
}

impl UserPresence for PinUnlocked {
    fn approve(&mut self, _request: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
        Ok(Approval {
            user_verified: true,
        })
    }
}
