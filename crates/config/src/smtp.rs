//! `[smtp]`: optional e-mail delivery of invitations. Off unless `smtp.host` is set.
//!
//! The password never sits in the TOML file: it comes from `smtp.password_file` or the
//! `KEYBRIDGE_SMTP_PASSWORD` variable, and every `Debug` form redacts it. Plain SMTP
//! (`security = "none"`) is accepted for a loopback relay only, since it would send the
//! password and the invitation links in clear over the network.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[smtp]` as written.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// `smtp.host`.
    pub host: Option<String>,
    /// `smtp.port`.
    pub port: Option<u16>,
    /// `smtp.security`: starttls, tls or none.
    pub security: Option<String>,
    /// `smtp.username`.
    pub username: Option<String>,
    /// `smtp.password_file`.
    pub password_file: Option<PathBuf>,
    /// `KEYBRIDGE_SMTP_PASSWORD` (environment only: never in the file).
    #[serde(skip)]
    pub password: Option<String>,
    /// `smtp.from`.
    pub from: Option<String>,
    /// `smtp.reply_to`.
    pub reply_to: Option<String>,
    /// `smtp.ca_file`.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for RawSmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSmtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (default; port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only to a relay on the same machine (port 25).
    None,
}

impl SmtpSecurity {
    /// The usual port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// Where the SMTP password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SmtpPassword {
    /// Read from this file when the server starts (surrounding whitespace trimmed).
    File(PathBuf),
    /// Given by `KEYBRIDGE_SMTP_PASSWORD`.
    Inline(String),
}

impl fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpPassword::File(path) => f.debug_tuple("File").field(path).finish(),
            SmtpPassword::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// SMTP delivery of invitations, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// Login name, when the server wants one (with a password).
    pub username: Option<String>,
    /// The password for `username`.
    pub password: Option<SmtpPassword>,
    /// The sender: `address` or `Name <address>`.
    pub from: String,
    /// Where replies go: `address` or `Name <address>`.
    pub reply_to: Option<String>,
    /// Extra CA certificates (PEM) trusted for the SMTP server.
    pub ca_file: Option<PathBuf>,
}

/// Whether `host` names this machine (plain SMTP is allowed only there).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks `Name <local@domain>` or `local@domain`; the message says what is wrong.
pub fn check_mailbox(text: &str) -> Result<(), String> {
    let text = text.trim();
    let address = match text.split_once('<') {
        Some((name, rest)) => {
            let Some(address) = rest.strip_suffix('>') else {
                return Err(format!(
                    "is {text:?}: expected name@example.com or Name <name@example.com>"
                ));
            };
            if name.contains(['"', '>', '\r', '\n']) || name.chars().any(char::is_control) {
                return Err(format!(
                    "is {text:?}: the display name may not hold quotes, angle brackets or control characters"
                ));
            }
            address
        }
        None => text,
    };
    check_address(address).map_err(|why| format!("is {text:?}: {why}"))
}

fn check_address(address: &str) -> Result<(), String> {
    let bad = || "expected an e-mail address such as keybridge@example.com".to_string();
    let (local, domain) = address.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || local.contains(['@', '<', '>', '"', ',', ';', ' '])
        || local.chars().any(|c| c.is_control() || !c.is_ascii())
    {
        return Err(bad());
    }
    let labels_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if labels_ok { Ok(()) } else { Err(bad()) }
}

/// What [`RawSmtp::resolve`] found wrong: the key and the message.
pub type SmtpProblem = (&'static str, String);

impl RawSmtp {
    /// Whether any `[smtp]` key was given.
    fn any_set(&self) -> bool {
        self.host.is_some()
            || self.port.is_some()
            || self.security.is_some()
            || self.username.is_some()
            || self.password_file.is_some()
            || self.password.is_some()
            || self.from.is_some()
            || self.reply_to.is_some()
            || self.ca_file.is_some()
    }

    /// Checks the section: `Ok(None)` when SMTP is off, every problem otherwise.
    pub fn resolve(&self) -> Result<Option<SmtpConfig>, Vec<SmtpProblem>> {
        let mut problems: Vec<SmtpProblem> = Vec::new();
        let host = match self.host.as_deref().map(str::trim) {
            None if !self.any_set() => return Ok(None),
            None | Some("") => {
                return Err(vec![(
                    "smtp.host",
                    "is missing: give the SMTP server's host name to turn e-mail delivery on, or remove the [smtp] settings".into(),
                )]);
            }
            Some(host) => host.to_string(),
        };
        if host.contains(['/', ':', ' ', '@']) && !host.starts_with('[') {
            problems.push((
                "smtp.host",
                format!(
                    "is {host:?}: expected a host name or address only (the port goes in smtp.port)"
                ),
            ));
        }
        let security = match self.security.as_deref().map(str::trim) {
            None | Some("starttls") => SmtpSecurity::StartTls,
            Some("tls") => SmtpSecurity::Tls,
            Some("none") => SmtpSecurity::None,
            Some(other) => {
                problems.push((
                    "smtp.security",
                    format!("is {other:?}: expected starttls, tls or none"),
                ));
                SmtpSecurity::StartTls
            }
        };
        if security == SmtpSecurity::None && !is_loopback_host(&host) {
            problems.push((
                "smtp.security",
                format!(
                    "is \"none\" for the host {host:?}: plain SMTP would send the password and the invitation links in clear; use starttls or tls (none is allowed only for a relay on localhost)"
                ),
            ));
        }
        let port = self.port.unwrap_or_else(|| security.default_port());
        if port == 0 {
            problems.push(("smtp.port", "is 0: expected a port from 1 to 65535".into()));
        }
        let password = match (&self.password_file, &self.password) {
            (Some(_), Some(_)) => {
                problems.push((
                    "smtp.password_file",
                    "and KEYBRIDGE_SMTP_PASSWORD are both set: keep one of them".into(),
                ));
                None
            }
            (Some(file), None) => Some(SmtpPassword::File(file.clone())),
            (None, Some(p)) if p.is_empty() => {
                problems.push((
                    "smtp.password",
                    "is empty: unset KEYBRIDGE_SMTP_PASSWORD or give the password".into(),
                ));
                None
            }
            (None, Some(p)) => Some(SmtpPassword::Inline(p.clone())),
            (None, None) => None,
        };
        let username = self.username.clone().filter(|u| !u.trim().is_empty());
        match (&username, password.is_some()) {
            (Some(_), false)
                if problems
                    .iter()
                    .all(|(k, _)| !k.starts_with("smtp.password")) =>
            {
                problems.push((
                    "smtp.username",
                    "is set without a password: give smtp.password_file or KEYBRIDGE_SMTP_PASSWORD"
                        .into(),
                ));
            }
            (None, true) => problems.push((
                "smtp.username",
                "is missing: a password is set, so give the login name too".into(),
            )),
            _ => {}
        }
        let from = match self.from.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push((
                    "smtp.from",
                    "is missing: give the sender address, e.g. keybridge <keybridge@example.com>"
                        .into(),
                ));
                String::new()
            }
            Some(from) => {
                if let Err(message) = check_mailbox(from) {
                    problems.push(("smtp.from", message));
                }
                from.to_string()
            }
        };
        let reply_to = self
            .reply_to
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if let Some(Err(message)) = reply_to.map(check_mailbox) {
            problems.push(("smtp.reply_to", message));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(SmtpConfig {
            host,
            port,
            security,
            username,
            password,
            from,
            reply_to: reply_to.map(str::to_string),
            ca_file: self.ca_file.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.0.0.53",
            "::1",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "mail.example.com",
            "10.0.0.1",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn mailboxes_are_checked() {
        for good in [
            "keybridge@example.com",
            "keybridge <keybridge@example.com>",
            "IT Help Desk <it-help.desk+kb@mail.example.co.uk>",
        ] {
            assert_eq!(check_mailbox(good), Ok(()), "{good}");
        }
        for bad in [
            "keybridge",
            "@example.com",
            "a@",
            "a@-x.com",
            "a b@example.com",
            "keybridge <keybridge@example.com",
            "\"x\" <a@example.com>",
            "a@exa_mple.com",
        ] {
            assert!(check_mailbox(bad).is_err(), "{bad}");
        }
    }
}
