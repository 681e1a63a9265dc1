//! Integration tests of keybridge-webauthn: the W3C WebAuthn Level 3 vectors, mutations of
//! them, generated attestations, FIDO MDS3 BLOBs, and agreement with an independent verifier.

mod generated;
mod interop;
mod mds;
mod mutations;
mod support;
mod vectors;
