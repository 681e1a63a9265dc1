//! Errors that stop the emulator from starting or from saving its state.

use std::path::PathBuf;

/// Why entra-sim could not start (or could not keep its state).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or a file in it could not be read or written.
    #[error("cannot use {path}: {source}; check that the data directory exists and is writable")]
    DataDir {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key or certificate could not be created or read.
    #[error(
        "cannot create or read the {what}: {detail}; delete it from the data directory to have it recreated"
    )]
    Certificate {
        /// Which key or certificate.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The saved state could not be parsed.
    #[error(
        "the saved state {path} is not readable ({detail}); move it away to start from a fresh tenant"
    )]
    State {
        /// The snapshot file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The seed file could not be read or parsed.
    #[error("the seed file {path} is not valid ({detail}); see docs/entra-sim.md for its format")]
    Seed {
        /// The seed file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The MDS BLOB or its root could not be loaded.
    #[error("cannot load the FIDO metadata: {detail}")]
    Metadata {
        /// What went wrong.
        detail: String,
    },
    /// The listen address could not be bound, or plain HTTP was asked for off loopback.
    #[error("cannot listen on {address}: {detail}")]
    Listen {
        /// The address asked for.
        address: String,
        /// What went wrong.
        detail: String,
    },
}
