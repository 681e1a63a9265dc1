//! What the file and the environment said, before defaults and checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::settings::SETTINGS;
use crate::{
    Config, ConfigError, ConsoleConfig, DatabaseConfig, EntraCloud, EntraConfig, JobsConfig,
    LogConfig, LogFormat, RawSmtp, SecretKeySource, SecretsConfig, ServerConfig, Source,
};

/// The configuration as written, every value optional. Unknown keys are refused.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `[database]`.
    #[serde(default)]
    pub database: RawDatabase,
    /// `[secrets]`.
    #[serde(default)]
    pub secrets: RawSecrets,
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[entra]`.
    #[serde(default)]
    pub entra: RawEntra,
    /// `[jobs]`.
    #[serde(default)]
    pub jobs: RawJobs,
    /// `[console]`.
    #[serde(default)]
    pub console: RawConsole,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[smtp]`.
    #[serde(default)]
    pub smtp: RawSmtp,
    /// Where each key's value came from, by dotted key.
    #[serde(skip)]
    pub sources: BTreeMap<&'static str, Source>,
}

/// `[database]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// `database.url`.
    pub url: Option<String>,
    /// `database.max_connections`.
    pub max_connections: Option<u32>,
}

/// `[secrets]` as written.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// `secrets.key`: base64 of 32 bytes.
    pub key: Option<String>,
    /// `secrets.key_file`.
    pub key_file: Option<PathBuf>,
    /// `secrets.previous_key_files`.
    pub previous_key_files: Option<Vec<PathBuf>>,
}

impl std::fmt::Debug for RawSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSecrets")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .field("previous_key_files", &self.previous_key_files)
            .finish()
    }
}

/// `[server]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `server.listen`.
    pub listen: Option<String>,
    /// `server.public_url`.
    pub public_url: Option<String>,
    /// `server.tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `server.tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `server.public_metrics`.
    pub public_metrics: Option<bool>,
}

/// `[entra]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntra {
    /// `entra.cloud`: global, us_government, china.
    pub cloud: Option<String>,
    /// `entra.authority_url`.
    pub authority_url: Option<String>,
    /// `entra.graph_url`.
    pub graph_url: Option<String>,
    /// `entra.ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `entra.authentication_requests_per_10s`.
    pub authentication_requests_per_10s: Option<u32>,
    /// `entra.fido2_pacing`: auto or reports-budget.
    pub fido2_pacing: Option<crate::Fido2Pacing>,
}

/// `[jobs]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    /// `jobs.workers`.
    pub workers: Option<u32>,
    /// `jobs.max_attempts`.
    pub max_attempts: Option<u32>,
    /// `jobs.lease_seconds`.
    pub lease_seconds: Option<u64>,
}

/// `[console]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    /// `console.session_idle_minutes`.
    pub session_idle_minutes: Option<u64>,
    /// `console.session_max_hours`.
    pub session_max_hours: Option<u64>,
}

/// `[log]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `log.format`.
    pub format: Option<LogFormat>,
    /// `log.level`.
    pub level: Option<String>,
}

/// Default address the server listens on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl RawConfig {
    /// Reads and parses a TOML file. Unknown keys and wrong types are errors that name
    /// the key and the line.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut raw = RawConfig::from_toml(&text).map_err(|message| ConfigError::File {
            path: path.to_path_buf(),
            message,
        })?;
        let present: Vec<&'static str> = SETTINGS
            .iter()
            .filter(|s| (s.is_set)(&raw))
            .map(|s| s.key)
            .collect();
        for key in present {
            raw.sources.insert(key, Source::File(path.to_path_buf()));
        }
        Ok(raw)
    }

    /// Parses TOML text; the error names the key path and position.
    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            if path.is_empty() || path == "." {
                inner.trim_end().to_string()
            } else {
                format!("key `{path}`: {}", inner.trim_end())
            }
        })
    }

    /// Applies `KEYBRIDGE_*` environment overrides; `lookup` returns a variable's value.
    /// Returns every malformed variable, not just the first.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        for setting in SETTINGS {
            let Some(value) = lookup(setting.env) else {
                continue;
            };
            match (setting.apply_env)(self, &value) {
                Ok(()) => {
                    self.sources.insert(setting.key, Source::Env(setting.env));
                }
                Err(message) => errors.push(ConfigError::Invalid {
                    origin: Source::Env(setting.env),
                    key: setting.key,
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn source_of(&self, key: &'static str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }

    fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.source_of(key),
            key,
            message: message.into(),
        }
    }

    /// Fills in defaults and checks every value. `default_data_dir` is used when
    /// `data_dir` is not set. Returns every problem found.
    pub fn resolve(self, default_data_dir: &Path) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir.to_path_buf());
        if data_dir.as_os_str().is_empty() {
            errors.push(self.invalid("data_dir", "is empty: give a directory path"));
        }

        let url = match &self.database.url {
            Some(url) => {
                if let Err(message) = check_database_url(url) {
                    errors.push(self.invalid("database.url", message));
                }
                url.clone()
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("keybridge.db").display()
            ),
        };
        let max_connections = self.database.max_connections.unwrap_or(10);
        if !(1..=500).contains(&max_connections) {
            errors.push(self.invalid(
                "database.max_connections",
                format!("is {max_connections}: expected a number from 1 to 500"),
            ));
        }

        let current = match (&self.secrets.key, &self.secrets.key_file) {
            (Some(_), Some(_)) => {
                errors.push(self.invalid(
                    "secrets.key",
                    "and `secrets.key_file` are both set: keep one of them",
                ));
                SecretKeySource::Inline(Vec::new())
            }
            (Some(key), None) => match decode_key(key) {
                Ok(bytes) => SecretKeySource::Inline(bytes),
                Err(message) => {
                    errors.push(self.invalid("secrets.key", message));
                    SecretKeySource::Inline(Vec::new())
                }
            },
            (None, Some(file)) => SecretKeySource::File(file.clone()),
            (None, None) => SecretKeySource::File(data_dir.join("secrets.key")),
        };
        let previous_key_files = self.secrets.previous_key_files.clone().unwrap_or_default();

        let listen_text = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                errors.push(self.invalid(
                    "server.listen",
                    format!(
                        "is {listen_text:?}: expected an address and port such as 0.0.0.0:8443 or [::]:8443"
                    ),
                ));
                SocketAddr::from(([127, 0, 0, 1], 8443))
            }
        };
        let public_url = match &self.server.public_url {
            Some(text) => check_public_url(text),
            None => default_public_url(listen),
        };
        let public_url = match public_url {
            Ok(url) => Some(url),
            Err(message) => {
                errors.push(self.invalid("server.public_url", message));
                None
            }
        };
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => errors.push(self.invalid(
                "server.tls_cert",
                "is set without `server.tls_key`: give both, or neither for a self-made certificate",
            )),
            (None, Some(_)) => errors.push(self.invalid(
                "server.tls_key",
                "is set without `server.tls_cert`: give both, or neither for a self-made certificate",
            )),
            _ => {}
        }

        let entra_cloud = self.resolve_entra_cloud(&mut errors);
        let auth_budget = self.entra.authentication_requests_per_10s;
        if auth_budget.is_some_and(|n| n > 1000) {
            errors.push(self.invalid(
                "entra.authentication_requests_per_10s",
                format!(
                    "is {}: expected a number from 0 (no pacing) to 1000",
                    auth_budget.unwrap_or_default()
                ),
            ));
        }

        let workers = self.jobs.workers.unwrap_or(4);
        if !(1..=256).contains(&workers) {
            errors.push(self.invalid(
                "jobs.workers",
                format!("is {workers}: expected a number from 1 to 256"),
            ));
        }
        let max_attempts = self.jobs.max_attempts.unwrap_or(8);
        if !(1..=100).contains(&max_attempts) {
            errors.push(self.invalid(
                "jobs.max_attempts",
                format!("is {max_attempts}: expected a number from 1 to 100"),
            ));
        }
        let lease_seconds = self.jobs.lease_seconds.unwrap_or(60);
        if !(5..=3600).contains(&lease_seconds) {
            errors.push(self.invalid(
                "jobs.lease_seconds",
                format!("is {lease_seconds}: expected a number of seconds from 5 to 3600"),
            ));
        }

        let idle_minutes = self.console.session_idle_minutes.unwrap_or(30);
        if !(1..=1440).contains(&idle_minutes) {
            errors.push(self.invalid(
                "console.session_idle_minutes",
                format!("is {idle_minutes}: expected a number of minutes from 1 to 1440"),
            ));
        }
        let max_hours = self.console.session_max_hours.unwrap_or(12);
        if !(1..=168).contains(&max_hours) {
            errors.push(self.invalid(
                "console.session_max_hours",
                format!("is {max_hours}: expected a number of hours from 1 to 168"),
            ));
        }

        let level = self.log.level.clone().unwrap_or_else(|| "info".to_string());
        if level.trim().is_empty() {
            errors.push(self.invalid(
                "log.level",
                "is empty: expected a level such as info or a filter such as keybridge=debug,info",
            ));
        }

        let smtp = match self.smtp.resolve() {
            Ok(smtp) => smtp,
            Err(problems) => {
                for (key, message) in problems {
                    errors.push(self.invalid(key, message));
                }
                None
            }
        };

        let Some(public_url) = public_url.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Config {
            data_dir,
            database: DatabaseConfig {
                url,
                max_connections,
            },
            secrets: SecretsConfig {
                current,
                previous_key_files,
            },
            server: ServerConfig {
                listen,
                public_url,
                tls_cert: self.server.tls_cert.clone(),
                tls_key: self.server.tls_key.clone(),
                public_metrics: self.server.public_metrics.unwrap_or(false),
            },
            entra: EntraConfig {
                cloud: entra_cloud,
                ca_file: self.entra.ca_file.clone(),
                authentication_requests_per_10s: auth_budget,
                fido2_pacing: self.entra.fido2_pacing.unwrap_or_default(),
            },
            jobs: JobsConfig {
                workers,
                max_attempts,
                lease_seconds,
            },
            console: ConsoleConfig {
                session_idle: std::time::Duration::from_secs(idle_minutes * 60),
                session_max: std::time::Duration::from_secs(max_hours * 3600),
            },
            log: LogConfig {
                format: self.log.format.unwrap_or(LogFormat::Pretty),
                level,
            },
            smtp,
        })
    }
}

impl RawConfig {
    fn resolve_entra_cloud(&self, errors: &mut Vec<ConfigError>) -> EntraCloud {
        let custom = (&self.entra.authority_url, &self.entra.graph_url);
        if let (Some(_), _) | (_, Some(_)) = custom {
            if self.entra.cloud.is_some() {
                errors.push(self.invalid(
                    "entra.cloud",
                    "is set together with entra.authority_url/graph_url: use a cloud preset or custom URLs, not both",
                ));
            }
            let authority = match &self.entra.authority_url {
                Some(text) => check_endpoint_url(text)
                    .map_err(|m| errors.push(self.invalid("entra.authority_url", m)))
                    .ok(),
                None => {
                    errors.push(self.invalid(
                        "entra.authority_url",
                        "is missing: custom endpoints need both entra.authority_url and entra.graph_url",
                    ));
                    None
                }
            };
            let graph = match &self.entra.graph_url {
                Some(text) => check_endpoint_url(text)
                    .map_err(|m| errors.push(self.invalid("entra.graph_url", m)))
                    .ok(),
                None => {
                    errors.push(self.invalid(
                        "entra.graph_url",
                        "is missing: custom endpoints need both entra.authority_url and entra.graph_url",
                    ));
                    None
                }
            };
            return match (authority, graph) {
                (Some(authority_url), Some(graph_url)) => EntraCloud::Custom {
                    authority_url,
                    graph_url,
                },
                _ => EntraCloud::Global,
            };
        }
        match self.entra.cloud.as_deref().map(str::trim) {
            None | Some("global") => EntraCloud::Global,
            Some("us_government") => EntraCloud::UsGovernment,
            Some("china") => EntraCloud::China,
            Some(other) => {
                errors.push(self.invalid(
                    "entra.cloud",
                    format!(
                        "is {other:?}: expected global, us_government or china (or set entra.authority_url and entra.graph_url)"
                    ),
                ));
                EntraCloud::Global
            }
        }
    }
}

fn check_endpoint_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("is {text:?}, not a URL ({e}): expected https://HOST[:PORT][/PATH]")
    })?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "is {text:?}: Entra is only reached over https:// (plain http is allowed for localhost only)"
        )),
    }
}

fn check_database_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("sqlite") => {
            if url.len() <= "sqlite://".len() {
                return Err(
                    "has no path: expected sqlite:///var/lib/keybridge/keybridge.db".into(),
                );
            }
            Ok(())
        }
        Some("postgres" | "postgresql") => match url::Url::parse(url) {
            Ok(parsed) if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
            Ok(_) | Err(_) => Err(format!(
                "is not a valid PostgreSQL URL ({}): expected postgres://USER:PASSWORD@HOST:5432/DATABASE",
                crate::redact_url_password(url)
            )),
        },
        _ => Err(format!(
            "starts with {:?}: expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            url.split("://").next().unwrap_or_default()
        )),
    }
}

fn check_public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("is {text:?}, not a URL ({e}): expected https://keybridge.example.com")
    })?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "is {text:?}: phones and workstations only talk to keybridge over TLS; use https:// (plain http is allowed for localhost only)"
            ));
        }
        other => return Err(format!("has scheme {other:?}: expected https://")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "is {text:?}: remove the query and fragment, keep scheme, host and path"
        ));
    }
    Ok(url)
}

fn default_public_url(listen: SocketAddr) -> Result<url::Url, String> {
    let host = if listen.ip().is_unspecified() || listen.ip().is_loopback() {
        "localhost".to_string()
    } else {
        match listen {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        }
    };
    let text = format!("https://{host}:{}/", listen.port());
    url::Url::parse(&text)
        .map_err(|e| format!("cannot be derived from server.listen ({e}): set it"))
}

fn decode_key(text: &str) -> Result<Vec<u8>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| {
            "is not valid base64: expected 32 random bytes in base64, e.g. from `openssl rand -base64 32`"
                .to_string()
        })?;
    if bytes.len() != 32 {
        return Err(format!(
            "decodes to {} bytes: expected exactly 32 (AES-256), e.g. from `openssl rand -base64 32`",
            bytes.len()
        ));
    }
    Ok(bytes)
}
