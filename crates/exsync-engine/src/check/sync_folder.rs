//! What the checks say of the contact sync folder the passes use, on either backend: found by
//! the id the state database stores wherever its user renamed or moved it, or gone.

/// The start of a folder id, enough to tell it in a log.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The folder the passes use is there, found by its id.
pub(super) fn found_by_id(address: &str, id: &str, name: &str) -> String {
    format!(
        "the contact sync folder of {address} that the passes use (id {}…) is there, found by \
         its id: its user may have renamed or moved it from Contacts/{name}, and the passes keep \
         syncing into it",
        short(id)
    )
}

/// The folder the passes used was `how` ("deleted", "deleted into Deleted Items"…).
pub(super) fn gone(address: &str, id: &str, how: &str) -> String {
    format!(
        "the contact sync folder of {address} that the passes used (id {}…) was {how}",
        short(id)
    )
}

/// What to do about a folder that is gone: nothing, the next pass makes it again.
pub(super) fn gone_fix(name: &str) -> String {
    format!(
        "nothing is needed: the next pass makes a new Contacts/{name} and copies the user's \
         synced CRM contacts into it, deleting none in the CRM; to keep the old folder instead, \
         restore it before then"
    )
}
