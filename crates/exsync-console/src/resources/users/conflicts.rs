//! One user's recent conflicts and first-link merges: `GET /api/users/{user}/conflicts` and
//! the `/users/{user}/conflicts` page, linked from the user's row on the status page.
//!
//! A conflict is a field both sides changed differently since the last sync, settled by the
//! configuration's conflict rule. A first-link merge is what the first sync of two records
//! never linked before chose for a field they held differently: the value of the record
//! modified more recently. Both are read-only history; the values are whatever the CRM and
//! the mailbox held, so they are escaped wherever they are shown.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use exsync_core::{CrmId, ExchangeId, ItemKind, Side, UserKey};
use exsync_store::ConflictRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::html::{esc, page};
use crate::AppState;

use super::super::internal;
use super::detail::name_cell;
use super::time_text;

/// How many entries an answer holds when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// The most entries one answer holds.
const MAX_LIMIT: usize = 500;

/// One conflict or first-link merge, newest first.
#[derive(Serialize)]
pub(crate) struct ConflictView {
    /// When the pass that settled it ended, UTC.
    pub at: DateTime<Utc>,
    /// The CRM record of the pair.
    pub crm_id: CrmId,
    /// What the CRM held in the field; `null` when it was empty there.
    pub crm_value: Option<Value>,
    /// The Exchange item of the pair.
    pub exchange_id: ExchangeId,
    /// What Exchange held in the field; `null` when it was empty there.
    pub exchange_value: Option<Value>,
    /// The field, by its name in the sync's normalised record (e.g. `email`, `subject`).
    pub field: String,
    /// `true` for a first-link merge (the two records had never been synced and `winner` is
    /// the one modified more recently); `false` for a conflict the conflict rule settled.
    pub first_link: bool,
    /// The log's own number for the entry; a larger one is newer.
    pub id: i64,
    /// `contact` or `event`.
    pub kind: ItemKind,
    /// The pair's name (a contact's name and address, an event's subject and start); `null`
    /// when the pass did not know it. Untrusted text.
    pub name: Option<String>,
    /// The pass that settled it.
    pub run_id: i64,
    /// The side whose value was kept and written to the other side.
    pub winner: Side,
}

impl From<ConflictRecord> for ConflictView {
    fn from(r: ConflictRecord) -> Self {
        ConflictView {
            at: r.at,
            crm_id: r.crm_id,
            crm_value: r.conflict.crm_value,
            exchange_id: r.exchange_id,
            exchange_value: r.conflict.exchange_value,
            field: r.conflict.field,
            first_link: r.conflict.first_link,
            id: r.id,
            kind: r.kind,
            name: r.name,
            run_id: r.run_id,
            winner: r.conflict.winner,
        }
    }
}

/// A side as the page names it.
fn side_name(s: Side) -> &'static str {
    match s {
        Side::Crm => "CRM",
        Side::Exchange => "Exchange",
    }
}

/// A field's value as text: a string as it is, anything else as JSON, nothing as a marker.
fn value_text(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

impl ConflictView {
    /// The user's most recent entries, newest first. A user the store does not know is
    /// refused rather than shown with an empty list.
    pub(crate) fn list(
        st: &AppState,
        user: &str,
        limit: usize,
    ) -> ConsoleResult<Vec<ConflictView>> {
        let key = UserKey::from_email(user);
        if st.store.user_status(&key)?.is_none() {
            return Err(ConsoleError::not_found(format!(
                "{key} has never been synced"
            )));
        }
        Ok(st
            .store
            .conflicts(&key, limit)?
            .into_iter()
            .map(ConflictView::from)
            .collect())
    }

    /// How it was settled, in words.
    fn settled(&self) -> String {
        if self.first_link {
            format!(
                "first link — taken from the newer {}",
                side_name(self.winner)
            )
        } else {
            format!("conflict — {} won", side_name(self.winner))
        }
    }

    fn value_cell(v: Option<&Value>) -> String {
        match value_text(v) {
            Some(text) => format!("<td>{}</td>", esc(&text)),
            None => r#"<td class="muted">(empty)</td>"#.to_owned(),
        }
    }

    /// The entries as a table, newest first.
    pub(crate) fn table(entries: &[ConflictView]) -> String {
        let mut table = String::from(
            r#"<table id="conflicts"><tr><th>When (UTC)</th><th>Kind</th><th>Record</th><th>CRM id</th><th>Exchange id</th><th>Field</th><th>CRM value</th><th>Exchange value</th><th>Settled</th></tr>"#,
        );
        for e in entries {
            table.push_str(&e.render_row());
        }
        table.push_str("</table>");
        table
    }

    fn render_row(&self) -> String {
        format!(
            r#"<tr class="{class}" data-first-link="{fl}" data-winner="{w}"><td>{}</td><td>{}</td><td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}<td class="settled">{}</td></tr>"#,
            esc(&time_text(&self.at)),
            esc(self.kind.as_str()),
            name_cell(self.name.as_deref()),
            esc(self.crm_id.as_str()),
            esc(self.exchange_id.as_str()),
            esc(&self.field),
            ConflictView::value_cell(self.crm_value.as_ref()),
            ConflictView::value_cell(self.exchange_value.as_ref()),
            esc(&self.settled()),
            class = if self.first_link {
                "first-link"
            } else {
                "conflict"
            },
            fl = self.first_link,
            w = esc(self.winner.as_str()),
        )
    }
}

/// `?limit=`: how many entries, newest first (default 100, at most 500).
#[derive(Deserialize)]
pub(crate) struct ConflictsQuery {
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ConflictsQuery {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

pub(crate) async fn list_json(
    State(st): State<AppState>,
    Path(user): Path<String>,
    Query(q): Query<ConflictsQuery>,
) -> ConsoleResult<Json<Vec<ConflictView>>> {
    ConflictView::list(&st, &user, q.limit()).map(Json)
}

pub(crate) async fn get_page(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
    Query(q): Query<ConflictsQuery>,
) -> Response {
    let entries = match ConflictView::list(&st, &user, q.limit()) {
        Ok(e) => e,
        Err(e) => return internal(&caller, e),
    };
    let key = UserKey::from_email(&user);
    let mut body = format!(
        r#"<p>User <strong id="conflicts-user">{}</strong>. A <em>conflict</em> is a field both sides changed differently since the last sync; the configuration's conflict rule chose the side that won. A <em>first-link merge</em> is what the first sync of two records never linked before took from the one modified more recently.</p>"#,
        esc(key.as_str())
    );
    if entries.is_empty() {
        body.push_str(
            r#"<p class="muted" id="no-conflicts">No conflicts or first-link merges recorded.</p>"#,
        );
    } else {
        body.push_str(&ConflictView::table(&entries));
    }
    body.push_str(r#"<p><a href="/">Back to status</a></p>"#);
    page("Conflicts and first-link merges", Some(&caller), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(first_link: bool, winner: Side, crm: Option<Value>) -> ConflictView {
        ConflictView {
            at: DateTime::<Utc>::default(),
            crm_id: CrmId("003<x>".to_owned()),
            crm_value: crm,
            exchange_id: ExchangeId("AAMk&".to_owned()),
            exchange_value: Some(Value::String("<script>alert(1)</script>".to_owned())),
            field: "last_name".to_owned(),
            first_link,
            id: 1,
            kind: ItemKind::Contact,
            name: Some("Ann <b>Lee</b>".to_owned()),
            run_id: 2,
            winner,
        }
    }

    #[test]
    fn a_row_says_how_it_was_settled_and_encodes_every_value() {
        let row = view(true, Side::Exchange, None).render_row();
        assert!(
            row.contains("first link — taken from the newer Exchange"),
            "{row}"
        );
        assert!(row.contains(r#"class="first-link""#), "{row}");
        assert!(row.contains("(empty)"), "{row}");
        assert!(
            row.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{row}"
        );
        assert!(
            row.contains("003&lt;x&gt;") && row.contains("AAMk&amp;"),
            "{row}"
        );
        assert!(!row.contains("<script>"), "{row}");
        assert!(
            row.contains(r#"<td class="name">Ann &lt;b&gt;Lee&lt;/b&gt;</td>"#),
            "the record is named, encoded: {row}"
        );

        let row = view(false, Side::Crm, Some(serde_json::json!(["a", 1]))).render_row();
        assert!(row.contains("conflict — CRM won"), "{row}");
        assert!(row.contains(r#"class="conflict""#), "{row}");
        assert!(row.contains("[&quot;a&quot;,1]"), "{row}");
    }
}
