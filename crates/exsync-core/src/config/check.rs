//! Checks of single values (addresses, URLs, names) shared by the section readers. Each
//! returns the reason in words an admin understands.

use std::net::{IpAddr, SocketAddr};

/// One `@`, something on both sides, a dotted domain, no spaces.
pub(crate) fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
                && is_domain(domain)
        }
        None => false,
    }
}

/// A DNS name: dotted labels of letters, digits and inner hyphens.
pub(crate) fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A host as it appears in a URL or a resolve entry: a DNS name (single labels such as
/// `localhost` allowed) or an IP address.
pub(crate) fn is_host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || (!s.is_empty()
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }))
}

/// The parts of a URL the checks need.
#[derive(Debug)]
pub(crate) struct UrlParts {
    pub(crate) scheme: String,
    pub(crate) has_password: bool,
}

/// Checks `scheme://[user@]host[:port][/path]`; the connectors parse it properly later, this
/// only makes sure an admin's typo is caught before the service starts.
pub(crate) fn parse_url(s: &str) -> Result<UrlParts, String> {
    if s.chars().any(char::is_whitespace) {
        return Err("it contains spaces".into());
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("it does not start with a scheme such as https://".into());
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("`{scheme}` is not a URL scheme"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("its IPv6 address lacks the closing `]`".into());
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` is not an IPv6 address"));
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return Err(format!("unexpected `{p}` after the host")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host name".into());
    }
    if !hostport.starts_with('[') && !is_host(host) {
        return Err(format!("`{host}` is not a valid host name"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("`{port}` is not a port number (1-65535)")),
        }
    }
    Ok(UrlParts {
        scheme: scheme.to_ascii_lowercase(),
        has_password: userinfo.is_some_and(|u| u.contains(':')),
    })
}

/// `address:port` with an IP address, such as `127.0.0.1:8443` or `[::1]:443`.
pub(crate) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{s}` is not an address:port such as 127.0.0.1:8443 or [::1]:8443"))
}

/// A Salesforce field name or relationship path (`Account.Name`, `Custom__c`).
pub(crate) fn is_crm_field(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Catches the mistakes that would otherwise only show when the query runs: unclosed quotes
/// or parentheses, and a second statement. Whether the fields exist is for the CRM to say.
pub(crate) fn soql_condition(s: &str) -> Result<(), String> {
    let mut depth = 0i32;
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_quote {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => in_quote = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("a `)` has no matching `(`".into());
                }
            }
            ';' => return Err("`;` is not allowed: give one condition, not statements".into()),
            _ => {}
        }
    }
    if in_quote {
        return Err("a quoted value is not closed with `'`".into());
    }
    if depth > 0 {
        return Err("a `(` is not closed".into());
    }
    Ok(())
}

/// `30s`, `5m`, `1h` or a bare number of seconds.
pub(crate) fn duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let multiplier = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{s}` is not a duration such as 30s, 5m or 1h")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{s}` is not a duration such as 30s, 5m or 1h"))
}

/// The shortest way to write a number of seconds in the form `duration_secs` reads.
pub(crate) fn format_duration(secs: u64) -> String {
    if secs > 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Why `name` cannot be an Outlook category name, if it cannot: it must not be empty, must be
/// at most 255 characters long and must not hold control characters.
pub(super) fn category_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("a category name must not be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("a category name must not contain control characters".into());
    }
    let length = name.encode_utf16().count();
    if length > crate::model::MAX_LINE {
        return Err(format!(
            "a category name is at most {} characters long, this one has {length}",
            crate::model::MAX_LINE
        ));
    }
    Ok(())
}
