//! Users, groups, members, `directoryObjects/getByIds` and the users delta query (§2.3, §3.1,
//! §3.2).

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::query::{self, Filter, Options, decode_token, encode_token};
use super::{Caller, GraphError, GraphRequest, GraphResponse, Version, base, json_body, roles};
use crate::model::{Group, Tenant, User, graph_time};
use crate::sim::Sim;

/// Properties a user has in entra-sim (Graph names).
const USER_PROPERTIES: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "jobTitle",
    "accountEnabled",
    "userType",
    "createdDateTime",
    "deletedDateTime",
    "businessPhones",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
];
/// Returned without `$select` on v1.0 (Graph's default set).
const USER_DEFAULT_V1: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];
/// Properties `$filter` may use on users.
const USER_FILTERABLE: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "jobTitle",
    "accountEnabled",
    "userType",
];
const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "description",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "visibility",
    "securityIdentifier",
    "createdDateTime",
    "mail",
    "deletedDateTime",
    "proxyAddresses",
    "renewedDateTime",
];
const GROUP_FILTERABLE: &[&str] = &[
    "id",
    "displayName",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
];
/// Most `members@odata.bind` entries in one request.
pub(crate) const MAX_BIND: usize = 20;

fn require(caller: &Caller, allowed: &[&str]) -> Result<(), GraphError> {
    if caller.has_any(allowed) {
        Ok(())
    } else {
        Err(GraphError::directory_denied())
    }
}

/// Checks `$select` names and returns them in Graph's spelling.
fn validate_select(
    select: Option<&Vec<String>>,
    known: &[&str],
    type_name: &str,
) -> Result<Option<Vec<String>>, GraphError> {
    let Some(select) = select else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in select {
        let canonical = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                GraphError::bad_request(
                    "BadRequest",
                    format!("Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'."),
                )
            })?;
        if !out.iter().any(|o: &String| o == canonical) {
            out.push((*canonical).to_owned());
        }
    }
    // Graph always returns the id.
    Ok(Some(out))
}

fn user_value(user: &User, property: &str) -> Value {
    match property {
        "id" => json!(user.id),
        "userPrincipalName" => json!(user.user_principal_name),
        "displayName" => json!(user.display_name),
        "givenName" => json!(user.given_name),
        "surname" => json!(user.surname),
        "mail" => json!(user.mail),
        "jobTitle" => json!(user.job_title),
        "accountEnabled" => json!(user.account_enabled),
        "userType" => json!(user.user_type),
        "createdDateTime" => json!(graph_time(user.created_date_time)),
        "deletedDateTime" => json!(user.deleted_date_time.map(graph_time)),
        "businessPhones" => json!([]),
        _ => Value::Null,
    }
}

fn user_filter_value<'a>(user: &'a User, property: &str) -> query::Value<'a> {
    let text = |s: &'a Option<String>| s.as_deref().map_or(query::Value::Null, query::Value::Text);
    match property.to_ascii_lowercase().as_str() {
        "userprincipalname" => query::Value::Text(&user.user_principal_name),
        "displayname" => query::Value::Text(&user.display_name),
        "givenname" => text(&user.given_name),
        "surname" => text(&user.surname),
        "mail" => text(&user.mail),
        "jobtitle" => text(&user.job_title),
        "accountenabled" => query::Value::Bool(user.account_enabled),
        "usertype" => query::Value::Text(&user.user_type),
        _ => query::Value::Null,
    }
}

fn user_matches(user: &User, filter: Option<&Filter>) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    let id = user.id.to_string();
    filter.matches(&|p| {
        if p.eq_ignore_ascii_case("id") {
            query::Value::Text(&id)
        } else {
            user_filter_value(user, p)
        }
    })
}

/// Projects a user to JSON with `$select` (or the version's default set).
pub(crate) fn user_json(
    user: &User,
    select: Option<&[String]>,
    version: Version,
) -> Map<String, Value> {
    let mut out = Map::new();
    match select {
        Some(props) => {
            for p in props {
                out.insert(p.clone(), user_value(user, p));
            }
            out.entry("id").or_insert_with(|| json!(user.id));
        }
        None => {
            for p in USER_DEFAULT_V1 {
                out.insert((*p).to_owned(), user_value(user, p));
            }
            if version == Version::Beta {
                for p in [
                    "accountEnabled",
                    "userType",
                    "createdDateTime",
                    "deletedDateTime",
                ] {
                    out.insert(p.to_owned(), user_value(user, p));
                }
            }
        }
    }
    out
}

fn context(sim: &Sim, version: Version, set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(props) => format!(
            "{}/$metadata#{set}({})",
            base(sim, version),
            props.join(",")
        ),
        None => format!("{}/$metadata#{set}", base(sim, version)),
    }
}

fn eventual(req: &GraphRequest) -> bool {
    req.headers
        .get("ConsistencyLevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// Parses `$filter`, `$count` and the advanced-query rules shared by users and groups.
fn list_rules(
    req: &GraphRequest,
    options: &Options,
    filterable: &[&str],
    resource: &str,
) -> Result<(Option<Filter>, bool), GraphError> {
    let count = options.wants_count()?;
    let eventual = eventual(req);
    if count && !eventual {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    if options.other.contains_key("$skip") {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "'$skip' is not supported by the service.",
        ));
    }
    if options.search.is_some() && !eventual {
        return Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    if options.search.is_some() || options.orderby.is_some() {
        // [I] entra-sim does not implement $search or $orderby; keybridge uses neither.
        return Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            "entra-sim does not support $search or $orderby.",
        ));
    }
    let filter = options
        .filter
        .as_deref()
        .map(|f| query::parse_filter(f, filterable, resource))
        .transpose()?;
    if let Some(op) = filter.as_ref().and_then(Filter::is_advanced)
        && !(eventual && count)
    {
        return Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            format!(
                "Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
            ),
        ));
    }
    Ok((filter, count))
}

fn cursor(options: &Options, kind: &str) -> Result<Option<Uuid>, GraphError> {
    let Some(token) = &options.skiptoken else {
        return Ok(None);
    };
    let invalid = || {
        // [I] wording for a token entra-sim did not issue.
        GraphError::bad_request(
            "Request_BadRequest",
            format!("Invalid skip token '{token}'."),
        )
    };
    let text = decode_token(token).ok_or_else(invalid)?;
    let id = text
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid)?;
    Uuid::parse_str(id).map(Some).map_err(|_| invalid())
}

fn next_link(
    sim: &Sim,
    req: &GraphRequest,
    options: &Options,
    path: &str,
    kind: &str,
    last: Uuid,
) -> String {
    let repeated = options.repeat();
    let token = encode_token(&format!("{kind}:{last}"));
    let sep = if repeated.is_empty() { "" } else { "&" };
    format!(
        "{}{path}?{repeated}{sep}$skiptoken={token}",
        base(sim, req.version)
    )
}

/// Where a page starts: just after the id its `$skiptoken` names, or at the first key.
fn after_cursor(after: Option<Uuid>) -> (Bound<Uuid>, Bound<Uuid>) {
    (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

/// Takes up to `top` items, and says whether any is left for a next page.
fn take_page<T>(items: impl Iterator<Item = T>, top: usize) -> (Vec<T>, bool) {
    let mut items = items.peekable();
    let page: Vec<T> = items.by_ref().take(top).collect();
    let more = items.peek().is_some();
    (page, more)
}

/// One page of a collection (`/users`, `/groups`, `/groups/{id}/members`) as Graph answers it.
struct CollectionPage<'a> {
    /// Entity set named in `@odata.context`.
    set: &'a str,
    /// The validated `$select`, also named in `@odata.context`.
    select: Option<&'a [String]>,
    /// `@odata.count`, when `$count=true` was asked for.
    total: Option<usize>,
    /// `@odata.nextLink`, when more items follow this page.
    next_link: Option<String>,
    /// The page's items, already rendered.
    value: Vec<Value>,
}

impl CollectionPage<'_> {
    fn into_response(self, sim: &Sim, req: &GraphRequest) -> GraphResponse {
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(context(sim, req.version, self.set, self.select)),
        );
        if let Some(total) = self.total {
            body.insert("@odata.count".into(), json!(total));
        }
        if let Some(link) = self.next_link {
            body.insert("@odata.nextLink".into(), json!(link));
        }
        body.insert("value".into(), Value::Array(self.value));
        GraphResponse::ok(Value::Object(body))
    }
}

/// `GET /users`.
pub(crate) fn list_users(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::USERS_READ)?;
    let select = validate_select(options.select.as_ref(), USER_PROPERTIES, "user")?;
    let top = options.page_size()?;
    let (filter, count) = list_rules(req, options, USER_FILTERABLE, "User")?;
    let after = cursor(options, "u")?;
    let tenant = sim.read();
    let live = |u: &&User| u.deleted_date_time.is_none() && user_matches(u, filter.as_ref());
    let (page, more) = take_page(
        tenant
            .users
            .range(after_cursor(after))
            .map(|(_, u)| u)
            .filter(live),
        top,
    );
    Ok(CollectionPage {
        set: "users",
        select: select.as_deref(),
        total: count.then(|| tenant.users.values().filter(live).count()),
        next_link: page
            .last()
            .filter(|_| more)
            .map(|last| next_link(sim, req, options, "/users", "u", last.id)),
        value: page
            .iter()
            .map(|u| Value::Object(user_json(u, select.as_deref(), req.version)))
            .collect(),
    }
    .into_response(sim, req))
}

/// `GET /users/$count` (needs `ConsistencyLevel: eventual`).
pub(crate) fn count_users(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::USERS_READ)?;
    if !eventual(req) {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "$count is not currently supported.",
        ));
    }
    let filter = options
        .filter
        .as_deref()
        .map(|f| query::parse_filter(f, USER_FILTERABLE, "User"))
        .transpose()?;
    let tenant = sim.read();
    let n = tenant
        .users
        .values()
        .filter(|u| u.deleted_date_time.is_none() && user_matches(u, filter.as_ref()))
        .count();
    Ok(GraphResponse {
        status: StatusCode::OK,
        headers: Vec::new(),
        body: None,
        text: Some(n.to_string()),
    })
}

/// `GET /users/{id | userPrincipalName}`.
pub(crate) fn get_user(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    uid: &str,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::USERS_READ)?;
    let select = validate_select(options.select.as_ref(), USER_PROPERTIES, "user")?;
    let tenant = sim.read();
    let user = tenant
        .find_user(uid)
        .ok_or_else(|| GraphError::not_found(uid))?;
    let mut body = user_json(user, select.as_deref(), req.version);
    let ctx = match &select {
        Some(props) => format!(
            "{}/$metadata#users({})/$entity",
            base(sim, req.version),
            props.join(",")
        ),
        None => format!("{}/$metadata#users/$entity", base(sim, req.version)),
    };
    body.insert("@odata.context".into(), json!(ctx));
    Ok(GraphResponse::ok(Value::Object(body)))
}

/// `POST /directoryObjects/getByIds`.
pub(crate) fn get_by_ids(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::DIRECTORY_READ)?;
    let body = json_body(req)?;
    let Some(ids) = body.get("ids").and_then(Value::as_array) else {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "Invalid value specified for property 'ids' of resource 'DirectoryObject'.",
        ));
    };
    if ids.len() > 1000 {
        // [I] wording; the 1,000 limit is documented.
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            format!(
                "Too many ids: {} given, at most 1000 are allowed.",
                ids.len()
            ),
        ));
    }
    let types: Vec<String> = body
        .get("types")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| {
                    v.as_str().map(|s| {
                        s.trim_start_matches("microsoft.graph.")
                            .to_ascii_lowercase()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let wants =
        |t: &str| types.is_empty() || types.iter().any(|x| x == t || x == "directoryobject");
    let tenant = sim.read();
    let mut value = Vec::new();
    for id in ids {
        let Some(id) = id.as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
            return Err(GraphError::bad_request(
                "Request_BadRequest",
                format!("Invalid GUID:{}", id.as_str().unwrap_or("")),
            ));
        };
        if wants("user")
            && let Some(user) = tenant
                .users
                .get(&id)
                .filter(|u| u.deleted_date_time.is_none())
        {
            let mut item = user_json(user, None, req.version);
            item.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            item.insert("accountEnabled".into(), json!(user.account_enabled));
            value.push(Value::Object(item));
        } else if wants("group")
            && let Some(group) = tenant.groups.get(&id)
        {
            let mut item = group_json(group, None);
            item.insert("@odata.type".into(), json!("#microsoft.graph.group"));
            value.push(Value::Object(item));
        }
    }
    Ok(GraphResponse::ok(json!({
        "@odata.context": format!("{}/$metadata#directoryObjects", base(sim, req.version)),
        "value": value,
    })))
}

/// Delta cursor: changes after `since` up to `upto`, resuming after `after`, with `$select`.
struct DeltaState {
    since: u64,
    upto: u64,
    after: Option<Uuid>,
    select: Option<Vec<String>>,
}

fn encode_delta(state: &DeltaState) -> String {
    encode_token(&format!(
        "d:{}:{}:{}:{}",
        state.since,
        state.upto,
        state.after.map(|u| u.to_string()).unwrap_or_default(),
        state
            .select
            .as_ref()
            .map(|s| s.join(","))
            .unwrap_or_else(|| "*".to_owned())
    ))
}

fn decode_delta(token: &str) -> Option<DeltaState> {
    let text = decode_token(token)?;
    let mut parts = text.strip_prefix("d:")?.splitn(4, ':');
    let since = parts.next()?.parse().ok()?;
    let upto = parts.next()?.parse().ok()?;
    let after = match parts.next()? {
        "" => None,
        id => Some(Uuid::parse_str(id).ok()?),
    };
    let select = match parts.next()? {
        "*" => None,
        list => Some(list.split(',').map(str::to_owned).collect()),
    };
    Some(DeltaState {
        since,
        upto,
        after,
        select,
    })
}

fn max_page_size(req: &GraphRequest) -> usize {
    req.headers
        .get_all("Prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .trim()
                .parse()
                .ok()
        })
        .filter(|n: &usize| (1..=999).contains(n))
        .unwrap_or(query::DEFAULT_TOP)
}

/// `GET /users/delta`.
pub(crate) fn delta(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::USERS_READ)?;
    let bad_token = || {
        // [I] Graph answers an unusable delta token with 400 (an expired one: 410 resyncRequired).
        GraphError::bad_request(
            "Request_BadRequest",
            "Badly formed or unknown delta or skip token.",
        )
    };
    let tenant = sim.read();
    let mut state = if let Some(token) = options.skiptoken.as_deref() {
        decode_delta(token).ok_or_else(bad_token)?
    } else if let Some(token) = options.deltatoken.as_deref() {
        let mut s = decode_delta(token).ok_or_else(bad_token)?;
        // A delta link starts a new round: from where the last one ended to now.
        s.since = s.upto;
        s.upto = tenant.change_seq;
        s.after = None;
        s
    } else {
        if options.filter.is_some() {
            // [I] keybridge never filters delta; Graph only allows `id eq` here.
            return Err(GraphError::bad_request(
                "Request_UnsupportedQuery",
                "entra-sim's users delta does not support $filter.",
            ));
        }
        DeltaState {
            since: 0,
            upto: tenant.change_seq,
            after: None,
            select: validate_select(options.select.as_ref(), USER_PROPERTIES, "user")?,
        }
    };
    let page_size = max_page_size(req);
    let initial = state.since == 0;
    let in_round = |seq: u64| seq > state.since && seq <= state.upto;
    // Candidates: changed users and (after the initial round) hard-deleted ones, by id.
    enum Change<'a> {
        User(&'a User),
        Removed(Uuid, &'static str),
    }
    let mut changes: Vec<(Uuid, Change<'_>)> = Vec::new();
    let lower = match state.after {
        Some(id) => Bound::Excluded(id),
        None => Bound::Unbounded,
    };
    for (id, user) in tenant.users.range((lower, Bound::Unbounded)) {
        if !in_round(user.change_seq) {
            continue;
        }
        if user.deleted_date_time.is_some() {
            if !initial {
                changes.push((*id, Change::Removed(*id, "changed")));
            }
        } else {
            changes.push((*id, Change::User(user)));
        }
        if changes.len() > page_size * 2 {
            break;
        }
    }
    if !initial {
        for (id, seq) in tenant.tombstones.range((lower, Bound::Unbounded)) {
            if in_round(*seq) {
                changes.push((*id, Change::Removed(*id, "deleted")));
            }
        }
    }
    changes.sort_by_key(|(id, _)| *id);
    let more = changes.len() > page_size;
    changes.truncate(page_size);
    let select = state.select.clone();
    let value: Vec<Value> = changes
        .iter()
        .map(|(_, change)| match change {
            Change::User(u) => Value::Object(user_json(u, select.as_deref(), req.version)),
            Change::Removed(id, reason) => json!({"id": id, "@removed": {"reason": reason}}),
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(sim, req.version, "users", select.as_deref())),
    );
    let link_base = format!("{}/users/delta", base(sim, req.version));
    if more {
        state.after = changes.last().map(|(id, _)| *id);
        body.insert(
            "@odata.nextLink".into(),
            json!(format!("{link_base}?$skiptoken={}", encode_delta(&state))),
        );
    } else {
        state.after = None;
        state.since = state.upto;
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{link_base}?$deltatoken={}", encode_delta(&state))),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(GraphResponse::ok(Value::Object(body)))
}

fn group_value(group: &Group, property: &str) -> Value {
    match property {
        "id" => json!(group.id),
        "displayName" => json!(group.display_name),
        "description" => json!(group.description),
        "mailNickname" => json!(group.mail_nickname),
        "mailEnabled" => json!(group.mail_enabled),
        "securityEnabled" => json!(group.security_enabled),
        "groupTypes" => json!(group.group_types),
        "visibility" => json!(group.visibility),
        "securityIdentifier" => json!(group.security_identifier),
        "createdDateTime" | "renewedDateTime" => json!(graph_time(group.created_date_time)),
        "proxyAddresses" => json!([]),
        _ => Value::Null,
    }
}

/// Projects a group to JSON.
pub(crate) fn group_json(group: &Group, select: Option<&[String]>) -> Map<String, Value> {
    let mut out = Map::new();
    match select {
        Some(props) => {
            for p in props {
                out.insert(p.clone(), group_value(group, p));
            }
            out.entry("id").or_insert_with(|| json!(group.id));
        }
        None => {
            for p in GROUP_PROPERTIES {
                out.insert((*p).to_owned(), group_value(group, p));
            }
        }
    }
    out
}

fn group_matches(group: &Group, filter: Option<&Filter>) -> bool {
    let Some(filter) = filter else {
        return true;
    };
    let id = group.id.to_string();
    filter.matches(&|p| match p.to_ascii_lowercase().as_str() {
        "id" => query::Value::Text(&id),
        "displayname" => query::Value::Text(&group.display_name),
        "mailnickname" => query::Value::Text(&group.mail_nickname),
        "mailenabled" => query::Value::Bool(group.mail_enabled),
        "securityenabled" => query::Value::Bool(group.security_enabled),
        _ => query::Value::Null,
    })
}

/// `GET /groups`.
pub(crate) fn list_groups(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::GROUPS_READ)?;
    let select = validate_select(options.select.as_ref(), GROUP_PROPERTIES, "group")?;
    let top = options.page_size()?;
    let (filter, count) = list_rules(req, options, GROUP_FILTERABLE, "Group")?;
    let after = cursor(options, "g")?;
    let tenant = sim.read();
    let matching = |g: &&Group| group_matches(g, filter.as_ref());
    let (page, more) = take_page(
        tenant
            .groups
            .range(after_cursor(after))
            .map(|(_, g)| g)
            .filter(matching),
        top,
    );
    Ok(CollectionPage {
        set: "groups",
        select: select.as_deref(),
        total: count.then(|| tenant.groups.values().filter(matching).count()),
        next_link: page
            .last()
            .filter(|_| more)
            .map(|last| next_link(sim, req, options, "/groups", "g", last.id)),
        value: page
            .iter()
            .map(|g| Value::Object(group_json(g, select.as_deref())))
            .collect(),
    }
    .into_response(sim, req))
}

fn find_group<'a>(tenant: &'a Tenant, gid: &str) -> Result<&'a Group, GraphError> {
    Uuid::parse_str(gid)
        .ok()
        .and_then(|id| tenant.groups.get(&id))
        .ok_or_else(|| GraphError::not_found(gid))
}

/// `GET /groups/{id}`.
pub(crate) fn get_group(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    gid: &str,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::GROUPS_READ)?;
    let select = validate_select(options.select.as_ref(), GROUP_PROPERTIES, "group")?;
    let tenant = sim.read();
    let group = find_group(&tenant, gid)?;
    let mut body = group_json(group, select.as_deref());
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#groups/$entity",
            base(sim, req.version)
        )),
    );
    Ok(GraphResponse::ok(Value::Object(body)))
}

/// A new group answers member writes with 404 until it has "replicated" \[O\]; the delay is 0
/// unless set through the control API.
fn replicated(sim: &Sim, group: &Group, gid: &str) -> Result<(), GraphError> {
    let delay = sim
        .group_replication_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let age = sim.now() - group.created_date_time;
    if delay > 0 && age < time::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX)) {
        return Err(GraphError::not_found(gid));
    }
    Ok(())
}

fn invalid_property(name: &str) -> GraphError {
    GraphError::bad_request(
        "Request_BadRequest",
        format!("Invalid value specified for property '{name}' of resource 'Group'."),
    )
}

/// A valid `mailNickname`: ≤ 64 ASCII characters, none of `@ ( ) \ [ ] " ; : . < > ,` or space.
fn valid_mail_nickname(nick: &str) -> bool {
    !nick.is_empty()
        && nick.len() <= 64
        && nick
            .chars()
            .all(|c| c.is_ascii() && !c.is_ascii_control() && !"@()\\[]\";:.<>, ".contains(c))
}

/// Reads a directory-object reference URL (`…/directoryObjects/{id}` or `…/users/{id}`).
fn referenced_id(reference: &str) -> Option<Uuid> {
    let lower = reference.to_ascii_lowercase();
    let start = ["/directoryobjects/", "/users/"]
        .iter()
        .find_map(|marker| lower.rfind(marker).map(|i| i + marker.len()))?;
    let rest = &reference[start..];
    let id = rest.split(['/', '?']).next()?;
    let id = id.trim_start_matches("('").trim_end_matches("')");
    Uuid::parse_str(id).ok()
}

/// Validates `members@odata.bind` and returns the user ids to add.
fn members_to_bind(
    tenant: &Tenant,
    group: Option<&Group>,
    value: &Value,
) -> Result<Vec<Uuid>, GraphError> {
    let Some(urls) = value.as_array() else {
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            "Invalid value specified for property 'members@odata.bind': an array of URLs is expected.",
        ));
    };
    if urls.len() > MAX_BIND {
        // [I] wording; the limit of 20 per request is documented.
        return Err(GraphError::bad_request(
            "Request_BadRequest",
            format!(
                "The request adds {} members; at most {MAX_BIND} can be added in one request.",
                urls.len()
            ),
        ));
    }
    let mut ids = Vec::new();
    for url in urls {
        let text = url.as_str().unwrap_or("");
        let id = referenced_id(text).ok_or_else(|| {
            GraphError::bad_request(
                "Request_BadRequest",
                format!("Invalid object identifier '{text}'."),
            )
        })?;
        if tenant
            .users
            .get(&id)
            .is_none_or(|u| u.deleted_date_time.is_some())
        {
            return Err(GraphError::not_found(&id.to_string()));
        }
        if group.is_some_and(|g| g.members.contains(&id)) || ids.contains(&id) {
            return Err(duplicate_member());
        }
        ids.push(id);
    }
    Ok(ids)
}

fn duplicate_member() -> GraphError {
    GraphError::bad_request(
        "Request_BadRequest",
        "One or more added object references already exist for the following modified properties: 'members'.",
    )
}

/// `POST /groups`.
pub(crate) fn create_group(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::GROUPS_CREATE)?;
    let body = json_body(req)?;
    let Some(fields) = body.as_object() else {
        return Err(GraphError::bad_body("The body is not a JSON object."));
    };
    let display_name = fields
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= 256)
        .ok_or_else(|| invalid_property("displayName"))?;
    let mail_enabled = fields
        .get("mailEnabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid_property("mailEnabled"))?;
    let mail_nickname = fields
        .get("mailNickname")
        .and_then(Value::as_str)
        .filter(|s| valid_mail_nickname(s))
        .ok_or_else(|| invalid_property("mailNickname"))?;
    let security_enabled = fields
        .get("securityEnabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid_property("securityEnabled"))?;
    let group_types: Vec<String> = match fields.get("groupTypes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return Err(invalid_property("groupTypes")),
    };
    for key in fields.keys() {
        if !matches!(
            key.as_str(),
            "displayName"
                | "description"
                | "mailEnabled"
                | "mailNickname"
                | "securityEnabled"
                | "groupTypes"
                | "visibility"
                | "members@odata.bind"
                | "owners@odata.bind"
                | "@odata.type"
        ) {
            return Err(GraphError::bad_request(
                "Request_BadRequest",
                format!(
                    "Property '{key}' does not exist as a declared property or extension property."
                ),
            ));
        }
    }
    let mut tenant = sim.write();
    let members = match fields.get("members@odata.bind") {
        Some(v) => members_to_bind(&tenant, None, v)?,
        None => Vec::new(),
    };
    let id = Uuid::new_v4();
    let b = id.as_bytes();
    let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let group = Group {
        id,
        display_name: display_name.to_owned(),
        description: fields
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        mail_nickname: mail_nickname.to_owned(),
        mail_enabled,
        security_enabled,
        group_types,
        visibility: fields
            .get("visibility")
            .and_then(Value::as_str)
            .map(str::to_owned),
        security_identifier: format!("S-1-12-1-{}-{}-{}-{}", part(0), part(4), part(8), part(12)),
        created_date_time: sim.now(),
        members: members.into_iter().collect::<BTreeSet<_>>(),
    };
    let mut json_body = group_json(&group, None);
    tenant.groups.insert(id, group);
    drop(tenant);
    sim.changed();
    json_body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#groups/$entity",
            base(sim, req.version)
        )),
    );
    let mut response = GraphResponse::json(StatusCode::CREATED, Value::Object(json_body));
    response.headers.push((
        header::LOCATION,
        format!(
            "{}/directoryObjects/{id}/Microsoft.DirectoryServices.Group",
            base(sim, req.version)
        ),
    ));
    Ok(response)
}

/// `PATCH /groups/{id}` (properties and `members@odata.bind`, all or nothing).
pub(crate) fn patch_group(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    gid: &str,
) -> Result<GraphResponse, GraphError> {
    let body = json_body(req)?;
    let Some(fields) = body.as_object() else {
        return Err(GraphError::bad_body("The body is not a JSON object."));
    };
    let only_members = fields
        .keys()
        .all(|k| k == "members@odata.bind" || k == "@odata.type");
    if only_members {
        require(caller, roles::MEMBERS_WRITE)?;
    } else {
        require(caller, roles::GROUPS_WRITE)?;
    }
    let mut tenant = sim.write();
    let group = find_group(&tenant, gid)?.clone();
    if fields.contains_key("members@odata.bind") {
        replicated(sim, &group, gid)?;
    }
    let mut updated = group.clone();
    for (key, value) in fields {
        match key.as_str() {
            "@odata.type" => {}
            "displayName" => {
                updated.display_name = value
                    .as_str()
                    .filter(|s| !s.trim().is_empty() && s.chars().count() <= 256)
                    .ok_or_else(|| invalid_property("displayName"))?
                    .to_owned();
            }
            "description" => updated.description = value.as_str().map(str::to_owned),
            "mailNickname" => {
                updated.mail_nickname = value
                    .as_str()
                    .filter(|s| valid_mail_nickname(s))
                    .ok_or_else(|| invalid_property("mailNickname"))?
                    .to_owned();
            }
            "members@odata.bind" => {
                for id in members_to_bind(&tenant, Some(&group), value)? {
                    updated.members.insert(id);
                }
            }
            other => {
                return Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!(
                        "Property '{other}' does not exist as a declared property or extension property."
                    ),
                ));
            }
        }
    }
    tenant.groups.insert(group.id, updated);
    drop(tenant);
    sim.changed();
    Ok(GraphResponse::no_content())
}

/// `DELETE /groups/{id}`.
pub(crate) fn delete_group(
    sim: &Arc<Sim>,
    caller: &Caller,
    gid: &str,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::GROUPS_WRITE)?;
    let mut tenant = sim.write();
    let id = find_group(&tenant, gid)?.id;
    tenant.groups.remove(&id);
    drop(tenant);
    sim.changed();
    Ok(GraphResponse::no_content())
}

/// `GET /groups/{id}/members` (and `/members/microsoft.graph.user`).
pub(crate) fn list_members(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    gid: &str,
    options: &Options,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::GROUPS_READ)?;
    let select = validate_select(options.select.as_ref(), USER_PROPERTIES, "user")?;
    let top = options.page_size()?;
    let (filter, count) = list_rules(req, options, USER_FILTERABLE, "User")?;
    let after = cursor(options, "m")?;
    let tenant = sim.read();
    let group = find_group(&tenant, gid)?;
    let cast = req.path.ends_with("microsoft.graph.user");
    let members = group
        .members
        .range(after_cursor(after))
        .filter_map(|id| tenant.users.get(id))
        .filter(|u| u.deleted_date_time.is_none() && user_matches(u, filter.as_ref()));
    let (page, more) = take_page(members, top);
    let next_link = page.last().filter(|_| more).map(|last| {
        let path = if cast {
            format!("/groups/{}/members/microsoft.graph.user", group.id)
        } else {
            format!("/groups/{}/members", group.id)
        };
        next_link(sim, req, options, &path, "m", last.id)
    });
    Ok(CollectionPage {
        set: if cast { "users" } else { "directoryObjects" },
        select: select.as_deref(),
        total: count.then_some(group.members.len()),
        next_link,
        value: page
            .iter()
            .map(|u| {
                let mut item = user_json(u, select.as_deref(), req.version);
                if !cast {
                    item.insert("@odata.type".into(), json!("#microsoft.graph.user"));
                }
                Value::Object(item)
            })
            .collect(),
    }
    .into_response(sim, req))
}

/// `POST /groups/{id}/members/$ref`.
pub(crate) fn add_member(
    sim: &Arc<Sim>,
    req: &GraphRequest,
    caller: &Caller,
    gid: &str,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::MEMBERS_WRITE)?;
    let body = json_body(req)?;
    let reference = body
        .get("@odata.id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GraphError::bad_request(
                "Request_BadRequest",
                "Invalid object identifier: the body needs an '@odata.id' URL.",
            )
        })?;
    let member = referenced_id(reference).ok_or_else(|| {
        GraphError::bad_request(
            "Request_BadRequest",
            format!("Invalid object identifier '{reference}'."),
        )
    })?;
    let mut tenant = sim.write();
    let group_id = find_group(&tenant, gid)?.id;
    replicated(sim, find_group(&tenant, gid)?, gid)?;
    if tenant
        .users
        .get(&member)
        .is_none_or(|u| u.deleted_date_time.is_some())
    {
        return Err(GraphError::not_found(&member.to_string()));
    }
    let group = tenant
        .groups
        .get_mut(&group_id)
        .ok_or_else(|| GraphError::not_found(gid))?;
    if !group.members.insert(member) {
        return Err(duplicate_member());
    }
    drop(tenant);
    sim.changed();
    Ok(GraphResponse::no_content())
}

/// `DELETE /groups/{id}/members/{memberId}/$ref`.
pub(crate) fn remove_member(
    sim: &Arc<Sim>,
    caller: &Caller,
    gid: &str,
    member: &str,
) -> Result<GraphResponse, GraphError> {
    require(caller, roles::MEMBERS_WRITE)?;
    let mut tenant = sim.write();
    let group_id = find_group(&tenant, gid)?.id;
    replicated(sim, find_group(&tenant, gid)?, gid)?;
    let member_id = Uuid::parse_str(member).map_err(|_| GraphError::not_found(member))?;
    let group = tenant
        .groups
        .get_mut(&group_id)
        .ok_or_else(|| GraphError::not_found(gid))?;
    if !group.members.remove(&member_id) {
        return Err(GraphError::not_found(member));
    }
    drop(tenant);
    sim.changed();
    Ok(GraphResponse::no_content())
}
