//! Paired phones (`phones` table).

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{found_one as one, new_id, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

/// A phone paired with keybridge for one user. One device may be paired for several users
/// (several rows with the same `device_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// Row id (the Device ID shown in the console).
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The device identity public key (as the device protocol encodes it).
    pub device_key: String,
    /// Device name.
    pub name: String,
    /// Model.
    pub model: String,
    /// Mobile OS.
    pub os: String,
    /// Paired.
    pub created_at: Timestamp,
    /// Last request from the phone.
    pub last_seen_at: Option<Timestamp>,
    /// When its unpairing was requested (the unpair job is deleting its Entra passkey).
    pub unpairing_at: Option<Timestamp>,
}

/// Input for [`Phones::create`].
#[derive(Debug, Clone)]
pub struct NewPhone {
    /// The user.
    pub user_id: String,
    /// Device identity public key.
    pub device_key: String,
    /// Name.
    pub name: String,
    /// Model.
    pub model: String,
    /// OS.
    pub os: String,
}

/// Repository for phones.
pub struct Phones<'a> {
    pub(crate) db: Db<'a>,
}

fn decode_phone(row: &AnyRow) -> Result<Phone> {
    Ok(Phone {
        id: text(row, "id")?,
        user_id: text(row, "user_id")?,
        device_key: text(row, "device_key")?,
        name: text(row, "name")?,
        model: text(row, "model")?,
        os: text(row, "os")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: opt_ts(row, "last_seen_at")?,
        unpairing_at: opt_ts(row, "unpairing_at")?,
    })
}

macro_rules! phone_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, device_key, name, model, os, created_at, last_seen_at, unpairing_at \
             FROM phones ",
            $tail
        )
    };
}

impl Phones<'_> {
    /// Records a paired phone.
    pub async fn create(&mut self, new: NewPhone) -> Result<Phone> {
        require("device key", &new.device_key)?;
        require("device name", &new.name)?;
        let id = new_id();
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO phones (id, user_id, device_key, name, model, os, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&new.user_id)
        .bind(&new.device_key)
        .bind(&new.name)
        .bind(&new.model)
        .bind(&new.os)
        .bind(now.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(Phone {
            id,
            user_id: new.user_id,
            device_key: new.device_key,
            name: new.name,
            model: new.model,
            os: new.os,
            created_at: now,
            last_seen_at: None,
            unpairing_at: None,
        })
    }

    /// One phone.
    pub async fn get(&mut self, id: &str) -> Result<Phone> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(phone_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_phone)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("phone", id))
    }

    /// A user's phones, oldest first.
    pub async fn list_for_user(&mut self, user_id: &str) -> Result<Vec<Phone>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(phone_select!("WHERE user_id = $1 ORDER BY created_at, id"))
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(decode_phone).collect()
    }

    /// Every pairing of one device (one row per user it is paired for).
    pub async fn find_by_device_key(&mut self, device_key: &str) -> Result<Vec<Phone>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(phone_select!(
            "WHERE device_key = $1 ORDER BY created_at, id"
        ))
        .bind(device_key)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_phone).collect()
    }

    /// Records activity.
    pub async fn touch(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("UPDATE phones SET last_seen_at = $1 WHERE id = $2")
            .bind(at.unix_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "phone", id)
    }

    /// Records that the phone's unpairing was requested (the first request's instant is kept).
    pub async fn mark_unpairing(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE phones SET unpairing_at = COALESCE(unpairing_at, $1) WHERE id = $2",
        )
        .bind(at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "phone", id)
    }

    /// Deletes a phone and, by cascade, its credentials (delete the Entra passkeys first).
    pub async fn delete(&mut self, id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM phones WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "phone", id)
    }
}
