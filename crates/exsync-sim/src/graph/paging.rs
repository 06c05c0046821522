//! The links a calendar collection answers with: `@odata.nextLink` (the same query, one page
//! further) and the delta links, built on the path the client used.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::call::Call;

/// What may stay bare in a query value or path segment (RFC 3986 unreserved).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// `https://…/users/{id}/` plus the path the call came on.
pub(crate) fn base(call: &Call<'_>) -> String {
    let path: Vec<String> = call.path.iter().map(|s| encode(s)).collect();
    format!("{}/{}", call.user_url, path.join("/"))
}

/// The call's own URL with `$skip` (and `$top`) set for the next page; the other options
/// ride along unchanged, as Graph's nextLinks carry them.
pub(crate) fn next_skip(call: &Call<'_>, top: usize, skip: usize) -> String {
    let q = call.query;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in &q.params {
        if !key.starts_with('$') || key == "$count" {
            pairs.push((key.clone(), value.clone()));
        }
    }
    if let Some(select) = &q.select {
        pairs.push(("$select".into(), select.join(",")));
    }
    for (key, value) in [
        ("$filter", &q.filter),
        ("$expand", &q.expand),
        ("$orderby", &q.orderby),
    ] {
        if let Some(value) = value {
            pairs.push((key.into(), value.clone()));
        }
    }
    pairs.push(("$top".into(), top.to_string()));
    pairs.push(("$skip".into(), skip.to_string()));
    with_query(&base(call), &pairs)
}

/// `base?k=v&…`, every key and value encoded.
pub(crate) fn with_query(base: &str, pairs: &[(String, String)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        // `$` stays bare in keys, as in Graph's own links.
        .map(|(k, v)| format!("{}={}", encode(k).replace("%24", "$"), encode(v)))
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn values_are_encoded_keys_keep_their_dollar() {
        let link = with_query(
            "https://h/v1.0/users/u/events",
            &[("$filter".into(), "subject eq 'a b'".into())],
        );
        assert_eq!(
            link,
            "https://h/v1.0/users/u/events?$filter=subject%20eq%20%27a%20b%27"
        );
    }
}
