//! The client's origin check: may `origin` act for relying party `rp_id`?
//!
//! As a browser does (WebAuthn L3 §5.1.3 step 8, §5.1.4.1 step 7): the origin must be https
//! (http only for `localhost`), and the relying party id must be the origin's host or a
//! registrable suffix of it. keybridge cannot consult the Public Suffix List offline, so it
//! only refuses rp ids without a dot (other than `localhost`). An [`OriginPolicy`] may also
//! list *related origins* (§5.11): origins a relying party publishes at
//! `https://{rp id}/.well-known/webauthn`.

use url::{Host, Url};

use crate::error::AuthenticatorError;

/// Microsoft's published related origins for `login.microsoft.com`
/// (`https://login.microsoft.com/.well-known/webauthn`, see `reference/entra.md` §7).
pub const MICROSOFT_RELATED_ORIGINS: &[&str] = &[
    "https://login.microsoftonline.com",
    "https://login.live.com",
];

/// The rp id Entra uses for every passkey.
pub const MICROSOFT_RP_ID: &str = "login.microsoft.com";

/// An origin and rp id that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOrigin {
    /// The origin in its serialised form (`https://host[:port]`), written into clientDataJSON.
    pub origin: String,
    /// The relying party id (lower case).
    pub rp_id: String,
}

/// Which origins may act for which relying party ids.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    related: Vec<(String, String)>,
}

impl OriginPolicy {
    /// Only the origin's own host and its parent domains.
    pub fn strict() -> Self {
        Self::default()
    }

    /// [`OriginPolicy::strict`] plus Microsoft's published related origins for
    /// `login.microsoft.com` (the browser sign-in origins of Entra).
    pub fn with_microsoft_related_origins() -> Self {
        MICROSOFT_RELATED_ORIGINS
            .iter()
            .fold(Self::strict(), |policy, origin| {
                policy.with_related_origin(MICROSOFT_RP_ID, origin)
            })
    }

    /// Allows `origin` to act for `rp_id` (a relying party's related origin).
    pub fn with_related_origin(mut self, rp_id: &str, origin: &str) -> Self {
        self.related.push((
            rp_id.to_ascii_lowercase(),
            origin.trim_end_matches('/').to_owned(),
        ));
        self
    }

    /// Checks `origin` against `rp_id`; without an rp id the origin's host is the rp id.
    pub fn check(
        &self,
        origin: &str,
        rp_id: Option<&str>,
    ) -> Result<CheckedOrigin, AuthenticatorError> {
        let refuse = |reason: &str| AuthenticatorError::InvalidOrigin {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(origin).map_err(|e| refuse(&format!("not a URL ({e})")))?;
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(refuse(
                    "an IP address cannot be a WebAuthn origin; use a host name",
                ));
            }
            None => return Err(refuse("it has no host")),
        };
        let is_localhost = host == "localhost" || host.ends_with(".localhost");
        match url.scheme() {
            "https" => {}
            "http" if is_localhost => {}
            _ => {
                return Err(refuse(
                    "WebAuthn needs an https origin (http only for localhost)",
                ));
            }
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(refuse(
                "an origin is scheme://host[:port] only, without user, path, query or fragment",
            ));
        }
        let serialised = url.origin().ascii_serialization();

        let rp_id = match rp_id {
            None => host.clone(),
            Some(rp_id) => {
                let rp_id = rp_id.trim().to_ascii_lowercase();
                if rp_id.is_empty()
                    || rp_id.contains(['/', ':', '@'])
                    || rp_id.starts_with('.')
                    || rp_id.ends_with('.')
                {
                    return Err(AuthenticatorError::InvalidOptions {
                        reason: format!("the rp id {rp_id:?} is not a domain name"),
                    });
                }
                rp_id
            }
        };
        if rp_id != "localhost" && !rp_id.contains('.') {
            return Err(AuthenticatorError::RpIdMismatch {
                origin: serialised,
                rp_id,
            });
        }
        let own = host == rp_id || host.ends_with(&format!(".{rp_id}"));
        let related = self
            .related
            .iter()
            .any(|(id, allowed)| *id == rp_id && *allowed == serialised);
        if own || related {
            Ok(CheckedOrigin {
                origin: serialised,
                rp_id,
            })
        } else {
            Err(AuthenticatorError::RpIdMismatch {
                origin: serialised,
                rp_id,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(origin: &str, rp_id: Option<&str>) -> CheckedOrigin {
        OriginPolicy::strict()
            .check(origin, rp_id)
            .expect("allowed")
    }

    #[test]
    fn own_host_and_parent_domains_pass() {
        assert_eq!(
            ok("https://login.microsoft.com", Some("login.microsoft.com")),
            CheckedOrigin {
                origin: "https://login.microsoft.com".into(),
                rp_id: "login.microsoft.com".into()
            }
        );
        assert_eq!(
            ok("https://a.b.example.com/", Some("example.com")).rp_id,
            "example.com"
        );
        assert_eq!(
            ok("https://Example.COM:8443", None).origin,
            "https://example.com:8443"
        );
        assert_eq!(
            ok("http://localhost:8080", Some("localhost")).rp_id,
            "localhost"
        );
    }

    #[test]
    fn foreign_rp_is_refused() {
        for (origin, rp) in [
            ("https://evil.example", "login.microsoft.com"),
            ("https://notmicrosoft.com", "microsoft.com"),
            ("https://microsoft.com", "login.microsoft.com"),
            ("https://login.microsoft.com", "com"),
        ] {
            assert!(
                matches!(
                    OriginPolicy::strict().check(origin, Some(rp)),
                    Err(AuthenticatorError::RpIdMismatch { .. })
                ),
                "{origin} {rp}"
            );
        }
    }

    #[test]
    fn bad_origins_are_refused() {
        for origin in [
            "http://login.microsoft.com",
            "https://127.0.0.1",
            "https://login.microsoft.com/path",
            "https://user@login.microsoft.com",
            "login.microsoft.com",
            "ftp://login.microsoft.com",
        ] {
            assert!(
                matches!(
                    OriginPolicy::strict().check(origin, Some("login.microsoft.com")),
                    Err(AuthenticatorError::InvalidOrigin { .. })
                ),
                "{origin}"
            );
        }
    }

    #[test]
    fn related_origins_only_when_listed() {
        let origin = "https://login.microsoftonline.com";
        assert!(
            OriginPolicy::strict()
                .check(origin, Some(MICROSOFT_RP_ID))
                .is_err()
        );
        let checked = OriginPolicy::with_microsoft_related_origins()
            .check(origin, Some(MICROSOFT_RP_ID))
            .expect("related origin");
        assert_eq!(checked.rp_id, MICROSOFT_RP_ID);
        assert!(
            OriginPolicy::with_microsoft_related_origins()
                .check("https://evil.example", Some(MICROSOFT_RP_ID))
                .is_err()
        );
    }
}
