//! keybridge-graph integration tests: one binary, one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may fail loudly

mod mock;
mod mock_corners;
