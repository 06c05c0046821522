//! Reset Sync for one user: `POST /api/users/{user}/reset` and the status page's button.
//! The user's pairs and cursors are forgotten, so the next pass matches everything again;
//! no data is deleted.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use exsync_core::UserKey;
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ConsoleError, ConsoleResult};
use crate::AppState;

use super::status_page;

/// What Reset Sync forgot. The audit log records the same.
#[derive(Serialize)]
pub(crate) struct ResetView {
    /// Change-tracking positions dropped; the next pass reads the user's data from the start.
    pub cursors_forgotten: u64,
    /// Links between CRM records and mailbox items dropped; the next pass matches them again.
    pub pairs_forgotten: u64,
    /// The mailbox that was reset.
    pub user: UserKey,
    /// Whether the user had been paused; a reset also lifts the pause.
    pub was_paused: bool,
}

pub(crate) fn do_reset(st: &AppState, caller: &Caller, user: &str) -> ConsoleResult<ResetView> {
    let key = UserKey::from_email(user);
    if st.store.user_status(&key)?.is_none() {
        return Err(ConsoleError::not_found(format!(
            "{key} has never been synced"
        )));
    }
    let counts = st.store.reset_user(&key)?;
    let view = ResetView {
        cursors_forgotten: counts.cursors,
        pairs_forgotten: counts.pairs,
        user: key,
        was_paused: counts.was_paused,
    };
    st.audit(
        &caller.actor(),
        "user.reset",
        json!({
            "user": view.user.as_str(),
            "pairs_forgotten": view.pairs_forgotten,
            "cursors_forgotten": view.cursors_forgotten,
            "was_paused": view.was_paused,
        }),
    );
    Ok(view)
}

pub(crate) async fn post_json(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> ConsoleResult<Json<ResetView>> {
    do_reset(&st, &caller, &user).map(Json)
}

pub(crate) async fn post_form(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user): Path<String>,
) -> Response {
    match do_reset(&st, &caller, &user) {
        Ok(done) => status_page(
            &st,
            &caller,
            Some(&format!(
                "Reset Sync for {}: {} pairs and {} cursors forgotten; the next pass matches everything again.",
                done.user.as_str(),
                done.pairs_forgotten, done.cursors_forgotten
            )),
            None,
        ),
        Err(e) => status_page(&st, &caller, None, Some(&e.message)),
    }
}
