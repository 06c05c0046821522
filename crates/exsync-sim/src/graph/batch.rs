//! `POST /v1.0/$batch`: JSON batching with Graph's rules. At most [`MAX_ITEMS`] requests
//! with unique ids and relative urls; a body needs a `Content-Type` header; a batch is
//! either fully parallel (no `dependsOn`) or fully sequential (each item depends on the one
//! before it), anything else is 400 as in Graph; an item whose dependency did not succeed
//! answers 424. Each item goes through the same checks, throttle and stores as a request of
//! its own. A sequential batch runs one item after the other; a parallel one runs
//! [`PARALLEL_ITEMS`] at a time, as Graph hands them to Outlook, so they share the
//! mailbox's concurrency limit with whatever else the app has in flight.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::Method;
use serde_json::{json, Map, Value};

use super::call::Answer;
use super::server::{execute, parse_body, Graph, GraphRequest};

/// Requests one batch may carry.
pub(crate) const MAX_ITEMS: usize = 20;
/// Items of a parallel batch Graph dispatches at once.
pub(crate) const PARALLEL_ITEMS: usize = 4;

/// One checked item of a batch.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    method: Method,
    /// Relative, with its leading `/`.
    url: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

impl Item {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(message: &str) -> Answer {
    Answer::error(400, "BadRequest", message)
}

/// Runs a batch whose top-level request carried `authorization`, `content_type`, `body`.
pub(crate) async fn run(
    graph: &Arc<Graph>,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Answer {
    let body = match parse_body(&Method::POST, content_type, body) {
        Ok(Some(b)) => b,
        Ok(None) => return invalid("The batch request body is empty."),
        Err(a) => return a,
    };
    if let Err(answer) = graph.identity.verify(authorization, chrono::Utc::now()) {
        return answer;
    }
    let items = match parse(&body) {
        Ok(items) => items,
        Err(a) => return a,
    };
    let answers = if items.iter().all(|item| item.depends_on.is_empty()) {
        run_parallel(graph, authorization, &items).await
    } else {
        run_sequential(graph, authorization, &items).await
    };
    let responses: Vec<Value> = items
        .iter()
        .zip(answers)
        .map(|(item, answer)| {
            let mut headers = Map::new();
            if answer.body.is_some() {
                headers.insert(
                    "Content-Type".to_owned(),
                    json!("application/json; odata.metadata=minimal"),
                );
            }
            for (name, value) in &answer.headers {
                headers.insert(name.clone(), json!(value));
            }
            let mut response = json!({"id": item.id, "status": answer.status, "headers": headers});
            if let (Some(body), Some(obj)) = (answer.body, response.as_object_mut()) {
                obj.insert("body".to_owned(), body);
            }
            response
        })
        .collect();
    Answer::ok(json!({ "responses": responses }))
}

/// Runs `items` [`PARALLEL_ITEMS`] at a time; the answers come back in the items' order.
async fn run_parallel(
    graph: &Arc<Graph>,
    authorization: Option<&str>,
    items: &[Item],
) -> Vec<Answer> {
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_ITEMS));
    let mut running = tokio::task::JoinSet::new();
    for (index, item) in items.iter().enumerate() {
        let graph = graph.clone();
        let authorization = authorization.map(str::to_owned);
        let slots = slots.clone();
        let item = item.clone();
        running.spawn(async move {
            // The semaphore is never closed; a closed one would only mean no limit.
            let _slot = slots.acquire_owned().await;
            (
                index,
                run_item(&graph, authorization.as_deref(), &item).await,
            )
        });
    }
    let mut answers: Vec<Option<Answer>> = (0..items.len()).map(|_| None).collect();
    while let Some(done) = running.join_next().await {
        match done {
            Ok((index, answer)) => answers[index] = Some(answer),
            Err(e) => tracing::error!(error = %e, "a batch item's task failed"),
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Answer::error(
                    500,
                    "InternalServerError",
                    "The request failed unexpectedly.",
                )
            })
        })
        .collect()
}

/// Runs `items` one after the other; an item whose dependency failed answers 424.
async fn run_sequential(graph: &Graph, authorization: Option<&str>, items: &[Item]) -> Vec<Answer> {
    let mut statuses: HashMap<&str, u16> = HashMap::new();
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let failed = item.depends_on.iter().find(|d| {
            !statuses
                .get(d.as_str())
                .is_some_and(|s| (200..300).contains(s))
        });
        let answer = if let Some(dep) = failed {
            Answer::error(
                424,
                "FailedDependency",
                &format!("The request depends on request '{dep}', which did not succeed."),
            )
        } else {
            run_item(graph, authorization, item).await
        };
        statuses.insert(&item.id, answer.status);
        answers.push(answer);
    }
    answers
}

async fn run_item(graph: &Graph, authorization: Option<&str>, item: &Item) -> Answer {
    let body = match &item.body {
        None => None,
        Some(body) => {
            let is_json = item
                .header("content-type")
                .and_then(|ct| ct.split(';').next())
                .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Answer::error(
                    415,
                    "UnsupportedMediaType",
                    "Only application/json bodies are supported in a batch.",
                );
            }
            Some(body.clone())
        }
    };
    let prefer: Vec<&str> = item
        .headers
        .iter()
        .filter(|(n, _)| n == "prefer")
        .map(|(_, v)| v.as_str())
        .collect();
    let request = GraphRequest {
        method: item.method.clone(),
        url: &item.url,
        authorization,
        prefer,
        if_match: item.header("if-match"),
        // The item's body as it came, near enough: its JSON without the batch's spacing.
        upload: body.as_ref().map_or(0, |b| {
            u64::try_from(b.to_string().len()).unwrap_or(u64::MAX)
        }),
        body,
        top_level: false,
    };
    execute(graph, &request).await.answer
}

fn parse(body: &Value) -> Result<Vec<Item>, Answer> {
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return Err(invalid("The batch body needs a 'requests' array."));
    };
    if requests.is_empty() {
        return Err(invalid("The batch has no requests."));
    }
    if requests.len() > MAX_ITEMS {
        return Err(invalid(&format!(
            "Number of batch request steps exceeds the maximum of {MAX_ITEMS}."
        )));
    }
    let mut items = Vec::with_capacity(requests.len());
    let mut ids = HashSet::new();
    for request in requests {
        let id = match request.get("id") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(invalid(
                    "Each batch request needs an 'id' (a short string).",
                ))
            }
        };
        if !ids.insert(id.clone()) {
            return Err(invalid(&format!("Batch request id '{id}' is not unique.")));
        }
        let method = match request
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("GET") => Method::GET,
            Some("POST") => Method::POST,
            Some("PATCH") => Method::PATCH,
            Some("PUT") => Method::PUT,
            Some("DELETE") => Method::DELETE,
            _ => {
                return Err(invalid(&format!(
                    "Batch request '{id}' needs a method (GET, POST, PATCH, PUT or DELETE)."
                )))
            }
        };
        let Some(url) = request.get("url").and_then(Value::as_str) else {
            return Err(invalid(&format!("Batch request '{id}' needs a url.")));
        };
        if url.contains("://") || url.starts_with("//") {
            return Err(invalid(&format!(
                "Batch request '{id}': the url must be relative (/users/…), not '{url}'."
            )));
        }
        let url = if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("/{url}")
        };
        let mut headers = Vec::new();
        match request.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let Some(value) = value.as_str() else {
                        return Err(invalid(&format!(
                            "Batch request '{id}': header '{name}' must be a string."
                        )));
                    };
                    headers.push((name.to_ascii_lowercase(), value.to_owned()));
                }
            }
            Some(_) => {
                return Err(invalid(&format!(
                    "Batch request '{id}': headers must be an object."
                )))
            }
        }
        let body = request.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(n, _)| n == "content-type") {
            return Err(invalid(&format!(
                "Batch request '{id}' has a body but no Content-Type header."
            )));
        }
        let depends_on = match request.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                let mut deps = Vec::new();
                for d in list {
                    match d {
                        Value::String(s) => deps.push(s.clone()),
                        Value::Number(n) => deps.push(n.to_string()),
                        _ => {
                            return Err(invalid(&format!(
                                "Batch request '{id}': dependsOn lists request ids."
                            )))
                        }
                    }
                }
                deps
            }
            Some(_) => {
                return Err(invalid(&format!(
                    "Batch request '{id}': dependsOn must be an array of ids."
                )))
            }
        };
        items.push(Item {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    for (i, item) in items.iter().enumerate() {
        for dep in &item.depends_on {
            // Graph wants a dependency listed before the request that depends on it.
            if !items[..i].iter().any(|earlier| &earlier.id == dep) {
                return Err(invalid(&format!(
                    "Invalid dependency for request Id '{}': '{dep}' is not an earlier request of the batch.",
                    item.id
                )));
            }
        }
    }
    let parallel = items.iter().all(|item| item.depends_on.is_empty());
    let sequential = items.iter().enumerate().all(|(i, item)| match i {
        0 => item.depends_on.is_empty(),
        _ => item.depends_on.contains(&items[i - 1].id),
    });
    if !parallel && !sequential {
        return Err(invalid(
            "Batch should be either fully sequential or fully parallel.",
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn requests(list: Value) -> Value {
        json!({ "requests": list })
    }

    #[test]
    fn refuses_what_graph_refuses() {
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users/a"}))
            .collect();
        assert_eq!(parse(&requests(json!(many))).unwrap_err().status, 400);
        let dup = json!([{"id": "1", "method": "GET", "url": "/users/a"},
                         {"id": "1", "method": "GET", "url": "/users/b"}]);
        assert_eq!(parse(&requests(dup)).unwrap_err().status, 400);
        let absolute = json!([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users/a"}]);
        assert_eq!(parse(&requests(absolute)).unwrap_err().status, 400);
        let no_type =
            json!([{"id": "1", "method": "POST", "url": "/users/a/contacts", "body": {}}]);
        assert_eq!(parse(&requests(no_type)).unwrap_err().status, 400);
        let unknown_dep =
            json!([{"id": "1", "method": "GET", "url": "/users/a", "dependsOn": ["9"]}]);
        assert_eq!(parse(&requests(unknown_dep)).unwrap_err().status, 400);
        assert_eq!(parse(&json!({})).unwrap_err().status, 400);
    }

    #[test]
    fn a_batch_is_fully_parallel_or_fully_sequential() {
        let get = |id: &str, deps: &[&str]| json!({"id": id, "method": "get", "url": "users/x", "dependsOn": deps});
        let parallel = parse(&requests(json!([
            get("a", &[]),
            get("b", &[]),
            get("c", &[])
        ])));
        assert_eq!(parallel.unwrap()[0].url, "/users/x");
        let chain = json!([get("a", &[]), get("b", &["a"]), get("c", &["b", "a"])]);
        assert_eq!(parse(&requests(chain)).unwrap().len(), 3);
        let two_chains = json!([
            get("1", &[]),
            get("2", &["1"]),
            get("3", &[]),
            get("4", &["3"])
        ]);
        assert_eq!(parse(&requests(two_chains)).unwrap_err().status, 400);
        let forward = json!([get("a", &["b"]), get("b", &[])]);
        assert_eq!(parse(&requests(forward)).unwrap_err().status, 400);
        let itself = json!([get("a", &["a"])]);
        assert_eq!(parse(&requests(itself)).unwrap_err().status, 400);
    }
}
