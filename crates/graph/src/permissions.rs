//! The permission self-test: which of the application permissions keybridge needs are
//! granted, read from the `roles` claim of the app's own access token.
//!
//! The token is decoded **without verifying its signature**: it came straight from the token
//! endpoint over TLS, and it is only read to name missing permissions for the admin, never to
//! make an access decision. Access tokens are opaque by contract (their format may change, or
//! they may be encrypted); an undecodable token gives the answer "unknown".

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::client::GraphClient;
use crate::error::GraphError;

/// Where an admin grants permissions.
pub const GRANT_ADVICE: &str = "grant admin consent to the app registration in the Entra admin center > App registrations > API permissions";

pub(crate) const USER_READ_WRITE_ALL: &str = "User.ReadWrite.All";
pub(crate) const DIRECTORY_READ_WRITE_ALL: &str = "Directory.ReadWrite.All";
pub(crate) const AUTH_METHODS: &str =
    "UserAuthenticationMethod.ReadWrite.All (or UserAuthMethod-Passkey.ReadWrite.All)";
pub(crate) const POLICY_READ: &str = "Policy.Read.AuthenticationMethod";
pub(crate) const POLICY_READ_WRITE: &str = "Policy.ReadWrite.AuthenticationMethod";

/// One permission keybridge needs, with the roles that satisfy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredPermission {
    /// The permission to grant.
    pub name: &'static str,
    /// Other roles that also satisfy the need.
    pub alternatives: &'static [&'static str],
    /// What keybridge uses it for.
    pub used_for: &'static str,
    /// Whether keybridge works without it (with a feature missing).
    pub optional: bool,
}

impl RequiredPermission {
    fn satisfied_by(&self, roles: &[String]) -> bool {
        roles
            .iter()
            .any(|r| r == self.name || self.alternatives.contains(&r.as_str()))
    }
}

impl fmt::Display for RequiredPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not granted", self.name)?;
        if !self.alternatives.is_empty() {
            write!(f, " (nor {})", self.alternatives.join(", "))?;
        }
        write!(f, ": {GRANT_ADVICE} (needed to {})", self.used_for)?;
        if self.optional {
            write!(f, "; optional")?;
        }
        Ok(())
    }
}

/// The application permissions keybridge asks for (entra.md §3.5).
pub const REQUIRED_PERMISSIONS: &[RequiredPermission] = &[
    RequiredPermission {
        name: USER_READ_WRITE_ALL,
        alternatives: &[],
        used_for: "read the directory's users",
        optional: false,
    },
    RequiredPermission {
        name: DIRECTORY_READ_WRITE_ALL,
        alternatives: &[],
        used_for: "create keybridge's groups and keep their members in step",
        optional: false,
    },
    RequiredPermission {
        name: "UserAuthenticationMethod.ReadWrite.All",
        alternatives: &["UserAuthMethod-Passkey.ReadWrite.All"],
        used_for: "register, list and delete users' passkeys",
        optional: false,
    },
    RequiredPermission {
        name: POLICY_READ,
        alternatives: &[POLICY_READ_WRITE],
        used_for: "read the FIDO2 policy and warn when it blocks provisioning",
        optional: true,
    },
];

/// The result of the self-test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionReport {
    /// The token's roles could be read.
    Known {
        /// The granted application permissions.
        granted: Vec<String>,
        /// Required or optional permissions not granted.
        missing: Vec<RequiredPermission>,
    },
    /// The token could not be decoded (it is opaque by contract): the permissions are unknown
    /// until a call fails with 403.
    Unknown,
}

impl PermissionReport {
    /// From the roles of a token.
    pub fn from_roles(roles: Vec<String>) -> Self {
        let missing = REQUIRED_PERMISSIONS
            .iter()
            .filter(|p| !p.satisfied_by(&roles))
            .copied()
            .collect();
        Self::Known {
            granted: roles,
            missing,
        }
    }

    /// Reads an access token's `roles` claim without verifying the token (see module docs).
    pub fn from_access_token(token: &str) -> Self {
        match token_roles(token) {
            Some(roles) => Self::from_roles(roles),
            None => Self::Unknown,
        }
    }

    /// Missing permissions keybridge cannot work without.
    pub fn missing_required(&self) -> Vec<RequiredPermission> {
        match self {
            Self::Known { missing, .. } => {
                missing.iter().filter(|p| !p.optional).copied().collect()
            }
            Self::Unknown => Vec::new(),
        }
    }

    /// One line per missing permission, saying how to fix it.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::Known { missing, .. } => missing.iter().map(ToString::to_string).collect(),
            Self::Unknown => vec![
                "the app's permissions are unknown (its access token could not be read); they are \
                 checked when keybridge first uses them"
                    .to_owned(),
            ],
        }
    }
}

/// The `roles` claim of a JWT, or `None` when the token is not a readable JWT. A readable
/// token without `roles` means no application permission is granted.
fn token_roles(token: &str) -> Option<Vec<String>> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None; // five parts: an encrypted token (JWE)
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let claims = claims.as_object()?;
    Some(match claims.get("roles") {
        None => Vec::new(),
        Some(roles) => roles
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    })
}

impl GraphClient {
    /// Gets a token and names every permission keybridge needs that it does not carry.
    /// Credential problems come back as [`GraphError::Unauthorized`] with what to fix.
    pub async fn check_permissions(&self) -> Result<PermissionReport, GraphError> {
        let token = self.access_token().await?;
        Ok(PermissionReport::from_access_token(token.secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#);
        format!(
            "{header}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn all_granted() {
        let report = PermissionReport::from_access_token(&token(serde_json::json!({"roles":[
            "User.ReadWrite.All","Directory.ReadWrite.All","UserAuthenticationMethod.ReadWrite.All",
            "Policy.Read.AuthenticationMethod"]})));
        assert!(
            matches!(&report, PermissionReport::Known { missing, .. } if missing.is_empty()),
            "{report:?}"
        );
        assert!(report.messages().is_empty());
    }

    #[test]
    fn every_missing_permission_is_named_with_the_fix() {
        let report = PermissionReport::from_access_token(&token(
            serde_json::json!({"roles":["User.ReadWrite.All"]}),
        ));
        let messages = report.messages();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(messages.iter().any(|m| m.starts_with(
            "UserAuthenticationMethod.ReadWrite.All is not granted (nor UserAuthMethod-Passkey.ReadWrite.All): grant admin consent to the app registration in the Entra admin center > App registrations > API permissions"
        )), "{messages:#?}");
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Directory.ReadWrite.All is not granted"))
        );
        assert_eq!(
            report.missing_required().len(),
            2,
            "the policy permission is optional"
        );
    }

    #[test]
    fn the_narrow_passkey_permission_is_accepted() {
        let report = PermissionReport::from_roles(vec![
            "User.ReadWrite.All".into(),
            "Directory.ReadWrite.All".into(),
            "UserAuthMethod-Passkey.ReadWrite.All".into(),
        ]);
        assert!(report.missing_required().is_empty(), "{report:?}");
    }

    #[test]
    fn no_roles_claim_means_nothing_granted() {
        let report = PermissionReport::from_access_token(&token(
            serde_json::json!({"aud":"https://graph.microsoft.com"}),
        ));
        assert_eq!(report.missing_required().len(), 3);
    }

    #[test]
    fn an_opaque_token_is_unknown() {
        for opaque in ["opaque-token", "a.b", "a.!!!.c", "a.b.c.d.e"] {
            assert_eq!(
                PermissionReport::from_access_token(opaque),
                PermissionReport::Unknown,
                "{opaque}"
            );
        }
        assert!(PermissionReport::Unknown.messages()[0].contains("unknown"));
    }
}
