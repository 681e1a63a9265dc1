//! `keybridge serve`: the HTTPS server with its job workers, until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use keybridge_config::{EntraCloud, EntraConfig};
use keybridge_graph::{Cloud, RateLimits};
use keybridge_server::{GraphSettings, Server, ServerOptions};

use super::{load_config, open_store, runtime, wait_for_stop_signal};

/// Arguments of `keybridge serve` (everything else comes from the configuration).
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Loads the configuration, opens and migrates the database, serves HTTPS on `server.listen`
/// and runs the job workers; on SIGTERM or Ctrl-C stops accepting, lets requests and jobs in
/// flight finish, and exits 0.
pub fn run(_args: ServeArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(config_file)?;
    keybridge_server::logging::init(&config.log);
    runtime()?.block_on(async move {
        let store = open_store(&config).await?;
        let public_url = config.server.public_url.clone();
        let bootstrap = keybridge_server::console::login::bootstrap_login_link(&store, &public_url)
            .await
            .context("making the console's first login link")?;
        // The desktop-client download offers this very program: it is also the workstation client.
        let options = ServerOptions {
            graph: graph_settings(&config.entra)?,
            desktop_client_binary: std::env::current_exe().ok(),
            ..ServerOptions::default()
        };
        let running = Server::start(config, store.clone(), options)
            .await
            .context("the server could not start")?;
        println!("keybridge is listening on https://{}", running.addr);
        println!("public URL: {public_url}");
        println!("TLS pin:    {}", running.tls_pin);
        if let Some(ca) = &running.ca_file {
            println!(
                "self-made certificate: browsers and clients trust {} (phones and workstations check the pin)",
                ca.display()
            );
        }
        println!("console:    {public_url}console");
        if let Some(link) = bootstrap {
            println!(
                "first admin: no console passkey exists yet; open this one-time link (24 h) to register one for \"{}\":",
                link.admin.username
            );
            println!("  {}", link.url);
        }
        wait_for_stop_signal().await?;
        eprintln!("stopping: finishing requests and jobs in flight");
        running.shutdown().await.context("stopping the server")?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The configured Entra endpoints as the server's Graph settings.
fn graph_settings(entra: &EntraConfig) -> anyhow::Result<GraphSettings> {
    let cloud = match &entra.cloud {
        EntraCloud::Global => Cloud::Global,
        EntraCloud::UsGovernment => Cloud::UsGovernment,
        EntraCloud::China => Cloud::China,
        EntraCloud::Custom {
            authority_url,
            graph_url,
        } => Cloud::custom(authority_url.as_str(), graph_url.as_str())
            .context("entra.authority_url / entra.graph_url")?,
    };
    let ca_bundle_pem = match &entra.ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read entra.ca_file {}", path.display()))?,
        ),
        None => None,
    };
    // Only an explicit setting replaces the client's documented quotas.
    let rate_limits = entra.authentication_requests_per_10s.map(|n| RateLimits {
        authentication_requests_per_10s: (n > 0).then_some(n),
        ..RateLimits::default()
    });
    Ok(GraphSettings {
        cloud,
        ca_bundle_pem,
        rate_limits,
        fido2_pacing: match entra.fido2_pacing {
            keybridge_config::Fido2Pacing::Auto => keybridge_graph::Fido2Pacing::Auto,
            keybridge_config::Fido2Pacing::ReportsBudget => {
                keybridge_graph::Fido2Pacing::ReportsBudget
            }
        },
        ..GraphSettings::default()
    })
}
