//! Crash points for the key store's failure tests (feature `fault-injection`, never shipped).
//!
//! With `KEYBRIDGE_FAULT_INJECT=partial-write`, the next store write puts half of the new file
//! into the temporary file, syncs it, and aborts the process, as a crash or power loss would.

use std::fs::File;
use std::io::Write as _;

/// Environment variable that arms a crash point.
pub const FAULT_ENV: &str = "KEYBRIDGE_FAULT_INJECT";

pub(crate) fn before_write(file: &mut File, bytes: &[u8]) {
    if std::env::var(FAULT_ENV).as_deref() == Ok("partial-write") {
        let _ = file.write_all(&bytes[..bytes.len() / 2]);
        let _ = file.sync_all();
        std::process::abort();
    }
}
