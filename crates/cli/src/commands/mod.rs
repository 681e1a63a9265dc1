//! One module per top-level subcommand. Each exposes its clap arguments and a `run`
//! function; [`dispatch`] only routes.

pub mod admin;
pub mod attestation;
pub mod config;
pub mod device;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};

/// The check ran and found a problem.
pub const EXIT_FOUND_PROBLEM: u8 = 1;
/// An error stopped the command.
pub const EXIT_ERROR: u8 = 2;
/// The command exists in the interface but is not available in this build.
pub const EXIT_NOT_BUILT: u8 = 3;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_file = cli.config;
    match cli.command {
        Command::Serve => Ok(not_built("serve", "the server is not built yet")),
        Command::Sandbox => Ok(not_built(
            "sandbox",
            "the sandbox needs the server and entra-sim, which are not built yet",
        )),
        Command::EntraSim => Ok(not_built(
            "entra-sim",
            "the Entra emulator is not built yet",
        )),
        Command::Workstation => Ok(not_built(
            "workstation",
            "the workstation client is not built yet",
        )),
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

/// Says plainly that a command is not part of this build and exits non-zero.
pub fn not_built(command: &str, what: &str) -> ExitCode {
    eprintln!(
        "keybridge {command}: not available in this version of keybridge ({what}).\n\
         Run `keybridge --help` for the commands this build provides."
    );
    ExitCode::from(EXIT_NOT_BUILT)
}
