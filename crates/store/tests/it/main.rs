//! keybridge-store integration tests. Every store test runs twice, on a temp SQLite file and
//! on a fresh database of the shared throwaway PostgreSQL cluster (see keybridge-testkit).

// Test bodies are async fns called from generated #[test]s, which clippy does not see as tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod access;
mod audit;
mod concurrency;
mod crash;
mod devices;
mod inbox;
mod integrations;
mod jobs;
mod migrations;
mod notify;
mod secrets;
mod user_counts;
mod user_search;
mod users;
mod worker;
