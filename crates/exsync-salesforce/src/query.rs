//! SOQL: running queries across pages, and quoting values into them.

use serde_json::Value;

use crate::client::{Answer, SalesforceClient};
use crate::error::{Error, Result};
use crate::record::SfRecord;

/// One page of a query answer.
#[derive(Debug, Clone)]
pub struct QueryPage<R = Value> {
    /// Records matching the query in all, across every page.
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// Where the next page is read from, relative to the instance; `None` on the last page.
    pub next_records_url: Option<String>,
    /// The records of this page, as the API returned them.
    pub records: Vec<R>,
}

impl<R> QueryPage<R> {
    /// Where the page after this one is read from, when one follows.
    pub(crate) fn follow(&self) -> Option<String> {
        if self.done {
            None
        } else {
            self.next_records_url.clone()
        }
    }
}

/// A query answer a page is read out of: a `Value`, or the rows of a change read.
pub(crate) trait QueryAnswer: SfRecord + Sized {
    /// The `records` list, taken out of the answer; `None` when it holds no list.
    fn take_records(&mut self) -> Option<Vec<Self>>;
}

impl QueryAnswer for Value {
    fn take_records(&mut self) -> Option<Vec<Value>> {
        match self.get_mut("records").map(Value::take) {
            Some(Value::Array(list)) => Some(list),
            _ => None,
        }
    }
}

pub(crate) fn page_of<R: QueryAnswer>(mut answer: R) -> Result<QueryPage<R>> {
    // Taken, not cloned: a page of 2,000 records is the largest thing a pass holds.
    let records = answer
        .take_records()
        .ok_or_else(|| Error::Decode("query answer without records".into()))?;
    Ok(QueryPage {
        total_size: answer.u64_field("totalSize").unwrap_or(0),
        done: answer.bool_field("done").unwrap_or(true),
        next_records_url: answer.str_field("nextRecordsUrl").map(str::to_owned),
        records,
    })
}

/// Where a page of a query is read from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PageAt<'a> {
    /// A query's first page, through `queryAll` when deleted records are included.
    First {
        soql: &'a str,
        include_deleted: bool,
    },
    /// The page a `nextRecordsUrl` points at.
    Next(&'a str),
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
        let at = PageAt::First {
            soql,
            include_deleted,
        };
        page_of(self.page_answer(at).await?.parse()?)
    }

    /// The page a `nextRecordsUrl` points at.
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        page_of(
            self.page_answer(PageAt::Next(next_records_url))
                .await?
                .parse()?,
        )
    }

    async fn page_answer(&self, at: PageAt<'_>) -> Result<Answer> {
        match at {
            PageAt::First {
                soql,
                include_deleted,
            } => {
                let endpoint = if include_deleted { "queryAll" } else { "query" };
                self.get_answer(endpoint, &[("q", soql)]).await
            }
            PageAt::Next(url) => {
                if !url.starts_with("/services/data/") {
                    return Err(Error::Decode(format!("unexpected nextRecordsUrl {url}")));
                }
                self.get_answer(url, &[]).await
            }
        }
    }

    /// Reads a query page by page from `first`: `take` reads each answer and says where the
    /// next page is ([`QueryPage::follow`]). An answer is dropped before the next is asked
    /// for, so what `take` parses out of one may borrow its text.
    pub(crate) async fn each_page(
        &self,
        first: PageAt<'_>,
        mut take: impl FnMut(&Answer) -> Result<Option<String>>,
    ) -> Result<()> {
        let mut answer = self.page_answer(first).await?;
        while let Some(next) = take(&answer)? {
            answer = self.page_answer(PageAt::Next(&next)).await?;
        }
        Ok(())
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
        let mut records = Vec::new();
        let first = PageAt::First {
            soql,
            include_deleted,
        };
        self.each_page(first, |answer| {
            let mut page = page_of::<Value>(answer.parse()?)?;
            records.append(&mut page.records);
            Ok(page.follow())
        })
        .await?;
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
