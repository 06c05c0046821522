//! The OData conventions the Outlook stores share: `$select` projection, `@odata.etag` and
//! `If-Match`, opaque paging and delta tokens, page sizes and Graph-looking item ids.
//! `$filter` and `$expand` of extended properties live in [`filter`] and [`extended`];
//! the change log a delta query reads lives in [`tracked`].

pub(crate) mod extended;
pub(crate) mod filter;
pub(crate) mod tracked;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::call::{Answer, Prefer};

/// Outlook answers a plain collection 10 items at a time unless `$top` or
/// `odata.maxpagesize` asks otherwise (the Outlook REST paging rules Graph kept).
pub(crate) const LIST_DEFAULT_PAGE: usize = 10;
/// Outlook refuses nothing up to 1000 per page; beyond that it silently caps.
pub(crate) const LIST_MAX_PAGE: usize = 1000;
/// A contacts delta page holds 200 when the client states no size, and never more: Microsoft
/// staff's answer on Q&A (learn.microsoft.com/answers/a/2052165) for contact delta. Clients
/// that ask for 1000 must still follow `@odata.nextLink`, which is what this makes them do.
pub(crate) const DELTA_DEFAULT_PAGE: usize = 200;
pub(crate) const DELTA_MAX_PAGE: usize = 200;

/// Longest `$skiptoken` / `$deltatoken` accepted; ours are far shorter, so anything longer
/// is garbage and is refused before decoding.
const MAX_TOKEN_LEN: usize = 4096;

/// Checks every `$select` name against the entity's properties (case-insensitively, as
/// Graph does); an unknown one is Graph's 400 from its URI parser.
pub(crate) fn check_select(select: Option<&[String]>, known: &[&str]) -> Result<(), Answer> {
    for name in select.unwrap_or_default() {
        if name.is_empty() {
            return Err(Answer::error(
                400,
                "BadRequest",
                "Syntax error: an empty property name in $select.",
            ));
        }
        if !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(Answer::error(
                400,
                "RequestBroker--ParseUri",
                &format!("Could not find a property named '{name}' on the requested type."),
            ));
        }
    }
    Ok(())
}

/// The item with only the `$select`ed properties (matched case-insensitively, returned in
/// the item's own spelling), plus `id`, `@odata.etag`, any `@odata.*` annotation and the
/// caller's `always` keys. Without `$select`, the item whole.
pub(crate) fn project(item: &Value, select: Option<&[String]>, always: &[&str]) -> Value {
    let (Some(select), Value::Object(map)) = (select, item) else {
        return item.clone();
    };
    let keep = |key: &str| {
        key == "id"
            || key.starts_with("@odata.")
            || always.contains(&key)
            || select.iter().any(|s| s.eq_ignore_ascii_case(key))
    };
    let projected: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(projected)
}

/// `@odata.etag` of an item with this change key: Outlook's weak etag.
pub(crate) fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

/// `If-Match`: absent or `*` passes; otherwise one of its (comma-separated) etags must carry
/// the current change key, weak or strong, quoted or not.
pub(crate) fn check_if_match(if_match: Option<&str>, change_key: &str) -> Result<(), Answer> {
    let Some(header) = if_match else {
        return Ok(());
    };
    let matches = header.split(',').map(str::trim).any(|tag| {
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        tag == "*" || tag == change_key
    });
    if matches {
        Ok(())
    } else {
        Err(Answer::stale_etag())
    }
}

/// A fresh change key: base64 like Exchange's (`EQAAABYAAAB…`), random so a client can't
/// guess the next one.
pub(crate) fn new_change_key() -> String {
    let mut bytes = [0u8; 22];
    bytes[..8].copy_from_slice(&[0x11, 0, 0, 0, 0x16, 0, 0, 0]);
    rand::thread_rng().fill_bytes(&mut bytes[8..]);
    STANDARD.encode(bytes)
}

/// A fresh item id shaped like an Exchange Online one (`AAMkA…`, URL-safe base64 ending in
/// `=`), random so ids are unique across mailboxes and restarts; stored, hence stable.
pub(crate) fn new_item_id() -> String {
    // 00 03 24 00 is what makes Exchange's ids start `AAMkA`; 47 bytes end the text in `=`.
    let mut bytes = [0u8; 47];
    bytes[..4].copy_from_slice(&[0x00, 0x03, 0x24, 0x00]);
    rand::thread_rng().fill_bytes(&mut bytes[4..]);
    URL_SAFE.encode(bytes)
}

/// Encodes a paging or delta state as an opaque URL-safe token: JSON plus the start of its
/// SHA-256, so a token a client edited or truncated fails to decode instead of meaning
/// something else. Not a secret: a simulator needs no signature.
pub(crate) fn encode_token<T: Serialize>(state: &T) -> String {
    let mut bytes = serde_json::to_vec(state).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest[..8]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a token made by [`encode_token`]; any damage is a 400 naming the parameter.
pub(crate) fn decode_token<T: DeserializeOwned>(token: &str, param: &str) -> Result<T, Answer> {
    let bad = || {
        Answer::error(
            400,
            "BadRequest",
            &format!("The {param} is malformed or was not issued by this service."),
        )
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    if bytes.len() < 8 {
        return Err(bad());
    }
    let (json, check) = bytes.split_at(bytes.len() - 8);
    if Sha256::digest(json)[..8] != *check {
        return Err(bad());
    }
    serde_json::from_slice(json).map_err(|_| bad())
}

/// An absolute link: `base` with its query parameters percent-encoded (OData's `$`, `,`,
/// `=` and `/` kept readable, as Graph writes them).
pub(crate) fn link(base: &str, params: &[(&str, &str)]) -> String {
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'$')
        .remove(b',')
        .remove(b'/')
        .remove(b'=');
    let mut out = base.to_owned();
    for (i, (name, value)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&utf8_percent_encode(name, KEEP).to_string());
        out.push('=');
        out.push_str(&utf8_percent_encode(value, KEEP).to_string());
    }
    out
}

/// Items per page: the smaller of `$top` and `Prefer: odata.maxpagesize`, else `default`,
/// never above `max` and never 0.
pub(crate) fn page_size(prefer: &Prefer, top: Option<usize>, default: usize, max: usize) -> usize {
    let asked = match (top, prefer.max_page_size) {
        (Some(t), Some(p)) => t.min(p),
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => default,
    };
    asked.clamp(1, max.max(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn select_keeps_id_etag_and_always_keys() {
        let item = json!({"id": "A", "@odata.etag": "W/\"k\"", "givenName": "Ann",
                          "surname": "Lee", "changeKey": "k"});
        let select = strings(&["GivenName"]);
        let out = project(&item, Some(&select), &["changeKey"]);
        assert_eq!(
            out,
            json!({"id": "A", "@odata.etag": "W/\"k\"", "givenName": "Ann", "changeKey": "k"})
        );
        assert_eq!(project(&item, None, &[]), item);
    }

    #[test]
    fn select_refuses_unknown_names() {
        let known = ["givenName", "surname"];
        assert!(check_select(Some(&strings(&["surname", "givenname"])), &known).is_ok());
        assert!(check_select(None, &known).is_ok());
        let err = check_select(Some(&strings(&["nickName2"])), &known).unwrap_err();
        assert_eq!(err.status, 400);
        let message = err.body.unwrap()["error"]["message"].clone();
        assert!(message.as_str().unwrap().contains("nickName2"));
        assert!(check_select(Some(&strings(&[""])), &known).is_err());
    }

    #[test]
    fn if_match_accepts_current_and_star_refuses_stale() {
        let tag = etag("CK1");
        assert_eq!(tag, "W/\"CK1\"");
        assert!(check_if_match(None, "CK1").is_ok());
        assert!(check_if_match(Some("*"), "CK1").is_ok());
        assert!(check_if_match(Some(&tag), "CK1").is_ok());
        assert!(check_if_match(Some("\"CK1\""), "CK1").is_ok());
        assert!(check_if_match(Some("W/\"old\", W/\"CK1\""), "CK1").is_ok());
        let stale = check_if_match(Some(&tag), "CK2").unwrap_err();
        assert_eq!(stale.status, 412);
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let state = json!({"gen": 3, "since": 42, "select": ["givenName"]});
        let token = encode_token(&state);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let back: Value = decode_token(&token, "$deltatoken").unwrap();
        assert_eq!(back, state);

        let mut chars: Vec<char> = token.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let edited: String = chars.into_iter().collect();
        assert_eq!(
            decode_token::<Value>(&edited, "$deltatoken")
                .unwrap_err()
                .status,
            400
        );
        for junk in [
            "",
            "!!!",
            "abc",
            &"A".repeat(10_000),
            &token[..token.len() - 2],
        ] {
            assert_eq!(
                decode_token::<Value>(junk, "$skiptoken")
                    .unwrap_err()
                    .status,
                400
            );
        }
    }

    #[test]
    fn links_encode_values_but_keep_odata_readable() {
        let url = link(
            "https://h/v1.0/users/u/contacts",
            &[
                ("$filter", "surname eq 'O''Neil & Co'"),
                ("$select", "givenName,surname"),
                ("$skip", "10"),
            ],
        );
        assert_eq!(
            url,
            "https://h/v1.0/users/u/contacts?$filter=surname%20eq%20%27O%27%27Neil%20%26%20Co%27&$select=givenName,surname&$skip=10"
        );
        assert_eq!(link("https://h/x", &[]), "https://h/x");
    }

    #[test]
    fn page_size_takes_smallest_ask_within_bounds() {
        let none = Prefer::default();
        let prefer = Prefer {
            max_page_size: Some(5),
            ..Prefer::default()
        };
        assert_eq!(page_size(&none, None, 10, 1000), 10);
        assert_eq!(page_size(&none, Some(3), 10, 1000), 3);
        assert_eq!(page_size(&prefer, None, 10, 1000), 5);
        assert_eq!(page_size(&prefer, Some(2), 10, 1000), 2);
        assert_eq!(page_size(&none, Some(5000), 10, 1000), 1000);
        assert_eq!(page_size(&none, Some(0), 10, 1000), 1);
    }

    #[test]
    fn ids_and_change_keys_look_like_exchange_and_are_unique() {
        let a = new_item_id();
        let b = new_item_id();
        assert!(a.starts_with("AAMkA"), "{a}");
        assert!(a.ends_with('='));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'='));
        assert_ne!(a, b);
        let k = new_change_key();
        assert!(k.starts_with("EQAAABY"), "{k}");
        assert_ne!(k, new_change_key());
    }
}
