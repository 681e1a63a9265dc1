//! Tests of the user-state machine: a table over every (state, command) pair, the
//! messages users see, scenarios, and properties over random command sequences.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const ACTIVE: EntraStatus = EntraStatus::Active;
const DISABLED: EntraStatus = EntraStatus::Disabled;
const NOT_FOUND: EntraStatus = EntraStatus::NotFound;

const ELIGIBLE: GroupRole = GroupRole::EligibleForPairing;
const G_KEYBRIDGE: GroupRole = GroupRole::PairedWithKeybridge;
const G_ENTRA: GroupRole = GroupRole::PairedWithEntra;
const NOT_ENROLLED: GroupRole = GroupRole::NotYetEnrolled;

const PENDING: UserState = UserState::Pending;
const KEYBRIDGE: UserState = UserState::PairedWithKeybridge;
const ENTRA: UserState = UserState::PairedWithEntra;

const UNPAIR_WITH_PASSKEY: Command = Command::UnpairPhone {
    had_entra_passkey: true,
};
const UNPAIR_WITHOUT_PASSKEY: Command = Command::UnpairPhone {
    had_entra_passkey: false,
};

/// Every command, every variant of its parameters.
const ALL_COMMANDS: [Command; 11] = [
    Command::Invite,
    Command::RevokeInvite,
    Command::PairPhone,
    Command::PasskeyRegistered,
    Command::PasskeyRemovedInEntra,
    UNPAIR_WITH_PASSKEY,
    UNPAIR_WITHOUT_PASSKEY,
    Command::DeleteAccount,
    Command::EntraStatusObserved { status: ACTIVE },
    Command::EntraStatusObserved { status: DISABLED },
    Command::EntraStatusObserved { status: NOT_FOUND },
];

fn stored(
    state: UserState,
    phones: u32,
    passkeys: u32,
    invited: bool,
    unpaired: bool,
    entra_status: EntraStatus,
) -> StoredUserFacts {
    StoredUserFacts {
        state,
        unpaired,
        entra_status,
        invited,
        paired_phones: phones,
        entra_passkeys: passkeys,
    }
}

fn facts(phones: u32, passkeys: u32, invited: bool, status: EntraStatus) -> UserFacts {
    UserFacts::from_stored(stored(
        state_for(phones, passkeys),
        phones,
        passkeys,
        invited,
        false,
        status,
    ))
    .unwrap()
}

fn deleted() -> UserFacts {
    apply(&UserFacts::discovered(ACTIVE), Command::DeleteAccount)
        .unwrap()
        .facts
}

fn actions(transition: &Transition) -> Vec<&'static str> {
    transition
        .events
        .iter()
        .map(|event| event.action())
        .collect()
}

fn groups(roles: &[GroupRole]) -> BTreeSet<GroupRole> {
    roles.iter().copied().collect()
}

/// What a row of the table expects.
enum Expect {
    /// Accepted: the stored facts after (`None`: deleted), the audit actions, the groups.
    Accepted(
        Option<StoredUserFacts>,
        &'static [&'static str],
        &'static [GroupRole],
    ),
    /// Refused with this error.
    Refused(TransitionError),
}

use Expect::{Accepted, Refused};

fn check_table(base_name: &str, base: &UserFacts, rows: Vec<(Command, Expect)>) {
    let covered: Vec<Command> = rows.iter().map(|(command, _)| *command).collect();
    assert_eq!(
        covered, ALL_COMMANDS,
        "{base_name}: the table must list every command once"
    );
    for (command, expect) in rows {
        let result = apply(base, command);
        match (expect, result) {
            (Accepted(after, expected_actions, expected_groups), Ok(transition)) => {
                assert_eq!(
                    transition.facts.to_stored(),
                    after,
                    "{base_name} + {command}: facts"
                );
                assert_eq!(
                    actions(&transition),
                    expected_actions,
                    "{base_name} + {command}: events"
                );
                assert_eq!(
                    transition.desired_groups,
                    groups(expected_groups),
                    "{base_name} + {command}: groups"
                );
            }
            (Refused(expected), Err(error)) => {
                assert_eq!(error, expected, "{base_name} + {command}");
            }
            (Accepted(..), Err(error)) => {
                panic!("{base_name} + {command}: expected acceptance, got {error}")
            }
            (Refused(expected), Ok(transition)) => {
                panic!("{base_name} + {command}: expected {expected:?}, got {transition:?}")
            }
        }
    }
}

#[test]
fn table_pending_invited() {
    let base = facts(0, 0, true, ACTIVE);
    check_table(
        "pending, invited",
        &base,
        vec![
            (
                Command::Invite,
                Accepted(
                    Some(stored(PENDING, 0, 0, true, false, ACTIVE)),
                    &["user_invited"],
                    &[ELIGIBLE, NOT_ENROLLED],
                ),
            ),
            (
                Command::RevokeInvite,
                Accepted(
                    Some(stored(PENDING, 0, 0, false, false, ACTIVE)),
                    &["invite_revoked"],
                    &[NOT_ENROLLED],
                ),
            ),
            (
                Command::PairPhone,
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, false, false, ACTIVE)),
                    &["phone_paired", "state_changed"],
                    &[G_KEYBRIDGE, NOT_ENROLLED],
                ),
            ),
            (
                Command::PasskeyRegistered,
                Refused(TransitionError::NoPairedPhone {
                    command: Command::PasskeyRegistered,
                }),
            ),
            (
                Command::PasskeyRemovedInEntra,
                Refused(TransitionError::NoEntraPasskey {
                    command: Command::PasskeyRemovedInEntra,
                }),
            ),
            (
                UNPAIR_WITH_PASSKEY,
                Refused(TransitionError::NoPairedPhone {
                    command: UNPAIR_WITH_PASSKEY,
                }),
            ),
            (
                UNPAIR_WITHOUT_PASSKEY,
                Refused(TransitionError::NoPairedPhone {
                    command: UNPAIR_WITHOUT_PASSKEY,
                }),
            ),
            (
                Command::DeleteAccount,
                Accepted(None, &["user_deleted"], &[]),
            ),
            (
                Command::EntraStatusObserved { status: ACTIVE },
                Accepted(
                    Some(stored(PENDING, 0, 0, true, false, ACTIVE)),
                    &[],
                    &[ELIGIBLE, NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: DISABLED },
                Accepted(
                    Some(stored(PENDING, 0, 0, true, false, DISABLED)),
                    &["entra_status_changed"],
                    &[ELIGIBLE, NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: NOT_FOUND },
                Accepted(
                    Some(stored(PENDING, 0, 0, true, false, NOT_FOUND)),
                    &["entra_status_changed"],
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn table_pending_not_invited() {
    let base = facts(0, 0, false, ACTIVE);
    check_table(
        "pending, not invited",
        &base,
        vec![
            (
                Command::Invite,
                Accepted(
                    Some(stored(PENDING, 0, 0, true, false, ACTIVE)),
                    &["user_invited"],
                    &[ELIGIBLE, NOT_ENROLLED],
                ),
            ),
            (
                Command::RevokeInvite,
                Refused(TransitionError::NoInvitation),
            ),
            (Command::PairPhone, Refused(TransitionError::NotInvited)),
            (
                Command::PasskeyRegistered,
                Refused(TransitionError::NoPairedPhone {
                    command: Command::PasskeyRegistered,
                }),
            ),
            (
                Command::PasskeyRemovedInEntra,
                Refused(TransitionError::NoEntraPasskey {
                    command: Command::PasskeyRemovedInEntra,
                }),
            ),
            (
                UNPAIR_WITH_PASSKEY,
                Refused(TransitionError::NoPairedPhone {
                    command: UNPAIR_WITH_PASSKEY,
                }),
            ),
            (
                UNPAIR_WITHOUT_PASSKEY,
                Refused(TransitionError::NoPairedPhone {
                    command: UNPAIR_WITHOUT_PASSKEY,
                }),
            ),
            (
                Command::DeleteAccount,
                Accepted(None, &["user_deleted"], &[]),
            ),
            (
                Command::EntraStatusObserved { status: ACTIVE },
                Accepted(
                    Some(stored(PENDING, 0, 0, false, false, ACTIVE)),
                    &[],
                    &[NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: DISABLED },
                Accepted(
                    Some(stored(PENDING, 0, 0, false, false, DISABLED)),
                    &["entra_status_changed"],
                    &[NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: NOT_FOUND },
                Accepted(
                    Some(stored(PENDING, 0, 0, false, false, NOT_FOUND)),
                    &["entra_status_changed"],
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn table_paired_with_keybridge() {
    let base = facts(1, 0, false, ACTIVE);
    check_table(
        "paired with keybridge",
        &base,
        vec![
            (
                Command::Invite,
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, true, false, ACTIVE)),
                    &["user_invited"],
                    &[G_KEYBRIDGE, NOT_ENROLLED],
                ),
            ),
            (
                Command::RevokeInvite,
                Refused(TransitionError::NoInvitation),
            ),
            (Command::PairPhone, Refused(TransitionError::NotInvited)),
            (
                Command::PasskeyRegistered,
                Accepted(
                    Some(stored(ENTRA, 1, 1, false, false, ACTIVE)),
                    &["entra_passkey_registered", "state_changed"],
                    &[G_ENTRA],
                ),
            ),
            (
                Command::PasskeyRemovedInEntra,
                Refused(TransitionError::NoEntraPasskey {
                    command: Command::PasskeyRemovedInEntra,
                }),
            ),
            (
                UNPAIR_WITH_PASSKEY,
                Refused(TransitionError::NoEntraPasskey {
                    command: UNPAIR_WITH_PASSKEY,
                }),
            ),
            (
                UNPAIR_WITHOUT_PASSKEY,
                Accepted(
                    Some(stored(PENDING, 0, 0, false, true, ACTIVE)),
                    &["phone_unpaired", "user_unpaired", "state_changed"],
                    &[NOT_ENROLLED],
                ),
            ),
            (
                Command::DeleteAccount,
                Accepted(None, &["user_deleted"], &[]),
            ),
            (
                Command::EntraStatusObserved { status: ACTIVE },
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, false, false, ACTIVE)),
                    &[],
                    &[G_KEYBRIDGE, NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: DISABLED },
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, false, false, DISABLED)),
                    &["entra_status_changed"],
                    &[G_KEYBRIDGE, NOT_ENROLLED],
                ),
            ),
            (
                Command::EntraStatusObserved { status: NOT_FOUND },
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, false, false, NOT_FOUND)),
                    &["entra_status_changed"],
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn table_paired_with_entra() {
    let base = facts(1, 1, false, ACTIVE);
    check_table(
        "paired with Entra",
        &base,
        vec![
            (
                Command::Invite,
                Accepted(
                    Some(stored(ENTRA, 1, 1, true, false, ACTIVE)),
                    &["user_invited"],
                    &[G_ENTRA],
                ),
            ),
            (
                Command::RevokeInvite,
                Refused(TransitionError::NoInvitation),
            ),
            (Command::PairPhone, Refused(TransitionError::NotInvited)),
            (
                Command::PasskeyRegistered,
                Refused(TransitionError::EveryPhoneHasPasskey { paired_phones: 1 }),
            ),
            (
                Command::PasskeyRemovedInEntra,
                Accepted(
                    Some(stored(KEYBRIDGE, 1, 0, false, false, ACTIVE)),
                    &["entra_passkey_removed_in_entra", "state_changed"],
                    &[G_KEYBRIDGE, NOT_ENROLLED],
                ),
            ),
            (
                UNPAIR_WITH_PASSKEY,
                Accepted(
                    Some(stored(PENDING, 0, 0, false, true, ACTIVE)),
                    &[
                        "phone_unpaired",
                        "entra_passkeys_deletion_requested",
                        "user_unpaired",
                        "state_changed",
                    ],
                    &[NOT_ENROLLED],
                ),
            ),
            (
                UNPAIR_WITHOUT_PASSKEY,
                Refused(TransitionError::NoPhoneWithoutPasskey),
            ),
            (
                Command::DeleteAccount,
                Accepted(
                    None,
                    &["entra_passkeys_deletion_requested", "user_deleted"],
                    &[],
                ),
            ),
            (
                Command::EntraStatusObserved { status: ACTIVE },
                Accepted(
                    Some(stored(ENTRA, 1, 1, false, false, ACTIVE)),
                    &[],
                    &[G_ENTRA],
                ),
            ),
            (
                Command::EntraStatusObserved { status: DISABLED },
                Accepted(
                    Some(stored(ENTRA, 1, 1, false, false, DISABLED)),
                    &["entra_status_changed"],
                    &[G_ENTRA],
                ),
            ),
            (
                Command::EntraStatusObserved { status: NOT_FOUND },
                Accepted(
                    Some(stored(ENTRA, 1, 1, false, false, NOT_FOUND)),
                    &["entra_status_changed"],
                    &[],
                ),
            ),
        ],
    );
}

#[test]
fn table_deleted_refuses_everything() {
    let base = deleted();
    let rows = ALL_COMMANDS
        .into_iter()
        .map(|command| (command, Refused(TransitionError::Deleted { command })))
        .collect();
    check_table("deleted", &base, rows);
}

#[test]
fn only_invite_and_pair_need_an_active_account() {
    for status in [DISABLED, NOT_FOUND] {
        for (phones, passkeys) in [(0, 0), (1, 0), (1, 1)] {
            let base = facts(phones, passkeys, true, status);
            for command in ALL_COMMANDS {
                let result = apply(&base, command);
                if matches!(command, Command::Invite | Command::PairPhone) {
                    let expected = if status == DISABLED {
                        TransitionError::AccountDisabled { command }
                    } else {
                        TransitionError::AccountNotFound { command }
                    };
                    assert_eq!(
                        result.unwrap_err(),
                        expected,
                        "{status} {phones}/{passkeys} {command}"
                    );
                } else if let Err(error) = result {
                    assert!(
                        !matches!(
                            error,
                            TransitionError::AccountDisabled { .. }
                                | TransitionError::AccountNotFound { .. }
                        ),
                        "{status} {phones}/{passkeys} {command}: {error}"
                    );
                }
            }
        }
    }
}

#[test]
fn event_payloads() {
    let pending = facts(0, 0, true, ACTIVE);
    let paired = apply(&pending, Command::PairPhone).unwrap();
    assert_eq!(
        paired.events,
        [
            LifecycleEvent::PhonePaired,
            LifecycleEvent::StateChanged {
                from: PENDING,
                to: KEYBRIDGE
            }
        ]
    );
    assert_eq!(paired.groups_to_add, groups(&[G_KEYBRIDGE]));
    assert_eq!(paired.groups_to_remove, groups(&[ELIGIBLE]));

    let disabled = apply(&pending, Command::EntraStatusObserved { status: DISABLED }).unwrap();
    assert_eq!(
        disabled.events,
        [LifecycleEvent::EntraStatusChanged {
            from: ACTIVE,
            to: DISABLED
        }]
    );

    let three_passkeys = facts(4, 3, false, ACTIVE);
    let removed = apply(&three_passkeys, Command::DeleteAccount).unwrap();
    assert_eq!(
        removed.events,
        [
            LifecycleEvent::EntraPasskeysDeletionRequested { count: 3 },
            LifecycleEvent::UserDeleted
        ]
    );
    assert!(removed.facts.is_deleted());
    assert_eq!(removed.groups_to_remove, groups(&[G_ENTRA]));
    assert!(removed.desired_groups.is_empty());
}

#[test]
fn several_phones() {
    // Two phones, one with a passkey: unpairing the other keeps the user in Entra.
    let two = facts(2, 1, false, ACTIVE);
    let kept = apply(&two, UNPAIR_WITHOUT_PASSKEY).unwrap();
    assert_eq!(kept.facts.state(), ENTRA);
    assert_eq!(actions(&kept), ["phone_unpaired"]);
    assert!(kept.groups_to_add.is_empty() && kept.groups_to_remove.is_empty());
    // Unpairing the one with the passkey leaves a phone paired with keybridge only.
    let back = apply(&two, UNPAIR_WITH_PASSKEY).unwrap();
    assert_eq!(back.facts.state(), KEYBRIDGE);
    assert!(!back.facts.is_unpaired());
    assert_eq!(
        actions(&back),
        [
            "phone_unpaired",
            "entra_passkeys_deletion_requested",
            "state_changed"
        ]
    );
    // A second passkey registers for the second phone without a state change.
    let second = apply(&two, Command::PasskeyRegistered).unwrap();
    assert_eq!(second.facts.entra_passkeys(), 2);
    assert_eq!(actions(&second), ["entra_passkey_registered"]);
    // Removing one of two passkeys in Entra keeps the user paired with Entra.
    let one_left = apply(&second.facts, Command::PasskeyRemovedInEntra).unwrap();
    assert_eq!(one_left.facts.state(), ENTRA);
}

#[test]
fn phone_limit() {
    let full = facts(MAX_PAIRED_PHONES, 0, true, ACTIVE);
    let error = apply(&full, Command::PairPhone).unwrap_err();
    assert_eq!(error, TransitionError::TooManyPhones { max: 20 });
    assert_eq!(
        error.to_string(),
        "this user already has 20 paired phones, the most keybridge allows: unpair one first"
    );
    let almost = facts(MAX_PAIRED_PHONES - 1, 0, true, ACTIVE);
    assert_eq!(
        apply(&almost, Command::PairPhone)
            .unwrap()
            .facts
            .paired_phones(),
        MAX_PAIRED_PHONES
    );
}

#[test]
fn whole_lifecycle_scenario() {
    let mut user = UserFacts::discovered(ACTIVE);
    assert_eq!(desired_groups(&user), groups(&[NOT_ENROLLED]));
    let mut step = |command| {
        let transition = apply(&user, command).unwrap();
        user = transition.facts.clone();
        transition
    };
    assert_eq!(
        step(Command::Invite).desired_groups,
        groups(&[ELIGIBLE, NOT_ENROLLED])
    );
    assert_eq!(
        step(Command::PairPhone).desired_groups,
        groups(&[G_KEYBRIDGE, NOT_ENROLLED])
    );
    let registered = step(Command::PasskeyRegistered);
    assert_eq!(
        registered.groups_to_remove,
        groups(&[G_KEYBRIDGE, NOT_ENROLLED])
    );
    assert_eq!(registered.groups_to_add, groups(&[G_ENTRA]));
    assert_eq!(
        step(Command::PasskeyRemovedInEntra).facts.state(),
        KEYBRIDGE
    );
    assert_eq!(step(Command::PasskeyRegistered).facts.state(), ENTRA);
    let unpaired = step(UNPAIR_WITH_PASSKEY);
    assert_eq!(unpaired.facts.state(), PENDING);
    assert!(unpaired.facts.is_unpaired());
    assert_eq!(
        unpaired.facts.warning(),
        Some("This user unpaired from keybridge.")
    );
    assert!(
        unpaired
            .events
            .contains(&LifecycleEvent::EntraPasskeysDeletionRequested { count: 1 })
    );
    // Pairing again needs a new invitation, and clears the warning.
    assert_eq!(
        apply(&unpaired.facts, Command::PairPhone).unwrap_err(),
        TransitionError::NotInvited
    );
    step(Command::Invite);
    let again = step(Command::PairPhone);
    assert!(!again.facts.is_unpaired());
    assert_eq!(again.facts.warning(), None);
    let gone = step(Command::EntraStatusObserved { status: NOT_FOUND });
    assert_eq!(
        gone.facts.warning(),
        Some("This user cannot be found in Microsoft Entra.")
    );
    assert_eq!(gone.groups_to_remove, groups(&[G_KEYBRIDGE, NOT_ENROLLED]));
    let restored = step(Command::EntraStatusObserved { status: ACTIVE });
    assert_eq!(restored.groups_to_add, groups(&[G_KEYBRIDGE, NOT_ENROLLED]));
}

#[test]
fn transition_error_messages() {
    let cases = [
        (
            TransitionError::Deleted {
                command: Command::PairPhone,
            },
            "this user was deleted from keybridge, so they cannot pair a phone (pair_phone refused)",
        ),
        (
            TransitionError::AccountNotFound {
                command: Command::Invite,
            },
            "This user cannot be found in Microsoft Entra, so they cannot be invited; run a \
             directory sync if the account was restored.",
        ),
        (
            TransitionError::AccountDisabled {
                command: Command::PairPhone,
            },
            "This user's account is disabled in Microsoft Entra, so they cannot pair a phone; \
             enable the account in the Microsoft Entra admin center, then run a directory sync.",
        ),
        (
            TransitionError::NotInvited,
            "this user has no open invitation: invite them before they pair a phone",
        ),
        (
            TransitionError::NoInvitation,
            "this user has no open invitation to revoke",
        ),
        (
            TransitionError::NoPairedPhone {
                command: Command::PasskeyRegistered,
            },
            "this user has no paired phone, so they cannot get an Entra passkey registered \
             (passkey_registered refused)",
        ),
        (
            TransitionError::NoPairedPhone {
                command: UNPAIR_WITHOUT_PASSKEY,
            },
            "this user has no paired phone, so they cannot unpair a phone (unpair_phone refused)",
        ),
        (
            TransitionError::EveryPhoneHasPasskey { paired_phones: 2 },
            "each of this user's 2 paired phones already has an Entra passkey: keybridge never \
             registers a second passkey for the same phone",
        ),
        (
            TransitionError::NoEntraPasskey {
                command: Command::PasskeyRemovedInEntra,
            },
            "keybridge has no Entra passkey recorded for this user, so they cannot have an Entra \
             passkey removed (passkey_removed_in_entra refused)",
        ),
        (
            TransitionError::NoPhoneWithoutPasskey,
            "every paired phone of this user has an Entra passkey, so the phone being unpaired has \
             one too and it must be deleted in Entra (unpair_phone with had_entra_passkey = true)",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
    // The errors above are the ones apply really returns.
    assert_eq!(
        apply(&facts(0, 0, false, NOT_FOUND), Command::Invite).unwrap_err(),
        TransitionError::AccountNotFound {
            command: Command::Invite
        }
    );
}

#[test]
fn stored_facts_are_checked() {
    let cases = [
        (
            stored(PENDING, 21, 0, false, false, ACTIVE),
            "21 paired phones are recorded; the limit is 20",
        ),
        (
            stored(ENTRA, 1, 2, false, false, ACTIVE),
            "2 Entra passkeys are recorded for 1 paired phones; each phone has at most one",
        ),
        (
            stored(ENTRA, 1, 0, false, false, ACTIVE),
            "the state paired_with_entra does not match 1 paired phones and 0 Entra passkeys, \
             which mean paired_with_keybridge",
        ),
        (
            stored(PENDING, 1, 1, false, false, ACTIVE),
            "the state pending does not match 1 paired phones and 1 Entra passkeys, which mean \
             paired_with_entra",
        ),
        (
            stored(KEYBRIDGE, 1, 0, false, true, ACTIVE),
            "the unpaired warning is set on a user in state paired_with_keybridge; only a pending \
             user can carry it",
        ),
    ];
    for (record, message) in cases {
        assert_eq!(
            UserFacts::from_stored(record).unwrap_err().to_string(),
            message
        );
    }
    let good = stored(PENDING, 0, 0, true, true, DISABLED);
    assert_eq!(
        UserFacts::from_stored(good).unwrap().to_stored(),
        Some(good)
    );
    assert_eq!(deleted().to_stored(), None);
}

#[test]
fn serde_forms_are_stable() {
    assert_eq!(
        serde_json::to_value(UNPAIR_WITH_PASSKEY).unwrap(),
        serde_json::json!({"command": "unpair_phone", "had_entra_passkey": true})
    );
    assert_eq!(
        serde_json::from_value::<Command>(
            serde_json::json!({"command": "entra_status_observed", "status": "not_found"})
        )
        .unwrap(),
        Command::EntraStatusObserved { status: NOT_FOUND }
    );
    assert_eq!(
        serde_json::to_value(LifecycleEvent::StateChanged {
            from: PENDING,
            to: KEYBRIDGE
        })
        .unwrap(),
        serde_json::json!({"action": "state_changed", "from": "pending", "to": "paired_with_keybridge"})
    );
    for command in ALL_COMMANDS {
        let json = serde_json::to_value(command).unwrap();
        assert_eq!(json["command"], command.name());
        assert_eq!(serde_json::from_value::<Command>(json).unwrap(), command);
    }
    let stored_json = serde_json::to_value(stored(KEYBRIDGE, 1, 0, true, false, ACTIVE)).unwrap();
    assert_eq!(stored_json["state"], "paired_with_keybridge");
    assert_eq!(stored_json["entra_status"], "active");
}

/// One example of each event, for the tests of actions.
fn every_event() -> [LifecycleEvent; 11] {
    [
        LifecycleEvent::UserInvited,
        LifecycleEvent::InviteRevoked,
        LifecycleEvent::PhonePaired,
        LifecycleEvent::EntraPasskeyRegistered,
        LifecycleEvent::EntraPasskeyRemovedInEntra,
        LifecycleEvent::PhoneUnpaired,
        LifecycleEvent::EntraPasskeysDeletionRequested { count: 1 },
        LifecycleEvent::UserUnpaired,
        LifecycleEvent::UserDeleted,
        LifecycleEvent::StateChanged {
            from: PENDING,
            to: KEYBRIDGE,
        },
        LifecycleEvent::EntraStatusChanged {
            from: ACTIVE,
            to: DISABLED,
        },
    ]
}

#[test]
fn event_actions_are_unique_snake_case_and_match_serde() {
    let events = every_event();
    let listed: Vec<&str> = events.iter().map(|event| event.action()).collect();
    assert_eq!(listed, LifecycleEvent::ACTIONS);
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len());
    for event in events {
        let action = event.action();
        assert!(
            action.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{action}"
        );
        assert_eq!(serde_json::to_value(event).unwrap()["action"], action);
    }
}

// ---- properties over random command sequences ----

fn any_status() -> impl Strategy<Value = EntraStatus> {
    prop_oneof![Just(ACTIVE), Just(DISABLED), Just(NOT_FOUND)]
}

fn any_command() -> impl Strategy<Value = Command> {
    // Invitations and pairings are frequent so that sequences reach every state; the
    // status mostly stays active so that they can happen.
    prop_oneof![
        4 => Just(Command::Invite),
        1 => Just(Command::RevokeInvite),
        4 => Just(Command::PairPhone),
        3 => Just(Command::PasskeyRegistered),
        2 => Just(Command::PasskeyRemovedInEntra),
        3 => any::<bool>().prop_map(|had_entra_passkey| Command::UnpairPhone { had_entra_passkey }),
        1 => Just(Command::DeleteAccount),
        2 => prop_oneof![
            3 => Just(ACTIVE),
            1 => Just(DISABLED),
            1 => Just(NOT_FOUND),
        ]
        .prop_map(|status| Command::EntraStatusObserved { status }),
    ]
}

/// Any consistent facts a store could hold.
fn any_facts() -> impl Strategy<Value = UserFacts> {
    (0..=MAX_PAIRED_PHONES)
        .prop_flat_map(|phones| {
            (
                Just(phones),
                0..=phones,
                any::<bool>(),
                any::<bool>(),
                any_status(),
            )
        })
        .prop_map(|(phones, passkeys, invited, unpaired, status)| {
            UserFacts::from_stored(stored(
                state_for(phones, passkeys),
                phones,
                passkeys,
                invited,
                unpaired && phones == 0,
                status,
            ))
            .unwrap()
        })
}

/// The rules restated independently of `apply`: whether `command` is accepted.
fn accepted_by_the_rules(before: &UserFacts, command: Command) -> bool {
    let phones = before.paired_phones();
    let passkeys = before.entra_passkeys();
    if before.is_deleted() {
        return false;
    }
    match command {
        Command::Invite => before.entra_status() == ACTIVE,
        Command::RevokeInvite => before.is_invited(),
        Command::PairPhone => {
            before.entra_status() == ACTIVE && before.is_invited() && phones < MAX_PAIRED_PHONES
        }
        Command::PasskeyRegistered => passkeys < phones,
        Command::PasskeyRemovedInEntra => passkeys > 0,
        Command::UnpairPhone {
            had_entra_passkey: true,
        } => passkeys > 0,
        Command::UnpairPhone {
            had_entra_passkey: false,
        } => passkeys < phones,
        Command::DeleteAccount | Command::EntraStatusObserved { .. } => true,
    }
}

fn check_groups(facts: &UserFacts, desired: &BTreeSet<GroupRole>) -> Result<(), TestCaseError> {
    prop_assert_eq!(desired, &desired_groups(facts));
    if facts.is_deleted() || facts.entra_status() == NOT_FOUND {
        prop_assert!(desired.is_empty());
        return Ok(());
    }
    prop_assert_eq!(desired.contains(&NOT_ENROLLED), facts.state() != ENTRA);
    let state_groups = [ELIGIBLE, G_KEYBRIDGE, G_ENTRA]
        .into_iter()
        .filter(|role| desired.contains(role))
        .count();
    let expected_state_groups = usize::from(facts.state() != PENDING || facts.is_invited());
    prop_assert_eq!(state_groups, expected_state_groups);
    prop_assert_eq!(
        desired.contains(&ELIGIBLE),
        facts.state() == PENDING && facts.is_invited()
    );
    prop_assert_eq!(desired.contains(&G_KEYBRIDGE), facts.state() == KEYBRIDGE);
    prop_assert_eq!(desired.contains(&G_ENTRA), facts.state() == ENTRA);
    Ok(())
}

fn check_accepted(
    before: &UserFacts,
    command: Command,
    transition: &Transition,
) -> Result<(), TestCaseError> {
    let after = &transition.facts;
    let names = actions(transition);
    for name in &names {
        prop_assert!(LifecycleEvent::ACTIONS.contains(name));
    }
    // Consistency: the facts survive the store's check.
    match after.to_stored() {
        Some(record) => prop_assert_eq!(&UserFacts::from_stored(record).unwrap(), after),
        None => {
            prop_assert!(after.is_deleted());
            prop_assert_eq!(command, Command::DeleteAccount);
            prop_assert_eq!((after.paired_phones(), after.entra_passkeys()), (0, 0));
        }
    }
    prop_assert_eq!(
        after.state(),
        state_for(after.paired_phones(), after.entra_passkeys())
    );
    prop_assert!(!after.is_unpaired() || after.state() == PENDING);
    // Groups and their difference.
    check_groups(after, &transition.desired_groups)?;
    let before_groups = desired_groups(before);
    prop_assert!(
        transition
            .groups_to_add
            .is_disjoint(&transition.groups_to_remove)
    );
    let rebuilt: BTreeSet<GroupRole> = before_groups
        .union(&transition.groups_to_add)
        .filter(|role| !transition.groups_to_remove.contains(role))
        .copied()
        .collect();
    prop_assert_eq!(&rebuilt, &transition.desired_groups);
    // A state change is announced exactly when it happens.
    let state_events: Vec<&LifecycleEvent> = transition
        .events
        .iter()
        .filter(|event| matches!(event, LifecycleEvent::StateChanged { .. }))
        .collect();
    if after.is_deleted() || after.state() == before.state() {
        prop_assert!(state_events.is_empty());
    } else {
        let expected = LifecycleEvent::StateChanged {
            from: before.state(),
            to: after.state(),
        };
        prop_assert_eq!(state_events, vec![&expected]);
    }
    // What each command does to the counts.
    let (phones, passkeys) = (before.paired_phones(), before.entra_passkeys());
    let counts = (after.paired_phones(), after.entra_passkeys());
    match command {
        Command::PairPhone => {
            prop_assert_eq!(counts, (phones + 1, passkeys));
            prop_assert!(!after.is_invited() && !after.is_unpaired());
        }
        Command::PasskeyRegistered => prop_assert_eq!(counts, (phones, passkeys + 1)),
        Command::PasskeyRemovedInEntra => prop_assert_eq!(counts, (phones, passkeys - 1)),
        Command::UnpairPhone { had_entra_passkey } => {
            let removed = u32::from(had_entra_passkey);
            prop_assert_eq!(counts, (phones - 1, passkeys - removed));
            prop_assert_eq!(after.is_unpaired(), phones == 1);
            prop_assert_eq!(
                names.contains(&"entra_passkeys_deletion_requested"),
                had_entra_passkey
            );
        }
        Command::DeleteAccount => {
            prop_assert_eq!(names.last(), Some(&"user_deleted"));
            let deletion = transition
                .events
                .iter()
                .find_map(|event| match event {
                    LifecycleEvent::EntraPasskeysDeletionRequested { count } => Some(*count),
                    _ => None,
                })
                .unwrap_or(0);
            prop_assert_eq!(deletion, passkeys);
        }
        Command::Invite | Command::RevokeInvite => {
            prop_assert_eq!(counts, (phones, passkeys));
            prop_assert_eq!(after.is_invited(), command == Command::Invite);
        }
        Command::EntraStatusObserved { status } => {
            prop_assert_eq!(counts, (phones, passkeys));
            prop_assert_eq!(after.entra_status(), status);
            prop_assert_eq!(names.is_empty(), status == before.entra_status());
        }
    }
    if !matches!(command, Command::EntraStatusObserved { .. }) {
        prop_assert!(!names.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_every_invariant(
        start in any_facts(),
        commands in proptest::collection::vec(any_command(), 0..80),
    ) {
        let mut facts = start;
        for command in commands {
            let before = facts.clone();
            let result = apply(&facts, command);
            prop_assert_eq!(result.is_ok(), accepted_by_the_rules(&before, command), "{:?} {:?}", before, command);
            match result {
                Ok(transition) => {
                    check_accepted(&before, command, &transition)?;
                    facts = transition.facts;
                }
                Err(error) => {
                    // Refused: nothing moved, and the message says something.
                    prop_assert_eq!(&facts, &before);
                    prop_assert!(error.to_string().len() > 20);
                }
            }
        }
    }

    #[test]
    fn fresh_users_reach_every_state(commands in proptest::collection::vec(any_command(), 0..40)) {
        // From a user just found by the sync, the groups are consistent at every step.
        let mut facts = UserFacts::discovered(ACTIVE);
        check_groups(&facts, &desired_groups(&facts))?;
        for command in commands {
            if let Ok(transition) = apply(&facts, command) {
                check_groups(&transition.facts, &transition.desired_groups)?;
                facts = transition.facts;
            }
        }
    }

    #[test]
    fn after_delete_everything_is_refused(start in any_facts(), command in any_command()) {
        let gone = apply(&start, Command::DeleteAccount).unwrap().facts;
        prop_assert_eq!(apply(&gone, command), Err(TransitionError::Deleted { command }));
    }
}

#[test]
fn random_sequences_cover_every_state() {
    // Guard for the generators above: a plain walk with the same weights reaches every
    // state, so the properties are not vacuous.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let commands = proptest::collection::vec(any_command(), 0..40)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut facts = UserFacts::discovered(ACTIVE);
        for command in commands {
            if let Ok(transition) = apply(&facts, command) {
                facts = transition.facts;
                if !facts.is_deleted() {
                    seen.insert(facts.state());
                }
            }
        }
    }
    assert_eq!(seen, UserState::ALL.into_iter().collect());
}
