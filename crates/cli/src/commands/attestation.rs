//! `keybridge attestation`: an organisation's attestation root, batch certificate and metadata.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `keybridge attestation`.
#[derive(Debug, Args)]
pub struct AttestationArgs {}

/// Runs `keybridge attestation`.
pub fn run(_args: AttestationArgs) -> anyhow::Result<ExitCode> {
    Ok(super::not_built(
        "attestation",
        "attestation certificates are not built yet",
    ))
}
