//! Where the PostgreSQL password comes from. Not the vault: the vault keeps its ciphertext in
//! the state database, which this password opens. It is read from `store.password_file` (a
//! file only its owner may read, as for the master key) or `EXSYNC_STORE_PASSWORD` (a
//! service manager's credential), never from the URL or the configuration file; with neither,
//! the connection uses no password (a Unix socket's peer authentication, say).

use std::path::Path;

use anyhow::{bail, Context};

/// The environment variable holding the PostgreSQL password when no file is configured.
pub const STORE_PASSWORD_ENV: &str = "EXSYNC_STORE_PASSWORD";

/// The longest password file read; anything longer is not a password.
const MAX_PASSWORD_FILE: u64 = 4096;

pub fn store_password(password_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = password_file {
        return read_password_file(path).map(Some);
    }
    match std::env::var(STORE_PASSWORD_ENV) {
        Ok(value) if value.is_empty() => bail!("{STORE_PASSWORD_ENV} is set but empty"),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{STORE_PASSWORD_ENV} is not UTF-8"),
    }
}

fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("store.password_file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "store.password_file {} can be read by others (mode {mode:o}); run \
                 `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    if meta.len() > MAX_PASSWORD_FILE {
        bail!(
            "store.password_file {} is {} bytes; it should hold only the password",
            path.display(),
            meta.len()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("store.password_file {}", path.display()))?;
    // Editors end a file with a newline; the password does not include it.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("store.password_file {} is empty", path.display());
    }
    Ok(password.to_owned())
}
