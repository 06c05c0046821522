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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(dir: &tempfile::TempDir, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.path().join("pw");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_gives_the_password_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "s3cret pass\r\n", 0o600);
        assert_eq!(
            store_password(Some(&path)).unwrap().as_deref(),
            Some("s3cret pass")
        );
    }

    #[test]
    fn a_file_others_can_read_an_empty_one_or_a_large_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "s3cret", 0o640);
        let err = store_password(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        let path = file(&dir, "\n", 0o600);
        assert!(store_password(Some(&path))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let path = file(&dir, &"x".repeat(5000), 0o600);
        assert!(store_password(Some(&path))
            .unwrap_err()
            .to_string()
            .contains("only the password"));
    }
}
