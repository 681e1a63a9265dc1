//! The server configuration tests and benchmarks start from: a `keybridge serve` on loopback
//! (port 0, a self-made certificate), its data and secrets key under one directory, the Graph
//! endpoints handed over separately through `ServerOptions::graph`. Each caller changes the few
//! fields it is about.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use keybridge_config::{
    Config, ConsoleConfig, DatabaseConfig, EntraCloud, EntraConfig, Fido2Pacing, JobsConfig,
    LogConfig, LogFormat, SecretKeySource, SecretsConfig, ServerConfig,
};

/// A configuration for a server with its data (and `secrets.key`) in `data_dir`, on the
/// database at `database_url`.
pub fn loopback_server_config(data_dir: &Path, database_url: &str) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        database: DatabaseConfig {
            url: database_url.to_owned(),
            max_connections: 5,
        },
        secrets: SecretsConfig {
            current: SecretKeySource::File(data_dir.join("secrets.key")),
            previous_key_files: Vec::new(),
        },
        server: ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: url::Url::parse("https://127.0.0.1/")
                .unwrap_or_else(|e| panic!("the loopback URL parses: {e}")),
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
            workers: 2,
            max_attempts: 3,
            lease_seconds: 30,
        },
        console: ConsoleConfig {
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
        },
        log: LogConfig {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        },
        smtp: None,
    }
}
