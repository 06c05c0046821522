//! An all-day event exsync's EWS client writes for an owner in Berlin, read back by exchangelib
//! (`tests/interop/exchange/read_all_day.py`) from a mailbox whose zone is Berlin: all-day, on
//! the CRM's days, in Berlin's zone, and whole days as the owner's Outlook shows them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use chrono::NaiveDate;
use serde_json::{json, Value};

use common::sim::{Sim, SimOptions};
use exsync_core::zones::DayZone;
use exsync_core::{CrmId, Event, EventTime, ItemKind, Record};
use exsync_ews::{AuthMode, EwsClient, FolderRef};

const SUBJECT: &str = "Trade fair";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 8, d).unwrap()
}

/// What exchangelib makes of the item called [`SUBJECT`] in `mailbox`.
fn read_with_exchangelib(sim: &Sim, mailbox: &str) -> Value {
    let script = exsync_testkit::paths::workspace().join("tests/interop/exchange/read_all_day.py");
    let out = Command::new(exsync_testkit::paths::python())
        .arg(script)
        // The simulator's own URL (on 127.0.0.1): Python resolves no test host names.
        .arg(sim.info["ews_url"].as_str().unwrap())
        .arg(sim.ca())
        .arg(sim.username())
        .arg(sim.password())
        .arg(mailbox)
        .arg(SUBJECT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exchangelib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchangelib_reads_an_owners_all_day_event_on_its_days_in_berlin() {
    let sim = Sim::start(SimOptions::default());
    let mailbox = sim.allowed_mailbox();
    let (status, answer) = sim
        .control(
            "PUT",
            "/mailboxes/time_zone",
            Some(json!({"mailbox": mailbox, "time_zone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    let client = EwsClient::new(sim.config(AuthMode::Auto, None)).unwrap();
    let berlin = DayZone::from_iana("Europe/Berlin").unwrap();
    let mb = client
        .mailbox(&mailbox, sim.ews_url())
        .with_day_zone(berlin);
    // Three days, 1 to 3 August (the end day is exclusive).
    let event = Event::new(SUBJECT, EventTime::Date(day(1)), EventTime::Date(day(4)));
    let created = mb
        .create(
            ItemKind::Event,
            &FolderRef::distinguished("calendar"),
            &[(CrmId::new("00U000000000001"), event.to_fields())],
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let read = read_with_exchangelib(&sim, &mailbox);
    assert_eq!(
        read,
        json!({
            "is_all_day": true,
            "first_day": "2026-08-01",
            "last_day": "2026-08-03",
            "zone": "Europe/Berlin",
        })
    );
    let (_, view) = sim
        .control("POST", "/calendar/view", Some(json!({"mailbox": mailbox})))
        .await;
    assert_eq!(view["time_zone"], "Europe/Berlin", "{view:#}");
    let item = &view["items"][0];
    assert_eq!(item["start"], "2026-08-01T00:00:00", "{view:#}");
    assert_eq!(item["whole_days"], true, "{view:#}");
}
