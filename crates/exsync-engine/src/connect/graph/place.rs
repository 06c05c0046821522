//! Where a user's contact sync folder stands: still among their contact folders, under the
//! default Contacts folder at any depth, or out of them, as Outlook's Delete leaves it in
//! Deleted Items (a mail folder) with everything in it.
//!
//! Graph gives contact folders no change key and has no search for the Deleted Items a folder
//! went to without the Mail permissions the app does not have, so the connector climbs the
//! folder's `parentFolderId`s: reaching the default Contacts folder means home; meeting a
//! parent that is no contact folder means it left them. The climb is done once per process;
//! each pass after it confirms the folder and its ancestors in the `$batch` that reads the
//! folder's first delta page, so the check costs no round trip of its own.

use exsync_graph::{BatchReply, BatchRequest, Error as GraphFailure, GraphClient};
use http::Method;
use serde_json::Value;

use super::seg;

/// Ancestors climbed at most between the folder and the default Contacts folder; Outlook
/// users nest far less. A deeper folder is taken to be where its user put it.
const MAX_DEPTH: usize = 8;

/// The batch item ids of a confirmation start with this.
const ITEM: &str = "place.";

/// Where the folder stood when last seen: the default Contacts folder's id, and the folder's
/// ancestors below it, nearest first (none when it sits right under Contacts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) root: String,
    pub(crate) chain: Vec<String>,
}

/// What a look at the folder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Among the contact folders, under the default one through `chain`.
    Home(Standing),
    /// Out of the contact folders: deleted into Deleted Items, with the folder that held it, or
    /// dragged among mail folders; Outlook shows no contacts there.
    Away,
    /// Graph no longer knows the folder: deleted for good.
    Gone,
}

impl Place {
    /// How a folder that is not home went away, for the admin.
    pub(crate) fn how(&self) -> &'static str {
        match self {
            Place::Home(_) => "not deleted",
            Place::Away => "deleted into Deleted Items (or moved out of the contact folders)",
            Place::Gone => "deleted",
        }
    }
}

fn folder_url(user_path: &str, id: &str) -> String {
    format!(
        "{user_path}/contactFolders/{}?$select=id,parentFolderId",
        seg(id)
    )
}

fn parent_of(body: &Value) -> Result<String, GraphFailure> {
    body.get("parentFolderId")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty() && p.len() <= 4096)
        .map(str::to_owned)
        .ok_or_else(|| GraphFailure::Decode("a contact folder without its parentFolderId".into()))
}

/// Where `folder` stands, climbing to the default Contacts folder `root` (read off the
/// mailbox when empty). A mailbox whose Contacts folder cannot be told leaves only whether the
/// folder exists: it is then taken to be home.
pub(crate) async fn folder_place(
    client: &GraphClient,
    user_path: &str,
    folder: &str,
    root: &str,
) -> Result<Place, GraphFailure> {
    let root = match root {
        "" => contacts_root(client, user_path).await?,
        known => Some(known.to_owned()),
    };
    if let Some(root) = root {
        return climb(client, user_path, folder, &root).await;
    }
    tracing::debug!("the default Contacts folder could not be told; only whether the sync folder exists is checked");
    match client.get(&folder_url(user_path, folder)).await {
        Ok(_) => Ok(Place::Home(Standing::default())),
        Err(e) if e.is_not_found() => Ok(Place::Gone),
        Err(e) => Err(e),
    }
}

/// The default Contacts folder's id, read off a folder right under it; `None` when there is
/// none to read it from.
async fn contacts_root(
    client: &GraphClient,
    user_path: &str,
) -> Result<Option<String>, GraphFailure> {
    let body = client
        .get(&format!(
            "{user_path}/contactFolders?$top=1&$select=id,parentFolderId"
        ))
        .await?;
    Ok(body
        .get("value")
        .and_then(Value::as_array)
        .and_then(|folders| folders.first())
        .and_then(|f| parent_of(f).ok()))
}

/// Looks at `folder` and climbs from it to `root`, one request per level.
pub(super) async fn climb(
    client: &GraphClient,
    user_path: &str,
    folder: &str,
    root: &str,
) -> Result<Place, GraphFailure> {
    let mut chain = Vec::new();
    let mut at = folder.to_owned();
    for depth in 0..=MAX_DEPTH {
        let body = match client.get(&folder_url(user_path, &at)).await {
            Ok(body) => body,
            Err(e) if e.is_not_found() && depth == 0 => return Ok(Place::Gone),
            // The folder's parent is no contact folder: the default one was not on the way.
            Err(e) if e.is_not_found() => return Ok(Place::Away),
            Err(e) => return Err(e),
        };
        let parent = parent_of(&body)?;
        if parent == root {
            break;
        }
        chain.push(parent.clone());
        at = parent;
    }
    Ok(Place::Home(Standing {
        root: root.to_owned(),
        chain,
    }))
}

/// The `$batch` items that confirm `folder` stands as `standing` says: the folder and each
/// of its ancestors.
pub(super) fn confirm_requests(
    user_path: &str,
    folder: &str,
    standing: &Standing,
) -> Vec<BatchRequest> {
    std::iter::once(folder)
        .chain(standing.chain.iter().map(String::as_str))
        .enumerate()
        .map(|(i, id)| {
            BatchRequest::new(format!("{ITEM}{i}"), Method::GET, folder_url(user_path, id))
        })
        .collect()
}

/// Whether a batch item is one of [`confirm_requests`]'.
pub(super) fn is_confirmation(reply: &BatchReply) -> bool {
    reply.id.starts_with(ITEM)
}

/// What the answers to [`confirm_requests`] (in their order) say: the folder is where it
/// was, or gone; `None` when it stands somewhere new and must be climbed.
pub(super) fn confirmed(
    replies: Vec<BatchReply>,
    standing: &Standing,
) -> Result<Option<Place>, GraphFailure> {
    for (i, reply) in replies.into_iter().enumerate() {
        let body = match reply.into_result() {
            Ok(body) => body,
            Err(e) if e.is_not_found() && i == 0 => return Ok(Some(Place::Gone)),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let expected = standing.chain.get(i).unwrap_or(&standing.root);
        if &parent_of(&body)? != expected {
            return Ok(None);
        }
        if i == standing.chain.len() {
            return Ok(Some(Place::Home(standing.clone())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn answer(i: usize, status: u16, parent: &str) -> BatchReply {
        BatchReply {
            id: format!("{ITEM}{i}"),
            status,
            headers: BTreeMap::new(),
            body: if status == 200 {
                json!({ "id": "x", "parentFolderId": parent })
            } else {
                json!({ "error": { "code": "ErrorItemNotFound", "message": "gone" } })
            },
        }
    }

    #[test]
    fn a_confirmation_asks_for_the_folder_and_each_ancestor() {
        let standing = Standing {
            root: "R".into(),
            chain: vec!["A".into(), "B".into()],
        };
        let asked = confirm_requests("/users/u", "F", &standing);
        let urls: Vec<&str> = asked.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "/users/u/contactFolders/F?$select=id,parentFolderId",
                "/users/u/contactFolders/A?$select=id,parentFolderId",
                "/users/u/contactFolders/B?$select=id,parentFolderId",
            ]
        );
    }

    #[test]
    fn the_answers_confirm_the_standing_or_ask_for_a_climb() {
        let nested = Standing {
            root: "R".into(),
            chain: vec!["A".into()],
        };
        let home = |replies| confirmed(replies, &nested).unwrap();
        assert_eq!(
            home(vec![answer(0, 200, "A"), answer(1, 200, "R")]),
            Some(Place::Home(nested.clone()))
        );
        // The folder itself is gone.
        assert_eq!(
            home(vec![answer(0, 404, ""), answer(1, 200, "R")]),
            Some(Place::Gone)
        );
        // Moved, or its ancestor moved or deleted: only a climb can tell.
        assert_eq!(home(vec![answer(0, 200, "C"), answer(1, 200, "R")]), None);
        assert_eq!(home(vec![answer(0, 200, "A"), answer(1, 200, "BIN")]), None);
        assert_eq!(home(vec![answer(0, 200, "A"), answer(1, 404, "")]), None);
        // Right under Contacts.
        let top = Standing {
            root: "R".into(),
            chain: Vec::new(),
        };
        assert_eq!(
            confirmed(vec![answer(0, 200, "R")], &top).unwrap(),
            Some(Place::Home(top.clone()))
        );
        assert_eq!(confirmed(vec![answer(0, 200, "BIN")], &top).unwrap(), None);
        // Any other failure is the pass's error, not a verdict.
        let mut refused = answer(0, 403, "");
        refused.body = json!({ "error": { "code": "ErrorAccessDenied", "message": "no" } });
        assert!(confirmed(vec![refused], &top).is_err());
        // A folder answered without its parent is no verdict either.
        let mut bare = answer(0, 200, "R");
        bare.body = json!({ "id": "x" });
        assert!(confirmed(vec![bare], &top).is_err());
    }
}
