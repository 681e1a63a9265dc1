//! `keybridge workstation`: the desktop client (what the Windows credential provider would
//! do): enrol with the install token of `keybridge.json`, pair with the user's phone, sign in
//! through the phone's passkey. The library is `keybridge-workstation`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use keybridge_device_protocol::terminal_safe;
use keybridge_workstation::{DesktopConfig, EntraSignIn, Error, SignInMode, Workstation};

const WORKSTATION_AFTER_HELP: &str = "\
The workstation keeps its state (its id and private key) in --state DIR (KEYBRIDGE_WORKSTATION_DIR,
default ~/.local/share/keybridge/workstation), in a 0600 file.

Exit codes: 0 success; 2 error; 4 the sign-in was denied on the phone; 5 the phone did not
answer in time; 6 the workstation was revoked (or deleted) by an administrator; 7 not paired with
a phone, or the account is not on the paired phone; 8 the request was refused as replayed or
altered; 9 Microsoft Entra refused the sign-in.";

/// Arguments of `keybridge workstation`.
#[derive(Debug, Args)]
#[command(after_help = WORKSTATION_AFTER_HELP)]
pub struct WorkstationArgs {
    /// The directory with the workstation's state.
    #[arg(
        long,
        global = true,
        env = "KEYBRIDGE_WORKSTATION_DIR",
        value_name = "DIR"
    )]
    pub state: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: WorkstationCommand,
}

/// `keybridge workstation` subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkstationCommand {
    /// Exchange the install token of keybridge.json (once) for this workstation's registration:
    /// `keybridge workstation enrol --config keybridge.json`.
    Enrol(EnrolArgs),
    /// Show a QR code and a code for 60 s; scan it with `keybridge device pair-workstation`.
    Pair(PairArgs),
    /// Sign in to Microsoft Entra through the paired phone.
    SignIn(SignInArgs),
    /// Sign in with the recovery PIN when the phone is not at hand (the PIN works once).
    Recover(RecoverArgs),
    /// Unpair from the phone.
    Unpair,
    /// Show this workstation, its status and the accounts of the paired phone.
    Status,
}

/// `keybridge workstation enrol --config keybridge.json`: the global `--config` names the
/// keybridge.json from the desktop-client download.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The computer name shown on the phone and in the console (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `keybridge workstation pair`.
#[derive(Debug, Args)]
pub struct PairArgs {
    /// Print the QR payload as text instead of drawing the QR code (for scripts).
    #[arg(long)]
    pub text: bool,
    /// Do not wait for the phone; print the code and exit.
    #[arg(long)]
    pub no_wait: bool,
}

/// `keybridge workstation sign-in`.
#[derive(Debug, Args)]
pub struct SignInArgs {
    /// The account to sign in (default: the paired phone's only account; asked when it holds
    /// several).
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// Sign in as a browser does with a security key (usernameless request; the phone picks the
    /// credential of the named account).
    #[arg(long)]
    pub web: bool,
    /// Microsoft Entra's sign-in authority (entra-sim's base URL when testing).
    #[arg(
        long,
        env = "KEYBRIDGE_ENTRA_AUTHORITY",
        default_value = "https://login.microsoftonline.com",
        value_name = "URL"
    )]
    pub authority: String,
    /// Extra CA certificates (PEM) to trust for the authority (entra-sim's ca.pem).
    #[arg(long, env = "KEYBRIDGE_ENTRA_CA", value_name = "FILE")]
    pub authority_ca: Option<PathBuf>,
    /// Seconds to wait for the approval on the phone.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

/// `keybridge workstation recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The account.
    #[arg(long, value_name = "UPN")]
    pub user: String,
    /// The recovery PIN (else asked on the terminal).
    #[arg(
        long,
        env = "KEYBRIDGE_RECOVERY_PIN",
        value_name = "PIN",
        hide_env_values = true
    )]
    pub pin: Option<String>,
}

fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("keybridge").join("workstation")
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "workstation".to_owned())
}

fn fail(error: &Error) -> ExitCode {
    eprintln!("keybridge workstation: {error}");
    ExitCode::from(error.exit_code())
}

/// Runs `keybridge workstation`.
pub fn run(
    args: WorkstationArgs,
    config_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let dir = args.state.clone().unwrap_or_else(default_state_dir);
    let runtime = super::runtime()?;
    let result = runtime.block_on(async {
        match args.command {
            WorkstationCommand::Enrol(enrol) => run_enrol(&dir, config_file, &enrol).await,
            WorkstationCommand::Pair(pair) => run_pair(&dir, &pair).await,
            WorkstationCommand::SignIn(sign_in) => run_sign_in(&dir, &sign_in).await,
            WorkstationCommand::Recover(recover) => {
                let workstation = Workstation::open(&dir)?;
                let pin = match &recover.pin {
                    Some(pin) => zeroize::Zeroizing::new(pin.clone()),
                    None => zeroize::Zeroizing::new(
                        rpassword::prompt_password("Recovery PIN: ").map_err(|_| {
                            Error::RecoveryRefused(
                                "no PIN given and no terminal to ask on; pass --pin".to_owned(),
                            )
                        })?,
                    ),
                };
                workstation.recover(&recover.user, pin.trim()).await?;
                println!(
                    "Recovery PIN accepted for {}. It is used up; the phone sets a new one the next time it opens its inbox.",
                    terminal_safe(&recover.user)
                );
                Ok(())
            }
            WorkstationCommand::Unpair => {
                let workstation = Workstation::open(&dir)?;
                workstation.unpair().await?;
                println!("Unpaired from the phone.");
                Ok(())
            }
            WorkstationCommand::Status => run_status(&dir).await,
        }
    });
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    })
}

async fn run_enrol(
    dir: &std::path::Path,
    config_file: Option<&std::path::Path>,
    args: &EnrolArgs,
) -> Result<(), Error> {
    let path = config_file.ok_or_else(|| Error::Config {
        reason: "no file given: pass --config keybridge.json (from the console's desktop-client download)"
            .to_owned(),
    })?;
    let config = DesktopConfig::load(path)?;
    let name = args.name.clone().unwrap_or_else(host_name);
    let workstation = Workstation::enrol(&config, dir, &name).await?;
    println!(
        "Enrolled {} with {}\nWorkstation ID: {}\nState: {}\nNext: `keybridge workstation pair`, then scan the code with the phone.",
        terminal_safe(&workstation.state().computer_name),
        workstation.state().server_url,
        workstation.state().workstation_id,
        dir.display()
    );
    Ok(())
}

/// The QR code drawn with Unicode half blocks (two modules per character row).
fn qr_text(payload: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

async fn run_pair(dir: &std::path::Path, args: &PairArgs) -> Result<(), Error> {
    let workstation = Workstation::open(dir)?;
    let code = workstation.start_pairing().await?;
    if args.text {
        println!("{}", code.payload);
    } else {
        match qr_text(&code.payload) {
            Some(drawn) => println!("{drawn}"),
            None => println!("{}", code.payload),
        }
    }
    println!(
        "Code: {}   (valid 60 s; on the phone: `keybridge device pair-workstation`)",
        code.short_code
    );
    std::io::stdout().flush().ok();
    if args.no_wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(62);
    let before = workstation.status().await?.accounts;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = workstation.status().await?;
        if !status.accounts.is_empty() && status.accounts != before {
            println!(
                "Paired with {} ({}).",
                terminal_safe(&status.accounts[0].phone_name),
                terminal_safe(&status.accounts[0].upn)
            );
            return Ok(());
        }
    }
    Err(Error::TimedOut)
}

async fn run_status(dir: &std::path::Path) -> Result<(), Error> {
    let workstation = Workstation::open(dir)?;
    let status = workstation.status().await?;
    println!(
        "Workstation {} ({})\nServer: {}\nStatus: {}",
        terminal_safe(&status.computer_name),
        status.workstation_id,
        workstation.state().server_url,
        status.status
    );
    if status.accounts.is_empty() {
        println!("Not paired with a phone: run `keybridge workstation pair`.");
    } else {
        println!(
            "Paired phone: {}",
            terminal_safe(&status.accounts[0].phone_name)
        );
        for account in &status.accounts {
            println!("  account {}", terminal_safe(&account.upn));
        }
    }
    Ok(())
}

/// The account to sign in: the one given, else the phone's only account, else the user's
/// choice on the terminal. Never a silent pick among several.
async fn choose_user(workstation: &Workstation, given: Option<&str>) -> Result<String, Error> {
    if let Some(upn) = given {
        return Ok(upn.to_owned());
    }
    let accounts = workstation.status().await?.accounts;
    match accounts.as_slice() {
        [] => Err(Error::NotPaired),
        [one] => Ok(one.upn.clone()),
        several => {
            let list: Vec<String> = several.iter().map(|a| terminal_safe(&a.upn)).collect();
            if !std::io::stdin().is_terminal() {
                return Err(Error::AccountNotOnPhone(format!(
                    "the paired phone holds several accounts ({}): choose one with --user UPN",
                    list.join(", ")
                )));
            }
            println!("The phone holds several accounts:");
            for (n, upn) in list.iter().enumerate() {
                println!("  {}. {upn}", n + 1);
            }
            print!("Sign in as (1-{}): ", list.len());
            std::io::stdout().flush().ok();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).ok();
            line.trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| several.get(n.wrapping_sub(1)))
                .map(|a| a.upn.clone())
                .ok_or_else(|| {
                    Error::AccountNotOnPhone("no account chosen; nothing was sent".to_owned())
                })
        }
    }
}

async fn run_sign_in(dir: &std::path::Path, args: &SignInArgs) -> Result<(), Error> {
    let workstation = Workstation::open(dir)?;
    let ca = match &args.authority_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| Error::Config {
            reason: format!("cannot read the Entra CA file {}: {e}", path.display()),
        })?),
        None => None,
    };
    let entra = EntraSignIn::new(&args.authority, ca.as_deref())?;
    let upn = choose_user(&workstation, args.user.as_deref()).await?;
    println!(
        "Approve the sign-in of {} on your phone...",
        terminal_safe(&upn)
    );
    std::io::stdout().flush().ok();
    let mode = if args.web {
        SignInMode::Web
    } else {
        SignInMode::Windows
    };
    let signed_in = workstation
        .sign_in(&entra, &upn, mode, Duration::from_secs(args.timeout))
        .await?;
    println!(
        "Signed in as {} (subject {}; passkey counter {}).",
        terminal_safe(&signed_in.upn),
        signed_in.subject,
        signed_in.sign_count
    );
    Ok(())
}
