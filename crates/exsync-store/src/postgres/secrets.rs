//! Secrets as nonce and ciphertext, by name, on PostgreSQL.

use super::codec::Ctx;
use super::PgStore;
use crate::console::{Secret, SecretInfo};
use crate::error::{StoreError, StoreResult};
use crate::roles::Secrets;
use crate::sqlite::codec::{non_empty, parse_time, time_text, Decode};

impl Secrets for PgStore {
    fn put_secrets(&self, secrets: &[Secret]) -> StoreResult<()> {
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
        self.with(OP, |c| {
            let mut tx = c.transaction().ctx(OP, None)?;
            let put = tx
                .prepare(
                    "INSERT INTO secrets (name, nonce, ciphertext, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
                     nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     updated_at = excluded.updated_at",
                )
                .ctx(OP, None)?;
            for secret in secrets {
                tx.execute(
                    &put,
                    &[
                        &secret.name,
                        &secret.nonce,
                        &secret.ciphertext,
                        &time_text(&secret.updated_at),
                    ],
                )
                .ctx(OP, None)?;
            }
            tx.commit().ctx(OP, None)
        })?;
        // Names only: the store never logs what a secret holds, even encrypted.
        tracing::info!(count = secrets.len(), "secrets stored");
        Ok(())
    }

    fn get_secret(&self, name: &str) -> StoreResult<Option<Secret>> {
        const OP: &str = "read secret";
        self.with(OP, |c| {
            let row = c
                .query_opt(
                    "SELECT name, nonce, ciphertext, updated_at FROM secrets WHERE name = $1",
                    &[&name],
                )
                .ctx(OP, None)?;
            let Some(row) = row else { return Ok(None) };
            let updated_at: String = row.try_get(3).ctx(OP, None)?;
            Ok(Some(Secret {
                name: row.try_get(0).ctx(OP, None)?,
                nonce: row.try_get(1).ctx(OP, None)?,
                ciphertext: row.try_get(2).ctx(OP, None)?,
                updated_at: parse_time(&updated_at).decoded(OP, None)?,
            }))
        })
    }

    fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>> {
        const OP: &str = "list secrets";
        self.with(OP, |c| {
            let rows = c
                .query("SELECT name, updated_at FROM secrets ORDER BY name", &[])
                .ctx(OP, None)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let updated_at: String = row.try_get(1).ctx(OP, None)?;
                out.push(SecretInfo {
                    name: row.try_get(0).ctx(OP, None)?,
                    updated_at: parse_time(&updated_at).decoded(OP, None)?,
                });
            }
            Ok(out)
        })
    }

    fn delete_secret(&self, name: &str) -> StoreResult<bool> {
        const OP: &str = "delete secret";
        self.with(OP, |c| {
            let n = c
                .execute("DELETE FROM secrets WHERE name = $1", &[&name])
                .ctx(OP, None)?;
            Ok(n > 0)
        })
    }
}
