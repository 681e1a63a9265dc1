//! Console admins (`admins`), their passkeys (`admin_passkeys`), one-time login links
//! (`admin_login_links`) and sessions (`admin_sessions`). Bearer values are stored hashed.

use sqlx::any::AnyRow;
use std::time::Duration;

use crate::db::Db;
use crate::error::{Result, StoreError};
use crate::rows::{
    bool_int, corrupt, flag, found_one as one, hash_token, int, new_id, opt_text, opt_ts,
    random_token, require, text, ts,
};
use crate::timestamp::Timestamp;

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

pub(crate) fn role(row: &AnyRow, table: &'static str, col: &str) -> Result<Role> {
    let s = text(row, col)?;
    Role::parse(&s).ok_or_else(|| corrupt(table, "role", &s))
}

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
    /// Whether the authenticator said at registration the credential may be backed up (BE);
    /// every assertion must say the same.
    pub backup_eligible: bool,
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
/// `Debug` does not show the CSRF token.
#[derive(Clone, PartialEq, Eq)]
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

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("admin_id", &self.admin_id)
            .field("role", &self.role)
            .field("csrf_token", &"[redacted]")
            .field("source_addr", &self.source_addr)
            .field("user_agent", &self.user_agent)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("idle_expires_at", &self.idle_expires_at)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .finish()
    }
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
    /// Backup eligibility (BE) at registration.
    pub backup_eligible: bool,
}

/// What a console WebAuthn challenge was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// A passkey login.
    Login,
    /// Registering a passkey through a login link.
    Enrol,
}

impl ChallengePurpose {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Login => "login",
            ChallengePurpose::Enrol => "enrol",
        }
    }
}

/// A console WebAuthn challenge, taken (and so used up) by [`Admins::take_challenge`].
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleChallenge {
    /// The admin it was issued for (enrolment), if any.
    pub admin_id: Option<String>,
    /// The challenge bytes, base64url.
    pub challenge: String,
}

impl std::fmt::Debug for ConsoleChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleChallenge")
            .field("admin_id", &self.admin_id)
            .finish_non_exhaustive()
    }
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
        backup_eligible: flag(row, "backup_eligible")?,
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
            "SELECT id, admin_id, credential_id, public_key, sign_count, aaguid, name, ",
            "backup_eligible, created_at, ",
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
             name, backup_eligible, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&new.admin_id)
        .bind(&new.credential_id)
        .bind(new.public_key.clone())
        .bind(new.sign_count)
        .bind(&new.aaguid)
        .bind(&new.name)
        .bind(bool_int(new.backup_eligible))
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

    /// How many console passkeys exist (zero: nobody can log in yet, so `serve` prints a
    /// bootstrap link).
    pub async fn passkey_count(&mut self) -> Result<i64> {
        let mut conn = self.db.conn().await?;
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admin_passkeys")
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Remembers a WebAuthn challenge until `ttl` has passed. Returns the handle (shown once,
    /// kept in a cookie; only its hash is stored). Expired challenges are swept here.
    pub async fn create_challenge(
        &mut self,
        purpose: ChallengePurpose,
        admin_id: Option<&str>,
        challenge: &str,
        ttl: Duration,
    ) -> Result<String> {
        let handle = random_token(32);
        let now = Timestamp::now();
        let mut conn = self.db.conn().await?;
        sqlx::query("DELETE FROM console_challenges WHERE expires_at <= $1")
            .bind(now.unix_millis())
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO console_challenges (id_hash, purpose, admin_id, challenge, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&handle))
        .bind(purpose.as_str())
        .bind(admin_id)
        .bind(challenge)
        .bind(now.plus(ttl).unix_millis())
        .execute(&mut *conn)
        .await?;
        Ok(handle)
    }

    /// Takes a challenge for `purpose` by its handle: it is deleted whether or not it is still
    /// valid, so it can be answered once. `None` when unknown, already taken or expired.
    pub async fn take_challenge(
        &mut self,
        handle: &str,
        purpose: ChallengePurpose,
        now: Timestamp,
    ) -> Result<Option<ConsoleChallenge>> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(
            "DELETE FROM console_challenges WHERE id_hash = $1 AND purpose = $2 \
             RETURNING admin_id, challenge, expires_at",
        )
        .bind(hash_token(handle))
        .bind(purpose.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if ts(&row, "expires_at")? <= now {
            return Ok(None);
        }
        Ok(Some(ConsoleChallenge {
            admin_id: opt_text(&row, "admin_id")?,
            challenge: text(&row, "challenge")?,
        }))
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

    /// Reads a login link without using it: the enrol page shows who it is for, and says so
    /// when it has expired or was used. Errors as [`Admins::consume_login_link`] does.
    pub async fn check_login_link(
        &mut self,
        token: &str,
        now: Timestamp,
    ) -> Result<AdminLoginLink> {
        let mut conn = self.db.conn().await?;
        let row = sqlx::query(
            "SELECT admin_id, role, expires_at, used_at FROM admin_login_links \
             WHERE token_hash = $1",
        )
        .bind(hash_token(token))
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::not_found("login link", "(from link)"));
        };
        if opt_ts(&row, "used_at")?.is_some() {
            return Err(StoreError::TokenRejected {
                what: "the login link",
                reason: "was already used",
            });
        }
        let expires_at = ts(&row, "expires_at")?;
        if expires_at <= now {
            return Err(StoreError::TokenRejected {
                what: "the login link",
                reason: "has expired",
            });
        }
        let role = match opt_text(&row, "role")? {
            Some(r) => {
                Some(Role::parse(&r).ok_or_else(|| corrupt("admin_login_links", "role", &r))?)
            }
            None => None,
        };
        Ok(AdminLoginLink {
            admin_id: opt_text(&row, "admin_id")?,
            role,
            expires_at,
        })
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
