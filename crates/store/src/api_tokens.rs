//! API tokens (`api_tokens` table), stored as SHA-256 of the token.

use crate::admins::{Role, role};
use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{found_one as one, hash_token, new_id, opt_ts, random_token, require, text, ts};
use crate::timestamp::Timestamp;

/// An API token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Row id.
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// The first characters of the token, to recognise it in lists.
    pub prefix: String,
    /// Role.
    pub role: Role,
    /// Creator (admin id).
    pub created_by: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// Last authenticated request.
    pub last_used_at: Option<Timestamp>,
}

/// Repository for API tokens.
pub struct ApiTokens<'a> {
    pub(crate) db: Db<'a>,
}

/// Prefix of every API token, so that secret scanners can recognise one.
pub const API_TOKEN_PREFIX: &str = "kbt_";

macro_rules! token_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, prefix, role, created_by, created_at, expires_at, revoked_at, ",
            "last_used_at FROM api_tokens ",
            $tail
        )
    };
}

fn decode_token(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: text(row, "id")?,
        name: text(row, "name")?,
        prefix: text(row, "prefix")?,
        role: role(row, "api_tokens", "role")?,
        created_by: text(row, "created_by")?,
        created_at: ts(row, "created_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

impl ApiTokens<'_> {
    /// Creates a token. Returns it with the secret token text (shown once).
    pub async fn create(
        &mut self,
        name: &str,
        role: Role,
        created_by: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(ApiToken, String)> {
        require("token name", name)?;
        let secret = format!("{API_TOKEN_PREFIX}{}", random_token(32));
        let prefix: String = secret.chars().take(API_TOKEN_PREFIX.len() + 6).collect();
        let id = new_id();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, prefix, role, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(name)
        .bind(hash_token(&secret))
        .bind(&prefix)
        .bind(role.as_str())
        .bind(created_by)
        .bind(Timestamp::now().unix_millis())
        .bind(expires_at.map(Timestamp::unix_millis))
        .execute(&mut *conn)
        .await?;
        drop(conn);
        Ok((self.get(&id).await?, secret))
    }

    /// One token.
    pub async fn get(&mut self, id: &str) -> Result<ApiToken> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(token_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_token)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("API token", id))
    }

    /// Every token, newest first.
    pub async fn list(&mut self) -> Result<Vec<ApiToken>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(token_select!("ORDER BY created_at DESC, id DESC"))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(decode_token).collect()
    }

    /// The token for a presented secret, if it is valid (not revoked, not expired); records
    /// the use.
    pub async fn authenticate(&mut self, secret: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL ",
            "AND (expires_at IS NULL OR expires_at > $1) ",
            "RETURNING id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at"
        ))
        .bind(now.unix_millis())
        .bind(hash_token(secret))
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(decode_token).transpose()
    }

    /// Revokes a token.
    pub async fn revoke(&mut self, id: &str, now: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "API token", id)
    }
}
