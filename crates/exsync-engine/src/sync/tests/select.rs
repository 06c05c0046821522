//! Events selected by their Outlook category, over whole passes: a CRM event's Outlook copy
//! carries the category and keeps syncing; an Outlook event that loses it stops syncing with
//! both copies kept; one that carries it again is linked to its CRM copy, never copied twice.

use chrono::{Duration, Utc};
use exsync_core::config::{Direction, EventSelect, KindRules};
use exsync_core::{Event, EventTime, ItemKind};
use serde_json::json;

use super::*;

const ANN: &str = "ann@example.com";

fn by_category() -> SyncConfiguration {
    let mut config = configuration(&[ANN]);
    config.contacts.direction = Direction::Off;
    config.events = KindRules {
        select: EventSelect::Category,
        ..KindRules::default_for(ItemKind::Event)
    };
    config
}

fn meeting(subject: &str, days: i64, categories: &[&str]) -> Fields {
    let start = Utc::now() + Duration::days(days);
    let mut e = Event::new(
        subject,
        EventTime::At(start),
        EventTime::At(start + Duration::hours(1)),
    );
    e.categories = categories.iter().map(|c| (*c).to_owned()).collect();
    e.to_fields()
}

impl World {
    fn events_in_crm(&self) -> Vec<Fields> {
        self.crm_records(0)
    }

    fn mailbox_id_of(&self, subject: &str) -> String {
        let boxes = self.mem.mailboxes.lock().unwrap();
        boxes[ANN]
            .records
            .iter()
            .find(|(_, r)| r.1["subject"] == json!(subject))
            .map(|(id, _)| id.clone())
            .unwrap()
    }
}

fn subjects(records: &[Fields]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|f| f["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn an_outlook_event_selected_again_is_linked_to_its_crm_copy_not_copied_twice() {
    let w = world_with(&[ANN], by_category());
    w.crm_create(0, meeting("From the CRM", 2, &[]));
    w.mailbox_create(ANN, meeting("Selected", 3, &["Salesforce"]));
    w.mailbox_create(ANN, meeting("Personal", 4, &[]));
    w.pass().await;
    assert_eq!(
        subjects(&w.events_in_crm()),
        ["From the CRM", "Selected"],
        "only the selected Outlook event reaches the CRM"
    );
    let copy = w.mailbox_id_of("From the CRM");
    assert_eq!(
        w.mem.mailboxes.lock().unwrap()[ANN].records[&copy].1["categories"],
        json!(["Salesforce"]),
        "the CRM event's Outlook copy carries the category"
    );

    // The category comes off: the event stops syncing and both copies stay.
    let selected = w.mailbox_id_of("Selected");
    w.mailbox_edit(ANN, &selected, "categories", json!([]));
    w.mailbox_edit(ANN, &selected, "location", json!("Room 1"));
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.deleted, 0);
    let crm = w.events_in_crm();
    assert_eq!(subjects(&crm), ["From the CRM", "Selected"]);
    assert!(crm
        .iter()
        .all(|f| f.get("location") != Some(&json!("Room 1"))));

    // It comes back, edited meanwhile: linked to the CRM copy, which takes the edit.
    w.mailbox_edit(ANN, &selected, "categories", json!(["Salesforce"]));
    w.mailbox_edit(ANN, &selected, "location", json!("Room 2"));
    w.pass().await;
    let crm = w.events_in_crm();
    assert_eq!(
        subjects(&crm),
        ["From the CRM", "Selected"],
        "no second CRM copy"
    );
    let selected_in_crm = crm
        .iter()
        .find(|f| f["subject"] == json!("Selected"))
        .unwrap();
    assert_eq!(selected_in_crm.get("location"), Some(&json!("Room 2")));

    // The CRM event's Outlook copy, unselected and selected again, is linked back too.
    w.mailbox_edit(ANN, &copy, "categories", json!([]));
    w.pass().await;
    w.mailbox_edit(ANN, &copy, "categories", json!(["Salesforce", "Blue"]));
    w.pass().await;
    assert_eq!(subjects(&w.events_in_crm()), ["From the CRM", "Selected"]);
    assert_eq!(w.mailbox(ANN).len(), 3, "no second Outlook copy either");
    let again = w.pass().await;
    let c = again.users[0].counts;
    assert_eq!((c.created, c.updated, c.deleted, c.failures), (0, 0, 0, 0));
}

#[tokio::test]
async fn a_crm_edit_while_the_outlook_event_lacks_the_category_makes_no_second_copy() {
    let w = world_with(&[ANN], by_category());
    let original = w.crm_create(0, meeting("From the CRM", 2, &[]));
    w.mailbox_create(ANN, meeting("Selected", 3, &["Salesforce"]));
    w.pass().await;
    let copy = w.mailbox_id_of("From the CRM");
    let selected = w.mailbox_id_of("Selected");
    for id in [&copy, &selected] {
        w.mailbox_edit(ANN, id, "categories", json!([]));
    }
    w.pass().await;

    // Both CRM events are edited while their Outlook events are unselected.
    let crm_copy = {
        let crm = w.mem.crm.lock().unwrap();
        crm.records
            .iter()
            .find(|(_, r)| r.1["subject"] == json!("Selected"))
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    for id in [&original, &crm_copy] {
        w.crm_edit(id, "location", json!("Moved"));
    }
    let report = w.pass().await;
    assert_eq!(report.users[0].counts.created, 0, "{:?}", report.users[0]);
    assert_eq!(
        w.mailbox(ANN).len(),
        2,
        "no second Outlook copy of either event"
    );
    assert!(
        w.mailbox(ANN)
            .iter()
            .all(|f| f.get("location") != Some(&json!("Moved"))),
        "the unselected events do not sync"
    );
}
