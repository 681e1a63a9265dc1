//! Invite links (`invites` table). Only the token's SHA-256 is stored.

use sqlx::any::AnyRow;
use std::time::Duration;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{found_one as one, hash_token, new_id, opt_ts, random_token, text, ts};
use crate::timestamp::Timestamp;

/// An invite link for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Row id.
    pub id: String,
    /// The invited user.
    pub user_id: String,
    /// Who invited (admin id or `system`).
    pub created_by: String,
    /// Issued.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Used (single use).
    pub used_at: Option<Timestamp>,
    /// Revoked.
    pub revoked_at: Option<Timestamp>,
}

/// Repository for invites.
pub struct Invites<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! invite_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, created_by, created_at, expires_at, used_at, revoked_at FROM invites ",
            $tail
        )
    };
}

fn decode_invite(row: &AnyRow) -> Result<Invite> {
    Ok(Invite {
        id: text(row, "id")?,
        user_id: text(row, "user_id")?,
        created_by: text(row, "created_by")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        used_at: opt_ts(row, "used_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

fn check_invite(invite: &Invite, now: Timestamp) -> Result<()> {
    let reject = |reason| {
        Err(StoreError::TokenRejected {
            what: "the invite",
            reason,
        })
    };
    if invite.revoked_at.is_some() {
        return reject("was revoked");
    }
    if invite.used_at.is_some() {
        return reject("was already used");
    }
    if invite.expires_at <= now {
        return reject("has expired");
    }
    Ok(())
}

impl Invites<'_> {
    /// Issues an invite valid for `ttl`. Returns it with the token for the link (shown once).
    pub async fn create(
        &mut self,
        user_id: &str,
        created_by: &str,
        ttl: Duration,
    ) -> Result<(Invite, String)> {
        let token = random_token(32);
        let now = Timestamp::now();
        let invite = Invite {
            id: new_id(),
            user_id: user_id.to_string(),
            created_by: created_by.to_string(),
            created_at: now,
            expires_at: now.plus(ttl),
            used_at: None,
            revoked_at: None,
        };
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO invites (id, user_id, token_hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&invite.id)
        .bind(&invite.user_id)
        .bind(hash_token(&token))
        .bind(&invite.created_by)
        .bind(now.unix_millis())
        .bind(invite.expires_at.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok((invite, token))
    }

    /// The invite behind a link, if it is still usable (not used, revoked or expired).
    pub async fn check(&mut self, token: &str, now: Timestamp) -> Result<Invite> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(invite_select!("WHERE token_hash = $1"))
            .bind(hash_token(token))
            .fetch_optional(&mut *conn)
            .await?;
        let invite = row
            .as_ref()
            .map(decode_invite)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("invite", "(from link)"))?;
        check_invite(&invite, now)?;
        Ok(invite)
    }

    /// The invite behind a link whatever its state (used, revoked or expired included), for
    /// pages that say what became of it; `None` for a token that was never issued.
    pub async fn find(&mut self, token: &str) -> Result<Option<Invite>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(invite_select!("WHERE token_hash = $1"))
            .bind(hash_token(token))
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode_invite).transpose()
    }

    /// Uses the invite: succeeds once; afterwards [`StoreError::TokenRejected`].
    pub async fn consume(&mut self, token: &str, now: Timestamp) -> Result<Invite> {
        let mut conn = self.db.conn().await?;
        // One conditional UPDATE: two concurrent uses cannot both succeed.
        let row = sqlx::query(concat!(
            "UPDATE invites SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL ",
            "AND revoked_at IS NULL AND expires_at > $1 ",
            "RETURNING id, user_id, created_by, created_at, expires_at, used_at, revoked_at"
        ))
        .bind(now.unix_millis())
        .bind(hash_token(token))
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        match row {
            Some(row) => decode_invite(&row),
            // Say why: look at the row as it is.
            None => {
                self.check(token, now).await?;
                Err(StoreError::TokenRejected {
                    what: "the invite",
                    reason: "was already used",
                })
            }
        }
    }

    /// Uses the invite with this id (the pairing it opened completed): succeeds once, like
    /// [`Invites::consume`]; afterwards [`StoreError::TokenRejected`].
    pub async fn consume_by_id(&mut self, id: &str, now: Timestamp) -> Result<Invite> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE invites SET used_at = $1 WHERE id = $2 AND used_at IS NULL ",
            "AND revoked_at IS NULL AND expires_at > $1 ",
            "RETURNING id, user_id, created_by, created_at, expires_at, used_at, revoked_at"
        ))
        .bind(now.unix_millis())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return decode_invite(&row);
        }
        let row = sqlx::query(invite_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let invite = row
            .as_ref()
            .map(decode_invite)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("invite", id))?;
        check_invite(&invite, now)?;
        Err(StoreError::TokenRejected {
            what: "the invite",
            reason: "was already used",
        })
    }

    /// A user's invites, newest first.
    pub async fn list_for_user(&mut self, user_id: &str) -> Result<Vec<Invite>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(invite_select!(
            "WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_invite).collect()
    }

    /// Revokes an invite.
    pub async fn revoke(&mut self, id: &str, at: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done =
            sqlx::query("UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.unix_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
        one(done.rows_affected(), "invite", id)
    }
}
