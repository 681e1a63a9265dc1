//! Install tokens (`install_tokens` table): the expiring, single-purpose token in the
//! desktop-client download's `keybridge.json`, exchanged by a workstation for its
//! registration. Usable by several workstations until it expires or is revoked; every use is
//! counted. Only its SHA-256 is stored.

use std::time::Duration;

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{found_one, hash_token, int, new_id, opt_ts, random_token, text, ts};
use crate::timestamp::Timestamp;

/// Prefix of every install token.
pub const INSTALL_TOKEN_PREFIX: &str = "kbi_";

/// An install token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallToken {
    /// Id.
    pub id: String,
    /// The integration the workstation joins.
    pub integration_id: String,
    /// Who downloaded the client.
    pub created_by: String,
    /// Issued.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
    /// Workstations registered with it.
    pub uses: i64,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
}

/// Repository for install tokens.
pub struct InstallTokens<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! token_cols {
    () => {
        "id, integration_id, created_by, created_at, expires_at, revoked_at, uses, last_used_at"
    };
}

fn decode(row: &AnyRow) -> Result<InstallToken> {
    Ok(InstallToken {
        id: text(row, "id")?,
        integration_id: text(row, "integration_id")?,
        created_by: text(row, "created_by")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        uses: int(row, "uses")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

impl InstallTokens<'_> {
    /// Issues a token valid for `ttl`. Returns it with the token text (shown once, written into
    /// the download).
    pub async fn create(
        &mut self,
        integration_id: &str,
        created_by: &str,
        ttl: Duration,
    ) -> Result<(InstallToken, String)> {
        let secret = format!("{INSTALL_TOKEN_PREFIX}{}", random_token(32));
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO install_tokens (id, integration_id, token_hash, created_by, created_at, ",
            "expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            token_cols!()
        ))
        .bind(new_id())
        .bind(integration_id)
        .bind(hash_token(&secret))
        .bind(created_by)
        .bind(now.unix_millis())
        .bind(now.plus(ttl).unix_millis())
        .fetch_one(&mut *conn)
        .await?;
        Ok((decode(&row)?, secret))
    }

    /// Uses a token: valid until expiry or revocation; counts the use.
    pub async fn redeem(&mut self, secret: &str, now: Timestamp) -> Result<InstallToken> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE install_tokens SET uses = uses + 1, last_used_at = $1 WHERE token_hash = $2 ",
            "AND revoked_at IS NULL AND expires_at > $1 RETURNING ",
            token_cols!()
        ))
        .bind(now.unix_millis())
        .bind(hash_token(secret))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return decode(&row);
        }
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM install_tokens WHERE token_hash = $1")
                .bind(hash_token(secret))
                .fetch_optional(&mut *conn)
                .await?;
        Err(match revoked {
            None => StoreError::not_found("install token", "(presented)"),
            Some(Some(_)) => StoreError::TokenRejected {
                what: "the install token",
                reason: "was revoked",
            },
            Some(None) => StoreError::TokenRejected {
                what: "the install token",
                reason: "has expired",
            },
        })
    }

    /// Revokes a token.
    pub async fn revoke(&mut self, id: &str, now: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE install_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now.unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        found_one(done.rows_affected(), "install token", id)
    }

    /// An integration's tokens, newest first.
    pub async fn list(&mut self, integration_id: &str) -> Result<Vec<InstallToken>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM install_tokens WHERE integration_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(integration_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode).collect()
    }
}
