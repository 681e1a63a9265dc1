//! Who may do what: invites, pairing sessions, admins and their passkeys, one-time login
//! links, console sessions and API tokens.
//!
//! Every bearer value (invite token, pairing secret, login link, session id, API token) is
//! random, handed out once, and stored only as its SHA-256 ([`crate::hash_token`]).

use std::time::Duration;

use sqlx::any::AnyRow;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{
    bool_int, corrupt, flag, hash_token, int, new_id, opt_text, opt_ts, random_token, require,
    text, ts,
};
use crate::timestamp::Timestamp;

fn one(rows: u64, entity: &'static str, id: &str) -> Result<()> {
    if rows == 0 {
        Err(StoreError::not_found(entity, id))
    } else {
        Ok(())
    }
}

/// Console and API roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Users and devices, not integration settings.
    Helpdesk,
    /// Read-only, audit log included.
    Auditor,
}

impl Role {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "helpdesk" => Some(Role::Helpdesk),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

fn role(row: &AnyRow, table: &'static str, col: &str) -> Result<Role> {
    let s = text(row, col)?;
    Role::parse(&s).ok_or_else(|| corrupt(table, "role", &s))
}

// ---------------------------------------------------------------------------------------------
// Invites

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

// ---------------------------------------------------------------------------------------------
// Pairing sessions

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

// ---------------------------------------------------------------------------------------------
// Admins, passkeys, login links, sessions

/// A console user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Row id.
    pub id: String,
    /// Login name (unique).
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Disabled admins cannot log in.
    pub disabled: bool,
    /// Created.
    pub created_at: Timestamp,
}

/// An admin's WebAuthn credential for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPasskey {
    /// Row id.
    pub id: String,
    /// Owner.
    pub admin_id: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// COSE public key bytes.
    pub public_key: Vec<u8>,
    /// Last seen signature counter.
    pub sign_count: i64,
    /// AAGUID.
    pub aaguid: String,
    /// Name given at registration.
    pub name: String,
    /// Registered.
    pub created_at: Timestamp,
    /// Last login.
    pub last_used_at: Option<Timestamp>,
}

/// A one-time console login link (bootstrap of the first admin, or for an existing admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminLoginLink {
    /// The admin it logs in, or `None` for a bootstrap link that creates one.
    pub admin_id: Option<String>,
    /// Role of the admin a bootstrap link creates.
    pub role: Option<Role>,
    /// Expires.
    pub expires_at: Timestamp,
}

/// A console session. Its cookie value is returned once by [`Admins::create_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// The admin.
    pub admin_id: String,
    /// The admin's role (read with the session).
    pub role: Role,
    /// CSRF token to embed in forms.
    pub csrf_token: String,
    /// Source address at login.
    pub source_addr: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Logged in.
    pub created_at: Timestamp,
    /// Last request.
    pub last_seen_at: Timestamp,
    /// Idle timeout.
    pub idle_expires_at: Timestamp,
    /// Absolute timeout.
    pub absolute_expires_at: Timestamp,
}

/// Input for [`Admins::add_passkey`].
#[derive(Debug, Clone)]
pub struct NewAdminPasskey {
    /// Owner.
    pub admin_id: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// COSE public key.
    pub public_key: Vec<u8>,
    /// Counter at registration.
    pub sign_count: i64,
    /// AAGUID.
    pub aaguid: String,
    /// Name.
    pub name: String,
}

/// Repository for admins, their passkeys, login links and sessions.
pub struct Admins<'a> {
    pub(crate) db: Db<'a>,
}

fn decode_admin(row: &AnyRow) -> Result<Admin> {
    Ok(Admin {
        id: text(row, "id")?,
        username: text(row, "username")?,
        display_name: text(row, "display_name")?,
        role: role(row, "admins", "role")?,
        disabled: flag(row, "disabled")?,
        created_at: ts(row, "created_at")?,
    })
}

fn decode_passkey(row: &AnyRow) -> Result<AdminPasskey> {
    use sqlx::Row;
    Ok(AdminPasskey {
        id: text(row, "id")?,
        admin_id: text(row, "admin_id")?,
        credential_id: text(row, "credential_id")?,
        public_key: row.try_get("public_key")?,
        sign_count: int(row, "sign_count")?,
        aaguid: text(row, "aaguid")?,
        name: text(row, "name")?,
        created_at: ts(row, "created_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

macro_rules! admin_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, username, display_name, role, disabled, created_at FROM admins ",
            $tail
        )
    };
}

macro_rules! passkey_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, admin_id, credential_id, public_key, sign_count, aaguid, name, created_at, ",
            "last_used_at FROM admin_passkeys ",
            $tail
        )
    };
}

impl Admins<'_> {
    /// Creates an admin.
    pub async fn create(
        &mut self,
        username: &str,
        display_name: &str,
        role: Role,
    ) -> Result<Admin> {
        require("username", username)?;
        let id = new_id();
        let now = Timestamp::now().unix_millis();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO admins (id, username, display_name, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(username)
        .bind(display_name)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        drop(conn);
        self.get(&id).await
    }

    /// One admin.
    pub async fn get(&mut self, id: &str) -> Result<Admin> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(admin_select!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref()
            .map(decode_admin)
            .transpose()?
            .ok_or_else(|| StoreError::not_found("admin", id))
    }

    /// By username.
    pub async fn find_by_username(&mut self, username: &str) -> Result<Option<Admin>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(admin_select!("WHERE username = $1"))
            .bind(username)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode_admin).transpose()
    }

    /// Every admin, by username.
    pub async fn list(&mut self) -> Result<Vec<Admin>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(admin_select!("ORDER BY username"))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(decode_admin).collect()
    }

    /// How many admins exist (zero: the server offers a bootstrap link).
    pub async fn count(&mut self) -> Result<i64> {
        let mut conn = self.db.conn().await?;
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admins")
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Changes role and disabled flag.
    pub async fn update(&mut self, id: &str, role: Role, disabled: bool) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE admins SET role = $1, disabled = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(role.as_str())
        .bind(bool_int(disabled))
        .bind(Timestamp::now().unix_millis())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        one(done.rows_affected(), "admin", id)
    }

    /// Deletes an admin with their passkeys and sessions.
    pub async fn delete(&mut self, id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM admins WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "admin", id)
    }

    /// Registers a console passkey.
    pub async fn add_passkey(&mut self, new: NewAdminPasskey) -> Result<AdminPasskey> {
        require("credential id", &new.credential_id)?;
        let id = new_id();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO admin_passkeys (id, admin_id, credential_id, public_key, sign_count, aaguid, \
             name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&new.admin_id)
        .bind(&new.credential_id)
        .bind(new.public_key.clone())
        .bind(new.sign_count)
        .bind(&new.aaguid)
        .bind(&new.name)
        .bind(Timestamp::now().unix_millis())
        .execute(&mut *conn)
        .await?;
        let row = sqlx::query(passkey_select!("WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *conn)
            .await?;
        decode_passkey(&row)
    }

    /// An admin's passkeys.
    pub async fn passkeys(&mut self, admin_id: &str) -> Result<Vec<AdminPasskey>> {
        let mut conn = self.db.conn().await?;
        let rows = sqlx::query(passkey_select!(
            "WHERE admin_id = $1 ORDER BY created_at, id"
        ))
        .bind(admin_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(decode_passkey).collect()
    }

    /// A passkey by credential id (login).
    pub async fn find_passkey(&mut self, credential_id: &str) -> Result<Option<AdminPasskey>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(passkey_select!("WHERE credential_id = $1"))
            .bind(credential_id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(decode_passkey).transpose()
    }

    /// Records a login: new counter and time. Refuses (returns `false`) a counter that does
    /// not increase, unless both are zero (authenticators without a counter).
    pub async fn record_passkey_use(
        &mut self,
        passkey_id: &str,
        sign_count: i64,
        at: Timestamp,
    ) -> Result<bool> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE admin_passkeys SET sign_count = $1, last_used_at = $2 WHERE id = $3 \
             AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))",
        )
        .bind(sign_count)
        .bind(at.unix_millis())
        .bind(passkey_id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a passkey.
    pub async fn delete_passkey(&mut self, passkey_id: &str) -> Result<()> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query("DELETE FROM admin_passkeys WHERE id = $1")
            .bind(passkey_id)
            .execute(&mut *conn)
            .await?;
        one(done.rows_affected(), "admin passkey", passkey_id)
    }

    /// Issues a one-time login link. `admin_id = None` with a `role` is a bootstrap link that
    /// lets its holder create an admin of that role. Returns the token (shown once).
    pub async fn create_login_link(
        &mut self,
        admin_id: Option<&str>,
        role: Option<Role>,
        ttl: Duration,
    ) -> Result<String> {
        if admin_id.is_none() && role.is_none() {
            return Err(StoreError::Invalid {
                field: "role",
                reason: "a bootstrap link needs the role of the admin it creates".to_string(),
            });
        }
        let token = random_token(32);
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO admin_login_links (token_hash, admin_id, role, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&token))
        .bind(admin_id)
        .bind(role.map(Role::as_str))
        .bind(now.unix_millis())
        .bind(now.plus(ttl).unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(token)
    }

    /// Uses a login link (once, before expiry).
    pub async fn consume_login_link(
        &mut self,
        token: &str,
        now: Timestamp,
    ) -> Result<AdminLoginLink> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(
            "UPDATE admin_login_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND expires_at > $1 RETURNING admin_id, role, expires_at",
        )
        .bind(now.unix_millis())
        .bind(hash_token(token))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            let role_text = opt_text(&row, "role")?;
            return Ok(AdminLoginLink {
                admin_id: opt_text(&row, "admin_id")?,
                role: match role_text {
                    Some(r) => Some(
                        Role::parse(&r).ok_or_else(|| corrupt("admin_login_links", "role", &r))?,
                    ),
                    None => None,
                },
                expires_at: ts(&row, "expires_at")?,
            });
        }
        let used: Option<Option<i64>> =
            sqlx::query_scalar("SELECT used_at FROM admin_login_links WHERE token_hash = $1")
                .bind(hash_token(token))
                .fetch_optional(&mut *conn)
                .await?;
        Err(match used {
            None => StoreError::not_found("login link", "(from link)"),
            Some(Some(_)) => StoreError::TokenRejected {
                what: "the login link",
                reason: "was already used",
            },
            Some(None) => StoreError::TokenRejected {
                what: "the login link",
                reason: "has expired",
            },
        })
    }

    /// Opens a console session. Returns it with the session token for the cookie (shown
    /// once; only its hash is stored).
    pub async fn create_session(
        &mut self,
        admin_id: &str,
        idle: Duration,
        absolute: Duration,
        source_addr: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<(AdminSession, String)> {
        let token = random_token(32);
        let csrf = random_token(32);
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "INSERT INTO admin_sessions (id_hash, admin_id, csrf_token, source_addr, user_agent, \
             created_at, last_seen_at, idle_expires_at, absolute_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
        )
        .bind(hash_token(&token))
        .bind(admin_id)
        .bind(&csrf)
        .bind(source_addr)
        .bind(user_agent)
        .bind(now.unix_millis())
        .bind(now.plus(idle.min(absolute)).unix_millis())
        .bind(now.plus(absolute).unix_millis())
        .execute(&mut *conn)
        .await?;
        drop(conn);
        let session = self
            .session(&token, now)
            .await?
            .ok_or_else(|| StoreError::not_found("admin session", "(new)"))?;
        Ok((session, token))
    }

    /// The live session for a cookie value: not revoked, within both timeouts, admin enabled.
    pub async fn session(&mut self, token: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(
            "SELECT s.admin_id, a.role, s.csrf_token, s.source_addr, s.user_agent, s.created_at, \
             s.last_seen_at, s.idle_expires_at, s.absolute_expires_at FROM admin_sessions s \
             JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = $1 AND s.revoked_at IS NULL \
             AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2 AND a.disabled = 0",
        )
        .bind(hash_token(token))
        .bind(now.unix_millis())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(AdminSession {
                admin_id: text(&row, "admin_id")?,
                role: role(&row, "admins", "role")?,
                csrf_token: text(&row, "csrf_token")?,
                source_addr: opt_text(&row, "source_addr")?,
                user_agent: opt_text(&row, "user_agent")?,
                created_at: ts(&row, "created_at")?,
                last_seen_at: ts(&row, "last_seen_at")?,
                idle_expires_at: ts(&row, "idle_expires_at")?,
                absolute_expires_at: ts(&row, "absolute_expires_at")?,
            })
        })
        .transpose()
    }

    /// Extends the idle timeout after a request (never past the absolute timeout).
    pub async fn touch_session(
        &mut self,
        token: &str,
        idle: Duration,
        now: Timestamp,
    ) -> Result<()> {
        let mut conn = self.db.conn().await?;
        sqlx::query(
            "UPDATE admin_sessions SET last_seen_at = $1, idle_expires_at = \
             CASE WHEN $2 < absolute_expires_at THEN $2 ELSE absolute_expires_at END \
             WHERE id_hash = $3 AND revoked_at IS NULL",
        )
        .bind(now.unix_millis())
        .bind(now.plus(idle).unix_millis())
        .bind(hash_token(token))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Logs a session out.
    pub async fn revoke_session(&mut self, token: &str, now: Timestamp) -> Result<()> {
        let mut conn = self.db.conn().await?;
        sqlx::query("UPDATE admin_sessions SET revoked_at = $1 WHERE id_hash = $2")
            .bind(now.unix_millis())
            .bind(hash_token(token))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Logs out every session of an admin. Returns how many.
    pub async fn revoke_all_sessions(&mut self, admin_id: &str, now: Timestamp) -> Result<u64> {
        let mut conn = self.db.conn().await?;
        let done = sqlx::query(
            "UPDATE admin_sessions SET revoked_at = $1 WHERE admin_id = $2 AND revoked_at IS NULL",
        )
        .bind(now.unix_millis())
        .bind(admin_id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected())
    }
}

// ---------------------------------------------------------------------------------------------
// API tokens

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
