//! The krb5.conf MIT reads: written from the configuration's realm and KDC list, or one the
//! configuration names, and handed to the library through `KRB5_CONFIG`.

use std::path::Path;

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

/// Points MIT's library at `path`. The environment is process-wide and read without a lock, so
/// call this before starting threads (at program start, before the async runtime).
pub fn use_config(path: &Path) {
    std::env::set_var("KRB5_CONFIG", path);
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
