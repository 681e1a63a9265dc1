//! Every setting defined once: its key, its environment variable, its documentation,
//! and how an environment value is applied. `keybridge config check` and the docs are
//! generated from this table.

use std::path::PathBuf;

use crate::LogFormat;
use crate::raw::RawConfig;

/// One configuration setting.
pub struct Setting {
    /// Dotted key in the TOML file, e.g. `database.url`.
    pub key: &'static str,
    /// The environment variable that overrides it.
    pub env: &'static str,
    /// What it does and its default.
    pub doc: &'static str,
    /// Whether it holds a secret that must never be printed.
    pub secret: bool,
    /// Applies an environment value, or says why it is not acceptable.
    pub apply_env: fn(&mut RawConfig, &str) -> Result<(), String>,
    /// Whether the raw configuration has a value for it.
    pub is_set: fn(&RawConfig) -> bool,
}

fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("is {value:?}: expected a whole number"))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("is {value:?}: expected true or false")),
    }
}

fn parse_paths(value: &str) -> Vec<PathBuf> {
    value
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// All settings, in the order the docs list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        env: "KEYBRIDGE_DATA_DIR",
        doc: "Directory for the SQLite database, the secrets key file and generated certificates. \
              Default: $XDG_DATA_HOME/keybridge, else ~/.local/share/keybridge.",
        secret: false,
        apply_env: |raw, v| {
            raw.data_dir = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.data_dir.is_some(),
    },
    Setting {
        key: "database.url",
        env: "KEYBRIDGE_DATABASE_URL",
        doc: "sqlite://PATH (one instance) or postgres://USER:PASSWORD@HOST/DB (several instances \
              sharing one database). Default: SQLite file keybridge.db in data_dir.",
        secret: false,
        apply_env: |raw, v| {
            raw.database.url = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.database.url.is_some(),
    },
    Setting {
        key: "database.max_connections",
        env: "KEYBRIDGE_DATABASE_MAX_CONNECTIONS",
        doc: "Connections in the database pool. Default: 10.",
        secret: false,
        apply_env: |raw, v| {
            raw.database.max_connections = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.database.max_connections.is_some(),
    },
    Setting {
        key: "secrets.key",
        env: "KEYBRIDGE_SECRETS_KEY",
        doc: "The AES-256 key (32 bytes, base64) that encrypts client secrets, private keys and \
              tokens at rest. Alternative to secrets.key_file.",
        secret: true,
        apply_env: |raw, v| {
            raw.secrets.key = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.secrets.key.is_some(),
    },
    Setting {
        key: "secrets.key_file",
        env: "KEYBRIDGE_SECRETS_KEY_FILE",
        doc: "File holding the secrets key; created with 0600 permissions on first start. \
              Default: secrets.key in data_dir.",
        secret: false,
        apply_env: |raw, v| {
            raw.secrets.key_file = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.secrets.key_file.is_some(),
    },
    Setting {
        key: "secrets.previous_key_files",
        env: "KEYBRIDGE_SECRETS_PREVIOUS_KEY_FILES",
        doc: "Earlier key files still accepted for decryption during a key rotation \
              (environment: paths separated by ':').",
        secret: false,
        apply_env: |raw, v| {
            raw.secrets.previous_key_files = Some(parse_paths(v));
            Ok(())
        },
        is_set: |raw| raw.secrets.previous_key_files.is_some(),
    },
    Setting {
        key: "server.listen",
        env: "KEYBRIDGE_SERVER_LISTEN",
        doc: "Address and port the HTTPS server listens on. Default: 127.0.0.1:8443.",
        secret: false,
        apply_env: |raw, v| {
            raw.server.listen = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.server.listen.is_some(),
    },
    Setting {
        key: "server.public_url",
        env: "KEYBRIDGE_SERVER_PUBLIC_URL",
        doc: "The https:// URL users, phones and workstations reach keybridge at. \
              Default: https://localhost:PORT/.",
        secret: false,
        apply_env: |raw, v| {
            raw.server.public_url = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.server.public_url.is_some(),
    },
    Setting {
        key: "server.tls_cert",
        env: "KEYBRIDGE_SERVER_TLS_CERT",
        doc: "PEM certificate chain for HTTPS. Without it (and tls_key) keybridge makes its own.",
        secret: false,
        apply_env: |raw, v| {
            raw.server.tls_cert = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.server.tls_cert.is_some(),
    },
    Setting {
        key: "server.tls_key",
        env: "KEYBRIDGE_SERVER_TLS_KEY",
        doc: "PEM private key for server.tls_cert.",
        secret: false,
        apply_env: |raw, v| {
            raw.server.tls_key = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.server.tls_key.is_some(),
    },
    Setting {
        key: "server.public_metrics",
        env: "KEYBRIDGE_SERVER_PUBLIC_METRICS",
        doc: "Serve /metrics without an API token (true or false). Default: false, so a \
              scraper sends `Authorization: Bearer` with an API token of any role (e.g. auditor).",
        secret: false,
        apply_env: |raw, v| {
            raw.server.public_metrics = Some(parse_bool(v)?);
            Ok(())
        },
        is_set: |raw| raw.server.public_metrics.is_some(),
    },
    Setting {
        key: "entra.cloud",
        env: "KEYBRIDGE_ENTRA_CLOUD",
        doc: "global, us_government or china: the Microsoft cloud the tenants live in. Default: global.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.cloud = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.entra.cloud.is_some(),
    },
    Setting {
        key: "entra.authority_url",
        env: "KEYBRIDGE_ENTRA_AUTHORITY_URL",
        doc: "Custom identity-platform host instead of a cloud preset, e.g. entra-sim's \
              https://localhost:PORT. Needs entra.graph_url.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.authority_url = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.entra.authority_url.is_some(),
    },
    Setting {
        key: "entra.graph_url",
        env: "KEYBRIDGE_ENTRA_GRAPH_URL",
        doc: "Custom Microsoft Graph base URL, e.g. entra-sim's https://localhost:PORT/v1.0. \
              Needs entra.authority_url.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.graph_url = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.entra.graph_url.is_some(),
    },
    Setting {
        key: "entra.ca_file",
        env: "KEYBRIDGE_ENTRA_CA_FILE",
        doc: "Extra CA certificates (PEM) trusted for the Entra endpoints, e.g. entra-sim's ca.pem.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.ca_file = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.entra.ca_file.is_some(),
    },
    Setting {
        key: "entra.authentication_requests_per_10s",
        env: "KEYBRIDGE_ENTRA_AUTHENTICATION_REQUESTS_PER_10S",
        doc: "The reports budget the Graph client paces to, in authentication-method calls per \
              10 s: lists always, other FIDO2 calls as entra.fido2_pacing says; 0 turns it off. \
              Default: 5, Graph's documented budget.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.authentication_requests_per_10s = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.entra.authentication_requests_per_10s.is_some(),
    },
    Setting {
        key: "entra.fido2_pacing",
        env: "KEYBRIDGE_ENTRA_FIDO2_PACING",
        doc: "auto or reports-budget: whether FIDO2 calls other than lists are paced to Graph's \
              authentication-methods reports budget (5 per 10 s per tenant) only after Graph \
              throttles one, or always. Default: auto.",
        secret: false,
        apply_env: |raw, v| {
            raw.entra.fido2_pacing = Some(crate::Fido2Pacing::parse(v)?);
            Ok(())
        },
        is_set: |raw| raw.entra.fido2_pacing.is_some(),
    },
    Setting {
        key: "jobs.workers",
        env: "KEYBRIDGE_JOBS_WORKERS",
        doc: "Background jobs this instance runs at once. Default: 4.",
        secret: false,
        apply_env: |raw, v| {
            raw.jobs.workers = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.jobs.workers.is_some(),
    },
    Setting {
        key: "jobs.max_attempts",
        env: "KEYBRIDGE_JOBS_MAX_ATTEMPTS",
        doc: "Attempts before a failing job is dead-lettered (kept with its last error). Default: 8.",
        secret: false,
        apply_env: |raw, v| {
            raw.jobs.max_attempts = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.jobs.max_attempts.is_some(),
    },
    Setting {
        key: "jobs.lease_seconds",
        env: "KEYBRIDGE_JOBS_LEASE_SECONDS",
        doc: "Seconds a claimed job stays leased without a heartbeat before another worker may \
              take it over. Default: 60.",
        secret: false,
        apply_env: |raw, v| {
            raw.jobs.lease_seconds = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.jobs.lease_seconds.is_some(),
    },
    Setting {
        key: "console.session_idle_minutes",
        env: "KEYBRIDGE_CONSOLE_SESSION_IDLE_MINUTES",
        doc: "Minutes without a request after which a console session ends. Default: 30.",
        secret: false,
        apply_env: |raw, v| {
            raw.console.session_idle_minutes = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.console.session_idle_minutes.is_some(),
    },
    Setting {
        key: "console.session_max_hours",
        env: "KEYBRIDGE_CONSOLE_SESSION_MAX_HOURS",
        doc: "Hours after login at which a console session ends, however active. Default: 12.",
        secret: false,
        apply_env: |raw, v| {
            raw.console.session_max_hours = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.console.session_max_hours.is_some(),
    },
    Setting {
        key: "log.format",
        env: "KEYBRIDGE_LOG_FORMAT",
        doc: "pretty (terminal) or json (one object per line). Default: pretty.",
        secret: false,
        apply_env: |raw, v| {
            raw.log.format = Some(match v.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => return Err(format!("is {other:?}: expected pretty or json")),
            });
            Ok(())
        },
        is_set: |raw| raw.log.format.is_some(),
    },
    Setting {
        key: "log.level",
        env: "KEYBRIDGE_LOG_LEVEL",
        doc: "A level (error, warn, info, debug, trace) or a filter such as keybridge=debug,info. \
              Default: info.",
        secret: false,
        apply_env: |raw, v| {
            raw.log.level = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.log.level.is_some(),
    },
    Setting {
        key: "smtp.host",
        env: "KEYBRIDGE_SMTP_HOST",
        doc: "The SMTP server that delivers invitation e-mails; setting it turns delivery on. \
              Default: unset (links are shown to the admin).",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.host = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.host.is_some(),
    },
    Setting {
        key: "smtp.port",
        env: "KEYBRIDGE_SMTP_PORT",
        doc: "The SMTP server's port. Default: 587 (starttls), 465 (tls), 25 (none).",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.port = Some(parse_number(v)?);
            Ok(())
        },
        is_set: |raw| raw.smtp.port.is_some(),
    },
    Setting {
        key: "smtp.security",
        env: "KEYBRIDGE_SMTP_SECURITY",
        doc: "starttls, tls or none (none only for a relay on localhost). Default: starttls.",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.security = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.security.is_some(),
    },
    Setting {
        key: "smtp.username",
        env: "KEYBRIDGE_SMTP_USERNAME",
        doc: "Login name for the SMTP server, with a password.",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.username = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.username.is_some(),
    },
    Setting {
        key: "smtp.password_file",
        env: "KEYBRIDGE_SMTP_PASSWORD_FILE",
        doc: "File holding the SMTP password (read at start, never logged).",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.password_file = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.smtp.password_file.is_some(),
    },
    Setting {
        key: "smtp.password",
        env: "KEYBRIDGE_SMTP_PASSWORD",
        doc: "The SMTP password (environment only; never in the file, never logged).",
        secret: true,
        apply_env: |raw, v| {
            raw.smtp.password = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.password.is_some(),
    },
    Setting {
        key: "smtp.from",
        env: "KEYBRIDGE_SMTP_FROM",
        doc: "Sender of invitation e-mails: address or Name <address>. Required with smtp.host.",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.from = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.from.is_some(),
    },
    Setting {
        key: "smtp.reply_to",
        env: "KEYBRIDGE_SMTP_REPLY_TO",
        doc: "Where replies to invitation e-mails go: address or Name <address>.",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.reply_to = Some(v.to_string());
            Ok(())
        },
        is_set: |raw| raw.smtp.reply_to.is_some(),
    },
    Setting {
        key: "smtp.ca_file",
        env: "KEYBRIDGE_SMTP_CA_FILE",
        doc: "Extra CA certificates (PEM) trusted for the SMTP server.",
        secret: false,
        apply_env: |raw, v| {
            raw.smtp.ca_file = Some(PathBuf::from(v));
            Ok(())
        },
        is_set: |raw| raw.smtp.ca_file.is_some(),
    },
];

/// Environment variables starting with `KEYBRIDGE_` that are not settings but are
/// read elsewhere; `keybridge config check` does not warn about these.
pub static OTHER_ENV_VARS: &[&str] = &[
    "KEYBRIDGE_CONFIG",
    "KEYBRIDGE_DEVICE_PIN",
    "KEYBRIDGE_INTEROP_PYTHON",
    "KEYBRIDGE_TEST_DATABASE_URL",
];
