//! The work behind the handlers: each service takes parsed core types, talks to Entra through
//! `keybridge-graph` and to the database through `keybridge-store`, and returns views.

pub mod integrations;
pub mod preflight;
