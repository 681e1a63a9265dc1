//! FIDO credentials our phones hold (`credentials` table).

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{corrupt, found_one as one, new_id, opt_text, opt_ts, require, text, ts};
use crate::timestamp::Timestamp;

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
