//! `keybridge admin`: operations on a keybridge installation that work directly on its
//! database (audit chain, secrets keys, schema), so they also work while the server is down.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use keybridge_store::{AuditFilter, ExportFormat, Store};

use super::{EXIT_FOUND_PROBLEM, load_config, open_store, runtime};

/// `keybridge admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The key that encrypts client secrets, private keys and tokens at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The database.
    #[command(subcommand)]
    Db(DbCommand),
    /// API tokens for `/api/v1`, made directly in the database (the first admin token).
    Token(super::token::TokenArgs),
}

/// `keybridge admin audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 if any event was edited, deleted or inserted.
    Verify,
    /// Write audit events, oldest first, as JSON lines or CSV.
    Export(ExportArgs),
}

/// Arguments of `keybridge admin audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// File to write (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only events with this action, e.g. `integration_created`.
    #[arg(long)]
    action: Option<String>,
    /// Only events by this actor.
    #[arg(long)]
    actor: Option<String>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// `keybridge admin secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Write a new random key file (mode 0600) for a rotation; it never overwrites a file.
    NewKey {
        /// Where to write the key.
        #[arg(value_name = "FILE")]
        path: PathBuf,
    },
    /// Re-encrypt every secret under the current key (`secrets.key_file` / `secrets.key`).
    /// The old key must be listed in `secrets.previous_key_files` while this runs.
    Rotate,
    /// Show which keys protect how many secrets, to know when an old key can be removed.
    Status,
}

/// `keybridge admin db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Connect, apply pending migrations, and print the schema version.
    Status,
}

/// Runs `keybridge admin`.
pub fn run(command: AdminCommand, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let command = match command {
        AdminCommand::Secrets(SecretsCommand::NewKey { path }) => return new_key(&path),
        AdminCommand::Token(args) => return super::token::run(args, config_file),
        other => other,
    };
    let config = load_config(config_file)?;
    runtime()?.block_on(async move {
        let store = open_store(&config).await?;
        let result = match command {
            AdminCommand::Audit(AuditCommand::Verify) => audit_verify(&store).await,
            AdminCommand::Audit(AuditCommand::Export(args)) => audit_export(&store, args).await,
            AdminCommand::Secrets(SecretsCommand::Rotate) => secrets_rotate(&store).await,
            AdminCommand::Secrets(SecretsCommand::Status) => secrets_status(&store).await,
            // Handled above, without opening the store here.
            AdminCommand::Secrets(SecretsCommand::NewKey { .. }) | AdminCommand::Token(_) => {
                Ok(ExitCode::SUCCESS)
            }
            AdminCommand::Db(DbCommand::Status) => db_status(&store).await,
        };
        store.close().await;
        result
    })
}

async fn audit_verify(store: &Store) -> anyhow::Result<ExitCode> {
    let report = store.audit().verify().await?;
    match &report.first_break {
        None => {
            println!(
                "audit log intact: {} events, head #{} {}",
                report.events_checked, report.head_seq, report.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(chain_break) => {
            println!("audit log TAMPERED: {chain_break}");
            println!(
                "checked {} events; restore the database from a backup and investigate who had write access to it",
                report.events_checked
            );
            Ok(ExitCode::from(EXIT_FOUND_PROBLEM))
        }
    }
}

async fn audit_export(store: &Store, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let filter = AuditFilter {
        action: args.action,
        actor: args.actor,
        ..AuditFilter::default()
    };
    let format = match args.format {
        Format::Json => ExportFormat::JsonLines,
        Format::Csv => ExportFormat::Csv,
    };
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let count = store.audit().export(&filter, format, &mut *out).await?;
    out.flush().context("writing the export failed")?;
    if let Some(path) = &args.output {
        eprintln!("exported {count} audit events to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn secrets_rotate(store: &Store) -> anyhow::Result<ExitCode> {
    let report = store.rotate_secrets().await?;
    println!(
        "re-encrypted {} secrets under key {} ({} were under an older key)",
        report.reencrypted, report.current_key_id, report.moved_from_old_keys
    );
    println!(
        "every secret is now under the current key: remove the old key from secrets.previous_key_files"
    );
    Ok(ExitCode::SUCCESS)
}

async fn secrets_status(store: &Store) -> anyhow::Result<ExitCode> {
    let current = store.keyring().current_key_id().to_string();
    let usage = store.secret_key_usage().await?;
    println!("current key {current}");
    if usage.is_empty() {
        println!("no secrets stored yet");
    }
    for (key_id, count) in usage {
        let note = if key_id == current { " (current)" } else { "" };
        println!("  key {key_id}{note}: {count} secrets");
    }
    Ok(ExitCode::SUCCESS)
}

async fn db_status(store: &Store) -> anyhow::Result<ExitCode> {
    let version = store.schema_version().await?;
    println!(
        "database {} ({:?}): schema version {version}, up to date",
        store.target(),
        store.dialect()
    );
    Ok(ExitCode::SUCCESS)
}

fn new_key(path: &Path) -> anyhow::Result<ExitCode> {
    if path.exists() {
        anyhow::bail!(
            "{} already exists; choose a new file name (keys are never overwritten)",
            path.display()
        );
    }
    let key = keybridge_store::load_or_create_key_file(path)?;
    println!("wrote a new key {} to {}", key.id(), path.display());
    println!(
        "next: set secrets.key_file to this file, add the old key file to secrets.previous_key_files,\n\
         then run `keybridge admin secrets rotate`"
    );
    Ok(ExitCode::SUCCESS)
}
