//! The write round trip over Graph: one contact, tagged as exsync tags what it writes, made in
//! the mailbox's contact sync folder, read back by its tag and deleted, each call timed.

use std::time::Instant;

use exsync_graph::mapping::{tag_filter, write_contact};
use exsync_graph::{GraphClient, GraphRequest};
use http::Method;
use serde_json::{json, Value};

use super::test_contact::{TestContact, ROUND_TRIP};
use super::{Outcome, Step};
use crate::connect::graph::{enc, seg};

/// `stored`: the id of the folder the passes sync into, which its user may have renamed or
/// moved; without one the folder is `sync_folder` under Contacts, made as the first pass would.
pub(super) async fn round_trip(
    client: &GraphClient,
    user: &str,
    sync_folder: &str,
    stored: Option<&str>,
) -> Step {
    let started = Instant::now();
    let name = format!("{ROUND_TRIP} ({user})");
    let path = format!("/users/{}", seg(user));
    let fail = |step: Step, seen: String| {
        let mut step = step.saw(seen).took(started);
        step.outcome = Outcome::Fail;
        step
    };
    let step = Step::new(name, Outcome::Pass);
    let found = match stored {
        Some(id) => Ok(id.to_owned()),
        None => folder(client, &path, sync_folder).await,
    };
    let folder = match found {
        Ok(id) => id,
        Err(e) => {
            return fail(step, format!("finding Contacts/{sync_folder}: {e}"))
                .fix("the app needs Contacts.ReadWrite on this mailbox (see the scope step)")
        }
    };
    let test = TestContact::new();
    let tag = &test.tag;
    let mut normalized = test.contact.clone();
    normalized.normalize();
    let collection = format!("{path}/contactFolders/{}/contacts", seg(&folder));
    let t = Instant::now();
    let created = client
        .send(
            GraphRequest::new(Method::POST, collection.clone())
                .json(write_contact(&normalized, Some(tag))),
        )
        .await;
    let id = match created
        .as_ref()
        .map(|r| r.body.get("id").and_then(Value::as_str).map(str::to_owned))
    {
        Ok(Some(id)) => id,
        Ok(None) => return fail(step, "Graph answered the create without an id".into()),
        Err(e) => {
            return fail(
                step,
                format!("creating a contact in Contacts/{sync_folder}: {e}"),
            )
            .fix("the app needs Contacts.ReadWrite on this mailbox (see the scope step)")
        }
    };
    let mut step = step.saw(format!(
        "created a contact tagged {tag} in Contacts/{sync_folder} of {user} ({} ms)",
        t.elapsed().as_millis()
    ));
    let t = Instant::now();
    let found = client
        .get(&format!(
            "{collection}?$filter={}&$select=id",
            enc(&tag_filter(tag))
        ))
        .await;
    let same = found.as_ref().ok().and_then(|body| {
        body.get("value").and_then(Value::as_array).map(|items| {
            items
                .iter()
                .any(|i| i.get("id").and_then(Value::as_str) == Some(id.as_str()))
        })
    });
    match (same, found) {
        (Some(true), _) => {
            step = step.saw(format!(
                "read it back by its tag ({} ms)",
                t.elapsed().as_millis()
            ));
        }
        (_, Err(e)) => step = fail(step, format!("reading it back: {e}")),
        _ => {
            step = fail(step, "it could not be found again by its tag".into())
                .fix("Graph does not filter on exsync's tag property here; a pass could not find the items it wrote");
        }
    }
    let t = Instant::now();
    match client
        .send(GraphRequest::new(
            Method::DELETE,
            format!("{path}/contacts/{}", seg(&id)),
        ))
        .await
    {
        Ok(_) => step = step.saw(format!("deleted it ({} ms)", t.elapsed().as_millis())),
        Err(e) => {
            step = fail(step, format!("deleting it: {e}")).fix(test.leftover_fix(sync_folder, user))
        }
    }
    step.took(started)
}

/// The contact sync folder's id, made when it is missing, as the first pass would.
async fn folder(
    client: &GraphClient,
    path: &str,
    name: &str,
) -> Result<String, exsync_graph::Error> {
    let listed = client
        .collect(
            &format!("{path}/contactFolders?$select=id,displayName"),
            &[],
        )
        .await?;
    let existing = listed.items.iter().find_map(|f| {
        f.get("displayName")
            .and_then(Value::as_str)
            .filter(|n| n.eq_ignore_ascii_case(name))
            .and(f.get("id").and_then(Value::as_str))
            .map(str::to_owned)
    });
    if let Some(id) = existing {
        return Ok(id);
    }
    let made = client
        .send(
            GraphRequest::new(Method::POST, format!("{path}/contactFolders"))
                .json(json!({ "displayName": name })),
        )
        .await?;
    Ok(made
        .body
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}
