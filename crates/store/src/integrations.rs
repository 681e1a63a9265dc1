//! Entra tenant connections (`integrations` table). Credentials are sealed at rest.

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{bool_int, corrupt, flag, new_id, opt_text, opt_ts, require, text, ts};
use crate::secrets::{SecretPlace, SecretString};
use crate::timestamp::Timestamp;

/// How keybridge authenticates to the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrationCredential {
    /// An OAuth client secret.
    ClientSecret(SecretString),
    /// An X.509 certificate and its private key, both PEM.
    Certificate {
        /// The certificate (public).
        certificate_pem: String,
        /// The private key.
        private_key_pem: SecretString,
    },
}

/// The groups keybridge keeps in step, by Entra object id (unset until found or created).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationGroups {
    /// `<name> (Eligible for Pairing)`.
    pub eligible: Option<String>,
    /// `<name> (Client Paired with keybridge)`.
    pub paired_keybridge: Option<String>,
    /// `<name> (Client Paired with Entra)`.
    pub paired_entra: Option<String>,
    /// `Users Not Yet Enrolled`.
    pub not_enrolled: Option<String>,
}

/// A connected tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    /// Row id (UUID).
    pub id: String,
    /// The name without spaces (at most 23 characters; unique).
    pub internal_id: String,
    /// Application name (unique, never changes).
    pub name: String,
    /// Tenant id (never changes).
    pub tenant_id: String,
    /// Application (client) id (never changes).
    pub client_id: String,
    /// Decrypted credential.
    pub credential: IntegrationCredential,
    /// "Native Entra login experience" (disabled by default).
    pub native_login_enabled: bool,
    /// Allowed user domains (empty: all).
    pub restrict_domains: Vec<String>,
    /// Support e-mail for the desktop client.
    pub support_email: Option<String>,
    /// Group object ids.
    pub groups: IntegrationGroups,
    /// Graph delta link of the last directory sync.
    pub delta_link: Option<String>,
    /// When the last directory sync finished.
    pub last_sync_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Input for [`Integrations::create`]. Validate names with `keybridge-core` first.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    /// Application name.
    pub name: String,
    /// Name without spaces.
    pub internal_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Client id.
    pub client_id: String,
    /// Credential (sealed before it is written).
    pub credential: IntegrationCredential,
    /// Support e-mail.
    pub support_email: Option<String>,
}

/// Repository for integrations.
pub struct Integrations<'a> {
    pub(crate) db: Db<'a>,
}

const TABLE: &str = "integrations";

/// Credential columns as written: kind, sealed client secret, certificate PEM, sealed key.
type SealedCredential = (
    &'static str,
    Option<Vec<u8>>,
    Option<String>,
    Option<Vec<u8>>,
);

fn secret_place<'r>(column: &'static str, row: &'r str) -> SecretPlace<'r> {
    SecretPlace {
        table: TABLE,
        column,
        row,
    }
}

impl Integrations<'_> {
    fn decode(&self, row: &AnyRow) -> Result<Integration> {
        use sqlx::Row;
        let id = text(row, "id")?;
        let ring = self.db.keyring();
        let kind = text(row, "credential_kind")?;
        let credential = match kind.as_str() {
            "client_secret" => {
                let sealed: Vec<u8> = row
                    .try_get::<Option<Vec<u8>>, _>("client_secret_enc")?
                    .ok_or_else(|| corrupt(TABLE, "client_secret_enc", "NULL"))?;
                IntegrationCredential::ClientSecret(
                    ring.open_str(secret_place("client_secret_enc", &id), &sealed)?,
                )
            }
            "certificate" => {
                let sealed: Vec<u8> = row
                    .try_get::<Option<Vec<u8>>, _>("private_key_enc")?
                    .ok_or_else(|| corrupt(TABLE, "private_key_enc", "NULL"))?;
                IntegrationCredential::Certificate {
                    certificate_pem: opt_text(row, "certificate_pem")?
                        .ok_or_else(|| corrupt(TABLE, "certificate_pem", "NULL"))?,
                    private_key_pem: ring
                        .open_str(secret_place("private_key_enc", &id), &sealed)?,
                }
            }
            other => return Err(corrupt(TABLE, "credential_kind", other)),
        };
        let domains_json = text(row, "restrict_domains")?;
        let restrict_domains: Vec<String> = serde_json::from_str(&domains_json)
            .map_err(|_| corrupt(TABLE, "restrict_domains", &domains_json))?;
        Ok(Integration {
            internal_id: text(row, "internal_id")?,
            name: text(row, "name")?,
            tenant_id: text(row, "tenant_id")?,
            client_id: text(row, "client_id")?,
            credential,
            native_login_enabled: flag(row, "native_login_enabled")?,
            restrict_domains,
            support_email: opt_text(row, "support_email")?,
            groups: IntegrationGroups {
                eligible: opt_text(row, "group_eligible_id")?,
                paired_keybridge: opt_text(row, "group_paired_keybridge_id")?,
                paired_entra: opt_text(row, "group_paired_entra_id")?,
                not_enrolled: opt_text(row, "group_not_enrolled_id")?,
            },
            delta_link: opt_text(row, "delta_link")?,
            last_sync_at: opt_ts(row, "last_sync_at")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
            id,
        })
    }

    fn seal_credential(&self, id: &str, credential: &IntegrationCredential) -> SealedCredential {
        let ring = self.db.keyring();
        match credential {
            IntegrationCredential::ClientSecret(secret) => (
                "client_secret",
                Some(ring.seal_str(secret_place("client_secret_enc", id), secret)),
                None,
                None,
            ),
            IntegrationCredential::Certificate {
                certificate_pem,
                private_key_pem,
            } => (
                "certificate",
                None,
                Some(certificate_pem.clone()),
                Some(ring.seal_str(secret_place("private_key_enc", id), private_key_pem)),
            ),
        }
    }

    /// Stores a new integration (native login disabled, no domain restriction).
    pub async fn create(&mut self, new: NewIntegration) -> Result<Integration> {
        require("name", &new.name)?;
        require("internal id", &new.internal_id)?;
        require("tenant id", &new.tenant_id)?;
        require("client id", &new.client_id)?;
        let id = new_id();
        let now = Timestamp::now().unix_millis();
        let (kind, secret, cert, key) = self.seal_credential(&id, &new.credential);
        let sql = const_format_insert();
        let mut conn = self.db.begin().await?;
        // Name first: engines differ in which unique index they report when both the name
        // and the internal id collide, and the name is what the admin typed.
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM integrations WHERE name = $1")
            .bind(&new.name)
            .fetch_one(&mut *conn)
            .await?;
        if taken > 0 {
            return Err(StoreError::Duplicate {
                entity: "an integration",
                field: "name",
            });
        }
        sqlx::query(sql)
            .bind(&id)
            .bind(&new.internal_id)
            .bind(&new.name)
            .bind(&new.tenant_id)
            .bind(&new.client_id)
            .bind(kind)
            .bind(secret)
            .bind(cert)
            .bind(key)
            .bind(&new.support_email)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        conn.commit().await?;
        self.get(&id).await
    }

    /// One integration by row id.
    pub async fn get(&mut self, id: &str) -> Result<Integration> {
        self.find_by("id", id)
            .await?
            .ok_or_else(|| StoreError::not_found("integration", id))
    }

    /// One integration by internal id.
    pub async fn find_by_internal_id(&mut self, internal_id: &str) -> Result<Option<Integration>> {
        self.find_by("internal_id", internal_id).await
    }

    async fn find_by(&mut self, key: &'static str, value: &str) -> Result<Option<Integration>> {
        let sql = match key {
            "internal_id" => SELECT_BY_INTERNAL_ID,
            _ => SELECT_BY_ID,
        };
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&mut *conn)
            .await?;
        drop(conn);
        row.map(|r| self.decode(&r)).transpose()
    }

    /// Every integration, by name.
    pub async fn list(&mut self) -> Result<Vec<Integration>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(SELECT_ALL).fetch_all(&mut *conn).await?;
        drop(conn);
        rows.iter().map(|r| self.decode(r)).collect()
    }

    /// Replaces the credential (the only part of the connection that may change).
    pub async fn rotate_credential(
        &mut self,
        id: &str,
        credential: &IntegrationCredential,
    ) -> Result<()> {
        let (kind, secret, cert, key) = self.seal_credential(id, credential);
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET credential_kind = $1, client_secret_enc = $2, \
             certificate_pem = $3, private_key_enc = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(kind)
        .bind(secret)
        .bind(cert)
        .bind(key)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Turns the native Entra login experience on or off.
    pub async fn set_native_login(&mut self, id: &str, enabled: bool) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET native_login_enabled = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(bool_int(enabled))
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Saves the restrict-domains list (already validated and normalised by the caller).
    pub async fn set_restrict_domains(&mut self, id: &str, domains: &[String]) -> Result<()> {
        let json = serde_json::to_string(domains).unwrap_or_else(|_| "[]".to_string());
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET restrict_domains = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(json)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Saves the support e-mail.
    pub async fn set_support_email(&mut self, id: &str, email: Option<&str>) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET support_email = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(email)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Records the group object ids.
    pub async fn set_groups(&mut self, id: &str, groups: &IntegrationGroups) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET group_eligible_id = $1, group_paired_keybridge_id = $2, \
             group_paired_entra_id = $3, group_not_enrolled_id = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&groups.eligible)
        .bind(&groups.paired_keybridge)
        .bind(&groups.paired_entra)
        .bind(&groups.not_enrolled)
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Records the end of a directory sync and its delta link.
    pub async fn record_sync(
        &mut self,
        id: &str,
        delta_link: Option<&str>,
        at: Timestamp,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE integrations SET delta_link = $1, last_sync_at = $2, updated_at = $2 WHERE id = $3",
        )
        .bind(delta_link)
        .bind(at.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found(done.rows_affected(), id)
    }

    /// Deletes the integration and, by cascade, its users, phones, credentials and
    /// workstations.
    pub async fn delete(&mut self, id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        found(done.rows_affected(), id)
    }
}

fn found(rows: u64, id: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::not_found("integration", id))
    } else {
        Ok(())
    }
}

fn const_format_insert() -> &'static str {
    "INSERT INTO integrations (id, internal_id, name, tenant_id, client_id, credential_kind, \
     client_secret_enc, certificate_pem, private_key_enc, support_email, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
}

macro_rules! select_integrations {
    ($tail:literal) => {
        concat!(
            "SELECT id, internal_id, name, tenant_id, client_id, credential_kind, client_secret_enc, ",
            "certificate_pem, private_key_enc, native_login_enabled, restrict_domains, support_email, ",
            "group_eligible_id, group_paired_keybridge_id, group_paired_entra_id, group_not_enrolled_id, ",
            "delta_link, last_sync_at, created_at, updated_at FROM integrations ",
            $tail
        )
    };
}

const SELECT_BY_ID: &str = select_integrations!("WHERE id = $1");
const SELECT_BY_INTERNAL_ID: &str = select_integrations!("WHERE internal_id = $1");
const SELECT_ALL: &str = select_integrations!("ORDER BY name");
