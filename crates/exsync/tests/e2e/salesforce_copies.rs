//! The Salesforce side's answer, after a crash, about the copies creates may have made:
//! found by the Exchange id they carry, recycle bin included, one answer per origin in order.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Timelike;

use exsync_core::plan::Change;
use exsync_core::{Contact, CrmId, Event, EventTime, ExchangeId, ItemId, ItemKind};
use exsync_engine::connect::salesforce::SalesforceSide;
use exsync_engine::sync::sides::{CopyEvidence, CrmSide};
use exsync_salesforce::{NewRecord, SalesforceClient};
use exsync_sim::salesforce::{SalesforceSim, JWT_KEY_FILE};

/// Before any record of the test was created: every tagged record counts.
const EARLIER: chrono::DateTime<chrono::Utc> = chrono::DateTime::<chrono::Utc>::MIN_UTC;

struct Org {
    sim: SalesforceSim,
    _dir: tempfile::TempDir,
}

impl Org {
    async fn start() -> Org {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(JWT_KEY_FILE),
            exsync_testkit::keys::jwt_key_pem(),
        )
        .unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sim = SalesforceSim::start(dir.path(), addr).await.unwrap();
        Org { sim, _dir: dir }
    }

    fn client(&self) -> SalesforceClient {
        let mut config = super::salesforce_config(&self.sim.info);
        config.retry_base = Duration::from_millis(5);
        config.settle = Duration::ZERO;
        SalesforceClient::new(config).unwrap()
    }

    fn side(&self) -> SalesforceSide {
        SalesforceSide {
            client: self.client(),
        }
    }
}

fn exchange(id: &str) -> ItemId {
    ItemId::Exchange(ExchangeId::new(id))
}

/// Creates a contact tagged with `tag` the way the sync creates one; its id.
async fn tagged_contact(client: &SalesforceClient, tag: &str, last_name: &str) -> CrmId {
    let outcomes = client
        .create_contacts(&[NewRecord {
            external_key: Some(tag.to_owned()),
            owner_id: None,
            record: Contact {
                first_name: "Ada".into(),
                last_name: last_name.into(),
                ..Contact::default()
            },
        }])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    outcomes[0].id.clone().unwrap()
}

async fn delete(client: &SalesforceClient, id: &CrmId) {
    let outcomes = client
        .delete_records(std::slice::from_ref(id))
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
}

/// The record's id and last name when the answer is `Present` with an upsert.
fn present(evidence: &CopyEvidence) -> Option<(String, String)> {
    match evidence {
        CopyEvidence::Present(Change::Upsert(item)) => Some((
            item.id.as_str().to_owned(),
            item.fields
                .get("last_name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
        )),
        _ => None,
    }
}

#[tokio::test]
async fn copies_are_found_by_their_tag_live_deleted_or_never_in_the_order_asked() {
    let org = Org::start().await;
    let side = org.side();
    let client = &side.client;

    let live_tag = "AAMkAGI2+TG9/live==";
    // A tag with a quote and a backslash, written and then found through the quoting.
    let odd_tag = "AAMk'o\\b+/=";
    let gone_tag = "AAMkAGI2+TG9/gone==";
    let live = tagged_contact(client, live_tag, "Live").await;
    let odd = tagged_contact(client, odd_tag, "Odd").await;
    let gone = tagged_contact(client, gone_tag, "Gone").await;
    delete(client, &gone).await;

    let origins = [
        exchange(gone_tag),
        exchange("AAMkAGI2+never/="),
        exchange(odd_tag),
        // Would match every tagged record if pasted into the query unquoted.
        exchange("x' OR Exsync_Id__c != '"),
        exchange("x\\' OR Exsync_Id__c != \\'"),
        ItemId::Crm(CrmId::new("003000000000001AAA")),
        exchange(live_tag),
        // The tag in another case is another Exchange id.
        exchange(&live_tag.to_lowercase()),
    ];
    let answers = side
        .find_copies(ItemKind::Contact, &origins, EARLIER)
        .await
        .unwrap();
    assert_eq!(answers.len(), origins.len());
    assert_eq!(answers[0], CopyEvidence::Deleted(ItemId::Crm(gone.clone())));
    assert_eq!(answers[1], CopyEvidence::Never);
    assert_eq!(
        present(&answers[2]),
        Some((odd.as_str().to_owned(), "Odd".to_owned())),
        "{:?}",
        answers[2]
    );
    assert_eq!(answers[3], CopyEvidence::Never);
    assert_eq!(answers[4], CopyEvidence::Never);
    assert_eq!(answers[5], CopyEvidence::Unknown);
    assert_eq!(
        present(&answers[6]),
        Some((live.as_str().to_owned(), "Live".to_owned())),
        "{:?}",
        answers[6]
    );
    assert_eq!(answers[7], CopyEvidence::Never);

    // The copy as a fetch reads it: the same change, its origin and version included.
    let fetched = side
        .fetch(ItemKind::Contact, std::slice::from_ref(&live))
        .await
        .unwrap();
    assert_eq!(answers[6], CopyEvidence::Present(fetched[0].change.clone()));
    match &answers[6] {
        CopyEvidence::Present(Change::Upsert(item)) => {
            assert_eq!(item.origin, Some(exchange(live_tag)));
            assert!(item.version.is_some());
        }
        other => panic!("expected the live copy, got {other:?}"),
    }

    // Deleted after being found live: the same question now says so.
    delete(client, &live).await;
    let answers = side
        .find_copies(ItemKind::Contact, &[exchange(live_tag)], EARLIER)
        .await
        .unwrap();
    assert_eq!(answers, [CopyEvidence::Deleted(ItemId::Crm(live))]);
}

#[tokio::test]
async fn a_live_copy_wins_over_a_deleted_one_with_the_same_tag() {
    let org = Org::start().await;
    let side = org.side();
    let tag = "AAMkAGI2+again/==";
    let first = tagged_contact(&side.client, tag, "First").await;
    delete(&side.client, &first).await;
    let second = tagged_contact(&side.client, tag, "Second").await;
    assert_ne!(first, second, "the upsert made a new record");

    let answers = side
        .find_copies(ItemKind::Contact, &[exchange(tag)], EARLIER)
        .await
        .unwrap();
    assert_eq!(
        present(&answers[0]),
        Some((second.as_str().to_owned(), "Second".to_owned())),
        "{answers:?}"
    );
}

#[tokio::test]
async fn many_origins_are_answered_across_several_queries_in_order() {
    let org = Org::start().await;
    let side = org.side();
    // Exchange-sized ids, enough for more than one query.
    let tags: Vec<String> = (0..230)
        .map(|i| format!("AAMkAGI2{i:03}{}", "Tg+/".repeat(36)))
        .collect();
    let live = tagged_contact(&side.client, &tags[3], "Early").await;
    let late = tagged_contact(&side.client, &tags[215], "Late").await;
    delete(&side.client, &late).await;

    let origins: Vec<ItemId> = tags.iter().map(|t| exchange(t)).collect();
    let answers = side
        .find_copies(ItemKind::Contact, &origins, EARLIER)
        .await
        .unwrap();
    assert_eq!(answers.len(), tags.len());
    for (i, answer) in answers.iter().enumerate() {
        match i {
            3 => assert_eq!(
                present(answer),
                Some((live.as_str().to_owned(), "Early".to_owned()))
            ),
            215 => assert_eq!(*answer, CopyEvidence::Deleted(ItemId::Crm(late.clone()))),
            _ => assert_eq!(*answer, CopyEvidence::Never, "origin {i}"),
        }
    }
}

#[tokio::test]
async fn event_copies_are_looked_for_among_events() {
    let org = Org::start().await;
    let side = org.side();
    let tag = "AAMkAGI2+event/==";
    let start = chrono::Utc::now()
        .with_nanosecond(0)
        .expect("a whole second")
        + chrono::Duration::days(1);
    let outcomes = side
        .client
        .create_events(&[NewRecord {
            external_key: Some(tag.to_owned()),
            owner_id: None,
            record: Event {
                subject: "Review".into(),
                location: String::new(),
                body: String::new(),
                start: EventTime::At(start),
                end: EventTime::At(start + chrono::Duration::hours(1)),
                time_zone: String::new(),
                private: false,
                show_as: Default::default(),
                reminder_minutes: None,
                recurrence: None,
                organizer: None,
                attendees: Vec::new(),
                categories: Vec::new(),
            },
        }])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    let event = outcomes[0].id.clone().unwrap();

    let answers = side
        .find_copies(ItemKind::Event, &[exchange(tag)], EARLIER)
        .await
        .unwrap();
    match &answers[0] {
        CopyEvidence::Present(Change::Upsert(item)) => {
            assert_eq!(item.id, ItemId::Crm(event));
        }
        other => panic!("expected the event, got {other:?}"),
    }
    // A contact is not an event's copy.
    let answers = side
        .find_copies(ItemKind::Contact, &[exchange(tag)], EARLIER)
        .await
        .unwrap();
    assert_eq!(answers, [CopyEvidence::Never]);
}

#[tokio::test]
async fn only_copies_created_since_the_time_asked_count() {
    let org = Org::start().await;
    let side = org.side();
    let client = &side.client;
    let info = &org.sim.info;
    let control = exsync_testkit::sim::SalesforceControl::new(
        &info.control_url,
        &info.control_token,
        &info.ca_file,
    );

    // Before the create was journaled: copies of earlier creates, one deleted, one live, and
    // an earlier copy of a source copied again later.
    let old_gone_tag = "AAMkAGI2+old/gone==";
    let old_live_tag = "AAMkAGI2+old/live==";
    let again_tag = "AAMkAGI2+again/==";
    let old_gone = tagged_contact(client, old_gone_tag, "OldGone").await;
    delete(client, &old_gone).await;
    tagged_contact(client, old_live_tag, "OldLive").await;
    let first = tagged_contact(client, again_tag, "First").await;
    delete(client, &first).await;

    // Ten minutes on, the org's clock; the create is journaled halfway.
    control
        .clock(&serde_json::json!({"advance_seconds": 600}))
        .await;
    let since = chrono::Utc::now() + chrono::Duration::minutes(5);

    let new_gone_tag = "AAMkAGI2+new/gone==";
    let new_live_tag = "AAMkAGI2+new/live==";
    let new_gone = tagged_contact(client, new_gone_tag, "NewGone").await;
    delete(client, &new_gone).await;
    let new_live = tagged_contact(client, new_live_tag, "NewLive").await;
    let second = tagged_contact(client, again_tag, "Second").await;
    assert_ne!(first, second, "the upsert made a new record");
    delete(client, &second).await;

    let origins = [
        exchange(old_gone_tag),
        exchange(old_live_tag),
        exchange(again_tag),
        exchange(new_gone_tag),
        exchange(new_live_tag),
    ];
    // Counting every copy, the earlier ones are there: deleted, and live.
    let all = side
        .find_copies(ItemKind::Contact, &origins, EARLIER)
        .await
        .unwrap();
    assert_eq!(all[0], CopyEvidence::Deleted(ItemId::Crm(old_gone.clone())));
    assert!(present(&all[1]).is_some(), "{:?}", all[1]);

    let answers = side
        .find_copies(ItemKind::Contact, &origins, since)
        .await
        .unwrap();
    // Deleted before the create: an earlier copy's, so this create made none.
    assert_eq!(answers[0], CopyEvidence::Never);
    // Live, but made before the create: not its copy.
    assert_eq!(answers[1], CopyEvidence::Never);
    // Only the copy made since counts, not the earlier one with the same tag.
    assert_eq!(answers[2], CopyEvidence::Deleted(ItemId::Crm(second)));
    assert_eq!(answers[3], CopyEvidence::Deleted(ItemId::Crm(new_gone)));
    assert_eq!(
        present(&answers[4]),
        Some((new_live.as_str().to_owned(), "NewLive".to_owned())),
        "{:?}",
        answers[4]
    );
}
