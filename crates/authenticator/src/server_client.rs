//! Talking to the keybridge server (`/device/v1`, `docs/device-protocol.md`): an HTTPS client
//! that trusts exactly the server key pinned by the pairing payload, enrolment, and signed
//! requests (inbox, answers, unpair).
//!
//! Trust: [`PinVerifier`] accepts a server certificate only when the SHA-256 of its
//! SubjectPublicKeyInfo equals the pin, and still checks the handshake signature with the
//! crypto provider's algorithms, so the server must hold the pinned key. Name, chain and
//! validity dates are not checked: the pin is the trust anchor (a small installation's
//! self-made certificate has no public chain). There is no "accept any certificate" mode.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keybridge_device_protocol::{
    EnrolmentError, EnrolmentRequest, EnrolmentResponse, IdentityKey, InboxPage, RequestAnswer,
    RequestAuthError, RequestTarget, ServerUrl, SignedHeaders, SignerKind, TlsPin,
};
use rand_core::OsRng;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use time::OffsetDateTime;
use uuid::Uuid;

/// The longest wait a client asks of the inbox long poll (the server holds at most 30 s).
pub const MAX_INBOX_WAIT_SECONDS: u64 = 30;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server presented a key other than the pinned one.
    #[error(
        "the server at {server} presented the TLS key {actual}, not the pinned {expected}: this is not the keybridge server that showed the pairing code; nothing was sent"
    )]
    PinMismatch {
        /// The server URL.
        server: String,
        /// The pin from the pairing payload (or `--pin`).
        expected: TlsPin,
        /// The pin of the certificate the server presented.
        actual: TlsPin,
    },
    /// The TLS setup failed.
    #[error("could not set up TLS: {0}")]
    Tls(String),
    /// The server could not be reached, or the connection broke.
    #[error("could not reach the keybridge server at {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// What happened.
        reason: String,
    },
    /// The server refused the request.
    #[error("the server refused the request ({status} {code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code of the server's error envelope.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server answered something the protocol does not allow.
    #[error("the server's answer cannot be read: {0}; update keybridge on the phone or the server")]
    BadAnswer(String),
    /// Enrolment was refused on the phone's side (e.g. the server confirmed another pin).
    #[error(transparent)]
    Enrolment(#[from] EnrolmentError),
    /// A request could not be signed.
    #[error(transparent)]
    Signing(#[from] RequestAuthError),
}

impl ClientError {
    /// Whether trying the same call again later may succeed: the server could not be reached
    /// (down, restarting, a broken connection) or failed on its side (5xx).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::Refused { status: 500.., .. }
        )
    }

    /// Whether the server no longer knows this device (unpaired by an admin or the device).
    pub fn is_unknown_device(&self) -> bool {
        matches!(self, ClientError::Refused { code, .. } if code == "unknown_device")
    }
}

/// A rustls verifier that accepts exactly the certificate whose key has the pinned SHA-256
/// SPKI hash, and verifies the handshake signature made with that key.
#[derive(Debug)]
pub struct PinVerifier {
    pin: TlsPin,
    provider: Arc<CryptoProvider>,
    /// The pin of the last certificate refused, for the error message.
    refused: Arc<Mutex<Option<TlsPin>>>,
}

impl PinVerifier {
    /// A verifier for `pin` with the aws-lc-rs provider.
    pub fn new(pin: TlsPin) -> PinVerifier {
        PinVerifier {
            pin,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            refused: Arc::new(Mutex::new(None)),
        }
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = TlsPin::of_certificate_der(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented.matches(&self.pin) {
            return Ok(ServerCertVerified::assertion());
        }
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(presented);
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Where a pinned TLS configuration leaves the pin of the key it refused, so that the error
/// can name both pins.
#[derive(Debug, Clone, Default)]
pub struct RefusedPin(Arc<Mutex<Option<TlsPin>>>);

impl RefusedPin {
    /// The pin of the last key refused, once.
    pub fn take(&self) -> Option<TlsPin> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A rustls client configuration (aws-lc-rs) that trusts exactly the server key with `pin`,
/// and the handle that tells which key it refused.
pub fn pinned_tls_config(pin: TlsPin) -> Result<(rustls::ClientConfig, RefusedPin), rustls::Error> {
    let verifier = PinVerifier::new(pin);
    let refused = RefusedPin(verifier.refused.clone());
    let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, refused))
}

/// The device's identity towards one server: its id there and its device key.
pub struct DeviceIdentity {
    /// The device id the server gave at enrolment (`KB-Device-Id`).
    pub device_id: Uuid,
    /// The device key.
    pub key: IdentityKey,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// An HTTPS client for one keybridge server, pinned to its TLS key.
#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    server: ServerUrl,
    pin: TlsPin,
    refused: RefusedPin,
}

impl ServerClient {
    /// A client for `server` that trusts only the key with `pin`.
    pub fn pinned(server: ServerUrl, pin: TlsPin) -> Result<ServerClient, ClientError> {
        let (config, refused) =
            pinned_tls_config(pin).map_err(|e| ClientError::Tls(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(MAX_INBOX_WAIT_SECONDS + 30))
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(ServerClient {
            http,
            server,
            pin,
            refused,
        })
    }

    /// The server this client talks to.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    fn transport_error(&self, error: reqwest::Error) -> ClientError {
        if let Some(actual) = self.refused.take() {
            return ClientError::PinMismatch {
                server: self.server.to_string(),
                expected: self.pin,
                actual,
            };
        }
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            reason = format!("{reason}: {inner}");
            source = inner.source();
        }
        ClientError::Unreachable {
            server: self.server.to_string(),
            reason,
        }
    }

    async fn read(&self, response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |key: &str| {
            envelope["error"][key]
                .as_str()
                .map(|s| keybridge_device_protocol::display_safe(s, 400))
        };
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: text("code").unwrap_or_else(|| "unknown".to_owned()),
            message: text("message").unwrap_or_else(|| format!("HTTP {status}")),
        })
    }

    /// `POST /device/v1/pair`; checks that the server confirms the pinned key.
    pub async fn enrol(
        &self,
        request: &EnrolmentRequest,
    ) -> Result<EnrolmentResponse, ClientError> {
        let response = self
            .http
            .post(self.server.endpoint("/device/v1/pair"))
            .json(request)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let body = self.read(response).await?;
        let answer: EnrolmentResponse =
            serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        answer.confirm_pin(&self.pin)?;
        Ok(answer)
    }

    /// Sends a request signed with the device key; returns the answer's body.
    pub async fn signed(
        &self,
        identity: &DeviceIdentity,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        self.signed_as(
            SignerKind::Device,
            identity.device_id,
            &identity.key,
            method,
            path_and_query,
            body,
        )
        .await
    }

    /// Sends a request signed by `kind` `signer_id` with `key` (a phone's device key, or a
    /// workstation's key for `/workstation/v1`); returns the answer's body.
    pub async fn signed_as(
        &self,
        kind: SignerKind,
        signer_id: Uuid,
        key: &IdentityKey,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, ClientError> {
        let signed_path = format!("{}{path_and_query}", self.server.base_path());
        let headers = SignedHeaders::sign(
            kind,
            signer_id,
            key,
            &RequestTarget {
                method: method.as_str(),
                path_and_query: &signed_path,
                body: &body,
            },
            OffsetDateTime::now_utc(),
            &mut OsRng,
        )?;
        let mut request = self
            .http
            .request(method, self.server.endpoint(path_and_query));
        for (name, value) in headers.to_header_pairs() {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        self.read(response).await
    }

    /// Sends an unsigned JSON `POST` (an enrolment, whose body carries its own proof); returns
    /// the answer's body.
    pub async fn post_unsigned(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let response = self
            .http
            .post(self.server.endpoint(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        self.read(response).await
    }

    /// `GET /device/v1/inbox?wait=N` (N at most [`MAX_INBOX_WAIT_SECONDS`]).
    pub async fn inbox(
        &self,
        identity: &DeviceIdentity,
        wait_seconds: u64,
    ) -> Result<InboxPage, ClientError> {
        let wait = wait_seconds.min(MAX_INBOX_WAIT_SECONDS);
        let body = self
            .signed(
                identity,
                reqwest::Method::GET,
                &format!("/device/v1/inbox?wait={wait}"),
                Vec::new(),
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `POST /device/v1/requests/{id}`.
    pub async fn answer(
        &self,
        identity: &DeviceIdentity,
        answer: &RequestAnswer,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(answer).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.signed(
            identity,
            reqwest::Method::POST,
            &format!("/device/v1/requests/{}", answer.request_id),
            body,
        )
        .await?;
        Ok(())
    }

    /// `DELETE /device/v1/device`: the server forgets this device. When the device's passkey
    /// is registered in Entra, the server deletes it there first in a job, whose id is
    /// returned.
    pub async fn unpair(&self, identity: &DeviceIdentity) -> Result<Option<String>, ClientError> {
        let body = self
            .signed(
                identity,
                reqwest::Method::DELETE,
                "/device/v1/device",
                Vec::new(),
            )
            .await?;
        Ok(serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("job_id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> (CertificateDer<'static>, TlsPin) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["keybridge.example.com".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let der = cert.der().clone();
        let pin = TlsPin::of_certificate_der(der.as_ref()).expect("pin");
        (der, pin)
    }

    fn verify(verifier: &PinVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        verifier
            .verify_server_cert(
                cert,
                &[],
                &ServerName::try_from("other-name.example").expect("name"),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn only_the_pinned_key_is_accepted_whatever_the_name() {
        let (cert, pin) = certificate();
        let (other, other_pin) = certificate();
        let verifier = PinVerifier::new(pin);
        verify(&verifier, &cert).expect("the pinned key is accepted under any name");
        let refused = verify(&verifier, &other).expect_err("another key is refused");
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        );
        let seen = verifier
            .refused
            .lock()
            .expect("lock")
            .take()
            .expect("recorded");
        assert!(seen.matches(&other_pin));
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(verify(&verifier, &garbage).is_err());
        assert!(!verifier.supported_verify_schemes().is_empty());
    }
}
