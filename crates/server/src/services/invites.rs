//! Inviting one user (issue 6, lifecycle 5): a single-use link that expires, checked against
//! the user's Entra status (core's transition rules) and the integration's restrict-domains
//! setting. A new invitation replaces an open one. Without SMTP the link is shown to the
//! admin, who passes it on; with SMTP ([`invite_and_deliver`]) it is e-mailed to the user
//! and the answer says to whom, never the link.

use std::time::Duration;

use axum::http::StatusCode;
use keybridge_core::{Command, RestrictDomains, Transition, TransitionError, Upn, apply};
use keybridge_store::{Integration, Invite, NewAuditEvent, StoreTx, Timestamp, User};
use serde::Serialize;

use crate::app::App;
use crate::auth::RequestMeta;
use crate::error::{ApiError, ApiResult};
use crate::jobs;
use crate::services::facts::{has_open_invite, user_facts};

/// How long an invitation link works by default.
pub const DEFAULT_INVITE_HOURS: u32 = 24;
/// The longest an invitation link may work.
pub const MAX_INVITE_HOURS: u32 = 24 * 30;

/// Where an invitation link points: the Device Manager page, served by the console.
pub const INVITE_PATH: &str = "/invite/";

/// An issued invitation.
#[derive(Debug, Serialize)]
pub struct InviteView {
    /// Invitation id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// When the link stops working (RFC 3339).
    pub expires_at: String,
}

/// The answer to an invitation.
#[derive(Debug, Serialize)]
pub struct Invited {
    /// The invitation.
    pub invite: InviteView,
    /// The single-use link to the Device Manager page; shown only now.
    pub link: String,
    /// `shown`: pass the link on to the user (no SMTP delivery is configured).
    pub delivery: &'static str,
}

fn transition_error(error: TransitionError) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_allowed", error.to_string()).with_field("user")
}

/// Invites one user.
pub async fn invite_user(
    app: &App,
    user_id: &str,
    hours: Option<u32>,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Invited> {
    let issued = invite_one(app, user_id, hours, actor, meta).await?;
    Ok(issued.invited)
}

/// An invitation issued by [`invite_one`], with what its e-mail needs.
struct Issued {
    invited: Invited,
    user: User,
    integration: Integration,
    expires_at: Timestamp,
}

async fn invite_one(
    app: &App,
    user_id: &str,
    hours: Option<u32>,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Issued> {
    let hours = match hours {
        None => DEFAULT_INVITE_HOURS,
        Some(h) if (1..=MAX_INVITE_HOURS).contains(&h) => h,
        Some(h) => {
            return Err(ApiError::invalid(
                "expires_in_hours",
                format!("{h} is outside 1..={MAX_INVITE_HOURS}"),
            ));
        }
    };
    let store = app.store();
    let user = store.users().get(user_id).await?;
    let integration = store.integrations().get(&user.integration_id).await?;
    let transition = check_invitable(app, &user, &integration).await?;
    let mut tx = store.begin().await?;
    let (invite, link) = issue(app, &mut tx, &user, &transition, hours, actor, |e| {
        meta.stamp(e)
    })
    .await?;
    tx.commit().await?;
    Ok(Issued {
        expires_at: invite.expires_at,
        invited: Invited {
            invite: InviteView {
                id: invite.id,
                user_id: invite.user_id,
                expires_at: invite.expires_at.to_rfc3339(),
            },
            link,
            delivery: "shown",
        },
        user,
        integration,
    })
}

/// The answer to an invitation that is e-mailed when SMTP is configured.
#[derive(Debug, Serialize)]
pub struct Delivered {
    /// The invitation.
    pub invite: InviteView,
    /// The single-use link, only when it was not e-mailed (`delivery` = `shown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `shown` (pass the link on) or `emailed`.
    pub delivery: &'static str,
    /// The address the invitation was e-mailed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to: Option<String>,
}

/// The address an invitation to `user` is e-mailed to: the mail attribute, else the
/// username (user principal names are usually routable addresses).
pub fn recipient(user: &User) -> &str {
    user.email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .unwrap_or(&user.upn)
}

/// The e-mail for an issued invite.
pub(crate) fn invitation<'a>(
    user: &'a User,
    integration: &'a Integration,
    link: &'a str,
    expires_at: Timestamp,
) -> crate::mail::Invitation<'a> {
    crate::mail::Invitation {
        to: recipient(user),
        display_name: &user.display_name,
        organisation: &integration.name,
        link,
        expires_at,
    }
}

/// Audits one e-mailed invitation (the address, never the link).
pub(crate) fn email_event(actor: &str, user: &User, invite_id: &str) -> NewAuditEvent {
    NewAuditEvent::new(actor, "user.invite.email")
        .target(format!("user:{}", user.id))
        .details(serde_json::json!({ "invite_id": invite_id, "to": recipient(user) }))
}

/// Pauses before trying a single invitation's e-mail again after a transient failure (the relay
/// asked to try later, or could not be reached): a greylisting or restarting relay is usually
/// back within seconds, and the admin is waiting for the answer.
const EMAIL_RETRY_PAUSES: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(3),
];

/// Invites one user and, when SMTP is configured, e-mails the link instead of showing it.
/// A transient failure is tried again after each of `EMAIL_RETRY_PAUSES`; a refused or still
/// failing e-mail is a 502 naming the reason; the invitation stays open, and inviting the user
/// again sends a new one.
pub async fn invite_and_deliver(
    app: &App,
    user_id: &str,
    hours: Option<u32>,
    actor: &str,
    meta: &RequestMeta,
) -> ApiResult<Delivered> {
    let Issued {
        invited,
        user,
        integration,
        expires_at,
    } = invite_one(app, user_id, hours, actor, meta).await?;
    let Some(mailer) = app.mailer() else {
        return Ok(Delivered {
            invite: invited.invite,
            link: Some(invited.link),
            delivery: "shown",
            sent_to: None,
        });
    };
    let store = app.store();
    let mail = invitation(&user, &integration, &invited.link, expires_at);
    let mut pauses = EMAIL_RETRY_PAUSES.iter();
    let sent = loop {
        match mailer.send_invitation(&mail).await {
            Err(error) if error.is_transient() => match pauses.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => break Err(error),
            },
            other => break other,
        }
    };
    if let Err(error) = sent {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "email_failed",
            format!(
                "{error}. The invitation was created but not delivered: invite the user again to send a new one"
            ),
        ));
    }
    store
        .audit()
        .append(meta.stamp(email_event(actor, &user, &invited.invite.id)))
        .await?;
    Ok(Delivered {
        invite: invited.invite,
        link: None,
        delivery: "emailed",
        sent_to: Some(recipient(&user).to_owned()),
    })
}

/// Whether `user` may be invited now: a valid username inside the integration's
/// restrict-domains setting, and core's transition rules. The answer is the transition.
pub(crate) async fn check_invitable(
    app: &App,
    user: &User,
    integration: &Integration,
) -> ApiResult<Transition> {
    let restrict = RestrictDomains::parse(&integration.restrict_domains)
        .map_err(|e| ApiError::internal(format!("stored restrict domains are invalid: {e}")))?;
    let upn = Upn::parse(&user.upn).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_allowed",
            format!("user: the username {:?} cannot be invited: {e}", user.upn),
        )
        .with_field("user")
    })?;
    restrict.check(&upn).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "domain_not_allowed",
            e.to_string(),
        )
        .with_field("user")
    })?;
    let invited = has_open_invite(app.store(), &user.id, Timestamp::now()).await?;
    let facts = user_facts(user, invited).ok_or_else(|| {
        ApiError::internal(format!("user {} has inconsistent stored facts", user.id))
    })?;
    apply(&facts, Command::Invite).map_err(transition_error)
}

/// Issues the invitation inside `tx`: revokes the user's open one, creates the new one,
/// audits it (`stamp` adds the request or job) and queues the group step when the
/// transition moves the user between groups. Returns the invite and its link.
pub(crate) async fn issue(
    app: &App,
    tx: &mut StoreTx,
    user: &User,
    transition: &Transition,
    hours: u32,
    actor: &str,
    stamp: impl FnOnce(NewAuditEvent) -> NewAuditEvent,
) -> ApiResult<(Invite, String)> {
    let now = Timestamp::now();
    for open in tx.invites().list_for_user(&user.id).await? {
        if open.used_at.is_none() && open.revoked_at.is_none() && open.expires_at > now {
            tx.invites().revoke(&open.id, now).await?;
        }
    }
    let (invite, token) = tx
        .invites()
        .create(
            &user.id,
            actor,
            Duration::from_secs(u64::from(hours) * 3600),
        )
        .await?;
    tx.audit()
        .append(stamp(
            NewAuditEvent::new(actor, "user.invite")
                .target(format!("user:{}", user.id))
                .details(serde_json::json!({
                    "invite_id": invite.id,
                    "expires_at": invite.expires_at.to_rfc3339(),
                    "groups_to_add": transition.groups_to_add.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                })),
        ))
        .await?;
    if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
        tx.jobs()
            .enqueue(app.attempts(jobs::group_sync(&user.integration_id)))
            .await?;
    }
    let mut link = app.config().server.public_url.clone();
    link.set_path(&format!("{INVITE_PATH}{token}"));
    Ok((invite, link.to_string()))
}

/// An invitation as listed (never its link).
#[derive(Debug, Serialize)]
pub struct InviteListItem {
    /// Invitation id.
    pub id: String,
    /// Who issued it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339, when the link was used to pair a phone.
    pub used_at: Option<String>,
    /// RFC 3339, when it was revoked or replaced.
    pub revoked_at: Option<String>,
    /// `open`, `used`, `revoked` or `expired`.
    pub status: &'static str,
}

/// A user's invitations, newest first.
pub async fn list(app: &App, user_id: &str) -> ApiResult<Vec<InviteListItem>> {
    app.store().users().get(user_id).await?;
    let now = Timestamp::now();
    Ok(app
        .store()
        .invites()
        .list_for_user(user_id)
        .await?
        .into_iter()
        .map(|i| InviteListItem {
            status: if i.used_at.is_some() {
                "used"
            } else if i.revoked_at.is_some() {
                "revoked"
            } else if i.expires_at <= now {
                "expired"
            } else {
                "open"
            },
            id: i.id,
            created_by: i.created_by,
            created_at: i.created_at.to_rfc3339(),
            expires_at: i.expires_at.to_rfc3339(),
            used_at: i.used_at.map(Timestamp::to_rfc3339),
            revoked_at: i.revoked_at.map(Timestamp::to_rfc3339),
        })
        .collect())
}

/// Revokes the user's open invitation (core refuses when none is open).
pub async fn revoke(app: &App, user_id: &str, actor: &str, meta: &RequestMeta) -> ApiResult<()> {
    let store = app.store();
    let user = store.users().get(user_id).await?;
    let now = Timestamp::now();
    let invited = has_open_invite(store, &user.id, now).await?;
    let facts = user_facts(&user, invited).ok_or_else(|| {
        ApiError::internal(format!("user {} has inconsistent stored facts", user.id))
    })?;
    let transition = apply(&facts, Command::RevokeInvite).map_err(transition_error)?;
    let mut tx = store.begin().await?;
    for open in tx.invites().list_for_user(&user.id).await? {
        if open.used_at.is_none() && open.revoked_at.is_none() && open.expires_at > now {
            tx.invites().revoke(&open.id, now).await?;
        }
    }
    tx.audit()
        .append(meta.stamp(
            NewAuditEvent::new(actor, "user.invite.revoke").target(format!("user:{}", user.id)),
        ))
        .await?;
    if !transition.groups_to_add.is_empty() || !transition.groups_to_remove.is_empty() {
        tx.jobs()
            .enqueue(app.attempts(jobs::group_sync(&user.integration_id)))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
