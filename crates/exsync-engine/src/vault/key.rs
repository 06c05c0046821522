//! The master key: from `EXSYNC_MASTER_KEY` (base64 of 32 bytes) or a key file that is
//! created with mode 0600 on first use. A key file others can read is refused rather than
//! trusted, since it unlocks every secret in the database.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

use super::VaultError;

/// Name of the environment variable holding the key.
pub const MASTER_KEY_ENV: &str = "EXSYNC_MASTER_KEY";
/// Length of the master key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// A 256-bit AES key, wiped on drop, never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        MasterKey(bytes)
    }

    /// Parses the base64 text of `EXSYNC_MASTER_KEY` or of a key file.
    pub fn from_base64(text: &str) -> Result<MasterKey, VaultError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| VaultError::Key("the master key is not valid base64".to_owned()))?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            VaultError::Key(format!(
                "the master key must be {KEY_LEN} bytes, found {}",
                decoded.len()
            ))
        })?;
        Ok(MasterKey(Zeroizing::new(bytes)))
    }

    /// The key as base64, the form `EXSYNC_MASTER_KEY` and key files hold; the text is wiped on
    /// drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Where the key in use came from; rotation writes the new key back to the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `EXSYNC_MASTER_KEY`: a rotation cannot write there, so the operator sets the new key there
    /// themselves.
    Env,
    /// The key file at this path, which a rotation replaces.
    File(PathBuf),
}

/// The key from `env_value` when given (the caller reads `EXSYNC_MASTER_KEY`), else from
/// `key_file`, creating that file on first use.
pub fn load_master_key(
    env_value: Option<&str>,
    key_file: &Path,
) -> Result<(MasterKey, KeySource), VaultError> {
    if let Some(text) = env_value {
        let key = MasterKey::from_base64(text)
            .map_err(|e| VaultError::Key(format!("{MASTER_KEY_ENV}: {e}")))?;
        return Ok((key, KeySource::Env));
    }
    match fs::symlink_metadata(key_file) {
        Ok(_) => read_key_file(key_file).map(|k| (k, KeySource::File(key_file.to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            create_key_file(key_file, &key)?;
            tracing::info!(path = %key_file.display(), "created a new master key file");
            Ok((key, KeySource::File(key_file.to_owned())))
        }
        Err(e) => Err(VaultError::Key(format!(
            "master key file {}: {e}",
            key_file.display()
        ))),
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, VaultError> {
    check_private(path)?;
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| VaultError::Key(format!("master key file {}: {e}", path.display())))?,
    );
    MasterKey::from_base64(&text)
        .map_err(|e| VaultError::Key(format!("master key file {}: {e}", path.display())))
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path)
        .map_err(|e| VaultError::Key(format!("master key file {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::Key(format!(
            "master key file {} has mode {mode:o}: group and others must not be able to read it; \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), VaultError> {
    Ok(())
}

/// Writes a new key file that only its owner can read; fails if the file exists.
pub fn create_key_file(path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    let fail = |e: std::io::Error| {
        VaultError::Key(format!(
            "cannot create master key file {}: {e}",
            path.display()
        ))
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    let text = key.to_base64();
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.write_all(b"\n").map_err(fail)?;
    file.sync_all().map_err(fail)?;
    Ok(())
}

/// Replaces the key file with `key` (rename, so it is never half-written).
pub fn replace_key_file(path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    let tmp = staged_key_path(path);
    let _ = fs::remove_file(&tmp);
    create_key_file(&tmp, key)?;
    fs::rename(&tmp, path).map_err(|e| {
        VaultError::Key(format!(
            "cannot replace master key file {}: {e}; the new key is in {}",
            path.display(),
            tmp.display()
        ))
    })
}

/// Where rotation stages the new key before the database switches to it.
pub fn staged_key_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    name.push(".new");
    path.with_file_name(name)
}
