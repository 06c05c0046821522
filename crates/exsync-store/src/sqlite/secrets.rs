//! Secrets as nonce and ciphertext, by name.

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{non_empty, parse_time, time_text, Ctx, Decode};
use super::SqliteStore;
use crate::console::{Secret, SecretInfo};
use crate::error::{StoreError, StoreResult};
use crate::roles::Secrets;

impl Secrets for SqliteStore {
    fn put_secrets(&self, secrets: &[Secret]) -> StoreResult<()> {
        put_secrets(&mut self.lock(), secrets)
    }

    fn get_secret(&self, name: &str) -> StoreResult<Option<Secret>> {
        get_secret(&self.lock(), name)
    }

    fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>> {
        list_secrets(&self.lock())
    }

    fn delete_secret(&self, name: &str) -> StoreResult<bool> {
        delete_secret(&self.lock(), name)
    }
}

fn put_secrets(conn: &mut Connection, secrets: &[Secret]) -> StoreResult<()> {
    const OP: &str = "store secrets";
    for secret in secrets {
        non_empty(OP, "secret name", &secret.name)?;
        if secret.nonce.is_empty() || secret.ciphertext.is_empty() {
            return Err(StoreError::InvalidInput {
                op: OP,
                reason: format!("secret {:?} has an empty nonce or ciphertext", secret.name),
            });
        }
    }
    let tx = conn.transaction().ctx(OP, None)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO secrets (name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, \
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            )
            .ctx(OP, None)?;
        for secret in secrets {
            stmt.execute(params![
                secret.name,
                secret.nonce,
                secret.ciphertext,
                time_text(&secret.updated_at)
            ])
            .ctx(OP, None)?;
        }
    }
    tx.commit().ctx(OP, None)?;
    // Names only: the store never logs what a secret holds, even encrypted.
    tracing::info!(count = secrets.len(), "secrets stored");
    Ok(())
}

fn get_secret(conn: &Connection, name: &str) -> StoreResult<Option<Secret>> {
    const OP: &str = "read secret";
    let row = conn
        .prepare_cached("SELECT name, nonce, ciphertext, updated_at FROM secrets WHERE name = ?1")
        .ctx(OP, None)?
        .query_row(params![name], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .optional()
        .ctx(OP, None)?;
    row.map(|(name, nonce, ciphertext, updated_at)| {
        parse_time(&updated_at).map(|updated_at| Secret {
            name,
            nonce,
            ciphertext,
            updated_at,
        })
    })
    .transpose()
    .decoded(OP, None)
}

fn list_secrets(conn: &Connection) -> StoreResult<Vec<SecretInfo>> {
    const OP: &str = "list secrets";
    let rows = conn
        .prepare_cached("SELECT name, updated_at FROM secrets ORDER BY name")
        .ctx(OP, None)?
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .ctx(OP, None)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx(OP, None)?;
    rows.into_iter()
        .map(|(name, updated_at)| {
            parse_time(&updated_at).map(|updated_at| SecretInfo { name, updated_at })
        })
        .map(|info| info.decoded(OP, None))
        .collect()
}

fn delete_secret(conn: &Connection, name: &str) -> StoreResult<bool> {
    const OP: &str = "delete secret";
    let n = conn
        .execute("DELETE FROM secrets WHERE name = ?1", params![name])
        .ctx(OP, None)?;
    Ok(n > 0)
}
