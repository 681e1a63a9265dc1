//! Per-user results of bulk invitation jobs (`bulk_invite_results` table).
//!
//! A result is written in the same transaction as the invite it records, so a job that is
//! killed and run again sees which users it already handled and invites each one once. The
//! link of an issued invite is sealed with the store's key ring, bound to the job and the
//! user (`bulk_invite_results.link_enc` of `<job id>/<subject>`): `invites` keeps only the
//! token's hash, so this is the only place the link can be read back from.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::Result;
use crate::rows::{int, opt_text, opt_ts, text, ts};
use crate::secrets::{SecretPlace, SecretString, composite_row};
use crate::timestamp::Timestamp;

const TABLE: &str = "bulk_invite_results";
const LINK_COLUMN: &str = "link_enc";

/// What a bulk job did for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkInviteOutcome {
    /// An invite was issued.
    Invited,
    /// The user was not invited; the reason says why.
    Failed,
}

impl BulkInviteOutcome {
    /// `invited` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkInviteOutcome::Invited => "invited",
            BulkInviteOutcome::Failed => "failed",
        }
    }
}

/// A result to record.
#[derive(Debug, Clone)]
pub struct NewBulkInviteResult {
    /// The job.
    pub job_id: String,
    /// Who it is about: the lowercased username of a CSV line, or the Entra object id of a
    /// group member.
    pub subject: String,
    /// The username as known (CSV line or Entra), for the links file.
    pub address: String,
    /// Order in the job's input (line or member index).
    pub position: i64,
    /// The keybridge user, when found.
    pub user_id: Option<String>,
    /// The issued invite.
    pub invite_id: Option<String>,
    /// Invited or failed.
    pub outcome: BulkInviteOutcome,
    /// Why it failed.
    pub reason: Option<String>,
    /// The link (sealed before it is written).
    pub link: Option<SecretString>,
    /// When the link stops working.
    pub expires_at: Option<Timestamp>,
}

/// A recorded result (the link opened).
#[derive(Debug, Clone)]
pub struct BulkInviteResult {
    /// The job.
    pub job_id: String,
    /// See [`NewBulkInviteResult::subject`].
    pub subject: String,
    /// The username as known.
    pub address: String,
    /// Order in the job's input.
    pub position: i64,
    /// The keybridge user, when found.
    pub user_id: Option<String>,
    /// The issued invite.
    pub invite_id: Option<String>,
    /// `invited` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// The link, when an invite was issued.
    pub link: Option<SecretString>,
    /// When the link stops working.
    pub expires_at: Option<Timestamp>,
    /// E-mail delivery of the link, when SMTP is configured.
    pub email: Option<EmailDelivery>,
    /// Why the e-mail failed, or was left uncertain.
    pub email_error: Option<String>,
    /// Recorded.
    pub created_at: Timestamp,
}

/// Where the e-mail of a bulk invite stands (`bulk_invite_results.email`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailDelivery {
    /// Recorded before the SMTP transaction started, not yet confirmed.
    Sending,
    /// The SMTP server accepted it.
    Sent,
    /// The SMTP server refused it for good.
    Failed,
    /// The sender stopped while sending: it is not sent again.
    Uncertain,
}

impl EmailDelivery {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailDelivery::Sending => "sending",
            EmailDelivery::Sent => "sent",
            EmailDelivery::Failed => "failed",
            EmailDelivery::Uncertain => "uncertain",
        }
    }

    fn parse(text: &str) -> Result<EmailDelivery> {
        Ok(match text {
            "sending" => EmailDelivery::Sending,
            "sent" => EmailDelivery::Sent,
            "failed" => EmailDelivery::Failed,
            "uncertain" => EmailDelivery::Uncertain,
            other => return Err(crate::rows::corrupt(TABLE, "email", other)),
        })
    }
}

/// Repository for bulk invitation results.
pub struct BulkInvites<'a> {
    pub(crate) db: Db<'a>,
}

fn place(row: &str) -> SecretPlace<'_> {
    SecretPlace {
        table: TABLE,
        column: LINK_COLUMN,
        row,
    }
}

impl BulkInvites<'_> {
    /// Records a result. Returns `false` when the job already has one for this subject (it
    /// is then left as it was).
    pub async fn record(&mut self, result: &NewBulkInviteResult) -> Result<bool> {
        let row = composite_row(&result.job_id, &result.subject);
        let sealed = result
            .link
            .as_ref()
            .map(|link| self.db.keyring().seal_str(place(&row), link));
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "INSERT INTO bulk_invite_results (job_id, subject, address, position, user_id, invite_id, \
             outcome, reason, link_enc, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (job_id, subject) DO NOTHING",
        )
        .bind(&result.job_id)
        .bind(&result.subject)
        .bind(&result.address)
        .bind(result.position)
        .bind(result.user_id.as_deref())
        .bind(result.invite_id.as_deref())
        .bind(result.outcome.as_str())
        .bind(result.reason.as_deref())
        .bind(sealed)
        .bind(result.expires_at.map(Timestamp::unix_millis))
        .bind(Timestamp::now().unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The subjects the job already has a result for.
    pub async fn subjects(&mut self, job_id: &str) -> Result<HashSet<String>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query("SELECT subject FROM bulk_invite_results WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(|r| text(r, "subject")).collect()
    }

    /// Claims the e-mail of one result for sending: records `sending` (committed before any
    /// SMTP traffic) when nothing was recorded yet. `false` when it was already claimed, so
    /// a job run again after a crash never sends one invite twice.
    pub async fn claim_email(&mut self, job_id: &str, subject: &str) -> Result<bool> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE bulk_invite_results SET email = 'sending', email_error = NULL \
             WHERE job_id = $1 AND subject = $2 AND email IS NULL AND link_enc IS NOT NULL",
        )
        .bind(job_id)
        .bind(subject)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records how the e-mail of one result ended; `None` releases the claim (the server
    /// refused it for now, so a later run of the job sends it). `error` says why.
    pub async fn finish_email(
        &mut self,
        job_id: &str,
        subject: &str,
        state: Option<EmailDelivery>,
        error: Option<&str>,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "UPDATE bulk_invite_results SET email = $1, email_error = $2 \
             WHERE job_id = $3 AND subject = $4",
        )
        .bind(state.map(EmailDelivery::as_str))
        .bind(error)
        .bind(job_id)
        .bind(subject)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The job's results in input order, links opened.
    pub async fn list(&mut self, job_id: &str) -> Result<Vec<BulkInviteResult>> {
        let rows = {
            let mut conn = self.db.conn().await?;
            sqlx::query(
                "SELECT job_id, subject, address, position, user_id, invite_id, outcome, reason, link_enc, \
                 expires_at, email, email_error, created_at FROM bulk_invite_results WHERE job_id = $1 \
                 ORDER BY position, subject",
            )
            .bind(job_id)
            .fetch_all(&mut *conn)
            .await?
        };
        rows.iter().map(|row| self.decode(row)).collect()
    }

    fn decode(&self, row: &AnyRow) -> Result<BulkInviteResult> {
        let job_id = text(row, "job_id")?;
        let subject = text(row, "subject")?;
        let sealed: Option<Vec<u8>> = row.try_get("link_enc")?;
        let link = match sealed {
            Some(sealed) => Some(
                self.db
                    .keyring()
                    .open_str(place(&composite_row(&job_id, &subject)), &sealed)?,
            ),
            None => None,
        };
        Ok(BulkInviteResult {
            address: text(row, "address")?,
            position: int(row, "position")?,
            user_id: opt_text(row, "user_id")?,
            invite_id: opt_text(row, "invite_id")?,
            outcome: text(row, "outcome")?,
            reason: opt_text(row, "reason")?,
            link,
            expires_at: opt_ts(row, "expires_at")?,
            email: opt_text(row, "email")?
                .as_deref()
                .map(EmailDelivery::parse)
                .transpose()?,
            email_error: opt_text(row, "email_error")?,
            created_at: ts(row, "created_at")?,
            job_id,
            subject,
        })
    }
}
