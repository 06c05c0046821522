//! All-day events in a mailbox whose owner is not in UTC, on each backend: the owner's CRM
//! time zone (`TimeZoneSidKey`) and their mailbox are both Europe/Berlin. A CRM all-day event
//! lands in the mailbox as whole days in Berlin (so Outlook shows it on its days, not from
//! 01:00 to 01:00 across two), an all-day event made in Outlook in Berlin reaches the CRM on
//! its own dates, not the day before, and the next pass is idle.

use std::time::Duration;

use chrono::NaiveDate;
use exsync_core::{Event, EventTime, ItemKind, Record};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::{PassOptions, PassReport};
use exsync_lab::{Lab, LabUser};
use exsync_store::RunCounts;

use crate::fidelity::{crm_all_day, days_from_today, plus};
use serde_json::{json, Value};

const BERLIN: &str = "Europe/Berlin";
const BERLIN_WINDOWS: &str = "W. Europe Standard Time";

async fn pass(lab: &Lab) -> PassReport {
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    let report = lab.syncer.run_pass(&PassOptions::default()).await.unwrap();
    assert_eq!(report.failed_users(), 0, "{report:?}");
    report
}

/// An all-day event made in the user's Outlook in Berlin, through their backend.
async fn all_day_in_outlook(
    lab: &Lab,
    user: &LabUser,
    backend: Backend,
    subject: &str,
    first: NaiveDate,
    days: u32,
) {
    match backend {
        Backend::Ews => lab
            .all_day_in_outlook(user, subject, first, days, BERLIN)
            .await
            .unwrap(),
        Backend::Graph => {
            let info = &lab.graph_sim.as_ref().unwrap().info;
            let midnight = |d: NaiveDate| json!({"dateTime": format!("{d}T00:00:00"), "timeZone": BERLIN_WINDOWS});
            let event = json!({
                "subject": subject, "isAllDay": true,
                "start": midnight(first), "end": midnight(plus(first, u64::from(days))),
            });
            crate::hybrid::graph(info, user.key.as_str(), "calendar/events", Some(&event)).await;
        }
    }
}

/// Each all-day event of the user's calendar by subject: its first local day and whether it
/// covers whole days in Berlin, as the mailbox's owner sees it.
async fn as_seen_in_berlin(
    lab: &Lab,
    user: &LabUser,
    backend: Backend,
) -> Vec<(String, String, bool)> {
    match backend {
        Backend::Ews => {
            let view = lab
                .exchange_control(
                    reqwest::Method::POST,
                    "/calendar/view",
                    &json!({"mailbox": user.key.as_str()}),
                )
                .await
                .unwrap();
            assert_eq!(view["time_zone"], BERLIN, "{view:#}");
            view["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| {
                    (
                        item["subject"].as_str().unwrap().to_owned(),
                        item["start"].as_str().unwrap_or_default().to_owned(),
                        item["whole_days"] == json!(true),
                    )
                })
                .collect()
        }
        // Exchange Online keeps the zone an event was made in; an all-day event is whole days
        // in it, and Outlook shows it on those days to an owner in that zone.
        Backend::Graph => {
            let info = &lab.graph_sim.as_ref().unwrap().info;
            let events: Value = crate::hybrid::graph(
                info,
                user.key.as_str(),
                "calendar/events?$select=subject,isAllDay,start,originalStartTimeZone,originalEndTimeZone",
                None,
            )
            .await;
            events["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| {
                    (
                        event["subject"].as_str().unwrap().to_owned(),
                        event["start"]["dateTime"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        event["isAllDay"] == json!(true)
                            && event["originalStartTimeZone"] == BERLIN_WINDOWS
                            && event["originalEndTimeZone"] == BERLIN_WINDOWS,
                    )
                })
                .collect()
        }
    }
}

async fn crm_all_day_events_are_whole_days_in_the_owners_zone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path(), 1, backend);
    options.crm_key_pem = Some(crate::shared_key());
    options.time_zone = Some(BERLIN.into());
    let lab = Lab::start(options).await.unwrap();
    let user = &lab.users[0];

    let holiday = days_from_today(12);
    let fair = days_from_today(30);
    crm_all_day(
        &lab,
        user,
        &[("CRM holiday", holiday, 1), ("CRM trade fair", fair, 3)],
    )
    .await;
    let offsite = days_from_today(20);
    all_day_in_outlook(&lab, user, backend, "Outlook offsite", offsite, 2).await;

    let first = pass(&lab).await;
    assert_eq!(first.users[0].counts.created, 3, "{first:?}");
    assert!(
        first.users[0].notices.is_empty(),
        "{:?}",
        first.users[0].notices
    );

    // In the mailbox: the CRM's days, whole, in Berlin.
    let seen = as_seen_in_berlin(&lab, user, backend).await;
    for (subject, date) in [("CRM holiday", holiday), ("CRM trade fair", fair)] {
        let (_, start, whole) = seen
            .iter()
            .find(|(s, _, _)| s == subject)
            .unwrap_or_else(|| panic!("{subject} in the mailbox: {seen:?}"));
        assert!(whole, "{subject}: whole days in Berlin: {seen:?}");
        assert!(
            start.starts_with(&format!("{date}T00:00:00")),
            "{subject}: from {date} in Berlin: {seen:?}"
        );
    }
    // In the CRM: the Outlook event on its own days, not the day before.
    let record = lab
        .crm_record(user, ItemKind::Event, "Outlook offsite")
        .await
        .unwrap();
    let event = Event::from_fields(&record.fields).unwrap();
    assert_eq!(
        (event.start, event.end),
        (EventTime::Date(offsite), EventTime::Date(plus(offsite, 2)))
    );

    let second = pass(&lab).await;
    assert_eq!(
        second.users[0].counts,
        RunCounts::default(),
        "idle: {second:?}"
    );
}

crate::on_each_backend!(crm_all_day_events_are_whole_days_in_the_owners_zone);
