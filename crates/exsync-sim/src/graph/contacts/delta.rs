//! `contactFolders/{id}/contacts/delta` (and `contacts/delta` for the default folder), and
//! `contactFolders/delta` (every contact folder under the default one).
//!
//! A round without a token returns the current state; its last page carries an
//! `@odata.deltaLink` whose token holds the sequence the round covered. A round started with
//! that token returns what was written since, in full, and `@removed` for what went away.
//! Pages in between carry `@odata.nextLink` with a `$skiptoken` holding the round's end and
//! how far it got, so writes made while a client pages wait for the next round instead of
//! shifting this one.
//!
//! `$select` is honoured on the first call and travels in the tokens; a `$select` sent with a
//! token is ignored, as Graph documents ("copy the nextLink or deltaLink URL … it already
//! includes the encoded parameters"). `$filter`, `$expand`, `$orderby` and `$search` are
//! refused: Graph does not support them on contact delta.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{entity, Contacts};
use crate::graph::call::{Answer, Call};
use crate::graph::odata::tracked::{Delta, Tracked};
use crate::graph::odata::{
    check_select, decode_token, encode_token, link, page_size, project, DELTA_DEFAULT_PAGE,
    DELTA_MAX_PAGE,
};

/// What a delta token carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// What it was issued for: a folder's id for its contacts, `folders` for the folders.
    f: String,
    /// The log's generation when issued; a later one means the token expired.
    g: u64,
    /// Whether this is the first round (current state only, no removals).
    i: bool,
    /// The sequence already seen: the round returns what comes after it.
    c: u64,
    /// The round's end; `None` in a deltaLink, whose round ends when it is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<Vec<String>>,
}

/// The scope of [`Cursor::f`] for `contactFolders/delta`, which no folder id can equal.
const FOLDERS_SCOPE: &str = "folders";

/// One delta feed: what it reads and how its entries look.
struct Feed<'a, T> {
    tracked: &'a Tracked<T>,
    scope: &'a str,
    /// Path after the user URL that the feed's links are built on.
    link_path: &'a str,
    odata_type: &'a str,
    selectable: &'a [&'a str],
}

impl<T> Feed<'_, T> {
    /// One page of the feed; `render` gives an entry's full JSON, or `None` to leave it out.
    fn page(
        &self,
        call: &Call<'_>,
        render: impl Fn(&str, &T) -> Option<Value>,
    ) -> Result<Answer, Answer> {
        let q = call.query;
        for (name, given) in [
            ("$filter", q.filter.is_some()),
            ("$expand", q.expand.is_some()),
            ("$orderby", q.orderby.is_some()),
            ("$search", q.params.contains_key("$search")),
        ] {
            if given {
                return Err(Answer::error(
                    400,
                    "ErrorInvalidUrlQuery",
                    &format!("{name} is not supported on delta; only $select is."),
                ));
            }
        }
        let skip = q.params.get("$skiptoken").filter(|t| !t.is_empty());
        // An empty $deltatoken is Graph's "start over" (a 410's Location carries one).
        let delta = q.params.get("$deltatoken").filter(|t| !t.is_empty());
        let cursor = match (skip, delta) {
            (Some(_), Some(_)) => {
                return Err(Answer::bad_request(
                    "Give either $skiptoken or $deltatoken, not both.",
                ))
            }
            (Some(token), None) => decode_token::<Cursor>(token, "$skiptoken")?,
            (None, Some(token)) => decode_token::<Cursor>(token, "$deltatoken")?,
            (None, None) => {
                check_select(q.select.as_deref(), self.selectable)?;
                Cursor {
                    f: self.scope.to_owned(),
                    g: self.tracked.generation(),
                    i: true,
                    c: 0,
                    u: None,
                    s: q.select.clone(),
                }
            }
        };
        if cursor.f != self.scope {
            return Err(Answer::bad_request(
                "This delta token belongs to another collection.",
            ));
        }
        if cursor.g != self.tracked.generation() {
            return Err(Answer::sync_state_not_found());
        }
        let upto = cursor.u.unwrap_or_else(|| self.tracked.seq());
        let size = page_size(call.prefer, None, DELTA_DEFAULT_PAGE, DELTA_MAX_PAGE);
        let select = cursor.s.as_deref();
        let mut events = self.tracked.since(cursor.c, upto, !cursor.i).peekable();
        let mut items = Vec::with_capacity(size.min(64));
        let mut last = cursor.c;
        while items.len() < size {
            let Some((seq, event)) = events.next() else {
                break;
            };
            last = seq;
            match event {
                Delta::Changed(id, item) => {
                    if let Some(mut full) = render(id, item) {
                        full["@odata.type"] = json!(self.odata_type);
                        items.push(project(&full, select, &[]));
                    }
                }
                Delta::Removed(id) => items.push(json!({
                    "@odata.type": self.odata_type,
                    "id": id,
                    "@removed": {"reason": "deleted"},
                })),
            }
        }
        let more = events.peek().is_some();
        let base = format!("{}/{}", call.user_url, self.link_path);
        let mut body = json!({ "value": Value::Array(items) });
        if more {
            let next = Cursor {
                c: last,
                u: Some(upto),
                ..cursor
            };
            body["@odata.nextLink"] = json!(link(&base, &[("$skiptoken", &encode_token(&next))]));
        } else {
            let next = Cursor {
                i: false,
                c: upto,
                u: None,
                ..cursor
            };
            body["@odata.deltaLink"] = json!(link(&base, &[("$deltatoken", &encode_token(&next))]));
        }
        Ok(Answer::ok(body))
    }
}

impl Contacts {
    /// The contacts of one folder.
    pub(super) fn delta(
        &self,
        call: &Call<'_>,
        folder: &str,
        link_path: &str,
    ) -> Result<Answer, Answer> {
        let selectable = entity::selectable();
        let feed = Feed {
            tracked: self.folder_contacts(folder)?,
            scope: folder,
            link_path,
            odata_type: "#microsoft.graph.contact",
            selectable: &selectable,
        };
        feed.page(call, |id, contact| Some(contact.render(id, folder)))
    }

    /// Every contact folder below the default one (the default folder itself is not
    /// listed, as `contactFolders` does not list it).
    pub(super) fn folder_delta(&self, call: &Call<'_>) -> Result<Answer, Answer> {
        let feed = Feed {
            tracked: &self.folders,
            scope: FOLDERS_SCOPE,
            link_path: "contactFolders/delta",
            odata_type: "#microsoft.graph.contactFolder",
            selectable: super::folders::PROPERTIES,
        };
        feed.page(call, |id, folder| {
            (id != self.root).then(|| folder.render(id))
        })
    }
}
