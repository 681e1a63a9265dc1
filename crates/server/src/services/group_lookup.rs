//! Finding the Entra group a bulk invitation is for, by object id or display name, with its
//! member count: what the console shows before the admin confirms. The invitation job reads
//! the members again when it runs (the group may change in between).

use keybridge_graph::{GraphClient, GraphError};
use serde::Serialize;

use crate::app::App;
use crate::error::{ApiError, ApiResult, graph_error};

/// Groups sharing one display name that are listed for the admin to pick from.
pub const MAX_MATCHES: usize = 10;

/// A group as the confirmation shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Object id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Direct members.
    pub members: usize,
    /// Direct members that are users (only they can be invited).
    pub users: usize,
}

/// The groups `text` names in the integration's tenant: the group with that object id, or
/// every group with that exact display name (names are not unique; at most
/// [`MAX_MATCHES`]). Nothing found is a 404 saying what was looked for.
pub async fn find(app: &App, integration_id: &str, text: &str) -> ApiResult<Vec<GroupSummary>> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(
            "group",
            "give the group's name or object id",
        ));
    }
    let integration = app.store().integrations().get(integration_id).await?;
    let client = app
        .graph()
        .for_integration(&integration)
        .map_err(|e| graph_error(e, "credential"))?;
    let groups = if uuid::Uuid::parse_str(text).is_ok() {
        match client.get_group(&text.to_ascii_lowercase()).await {
            Ok(group) => vec![group],
            Err(GraphError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(graph_error(e, "credential")),
        }
    } else {
        client
            .find_groups_by_name(text)
            .await
            .map_err(|e| match e {
                GraphError::InvalidArgument(message) => ApiError::invalid("group", message),
                other => graph_error(other, "credential"),
            })?
    };
    if groups.is_empty() {
        return Err(ApiError::not_found(format!(
            "no group named or with the object id {text:?} in Microsoft Entra: check the \
             spelling (names must match exactly) or paste the group's object id"
        ))
        .with_field("group"));
    }
    let mut out = Vec::new();
    for group in groups.into_iter().take(MAX_MATCHES) {
        out.push(summary(&client, group).await?);
    }
    Ok(out)
}

async fn summary(client: &GraphClient, group: keybridge_graph::Group) -> ApiResult<GroupSummary> {
    let members = client
        .list_group_members(&group.id)
        .map_err(|e| graph_error(e, "credential"))?
        .collect_all()
        .await
        .map_err(|e| graph_error(e, "credential"))?;
    let users = members
        .iter()
        .filter(|m| {
            m.odata_type
                .as_deref()
                .is_none_or(|t| t == "#microsoft.graph.user")
        })
        .count();
    Ok(GroupSummary {
        name: group.display_name.unwrap_or_else(|| "(no name)".to_owned()),
        members: members.len(),
        users,
        id: group.id,
    })
}
