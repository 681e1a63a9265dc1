//! # keybridge-core
//!
//! The domain of keybridge, with no I/O: validated names and identifiers and the
//! user-state machine with the events and group memberships each transition implies.
//!
//! This crate must not do I/O or depend on HTTP, database or async crates; the store,
//! the server and the CLI build on its types. Every parser returns a typed error whose
//! message names what was given and what is expected; every type that crosses the API
//! serialises as a string (or a list of strings) and is validated again when
//! deserialised.
//!
//! Main types:
//! - [`ApplicationName`] (with [`ApplicationName::internal_id`]) and [`GroupPlan`] /
//!   [`GroupRole`]: the integration's name and the four Entra groups named after it;
//! - [`TenantId`], [`ClientId`]: the integration's GUIDs;
//! - [`Upn`], [`EmailAddress`], [`DomainName`], [`RestrictDomains`]: users' addresses and
//!   the "restrict domains" login setting;
//! - [`UserState`], [`EntraStatus`], [`UserFacts`], [`Command`], [`apply`],
//!   [`desired_groups`]: the user lifecycle;
//! - [`InviteList`]: the CSV file of a bulk invitation, checked whole (bad lines by number).
//!
//! ```
//! use keybridge_core::{apply, ApplicationName, Command, EntraStatus, GroupRole, UserFacts, UserState};
//!
//! let name = ApplicationName::parse("Contoso Passkeys")?;
//! assert_eq!(name.internal_id(), "ContosoPasskeys");
//! let groups = name.group_plan();
//!
//! let user = UserFacts::discovered(EntraStatus::Active);
//! let invited = apply(&user, Command::Invite)?.facts;
//! let paired = apply(&invited, Command::PairPhone)?;
//! assert_eq!(paired.facts.state(), UserState::PairedWithKeybridge);
//! let added: Vec<String> = paired.groups_to_add.iter().map(|role| groups.display_name(*role)).collect();
//! assert_eq!(added, ["Contoso Passkeys (Client Paired with keybridge)"]);
//! assert!(paired.groups_to_remove.contains(&GroupRole::EligibleForPairing));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod address;
pub mod domain;
pub mod ids;
pub mod invite_list;
pub mod lifecycle;
pub mod names;
pub mod state;
mod text;

pub use address::{AddressError, AddressKind, EmailAddress, Upn};
pub use domain::{
    DomainName, DomainNameError, DomainNotAllowed, InvalidDomainEntry, RestrictDomains,
    RestrictDomainsError,
};
pub use ids::{ClientId, GuidError, GuidField, GuidProblem, TenantId};
pub use invite_list::{BadRow, InviteCheck, InviteList, InviteListError, InviteRow};
pub use lifecycle::{
    Command, InconsistentFacts, LifecycleEvent, StoredUserFacts, Transition, TransitionError,
    UserFacts, apply, desired_groups,
};
pub use names::{
    ApplicationName, ApplicationNameError, GroupPlan, GroupRole, NOT_YET_ENROLLED_GROUP,
    group_names,
};
pub use state::{EntraStatus, UnknownVariant, UserState};
