//! Console accounts, API tokens, sessions and the audit log.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::codec::{
    is_unique_violation, limit, non_empty, parse_opt_time, parse_role, parse_time, time_text, Ctx,
    Decode,
};
use super::SqliteStore;
use crate::console::{AdminUser, ApiToken, AuditEvent, AuditRecord, Role, Session};
use crate::error::{StoreError, StoreResult};
use crate::roles::Accounts;

impl Accounts for SqliteStore {
    fn create_admin_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        create_admin_user(&self.lock(), name, password_hash, role, at)
    }

    fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>> {
        admin_user(&self.lock(), name)
    }

    fn list_admin_users(&self) -> StoreResult<Vec<AdminUser>> {
        list_admin_users(&self.lock())
    }

    fn set_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        set_admin_password(&self.lock(), name, password_hash, at)
    }

    fn set_admin_role(&self, name: &str, role: Role, at: DateTime<Utc>) -> StoreResult<bool> {
        set_admin_role(&self.lock(), name, role, at)
    }

    fn delete_admin_user(&self, name: &str) -> StoreResult<bool> {
        delete_admin_user(&self.lock(), name)
    }

    fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        create_api_token(&self.lock(), token_hash, name, role, at)
    }

    fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        api_token_by_hash(&self.lock(), token_hash)
    }

    fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        list_api_tokens(&self.lock())
    }

    fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        touch_api_token(&self.lock(), id, at)
    }

    fn delete_api_token(&self, id: i64) -> StoreResult<bool> {
        delete_api_token(&self.lock(), id)
    }

    fn create_session(&self, session: &Session) -> StoreResult<()> {
        create_session(&self.lock(), session)
    }

    fn session(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        session(&self.lock(), id, now)
    }

    fn delete_session(&self, id: &str) -> StoreResult<bool> {
        delete_session(&self.lock(), id)
    }

    fn delete_sessions_of(&self, admin_user: &str) -> StoreResult<u64> {
        delete_sessions_of(&self.lock(), admin_user)
    }

    fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        delete_expired_sessions(&self.lock(), now)
    }

    fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        append_audit(&self.lock(), event)
    }

    fn list_audit(&self, limit: usize, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
        list_audit(&self.lock(), limit, before)
    }
}

// ---- admin accounts ----------------------------------------------------------------------------

pub(crate) const ADMIN_COLUMNS: &str = "name, password_hash, role, created_at, updated_at";

fn admin_row(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

pub(crate) fn decode_admin(
    (name, password_hash, role, created_at, updated_at): (String, String, String, String, String),
) -> Result<AdminUser, String> {
    Ok(AdminUser {
        name,
        password_hash,
        role: parse_role(&role)?,
        created_at: parse_time(&created_at)?,
        updated_at: parse_time(&updated_at)?,
    })
}

fn create_admin_user(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    role: Role,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    const OP: &str = "create admin user";
    non_empty(OP, "account name", name)?;
    non_empty(OP, "password hash", password_hash)?;
    let at = time_text(&at);
    let result = conn.execute(
        "INSERT INTO admin_users (name, password_hash, role, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![name, password_hash, role.as_str(), at],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            op: OP,
            what: format!("admin user {name:?}"),
        }),
        Err(e) => Err(super::codec::backend(OP, None, &e)),
    }
}

fn admin_user(conn: &Connection, name: &str) -> StoreResult<Option<AdminUser>> {
    const OP: &str = "read admin user";
    let sql = format!("SELECT {ADMIN_COLUMNS} FROM admin_users WHERE name = ?1");
    let row = conn
        .prepare_cached(&sql)
        .ctx(OP, None)?
        .query_row(params![name], admin_row)
        .optional()
        .ctx(OP, None)?;
    row.map(decode_admin).transpose().decoded(OP, None)
}

fn list_admin_users(conn: &Connection) -> StoreResult<Vec<AdminUser>> {
    const OP: &str = "list admin users";
    let sql = format!("SELECT {ADMIN_COLUMNS} FROM admin_users ORDER BY name");
    let rows = conn
        .prepare_cached(&sql)
        .ctx(OP, None)?
        .query_map([], admin_row)
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|row| decode_admin(row).decoded(OP, None))
        .collect()
}

fn set_admin_password(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    const OP: &str = "change admin password";
    non_empty(OP, "password hash", password_hash)?;
    let n = conn
        .execute(
            "UPDATE admin_users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, password_hash, time_text(&at)],
        )
        .ctx(OP, None)?;
    Ok(n > 0)
}

fn set_admin_role(
    conn: &Connection,
    name: &str,
    role: Role,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    const OP: &str = "change admin role";
    let n = conn
        .execute(
            "UPDATE admin_users SET role = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, role.as_str(), time_text(&at)],
        )
        .ctx(OP, None)?;
    Ok(n > 0)
}

fn delete_admin_user(conn: &Connection, name: &str) -> StoreResult<bool> {
    const OP: &str = "delete admin user";
    // Sessions go with the account through ON DELETE CASCADE.
    let n = conn
        .execute("DELETE FROM admin_users WHERE name = ?1", params![name])
        .ctx(OP, None)?;
    Ok(n > 0)
}

// ---- API tokens ----------------------------------------------------------------------------

pub(crate) const TOKEN_COLUMNS: &str = "id, token_hash, name, role, created_at, last_used_at";

pub(crate) type TokenRow = (i64, String, String, String, String, Option<String>);

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

pub(crate) fn decode_token(
    (id, token_hash, name, role, created_at, last_used_at): TokenRow,
) -> Result<ApiToken, String> {
    Ok(ApiToken {
        id,
        token_hash,
        name,
        role: parse_role(&role)?,
        created_at: parse_time(&created_at)?,
        last_used_at: parse_opt_time(last_used_at.as_deref())?,
    })
}

fn create_api_token(
    conn: &Connection,
    token_hash: &str,
    name: &str,
    role: Role,
    at: DateTime<Utc>,
) -> StoreResult<i64> {
    const OP: &str = "create API token";
    non_empty(OP, "token hash", token_hash)?;
    non_empty(OP, "token name", name)?;
    let result = conn.execute(
        "INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, name, role.as_str(), time_text(&at)],
    );
    match result {
        Ok(_) => Ok(conn.last_insert_rowid()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            op: OP,
            what: "a token with this hash".into(),
        }),
        Err(e) => Err(super::codec::backend(OP, None, &e)),
    }
}

fn api_token_by_hash(conn: &Connection, token_hash: &str) -> StoreResult<Option<ApiToken>> {
    const OP: &str = "look up API token";
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1");
    let row = conn
        .prepare_cached(&sql)
        .ctx(OP, None)?
        .query_row(params![token_hash], token_row)
        .optional()
        .ctx(OP, None)?;
    row.map(decode_token).transpose().decoded(OP, None)
}

fn list_api_tokens(conn: &Connection) -> StoreResult<Vec<ApiToken>> {
    const OP: &str = "list API tokens";
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
    let rows = conn
        .prepare_cached(&sql)
        .ctx(OP, None)?
        .query_map([], token_row)
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|row| decode_token(row).decoded(OP, None))
        .collect()
}

fn touch_api_token(conn: &Connection, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
    const OP: &str = "record API token use";
    let n = conn
        .execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![id, time_text(&at)],
        )
        .ctx(OP, None)?;
    Ok(n > 0)
}

fn delete_api_token(conn: &Connection, id: i64) -> StoreResult<bool> {
    const OP: &str = "delete API token";
    let n = conn
        .execute("DELETE FROM api_tokens WHERE id = ?1", params![id])
        .ctx(OP, None)?;
    Ok(n > 0)
}

// ---- sessions ------------------------------------------------------------------------------

fn create_session(conn: &Connection, session: &Session) -> StoreResult<()> {
    const OP: &str = "create session";
    non_empty(OP, "session id", &session.id)?;
    non_empty(OP, "CSRF token", &session.csrf_token)?;
    if session.expires_at <= session.created_at {
        return Err(StoreError::InvalidInput {
            op: OP,
            reason: "the session expires before it starts".into(),
        });
    }
    let result = conn.execute(
        "INSERT INTO sessions (id, admin_user, csrf_token, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            session.id,
            session.admin_user,
            session.csrf_token,
            time_text(&session.created_at),
            time_text(&session.expires_at)
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists {
            op: OP,
            what: "a session with this id".into(),
        }),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(StoreError::InvalidInput {
                op: OP,
                reason: format!("no admin user {:?}", session.admin_user),
            })
        }
        Err(e) => Err(super::codec::backend(OP, None, &e)),
    }
}

fn session(conn: &Connection, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
    const OP: &str = "read session";
    let row = conn
        .prepare_cached(
            "SELECT id, admin_user, csrf_token, created_at, expires_at FROM sessions \
             WHERE id = ?1 AND expires_at > ?2",
        )
        .ctx(OP, None)?
        .query_row(params![id, time_text(&now)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .optional()
        .ctx(OP, None)?;
    row.map(|(id, admin_user, csrf_token, created_at, expires_at)| {
        Ok(Session {
            id,
            admin_user,
            csrf_token,
            created_at: parse_time(&created_at)?,
            expires_at: parse_time(&expires_at)?,
        })
    })
    .transpose()
    .decoded(OP, None)
}

fn delete_session(conn: &Connection, id: &str) -> StoreResult<bool> {
    const OP: &str = "delete session";
    let n = conn
        .execute("DELETE FROM sessions WHERE id = ?1", params![id])
        .ctx(OP, None)?;
    Ok(n > 0)
}

fn delete_sessions_of(conn: &Connection, admin_user: &str) -> StoreResult<u64> {
    const OP: &str = "end sessions";
    let n = conn
        .execute(
            "DELETE FROM sessions WHERE admin_user = ?1",
            params![admin_user],
        )
        .ctx(OP, None)?;
    Ok(n as u64)
}

fn delete_expired_sessions(conn: &Connection, now: DateTime<Utc>) -> StoreResult<u64> {
    const OP: &str = "delete expired sessions";
    let n = conn
        .execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            params![time_text(&now)],
        )
        .ctx(OP, None)?;
    Ok(n as u64)
}

// ---- audit log -----------------------------------------------------------------------------

fn append_audit(conn: &Connection, event: &AuditEvent) -> StoreResult<i64> {
    const OP: &str = "append audit entry";
    non_empty(OP, "actor", &event.actor)?;
    non_empty(OP, "action", &event.action)?;
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
    )
    .ctx(OP, None)?
    .execute(params![
        time_text(&event.at),
        event.actor,
        event.action,
        event.detail.to_string()
    ])
    .ctx(OP, None)?;
    Ok(conn.last_insert_rowid())
}

fn list_audit(conn: &Connection, max: usize, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
    const OP: &str = "list audit log";
    let rows = conn
        .prepare_cached(
            "SELECT id, at, actor, action, detail FROM audit_log \
             WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
        )
        .ctx(OP, None)?
        .query_map(params![before, limit(max)], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|(id, at, actor, action, detail)| {
            Ok(AuditRecord {
                id,
                at: parse_time(&at)?,
                actor,
                action,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| format!("audit detail is not JSON: {e}"))?,
            })
        })
        .map(|record: Result<AuditRecord, String>| record.decoded(OP, None))
        .collect()
}
