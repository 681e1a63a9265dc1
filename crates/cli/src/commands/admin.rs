//! `keybridge admin`: the admin API from the command line (integrations, users, jobs, tokens,
//! audit list and export; see [`super::admin_api`]), and the operations that work directly on
//! the server's database (audit chain, secrets keys, schema, the first API token), so they also
//! work while the server is down.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use keybridge_store::{AuditFilter, ExportFormat, Store};

use super::admin_api;
use super::api_client::ApiOptions;
use super::{EXIT_FOUND_PROBLEM, load_config, open_store, runtime};

/// Says where a command of `keybridge admin` runs.
const ADMIN_AFTER_HELP: &str = "\
Over the API (--server URL or KEYBRIDGE_API_URL, --token-file FILE or KEYBRIDGE_API_TOKEN,
--ca-file FILE or --pin sha256/... to trust the server): integrations, users, workstations,
jobs, tokens, audit list, audit export.
Local, on the server's own database and configuration (work while the server is down): audit
verify, audit export --local, secrets, db, token (the first admin token).";

/// `keybridge admin` subcommands.
#[derive(Debug, Subcommand)]
#[command(after_help = ADMIN_AFTER_HELP)]
pub enum AdminCommand {
    /// [API] Integrations: connect a tenant, credentials, native login, restrict domains,
    /// pre-flight checks, sync, desktop client.
    Integrations(admin_api::IntegrationsArgs),
    /// [API] Users: list, show, invite, phones, unpair, delete.
    Users(admin_api::UsersArgs),
    /// [API] Workstations: show, revoke, recovery PIN.
    Workstations(admin_api::WorkstationsArgs),
    /// [API] Background jobs: list, show, retry, cancel, wait.
    Jobs(admin_api::JobsArgs),
    /// [API] API tokens: list, create, revoke.
    Tokens(admin_api::TokensArgs),
    /// The tamper-evident audit log: list and export over the API; verify (local).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// [local] The key that encrypts client secrets, private keys and tokens at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// [local] The database.
    #[command(subcommand)]
    Db(DbCommand),
    /// [local] API tokens made directly in the database: the first admin token, before anyone
    /// can call the API (`keybridge admin tokens` does the rest over the API).
    Token(super::token::TokenArgs),
    /// A one-time link that registers a console passkey (the first admin's way in).
    LoginLink(super::login_link::LoginLinkArgs),
}

/// `keybridge admin audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// [local] Check the audit log's hash chain in the database; exit 1 if any event was
    /// edited, deleted or inserted.
    Verify,
    /// [API] Audit events, newest first.
    List(admin_api::AuditListArgs),
    /// [API] Write audit events, oldest first, as JSON lines or CSV (`--local`: read the
    /// database directly, e.g. while the server is down).
    Export(ExportArgs),
}

/// Arguments of `keybridge admin audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    api: ApiOptions,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// File to write (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    filter: admin_api::AuditFilterArgs,
    /// Read the server's database directly (needs its configuration) instead of the API.
    #[arg(long)]
    local: bool,
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
        AdminCommand::Integrations(args) => return admin_api::integrations(args),
        AdminCommand::Users(args) => return admin_api::users(args),
        AdminCommand::Workstations(args) => return admin_api::workstations(args),
        AdminCommand::Jobs(args) => return admin_api::jobs(args),
        AdminCommand::Tokens(args) => return admin_api::tokens(args),
        AdminCommand::Audit(AuditCommand::List(args)) => return admin_api::audit_list(args),
        AdminCommand::Audit(AuditCommand::Export(args)) if !args.local => {
            return admin_api::audit_export(
                &args.api,
                &args.filter,
                matches!(args.format, Format::Csv),
                args.output.as_deref(),
            );
        }
        AdminCommand::LoginLink(args) => return super::login_link::run(args, config_file),
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
            AdminCommand::Secrets(SecretsCommand::NewKey { .. })
            | AdminCommand::Token(_)
            | AdminCommand::Integrations(_)
            | AdminCommand::Users(_)
            | AdminCommand::Workstations(_)
            | AdminCommand::Jobs(_)
            | AdminCommand::Tokens(_)
            | AdminCommand::Audit(AuditCommand::List(_))
            | AdminCommand::LoginLink(_) => Ok(ExitCode::SUCCESS),
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
    if args.filter.from.is_some() || args.filter.to.is_some() {
        anyhow::bail!(
            "--from and --to work over the API; with --local, filter by --action and --actor"
        );
    }
    let filter = AuditFilter {
        action: args.filter.action,
        actor: args.filter.actor,
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
