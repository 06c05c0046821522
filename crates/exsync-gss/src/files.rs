//! The files MIT's library must read from disk: the service account's keytab (a secret, kept in
//! the vault and written out only for the life of the process) and a krb5.conf written from the
//! configuration. Both live in a directory only our user can open, removed when dropped.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A private directory (0700) for the keytab and krb5.conf, deleted with its contents on drop.
#[derive(Debug)]
pub struct PrivateFiles {
    dir: tempfile::TempDir,
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

impl PrivateFiles {
    /// A new private directory under the system's temporary directory.
    pub fn new() -> std::io::Result<PrivateFiles> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("exsync-krb5-");
        // tempfile leaves the mode to the umask, which may let others list the directory.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        Ok(PrivateFiles {
            dir: builder.tempdir()?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the keytab (0600) and returns its path.
    pub fn write_keytab(&self, keytab: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir.path().join("exchange.keytab");
        write_private(&path, keytab)?;
        Ok(path)
    }

    /// Writes a krb5.conf for `realm` served by `kdcs` ([`crate::krb5_conf::render`]).
    pub fn write_krb5_conf(&self, realm: &str, kdcs: &[String]) -> Result<PathBuf, String> {
        let text = crate::krb5_conf::render(realm, kdcs)?;
        let path = self.dir.path().join("krb5.conf");
        write_private(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}
