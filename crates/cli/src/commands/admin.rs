//! `keybridge admin`: operations on a keybridge installation.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

/// `keybridge admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `keybridge admin audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 if any event was edited or deleted.
    Verify,
}

/// Runs `keybridge admin`.
pub fn run(command: AdminCommand, _config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::Audit(AuditCommand::Verify) => Ok(super::not_built(
            "admin audit verify",
            "the store is not wired in yet",
        )),
    }
}
