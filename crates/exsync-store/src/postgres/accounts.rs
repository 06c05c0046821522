//! Console accounts, API tokens, sessions and the audit log on PostgreSQL.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::codec::{backend, is_foreign_key_violation, is_unique_violation, Ctx};
use super::PgStore;
use crate::console::{AdminUser, ApiToken, AuditEvent, AuditRecord, Role, Session};
use crate::error::{StoreError, StoreResult};
use crate::roles::Accounts;
use crate::sqlite::accounts::{decode_admin, decode_token, TokenRow, ADMIN_COLUMNS, TOKEN_COLUMNS};
use crate::sqlite::codec::{limit, non_empty, parse_time, time_text, Decode};

fn admin_row(row: &Row) -> Result<(String, String, String, String, String), postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    ))
}

fn token_row(row: &Row) -> Result<TokenRow, postgres::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
    ))
}

fn admin(op: &'static str, row: &Row) -> StoreResult<AdminUser> {
    decode_admin(admin_row(row).ctx(op, None)?).decoded(op, None)
}

fn token(op: &'static str, row: &Row) -> StoreResult<ApiToken> {
    decode_token(token_row(row).ctx(op, None)?).decoded(op, None)
}

/// A create that met a taken key is `AlreadyExists`; anything else is the backend's error.
fn created<T>(
    result: Result<T, postgres::Error>,
    op: &'static str,
    what: impl FnOnce() -> String,
) -> StoreResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists { op, what: what() }),
        Err(e) => Err(backend(op, None, &e)),
    }
}

impl Accounts for PgStore {
    fn create_admin_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        const OP: &str = "create admin user";
        non_empty(OP, "account name", name)?;
        non_empty(OP, "password hash", password_hash)?;
        let at = time_text(&at);
        self.with(OP, |c| {
            let result = c.execute(
                "INSERT INTO admin_users (name, password_hash, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
                &[&name, &password_hash, &role.as_str(), &at],
            );
            created(result, OP, || format!("admin user {name:?}")).map(|_| ())
        })
    }

    fn admin_user(&self, name: &str) -> StoreResult<Option<AdminUser>> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM admin_users WHERE name = $1");
        self.read("read admin user", &sql, &[&name], admin)
            .map(|rows| rows.into_iter().next())
    }

    fn list_admin_users(&self) -> StoreResult<Vec<AdminUser>> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM admin_users ORDER BY name");
        self.read("list admin users", &sql, &[], admin)
    }

    fn set_admin_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const OP: &str = "change admin password";
        non_empty(OP, "password hash", password_hash)?;
        self.with(OP, |c| {
            let n = c
                .execute(
                    "UPDATE admin_users SET password_hash = $2, updated_at = $3 WHERE name = $1",
                    &[&name, &password_hash, &time_text(&at)],
                )
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn set_admin_role(&self, name: &str, role: Role, at: DateTime<Utc>) -> StoreResult<bool> {
        const OP: &str = "change admin role";
        self.with(OP, |c| {
            let n = c
                .execute(
                    "UPDATE admin_users SET role = $2, updated_at = $3 WHERE name = $1",
                    &[&name, &role.as_str(), &time_text(&at)],
                )
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn delete_admin_user(&self, name: &str) -> StoreResult<bool> {
        const OP: &str = "delete admin user";
        self.with(OP, |c| {
            // Sessions go with the account through ON DELETE CASCADE.
            let n = c
                .execute("DELETE FROM admin_users WHERE name = $1", &[&name])
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn create_api_token(
        &self,
        token_hash: &str,
        name: &str,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        const OP: &str = "create API token";
        non_empty(OP, "token hash", token_hash)?;
        non_empty(OP, "token name", name)?;
        self.with(OP, |c| {
            let result = c.query_one(
                "INSERT INTO api_tokens (token_hash, name, role, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&token_hash, &name, &role.as_str(), &time_text(&at)],
            );
            let row = created(result, OP, || "a token with this hash".into())?;
            row.try_get(0).ctx(OP, None)
        })
    }

    fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        self.read("look up API token", &sql, &[&token_hash], token)
            .map(|rows| rows.into_iter().next())
    }

    fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
        self.read("list API tokens", &sql, &[], token)
    }

    fn touch_api_token(&self, id: i64, at: DateTime<Utc>) -> StoreResult<bool> {
        const OP: &str = "record API token use";
        self.with(OP, |c| {
            let n = c
                .execute(
                    "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
                    &[&id, &time_text(&at)],
                )
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn delete_api_token(&self, id: i64) -> StoreResult<bool> {
        const OP: &str = "delete API token";
        self.with(OP, |c| {
            let n = c
                .execute("DELETE FROM api_tokens WHERE id = $1", &[&id])
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn create_session(&self, session: &Session) -> StoreResult<()> {
        const OP: &str = "create session";
        non_empty(OP, "session id", &session.id)?;
        non_empty(OP, "CSRF token", &session.csrf_token)?;
        if session.expires_at <= session.created_at {
            return Err(StoreError::InvalidInput {
                op: OP,
                reason: "the session expires before it starts".into(),
            });
        }
        self.with(OP, |c| {
            let result = c.execute(
                "INSERT INTO sessions (id, admin_user, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &session.id,
                    &session.admin_user,
                    &session.csrf_token,
                    &time_text(&session.created_at),
                    &time_text(&session.expires_at),
                ],
            );
            match result {
                Err(e) if is_foreign_key_violation(&e) => Err(StoreError::InvalidInput {
                    op: OP,
                    reason: format!("no admin user {:?}", session.admin_user),
                }),
                other => created(other, OP, || "a session with this id".into()).map(|_| ()),
            }
        })
    }

    fn session(&self, id: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        const OP: &str = "read session";
        self.with(OP, |c| {
            let row = c
                .query_opt(
                    "SELECT id, admin_user, csrf_token, created_at, expires_at FROM sessions \
                     WHERE id = $1 AND expires_at > $2",
                    &[&id, &time_text(&now)],
                )
                .ctx(OP, None)?;
            let Some(row) = row else { return Ok(None) };
            let created_at: String = row.try_get(3).ctx(OP, None)?;
            let expires_at: String = row.try_get(4).ctx(OP, None)?;
            Ok(Some(Session {
                id: row.try_get(0).ctx(OP, None)?,
                admin_user: row.try_get(1).ctx(OP, None)?,
                csrf_token: row.try_get(2).ctx(OP, None)?,
                created_at: parse_time(&created_at).decoded(OP, None)?,
                expires_at: parse_time(&expires_at).decoded(OP, None)?,
            }))
        })
    }

    fn delete_session(&self, id: &str) -> StoreResult<bool> {
        const OP: &str = "delete session";
        self.with(OP, |c| {
            let n = c
                .execute("DELETE FROM sessions WHERE id = $1", &[&id])
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }

    fn delete_sessions_of(&self, admin_user: &str) -> StoreResult<u64> {
        const OP: &str = "end sessions";
        self.with(OP, |c| {
            c.execute("DELETE FROM sessions WHERE admin_user = $1", &[&admin_user])
                .ctx(OP, None)
        })
    }

    fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        const OP: &str = "delete expired sessions";
        self.with(OP, |c| {
            c.execute(
                "DELETE FROM sessions WHERE expires_at <= $1",
                &[&time_text(&now)],
            )
            .ctx(OP, None)
        })
    }

    fn append_audit(&self, event: &AuditEvent) -> StoreResult<i64> {
        const OP: &str = "append audit entry";
        non_empty(OP, "actor", &event.actor)?;
        non_empty(OP, "action", &event.action)?;
        self.with(OP, |c| {
            c.query_one(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4) \
                 RETURNING id",
                &[
                    &time_text(&event.at),
                    &event.actor,
                    &event.action,
                    &event.detail.to_string(),
                ],
            )
            .ctx(OP, None)?
            .try_get(0)
            .ctx(OP, None)
        })
    }

    fn list_audit(&self, max: usize, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
        const OP: &str = "list audit log";
        self.with(OP, |c| {
            let rows = c
                .query(
                    "SELECT id, at, actor, action, detail FROM audit_log \
                     WHERE $1::BIGINT IS NULL OR id < $1 ORDER BY id DESC LIMIT $2",
                    &[&before, &limit(max)],
                )
                .ctx(OP, None)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let at: String = row.try_get(1).ctx(OP, None)?;
                let detail: String = row.try_get(4).ctx(OP, None)?;
                out.push(AuditRecord {
                    id: row.try_get(0).ctx(OP, None)?,
                    at: parse_time(&at).decoded(OP, None)?,
                    actor: row.try_get(2).ctx(OP, None)?,
                    action: row.try_get(3).ctx(OP, None)?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| format!("audit detail is not JSON: {e}"))
                        .decoded(OP, None)?,
                });
            }
            Ok(out)
        })
    }
}
