//! The directory sync (issue 6, lifecycle 4): users in, groups out.
//!
//! 1. **Users.** A users delta round: the first one (no delta link stored) returns every
//!    user, page by page, and ends with a delta link; later rounds resume from that link and
//!    return only changes. Users are upserted (guests are skipped: they cannot get passkeys);
//!    accounts removed from the directory are flagged `not_found` ("This user cannot be found
//!    in Microsoft Entra."), disabled ones `disabled`. After a full round, users the round did
//!    not return are flagged `not_found` too. An expired delta link, or one saved for another
//!    Graph host, starts a full round.
//! 2. **Groups.** Each user's desired groups come from `keybridge-core`'s
//!    [`desired_groups`]; each group's members are read from Entra and the difference is
//!    applied in batches. keybridge owns these groups: members that are not (or no longer)
//!    wanted are removed and logged.
//!
//! Progress counters: `done` = users read plus memberships changed, `failed` = memberships
//! that could not be changed (the job then fails to be retried).

use std::collections::{BTreeSet, HashMap, HashSet};

use keybridge_core::{ApplicationName, EntraStatus, GroupRole, UserState, desired_groups};
use keybridge_graph::{
    DEFAULT_USER_SELECT, DeltaStart, GraphClient, GraphError, User as GraphUser, UserChange,
};
use keybridge_store::{
    DirectoryUser, Integration, JobContext, JobError, Store, Timestamp, UserQuery,
};

use crate::app::App;
use crate::jobs::{graph_failure, store_failure};
use crate::services::facts::{has_open_invite, user_facts};
use crate::services::job_integration;

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether it was a full round.
    pub full: bool,
    /// Users created or updated.
    pub users_upserted: usize,
    /// Users flagged `not_found`.
    pub users_not_found: u64,
    /// Members added to keybridge's groups.
    pub members_added: usize,
    /// Members removed from keybridge's groups (strays included).
    pub members_removed: usize,
}

/// Brings only the groups in step (after an invite or another state change).
pub async fn run_groups(
    app: &App,
    integration_id: &str,
    ctx: &JobContext,
) -> Result<SyncReport, JobError> {
    let store = ctx.store();
    let (integration, client) = job_integration(app, ctx, integration_id).await?;
    let mut report = SyncReport::default();
    // A group sync asked for while this one runs is not lost: the job queue runs this job
    // once more after it (`rerun_requested`), and that run reads the users afresh.
    reconcile_groups(&client, store, &integration, ctx, &mut report).await?;
    Ok(report)
}

/// Runs one sync of an integration.
pub async fn run(
    app: &App,
    integration_id: &str,
    ctx: &JobContext,
) -> Result<SyncReport, JobError> {
    let store = ctx.store();
    let (integration, client) = job_integration(app, ctx, integration_id).await?;
    let mut report = SyncReport::default();
    sync_users(&client, store, &integration, ctx, &mut report).await?;
    reconcile_groups(&client, store, &integration, ctx, &mut report).await?;
    Ok(report)
}

fn is_expired_delta(error: &GraphError) -> bool {
    error.service_error().is_some_and(|e| {
        e.status == 410 || e.code.contains("syncStateNotFound") || e.code.contains("resyncRequired")
    })
}

async fn sync_users(
    client: &GraphClient,
    store: &Store,
    integration: &Integration,
    ctx: &JobContext,
    report: &mut SyncReport,
) -> Result<(), JobError> {
    let select: Vec<String> = DEFAULT_USER_SELECT
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let started = Timestamp::now();
    // A delta link saved while another Graph URL was configured (a national cloud chosen
    // later, a sandbox whose entra-sim moved port) cannot be followed: start over in full.
    let saved_link = integration.delta_link.as_deref().filter(|link| {
        let own = client.is_own_link(link);
        if !own {
            tracing::warn!(
                integration = %integration.id,
                "the saved delta link is not on the configured Graph host: full sync"
            );
        }
        own
    });
    let mut full = saved_link.is_none();
    let start = match saved_link {
        Some(link) => DeltaStart::Resume(link.to_owned()),
        None => DeltaStart::Initial {
            select: select.clone(),
        },
    };
    let mut delta = client.users_delta(start).map_err(graph_failure)?;
    let mut delta_link = None;
    let mut read: i64 = 0;
    loop {
        let page = match delta.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(error) if !full && read == 0 && is_expired_delta(&error) => {
                tracing::info!(integration = %integration.id, "delta link expired: full sync");
                full = true;
                delta = client
                    .users_delta(DeltaStart::Initial {
                        select: select.clone(),
                    })
                    .map_err(graph_failure)?;
                continue;
            }
            Err(error) => return Err(graph_failure(error)),
        };
        if ctx.lease_lost() {
            return Err(JobError::Retry(
                "the lease was lost during the sync".to_owned(),
            ));
        }
        let mut upserts = Vec::new();
        for change in page.changes {
            read += 1;
            match change {
                UserChange::Updated(user) => {
                    if let Some(row) = directory_user(store, &integration.id, user).await? {
                        upserts.push(row);
                    }
                }
                UserChange::Removed { id, .. } => {
                    if let Some(known) = store
                        .users()
                        .find_by_object_id(&integration.id, &id)
                        .await
                        .map_err(store_failure)?
                    {
                        store
                            .users()
                            .set_entra_status(&known.id, EntraStatus::NotFound, Timestamp::now())
                            .await
                            .map_err(store_failure)?;
                        report.users_not_found += 1;
                    }
                }
            }
        }
        let summary = store
            .users()
            .upsert_from_directory(&integration.id, &upserts)
            .await
            .map_err(store_failure)?;
        report.users_upserted += summary.inserted + summary.updated;
        ctx.set_progress(read, 0, 0).await?;
        if page.delta_link.is_some() {
            delta_link = page.delta_link;
        }
    }
    if full {
        report.users_not_found += store
            .users()
            .mark_unseen_not_found(&integration.id, started)
            .await
            .map_err(store_failure)?;
    }
    report.full = full;
    store
        .integrations()
        .record_sync(&integration.id, delta_link.as_deref(), Timestamp::now())
        .await
        .map_err(store_failure)?;
    Ok(())
}

/// The store's form of a Graph user; a delta change may carry only the changed properties,
/// so the rest comes from the stored user. Guests and users without a UPN are skipped.
async fn directory_user(
    store: &Store,
    integration_id: &str,
    user: GraphUser,
) -> Result<Option<DirectoryUser>, JobError> {
    if user.is_guest() {
        return Ok(None);
    }
    let known = if user.user_principal_name.is_none()
        || user.display_name.is_none()
        || user.account_enabled.is_none()
    {
        store
            .users()
            .find_by_object_id(integration_id, &user.id)
            .await
            .map_err(store_failure)?
    } else {
        None
    };
    let Some(upn) = user
        .user_principal_name
        .or_else(|| known.as_ref().map(|k| k.upn.clone()))
    else {
        return Ok(None);
    };
    Ok(Some(DirectoryUser {
        display_name: user
            .display_name
            .or_else(|| known.as_ref().map(|k| k.display_name.clone()))
            .unwrap_or_else(|| upn.clone()),
        email: user
            .mail
            .or_else(|| known.as_ref().and_then(|k| k.email.clone())),
        account_enabled: user.account_enabled.unwrap_or_else(|| {
            known
                .as_ref()
                .is_none_or(|k| k.entra_status != EntraStatus::Disabled)
        }),
        entra_object_id: user.id,
        upn,
    }))
}

/// The group's members; a group that is missing in Entra (deleted there, or never recorded)
/// is found or created again and its new id recorded.
async fn current_members(
    client: &GraphClient,
    store: &Store,
    integration: &Integration,
    role: GroupRole,
    group_id: Option<String>,
) -> Result<(String, HashSet<String>), JobError> {
    if let Some(id) = group_id {
        let mut members = client.list_group_members(&id).map_err(graph_failure)?;
        let mut current = HashSet::new();
        loop {
            match members.next_page().await {
                Ok(Some(page)) => current.extend(page.into_iter().map(|m| m.id)),
                Ok(None) => return Ok((id, current)),
                Err(GraphError::NotFound(_)) => {
                    tracing::warn!(integration = %integration.id, group = %id, role = role.as_str(),
                        "keybridge's group is gone from Entra; finding or creating it again");
                    break;
                }
                Err(e) => return Err(graph_failure(e)),
            }
        }
    }
    let name = ApplicationName::parse(&integration.name)
        .map_err(|e| JobError::Permanent(format!("the stored application name is invalid: {e}")))?;
    let display_name = name.group_plan().display_name(role);
    let group = client
        .ensure_security_group(&display_name, None)
        .await
        .map_err(graph_failure)?;
    let mut groups = store
        .integrations()
        .get(&integration.id)
        .await
        .map_err(store_failure)?
        .groups;
    let slot = match role {
        GroupRole::EligibleForPairing => &mut groups.eligible,
        GroupRole::PairedWithKeybridge => &mut groups.paired_keybridge,
        GroupRole::PairedWithEntra => &mut groups.paired_entra,
        GroupRole::NotYetEnrolled => &mut groups.not_enrolled,
    };
    *slot = Some(group.id.clone());
    store
        .integrations()
        .set_groups(&integration.id, &groups)
        .await
        .map_err(store_failure)?;
    let mut members = client
        .list_group_members(&group.id)
        .map_err(graph_failure)?;
    let mut current = HashSet::new();
    while let Some(page) = members.next_page().await.map_err(graph_failure)? {
        current.extend(page.into_iter().map(|m| m.id));
    }
    Ok((group.id, current))
}

/// Members added per request run; several runs go at once (the client still paces itself to
/// Graph's write quota), since one request adds only 20 members.
const ADD_SLICE: usize = 400;
/// Runs at once.
const ADD_CONCURRENCY: usize = 4;

async fn add_members_concurrently(
    client: &GraphClient,
    group_id: &str,
    members: Vec<String>,
) -> Result<Vec<keybridge_graph::MembershipChange>, JobError> {
    let mut slices = members
        .chunks(ADD_SLICE)
        .map(<[String]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    let mut running = tokio::task::JoinSet::new();
    let mut changes = Vec::new();
    loop {
        while running.len() < ADD_CONCURRENCY {
            let Some(slice) = slices.next() else { break };
            let client = client.clone();
            let group_id = group_id.to_owned();
            running.spawn(async move { client.add_group_members(&group_id, &slice).await });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let change = done
            .map_err(|e| JobError::Retry(format!("adding group members stopped: {e}")))?
            .map_err(graph_failure)?;
        changes.push(change);
    }
    Ok(changes)
}

/// Brings the four groups in step with the users' states (see the module docs).
pub async fn reconcile_groups(
    client: &GraphClient,
    store: &Store,
    integration: &Integration,
    ctx: &JobContext,
    report: &mut SyncReport,
) -> Result<(), JobError> {
    let groups = &integration.groups;
    let group_ids: Vec<(GroupRole, Option<String>)> = vec![
        (GroupRole::EligibleForPairing, groups.eligible.clone()),
        (
            GroupRole::PairedWithKeybridge,
            groups.paired_keybridge.clone(),
        ),
        (GroupRole::PairedWithEntra, groups.paired_entra.clone()),
        (GroupRole::NotYetEnrolled, groups.not_enrolled.clone()),
    ];

    // Desired members per group, by Entra object id.
    let mut desired: HashMap<GroupRole, BTreeSet<String>> = HashMap::new();
    let now = Timestamp::now();
    let mut query = UserQuery::new(&integration.id, None);
    query.limit = 500;
    loop {
        let page = store.users().list(&query).await.map_err(store_failure)?;
        for item in &page.items {
            let user = &item.user;
            let invited = user.state == UserState::Pending
                && has_open_invite(store, &user.id, now)
                    .await
                    .map_err(store_failure)?;
            let Some(facts) = user_facts(user, invited) else {
                tracing::warn!(user = %user.id, "stored user facts are inconsistent; groups left as they are");
                continue;
            };
            for role in desired_groups(&facts) {
                desired
                    .entry(role)
                    .or_default()
                    .insert(user.entra_object_id.clone());
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }

    let mut failed: i64 = 0;
    for (role, group_id) in group_ids {
        if ctx.lease_lost() {
            return Err(JobError::Retry(
                "the lease was lost during the group sync".to_owned(),
            ));
        }
        let wanted = desired.remove(&role).unwrap_or_default();
        let (group_id, current) =
            current_members(client, store, integration, role, group_id).await?;
        let group_id = &group_id;
        let to_add: Vec<String> = wanted
            .iter()
            .filter(|id| !current.contains(*id))
            .cloned()
            .collect();
        let to_remove: Vec<String> = current
            .iter()
            .filter(|id| !wanted.contains(*id))
            .cloned()
            .collect();
        if !to_add.is_empty() {
            for change in add_members_concurrently(client, group_id, to_add).await? {
                report.members_added += change.applied.len();
                failed += i64::try_from(change.failed.len()).unwrap_or(i64::MAX);
                for failure in &change.failed {
                    tracing::warn!(group = %group_id, member = %failure.member_id, error = %failure.error, "adding a group member failed");
                }
            }
        }
        if !to_remove.is_empty() {
            tracing::info!(
                group = %group_id, role = role.as_str(), count = to_remove.len(),
                "removing members keybridge does not want in its group"
            );
            let change = client
                .remove_group_members(group_id, &to_remove)
                .await
                .map_err(graph_failure)?;
            report.members_removed += change.applied.len();
            failed += i64::try_from(change.failed.len()).unwrap_or(i64::MAX);
            for failure in &change.failed {
                tracing::warn!(group = %group_id, member = %failure.member_id, error = %failure.error, "removing a group member failed");
            }
        }
    }
    let done = i64::try_from(report.users_upserted + report.members_added + report.members_removed)
        .unwrap_or(i64::MAX);
    ctx.set_progress(done, failed, 0).await?;
    if failed > 0 {
        return Err(JobError::Retry(format!(
            "{failed} group membership change(s) failed; the next attempt applies the rest"
        )));
    }
    Ok(())
}
