//! keybridge-server integration tests: entra-sim and the server in-process, over HTTPS,
//! driven with real requests.

// The harness and the shared test bodies are plain fns, which clippy does not see as tests.
#![allow(clippy::expect_used)]

mod audit_jobs;
mod bulk_invites;
mod console;
mod console_bulk_invites;
mod console_integrations;
mod console_methods;
mod console_pages;
mod console_scenario;
mod device_manager;
mod devices;
mod health;
mod instances;
mod integrations;
mod interop;
mod invite_email;
mod method_delete;
mod provisioning;
mod support;
mod tokens;
mod unpair;
mod workstation;
