//! Hostile data in the CRM, among ordinary records, through the real connectors and both
//! simulators, on premises and online: a contact with a megabyte name, one with control characters, one with an
//! address that is none, an event with a megabyte subject, one with 10,000 invitees, and CRM
//! users whose e-mail cannot name a mailbox. The ordinary records sync; the hostile ones are
//! cut to fit or left out, each with its reason in `exsync status`; the next pass writes
//! nothing.
//!
//! The other way, hostile text that people put in Outlook reaches the CRM cleaned or cut to
//! fit, each with its reason in `exsync status`, and markup and a right-to-left override
//! travel as plain text. On
//! premises the text arrives as EWS XML, which cannot carry control characters; online it
//! arrives as Graph JSON, which can.
//!
//! A name cut between the two halves of an emoji, which Graph and Salesforce send as a lone
//! surrogate escape (`"\ud83d"`), syncs with U+FFFD in its place instead of failing its page;
//! each simulator sends one for `exsync_sim::LONE_SURROGATE`.

use std::time::Duration;

use crate::MASTER_KEY;
use chrono::{Duration as Days, Timelike, Utc};
use exsync_core::{Contact, Event, EventTime, ItemId, ItemKind, MAX_LINE, MAX_TEXT};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::PassOptions;
use exsync_lab::{Lab, Seed, PROFILE};
use exsync_testkit::cli::Cli;
use serde_json::{json, Value};

const MEGABYTE: usize = 1 << 20;
const CROWD: usize = 10_000;

async fn settle() {
    // The CRM connector leaves records stamped within the last second for the next pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn seed(lab: &Lab, body: Value) -> Vec<String> {
    let answer = lab
        .crm_control(reqwest::Method::POST, "/seed", &body)
        .await
        .unwrap();
    answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["success"], true, "{r}");
            r["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn sf_time(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
}

/// An event as the CRM stores one, written past its validation.
fn crm_event(owner: &str, subject: &str, body: &str, day: i64) -> Value {
    let start = Utc::now() + Days::days(day);
    json!({
        "attributes": {"type": "Event"}, "unchecked": true, "OwnerId": owner,
        "Subject": subject, "Description": body,
        "StartDateTime": sf_time(start), "EndDateTime": sf_time(start + Days::minutes(30)),
        "ShowAs": "Busy",
    })
}

fn exsync_status(config: &std::path::Path, user: Option<&str>) -> String {
    let mut command = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .arg("status")
        .arg("--config")
        .arg(config);
    if let Some(user) = user {
        command = command.args(["--user", user]);
    }
    let output = command.env("EXSYNC_MASTER_KEY", MASTER_KEY).run();
    assert!(output.status.success(), "{}", output.text());
    output.stdout
}

async fn hostile_crm_data_is_cut_or_left_out_with_reasons_and_the_rest_syncs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path().join("lab"), 1, backend))
        .await
        .unwrap();
    let user = lab.users[0].clone();
    let owner = user.crm_id.as_str().to_owned();
    lab.seed(&Seed {
        crm_contacts: 4,
        crm_events: 3,
        exchange_contacts: 1,
        exchange_events: 1,
        invalid_record: false,
    })
    .await
    .unwrap();

    // The crowd: contacts of nobody who syncs, each invited to one event.
    let crowd_contacts: Vec<Value> = (0..CROWD)
        .map(|i| {
            json!({"attributes": {"type": "Contact"}, "unchecked": true,
                   "LastName": format!("Guest{i}"), "Email": format!("guest{i}@crowd.test")})
        })
        .collect();
    let guests = seed(&lab, json!({ "records": crowd_contacts })).await;
    let ids = seed(
        &lab,
        json!({ "records": [
            {"attributes": {"type": "Contact"}, "unchecked": true, "OwnerId": owner,
             "FirstName": "N".repeat(MEGABYTE), "LastName": "Hostile-Huge"},
            {"attributes": {"type": "Contact"}, "unchecked": true, "OwnerId": owner,
             "FirstName": "Ctrl\u{0}\u{7}", "LastName": "Hostile-Ctrl",
             "Title": "Chief\u{1b}[31m Buyer", "Description": "line\u{0} one\r\nline two"},
            {"attributes": {"type": "Contact"}, "unchecked": true, "OwnerId": owner,
             "LastName": "Hostile-Mail", "Email": "not an address@customer.test"},
            crm_event(&owner, &"S".repeat(MEGABYTE), &"B".repeat(MEGABYTE), 3),
            crm_event(&owner, "Hostile crowd", "", 4),
        ]}),
    )
    .await;
    let crowd_event = ids[4].clone();
    let relations: Vec<Value> = guests
        .iter()
        .map(|guest| {
            json!({"attributes": {"type": "EventRelation"}, "unchecked": true,
                   "EventId": crowd_event, "RelationId": guest,
                   "IsInvitee": true, "Status": "New"})
        })
        .collect();
    seed(&lab, json!({ "records": relations })).await;
    // CRM users whose address cannot name a mailbox, in the profile that syncs.
    lab.crm_control(
        reqwest::Method::POST,
        "/seed",
        &json!({"users": [
            {"username": "spaced@contoso.test.crm", "email": "a b@contoso.test", "profile": PROFILE},
            {"username": "fragment@contoso.test.crm", "email": "x@evil.test#.contoso.test", "profile": PROFILE},
        ]}),
    )
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    settle().await;

    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    assert!(first.users.iter().all(|u| u.backend == Some(backend)));
    assert_eq!(
        first.users.len(),
        1,
        "only the lab's user syncs: {first:#?}"
    );
    assert_eq!(first.skipped_crm_users.len(), 2, "{first:#?}");

    // The ordinary records synced, and both sides agree on everything paired.
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    for i in 0..4 {
        let name = exsync_lab::crm_contact(0, i).last_name;
        lab.exchange_item(&user, ItemKind::Contact, &name)
            .await
            .unwrap();
    }

    // What Exchange got of the hostile ones: cut to fit, cleaned, without the bad address.
    let huge = lab
        .exchange_item(&user, ItemKind::Contact, "Hostile-Huge")
        .await
        .unwrap();
    assert_eq!(huge.fields["first_name"], "N".repeat(MAX_LINE));
    let ctrl = lab
        .exchange_item(&user, ItemKind::Contact, "Hostile-Ctrl")
        .await
        .unwrap();
    assert_eq!(ctrl.fields["first_name"], "Ctrl");
    assert_eq!(ctrl.fields["title"], "Chief[31m Buyer");
    assert_eq!(ctrl.fields["notes"], "line one\nline two");
    let mail = lab
        .exchange_item(&user, ItemKind::Contact, "Hostile-Mail")
        .await
        .unwrap();
    assert!(!mail.fields.contains_key("emails"), "{:?}", mail.fields);
    let subject = "S".repeat(MAX_LINE);
    let long = lab
        .exchange_item(&user, ItemKind::Event, &subject)
        .await
        .unwrap();
    assert_eq!(
        long.fields["body"].as_str().unwrap().chars().count(),
        MAX_TEXT
    );
    assert!(lab
        .exchange_item(&user, ItemKind::Event, "Hostile crowd")
        .await
        .is_err());
    // Nothing of a megabyte reached the status database.
    for pair in lab
        .syncer
        .store
        .load_pairs(&user.key, ItemKind::Contact)
        .unwrap()
        .into_iter()
        .chain(
            lab.syncer
                .store
                .load_pairs(&user.key, ItemKind::Event)
                .unwrap(),
        )
    {
        let size = serde_json::to_string(&pair.content).unwrap().len();
        assert!(size < 40_000, "a pair holds {size} bytes");
    }

    // Each reason is in the status, short.
    let detail = exsync_status(&config, Some(user.key.as_str()));
    for reason in [
        "first_name: 1048576 characters, cut to the first 255",
        "first_name: control characters removed",
        "title: control characters removed",
        "notes: control characters removed",
        "emails: \"not an address@customer.test\"",
        "subject: 1048576 characters, cut to the first 255",
        "body: 1048576 characters, cut to the first 32000",
        "10000 attendees, more than the 500 Exchange takes in one meeting",
    ] {
        assert!(
            detail.contains(reason),
            "`{reason}` missing from:\n{detail}"
        );
    }
    assert!(detail.len() < 10_000, "{} bytes of status", detail.len());
    let overview = exsync_status(&config, None);
    for reason in [
        "CRM users not synced (2):",
        "\"a b@contoso.test\"",
        "the part before `@` has ` `",
        "\"x@evil.test#.contoso.test\"",
        "the domain has `#`",
    ] {
        assert!(
            overview.contains(reason),
            "`{reason}` missing from:\n{overview}"
        );
    }

    // The CRM still holds what Exchange cannot: the next passes write nothing.
    settle().await;
    for _ in 0..2 {
        let again = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
        let writes: Vec<_> = again
            .users
            .iter()
            .map(|u| (u.user.clone(), u.counts))
            .collect();
        assert!(
            again
                .users
                .iter()
                .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
            "a later pass wrote: {writes:#?}"
        );
        assert_eq!(again.skipped_crm_users.len(), 2);
    }
    let waiting = lab.syncer.store.unresolved(&user.key).unwrap();
    // Three contacts and one event cut to fit, and the crowd left out.
    assert_eq!(waiting.len(), 5, "{waiting:#?}");
    assert!(waiting.iter().all(|w| w.occurrences >= 2), "{waiting:#?}");
}

crate::on_each_backend!(hostile_crm_data_is_cut_or_left_out_with_reasons_and_the_rest_syncs);

/// More than the CRM holds in a one-line field, and within what both simulators take.
const LONG_LINE: usize = 4_000;
/// More than the CRM holds in a description, and within what both simulators take.
const LONG_TEXT: usize = 100_000;
const MARKUP: &str = "<script>alert(1)</script> & <b>bold</b> &amp;";
const RTL: &str = "Hostile-\u{202e}txt.exe";

async fn hostile_outlook_data_reaches_the_crm_cleaned_or_cut_with_reasons(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path().join("lab"), 1, backend))
        .await
        .unwrap();
    let user = lab.users[0].clone();
    lab.seed(&Seed {
        crm_contacts: 2,
        exchange_contacts: 2,
        ..Seed::default()
    })
    .await
    .unwrap();
    let contact = |last: &str| Contact {
        last_name: last.into(),
        ..Contact::default()
    };
    let controls = Contact {
        first_name: "Ctrl\u{0}\u{7}\u{1b}x".into(),
        title: "Chief\u{1b}[31m Buyer".into(),
        ..contact("Hostile-Ctrl")
    };
    let long = Contact {
        company: "C".repeat(LONG_LINE),
        notes: format!("{MARKUP}\n{}", "N".repeat(LONG_TEXT)),
        ..contact(RTL)
    };
    for made in [&controls, &long] {
        lab.outlook_contact(&user, made).await.unwrap();
    }
    let start = (Utc::now() + Days::days(2)).with_nanosecond(0).unwrap();
    let mut event = Event::new(
        "<img src=x onerror=alert(1)>",
        EventTime::At(start),
        EventTime::At(start + Days::minutes(30)),
    );
    event.location = "Room\u{0}\u{8} 1".into();
    event.body = "B".repeat(LONG_TEXT);
    lab.outlook_event(&user, &event).await.unwrap();
    settle().await;

    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    crate::served_by(&lab, backend);
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);

    // The CRM got each of them, cleaned, cut to fit, and markup as the text it is.
    let ctrl = lab
        .crm_record(&user, ItemKind::Contact, "Hostile-Ctrl")
        .await
        .unwrap();
    assert_eq!(ctrl.fields["first_name"], "Ctrlx");
    assert_eq!(ctrl.fields["title"], "Chief[31m Buyer");
    let rtl = lab.crm_record(&user, ItemKind::Contact, RTL).await.unwrap();
    assert_eq!(rtl.fields["company"], "C".repeat(MAX_LINE));
    let notes = rtl.fields["notes"].as_str().unwrap();
    assert!(notes.starts_with(&format!("{MARKUP}\n")), "{notes:.80}");
    assert_eq!(notes.chars().count(), MAX_TEXT);
    let meeting = lab
        .crm_record(&user, ItemKind::Event, &event.subject)
        .await
        .unwrap();
    assert_eq!(meeting.fields["location"], "Room 1");
    assert_eq!(
        meeting.fields["body"].as_str().unwrap().chars().count(),
        MAX_TEXT
    );

    // Each reason is in the status, worded for the CRM. EWS XML cannot carry control
    // characters, so on premises Outlook's text reached exsync without them already.
    let cut = |field: &str, from: usize, to: usize| {
        format!("{field}: {from} characters, cut to the first {to}")
    };
    let long_notes = MARKUP.chars().count() + 1 + LONG_TEXT;
    let graph = backend == Backend::Graph;
    let mut cuts = vec![
        vec![
            cut("company", LONG_LINE, MAX_LINE),
            cut("notes", long_notes, MAX_TEXT),
        ],
        [
            graph.then(|| "location: control characters removed".to_owned()),
            Some(cut("body", LONG_TEXT, MAX_TEXT)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    ];
    if graph {
        cuts.push(vec![
            "first_name: control characters removed".to_owned(),
            "title: control characters removed".to_owned(),
        ]);
    }
    let reasons: Vec<String> = cuts
        .iter()
        .map(|notes| {
            format!(
                "synced without what Salesforce cannot hold: {}",
                notes.join("; ")
            )
        })
        .collect();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let detail = exsync_status(&config, Some(user.key.as_str()));
    for reason in &reasons {
        assert!(
            detail.contains(reason.as_str()),
            "`{reason}` missing from:\n{detail}"
        );
    }
    let waiting = lab.syncer.store.unresolved(&user.key).unwrap();
    assert_eq!(waiting.len(), reasons.len(), "{waiting:#?}");
    assert!(
        waiting.iter().all(|w| matches!(w.id, ItemId::Exchange(_))),
        "{waiting:#?}"
    );

    // What the CRM cannot hold stays in Outlook: the next passes write nothing.
    settle().await;
    for _ in 0..2 {
        let again = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
        let writes: Vec<_> = again
            .users
            .iter()
            .map(|u| (u.user.clone(), u.counts))
            .collect();
        assert!(
            again
                .users
                .iter()
                .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
            "a later pass wrote: {writes:#?}"
        );
    }
    let waiting = lab.syncer.store.unresolved(&user.key).unwrap();
    assert_eq!(waiting.len(), reasons.len(), "{waiting:#?}");
    assert!(waiting.iter().all(|w| w.occurrences >= 2), "{waiting:#?}");
}

crate::on_each_backend!(hostile_outlook_data_reaches_the_crm_cleaned_or_cut_with_reasons);

/// A first name cut between the two halves of an emoji, as each simulator sends it: `Ann`
/// then the lone escape `\ud83d`.
fn half_an_emoji() -> String {
    format!("Ann{}", exsync_sim::LONE_SURROGATE)
}

/// Asserts that the lab's next two passes write nothing.
async fn later_passes_write_nothing(lab: &Lab) {
    for _ in 0..2 {
        settle().await;
        let again = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
        assert_eq!(again.failed_users(), 0, "{again:#?}");
        let writes: Vec<_> = again
            .users
            .iter()
            .map(|u| (u.user.clone(), u.counts))
            .collect();
        assert!(
            again
                .users
                .iter()
                .all(|u| u.counts.created + u.counts.updated + u.counts.deleted == 0),
            "a later pass wrote: {writes:#?}"
        );
    }
}

/// A CRM answer whose contact name holds a lone surrogate escape no longer fails the page it
/// is on: the contact reaches the mailbox with U+FFFD where the broken character was, the
/// records around it sync, and nothing is written again.
async fn a_lone_surrogate_in_a_crm_answer_syncs_as_the_replacement_character(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(dir.path().join("lab"), 1, backend))
        .await
        .unwrap();
    let user = lab.users[0].clone();
    lab.seed(&Seed {
        crm_contacts: 3,
        exchange_contacts: 1,
        ..Seed::default()
    })
    .await
    .unwrap();
    seed(
        &lab,
        json!({ "records": [
            {"attributes": {"type": "Contact"}, "unchecked": true, "OwnerId": user.crm_id.as_str(),
             "FirstName": half_an_emoji(), "LastName": "Hostile-Half"},
        ]}),
    )
    .await;
    settle().await;

    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.users.len(), 1, "{first:#?}");
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    crate::served_by(&lab, backend);
    let half = lab
        .exchange_item(&user, ItemKind::Contact, "Hostile-Half")
        .await
        .unwrap();
    assert_eq!(half.fields["first_name"], "Ann\u{fffd}");
    for i in 0..3 {
        let name = exsync_lab::crm_contact(0, i).last_name;
        lab.exchange_item(&user, ItemKind::Contact, &name)
            .await
            .unwrap();
    }
    let name = exsync_lab::exchange_contact(0, 0).last_name;
    lab.crm_record(&user, ItemKind::Contact, &name)
        .await
        .unwrap();
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    later_passes_write_nothing(&lab).await;
    broken_characters_wait(&lab, &user, &["Hostile-Half"]);
}

crate::on_each_backend!(a_lone_surrogate_in_a_crm_answer_syncs_as_the_replacement_character);

/// The records named `names` (last names) wait for their text to be corrected, each with the
/// reason that half of a character came alone in its first name: the admin sees it in status
/// and the console.
fn broken_characters_wait(lab: &Lab, user: &exsync_lab::LabUser, names: &[&str]) {
    let waiting = lab.syncer.store.unresolved(&user.key).unwrap();
    let mut broken: Vec<&str> = waiting
        .iter()
        .filter(|w| {
            w.reason
                .contains("first_name: half of a character (such as an emoji cut short)")
        })
        .filter_map(|w| w.name.as_deref())
        .collect();
    broken.sort_unstable();
    let mut expected: Vec<String> = names.iter().map(|n| format!("Ann\u{fffd} {n}")).collect();
    expected.sort_unstable();
    assert_eq!(broken, expected, "{waiting:#?}");
    assert!(waiting.iter().all(|w| w.occurrences >= 2), "{waiting:#?}");
}

/// The same from Graph: a contact made in Outlook whose name Exchange Online sends with a lone
/// surrogate escape reaches the CRM with U+FFFD, and the records around it sync. Each client
/// warns with the endpoint it read, never the text.
#[test]
fn a_lone_surrogate_in_a_graph_answer_syncs_as_the_replacement_character() {
    let (logs, runtime, _guard) = exsync_testkit::logs::Captured::runtime(2);
    runtime.block_on(lone_surrogates_from_graph(logs));
}

async fn lone_surrogates_from_graph(logs: exsync_testkit::logs::Captured) {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(crate::lab_options(
        dir.path().join("lab"),
        1,
        Backend::Graph,
    ))
    .await
    .unwrap();
    let user = lab.users[0].clone();
    lab.seed(&Seed {
        crm_contacts: 1,
        exchange_contacts: 3,
        ..Seed::default()
    })
    .await
    .unwrap();
    // Made through the simulator's control API, whose answer the lab reads leniently: the
    // pass alone meets the broken text.
    let folder = lab
        .mailbox_folders(&user)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.name == "Salesforce_Sync")
        .expect("the lab's seed made the sync folder");
    lab.graph_control(
        reqwest::Method::POST,
        &format!(
            "/mailboxes/{}/contacts?folder={}",
            user.key.as_str(),
            folder.id
        ),
        &json!({"givenName": half_an_emoji(), "surname": "Hostile-Half"}),
    )
    .await
    .unwrap();
    seed(
        &lab,
        json!({ "records": [
            {"attributes": {"type": "Contact"}, "unchecked": true, "OwnerId": user.crm_id.as_str(),
             "FirstName": half_an_emoji(), "LastName": "Hostile-Half-Crm"},
        ]}),
    )
    .await;
    settle().await;

    let first = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    crate::served_by(&lab, Backend::Graph);
    let half = lab
        .crm_record(&user, ItemKind::Contact, "Hostile-Half")
        .await
        .unwrap();
    assert_eq!(half.fields["first_name"], "Ann\u{fffd}");
    let crm_half = lab
        .exchange_item(&user, ItemKind::Contact, "Hostile-Half-Crm")
        .await
        .unwrap();
    assert_eq!(crm_half.fields["first_name"], "Ann\u{fffd}");
    let warned: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("lone UTF-16 surrogate"))
        .collect();
    for side in ["Graph's answer", "Salesforce's answer"] {
        assert!(
            warned
                .iter()
                .any(|l| l.contains("WARN") && l.contains(side) && l.contains("endpoint=")),
            "no warning from {side}: {warned:#?}"
        );
    }
    assert!(
        warned.iter().all(|l| !l.contains("Ann")),
        "a warning holds the text: {warned:#?}"
    );
    for i in 0..3 {
        let name = exsync_lab::exchange_contact(0, i).last_name;
        lab.crm_record(&user, ItemKind::Contact, &name)
            .await
            .unwrap();
    }
    let name = exsync_lab::crm_contact(0, 0).last_name;
    lab.exchange_item(&user, ItemKind::Contact, &name)
        .await
        .unwrap();
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    later_passes_write_nothing(&lab).await;
    broken_characters_wait(&lab, &user, &["Hostile-Half", "Hostile-Half-Crm"]);
}
