//! The replay cache of signed device and workstation requests (`request_nonces` table):
//! each nonce is remembered until its request's timestamp window closes. The insert is one
//! `INSERT … ON CONFLICT DO NOTHING`, so two server instances that see the same request at
//! once cannot both take it as fresh.

use crate::db::Db;
use crate::error::Result;
use crate::timestamp::Timestamp;

/// Repository for request nonces.
pub struct RequestNonces<'a> {
    pub(crate) db: Db<'a>,
}

impl RequestNonces<'_> {
    /// Remembers `key` (e.g. `device:<uuid>:<nonce>`) until `until`. Returns `true` when the
    /// key was new (the request is fresh) and `false` when it was already remembered (a
    /// replay). Keys whose time has passed are swept first, so an old key does not block
    /// forever.
    pub async fn remember(&mut self, key: &str, until: Timestamp, now: Timestamp) -> Result<bool> {
        let mut conn = self.db.conn().await?;
        sqlx::query("DELETE FROM request_nonces WHERE nonce_key = $1 AND expires_at < $2")
            .bind(key)
            .bind(now.unix_millis())
            .execute(&mut *conn)
            .await?;
        let done = sqlx::query(
            "INSERT INTO request_nonces (nonce_key, expires_at) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(until.unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes nonces remembered until before `now`; returns how many.
    pub async fn purge_expired(&mut self, now: Timestamp) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM request_nonces WHERE expires_at < $1")
            .bind(now.unix_millis())
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }
}
