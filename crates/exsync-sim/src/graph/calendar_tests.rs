//! The calendar store driven through `Call`s, as the front would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use http::Method;
use serde_json::{json, Value};

use super::*;
use crate::graph::call::{Prefer, Query};

const USER_URL: &str = "https://127.0.0.1:4443/v1.0/users/6f1c0c8e-0000-4000-8000-000000000001";
const CRM_ID: &str = "String {66f5a359-4659-4830-9070-00040ec6ac6e} Name CrmId";

#[derive(Default, Clone)]
struct Req {
    query: Vec<(String, String)>,
    zone: Option<String>,
    page: Option<usize>,
    if_match: Option<String>,
}

fn query_of(pairs: &[(String, String)]) -> Query {
    let mut q = Query::default();
    for (k, v) in pairs {
        match k.as_str() {
            "$select" => q.select = Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
            "$filter" => q.filter = Some(v.clone()),
            "$expand" => q.expand = Some(v.clone()),
            "$orderby" => q.orderby = Some(v.clone()),
            "$top" => q.top = v.parse().ok(),
            "$skip" => q.skip = v.parse().ok(),
            _ => {
                q.params.insert(k.clone(), v.clone());
            }
        }
    }
    q
}

fn send(cal: &mut Calendar, method: Method, path: &str, req: &Req, body: Option<Value>) -> Answer {
    let path: Vec<String> = path.split('/').map(str::to_owned).collect();
    let query = query_of(&req.query);
    let prefer = Prefer {
        max_page_size: req.page,
        time_zone: req.zone.clone(),
    };
    let call = Call {
        method: &method,
        path: &path,
        query: &query,
        prefer: &prefer,
        if_match: req.if_match.as_deref(),
        body: body.as_ref(),
        now: Utc::now(),
        user_url: USER_URL,
    };
    cal.handle(&call).expect("a calendar path")
}

fn get(cal: &mut Calendar, path: &str, query: &[(&str, &str)]) -> Answer {
    let req = Req {
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Req::default()
    };
    send(cal, Method::GET, path, &req, None)
}

fn post(cal: &mut Calendar, body: Value) -> Value {
    let answer = send(cal, Method::POST, "events", &Req::default(), Some(body));
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    answer.body.unwrap()
}

fn patch(cal: &mut Calendar, id: &str, body: Value) -> Answer {
    send(
        cal,
        Method::PATCH,
        &format!("events/{id}"),
        &Req::default(),
        Some(body),
    )
}

fn delete(cal: &mut Calendar, id: &str) -> Answer {
    send(
        cal,
        Method::DELETE,
        &format!("events/{id}"),
        &Req::default(),
        None,
    )
}

/// Follows a nextLink or deltaLink the store handed out.
fn follow(cal: &mut Calendar, link: &str, req: &Req) -> Answer {
    let rest = link.strip_prefix(USER_URL).unwrap().trim_start_matches('/');
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let req = Req {
        query: pairs,
        ..req.clone()
    };
    send(cal, Method::GET, &decode(path), &req, None)
}

fn message(answer: &Answer) -> String {
    answer.body.as_ref().unwrap()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn event(subject: &str, start: &str, end: &str, zone: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
    })
}

fn values(answer: &Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body.as_ref().unwrap()["value"]
        .as_array()
        .unwrap()
        .clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A weekly Monday 09:00–09:30 (W. Europe) series of `count` occurrences from 2026-03-02.
fn weekly(cal: &mut Calendar, count: u32) -> Value {
    let mut body = event(
        "Weekly",
        "2026-03-02T09:00:00",
        "2026-03-02T09:30:00",
        "W. Europe Standard Time",
    );
    body["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": count},
    });
    post(cal, body)
}

const MARCH: [(&str, &str); 2] = [
    ("startDateTime", "2026-03-01T00:00:00Z"),
    ("endDateTime", "2026-04-01T00:00:00Z"),
];

#[test]
fn the_primary_calendar_answers_under_every_alias() {
    let mut cal = Calendar::default();
    let one = get(&mut cal, "calendar", &[]);
    assert_eq!(one.status, 200);
    let body = one.body.unwrap();
    assert_eq!(body["isDefaultCalendar"], true);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id, calendar_id(USER_URL), "stable across calls");
    let list = values(&get(&mut cal, "calendars", &[]));
    assert_eq!(ids(&list), std::slice::from_ref(&id));
    assert_eq!(
        get(&mut cal, &format!("calendars/{id}"), &[]).body.unwrap()["id"],
        id
    );

    let answer = send(
        &mut cal,
        Method::POST,
        &format!("calendars/{id}/events"),
        &Req::default(),
        Some(event(
            "Via alias",
            "2026-03-02T09:00:00",
            "2026-03-02T10:00:00",
            "UTC",
        )),
    );
    assert_eq!(answer.status, 201);
    assert_eq!(values(&get(&mut cal, "calendar/events", &[])).len(), 1);
    assert_eq!(
        values(&get(
            &mut cal,
            &format!("calendars/{id}/calendarView"),
            &MARCH
        ))
        .len(),
        1
    );
    assert_eq!(
        get(&mut cal, "calendars/AAMkAnother=/events", &[]).status,
        404
    );
    let unknown = get(&mut cal, "events/AAMkA=/attachments", &[]);
    assert_eq!(unknown.status, 400);
    assert_eq!(
        message(&unknown),
        "Resource not found for the segment 'attachments'."
    );
    assert_eq!(
        send(&mut cal, Method::PUT, "events", &Req::default(), None).status,
        405
    );
    assert!(cal
        .handle(&Call {
            method: &Method::GET,
            path: &["contacts".to_owned()],
            query: &Query::default(),
            prefer: &Prefer::default(),
            if_match: None,
            body: None,
            now: Utc::now(),
            user_url: USER_URL,
        })
        .is_none());
}

#[test]
fn events_crud_with_etags_and_if_match() {
    let mut cal = Calendar::default();
    let mut body = event(
        "Review",
        "2026-03-02T09:00:00",
        "2026-03-02T10:00:00",
        "W. Europe Standard Time",
    );
    body["categories"] = json!(["Blue"]);
    body["showAs"] = json!("tentative");
    let created = post(&mut cal, body);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("AAMkA"));
    assert_eq!(created["type"], "singleInstance");
    assert_eq!(created["originalStartTimeZone"], "W. Europe Standard Time");
    assert_eq!(
        created["start"],
        json!({"dateTime": "2026-03-02T08:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(created["showAs"], "tentative");
    let etag = created["@odata.etag"].as_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("W/\"{}\"", created["changeKey"].as_str().unwrap())
    );
    assert!(created["iCalUId"]
        .as_str()
        .unwrap()
        .starts_with("040000008200E000"));
    assert!(created["createdDateTime"].as_str().unwrap().ends_with('Z'));

    let read = get(&mut cal, &format!("events/{id}"), &[]).body.unwrap();
    assert_eq!(read["subject"], "Review");

    let changed = patch(
        &mut cal,
        &id,
        json!({"subject": "Review 2", "importance": "high"}),
    );
    assert_eq!(changed.status, 200);
    let changed = changed.body.unwrap();
    assert_eq!(changed["subject"], "Review 2");
    assert_eq!(
        changed["categories"],
        json!(["Blue"]),
        "a PATCH keeps what it doesn't name"
    );
    assert_ne!(changed["@odata.etag"], etag);

    let stale = Req {
        if_match: Some(etag.clone()),
        ..Req::default()
    };
    let refused = send(
        &mut cal,
        Method::PATCH,
        &format!("events/{id}"),
        &stale,
        Some(json!({"subject": "x"})),
    );
    assert_eq!(refused.status, 412);
    assert_eq!(
        send(
            &mut cal,
            Method::DELETE,
            &format!("events/{id}"),
            &stale,
            None
        )
        .status,
        412
    );
    let current = Req {
        if_match: Some(changed["@odata.etag"].as_str().unwrap().to_owned()),
        ..Req::default()
    };
    assert_eq!(
        send(
            &mut cal,
            Method::DELETE,
            &format!("events/{id}"),
            &current,
            None
        )
        .status,
        204
    );
    assert_eq!(get(&mut cal, &format!("events/{id}"), &[]).status, 404);
    assert_eq!(delete(&mut cal, &id).status, 404);
}

#[test]
fn a_repeated_transaction_id_answers_the_first_event() {
    let mut cal = Calendar::default();
    let mut body = event("Once", "2026-03-02T09:00:00", "2026-03-02T10:00:00", "UTC");
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let first = post(&mut cal, body.clone());
    let second = post(&mut cal, body);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        first["transactionId"],
        "7E163156-7762-4BEB-A1C6-729EA81755A7"
    );
    assert_eq!(values(&get(&mut cal, "events", &[])).len(), 1);
}

#[test]
fn bad_bodies_are_refused_before_anything_is_stored() {
    let mut cal = Calendar::default();
    let mut unknown = event("x", "2026-03-02T09:00:00", "2026-03-02T10:00:00", "UTC");
    unknown["colour"] = json!("red");
    let answer = send(
        &mut cal,
        Method::POST,
        "events",
        &Req::default(),
        Some(unknown),
    );
    assert_eq!(answer.status, 400);
    assert!(message(&answer).contains("colour"));
    let mut wrong = event("x", "2026-03-02T09:00:00", "2026-03-02T10:00:00", "UTC");
    wrong["isReminderOn"] = json!("yes");
    assert_eq!(
        send(
            &mut cal,
            Method::POST,
            "events",
            &Req::default(),
            Some(wrong)
        )
        .status,
        400
    );
    let backwards = event("x", "2026-03-02T10:00:00", "2026-03-02T09:00:00", "UTC");
    assert_eq!(
        send(
            &mut cal,
            Method::POST,
            "events",
            &Req::default(),
            Some(backwards)
        )
        .status,
        400
    );
    let no_end =
        json!({"subject": "x", "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}});
    assert_eq!(
        send(
            &mut cal,
            Method::POST,
            "events",
            &Req::default(),
            Some(no_end)
        )
        .status,
        400
    );
    assert!(cal.events.is_empty());
}

#[test]
fn select_expand_and_filter_on_extended_properties() {
    let mut cal = Calendar::default();
    let mut tagged = event(
        "Tagged",
        "2026-03-02T09:00:00",
        "2026-03-02T10:00:00",
        "UTC",
    );
    tagged["singleValueExtendedProperties"] = json!([{"id": CRM_ID, "value": "003000000000001"}]);
    let tagged = post(&mut cal, tagged);
    assert!(
        tagged.get("singleValueExtendedProperties").is_none(),
        "only given when expanded"
    );
    post(
        &mut cal,
        event("Plain", "2026-03-03T09:00:00", "2026-03-03T10:00:00", "UTC"),
    );
    let id = tagged["id"].as_str().unwrap();

    let selected = get(
        &mut cal,
        &format!("events/{id}"),
        &[("$select", "subject,start")],
    )
    .body
    .unwrap();
    let mut keys: Vec<&str> = selected
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "@odata.context",
            "@odata.etag",
            "@odata.type",
            "id",
            "start",
            "subject"
        ]
    );
    assert_eq!(
        get(&mut cal, "events", &[("$select", "subjekt")]).status,
        400
    );

    let expand = format!("singleValueExtendedProperties($filter=id eq '{CRM_ID}')");
    let expanded = get(&mut cal, &format!("events/{id}"), &[("$expand", &expand)])
        .body
        .unwrap();
    assert_eq!(
        expanded["singleValueExtendedProperties"],
        json!([{"id": CRM_ID, "value": "003000000000001"}])
    );

    let filter = format!("singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '003000000000001')");
    assert_eq!(
        ids(&values(&get(&mut cal, "events", &[("$filter", &filter)]))),
        [id]
    );
    let in_view = get(
        &mut cal,
        "calendarView",
        &[MARCH[0], MARCH[1], ("$filter", &filter)],
    );
    assert_eq!(ids(&values(&in_view)), [id]);
    assert_eq!(
        values(&get(
            &mut cal,
            "events",
            &[("$filter", "subject eq 'Plain'")]
        ))
        .len(),
        1
    );

    // Written by PATCH too.
    let plain = values(&get(
        &mut cal,
        "events",
        &[("$filter", "subject eq 'Plain'")],
    ));
    let plain_id = plain[0]["id"].as_str().unwrap();
    let answer = patch(
        &mut cal,
        plain_id,
        json!({"singleValueExtendedProperties": [{"id": CRM_ID, "value": "003000000000002"}]}),
    );
    assert_eq!(answer.status, 200);
    let filter2 = format!("singleValueExtendedProperties/any(ep: ep/id eq '{CRM_ID}' and ep/value eq '003000000000002')");
    assert_eq!(
        ids(&values(&get(&mut cal, "events", &[("$filter", &filter2)]))),
        [plain_id]
    );
}

#[test]
fn events_page_with_top_and_next_links() {
    let mut cal = Calendar::default();
    for day in 1..=5 {
        post(
            &mut cal,
            event(
                &format!("E{day}"),
                &format!("2026-03-0{day}T09:00:00"),
                &format!("2026-03-0{day}T10:00:00"),
                "UTC",
            ),
        );
    }
    let first = get(&mut cal, "events", &[("$top", "2"), ("$select", "subject")]);
    let mut seen = ids(&values(&first));
    let mut link = first.body.unwrap()["@odata.nextLink"]
        .as_str()
        .map(str::to_owned);
    while let Some(next) = link {
        assert!(next.contains("$skip="), "{next}");
        let page = follow(&mut cal, &next, &Req::default());
        let items = values(&page);
        assert!(
            items.iter().all(|i| i.get("body").is_none()),
            "$select rides along"
        );
        seen.extend(ids(&items));
        link = page.body.unwrap()["@odata.nextLink"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    let later = values(&get(
        &mut cal,
        "events",
        &[
            (
                "$filter",
                "start/dateTime ge '2026-03-04T00:00:00' and subject ne 'E5'",
            ),
            ("$select", "subject"),
        ],
    ));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0]["subject"], "E4");
    let counted = get(&mut cal, "events", &[("$top", "2"), ("$count", "true")]);
    assert_eq!(counted.body.unwrap()["@odata.count"], 5);
    assert_eq!(get(&mut cal, "events", &[("$count", "maybe")]).status, 400);
    let subjects: Vec<Value> = values(&get(
        &mut cal,
        "events",
        &[("$orderby", "start/dateTime desc"), ("$top", "1")],
    ))
    .iter()
    .map(|v| v["subject"].clone())
    .collect();
    assert_eq!(subjects, [json!("E5")]);
}

#[test]
fn outlook_timezone_renders_start_and_end() {
    let mut cal = Calendar::default();
    let created = post(
        &mut cal,
        event(
            "Call",
            "2026-07-01T09:00:00",
            "2026-07-01T10:00:00",
            "W. Europe Standard Time",
        ),
    );
    let id = created["id"].as_str().unwrap();
    let pacific = Req {
        zone: Some("Pacific Standard Time".into()),
        ..Req::default()
    };
    let answer = send(
        &mut cal,
        Method::GET,
        &format!("events/{id}"),
        &pacific,
        None,
    );
    assert!(answer
        .headers
        .iter()
        .any(|(k, v)| k == "Preference-Applied" && v.contains("Pacific")));
    let body = answer.body.unwrap();
    assert_eq!(
        body["start"],
        json!({"dateTime": "2026-07-01T00:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    let iana = Req {
        zone: Some("Asia/Tokyo".into()),
        ..Req::default()
    };
    let body = send(&mut cal, Method::GET, &format!("events/{id}"), &iana, None)
        .body
        .unwrap();
    assert_eq!(body["end"]["dateTime"], "2026-07-01T17:00:00.0000000");
    // A window without offset reads as UTC whatever the Prefer zone (09:00 in Berlin is
    // 07:00 UTC in July; read in Pacific time the window would miss it).
    let window = vec![
        (
            "startDateTime".to_string(),
            "2026-07-01T07:00:00".to_string(),
        ),
        ("endDateTime".to_string(), "2026-07-01T07:30:00".to_string()),
    ];
    let in_utc = Req {
        zone: Some("Pacific Standard Time".into()),
        query: window,
        ..Req::default()
    };
    assert_eq!(
        values(&send(&mut cal, Method::GET, "calendarView", &in_utc, None)).len(),
        1
    );
    let bad = Req {
        zone: Some("Moon Standard Time".into()),
        ..Req::default()
    };
    assert_eq!(
        send(&mut cal, Method::GET, &format!("events/{id}"), &bad, None).status,
        400
    );
    assert_eq!(
        send(
            &mut cal,
            Method::GET,
            "calendarView",
            &Req {
                query: MARCH
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..bad
            },
            None
        )
        .status,
        400
    );
}

#[test]
fn an_all_day_event_needs_midnights_and_reads_as_dates_in_any_zone() {
    let mut cal = Calendar::default();
    let mut not_midnight = event(
        "Off",
        "2026-03-02T09:00:00",
        "2026-03-03T00:00:00",
        "W. Europe Standard Time",
    );
    not_midnight["isAllDay"] = json!(true);
    let answer = send(
        &mut cal,
        Method::POST,
        "events",
        &Req::default(),
        Some(not_midnight),
    );
    assert_eq!(answer.status, 400);
    assert!(message(&answer).contains("midnight"));

    let mut day = event(
        "Holiday",
        "2026-03-02T00:00:00",
        "2026-03-03T00:00:00",
        "W. Europe Standard Time",
    );
    day["isAllDay"] = json!(true);
    let created = post(&mut cal, day);
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["isAllDay"], true);
    for zone in ["UTC", "Tokyo Standard Time", "America/Los_Angeles"] {
        let req = Req {
            zone: Some(zone.into()),
            ..Req::default()
        };
        let body = send(&mut cal, Method::GET, &format!("events/{id}"), &req, None)
            .body
            .unwrap();
        assert_eq!(
            body["start"],
            json!({"dateTime": "2026-03-02T00:00:00.0000000", "timeZone": zone})
        );
        assert_eq!(
            body["end"],
            json!({"dateTime": "2026-03-03T00:00:00.0000000", "timeZone": zone})
        );
    }
    // Seen from Tokyo, the day is Tokyo's 2 March: a window of Tokyo's 2 March holds it,
    // one ending at 2 March 00:00 UTC (09:00 in Tokyo) too.
    let tokyo = Req {
        zone: Some("Tokyo Standard Time".into()),
        query: vec![
            ("startDateTime".into(), "2026-03-01T20:00:00Z".into()),
            ("endDateTime".into(), "2026-03-02T00:00:00Z".into()),
        ],
        ..Req::default()
    };
    assert_eq!(
        values(&send(&mut cal, Method::GET, "calendarView", &tokyo, None)).len(),
        1
    );
    let utc = Req {
        zone: None,
        ..tokyo
    };
    assert_eq!(
        values(&send(&mut cal, Method::GET, "calendarView", &utc, None)).len(),
        0
    );
}

#[test]
fn calendar_view_needs_a_window_of_at_most_1825_days() {
    let mut cal = Calendar::default();
    let missing = get(
        &mut cal,
        "calendarView",
        &[("startDateTime", "2026-03-01T00:00:00Z")],
    );
    assert_eq!(missing.status, 400);
    assert!(message(&missing).contains("StartDateTime and EndDateTime"));
    let long = get(
        &mut cal,
        "calendarView",
        &[
            ("startDateTime", "2026-01-01T00:00:00Z"),
            ("endDateTime", "2031-01-02T00:00:00Z"),
        ],
    );
    assert_eq!(long.status, 400);
    assert_eq!(
        long.body.as_ref().unwrap()["error"]["code"],
        "ErrorInvalidRequest"
    );
    assert_eq!(message(&long), "The range between the start and end dates is greater than the allowed range. Maximum number of days: 1825");
    assert_eq!(
        get(
            &mut cal,
            "calendarView",
            &[
                ("startDateTime", "2026-01-01T00:00:00Z"),
                ("endDateTime", "2030-12-31T00:00:00Z")
            ]
        )
        .status,
        200
    );
    assert_eq!(get(&mut cal, "calendarView/delta", &[]).status, 400);
}

#[test]
fn a_series_with_a_moved_and_a_cancelled_occurrence() {
    let mut cal = Calendar::default();
    // The range starts on a Sunday: the master starts on the first Monday.
    let mut body = event(
        "Weekly",
        "2026-03-01T09:00:00",
        "2026-03-01T09:30:00",
        "W. Europe Standard Time",
    );
    body["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2026-03-01", "numberOfOccurrences": 4},
    });
    let master = post(&mut cal, body);
    let master_id = master["id"].as_str().unwrap().to_owned();
    assert_eq!(master["type"], "seriesMaster");
    assert_eq!(master["start"]["dateTime"], "2026-03-02T08:00:00.0000000");
    assert_eq!(
        master["recurrence"]["pattern"]["daysOfWeek"],
        json!(["monday"])
    );
    assert_eq!(master["recurrence"]["range"]["numberOfOccurrences"], 4);

    let instances =
        |cal: &mut Calendar| values(&get(cal, &format!("events/{master_id}/instances"), &MARCH));
    let all = instances(&mut cal);
    assert_eq!(all.len(), 4);
    assert!(all
        .iter()
        .all(|o| o["type"] == "occurrence" && o["seriesMasterId"] == master_id.as_str()));
    assert_eq!(
        ids(&all),
        ids(&instances(&mut cal)),
        "occurrence ids are stable"
    );
    let (second, third) = (
        all[1]["id"].as_str().unwrap().to_owned(),
        all[2]["id"].as_str().unwrap().to_owned(),
    );
    let occurrence = get(&mut cal, &format!("events/{second}"), &[])
        .body
        .unwrap();
    assert_eq!(
        occurrence["start"]["dateTime"],
        "2026-03-09T08:00:00.0000000"
    );
    assert_eq!(occurrence["originalStart"], "2026-03-09T08:00:00Z");
    assert_eq!(occurrence["subject"], "Weekly");

    // Move the second occurrence by an hour; cancel the third.
    let moved = patch(
        &mut cal,
        &second,
        json!({
            "start": {"dateTime": "2026-03-09T10:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-09T10:30:00", "timeZone": "W. Europe Standard Time"},
            "subject": "Moved",
        }),
    );
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let moved = moved.body.unwrap();
    assert_eq!(moved["type"], "exception");
    assert_eq!(moved["id"], second.as_str());
    assert_eq!(moved["seriesMasterId"], master_id.as_str());
    assert_eq!(moved["originalStart"], "2026-03-09T08:00:00Z");
    assert_eq!(moved["start"]["dateTime"], "2026-03-09T09:00:00.0000000");
    assert_eq!(delete(&mut cal, &third).status, 204);
    assert_eq!(get(&mut cal, &format!("events/{third}"), &[]).status, 404);
    assert_eq!(patch(&mut cal, &third, json!({"subject": "x"})).status, 404);

    let after = instances(&mut cal);
    let kinds: Vec<&str> = after.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["occurrence", "exception", "occurrence"]);

    // The master: cancelledOccurrences only when selected, exceptions when expanded.
    let plain = get(&mut cal, &format!("events/{master_id}"), &[])
        .body
        .unwrap();
    assert!(plain.get("cancelledOccurrences").is_none());
    assert!(plain.get("exceptionOccurrences").is_none());
    let full = get(
        &mut cal,
        &format!("events/{master_id}"),
        &[
            ("$select", "subject,recurrence,cancelledOccurrences"),
            ("$expand", "exceptionOccurrences"),
        ],
    )
    .body
    .unwrap();
    // A cancelled occurrence is named as Graph names it, by its master and original date;
    // the live ones keep their item ids.
    assert_eq!(
        full["cancelledOccurrences"],
        json!([format!("OID.{master_id}.2026-03-16")])
    );
    assert_ne!(full["cancelledOccurrences"], json!([third]));
    let exceptions = full["exceptionOccurrences"].as_array().unwrap();
    assert_eq!(ids(exceptions), std::slice::from_ref(&second));
    assert_eq!(exceptions[0]["subject"], "Moved");
    assert_eq!(full["recurrence"]["pattern"]["type"], "weekly");
    let nested = get(
        &mut cal,
        &format!("events/{master_id}"),
        &[("$expand", "exceptionOccurrences($select=start,subject)")],
    )
    .body
    .unwrap();
    let nested = &nested["exceptionOccurrences"][0];
    assert_eq!(nested["subject"], "Moved");
    assert!(nested.get("body").is_none(), "{nested}");
    let bad = get(
        &mut cal,
        &format!("events/{master_id}"),
        &[("$expand", "exceptionOccurrences($select=subjekt)")],
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        get(
            &mut cal,
            &format!("events/{master_id}"),
            &[("$expand", "instances")]
        )
        .status,
        400
    );

    // calendarView shows the instances, never the master.
    let view = values(&get(&mut cal, "calendarView", &MARCH));
    assert_eq!(ids(&view), ids(&after));
    assert!(!ids(&view).contains(&master_id));

    // A change to the series' text reaches the exception where it didn't override it.
    let renamed = patch(
        &mut cal,
        &master_id,
        json!({"subject": "Renamed", "location": {"displayName": "Room 7"}}),
    );
    assert_eq!(renamed.status, 200);
    let exception = get(&mut cal, &format!("events/{second}"), &[])
        .body
        .unwrap();
    assert_eq!(exception["subject"], "Moved");
    assert_eq!(exception["location"]["displayName"], "Room 7");
    assert_eq!(
        exception["start"]["dateTime"],
        "2026-03-09T09:00:00.0000000"
    );
    let cleared = patch(&mut cal, &second, json!({"location": null}));
    assert_eq!(cleared.body.unwrap()["location"]["displayName"], "");
    let first = get(
        &mut cal,
        &format!("events/{}", all[0]["id"].as_str().unwrap()),
        &[],
    )
    .body
    .unwrap();
    assert_eq!(first["subject"], "Renamed");
    assert_eq!(first["location"]["displayName"], "Room 7");

    // A new pattern regenerates the series and drops its exceptions.
    let answer = patch(
        &mut cal,
        &master_id,
        json!({"recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 2},
        }}),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body.unwrap()["start"]["dateTime"],
        "2026-03-03T08:00:00.0000000"
    );
    let regenerated = instances(&mut cal);
    assert_eq!(regenerated.len(), 2);
    assert!(regenerated.iter().all(|o| o["type"] == "occurrence"));
    let selected = get(
        &mut cal,
        &format!("events/{master_id}"),
        &[("$select", "cancelledOccurrences")],
    )
    .body
    .unwrap();
    assert_eq!(selected["cancelledOccurrences"], json!([]));

    // Deleting the master deletes the series.
    assert_eq!(delete(&mut cal, &master_id).status, 204);
    assert_eq!(
        get(
            &mut cal,
            &format!("events/{}", regenerated[0]["id"].as_str().unwrap()),
            &[]
        )
        .status,
        404
    );
    assert!(values(&get(&mut cal, "calendarView", &MARCH)).is_empty());
}

#[test]
fn a_series_keeps_its_wall_clock_time_across_dst_in_w_europe() {
    let mut cal = Calendar::default();
    let mut body = event(
        "Standup",
        "2026-03-20T09:00:00",
        "2026-03-20T09:15:00",
        "W. Europe Standard Time",
    );
    body["recurrence"] = json!({
        "pattern": {"type": "daily", "interval": 7},
        "range": {"type": "endDate", "startDate": "2026-03-20", "endDate": "2026-04-03"},
    });
    post(&mut cal, body);
    let window = [
        ("startDateTime", "2026-03-16T00:00:00Z"),
        ("endDateTime", "2026-04-06T00:00:00Z"),
    ];
    let utc = values(&get(&mut cal, "calendarView", &window));
    let starts: Vec<&str> = utc
        .iter()
        .map(|o| o["start"]["dateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-20T08:00:00.0000000",
            "2026-03-27T08:00:00.0000000",
            "2026-04-03T07:00:00.0000000"
        ]
    );
    let berlin = Req {
        zone: Some("W. Europe Standard Time".into()),
        query: vec![
            ("startDateTime".into(), "2026-03-16T00:00:00Z".into()),
            ("endDateTime".into(), "2026-04-06T00:00:00Z".into()),
        ],
        ..Req::default()
    };
    let local = values(&send(&mut cal, Method::GET, "calendarView", &berlin, None));
    assert!(local.iter().all(|o| o["start"]["dateTime"]
        .as_str()
        .unwrap()
        .ends_with("T09:00:00.0000000")));
}

/// Reads a whole delta round from `link` (or the initial request), page by page.
fn delta_round(cal: &mut Calendar, link: Option<&str>, page: usize) -> (Vec<Value>, String) {
    let req = Req {
        page: Some(page),
        ..Req::default()
    };
    let mut answer = match link {
        Some(link) => follow(cal, link, &req),
        None => {
            let first = Req {
                query: MARCH
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..req.clone()
            };
            send(cal, Method::GET, "calendarView/delta", &first, None)
        }
    };
    let mut items = Vec::new();
    loop {
        let page_items = values(&answer);
        assert!(page_items.len() <= page);
        items.extend(page_items);
        let body = answer.body.clone().unwrap();
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(body.get("@odata.deltaLink").is_none());
            answer = follow(cal, next, &req);
            continue;
        }
        return (
            items,
            body["@odata.deltaLink"]
                .as_str()
                .expect("a deltaLink on the last page")
                .to_owned(),
        );
    }
}

#[test]
fn calendar_view_delta_follows_a_series_through_a_move_and_a_cancellation() {
    let mut cal = Calendar::default();
    let master = weekly(&mut cal, 4);
    let master_id = master["id"].as_str().unwrap().to_owned();
    let single = post(
        &mut cal,
        event("Lunch", "2026-03-04T12:00:00", "2026-03-04T13:00:00", "UTC"),
    );
    let single_id = single["id"].as_str().unwrap().to_owned();

    let (first, link) = delta_round(&mut cal, None, 2);
    assert_eq!(
        first.len(),
        5,
        "four occurrences and the single event, never the master"
    );
    assert!(!ids(&first).contains(&master_id));
    let occurrences: Vec<&Value> = first.iter().filter(|v| v["type"] == "occurrence").collect();
    assert_eq!(occurrences.len(), 4);
    for o in &occurrences {
        let mut keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "@odata.etag",
                "@odata.type",
                "end",
                "id",
                "seriesMasterId",
                "start",
                "type"
            ]
        );
    }
    let lunch = first
        .iter()
        .find(|v| v["id"] == single_id.as_str())
        .unwrap();
    assert_eq!(lunch["subject"], "Lunch", "single events come whole");

    let (nothing, link) = delta_round(&mut cal, Some(&link), 2);
    assert!(nothing.is_empty(), "{nothing:?}");

    let mut starts: Vec<(String, String)> = occurrences
        .iter()
        .map(|o| {
            (
                o["start"]["dateTime"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    starts.sort();
    let (second, third, fourth) = (
        starts[1].1.clone(),
        starts[2].1.clone(),
        starts[3].1.clone(),
    );
    let third_start = starts[2].0.clone();
    assert_eq!(patch(&mut cal, &second, json!({"subject": "Moved", "start": {"dateTime": "2026-03-10T09:00:00", "timeZone": "W. Europe Standard Time"}, "end": {"dateTime": "2026-03-10T09:30:00", "timeZone": "W. Europe Standard Time"}})).status, 200);
    assert_eq!(delete(&mut cal, &third).status, 204);
    // The last occurrence moves out of the window, the single event too.
    assert_eq!(patch(&mut cal, &fourth, json!({"start": {"dateTime": "2026-04-07T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-04-07T09:30:00", "timeZone": "UTC"}})).status, 200);
    assert_eq!(patch(&mut cal, &single_id, json!({"start": {"dateTime": "2026-05-04T12:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-05-04T13:00:00", "timeZone": "UTC"}})).status, 200);

    let (changes, link) = delta_round(&mut cal, Some(&link), 2);
    let removed: Vec<String> = changes
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected_removed = vec![third.clone(), fourth.clone(), single_id.clone()];
    expected_removed.sort();
    let mut removed_sorted = removed.clone();
    removed_sorted.sort();
    assert_eq!(removed_sorted, expected_removed);
    assert!(changes
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .all(|v| v["@removed"] == json!({"reason": "deleted"})));
    let exception = changes
        .iter()
        .find(|v| v["id"] == second.as_str())
        .expect("the moved occurrence");
    assert_eq!(exception["type"], "exception");
    assert_eq!(exception["subject"], "Moved");
    assert_eq!(
        exception["start"]["dateTime"],
        "2026-03-10T08:00:00.0000000"
    );
    assert_eq!(
        changes.len(),
        4,
        "the untouched first occurrence is not reported: {changes:?}"
    );

    // The master tells the same story.
    let full = get(
        &mut cal,
        &format!("events/{master_id}"),
        &[
            ("$select", "cancelledOccurrences"),
            ("$expand", "exceptionOccurrences"),
        ],
    )
    .body
    .unwrap();
    assert_eq!(
        full["cancelledOccurrences"],
        json!([format!("OID.{master_id}.{}", &third_start[..10])])
    );
    let mut exception_ids = ids(full["exceptionOccurrences"].as_array().unwrap());
    exception_ids.sort();
    let mut expected = vec![second.clone(), fourth.clone()];
    expected.sort();
    assert_eq!(exception_ids, expected);

    // A change to the series itself reports its occurrences again.
    assert_eq!(
        patch(&mut cal, &master_id, json!({"subject": "Renamed"})).status,
        200
    );
    let (series_change, _) = delta_round(&mut cal, Some(&link), 10);
    let kinds: Vec<&str> = series_change
        .iter()
        .map(|v| v["type"].as_str().unwrap_or("removed"))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "occurrence").count(),
        1,
        "{series_change:?}"
    );
    assert!(kinds.contains(&"exception"));
}

#[test]
fn delta_refuses_query_options_and_bad_or_expired_tokens() {
    let mut cal = Calendar::default();
    weekly(&mut cal, 2);
    for option in ["$select", "$expand", "$filter", "$orderby"] {
        let answer = get(
            &mut cal,
            "calendarView/delta",
            &[MARCH[0], MARCH[1], (option, "subject")],
        );
        assert_eq!(answer.status, 400, "{option}");
        assert!(message(&answer).contains(option));
    }
    let (_, link) = delta_round(&mut cal, None, 10);
    let kiota = get(&mut cal, "calendarView/delta()", &MARCH);
    assert_eq!(
        values(&kiota).len(),
        2,
        "the SDKs' spelling of the function"
    );
    let malformed = get(
        &mut cal,
        "calendarView/delta",
        &[("$deltatoken", "bm90IGEgdG9rZW4")],
    );
    assert_eq!(malformed.status, 400);

    let first = Req {
        page: Some(1),
        query: MARCH
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Req::default()
    };
    let page = send(&mut cal, Method::GET, "calendarView/delta", &first, None);
    let next = page.body.unwrap()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_owned();

    cal.expire_delta_tokens();
    for old in [&link, &next] {
        let answer = follow(&mut cal, old, &Req::default());
        assert_eq!(answer.status, 410);
        assert_eq!(answer.body.unwrap()["error"]["code"], "syncStateNotFound");
    }
    // A new initial round works, and its tokens do.
    let (items, fresh) = delta_round(&mut cal, None, 10);
    assert_eq!(items.len(), 2);
    assert_eq!(follow(&mut cal, &fresh, &Req::default()).status, 200);
}

#[test]
fn delta_reports_a_deleted_series_and_a_moved_window_needs_its_own_round() {
    let mut cal = Calendar::default();
    let master = weekly(&mut cal, 3);
    let (first, link) = delta_round(&mut cal, None, 10);
    assert_eq!(first.len(), 3);
    assert_eq!(delete(&mut cal, master["id"].as_str().unwrap()).status, 204);
    let (gone, _) = delta_round(&mut cal, Some(&link), 10);
    let mut removed = ids(&gone);
    removed.sort();
    let mut expected = ids(&first);
    expected.sort();
    assert_eq!(removed, expected);
    assert!(gone.iter().all(|v| v["@removed"]["reason"] == "deleted"));
    // The delta link keeps its window even if the client sends another one.
    let answer = follow(
        &mut cal,
        &format!("{link}&startDateTime=2020-01-01T00:00:00Z&endDateTime=2020-01-02T00:00:00Z"),
        &Req::default(),
    );
    assert_eq!(values(&answer).len(), 3);
}

#[test]
fn a_change_made_while_a_round_is_paged_reaches_the_next_round() {
    let mut cal = Calendar::default();
    for day in 2..=4 {
        post(
            &mut cal,
            event(
                &format!("E{day}"),
                &format!("2026-03-0{day}T09:00:00"),
                &format!("2026-03-0{day}T10:00:00"),
                "UTC",
            ),
        );
    }
    let req = Req {
        page: Some(1),
        query: MARCH
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Req::default()
    };
    let first = send(&mut cal, Method::GET, "calendarView/delta", &req, None);
    let sent = values(&first)[0]["id"].as_str().unwrap().to_owned();
    let next = first.body.unwrap()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_owned();
    // The item already sent goes away while the client reads the rest of the round.
    assert_eq!(delete(&mut cal, &sent).status, 204);
    let (rest, link) = delta_round(&mut cal, Some(&next), 1);
    assert_eq!(rest.len(), 2);
    let (changes, _) = delta_round(&mut cal, Some(&link), 10);
    assert_eq!(ids(&changes), [sent]);
    assert_eq!(changes[0]["@removed"]["reason"], "deleted");
}

#[test]
fn delta_follows_a_single_event_into_a_series_and_back() {
    let mut cal = Calendar::default();
    let single = post(
        &mut cal,
        event("Sync", "2026-03-02T09:00:00", "2026-03-02T09:30:00", "UTC"),
    );
    let id = single["id"].as_str().unwrap().to_owned();
    let (_, link) = delta_round(&mut cal, None, 10);

    let weekly = json!({"recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3},
    }});
    assert_eq!(patch(&mut cal, &id, weekly).status, 200);
    let (changes, link) = delta_round(&mut cal, Some(&link), 10);
    let removed: Vec<&Value> = changes
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .collect();
    assert_eq!(
        ids(&removed.into_iter().cloned().collect::<Vec<_>>()),
        std::slice::from_ref(&id)
    );
    let occurrences: Vec<&Value> = changes
        .iter()
        .filter(|v| v["type"] == "occurrence")
        .collect();
    assert_eq!(occurrences.len(), 3);
    assert!(occurrences
        .iter()
        .all(|o| o["seriesMasterId"] == id.as_str()));

    assert_eq!(
        patch(&mut cal, &id, json!({"recurrence": null})).status,
        200
    );
    let (back, _) = delta_round(&mut cal, Some(&link), 10);
    let single_again: Vec<&Value> = back
        .iter()
        .filter(|v| v["type"] == "singleInstance")
        .collect();
    assert_eq!(
        ids(&single_again.into_iter().cloned().collect::<Vec<_>>()),
        std::slice::from_ref(&id)
    );
    let mut gone: Vec<String> = back
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    gone.sort();
    let mut expected = ids(&occurrences.into_iter().cloned().collect::<Vec<_>>());
    expected.sort();
    assert_eq!(gone, expected);
}

#[test]
fn the_store_round_trips_through_json() {
    let mut cal = Calendar::default();
    let master = weekly(&mut cal, 3);
    let all = values(&get(
        &mut cal,
        &format!("events/{}/instances", master["id"].as_str().unwrap()),
        &MARCH,
    ));
    patch(
        &mut cal,
        all[0]["id"].as_str().unwrap(),
        json!({"subject": "Changed"}),
    );
    delete(&mut cal, all[1]["id"].as_str().unwrap());
    let (_, link) = delta_round(&mut cal, None, 10);
    let saved = serde_json::to_string(&cal).unwrap();
    let mut back: Calendar = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        values(&get(&mut back, "calendarView", &MARCH)),
        values(&get(&mut cal, "calendarView", &MARCH))
    );
    assert_eq!(follow(&mut back, &link, &Req::default()).status, 200);
}
