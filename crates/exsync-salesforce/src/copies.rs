//! Records found by the Exchange id they were copied from, recycle bin included: after a
//! crash, what became of a create whose answer never arrived.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use exsync_core::CrmId;

use crate::client::SalesforceClient;
use crate::cursor::SyncObject;
use crate::error::{Error, Result};
use crate::query::{quote, quote_list};
use crate::EXTERNAL_ID_FIELD;

/// Tags per query at most.
const TAGS_PER_QUERY: usize = 100;
/// Bytes the quoted tags of one query may take once URL-encoded, keeping the query's URL
/// well under what the REST API accepts (an Exchange id is some 150 characters).
const TAGS_URL_BUDGET: usize = 10_000;

/// What the org holds for one tag (a value of [`EXTERNAL_ID_FIELD`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// A live record carries the tag.
    Live(CrmId),
    /// Only deleted records, still in the recycle bin, carry it: one of them.
    Deleted(CrmId),
    /// No record carries it, live or in the recycle bin.
    Never,
}

impl SalesforceClient {
    /// The records of `object` created at or after `since` carrying each of `tags` in
    /// [`EXTERNAL_ID_FIELD`], deleted ones in the recycle bin included: one answer per tag, in
    /// order. A live record wins over deleted ones with the same tag. Tags compare exactly
    /// (SOQL compares text without regard to case, Exchange ids do not); an empty tag is
    /// carried by no record. Salesforce keeps creation times to the second, so `since` counts
    /// from the start of its second: a record made in that second counts.
    pub async fn find_tagged(
        &self,
        object: SyncObject,
        tags: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<Tagged>> {
        let mut wanted: Vec<&str> = tags.iter().copied().filter(|t| !t.is_empty()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let created = created_since(since);
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        for chunk in tag_chunks(&wanted) {
            let soql = format!(
                "SELECT Id, IsDeleted, {EXTERNAL_ID_FIELD} FROM {} WHERE {EXTERNAL_ID_FIELD} IN {}{created}",
                object.name(),
                quote_list(chunk)
            );
            for record in self.query_all_with_deleted(&soql).await? {
                rows.push(tagged_row(object, &record)?);
            }
        }
        Ok(tags
            .iter()
            .map(|tag| {
                let carrying = || rows.iter().filter(|(t, _, _)| t.as_str() == *tag);
                let live = carrying().find(|(_, _, deleted)| !deleted);
                match live.or_else(|| carrying().next()) {
                    Some((_, id, false)) => Tagged::Live(CrmId::new(id.clone())),
                    Some((_, id, true)) => Tagged::Deleted(CrmId::new(id.clone())),
                    None => Tagged::Never,
                }
            })
            .collect())
    }
}

/// The condition on CreatedDate that keeps records created at or after `since`, from the
/// start of its second, as an unquoted SOQL datetime literal in UTC (` AND CreatedDate >=
/// 2026-12-05T10:00:00Z`). Empty when `since` is before 1970 (no record is older); one past
/// the last instant Salesforce stores (4000-12-31T23:59:59Z) asks for that instant. Either
/// way the literal keeps a year SOQL reads.
fn created_since(since: DateTime<Utc>) -> String {
    if since < DateTime::UNIX_EPOCH {
        return String::new();
    }
    let latest = DateTime::from_timestamp(64_092_211_199, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let since = since.trunc_subsecs(0).min(latest);
    format!(" AND CreatedDate >= {}", since.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// A row of the tag query as (tag, id, deleted); a row without a tag (none should come back)
/// has an empty one, which no tag asked for equals.
fn tagged_row(object: SyncObject, record: &Value) -> Result<(String, String, bool)> {
    let id = record.get("Id").and_then(Value::as_str);
    let deleted = record.get("IsDeleted").and_then(Value::as_bool);
    let (Some(id), Some(deleted)) = (id, deleted) else {
        return Err(Error::Decode(format!(
            "{} record without Id or IsDeleted",
            object.name()
        )));
    };
    let tag = record
        .get(EXTERNAL_ID_FIELD)
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((tag.to_owned(), id.to_owned(), deleted))
}

/// The tags split into IN lists of at most [`TAGS_PER_QUERY`] that fit [`TAGS_URL_BUDGET`]
/// (a tag longer than the budget goes alone).
fn tag_chunks<'a>(tags: &'a [&'a str]) -> Vec<&'a [&'a str]> {
    let mut chunks = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, tag) in tags.iter().enumerate() {
        // The quoted literal, URL-encoded, and the separator before it.
        let cost = url_encoded_len(&quote(tag)) + 6;
        if i > start && (i - start == TAGS_PER_QUERY || used + cost > TAGS_URL_BUDGET) {
            chunks.push(&tags[start..i]);
            (start, used) = (i, 0);
        }
        used += cost;
    }
    if start < tags.len() {
        chunks.push(&tags[start..]);
    }
    chunks
}

/// The length of `text` as a query string value (`application/x-www-form-urlencoded`).
fn url_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' | b' ' => 1,
            _ => 3,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_every_tag_in_order_within_both_limits() {
        let short: Vec<String> = (0..250).map(|i| format!("t{i}")).collect();
        let short: Vec<&str> = short.iter().map(String::as_str).collect();
        let chunks = tag_chunks(&short);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(chunks.concat(), short);

        // Ids the size of Exchange's, with the characters that need encoding.
        let long: Vec<String> = (0..100)
            .map(|i| format!("{i:03}{}", "A+/=".repeat(40)))
            .collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let chunks = tag_chunks(&long);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), long);
        for chunk in &chunks {
            let encoded: usize = chunk.iter().map(|t| url_encoded_len(&quote(t)) + 6).sum();
            assert!(encoded <= TAGS_URL_BUDGET, "{encoded}");
        }

        let huge = "x".repeat(TAGS_URL_BUDGET * 2);
        let one = [huge.as_str(), "y"];
        assert_eq!(tag_chunks(&one), [&one[..1], &one[1..]]);
        assert!(tag_chunks(&[]).is_empty());
    }

    #[test]
    fn creation_is_compared_from_the_start_of_the_second_in_utc() {
        let since = DateTime::parse_from_rfc3339("2026-12-05T11:00:00.750+01:00")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            since.map(created_since).as_deref(),
            Some(" AND CreatedDate >= 2026-12-05T10:00:00Z")
        );
        assert_eq!(created_since(DateTime::<Utc>::MIN_UTC), "");
        assert_eq!(
            created_since(DateTime::UNIX_EPOCH),
            " AND CreatedDate >= 1970-01-01T00:00:00Z"
        );
        assert_eq!(
            created_since(DateTime::<Utc>::MAX_UTC),
            " AND CreatedDate >= 4000-12-31T23:59:59Z"
        );
    }

    #[test]
    fn a_row_needs_its_id_and_deleted_flag() {
        let row = serde_json::json!({"Id": "003A", "IsDeleted": true, EXTERNAL_ID_FIELD: "AAMk="});
        assert_eq!(
            tagged_row(SyncObject::Contact, &row).ok(),
            Some(("AAMk=".to_owned(), "003A".to_owned(), true))
        );
        let bare = serde_json::json!({"Id": "003A"});
        assert!(matches!(
            tagged_row(SyncObject::Contact, &bare),
            Err(Error::Decode(_))
        ));
    }
}
