//! Groups: find by name, create security groups, list members, add and remove members in
//! batches of 20 (`members@odata.bind`, falling back to `$batch` item by item), treating
//! "already a member" and "not a member" as done.

use reqwest::Method;

use crate::batch::{BatchRequest, MAX_BATCH_SIZE};
use crate::client::{ApiVersion, Call, GraphClient};
use crate::error::GraphError;
use crate::models::{DirectoryObject, Group};
use crate::odata::quote_literal;
use crate::permissions::DIRECTORY_READ_WRITE_ALL;
use crate::users::{MAX_PAGE_SIZE, Pages};

const GROUP_SELECT: &str =
    "id,displayName,description,mailNickname,securityEnabled,mailEnabled,createdDateTime";
/// Graph's limit on an `eq` literal in `$filter`.
const MAX_FILTER_LITERAL: usize = 120;

/// The outcome of a membership change, member by member.
#[derive(Debug, Default)]
pub struct MembershipChange {
    /// Members added or removed by this call.
    pub applied: Vec<String>,
    /// Members that were already in (add) or already out (remove): nothing to do.
    pub unchanged: Vec<String>,
    /// Members that could not be changed.
    pub failed: Vec<MemberFailure>,
}

impl MembershipChange {
    /// Whether every member reached the wanted state.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// One member that could not be changed.
#[derive(Debug)]
pub struct MemberFailure {
    /// Object id.
    pub member_id: String,
    /// Why.
    pub error: GraphError,
}

/// A `mailNickname` for a security group: ASCII letters and digits, other runs as `-`,
/// lowercase, at most 64 characters (none of `@ ( ) \ [ ] " ; : . < > ,` or space).
pub fn mail_nickname_for(display_name: &str) -> String {
    let mut nickname = String::new();
    for c in display_name.chars() {
        if c.is_ascii_alphanumeric() {
            nickname.push(c.to_ascii_lowercase());
        } else if !nickname.ends_with('-') && !nickname.is_empty() {
            nickname.push('-');
        }
    }
    let nickname: String = nickname.trim_end_matches('-').chars().take(64).collect();
    let nickname = nickname.trim_end_matches('-').to_owned();
    if nickname.is_empty() {
        "keybridge-group".to_owned()
    } else {
        nickname
    }
}

fn is_already_member(error: &GraphError) -> bool {
    matches!(error, GraphError::InvalidRequest(d) if d.message.contains("already exist"))
}

fn is_not_member(status: u16, message: &str) -> bool {
    status == 404
        || (status == 400
            && (message.contains("do not exist") || message.contains("does not exist")))
}

fn check_object_id(id: &str) -> Result<(), GraphError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| {
        GraphError::InvalidArgument(format!("'{id}' is not a directory object id (GUID)"))
    })
}

impl GraphClient {
    /// Groups whose display name is exactly `name` (names are not unique: 0..n results).
    pub async fn find_groups_by_name(&self, name: &str) -> Result<Vec<Group>, GraphError> {
        if name.is_empty() || name.chars().count() > MAX_FILTER_LITERAL {
            return Err(GraphError::InvalidArgument(format!(
                "a group name to search for must have 1 to {MAX_FILTER_LITERAL} characters"
            )));
        }
        let filter = format!("displayName eq {}", quote_literal(name));
        let url = self.url(
            ApiVersion::V1,
            &["groups"],
            &[("$filter", &filter), ("$select", GROUP_SELECT)],
        );
        Pages::<Group>::new(
            self.clone(),
            url,
            DIRECTORY_READ_WRITE_ALL,
            "searching groups",
        )
        .collect_all()
        .await
    }

    /// One group by object id. An unknown id is [`GraphError::NotFound`].
    pub async fn get_group(&self, group_id: &str) -> Result<Group, GraphError> {
        check_object_id(group_id)?;
        let url = self.url(
            ApiVersion::V1,
            &["groups", group_id],
            &[("$select", GROUP_SELECT)],
        );
        self.get_json(url, DIRECTORY_READ_WRITE_ALL, "reading a group")
            .await
    }

    /// Creates a security group (`mailEnabled` false, `securityEnabled` true, mailNickname
    /// derived from the name). Not idempotent: prefer [`GraphClient::ensure_security_group`].
    pub async fn create_security_group(
        &self,
        display_name: &str,
        description: Option<&str>,
    ) -> Result<Group, GraphError> {
        if display_name.trim().is_empty() || display_name.chars().count() > 256 {
            return Err(GraphError::InvalidArgument(
                "a group name must have 1 to 256 characters".to_owned(),
            ));
        }
        let mut body = serde_json::json!({
            "displayName": display_name,
            "mailEnabled": false,
            "mailNickname": mail_nickname_for(display_name),
            "securityEnabled": true,
            "groupTypes": [],
        });
        if let Some(description) = description {
            body["description"] = serde_json::Value::from(description);
        }
        let url = self.url(ApiVersion::V1, &["groups"], &[]);
        let call = Call::new(Method::POST, url)
            .body(&body)
            .permission(DIRECTORY_READ_WRITE_ALL);
        self.send(&call).await?.json("creating a group")
    }

    /// The group named `display_name` (the oldest, if several), created when missing. After
    /// a create whose answer was lost, it looks again before creating, so a retry never makes
    /// a second group.
    pub async fn ensure_security_group(
        &self,
        display_name: &str,
        description: Option<&str>,
    ) -> Result<Group, GraphError> {
        let mut tries = 0u32;
        loop {
            let mut existing = self.find_groups_by_name(display_name).await?;
            if !existing.is_empty() {
                existing.sort_by(|a, b| a.created_date_time.cmp(&b.created_date_time));
                return Ok(existing.remove(0));
            }
            match self.create_security_group(display_name, description).await {
                Ok(group) => return Ok(group),
                Err(error @ (GraphError::Transport { .. } | GraphError::Service(_)))
                    if tries + 1 < self.inner.retry.max_attempts =>
                {
                    tracing::warn!(%error, "group creation uncertain; looking it up before trying again");
                    self.inner
                        .clock
                        .sleep(self.inner.retry.random_backoff(tries))
                        .await;
                    tries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The members of a group, page by page (id, userPrincipalName, displayName).
    pub fn list_group_members(&self, group_id: &str) -> Result<Pages<DirectoryObject>, GraphError> {
        check_object_id(group_id)?;
        let top = MAX_PAGE_SIZE.to_string();
        let url = self.url(
            ApiVersion::V1,
            &["groups", group_id, "members"],
            &[
                ("$select", "id,userPrincipalName,displayName"),
                ("$top", &top),
            ],
        );
        Ok(Pages::new(
            self.clone(),
            url,
            DIRECTORY_READ_WRITE_ALL,
            "listing group members",
        ))
    }

    /// Adds members, 20 per `PATCH members@odata.bind`. A batch refused because one member is
    /// already in is redone item by item through `$batch`, where "already a member" counts as
    /// done. A group that does not exist (yet: new groups can take seconds to replicate) is
    /// waited for with backoff, then reported as one [`GraphError::NotFound`]. Errors other
    /// than per-member ones abort.
    pub async fn add_group_members(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<MembershipChange, GraphError> {
        check_object_id(group_id)?;
        member_ids.iter().try_for_each(|id| check_object_id(id))?;
        let mut change = MembershipChange::default();
        let group_url = self.url(ApiVersion::V1, &["groups", group_id], &[]);
        for chunk in member_ids.chunks(MAX_BATCH_SIZE) {
            let binds: Vec<String> = chunk
                .iter()
                .map(|id| self.directory_object_url(id))
                .collect();
            let body = serde_json::json!({ "members@odata.bind": binds });
            // A PATCH resent after a lost answer fails as "already exist", handled below.
            let call = Call::new(Method::PATCH, group_url.clone())
                .body(&body)
                .permission(DIRECTORY_READ_WRITE_ALL);
            let mut tries = 0u32;
            loop {
                match self.send(&call).await {
                    Ok(_) => change.applied.extend(chunk.iter().cloned()),
                    Err(error) if is_already_member(&error) => {
                        self.add_members_one_by_one(group_id, chunk, &mut change)
                            .await?;
                    }
                    Err(GraphError::NotFound(detail)) => {
                        // Either a member or the group is unknown. A group created moments ago
                        // can 404 while it replicates: wait for it a little before giving up.
                        if self.group_exists(group_id).await? {
                            self.add_members_one_by_one(group_id, chunk, &mut change)
                                .await?;
                        } else if tries + 1 < self.inner.retry.max_attempts {
                            self.inner
                                .clock
                                .sleep(self.inner.retry.random_backoff(tries))
                                .await;
                            tries += 1;
                            continue;
                        } else {
                            return Err(GraphError::NotFound(detail));
                        }
                    }
                    Err(error) => return Err(error),
                }
                break;
            }
        }
        Ok(change)
    }

    async fn add_members_one_by_one(
        &self,
        group_id: &str,
        chunk: &[String],
        change: &mut MembershipChange,
    ) -> Result<(), GraphError> {
        let requests = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchRequest::new(
                    i.to_string(),
                    "POST",
                    format!("/groups/{group_id}/members/$ref"),
                )
                .with_body(serde_json::json!({ "@odata.id": self.directory_object_url(id) }))
            })
            .collect();
        let answers = self
            .batch_with_permission(requests, Some(DIRECTORY_READ_WRITE_ALL))
            .await?;
        for (id, answer) in chunk.iter().zip(answers) {
            match answer.error(Some(DIRECTORY_READ_WRITE_ALL)) {
                None => change.applied.push(id.clone()),
                Some(error) if is_already_member(&error) => change.unchanged.push(id.clone()),
                Some(error) => change.failed.push(MemberFailure {
                    member_id: id.clone(),
                    error,
                }),
            }
        }
        Ok(())
    }

    /// Removes members through `$batch` (20 per batch); "not a member" counts as done.
    pub async fn remove_group_members(
        &self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<MembershipChange, GraphError> {
        check_object_id(group_id)?;
        member_ids.iter().try_for_each(|id| check_object_id(id))?;
        let requests = member_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                BatchRequest::new(
                    i.to_string(),
                    "DELETE",
                    format!("/groups/{group_id}/members/{id}/$ref"),
                )
            })
            .collect();
        let answers = self
            .batch_with_permission(requests, Some(DIRECTORY_READ_WRITE_ALL))
            .await?;
        let mut change = MembershipChange::default();
        for (id, answer) in member_ids.iter().zip(answers) {
            match answer.service_error() {
                None => change.applied.push(id.clone()),
                Some(detail) if is_not_member(detail.status, &detail.message) => {
                    change.unchanged.push(id.clone())
                }
                Some(_) => {
                    let error = answer.error(Some(DIRECTORY_READ_WRITE_ALL));
                    if let Some(error) = error {
                        change.failed.push(MemberFailure {
                            member_id: id.clone(),
                            error,
                        });
                    }
                }
            }
        }
        Ok(change)
    }

    async fn group_exists(&self, group_id: &str) -> Result<bool, GraphError> {
        let url = self.url(ApiVersion::V1, &["groups", group_id], &[("$select", "id")]);
        match self
            .get_json::<serde_json::Value>(url, DIRECTORY_READ_WRITE_ALL, "reading a group")
            .await
        {
            Ok(_) => Ok(true),
            Err(GraphError::NotFound(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn directory_object_url(&self, id: &str) -> String {
        self.url(ApiVersion::V1, &["directoryObjects", id], &[])
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_derived_from_the_name() {
        assert_eq!(
            mail_nickname_for("Acme (Client Paired with Entra)"),
            "acme-client-paired-with-entra"
        );
        assert_eq!(mail_nickname_for("  Ünïcode @ group. "), "n-code-group");
        assert_eq!(mail_nickname_for("(((())))"), "keybridge-group");
        let long = mail_nickname_for(&"a b ".repeat(100));
        assert!(long.len() <= 64 && !long.ends_with('-'), "{long}");
        let forbidden = [
            '@', '(', ')', '\\', '[', ']', '"', ';', ':', '.', '<', '>', ',', ' ',
        ];
        assert!(!mail_nickname_for("a@b(c)d\\e[f]g\"h;i:j.k<l>m,n o").contains(forbidden));
    }

    #[test]
    fn membership_messages() {
        assert!(is_not_member(404, ""));
        assert!(is_not_member(
            400,
            "One or more removed object references do not exist for the following modified properties: 'members'."
        ));
        assert!(!is_not_member(400, "Invalid request"));
        assert!(check_object_id("not-a-guid").is_err());
        assert!(check_object_id("6f1c3f4e-8c1a-4b8e-9f6a-3d2b1c0a9e8d").is_ok());
    }
}
