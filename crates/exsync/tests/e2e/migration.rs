//! Moving from Lightning Sync: mailboxes hold plain copies of every CRM contact and event (as
//! Lightning Sync left them, without exsync's tag), people have edited some since on either
//! side, and exsync's first sync must link everything without a duplicate, keep every edit
//! (each field from the record modified more recently), call none of it a conflict, and leave
//! the next pass idle.

use exsync_testkit::cli::sync_summaries;
use std::path::Path;
use std::time::Duration;

use crate::{on_each_backend, MASTER_KEY};
use exsync_core::{ItemKind, Side};
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{crm_contact, event, Lab, Seed};
use serde_json::json;

/// Past the second both sides stamp modification times with, and the CRM connector's
/// last-second hold-back.
const TICK: Duration = Duration::from_millis(1100);

const USERS: usize = 2;

const SEED: Seed = Seed {
    crm_contacts: 6,
    crm_events: 4,
    exchange_contacts: 0,
    exchange_events: 0,
    invalid_record: false,
};

/// Runs `exsync sync` to its end and returns its summary lines, one per user.
async fn sync(config: &Path) -> Vec<String> {
    tokio::time::sleep(TICK).await;
    let config = config.to_owned();
    let lines = tokio::task::spawn_blocking(move || {
        sync_summaries(env!("CARGO_BIN_EXE_exsync"), &config, MASTER_KEY)
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), USERS, "a summary per user: {lines:?}");
    lines
}

on_each_backend!(a_first_sync_over_lightning_sync_mailboxes_links_everything_and_keeps_every_edit);

async fn a_first_sync_over_lightning_sync_mailboxes_links_everything_and_keeps_every_edit(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path(), USERS, backend))
        .await
        .unwrap();
    lab.seed(&SEED).await.unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();

    tokio::time::sleep(TICK).await;
    let copied = lab.fill_as_lightning_sync().await.unwrap();
    let seeded = USERS * (SEED.crm_contacts + SEED.crm_events);
    assert_eq!(
        copied, seeded,
        "every CRM record has its Lightning Sync copy"
    );

    // Since Lightning Sync stopped: in Outlook a department and an event's room change, in
    // the CRM a title and another event's room.
    tokio::time::sleep(TICK).await;
    let now = chrono::Utc::now();
    let subject = |u, i| event("CRM", u, i, now).unwrap().subject;
    let mut edits = Vec::new();
    for (u, user) in lab.users.iter().enumerate() {
        let outlook = crm_contact(u, 1).last_name;
        let crm = crm_contact(u, 2).last_name;
        let department = format!("Outlook dept {u}");
        let title = format!("CRM title {u}");
        lab.edit(Side::Exchange, user, ItemKind::Contact, &outlook, |f| {
            f.insert("department".into(), json!(department));
        })
        .await
        .unwrap();
        lab.edit(Side::Crm, user, ItemKind::Contact, &crm, |f| {
            f.insert("title".into(), json!(title));
        })
        .await
        .unwrap();
        let (outlook_event, crm_event) = (subject(u, 1), subject(u, 2));
        let room = |side: &str| format!("{side} room {u}");
        lab.edit(Side::Exchange, user, ItemKind::Event, &outlook_event, |f| {
            f.insert("location".into(), json!(room("Outlook")));
        })
        .await
        .unwrap();
        lab.edit(Side::Crm, user, ItemKind::Event, &crm_event, |f| {
            f.insert("location".into(), json!(room("CRM")));
        })
        .await
        .unwrap();
        edits.extend([
            (u, ItemKind::Contact, outlook, "department", department),
            (u, ItemKind::Contact, crm, "title", title),
            (
                u,
                ItemKind::Event,
                outlook_event,
                "location",
                room("Outlook"),
            ),
            (u, ItemKind::Event, crm_event, "location", room("CRM")),
        ]);
    }

    for line in sync(&config).await {
        assert!(
            line.contains("created 0 ") && line.contains(" conflicts 0 "),
            "the first sync links what Lightning Sync left, copies nothing and finds no \
             conflict: {line}"
        );
    }
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert_eq!(
        (check.pairs, check.crm_records, check.exchange_items),
        (seeded, seeded, seeded),
        "one pair per record, no duplicate on either side"
    );
    for (u, kind, name, field, value) in &edits {
        let user = &lab.users[*u];
        let on_crm = lab.crm_record(user, *kind, name).await.unwrap();
        let in_outlook = match kind {
            ItemKind::Contact | ItemKind::Event => {
                lab.exchange_item(user, *kind, name).await.unwrap()
            }
        };
        for (side, fields) in [("CRM", &on_crm.fields), ("Outlook", &in_outlook.fields)] {
            assert_eq!(
                fields.get(*field),
                Some(&json!(value)),
                "{kind} {name}: the edit of {field} is missing in {side}"
            );
        }
    }

    for line in sync(&config).await {
        assert!(
            line.ends_with("created 0 updated 0 deleted 0 conflicts 0 failures 0"),
            "the pass after the first sync is idle: {line}"
        );
    }
}
