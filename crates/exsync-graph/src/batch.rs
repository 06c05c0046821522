//! `POST /$batch`: up to 20 requests per call, relative URLs, unique ids, `dependsOn` (a
//! batch is fully parallel or fully sequential, as Graph requires), and each item's own
//! status. Graph throttles items one by one, so an item answered 429 is sent
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

    /// The item as `$batch` takes it, depending on `after` (the previous item of a
    /// sequential batch) or on nothing.
    fn to_json(&self, after: Option<&str>) -> Value {
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
        if let Some(after) = after {
            item.insert("dependsOn".into(), json!([after]));
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

    /// The item's body, or its error (as [`Error::Api`], so the same helpers classify it).
    pub fn into_result(self) -> Result<Value> {
        match self.error() {
            Some(e) => Err(e.into()),
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

/// One `$batch` to send: Graph takes a batch that is either fully parallel (no `dependsOn`)
/// or fully sequential (each item depending on the one before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Indexes into the requests, in the order they are sent.
    pub(crate) members: Vec<usize>,
    /// Each member after the first depends on the one before it.
    pub(crate) sequential: bool,
}

/// Checks ids and dependencies, and plans the batches: requests without dependencies travel
/// in parallel batches of up to [`BATCH_MAX`]; each group linked by `dependsOn` travels as one
/// sequential batch, its requests in an order where every dependency comes first. Chaining a
/// group makes a request wait for (and fail with) every earlier one of its group, not only the
/// ones it named: Graph offers no shape in between.
pub(crate) fn split(requests: &[BatchRequest]) -> Result<Vec<Plan>> {
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
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(requests.len());
    for r in requests {
        let mut mine = Vec::new();
        for d in &r.depends_on {
            let Some(&j) = index.get(d.as_str()) else {
                return Err(Error::Config(format!(
                    "batch request {:?} depends on {d:?}, which is not in the batch",
                    r.id
                )));
            };
            mine.push(j);
        }
        deps.push(mine);
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
    for (i, mine) in deps.iter().enumerate() {
        for &j in mine {
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for i in 0..requests.len() {
        let r = root(&mut parent, i);
        let g = *group_of.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let mut plans: Vec<Plan> = Vec::new();
    let mut parallel: Vec<usize> = Vec::new();
    for members in groups {
        if members.len() == 1 && deps[members[0]].is_empty() {
            parallel.push(members[0]);
            if parallel.len() == BATCH_MAX {
                plans.push(Plan {
                    members: std::mem::take(&mut parallel),
                    sequential: false,
                });
            }
            continue;
        }
        if members.len() > BATCH_MAX {
            return Err(Error::Config(format!(
                "{} batch requests are linked by dependsOn; one batch holds at most {BATCH_MAX}",
                members.len()
            )));
        }
        plans.push(Plan {
            members: dependency_order(&members, &deps, requests)?,
            sequential: true,
        });
    }
    if !parallel.is_empty() {
        plans.push(Plan {
            members: parallel,
            sequential: false,
        });
    }
    Ok(plans)
}

/// `members` ordered so each comes after everything it depends on, otherwise as given.
fn dependency_order(
    members: &[usize],
    deps: &[Vec<usize>],
    requests: &[BatchRequest],
) -> Result<Vec<usize>> {
    let mut placed: HashSet<usize> = HashSet::new();
    let mut order = Vec::with_capacity(members.len());
    while order.len() < members.len() {
        let next = members
            .iter()
            .find(|&&i| !placed.contains(&i) && deps[i].iter().all(|d| placed.contains(d)));
        match next {
            Some(&i) => {
                placed.insert(i);
                order.push(i);
            }
            None => {
                let stuck = members
                    .iter()
                    .find(|i| !placed.contains(i))
                    .map_or("", |&i| requests[i].id.as_str());
                return Err(Error::Config(format!(
                    "batch request {stuck:?} is part of a dependsOn cycle"
                )));
            }
        }
    }
    Ok(order)
}

fn parse_replies(mut body: Value) -> Result<Vec<BatchReply>> {
    let Some(Value::Array(responses)) = body.get_mut("responses").map(Value::take) else {
        return Err(Error::Decode("a $batch answer without responses".into()));
    };
    responses
        .into_iter()
        .map(|mut r| {
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
                // Taken, not copied: a reply's body is a whole created item.
                body: r.get_mut("body").map(Value::take).unwrap_or(Value::Null),
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
        let plans = split(&requests)?;
        let mut replies: HashMap<String, BatchReply> = HashMap::new();
        for plan in plans {
            let chunk: Vec<&BatchRequest> = plan.members.iter().map(|&i| &requests[i]).collect();
            self.run_batch(&chunk, plan.sequential, &mut replies)
                .await?;
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
        sequential: bool,
        replies: &mut HashMap<String, BatchReply>,
    ) -> Result<()> {
        let mut pending: Vec<&BatchRequest> = chunk.to_vec();
        let mut round = 1;
        loop {
            let present: HashSet<&str> = pending.iter().map(|r| r.id.as_str()).collect();
            // In a sequential batch each item waits for the one before it; the items already
            // answered in an earlier round are not sent again, so the chain closes over them.
            let after: HashMap<&str, &str> = if sequential {
                pending
                    .windows(2)
                    .map(|w| (w[1].id.as_str(), w[0].id.as_str()))
                    .collect()
            } else {
                HashMap::new()
            };
            let items: Vec<Value> = pending
                .iter()
                .map(|r| r.to_json(after.get(r.id.as_str()).copied()))
                .collect();
            let body = json!({ "requests": items });
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
            let answer: Value = crate::client::parse_answer(&raw.body, "/$batch")
                .map_err(|e| Error::Decode(format!("$batch answer is not JSON: {e}")))?;
            let mut answered = parse_replies(answer)?;
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
            // In sending order, so a chain of 424s behind a throttled item follows it.
            let status: HashMap<&str, u16> =
                answered.iter().map(|r| (r.id.as_str(), r.status)).collect();
            for r in &pending {
                let waited_on = after.get(r.id.as_str()).is_some_and(|p| again.contains(*p));
                if status.get(r.id.as_str()) == Some(&424) && waited_on {
                    again.insert(r.id.clone());
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
    fn independent_requests_go_in_parallel_and_linked_ones_in_sequence() {
        let mut requests: Vec<BatchRequest> = (0..45).map(|i| get(&i.to_string())).collect();
        // 20 ← 19 ← 18 (listed out of order) and 31 ← 30, 32 ← 30: two sequential groups.
        requests[18] = get("18").depends_on("19");
        requests[19] = get("19").depends_on("20");
        requests[31] = get("31").depends_on("30");
        requests[32] = get("32").depends_on("30");
        let plans = split(&requests).unwrap();
        assert!(plans.iter().all(|p| p.members.len() <= BATCH_MAX));
        assert_eq!(plans.iter().map(|p| p.members.len()).sum::<usize>(), 45);
        let sequential: Vec<&Plan> = plans.iter().filter(|p| p.sequential).collect();
        assert_eq!(sequential.len(), 2);
        // Dependencies first.
        assert_eq!(sequential[0].members, [20, 19, 18]);
        assert_eq!(sequential[1].members, [30, 31, 32]);
        // The other 39 in parallel batches of up to 20.
        let parallel: Vec<usize> = plans
            .iter()
            .filter(|p| !p.sequential)
            .map(|p| p.members.len())
            .collect();
        assert_eq!(parallel, [20, 19]);
        let cycle = [get("a").depends_on("b"), get("b").depends_on("a")];
        assert!(split(&cycle).is_err());
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
            .depends_on("0");
        let item = r.to_json(Some("1"));
        assert_eq!(item["headers"]["Content-Type"], "application/json");
        assert_eq!(item["dependsOn"], json!(["1"]));
        assert_eq!(get("x").to_json(None).get("dependsOn"), None);
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
