//! Users: paging through the directory, delta queries, lookups by id or UPN.

use std::marker::PhantomData;
use std::ops::ControlFlow;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::client::{ApiVersion, Call, GraphClient};
use crate::error::GraphError;
use crate::models::{User, UserChange};

/// The user properties keybridge reads by default.
pub const DEFAULT_USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "accountEnabled",
    "userType",
];

/// The largest page Graph serves for users and members.
pub const MAX_PAGE_SIZE: u16 = 999;

pub(crate) const USER_READ: &str = crate::permissions::USER_READ_WRITE_ALL;

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta_link: Option<String>,
}

/// Pages of a Graph collection, fetched one at a time so a 100,000-user directory never sits
/// in memory at once. `@odata.nextLink` is followed verbatim.
pub struct Pages<T> {
    client: GraphClient,
    next: Option<Url>,
    permission: &'static str,
    during: &'static str,
    pages: u64,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pages<T> {
    pub(crate) fn new(
        client: GraphClient,
        first: Url,
        permission: &'static str,
        during: &'static str,
    ) -> Self {
        Self {
            client,
            next: Some(first),
            permission,
            during,
            pages: 0,
            _item: PhantomData,
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, GraphError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page: Page<T> = self
            .client
            .get_json(url.clone(), self.permission, self.during)
            .await?;
        self.next = next_link(&self.client, &url, page.next_link.as_deref(), self.during)?;
        self.pages += 1;
        Ok(Some(page.value))
    }

    /// Pages fetched so far.
    pub fn pages_fetched(&self) -> u64 {
        self.pages
    }

    /// Fetches every remaining page into one list (for small collections only).
    pub async fn collect_all(mut self) -> Result<Vec<T>, GraphError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

/// The page a `@odata.nextLink` points to. A link back to the page just read is refused:
/// following it would fetch the same page forever (and `collect_all` would grow forever).
fn next_link(
    client: &GraphClient,
    current: &Url,
    link: Option<&str>,
    during: &str,
) -> Result<Option<Url>, GraphError> {
    let Some(link) = link else {
        return Ok(None);
    };
    let next = client.link(link)?;
    if next == *current {
        return Err(GraphError::UnexpectedResponse {
            during: during.to_owned(),
            detail: "@odata.nextLink points back to the same page".to_owned(),
            ids: Default::default(),
        });
    }
    Ok(Some(next))
}

/// Where a users delta query starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaStart {
    /// A full initial round with these properties (options go only on the first call).
    Initial {
        /// Properties to track.
        select: Vec<String>,
    },
    /// The `@odata.deltaLink` kept from the previous round.
    Resume(String),
}

/// One page of a users delta round.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage {
    /// Created, changed and removed users.
    pub changes: Vec<UserChange>,
    /// On the last page: the link to keep for the next round.
    pub delta_link: Option<String>,
}

/// A users delta round, page by page.
pub struct UserDelta {
    client: GraphClient,
    next: Option<Url>,
}

impl UserDelta {
    /// The next page of changes, or `None` after the page that carried the delta link.
    pub async fn next_page(&mut self) -> Result<Option<DeltaPage>, GraphError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let during = "reading a users delta page";
        let page: Page<Value> = self.client.get_json(url.clone(), USER_READ, during).await?;
        let mut changes = Vec::with_capacity(page.value.len());
        for item in page.value {
            changes.push(parse_change(item)?);
        }
        self.next = next_link(&self.client, &url, page.next_link.as_deref(), during)?;
        if self.next.is_none() && page.delta_link.is_none() {
            return Err(GraphError::UnexpectedResponse {
                during: "reading a users delta page".to_owned(),
                detail: "the last page carries neither @odata.nextLink nor @odata.deltaLink"
                    .to_owned(),
                ids: Default::default(),
            });
        }
        Ok(Some(DeltaPage {
            changes,
            delta_link: page.delta_link,
        }))
    }
}

fn parse_change(item: Value) -> Result<UserChange, GraphError> {
    if let Some(removed) = item.get("@removed") {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let reason = removed
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("deleted")
            .to_owned();
        return Ok(UserChange::Removed { id, reason });
    }
    serde_json::from_value(item)
        .map(UserChange::Updated)
        .map_err(|e| GraphError::UnexpectedResponse {
            during: "reading a users delta page".to_owned(),
            detail: e.to_string(),
            ids: Default::default(),
        })
}

/// The path segments addressing one user: `users/{id}` (percent-encoded, so `#EXT#` UPNs
/// work), or `users('{upn}')` for UPNs starting with `$`, which Graph would otherwise read as
/// a system segment.
pub(crate) fn user_segments(id_or_upn: &str) -> Result<Vec<String>, GraphError> {
    let id_or_upn = id_or_upn.trim();
    if id_or_upn.is_empty() {
        return Err(GraphError::InvalidArgument(
            "the user id or UPN is empty".to_owned(),
        ));
    }
    check_segment("user id or UPN", id_or_upn)?;
    if id_or_upn.starts_with('$') {
        Ok(vec![format!(
            "users({})",
            crate::odata::quote_literal(id_or_upn)
        )])
    } else {
        Ok(vec!["users".to_owned(), id_or_upn.to_owned()])
    }
}

/// Refuses `.` and `..` as a path segment: a URL drops them (`users/..` is `users`), so the
/// request would address another resource than the one named.
pub(crate) fn check_segment(what: &str, segment: &str) -> Result<(), GraphError> {
    if segment == "." || segment == ".." {
        return Err(GraphError::InvalidArgument(format!(
            "'{segment}' is not a valid {what}"
        )));
    }
    Ok(())
}

fn check_page_size(page_size: u16) -> Result<String, GraphError> {
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(GraphError::InvalidArgument(format!(
            "page size {page_size} is outside 1..={MAX_PAGE_SIZE}, the range Graph accepts"
        )));
    }
    Ok(page_size.to_string())
}

impl GraphClient {
    /// Pages through all users with the given `$select` (e.g. [`DEFAULT_USER_SELECT`]) and
    /// page size (1–999). Needs User.Read.All.
    pub fn list_users(&self, select: &[&str], page_size: u16) -> Result<Pages<User>, GraphError> {
        let top = check_page_size(page_size)?;
        let select = select.join(",");
        let mut query = vec![("$top", top.as_str())];
        if !select.is_empty() {
            query.insert(0, ("$select", select.as_str()));
        }
        let url = self.url(ApiVersion::V1, &["users"], &query);
        Ok(Pages::new(self.clone(), url, USER_READ, "listing users"))
    }

    /// Calls `on_page` for every page of users until it returns `Break`. Returns how many users
    /// were seen. Only one page is held at a time.
    pub async fn for_each_user_page<F>(
        &self,
        select: &[&str],
        page_size: u16,
        mut on_page: F,
    ) -> Result<u64, GraphError>
    where
        F: FnMut(Vec<User>) -> ControlFlow<()>,
    {
        let mut pages = self.list_users(select, page_size)?;
        let mut seen = 0u64;
        while let Some(page) = pages.next_page().await? {
            seen += page.len() as u64;
            if on_page(page).is_break() {
                break;
            }
        }
        Ok(seen)
    }

    /// One user by object id or UPN. Unknown or deleted → [`GraphError::NotFound`].
    pub async fn get_user(&self, id_or_upn: &str, select: &[&str]) -> Result<User, GraphError> {
        let segments = user_segments(id_or_upn)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let select = select.join(",");
        let query: Vec<(&str, &str)> = if select.is_empty() {
            Vec::new()
        } else {
            vec![("$select", select.as_str())]
        };
        let url = self.url(ApiVersion::V1, &segments, &query);
        self.get_json(url, USER_READ, "reading a user").await
    }

    /// Starts (or resumes) a users delta round.
    pub fn users_delta(&self, start: DeltaStart) -> Result<UserDelta, GraphError> {
        let url = match start {
            DeltaStart::Initial { select } => {
                let select = select.join(",");
                let query: Vec<(&str, &str)> = if select.is_empty() {
                    Vec::new()
                } else {
                    vec![("$select", select.as_str())]
                };
                self.url(ApiVersion::V1, &["users", "delta"], &query)
            }
            DeltaStart::Resume(link) => self.link(&link)?,
        };
        Ok(UserDelta {
            client: self.clone(),
            next: Some(url),
        })
    }

    /// The users among `ids` that exist (`POST /directoryObjects/getByIds`, 1,000 ids per
    /// request). Needs Directory.Read.All.
    pub async fn get_users_by_ids(&self, ids: &[String]) -> Result<Vec<User>, GraphError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(1000) {
            let body = serde_json::json!({"ids": chunk, "types": ["user"]});
            let url = self.url(ApiVersion::V1, &["directoryObjects", "getByIds"], &[]);
            // Reading only, although it is a POST.
            let mut call = Call::new(Method::POST, url)
                .body(&body)
                .permission("Directory.Read.All");
            call.idempotent = true;
            let page: Page<User> = self.send(&call).await?.json("looking users up by id")?;
            found.extend(page.value);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upns_are_addressed_safely() {
        assert_eq!(
            user_segments("ana@contoso.com").unwrap(),
            vec!["users", "ana@contoso.com"]
        );
        assert_eq!(
            user_segments("$admin@contoso.com").unwrap(),
            vec!["users('$admin@contoso.com')"]
        );
        assert!(user_segments("  ").is_err());
    }

    #[test]
    fn delta_items_become_changes() {
        let removed =
            parse_change(serde_json::json!({"id":"u1","@removed":{"reason":"changed"}})).unwrap();
        assert_eq!(
            removed,
            UserChange::Removed {
                id: "u1".into(),
                reason: "changed".into()
            }
        );
        let updated = parse_change(serde_json::json!({"id":"u2","displayName":"Ana"})).unwrap();
        let UserChange::Updated(user) = updated else {
            panic!("updated")
        };
        assert_eq!(user.display_name.as_deref(), Some("Ana"));
    }

    #[test]
    fn page_sizes_outside_graph_range_are_refused() {
        assert!(check_page_size(0).is_err());
        assert!(check_page_size(1000).is_err());
        assert_eq!(check_page_size(999).unwrap(), "999");
    }
}
