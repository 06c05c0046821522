//! The connector against the Salesforce simulator: auth, the change cursor, writes with
//! per-item failures, token refresh, limits, retries and mapping round trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use common::Harness;
use exsync_core::plan::Change;
use exsync_core::{
    Address, AddressKind, Attendee, AttendeeKind, Contact, CrmId, Day, Event, EventTime, ItemId,
    Pattern, PhoneKind, Record, Recurrence, RecurrenceEnd, ShowAs,
};
use exsync_salesforce::{
    AuthConfig, ChangeCursor, Error, NewRecord, SalesforceClient, Scope, Secret, SyncObject,
};
use serde_json::{json, Value};

fn contact(first: &str, last: &str, email: &str) -> Contact {
    Contact {
        first_name: first.into(),
        last_name: last.into(),
        emails: if email.is_empty() {
            vec![]
        } else {
            vec![email.into()]
        },
        ..Contact::default()
    }
}

fn new<T>(record: T, owner: Option<&str>) -> NewRecord<T> {
    NewRecord {
        external_key: None,
        owner_id: owner.map(str::to_owned),
        record,
    }
}

/// Reads every page from `cursor` on; returns the changes and the final cursor.
async fn drain(
    client: &SalesforceClient,
    object: SyncObject,
    scope: &Scope,
    cursor: &ChangeCursor,
) -> (Vec<Change>, ChangeCursor) {
    let mut cursor = cursor.clone();
    let mut out = Vec::new();
    loop {
        let batch = client.read_changes(object, scope, &cursor).await.unwrap();
        out.extend(batch.changes.into_iter().map(|c| c.change));
        cursor = batch.cursor;
        if !batch.more {
            return (out, cursor);
        }
    }
}

fn upserted_ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(item) => Some(item.id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

fn deleted_ids(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { id } => Some(id.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn jwt_bearer_and_client_credentials_log_in() {
    let h = Harness::start().await;
    let users = h.client().users().await.unwrap();
    let integration = users
        .iter()
        .find(|u| u.username == h.sim.info.integration_user.username)
        .unwrap();
    assert_eq!(integration.profile, "System Administrator");
    assert!(integration.active);

    let mut config = h.config();
    config.auth = AuthConfig::ClientCredentials {
        client_id: h.sim.info.client_id.clone(),
        client_secret: Secret::new(h.sim.info.client_secret.clone()),
    };
    let client = SalesforceClient::new(config.clone()).unwrap();
    assert!(client.users().await.unwrap().len() >= 3);

    config.auth = AuthConfig::ClientCredentials {
        client_id: h.sim.info.client_id.clone(),
        client_secret: Secret::new("wrong"),
    };
    let err = SalesforceClient::new(config)
        .unwrap()
        .users()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Auth { error, .. } if error == "invalid_client"),
        "{err}"
    );
    // The secret never shows up in what we print.
    assert!(!format!("{err} {err:?}").contains(&h.sim.info.client_secret));

    let err = SalesforceClient::new(h.config_for("nobody@exsync-sim.test"))
        .unwrap()
        .users()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
}

#[tokio::test]
async fn change_cursor_reports_creates_updates_and_deletes_once() {
    let h = Harness::start().await;
    // Salesforce stamps have whole seconds. Reading only stamps at least a second old means a
    // later write can never land on the cursor's stamp with a smaller Id and be skipped.
    let mut config = h.config();
    config.settle = std::time::Duration::from_secs(1);
    let client = SalesforceClient::new(config).unwrap();
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    let alice = h.user_id("alice");
    let bob = h.user_id("bob");
    let scope = Scope {
        owner_ids: vec![alice.clone()],
        ..Scope::default()
    };

    let written = client
        .create_contacts(&[
            new(contact("Ada", "Lovelace", "ada@example.test"), Some(&alice)),
            new(contact("Alan", "Turing", "alan@example.test"), Some(&alice)),
            new(contact("Bob's", "Contact", ""), Some(&bob)),
        ])
        .await
        .unwrap();
    assert!(
        written.iter().all(|o| o.is_ok() && o.version.is_some()),
        "{written:?}"
    );
    let ids: Vec<String> = written.iter().map(|o| o.id.clone().unwrap().0).collect();

    settle().await;
    let (changes, cursor) = drain(
        &client,
        SyncObject::Contact,
        &scope,
        &ChangeCursor::default(),
    )
    .await;
    assert_eq!(
        upserted_ids(&changes),
        ids[..2].to_vec(),
        "only alice's contacts, in stamp order"
    );
    // The version read is the SystemModstamp the write reported: an echo is recognisable.
    if let Change::Upsert(item) = &changes[0] {
        assert_eq!(item.version, written[0].version);
    }

    settle().await;
    let (nothing, cursor) = drain(&client, SyncObject::Contact, &scope, &cursor).await;
    assert!(nothing.is_empty(), "{nothing:?}");

    let mut turing = contact("Alan", "Turing", "alan@example.test");
    turing.title = "Mathematician".into();
    let updated = client
        .update_contacts(&[(CrmId::new(ids[1].clone()), turing)])
        .await
        .unwrap();
    // Stamps have whole seconds: an update in the same second keeps the stamp, which is
    // why the cursor's tie-break and settle delay exist.
    assert!(updated[0].is_ok() && updated[0].version.is_some());
    let deleted = client
        .delete_records(&[CrmId::new(ids[0].clone())])
        .await
        .unwrap();
    assert!(deleted[0].is_ok());
    let created = client
        .create_contacts(&[new(
            contact("Grace", "Hopper", "grace@example.test"),
            Some(&alice),
        )])
        .await
        .unwrap();

    settle().await;
    let (changes, cursor) = drain(&client, SyncObject::Contact, &scope, &cursor).await;
    assert_eq!(
        upserted_ids(&changes),
        vec![ids[1].clone(), created[0].id.clone().unwrap().0]
    );
    assert_eq!(deleted_ids(&changes), vec![ids[0].clone()]);
    let Change::Upsert(item) = &changes[0] else {
        panic!()
    };
    assert_eq!(item.fields["title"], json!("Mathematician"));

    settle().await;
    let (nothing, _) = drain(&client, SyncObject::Contact, &scope, &cursor).await;
    assert!(
        nothing.is_empty(),
        "a second read repeats nothing: {nothing:?}"
    );
}

#[tokio::test]
async fn equal_stamps_are_neither_skipped_nor_repeated_across_pages() {
    let h = Harness::start().await;
    let stamp = (Utc::now() - Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    let records: Vec<Value> = (0..7)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("Same{i}"), "SystemModstamp": stamp}))
        .collect();
    let seeded = h.control.seed(&json!({"records": records})).await;
    let mut expected: Vec<String> = seeded["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();

    let mut config = h.config();
    config.page_size = 3;
    let client = SalesforceClient::new(config).unwrap();
    let scope = Scope::default();
    let mut cursor = ChangeCursor::default();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let batch = client
            .read_raw_changes(SyncObject::Contact, &scope, &cursor)
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            batch
                .records
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned()),
        );
        cursor = batch.cursor;
        if !batch.more {
            break;
        }
    }
    assert_eq!(seen, expected, "every record once, in Id order");
    assert!(pages >= 3, "paged: {pages}");
    assert_eq!(
        cursor.last_id.as_deref(),
        expected.last().map(String::as_str)
    );
}

#[tokio::test]
async fn an_expired_session_is_refreshed_without_an_error() {
    let h = Harness::start().await;
    let client = h.client();
    client.users().await.unwrap();
    assert_eq!(h.control.expire_tokens().await, 1);
    client.users().await.unwrap();
    assert_eq!(
        h.counter("POST oauth2/token").await,
        2,
        "logged in again exactly once"
    );
}

#[tokio::test]
async fn the_limit_reserve_pauses_cleanly_and_loses_nothing() {
    let h = Harness::start().await;
    let mut config = h.config();
    config.limit_reserve = 5;
    let client = SalesforceClient::new(config).unwrap();
    let written = client
        .create_contacts(&[
            new(contact("A", "One", ""), None),
            new(contact("B", "Two", ""), None),
        ])
        .await
        .unwrap();
    assert!(written.iter().all(|o| o.is_ok()));
    let usage = client.api_usage().unwrap();
    assert!(usage.used >= 1 && usage.max == 100_000);

    // Leave 7 calls: a couple more go through, then the connector stops on its own.
    h.control
        .set_limits(&json!({"max": usage.used + 7, "used": usage.used}))
        .await;
    let scope = Scope::default();
    let cursor = ChangeCursor::default();
    let mut paused = None;
    for _ in 0..10 {
        match client
            .read_changes(SyncObject::Contact, &scope, &cursor)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                paused = Some(e);
                break;
            }
        }
    }
    let err = paused.expect("the reserve stops the connector");
    assert!(err.is_pause(), "{err}");
    let Error::LimitReserved { used, max, reserve } = err else {
        panic!()
    };
    assert_eq!(reserve, 5);
    assert!(
        max - used <= 5 && max - used >= 1,
        "stopped before the org ran dry: {used}/{max}"
    );
    let org = h.control.limits().await;
    assert!(org["used"].as_u64().unwrap() < org["max"].as_u64().unwrap());

    // The org's own hard limit reads as the same pause.
    h.control.set_limits(&json!({"exhaust": true})).await;
    let unreserved = h.client();
    let err = unreserved.users().await.unwrap_err();
    assert!(err.is_pause(), "{err}");

    // Once the allowance is back, the untouched cursor still yields everything.
    h.control
        .set_limits(&json!({"used": 0, "max": 100000}))
        .await;
    assert!(
        client.users().await.unwrap_err().is_pause(),
        "still paused until the usage is re-read"
    );
    assert_eq!(client.refresh_api_usage().await.unwrap().used, 0);
    let (changes, _) = drain(&client, SyncObject::Contact, &scope, &cursor).await;
    assert_eq!(upserted_ids(&changes).len(), 2);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let h = Harness::start().await;
    let client = h.client();
    client.users().await.unwrap();

    h.control.faults(&json!({"fail_next": 2})).await;
    assert!(client.users().await.unwrap().len() >= 3);
    assert_eq!(h.counter("fault.503").await, 2);

    h.control.faults(&json!({"drop_next": 2})).await;
    assert!(client.users().await.unwrap().len() >= 3);
    assert_eq!(h.counter("fault.dropped").await, 2);

    // A keyed create survives a dropped connection without duplicating.
    h.control.faults(&json!({"drop_next": 1})).await;
    let item = NewRecord {
        external_key: Some("ews-1".into()),
        owner_id: None,
        record: contact("Kay", "Keyed", ""),
    };
    let outcome = client.create_contacts(&[item]).await.unwrap();
    assert!(outcome[0].is_ok() && outcome[0].created, "{outcome:?}");
    let found = client
        .query_all("SELECT Id FROM Contact WHERE LastName = 'Keyed'")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);

    // Retries are bounded.
    let mut config = h.config();
    config.max_retries = 2;
    let impatient = SalesforceClient::new(config).unwrap();
    impatient.users().await.unwrap();
    h.control.reset_counters().await;
    h.control.faults(&json!({"error_rate": 1.0})).await;
    let err = impatient.users().await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 503, code, .. } if code == "SERVER_UNAVAILABLE"),
        "{err}"
    );
    assert_eq!(h.counter("fault.503").await, 3, "one try and two retries");
    h.control.faults(&json!({})).await;
}

#[tokio::test]
async fn invalid_records_fail_alone_and_the_rest_is_written() {
    let h = Harness::start().await;
    let client = h.client();
    // An address of 94 characters: valid, so it is sent, but longer than the 80 Salesforce's
    // Email field holds. (One that is no address at all never leaves the connector.)
    let too_long = format!("{}@{}.example.test", "a".repeat(60), "b".repeat(20));
    let outcomes = client
        .create_contacts(&[
            new(contact("Good", "One", "one@example.test"), None),
            new(contact("Bad", "Address", &too_long), None),
            new(contact("Good", "Two", "two@example.test"), None),
            new(contact("Only", "", ""), None),
        ])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    assert_eq!(
        outcomes[1].error.as_ref().unwrap().code,
        "INVALID_EMAIL_ADDRESS"
    );
    assert_eq!(
        outcomes[3].error.as_ref().unwrap().code,
        "REQUIRED_FIELD_MISSING"
    );
    assert!(outcomes[1].id.is_none());
    let stored = client
        .query_all("SELECT Id, SystemModstamp FROM Contact")
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    let stamp_of = |id: &CrmId| {
        stored.iter().find(|r| r["Id"] == id.as_str()).unwrap()["SystemModstamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        outcomes[0].version.as_deref(),
        Some(stamp_of(outcomes[0].id.as_ref().unwrap()).as_str())
    );

    let at = |h: u32| EventTime::At(Utc.with_ymd_and_hms(2031, 5, 6, h, 0, 0).unwrap());
    let backwards = Event::new("Backwards", at(11), at(10));
    let fine = Event::new("Fine", at(10), at(11));
    let outcomes = client
        .create_events(&[new(backwards, None), new(fine, None)])
        .await
        .unwrap();
    assert_eq!(outcomes[0].error.as_ref().unwrap().code, "INVALID_RECORD");
    assert!(outcomes[1].is_ok());

    // A record that does not map reads as an Invalid change with the reason.
    h.control.seed(&json!({"records": [{"attributes": {"type": "Event"}, "Subject": "Hourly", "StartDateTime": "2031-05-06T10:00:00Z",
            "DurationInMinutes": 30, "IsRecurrence2": true, "Recurrence2PatternText": "RRULE:FREQ=HOURLY;INTERVAL=2"}]}),
    )
    .await;
    let (changes, _) = drain(
        &client,
        SyncObject::Event,
        &Scope::default(),
        &ChangeCursor::default(),
    )
    .await;
    let invalid: Vec<&String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Invalid { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(invalid.len(), 1, "{changes:?}");
    assert!(invalid[0].contains("HOURLY"), "{}", invalid[0]);
    assert_eq!(upserted_ids(&changes).len(), 1);
}

#[tokio::test]
async fn contacts_and_events_round_trip() {
    let h = Harness::start().await;
    let client = h.client();
    let mut full = Contact {
        first_name: "Grace".into(),
        middle_name: "Brewster".into(),
        last_name: "Hopper".into(),
        emails: vec!["grace@navy.test".into()],
        company: "US Navy".into(),
        title: "Rear Admiral".into(),
        department: "Computing".into(),
        notes: "Found a moth.\nTaped it in the log.".into(),
        birthday: NaiveDate::from_ymd_opt(1906, 12, 9),
        ..Contact::default()
    };
    for (kind, number) in [
        (PhoneKind::Business, "+1 202 555 0100"),
        (PhoneKind::Mobile, "+1 202 555 0101"),
        (PhoneKind::Home, "+1 202 555 0102"),
        (PhoneKind::Other, "+1 202 555 0103"),
        (PhoneKind::BusinessFax, "+1 202 555 0104"),
        (PhoneKind::Assistant, "+1 202 555 0105"),
    ] {
        full.phones.insert(kind, number.into());
    }
    full.addresses.insert(
        AddressKind::Business,
        Address {
            street: "1 Navy Way\nBuilding 2".into(),
            city: "Arlington".into(),
            state: "VA".into(),
            postal_code: "22202".into(),
            country: "USA".into(),
        },
    );
    full.addresses.insert(
        AddressKind::Other,
        Address {
            city: "New York".into(),
            ..Address::default()
        },
    );
    let minimal = contact("", "Lamarr", "");
    let written = client
        .create_contacts(&[new(full.clone(), None), new(minimal.clone(), None)])
        .await
        .unwrap();
    assert!(written.iter().all(|o| o.is_ok()), "{written:?}");

    let attendee_contact = client
        .create_contacts(&[new(contact("Katherine", "Johnson", "kj@nasa.test"), None)])
        .await
        .unwrap();
    assert!(attendee_contact[0].is_ok());

    let at =
        |d: u32, h: u32, m: u32| EventTime::At(Utc.with_ymd_and_hms(2031, 6, d, h, m, 0).unwrap());
    let mut timed = Event::new("Design review", at(2, 9, 0), at(2, 10, 30));
    timed.location = "Room 4".into();
    timed.body = "Agenda:\n- cursor\n- limits".into();
    timed.private = true;
    timed.show_as = ShowAs::Free;
    timed.reminder_minutes = Some(15);
    timed.attendees = vec![Attendee {
        email: "kj@nasa.test".into(),
        name: "Katherine Johnson".into(),
        kind: AttendeeKind::Required,
    }];
    let all_day = Event::new(
        "Offsite",
        EventTime::Date(NaiveDate::from_ymd_opt(2031, 6, 3).unwrap()),
        EventTime::Date(NaiveDate::from_ymd_opt(2031, 6, 5).unwrap()),
    );
    let mut series = Event::new("Standup", at(2, 7, 0), at(2, 7, 15));
    series.time_zone = "Europe/Berlin".into();
    series.recurrence = Some(Recurrence {
        pattern: Pattern::Weekly {
            interval: 1,
            days: vec![Day::Monday, Day::Wednesday],
            first_day_of_week: Day::Monday,
        },
        start_date: NaiveDate::from_ymd_opt(2031, 6, 2).unwrap(),
        end: RecurrenceEnd::Until(NaiveDate::from_ymd_opt(2031, 8, 29).unwrap()),
        deleted: Default::default(),
        modified: Vec::new(),
    });
    let mut all_day_series = Event::new(
        "Payday",
        EventTime::Date(NaiveDate::from_ymd_opt(2031, 6, 15).unwrap()),
        EventTime::Date(NaiveDate::from_ymd_opt(2031, 6, 16).unwrap()),
    );
    all_day_series.recurrence = Some(Recurrence {
        pattern: Pattern::AbsoluteMonthly {
            interval: 1,
            day_of_month: 15,
        },
        start_date: NaiveDate::from_ymd_opt(2031, 6, 15).unwrap(),
        end: RecurrenceEnd::Count(12),
        deleted: Default::default(),
        modified: Vec::new(),
    });
    let events = [timed, all_day, series, all_day_series];
    let news: Vec<NewRecord<Event>> = events.iter().map(|e| new(e.clone(), None)).collect();
    let written_events = client.create_events(&news).await.unwrap();
    assert!(
        written_events
            .iter()
            .all(|o| o.is_ok() && o.warnings.is_empty()),
        "{written_events:?}"
    );

    let (changes, _) = drain(
        &client,
        SyncObject::Contact,
        &Scope::default(),
        &ChangeCursor::default(),
    )
    .await;
    for (original, outcome) in [&full, &minimal].into_iter().zip(&written) {
        let item = changes
            .iter()
            .find_map(|c| match c {
                Change::Upsert(item)
                    if Some(&item.id) == outcome.id.clone().map(ItemId::Crm).as_ref() =>
                {
                    Some(item)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(item.fields, original.to_fields(), "contact round trip");
        assert_eq!(item.version, outcome.version);
    }

    let (changes, _) = drain(
        &client,
        SyncObject::Event,
        &Scope::default(),
        &ChangeCursor::default(),
    )
    .await;
    for (original, outcome) in events.iter().zip(&written_events) {
        let item = changes
            .iter()
            .find_map(|c| match c {
                Change::Upsert(item)
                    if Some(&item.id) == outcome.id.clone().map(ItemId::Crm).as_ref() =>
                {
                    Some(item)
                }
                other => {
                    assert!(!matches!(other, Change::Invalid { .. }), "{other:?}");
                    None
                }
            })
            .unwrap();
        assert_eq!(
            item.fields,
            original.to_fields(),
            "event round trip: {}",
            original.subject
        );
    }

    // Dropping an attendee removes its relation.
    let mut timed = events[0].clone();
    timed.attendees.clear();
    let id = written_events[0].id.clone().unwrap();
    let updated = client.update_events(&[(id.clone(), timed)]).await.unwrap();
    assert!(updated[0].is_ok());
    let relations = client
        .query_all(&format!(
            "SELECT Id FROM EventRelation WHERE EventId = '{}'",
            id.as_str()
        ))
        .await
        .unwrap();
    assert!(relations.is_empty());
}

#[tokio::test]
async fn a_cursor_older_than_the_delete_log_reconciles_ids() {
    let h = Harness::start().await;
    let client = h.client();
    let written = client
        .create_contacts(&[
            new(contact("Keep", "Me", ""), None),
            new(contact("Lose", "Me", ""), None),
        ])
        .await
        .unwrap();
    let (_, cursor) = drain(
        &client,
        SyncObject::Contact,
        &Scope::default(),
        &ChangeCursor::default(),
    )
    .await;
    client
        .delete_records(&[written[1].id.clone().unwrap()])
        .await
        .unwrap();

    // The org's clock moves 16 days on: its delete log no longer reaches the cursor.
    h.control
        .clock(&json!({"advance_seconds": 16 * 24 * 3600}))
        .await;
    let batch = client
        .read_changes(SyncObject::Contact, &Scope::default(), &cursor)
        .await
        .unwrap();
    let live = batch.live_ids.expect("a full reconciliation ran");
    assert_eq!(live, BTreeSet::from([written[0].id.clone().unwrap()]));

    // A cursor the connector itself knows to be too old reconciles without asking getDeleted.
    h.control.clock(&json!({"offset_seconds": 0})).await;
    let stale = ChangeCursor {
        deletes_checked: Some(Utc::now() - Duration::days(20)),
        ..batch.cursor.clone()
    };
    h.control.reset_counters().await;
    let batch = client
        .read_changes(SyncObject::Contact, &Scope::default(), &stale)
        .await
        .unwrap();
    assert!(batch.live_ids.is_some());
    assert_eq!(h.counter("GET sobjects/deleted").await, 0);
    assert!(batch.cursor.deletes_checked.unwrap() > Utc::now() - Duration::minutes(1));
}

#[tokio::test]
async fn a_record_given_to_another_owner_is_out_of_scope() {
    let h = Harness::start().await;
    let mut config = h.config();
    config.settle = std::time::Duration::from_secs(1);
    let client = SalesforceClient::new(config).unwrap();
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    let alice = h.user_id("alice");
    let bob = h.user_id("bob");
    let written = client
        .create_contacts(&[new(contact("Moved", "Away", ""), Some(&alice))])
        .await
        .unwrap();
    let id = written[0].id.clone().unwrap();
    let scope = Scope {
        owner_ids: vec![alice.clone()],
        report_out_of_scope: true,
        ..Scope::default()
    };
    settle().await;
    let (changes, cursor) = drain(
        &client,
        SyncObject::Contact,
        &scope,
        &ChangeCursor::default(),
    )
    .await;
    assert_eq!(upserted_ids(&changes), vec![id.0.clone()]);

    let mut owner = serde_json::Map::new();
    owner.insert("OwnerId".into(), json!(bob));
    let moved = client
        .update_sobjects("Contact", &[(id.clone(), owner)])
        .await
        .unwrap();
    assert!(moved[0].is_ok());
    settle().await;
    let (changes, _) = drain(&client, SyncObject::Contact, &scope, &cursor).await;
    assert_eq!(
        changes,
        vec![Change::OutOfScope {
            id: ItemId::Crm(id.clone())
        }]
    );

    // Without the option the move is simply not seen.
    let narrow = Scope {
        owner_ids: vec![alice],
        ..Scope::default()
    };
    let (changes, _) = drain(&client, SyncObject::Contact, &narrow, &cursor).await;
    assert!(changes.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn an_update_writes_only_the_fields_that_changed() {
    let h = Harness::start().await;
    let client = h.client();
    let mut original = contact("Ada", "Lovelace", "ada@example.test");
    original.notes = "kept by the CRM".into();
    let created = client
        .create_contacts(&[new(original, None)])
        .await
        .unwrap();
    let id = created[0].id.clone().unwrap();
    // The merged record knows nothing of the notes (not synced): only the title is written.
    let mut merged = contact("Ada", "Lovelace", "ada@example.test");
    merged.title = "Countess".into();
    let changed = vec!["title".to_owned()];
    let outcomes = client
        .update_contacts_changed(&[(id.clone(), merged, Some(changed.as_slice()))])
        .await
        .unwrap();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    let stored = client
        .query_all(&format!(
            "SELECT Title, Description FROM Contact WHERE Id = '{}'",
            id.as_str()
        ))
        .await
        .unwrap();
    assert_eq!(stored[0]["Title"], "Countess");
    assert_eq!(stored[0]["Description"], "kept by the CRM");
}

/// An org with more synced users than a query can name: the query reads every owner and the
/// records of owners who do not sync are still left out, as when the query names them.
#[tokio::test]
async fn a_scope_with_more_owners_than_a_query_names_reads_only_theirs() {
    let h = Harness::start().await;
    let mut config = h.config();
    config.settle = std::time::Duration::from_secs(1);
    let client = SalesforceClient::new(config).unwrap();
    let alice = h.user_id("alice");
    let bob = h.user_id("bob");
    let written = client
        .create_contacts(&[
            new(contact("Ada", "Lovelace", ""), Some(&alice)),
            new(contact("Bob's", "Contact", ""), Some(&bob)),
        ])
        .await
        .unwrap();
    let ada = written[0].id.clone().unwrap();
    // Alice and many users with no records, Bob left out.
    let mut owner_ids: Vec<String> = (0..exsync_salesforce::MAX_OWNERS_IN_QUERY + 50)
        .map(|i| format!("005{i:015}"))
        .collect();
    owner_ids.push(alice.clone());
    let scope = Scope {
        owner_ids,
        ..Scope::default()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (changes, _) = drain(
        &client,
        SyncObject::Contact,
        &scope,
        &ChangeCursor::default(),
    )
    .await;
    assert_eq!(upserted_ids(&changes), vec![ada.0.clone()], "{changes:?}");
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::OutOfScope { .. })),
        "{changes:?}"
    );
}
