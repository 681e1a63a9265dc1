//! Integration tests of keybridge-webauthn: the W3C WebAuthn Level 3 vectors, mutations of
//! them, generated attestations, FIDO MDS3 BLOBs, and agreement with an independent verifier.

// Fixture helpers outside `#[test]` functions panic on a broken fixture, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod generated;
mod interop;
mod mds;
mod mutations;
mod support;
mod vectors;
