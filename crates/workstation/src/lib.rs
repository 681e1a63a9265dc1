//! # keybridge-workstation
//!
//! The desktop client (`keybridge workstation`): what the Windows credential provider would do,
//! as a cross-platform library (`docs/workstation.md`).
//!
//! - [`DesktopConfig`]: the `keybridge.json` of the "Download desktop client" zip (server URL,
//!   integration, TLS pin, install token);
//! - [`Workstation::enrol`]: exchanges the install token once for a registration bound to a new
//!   per-workstation P-256 key; the state ([`state`]) is kept in a 0600 file written atomically;
//! - [`Workstation::start_pairing`]: the QR payload and short code the phone scans (60 s);
//! - [`Workstation::sign_in`]: gets a FIDO2 challenge from Entra ([`EntraSignIn`]), binds it to
//!   this workstation ([`keybridge_device_protocol::SignInBinding`]), asks the server to route
//!   an approval to the paired phone, waits for the phone's assertion and presents it to Entra.
//!
//! Every server call is a signed request (`KB-Workstation-Id`) over TLS pinned to the key in
//! `keybridge.json`, through [`keybridge_authenticator::server_client::ServerClient`].

pub mod config;
pub mod entra;
pub mod error;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keybridge_authenticator::server_client::{ClientError, ServerClient};
use keybridge_device_protocol::{
    ENTRA_RP_ID, IdentityKey, PairingSecret, ProtocolVersion, ServerUrl, SignInAccepted,
    SignInBinding, SignInOutcome, SignInStart, SignInStatus, SignerKind, TlsPin,
    WorkstationEnrolled, WorkstationEnrolment, WorkstationPairingPayload,
    WorkstationPairingSession, WorkstationPairingStart, WorkstationState,
};
use rand_core::OsRng;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub use config::DesktopConfig;
pub use entra::{EntraSignIn, SignInMode, SignedIn};
pub use error::Error;
pub use state::StoredState;

/// The longest a single status poll waits on the server.
pub const POLL_SECONDS: u64 = 30;

/// An enrolled workstation: its state and a pinned client for its server.
pub struct Workstation {
    dir: PathBuf,
    state: StoredState,
    key: IdentityKey,
    client: ServerClient,
}

impl std::fmt::Debug for Workstation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workstation")
            .field("dir", &self.dir)
            .field("workstation_id", &self.state.workstation_id)
            .finish_non_exhaustive()
    }
}

/// A workstation pairing code to show: the QR payload, the short code, and when they lapse.
#[derive(Debug, Clone)]
pub struct PairingCode {
    /// The QR code's text (`keybridge:workstation?v=1&...`).
    pub payload: String,
    /// The code to type instead (`K7Q-X4M`).
    pub short_code: String,
    /// When both stop working.
    pub expires_at: OffsetDateTime,
}

fn server_error(error: ClientError) -> Error {
    match &error {
        ClientError::Refused { code, message, .. } => match code.as_str() {
            "workstation_revoked" => Error::Revoked,
            "unknown_workstation" => Error::UnknownWorkstation,
            "not_paired" => Error::NotPaired,
            "replayed_request" | "binding_mismatch" | "bad_binding" => {
                Error::Replayed(message.clone())
            }
            "account_not_on_phone" => Error::AccountNotOnPhone(message.clone()),
            _ => Error::Server(error),
        },
        _ => Error::Server(error),
    }
}

impl Workstation {
    /// Exchanges the install token of `config` for a registration and keeps the state in
    /// `dir`. Refused when `dir` already holds an enrolled workstation (the token is exchanged
    /// once per workstation).
    pub async fn enrol(
        config: &DesktopConfig,
        dir: &Path,
        computer_name: &str,
    ) -> Result<Workstation, Error> {
        if StoredState::exists(dir) {
            return Err(Error::AlreadyEnrolled {
                dir: dir.to_path_buf(),
            });
        }
        let server = ServerUrl::parse(&config.server_url).map_err(|e| Error::Config {
            reason: format!("server_url: {e}"),
        })?;
        let pin = TlsPin::parse(&config.tls_pin).map_err(|e| Error::Config {
            reason: format!("tls_pin: {e}"),
        })?;
        let key = IdentityKey::generate(&mut OsRng);
        let request =
            WorkstationEnrolment::build(&config.install_token, &server, computer_name, &key)
                .map_err(Error::Request)?;
        let client = ServerClient::pinned(server.clone(), pin).map_err(Error::Server)?;
        let body = serde_json::to_vec(&request).map_err(|e| Error::Protocol(e.to_string()))?;
        let answer = client
            .post_unsigned("/workstation/v1/enrol", body)
            .await
            .map_err(Error::Server)?;
        let enrolled: WorkstationEnrolled =
            serde_json::from_slice(&answer).map_err(|e| Error::Protocol(e.to_string()))?;
        let state = StoredState {
            version: state::STATE_VERSION,
            server_url: server.to_string(),
            tls_pin: pin.to_base64url(),
            workstation_id: enrolled.workstation_id,
            workstation_key: keybridge_authenticator::b64url(key.to_secret_bytes().as_ref()),
            computer_name: computer_name.to_owned(),
            integration_id: enrolled.integration_id,
            tenant_id: enrolled.tenant_id,
            enrolled_at: OffsetDateTime::now_utc().unix_timestamp(),
        };
        state.save(dir)?;
        Ok(Workstation {
            dir: dir.to_path_buf(),
            state,
            key,
            client,
        })
    }

    /// Opens the workstation enrolled in `dir`.
    pub fn open(dir: &Path) -> Result<Workstation, Error> {
        let state = StoredState::load(dir)?;
        let broken = |what: &str| Error::State {
            path: StoredState::path(dir),
            reason: format!("its {what} is unreadable; enrol again"),
        };
        let key = keybridge_authenticator::decode_lenient(&state.workstation_key)
            .and_then(|bytes| IdentityKey::from_secret_bytes(&bytes).ok())
            .ok_or_else(|| broken("key"))?;
        let server = ServerUrl::parse(&state.server_url).map_err(|_| broken("server URL"))?;
        let pin = TlsPin::parse(&state.tls_pin).map_err(|_| broken("TLS pin"))?;
        let client = ServerClient::pinned(server, pin).map_err(Error::Server)?;
        Ok(Workstation {
            dir: dir.to_path_buf(),
            state,
            key,
            client,
        })
    }

    /// The stored state (ids, names; the key is not exposed).
    pub fn state(&self) -> &StoredState {
        &self.state
    }

    /// The directory the state lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        self.client
            .signed_as(
                SignerKind::Workstation,
                self.state.workstation_id,
                &self.key,
                method,
                path,
                body,
            )
            .await
            .map_err(server_error)
    }

    /// Opens a pairing session: a QR payload (with this workstation's key and a fresh secret
    /// only this workstation knows) and a short code, valid 60 s.
    pub async fn start_pairing(&self) -> Result<PairingCode, Error> {
        let secret = PairingSecret::generate(&mut OsRng);
        let start = WorkstationPairingStart {
            v: ProtocolVersion,
            proof_key: *secret.proof_key().as_bytes(),
        };
        let body = serde_json::to_vec(&start).map_err(|e| Error::Protocol(e.to_string()))?;
        let answer = self
            .call(reqwest::Method::POST, "/workstation/v1/pairing", body)
            .await?;
        let session: WorkstationPairingSession =
            serde_json::from_slice(&answer).map_err(|e| Error::Protocol(e.to_string()))?;
        let server_url =
            ServerUrl::parse(&self.state.server_url).map_err(|e| Error::Protocol(e.to_string()))?;
        let payload = WorkstationPairingPayload {
            server_url,
            pairing_id: session.pairing_id,
            secret,
            workstation_id: self.state.workstation_id,
            workstation_key: self.key.public_key(),
            expires_at: session.expires_at,
        };
        Ok(PairingCode {
            payload: payload.encode(),
            short_code: session.short_code.grouped(),
            expires_at: session.expires_at,
        })
    }

    /// The server's view: status and the accounts of the paired phone.
    pub async fn status(&self) -> Result<WorkstationState, Error> {
        let answer = self
            .call(reqwest::Method::GET, "/workstation/v1/status", Vec::new())
            .await?;
        serde_json::from_slice(&answer).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Unpairs from the phone.
    pub async fn unpair(&self) -> Result<(), Error> {
        self.call(
            reqwest::Method::DELETE,
            "/workstation/v1/pairing",
            Vec::new(),
        )
        .await?;
        Ok(())
    }

    /// Asks the server to put an approval request for `upn` in the phone's inbox, bound to the
    /// challenge of `request_options` and to this workstation.
    pub async fn request_approval(
        &self,
        upn: &str,
        request_options: Value,
    ) -> Result<SignInAccepted, Error> {
        let challenge = request_options
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("Entra's request options have no challenge".into()))?;
        let request_id = Uuid::new_v4();
        let binding = SignInBinding::sign(
            &self.key,
            request_id,
            self.state.workstation_id,
            ENTRA_RP_ID,
            upn,
            challenge,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| Error::Protocol(e.to_string()))?;
        let start = SignInStart {
            v: ProtocolVersion,
            request_id,
            upn: upn.to_owned(),
            computer_name: self.state.computer_name.clone(),
            request_options,
            binding,
        };
        self.send_sign_in(&start).await
    }

    /// Sends a prepared sign-in request (exposed so that tests can send altered or replayed
    /// ones).
    pub async fn send_sign_in(&self, start: &SignInStart) -> Result<SignInAccepted, Error> {
        let body = serde_json::to_vec(start).map_err(|e| Error::Protocol(e.to_string()))?;
        let answer = self
            .call(reqwest::Method::POST, "/workstation/v1/sign-in", body)
            .await?;
        serde_json::from_slice(&answer).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Signs `upn` in with the recovery PIN (when the phone is not at hand). The PIN works
    /// once.
    pub async fn recover(&self, upn: &str, pin: &str) -> Result<(), Error> {
        let body = serde_json::to_vec(&keybridge_device_protocol::RecoveryPinUse {
            v: ProtocolVersion,
            upn: upn.to_owned(),
            pin: pin.to_owned(),
        })
        .map_err(|e| Error::Protocol(e.to_string()))?;
        match self
            .call(reqwest::Method::POST, "/workstation/v1/recovery", body)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Server(ClientError::Refused { code, message, .. }))
                if code == "wrong_recovery_pin" || code == "no_recovery_pin" =>
            {
                Err(Error::RecoveryRefused(message))
            }
            Err(error) => Err(error),
        }
    }

    /// This workstation's key, to sign bindings in tests of altered requests.
    pub fn key(&self) -> &IdentityKey {
        &self.key
    }

    /// Waits for the phone's answer to `request_id`, at most `timeout`.
    pub async fn wait_for_answer(
        &self,
        request_id: Uuid,
        timeout: Duration,
    ) -> Result<SignInOutcome, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = left.as_secs().min(POLL_SECONDS);
            let answer = self
                .call(
                    reqwest::Method::GET,
                    &format!("/workstation/v1/sign-in/{request_id}?wait={wait}"),
                    Vec::new(),
                )
                .await?;
            let status: SignInStatus =
                serde_json::from_slice(&answer).map_err(|e| Error::Protocol(e.to_string()))?;
            match status.outcome {
                SignInOutcome::Pending if tokio::time::Instant::now() < deadline && wait > 0 => {}
                SignInOutcome::Pending => return Err(Error::TimedOut),
                outcome => return Ok(outcome),
            }
        }
    }

    /// The whole sign-in: a challenge from Entra for `upn`, the phone's approval, the assertion
    /// presented to Entra. `timeout` bounds the wait for the phone.
    pub async fn sign_in(
        &self,
        entra: &EntraSignIn,
        upn: &str,
        mode: SignInMode,
        timeout: Duration,
    ) -> Result<SignedIn, Error> {
        let options = entra.start(&self.state.tenant_id, upn, mode).await?;
        let accepted = self.request_approval(upn, options).await?;
        match self.wait_for_answer(accepted.request_id, timeout).await? {
            SignInOutcome::Approved { assertion } => {
                entra.finish(&self.state.tenant_id, &assertion).await
            }
            SignInOutcome::Denied { reason, message } => Err(Error::Denied {
                reason,
                message: keybridge_device_protocol::display_safe(&message, 300),
            }),
            SignInOutcome::Expired => Err(Error::TimedOut),
            SignInOutcome::Pending => Err(Error::TimedOut),
        }
    }
}
