//! Workstations (`workstations`) and their escrowed recovery PINs (`workstation_recovery`).

use crate::secrets::{SecretPlace, SecretString, composite_row};
use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{corrupt, found_one as one, new_id, opt_text, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

/// Whether a workstation may still sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkstationStatus {
    /// In use.
    Active,
    /// Revoked by an admin.
    Revoked,
}

/// A desktop client installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workstation {
    /// Row id (the Workstation ID).
    pub id: String,
    /// Integration.
    pub integration_id: String,
    /// Computer name.
    pub name: String,
    /// The workstation's public key.
    pub public_key: String,
    /// The phone it is paired with.
    pub phone_id: Option<String>,
    /// Status.
    pub status: WorkstationStatus,
    /// Installed.
    pub created_at: Timestamp,
    /// Paired with the phone.
    pub paired_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// Last request.
    pub last_seen_at: Option<Timestamp>,
}

/// Repository for workstations.
pub struct Workstations<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! workstation_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, integration_id, name, public_key, phone_id, status, created_at, paired_at, ",
            "revoked_at, last_seen_at FROM workstations ",
            $tail
        )
    };
}

fn decode_workstation(row: &AnyRow) -> Result<Workstation> {
    let status = text(row, "status")?;
    Ok(Workstation {
        id: text(row, "id")?,
        integration_id: text(row, "integration_id")?,
        name: text(row, "name")?,
        public_key: text(row, "public_key")?,
        phone_id: opt_text(row, "phone_id")?,
        status: match status.as_str() {
            "active" => WorkstationStatus::Active,
            "revoked" => WorkstationStatus::Revoked,
            other => return Err(corrupt("workstations", "status", other)),
        },
        created_at: ts(row, "created_at")?,
        paired_at: opt_ts(row, "paired_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        last_seen_at: opt_ts(row, "last_seen_at")?,
    })
}

const RECOVERY_TABLE: &str = "workstation_recovery";

impl Workstations<'_> {
    /// Registers a workstation (after its install token was exchanged).
    pub async fn create(
        &mut self,
        integration_id: &str,
        name: &str,
        public_key: &str,
    ) -> Result<Workstation> {
        require("computer name", name)?;
        require("public key", public_key)?;
        let id = new_id();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO workstations (id, integration_id, name, public_key, status, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5)",
        )
        .bind(&id)
        .bind(integration_id)
        .bind(name)
        .bind(public_key)
        .bind(Timestamp::now().unix_millis())
        .execute(&mut *conn)
        .await?;
        drop(conn);
        self.get(&id).await
    }

    /// One workstation.
    pub async fn get(&mut self, id: &str) -> Result<Workstation> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(workstation_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_workstation)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("workstation", id))
    }

    /// By public key.
    pub async fn find_by_public_key(&mut self, public_key: &str) -> Result<Option<Workstation>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(workstation_select!("WHERE public_key = $1"))
            .bind(public_key)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode_workstation).transpose()
    }

    /// Workstations paired with a phone pairing (as its first or a further account).
    pub async fn list_for_phone(&mut self, phone_id: &str) -> Result<Vec<Workstation>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(workstation_select!(
            "WHERE phone_id = $1 OR id IN (SELECT workstation_id FROM workstation_phones \
             WHERE phone_id = $1) ORDER BY created_at, id"
        ))
        .bind(phone_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_workstation).collect()
    }

    /// Pairs with a phone (or unpairs with `None`).
    pub async fn set_phone(
        &mut self,
        id: &str,
        phone_id: Option<&str>,
        at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done =
            sqlx::query("UPDATE workstations SET phone_id = $1, paired_at = $2 WHERE id = $3")
                .bind(phone_id)
                .bind(phone_id.map(|_| at.unix_millis()))
                .bind(id)
                .execute(&mut *conn)
                .await?;
        one(done.rows_affected(), "workstation", id)
    }

    /// Pairs the workstation with a phone pairing (one account); idempotent. The first one
    /// paired is also [`Workstation::phone_id`].
    pub async fn add_phone(&mut self, id: &str, phone_id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO workstation_phones (workstation_id, phone_id, paired_at) \
             VALUES ($1, $2, $3) ON CONFLICT (workstation_id, phone_id) DO NOTHING",
        )
        .bind(id)
        .bind(phone_id)
        .bind(at.unix_millis())
        .execute(&mut *conn)
        .await?;
        let done = sqlx::query(
            "UPDATE workstations SET phone_id = COALESCE(phone_id, $1), paired_at = COALESCE(paired_at, $2) WHERE id = $3",
        )
        .bind(phone_id)
        .bind(at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "workstation", id)
    }

    /// The phone pairings (accounts) the workstation is paired with, oldest first.
    pub async fn phones(&mut self, id: &str) -> Result<Vec<String>> {
        let mut conn = self.db.conn().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT phone_id FROM workstation_phones WHERE workstation_id = $1 \
             ORDER BY paired_at, phone_id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids)
    }

    /// Unpairs the workstation from every phone.
    pub async fn clear_phones(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        sqlx::query("DELETE FROM workstation_phones WHERE workstation_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        drop(conn);
        self.set_phone(id, None, at).await
    }

    /// Revokes the workstation: it can no longer sign in.
    pub async fn revoke(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE workstations SET status = 'revoked', revoked_at = $1 WHERE id = $2",
        )
        .bind(at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "workstation", id)
    }

    /// Records activity.
    pub async fn touch(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("UPDATE workstations SET last_seen_at = $1 WHERE id = $2")
            .bind(at.unix_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "workstation", id)
    }

    /// Escrows (or replaces) the recovery PIN of a user on a workstation, sealed at rest.
    pub async fn set_recovery_pin(
        &mut self,
        workstation_id: &str,
        user_id: &str,
        pin: &SecretString,
    ) -> Result<()> {
        let row = composite_row(workstation_id, user_id);
        let sealed = self.db.keyring().seal_str(
            SecretPlace {
                table: RECOVERY_TABLE,
                column: "pin_enc",
                row: &row,
            },
            pin,
        );
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO workstation_recovery (workstation_id, user_id, pin_enc, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (workstation_id, user_id) \
             DO UPDATE SET pin_enc = excluded.pin_enc, updated_at = excluded.updated_at",
        )
        .bind(workstation_id)
        .bind(user_id)
        .bind(sealed)
        .bind(Timestamp::now().unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The escrowed recovery PIN, decrypted.
    pub async fn recovery_pin(
        &mut self,
        workstation_id: &str,
        user_id: &str,
    ) -> Result<Option<SecretString>> {
        let mut conn = self.db.conn().await?;
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT pin_enc FROM workstation_recovery WHERE workstation_id = $1 AND user_id = $2",
        )
        .bind(workstation_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        let row = composite_row(workstation_id, user_id);
        sealed
            .map(|s| {
                self.db
                    .keyring()
                    .open_str(
                        SecretPlace {
                            table: RECOVERY_TABLE,
                            column: "pin_enc",
                            row: &row,
                        },
                        &s,
                    )
                    .map_err(StoreError::from)
            })
            .transpose()
    }

    /// Forgets the escrowed recovery PIN of a user on a workstation (it was used); whether
    /// there was one.
    pub async fn delete_recovery_pin(
        &mut self,
        workstation_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "DELETE FROM workstation_recovery WHERE workstation_id = $1 AND user_id = $2",
        )
        .bind(workstation_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a workstation.
    pub async fn delete(&mut self, id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM workstations WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "workstation", id)
    }
}
