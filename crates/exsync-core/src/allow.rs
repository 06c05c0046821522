//! The hosts credentials may be sent to. One rule serves the configuration check, the
//! connector that uses a configured EWS URL, and Autodiscover's answers, so a configured URL
//! can never reach further than a discovered one.

/// Domains credentials may be sent to: a host is inside when it is one of them or a
/// subdomain of one.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    domains: Vec<String>,
}

impl AllowList {
    /// An allow-list of `domains`, trimmed, lower-cased and without leading or trailing dots; blank
    /// entries are dropped, so an empty list allows nothing.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(domains: I) -> Self {
        AllowList {
            domains: domains
                .into_iter()
                .map(|d| d.as_ref().trim().trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }

    /// The domains, lower-cased, for messages that say where credentials may go.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether `host` is one of the domains or below one. Anything that is not a plain DNS
    /// name (a `#`, `?`, `/`, `@`, `:` or space in it, an IP address) is never inside.
    pub fn allows(&self, host: &str) -> bool {
        let Some(host) = dns_name(host) else {
            return false;
        };
        self.domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// `name` lower-cased without its trailing dot, when it is a DNS host name: labels of 1-63
/// letters, digits and hyphens (not at either end), 253 characters at most, and a last label
/// that is not all digits (which would make it an IPv4 address to a URL parser).
pub fn dns_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last_numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (labels_ok && !last_numeric).then_some(name)
}
