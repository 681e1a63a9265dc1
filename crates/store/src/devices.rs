//! Phones, their FIDO credentials, and workstations (with escrowed recovery PINs).

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{corrupt, new_id, opt_text, opt_ts, require, text, ts};
use crate::secrets::{SecretPlace, SecretString, composite_row};
use crate::timestamp::Timestamp;

fn one(rows: u64, entity: &'static str, id: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::not_found(entity, id))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Phones

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
    })
}

macro_rules! phone_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, device_key, name, model, os, created_at, last_seen_at FROM phones ",
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

// ---------------------------------------------------------------------------------------------
// Credentials

/// Where a phone's FIDO credential stands with Entra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    /// Created on the phone and recorded here, not (yet) confirmed by Entra. Recorded before
    /// the `POST fido2Methods`, so an ambiguous failure can be resolved by reading Entra.
    Created,
    /// Registered in Entra.
    Registered,
    /// Removed from Entra.
    Removed,
    /// Entra refused it.
    Failed,
}

impl CredentialStatus {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Created => "created",
            CredentialStatus::Registered => "registered",
            CredentialStatus::Removed => "removed",
            CredentialStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<CredentialStatus> {
        Ok(match s {
            "created" => CredentialStatus::Created,
            "registered" => CredentialStatus::Registered,
            "removed" => CredentialStatus::Removed,
            "failed" => CredentialStatus::Failed,
            other => return Err(corrupt("credentials", "status", other)),
        })
    }
}

/// A passkey one of our phones holds for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Row id.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The phone.
    pub phone_id: String,
    /// WebAuthn credential id, base64url (the FIDO ID).
    pub credential_id: String,
    /// Relying party id (`login.microsoft.com`).
    pub rp_id: String,
    /// Authenticator AAGUID.
    pub aaguid: String,
    /// Name shown in Entra.
    pub display_name: String,
    /// Status.
    pub status: CredentialStatus,
    /// Entra's fido2AuthenticationMethod id once registered.
    pub entra_method_id: Option<String>,
    /// Last failure reason.
    pub last_error: Option<String>,
    /// Created on the phone.
    pub created_at: Timestamp,
    /// Registered in Entra.
    pub registered_at: Option<Timestamp>,
    /// Removed.
    pub removed_at: Option<Timestamp>,
    /// Last used to sign in.
    pub last_used_at: Option<Timestamp>,
}

/// Input for [`Credentials::create`].
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The user.
    pub user_id: String,
    /// The phone.
    pub phone_id: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// Relying party id.
    pub rp_id: String,
    /// AAGUID.
    pub aaguid: String,
    /// Display name.
    pub display_name: String,
}

/// Repository for credentials.
pub struct Credentials<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! credential_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, phone_id, credential_id, rp_id, aaguid, display_name, status, ",
            "entra_method_id, last_error, created_at, registered_at, removed_at, last_used_at ",
            "FROM credentials ",
            $tail
        )
    };
}

fn decode_credential(row: &AnyRow) -> Result<Credential> {
    Ok(Credential {
        id: text(row, "id")?,
        user_id: text(row, "user_id")?,
        phone_id: text(row, "phone_id")?,
        credential_id: text(row, "credential_id")?,
        rp_id: text(row, "rp_id")?,
        aaguid: text(row, "aaguid")?,
        display_name: text(row, "display_name")?,
        status: CredentialStatus::parse(&text(row, "status")?)?,
        entra_method_id: opt_text(row, "entra_method_id")?,
        last_error: opt_text(row, "last_error")?,
        created_at: ts(row, "created_at")?,
        registered_at: opt_ts(row, "registered_at")?,
        removed_at: opt_ts(row, "removed_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

impl Credentials<'_> {
    /// Records a credential the phone created (status `created`).
    pub async fn create(&mut self, new: NewCredential) -> Result<Credential> {
        require("credential id", &new.credential_id)?;
        let id = new_id();
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO credentials (id, user_id, phone_id, credential_id, rp_id, aaguid, \
             display_name, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', $8)",
        )
        .bind(&id)
        .bind(&new.user_id)
        .bind(&new.phone_id)
        .bind(&new.credential_id)
        .bind(&new.rp_id)
        .bind(&new.aaguid)
        .bind(&new.display_name)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        drop(conn);
        self.get(&id).await
    }

    /// One credential.
    pub async fn get(&mut self, id: &str) -> Result<Credential> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(credential_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_credential)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("credential", id))
    }

    /// By WebAuthn credential id.
    pub async fn find_by_credential_id(
        &mut self,
        credential_id: &str,
    ) -> Result<Option<Credential>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(credential_select!("WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode_credential).transpose()
    }

    /// A user's credentials, oldest first.
    pub async fn list_for_user(&mut self, user_id: &str) -> Result<Vec<Credential>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(credential_select!(
            "WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_credential).collect()
    }

    /// A phone's credentials, oldest first.
    pub async fn list_for_phone(&mut self, phone_id: &str) -> Result<Vec<Credential>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(credential_select!(
            "WHERE phone_id = $1 ORDER BY created_at, id"
        ))
        .bind(phone_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_credential).collect()
    }

    /// Entra accepted the credential.
    pub async fn mark_registered(
        &mut self,
        id: &str,
        entra_method_id: &str,
        at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE credentials SET status = 'registered', entra_method_id = $1, registered_at = $2, \
             last_error = NULL WHERE id = $3",
        )
        .bind(entra_method_id)
        .bind(at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "credential", id)
    }

    /// Entra refused the credential.
    pub async fn mark_failed(&mut self, id: &str, error: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done =
            sqlx::query("UPDATE credentials SET status = 'failed', last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        one(done.rows_affected(), "credential", id)
    }

    /// The credential was removed from Entra.
    pub async fn mark_removed(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done =
            sqlx::query("UPDATE credentials SET status = 'removed', removed_at = $1 WHERE id = $2")
                .bind(at.unix_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        one(done.rows_affected(), "credential", id)
    }

    /// Records a sign-in with the credential.
    pub async fn touch_used(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE id = $2")
            .bind(at.unix_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "credential", id)
    }
}

// ---------------------------------------------------------------------------------------------
// Workstations

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

    /// Workstations paired with a phone.
    pub async fn list_for_phone(&mut self, phone_id: &str) -> Result<Vec<Workstation>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(workstation_select!(
            "WHERE phone_id = $1 ORDER BY created_at, id"
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
