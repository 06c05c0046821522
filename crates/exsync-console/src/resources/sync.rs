//! The sync switch: `GET`/`PUT /api/sync`, and `POST /sync` from the status page, which
//! shows the switch (see [`SyncView::render`]).

use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Form, Json};
use chrono::Utc;
use exsync_store::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{allows, Caller};
use crate::error::ConsoleResult;
use crate::html::csrf_field;
use crate::AppState;

use super::users;

/// Whether the sync service runs passes.
#[derive(Serialize)]
pub(crate) struct SyncView {
    /// `false` while an admin has switched sync off: no passes run for anyone.
    pub enabled: bool,
}

impl SyncView {
    pub(crate) fn load(st: &AppState) -> ConsoleResult<SyncView> {
        Ok(SyncView {
            enabled: st.sync_enabled()?,
        })
    }

    /// The state, and for an admin the button that flips it.
    pub(crate) fn render(&self, caller: &Caller) -> String {
        let mut out = format!(
            r#"<p>Sync is <strong id="sync-state">{}</strong>.</p>"#,
            if self.enabled { "enabled" } else { "disabled" }
        );
        if allows(caller.role, Role::Admin) {
            out.push_str(&format!(
                r#"<form method="post" action="/sync">{}<input type="hidden" name="enabled" value="{}"><button type="submit" id="sync-toggle">{}</button></form>"#,
                csrf_field(caller),
                !self.enabled,
                if self.enabled {
                    "Disable sync"
                } else {
                    "Enable sync"
                }
            ));
        }
        out
    }
}

pub(crate) fn set_sync(st: &AppState, caller: &Caller, enabled: bool) -> ConsoleResult<SyncView> {
    exsync_engine::switch::set_enabled(st.store.as_ref(), enabled, Utc::now())?;
    st.audit(
        &caller.actor(),
        if enabled {
            "sync.enable"
        } else {
            "sync.disable"
        },
        json!({}),
    );
    Ok(SyncView { enabled })
}

#[derive(Deserialize)]
pub(crate) struct SyncInput {
    pub enabled: bool,
}

pub(crate) async fn get_json(State(st): State<AppState>) -> ConsoleResult<Json<SyncView>> {
    SyncView::load(&st).map(Json)
}

pub(crate) async fn put_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(input): Json<SyncInput>,
) -> ConsoleResult<Json<SyncView>> {
    set_sync(&st, &caller, input.enabled).map(Json)
}

/// The form sends the state to switch to as text.
#[derive(Deserialize)]
pub(crate) struct SyncForm {
    enabled: String,
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(form): Form<SyncForm>,
) -> Response {
    let enabled = form.enabled == "true";
    let msg = if enabled {
        "Sync enabled."
    } else {
        "Sync disabled."
    };
    match set_sync(&st, &caller, enabled) {
        Ok(_) => users::status_page(&st, &caller, Some(msg), None),
        Err(e) => users::status_page(&st, &caller, None, Some(&e.message)),
    }
}
