//! The phone's inbox: what the server asks the phone to do, the phone's answers, and the checks
//! the phone makes before it signs anything.
//!
//! The server never decides what the phone signs: [`check_provision_request`] and
//! [`check_sign_in_request`] refuse a relying party other than [`ENTRA_RP_ID`], an account
//! other than the paired one, an expired request, and (for sign-in) a request whose
//! [`SignInBinding`] does not tie the WebAuthn challenge to the workstation the phone paired.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::account::Account;
use crate::encoding::{ProtocolVersion, b64_array, b64url, display_safe};
use crate::keys::{IdentityKey, IdentityPublicKey, Signature};

/// The only relying party a keybridge phone creates or uses passkeys for: Microsoft Entra ID.
pub const ENTRA_RP_ID: &str = "login.microsoft.com";

/// How old a sign-in binding may be when the phone checks it.
pub const MAX_BINDING_AGE: Duration = Duration::minutes(10);

/// How far in the future a binding's time may be (clock differences).
pub const MAX_BINDING_SKEW: Duration = Duration::seconds(300);

/// One request in the phone's inbox, with its protocol version. JSON: `{"v":1,"type":
/// "provision_passkey", ...}` or `{"v":1,"type":"approve_sign_in", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The request.
    #[serde(flatten)]
    pub request: InboxRequest,
}

impl InboxItem {
    /// Wraps a request with the current version.
    pub fn new(request: InboxRequest) -> InboxItem {
        InboxItem {
            v: ProtocolVersion,
            request,
        }
    }
}

/// What the server asks of the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "a few messages live briefly; boxing would only make matching clumsier"
)]
pub enum InboxRequest {
    /// Create a passkey for Entra (Graph's creation options) and return it.
    ProvisionPasskey(ProvisionPasskey),
    /// Approve a sign-in on a workstation and return the assertion.
    ApproveSignIn(ApproveSignIn),
}

impl InboxRequest {
    /// The request's id (the `{id}` of `POST /device/v1/requests/{id}`).
    pub fn request_id(&self) -> Uuid {
        match self {
            InboxRequest::ProvisionPasskey(request) => request.request_id,
            InboxRequest::ApproveSignIn(request) => request.request_id,
        }
    }

    /// The account the request is for.
    pub fn account(&self) -> &Account {
        match self {
            InboxRequest::ProvisionPasskey(request) => &request.account,
            InboxRequest::ApproveSignIn(request) => &request.account,
        }
    }

    /// When the request lapses.
    pub fn expires_at(&self) -> OffsetDateTime {
        match self {
            InboxRequest::ProvisionPasskey(request) => request.expires_at,
            InboxRequest::ApproveSignIn(request) => request.expires_at,
        }
    }
}

/// Create an Entra passkey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionPasskey {
    /// The request's id.
    pub request_id: Uuid,
    /// The user the passkey is for.
    pub account: Account,
    /// The relying party; must be [`ENTRA_RP_ID`].
    pub rp_id: String,
    /// Graph's `webauthnCredentialCreationOptions` JSON, as `GET .../fido2Methods/creationOptions`
    /// returned it (`{"challengeTimeoutDateTime":..., "publicKey":{...}}`).
    pub creation_options: Value,
    /// When the request lapses (the creation challenge's expiry at the latest).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Approve a sign-in on a workstation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApproveSignIn {
    /// The request's id (chosen by the workstation, see [`SignInBinding`]).
    pub request_id: Uuid,
    /// The user signing in.
    pub account: Account,
    /// The workstation's name as it reported it (shown to the user).
    pub computer_name: String,
    /// The workstation's id.
    pub workstation_id: Uuid,
    /// The address the workstation's request came from, as the server saw it.
    pub source_address: String,
    /// When the workstation asked.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When the request lapses.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// WebAuthn `PublicKeyCredentialRequestOptions` JSON from Entra (`challenge`, `rpId`,
    /// `allowCredentials`, `userVerification`, ...).
    pub request_options: Value,
    /// The workstation's signature tying the challenge to itself and this request.
    pub binding: SignInBinding,
}

/// `GET /device/v1/inbox?wait=N`: the requests waiting for the phone (possibly none after the wait).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxPage {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// Pending requests, oldest first.
    pub requests: Vec<InboxItem>,
}

/// Why the phone refused or denied a request; shown per user in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The user said no.
    UserDeclined,
    /// The relying party is not `login.microsoft.com`.
    ForeignRelyingParty,
    /// The account is not the one the phone paired.
    ForeignAccount,
    /// The request had expired when the phone saw it.
    Expired,
    /// The sign-in binding is missing, altered or for another request.
    BadBinding,
    /// The workstation is not paired with this phone.
    UnknownWorkstation,
    /// The request could not be read.
    MalformedRequest,
    /// The authenticator failed (key store locked, no matching credential, ...).
    AuthenticatorFailed,
    /// A reason this version does not know.
    #[serde(other)]
    Other,
}

impl RefusalReason {
    /// The reason as the protocol spells it (`user_declined`, `bad_binding`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::UserDeclined => "user_declined",
            RefusalReason::ForeignRelyingParty => "foreign_relying_party",
            RefusalReason::ForeignAccount => "foreign_account",
            RefusalReason::Expired => "expired",
            RefusalReason::BadBinding => "bad_binding",
            RefusalReason::UnknownWorkstation => "unknown_workstation",
            RefusalReason::MalformedRequest => "malformed_request",
            RefusalReason::AuthenticatorFailed => "authenticator_failed",
            RefusalReason::Other => "other",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phone's answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// For [`ProvisionPasskey`]: the `publicKeyCredential` JSON for Graph's `POST fido2Methods`.
    Credential {
        /// `{id, rawId, type, response: {clientDataJSON, attestationObject, transports}, clientExtensionResults}`.
        credential: Value,
    },
    /// For [`ProvisionPasskey`]: the phone will not create the passkey.
    Refused {
        /// Why.
        reason: RefusalReason,
        /// Details for the console.
        message: String,
    },
    /// For [`ApproveSignIn`]: the assertion JSON.
    Approved {
        /// `{id, rawId, type, response: {clientDataJSON, authenticatorData, signature, userHandle}}`.
        assertion: Value,
    },
    /// For [`ApproveSignIn`]: the user or the phone said no.
    Denied {
        /// Why.
        reason: RefusalReason,
        /// Details for the workstation and the console.
        message: String,
    },
}

/// `POST /device/v1/requests/{id}`: the body of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestAnswer {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The request answered; must equal the `{id}` in the path.
    pub request_id: Uuid,
    /// The answer.
    #[serde(flatten)]
    pub answer: Answer,
}

/// Why the server refuses an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The body's request id is not the path's.
    #[error("the answer is for request {in_body}, but was posted to request {in_path}")]
    RequestIdMismatch {
        /// `{id}` in the path.
        in_path: Uuid,
        /// `request_id` in the body.
        in_body: Uuid,
    },
    /// A sign-in answer to a provisioning request, or the reverse.
    #[error("a `{answer}` answer does not fit a `{request}` request")]
    WrongKind {
        /// The answer's kind.
        answer: &'static str,
        /// The request's kind.
        request: &'static str,
    },
}

impl RequestAnswer {
    /// The answer for `request_id`.
    pub fn new(request_id: Uuid, answer: Answer) -> RequestAnswer {
        RequestAnswer {
            v: ProtocolVersion,
            request_id,
            answer,
        }
    }

    /// On the server: the answer was posted to the right path and fits the stored request.
    pub fn check_fits(
        &self,
        path_request_id: Uuid,
        request: &InboxRequest,
    ) -> Result<(), AnswerError> {
        if self.request_id != path_request_id || request.request_id() != path_request_id {
            return Err(AnswerError::RequestIdMismatch {
                in_path: path_request_id,
                in_body: self.request_id,
            });
        }
        let (answer, fits) = match (&self.answer, request) {
            (Answer::Credential { .. }, InboxRequest::ProvisionPasskey(_)) => ("credential", true),
            (Answer::Refused { .. }, InboxRequest::ProvisionPasskey(_)) => ("refused", true),
            (Answer::Approved { .. }, InboxRequest::ApproveSignIn(_)) => ("approved", true),
            (Answer::Denied { .. }, InboxRequest::ApproveSignIn(_)) => ("denied", true),
            (Answer::Credential { .. }, _) => ("credential", false),
            (Answer::Refused { .. }, _) => ("refused", false),
            (Answer::Approved { .. }, _) => ("approved", false),
            (Answer::Denied { .. }, _) => ("denied", false),
        };
        if fits {
            Ok(())
        } else {
            Err(AnswerError::WrongKind {
                answer,
                request: match request {
                    InboxRequest::ProvisionPasskey(_) => "provision_passkey",
                    InboxRequest::ApproveSignIn(_) => "approve_sign_in",
                },
            })
        }
    }
}

/// Why the phone will not act on a request. [`RequestCheckError::refusal_reason`] gives the
/// reason to send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestCheckError {
    /// The request has lapsed.
    #[error("the request expired at {expires_at}; nothing was signed")]
    Expired {
        /// When it lapsed.
        expires_at: OffsetDateTime,
    },
    /// The relying party is not Entra.
    #[error(
        "refused: the request is for the relying party {rp_id:?}, but this phone only makes passkeys for {ENTRA_RP_ID}"
    )]
    ForeignRelyingParty {
        /// The relying party asked for (shortened).
        rp_id: String,
    },
    /// The user is not the paired account.
    #[error(
        "refused: the request is for {requested}, but this phone is paired for {paired} (tenant {paired_tenant})"
    )]
    ForeignAccount {
        /// The account asked for (shortened).
        requested: String,
        /// The paired account.
        paired: String,
        /// The paired tenant.
        paired_tenant: Uuid,
    },
    /// The WebAuthn options cannot be read or contradict the request.
    #[error("refused: the WebAuthn options are not usable: {reason}")]
    BadOptions {
        /// What is wrong.
        reason: String,
    },
    /// The sign-in binding does not match the request.
    #[error(
        "refused: the sign-in binding's {field} does not match the request; it may have been redirected"
    )]
    BindingMismatch {
        /// The field that differs.
        field: &'static str,
    },
    /// The binding is too old or from the future.
    #[error(
        "refused: the sign-in binding was made at {issued_at} (Unix seconds), outside the accepted window; check the clocks"
    )]
    BindingOutOfTime {
        /// The binding's time.
        issued_at: i64,
    },
    /// The request names a workstation this phone has not paired.
    #[error(
        "refused: the sign-in comes from workstation {workstation_id}, which is not paired with this phone; pair it first (keybridge device pair-workstation)"
    )]
    UnknownWorkstation {
        /// The workstation named in the request.
        workstation_id: Uuid,
    },
    /// The binding's signature does not verify with the paired workstation's key.
    #[error("refused: the sign-in request is not signed by the workstation this phone paired with")]
    BadBindingSignature,
}

impl RequestCheckError {
    /// The reason to put in a [`Answer::Refused`] / [`Answer::Denied`].
    pub fn refusal_reason(&self) -> RefusalReason {
        match self {
            RequestCheckError::Expired { .. } => RefusalReason::Expired,
            RequestCheckError::ForeignRelyingParty { .. } => RefusalReason::ForeignRelyingParty,
            RequestCheckError::ForeignAccount { .. } => RefusalReason::ForeignAccount,
            RequestCheckError::BadOptions { .. } => RefusalReason::MalformedRequest,
            RequestCheckError::UnknownWorkstation { .. } => RefusalReason::UnknownWorkstation,
            RequestCheckError::BindingMismatch { .. }
            | RequestCheckError::BindingOutOfTime { .. }
            | RequestCheckError::BadBindingSignature => RefusalReason::BadBinding,
        }
    }
}

fn check_not_expired(
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), RequestCheckError> {
    if now >= expires_at {
        Err(RequestCheckError::Expired { expires_at })
    } else {
        Ok(())
    }
}

fn check_account(requested: &Account, paired: &Account) -> Result<(), RequestCheckError> {
    if requested.is_same_user(paired) {
        Ok(())
    } else {
        Err(RequestCheckError::ForeignAccount {
            requested: display_safe(&requested.upn, 120),
            paired: paired.upn.clone(),
            paired_tenant: paired.tenant_id,
        })
    }
}

fn check_rp(rp_id: &str) -> Result<(), RequestCheckError> {
    if rp_id == ENTRA_RP_ID {
        Ok(())
    } else {
        Err(RequestCheckError::ForeignRelyingParty {
            rp_id: display_safe(rp_id, 120),
        })
    }
}

fn bad_options(reason: &str) -> RequestCheckError {
    RequestCheckError::BadOptions {
        reason: reason.to_owned(),
    }
}

/// The phone's checks before it creates an Entra passkey: not expired, the account is the
/// paired one, and the relying party is [`ENTRA_RP_ID`] both in the request and in the
/// creation options the authenticator will act on (`publicKey.rp.id`, or `rp.id` for bare
/// options), whose `user.name` must be the paired UPN.
pub fn check_provision_request(
    request: &ProvisionPasskey,
    paired: &Account,
    now: OffsetDateTime,
) -> Result<(), RequestCheckError> {
    check_not_expired(request.expires_at, now)?;
    check_rp(&request.rp_id)?;
    check_account(&request.account, paired)?;
    let options = request
        .creation_options
        .get("publicKey")
        .unwrap_or(&request.creation_options);
    let options_rp = options
        .pointer("/rp/id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_options("the creation options have no rp.id"))?;
    check_rp(options_rp)?;
    let user_name = options
        .pointer("/user/name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_options("the creation options have no user.name"))?;
    if user_name.to_lowercase() != paired.upn.to_lowercase() {
        return Err(RequestCheckError::ForeignAccount {
            requested: display_safe(user_name, 120),
            paired: paired.upn.clone(),
            paired_tenant: paired.tenant_id,
        });
    }
    Ok(())
}

/// The phone's checks before it approves a sign-in: not expired, the paired account, rp id
/// [`ENTRA_RP_ID`] in the request options, and a [`SignInBinding`] signed by
/// `paired_workstation_key` that names this request, this workstation, this account and this
/// challenge, made within [`MAX_BINDING_AGE`].
///
/// `request_options` must be a bare options object: one with a `publicKey` member is refused,
/// since an authenticator reading that wrapper would sign a challenge these checks did not see.
///
/// `paired_workstation_key` is the public key of the workstation this phone paired under
/// `request.workstation_id`, or `None` when it paired none by that id (refused as
/// [`RequestCheckError::UnknownWorkstation`]).
pub fn check_sign_in_request(
    request: &ApproveSignIn,
    paired: &Account,
    paired_workstation_key: Option<&IdentityPublicKey>,
    now: OffsetDateTime,
) -> Result<(), RequestCheckError> {
    check_not_expired(request.expires_at, now)?;
    check_account(&request.account, paired)?;
    let workstation_key = paired_workstation_key.ok_or(RequestCheckError::UnknownWorkstation {
        workstation_id: request.workstation_id,
    })?;
    // The options must be the bare object the checks below read: an authenticator that also
    // accepts `{"publicKey": {...}}` would act on the inner object, whose challenge and rp id
    // these checks would never see.
    match &request.request_options {
        Value::Object(members) if !members.contains_key("publicKey") => {}
        Value::Object(_) => {
            return Err(bad_options(
                "the request options carry a `publicKey` member; only bare PublicKeyCredentialRequestOptions are accepted",
            ));
        }
        _ => return Err(bad_options("the request options are not a JSON object")),
    }
    let rp_id = request
        .request_options
        .get("rpId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_options("the request options have no rpId"))?;
    check_rp(rp_id)?;
    let challenge = request
        .request_options
        .get("challenge")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_options("the request options have no challenge"))?;
    let challenge_sha256 =
        challenge_digest(challenge).ok_or_else(|| bad_options("the challenge is not base64url"))?;
    let binding = &request.binding;
    if binding.request_id != request.request_id {
        return Err(RequestCheckError::BindingMismatch {
            field: "request id",
        });
    }
    if binding.workstation_id != request.workstation_id {
        return Err(RequestCheckError::BindingMismatch {
            field: "workstation id",
        });
    }
    if binding.rp_id != rp_id {
        return Err(RequestCheckError::BindingMismatch { field: "rp id" });
    }
    if binding.upn.to_lowercase() != request.account.upn.to_lowercase() {
        return Err(RequestCheckError::BindingMismatch { field: "account" });
    }
    if !bool::from(binding.challenge_sha256.ct_eq(&challenge_sha256)) {
        return Err(RequestCheckError::BindingMismatch { field: "challenge" });
    }
    let age = now.unix_timestamp().saturating_sub(binding.issued_at);
    if age > MAX_BINDING_AGE.whole_seconds() || -age > MAX_BINDING_SKEW.whole_seconds() {
        return Err(RequestCheckError::BindingOutOfTime {
            issued_at: binding.issued_at,
        });
    }
    if !binding.verify(workstation_key) {
        return Err(RequestCheckError::BadBindingSignature);
    }
    Ok(())
}

/// SHA-256 of a base64url challenge's bytes (padding tolerated, as WebAuthn JSON varies).
fn challenge_digest(challenge: &str) -> Option<[u8; 32]> {
    let bytes = crate::encoding::from_b64url(challenge.trim_end_matches('='))?;
    Some(Sha256::digest(bytes).into())
}

/// Why a binding could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The challenge is not base64url.
    #[error("the WebAuthn challenge is not base64url, so it cannot be bound")]
    BadChallenge,
    /// A text field holds a control character.
    #[error("the {field} contains a control character and cannot be bound")]
    ControlCharacter {
        /// `rp id` or `account`.
        field: &'static str,
    },
}

/// The workstation's signature that ties a sign-in approval to one WebAuthn challenge, one
/// workstation and one request, so that whoever relays it (the server, or someone between)
/// cannot have the phone sign a challenge for another computer or another session.
///
/// The workstation chooses the request id (a fresh UUID) and signs, with its own key,
/// [`SignInBinding::message`]:
///
/// ```text
/// keybridge-sign-in-binding-v1
/// request_id=<uuid>
/// workstation_id=<uuid>
/// rp_id=login.microsoft.com
/// account=<upn, lower case>
/// challenge_sha256=<SHA-256 of the challenge bytes, unpadded base64url>
/// issued_at=<Unix seconds>
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInBinding {
    /// The request this approval is for.
    pub request_id: Uuid,
    /// The workstation asking.
    pub workstation_id: Uuid,
    /// The relying party of the challenge.
    pub rp_id: String,
    /// The account signing in.
    pub upn: String,
    /// SHA-256 of the challenge's bytes.
    #[serde(with = "b64_array")]
    pub challenge_sha256: [u8; 32],
    /// When the workstation made the binding (Unix seconds).
    pub issued_at: i64,
    /// The workstation key's signature of [`SignInBinding::message`].
    pub signature: Signature,
}

impl SignInBinding {
    /// Made on the workstation with its key, from the challenge Entra gave it.
    pub fn sign(
        workstation_key: &IdentityKey,
        request_id: Uuid,
        workstation_id: Uuid,
        rp_id: &str,
        upn: &str,
        challenge: &str,
        issued_at: OffsetDateTime,
    ) -> Result<SignInBinding, BindingError> {
        if rp_id.chars().any(char::is_control) {
            return Err(BindingError::ControlCharacter { field: "rp id" });
        }
        if upn.chars().any(char::is_control) {
            return Err(BindingError::ControlCharacter { field: "account" });
        }
        let challenge_sha256 = challenge_digest(challenge).ok_or(BindingError::BadChallenge)?;
        let issued_at = issued_at.unix_timestamp();
        let message = binding_message(
            request_id,
            workstation_id,
            rp_id,
            upn,
            &challenge_sha256,
            issued_at,
        );
        Ok(SignInBinding {
            request_id,
            workstation_id,
            rp_id: rp_id.to_owned(),
            upn: upn.to_owned(),
            challenge_sha256,
            issued_at,
            signature: workstation_key.sign(message.as_bytes()),
        })
    }

    /// Whether the binding covers `challenge` (the base64url challenge of the request options),
    /// compared in constant time.
    pub fn covers_challenge(&self, challenge: &str) -> bool {
        challenge_digest(challenge)
            .is_some_and(|digest| bool::from(self.challenge_sha256.ct_eq(&digest)))
    }

    /// The canonical message the signature covers.
    pub fn message(&self) -> String {
        binding_message(
            self.request_id,
            self.workstation_id,
            &self.rp_id,
            &self.upn,
            &self.challenge_sha256,
            self.issued_at,
        )
    }

    /// Whether the signature is `workstation_key`'s. Fields with control characters never
    /// verify (they could fake line breaks in the message).
    pub fn verify(&self, workstation_key: &IdentityPublicKey) -> bool {
        if self.rp_id.chars().any(char::is_control) || self.upn.chars().any(char::is_control) {
            return false;
        }
        workstation_key.verify(self.message().as_bytes(), &self.signature)
    }
}

fn binding_message(
    request_id: Uuid,
    workstation_id: Uuid,
    rp_id: &str,
    upn: &str,
    challenge_sha256: &[u8; 32],
    issued_at: i64,
) -> String {
    format!(
        "keybridge-sign-in-binding-v1\nrequest_id={}\nworkstation_id={}\nrp_id={}\naccount={}\nchallenge_sha256={}\nissued_at={}",
        request_id.hyphenated(),
        workstation_id.hyphenated(),
        rp_id,
        upn.to_lowercase(),
        b64url(challenge_sha256),
        issued_at,
    )
}

fn human_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

impl ProvisionPasskey {
    /// What the user is asked to approve, in plain words (server-supplied text made safe to
    /// print). Show it only after [`check_provision_request`] passed.
    pub fn summary(&self) -> String {
        format!(
            "Create a passkey on this phone for {upn}\n  \
             with: Microsoft Entra ID ({rp})\n  \
             tenant: {tenant}\n  \
             expires: {expires}",
            upn = display_safe(&self.account.upn, 120),
            rp = display_safe(&self.rp_id, 60),
            tenant = self.account.tenant_id,
            expires = human_time(self.expires_at),
        )
    }
}

impl ApproveSignIn {
    /// What the user is asked to approve, in plain words (server-supplied text made safe to
    /// print). Show it only after [`check_sign_in_request`] passed.
    pub fn summary(&self) -> String {
        format!(
            "Sign in as {upn}\n  \
             on computer: {computer} (workstation {workstation})\n  \
             from: {source}\n  \
             requested: {requested}\n  \
             with: Microsoft Entra ID ({rp})",
            upn = display_safe(&self.account.upn, 120),
            computer = display_safe(&self.computer_name, 60),
            workstation = self.workstation_id,
            source = display_safe(&self.source_address, 60),
            requested = human_time(self.requested_at),
            rp = display_safe(&self.binding.rp_id, 60),
        )
    }
}

/// `POST /workstation/v1/sign-in` (issue 8): a workstation asks the server to put an
/// [`ApproveSignIn`] in the phone's inbox. The server copies `request_id`, `request_options`
/// and `binding` unchanged into the inbox request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInStart {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The fresh id the workstation chose (also in the binding).
    pub request_id: Uuid,
    /// The account to sign in.
    pub upn: String,
    /// The workstation's name, shown on the phone.
    pub computer_name: String,
    /// The request options Entra gave the workstation.
    pub request_options: Value,
    /// The workstation's binding.
    pub binding: SignInBinding,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

    #[test]
    fn refusal_reasons_print_as_the_wire_spells_them() {
        for reason in [
            RefusalReason::UserDeclined,
            RefusalReason::ForeignRelyingParty,
            RefusalReason::ForeignAccount,
            RefusalReason::Expired,
            RefusalReason::BadBinding,
            RefusalReason::UnknownWorkstation,
            RefusalReason::MalformedRequest,
            RefusalReason::AuthenticatorFailed,
            RefusalReason::Other,
        ] {
            assert_eq!(
                serde_json::to_value(reason).expect("encoded"),
                json!(reason.to_string())
            );
        }
    }

    fn ana() -> Account {
        Account {
            upn: "ana@contoso.com".to_owned(),
            tenant_id: Uuid::from_u128(0x11),
            entra_user_id: Uuid::from_u128(0x22),
        }
    }

    fn provision() -> ProvisionPasskey {
        ProvisionPasskey {
            request_id: Uuid::from_u128(0x33),
            account: ana(),
            rp_id: ENTRA_RP_ID.to_owned(),
            creation_options: json!({
                "challengeTimeoutDateTime": "2026-11-25T14:05:00Z",
                "publicKey": {
                    "rp": {"id": "login.microsoft.com", "name": "Microsoft"},
                    "user": {"id": "AQID", "name": "Ana@Contoso.com", "displayName": "Ana"},
                    "challenge": "Y2hhbGxlbmdl",
                    "pubKeyCredParams": [{"type": "public-key", "alg": -7}]
                }
            }),
            expires_at: datetime!(2026-11-25 14:05:00 UTC),
        }
    }

    struct SignInFixture {
        workstation_key: IdentityKey,
        request: ApproveSignIn,
    }

    fn sign_in() -> SignInFixture {
        let workstation_key = IdentityKey::generate(&mut OsRng);
        let request_id = Uuid::from_u128(0x44);
        let workstation_id = Uuid::from_u128(0x55);
        let challenge = "TzEyMy5zaWduLWlu";
        let binding = SignInBinding::sign(
            &workstation_key,
            request_id,
            workstation_id,
            ENTRA_RP_ID,
            "ana@contoso.com",
            challenge,
            NOW - Duration::seconds(5),
        )
        .expect("binds");
        let request = ApproveSignIn {
            request_id,
            account: ana(),
            computer_name: "DESKTOP-7".to_owned(),
            workstation_id,
            source_address: "192.0.2.10".to_owned(),
            requested_at: NOW - Duration::seconds(4),
            expires_at: NOW + Duration::seconds(120),
            request_options: json!({
                "challenge": challenge,
                "rpId": "login.microsoft.com",
                "userVerification": "required"
            }),
            binding,
        };
        SignInFixture {
            workstation_key,
            request,
        }
    }

    #[test]
    fn inbox_items_round_trip_with_version_and_type() {
        let fixture = sign_in();
        let page = InboxPage {
            v: ProtocolVersion,
            requests: vec![
                InboxItem::new(InboxRequest::ProvisionPasskey(provision())),
                InboxItem::new(InboxRequest::ApproveSignIn(fixture.request)),
            ],
        };
        let json = serde_json::to_value(&page).expect("serialises");
        assert_eq!(json["requests"][0]["v"], 1);
        assert_eq!(json["requests"][0]["type"], "provision_passkey");
        assert_eq!(json["requests"][0]["expires_at"], "2026-11-25T14:05:00Z");
        assert_eq!(json["requests"][1]["type"], "approve_sign_in");
        let back: InboxPage = serde_json::from_value(json).expect("parses");
        assert_eq!(back, page);
    }

    #[test]
    fn unknown_type_and_version_are_refused() {
        let mut json =
            serde_json::to_value(InboxItem::new(InboxRequest::ProvisionPasskey(provision())))
                .expect("serialises");
        json["type"] = json!("format_disk");
        assert!(serde_json::from_value::<InboxItem>(json.clone()).is_err());
        json["type"] = json!("provision_passkey");
        json["v"] = json!(2);
        let err = serde_json::from_value::<InboxItem>(json).expect_err("v2");
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn answers_round_trip_and_fit_their_requests() {
        let provision = InboxRequest::ProvisionPasskey(provision());
        let id = provision.request_id();
        let answer = RequestAnswer::new(
            id,
            Answer::Credential {
                credential: json!({"id": "abc", "type": "public-key"}),
            },
        );
        let json = serde_json::to_value(&answer).expect("serialises");
        assert_eq!(json["answer"], "credential");
        assert_eq!(json["v"], 1);
        let back: RequestAnswer = serde_json::from_value(json).expect("parses");
        assert_eq!(back, answer);
        assert_eq!(back.check_fits(id, &provision), Ok(()));
        assert!(matches!(
            back.check_fits(Uuid::from_u128(9), &provision),
            Err(AnswerError::RequestIdMismatch { .. })
        ));
        let sign_in = InboxRequest::ApproveSignIn(sign_in().request);
        let approved = RequestAnswer::new(
            id,
            Answer::Approved {
                assertion: json!({}),
            },
        );
        assert_eq!(
            approved.check_fits(id, &provision),
            Err(AnswerError::WrongKind {
                answer: "approved",
                request: "provision_passkey"
            })
        );
        let denied = RequestAnswer::new(
            sign_in.request_id(),
            Answer::Denied {
                reason: RefusalReason::UserDeclined,
                message: "no".into(),
            },
        );
        assert_eq!(denied.check_fits(sign_in.request_id(), &sign_in), Ok(()));
        let refused: RequestAnswer = serde_json::from_value(json!({
            "v": 1, "request_id": id, "answer": "refused", "reason": "brand_new_reason", "message": "m"
        }))
        .expect("an unknown reason is kept as other");
        assert!(matches!(
            refused.answer,
            Answer::Refused {
                reason: RefusalReason::Other,
                ..
            }
        ));
    }

    #[test]
    fn provision_request_for_the_paired_account_at_entra_passes() {
        assert_eq!(check_provision_request(&provision(), &ana(), NOW), Ok(()));
        let bare = ProvisionPasskey {
            creation_options: provision().creation_options["publicKey"].clone(),
            ..provision()
        };
        assert_eq!(check_provision_request(&bare, &ana(), NOW), Ok(()));
    }

    #[test]
    fn provision_request_refusals() {
        let expired =
            check_provision_request(&provision(), &ana(), datetime!(2026-11-25 14:05:00 UTC));
        assert!(matches!(expired, Err(RequestCheckError::Expired { .. })));

        let foreign_rp = ProvisionPasskey {
            rp_id: "evil.example".into(),
            ..provision()
        };
        let err = check_provision_request(&foreign_rp, &ana(), NOW).expect_err("foreign rp");
        assert_eq!(err.refusal_reason(), RefusalReason::ForeignRelyingParty);

        // The declared rp id says Entra but the options the authenticator would use do not.
        let mut hidden_rp = provision();
        hidden_rp.creation_options["publicKey"]["rp"]["id"] = json!("evil.example");
        assert_eq!(
            check_provision_request(&hidden_rp, &ana(), NOW),
            Err(RequestCheckError::ForeignRelyingParty {
                rp_id: "evil.example".into()
            })
        );

        let bob = ProvisionPasskey {
            account: Account {
                upn: "bob@contoso.com".into(),
                entra_user_id: Uuid::from_u128(0x99),
                ..ana()
            },
            ..provision()
        };
        let err = check_provision_request(&bob, &ana(), NOW).expect_err("foreign account");
        assert_eq!(err.refusal_reason(), RefusalReason::ForeignAccount);

        let mut other_user_in_options = provision();
        other_user_in_options.creation_options["publicKey"]["user"]["name"] =
            json!("bob@contoso.com");
        assert!(matches!(
            check_provision_request(&other_user_in_options, &ana(), NOW),
            Err(RequestCheckError::ForeignAccount { .. })
        ));

        let mut no_rp = provision();
        no_rp.creation_options = json!({"publicKey": {"user": {"name": "ana@contoso.com"}}});
        let err = check_provision_request(&no_rp, &ana(), NOW).expect_err("no rp");
        assert_eq!(err.refusal_reason(), RefusalReason::MalformedRequest);
    }

    #[test]
    fn sign_in_request_with_a_good_binding_passes() {
        let fixture = sign_in();
        assert_eq!(
            check_sign_in_request(
                &fixture.request,
                &ana(),
                Some(&fixture.workstation_key.public_key()),
                NOW
            ),
            Ok(())
        );
        let unknown = check_sign_in_request(&fixture.request, &ana(), None, NOW)
            .expect_err("no workstation paired under that id");
        assert_eq!(
            unknown,
            RequestCheckError::UnknownWorkstation {
                workstation_id: fixture.request.workstation_id
            }
        );
        assert_eq!(unknown.refusal_reason(), RefusalReason::UnknownWorkstation);
    }

    #[test]
    fn sign_in_refusals() {
        let fixture = sign_in();
        let key = fixture.workstation_key.public_key();
        let check =
            |request: &ApproveSignIn| check_sign_in_request(request, &ana(), Some(&key), NOW);

        let expired = ApproveSignIn {
            expires_at: NOW,
            ..fixture.request.clone()
        };
        assert!(matches!(
            check(&expired),
            Err(RequestCheckError::Expired { .. })
        ));

        let mut foreign_rp = fixture.request.clone();
        foreign_rp.request_options["rpId"] = json!("evil.example");
        assert!(matches!(
            check(&foreign_rp),
            Err(RequestCheckError::ForeignRelyingParty { .. })
        ));

        let foreign_account = ApproveSignIn {
            account: Account {
                tenant_id: Uuid::from_u128(0x77),
                ..ana()
            },
            ..fixture.request.clone()
        };
        assert!(matches!(
            check(&foreign_account),
            Err(RequestCheckError::ForeignAccount { .. })
        ));

        // A relay swaps in the challenge of its own sign-in session.
        let mut other_challenge = fixture.request.clone();
        other_challenge.request_options["challenge"] = json!("cmVsYXllZA");
        assert_eq!(
            check(&other_challenge),
            Err(RequestCheckError::BindingMismatch { field: "challenge" })
        );

        // The request claims another workstation than the binding.
        let other_workstation = ApproveSignIn {
            workstation_id: Uuid::from_u128(0x66),
            ..fixture.request.clone()
        };
        assert_eq!(
            check(&other_workstation),
            Err(RequestCheckError::BindingMismatch {
                field: "workstation id"
            })
        );

        let other_request = ApproveSignIn {
            request_id: Uuid::from_u128(0x45),
            ..fixture.request.clone()
        };
        assert_eq!(
            check(&other_request),
            Err(RequestCheckError::BindingMismatch {
                field: "request id"
            })
        );

        // A binding signed by another key (not the paired workstation's).
        let impostor = IdentityKey::generate(&mut OsRng);
        let forged = ApproveSignIn {
            binding: SignInBinding::sign(
                &impostor,
                fixture.request.request_id,
                fixture.request.workstation_id,
                ENTRA_RP_ID,
                "ana@contoso.com",
                "TzEyMy5zaWduLWlu",
                NOW,
            )
            .expect("binds"),
            ..fixture.request.clone()
        };
        assert_eq!(check(&forged), Err(RequestCheckError::BadBindingSignature));

        // Altering a signed field after signing.
        let mut altered = fixture.request.clone();
        altered.binding.issued_at += 1;
        assert_eq!(check(&altered), Err(RequestCheckError::BadBindingSignature));

        let stale = check_sign_in_request(
            &ApproveSignIn {
                expires_at: NOW + Duration::hours(1),
                ..fixture.request.clone()
            },
            &ana(),
            Some(&key),
            NOW + Duration::minutes(11),
        );
        assert!(matches!(
            stale,
            Err(RequestCheckError::BindingOutOfTime { .. })
        ));
        assert_eq!(
            stale.expect_err("stale").refusal_reason(),
            RefusalReason::BadBinding
        );
    }

    /// The phone's authenticator reads `{"publicKey": {...}}` as well as bare options and then
    /// acts on the inner object only; a check that read the outer members would pass a bound
    /// challenge while the phone signs another one.
    #[test]
    fn sign_in_options_wrapping_another_challenge_are_refused() {
        let fixture = sign_in();
        let key = fixture.workstation_key.public_key();
        let mut wrapped = fixture.request.clone();
        wrapped.request_options["publicKey"] = json!({
            "challenge": "cmVsYXllZA",
            "rpId": "login.microsoft.com",
            "userVerification": "required"
        });
        assert!(matches!(
            check_sign_in_request(&wrapped, &ana(), Some(&key), NOW),
            Err(RequestCheckError::BadOptions { .. })
        ));
        let mut not_an_object = fixture.request.clone();
        not_an_object.request_options = json!(["challenge", "rpId"]);
        assert!(matches!(
            check_sign_in_request(&not_an_object, &ana(), Some(&key), NOW),
            Err(RequestCheckError::BadOptions { .. })
        ));
    }

    #[test]
    fn binding_json_round_trip_and_message() {
        let fixture = sign_in();
        let json = serde_json::to_string(&fixture.request.binding).expect("serialises");
        let back: SignInBinding = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, fixture.request.binding);
        let message = back.message();
        assert!(message.starts_with(
            "keybridge-sign-in-binding-v1\nrequest_id=00000000-0000-0000-0000-000000000044\n"
        ));
        assert!(message.contains(&format!(
            "\nchallenge_sha256={}\n",
            b64url(&Sha256::digest(b"O123.sign-in"))
        )));
        assert_eq!(
            SignInBinding::sign(
                &fixture.workstation_key,
                Uuid::nil(),
                Uuid::nil(),
                ENTRA_RP_ID,
                "a\nb",
                "AA",
                NOW
            ),
            Err(BindingError::ControlCharacter { field: "account" })
        );
        assert_eq!(
            SignInBinding::sign(
                &fixture.workstation_key,
                Uuid::nil(),
                Uuid::nil(),
                ENTRA_RP_ID,
                "ana@contoso.com",
                "not base64!",
                NOW
            ),
            Err(BindingError::BadChallenge)
        );
    }

    #[test]
    fn summaries_say_who_where_and_are_safe_to_print() {
        let text = provision().summary();
        assert!(text.contains("ana@contoso.com"), "{text}");
        assert!(text.contains("login.microsoft.com"), "{text}");
        assert!(text.contains("2026-11-25 14:05:00 UTC"), "{text}");
        let mut request = sign_in().request;
        request.computer_name = "DESKTOP-7\u{1b}[1A\rApproved".to_owned();
        let text = request.summary();
        assert!(text.contains("Sign in as ana@contoso.com"), "{text}");
        assert!(
            text.contains("DESKTOP-7\u{FFFD}[1A\u{FFFD}Approved"),
            "{text}"
        );
        assert!(text.contains("from: 192.0.2.10"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}
