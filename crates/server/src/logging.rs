//! Log set-up for `keybridge serve`: human-readable or JSON lines, filtered by `log.level`.
//! Secrets never reach the log: credentials are typed so that `Debug` redacts them, and the
//! request layer records method, path and request id only (no headers, no query, no body).

use keybridge_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Returns false when one was already installed (tests).
pub fn init(config: &LogConfig) -> bool {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
            .is_ok(),
        LogFormat::Pretty => builder.try_init().is_ok(),
    }
}
