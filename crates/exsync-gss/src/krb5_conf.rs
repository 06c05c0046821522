//! The krb5.conf MIT reads: written from the configuration's realm and KDC list, or one the
//! configuration names, and handed to the library through `KRB5_CONFIG`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::files::PrivateFiles;

/// A realm name as MIT accepts it in a profile: no character that would end or nest a relation.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}

/// The profile for `realm` served by `kdcs` (`host` or `host:port`): no DNS lookups for KDCs or
/// realms, no reverse DNS for service names (the SPN is the configured host), TCP first.
pub fn render(realm: &str, kdcs: &[String]) -> Result<String, String> {
    if !plain(realm) || realm.contains(':') {
        return Err(format!("realm {realm:?} is not a Kerberos realm name"));
    }
    if kdcs.is_empty() {
        return Err(format!("no KDC given for realm {realm}"));
    }
    if let Some(bad) = kdcs.iter().find(|k| !plain(k)) {
        return Err(format!("KDC {bad:?} is not a host or host:port"));
    }
    let mut out = format!(
        "[libdefaults]\n  default_realm = {realm}\n  dns_lookup_kdc = false\n  \
         dns_lookup_realm = false\n  dns_canonicalize_hostname = false\n  rdns = false\n  \
         udp_preference_limit = 1\n[realms]\n  {realm} = {{\n"
    );
    for kdc in kdcs {
        out.push_str(&format!("    kdc = {kdc}\n"));
    }
    out.push_str("  }\n");
    Ok(out)
}

/// The largest krb5.conf copied into the switchable one (a real one is a few kilobytes).
const MAX_CONF_BYTES: u64 = 1024 * 1024;

/// The file `KRB5_CONFIG` names in a process that called [`use_switchable`].
static SWITCHABLE: OnceLock<PathBuf> = OnceLock::new();

/// Keeps the switchable krb5.conf's private directory; dropping it (at the end of the process)
/// removes the directory.
#[derive(Debug)]
#[must_use = "the switchable krb5.conf is removed when this is dropped"]
pub struct Switchable {
    _files: Option<PrivateFiles>,
}

/// Points MIT's library at `path`. The environment is process-wide and read without a lock, so
/// without [`use_switchable`] call this before starting threads (at program start, before the
/// async runtime). After it, this copies `path` into the file the environment already names,
/// which is safe at any time: MIT reads that file again for each login.
pub fn use_config(path: &Path) -> Result<(), String> {
    match SWITCHABLE.get() {
        Some(target) => copy_into(path, target),
        None => {
            std::env::set_var("KRB5_CONFIG", path);
            Ok(())
        }
    }
}

/// For a process whose Kerberos configuration changes while it runs (the console, where the
/// realm and KDCs are edited and the connection test logs in at once): `KRB5_CONFIG` is set,
/// once and before any thread starts, to a private file, and [`use_config`] later replaces that
/// file's content instead of the environment. Until then the file holds what MIT would have
/// read (`KRB5_CONFIG` as it was, else `/etc/krb5.conf`), so nothing changes for a process that
/// never logs in with Kerberos. Keep the returned guard for as long as the process runs.
pub fn use_switchable() -> Result<Switchable, String> {
    if SWITCHABLE.get().is_some() {
        return Ok(Switchable { _files: None });
    }
    let files = PrivateFiles::new()
        .map_err(|e| format!("cannot create a private directory for krb5.conf: {e}"))?;
    let target = files.path().join("krb5.conf");
    let system = std::env::var_os("KRB5_CONFIG")
        .map(PathBuf::from)
        .and_then(|p| std::env::split_paths(&p).next())
        .unwrap_or_else(|| PathBuf::from("/etc/krb5.conf"));
    if system.is_file() {
        copy_into(&system, &target)?;
    } else {
        replace(&target, b"")?;
    }
    std::env::set_var("KRB5_CONFIG", &target);
    let _ = SWITCHABLE.set(target);
    Ok(Switchable {
        _files: Some(files),
    })
}

fn copy_into(from: &Path, target: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(from)
        .and_then(|f| f.take(MAX_CONF_BYTES + 1).read_to_end(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if text.len() as u64 > MAX_CONF_BYTES {
        return Err(format!(
            "{} is larger than {MAX_CONF_BYTES} bytes; it is not a krb5.conf",
            from.display()
        ));
    }
    replace(target, &text)
}

/// Writes `target` through a new file and a rename, so MIT never reads half of it.
fn replace(target: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = target.with_extension("conf.new");
    let _ = std::fs::remove_file(&tmp);
    crate::files::write_private(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, target))
        .map_err(|e| format!("cannot write {}: {e}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_relation_per_line_and_refuses_injection() {
        let text = render(
            "CONTOSO.COM",
            &["dc1.contoso.com".into(), "10.0.0.2:88".into()],
        );
        let text = text.unwrap_or_default();
        assert!(text.contains(
            "  CONTOSO.COM = {\n    kdc = dc1.contoso.com\n    kdc = 10.0.0.2:88\n  }\n"
        ));
        assert!(text.contains("rdns = false"));
        assert!(render("EVIL}\n[x", &["k".into()]).is_err());
        assert!(render("R", &["k\n  admin_server = x".into()]).is_err());
        assert!(render("R", &[]).is_err());
    }
}
