//! `keybridge device pair | inbox | unpair`: the phone's side of `/device/v1`, over a TLS
//! connection pinned to the server key from the pairing payload (or `--pin`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use keybridge_authenticator::server_client::{ClientError, DeviceIdentity, ServerClient};
use keybridge_authenticator::{
    AccountSelector, AccountSummary, AttestationPreference, Authenticator, AuthenticatorError,
    CreationOptions, FileStore, MakeCredentialSettings, RequestOptions, ServerPairing,
    WorkstationPairing,
};
use keybridge_device_protocol::{
    Account, AccountProof, Answer, ApproveSignIn, DeviceInfo, EnrolmentRequest, IdentityKey,
    IdentityPublicKey, InboxRequest, PairWorkstation, PairedWorkstation, PairingPayload,
    PairingReference, RecoveryPinEscrow, RefusalReason, RequestAnswer, ServerUrl, ShortCode,
    TlsPin, WorkstationPairingPayload, WorkstationsOfPhone, check_provision_request,
    check_sign_in_request,
};
use rand_core::OsRng;
use time::OffsetDateTime;
use uuid::Uuid;

use keybridge_device_protocol::terminal_safe;

use super::device::{
    InboxArgs, PairArgs, PairWorkstationArgs, UnpairArgs, UnpairWorkstationArgs, open_store,
    origin_policy,
};

/// Why a key store handed to the authenticator and not given back cannot be used.
const STORE_NOT_OPEN: &str = "the key store is not open; run the command again";

/// The origin a provisioning credential is made for: Entra's.
const ENTRA_ORIGIN: &str = "https://login.microsoft.com";

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Pairs this device with the server in the payload (or code, server and pin).
pub fn pair(args: &PairArgs, store_pin: &str) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc();
    let (server, tls_pin, reference, pairing_key) = match (&args.payload, &args.code) {
        (Some(payload), _) => {
            let payload = PairingPayload::parse(payload.trim(), now)?;
            (
                payload.server_url,
                payload.tls_pin,
                PairingReference::Id(payload.pairing_id),
                payload.secret.proof_key(),
            )
        }
        (None, Some(code)) => {
            let code = ShortCode::parse(code)?;
            let server = ServerUrl::parse(args.server.as_deref().unwrap_or_default())?;
            let pin = TlsPin::parse(args.pin.as_deref().unwrap_or_default())?;
            let key = code.proof_key();
            (server, pin, PairingReference::Code(code), key)
        }
        (None, None) => bail!("give the QR payload, or --code with --server and --pin"),
    };
    let device = DeviceInfo::new(&args.name, &args.model, &args.os)?;
    // Unlock the store before anything is sent: a wrong PIN must not leave a pairing behind.
    let mut store = open_store(&args.store, store_pin)?;
    let device_key = IdentityKey::generate(&mut OsRng);
    let request = EnrolmentRequest::build(reference, &pairing_key, &server, &device_key, device);
    let client = ServerClient::pinned(server.clone(), tls_pin)?;
    let response = runtime()?.block_on(client.enrol(&request))?;
    store
        .add_pairing(ServerPairing {
            server_url: server.to_string(),
            tls_pin: tls_pin.to_base64url(),
            device_id: response.device_id.hyphenated().to_string(),
            device_key: device_key.to_secret_bytes(),
            upn: response.account.upn.clone(),
            tenant_id: response.account.tenant_id.hyphenated().to_string(),
            entra_user_id: response.account.entra_user_id.hyphenated().to_string(),
            integration_id: response.integration_id.clone(),
            paired_at: now.unix_timestamp(),
        })
        .context("paired, but the pairing could not be saved in the key store; unpair the device in the console and pair again")?;
    Ok(format!(
        "Paired with {server} as {}\nConfirmation code: {}   (the Device Manager page shows the same code)\nDevice id: {}\n",
        terminal_safe(&response.account.upn),
        request.confirmation_code(),
        response.device_id,
    ))
}

struct Paired {
    device_id: String,
    client: ServerClient,
    identity: DeviceIdentity,
    account: Account,
}

fn paired(pairing: &ServerPairing) -> anyhow::Result<Paired> {
    let broken = |what: &str| {
        anyhow::anyhow!(
            "the key store's pairing with {} has an unreadable {what}; unpair and pair again",
            pairing.server_url
        )
    };
    let server = ServerUrl::parse(&pairing.server_url).map_err(|_| broken("server URL"))?;
    let pin = TlsPin::parse(&pairing.tls_pin).map_err(|_| broken("TLS pin"))?;
    Ok(Paired {
        device_id: pairing.device_id.clone(),
        client: ServerClient::pinned(server, pin)?,
        identity: DeviceIdentity {
            device_id: Uuid::try_parse(&pairing.device_id).map_err(|_| broken("device id"))?,
            key: IdentityKey::from_secret_bytes(pairing.device_key.as_ref())
                .map_err(|_| broken("device key"))?,
        },
        account: Account {
            upn: pairing.upn.clone(),
            tenant_id: Uuid::try_parse(&pairing.tenant_id).map_err(|_| broken("tenant id"))?,
            entra_user_id: Uuid::try_parse(&pairing.entra_user_id)
                .map_err(|_| broken("account id"))?,
        },
    })
}

enum Decision {
    Approve,
    Deny,
}

fn decide(args: &InboxArgs) -> anyhow::Result<Decision> {
    if args.approve_all {
        return Ok(Decision::Approve);
    }
    if args.deny_all {
        return Ok(Decision::Deny);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask on: pass --approve-all or --deny-all");
    }
    print!("Approve? [y/N] ");
    std::io::stdout()
        .flush()
        .context("cannot write to the terminal")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    Ok(if line.trim().eq_ignore_ascii_case("y") {
        Decision::Approve
    } else {
        Decision::Deny
    })
}

/// Handles one request: check, show, ask, act; returns the answer to send and a line to print.
fn handle(
    args: &InboxArgs,
    store: &mut Option<FileStore>,
    pairing_device_id: &str,
    account: &Account,
    request: &InboxRequest,
) -> anyhow::Result<(Answer, String)> {
    let now = OffsetDateTime::now_utc();
    match request {
        InboxRequest::ProvisionPasskey(provision) => {
            if let Err(error) = check_provision_request(provision, account, now) {
                let message = error.to_string();
                return Ok((
                    Answer::Refused {
                        reason: error.refusal_reason(),
                        message: message.clone(),
                    },
                    format!("Refused a request: {message}"),
                ));
            }
            println!("{}", provision.summary());
            if matches!(decide(args)?, Decision::Deny) {
                return Ok((
                    Answer::Refused {
                        reason: RefusalReason::UserDeclined,
                        message: "The user declined.".to_owned(),
                    },
                    "Declined.".to_owned(),
                ));
            }
            let taken = store.take().context(STORE_NOT_OPEN)?;
            let options = CreationOptions::from_json(&provision.creation_options.to_string());
            let presence = taken.user_verification();
            let mut phone = Authenticator::new(taken, presence).with_origin_policy(origin_policy());
            let made = options.map_err(anyhow::Error::from).and_then(|options| {
                phone
                    .make_credential(
                        &options,
                        ENTRA_ORIGIN,
                        &MakeCredentialSettings {
                            attestation: AttestationPreference::Packed,
                            tenant: Some(account.tenant_id.hyphenated().to_string()),
                        },
                    )
                    .map_err(anyhow::Error::from)
            });
            *store = Some(phone.into_store());
            Ok(match made {
                Ok(created) => (
                    Answer::Credential {
                        credential: created.to_json(),
                    },
                    "Passkey created and sent to the server.".to_owned(),
                ),
                Err(error) => (
                    Answer::Refused {
                        reason: RefusalReason::AuthenticatorFailed,
                        message: error.to_string(),
                    },
                    format!("Could not create the passkey: {error}"),
                ),
            })
        }
        InboxRequest::ApproveSignIn(sign_in) => {
            approve_sign_in(args, store, pairing_device_id, account, sign_in, now)
        }
    }
}

/// The key of the workstation `workstation_id` as this device paired it for `device_id`.
fn paired_workstation_key(
    store: &FileStore,
    device_id: &str,
    workstation_id: &str,
) -> Option<IdentityPublicKey> {
    store
        .workstations()
        .iter()
        .find(|w| w.device_id == device_id && w.workstation_id == workstation_id)
        .and_then(|w| IdentityPublicKey::parse(&w.workstation_key).ok())
}

fn denied(reason: RefusalReason, message: String, line: String) -> (Answer, String) {
    (Answer::Denied { reason, message }, line)
}

/// Which passkey signs: the request names the account; among that account's passkeys the
/// relying party allows, exactly one, the one `--account` names, or the user's choice. Never a
/// silent pick (the trap of taking the last one added).
pub(crate) fn choose_credential(
    candidates: &[AccountSummary],
    account_arg: Option<&str>,
    interactive: bool,
) -> anyhow::Result<AccountSelector> {
    let narrowed: Vec<&AccountSummary> = match account_arg {
        Some(text) => candidates
            .iter()
            .filter(|c| c.credential_id == text || c.user_name.eq_ignore_ascii_case(text))
            .collect(),
        None => candidates.iter().collect(),
    };
    let list = || {
        candidates
            .iter()
            .map(|c| {
                format!(
                    "{} ({}, created {})",
                    c.credential_id,
                    terminal_safe(&c.user_name),
                    c.created_at
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match narrowed.as_slice() {
        [one] => return Ok(AccountSelector::CredentialId(one.credential_id.clone())),
        [] if account_arg.is_some() => bail!(
            "--account matches none of the passkeys that could answer this sign-in: {}",
            list()
        ),
        _ => {}
    }
    if !interactive {
        bail!(
            "several passkeys on this device could answer this sign-in and none was chosen: {}; \
             run `keybridge device inbox` on a terminal to choose, or pass --account CREDENTIAL_ID",
            list()
        );
    }
    println!("Several passkeys could answer this sign-in:");
    for (n, c) in narrowed.iter().enumerate() {
        println!(
            "  {}. {}  {}  tenant {}  created {}",
            n + 1,
            terminal_safe(&c.user_name),
            c.credential_id,
            terminal_safe(c.tenant.as_deref().unwrap_or("-")),
            c.created_at
        );
    }
    print!("Sign with (1-{}): ", narrowed.len());
    std::io::stdout()
        .flush()
        .context("cannot write to the terminal")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    line.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| narrowed.get(n.wrapping_sub(1)))
        .map(|c| AccountSelector::CredentialId(c.credential_id.clone()))
        .context("no passkey chosen; the request was left unanswered")
}

fn approve_sign_in(
    args: &InboxArgs,
    store: &mut Option<FileStore>,
    device_id: &str,
    account: &Account,
    sign_in: &ApproveSignIn,
    now: OffsetDateTime,
) -> anyhow::Result<(Answer, String)> {
    let opened = store.as_ref().context(STORE_NOT_OPEN)?;
    let workstation_key = paired_workstation_key(
        opened,
        device_id,
        &sign_in.workstation_id.hyphenated().to_string(),
    );
    if let Err(error) = check_sign_in_request(sign_in, account, workstation_key.as_ref(), now) {
        let message = error.to_string();
        return Ok(denied(
            error.refusal_reason(),
            message.clone(),
            format!("Denied a sign-in: {message}"),
        ));
    }
    println!("{}", sign_in.summary());
    if matches!(decide(args)?, Decision::Deny) {
        return Ok(denied(
            RefusalReason::UserDeclined,
            "The user declined on the phone.".to_owned(),
            "Declined.".to_owned(),
        ));
    }
    let options = RequestOptions::from_json(&sign_in.request_options.to_string());
    let options = match options {
        Ok(options) => options,
        Err(error) => {
            return Ok(denied(
                RefusalReason::MalformedRequest,
                error.to_string(),
                format!("Denied a sign-in: {error}"),
            ));
        }
    };
    let taken = store.take().context(STORE_NOT_OPEN)?;
    let presence = taken.user_verification();
    let mut phone = Authenticator::new(taken, presence).with_origin_policy(origin_policy());
    // Only the named account's passkeys; then, if several remain, a choice.
    let by_account = AccountSelector::UserName(account.upn.clone());
    let mut result = phone.get_assertion(&options, ENTRA_ORIGIN, Some(&by_account));
    if let Err(AuthenticatorError::AmbiguousAccount { candidates, .. }) = &result {
        let tenant = account.tenant_id.hyphenated().to_string();
        let same_tenant: Vec<AccountSummary> = candidates
            .iter()
            .filter(|c| {
                c.tenant
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(&tenant))
            })
            .cloned()
            .collect();
        let interactive = !args.approve_all && std::io::stdin().is_terminal();
        match choose_credential(&same_tenant, args.account.as_deref(), interactive) {
            Ok(selector) => {
                result = phone.get_assertion(&options, ENTRA_ORIGIN, Some(&selector));
            }
            Err(error) => {
                *store = Some(phone.into_store());
                return Err(error);
            }
        }
    }
    *store = Some(phone.into_store());
    Ok(match result {
        Ok(assertion) => (
            Answer::Approved {
                assertion: assertion.to_json(),
            },
            format!(
                "Approved: signed in as {} on {}.",
                terminal_safe(&account.upn),
                keybridge_device_protocol::display_safe(&sign_in.computer_name, 60)
            ),
        ),
        Err(error) => denied(
            RefusalReason::AuthenticatorFailed,
            error.to_string(),
            format!("Could not sign: {error}"),
        ),
    })
}

/// Escrows a new recovery PIN for every workstation of this pairing whose PIN was used (the
/// server no longer holds one); prints the new PINs.
fn renew_recovery_pins(
    runtime: &tokio::runtime::Runtime,
    pairing: &Paired,
    store: &FileStore,
) -> anyhow::Result<()> {
    let answer = runtime.block_on(pairing.client.signed(
        &pairing.identity,
        reqwest::Method::GET,
        "/device/v1/workstations",
        Vec::new(),
    ))?;
    let list: WorkstationsOfPhone =
        serde_json::from_slice(&answer).context("the server's answer cannot be read")?;
    for workstation in list.workstations {
        let id = workstation.workstation_id.hyphenated().to_string();
        let known = store
            .workstations()
            .iter()
            .any(|w| w.device_id == pairing.device_id && w.workstation_id == id);
        if workstation.recovery_pin_escrowed || !known {
            continue;
        }
        let pin = zeroize::Zeroizing::new(recovery_pin());
        let body = serde_json::to_vec(&RecoveryPinEscrow {
            v: keybridge_device_protocol::ProtocolVersion,
            pin: pin.to_string(),
        })?;
        runtime.block_on(pairing.client.signed(
            &pairing.identity,
            reqwest::Method::POST,
            &format!("/device/v1/workstations/{id}/recovery-pin"),
            body,
        ))?;
        println!(
            "New recovery PIN for {} on {}: {} (the previous one was used)",
            terminal_safe(&pairing.account.upn),
            keybridge_device_protocol::display_safe(&workstation.computer_name, 60),
            pin.as_str()
        );
    }
    Ok(())
}

/// The longest pause between tries while the server cannot be reached.
const MAX_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(30);

/// Polls the inbox of every pairing and answers what arrives. Without `--once` it keeps going
/// while the server is down or restarting, trying again with a growing pause.
pub fn inbox(args: &InboxArgs, store_pin: &str) -> anyhow::Result<String> {
    let store = open_store(&args.store, store_pin)?;
    let pairings: Vec<ServerPairing> = store.pairings().to_vec();
    if pairings.is_empty() {
        bail!(
            "this device is not paired with a keybridge server: run `keybridge device pair` first"
        );
    }
    let paired = pairings
        .iter()
        .map(paired)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut store = Some(store);
    let wait = if paired.len() == 1 { args.wait } else { 0 };
    let runtime = runtime()?;
    let mut answered = 0usize;
    let mut retry_pause = std::time::Duration::from_secs(1);
    loop {
        let mut skipped_any = false;
        let mut round = Ok(());
        for pairing in &paired {
            round = inbox_round(
                args,
                &runtime,
                &mut store,
                pairing,
                wait,
                &mut answered,
                &mut skipped_any,
            );
            if round.is_err() {
                break;
            }
        }
        match round {
            Ok(()) => retry_pause = std::time::Duration::from_secs(1),
            Err(error) if !args.once && is_transient(&error) => {
                println!(
                    "{error:#}; trying again in {} s (an answer not yet received is kept and sent again).",
                    retry_pause.as_secs()
                );
                std::thread::sleep(retry_pause);
                retry_pause = (retry_pause * 2).min(MAX_RETRY_PAUSE);
                continue;
            }
            Err(error) => return Err(error),
        }
        if args.once {
            break;
        }
        if wait == 0 || skipped_any {
            // Nothing new to wait for: the server answers at once while a request this device
            // skipped is still open, so pause instead of asking again right away.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
    Ok(format!("{answered} request(s) answered.\n"))
}

/// Whether `error` is the server being unreachable or failing on its side for a while.
fn is_transient(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<ClientError>()
        .is_some_and(ClientError::is_transient)
}

/// One poll of `pairing`'s inbox, answering each request that came.
///
/// An answer is kept in the store before it is sent and dropped once the server has it, so a
/// crash or a broken connection in between never loses it and never signs the request twice:
/// when the server asks again, the same bytes are sent again.
fn inbox_round(
    args: &InboxArgs,
    runtime: &tokio::runtime::Runtime,
    store: &mut Option<FileStore>,
    pairing: &Paired,
    wait: u64,
    answered: &mut usize,
    skipped_any: &mut bool,
) -> anyhow::Result<()> {
    if let Some(opened) = store.as_ref()
        && let Err(error) = renew_recovery_pins(runtime, pairing, opened)
        // An unreachable server is reported once, by the poll below.
        && !is_transient(&error)
    {
        println!("Could not renew a recovery PIN: {error}");
    }
    let page = runtime.block_on(pairing.client.inbox(&pairing.identity, wait))?;
    for item in page.requests {
        let id = item.request.request_id();
        let id_text = id.hyphenated().to_string();
        let opened = store.as_mut().context(STORE_NOT_OPEN)?;
        let (answer, line) = if opened.was_answered(&id_text) {
            let Some(kept) = opened.unsent_answer(&id_text) else {
                // Never sign a request twice, whatever the server sends.
                println!("Skipped request {id_text}: this device answered it already.");
                *skipped_any = true;
                continue;
            };
            let answer: RequestAnswer = serde_json::from_str(kept)
                .with_context(|| format!("the answer kept for request {id_text} cannot be read"))?;
            (
                answer,
                format!(
                    "Sent the answer to request {id_text} again: the server had not received it."
                ),
            )
        } else {
            let (answer, line) = handle(
                args,
                store,
                &pairing.device_id,
                &pairing.account,
                &item.request,
            )?;
            let answer = RequestAnswer::new(id, answer);
            let bytes = serde_json::to_string(&answer).context("cannot encode the answer")?;
            store.as_mut().context(STORE_NOT_OPEN)?.record_answered(
                &id_text,
                OffsetDateTime::now_utc().unix_timestamp(),
                &bytes,
            )?;
            (answer, line)
        };
        match runtime.block_on(pairing.client.answer(&pairing.identity, &answer)) {
            Ok(()) => {
                println!("{line}");
                *answered += 1;
            }
            Err(error @ ClientError::Refused { .. })
                if !error.is_transient() && !error.is_unknown_device() =>
            {
                // Answered already (a lost confirmation), expired or not fitting: the same
                // bytes would be refused again.
                println!("The server did not take the answer to request {id_text}: {error}");
            }
            Err(error) => return Err(error.into()),
        }
        store
            .as_mut()
            .context(STORE_NOT_OPEN)?
            .record_answer_received(&id_text)?;
    }
    Ok(())
}

/// Unpairs from the server and deletes the device key.
pub fn unpair(args: &UnpairArgs, store_pin: &str) -> anyhow::Result<String> {
    let mut store = open_store(&args.store, store_pin)?;
    let pairings = store.pairings().to_vec();
    let chosen: Vec<&ServerPairing> = pairings
        .iter()
        .filter(|p| {
            args.account
                .as_deref()
                .is_none_or(|upn| p.upn.eq_ignore_ascii_case(upn))
        })
        .collect();
    let pairing = match chosen.as_slice() {
        [one] => *one,
        [] => bail!("no pairing to unpair (see `keybridge device info`)"),
        _ => bail!("this device is paired for several accounts: choose one with --account UPN"),
    };
    let target = paired(pairing)?;
    let removal_job = match runtime()?.block_on(target.client.unpair(&target.identity)) {
        Ok(job) => job,
        // Already unpaired by an admin: forget it here too.
        Err(error) if error.is_unknown_device() => None,
        Err(error) => return Err(error.into()),
    };
    store.remove_pairing(&pairing.device_id)?;
    let entra = match removal_job {
        Some(job) => format!(
            " The server is deleting this phone's passkey from Microsoft Entra (job {}).",
            terminal_safe(&job)
        ),
        None => String::new(),
    };
    Ok(format!(
        "Unpaired {} from {}; the device key is deleted.{entra}\n",
        terminal_safe(&pairing.upn),
        pairing.server_url
    ))
}

/// The pairing that acts: the one for `account`, or the only one (on `server` when known).
fn choose_pairing<'a>(
    pairings: &'a [ServerPairing],
    server: Option<&ServerUrl>,
    account: Option<&str>,
) -> anyhow::Result<&'a ServerPairing> {
    let chosen: Vec<&ServerPairing> = pairings
        .iter()
        .filter(|p| server.is_none_or(|s| ServerUrl::parse(&p.server_url).is_ok_and(|u| u == *s)))
        .filter(|p| account.is_none_or(|upn| p.upn.eq_ignore_ascii_case(upn)))
        .collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "this device has no pairing{} for that server: pair the phone first (`keybridge device pair`)",
            account.map(|a| format!(" for {a}")).unwrap_or_default()
        ),
        several => bail!(
            "this device is paired for several accounts ({}): choose one with --account UPN",
            several
                .iter()
                .map(|p| terminal_safe(&p.upn))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A new recovery PIN: 8 random digits (rejection sampling, no modulo bias).
fn recovery_pin() -> String {
    use rand_core::RngCore as _;
    let mut pin = String::with_capacity(8);
    while pin.len() < 8 {
        let mut byte = [0u8; 1];
        OsRng.fill_bytes(&mut byte);
        if byte[0] < 250 {
            pin.push(char::from(b'0' + byte[0] % 10));
        }
    }
    pin
}

/// Pairs the workstation whose code was scanned or typed, for one of this device's accounts,
/// and escrows a new recovery PIN for it.
pub fn pair_workstation(args: &PairWorkstationArgs, store_pin: &str) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc();
    let mut store = open_store(&args.store, store_pin)?;
    let (reference, key, scanned, server) = match (&args.payload, &args.code) {
        (Some(payload), _) => {
            let payload = WorkstationPairingPayload::parse(payload.trim(), now)?;
            (
                PairingReference::Id(payload.pairing_id),
                payload.secret.proof_key(),
                Some((payload.workstation_id, payload.workstation_key)),
                Some(payload.server_url),
            )
        }
        (None, Some(code)) => {
            let code = ShortCode::parse(code)?;
            let key = code.proof_key();
            (PairingReference::Code(code), key, None, None)
        }
        (None, None) => bail!("give the workstation's QR payload, or --code"),
    };
    let pairings = store.pairings().to_vec();
    // With --account, that account only; without, every account this device holds on the
    // server in the first account's organisation, so the workstation can sign in any of them.
    let (pairing, further): (&ServerPairing, Vec<&ServerPairing>) = match &args.account {
        Some(upn) => (
            choose_pairing(&pairings, server.as_ref(), Some(upn))?,
            Vec::new(),
        ),
        None => {
            let on_server: Vec<&ServerPairing> = pairings
                .iter()
                .filter(|p| {
                    server
                        .as_ref()
                        .is_none_or(|s| ServerUrl::parse(&p.server_url).is_ok_and(|u| u == *s))
                })
                .collect();
            let Some(first) = on_server.first().copied() else {
                bail!(
                    "this device has no pairing with that server: pair the phone first (`keybridge device pair`)"
                );
            };
            if server.is_none() && on_server.iter().any(|p| p.server_url != first.server_url) {
                bail!(
                    "this device is paired with several servers: choose the account with --account UPN"
                );
            }
            let further = on_server
                .into_iter()
                .skip(1)
                .filter(|p| p.integration_id == first.integration_id)
                .collect();
            (first, further)
        }
    };
    let target = paired(pairing)?;
    let mut request = PairWorkstation::build(reference.clone(), &key, target.identity.device_id);
    for other in &further {
        let other = paired(other)?;
        request.accounts.push(AccountProof::sign(
            &reference,
            other.identity.device_id,
            &other.identity.key,
        ));
    }
    let body = serde_json::to_vec(&request)?;
    let runtime = runtime()?;
    let answer = runtime.block_on(target.client.signed(
        &target.identity,
        reqwest::Method::POST,
        "/device/v1/workstations",
        body,
    ))?;
    let paired_workstation: PairedWorkstation = serde_json::from_slice(&answer)
        .context("the server's answer cannot be read; update keybridge")?;
    let trust = match scanned {
        Some((id, key)) => {
            // The key comes from the workstation's own screen: the server may not swap it.
            if paired_workstation.workstation_id != id || paired_workstation.workstation_key != key
            {
                let _ = runtime.block_on(target.client.signed(
                    &target.identity,
                    reqwest::Method::DELETE,
                    &format!(
                        "/device/v1/workstations/{}",
                        paired_workstation.workstation_id
                    ),
                    Vec::new(),
                ));
                bail!(
                    "the server answered with another workstation or key than the QR code shows; nothing was paired on this device"
                );
            }
            "its key from the QR code"
        }
        None => "its key as the server reported it (typed code)",
    };
    let workstation_id = paired_workstation.workstation_id.hyphenated().to_string();
    for account in std::iter::once(pairing).chain(further.iter().copied()) {
        store.add_workstation(WorkstationPairing {
            device_id: account.device_id.clone(),
            workstation_id: workstation_id.clone(),
            workstation_key: paired_workstation.workstation_key.to_base64url(),
            computer_name: paired_workstation.computer_name.clone(),
            paired_at: now.unix_timestamp(),
        })?;
    }
    let pin = zeroize::Zeroizing::new(recovery_pin());
    let escrow = serde_json::to_vec(&RecoveryPinEscrow {
        v: keybridge_device_protocol::ProtocolVersion,
        pin: pin.to_string(),
    })?;
    let recovery = match runtime.block_on(target.client.signed(
        &target.identity,
        reqwest::Method::POST,
        &format!("/device/v1/workstations/{workstation_id}/recovery-pin"),
        escrow,
    )) {
        Ok(_) => format!(
            "Recovery PIN for {} on this computer: {} (for when the phone is not at hand; \
             your administrator can reveal it too)\n",
            terminal_safe(&pairing.upn),
            pin.as_str()
        ),
        Err(error) => {
            format!("The recovery PIN could not be escrowed ({error}); pair again to retry.\n")
        }
    };
    let accounts: Vec<String> = std::iter::once(pairing)
        .chain(further.iter().copied())
        .map(|p| terminal_safe(&p.upn))
        .collect();
    Ok(format!(
        "Paired workstation {} ({workstation_id}) for {}, with {trust}.\n{recovery}",
        keybridge_device_protocol::display_safe(&paired_workstation.computer_name, 60),
        accounts.join(", "),
    ))
}

/// Unpairs a workstation on the server and forgets its key.
pub fn unpair_workstation(args: &UnpairWorkstationArgs, store_pin: &str) -> anyhow::Result<String> {
    let mut store = open_store(&args.store, store_pin)?;
    let Some(entry) = store
        .workstations()
        .iter()
        .find(|w| w.workstation_id.eq_ignore_ascii_case(&args.workstation_id))
        .cloned()
    else {
        bail!(
            "this device has not paired workstation {} (see `keybridge device info`)",
            terminal_safe(&args.workstation_id)
        );
    };
    let pairing = store
        .pairings()
        .iter()
        .find(|p| p.device_id == entry.device_id)
        .cloned()
        .context(
            "the workstation's account is no longer paired; nothing to unpair on the server",
        )?;
    let target = paired(&pairing)?;
    match runtime()?.block_on(target.client.signed(
        &target.identity,
        reqwest::Method::DELETE,
        &format!("/device/v1/workstations/{}", entry.workstation_id),
        Vec::new(),
    )) {
        Ok(_) => {}
        // Already unpaired from the other side: forget it here too.
        Err(keybridge_authenticator::server_client::ClientError::Refused {
            status: 404, ..
        }) => {}
        Err(error) => return Err(error.into()),
    }
    store.remove_workstation(&entry.workstation_id)?;
    Ok(format!(
        "Unpaired workstation {} ({}).\n",
        terminal_safe(&entry.computer_name),
        entry.workstation_id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(credential_id: &str, created_at: &str) -> AccountSummary {
        AccountSummary {
            credential_id: credential_id.into(),
            rp_id: "login.microsoft.com".into(),
            rp_name: "Microsoft".into(),
            user_id: "dXNlcg".into(),
            user_name: "ana@contoso.com".into(),
            user_display_name: "Ana".into(),
            tenant: None,
            sign_count: 1,
            cred_protect: 1,
            hmac_secret: false,
            created_at: created_at.into(),
        }
    }

    #[test]
    fn several_passkeys_are_never_picked_silently() {
        let candidates = [
            summary("b2xkZXI", "2026-11-01T10:00:00Z"),
            summary("bmV3ZXI", "2026-11-20T10:00:00Z"),
        ];
        // Without a choice and without a terminal: a failure that lists both passkeys.
        let error = choose_credential(&candidates, None, false)
            .expect_err("ambiguous")
            .to_string();
        assert!(
            error.contains("b2xkZXI") && error.contains("bmV3ZXI"),
            "{error}"
        );
        assert!(error.contains("--account"), "{error}");
        // --account names one of them: that one, whichever was added last.
        assert_eq!(
            choose_credential(&candidates, Some("b2xkZXI"), false).expect("chosen"),
            AccountSelector::CredentialId("b2xkZXI".into())
        );
        // A name that matches none is refused, listing the candidates.
        let error = choose_credential(&candidates, Some("Zm9v"), false)
            .expect_err("no match")
            .to_string();
        assert!(error.contains("matches none"), "{error}");
        // One candidate needs no choice.
        assert_eq!(
            choose_credential(&candidates[..1], None, false).expect("only one"),
            AccountSelector::CredentialId("b2xkZXI".into())
        );
    }
}
