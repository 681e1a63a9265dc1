//! # keybridge-store
//!
//! All of keybridge's SQL: one code path over SQLite and PostgreSQL (sqlx `Any`).
