//! `keybridge admin token`: API tokens made, listed and revoked directly in the database, so
//! that the first admin token exists before anyone can call the API.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use keybridge_store::Timestamp;

use super::{load_config, open_store, runtime};

/// Arguments of `keybridge admin token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

/// `keybridge admin token` subcommands.
#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token and print it once (it cannot be shown again).
    Create {
        /// admin, helpdesk or auditor.
        #[arg(long)]
        role: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List API tokens (never their secrets).
    List,
    /// Revoke an API token by id.
    Revoke {
        /// The token's id, from `keybridge admin token list`.
        id: String,
    },
}

/// Runs `keybridge admin token ...`.
pub fn run(args: TokenArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(config_file)?;
    runtime()?.block_on(async move {
        let store = open_store(&config).await?;
        let result = match args.command {
            TokenCommand::Create {
                role,
                name,
                expires_in_days,
            } => {
                let role = keybridge_server::parse_role(&role)
                    .map_err(|e| anyhow::anyhow!("--role: {}", e.message()))?;
                let (token, secret) =
                    keybridge_server::create_token_locally(&store, &name, role, expires_in_days)
                        .await?;
                println!("{secret}");
                eprintln!(
                    "created API token {} (\"{}\", role {}); it is shown only this once: send it as \
                     `Authorization: Bearer <token>`",
                    token.id,
                    token.name,
                    token.role.as_str()
                );
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::List => {
                for token in store.api_tokens().list().await? {
                    let status = match (token.revoked_at, token.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(at)) if at <= Timestamp::now() => "expired",
                        _ => "active",
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}…",
                        token.id,
                        token.role.as_str(),
                        status,
                        token.name,
                        token.prefix
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            TokenCommand::Revoke { id } => {
                store.api_tokens().revoke(&id, Timestamp::now()).await?;
                store
                    .audit()
                    .append(
                        keybridge_store::NewAuditEvent::new(
                            keybridge_server::api_v1::tokens::LOCAL_ACTOR,
                            "api_token.revoke",
                        )
                        .target(format!("api_token:{id}")),
                    )
                    .await?;
                eprintln!("revoked API token {id}");
                Ok(ExitCode::SUCCESS)
            }
        };
        store.close().await;
        result
    })
}
