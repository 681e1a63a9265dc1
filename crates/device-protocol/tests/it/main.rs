//! Integration tests of keybridge-device-protocol: signatures and proofs checked by an
//! independent implementation (Python `cryptography`), the documented test vectors, and
//! property tests that parsers never panic.

// Helpers outside `#[test]` functions fail the test on any error, as the tests do.
#![allow(clippy::expect_used)]

mod interop;
mod properties;
mod support;
mod vectors;
