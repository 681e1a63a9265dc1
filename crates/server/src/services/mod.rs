//! The work behind the handlers and jobs: each service takes parsed core types, talks to
//! Entra through `keybridge-graph` and to the database through `keybridge-store`, and returns
//! views.

pub mod desktop_client;
pub mod directory_sync;
pub mod facts;
pub mod integrations;
pub mod invites;
pub mod preflight;
pub mod status_check;
pub mod user_delete;
