//! A measurement, not a check (run with `--ignored --nocapture`): 1000 contacts created, read
//! back through the cursor, updated and deleted against the simulator; prints requests and time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::sim::{Sim, SimOptions};
use exsync_core::{Contact, CrmId, ItemKind, Record};
use exsync_ews::{AuthMode, EwsClient, Update};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn thousand_contacts() {
    let sim = Sim::start(SimOptions::default());
    let client = EwsClient::new(sim.config(AuthMode::Ntlm, None)).unwrap();
    let mb = client.mailbox(&sim.allowed_mailbox(), sim.ews_url());
    let folder = mb.ensure_contacts_folder().await.unwrap();
    let records: Vec<_> = (0..1000)
        .map(|i| {
            let c = Contact {
                first_name: format!("F{i}"),
                last_name: format!("L{i}"),
                emails: vec![format!("p{i}@example.test")],
                ..Contact::default()
            };
            (CrmId::new(format!("003T{i:05}")), c.to_fields())
        })
        .collect();
    let t = Instant::now();
    let created: Vec<_> = mb
        .create(ItemKind::Contact, &folder, &records)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let create = t.elapsed();
    let t = Instant::now();
    let batch = mb.sync_all(ItemKind::Contact, &folder, None).await.unwrap();
    assert_eq!(batch.changes.len(), 1000);
    let sync = t.elapsed();
    let t = Instant::now();
    let updates: Vec<Update> = created
        .iter()
        .zip(&records)
        .map(|(item, (_, fields))| {
            let mut fields = fields.clone();
            fields.insert("title".into(), serde_json::json!("Buyer"));
            Update {
                item: item.clone(),
                fields,
                changed: vec!["title".into()],
            }
        })
        .collect();
    for r in mb.update(ItemKind::Contact, &updates).await.unwrap() {
        r.unwrap();
    }
    let update = t.elapsed();
    let t = Instant::now();
    let ids: Vec<_> = created.iter().map(|c| c.id.clone()).collect();
    for r in mb.delete(ItemKind::Contact, &ids).await.unwrap() {
        r.unwrap();
    }
    let delete = t.elapsed();
    let counters = sim.counters().await;
    println!(
        "1000 contacts over NTLM: create {create:?}, sync+read {sync:?}, update {update:?}, delete {delete:?}; requests {}",
        counters["requests_per_operation"]
    );
}
