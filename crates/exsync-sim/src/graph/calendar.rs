//! the primary calendar of one mailbox (`calendar`, `calendars…`, `events…`, `calendarView…`).
//! Placeholder for the interface the front relies on; filled in by its owner.

use serde::{Deserialize, Serialize};

use super::call::{Answer, Call};

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Calendar {}

impl Calendar {
    /// Answers a call whose path this store owns; `None` for any other path.
    pub(crate) fn handle(&mut self, call: &Call<'_>) -> Option<Answer> {
        let _ = call;
        None
    }

    /// Forgets every delta and skip token handed out so far: their next use answers 410
    /// `syncStateNotFound`, as Exchange Online does when its token cache drops them.
    pub(crate) fn expire_delta_tokens(&mut self) {}
}
