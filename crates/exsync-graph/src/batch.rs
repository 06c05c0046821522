//! `POST /$batch`: up to 20 requests per call, relative URLs, unique ids, `dependsOn`, and
//! each item's own status. Graph throttles items one by one, so an item answered 429 is sent
//! again after its `Retry-After`, with the items that depended on it, and nothing else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{GraphClient, GraphRequest, Idempotency};
use crate::error::{Error, GraphError, Result};
use crate::throttle::{mailbox_of, parse_retry_after, spread};

/// Requests one `$batch` may carry.
pub const BATCH_MAX: usize = 20;

/// One request of a batch.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// Unique among the requests of one [`GraphClient::batch`] call.
    pub id: String,
    /// The HTTP method.
    pub method: Method,
    /// Relative to the version: `/users/{id}/contacts`.
    pub url: String,
    /// Extra headers (`If-Match`, `Prefer`…); `Content-Type` is added for a body.
    pub headers: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// Ids of requests that must succeed first (the item gets 424 otherwise).
    pub depends_on: Vec<String>,
}

impl BatchRequest {
    /// A request with no body and no dependencies.
    pub fn new(id: impl Into<String>, method: Method, url: impl Into<String>) -> BatchRequest {
        BatchRequest {
            id: id.into(),
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            depends_on: Vec::new(),
        }
    }

    /// Sets the JSON body.
    pub fn json(mut self, body: Value) -> BatchRequest {
        self.body = Some(body);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> BatchRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Runs after `id` has succeeded.
    pub fn depends_on(mut self, id: impl Into<String>) -> BatchRequest {
        self.depends_on.push(id.into());
        self
    }

    fn to_json(&self, present: &HashSet<&str>) -> Value {
        let mut item = Map::new();
        item.insert("id".into(), json!(self.id));
        item.insert("method".into(), json!(self.method.as_str()));
        item.insert("url".into(), json!(self.url));
        let mut headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if let Some(body) = &self.body {
            if !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
            {
                headers.insert("Content-Type".into(), json!("application/json"));
            }
            item.insert("body".into(), body.clone());
        }
        if !headers.is_empty() {
            item.insert("headers".into(), Value::Object(headers));
        }
        // A dependency answered in an earlier round is not in this batch: Graph would refuse
        // the id, and it has succeeded anyway.
        let depends: Vec<&String> = self
            .depends_on
            .iter()
            .filter(|d| present.contains(d.as_str()))
            .collect();
        if !depends.is_empty() {
            item.insert("dependsOn".into(), json!(depends));
        }
        Value::Object(item)
    }
}

/// One item's answer.
#[derive(Debug, Clone)]
pub struct BatchReply {
    /// The request's id.
    pub id: String,
    /// The item's own status.
    pub status: u16,
    /// The item's headers.
    pub headers: BTreeMap<String, String>,
    /// The item's body (`Null` when none).
    pub body: Value,
}

impl BatchReply {
    /// Whether the item succeeded.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The item's error, when it failed.
    pub fn error(&self) -> Option<GraphError> {
        if self.is_success() {
            return None;
        }
        let mut e = GraphError::from_body(self.status, &self.body);
        e.retry_after = self.retry_after();
        Some(e)
    }

    /// The item's body, or its error.
    pub fn into_result(self) -> std::result::Result<Value, GraphError> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(self.body),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()))
    }
}

/// Checks ids and dependencies, and splits the requests into batches of at most
/// [`BATCH_MAX`], keeping each group linked by `dependsOn` in one batch.
pub(crate) fn split(requests: &[BatchRequest]) -> Result<Vec<Vec<usize>>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        if r.id.is_empty() {
            return Err(Error::Config("a batch request needs an id".into()));
        }
        if index.insert(r.id.as_str(), i).is_some() {
            return Err(Error::Config(format!(
                "batch request id {:?} is used twice",
                r.id
            )));
        }
        if r.url.contains("://") || !r.url.starts_with('/') {
            return Err(Error::Config(format!(
                "batch request {:?}: the url must be relative to the version (/users/…)",
                r.id
            )));
        }
    }
    // Union-find over dependsOn: linked requests share a root.
    let mut parent: Vec<usize> = (0..requests.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, r) in requests.iter().enumerate() {
        for d in &r.depends_on {
            let Some(&j) = index.get(d.as_str()) else {
                return Err(Error::Config(format!(
                    "batch request {:?} depends on {d:?}, which is not in the batch",
                    r.id
                )));
            };
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for i in 0..requests.len() {
        let r = root(&mut parent, i);
        let g = *group_of.entry(r).or_insert_with(|| {
            groups.push((r, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for (_, members) in groups {
        if members.len() > BATCH_MAX {
            return Err(Error::Config(format!(
                "{} batch requests are linked by dependsOn; one batch holds at most {BATCH_MAX}",
                members.len()
            )));
        }
        match batches.last_mut() {
            Some(last) if last.len() + members.len() <= BATCH_MAX => last.extend(members),
            _ => batches.push(members),
        }
    }
    Ok(batches)
}

fn parse_replies(body: &Value) -> Result<Vec<BatchReply>> {
    let responses = body
        .get("responses")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Decode("a $batch answer without responses".into()))?;
    responses
        .iter()
        .map(|r| {
            let id = match r.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(Error::Decode("a $batch response without id".into())),
            };
            let status = r
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| Error::Decode(format!("$batch response {id:?} without status")))?;
            let headers = r
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Ok(BatchReply {
                id,
                status,
                headers,
                body: r.get("body").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

impl GraphClient {
    /// Sends `requests` in `$batch`es of up to 20 (a group linked by `dependsOn` stays in one)
    /// and returns one reply per request, in the order given. An item Graph throttled (429,
    /// or 503/504 for a read) is sent again after its `Retry-After` together with the items
    /// that failed only because they depended on it; the items that got an answer are not.
    pub async fn batch(&self, requests: Vec<BatchRequest>) -> Result<Vec<BatchReply>> {
        let batches = split(&requests)?;
        let mut replies: HashMap<String, BatchReply> = HashMap::new();
        for members in batches {
            let chunk: Vec<&BatchRequest> = members.iter().map(|&i| &requests[i]).collect();
            self.run_batch(&chunk, &mut replies).await?;
        }
        requests
            .iter()
            .map(|r| {
                replies
                    .remove(&r.id)
                    .ok_or_else(|| Error::Decode(format!("$batch gave no answer for {:?}", r.id)))
            })
            .collect()
    }

    async fn run_batch(
        &self,
        chunk: &[&BatchRequest],
        replies: &mut HashMap<String, BatchReply>,
    ) -> Result<()> {
        let mut pending: Vec<&BatchRequest> = chunk.to_vec();
        let mut round = 1;
        loop {
            let present: HashSet<&str> = pending.iter().map(|r| r.id.as_str()).collect();
            let body = json!({"requests": pending.iter().map(|r| r.to_json(&present)).collect::<Vec<_>>()});
            let mut costs: Vec<(String, u32)> =
                pending.iter().map(|r| (mailbox_of(&r.url), 1)).collect();
            costs.sort();
            // A batch of writes may have been applied when its answer is lost.
            let idempotency = if pending.iter().all(|r| r.method == Method::GET) {
                Idempotency::Safe
            } else {
                Idempotency::OnlyIfNotSent
            };
            let request = GraphRequest::new(Method::POST, "/$batch")
                .json(body)
                .idempotency(idempotency);
            let raw = self.execute(&request, &costs).await?;
            let answer: Value = serde_json::from_slice(&raw.body)
                .map_err(|e| Error::Decode(format!("$batch answer is not JSON: {e}")))?;
            let mut answered = parse_replies(&answer)?;
            answered.retain(|r| present.contains(r.id.as_str()));

            // Which items to send again: throttled ones, and those that failed only because
            // a throttled one did not run.
            let retryable = |r: &BatchReply, req: &BatchRequest| {
                r.status == 429 || (matches!(r.status, 503 | 504) && req.method == Method::GET)
            };
            let by_id: HashMap<&str, &BatchRequest> =
                pending.iter().map(|r| (r.id.as_str(), *r)).collect();
            let mut again: HashSet<String> = answered
                .iter()
                .filter(|r| by_id.get(r.id.as_str()).is_some_and(|q| retryable(r, q)))
                .map(|r| r.id.clone())
                .collect();
            loop {
                let before = again.len();
                for r in &answered {
                    if r.status == 424
                        && by_id
                            .get(r.id.as_str())
                            .is_some_and(|q| q.depends_on.iter().any(|d| again.contains(d)))
                    {
                        again.insert(r.id.clone());
                    }
                }
                if again.len() == before {
                    break;
                }
            }
            let wait = answered
                .iter()
                .filter(|r| again.contains(&r.id))
                .filter_map(BatchReply::retry_after)
                .max();
            let last_round = round >= self.http.limits.max_attempts;
            let too_long = wait.is_some_and(|w| w > self.http.limits.max_wait);
            if again.is_empty() || last_round || too_long {
                for r in answered {
                    replies.insert(r.id.clone(), r);
                }
                return Ok(());
            }
            let wait = wait.unwrap_or_else(|| self.http.backoff(round));
            let throttled_mailboxes: HashSet<String> = pending
                .iter()
                .filter(|r| again.contains(&r.id))
                .map(|r| mailbox_of(&r.url))
                .collect();
            for m in &throttled_mailboxes {
                self.limiter.pause(m, spread(wait));
            }
            self.observe_wait(wait);
            tracing::warn!(
                items = again.len(),
                ?wait,
                round,
                "Graph throttled $batch items; sending those again"
            );
            for r in answered {
                if !again.contains(&r.id) {
                    replies.insert(r.id.clone(), r);
                }
            }
            pending.retain(|r| again.contains(&r.id));
            round += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn get(id: &str) -> BatchRequest {
        BatchRequest::new(id, Method::GET, format!("/users/u/events/{id}"))
    }

    #[test]
    fn splits_keep_dependency_groups_together() {
        let mut requests: Vec<BatchRequest> = (0..45).map(|i| get(&i.to_string())).collect();
        // 18 → 19 → 20 must travel together.
        requests[19] = get("19").depends_on("18");
        requests[20] = get("20").depends_on("19");
        let batches = split(&requests).unwrap();
        assert!(batches.iter().all(|b| b.len() <= BATCH_MAX));
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 45);
        let with = |i: usize| batches.iter().position(|b| b.contains(&i)).unwrap();
        assert_eq!(with(18), with(19));
        assert_eq!(with(19), with(20));
    }

    #[test]
    fn ids_urls_and_dependencies_are_checked() {
        assert!(split(&[get("a"), get("a")]).is_err());
        assert!(split(&[get("a").depends_on("zz")]).is_err());
        assert!(split(&[BatchRequest::new("a", Method::GET, "https://evil.test/x")]).is_err());
        let chain: Vec<BatchRequest> = (0..21)
            .map(|i| {
                let r = get(&i.to_string());
                if i > 0 {
                    r.depends_on((i - 1).to_string())
                } else {
                    r
                }
            })
            .collect();
        assert!(split(&chain).is_err());
    }

    #[test]
    fn items_carry_content_type_and_only_present_dependencies() {
        let r = BatchRequest::new("2", Method::POST, "/users/u/contacts")
            .json(json!({"givenName": "A"}))
            .depends_on("1")
            .depends_on("0");
        let present: HashSet<&str> = ["1", "2"].into_iter().collect();
        let item = r.to_json(&present);
        assert_eq!(item["headers"]["Content-Type"], "application/json");
        assert_eq!(item["dependsOn"], json!(["1"]));
        assert_eq!(item["url"], "/users/u/contacts");
        let reply = BatchReply {
            id: "2".into(),
            status: 429,
            headers: [("Retry-After".to_owned(), "7".to_owned())].into(),
            body: json!({"error": {"code": "TooManyRequests", "message": "m"}}),
        };
        let e = reply.error().unwrap();
        assert_eq!(
            (e.status, e.retry_after),
            (429, Some(Duration::from_secs(7)))
        );
    }
}
