//! QR / short-code pairing sessions (`pairing_sessions` table). Only the secret's SHA-256
//! is stored.

use sqlx::any::AnyRow;
use std::time::Duration;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{
    corrupt, hash_token, int, new_id, opt_text, opt_ts, random_token, require, text, ts,
};
use crate::timestamp::Timestamp;

/// What is being paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingKind {
    /// A phone with a user (Device Manager QR code).
    Phone,
    /// A workstation with a phone (workstation QR code).
    Workstation,
}

impl PairingKind {
    fn as_str(self) -> &'static str {
        match self {
            PairingKind::Phone => "phone",
            PairingKind::Workstation => "workstation",
        }
    }
}

/// One QR code / short code, valid for a short time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingSession {
    /// Pairing id (in the QR payload).
    pub id: String,
    /// What is paired.
    pub kind: PairingKind,
    /// The user (phone pairing).
    pub user_id: Option<String>,
    /// The invite it came from.
    pub invite_id: Option<String>,
    /// The workstation (workstation pairing).
    pub workstation_id: Option<String>,
    /// The fallback short code.
    pub short_code: String,
    /// Wrong secrets or codes tried against it.
    pub failed_attempts: i64,
    /// Shown.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Completed (single use).
    pub completed_at: Option<Timestamp>,
    /// The phone that completed it.
    pub phone_id: Option<String>,
}

/// Input for [`PairingSessions::create`].
#[derive(Debug, Clone)]
pub struct NewPairingSession {
    /// What is paired.
    pub kind: PairingKind,
    /// User.
    pub user_id: Option<String>,
    /// Invite.
    pub invite_id: Option<String>,
    /// Workstation.
    pub workstation_id: Option<String>,
    /// The short code the caller generated.
    pub short_code: String,
    /// Lifetime.
    pub ttl: Duration,
}

/// Repository for pairing sessions.
pub struct PairingSessions<'a> {
    pub(crate) db: Db<'a>,
}

macro_rules! pairing_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, user_id, invite_id, workstation_id, short_code, failed_attempts, ",
            "created_at, expires_at, completed_at, phone_id FROM pairing_sessions ",
            $tail
        )
    };
}

fn decode_pairing(row: &AnyRow) -> Result<PairingSession> {
    let kind = text(row, "kind")?;
    Ok(PairingSession {
        id: text(row, "id")?,
        kind: match kind.as_str() {
            "phone" => PairingKind::Phone,
            "workstation" => PairingKind::Workstation,
            other => return Err(corrupt("pairing_sessions", "kind", other)),
        },
        user_id: opt_text(row, "user_id")?,
        invite_id: opt_text(row, "invite_id")?,
        workstation_id: opt_text(row, "workstation_id")?,
        short_code: text(row, "short_code")?,
        failed_attempts: int(row, "failed_attempts")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        completed_at: opt_ts(row, "completed_at")?,
        phone_id: opt_text(row, "phone_id")?,
    })
}

impl PairingSessions<'_> {
    /// Opens a session. Returns it with its one-time secret (for the QR payload).
    pub async fn create(&mut self, new: NewPairingSession) -> Result<(PairingSession, String)> {
        require("short code", &new.short_code)?;
        let secret = random_token(32);
        let now = Timestamp::now();
        let id = new_id();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO pairing_sessions (id, kind, user_id, invite_id, workstation_id, secret_hash, \
             short_code, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(new.kind.as_str())
        .bind(&new.user_id)
        .bind(&new.invite_id)
        .bind(&new.workstation_id)
        .bind(hash_token(&secret))
        .bind(&new.short_code)
        .bind(now.unix_millis())
        .bind(now.plus(new.ttl).unix_millis())
        .execute(&mut *conn)
        .await?;
        drop(conn);
        Ok((self.get(&id).await?, secret))
    }

    /// Opens a session whose secret the caller made and keeps: `proof_key` is what proves
    /// possession of it (the device protocol's pairing key, base64url), stored as given and
    /// read back with [`PairingSessions::proof_key`]. The secret itself is never stored.
    pub async fn create_with_proof_key(
        &mut self,
        new: NewPairingSession,
        proof_key: &str,
    ) -> Result<PairingSession> {
        require("short code", &new.short_code)?;
        require("proof key", proof_key)?;
        let now = Timestamp::now();
        let id = new_id();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO pairing_sessions (id, kind, user_id, invite_id, workstation_id, secret_hash, \
             short_code, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(new.kind.as_str())
        .bind(&new.user_id)
        .bind(&new.invite_id)
        .bind(&new.workstation_id)
        .bind(proof_key)
        .bind(&new.short_code)
        .bind(now.unix_millis())
        .bind(now.plus(new.ttl).unix_millis())
        .execute(&mut *conn)
        .await?;
        drop(conn);
        self.get(&id).await
    }

    /// The proof key kept by [`PairingSessions::create_with_proof_key`].
    pub async fn proof_key(&mut self, id: &str) -> Result<String> {
        let mut conn = self.db.conn().await?;
        let key: Option<String> =
            sqlx::query_scalar("SELECT secret_hash FROM pairing_sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        key.ok_or_else(|| StoreError::not_found("pairing session", id))
    }

    /// Completes a session whose proof the caller has verified: succeeds once, only before
    /// expiry and while fewer than `max_failures` wrong attempts were counted against it.
    pub async fn complete_verified(
        &mut self,
        id: &str,
        phone_id: &str,
        max_failures: i64,
        now: Timestamp,
    ) -> Result<PairingSession> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE pairing_sessions SET completed_at = $1, phone_id = $2 WHERE id = $3 ",
            "AND completed_at IS NULL AND expires_at > $1 AND failed_attempts < $4 ",
            "RETURNING id, kind, user_id, invite_id, workstation_id, short_code, failed_attempts, ",
            "created_at, expires_at, completed_at, phone_id"
        ))
        .bind(now.unix_millis())
        .bind(phone_id)
        .bind(id)
        .bind(max_failures)
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        if let Some(row) = row {
            return decode_pairing(&row);
        }
        let session = self.get(id).await?;
        let reason = if session.completed_at.is_some() {
            "was already used"
        } else if session.expires_at <= now {
            "has expired"
        } else {
            "was closed after too many wrong attempts"
        };
        Err(StoreError::TokenRejected {
            what: "the pairing session",
            reason,
        })
    }

    /// One session.
    pub async fn get(&mut self, id: &str) -> Result<PairingSession> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(pairing_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_pairing)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("pairing session", id))
    }

    /// The live (unexpired, uncompleted) session with this short code, newest first.
    pub async fn find_live_by_code(
        &mut self,
        short_code: &str,
        now: Timestamp,
    ) -> Result<Option<PairingSession>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(pairing_select!(
            "WHERE short_code = $1 AND completed_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(short_code)
        .bind(now.unix_millis())
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(decode_pairing).transpose()
    }

    /// Counts a wrong secret or code against the session; returns the new count (the caller
    /// decides when to give up on it).
    pub async fn record_failed_attempt(&mut self, id: &str) -> Result<i64> {
        let mut conn = self.db.conn().await?;
        let n: Option<i64> = sqlx::query_scalar(
            "UPDATE pairing_sessions SET failed_attempts = failed_attempts + 1 WHERE id = $1 \
             RETURNING failed_attempts",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        n.ok_or_else(|| StoreError::not_found("pairing session", id))
    }

    /// Completes the session with the phone's secret: succeeds once, only before expiry and
    /// only with the right secret.
    pub async fn complete(
        &mut self,
        id: &str,
        secret: &str,
        phone_id: Option<&str>,
        now: Timestamp,
    ) -> Result<PairingSession> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(concat!(
            "UPDATE pairing_sessions SET completed_at = $1, phone_id = $2 WHERE id = $3 ",
            "AND secret_hash = $4 AND completed_at IS NULL AND expires_at > $1 ",
            "RETURNING id, kind, user_id, invite_id, workstation_id, short_code, failed_attempts, ",
            "created_at, expires_at, completed_at, phone_id"
        ))
        .bind(now.unix_millis())
        .bind(phone_id)
        .bind(id)
        .bind(hash_token(secret))
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        if let Some(row) = row {
            return decode_pairing(&row);
        }
        let session = self.get(id).await?;
        let reason = if session.completed_at.is_some() {
            "was already used"
        } else if session.expires_at <= now {
            "has expired"
        } else {
            "does not match"
        };
        Err(StoreError::TokenRejected {
            what: "the pairing code",
            reason,
        })
    }

    /// Deletes sessions that expired before `before`.
    pub async fn purge_expired(&mut self, before: Timestamp) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM pairing_sessions WHERE expires_at < $1")
            .bind(before.unix_millis())
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }
}
