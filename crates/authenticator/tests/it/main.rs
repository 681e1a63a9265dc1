//! Integration tests of keybridge-authenticator: independent verification (py_webauthn,
//! python-fido2, cryptography), hand-parsed authenticator data, certificate fields, and the
//! key store's failure behaviour across processes and crashes.

// Helpers outside `#[test]` functions fail the test on any error, as the tests do.
#![allow(clippy::expect_used)]

mod authdata;
mod ceremonies;
mod certificates;
mod interop;
mod store;
mod support;
