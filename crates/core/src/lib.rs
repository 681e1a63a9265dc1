//! # keybridge-core
//!
//! The domain of keybridge, with no I/O: validated names and identifiers and the
//! user-state machine with the events and group memberships each transition implies.
//!
//! This crate must not do I/O or depend on HTTP, database or async crates; the store,
//! the server and the CLI build on its types.

pub mod state;

pub use state::{EntraStatus, UserState};
