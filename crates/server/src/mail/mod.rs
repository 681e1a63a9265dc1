//! Invitation e-mails over SMTP (`[smtp]` in the configuration; off by default).
//!
//! [`Mailer`] holds one SMTP transport (rustls, STARTTLS required unless configured `tls` or
//! a loopback `none`) and a small semaphore so that a bulk run never opens more than
//! [`MAX_CONCURRENT_SENDS`] sessions to the SMTP server at once. A failed send says whether
//! trying later can help ([`SendError::is_transient`]): 4xx replies and network failures are
//! transient, 5xx replies (a refused recipient, a refused sender) are not.
//!
//! The invitation link is a secret: it goes into the message and nowhere else (not into
//! logs, errors or the audit).

mod invitation;

use std::sync::Arc;
use std::time::Duration;

use keybridge_config::{SmtpConfig, SmtpPassword, SmtpSecurity};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

pub use invitation::Invitation;

/// SMTP sessions open at once, per server instance.
pub const MAX_CONCURRENT_SENDS: usize = 2;

/// How long one SMTP command may take before the send counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The SMTP settings could not be put to use (checked when the server starts).
#[derive(Debug, thiserror::Error)]
pub enum MailSetupError {
    /// A file named in `[smtp]` could not be read.
    #[error("cannot read {key} {path}: {source}")]
    Read {
        /// The setting.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value was refused.
    #[error("{key}: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A send that did not go through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The SMTP server refused for good (5xx): sending again will not help.
    #[error("{0}")]
    Refused(String),
    /// The SMTP server could not be reached or asked to try later (4xx, network, TLS).
    #[error("{0}")]
    Unavailable(String),
    /// The recipient's address cannot be used.
    #[error("{0}")]
    BadRecipient(String),
}

impl SendError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Unavailable(_))
    }
}

/// Sends invitation e-mails.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    server: String,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

fn mailbox(key: &'static str, text: &str) -> Result<Mailbox, MailSetupError> {
    text.parse().map_err(|e| MailSetupError::Invalid {
        key,
        message: format!("{text:?} is not a usable address ({e})"),
    })
}

fn read(key: &'static str, path: &std::path::Path) -> Result<Vec<u8>, MailSetupError> {
    std::fs::read(path).map_err(|source| MailSetupError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

impl Mailer {
    /// A mailer for `config` (reads the password and CA files now).
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailSetupError> {
        let mut tls = TlsParameters::builder(config.host.clone());
        if let Some(ca_file) = &config.ca_file {
            let pem = read("smtp.ca_file", ca_file)?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| MailSetupError::Invalid {
                key: "smtp.ca_file",
                message: format!(
                    "{} holds no usable PEM certificate ({e})",
                    ca_file.display()
                ),
            })?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls.build_rustls().map_err(|e| MailSetupError::Invalid {
            key: "smtp.security",
            message: format!("TLS cannot be set up ({e})"),
        })?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(SMTP_TIMEOUT))
            .tls(match config.security {
                SmtpSecurity::StartTls => Tls::Required(tls),
                SmtpSecurity::Tls => Tls::Wrapper(tls),
                SmtpSecurity::None => Tls::None,
            });
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            let password = match password {
                SmtpPassword::Inline(p) => p.clone(),
                SmtpPassword::File(path) => {
                    String::from_utf8_lossy(&read("smtp.password_file", path)?)
                        .trim()
                        .to_owned()
                }
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: mailbox("smtp.from", &config.from)?,
            reply_to: config
                .reply_to
                .as_deref()
                .map(|r| mailbox("smtp.reply_to", r))
                .transpose()?,
            server: format!("{}:{}", config.host, config.port),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_SENDS)),
        })
    }

    /// Sends one invitation; waits for a free SMTP session first.
    pub async fn send_invitation(&self, invitation: &Invitation<'_>) -> Result<(), SendError> {
        let to: Mailbox = invitation.to.parse().map_err(|_| {
            SendError::BadRecipient(format!(
                "{:?} is not an e-mail address the invitation can be sent to",
                invitation.to
            ))
        })?;
        let message = invitation
            .message(self.from.clone(), self.reply_to.clone(), to)
            .map_err(|e| SendError::BadRecipient(format!("the e-mail cannot be built: {e}")))?;
        let _permit = self.permits.acquire().await.map_err(|_| {
            SendError::Unavailable("the server is shutting down; the e-mail was not sent".into())
        })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify(invitation.to, &e)),
        }
    }

    fn classify(&self, to: &str, error: &lettre::transport::smtp::Error) -> SendError {
        let server = &self.server;
        if error.is_permanent() {
            SendError::Refused(format!(
                "the SMTP server {server} refused the e-mail to {to}: {error}"
            ))
        } else if error.is_transient() {
            SendError::Unavailable(format!(
                "the SMTP server {server} asked to try the e-mail to {to} later: {error}"
            ))
        } else {
            SendError::Unavailable(format!(
                "the e-mail to {to} could not be sent: the SMTP server {server} is unreachable or failed ({error})"
            ))
        }
    }
}
