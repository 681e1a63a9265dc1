//! entra-sim over real HTTPS, with its generated CA trusted by the client (never by turning
//! verification off), and Microsoft's client libraries against it.

// Helpers outside `#[test]` functions fail the test on any error, as the tests do.
#![allow(clippy::expect_used)]

mod common;
mod crafted;
mod fido2;
mod graph;
mod identity;
mod interop;
mod metadata;
mod operations;
mod registration;
