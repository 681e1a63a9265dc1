//! The phones' inbox (`device_requests` table): provisioning requests and sign-in approval
//! requests waiting for a device. Kept in the database so that any server instance can
//! create a request and any instance can deliver it and take the answer.
//!
//! A request is `pending`, then `delivered` (the device fetched it), then answered once
//! (`approved` with the device's response, or `denied`), unless it `expired` or was
//! `cancelled` first. The device is identified by its key; one device may hold several
//! pairings (several accounts), and its inbox spans them all.

use std::time::Duration;

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{corrupt, new_id, opt_text, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

/// What the device is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequestKind {
    /// Create a credential for Entra (from Graph's creation options).
    Provision,
    /// Approve a sign-in and sign an assertion.
    SignIn,
}

impl DeviceRequestKind {
    fn as_str(self) -> &'static str {
        match self {
            DeviceRequestKind::Provision => "provision",
            DeviceRequestKind::SignIn => "sign_in",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequestStatus {
    /// Waiting for the device.
    Pending,
    /// Fetched by the device, not answered yet.
    Delivered,
    /// Answered with approval (and a response).
    Approved,
    /// Answered with a refusal.
    Denied,
    /// Not answered in time.
    Expired,
    /// Withdrawn by the server.
    Cancelled,
}

impl DeviceRequestStatus {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRequestStatus::Pending => "pending",
            DeviceRequestStatus::Delivered => "delivered",
            DeviceRequestStatus::Approved => "approved",
            DeviceRequestStatus::Denied => "denied",
            DeviceRequestStatus::Expired => "expired",
            DeviceRequestStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<DeviceRequestStatus> {
        Ok(match s {
            "pending" => DeviceRequestStatus::Pending,
            "delivered" => DeviceRequestStatus::Delivered,
            "approved" => DeviceRequestStatus::Approved,
            "denied" => DeviceRequestStatus::Denied,
            "expired" => DeviceRequestStatus::Expired,
            "cancelled" => DeviceRequestStatus::Cancelled,
            other => return Err(corrupt("device_requests", "status", other)),
        })
    }
}

/// A request in a device's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRequest {
    /// Id.
    pub id: String,
    /// The pairing (phone row) it is for.
    pub phone_id: String,
    /// The account (user) it is for.
    pub user_id: String,
    /// The device's key.
    pub device_key: String,
    /// What is asked.
    pub kind: DeviceRequestKind,
    /// What the device needs (creation options, challenge, computer name...).
    pub payload: serde_json::Value,
    /// The workstation asking, for sign-ins.
    pub workstation_id: Option<String>,
    /// Status.
    pub status: DeviceRequestStatus,
    /// The device's answer.
    pub response: Option<serde_json::Value>,
    /// Created.
    pub created_at: Timestamp,
    /// Must be answered before.
    pub expires_at: Timestamp,
    /// First fetched by the device.
    pub delivered_at: Option<Timestamp>,
    /// Answered.
    pub answered_at: Option<Timestamp>,
}

/// Input for [`DeviceRequests::create`].
#[derive(Debug, Clone)]
pub struct NewDeviceRequest {
    /// The pairing (phone row).
    pub phone_id: String,
    /// What is asked.
    pub kind: DeviceRequestKind,
    /// Payload.
    pub payload: serde_json::Value,
    /// Workstation, for sign-ins.
    pub workstation_id: Option<String>,
    /// How long the device has.
    pub ttl: Duration,
}

/// Repository for the device inbox.
pub struct DeviceRequests<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! request_cols {
    () => {
        "id, phone_id, user_id, device_key, kind, payload, workstation_id, status, response, \
         created_at, expires_at, delivered_at, answered_at"
    };
}

fn decode(row: &AnyRow) -> Result<DeviceRequest> {
    let kind = text(row, "kind")?;
    let payload = text(row, "payload")?;
    let response = opt_text(row, "response")?;
    Ok(DeviceRequest {
        id: text(row, "id")?,
        phone_id: text(row, "phone_id")?,
        user_id: text(row, "user_id")?,
        device_key: text(row, "device_key")?,
        kind: match kind.as_str() {
            "provision" => DeviceRequestKind::Provision,
            "sign_in" => DeviceRequestKind::SignIn,
            other => return Err(corrupt("device_requests", "kind", other)),
        },
        payload: serde_json::from_str(&payload)
            .map_err(|_| corrupt("device_requests", "payload", &payload))?,
        workstation_id: opt_text(row, "workstation_id")?,
        status: DeviceRequestStatus::parse(&text(row, "status")?)?,
        response: response
            .map(|r| {
                serde_json::from_str(&r).map_err(|_| corrupt("device_requests", "response", &r))
            })
            .transpose()?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        delivered_at: opt_ts(row, "delivered_at")?,
        answered_at: opt_ts(row, "answered_at")?,
    })
}

impl DeviceRequests<'_> {
    /// Puts a request in the inbox of the device behind `phone_id`.
    pub async fn create(&mut self, new: NewDeviceRequest) -> Result<DeviceRequest> {
        self.create_with_id(&new_id(), new).await
    }

    /// Like [`DeviceRequests::create`], under an id the caller chose: the device protocol's
    /// `request_id`, which the payload carries too and the device answers to.
    pub async fn create_with_id(
        &mut self,
        id: &str,
        new: NewDeviceRequest,
    ) -> Result<DeviceRequest> {
        require("request id", id)?;
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO device_requests (id, phone_id, user_id, device_key, kind, payload, ",
            "workstation_id, status, created_at, expires_at) ",
            "SELECT $1, p.id, p.user_id, p.device_key, $2, $3, $4, 'pending', $5, $6 ",
            "FROM phones p WHERE p.id = $7 RETURNING ",
            request_cols!()
        ))
        .bind(id)
        .bind(new.kind.as_str())
        .bind(serde_json::to_string(&new.payload).unwrap_or_else(|_| "null".to_string()))
        .bind(&new.workstation_id)
        .bind(now.unix_millis())
        .bind(now.plus(new.ttl).unix_millis())
        .bind(&new.phone_id)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        let request = row
            .as_ref()
            .map(decode)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("phone", new.phone_id))?;
        crate::notify::notify_on(
            &mut self.db,
            crate::notify::Channel::DeviceInbox,
            &request.device_key,
        )
        .await?;
        Ok(request)
    }

    /// One request.
    pub async fn get(&mut self, id: &str) -> Result<DeviceRequest> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            request_cols!(),
            " FROM device_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref()
            .map(decode)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("device request", id))
    }

    /// The device's open requests (pending or delivered, not expired), oldest first; the
    /// pending ones are marked delivered.
    pub async fn fetch_inbox(
        &mut self,
        device_key: &str,
        now: Timestamp,
    ) -> Result<Vec<DeviceRequest>> {
        // Read first and write only what is pending: most polls find an empty inbox, and a
        // poll that only reads takes no write lock (on SQLite it would queue behind every
        // writer, sign-in requests included) and is one round trip on PostgreSQL.
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            request_cols!(),
            " FROM device_requests WHERE device_key = $1 AND status IN ('pending', 'delivered') ",
            "AND expires_at > $2 ORDER BY created_at, id"
        ))
        .bind(device_key)
        .bind(now.unix_millis())
        .fetch_all(&mut *conn)
        .await?;
        drop(conn);
        let mut open = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut request = decode(row)?;
            if request.status == DeviceRequestStatus::Pending {
                let mut conn = self.db.conn().await?;
                let marked = sqlx::query(
                    "UPDATE device_requests SET status = 'delivered', delivered_at = $1 \
                     WHERE id = $2 AND status = 'pending'",
                )
                .bind(now.unix_millis())
                .bind(&request.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if marked == 0 {
                    // Answered or withdrawn since it was read: no longer open.
                    continue;
                }
                request.status = DeviceRequestStatus::Delivered;
                request.delivered_at = Some(now);
            }
            open.push(request);
        }
        Ok(open)
    }

    /// The device answers a request: once, before expiry, and only the device it was sent
    /// to (`device_key`). `response` is kept for approvals.
    pub async fn answer(
        &mut self,
        id: &str,
        device_key: &str,
        approved: bool,
        response: Option<&serde_json::Value>,
        now: Timestamp,
    ) -> Result<DeviceRequest> {
        let status = if approved {
            DeviceRequestStatus::Approved
        } else {
            DeviceRequestStatus::Denied
        };
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE device_requests SET status = $1, response = $2, answered_at = $3 ",
            "WHERE id = $4 AND device_key = $5 AND status IN ('pending', 'delivered') ",
            "AND expires_at > $3 RETURNING ",
            request_cols!()
        ))
        .bind(status.as_str())
        .bind(response.map(|r| r.to_string()))
        .bind(now.unix_millis())
        .bind(id)
        .bind(device_key)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        if let Some(row) = row {
            let answered = decode(&row)?;
            crate::notify::notify_on(&mut self.db, crate::notify::Channel::DeviceAnswer, id)
                .await?;
            return Ok(answered);
        }
        let current = self.get(id).await?;
        let reason = if current.device_key != device_key {
            // Same answer as a missing request: do not confirm other devices' request ids.
            return Err(StoreError::not_found("device request", id));
        } else if current.status == DeviceRequestStatus::Cancelled {
            "was cancelled"
        } else if matches!(
            current.status,
            DeviceRequestStatus::Approved | DeviceRequestStatus::Denied
        ) {
            "was already answered"
        } else {
            "has expired"
        };
        Err(StoreError::TokenRejected {
            what: "the request",
            reason,
        })
    }

    /// Withdraws an open request.
    pub async fn cancel(&mut self, id: &str) -> Result<bool> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE device_requests SET status = 'cancelled' WHERE id = $1 \
             AND status IN ('pending', 'delivered')",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks open requests past their expiry as expired; returns how many.
    pub async fn expire_due(&mut self, now: Timestamp) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE device_requests SET status = 'expired' \
             WHERE status IN ('pending', 'delivered') AND expires_at <= $1",
        )
        .bind(now.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }
}
