//! Directory users (`users` table): upsert from sync, state, and the paged user list.
//!
//! The list is keyset-paginated: each (tab, sort) pair has its own index, so a page is one
//! index range scan whatever its depth, also at 100,000 users.

use keybridge_core::{EntraStatus, UserState};
use sqlx::any::AnyRow;

use std::collections::{HashMap, HashSet};

use crate::db::{Db, Dialect};
use crate::error::{Result, StoreError};
use crate::rows::{bool_int, corrupt, flag, int, new_id, opt_text, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

/// A user as keybridge knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: String,
    /// Integration (tenant connection).
    pub integration_id: String,
    /// Entra object id.
    pub entra_object_id: String,
    /// User principal name.
    pub upn: String,
    /// Mail, when Entra has one.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Enrolment state.
    pub state: UserState,
    /// The user unpaired their phone (a warning on Pending).
    pub unpaired: bool,
    /// The account as Entra last reported it.
    pub entra_status: EntraStatus,
    /// Last sign-in or device activity.
    pub last_active_at: Option<Timestamp>,
    /// When `entra_status` was last checked.
    pub status_checked_at: Option<Timestamp>,
    /// Why provisioning last failed, shown per user.
    pub provisioning_error: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A user as the directory sync reads it from Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// Entra object id.
    pub entra_object_id: String,
    /// UPN.
    pub upn: String,
    /// Mail.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// `accountEnabled`.
    pub account_enabled: bool,
}

/// Sort column of the user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    /// By UPN (the Username column).
    #[default]
    Upn,
    /// By display name, case-insensitive.
    DisplayName,
    /// By last activity (never active sorts first ascending).
    LastActive,
}

/// Where the next page starts. Opaque: pass its text form (`to_string()`) to clients and parse
/// it back with `str::parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    key: CursorKey,
    id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CursorKey {
    Text(String),
    Int(i64),
}

impl std::fmt::Display for UserCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            CursorKey::Text(t) => write!(f, "t.{}.{}", hex::encode(t), self.id),
            CursorKey::Int(i) => write!(f, "i.{i}.{}", self.id),
        }
    }
}

impl std::str::FromStr for UserCursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<UserCursor> {
        let bad = || StoreError::Invalid {
            field: "cursor",
            reason: "not a cursor returned by the user list".to_string(),
        };
        let mut parts = s.splitn(3, '.');
        let (kind, key, id) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let key = match kind {
            "t" => CursorKey::Text(
                String::from_utf8(hex::decode(key).map_err(|_| bad())?).map_err(|_| bad())?,
            ),
            "i" => CursorKey::Int(key.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        if id.is_empty() {
            return Err(bad());
        }
        Ok(UserCursor {
            key,
            id: id.to_string(),
        })
    }
}

/// A user list request.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Integration.
    pub integration_id: String,
    /// Tab (None: every state).
    pub state: Option<UserState>,
    /// Case-insensitive substring of UPN, e-mail or display name.
    pub search: Option<String>,
    /// Sort column.
    pub sort: UserSort,
    /// Descending order.
    pub descending: bool,
    /// Continue after this cursor (from the previous page's `next`).
    pub after: Option<UserCursor>,
    /// Page size (1..=500).
    pub limit: u32,
}

impl UserQuery {
    /// First page of `state` for an integration, by UPN, 50 per page.
    pub fn new(integration_id: impl Into<String>, state: Option<UserState>) -> UserQuery {
        UserQuery {
            integration_id: integration_id.into(),
            state,
            search: None,
            sort: UserSort::Upn,
            descending: false,
            after: None,
            limit: 50,
        }
    }
}

/// One row of the user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListItem {
    /// The user.
    pub user: User,
    /// Paired phones.
    pub device_count: i64,
}

/// A page of the user list.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Rows.
    pub items: Vec<UserListItem>,
    /// Cursor of the next page, when there is one.
    pub next: Option<UserCursor>,
}

/// Users per state (the tab counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Pending.
    pub pending: i64,
    /// Paired with keybridge.
    pub paired_with_keybridge: i64,
    /// Paired with Entra.
    pub paired_with_entra: i64,
}

/// What an upsert batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertSummary {
    /// New users.
    pub inserted: usize,
    /// Users already known (their directory fields refreshed).
    pub updated: usize,
}

/// Repository for users.
pub struct Users<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! user_cols {
    () => {
        "u.id, u.integration_id, u.entra_object_id, u.upn, u.email, u.display_name, u.state, \
         u.unpaired, u.entra_status, u.last_active_at, u.status_checked_at, u.provisioning_error, \
         u.created_at, u.updated_at"
    };
}

macro_rules! list_sql {
    ($from:expr, $state:expr, $after:expr, $order:expr, $limit:literal) => {
        concat!(
            "SELECT ",
            user_cols!(),
            ", (SELECT COUNT(*) FROM phones p WHERE p.user_id = u.id) AS device_count FROM ",
            $from,
            " WHERE u.integration_id = $1 ",
            "AND ($2 = '' OR u.search_text LIKE $2 ESCAPE '\\') ",
            $state,
            $after,
            " ORDER BY ",
            $order,
            " LIMIT ",
            $limit
        )
    };
}

/// Eight constant queries per sort column, indexed by `desc * 4 + state * 2 + after`.
/// Parameters: $1 integration, $2 search pattern, then the numbered ones given ($a..$d, in
/// order: [state], [cursor key, cursor id], limit).
macro_rules! list_variants {
    ($from:expr, $col:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        [
            list_sql!($from, "", "", concat!($col, " ASC, u.id ASC"), $a),
            list_sql!(
                $from,
                "",
                concat!("AND (", $col, ", u.id) > (", $a, ", ", $b, ")"),
                concat!($col, " ASC, u.id ASC"),
                $c
            ),
            list_sql!(
                $from,
                concat!("AND u.state = ", $a, " "),
                "",
                concat!($col, " ASC, u.id ASC"),
                $b
            ),
            list_sql!(
                $from,
                concat!("AND u.state = ", $a, " "),
                concat!("AND (", $col, ", u.id) > (", $b, ", ", $c, ")"),
                concat!($col, " ASC, u.id ASC"),
                $d
            ),
            list_sql!($from, "", "", concat!($col, " DESC, u.id DESC"), $a),
            list_sql!(
                $from,
                "",
                concat!("AND (", $col, ", u.id) < (", $a, ", ", $b, ")"),
                concat!($col, " DESC, u.id DESC"),
                $c
            ),
            list_sql!(
                $from,
                concat!("AND u.state = ", $a, " "),
                "",
                concat!($col, " DESC, u.id DESC"),
                $b
            ),
            list_sql!(
                $from,
                concat!("AND u.state = ", $a, " "),
                concat!("AND (", $col, ", u.id) < (", $b, ", ", $c, ")"),
                concat!($col, " DESC, u.id DESC"),
                $d
            ),
        ]
    };
}

macro_rules! list_families {
    ($from:expr, $a:literal, $b:literal, $c:literal, $d:literal) => {
        [
            list_variants!($from, "u.upn", $a, $b, $c, $d),
            list_variants!($from, "u.display_name_sort", $a, $b, $c, $d),
            list_variants!($from, "u.last_active_at", $a, $b, $c, $d),
        ]
    };
}

/// The list over every user of the integration, by [`sort_column`].
const LIST: [[&str; 8]; 3] = list_families!("users u", "$3", "$4", "$5", "$6");

/// SQLite only: the list over the users whose search text holds the search term by the
/// trigram index (`user_search`, migration 0012), bound as $3 (`[state]`, cursor and limit
/// move up by one). The outer LIKE still decides, so the result is the scan's; the cross join
/// makes SQLite start from the few index hits and sort them instead of walking a sort index.
const LIST_INDEXED: [[&str; 8]; 3] = list_families!(
    "(SELECT k.user_id FROM user_search JOIN user_search_keys k ON k.key = user_search.rowid \
     WHERE user_search MATCH $3) AS hit CROSS JOIN users u ON u.id = hit.user_id",
    "$4",
    "$5",
    "$6",
    "$7"
);

/// Up to this many index hits the list starts from them (and sorts them); a term found in
/// more users is common enough that walking the sort index with the LIKE meets a page sooner.
const INDEXED_SEARCH_MAX_HITS: i64 = 2_000;

/// The trigram index answers terms of this many characters or more.
const INDEXED_SEARCH_MIN_CHARS: usize = 3;

const UPSERT_BATCH: usize = 500;

macro_rules! upsert_sql {
    ($select:literal) => {
        concat!(
            "INSERT INTO users (id, integration_id, entra_object_id, upn, email, display_name, ",
            "display_name_sort, search_text, state, entra_status, created_at, updated_at) ",
            $select,
            " ON CONFLICT (integration_id, entra_object_id) DO UPDATE SET upn = excluded.upn, ",
            "email = excluded.email, display_name = excluded.display_name, ",
            "display_name_sort = excluded.display_name_sort, search_text = excluded.search_text, ",
            "entra_status = excluded.entra_status, updated_at = excluded.updated_at RETURNING id"
        )
    };
}

// `WHERE true`: SQLite needs it to tell an upsert's ON CONFLICT from a join constraint.
const UPSERT_SQLITE: &str = upsert_sql!(
    "SELECT json_extract(j.value, '$.id'), $1, json_extract(j.value, '$.oid'), \
     json_extract(j.value, '$.upn'), json_extract(j.value, '$.email'), \
     json_extract(j.value, '$.name'), json_extract(j.value, '$.sort'), \
     json_extract(j.value, '$.search'), 'pending', json_extract(j.value, '$.status'), $2, $2 \
     FROM json_each($3) AS j WHERE true"
);
const UPSERT_POSTGRES: &str = upsert_sql!(
    "SELECT r.id, $1, r.oid, r.upn, r.email, r.name, r.sort, r.search, 'pending', r.status, $2, $2 \
     FROM json_to_recordset($3::json) AS r(id text, oid text, upn text, email text, name text, \
     sort text, search text, status text)"
);

macro_rules! select_many_sql {
    ($ids:literal) => {
        concat!(
            "SELECT ",
            user_cols!(),
            ", (SELECT COUNT(*) FROM phones p WHERE p.user_id = u.id) AS device_count \
             FROM users u WHERE u.integration_id = $1 AND ",
            $ids
        )
    };
}

/// Users by id, the ids passed as one JSON array (constant SQL for any number of them).
/// PostgreSQL gets an array (`= ANY`): one scan of the primary-key index for all the ids.
const SELECT_MANY_SQLITE: &str = select_many_sql!("u.id IN (SELECT value FROM json_each($2))");
const SELECT_MANY_POSTGRES: &str =
    select_many_sql!("u.id = ANY (ARRAY(SELECT json_array_elements_text($2::json)))");

const SELECT_BY_ID: &str = concat!("SELECT ", user_cols!(), " FROM users u WHERE u.id = $1");
const SELECT_BY_UPN: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users u WHERE u.integration_id = $1 AND u.upn = $2"
);
const SELECT_BY_OBJECT_ID: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users u WHERE u.integration_id = $1 AND u.entra_object_id = $2"
);

pub(crate) fn parse_state(value: &str) -> Result<UserState> {
    match value {
        "pending" => Ok(UserState::Pending),
        "paired_with_keybridge" => Ok(UserState::PairedWithKeybridge),
        "paired_with_entra" => Ok(UserState::PairedWithEntra),
        other => Err(corrupt("users", "state", other)),
    }
}

fn parse_status(value: &str) -> Result<EntraStatus> {
    match value {
        "active" => Ok(EntraStatus::Active),
        "disabled" => Ok(EntraStatus::Disabled),
        "not_found" => Ok(EntraStatus::NotFound),
        other => Err(corrupt("users", "entra_status", other)),
    }
}

fn decode(row: &AnyRow) -> Result<User> {
    let last_active = int(row, "last_active_at")?;
    Ok(User {
        id: text(row, "id")?,
        integration_id: text(row, "integration_id")?,
        entra_object_id: text(row, "entra_object_id")?,
        upn: text(row, "upn")?,
        email: opt_text(row, "email")?,
        display_name: text(row, "display_name")?,
        state: parse_state(&text(row, "state")?)?,
        unpaired: flag(row, "unpaired")?,
        entra_status: parse_status(&text(row, "entra_status")?)?,
        // 0 means never: the column is NOT NULL so that it can sort in an index.
        last_active_at: (last_active != 0).then_some(Timestamp::from_unix_millis(last_active)),
        status_checked_at: opt_ts(row, "status_checked_at")?,
        provisioning_error: opt_text(row, "provisioning_error")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn decode_item(row: &AnyRow) -> Result<UserListItem> {
    Ok(UserListItem {
        user: decode(row)?,
        device_count: int(row, "device_count")?,
    })
}

fn search_text(upn: &str, email: Option<&str>, display_name: &str) -> String {
    format!("{} {} {}", upn, email.unwrap_or(""), display_name).to_lowercase()
}

fn like_pattern(search: &str) -> String {
    let mut pattern = String::from("%");
    for c in search.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Users<'_> {
    /// Inserts or refreshes directory users of one integration in one transaction. New users
    /// start Pending; known users keep their state and get their directory fields and
    /// `entra_status` (active or disabled) refreshed. A user listed twice counts once (the
    /// last entry wins).
    ///
    /// Rows go in batches of 500 per statement, passed as one JSON parameter and expanded by
    /// the database (`json_each` / `json_to_recordset`), so the SQL stays constant.
    pub async fn upsert_from_directory(
        &mut self,
        integration_id: &str,
        users: &[DirectoryUser],
    ) -> Result<UpsertSummary> {
        let now = Timestamp::now().unix_millis();
        let mut latest: HashMap<&str, &DirectoryUser> = HashMap::with_capacity(users.len());
        let mut order: Vec<&str> = Vec::with_capacity(users.len());
        for u in users {
            require("Entra object id", &u.entra_object_id)?;
            require("UPN", &u.upn)?;
            if latest.insert(&u.entra_object_id, u).is_none() {
                order.push(&u.entra_object_id);
            }
        }
        let sql = match self.db.dialect() {
            Dialect::Sqlite => UPSERT_SQLITE,
            Dialect::Postgres => UPSERT_POSTGRES,
        };
        let mut summary = UpsertSummary::default();
        let mut tx = self.db.begin().await?;
        for chunk in order.chunks(UPSERT_BATCH) {
            let mut new_ids = HashSet::with_capacity(chunk.len());
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .filter_map(|oid| latest.get(oid))
                .map(|u| {
                    let id = new_id();
                    new_ids.insert(id.clone());
                    let status = if u.account_enabled {
                        EntraStatus::Active
                    } else {
                        EntraStatus::Disabled
                    };
                    serde_json::json!({
                        "id": id,
                        "oid": u.entra_object_id,
                        "upn": u.upn,
                        "email": u.email,
                        "name": u.display_name,
                        "sort": u.display_name.to_lowercase(),
                        "search": search_text(&u.upn, u.email.as_deref(), &u.display_name),
                        "status": status.as_str(),
                    })
                })
                .collect();
            let returned: Vec<String> = sqlx::query_scalar(sql)
                .bind(integration_id)
                .bind(now)
                .bind(serde_json::Value::Array(rows).to_string())
                .fetch_all(&mut *tx)
                .await?;
            for id in returned {
                if new_ids.contains(&id) {
                    summary.inserted += 1;
                } else {
                    summary.updated += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(summary)
    }

    /// One user by row id.
    pub async fn get(&mut self, id: &str) -> Result<User> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(SELECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    /// The users of an integration among `ids`, with their phone counts, in one query, in the
    /// order of `ids` (for refreshing the rows a page shows). Unknown ids and users of another
    /// integration are left out; at most 500 ids.
    pub async fn get_many(
        &mut self,
        integration_id: &str,
        ids: &[&str],
    ) -> Result<Vec<UserListItem>> {
        if ids.len() > 500 {
            return Err(StoreError::Invalid {
                field: "user ids",
                reason: format!("{} are more than 500", ids.len()),
            });
        }
        let sql = match self.db.dialect() {
            Dialect::Sqlite => SELECT_MANY_SQLITE,
            Dialect::Postgres => SELECT_MANY_POSTGRES,
        };
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(sql)
            .bind(integration_id)
            .bind(serde_json::Value::from(ids.to_vec()).to_string())
            .fetch_all(&mut *conn)
            .await?;
        let mut found = rows
            .iter()
            .map(|row| decode_item(row).map(|item| (item.user.id.clone(), item)))
            .collect::<Result<HashMap<String, UserListItem>>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(*id)).collect())
    }

    /// One user by UPN within an integration.
    pub async fn find_by_upn(&mut self, integration_id: &str, upn: &str) -> Result<Option<User>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(SELECT_BY_UPN)
            .bind(integration_id)
            .bind(upn)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// One user by Entra object id within an integration.
    pub async fn find_by_object_id(
        &mut self,
        integration_id: &str,
        object_id: &str,
    ) -> Result<Option<User>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(SELECT_BY_OBJECT_ID)
            .bind(integration_id)
            .bind(object_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Sets the state and the `unpaired` flag. Transition rules live in `keybridge-core`.
    pub async fn set_state(&mut self, id: &str, state: UserState, unpaired: bool) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE users SET state = $1, unpaired = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(bool_int(unpaired))
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        user_found(done.rows_affected(), id)
    }

    /// Records what Entra said about the account.
    pub async fn set_entra_status(
        &mut self,
        id: &str,
        status: EntraStatus,
        checked_at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE users SET entra_status = $1, status_checked_at = $2, updated_at = $2 WHERE id = $3",
        )
        .bind(status.as_str())
        .bind(checked_at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        user_found(done.rows_affected(), id)
    }

    /// Marks users of an integration that the last full sync did not see as not found in
    /// Entra. Returns how many changed.
    pub async fn mark_unseen_not_found(
        &mut self,
        integration_id: &str,
        synced_before: Timestamp,
    ) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE users SET entra_status = 'not_found', status_checked_at = $1 \
             WHERE integration_id = $2 AND updated_at < $3 AND entra_status <> 'not_found'",
        )
        .bind(Timestamp::now().unix_millis())
        .bind(integration_id)
        .bind(synced_before.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records activity.
    pub async fn set_last_active(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("UPDATE users SET last_active_at = $1 WHERE id = $2")
            .bind(at.unix_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        user_found(done.rows_affected(), id)
    }

    /// Sets or clears the visible provisioning failure reason.
    pub async fn set_provisioning_error(&mut self, id: &str, error: Option<&str>) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done =
            sqlx::query("UPDATE users SET provisioning_error = $1, updated_at = $2 WHERE id = $3")
                .bind(error)
                .bind(Timestamp::now().unix_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        user_found(done.rows_affected(), id)
    }

    /// Deletes a user and, by cascade, their phones, credentials and invites.
    pub async fn delete(&mut self, id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        user_found(done.rows_affected(), id)
    }

    /// One page of the user list.
    pub async fn list(&mut self, query: &UserQuery) -> Result<UserPage> {
        if query.limit == 0 || query.limit > 500 {
            return Err(StoreError::Invalid {
                field: "limit",
                reason: format!("{} is outside 1..=500", query.limit),
            });
        }
        let term = query
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let indexed = match term {
            Some(term) => self.indexed_search(term).await?,
            None => None,
        };
        let family = if indexed.is_some() {
            &LIST_INDEXED
        } else {
            &LIST
        };
        let index = usize::from(query.descending) * 4
            + usize::from(query.state.is_some()) * 2
            + usize::from(query.after.is_some());
        let sql = family[sort_column(query.sort)][index];
        let mut q = sqlx::query(sql)
            .bind(&query.integration_id)
            .bind(term.map(like_pattern).unwrap_or_default());
        if let Some(phrase) = indexed {
            q = q.bind(phrase);
        }
        if let Some(state) = query.state {
            q = q.bind(state.as_str());
        }
        if let Some(after) = &query.after {
            q = match (&after.key, query.sort) {
                (CursorKey::Int(k), UserSort::LastActive) => q.bind(*k),
                (CursorKey::Text(k), UserSort::Upn | UserSort::DisplayName) => q.bind(k.clone()),
                _ => {
                    return Err(StoreError::Invalid {
                        field: "cursor",
                        reason: "it belongs to a list with another sort order".to_string(),
                    });
                }
            };
            q = q.bind(after.id.clone());
        }
        q = q.bind(i64::from(query.limit) + 1);
        let mut conn = self.db.conn().await?;
        let rows = q.fetch_all(&mut *conn).await?;
        let mut items = rows.iter().map(decode_item).collect::<Result<Vec<_>>>()?;
        let next = if items.len() > query.limit as usize {
            items.truncate(query.limit as usize);
            items.last().map(|last| UserCursor {
                key: match query.sort {
                    UserSort::Upn => CursorKey::Text(last.user.upn.clone()),
                    UserSort::DisplayName => CursorKey::Text(last.user.display_name.to_lowercase()),
                    UserSort::LastActive => {
                        CursorKey::Int(last.user.last_active_at.map_or(0, Timestamp::unix_millis))
                    }
                },
                id: last.user.id.clone(),
            })
        } else {
            None
        };
        Ok(UserPage { items, next })
    }

    /// The trigram index query for a search term (SQLite), when the index applies to it and
    /// finds few enough users for the list to start from them; `None`: the list scans.
    async fn indexed_search(&mut self, term: &str) -> Result<Option<String>> {
        let term = term.to_lowercase();
        if self.db.dialect() != Dialect::Sqlite || term.chars().count() < INDEXED_SEARCH_MIN_CHARS {
            return Ok(None);
        }
        // One FTS5 string: the whole term, quotes doubled, matches it as a substring.
        let phrase = format!("\"{}\"", term.replace('"', "\"\""));
        let mut conn = self.db.conn().await?;
        let hits: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM user_search WHERE user_search MATCH $1 LIMIT $2)",
        )
        .bind(&phrase)
        .bind(INDEXED_SEARCH_MAX_HITS + 1)
        .fetch_one(&mut *conn)
        .await?;
        Ok((hits <= INDEXED_SEARCH_MAX_HITS).then_some(phrase))
    }

    /// Users per state in an integration (the tab counts), as triggers keep them in
    /// `user_counts` with every change to `users` (migration 0011): a few rows read, not a
    /// count of the users.
    pub async fn count_by_state(&mut self, integration_id: &str) -> Result<StateCounts> {
        let in_transaction = self.db.in_transaction();
        let postgres = self.db.dialect() == Dialect::Postgres;
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS parts, \
             CAST(COALESCE(SUM(pending), 0) AS BIGINT) AS pending, \
             CAST(COALESCE(SUM(paired_with_keybridge), 0) AS BIGINT) AS paired_with_keybridge, \
             CAST(COALESCE(SUM(paired_with_entra), 0) AS BIGINT) AS paired_with_entra \
             FROM user_counts WHERE integration_id = $1",
        )
        .bind(integration_id)
        .fetch_one(&mut *conn)
        .await?;
        let counts = StateCounts {
            pending: int(&row, "pending")?,
            paired_with_keybridge: int(&row, "paired_with_keybridge")?,
            paired_with_entra: int(&row, "paired_with_entra")?,
        };
        // PostgreSQL appends a row per changing statement; folding them keeps this read short.
        // Outside a caller's transaction only (a failed statement would abort it). The counts
        // above are right either way, so a failed fold (the integration deleted meanwhile)
        // is only logged; the next read folds again.
        if postgres && !in_transaction && int(&row, "parts")? > COUNT_PARTS_BEFORE_FOLD {
            let folded = sqlx::query(FOLD_COUNTS)
                .bind(integration_id)
                .execute(&mut *conn)
                .await;
            if let Err(error) = folded {
                tracing::warn!(integration = integration_id, %error, "folding the user counts failed");
            }
        }
        Ok(counts)
    }
}

/// PostgreSQL: the rows of `user_counts` an integration may have before a read folds them.
const COUNT_PARTS_BEFORE_FOLD: i64 = 16;

/// PostgreSQL: folds an integration's count rows into one. Concurrent folds take disjoint sets
/// of rows (a row another fold deleted is skipped), and rows committed meanwhile stay.
const FOLD_COUNTS: &str = "WITH folded AS (DELETE FROM user_counts WHERE integration_id = $1 \
     RETURNING pending, paired_with_keybridge, paired_with_entra) \
     INSERT INTO user_counts (integration_id, pending, paired_with_keybridge, paired_with_entra) \
     SELECT $1, SUM(pending), SUM(paired_with_keybridge), SUM(paired_with_entra) FROM folded \
     HAVING COUNT(*) > 0";

/// The position of a sort column's queries in [`LIST`] and [`LIST_INDEXED`].
fn sort_column(sort: UserSort) -> usize {
    match sort {
        UserSort::Upn => 0,
        UserSort::DisplayName => 1,
        UserSort::LastActive => 2,
    }
}

fn user_found(rows: u64, id: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::not_found("user", id))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for c in [
            UserCursor {
                key: CursorKey::Text("a.b@x.com".into()),
                id: "0190-ab".into(),
            },
            UserCursor {
                key: CursorKey::Int(-5),
                id: "x".into(),
            },
        ] {
            assert_eq!(c.to_string().parse::<UserCursor>().unwrap(), c);
        }
        for bad in ["", "t", "t.zz.id", "q.1.id", "i.x.id", "i.1."] {
            assert!(bad.parse::<UserCursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(" Ab_c%\\ "), "%ab\\_c\\%\\\\%");
    }

    #[test]
    fn list_queries_number_their_parameters_in_bind_order() {
        let (upn, active) = (
            sort_column(UserSort::Upn),
            sort_column(UserSort::LastActive),
        );
        assert!(LIST[upn][0].ends_with("LIMIT $3"));
        assert!(LIST[upn][3].contains("u.state = $3") && LIST[upn][3].contains("($4, $5)"));
        assert!(LIST[active][7].contains("u.last_active_at DESC, u.id DESC LIMIT $6"));
        assert!(LIST_INDEXED[upn][0].contains("MATCH $3") && LIST_INDEXED[upn][0].ends_with("$4"));
        assert!(
            LIST_INDEXED[upn][3].contains("u.state = $4")
                && LIST_INDEXED[upn][3].contains("($5, $6)")
                && LIST_INDEXED[upn][3].ends_with("LIMIT $7")
        );
    }
}
