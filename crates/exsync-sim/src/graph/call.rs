//! One Graph request against one mailbox as the resource handlers see it, and their answer.
//! The HTTPS front (`server.rs`) authenticates, checks the app's scope and throttles; `$batch`
//! builds the same [`Call`] for each of its items, so a handler never knows which way it came.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{json, Value};

/// A request for one mailbox, already authorised.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method: &'a Method,
    /// Path segments after `/users/{id-or-upn}/`, percent-decoded:
    /// `["contactFolders", "AAMk…", "contacts", "delta"]`.
    pub(crate) path: &'a [String],
    pub(crate) query: &'a Query,
    pub(crate) prefer: &'a Prefer,
    /// The `If-Match` header, as sent (an `@odata.etag` value, or `*`).
    pub(crate) if_match: Option<&'a str>,
    /// The JSON body of a POST or PATCH; `None` when there is none.
    pub(crate) body: Option<&'a Value>,
    pub(crate) now: DateTime<Utc>,
    /// `https://host:port/v1.0/users/{mailbox id}`: what `@odata.nextLink` and
    /// `@odata.deltaLink` are built on.
    pub(crate) user_url: &'a str,
}

/// The query string, split into OData's system options and the rest.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    /// `$select`, split on commas, trimmed.
    pub(crate) select: Option<Vec<String>>,
    /// `$filter`, raw (percent-decoded).
    pub(crate) filter: Option<String>,
    /// `$expand`, raw (percent-decoded).
    pub(crate) expand: Option<String>,
    pub(crate) top: Option<usize>,
    pub(crate) skip: Option<usize>,
    /// `$orderby`, raw.
    pub(crate) orderby: Option<String>,
    /// Every other parameter, percent-decoded: `startDateTime`, `endDateTime`,
    /// `$deltatoken`, `$skiptoken`, …
    pub(crate) params: BTreeMap<String, String>,
}

/// What the `Prefer` headers ask for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Prefer {
    /// `odata.maxpagesize=N`.
    pub(crate) max_page_size: Option<usize>,
    /// `outlook.timezone="…"` (a Windows or IANA zone name); UTC when absent.
    pub(crate) time_zone: Option<String>,
}

/// A handler's answer: status, extra headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
}

impl Answer {
    pub(crate) fn ok(body: Value) -> Answer {
        Answer::with(200, body)
    }

    pub(crate) fn created(body: Value) -> Answer {
        Answer::with(201, body)
    }

    pub(crate) fn no_content() -> Answer {
        Answer {
            status: 204,
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn with(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// Graph's error shape: `{"error": {"code", "message", "innerError": {…}}}`.
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::with(
            status,
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": uuid::Uuid::new_v4().to_string(),
                    "client-request-id": uuid::Uuid::new_v4().to_string(),
                },
            }}),
        )
    }

    pub(crate) fn not_found(what: &str) -> Answer {
        Answer::error(
            404,
            "ErrorItemNotFound",
            &format!("The specified object was not found in the store. ({what})"),
        )
    }

    pub(crate) fn bad_request(message: &str) -> Answer {
        Answer::error(400, "ErrorInvalidRequest", message)
    }

    /// 412 for an `If-Match` that no longer matches.
    pub(crate) fn stale_etag() -> Answer {
        Answer::error(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )
    }

    /// 410 for a delta or skip token the mailbox no longer knows.
    pub(crate) fn sync_state_not_found() -> Answer {
        Answer::error(
            410,
            "syncStateNotFound",
            "The sync state generation is not found. Restart the sync without a token.",
        )
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}
