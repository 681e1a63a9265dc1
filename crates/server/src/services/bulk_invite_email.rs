//! E-mailing the invites of a bulk invitation job, when SMTP is configured.
//!
//! Runs after the job has issued its invites, over the results that hold a link. Each e-mail
//! is claimed in the store (`sending`, committed) before the SMTP transaction starts and
//! marked `sent` or `failed` after it, so a job run again after a crash never sends one
//! invite twice: a claim left `sending` by a run that died is marked `uncertain` (the message
//! may or may not have left) and not sent again; the admin re-invites that user if the
//! e-mail did not arrive. A transient failure (the server asked to try later, or could not
//! be reached) releases the claim and fails the attempt, so the job queue retries with
//! backoff and sends only what is still unsent. A refusal (5xx) is final for that user and
//! recorded with the server's reason; the link stays in the job's links file.

use keybridge_store::{EmailDelivery, Integration, JobContext, JobError};

use crate::mail::Mailer;
use crate::services::invites;

const UNCERTAIN: &str = "the server stopped while this e-mail was being sent, so it may not have been delivered; it is not sent twice: invite the user again if the e-mail did not arrive";

/// Sends the e-mails the job has not sent yet. `Err(Retry)` when some could not be sent for
/// now.
pub(crate) async fn send_pending(
    ctx: &JobContext,
    mailer: &Mailer,
    integration: &Integration,
    actor: &str,
) -> Result<(), JobError> {
    let store = ctx.store();
    let job_id = ctx.job.id.as_str();
    let mut postponed: Option<(usize, String)> = None;
    for result in store.bulk_invites().list(job_id).await? {
        let (Some(link), Some(expires_at), Some(user_id)) =
            (&result.link, result.expires_at, &result.user_id)
        else {
            continue;
        };
        match result.email {
            Some(EmailDelivery::Sending) => {
                store
                    .bulk_invites()
                    .finish_email(
                        job_id,
                        &result.subject,
                        Some(EmailDelivery::Uncertain),
                        Some(UNCERTAIN),
                    )
                    .await?;
                continue;
            }
            Some(_) => continue,
            None => {}
        }
        if ctx.lease_lost() {
            return Err(JobError::Retry(
                "the job's lease was lost; the e-mails left are sent by the instance that took it over"
                    .to_owned(),
            ));
        }
        let user = store.users().get(user_id).await?;
        if !store
            .bulk_invites()
            .claim_email(job_id, &result.subject)
            .await?
        {
            continue;
        }
        let mail = invites::invitation(&user, integration, link.expose(), expires_at);
        let sent = mailer.send_invitation(&mail).await;
        let (state, error) = match &sent {
            Ok(()) => (Some(EmailDelivery::Sent), None),
            Err(e) if e.is_transient() => (None, Some(e.to_string())),
            Err(e) => (Some(EmailDelivery::Failed), Some(e.to_string())),
        };
        store
            .bulk_invites()
            .finish_email(job_id, &result.subject, state, error.as_deref())
            .await?;
        match sent {
            Ok(()) => {
                let event = invites::email_event(
                    actor,
                    &user,
                    result.invite_id.as_deref().unwrap_or_default(),
                )
                .request(None, Some(format!("job:{job_id}")));
                store.audit().append(event).await?;
            }
            Err(e) if e.is_transient() => {
                let (count, _) = postponed.get_or_insert((0, e.to_string()));
                *count += 1;
            }
            Err(_) => {}
        }
    }
    match postponed {
        None => Ok(()),
        Some((count, first)) => Err(JobError::Retry(format!(
            "{count} invitation e-mail(s) could not be sent yet and will be tried again: {first}"
        ))),
    }
}
