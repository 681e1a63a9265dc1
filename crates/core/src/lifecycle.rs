//! The user-state machine: pure transitions from a user's facts and a command to the new
//! facts, the domain events to audit and the Entra group memberships wanted afterwards.
//!
//! # Facts
//! [`UserFacts`] holds what keybridge knows of one user: the [`UserState`], the
//! `unpaired` warning, the [`EntraStatus`], whether an invitation is open, how many
//! phones are paired and how many Entra passkeys keybridge registered for them. The
//! state follows from the counts (no phone: Pending; phones but no passkey: Paired with
//! keybridge; a passkey: Paired with Entra), and facts that disagree are refused by
//! [`UserFacts::from_stored`]. Each phone holds at most one Entra passkey for the user,
//! which is what keeps a retry from registering a second one.
//!
//! # Decisions
//! - **Invitations.** Pairing needs an open invitation (the Device Manager page is
//!   reached through one) and uses it up. An invitation can be sent in any state (to
//!   pair another phone), but only to an active account. Revoking one is always allowed.
//! - **Observations are never refused for the account status.** A passkey registered or
//!   removed in Entra, or a new status, is a fact reported by Entra; only the intents
//!   "invite" and "pair a phone" require an active account.
//! - **Groups mirror the state.** `Users Not Yet Enrolled` while the user has no Entra
//!   passkey; `(Eligible for Pairing)` while Pending with an open invitation, and *not*
//!   after pairing (the user then moves to the group of the paired state); exactly one
//!   of `(Client Paired with keybridge)` / `(Client Paired with Entra)` for the paired
//!   states. A disabled account keeps its groups; an account not found in Entra, or
//!   deleted from keybridge, is in no group.
//! - **Unpairing** the last phone returns the user to Pending with the `unpaired`
//!   warning ("This user unpaired from keybridge."); pairing again clears it. The
//!   phone's Entra passkey, if it had one, must be deleted in Entra.
//! - **Deleting** a user leaves a tombstone ([`UserFacts::is_deleted`]) that refuses
//!   every further command; its events ask for the deletion of every Entra passkey
//!   keybridge registered.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::GroupRole;
use crate::state::{EntraStatus, UserState};

/// The most phones one user may have paired at a time. Entra keeps about 20 passkeys per
/// user, and each phone carries one.
pub const MAX_PAIRED_PHONES: u32 = 20;

/// What keybridge knows of one user. Consistent by construction: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserFacts {
    state: UserState,
    unpaired: bool,
    entra_status: EntraStatus,
    invited: bool,
    paired_phones: u32,
    entra_passkeys: u32,
    deleted: bool,
}

/// The facts as the store keeps them, field by field; turn into [`UserFacts`] with
/// [`UserFacts::from_stored`], which checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredUserFacts {
    /// The stored state.
    pub state: UserState,
    /// The "This user unpaired from keybridge." warning.
    pub unpaired: bool,
    /// The account status last seen in Entra.
    pub entra_status: EntraStatus,
    /// Whether an invitation is open.
    pub invited: bool,
    /// Phones paired with keybridge.
    pub paired_phones: u32,
    /// Entra passkeys keybridge registered (and has not seen removed).
    pub entra_passkeys: u32,
}

/// Stored facts that contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InconsistentFacts {
    /// More phones than [`MAX_PAIRED_PHONES`].
    #[error("{paired_phones} paired phones are recorded; the limit is {max}")]
    TooManyPhones {
        /// Phones recorded.
        paired_phones: u32,
        /// The limit.
        max: u32,
    },
    /// More passkeys than phones.
    #[error(
        "{entra_passkeys} Entra passkeys are recorded for {paired_phones} paired phones; each phone has at most one"
    )]
    MorePasskeysThanPhones {
        /// Phones recorded.
        paired_phones: u32,
        /// Passkeys recorded.
        entra_passkeys: u32,
    },
    /// The state does not follow from the counts.
    #[error(
        "the state {state} does not match {paired_phones} paired phones and {entra_passkeys} Entra passkeys, which mean {expected}"
    )]
    StateMismatch {
        /// The state recorded.
        state: UserState,
        /// The state the counts mean.
        expected: UserState,
        /// Phones recorded.
        paired_phones: u32,
        /// Passkeys recorded.
        entra_passkeys: u32,
    },
    /// The unpaired warning on a paired user.
    #[error(
        "the unpaired warning is set on a user in state {state}; only a pending user can carry it"
    )]
    UnpairedWhilePaired {
        /// The state recorded.
        state: UserState,
    },
}

/// The state that `paired_phones` and `entra_passkeys` mean.
pub fn state_for(paired_phones: u32, entra_passkeys: u32) -> UserState {
    if paired_phones == 0 {
        UserState::Pending
    } else if entra_passkeys == 0 {
        UserState::PairedWithKeybridge
    } else {
        UserState::PairedWithEntra
    }
}

impl UserFacts {
    /// A user the directory sync has just found: Pending, not invited, nothing paired.
    pub fn discovered(entra_status: EntraStatus) -> Self {
        UserFacts {
            state: UserState::Pending,
            unpaired: false,
            entra_status,
            invited: false,
            paired_phones: 0,
            entra_passkeys: 0,
            deleted: false,
        }
    }

    /// Checks stored facts and makes them usable for [`apply`].
    pub fn from_stored(stored: StoredUserFacts) -> Result<Self, InconsistentFacts> {
        let StoredUserFacts {
            state,
            unpaired,
            entra_status,
            invited,
            paired_phones,
            entra_passkeys,
        } = stored;
        if paired_phones > MAX_PAIRED_PHONES {
            return Err(InconsistentFacts::TooManyPhones {
                paired_phones,
                max: MAX_PAIRED_PHONES,
            });
        }
        if entra_passkeys > paired_phones {
            return Err(InconsistentFacts::MorePasskeysThanPhones {
                paired_phones,
                entra_passkeys,
            });
        }
        let expected = state_for(paired_phones, entra_passkeys);
        if state != expected {
            return Err(InconsistentFacts::StateMismatch {
                state,
                expected,
                paired_phones,
                entra_passkeys,
            });
        }
        if unpaired && state != UserState::Pending {
            return Err(InconsistentFacts::UnpairedWhilePaired { state });
        }
        Ok(UserFacts {
            state,
            unpaired,
            entra_status,
            invited,
            paired_phones,
            entra_passkeys,
            deleted: false,
        })
    }

    /// The facts to store, or `None` once the user is deleted (remove the record).
    pub fn to_stored(&self) -> Option<StoredUserFacts> {
        if self.deleted {
            return None;
        }
        Some(StoredUserFacts {
            state: self.state,
            unpaired: self.unpaired,
            entra_status: self.entra_status,
            invited: self.invited,
            paired_phones: self.paired_phones,
            entra_passkeys: self.entra_passkeys,
        })
    }

    /// Where the user stands in enrolment.
    pub fn state(&self) -> UserState {
        self.state
    }

    /// Whether the user unpaired their last phone ("This user unpaired from keybridge.").
    pub fn is_unpaired(&self) -> bool {
        self.unpaired
    }

    /// The account status last seen in Entra.
    pub fn entra_status(&self) -> EntraStatus {
        self.entra_status
    }

    /// Whether an invitation is open.
    pub fn is_invited(&self) -> bool {
        self.invited
    }

    /// Phones paired with keybridge.
    pub fn paired_phones(&self) -> u32 {
        self.paired_phones
    }

    /// Entra passkeys keybridge registered for this user.
    pub fn entra_passkeys(&self) -> u32 {
        self.entra_passkeys
    }

    /// Whether the user was deleted from keybridge; every command is then refused.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The warning the console shows for this user, if any.
    pub fn warning(&self) -> Option<&'static str> {
        match self.entra_status.warning() {
            Some(warning) => Some(warning),
            None if self.unpaired => Some(UNPAIRED_WARNING),
            None => None,
        }
    }
}

/// The warning shown on a Pending user who unpaired their phone.
pub const UNPAIRED_WARNING: &str = "This user unpaired from keybridge.";

/// Something that happens to a user: an admin's or user's intent, or a fact seen in Entra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Send an invitation (single-use link to the Device Manager page).
    Invite,
    /// Withdraw the open invitation.
    RevokeInvite,
    /// A phone was paired with keybridge through the invitation.
    PairPhone,
    /// keybridge registered a phone's passkey in Entra (`POST fido2Methods` succeeded).
    PasskeyRegistered,
    /// A passkey keybridge registered is gone from Entra (removed there by someone else).
    PasskeyRemovedInEntra,
    /// A phone was unpaired (by the phone or an admin) or a device deleted.
    UnpairPhone {
        /// Whether that phone had an Entra passkey, which must now be deleted in Entra.
        had_entra_passkey: bool,
    },
    /// An admin deleted the user from keybridge (irreversible).
    DeleteAccount,
    /// The sync or a status check saw the account with this status.
    EntraStatusObserved {
        /// The status seen.
        status: EntraStatus,
    },
}

impl Command {
    /// The stable snake_case name (also the serde tag).
    pub fn name(self) -> &'static str {
        match self {
            Command::Invite => "invite",
            Command::RevokeInvite => "revoke_invite",
            Command::PairPhone => "pair_phone",
            Command::PasskeyRegistered => "passkey_registered",
            Command::PasskeyRemovedInEntra => "passkey_removed_in_entra",
            Command::UnpairPhone { .. } => "unpair_phone",
            Command::DeleteAccount => "delete_account",
            Command::EntraStatusObserved { .. } => "entra_status_observed",
        }
    }

    /// What the command does, for messages ("pair a phone").
    fn phrase(self) -> &'static str {
        match self {
            Command::Invite => "be invited",
            Command::RevokeInvite => "have an invitation revoked",
            Command::PairPhone => "pair a phone",
            Command::PasskeyRegistered => "get an Entra passkey registered",
            Command::PasskeyRemovedInEntra => "have an Entra passkey removed",
            Command::UnpairPhone { .. } => "unpair a phone",
            Command::DeleteAccount => "be deleted",
            Command::EntraStatusObserved { .. } => "have a new Entra status recorded",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A domain event of a transition; [`LifecycleEvent::action`] is its stable audit action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// An invitation was sent.
    UserInvited,
    /// The open invitation was withdrawn.
    InviteRevoked,
    /// A phone was paired (the invitation is used up).
    PhonePaired,
    /// A passkey was registered in Entra.
    EntraPasskeyRegistered,
    /// A passkey keybridge registered was removed in Entra by someone else.
    EntraPasskeyRemovedInEntra,
    /// A phone was unpaired.
    PhoneUnpaired,
    /// Entra passkeys keybridge registered must now be deleted in Entra.
    EntraPasskeysDeletionRequested {
        /// How many.
        count: u32,
    },
    /// The user's last phone was unpaired: Pending, with the unpaired warning.
    UserUnpaired,
    /// The user was deleted from keybridge.
    UserDeleted,
    /// The user moved between states.
    StateChanged {
        /// The state before.
        from: UserState,
        /// The state after.
        to: UserState,
    },
    /// Entra reported a different account status.
    EntraStatusChanged {
        /// The status before.
        from: EntraStatus,
        /// The status after.
        to: EntraStatus,
    },
}

impl LifecycleEvent {
    /// Every audit action, in declaration order.
    pub const ACTIONS: [&'static str; 11] = [
        "user_invited",
        "invite_revoked",
        "phone_paired",
        "entra_passkey_registered",
        "entra_passkey_removed_in_entra",
        "phone_unpaired",
        "entra_passkeys_deletion_requested",
        "user_unpaired",
        "user_deleted",
        "state_changed",
        "entra_status_changed",
    ];

    /// The stable snake_case audit action (also the serde tag).
    pub fn action(self) -> &'static str {
        match self {
            LifecycleEvent::UserInvited => "user_invited",
            LifecycleEvent::InviteRevoked => "invite_revoked",
            LifecycleEvent::PhonePaired => "phone_paired",
            LifecycleEvent::EntraPasskeyRegistered => "entra_passkey_registered",
            LifecycleEvent::EntraPasskeyRemovedInEntra => "entra_passkey_removed_in_entra",
            LifecycleEvent::PhoneUnpaired => "phone_unpaired",
            LifecycleEvent::EntraPasskeysDeletionRequested { .. } => {
                "entra_passkeys_deletion_requested"
            }
            LifecycleEvent::UserUnpaired => "user_unpaired",
            LifecycleEvent::UserDeleted => "user_deleted",
            LifecycleEvent::StateChanged { .. } => "state_changed",
            LifecycleEvent::EntraStatusChanged { .. } => "entra_status_changed",
        }
    }
}

/// The outcome of an accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The facts after the command.
    pub facts: UserFacts,
    /// What happened, in order; empty when nothing changed (a status seen again).
    pub events: Vec<LifecycleEvent>,
    /// The groups the user should be in afterwards ([`desired_groups`] of `facts`).
    pub desired_groups: BTreeSet<GroupRole>,
    /// Groups wanted now and not before.
    pub groups_to_add: BTreeSet<GroupRole>,
    /// Groups wanted before and not now.
    pub groups_to_remove: BTreeSet<GroupRole>,
}

/// Why a command is refused. The facts stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The user was deleted from keybridge.
    #[error("this user was deleted from keybridge, so they cannot {} ({command} refused)", .command.phrase())]
    Deleted {
        /// The refused command.
        command: Command,
    },
    /// Invite or pair for an account that is not active in Entra.
    /// Invite or pair for an account deleted in Entra.
    #[error(
        "This user cannot be found in Microsoft Entra, so they cannot {}; run a directory sync \
         if the account was restored.",
        .command.phrase()
    )]
    AccountNotFound {
        /// The refused command.
        command: Command,
    },
    /// Invite or pair for an account disabled in Entra.
    #[error(
        "This user's account is disabled in Microsoft Entra, so they cannot {}; enable the \
         account in the Microsoft Entra admin center, then run a directory sync.",
        .command.phrase()
    )]
    AccountDisabled {
        /// The refused command.
        command: Command,
    },
    /// Pairing without an open invitation.
    #[error("this user has no open invitation: invite them before they pair a phone")]
    NotInvited,
    /// Revoking when no invitation is open.
    #[error("this user has no open invitation to revoke")]
    NoInvitation,
    /// The phone limit is reached.
    #[error(
        "this user already has {max} paired phones, the most keybridge allows: unpair one first"
    )]
    TooManyPhones {
        /// The limit, [`MAX_PAIRED_PHONES`].
        max: u32,
    },
    /// The command needs a paired phone.
    #[error("this user has no paired phone, so they cannot {} ({command} refused)", .command.phrase())]
    NoPairedPhone {
        /// The refused command.
        command: Command,
    },
    /// A passkey registered while every phone already has one.
    #[error(
        "each of this user's {paired_phones} paired phones already has an Entra passkey: \
         keybridge never registers a second passkey for the same phone"
    )]
    EveryPhoneHasPasskey {
        /// Phones paired.
        paired_phones: u32,
    },
    /// The command needs an Entra passkey registered by keybridge.
    #[error(
        "keybridge has no Entra passkey recorded for this user, so they cannot {} ({command} refused)",
        .command.phrase()
    )]
    NoEntraPasskey {
        /// The refused command.
        command: Command,
    },
    /// Unpairing a phone "without a passkey" when every phone has one.
    #[error(
        "every paired phone of this user has an Entra passkey, so the phone being unpaired has one \
         too and it must be deleted in Entra (unpair_phone with had_entra_passkey = true)"
    )]
    NoPhoneWithoutPasskey,
}

fn require_active(facts: &UserFacts, command: Command) -> Result<(), TransitionError> {
    match facts.entra_status {
        EntraStatus::Active => Ok(()),
        EntraStatus::Disabled => Err(TransitionError::AccountDisabled { command }),
        EntraStatus::NotFound => Err(TransitionError::AccountNotFound { command }),
    }
}

/// Applies `command` to `facts`: the new facts, their events and groups, or why the
/// command is refused. Pure: the caller persists the result.
pub fn apply(facts: &UserFacts, command: Command) -> Result<Transition, TransitionError> {
    if facts.deleted {
        return Err(TransitionError::Deleted { command });
    }
    let mut next = facts.clone();
    let mut events = Vec::new();
    match command {
        Command::Invite => {
            require_active(facts, command)?;
            next.invited = true;
            events.push(LifecycleEvent::UserInvited);
        }
        Command::RevokeInvite => {
            if !facts.invited {
                return Err(TransitionError::NoInvitation);
            }
            next.invited = false;
            events.push(LifecycleEvent::InviteRevoked);
        }
        Command::PairPhone => {
            require_active(facts, command)?;
            if !facts.invited {
                return Err(TransitionError::NotInvited);
            }
            if facts.paired_phones >= MAX_PAIRED_PHONES {
                return Err(TransitionError::TooManyPhones {
                    max: MAX_PAIRED_PHONES,
                });
            }
            next.paired_phones += 1;
            next.invited = false;
            next.unpaired = false;
            events.push(LifecycleEvent::PhonePaired);
        }
        Command::PasskeyRegistered => {
            if facts.paired_phones == 0 {
                return Err(TransitionError::NoPairedPhone { command });
            }
            if facts.entra_passkeys >= facts.paired_phones {
                return Err(TransitionError::EveryPhoneHasPasskey {
                    paired_phones: facts.paired_phones,
                });
            }
            next.entra_passkeys += 1;
            events.push(LifecycleEvent::EntraPasskeyRegistered);
        }
        Command::PasskeyRemovedInEntra => {
            if facts.entra_passkeys == 0 {
                return Err(TransitionError::NoEntraPasskey { command });
            }
            next.entra_passkeys -= 1;
            events.push(LifecycleEvent::EntraPasskeyRemovedInEntra);
        }
        Command::UnpairPhone { had_entra_passkey } => {
            if facts.paired_phones == 0 {
                return Err(TransitionError::NoPairedPhone { command });
            }
            if had_entra_passkey {
                if facts.entra_passkeys == 0 {
                    return Err(TransitionError::NoEntraPasskey { command });
                }
                next.entra_passkeys -= 1;
            } else if facts.entra_passkeys == facts.paired_phones {
                return Err(TransitionError::NoPhoneWithoutPasskey);
            }
            next.paired_phones -= 1;
            events.push(LifecycleEvent::PhoneUnpaired);
            if had_entra_passkey {
                events.push(LifecycleEvent::EntraPasskeysDeletionRequested { count: 1 });
            }
            if next.paired_phones == 0 {
                next.unpaired = true;
                events.push(LifecycleEvent::UserUnpaired);
            }
        }
        Command::DeleteAccount => {
            if facts.entra_passkeys > 0 {
                events.push(LifecycleEvent::EntraPasskeysDeletionRequested {
                    count: facts.entra_passkeys,
                });
            }
            next = UserFacts {
                deleted: true,
                ..UserFacts::discovered(facts.entra_status)
            };
            events.push(LifecycleEvent::UserDeleted);
        }
        Command::EntraStatusObserved { status } => {
            if status != facts.entra_status {
                next.entra_status = status;
                events.push(LifecycleEvent::EntraStatusChanged {
                    from: facts.entra_status,
                    to: status,
                });
            }
        }
    }
    next.state = state_for(next.paired_phones, next.entra_passkeys);
    // A deleted user has no state left to change to.
    if next.state != facts.state && !next.deleted {
        events.push(LifecycleEvent::StateChanged {
            from: facts.state,
            to: next.state,
        });
    }
    let before = desired_groups(facts);
    let desired = desired_groups(&next);
    Ok(Transition {
        groups_to_add: desired.difference(&before).copied().collect(),
        groups_to_remove: before.difference(&desired).copied().collect(),
        desired_groups: desired,
        facts: next,
        events,
    })
}

/// The Entra groups `facts` call for; the directory sync diffs these against Entra's
/// memberships. See the module docs for the rules.
pub fn desired_groups(facts: &UserFacts) -> BTreeSet<GroupRole> {
    let mut groups = BTreeSet::new();
    if facts.deleted || facts.entra_status == EntraStatus::NotFound {
        return groups;
    }
    match facts.state {
        UserState::Pending => {
            if facts.invited {
                groups.insert(GroupRole::EligibleForPairing);
            }
            groups.insert(GroupRole::NotYetEnrolled);
        }
        UserState::PairedWithKeybridge => {
            groups.insert(GroupRole::PairedWithKeybridge);
            groups.insert(GroupRole::NotYetEnrolled);
        }
        UserState::PairedWithEntra => {
            groups.insert(GroupRole::PairedWithEntra);
        }
    }
    groups
}

#[cfg(test)]
mod tests;
