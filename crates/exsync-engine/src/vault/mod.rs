//! The secrets vault: the service account's password and the CRM's private key or
//! client secret, encrypted with AES-256-GCM under the master key before they reach the
//! store. Each encryption draws a fresh 96-bit nonce, and the secret's name is the associated
//! data, so a ciphertext copied under another name fails to decrypt instead of passing as it.

mod key;
mod value;

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::Utc;
use exsync_store::{Secret, SecretInfo, Store, StoreError};
use rand::RngCore;
use zeroize::Zeroizing;

pub use key::{
    create_key_file, load_master_key, replace_key_file, staged_key_path, KeySource, MasterKey,
    KEY_LEN, MASTER_KEY_ENV,
};
pub use value::SecretValue;

/// The Exchange service account's password.
pub const EXCHANGE_PASSWORD: &str = "exchange.password";
/// The service account's Kerberos keytab, base64 (`base64 -w0 svc.keytab | exsync secrets set
/// exchange.keytab`): used instead of the password when Kerberos is configured.
pub const EXCHANGE_KEYTAB: &str = "exchange.keytab";
/// The PEM private key that signs the CRM's JWT bearer assertions.
pub const CRM_PRIVATE_KEY: &str = "crm.private_key";
/// The CRM connected app's client secret (client-credentials flow).
pub const CRM_CLIENT_SECRET: &str = "crm.client_secret";
/// Every secret the service reads: `secrets set` refuses other names, which would be stored and
/// never used.
pub const KNOWN_SECRETS: &[&str] = &[
    EXCHANGE_PASSWORD,
    CRM_PRIVATE_KEY,
    CRM_CLIENT_SECRET,
    EXCHANGE_KEYTAB,
    crate::connect::graph::setup::GRAPH_CERTIFICATE,
    crate::connect::graph::setup::GRAPH_PRIVATE_KEY,
    crate::connect::graph::setup::GRAPH_CLIENT_SECRET,
];

const NONCE_LEN: usize = 12;

/// Why the vault could not store, read or re-encrypt a secret. Messages name the secret, never its
/// value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key could not be loaded or created (not base64, wrong length, key file unreadable
    /// or open to other users); the text says which.
    #[error("{0}")]
    Key(String),
    /// The name breaks the rule of [`valid_name`].
    #[error("secret name {0:?} is not valid: use 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")]
    InvalidName(String),
    /// The value given is empty; the vault stores no empty secret.
    #[error("secret {0:?} is empty")]
    Empty(String),
    /// A stored secret does not decrypt under this master key, or is not UTF-8: the key is the
    /// wrong one or the database was changed.
    #[error("secret {name:?} cannot be decrypted: the master key is not the one it was stored under, or the database was altered")]
    Decrypt {
        /// The secret's name.
        name: String,
    },
    /// The cipher refused to encrypt the value.
    #[error("cannot encrypt secret {name:?}")]
    Encrypt {
        /// The secret's name.
        name: String,
    },
    /// The store could not read or write the secrets.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `name` may name a secret: 1 to 64 of `a-z`, `0-9`, `.`, `_` and `-`, starting with a
/// letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Encrypts into and decrypts out of the store's secrets table.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn Store>,
    key: MasterKey,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

impl Vault {
    /// A vault over `store`'s secrets, encrypting under `key`. The key is not checked here: a wrong
    /// one shows when a secret is read.
    pub fn new(store: Arc<dyn Store>, key: MasterKey) -> Vault {
        Vault { store, key }
    }

    /// Encrypts `value` and stores it under `name`, replacing any earlier value. Refuses an invalid
    /// name or an empty value.
    pub fn set(&self, name: &str, value: &SecretValue) -> Result<(), VaultError> {
        if !valid_name(name) {
            return Err(VaultError::InvalidName(name.to_owned()));
        }
        if value.is_empty() {
            return Err(VaultError::Empty(name.to_owned()));
        }
        let secret = seal(&self.key, name, value.expose().as_bytes())?;
        self.store.put_secret(&secret)?;
        tracing::info!(secret = name, "secret stored");
        Ok(())
    }

    /// The secret stored under `name`, decrypted; `None` when there is none. Fails when it does not
    /// decrypt under this key.
    pub fn get(&self, name: &str) -> Result<Option<SecretValue>, VaultError> {
        match self.store.get_secret(name)? {
            None => Ok(None),
            Some(secret) => {
                let plain = open(&self.key, &secret)?;
                let text = String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Decrypt {
                    name: name.to_owned(),
                })?;
                Ok(Some(SecretValue::new(text)))
            }
        }
    }

    /// Whether a secret is stored under `name`, without decrypting it.
    pub fn contains(&self, name: &str) -> Result<bool, VaultError> {
        Ok(self.store.get_secret(name)?.is_some())
    }

    /// Deletes a secret; `false` when none was stored under that name.
    pub fn delete(&self, name: &str) -> Result<bool, VaultError> {
        let deleted = self.store.delete_secret(name)?;
        if deleted {
            tracing::info!(secret = name, "secret deleted");
        }
        Ok(deleted)
    }

    /// Every stored secret's name and when it was last written; never a value.
    pub fn list(&self) -> Result<Vec<SecretInfo>, VaultError> {
        Ok(self.store.list_secrets()?)
    }

    /// Re-encrypts every secret under `new_key` in one store transaction, after checking
    /// that all of them decrypt: a rotation either moves everything or nothing. Returns how
    /// many secrets moved.
    pub fn rotate(&self, new_key: &MasterKey) -> Result<usize, VaultError> {
        let mut resealed = Vec::new();
        for info in self.store.list_secrets()? {
            let Some(secret) = self.store.get_secret(&info.name)? else {
                continue;
            };
            let plain = open(&self.key, &secret)?;
            let mut again = seal(new_key, &secret.name, &plain)?;
            // Rotation changes the key, not the secret: keep when the value was last set.
            again.updated_at = secret.updated_at;
            resealed.push(again);
        }
        self.store.put_secrets(&resealed)?;
        tracing::info!(
            count = resealed.len(),
            "secrets re-encrypted under a new master key"
        );
        Ok(resealed.len())
    }
}

fn cipher(key: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new(key.bytes().into())
}

fn seal(key: &MasterKey, name: &str, plain: &[u8]) -> Result<Secret, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: name.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Encrypt {
            name: name.to_owned(),
        })?;
    Ok(Secret {
        name: name.to_owned(),
        nonce: nonce.to_vec(),
        ciphertext,
        updated_at: Utc::now(),
    })
}

fn open(key: &MasterKey, secret: &Secret) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let fail = || VaultError::Decrypt {
        name: secret.name.clone(),
    };
    if secret.nonce.len() != NONCE_LEN {
        return Err(fail());
    }
    cipher(key)
        .decrypt(
            Nonce::from_slice(&secret.nonce),
            Payload {
                msg: &secret.ciphertext,
                aad: secret.name.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| fail())
}

#[cfg(test)]
mod tests;
