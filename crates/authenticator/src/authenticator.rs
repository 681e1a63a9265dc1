//! The authenticator: makeCredential and getAssertion, WebAuthn JSON in and out.
//!
//! It plays both the client (browser) part — origin check, clientDataJSON — and the
//! authenticator part — authenticator data, attestation, signatures — because the phone is
//! both (WebAuthn L3 §5.1.3, §5.1.4; CTAP 2.1 §6.1, §6.2).

use ciborium::Value as Cbor;
use keybridge_device_protocol::terminal_safe;
use rand_core::{OsRng, RngCore as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::AAGUID;
use crate::encoding::{b64url, decode_credential_id_candidates};
use crate::error::AuthenticatorError;
use crate::keys::{COSE_ALG_ES256, CredentialKey};
use crate::options::{
    AttestationConveyance, CreationOptions, RequestOptions, UserVerificationRequirement,
};
use crate::origin::OriginPolicy;
use crate::presence::{ApprovalRequest, Ceremony, UserPresence};
use crate::store::{
    Account, AccountSummary, CredProtect, CredentialStore, HmacSecret, StoredCredential,
};

/// Length of the random credential ids keybridge makes.
pub const CREDENTIAL_ID_LEN: usize = 32;

/// Authenticator data flag bits (WebAuthn L3 §6.1).
pub mod flags {
    /// User present.
    pub const UP: u8 = 0x01;
    /// User verified.
    pub const UV: u8 = 0x04;
    /// Backup eligible (never set by keybridge: passkeys are device-bound).
    pub const BE: u8 = 0x08;
    /// Backup state (never set by keybridge).
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

/// Which attestation statement to produce when the relying party wants one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttestationPreference {
    /// `packed` with `x5c` = [batch certificate], signed by the batch key (the default).
    #[default]
    Packed,
    /// `packed` self attestation, signed by the new credential's own key.
    SelfAttestation,
    /// `none`.
    None,
}

/// The attestation format actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationFormat {
    /// packed with an x5c chain.
    PackedBatch,
    /// packed self attestation.
    PackedSelf,
    /// none.
    None,
}

/// Caller-side settings of one makeCredential.
#[derive(Debug, Clone, Default)]
pub struct MakeCredentialSettings {
    /// Attestation to give when the relying party asks for one.
    pub attestation: AttestationPreference,
    /// The tenant the account belongs to, stored beside it.
    pub tenant: Option<String>,
}

/// The result of makeCredential: the bytes and the JSON Graph's `POST fido2Methods` takes.
#[derive(Debug, Clone)]
pub struct RegistrationResponse {
    /// The new credential id.
    pub credential_id: Vec<u8>,
    /// The exact clientDataJSON bytes.
    pub client_data_json: Vec<u8>,
    /// The authenticator data inside the attestation object.
    pub authenticator_data: Vec<u8>,
    /// The CBOR attestation object.
    pub attestation_object: Vec<u8>,
    /// The attestation format used.
    pub format: AttestationFormat,
    /// Client extension outputs.
    pub client_extension_results: Value,
}

impl RegistrationResponse {
    /// `PublicKeyCredential` JSON (base64url without padding): `id`, `rawId`, `type`,
    /// `response.{clientDataJSON, attestationObject, transports}`, `clientExtensionResults`.
    pub fn to_json(&self) -> Value {
        let id = b64url(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&self.client_data_json),
                "attestationObject": b64url(&self.attestation_object),
                "transports": ["hybrid"],
            },
            "clientExtensionResults": self.client_extension_results,
        })
    }
}

/// The result of getAssertion.
#[derive(Debug, Clone)]
pub struct AssertionResponse {
    /// The credential used.
    pub credential_id: Vec<u8>,
    /// The exact clientDataJSON bytes.
    pub client_data_json: Vec<u8>,
    /// The authenticator data.
    pub authenticator_data: Vec<u8>,
    /// DER ECDSA signature over authenticatorData ‖ SHA-256(clientDataJSON).
    pub signature: Vec<u8>,
    /// The user handle stored with the credential.
    pub user_handle: Vec<u8>,
    /// The signature counter in the authenticator data.
    pub sign_count: u32,
}

impl AssertionResponse {
    /// `PublicKeyCredential` JSON: `id`, `rawId`, `type`, `response.{clientDataJSON,
    /// authenticatorData, signature, userHandle}`, `clientExtensionResults`.
    pub fn to_json(&self) -> Value {
        let id = b64url(&self.credential_id);
        json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&self.client_data_json),
                "authenticatorData": b64url(&self.authenticator_data),
                "signature": b64url(&self.signature),
                "userHandle": b64url(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

/// Chooses among several accounts that could answer a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSelector {
    /// A credential id (base64url, as listed by `accounts`).
    CredentialId(String),
    /// A user name (case-insensitive).
    UserName(String),
}

impl AccountSelector {
    /// Reads a selector given on the command line: a credential id if it is one, else a user name.
    pub fn parse(text: &str) -> Self {
        if text.contains('@') || crate::encoding::decode_lenient(text).is_none() {
            Self::UserName(text.to_owned())
        } else {
            Self::CredentialId(text.to_owned())
        }
    }

    fn matches(&self, credential: &StoredCredential) -> bool {
        match self {
            // A user name like "alice" is also valid base64url: accept either reading.
            Self::CredentialId(text) => {
                decode_credential_id_candidates(text).contains(&credential.credential_id)
                    || credential.account.user_name.eq_ignore_ascii_case(text)
            }
            Self::UserName(name) => credential.account.user_name.eq_ignore_ascii_case(name),
        }
    }

    fn text(&self) -> &str {
        match self {
            Self::CredentialId(text) | Self::UserName(text) => text,
        }
    }
}

/// The phone's FIDO2 authenticator over a credential store and a user-approval source.
#[derive(Debug)]
pub struct Authenticator<S, P> {
    store: S,
    presence: P,
    origins: OriginPolicy,
}

/// Of `indices` into `credentials`, those that are the newest of their user (rp id and user
/// handle): the latest `created_at`, and the later one in the store when two share a second.
fn newest_per_user(credentials: &[StoredCredential], indices: &[usize]) -> Vec<usize> {
    let same_user = |a: &StoredCredential, b: &StoredCredential| {
        a.account.rp_id == b.account.rp_id && a.account.user_id == b.account.user_id
    };
    indices
        .iter()
        .copied()
        .filter(|&i| {
            let credential = &credentials[i];
            !indices.iter().any(|&j| {
                let other = &credentials[j];
                j != i
                    && same_user(credential, other)
                    && (other.created_at, j) > (credential.created_at, i)
            })
        })
        .collect()
}

/// A summary whose relying-party-supplied names are [`terminal_safe`], for error messages that
/// end up on a terminal.
fn display_safe_summary(summary: AccountSummary) -> AccountSummary {
    AccountSummary {
        rp_name: terminal_safe(&summary.rp_name),
        user_name: terminal_safe(&summary.user_name),
        user_display_name: terminal_safe(&summary.user_display_name),
        tenant: summary.tenant.as_deref().map(terminal_safe),
        ..summary
    }
}

fn client_data_json(
    kind: &str,
    challenge: &str,
    origin: &str,
) -> Result<Vec<u8>, AuthenticatorError> {
    // Member order as browsers write it (§5.8.1.1): type, challenge, origin, crossOrigin.
    #[derive(serde::Serialize)]
    struct ClientData<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        challenge: &'a str,
        origin: &'a str,
        #[serde(rename = "crossOrigin")]
        cross_origin: bool,
    }
    serde_json::to_vec(&ClientData {
        kind,
        challenge,
        origin,
        cross_origin: false,
    })
    .map_err(|e| AuthenticatorError::Encoding {
        reason: e.to_string(),
    })
}

fn cbor_bytes(value: &Cbor) -> Result<Vec<u8>, AuthenticatorError> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| AuthenticatorError::Encoding {
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

impl<S: CredentialStore, P: UserPresence> Authenticator<S, P> {
    /// An authenticator with the strict origin policy.
    pub fn new(store: S, presence: P) -> Self {
        Self {
            store,
            presence,
            origins: OriginPolicy::strict(),
        }
    }

    /// Replaces the origin policy (e.g. to allow a relying party's related origins).
    pub fn with_origin_policy(mut self, origins: OriginPolicy) -> Self {
        self.origins = origins;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Creates a resident ES256 credential (WebAuthn `create()` as the phone answers it).
    ///
    /// The credential is persisted in the store before the response is returned.
    pub fn make_credential(
        &mut self,
        options: &CreationOptions,
        origin: &str,
        settings: &MakeCredentialSettings,
    ) -> Result<RegistrationResponse, AuthenticatorError> {
        if let Some(expires) = options.challenge_expires_at
            && expires < OffsetDateTime::now_utc()
        {
            return Err(AuthenticatorError::ChallengeExpired {
                expired_at: expires
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| expires.to_string()),
            });
        }
        let checked = self.origins.check(origin, options.rp_id.as_deref())?;
        // An empty list means the client default, which includes ES256 (§5.1.3 step 10).
        if !options.algorithms.is_empty() && !options.algorithms.contains(&COSE_ALG_ES256) {
            return Err(AuthenticatorError::UnsupportedAlgorithm {
                offered: options.algorithms.clone(),
            });
        }
        for excluded in &options.exclude_credentials {
            let candidates = decode_credential_id_candidates(excluded);
            if let Some(hit) =
                self.store.credentials().iter().find(|c| {
                    c.account.rp_id == checked.rp_id && candidates.contains(&c.credential_id)
                })
            {
                return Err(AuthenticatorError::CredentialExcluded {
                    rp_id: checked.rp_id.clone(),
                    user_name: hit.account.user_name.clone(),
                    credential_id: b64url(&hit.credential_id),
                });
            }
        }
        let uv_required = options.user_verification == UserVerificationRequirement::Required;
        let approval = self
            .presence
            .approve(&ApprovalRequest {
                ceremony: Ceremony::Registration,
                rp_id: &checked.rp_id,
                origin: &checked.origin,
                user_name: &options.user_name,
                user_display_name: &options.user_display_name,
                user_verification_required: uv_required,
            })
            .map_err(|declined| AuthenticatorError::Declined {
                reason: declined.reason,
            })?;
        if uv_required && !approval.user_verified {
            return Err(AuthenticatorError::UserVerificationRequired);
        }

        let key = CredentialKey::generate();
        let mut credential_id = vec![0u8; CREDENTIAL_ID_LEN];
        OsRng.fill_bytes(&mut credential_id);

        // Extensions: authenticator outputs go into authData, client outputs into the JSON.
        let ext = &options.extensions;
        let cred_protect = ext.cred_protect;
        let hmac_secret = (ext.hmac_create_secret || ext.prf).then(HmacSecret::generate);
        let mut authenticator_extensions: Vec<(Cbor, Cbor)> = Vec::new();
        // Canonical CTAP2 order: "credProtect" before "hmac-secret" (same length, bytewise).
        if let Some(level) = cred_protect {
            authenticator_extensions
                .push((text("credProtect"), Cbor::Integer(level.level().into())));
        }
        if hmac_secret.is_some() {
            authenticator_extensions.push((text("hmac-secret"), Cbor::Bool(true)));
        }
        let mut client_extension_results = serde_json::Map::new();
        if ext.hmac_create_secret {
            client_extension_results.insert("hmacCreateSecret".into(), Value::Bool(true));
        }
        if ext.prf {
            client_extension_results.insert("prf".into(), json!({"enabled": true}));
        }
        if ext.cred_props {
            client_extension_results.insert("credProps".into(), json!({"rk": true}));
        }

        let mut flag_bits = flags::UP | flags::AT;
        if approval.user_verified {
            flag_bits |= flags::UV;
        }
        if !authenticator_extensions.is_empty() {
            flag_bits |= flags::ED;
        }
        let cose_key = key.public_key().to_cose_key()?;
        let id_len =
            u16::try_from(credential_id.len()).map_err(|_| AuthenticatorError::Encoding {
                reason: "credential id too long".into(),
            })?;
        let mut auth_data = Vec::with_capacity(37 + 18 + credential_id.len() + cose_key.len() + 32);
        auth_data.extend_from_slice(&Sha256::digest(checked.rp_id.as_bytes()));
        auth_data.push(flag_bits);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&AAGUID);
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&credential_id);
        auth_data.extend_from_slice(&cose_key);
        if !authenticator_extensions.is_empty() {
            auth_data.extend_from_slice(&cbor_bytes(&Cbor::Map(authenticator_extensions))?);
        }

        let client_data = client_data_json("webauthn.create", &options.challenge, &checked.origin)?;
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));

        let format = match (options.attestation, settings.attestation) {
            (AttestationConveyance::None, _) | (_, AttestationPreference::None) => {
                AttestationFormat::None
            }
            (_, AttestationPreference::SelfAttestation) => AttestationFormat::PackedSelf,
            (_, AttestationPreference::Packed) => AttestationFormat::PackedBatch,
        };
        let (fmt, statement) = match format {
            AttestationFormat::None => ("none", Cbor::Map(Vec::new())),
            AttestationFormat::PackedSelf => (
                "packed",
                Cbor::Map(vec![
                    (text("alg"), Cbor::Integer(COSE_ALG_ES256.into())),
                    (text("sig"), Cbor::Bytes(key.sign_der(&signed))),
                ]),
            ),
            AttestationFormat::PackedBatch => {
                let identity = self
                    .store
                    .attestation()
                    .ok_or(AuthenticatorError::NoAttestationCertificate)?;
                (
                    "packed",
                    Cbor::Map(vec![
                        (text("alg"), Cbor::Integer(COSE_ALG_ES256.into())),
                        (text("sig"), Cbor::Bytes(identity.key.sign_der(&signed))),
                        (
                            text("x5c"),
                            Cbor::Array(vec![Cbor::Bytes(identity.batch_certificate.clone())]),
                        ),
                    ]),
                )
            }
        };
        // Canonical CTAP2 key order: "fmt" (3), "attStmt" (7), "authData" (8).
        let attestation_object = cbor_bytes(&Cbor::Map(vec![
            (text("fmt"), text(fmt)),
            (text("attStmt"), statement),
            (text("authData"), Cbor::Bytes(auth_data.clone())),
        ]))?;

        self.store.add_credential(StoredCredential {
            credential_id: credential_id.clone(),
            account: Account {
                rp_id: checked.rp_id.clone(),
                rp_name: options.rp_name.clone(),
                user_id: options.user_id.clone(),
                user_name: options.user_name.clone(),
                user_display_name: options.user_display_name.clone(),
                tenant: settings.tenant.clone(),
            },
            key,
            sign_count: 0,
            cred_protect: cred_protect.unwrap_or(CredProtect::UserVerificationOptional),
            hmac_secret,
            created_at: OffsetDateTime::now_utc().unix_timestamp(),
        })?;

        Ok(RegistrationResponse {
            credential_id,
            client_data_json: client_data,
            authenticator_data: auth_data,
            attestation_object,
            format,
            client_extension_results: Value::Object(client_extension_results),
        })
    }

    /// The credentials that could answer `options` from `origin`, before account choice.
    pub fn matching_accounts(
        &self,
        options: &RequestOptions,
        origin: &str,
    ) -> Result<Vec<AccountSummary>, AuthenticatorError> {
        let checked = self.origins.check(origin, options.rp_id.as_deref())?;
        Ok(self
            .candidates(options, &checked.rp_id)
            .into_iter()
            .map(|i| self.store.credentials()[i].summary())
            .collect())
    }

    fn candidates(&self, options: &RequestOptions, rp_id: &str) -> Vec<usize> {
        let allowed: Vec<Vec<u8>> = options
            .allow_credentials
            .iter()
            .flat_map(|text| decode_credential_id_candidates(text))
            .collect();
        self.store
            .credentials()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.account.rp_id == rp_id)
            .filter(|(_, c)| {
                options.allow_credentials.is_empty() || allowed.contains(&c.credential_id)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Signs in (WebAuthn `get()` as the phone answers it).
    ///
    /// When several credentials match and `allowCredentials` does not narrow them down,
    /// `account` must choose one; otherwise the error lists the candidates. The incremented
    /// signature counter is persisted before the assertion is returned.
    ///
    /// A new credential for a user who already has one here does not replace the old one
    /// (unlike CTAP 2.1 §6.1.2 step 15): keybridge registers the new passkey with Entra only
    /// after it is made, and if that registration fails the old one must still work. So when
    /// `allowCredentials` is empty, only the newest credential of each user (same rp id and user
    /// handle) is a candidate; the older ones still answer when the relying party or `account`
    /// names them by credential id.
    pub fn get_assertion(
        &mut self,
        options: &RequestOptions,
        origin: &str,
        account: Option<&AccountSelector>,
    ) -> Result<AssertionResponse, AuthenticatorError> {
        let checked = self.origins.check(origin, options.rp_id.as_deref())?;
        let rp_id = checked.rp_id.clone();
        let candidates = self.candidates(options, &rp_id);
        if candidates.is_empty() {
            return Err(AuthenticatorError::NoCredential {
                rp_id,
                allowed: options.allow_credentials.len(),
            });
        }
        let summaries = || {
            candidates
                .iter()
                .map(|&i| self.store.credentials()[i].summary())
                .collect::<Vec<_>>()
        };
        let mut chosen: Vec<usize> = match account {
            None => candidates.clone(),
            Some(selector) => candidates
                .iter()
                .copied()
                .filter(|&i| selector.matches(&self.store.credentials()[i]))
                .collect(),
        };
        if options.allow_credentials.is_empty() {
            chosen = newest_per_user(self.store.credentials(), &chosen);
        }
        let index = match chosen.as_slice() {
            [only] => *only,
            [] => {
                return Err(AuthenticatorError::AccountNotFound {
                    selector: account.map(|s| s.text().to_owned()).unwrap_or_default(),
                    rp_id,
                    candidates: summaries().into_iter().map(display_safe_summary).collect(),
                });
            }
            several => {
                return Err(AuthenticatorError::AmbiguousAccount {
                    rp_id,
                    candidates: several
                        .iter()
                        .map(|&i| display_safe_summary(self.store.credentials()[i].summary()))
                        .collect(),
                });
            }
        };

        let uv_required = options.user_verification == UserVerificationRequirement::Required;
        let (credential_id, user_id, cred_protect) = {
            let credential = &self.store.credentials()[index];
            (
                credential.credential_id.clone(),
                credential.account.user_id.clone(),
                credential.cred_protect,
            )
        };
        let approval = {
            let credential = &self.store.credentials()[index];
            self.presence
                .approve(&ApprovalRequest {
                    ceremony: Ceremony::Authentication,
                    rp_id: &rp_id,
                    origin: &checked.origin,
                    user_name: &credential.account.user_name,
                    user_display_name: &credential.account.user_display_name,
                    user_verification_required: uv_required,
                })
                .map_err(|declined| AuthenticatorError::Declined {
                    reason: declined.reason,
                })?
        };
        // credProtect (CTAP 2.1 §12.1): level 3 always needs UV; level 2 needs UV unless the
        // relying party named the credential.
        let protected = match cred_protect {
            CredProtect::UserVerificationOptional => false,
            CredProtect::UserVerificationOptionalWithCredentialIdList => {
                options.allow_credentials.is_empty()
            }
            CredProtect::UserVerificationRequired => true,
        };
        if (uv_required || protected) && !approval.user_verified {
            return Err(AuthenticatorError::UserVerificationRequired);
        }

        // Persist the new counter first: an assertion is never released with a counter that
        // could be handed out again after a crash.
        let sign_count = self.store.next_sign_count(&credential_id)?;

        let mut flag_bits = flags::UP;
        if approval.user_verified {
            flag_bits |= flags::UV;
        }
        let mut auth_data = Vec::with_capacity(37);
        auth_data.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
        auth_data.push(flag_bits);
        auth_data.extend_from_slice(&sign_count.to_be_bytes());
        let client_data = client_data_json("webauthn.get", &options.challenge, &checked.origin)?;
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self.store.credentials()[index].key.sign_der(&signed);

        Ok(AssertionResponse {
            credential_id,
            client_data_json: client_data,
            authenticator_data: auth_data,
            signature,
            user_handle: user_id,
            sign_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::{Approval, Declined};
    use crate::store::MemoryStore;

    const ORIGIN: &str = "https://login.microsoft.com";

    type Phone = Authenticator<MemoryStore, fn(&ApprovalRequest<'_>) -> Result<Approval, Declined>>;

    fn verified(_: &ApprovalRequest<'_>) -> Result<Approval, Declined> {
        Ok(Approval {
            user_verified: true,
        })
    }

    fn phone() -> Phone {
        Authenticator::new(
            MemoryStore::new(),
            verified as fn(&ApprovalRequest<'_>) -> _,
        )
    }

    fn register(phone: &mut Phone, user_id: &[u8], name: &str) -> Vec<u8> {
        let options = CreationOptions::from_json(
            &json!({"publicKey": {
                "rp": {"id": "login.microsoft.com", "name": "Microsoft"},
                "user": {"id": b64url(user_id), "name": name, "displayName": name},
                "challenge": "Y2hhbGxlbmdl",
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "authenticatorSelection": {"userVerification": "required"},
                "attestation": "none"
            }})
            .to_string(),
        )
        .expect("creation options");
        let settings = MakeCredentialSettings {
            attestation: AttestationPreference::None,
            tenant: None,
        };
        phone
            .make_credential(&options, ORIGIN, &settings)
            .expect("registered")
            .credential_id
    }

    fn sign_in_options(allow: &[&[u8]]) -> RequestOptions {
        RequestOptions::from_json(
            &json!({"publicKey": {
                "challenge": "c2lnbi1pbg",
                "rpId": "login.microsoft.com",
                "allowCredentials": allow.iter().map(|id| json!({"type": "public-key", "id": b64url(id)})).collect::<Vec<_>>(),
                "userVerification": "required"
            }})
            .to_string(),
        )
        .expect("request options")
    }

    #[test]
    fn account_errors_do_not_carry_terminal_control_characters() {
        let mut phone = phone();
        register(&mut phone, b"user-1", "mallory\x1b[2J@contoso.com");
        register(
            &mut phone,
            b"user-2",
            "eve@contoso.com\nDone. Signed in as admin",
        );
        let ambiguous = phone
            .get_assertion(&sign_in_options(&[]), ORIGIN, None)
            .expect_err("two users match");
        assert!(matches!(
            ambiguous,
            AuthenticatorError::AmbiguousAccount { .. }
        ));
        let not_found = phone
            .get_assertion(
                &sign_in_options(&[]),
                ORIGIN,
                Some(&AccountSelector::parse("nobody@contoso.com")),
            )
            .expect_err("no such account");
        assert!(matches!(
            not_found,
            AuthenticatorError::AccountNotFound { .. }
        ));
        for error in [ambiguous, not_found] {
            let text = error.to_string();
            assert!(!text.contains('\x1b'), "escape in {text:?}");
            assert!(!text.contains('\n'), "newline in {text:?}");
            // Still recognisable: only the control characters are replaced.
            assert!(text.contains("mallory\u{FFFD}[2J@contoso.com"), "{text:?}");
            assert!(text.contains("eve@contoso.com\u{FFFD}Done."), "{text:?}");
        }
    }

    // CTAP 2.1 §6.1.2 step 15 would replace the older credential of the same user; keybridge keeps
    // it (see `get_assertion`) but signs with the newest when the relying party names none.
    #[test]
    fn newest_credential_of_a_user_answers_a_usernameless_sign_in() {
        let mut phone = phone();
        let older = register(&mut phone, b"user-1", "alice@contoso.com");
        let newer = register(&mut phone, b"user-1", "alice@contoso.com");
        assert_eq!(phone.store.credentials().len(), 2, "the older one is kept");

        let assertion = phone
            .get_assertion(&sign_in_options(&[]), ORIGIN, None)
            .expect("one user: no account choice needed");
        assert_eq!(assertion.credential_id, newer);
        assert_eq!(assertion.user_handle, b"user-1");
        let by_name = phone
            .get_assertion(
                &sign_in_options(&[]),
                ORIGIN,
                Some(&AccountSelector::parse("alice@contoso.com")),
            )
            .expect("the user name picks the newest");
        assert_eq!(by_name.credential_id, newer);

        // Named by the relying party or by the person, the older one still signs.
        let named = phone
            .get_assertion(&sign_in_options(&[&older]), ORIGIN, None)
            .expect("allow list names the older credential");
        assert_eq!(named.credential_id, older);
        let chosen = phone
            .get_assertion(
                &sign_in_options(&[]),
                ORIGIN,
                Some(&AccountSelector::CredentialId(b64url(&older))),
            )
            .expect("credential id selector");
        assert_eq!(chosen.credential_id, older);

        // Another user keeps the choice ambiguous.
        register(&mut phone, b"user-2", "bob@contoso.com");
        let error = phone
            .get_assertion(&sign_in_options(&[]), ORIGIN, None)
            .expect_err("two users");
        let AuthenticatorError::AmbiguousAccount { candidates, .. } = error else {
            panic!("expected AmbiguousAccount, got {error:?}");
        };
        let listed: Vec<_> = candidates.iter().map(|c| c.credential_id.clone()).collect();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.contains(&b64url(&newer)) && !listed.contains(&b64url(&older)));
    }
}
