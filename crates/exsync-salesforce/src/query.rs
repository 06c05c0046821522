//! SOQL: running queries across pages, and quoting values into them.

use reqwest::Method;
use serde_json::Value;

use crate::client::{Idempotency, SalesforceClient};
use crate::error::{Error, Result};

/// One page of a query answer.
#[derive(Debug, Clone)]
pub struct QueryPage {
    /// Records matching the query in all, across every page.
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// Where the next page is read from, relative to the instance; `None` on the last page.
    pub next_records_url: Option<String>,
    /// The records of this page, as the API returned them.
    pub records: Vec<Value>,
}

fn page_of(mut value: Value) -> Result<QueryPage> {
    // Taken, not cloned: a page of 2,000 records is the largest thing a pass holds.
    let records = match value.get_mut("records").map(Value::take) {
        Some(Value::Array(list)) => list,
        _ => return Err(Error::Decode("query answer without records".into())),
    };
    Ok(QueryPage {
        total_size: value.get("totalSize").and_then(Value::as_u64).unwrap_or(0),
        done: value.get("done").and_then(Value::as_bool).unwrap_or(true),
        next_records_url: value
            .get("nextRecordsUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
        records,
    })
}

/// A SOQL string literal: backslashes and quotes escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// `(a, b, c)` for an IN clause.
pub fn quote_list<S: AsRef<str>>(values: &[S]) -> String {
    let parts: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
    format!("({})", parts.join(", "))
}

impl SalesforceClient {
    /// The first page of a query (`queryAll` includes deleted records).
    pub async fn query_page(&self, soql: &str, include_deleted: bool) -> Result<QueryPage> {
        let endpoint = if include_deleted { "queryAll" } else { "query" };
        let (_, value) = self
            .call(
                Method::GET,
                endpoint,
                &[("q", soql)],
                None,
                Idempotency::Safe,
            )
            .await?;
        page_of(value)
    }

    /// The page a `nextRecordsUrl` points at.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        if !next_records_url.starts_with("/services/data/") {
            return Err(Error::Decode(format!(
                "unexpected nextRecordsUrl {next_records_url}"
            )));
        }
        let (_, value) = self
            .call(Method::GET, next_records_url, &[], None, Idempotency::Safe)
            .await?;
        page_of(value)
    }

    /// Every record of a query, following `nextRecordsUrl`.
    pub async fn query_all(&self, soql: &str) -> Result<Vec<Value>> {
        self.every_page(soql, false).await
    }

    /// Every record of a query through `queryAll`, deleted records in the recycle bin
    /// included (their `IsDeleted` is true), following `nextRecordsUrl`.
    pub async fn query_all_with_deleted(&self, soql: &str) -> Result<Vec<Value>> {
        self.every_page(soql, true).await
    }

    async fn every_page(&self, soql: &str, include_deleted: bool) -> Result<Vec<Value>> {
        let mut page = self.query_page(soql, include_deleted).await?;
        let mut records = std::mem::take(&mut page.records);
        while let (false, Some(next)) = (page.done, page.next_records_url.clone()) {
            page = self.query_more(&next).await?;
            records.append(&mut page.records);
        }
        Ok(records)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_soql_needs() {
        assert_eq!(quote("O'Brien \\ co"), "'O\\'Brien \\\\ co'");
        assert_eq!(quote_list(&["a", "b"]), "('a', 'b')");
    }

    #[test]
    fn a_page_keeps_its_records_and_refuses_an_answer_without_them() {
        let answer = serde_json::json!({
            "totalSize": 3,
            "done": false,
            "nextRecordsUrl": "/services/data/v62.0/query/01g-2000",
            "records": [{"Id": "003A"}, {"Id": "003B"}],
        });
        let page = page_of(answer).expect("a well-formed page");
        assert_eq!(page.total_size, 3);
        assert!(!page.done);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v62.0/query/01g-2000")
        );
        let ids: Vec<_> = page
            .records
            .iter()
            .filter_map(|r| r["Id"].as_str())
            .collect();
        assert_eq!(ids, ["003A", "003B"]);

        for bad in [
            serde_json::json!({"totalSize": 0, "done": true}),
            serde_json::json!({"records": {"Id": "003A"}}),
        ] {
            match page_of(bad) {
                Err(Error::Decode(message)) => assert!(message.contains("without records")),
                other => panic!("expected a decode error, got {other:?}"),
            }
        }
    }
}
