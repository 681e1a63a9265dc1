//! `keybridge device`: the phone, a device-bound FIDO2 authenticator with an encrypted key store.
//!
//! Interop commands (stable; used by scripts and support staff):
//! `make-credential` and `get-assertion` read WebAuthn options JSON on stdin and print the
//! `PublicKeyCredential` JSON on stdout; `info` and `accounts` list what the store holds.
//! The PIN comes from `--pin-file FILE`, else `KEYBRIDGE_DEVICE_PIN`, else a prompt on the
//! terminal. Unlocking the store with the PIN is the user verification (UV) of every
//! ceremony. Nothing here prints or exports a private key.

use keybridge_device_protocol::terminal_safe;
use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use keybridge_authenticator::pki::{generate_device_local, load_attestation_dir};
use keybridge_authenticator::{
    AAGUID_STRING, AccountSelector, AccountSummary, AttestationPreference, AttestationSource,
    Authenticator, CreationOptions, CredentialStore, FileStore, KdfParams, MIN_PIN_LEN,
    MakeCredentialSettings, OriginPolicy, RequestOptions,
};
use serde_json::json;

/// Environment variable holding the PIN for scripts.
pub const PIN_ENV: &str = "KEYBRIDGE_DEVICE_PIN";

const DEVICE_AFTER_HELP: &str = "\
PIN: --pin-file FILE (first line), else the KEYBRIDGE_DEVICE_PIN environment variable, else a
prompt on the terminal. At least 6 characters. Unlocking the store with it is the user
verification (UV) of every passkey operation.

Exit codes: 0 success; 2 error (wrong PIN, damaged or locked store, options refused, ...),
with a message saying what to do.";

/// Arguments of `keybridge device`.
#[derive(Debug, Args)]
#[command(after_help = DEVICE_AFTER_HELP)]
pub struct DeviceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DeviceCommand,
}

/// `keybridge device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create the device's encrypted key store and import the organisation's batch attestation.
    Init(InitArgs),
    /// Create a passkey: creation options JSON on stdin, PublicKeyCredential JSON on stdout.
    ///
    /// Reads Graph's webauthnCredentialCreationOptions ({"challengeTimeoutDateTime", "publicKey"})
    /// or a bare publicKey options object, and prints what Graph's POST fido2Methods takes as
    /// `publicKeyCredential`: id, rawId, type, response.clientDataJSON,
    /// response.attestationObject, response.transports, clientExtensionResults (base64url).
    MakeCredential(MakeCredentialArgs),
    /// Sign in: request options JSON on stdin, assertion JSON on stdout.
    ///
    /// Reads {"publicKey": {challenge, rpId, allowCredentials, userVerification}} or the bare
    /// object; prints id, rawId, type, response.clientDataJSON, response.authenticatorData,
    /// response.signature, response.userHandle (base64url). When several accounts match and
    /// allowCredentials does not narrow them down, choose one with --account.
    GetAssertion(GetAssertionArgs),
    /// Show the AAGUID, the attestation root certificate (PEM) and the accounts. No secrets.
    Info(InfoArgs),
    /// List the accounts (passkeys) in the store. No secrets.
    Accounts(AccountsArgs),
    /// Pair with a keybridge server: the QR payload from the Device Manager page, or its short
    /// code with the server's address and TLS pin.
    Pair(PairArgs),
    /// Wait for requests from the server (provision a passkey, approve a sign-in) and answer
    /// them; keeps going while the server is down, and re-sends an answer it did not receive.
    Inbox(InboxArgs),
    /// Unpair from the server: the server forgets this device and the user returns to
    /// Pending; the device key is deleted from the store.
    Unpair(UnpairArgs),
    /// Pair a workstation: the QR payload `keybridge workstation pair` shows, or its code.
    /// Prints the account's recovery PIN for that workstation.
    PairWorkstation(PairWorkstationArgs),
    /// Unpair a workstation this device paired.
    UnpairWorkstation(UnpairWorkstationArgs),
}

/// `keybridge device pair-workstation`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["payload", "code"])))]
pub struct PairWorkstationArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The workstation QR code's text, `keybridge:workstation?v=1&...`.
    #[arg(value_name = "PAYLOAD")]
    pub payload: Option<String>,
    /// The 6-character code the workstation shows under its QR code.
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// Which account pairs it, when this device is paired for several: its username.
    #[arg(long, value_name = "UPN")]
    pub account: Option<String>,
}

/// `keybridge device unpair-workstation`.
#[derive(Debug, Args)]
pub struct UnpairWorkstationArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The Workstation ID (`keybridge device info` lists them).
    #[arg(value_name = "WORKSTATION_ID")]
    pub workstation_id: String,
}

/// `keybridge device pair`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["payload", "code"])))]
pub struct PairArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The QR code's text, `keybridge:pair?v=1&...`.
    #[arg(value_name = "PAYLOAD")]
    pub payload: Option<String>,
    /// The 6-character code shown under the QR code (with --server and --pin).
    #[arg(long, value_name = "CODE", requires_all = ["server", "pin"])]
    pub code: Option<String>,
    /// The server's address, e.g. https://keybridge.example.com (with --code).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The server's TLS pin as `keybridge serve` prints it (with --code).
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,
    /// The device name shown to the user and the admins.
    #[arg(long, default_value = "keybridge device")]
    pub name: String,
    /// The device model.
    #[arg(long, default_value = "keybridge CLI")]
    pub model: String,
    /// The operating system.
    #[arg(long, default_value = std::env::consts::OS)]
    pub os: String,
}

/// `keybridge device inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Look once (waiting up to --wait seconds), answer what came, and exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds each poll waits for a request (at most 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=30))]
    pub wait: u64,
    /// Approve every request that passes the checks, without asking.
    #[arg(long, visible_alias = "approve", conflicts_with = "deny_all")]
    pub approve_all: bool,
    /// Refuse every request, without asking.
    #[arg(long, visible_alias = "deny")]
    pub deny_all: bool,
    /// For a sign-in that more than one passkey of the named account could answer: which one
    /// signs (a credential id or user name from `keybridge device accounts`). Without it the
    /// device asks on the terminal, or fails listing the passkeys.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
}

/// `keybridge device unpair`.
#[derive(Debug, Args)]
pub struct UnpairArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Which pairing, when the device is paired for several accounts: the account's username.
    #[arg(long, value_name = "UPN")]
    pub account: Option<String>,
}

/// Where the store is and how to unlock it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The key store directory.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Read the PIN from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// `keybridge device init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Directory written by `keybridge attestation init` (attestation-root.pem, batch-cert.pem,
    /// batch-key.pem). Without it the device makes its own root and batch certificate, which no
    /// relying party trusts until an administrator loads that root (`keybridge device info`).
    #[arg(long, value_name = "DIR")]
    pub attestation_dir: Option<PathBuf>,
}

/// Attestation choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationChoice {
    /// packed, x5c = [batch certificate], signed by the batch key.
    Packed,
    /// packed self attestation, signed by the new credential key.
    #[value(name = "self")]
    SelfAttestation,
    /// none.
    None,
}

/// `keybridge device make-credential`.
#[derive(Debug, Args)]
pub struct MakeCredentialArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The origin the request comes from, e.g. https://login.microsoft.com. Its host must be
    /// the rp id or a subdomain of it (or a related origin the relying party publishes).
    #[arg(long, value_name = "ORIGIN")]
    pub origin: String,
    /// Attestation when the relying party asks for one (it gets `none` when it asks for none).
    #[arg(long, value_enum, default_value = "packed")]
    pub attestation: AttestationChoice,
    /// Tenant (id or domain) to record with the account, to tell accounts apart later.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

/// `keybridge device get-assertion`.
#[derive(Debug, Args)]
pub struct GetAssertionArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The origin the request comes from.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: String,
    /// Which account signs when several match: a credential id or a user name, as listed by
    /// `keybridge device accounts`.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
}

/// `keybridge device info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `keybridge device accounts`.
#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// Store location and PIN.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `keybridge device`.
pub fn run(args: DeviceArgs) -> anyhow::Result<ExitCode> {
    let output = match args.command {
        DeviceCommand::Init(args) => {
            let pin = read_pin(&args.store, true)?;
            init(&args, &pin)?
        }
        DeviceCommand::MakeCredential(args) => {
            let options = read_stdin("creation options")?;
            let pin = read_pin(&args.store, false)?;
            make_credential(&args, &pin, &options)?
        }
        DeviceCommand::GetAssertion(args) => {
            let options = read_stdin("request options")?;
            let pin = read_pin(&args.store, false)?;
            get_assertion(&args, &pin, &options)?
        }
        DeviceCommand::Info(args) => {
            let pin = read_pin(&args.store, false)?;
            info(&args, &pin)?
        }
        DeviceCommand::Accounts(args) => {
            let pin = read_pin(&args.store, false)?;
            accounts(&args, &pin)?
        }
        DeviceCommand::Pair(args) => {
            let pin = read_pin(&args.store, false)?;
            super::device_server::pair(&args, &pin)?
        }
        DeviceCommand::Inbox(args) => {
            let pin = read_pin(&args.store, false)?;
            super::device_server::inbox(&args, &pin)?
        }
        DeviceCommand::Unpair(args) => {
            let pin = read_pin(&args.store, false)?;
            super::device_server::unpair(&args, &pin)?
        }
        DeviceCommand::PairWorkstation(args) => {
            let pin = read_pin(&args.store, false)?;
            super::device_server::pair_workstation(&args, &pin)?
        }
        DeviceCommand::UnpairWorkstation(args) => {
            let pin = read_pin(&args.store, false)?;
            super::device_server::unpair_workstation(&args, &pin)?
        }
    };
    print!("{output}");
    Ok(ExitCode::SUCCESS)
}

/// The PIN from `--pin-file`, the environment, or the terminal.
fn read_pin(args: &StoreArgs, confirm: bool) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Some(path) = &args.pin_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read the PIN file {}", path.display()))?,
        );
        let pin = text.lines().next().unwrap_or_default();
        if pin.is_empty() {
            bail!(
                "the PIN file {} is empty; put the PIN on its first line",
                path.display()
            );
        }
        return Ok(zeroize::Zeroizing::new(pin.to_owned()));
    }
    if let Ok(pin) = std::env::var(PIN_ENV) {
        return Ok(zeroize::Zeroizing::new(pin));
    }
    let prompt = format!("PIN for the key store at {}: ", args.store.display());
    let pin = zeroize::Zeroizing::new(rpassword::prompt_password(&prompt).map_err(|_| {
        anyhow::anyhow!(
            "no PIN given and no terminal to ask on; pass --pin-file FILE or set {PIN_ENV}"
        )
    })?);
    if confirm {
        let again = zeroize::Zeroizing::new(
            rpassword::prompt_password("Repeat the PIN: ").context("could not read the PIN")?,
        );
        if *again != *pin {
            bail!("the two PINs differ; nothing was created, run the command again");
        }
    }
    Ok(pin)
}

fn read_stdin(what: &str) -> anyhow::Result<String> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Reading the {what} JSON from standard input (end with Ctrl-D)...");
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .with_context(|| format!("could not read the {what} from standard input"))?;
    if text.trim().is_empty() {
        bail!(
            "no {what} on standard input; pipe the JSON in, e.g. `keybridge device ... < options.json`"
        );
    }
    Ok(text)
}

pub(crate) fn open_store(args: &StoreArgs, pin: &str) -> anyhow::Result<FileStore> {
    Ok(FileStore::open(&args.store, pin)?)
}

/// The origin policy of the CLI: strict, plus Microsoft's published related origins for
/// `login.microsoft.com` (Entra's browser sign-in origins).
pub(crate) fn origin_policy() -> OriginPolicy {
    OriginPolicy::with_microsoft_related_origins()
}

fn init(args: &InitArgs, pin: &str) -> anyhow::Result<String> {
    init_with_kdf(args, pin, KdfParams::default())
}

fn init_with_kdf(args: &InitArgs, pin: &str, kdf: KdfParams) -> anyhow::Result<String> {
    let dir = &args.store.store;
    if FileStore::exists(dir) {
        // Check before asking Argon2 or generating keys: the message is the same either way.
        bail!(keybridge_authenticator::StoreError::AlreadyExists { dir: dir.clone() });
    }
    if pin.chars().count() < MIN_PIN_LEN {
        bail!(keybridge_authenticator::StoreError::PinTooShort {
            min: MIN_PIN_LEN,
            len: pin.chars().count()
        });
    }
    let identity = match &args.attestation_dir {
        Some(attestation_dir) => load_attestation_dir(attestation_dir).with_context(|| {
            format!(
                "could not import the batch attestation from {}; it must hold the files `keybridge attestation init` writes",
                attestation_dir.display()
            )
        })?,
        None => generate_device_local(time::OffsetDateTime::now_utc())?,
    };
    let source = identity.source;
    let subject = identity.root_subject();
    FileStore::create(dir, pin, Some(identity), kdf)?;
    let trust = match source {
        AttestationSource::Organisation => {
            format!("organisation batch certificate under {subject}")
        }
        AttestationSource::DeviceLocal => format!(
            "device-local root {subject}; no relying party trusts it until an administrator loads it (print it with `keybridge device info --store {}`)",
            dir.display()
        ),
    };
    Ok(format!(
        "Created the key store at {}\n  AAGUID       {AAGUID_STRING}\n  attestation  {trust}\n",
        dir.display()
    ))
}

fn make_credential(
    args: &MakeCredentialArgs,
    pin: &str,
    options_json: &str,
) -> anyhow::Result<String> {
    let options = CreationOptions::from_json(options_json)?;
    let store = open_store(&args.store, pin)?;
    let presence = store.user_verification();
    let mut phone = Authenticator::new(store, presence).with_origin_policy(origin_policy());
    let settings = MakeCredentialSettings {
        attestation: match args.attestation {
            AttestationChoice::Packed => AttestationPreference::Packed,
            AttestationChoice::SelfAttestation => AttestationPreference::SelfAttestation,
            AttestationChoice::None => AttestationPreference::None,
        },
        tenant: args.tenant.clone(),
    };
    let created = phone.make_credential(&options, &args.origin, &settings)?;
    Ok(format!("{}\n", created.to_json()))
}

fn get_assertion(args: &GetAssertionArgs, pin: &str, options_json: &str) -> anyhow::Result<String> {
    let options = RequestOptions::from_json(options_json)?;
    let store = open_store(&args.store, pin)?;
    let presence = store.user_verification();
    let mut phone = Authenticator::new(store, presence).with_origin_policy(origin_policy());
    let selector = args.account.as_deref().map(AccountSelector::parse);
    let assertion = phone.get_assertion(&options, &args.origin, selector.as_ref())?;
    Ok(format!("{}\n", assertion.to_json()))
}

fn accounts_text(store: &FileStore) -> String {
    let summaries: Vec<AccountSummary> = store.credentials().iter().map(|c| c.summary()).collect();
    summaries_text(&summaries)
}

fn summaries_text(summaries: &[AccountSummary]) -> String {
    let mut out = String::new();
    if summaries.is_empty() {
        out.push_str("  (none)\n");
    }
    // Names come from relying parties: never print them raw.
    for summary in summaries {
        out.push_str(&format!(
            "  {}  rp {}  tenant {}  credential {}  counter {}  created {}\n",
            terminal_safe(&summary.user_name),
            terminal_safe(&summary.rp_id),
            terminal_safe(summary.tenant.as_deref().unwrap_or("-")),
            summary.credential_id,
            summary.sign_count,
            summary.created_at
        ));
    }
    out
}

fn info(args: &InfoArgs, pin: &str) -> anyhow::Result<String> {
    let store = open_store(&args.store, pin)?;
    let summaries: Vec<_> = store.credentials().iter().map(|c| c.summary()).collect();
    let attestation = store.attestation();
    if args.json {
        let value = json!({
            "aaguid": AAGUID_STRING,
            "store": store.dir(),
            "attestation": attestation.map(|a| json!({
                "source": a.source,
                "rootSubject": a.root_subject(),
                "rootCertificatePem": a.root_certificate_pem(),
            })),
            "accounts": summaries,
            "pairings": store.pairings().iter().map(|p| json!({
                "server": p.server_url,
                "tlsPin": p.tls_pin,
                "deviceId": p.device_id,
                "upn": p.upn,
                "tenantId": p.tenant_id,
                "integrationId": p.integration_id,
            })).collect::<Vec<_>>(),
        });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    let mut out = format!(
        "AAGUID        {AAGUID_STRING}\nstore         {}\n",
        store.dir().display()
    );
    match attestation {
        Some(a) => {
            let source = match a.source {
                AttestationSource::Organisation => "organisation",
                AttestationSource::DeviceLocal => {
                    "device-local (trusted by nobody until its root is loaded)"
                }
            };
            out.push_str(&format!(
                "attestation   {source}\nroot subject  {}\n",
                a.root_subject()
            ));
            out.push_str(&format!("accounts      {}\n", summaries.len()));
            out.push_str(&accounts_text(&store));
            out.push_str("attestation root certificate:\n");
            out.push_str(&a.root_certificate_pem());
        }
        None => {
            out.push_str("attestation   none (self or none attestation only)\n");
            out.push_str(&format!("accounts      {}\n", summaries.len()));
            out.push_str(&accounts_text(&store));
        }
    }
    out.push_str(&format!(
        "paired with   {} server account(s)\n",
        store.pairings().len()
    ));
    for pairing in store.pairings() {
        out.push_str(&format!(
            "  {} at {} (device {})\n",
            terminal_safe(&pairing.upn),
            terminal_safe(&pairing.server_url),
            pairing.device_id
        ));
    }
    for workstation in store.workstations() {
        out.push_str(&format!(
            "  workstation {} ({}) for device {}\n",
            terminal_safe(&workstation.computer_name),
            workstation.workstation_id,
            workstation.device_id
        ));
    }
    Ok(out)
}

fn accounts(args: &AccountsArgs, pin: &str) -> anyhow::Result<String> {
    let store = open_store(&args.store, pin)?;
    if args.json {
        let summaries: Vec<_> = store.credentials().iter().map(|c| c.summary()).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&summaries)?));
    }
    Ok(accounts_text(&store))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn account_list_does_not_print_terminal_control_characters() {
        let summary = AccountSummary {
            credential_id: "Y3JlZA".into(),
            rp_id: "login.microsoft.com".into(),
            rp_name: "Microsoft\x1b[2J".into(),
            user_id: "dXNlcg".into(),
            user_name: "mallory\x1b[2J@contoso.com\nDone.".into(),
            user_display_name: "Mallory\x1b[2J".into(),
            tenant: Some("contoso\r".into()),
            sign_count: 3,
            cred_protect: 1,
            hmac_secret: true,
            created_at: "2026-11-25T10:00:00Z".into(),
        };
        let text = summaries_text(&[summary]);
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().count(), 1, "one line per account: {text:?}");
        assert!(
            text.contains("mallory\u{FFFD}[2J@contoso.com\u{FFFD}Done."),
            "{text:?}"
        );
        assert!(text.contains("tenant contoso\u{FFFD}"), "{text:?}");
    }

    const PIN: &str = "493817";

    /// Cheap Argon2 parameters so each test opens its store quickly; never for a real store.
    fn cheap_kdf() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            time_cost: 1,
            parallelism: 1,
        }
    }

    fn store_args(dir: &Path) -> StoreArgs {
        StoreArgs {
            store: dir.to_path_buf(),
            pin_file: None,
        }
    }

    fn init_store(dir: &Path, attestation_dir: Option<PathBuf>) -> String {
        init_with_kdf(
            &InitArgs {
                store: store_args(dir),
                attestation_dir,
            },
            PIN,
            cheap_kdf(),
        )
        .expect("init")
    }

    fn options(user: &str, challenge: &str) -> String {
        json!({
            "challengeTimeoutDateTime": "2099-01-01T00:00:00Z",
            "publicKey": {
                "rp": {"id": "login.microsoft.com", "name": "Microsoft"},
                "user": {"id": keybridge_authenticator::b64url(user.as_bytes()), "name": user, "displayName": user},
                "challenge": challenge,
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "authenticatorSelection": {"userVerification": "required"},
                "attestation": "direct",
                "extensions": {"hmacCreateSecret": true}
            }
        })
        .to_string()
    }

    fn make(dir: &Path, user: &str, attestation: AttestationChoice) -> serde_json::Value {
        let args = MakeCredentialArgs {
            store: store_args(dir),
            origin: "https://login.microsoft.com".into(),
            attestation,
            tenant: Some("contoso".into()),
        };
        let out =
            make_credential(&args, PIN, &options(user, "Y2hhbGxlbmdl")).expect("make-credential");
        serde_json::from_str(&out).expect("JSON")
    }

    #[test]
    fn init_make_credential_get_assertion_info_accounts() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("device");
        let text = init_store(&dir, None);
        assert!(
            text.contains(AAGUID_STRING) && text.contains("device-local"),
            "{text}"
        );

        let credential = make(&dir, "ana@contoso.com", AttestationChoice::Packed);
        for field in ["id", "rawId", "type"] {
            assert!(credential[field].is_string(), "{field}");
        }
        for field in ["clientDataJSON", "attestationObject"] {
            assert!(credential["response"][field].is_string(), "{field}");
        }
        assert_eq!(credential["response"]["transports"], json!(["hybrid"]));
        assert_eq!(
            credential["clientExtensionResults"],
            json!({"hmacCreateSecret": true})
        );

        let args = GetAssertionArgs {
            store: store_args(&dir),
            origin: "https://login.microsoft.com".into(),
            account: None,
        };
        let request = r#"{"publicKey":{"challenge":"c2lnbi1pbg","rpId":"login.microsoft.com","userVerification":"required"}}"#;
        let assertion: serde_json::Value =
            serde_json::from_str(&get_assertion(&args, PIN, request).expect("get-assertion"))
                .expect("JSON");
        assert_eq!(assertion["id"], credential["id"]);
        assert_eq!(
            assertion["response"]["userHandle"],
            json!(keybridge_authenticator::b64url(b"ana@contoso.com"))
        );

        // A second account: the same request is now ambiguous until --account chooses.
        make(&dir, "ana@fabrikam.com", AttestationChoice::None);
        let error = get_assertion(&args, PIN, request)
            .expect_err("ambiguous")
            .to_string();
        assert!(
            error.contains("--account") && error.contains("ana@fabrikam.com"),
            "{error}"
        );
        let chosen = GetAssertionArgs {
            account: Some("ana@fabrikam.com".into()),
            ..args
        };
        let assertion: serde_json::Value =
            serde_json::from_str(&get_assertion(&chosen, PIN, request).expect("chosen"))
                .expect("JSON");
        assert_ne!(assertion["id"], credential["id"]);

        let info_json: serde_json::Value = serde_json::from_str(
            &info(
                &InfoArgs {
                    store: store_args(&dir),
                    json: true,
                },
                PIN,
            )
            .expect("info"),
        )
        .expect("JSON");
        assert_eq!(info_json["aaguid"], AAGUID_STRING);
        assert_eq!(info_json["attestation"]["source"], "device-local");
        assert!(
            info_json["attestation"]["rootCertificatePem"]
                .as_str()
                .expect("pem")
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(info_json["accounts"].as_array().map(Vec::len), Some(2));
        let text = info(
            &InfoArgs {
                store: store_args(&dir),
                json: false,
            },
            PIN,
        )
        .expect("info");
        assert!(
            text.contains("BEGIN CERTIFICATE") && text.contains("ana@fabrikam.com"),
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY"));

        let listing = accounts(
            &AccountsArgs {
                store: store_args(&dir),
                json: false,
            },
            PIN,
        )
        .expect("accounts");
        assert_eq!(listing.lines().count(), 2, "{listing}");
        assert!(listing.contains("counter 1"), "{listing}");
    }

    #[test]
    fn init_imports_an_organisation_and_refuses_to_overwrite() {
        let temp = tempfile::tempdir().expect("tempdir");
        let material_dir = temp.path().join("attestation");
        super::super::attestation::init_into(&material_dir, "Contoso", "DE")
            .expect("attestation init");
        let dir = temp.path().join("device");
        let text = init_store(&dir, Some(material_dir.clone()));
        assert!(
            text.contains("organisation batch certificate") && text.contains("Contoso"),
            "{text}"
        );
        let error = init_with_kdf(
            &InitArgs {
                store: store_args(&dir),
                attestation_dir: Some(material_dir),
            },
            PIN,
            cheap_kdf(),
        )
        .expect_err("exists")
        .to_string();
        assert!(error.contains("already exists"), "{error}");

        let other = temp.path().join("other");
        let error = init_with_kdf(
            &InitArgs {
                store: store_args(&other),
                attestation_dir: Some(temp.path().join("missing")),
            },
            PIN,
            cheap_kdf(),
        )
        .expect_err("missing material");
        assert!(
            format!("{error:#}").contains("attestation-root.pem"),
            "{error:#}"
        );
        assert!(!FileStore::exists(&other), "nothing was created");
    }

    #[test]
    fn errors_say_what_to_do() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("device");
        let short = init_with_kdf(
            &InitArgs {
                store: store_args(&dir),
                attestation_dir: None,
            },
            "123",
            cheap_kdf(),
        )
        .expect_err("short PIN")
        .to_string();
        assert!(short.contains("at least 6"), "{short}");
        init_store(&dir, None);
        let wrong = info(
            &InfoArgs {
                store: store_args(&dir),
                json: true,
            },
            "999999",
        )
        .expect_err("wrong PIN")
        .to_string();
        assert!(wrong.contains("wrong PIN"), "{wrong}");
        let args = MakeCredentialArgs {
            store: store_args(&dir),
            origin: "https://evil.example".into(),
            attestation: AttestationChoice::Packed,
            tenant: None,
        };
        let foreign = make_credential(&args, PIN, &options("ana@contoso.com", "AAAA"))
            .expect_err("foreign origin")
            .to_string();
        assert!(foreign.contains("foreign relying party"), "{foreign}");
        let bad = make_credential(&args, PIN, "{not json")
            .expect_err("bad JSON")
            .to_string();
        assert!(bad.contains("not JSON"), "{bad}");
    }

    #[test]
    fn pin_file_first_line_is_the_pin() {
        let temp = tempfile::tempdir().expect("tempdir");
        let file = temp.path().join("pin");
        std::fs::write(&file, "493817\nignored\n").expect("write");
        let args = StoreArgs {
            store: temp.path().to_path_buf(),
            pin_file: Some(file.clone()),
        };
        assert_eq!(read_pin(&args, false).expect("pin").as_str(), "493817");
        std::fs::write(&file, "").expect("write");
        assert!(
            read_pin(&args, false)
                .expect_err("empty")
                .to_string()
                .contains("empty")
        );
    }
}
