//! keybridge-graph integration tests: one binary, one module per area. Everything runs
//! against entra-sim over real HTTPS, except a few timing corners that need a scripted
//! server (`mock_corners`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may fail loudly

mod interop;
mod mock;
mod mock_corners;
mod passkey;
mod sim;
mod sim_auth;
mod sim_directory;
mod sim_faults;
mod sim_methods;
