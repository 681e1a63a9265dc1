//! Authentication methods: listing, FIDO2 passkeys (list, get, delete, creationOptions,
//! create) and the FIDO2 policy.
//!
//! Creating a passkey is not idempotent. When a `POST fido2Methods` gets no clear answer
//! (timeout, broken connection, 5xx), [`GraphClient::create_fido2_method`] lists the user's
//! passkeys and looks for the credential before trying again, so a retry never registers a
//! second passkey.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiVersion, Call, GraphClient};
use crate::error::GraphError;
use crate::models::{
    AuthenticationMethod, CreationOptions, Fido2Method, Fido2Policy, Fido2PolicyPatch,
    NewFido2Method,
};
use crate::odata::fido2_method_id;
use crate::permissions::{AUTH_METHODS, POLICY_READ, POLICY_READ_WRITE};
use crate::users::{Pages, check_segment, user_segments};

/// The challenge lifetimes beta's creationOptions accepts, in minutes.
pub const CHALLENGE_TIMEOUT_MINUTES: std::ops::RangeInclusive<u32> = 5..=43_200;

/// How far a passkey's `createdDateTime` may precede our POST and still be ours (clock skew).
const CREATION_SKEW: time::Duration = time::Duration::minutes(2);

impl GraphClient {
    fn user_url(
        &self,
        version: ApiVersion,
        id_or_upn: &str,
        rest: &[&str],
        query: &[(&str, &str)],
    ) -> Result<url::Url, GraphError> {
        let mut segments = user_segments(id_or_upn)?;
        for segment in rest {
            check_segment("authentication method id", segment)?;
        }
        segments.extend(rest.iter().map(|s| (*s).to_owned()));
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        Ok(self.url(version, &segments, query))
    }

    /// Every authentication method of a user (password, FIDO2, Authenticator, ...).
    pub async fn list_authentication_methods(
        &self,
        user: &str,
    ) -> Result<Vec<AuthenticationMethod>, GraphError> {
        let url = self.user_url(ApiVersion::V1, user, &["authentication", "methods"], &[])?;
        Pages::new(
            self.clone(),
            url,
            AUTH_METHODS,
            "listing authentication methods",
        )
        .collect_all()
        .await
    }

    /// The user's FIDO2 passkeys (ours and others').
    pub async fn list_fido2_methods(&self, user: &str) -> Result<Vec<Fido2Method>, GraphError> {
        let url = self.user_url(
            ApiVersion::V1,
            user,
            &["authentication", "fido2Methods"],
            &[],
        )?;
        Pages::new(self.clone(), url, AUTH_METHODS, "listing FIDO2 methods")
            .collect_all()
            .await
    }

    /// One passkey by method id.
    pub async fn get_fido2_method(
        &self,
        user: &str,
        method_id: &str,
    ) -> Result<Fido2Method, GraphError> {
        let url = self.user_url(
            ApiVersion::V1,
            user,
            &["authentication", "fido2Methods", method_id],
            &[],
        )?;
        self.get_json(url, AUTH_METHODS, "reading a FIDO2 method")
            .await
    }

    /// Deletes a passkey. An unknown id is [`GraphError::NotFound`] (already gone).
    pub async fn delete_fido2_method(&self, user: &str, method_id: &str) -> Result<(), GraphError> {
        let url = self.user_url(
            ApiVersion::V1,
            user,
            &["authentication", "fido2Methods", method_id],
            &[],
        )?;
        self.send(&Call::new(Method::DELETE, url).permission(AUTH_METHODS))
            .await?;
        Ok(())
    }

    /// `creationOptions` for a new passkey: v1.0 (5-minute challenge) by default, or beta with
    /// `challengeTimeoutInMinutes` (5–43,200) when a timeout is given.
    pub async fn fido2_creation_options(
        &self,
        user: &str,
        challenge_timeout_minutes: Option<u32>,
    ) -> Result<CreationOptions, GraphError> {
        let url = match challenge_timeout_minutes {
            None => self.user_url(
                ApiVersion::V1,
                user,
                &["authentication", "fido2Methods", "creationOptions"],
                &[],
            )?,
            Some(minutes) => {
                if !CHALLENGE_TIMEOUT_MINUTES.contains(&minutes) {
                    return Err(GraphError::InvalidArgument(format!(
                        "a challenge timeout of {minutes} minutes is outside the 5 to 43,200 minutes Graph accepts"
                    )));
                }
                let function = format!("creationOptions(challengeTimeoutInMinutes={minutes})");
                self.user_url(
                    ApiVersion::Beta,
                    user,
                    &["authentication", "fido2Methods", &function],
                    &[],
                )?
            }
        };
        self.get_json(url, AUTH_METHODS, "reading FIDO2 creation options")
            .await
    }

    /// Registers a passkey (entra.md §4.3). After an uncertain POST it looks the credential up
    /// in the user's passkeys before trying again, so a retry never creates a second one.
    pub async fn create_fido2_method(
        &self,
        user: &str,
        method: &NewFido2Method,
    ) -> Result<Fido2Method, GraphError> {
        let url = self.user_url(
            ApiVersion::V1,
            user,
            &["authentication", "fido2Methods"],
            &[],
        )?;
        let mut body = serde_json::json!({
            "publicKeyCredential": {
                "id": URL_SAFE_NO_PAD.encode(&method.credential_id),
                "response": {
                    "clientDataJSON": URL_SAFE_NO_PAD.encode(&method.client_data_json),
                    "attestationObject": URL_SAFE_NO_PAD.encode(&method.attestation_object),
                },
                "clientExtensionResults": if method.client_extension_results.is_null() {
                    Value::Object(Default::default())
                } else {
                    method.client_extension_results.clone()
                },
            }
        });
        if let Some(name) = &method.display_name {
            body["displayName"] = Value::from(name.as_str());
        }
        let started = time::OffsetDateTime::now_utc();
        let mut tries = 0u32;
        loop {
            let call = Call::new(Method::POST, url.clone())
                .body(&body)
                .permission(AUTH_METHODS);
            let error = match self.send(&call).await {
                Ok(reply) => return reply.json("reading the created FIDO2 method"),
                Err(error) => error,
            };
            let uncertain = matches!(error, GraphError::Transport { .. })
                || matches!(&error, GraphError::Service(d) if d.status >= 500)
                || matches!(&error, GraphError::Throttled { detail, .. } if detail.status == 503);
            let duplicate = matches!(&error, GraphError::InvalidRequest(d)
                if d.sub_code.as_deref() == Some("error_credential_already_exists"));
            if !uncertain && !duplicate {
                return Err(error);
            }
            tracing::warn!(%error, "passkey registration uncertain; looking for it before trying again");
            if let Some(found) = self.find_created_method(user, method, started).await? {
                tracing::info!(method_id = %found.id, "the passkey was registered after all");
                return Ok(found);
            }
            if duplicate || tries + 1 >= self.inner.retry.max_attempts {
                return Err(error);
            }
            self.inner
                .clock
                .sleep(self.inner.retry.random_backoff(tries))
                .await;
            self.count_retry();
            tries += 1;
        }
    }

    /// The user's passkey for this credential: by method id (base64url credential id + padding
    /// digit), by decoded credential id, or, when ids are not derived from credential ids, the
    /// one passkey created since `started` with the same AAGUID and display name.
    async fn find_created_method(
        &self,
        user: &str,
        method: &NewFido2Method,
        started: time::OffsetDateTime,
    ) -> Result<Option<Fido2Method>, GraphError> {
        let existing = self.list_fido2_methods(user).await?;
        let expected_id = fido2_method_id(&method.credential_id);
        if let Some(found) = existing.iter().find(|m| {
            m.id == expected_id
                || m.credential_id().as_deref() == Some(method.credential_id.as_slice())
        }) {
            return Ok(Some(found.clone()));
        }
        let Some(aaguid) = method.aaguid else {
            return Ok(None);
        };
        let candidates: Vec<&Fido2Method> = existing
            .iter()
            .filter(|m| {
                m.aa_guid
                    .as_deref()
                    .and_then(|g| uuid::Uuid::parse_str(g).ok())
                    == Some(aaguid)
                    && m.created()
                        .is_some_and(|created| created >= started - CREATION_SKEW)
                    && (method.display_name.is_none() || m.display_name == method.display_name)
            })
            .collect();
        Ok(match candidates.as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        })
    }

    /// The FIDO2 authentication-methods policy. Needs Policy.Read.AuthenticationMethod.
    pub async fn fido2_policy(&self) -> Result<Fido2Policy, GraphError> {
        let url = self.fido2_policy_url();
        self.get_json(url, POLICY_READ, "reading the FIDO2 policy")
            .await
    }

    /// Changes the FIDO2 policy (only the fields set in `patch`). Needs
    /// Policy.ReadWrite.AuthenticationMethod.
    pub async fn update_fido2_policy(&self, patch: &Fido2PolicyPatch) -> Result<(), GraphError> {
        let mut body =
            serde_json::to_value(patch).map_err(|e| GraphError::InvalidArgument(e.to_string()))?;
        body["@odata.type"] =
            Value::from("#microsoft.graph.fido2AuthenticationMethodConfiguration");
        let call = Call::new(Method::PATCH, self.fido2_policy_url())
            .body(&body)
            .permission(POLICY_READ_WRITE);
        self.send(&call).await?;
        Ok(())
    }

    fn fido2_policy_url(&self) -> url::Url {
        self.url(
            ApiVersion::V1,
            &[
                "policies",
                "authenticationMethodsPolicy",
                "authenticationMethodConfigurations",
                "fido2",
            ],
            &[],
        )
    }
}
