//! The store's one error type.
//!
//! Messages say what went wrong and what to do; they never contain a password or a secret
//! value (connection URLs are shown without their password, ciphertexts never).

use std::path::PathBuf;

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://…` nor `postgres://…`, or does not parse.
    #[error(
        "unsupported database URL {url:?}: use sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB"
    )]
    UnsupportedUrl {
        /// The URL with any password removed.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot connect to the database at {target}: {reason}")]
    Unreachable {
        /// `host:port/database` or the SQLite path (never a password).
        target: String,
        /// What the driver said, with any password removed.
        reason: String,
    },
    /// The database was migrated by a newer keybridge.
    #[error(
        "the database was migrated by a newer keybridge (schema version {found}, this binary knows up to {known}): upgrade keybridge or restore a backup"
    )]
    SchemaTooNew {
        /// Highest applied migration version.
        found: i64,
        /// Highest version this binary knows.
        known: i64,
    },
    /// Applying the embedded migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write.
    #[error("{entity} with this {field} already exists")]
    Duplicate {
        /// What kind of record (e.g. "an integration").
        entity: &'static str,
        /// The field that must be unique (e.g. "name").
        field: &'static str,
    },
    /// The record does not exist.
    #[error("{entity} {id} was not found")]
    NotFound {
        /// What kind of record.
        entity: &'static str,
        /// The id or key looked up.
        id: String,
    },
    /// A reference points at a record that does not exist.
    #[error("{entity} refers to a record that does not exist (check the ids passed in)")]
    MissingReference {
        /// What was being written.
        entity: &'static str,
    },
    /// The input was refused before reaching the database.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A row holds a value this binary cannot read (corrupt or from an unknown version).
    #[error("{table}.{column} holds an unexpected value {value:?}: the database may be corrupt")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// The value (never a secret).
        value: String,
    },
    /// A one-time token was already used, has expired or was revoked.
    #[error("{what} {reason}")]
    TokenRejected {
        /// What kind of token ("the invite", "the login link").
        what: &'static str,
        /// `has expired`, `was already used`, `was revoked`.
        reason: &'static str,
    },
    /// A job operation was attempted by a worker that no longer holds the job's lease.
    #[error(
        "job {job_id} is no longer leased to worker {owner}: its lease expired and another worker may run it"
    )]
    LeaseLost {
        /// The job.
        job_id: String,
        /// The worker that tried.
        owner: String,
    },
    /// A job is not in a state that allows the operation.
    #[error("job {job_id} is {state}: {action} is not possible")]
    JobState {
        /// The job.
        job_id: String,
        /// Its state.
        state: String,
        /// What was attempted.
        action: &'static str,
    },
    /// Secret handling failed.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The key file could not be read or created.
    #[error("secret key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        reason: String,
    },
    /// Writing an export failed.
    #[error("writing the export failed: {0}")]
    Export(#[source] std::io::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// Named unique constraints: (index name on PostgreSQL, column list as SQLite reports it,
/// entity, field).
const UNIQUE_CONSTRAINTS: &[(&str, &str, &str, &str)] = &[
    (
        "integrations_name_key",
        "integrations.name",
        "an integration",
        "name",
    ),
    (
        "integrations_internal_id_key",
        "integrations.internal_id",
        "an integration",
        "internal id",
    ),
    (
        "users_entra_object_id_key",
        "users.integration_id, users.entra_object_id",
        "a user",
        "Entra object id",
    ),
    (
        "phones_device_key_key",
        "phones.user_id, phones.device_key",
        "a phone of this user",
        "device key",
    ),
    (
        "credentials_credential_id_key",
        "credentials.credential_id",
        "a credential",
        "credential id",
    ),
    (
        "workstations_public_key_key",
        "workstations.public_key",
        "a workstation",
        "public key",
    ),
    (
        "invites_token_hash_key",
        "invites.token_hash",
        "an invite",
        "token",
    ),
    (
        "admins_username_key",
        "admins.username",
        "an admin",
        "username",
    ),
    (
        "admin_passkeys_credential_id_key",
        "admin_passkeys.credential_id",
        "an admin passkey",
        "credential id",
    ),
    (
        "api_tokens_token_hash_key",
        "api_tokens.token_hash",
        "an API token",
        "token",
    ),
    (
        "jobs_dedupe_key_key",
        "jobs.dedupe_key",
        "a live job",
        "dedupe key",
    ),
    (
        "pairing_sessions_pkey",
        "pairing_sessions.id",
        "a pairing session",
        "id",
    ),
];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(db) = error.as_database_error() {
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => {
                    let constraint = db.constraint().unwrap_or_default();
                    let message = db.message();
                    for (pg_name, sqlite_cols, entity, field) in UNIQUE_CONSTRAINTS {
                        if constraint == *pg_name || message.ends_with(sqlite_cols) {
                            return StoreError::Duplicate { entity, field };
                        }
                    }
                    return StoreError::Duplicate {
                        entity: "a record",
                        field: "key",
                    };
                }
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::MissingReference {
                        entity: "the record",
                    };
                }
                _ => {}
            }
        }
        StoreError::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(error)
    }
}

impl StoreError {
    /// Whether this is a unique-constraint refusal (a 409 for the API).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, StoreError::Duplicate { .. })
    }

    /// Whether this is a missing record (a 404 for the API).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    pub(crate) fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            entity,
            id: id.into(),
        }
    }
}
