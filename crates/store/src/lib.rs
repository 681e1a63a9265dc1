//! # keybridge-store
//!
//! All of keybridge's SQL, in one code path over SQLite and PostgreSQL (sqlx `Any`): schema
//! migrations, repositories, secrets at rest, the hash-chained audit log and the durable job
//! queue with its worker runtime.
//!
//! This crate must not hold business rules: it stores and returns what callers decide
//! (state transitions, name rules and group plans live in `keybridge-core`), and no other
//! crate writes SQL.
//!
//! ## Main types
//!
//! - [`Store`]: [`Store::connect`] with one URL (`sqlite://PATH?mode=rwc` or
//!   `postgres://…`) and [`StoreOptions`]; migrations run at start. Repositories hang off it
//!   ([`Store::users`], [`Store::jobs`], …); [`Store::begin`] gives a [`StoreTx`] whose
//!   repositories share one transaction.
//! - Repositories: [`Integrations`], [`Users`] (keyset-paged [`UserQuery`]), [`Phones`],
//!   [`Credentials`], [`Workstations`], [`InstallTokens`], [`DeviceRequests`] (the phones'
//!   inbox), [`Invites`], [`PairingSessions`], [`Admins`] (with passkeys, login links and
//!   console sessions), [`ApiTokens`], [`AuditLog`], [`Jobs`], [`RequestNonces`] (the replay cache of signed
//!   requests), [`BulkInvites`] (per-user results of bulk invitations, links sealed).
//! - [`KeyRing`] / [`SecretKey`] / [`SecretString`]: AES-256-GCM secrets at rest bound to
//!   their row; [`Store::rotate_secrets`] re-encrypts under a new key
//!   (see [`secrets`] for the format and the rotation procedure).
//! - [`AuditLog::verify`] and [`AuditLog::export`]: the chain check and JSON lines / CSV.
//! - [`WorkerPool`] / [`JobHandler`]: workers over [`Jobs`] with leases, heartbeats, backoff
//!   and graceful shutdown.
//! - [`Store::notify`] / [`Store::listen`]: wake-ups between instances (PostgreSQL
//!   `LISTEN`/`NOTIFY`, in-process on SQLite) for new jobs and device requests.
//! - [`StoreError`]: every failure, with messages that say what to do.
//!
//! ## Storage conventions
//!
//! Ids and JSON are TEXT, instants INTEGER unix milliseconds ([`Timestamp`]), booleans
//! INTEGER 0/1, ciphertexts BLOB/BYTEA; placeholders are `$N` and writes use `RETURNING` on
//! both engines. SQLite runs in WAL mode with foreign keys on and a 5 s busy timeout on
//! every connection; write transactions start with `BEGIN IMMEDIATE`.

pub mod admins;
pub mod api_tokens;
pub mod audit;
pub mod bulk_invites;
pub mod credentials;
mod db;
pub mod device_requests;
mod error;
pub mod install_tokens;
pub mod integrations;
pub mod invites;
pub mod jobs;
pub mod nonces;
pub mod notify;
pub mod pairing;
pub mod phones;
mod rows;
pub mod secrets;
mod timestamp;
pub mod users;
pub mod worker;
pub mod workstations;

pub use admins::{
    Admin, AdminLoginLink, AdminPasskey, AdminSession, Admins, ChallengePurpose, ConsoleChallenge,
    NewAdminPasskey, Role,
};
pub use api_tokens::{API_TOKEN_PREFIX, ApiToken, ApiTokens};
pub use audit::{
    AuditEvent, AuditFilter, AuditLog, ChainBreak, DailyCount, ExportFormat, NewAuditEvent,
    VerifyReport,
};
pub use bulk_invites::{
    BulkInviteOutcome, BulkInviteResult, BulkInvites, EmailDelivery, NewBulkInviteResult,
};
pub use credentials::{Credential, CredentialStatus, Credentials, NewCredential};
pub use db::{Dialect, SCHEMA_VERSION, Store, StoreOptions, StoreTx};
pub use device_requests::{
    DeviceRequest, DeviceRequestKind, DeviceRequestStatus, DeviceRequests, NewDeviceRequest,
};
pub use error::{Result, StoreError};
pub use install_tokens::{INSTALL_TOKEN_PREFIX, InstallToken, InstallTokens};
pub use integrations::{
    Integration, IntegrationCredential, IntegrationGroups, Integrations, NewIntegration,
};
pub use invites::{Invite, Invites};
pub use jobs::{Backoff, Enqueued, FailOutcome, Job, JobCounts, JobFilter, JobState, Jobs, NewJob};
pub use nonces::RequestNonces;
pub use notify::{Channel, Listener, Notification};
pub use pairing::{NewPairingSession, PairingKind, PairingSession, PairingSessions};
pub use phones::{NewPhone, Phone, Phones};
pub use rows::hash_token;
pub use secrets::{
    KeyRing, RotationReport, SecretError, SecretKey, SecretString, load_or_create_key_file,
    read_key_file,
};
pub use timestamp::Timestamp;
pub use users::{
    DirectoryUser, StateCounts, UpsertSummary, User, UserCursor, UserListItem, UserPage, UserQuery,
    UserSort, Users,
};
pub use worker::{
    JobContext, JobError, JobFuture, JobHandler, RunningWorkers, WorkerConfig, WorkerPool,
};
pub use workstations::{Workstation, WorkstationStatus, Workstations};

macro_rules! repositories {
    ($($(#[$doc:meta])* $name:ident -> $ty:ident;)*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> $ty<'_> {
                    $ty { db: self.db() }
                }
            )*
        }
        impl StoreTx {
            $(
                $(#[$doc])*
                pub fn $name(&mut self) -> $ty<'_> {
                    $ty { db: self.db() }
                }
            )*
        }
    };
}

repositories! {
    /// Tenant connections.
    integrations -> Integrations;
    /// Directory users and the user list.
    users -> Users;
    /// Paired phones.
    phones -> Phones;
    /// Phones' FIDO credentials.
    credentials -> Credentials;
    /// Workstations and recovery PINs.
    workstations -> Workstations;
    /// Install tokens of the desktop-client download.
    install_tokens -> InstallTokens;
    /// The phones' inbox.
    device_requests -> DeviceRequests;
    /// Invite links.
    invites -> Invites;
    /// QR / short-code pairing sessions.
    pairing_sessions -> PairingSessions;
    /// Admins, console passkeys, login links and sessions.
    admins -> Admins;
    /// API tokens.
    api_tokens -> ApiTokens;
    /// The audit log.
    audit -> AuditLog;
    /// The job queue.
    jobs -> Jobs;
    /// The replay cache of signed requests.
    request_nonces -> RequestNonces;
    /// Per-user results of bulk invitation jobs.
    bulk_invites -> BulkInvites;
}
