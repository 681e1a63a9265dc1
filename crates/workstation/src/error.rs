//! What can go wrong on the workstation, each with the exit code the CLI uses.

use std::path::PathBuf;

use keybridge_authenticator::server_client::ClientError;
use keybridge_device_protocol::RefusalReason;

/// Exit code: the phone (or its user) denied the sign-in.
pub const EXIT_DENIED: u8 = 4;
/// Exit code: nobody answered on the phone in time.
pub const EXIT_TIMED_OUT: u8 = 5;
/// Exit code: the workstation was revoked or is unknown to the server.
pub const EXIT_REVOKED: u8 = 6;
/// Exit code: the workstation is not paired with a phone (or not for that account).
pub const EXIT_NOT_PAIRED: u8 = 7;
/// Exit code: the request was refused as a replay or as altered.
pub const EXIT_REFUSED: u8 = 8;
/// Exit code: Entra refused the phone's assertion.
pub const EXIT_ENTRA_REFUSED: u8 = 9;
/// Exit code: any other error.
pub const EXIT_ERROR: u8 = 2;

/// A workstation failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `keybridge.json` cannot be used.
    #[error("keybridge.json cannot be used: {reason}; download the desktop client again")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The state file cannot be used.
    #[error("the workstation state {path} cannot be used: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `enrol` on a directory that already holds a workstation.
    #[error(
        "this workstation is already enrolled (state in {dir}); the install token is exchanged once. Use another --state directory to enrol again"
    )]
    AlreadyEnrolled {
        /// The state directory.
        dir: PathBuf,
    },
    /// No workstation is enrolled in the directory.
    #[error(
        "no workstation is enrolled in {dir}: run `keybridge workstation enrol --config keybridge.json` first"
    )]
    NotEnrolled {
        /// The state directory.
        dir: PathBuf,
    },
    /// A request could not be built (bad computer name, malformed token).
    #[error(transparent)]
    Request(keybridge_device_protocol::WorkstationError),
    /// The server could not be reached or refused the request.
    #[error(transparent)]
    Server(ClientError),
    /// An administrator revoked this workstation.
    #[error(
        "this workstation was revoked by an administrator: it can no longer sign in; ask your administrator, then install the desktop client again"
    )]
    Revoked,
    /// The server does not know this workstation (deleted).
    #[error(
        "the server does not know this workstation any more (it was deleted): install the desktop client again"
    )]
    UnknownWorkstation,
    /// The workstation is not paired with a phone, or the phone was unpaired.
    #[error(
        "this workstation is not paired with a phone (or the phone was unpaired): run `keybridge workstation pair` and scan the code with the phone"
    )]
    NotPaired,
    /// The account is not on the paired phone.
    #[error("{0}")]
    AccountNotOnPhone(String),
    /// The phone, or its user, said no.
    #[error("the sign-in was denied on the phone ({reason}): {message}")]
    Denied {
        /// Why.
        reason: RefusalReason,
        /// The phone's words.
        message: String,
    },
    /// Nobody approved on the phone in time.
    #[error(
        "the phone did not answer in time: open `keybridge device inbox` on the phone and sign in again"
    )]
    TimedOut,
    /// The server refused a replayed or altered request (or one bound to another
    /// workstation).
    #[error("the server refused the sign-in request: {0}")]
    Replayed(String),
    /// Entra refused the challenge request or the assertion.
    #[error("Microsoft Entra refused the sign-in ({status} {code}): {message}")]
    Entra {
        /// HTTP status.
        status: u16,
        /// Entra's error (`invalid_grant`, ...) and AADSTS code.
        code: String,
        /// Entra's description.
        message: String,
    },
    /// The recovery PIN is wrong, used or not set.
    #[error("the recovery PIN was refused: {0}")]
    RecoveryRefused(String),
    /// Entra could not be reached.
    #[error("could not reach Microsoft Entra at {url}: {reason}")]
    EntraUnreachable {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An answer did not follow the protocol.
    #[error("an answer cannot be read: {0}; update keybridge")]
    Protocol(String),
}

impl Error {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Denied { .. } => EXIT_DENIED,
            Error::TimedOut => EXIT_TIMED_OUT,
            Error::Revoked | Error::UnknownWorkstation => EXIT_REVOKED,
            Error::NotPaired | Error::AccountNotOnPhone(_) => EXIT_NOT_PAIRED,
            Error::Replayed(_) | Error::RecoveryRefused(_) => EXIT_REFUSED,
            Error::Entra { .. } => EXIT_ENTRA_REFUSED,
            _ => EXIT_ERROR,
        }
    }
}
