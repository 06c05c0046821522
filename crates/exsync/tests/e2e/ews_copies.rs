//! The EWS mailbox side's answer, after a crash, about the copies creates may have made:
//! found by the CRM id they carry in the sync folder (present), in Deleted Items or
//! Recoverable Items (deleted) or nowhere (never), one answer per origin in order, against
//! the Exchange simulator; every request sent is checked against Microsoft's schema.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use exsync_core::plan::{Change, WriteResult};
use exsync_core::{
    Contact, CrmId, Event, EventTime, ExchangeId, Fields, ItemId, ItemKind, Record, UserKey,
};
use exsync_engine::connect::ews::{Endpoint, ExchangeConnection};
use exsync_engine::sync::sides::{CopyEvidence, MailboxSide, Write};
use exsync_ews::{Credentials, EwsClient, EwsConfig, Resolve};
use exsync_sim::exchange::{ExchangeSim, ExchangeSimOptions};

/// Before any item of the test was created: every tagged item counts.
const EARLIER: chrono::DateTime<chrono::Utc> = chrono::DateTime::<chrono::Utc>::MIN_UTC;

const USER: &str = "user1@contoso.test";

struct Mailbox {
    _sim: ExchangeSim,
    trace: tempfile::TempDir,
    _dir: tempfile::TempDir,
    client: Arc<EwsClient>,
    url: url::Url,
    side: ExchangeConnection,
}

impl Mailbox {
    async fn start() -> Mailbox {
        let dir = tempfile::tempdir().unwrap();
        let sim = ExchangeSim::start(ExchangeSimOptions::new(dir.path().join("exchange")))
            .await
            .unwrap();
        let info = &sim.info;
        let addr: SocketAddr = format!("127.0.0.1:{}", sim.port()).parse().unwrap();
        let trace = tempfile::tempdir().unwrap();
        let mut config = EwsConfig::new(Credentials::new(
            info["service_account"]["username"].as_str().unwrap(),
            info["service_account"]["password"].as_str().unwrap(),
        ));
        config.ca_file = Some(PathBuf::from(info["ca_cert"].as_str().unwrap()));
        config.resolve = Resolve::new().with("mail.contoso.test", addr);
        config.trace_dir = Some(trace.path().to_path_buf());
        config.retry.base_delay = Duration::from_millis(20);
        let url = url::Url::parse(info["ews_url_by_name"].as_str().unwrap()).unwrap();
        let client = EwsClient::new(config).unwrap();
        let side = ExchangeConnection::new(client.clone(), Endpoint::Configured(url.clone()));
        side.prepare(&user()).await.unwrap();
        Mailbox {
            _sim: sim,
            trace,
            _dir: dir,
            client,
            url,
            side,
        }
    }

    /// Creates tagged copies through the side, as a pass does; their new ids, in order.
    async fn create(&self, kind: ItemKind, records: &[(&str, Fields)]) -> Vec<ExchangeId> {
        let origins: Vec<ItemId> = records
            .iter()
            .map(|(crm, _)| ItemId::Crm(CrmId::new(*crm)))
            .collect();
        let writes: Vec<Write<'_>> = records
            .iter()
            .zip(&origins)
            .map(|((_, fields), origin)| Write::Create { fields, origin })
            .collect();
        self.side
            .write(&user(), kind, &writes)
            .await
            .unwrap()
            .into_iter()
            .map(|result| match result {
                WriteResult::Done {
                    id: ItemId::Exchange(id),
                    ..
                } => id,
                other => panic!("create failed: {other:?}"),
            })
            .collect()
    }

    /// DeleteItem with the given DeleteType, sent as any EWS client would.
    async fn delete(&self, id: &ExchangeId, delete_type: &str) {
        let mut w = exsync_ews::XmlWriter::new();
        w.open("m:DeleteItem", &[("DeleteType", delete_type)])
            .open("m:ItemIds", &[])
            .empty("t:ItemId", &[("Id", id.as_str())])
            .close("m:ItemIds")
            .close("m:DeleteItem");
        let envelope = exsync_ews::testing::envelope(USER, &w.finish());
        let reply = self
            .client
            .http()
            .post(&self.url, &envelope, &[])
            .await
            .unwrap();
        let text = reply.text();
        assert_eq!(reply.status, 200, "{text}");
        assert!(text.contains(r#"ResponseClass="Success""#), "{text}");
    }

    /// The sync folder's cursor as of now.
    async fn cursor(&self) -> String {
        let mut cursor = None;
        loop {
            let page = self
                .side
                .changes_page(&user(), ItemKind::Contact, cursor.as_deref())
                .await
                .unwrap();
            cursor = Some(page.cursor);
            if page.last {
                return cursor.unwrap();
            }
        }
    }

    async fn find(&self, kind: ItemKind, origins: &[ItemId]) -> Vec<CopyEvidence> {
        self.find_since(kind, origins, EARLIER).await
    }

    /// The side's answer counting only items created at or after `since`.
    async fn find_since(
        &self,
        kind: ItemKind,
        origins: &[ItemId],
        since: chrono::DateTime<chrono::Utc>,
    ) -> Vec<CopyEvidence> {
        let answers = self
            .side
            .find_copies(&user(), kind, origins, since)
            .await
            .unwrap();
        assert_eq!(answers.len(), origins.len(), "{answers:?}");
        answers
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        // Every request the side sent, the searches by tag among them, is schema-valid.
        if !std::thread::panicking() {
            exsync_testkit::schema::validate_requests(self.trace.path());
        }
    }
}

fn user() -> UserKey {
    UserKey::from_email(USER)
}

fn contact(name: &str) -> Fields {
    let mut c = Contact {
        first_name: name.into(),
        last_name: "Copy".into(),
        emails: vec![format!("{}@example.test", name.to_ascii_lowercase())],
        ..Contact::default()
    };
    c.normalize();
    c.to_fields()
}

fn crm(id: &str) -> ItemId {
    ItemId::Crm(CrmId::new(id))
}

fn exchange(id: &ExchangeId) -> ItemId {
    ItemId::Exchange(id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_present_deleted_and_never_in_order() {
    let mb = Mailbox::start().await;
    let special = "003<&\"'>x";
    let ids = mb
        .create(
            ItemKind::Contact,
            &[
                ("003A00000000001", contact("Present")),
                ("003A00000000002", contact("Moved")),
                ("003A00000000003", contact("Purged")),
                ("003A00000000004", contact("Soft")),
                (special, contact("Special")),
            ],
        )
        .await;
    let before = mb.cursor().await;
    mb.delete(&ids[1], "MoveToDeletedItems").await;
    mb.delete(&ids[2], "HardDelete").await;
    mb.delete(&ids[3], "SoftDelete").await;

    // Whichever the delete type, the sync folder's cursor reports a deletion, and the moved
    // copies do not come back as changes of the folder.
    let page = mb
        .side
        .changes_page(&user(), ItemKind::Contact, Some(&before))
        .await
        .unwrap();
    assert!(page.last && page.upserts.is_empty(), "{page:?}");
    let mut deleted = page.deleted.clone();
    deleted.sort();
    let mut expected = ids[1..4].to_vec();
    expected.sort();
    assert_eq!(deleted, expected);

    let origins = vec![
        crm("003A00000000003"),
        crm("003A00000000001"),
        crm("003A0000000000X"),
        exchange(&ids[0]),
        crm("003A00000000002"),
        crm(special),
        crm("003A00000000004"),
        // The same origin twice gets the same answer twice.
        crm("003A00000000001"),
    ];
    let answers = mb.find(ItemKind::Contact, &origins).await;

    // Present: exactly what the side's fetch reads, tag included.
    let fetched = mb
        .side
        .fetch(
            &user(),
            ItemKind::Contact,
            &[ids[0].clone(), ids[4].clone()],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    let Change::Upsert(item) = &fetched[0] else {
        panic!("{fetched:?}")
    };
    assert_eq!(item.origin, Some(crm("003A00000000001")));
    assert_eq!(answers[1], CopyEvidence::Present(fetched[0].clone()));
    assert_eq!(answers[7], answers[1]);
    // A CRM id with XML specials goes out escaped and matches only itself.
    assert_eq!(answers[5], CopyEvidence::Present(fetched[1].clone()));
    let Change::Upsert(item) = &fetched[1] else {
        panic!("{fetched:?}")
    };
    assert_eq!(item.origin, Some(crm(special)));

    // Hard-deleted and never created: no copy anywhere.
    assert_eq!(answers[0], CopyEvidence::Never);
    assert_eq!(answers[2], CopyEvidence::Never);
    // Not a CRM record: nothing is tagged with it.
    assert_eq!(answers[3], CopyEvidence::Unknown);

    // Moved to Deleted Items, and soft-deleted into Recoverable Items: deleted, under the id
    // the item has there (the one it was created with no longer finds it).
    for (answer, old) in [(&answers[4], &ids[1]), (&answers[6], &ids[3])] {
        let CopyEvidence::Deleted(ItemId::Exchange(now)) = answer else {
            panic!("{answers:?}")
        };
        assert_ne!(now, old);
        let gone = mb
            .side
            .fetch(&user(), ItemKind::Contact, std::slice::from_ref(old))
            .await
            .unwrap()
            .into_iter()
            .map(|read| read.change)
            .collect::<Vec<_>>();
        assert!(matches!(gone[0], Change::Deleted { .. }), "{gone:?}");
    }
}

/// More origins than one request asks for: the search goes out in groups, and the answers
/// still line up with the origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_origins_are_searched_in_groups_in_order() {
    let mb = Mailbox::start().await;
    let records: Vec<(String, Fields)> = (0..7)
        .map(|i| (format!("003B{:011}", i * 20), contact(&format!("N{i}"))))
        .collect();
    let borrowed: Vec<(&str, Fields)> = records
        .iter()
        .map(|(id, fields)| (id.as_str(), fields.clone()))
        .collect();
    let ids = mb.create(ItemKind::Contact, &borrowed).await;
    mb.delete(&ids[6], "MoveToDeletedItems").await;
    let origins: Vec<ItemId> = (0..130).map(|i| crm(&format!("003B{i:011}"))).collect();
    let answers = mb.find(ItemKind::Contact, &origins).await;
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            CopyEvidence::Present(Change::Upsert(item)) if i % 20 == 0 && i < 120 => {
                assert_eq!(item.id, exchange(&ids[i / 20]));
                assert_eq!(item.origin, Some(origins[i].clone()));
            }
            CopyEvidence::Deleted(_) if i == 120 => {}
            CopyEvidence::Never if i % 20 != 0 => {}
            other => panic!("origin {i}: {other:?}"),
        }
    }
}

/// Events: the calendar is the kind's folder; a contact tagged with the same id is not a
/// copy of an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_the_calendar_and_deleted_items() {
    let mb = Mailbox::start().await;
    let start = chrono::Utc::now() + chrono::Duration::days(3);
    let start = start - chrono::Duration::nanoseconds(start.timestamp_subsec_nanos() as i64);
    let event = |subject: &str| {
        Event::new(
            subject,
            EventTime::At(start),
            EventTime::At(start + chrono::Duration::hours(1)),
        )
        .to_fields()
    };
    let ids = mb
        .create(
            ItemKind::Event,
            &[
                ("00U000000000001", event("Kept")),
                ("00U000000000002", event("Binned")),
            ],
        )
        .await;
    mb.create(ItemKind::Contact, &[("00U000000000003", contact("Other"))])
        .await;
    mb.delete(&ids[1], "MoveToDeletedItems").await;
    let answers = mb
        .find(
            ItemKind::Event,
            &[
                crm("00U000000000002"),
                crm("00U000000000003"),
                crm("00U000000000001"),
            ],
        )
        .await;
    let fetched = mb
        .side
        .fetch(&user(), ItemKind::Event, std::slice::from_ref(&ids[0]))
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    assert!(
        matches!(&answers[0], CopyEvidence::Deleted(ItemId::Exchange(id)) if *id != ids[1]),
        "{answers:?}"
    );
    assert_eq!(answers[1], CopyEvidence::Never);
    assert_eq!(answers[2], CopyEvidence::Present(fetched[0].clone()));
}

/// Only items created at or after the time asked count: an earlier create's copy, live or
/// deleted (it keeps its creation time in the deleted-items folders), is not this create's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_copies_created_since_the_time_asked_count() {
    let mb = Mailbox::start().await;
    let old = mb
        .create(
            ItemKind::Contact,
            &[
                ("003C00000000001", contact("OldGone")),
                ("003C00000000002", contact("OldLive")),
                ("003C00000000003", contact("First")),
            ],
        )
        .await;
    mb.delete(&old[0], "MoveToDeletedItems").await;
    mb.delete(&old[2], "MoveToDeletedItems").await;

    // Exchange keeps creation times to the second: the create is journaled a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = chrono::Utc::now();

    let new = mb
        .create(
            ItemKind::Contact,
            &[
                ("003C00000000003", contact("Second")),
                ("003C00000000004", contact("NewGone")),
                ("003C00000000005", contact("NewLive")),
            ],
        )
        .await;
    mb.delete(&new[0], "SoftDelete").await;
    mb.delete(&new[1], "MoveToDeletedItems").await;

    let origins = [
        crm("003C00000000001"),
        crm("003C00000000002"),
        crm("003C00000000003"),
        crm("003C00000000004"),
        crm("003C00000000005"),
    ];
    // Counting every copy, the earlier ones are there: deleted, and live.
    let all = mb.find(ItemKind::Contact, &origins).await;
    assert!(matches!(all[0], CopyEvidence::Deleted(_)), "{all:?}");
    assert!(matches!(all[1], CopyEvidence::Present(_)), "{all:?}");
    // Deleted Items is searched first: the earlier copy of the source copied twice.
    let CopyEvidence::Deleted(first) = &all[2] else {
        panic!("{all:?}")
    };

    let answers = mb.find_since(ItemKind::Contact, &origins, since).await;
    // Deleted before the create: an earlier copy's, so this create made none.
    assert_eq!(answers[0], CopyEvidence::Never);
    // Live, but made before the create: not its copy.
    assert_eq!(answers[1], CopyEvidence::Never);
    // Only the copy made since counts, soft-deleted, not the earlier one in Deleted Items.
    let CopyEvidence::Deleted(second) = &answers[2] else {
        panic!("{answers:?}")
    };
    assert_ne!(second, first);
    assert_ne!(
        *second,
        exchange(&new[0]),
        "the deleted copy's id is its new one"
    );
    assert!(
        matches!(answers[3], CopyEvidence::Deleted(_)),
        "{answers:?}"
    );
    let fetched = mb
        .side
        .fetch(&user(), ItemKind::Contact, &new[2..])
        .await
        .unwrap()
        .into_iter()
        .map(|read| read.change)
        .collect::<Vec<_>>();
    assert_eq!(answers[4], CopyEvidence::Present(fetched[0].clone()));
}
