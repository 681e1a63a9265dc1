//! Small helpers for decoding rows and making ids and tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError};
use crate::timestamp::Timestamp;

pub(crate) fn new_id() -> String {
    // v7: time-ordered, so primary-key inserts stay at the end of the index.
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get(col)?)
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_unix_millis(row.try_get(col)?))
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(Timestamp::from_unix_millis))
}

/// Booleans are INTEGER 0/1: `Any` cannot decode `bool` on SQLite.
pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

pub(crate) fn bool_int(b: bool) -> i64 {
    i64::from(b)
}

/// A random token of `bytes` bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 hex of a high-entropy token: what the database keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn require(field: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid {
            field,
            reason: "must not be empty".to_string(),
        });
    }
    Ok(())
}

pub(crate) fn corrupt(table: &'static str, column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        value: value.to_string(),
    }
}

/// `NotFound` when an update or delete touched no row.
pub(crate) fn found_one(rows: u64, entity: &'static str, id: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::not_found(entity, id))
    } else {
        Ok(())
    }
}
