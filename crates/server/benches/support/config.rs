//! The server configuration every server benchmark starts from: loopback, no TLS files, one
//! job worker, quiet logs. Each benchmark changes the few fields it measures.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keybridge_config::{
    Config, ConsoleConfig, DatabaseConfig, EntraCloud, EntraConfig, Fido2Pacing, JobsConfig,
    LogConfig, LogFormat, SecretKeySource, SecretsConfig, ServerConfig,
};

/// A configuration for a server with its data under `dir` on the database at `url`.
pub fn server_config(dir: &Path, url: &str) -> Config {
    Config {
        data_dir: dir.join("server"),
        database: DatabaseConfig {
            url: url.to_owned(),
            max_connections: 5,
        },
        secrets: SecretsConfig {
            current: SecretKeySource::File(dir.join("key")),
            previous_key_files: Vec::new(),
        },
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: url::Url::parse("https://127.0.0.1/").expect("URL"),
            tls_cert: None,
            tls_key: None,
            public_metrics: false,
        },
        entra: EntraConfig {
            cloud: EntraCloud::Global,
            ca_file: None,
            authentication_requests_per_10s: None,
            fido2_pacing: Fido2Pacing::Auto,
        },
        jobs: JobsConfig {
            workers: 1,
            max_attempts: 3,
            lease_seconds: 60,
        },
        console: ConsoleConfig {
            session_idle: Duration::from_secs(3600),
            session_max: Duration::from_secs(8 * 3600),
        },
        log: LogConfig {
            format: LogFormat::Pretty,
            level: "error".to_owned(),
        },
        smtp: None,
    }
}
