//! `keybridge device pair | inbox | unpair`: the phone's side of `/device/v1`, over a TLS
//! connection pinned to the server key from the pairing payload (or `--pin`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use keybridge_authenticator::server_client::{DeviceIdentity, ServerClient};
use keybridge_authenticator::{
    AttestationPreference, Authenticator, CreationOptions, FileStore, MakeCredentialSettings,
    ServerPairing,
};
use keybridge_device_protocol::{
    Account, Answer, DeviceInfo, EnrolmentRequest, IdentityKey, InboxRequest, PairingPayload,
    PairingReference, RefusalReason, RequestAnswer, ServerUrl, ShortCode, TlsPin,
    check_provision_request, check_sign_in_request,
};
use rand_core::OsRng;
use time::OffsetDateTime;
use uuid::Uuid;

use keybridge_device_protocol::terminal_safe;

use super::device::{InboxArgs, PairArgs, UnpairArgs, open_store, origin_policy};

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
            let taken = store
                .take()
                .context("the key store is not open; run the command again")?;
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
            // Workstation pairing comes with the workstation client; until then no
            // workstation key is known and the check refuses.
            let error = match check_sign_in_request(sign_in, account, None, now) {
                Err(error) => error,
                Ok(()) => bail!("a sign-in passed the checks without a paired workstation"),
            };
            let message = error.to_string();
            Ok((
                Answer::Denied {
                    reason: error.refusal_reason(),
                    message: message.clone(),
                },
                format!("Denied a sign-in: {message}"),
            ))
        }
    }
}

/// Polls the inbox of every pairing and answers what arrives.
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
    loop {
        let mut skipped_any = false;
        for pairing in &paired {
            let page = runtime.block_on(pairing.client.inbox(&pairing.identity, wait))?;
            for item in page.requests {
                let id = item.request.request_id();
                let id_text = id.hyphenated().to_string();
                let opened = store
                    .as_mut()
                    .context("the key store is not open; run the command again")?;
                if opened.was_answered(&id_text) {
                    // Never sign a request twice, whatever the server sends.
                    println!("Skipped request {id_text}: this device answered it already.");
                    skipped_any = true;
                    continue;
                }
                let (answer, line) = handle(args, &mut store, &pairing.account, &item.request)?;
                store
                    .as_mut()
                    .context("the key store is not open; run the command again")?
                    .record_answered(&id_text, OffsetDateTime::now_utc().unix_timestamp())?;
                runtime.block_on(
                    pairing
                        .client
                        .answer(&pairing.identity, &RequestAnswer::new(id, answer)),
                )?;
                println!("{line}");
                answered += 1;
            }
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
    match runtime()?.block_on(target.client.unpair(&target.identity)) {
        Ok(()) => {}
        // Already unpaired by an admin: forget it here too.
        Err(error) if error.is_unknown_device() => {}
        Err(error) => return Err(error.into()),
    }
    store.remove_pairing(&pairing.device_id)?;
    Ok(format!(
        "Unpaired {} from {}; the device key is deleted.\n",
        terminal_safe(&pairing.upn),
        pairing.server_url
    ))
}
