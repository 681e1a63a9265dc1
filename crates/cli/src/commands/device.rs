//! `keybridge device`: the phone, a device-bound FIDO2 authenticator.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `keybridge device`.
#[derive(Debug, Args)]
pub struct DeviceArgs {}

/// Runs `keybridge device`.
pub fn run(_args: DeviceArgs) -> anyhow::Result<ExitCode> {
    Ok(super::not_built(
        "device",
        "the phone authenticator is not built yet",
    ))
}
