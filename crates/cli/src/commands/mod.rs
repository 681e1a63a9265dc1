//! One module per top-level subcommand. Each exposes its clap arguments and a `run`
//! function; [`dispatch`] only routes.

pub mod admin;
pub mod admin_api;
pub mod api_client;
pub mod attestation;
pub mod config;
pub mod device;
pub mod device_server;
pub mod entra_sim;
pub mod login_link;
pub mod sandbox;
pub mod serve;
pub mod token;
pub mod workstation;

use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory;
use keybridge_config::{Config, SecretKeySource};
use keybridge_store::{KeyRing, SecretKey, Store, StoreOptions};

use crate::cli::{Cli, Command};

/// The check ran and found a problem.
pub const EXIT_FOUND_PROBLEM: u8 = 1;
/// An error stopped the command.
pub const EXIT_ERROR: u8 = 2;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_file = cli.config;
    match cli.command {
        Command::Serve(args) => serve::run(args, config_file.as_deref()),
        Command::Sandbox(args) => sandbox::run(args, config_file.as_deref()),
        Command::EntraSim(args) => entra_sim::run(args),
        Command::Workstation(args) => workstation::run(args, config_file.as_deref()),
        Command::Device(args) => device::run(args),
        Command::Attestation(args) => attestation::run(args),
        Command::Admin(command) => admin::run(command, config_file.as_deref()),
        Command::Config(command) => config::run(command, config_file.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "keybridge",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the configuration, turning the list of problems into one error that shows them all.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(file).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!(
            "the configuration is not valid (`keybridge config check` explains):\n{}",
            lines.join("\n")
        )
    })
}

/// A tokio runtime for commands that talk to the database or the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Opens the configured database with its secrets key ring; creates the data directory
/// (mode 0700) and the key file on first use.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    ensure_private_dir(&config.data_dir)?;
    let current = match &config.secrets.current {
        SecretKeySource::Inline(bytes) => {
            let bytes: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .context("secrets.key must be 32 bytes")?;
            SecretKey::from_bytes(bytes)
        }
        SecretKeySource::File(path) => keybridge_store::load_or_create_key_file(path)?,
    };
    let previous = config
        .secrets
        .previous_key_files
        .iter()
        .map(|path| keybridge_store::read_key_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    let options = StoreOptions::new(KeyRing::new(current, previous))
        .max_connections(config.database.max_connections);
    Ok(Store::connect(&config.database.url, options).await?)
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| {
            format!(
                "cannot create the data directory {} (set data_dir or KEYBRIDGE_DATA_DIR to a writable place)",
                dir.display()
            )
        })
}

/// Waits for Ctrl-C or SIGTERM, the signals that stop long-running commands cleanly.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
