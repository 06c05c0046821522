//! Where the vault keeps its encrypted secrets.

use crate::console::{Secret, SecretInfo};
use crate::error::StoreResult;

/// Secrets as nonce and ciphertext, by name. The vault encrypts and decrypts; the store only
/// keeps bytes, so neither the database nor anything reading it holds a key.
///
/// The vault is its only user: `exsync secrets`, and the console when an admin enters a
/// password or key, go through the vault.
pub trait Secrets: Send + Sync {
    /// Stores several secrets at once, replacing any of the same name: key rotation
    /// re-encrypts every secret and must not leave some under the old key.
    fn put_secrets(&self, secrets: &[Secret]) -> StoreResult<()>;

    /// Stores one secret, replacing any of the same name.
    fn put_secret(&self, secret: &Secret) -> StoreResult<()> {
        self.put_secrets(std::slice::from_ref(secret))
    }

    /// The secret with this name, if there is one.
    fn get_secret(&self, name: &str) -> StoreResult<Option<Secret>>;

    /// The name and age of every secret, ordered by name, without their bytes.
    fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>>;

    /// Removes the secret; `false` when there was none.
    fn delete_secret(&self, name: &str) -> StoreResult<bool>;
}
