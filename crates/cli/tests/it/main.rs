//! Tests of the `keybridge` binary as a user runs it.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers may fail loudly

mod admin;
mod admin_api;
mod bulk_crash;
mod cli;
mod device_pairing;
mod lifecycle;
mod sandbox;
mod workstation;
