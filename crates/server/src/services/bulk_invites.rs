//! Bulk invitations (issue 6, lifecycle 5): the members of an Entra group or the users of a
//! CSV file, invited by a durable job with progress.
//!
//! A CSV file is checked whole before anything is queued ([`keybridge_core::InviteList`]): a
//! file with a bad line is refused with every bad line and why, and nothing is invited. A
//! group is read from Entra by the job (slow Graph work never runs inside a request).
//!
//! The job records one result per user (`invited`, or `failed` with the reason) in the
//! transaction that issues the invite, so a job killed and run again skips the users it
//! already handled: nobody is invited twice by one job. Users that keybridge's copy of the
//! directory does not hold, that are outside the restrict-domains setting, or that core's
//! rules do not let be invited (already paired, not found in Entra) fail with the reason.
//!
//! Invite tokens are stored hashed, so a link cannot be rebuilt later. The job keeps the
//! links it made sealed with the store's key ring (AES-256-GCM, bound to the job and the
//! user); an admin downloads them once the job is done (`GET /api/v1/jobs/{id}/invite-links`,
//! audited). With SMTP configured the job then e-mails them
//! ([`crate::services::bulk_invite_email`]).

use axum::http::StatusCode;
use keybridge_core::{InviteList, InviteListError, RestrictDomains, Upn};
use keybridge_store::{
    BulkInviteOutcome, Integration, JobContext, JobError, NewAuditEvent, NewBulkInviteResult,
    NewJob, SecretString, User,
};
use serde::Serialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult, FieldProblem};
use crate::jobs::{QUEUE, graph_failure, store_failure};
use crate::services::invites::{self, DEFAULT_INVITE_HOURS, MAX_INVITE_HOURS};
use crate::services::job_integration;

/// Kind of the bulk invitation job.
pub const BULK_INVITE: &str = "bulk_invite";

/// Who to invite.
#[derive(Debug, Clone)]
pub enum BulkSource {
    /// The members of an Entra group (object id).
    Group(String),
    /// The text of a CSV file.
    Csv(String),
}

/// The answer to a bulk invitation request.
#[derive(Debug, Serialize)]
pub struct BulkQueued {
    /// The job doing it; follow it at `/api/v1/jobs/{id}`.
    pub job_id: String,
    /// Users listed by the file (absent for a group, which the job reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
}

fn check_hours(hours: Option<u32>) -> ApiResult<u32> {
    match hours {
        None => Ok(DEFAULT_INVITE_HOURS),
        Some(h) if (1..=MAX_INVITE_HOURS).contains(&h) => Ok(h),
        Some(h) => Err(ApiError::invalid(
            "expires_in_hours",
            format!("{h} is outside 1..={MAX_INVITE_HOURS}"),
        )),
    }
}

fn restrict_of(integration: &Integration) -> Result<RestrictDomains, String> {
    RestrictDomains::parse(&integration.restrict_domains)
        .map_err(|e| format!("stored restrict domains are invalid: {e}"))
}

/// Checks the request and queues the job (202 with its id).
pub async fn start(
    app: &App,
    integration_id: &str,
    source: BulkSource,
    hours: Option<u32>,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<BulkQueued> {
    let hours = check_hours(hours)?;
    let integration = app.store().integrations().get(integration_id).await?;
    let (payload, users) = match &source {
        BulkSource::Group(group) => {
            let group = group.trim();
            if uuid::Uuid::parse_str(group).is_err() {
                return Err(ApiError::invalid(
                    "group",
                    format!("{group:?} is not an Entra group object id (a GUID)"),
                ));
            }
            (
                serde_json::json!({
                    "integration_id": integration.id,
                    "group_id": group.to_ascii_lowercase(),
                    "actor": actor,
                    "expires_in_hours": hours,
                }),
                None,
            )
        }
        BulkSource::Csv(text) => {
            let restrict = restrict_of(&integration).map_err(ApiError::internal)?;
            let list = InviteList::parse(text, &restrict).map_err(csv_error)?;
            let upns: Vec<String> = list.rows.iter().map(|r| r.upn.to_string()).collect();
            let lines: Vec<usize> = list.rows.iter().map(|r| r.line).collect();
            (
                serde_json::json!({
                    "integration_id": integration.id,
                    "upns": upns,
                    "lines": lines,
                    "actor": actor,
                    "expires_in_hours": hours,
                }),
                Some(list.rows.len()),
            )
        }
    };
    let mut tx = app.store().begin().await?;
    let job = tx
        .jobs()
        .enqueue(app.attempts(NewJob::new(QUEUE, BULK_INVITE, payload)))
        .await?;
    let job_id = job.id().to_owned();
    tx.audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "invites.bulk")
                    .target(format!("integration:{}", integration.id))
                    .details(serde_json::json!({
                        "job_id": job_id,
                        "source": match &source { BulkSource::Group(_) => "group", BulkSource::Csv(_) => "csv" },
                        "group_id": match &source { BulkSource::Group(g) => Some(g.trim()), BulkSource::Csv(_) => None },
                        "users": users,
                    })),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(BulkQueued { job_id, users })
}

/// A refused file as a 422 naming every bad line.
fn csv_error(error: InviteListError) -> ApiError {
    let details = match &error {
        InviteListError::BadRows(rows) => rows
            .iter()
            .map(|row| FieldProblem {
                field: format!("line {}", row.line),
                message: row.reason.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_csv",
        error.to_string(),
    )
    .with_field("csv")
    .with_details(details)
}

/// One user the job is to invite.
struct Target {
    /// The result's key: lowercased username, or the Entra object id.
    subject: String,
    /// The username as known.
    address: String,
    position: i64,
    lookup: Lookup,
}

enum Lookup {
    Upn(Upn),
    ObjectId(String),
    /// A group member that is not a user (a group, a device...).
    NotAUser(String),
}

async fn targets(
    app: &App,
    ctx: &JobContext,
    integration_id: &str,
) -> Result<Vec<Target>, JobError> {
    if let Ok(group) = crate::jobs::payload_str(ctx, "group_id") {
        let (_, client) = job_integration(app, ctx, integration_id).await?;
        let members = client
            .list_group_members(group)
            .map_err(graph_failure)?
            .collect_all()
            .await
            .map_err(graph_failure)?;
        return Ok(members
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let is_user = m
                    .odata_type
                    .as_deref()
                    .is_none_or(|t| t == "#microsoft.graph.user");
                let address = m
                    .user_principal_name
                    .clone()
                    .or_else(|| m.display_name.clone())
                    .unwrap_or_else(|| m.id.clone());
                Target {
                    subject: m.id.to_ascii_lowercase(),
                    address,
                    position: i64::try_from(i).unwrap_or(i64::MAX),
                    lookup: if is_user {
                        Lookup::ObjectId(m.id)
                    } else {
                        Lookup::NotAUser(m.odata_type.unwrap_or_default())
                    },
                }
            })
            .collect());
    }
    let upns = ctx
        .job
        .payload
        .get("upns")
        .and_then(|v| v.as_array())
        .ok_or_else(|| JobError::Permanent("the job names neither a group nor users".to_owned()))?;
    let lines = ctx.job.payload.get("lines").and_then(|v| v.as_array());
    let mut out = Vec::with_capacity(upns.len());
    for (i, value) in upns.iter().enumerate() {
        let text = value.as_str().unwrap_or_default();
        let upn = Upn::parse(text)
            .map_err(|e| JobError::Permanent(format!("the job holds a bad username: {e}")))?;
        let line = lines
            .and_then(|l| l.get(i))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_else(|| i64::try_from(i).unwrap_or(i64::MAX));
        out.push(Target {
            subject: upn.normalized(),
            address: upn.to_string(),
            position: line,
            lookup: Lookup::Upn(upn),
        });
    }
    Ok(out)
}

/// Why a user was not invited.
enum Skip {
    Failed(String),
}

async fn find_user(app: &App, integration_id: &str, lookup: &Lookup) -> Result<User, Skip> {
    let users = || app.store().users();
    let found = match lookup {
        Lookup::NotAUser(kind) => {
            return Err(Skip::Failed(format!(
                "this group member is not a user ({kind}): only users can be invited"
            )));
        }
        Lookup::ObjectId(id) => users().find_by_object_id(integration_id, id).await,
        Lookup::Upn(upn) => match users().find_by_upn(integration_id, &upn.normalized()).await {
            Ok(None) => users().find_by_upn(integration_id, &upn.to_string()).await,
            other => other,
        },
    };
    match found {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(Skip::Failed(
            "this user is not in keybridge's copy of the directory: check the address, or run a directory sync and try again".to_owned(),
        )),
        Err(e) => Err(Skip::Failed(e.to_string())),
    }
}

/// Runs one bulk invitation job (or the rest of it, after a crash).
pub async fn run(app: &App, ctx: &JobContext) -> Result<(), JobError> {
    let store = ctx.store();
    let integration_id = crate::jobs::integration_id(ctx)?;
    let integration = store
        .integrations()
        .get(&integration_id)
        .await
        .map_err(store_failure)?;
    let restrict = restrict_of(&integration).map_err(JobError::Permanent)?;
    let actor = crate::jobs::actor(ctx);
    let hours = ctx
        .job
        .payload
        .get("expires_in_hours")
        .and_then(serde_json::Value::as_u64)
        .and_then(|h| u32::try_from(h).ok())
        .unwrap_or(DEFAULT_INVITE_HOURS);
    let targets = targets(app, ctx, &integration.id).await?;

    // What an earlier run of this job already did stays done.
    let earlier = store.bulk_invites().list(&ctx.job.id).await?;
    let done: std::collections::HashSet<String> =
        earlier.iter().map(|r| r.subject.clone()).collect();
    let invited_before = earlier.iter().filter(|r| r.outcome == "invited").count();
    let total = i64::try_from(targets.len()).unwrap_or(i64::MAX);
    store
        .jobs()
        .set_progress(
            &ctx.job.id,
            ctx.owner(),
            i64::try_from(invited_before).unwrap_or(i64::MAX),
            i64::try_from(earlier.len() - invited_before).unwrap_or(i64::MAX),
            total,
        )
        .await?;

    for target in targets.iter().filter(|t| !done.contains(&t.subject)) {
        if ctx.lease_lost() {
            return Err(JobError::Retry(
                "the job's lease was lost; the rest is left to the instance that took it over"
                    .to_owned(),
            ));
        }
        match invite_one(app, ctx, &integration, &restrict, target, hours, &actor).await? {
            Some(true) => ctx.add_progress(1, 0).await?,
            Some(false) => ctx.add_progress(0, 1).await?,
            None => {}
        }
    }
    match app.mailer() {
        Some(mailer) => {
            crate::services::bulk_invite_email::send_pending(ctx, mailer, &integration, &actor)
                .await
        }
        None => Ok(()),
    }
}

fn result(ctx: &JobContext, target: &Target, user: Option<&User>) -> NewBulkInviteResult {
    NewBulkInviteResult {
        job_id: ctx.job.id.clone(),
        subject: target.subject.clone(),
        address: user.map_or_else(|| target.address.clone(), |u| u.upn.clone()),
        position: target.position,
        user_id: user.map(|u| u.id.clone()),
        invite_id: None,
        outcome: BulkInviteOutcome::Failed,
        reason: None,
        link: None,
        expires_at: None,
    }
}

/// Invites one target, recording the result with the invite: `Some(true)` when invited,
/// `Some(false)` when it failed, `None` when another run of the job recorded it first.
async fn invite_one(
    app: &App,
    ctx: &JobContext,
    integration: &Integration,
    restrict: &RestrictDomains,
    target: &Target,
    hours: u32,
    actor: &str,
) -> Result<Option<bool>, JobError> {
    let store = ctx.store();
    let failed = |user: Option<&User>, reason: String| {
        let mut r = result(ctx, target, user);
        r.reason = Some(reason);
        r
    };
    let user = match find_user(app, &integration.id, &target.lookup).await {
        Ok(user) => user,
        Err(Skip::Failed(reason)) => {
            let recorded = store.bulk_invites().record(&failed(None, reason)).await?;
            return Ok(recorded.then_some(false));
        }
    };
    // The group path reads usernames from Entra: check them against restrict-domains here
    // (a CSV file was checked whole before the job was queued).
    let refusal = match Upn::parse(&user.upn) {
        Ok(upn) => restrict.check(&upn).err().map(|e| e.to_string()),
        Err(e) => Some(format!(
            "the username {:?} cannot be invited: {e}",
            user.upn
        )),
    };
    let transition = match refusal {
        Some(reason) => Err(reason),
        None => invites::check_invitable(app, &user, integration)
            .await
            .map_err(|e| e.message().to_owned()),
    };
    let transition = match transition {
        Ok(t) => t,
        Err(reason) => {
            let recorded = store
                .bulk_invites()
                .record(&failed(Some(&user), reason))
                .await?;
            return Ok(recorded.then_some(false));
        }
    };
    let mut tx = store.begin().await?;
    let job_id = ctx.job.id.clone();
    let (invite, link) = invites::issue(app, &mut tx, &user, &transition, hours, actor, |e| {
        e.request(None, Some(format!("job:{job_id}")))
    })
    .await
    .map_err(|e| JobError::Retry(e.to_string()))?;
    let mut r = result(ctx, target, Some(&user));
    r.outcome = BulkInviteOutcome::Invited;
    r.invite_id = Some(invite.id.clone());
    r.link = Some(SecretString::new(link));
    r.expires_at = Some(invite.expires_at);
    if !tx.bulk_invites().record(&r).await? {
        // Another run of this job got there first: keep its invite, drop this one.
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(true))
}

/// One user's result as the API shows it (never the link).
#[derive(Debug, Serialize)]
pub struct BulkResultView {
    /// The username (or the Entra object id of a member keybridge does not know).
    pub address: String,
    /// CSV line, or position in the group's member list.
    pub position: i64,
    /// The keybridge user, when found.
    pub user_id: Option<String>,
    /// `invited` or `failed`.
    pub outcome: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// The invite issued.
    pub invite_id: Option<String>,
    /// When its link stops working (RFC 3339).
    pub expires_at: Option<String>,
    /// With SMTP: `sending`, `sent`, `failed` or `uncertain` (absent: not e-mailed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'static str>,
    /// Why the e-mail failed (or is uncertain, or waits for a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_error: Option<String>,
}

async fn bulk_job(app: &App, job_id: &str) -> ApiResult<keybridge_store::Job> {
    let job = app.store().jobs().get(job_id).await?;
    if job.kind != BULK_INVITE {
        return Err(ApiError::not_found(format!(
            "job {job_id} is a {} job, not a bulk invitation",
            job.kind
        )));
    }
    Ok(job)
}

/// The per-user results of a bulk invitation job so far, in input order.
pub async fn results(app: &App, job_id: &str) -> ApiResult<Vec<BulkResultView>> {
    bulk_job(app, job_id).await?;
    Ok(app
        .store()
        .bulk_invites()
        .list(job_id)
        .await?
        .into_iter()
        .map(|r| BulkResultView {
            address: r.address,
            position: r.position,
            user_id: r.user_id,
            outcome: r.outcome,
            reason: r.reason,
            invite_id: r.invite_id,
            expires_at: r.expires_at.map(keybridge_store::Timestamp::to_rfc3339),
            email: r.email.map(keybridge_store::EmailDelivery::as_str),
            email_error: r.email_error,
        })
        .collect())
}

/// Quotes a CSV field when it needs it, and defuses spreadsheet formulas.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// A link a bulk invitation job made (a secret: admins only, never logged).
pub struct InviteLink {
    /// The user's address.
    pub address: String,
    /// The Device Manager link.
    pub link: SecretString,
    /// When it stops working.
    pub expires_at: keybridge_store::Timestamp,
}

/// The links a bulk invitation job made, in input order, audited as `invites.bulk.links`
/// (the links are secrets: admins only, every read recorded).
pub async fn links(
    app: &App,
    job_id: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Vec<InviteLink>> {
    bulk_job(app, job_id).await?;
    let rows = app.store().bulk_invites().list(job_id).await?;
    let links: Vec<InviteLink> = rows
        .into_iter()
        .filter_map(|row| match (row.link, row.expires_at) {
            (Some(link), Some(expires_at)) => Some(InviteLink {
                address: row.address,
                link,
                expires_at,
            }),
            _ => None,
        })
        .collect();
    app.store()
        .audit()
        .append(
            meta.stamp(
                NewAuditEvent::new(actor, "invites.bulk.links")
                    .target(format!("job:{job_id}"))
                    .details(serde_json::json!({ "links": links.len() })),
            ),
        )
        .await?;
    Ok(links)
}

/// The links a bulk invitation job made, as CSV (`email,link,expires_at`), audited as
/// [`links`] is.
pub async fn links_csv(
    app: &App,
    job_id: &str,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<String> {
    let mut out = String::from("email,link,expires_at\r\n");
    for row in links(app, job_id, actor, meta).await? {
        out.push_str(&csv_field(&row.address));
        out.push(',');
        out.push_str(&csv_field(row.link.expose()));
        out.push(',');
        out.push_str(&row.expires_at.to_rfc3339());
        out.push_str("\r\n");
    }
    Ok(out)
}
