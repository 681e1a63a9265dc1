//! `keybridge admin login-link`: a one-time link that registers a console passkey, made
//! directly in the database (the first admin's way in, and a way back for one who lost
//! their passkey).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::{load_config, open_store, runtime};

/// Arguments of `keybridge admin login-link`.
#[derive(Debug, Args)]
pub struct LoginLinkArgs {
    /// The console account; made when it does not exist.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Role of a new account: admin, helpdesk or auditor (an existing account keeps its role).
    #[arg(long, default_value = "admin")]
    role: String,
}

/// Runs `keybridge admin login-link`.
pub fn run(args: LoginLinkArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let role = keybridge_server::parse_role(&args.role)
        .map_err(|e| anyhow::anyhow!("--role: {}", e.message()))?;
    if args.username.trim().is_empty() {
        anyhow::bail!("--username: give the console account's name, e.g. --username alice");
    }
    let config = load_config(config_file)?;
    runtime()?.block_on(async move {
        let store = open_store(&config).await?;
        let result = keybridge_server::console::login::issue_login_link(
            &store,
            &config.server.public_url,
            &args.username,
            role,
            keybridge_server::api_v1::tokens::LOCAL_ACTOR,
        )
        .await;
        store.close().await;
        let link = result?;
        println!("{}", link.url);
        let made = if link.created_admin {
            "new console account"
        } else {
            "console account"
        };
        eprintln!(
            "open this link in a browser to register a passkey for the {made} \"{}\" (role {}); \
             it works once, within 24 hours",
            link.admin.username,
            link.admin.role.as_str()
        );
        if !link.created_admin && link.admin.role != role {
            eprintln!(
                "note: \"{}\" keeps its role {}; --role applies only to new accounts",
                link.admin.username,
                link.admin.role.as_str()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
