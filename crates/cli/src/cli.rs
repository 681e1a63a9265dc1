//! The command line, defined once; help and shell completions are generated from it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{admin, attestation, config, device, entra_sim, sandbox, serve, workstation};

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the check ran and found a problem (config check, audit verify, a blocking pre-flight
     check, a job that waited for failed or was cancelled)
  2  error: bad arguments, unreadable configuration, unreachable database or server, a request
     the API refused (its message, code and request id are printed), ...
  4-9  `keybridge workstation` sign-in outcomes (see `keybridge workstation --help`)

Configuration comes from --config FILE (or KEYBRIDGE_CONFIG) and KEYBRIDGE_* environment
variables; `keybridge config settings` lists them all. With neither, keybridge keeps its
data in ~/.local/share/keybridge with a SQLite database.";

/// keybridge: device-bound FIDO2 passkeys on employees' phones, registered in Microsoft Entra ID.
#[derive(Debug, Parser)]
#[command(name = "keybridge", version, after_help = AFTER_HELP)]
#[command(propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Optional: defaults need no file.
    #[arg(long, global = true, env = "KEYBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the keybridge server: console, API, device and workstation endpoints, workers.
    Serve(serve::ServeArgs),
    /// Run a complete local sandbox: entra-sim with a seeded tenant and the server on SQLite.
    Sandbox(sandbox::SandboxArgs),
    /// Run entra-sim, a local emulator of the part of Entra ID and Microsoft Graph keybridge uses.
    EntraSim(entra_sim::EntraSimArgs),
    /// The phone: a device-bound FIDO2 authenticator with its own key store.
    Device(device::DeviceArgs),
    /// The workstation client: pair with a phone and sign in through it.
    Workstation(workstation::WorkstationArgs),
    /// Administer keybridge: over the admin API (integrations, users, jobs, tokens, audit), or
    /// locally on the server (audit verify, secrets, database, the first API token).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Make an organisation's attestation root, batch certificate and FIDO metadata.
    Attestation(attestation::AttestationArgs),
    /// Check and explain the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script, e.g. `keybridge completions bash > /etc/bash_completion.d/keybridge`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
