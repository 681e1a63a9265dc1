//! The server configuration every server benchmark starts from: the tests' loopback server
//! with its data under `<dir>/server`, one job worker and quiet logs. Each benchmark changes
//! the few fields it measures.

use std::path::Path;

use keybridge_config::Config;

/// A configuration for a server with its data under `dir` on the database at `url`.
pub fn server_config(dir: &Path, url: &str) -> Config {
    let mut config = keybridge_testkit::loopback_server_config(&dir.join("server"), url);
    config.jobs.workers = 1;
    config.jobs.lease_seconds = 60;
    config.log.level = "error".to_owned();
    config
}
