//! # keybridge-config
//!
//! keybridge reads its settings from an optional TOML file and from `KEYBRIDGE_*`
//! environment variables, which win over the file. With neither, everything has a
//! default: data in a local data directory and a SQLite database inside it.
//!
//! Loading happens in two stages, as in ripgrep's low/high split:
//! [`RawConfig`] records what the file and the environment said (unknown keys are
//! refused), and [`RawConfig::resolve`] turns it into a [`Config`] with every default
//! filled in and every value checked. Every error names where the bad value came
//! from (file and key, or environment variable), what was given and what is expected.
//!
//! This crate does no network or database I/O; it only reads the config file and the
//! environment it is handed.
//!
//! Main types: [`Config`], [`RawConfig`], [`ConfigError`], [`SETTINGS`].

mod raw;
mod settings;
mod smtp;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use raw::RawConfig;
pub use settings::{OTHER_ENV_VARS, SETTINGS, Setting};
pub use smtp::{RawSmtp, SmtpConfig, SmtpPassword, SmtpSecurity, check_mailbox, is_loopback_host};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A key in the configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// A configuration problem, with where it is and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or of the wrong type.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and the line.
        message: String,
    },
    /// A value is of the right type but not acceptable.
    #[error("{origin}: `{key}` {message}")]
    Invalid {
        /// Where the value came from.
        origin: Source,
        /// The dotted key, e.g. `database.url`.
        key: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The database to use.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Where the key that encrypts secrets at rest comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretKeySource {
    /// A 32-byte key given directly (base64), e.g. from a secret manager through the environment.
    Inline(Vec<u8>),
    /// A key file, created with 0600 permissions on first start if it does not exist.
    File(PathBuf),
}

impl fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretKeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretKeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Keys for secrets at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsConfig {
    /// The key new secrets are encrypted with.
    pub current: SecretKeySource,
    /// Earlier key files, still accepted for decryption until `keybridge admin secrets rotate`
    /// has re-encrypted everything under the current key.
    pub previous_key_files: Vec<PathBuf>,
}

/// The HTTPS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The URL users, phones and workstations reach the server at.
    pub public_url: url::Url,
    /// PEM certificate chain; with `tls_key`. Without both, a self-made certificate is used.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Whether `/metrics` answers without an API token (for a scraper that cannot send one,
    /// when the port is reachable only from trusted hosts). Off by default.
    pub public_metrics: bool,
}

/// Which Microsoft cloud (or emulator) keybridge talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraCloud {
    /// `login.microsoftonline.com` and `graph.microsoft.com`.
    Global,
    /// `login.microsoftonline.us` and `graph.microsoft.us`.
    UsGovernment,
    /// `login.chinacloudapi.cn` and `microsoftgraph.chinacloudapi.cn`.
    China,
    /// Any endpoints, e.g. `keybridge entra-sim` at `https://localhost:PORT`.
    Custom {
        /// The identity platform's host, e.g. `https://login.microsoftonline.com`.
        authority_url: url::Url,
        /// Graph's base URL, e.g. `https://graph.microsoft.com/v1.0`.
        graph_url: url::Url,
    },
}

impl fmt::Display for EntraCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntraCloud::Global => f.write_str("global"),
            EntraCloud::UsGovernment => f.write_str("us_government"),
            EntraCloud::China => f.write_str("china"),
            EntraCloud::Custom {
                authority_url,
                graph_url,
            } => write!(f, "custom: authority {authority_url}, Graph {graph_url}"),
        }
    }
}

/// When the Graph client paces FIDO2 calls other than lists (`creationOptions`, registering
/// and deleting passkeys) to Graph's authentication-methods reports budget (5 requests per
/// 10 s per app and tenant). Lists of authentication methods are always paced to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fido2Pacing {
    /// Not paced until Graph answers one of them 429; then paced for a while.
    #[default]
    Auto,
    /// Always paced (about 0.2 passkeys per second per tenant).
    ReportsBudget,
}

impl Fido2Pacing {
    /// Reads `auto` or `reports-budget`.
    pub fn parse(text: &str) -> Result<Fido2Pacing, String> {
        match text.trim() {
            "auto" => Ok(Fido2Pacing::Auto),
            "reports-budget" => Ok(Fido2Pacing::ReportsBudget),
            other => Err(format!("is {other:?}: expected auto or reports-budget")),
        }
    }

    /// `auto` or `reports-budget`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Fido2Pacing::Auto => "auto",
            Fido2Pacing::ReportsBudget => "reports-budget",
        }
    }
}

/// How keybridge reaches Entra ID and Microsoft Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    /// The cloud or custom endpoints.
    pub cloud: EntraCloud,
    /// Extra CA certificates (PEM) to trust for those endpoints, e.g. entra-sim's `ca.pem`.
    pub ca_file: Option<PathBuf>,
    /// Client-side pacing of Graph's `/authentication/` calls per 10 s; `None` keeps the Graph
    /// client's default (Graph's documented 5), `Some(0)` turns the pacing off.
    pub authentication_requests_per_10s: Option<u32>,
    /// When FIDO2 calls are paced to the reports budget.
    pub fido2_pacing: Fido2Pacing,
}

/// Background workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Jobs run at once by this instance.
    pub workers: u32,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// Seconds a claimed job stays leased without a heartbeat.
    pub lease_seconds: u64,
}

/// The admin web console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// A console session ends after this long without a request.
    pub session_idle: std::time::Duration,
    /// A console session ends this long after login, however active.
    pub session_max: std::time::Duration,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `keybridge=debug,info`.
    pub level: String,
}

/// The resolved configuration: every default filled in, every value checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for the SQLite database, the secrets key and generated certificates.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// Keys for secrets at rest.
    pub secrets: SecretsConfig,
    /// The HTTPS server.
    pub server: ServerConfig,
    /// Entra ID and Microsoft Graph endpoints.
    pub entra: EntraConfig,
    /// Background workers.
    pub jobs: JobsConfig,
    /// The admin web console.
    pub console: ConsoleConfig,
    /// Logging.
    pub log: LogConfig,
    /// E-mail delivery of invitations; `None` when off (links are shown to the admin).
    pub smtp: Option<SmtpConfig>,
}

impl Config {
    /// Loads the configuration from an optional file and the process environment.
    ///
    /// Returns every problem found, not just the first.
    pub fn load(file: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
        let mut raw = match file {
            Some(path) => RawConfig::from_file(path).map_err(|e| vec![e])?,
            None => RawConfig::default(),
        };
        raw.apply_env(|name| std::env::var(name).ok())?;
        raw.resolve(&default_data_dir())
    }
}

/// The default data directory: `$KEYBRIDGE_DATA_DIR` is handled as a setting; this is
/// what is used without it: `$XDG_DATA_HOME/keybridge`, else `~/.local/share/keybridge`,
/// else `./keybridge-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("keybridge");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/keybridge");
    }
    PathBuf::from("keybridge-data")
}

/// `KEYBRIDGE_*` variables in `vars` that keybridge does not read, each with the
/// closest known name when one is near (a likely typo).
pub fn unknown_env_vars<'a>(
    vars: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, Option<&'static str>)> {
    let known = || {
        SETTINGS
            .iter()
            .map(|s| s.env)
            .chain(OTHER_ENV_VARS.iter().copied())
    };
    vars.into_iter()
        .filter(|name| name.starts_with("KEYBRIDGE_"))
        .filter(|name| !known().any(|k| k == *name))
        .map(|name| {
            let suggestion = known()
                .map(|k| (edit_distance(name, k), k))
                .filter(|(d, _)| *d <= 3)
                .min_by_key(|(d, _)| *d)
                .map(|(_, k)| k);
            (name.to_string(), suggestion)
        })
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Replaces the password of a database URL with `***`, for logs and messages. Works
/// on text that is not a valid URL too, since that is when it ends up in an error.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
