//! `keybridge admin integrations | users | jobs | tokens | audit list/export`: the admin API
//! (`/api/v1`, docs/api.md) from the command line. Tables for people, `--json` for scripts;
//! a refusal prints the API's message, code and request id and exits 2.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use keybridge_device_protocol::terminal_safe;
use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::{ApiClient, ApiOptions};
use super::{EXIT_FOUND_PROBLEM, runtime};

/// `keybridge admin integrations`.
#[derive(Debug, Args)]
pub struct IntegrationsArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: IntegrationsCommand,
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// List integrations.
    List,
    /// Show one integration.
    Show {
        /// The integration's id.
        id: String,
    },
    /// Connect a tenant: token, permission self-test, pre-flight checks, groups, first sync.
    Create {
        /// Application name (letters, digits, spaces, hyphens, underscores).
        #[arg(long)]
        name: String,
        /// The tenant id (a GUID).
        #[arg(long)]
        tenant_id: String,
        /// The app registration's client id (a GUID).
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        credential: CredentialArgs,
        /// The e-mail address users are told to write to for help.
        #[arg(long)]
        support_email: Option<String>,
    },
    /// Change the support e-mail (name, tenant id and client id never change).
    Update {
        /// The integration's id.
        id: String,
        /// The new support e-mail ("" clears it).
        #[arg(long)]
        support_email: String,
    },
    /// Replace the client secret or certificate (the new one is tested before it is used).
    RotateCredential {
        /// The integration's id.
        id: String,
        #[command(flatten)]
        credential: CredentialArgs,
    },
    /// Turn the native Entra login experience on or off.
    NativeLogin {
        /// The integration's id.
        id: String,
        /// enable or disable.
        switch: Switch,
    },
    /// Set the domains whose users may be invited and pair (bare names, e.g. contoso.com).
    RestrictDomains {
        /// The integration's id.
        id: String,
        /// The domains.
        #[arg(required_unless_present = "none")]
        domains: Vec<String>,
        /// Remove the restriction.
        #[arg(long, conflicts_with = "domains")]
        none: bool,
    },
    /// Run the pre-flight checks of the tenant's passkey policy; exit 1 when one blocks.
    Preflight {
        /// The integration's id.
        id: String,
    },
    /// Queue a directory sync now.
    Sync {
        /// The integration's id.
        id: String,
        /// Wait for the sync to finish, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// Download the desktop client zip (workstation client + keybridge.json with an install token).
    DesktopClient {
        /// The integration's id.
        id: String,
        /// Where to write the zip (mode 0600: it holds an install token); never overwritten.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Days the install token works (1-365, default 30).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// Delete the integration with its users and devices from keybridge (irreversible).
    Delete {
        /// The integration's id.
        id: String,
        /// The integration's name, to confirm.
        #[arg(long, value_name = "NAME")]
        confirm: String,
    },
}

/// A client secret or a certificate with its key, read from files (never the command line).
#[derive(Debug, Args)]
struct CredentialArgs {
    /// A file holding the client secret's Value; `-` reads it from standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["certificate", "private_key"])]
    secret_file: Option<PathBuf>,
    /// The certificate uploaded to the app registration (PEM).
    #[arg(long, value_name = "FILE", requires = "private_key")]
    certificate: Option<PathBuf>,
    /// The certificate's unencrypted private key (PEM).
    #[arg(long, value_name = "FILE", requires = "certificate")]
    private_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Switch {
    Enable,
    Disable,
}

/// `keybridge admin users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// List an integration's users (tab counts, search, keyset pages).
    List(UserListArgs),
    /// Show one user.
    Show {
        /// The user's id.
        id: String,
    },
    /// Invite a user (prints the single-use link to the Device Manager page), or many users at
    /// once as a job: the members of an Entra group (--group) or the users of a CSV file (--csv).
    Invite {
        /// The user's id (not with --group or --csv).
        #[arg(required_unless_present_any = ["group", "csv"], conflicts_with_all = ["group", "csv"])]
        id: Option<String>,
        /// Invite the members of this Entra group (object id).
        #[arg(long, value_name = "GROUP_ID", conflicts_with = "csv")]
        group: Option<String>,
        /// Invite the users of this CSV file (header with an email or upn column); a file with
        /// a bad line is refused whole, every bad line named.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// The integration, for --group or --csv (default: the only one).
        #[arg(long, value_name = "ID")]
        integration: Option<String>,
        /// Hours the link works (1-720, default 24).
        #[arg(long, value_name = "HOURS")]
        expires_in_hours: Option<u32>,
        /// Save the links the bulk job made to this file (CSV: email,link,expires_at) once it
        /// is done (admins only); implies waiting for the job.
        #[arg(long, value_name = "FILE")]
        links_to: Option<PathBuf>,
        /// Wait for the bulk job to finish, showing its progress.
        #[arg(long)]
        wait: bool,
    },
    /// A user's invitations (never their links).
    Invites {
        /// The user's id.
        id: String,
    },
    /// Revoke a user's open invitation.
    RevokeInvite {
        /// The user's id.
        id: String,
    },
    /// A user's phones, each with the workstations paired through it.
    Phones {
        /// The user's id.
        id: String,
    },
    /// Every FIDO2 method Entra holds for a user (keybridge's marked), read now.
    Methods {
        /// The user's id.
        id: String,
    },
    /// Delete one of a user's FIDO2 methods from Entra (irreversible; admins only). Another
    /// vendor's key is deleted at once; keybridge's own passkey unpairs its phone instead.
    DeleteMethod {
        /// The user's id.
        id: String,
        /// The method's id (from `keybridge admin users methods`).
        #[arg(long, value_name = "METHOD_ID")]
        method: String,
    },
    /// Unpair one of a user's phones: its passkey is deleted from Entra, then the phone.
    Unpair {
        /// The user's id.
        id: String,
        /// The phone's Device ID (from `keybridge admin users phones`).
        #[arg(long, value_name = "DEVICE_ID")]
        phone: String,
        /// Wait for the unpair job to finish.
        #[arg(long)]
        wait: bool,
    },
    /// Delete a user (irreversible): keybridge's Entra passkeys, group memberships, phones.
    Delete {
        /// The user's id.
        id: String,
        /// The user's username (UPN), to confirm.
        #[arg(long, value_name = "USERNAME")]
        confirm: String,
        /// Wait for the deletion job to finish.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Args)]
struct UserListArgs {
    /// The integration (default: the only one).
    #[arg(long, value_name = "ID")]
    integration: Option<String>,
    /// Only users in this state (tab).
    #[arg(long, value_enum)]
    state: Option<UserState>,
    /// A part of the e-mail, username or name.
    #[arg(long)]
    search: Option<String>,
    /// Sort column.
    #[arg(long, value_enum)]
    sort: Option<UserSort>,
    /// Newest / largest first.
    #[arg(long)]
    desc: bool,
    /// Page size (1-500, default 50).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after this cursor (the `next` of the previous page).
    #[arg(long, value_name = "CURSOR")]
    after: Option<String>,
    /// Follow every page.
    #[arg(long, conflicts_with = "after")]
    all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum UserState {
    Pending,
    PairedWithKeybridge,
    PairedWithEntra,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum UserSort {
    Username,
    Name,
    LastActive,
}

/// `keybridge admin workstations`.
#[derive(Debug, Args)]
pub struct WorkstationsArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: WorkstationsCommand,
}

#[derive(Debug, Subcommand)]
enum WorkstationsCommand {
    /// Show one workstation.
    Show {
        /// The Workstation ID.
        id: String,
    },
    /// Revoke a workstation: it can no longer sign in.
    Revoke {
        /// The Workstation ID.
        id: String,
    },
    /// Reveal the recovery PIN a user's phone escrowed for a workstation (audited).
    RecoveryPin {
        /// The Workstation ID.
        id: String,
        /// The user's id.
        #[arg(long, value_name = "USER_ID")]
        user: String,
    },
}

/// Runs `keybridge admin workstations …`.
pub fn workstations(args: WorkstationsArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        match args.command {
            WorkstationsCommand::Show { id } => {
                let workstation = api.get(&format!("/workstations/{id}"), &[]).await?;
                if api.json {
                    print_json(&workstation)?;
                } else {
                    fields(
                        &workstation,
                        &[
                            ("id", "id"),
                            ("name", "name"),
                            ("status", "status"),
                            ("created", "created_at"),
                            ("paired", "paired_at"),
                            ("revoked", "revoked_at"),
                            ("last seen", "last_seen_at"),
                            ("phones", "phone_ids"),
                        ],
                    );
                }
            }
            WorkstationsCommand::Revoke { id } => {
                api.call(Method::DELETE, &format!("/workstations/{id}"), &[], None)
                    .await?;
                if api.json {
                    print_json(&json!({"revoked": id}))?;
                } else {
                    println!("revoked workstation {id}: it can no longer sign in");
                }
            }
            WorkstationsCommand::RecoveryPin { id, user } => {
                let answer = api
                    .get(
                        &format!("/workstations/{id}/recovery-pin"),
                        &[("user_id", user)],
                    )
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else {
                    println!("{}", text(&answer["pin"]));
                    eprintln!("the reveal is in the audit log (workstation.recovery_pin.reveal)");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `keybridge admin jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobState>,
        /// Only jobs of this kind, e.g. directory_sync.
        #[arg(long)]
        kind: Option<String>,
        /// Page size (1-200, default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// Continue before this cursor (the `next` of the previous page).
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
    },
    /// A job's state and progress.
    Show {
        /// The job's id.
        id: String,
    },
    /// Queue a dead or cancelled job again.
    Retry {
        /// The job's id.
        id: String,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// Wait until a job finishes, showing its progress; exit 1 when it failed or was cancelled.
    Wait {
        /// The job's id.
        id: String,
        /// Give up after this many seconds (exit 2; the job goes on).
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        timeout: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum JobState {
    Queued,
    Running,
    Succeeded,
    Dead,
    Cancelled,
}

/// `keybridge admin tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// List API tokens (never their secrets).
    List,
    /// Create an API token and print it once.
    Create {
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// The token's role.
        #[arg(long, value_enum)]
        role: TokenRole,
        /// Days until it expires (1-3650; default: never).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// Revoke an API token.
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenRole {
    Admin,
    Helpdesk,
    Auditor,
}

/// `keybridge admin audit list` over the API.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[command(flatten)]
    api: ApiOptions,
    #[command(flatten)]
    filter: AuditFilterArgs,
    /// Page size (1-500, default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue before this event number (the `next` of the previous page).
    #[arg(long, value_name = "SEQ")]
    before: Option<u64>,
}

/// Filters of the audit list and export.
#[derive(Debug, Clone, Args)]
pub struct AuditFilterArgs {
    /// Only events with this action, e.g. `integration.create`.
    #[arg(long)]
    pub action: Option<String>,
    /// Only events by this actor, e.g. `token:<id>`.
    #[arg(long)]
    pub actor: Option<String>,
    /// From this instant (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Until this instant (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

impl AuditFilterArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        push(&mut query, "action", self.action.clone());
        push(&mut query, "actor", self.actor.clone());
        push(&mut query, "from", self.from.clone());
        push(&mut query, "to", self.to.clone());
        query
    }
}

fn push(query: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<String>) {
    if let Some(value) = value {
        query.push((name, value));
    }
}

fn value_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Runs an API command on a fresh runtime.
fn block_on<F>(api: &ApiOptions, body: impl FnOnce(ApiClient) -> F) -> anyhow::Result<ExitCode>
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let client = ApiClient::new(api)?;
    runtime()?.block_on(body(client))
}

// ---------------------------------------------------------------- output

/// GETs a JSON list and prints it (as JSON with `--json`, else a table of `row`s).
async fn print_list(
    api: &ApiClient,
    path: &str,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<()> {
    let list = api.get(path, &[]).await?;
    if api.json {
        print_json(&list)?;
    } else {
        let items = list.as_array().cloned().unwrap_or_default();
        table(headers, &items.iter().map(row).collect::<Vec<_>>());
    }
    Ok(())
}

/// A path segment as typed, percent-encoded so that it stays one segment.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Text of a JSON value for a table cell: strings as they are, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => terminal_safe(s),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => terminal_safe(&other.to_string()),
    }
}

/// Prints rows under a header, columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints `label  value` lines for the given fields of an object.
fn fields(object: &Value, names: &[(&str, &str)]) {
    let width = names.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, name) in names {
        let value = name.split('.').fold(object, |value, key| &value[key]);
        println!("{label:<width$}  {}", text(value));
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

// ---------------------------------------------------------------- integrations

fn read_secret_file(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the client secret from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the client secret file {}", path.display()))?;
    }
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        anyhow::bail!(
            "--secret-file {}: the file is empty; put the client secret's Value in it",
            path.display()
        );
    }
    Ok(secret)
}

impl CredentialArgs {
    fn body(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let mut body = serde_json::Map::new();
        match (&self.secret_file, &self.certificate, &self.private_key) {
            (Some(path), _, _) => {
                body.insert("client_secret".into(), read_secret_file(path)?.into());
            }
            (None, Some(certificate), Some(key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))
                };
                body.insert("certificate_pem".into(), read(certificate)?.into());
                body.insert("private_key_pem".into(), read(key)?.into());
            }
            _ => anyhow::bail!(
                "give the credential: --secret-file FILE (or - for standard input), or --certificate FILE with --private-key FILE"
            ),
        }
        Ok(body)
    }
}

fn integration_rows(items: &[Value]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|i| {
            vec![
                text(&i["id"]),
                text(&i["name"]),
                text(&i["tenant_id"]),
                text(&i["credential"]["kind"]),
                if i["native_login_enabled"] == Value::Bool(true) {
                    "enabled".into()
                } else {
                    "disabled".into()
                },
                text(&i["last_sync_at"]),
            ]
        })
        .collect()
}

fn show_integration(integration: &Value) {
    fields(
        integration,
        &[
            ("id", "id"),
            ("name", "name"),
            ("internal id", "internal_id"),
            ("tenant id", "tenant_id"),
            ("client id", "client_id"),
            ("credential", "credential.kind"),
            ("native login enabled", "native_login_enabled"),
            ("restrict domains", "restrict_domains"),
            ("support e-mail", "support_email"),
            ("last sync", "last_sync_at"),
            ("created", "created_at"),
        ],
    );
    if let Some(subject) = integration["credential"]["certificate_subject"].as_str() {
        println!(
            "certificate           {} (until {})",
            terminal_safe(subject),
            text(&integration["credential"]["certificate_not_after"])
        );
    }
}

/// Prints pre-flight checks; whether one blocks.
fn show_preflight(checks: &Value) -> bool {
    let items = checks.as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let mut message = text(&c["message"]);
            if let Some(fix) = c["fix"].as_str() {
                message = format!("{message} Fix: {}", terminal_safe(fix));
            }
            vec![text(&c["check"]), text(&c["status"]), message]
        })
        .collect();
    table(&["CHECK", "STATUS", "MESSAGE"], &rows);
    items.iter().any(|c| c["status"] == "blocking")
}

/// Runs `keybridge admin integrations …`.
pub fn integrations(args: IntegrationsArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        match args.command {
            IntegrationsCommand::List => {
                let list = api.get("/integrations", &[]).await?;
                if api.json {
                    print_json(&list)?;
                } else {
                    let items = list.as_array().cloned().unwrap_or_default();
                    table(
                        &[
                            "ID",
                            "NAME",
                            "TENANT",
                            "CREDENTIAL",
                            "NATIVE LOGIN",
                            "LAST SYNC",
                        ],
                        &integration_rows(&items),
                    );
                }
            }
            IntegrationsCommand::Show { id } => {
                let integration = api.get(&format!("/integrations/{id}"), &[]).await?;
                if api.json {
                    print_json(&integration)?;
                } else {
                    show_integration(&integration);
                }
            }
            IntegrationsCommand::Create {
                name,
                tenant_id,
                client_id,
                credential,
                support_email,
            } => {
                let mut body = credential.body()?;
                body.insert("name".into(), name.into());
                body.insert("tenant_id".into(), tenant_id.into());
                body.insert("client_id".into(), client_id.into());
                if let Some(email) = support_email {
                    body.insert("support_email".into(), email.into());
                }
                let created = api
                    .call(
                        Method::POST,
                        "/integrations",
                        &[],
                        Some(&Value::Object(body)),
                    )
                    .await?;
                if api.json {
                    print_json(&created)?;
                    return Ok(ExitCode::SUCCESS);
                }
                show_integration(&created["integration"]);
                println!();
                println!(
                    "permissions granted   {}",
                    text(&created["permissions"]["granted"])
                );
                if let Some(missing) = created["permissions"]["missing_optional"].as_array()
                    && !missing.is_empty()
                {
                    println!(
                        "optional, missing     {}",
                        text(&created["permissions"]["missing_optional"])
                    );
                }
                println!();
                let blocking = show_preflight(&created["preflight"]);
                println!();
                println!(
                    "the first directory sync is queued: job {} (`keybridge admin jobs wait {}`)",
                    text(&created["sync_job_id"]),
                    text(&created["sync_job_id"])
                );
                if blocking {
                    println!(
                        "a pre-flight check blocks passkey registration: fix it in Entra before enabling native login"
                    );
                }
            }
            IntegrationsCommand::Update { id, support_email } => {
                let integration = api
                    .call(
                        Method::PATCH,
                        &format!("/integrations/{id}"),
                        &[],
                        Some(&json!({"support_email": support_email})),
                    )
                    .await?;
                if api.json {
                    print_json(&integration)?;
                } else {
                    show_integration(&integration);
                }
            }
            IntegrationsCommand::RotateCredential { id, credential } => {
                let body = Value::Object(credential.body()?);
                let integration = api
                    .call(
                        Method::POST,
                        &format!("/integrations/{id}/credential"),
                        &[],
                        Some(&body),
                    )
                    .await?;
                if api.json {
                    print_json(&integration)?;
                } else {
                    println!(
                        "the new {} of {} works and is in use",
                        text(&integration["credential"]["kind"]).replace('_', " "),
                        text(&integration["name"])
                    );
                }
            }
            IntegrationsCommand::NativeLogin { id, switch } => {
                let enabled = matches!(switch, Switch::Enable);
                let answer = api
                    .call(
                        Method::PUT,
                        &format!("/integrations/{id}/native-login"),
                        &[],
                        Some(&json!({"enabled": enabled})),
                    )
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else {
                    let state = if enabled { "enabled" } else { "disabled" };
                    println!("native Entra login {state}");
                    if let Some(message) = answer["message"].as_str() {
                        println!("{}", terminal_safe(message));
                    }
                    if let Some(job) = answer["provisioning_job_id"].as_str() {
                        println!("provisioning of the paired users: job {job}");
                    }
                }
            }
            IntegrationsCommand::RestrictDomains { id, domains, none } => {
                let domains = if none { Vec::new() } else { domains };
                let answer = api
                    .call(
                        Method::PUT,
                        &format!("/integrations/{id}/restrict-domains"),
                        &[],
                        Some(&json!({"domains": domains})),
                    )
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else {
                    println!("{}", text(&answer["message"]));
                    let saved = text(&answer["domains"]);
                    println!(
                        "domains: {}",
                        if saved.is_empty() {
                            "(no restriction)".into()
                        } else {
                            saved
                        }
                    );
                }
            }
            IntegrationsCommand::Preflight { id } => {
                let answer = api
                    .call(
                        Method::POST,
                        &format!("/integrations/{id}/preflight"),
                        &[],
                        None,
                    )
                    .await?;
                let blocking = answer["preflight"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["status"] == "blocking"));
                if api.json {
                    print_json(&answer)?;
                } else {
                    show_preflight(&answer["preflight"]);
                }
                if blocking {
                    return Ok(ExitCode::from(EXIT_FOUND_PROBLEM));
                }
            }
            IntegrationsCommand::Sync { id, wait } => {
                let answer = api
                    .call(Method::POST, &format!("/integrations/{id}/sync"), &[], None)
                    .await?;
                let job = answer["job_id"].as_str().unwrap_or_default().to_owned();
                if api.json && !wait {
                    print_json(&answer)?;
                } else if !api.json {
                    println!("directory sync queued: job {job}");
                }
                if wait {
                    return wait_for_job(&api, &job, Duration::from_secs(600)).await;
                }
            }
            IntegrationsCommand::DesktopClient {
                id,
                output,
                expires_in_days,
            } => {
                let mut query = Vec::new();
                push(
                    &mut query,
                    "expires_in_days",
                    expires_in_days.map(|d| d.to_string()),
                );
                let zip = api
                    .bytes(&format!("/integrations/{id}/desktop-client"), &query)
                    .await?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&output)
                    .with_context(|| {
                        format!(
                            "cannot create {} (an existing file is never overwritten)",
                            output.display()
                        )
                    })?;
                file.write_all(&zip)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", output.display()))?;
                if api.json {
                    print_json(&json!({"file": output.display().to_string(), "bytes": zip.len()}))?;
                } else {
                    println!(
                        "wrote the desktop client ({} bytes) to {}; it holds an install token: hand it only to the workstations' installers",
                        zip.len(),
                        output.display()
                    );
                }
            }
            IntegrationsCommand::Delete { id, confirm } => {
                let integration = api.get(&format!("/integrations/{id}"), &[]).await?;
                let name = integration["name"].as_str().unwrap_or_default();
                if name != confirm {
                    anyhow::bail!(
                        "--confirm {confirm:?} is not the integration's name: pass --confirm {:?} to delete it",
                        terminal_safe(name)
                    );
                }
                api.call(Method::DELETE, &format!("/integrations/{id}"), &[], None)
                    .await?;
                if api.json {
                    print_json(&json!({"deleted": id}))?;
                } else {
                    println!("deleted the integration {} ({id})", terminal_safe(name));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------- users

async fn the_integration(api: &ApiClient, given: Option<String>) -> anyhow::Result<String> {
    if let Some(id) = given {
        return Ok(id);
    }
    let list = api.get("/integrations", &[]).await?;
    let items = list.as_array().cloned().unwrap_or_default();
    match items.as_slice() {
        [only] => Ok(only["id"].as_str().unwrap_or_default().to_owned()),
        [] => anyhow::bail!("there is no integration yet: `keybridge admin integrations create`"),
        several => anyhow::bail!(
            "there are {} integrations: pass --integration ID (`keybridge admin integrations list`)",
            several.len()
        ),
    }
}

fn user_row(user: &Value) -> Vec<String> {
    vec![
        text(&user["id"]),
        text(&user["username"]),
        text(&user["name"]),
        text(&user["state"]),
        text(&user["device_count"]),
        text(&user["last_active"]),
        match (&user["warning"], &user["provisioning_error"]) {
            (Value::String(w), _) => terminal_safe(w),
            (_, Value::String(e)) => terminal_safe(e),
            _ => String::new(),
        },
    ]
}

async fn list_users(api: &ApiClient, args: UserListArgs) -> anyhow::Result<ExitCode> {
    let integration = the_integration(api, args.integration).await?;
    let mut query = Vec::new();
    push(&mut query, "state", args.state.map(value_name));
    push(&mut query, "search", args.search);
    push(&mut query, "sort", args.sort.map(value_name));
    if args.desc {
        query.push(("order", "desc".to_owned()));
    }
    push(&mut query, "limit", args.limit.map(|n| n.to_string()));
    let mut after = args.after;
    let mut pages = Vec::new();
    loop {
        let mut page_query = query.clone();
        push(&mut page_query, "after", after.clone());
        let page = api
            .get(&format!("/integrations/{integration}/users"), &page_query)
            .await?;
        after = page["next"].as_str().map(str::to_owned);
        pages.push(page);
        if !args.all || after.is_none() {
            break;
        }
    }
    let items: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
        .collect();
    let Some(last) = pages.last() else {
        return Ok(ExitCode::SUCCESS);
    };
    if api.json {
        print_json(&json!({"counts": last["counts"], "items": items, "next": last["next"]}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let counts = &last["counts"];
    println!(
        "pending {} · paired with keybridge {} · paired with Entra {}",
        text(&counts["pending"]),
        text(&counts["paired_with_keybridge"]),
        text(&counts["paired_with_entra"])
    );
    let rows: Vec<Vec<String>> = items.iter().map(user_row).collect();
    table(
        &[
            "ID",
            "USERNAME",
            "NAME",
            "STATE",
            "DEVICES",
            "LAST ACTIVE",
            "NOTE",
        ],
        &rows,
    );
    if let Some(next) = last["next"].as_str() {
        println!("more: --after {}", terminal_safe(next));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `keybridge admin users …`.
pub fn users(args: UsersArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        match args.command {
            UsersCommand::List(list) => return list_users(&api, list).await,
            UsersCommand::Show { id } => {
                let user = api.get(&format!("/users/{id}"), &[]).await?;
                if api.json {
                    print_json(&user)?;
                } else {
                    fields(
                        &user,
                        &[
                            ("id", "id"),
                            ("username", "username"),
                            ("name", "name"),
                            ("e-mail", "email"),
                            ("state", "state"),
                            ("entra status", "entra_status"),
                            ("warning", "warning"),
                            ("devices", "device_count"),
                            ("last active", "last_active"),
                            ("provisioning error", "provisioning_error"),
                            ("integration", "integration_id"),
                            ("entra object id", "entra_object_id"),
                        ],
                    );
                }
            }
            UsersCommand::Invite {
                id: None,
                group,
                csv,
                integration,
                expires_in_hours,
                links_to,
                wait,
            } => {
                let integration = the_integration(&api, integration).await?;
                let path = format!("/integrations/{integration}/invites/bulk");
                let mut query = Vec::new();
                if let Some(hours) = expires_in_hours {
                    query.push(("expires_in_hours", hours.to_string()));
                }
                let answer = match (group, csv) {
                    (Some(group), _) => {
                        api.call(Method::POST, &path, &query, Some(&json!({"group": group})))
                            .await?
                    }
                    (None, Some(file)) => {
                        let text = std::fs::read_to_string(&file).map_err(|e| {
                            anyhow::anyhow!(
                                "cannot read {}: {e} (save the file as CSV UTF-8)",
                                file.display()
                            )
                        })?;
                        api.post_text(&path, &query, "text/csv", &text).await?
                    }
                    (None, None) => anyhow::bail!("pass a user id, --group ID or --csv FILE"),
                };
                let job = answer["job_id"].as_str().unwrap_or_default().to_owned();
                if api.json && !wait && links_to.is_none() {
                    print_json(&answer)?;
                } else if !api.json {
                    println!("bulk invitation queued: job {job}");
                }
                if wait || links_to.is_some() {
                    let code = wait_for_job(&api, &job, Duration::from_secs(3600)).await?;
                    if code != ExitCode::SUCCESS {
                        return Ok(code);
                    }
                    let results = api.get(&format!("/jobs/{job}/invite-results"), &[]).await?;
                    for failed in results
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["outcome"] == "failed")
                    {
                        eprintln!(
                            "not invited: {}: {}",
                            terminal_safe(&text(&failed["address"])),
                            terminal_safe(&text(&failed["reason"]))
                        );
                    }
                    if let Some(file) = links_to {
                        let links = api.bytes(&format!("/jobs/{job}/invite-links"), &[]).await?;
                        write_private_file(&file, &links)?;
                        eprintln!(
                            "invitation links saved to {}: pass each one on to its user",
                            file.display()
                        );
                    }
                }
            }
            UsersCommand::Invite {
                id: Some(id),
                expires_in_hours,
                ..
            } => {
                let mut body = serde_json::Map::new();
                if let Some(hours) = expires_in_hours {
                    body.insert("expires_in_hours".into(), hours.into());
                }
                let answer = api
                    .call(
                        Method::POST,
                        &format!("/users/{id}/invites"),
                        &[],
                        Some(&Value::Object(body)),
                    )
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else if answer["delivery"] == "emailed" {
                    println!(
                        "invitation e-mailed to {}, valid until {}",
                        text(&answer["sent_to"]),
                        text(&answer["invite"]["expires_at"])
                    );
                } else {
                    println!("{}", text(&answer["link"]));
                    eprintln!(
                        "single-use invitation link, valid until {}: pass it on to the user (it is not shown again)",
                        text(&answer["invite"]["expires_at"])
                    );
                }
            }
            UsersCommand::Invites { id } => {
                let headers = ["ID", "STATUS", "CREATED BY", "CREATED", "EXPIRES"];
                print_list(&api, &format!("/users/{id}/invites"), &headers, |i| {
                    ["id", "status", "created_by", "created_at", "expires_at"]
                        .iter()
                        .map(|key| text(&i[*key]))
                        .collect()
                })
                .await?;
            }
            UsersCommand::RevokeInvite { id } => {
                api.call(Method::DELETE, &format!("/users/{id}/invites"), &[], None)
                    .await?;
                if api.json {
                    print_json(&json!({"revoked": true}))?;
                } else {
                    println!("revoked the open invitation of user {id}");
                }
            }
            UsersCommand::Phones { id } => {
                let list = api.get(&format!("/users/{id}/phones"), &[]).await?;
                if api.json {
                    print_json(&list)?;
                } else {
                    let phones = list.as_array().cloned().unwrap_or_default();
                    let rows: Vec<Vec<String>> = phones
                        .iter()
                        .map(|p| {
                            let workstations = p["workstations"]
                                .as_array()
                                .map(|w| {
                                    w.iter()
                                        .map(|w| {
                                            format!("{} ({})", text(&w["name"]), text(&w["status"]))
                                        })
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default();
                            vec![
                                text(&p["id"]),
                                text(&p["name"]),
                                text(&p["model"]),
                                text(&p["os"]),
                                text(&p["last_seen_at"]),
                                workstations,
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "DEVICE ID",
                            "NAME",
                            "MODEL",
                            "OS",
                            "LAST SEEN",
                            "WORKSTATIONS",
                        ],
                        &rows,
                    );
                    for phone in &phones {
                        if let Some(warning) = phone["warning"].as_str() {
                            println!("{}: {}", text(&phone["id"]), terminal_safe(warning));
                        }
                    }
                }
            }
            UsersCommand::Methods { id } => {
                let headers = ["METHOD ID", "NAME", "MODEL", "REGISTERED", "MADE BY"];
                print_list(&api, &format!("/users/{id}/fido2-methods"), &headers, |m| {
                    let maker = if m["ours"] == true {
                        "keybridge"
                    } else {
                        "other"
                    };
                    vec![
                        text(&m["id"]),
                        text(&m["device_name"]),
                        text(&m["model"]),
                        text(&m["created"]),
                        maker.to_owned(),
                    ]
                })
                .await?;
            }
            UsersCommand::DeleteMethod { id, method } => {
                let answer = api
                    .call(
                        Method::DELETE,
                        &format!("/users/{id}/fido2-methods/{}", encode_segment(&method)),
                        &[],
                        None,
                    )
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else if answer["outcome"] == "unpairing" {
                    println!(
                        "{} is keybridge's passkey: its phone is being unpaired (job {})",
                        text(&answer["method_id"]),
                        text(&answer["job_id"])
                    );
                } else {
                    println!(
                        "deleted {} ({}) from Microsoft Entra",
                        text(&answer["method_id"]),
                        text(&answer["device_name"])
                    );
                }
            }
            UsersCommand::Unpair { id, phone, wait } => {
                let answer = api
                    .call(
                        Method::DELETE,
                        &format!("/users/{id}/phones/{phone}"),
                        &[],
                        None,
                    )
                    .await?;
                let job = answer["job_id"].as_str().unwrap_or_default().to_owned();
                if api.json && !wait {
                    print_json(&answer)?;
                } else if !api.json {
                    println!("unpairing queued: job {job}");
                }
                if wait {
                    return wait_for_job(&api, &job, Duration::from_secs(600)).await;
                }
            }
            UsersCommand::Delete { id, confirm, wait } => {
                let answer = api
                    .call(
                        Method::DELETE,
                        &format!("/users/{id}"),
                        &[],
                        Some(&json!({"confirm": confirm})),
                    )
                    .await?;
                let job = answer["job_id"].as_str().unwrap_or_default().to_owned();
                if api.json && !wait {
                    print_json(&answer)?;
                } else if !api.json {
                    println!("deletion queued: job {job}");
                }
                if wait {
                    return wait_for_job(&api, &job, Duration::from_secs(600)).await;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------- jobs

fn job_row(job: &Value) -> Vec<String> {
    vec![
        text(&job["id"]),
        text(&job["kind"]),
        text(&job["state"]),
        progress(job),
        text(&job["created_at"]),
        text(&job["last_error"]),
    ]
}

fn progress(job: &Value) -> String {
    let done = job["progress_done"].as_i64().unwrap_or(0);
    let failed = job["progress_failed"].as_i64().unwrap_or(0);
    let total = job["progress_total"].as_i64().unwrap_or(0);
    let mut text = if total > 0 {
        format!("{done}/{total}")
    } else {
        format!("{done}")
    };
    if failed > 0 {
        text.push_str(&format!(" ({failed} failed)"));
    }
    text
}

fn show_job(job: &Value) {
    fields(
        job,
        &[
            ("id", "id"),
            ("kind", "kind"),
            ("state", "state"),
            ("attempts", "attempts"),
            ("max attempts", "max_attempts"),
            ("created", "created_at"),
            ("finished", "finished_at"),
            ("last error", "last_error"),
        ],
    );
    println!("{:<12}  {}", "progress", progress(job));
}

/// Polls a job until it ends; exit 0 when it succeeded, 1 when it died or was cancelled.
async fn wait_for_job(api: &ApiClient, id: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut shown = String::new();
    loop {
        let job = api.get(&format!("/jobs/{id}"), &[]).await?;
        let state = job["state"].as_str().unwrap_or_default().to_owned();
        let line = format!("{} {}: {}", text(&job["kind"]), state, progress(&job));
        if line != shown && !api.json {
            eprintln!("{line}");
            shown = line;
        }
        match state.as_str() {
            "succeeded" | "dead" | "cancelled" => {
                if api.json {
                    print_json(&job)?;
                } else if let Some(error) = job["last_error"].as_str() {
                    eprintln!("last error: {}", terminal_safe(error));
                }
                return Ok(if state == "succeeded" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_FOUND_PROBLEM)
                });
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "job {id} is still {state} after {} s; it goes on: `keybridge admin jobs wait {id}` again",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `keybridge admin jobs …`.
pub fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        match args.command {
            JobsCommand::List {
                state,
                kind,
                limit,
                before,
            } => {
                let mut query = Vec::new();
                push(&mut query, "state", state.map(value_name));
                push(&mut query, "kind", kind);
                push(&mut query, "limit", limit.map(|n| n.to_string()));
                push(&mut query, "before", before);
                let page = api.get("/jobs", &query).await?;
                if api.json {
                    print_json(&page)?;
                } else {
                    let rows: Vec<Vec<String>> = page["items"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(job_row)
                        .collect();
                    table(
                        &["ID", "KIND", "STATE", "PROGRESS", "CREATED", "LAST ERROR"],
                        &rows,
                    );
                    if let Some(next) = page["next"].as_str() {
                        println!("more: --before {}", terminal_safe(next));
                    }
                }
            }
            JobsCommand::Show { id } => {
                let job = api.get(&format!("/jobs/{id}"), &[]).await?;
                if api.json {
                    print_json(&job)?;
                } else {
                    show_job(&job);
                }
            }
            JobsCommand::Retry { id } => {
                let job = api
                    .call(Method::POST, &format!("/jobs/{id}/retry"), &[], None)
                    .await?;
                if api.json {
                    print_json(&job)?;
                } else {
                    println!("job {id} queued again ({})", text(&job["state"]));
                }
            }
            JobsCommand::Cancel { id } => {
                let job = api
                    .call(Method::POST, &format!("/jobs/{id}/cancel"), &[], None)
                    .await?;
                if api.json {
                    print_json(&job)?;
                } else {
                    println!("job {id} {}", text(&job["state"]));
                }
            }
            JobsCommand::Wait { id, timeout } => {
                return wait_for_job(&api, &id, Duration::from_secs(timeout)).await;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------- tokens

/// Runs `keybridge admin tokens …`.
pub fn tokens(args: TokensArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        match args.command {
            TokensCommand::List => {
                let list = api.get("/tokens", &[]).await?;
                if api.json {
                    print_json(&list)?;
                } else {
                    let rows: Vec<Vec<String>> = list
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|t| {
                            let status = if !t["revoked_at"].is_null() {
                                "revoked"
                            } else {
                                "active"
                            };
                            vec![
                                text(&t["id"]),
                                text(&t["name"]),
                                text(&t["role"]),
                                status.to_owned(),
                                format!("{}…", text(&t["prefix"])),
                                text(&t["expires_at"]),
                                text(&t["last_used_at"]),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "ID",
                            "NAME",
                            "ROLE",
                            "STATUS",
                            "PREFIX",
                            "EXPIRES",
                            "LAST USED",
                        ],
                        &rows,
                    );
                }
            }
            TokensCommand::Create {
                name,
                role,
                expires_in_days,
            } => {
                let mut body: BTreeMap<&str, Value> = BTreeMap::new();
                body.insert("name", name.into());
                body.insert("role", value_name(role).into());
                if let Some(days) = expires_in_days {
                    body.insert("expires_in_days", days.into());
                }
                let answer = api
                    .call(Method::POST, "/tokens", &[], Some(&json!(body)))
                    .await?;
                if api.json {
                    print_json(&answer)?;
                } else {
                    println!("{}", text(&answer["token"]));
                    eprintln!(
                        "created API token {} (\"{}\", role {}); it is shown only this once",
                        text(&answer["api_token"]["id"]),
                        text(&answer["api_token"]["name"]),
                        text(&answer["api_token"]["role"])
                    );
                }
            }
            TokensCommand::Revoke { id } => {
                api.call(Method::DELETE, &format!("/tokens/{id}"), &[], None)
                    .await?;
                if api.json {
                    print_json(&json!({"revoked": id}))?;
                } else {
                    println!("revoked API token {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------- audit

/// Runs `keybridge admin audit list`.
pub fn audit_list(args: AuditListArgs) -> anyhow::Result<ExitCode> {
    block_on(&args.api, |api| async move {
        let mut query = args.filter.query();
        push(&mut query, "limit", args.limit.map(|n| n.to_string()));
        push(&mut query, "before", args.before.map(|n| n.to_string()));
        let page = api.get("/audit", &query).await?;
        if api.json {
            print_json(&page)?;
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = page["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                vec![
                    text(&e["seq"]),
                    text(&e["at"]),
                    text(&e["actor"]),
                    text(&e["action"]),
                    text(&e["target"]),
                    text(&e["source_addr"]),
                ]
            })
            .collect();
        table(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "SOURCE"], &rows);
        if let Some(next) = page["next"].as_u64() {
            println!("more: --before {next}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `keybridge admin audit export` over the API.
pub fn audit_export(
    api: &ApiOptions,
    filter: &AuditFilterArgs,
    csv: bool,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    block_on(api, |api| async move {
        let mut query = filter.query();
        query.push(("format", if csv { "csv" } else { "json" }.to_owned()));
        let bytes = api.bytes("/audit/export", &query).await?;
        match output {
            Some(path) => {
                std::fs::write(path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!(
                    "wrote the audit export ({} bytes) to {}",
                    bytes.len(),
                    path.display()
                );
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .context("writing the export failed")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Writes secrets (invitation links) to a new file only its owner can read; an existing file
/// is never overwritten.
fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
