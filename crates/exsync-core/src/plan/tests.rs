//! One test per planner rule, named for the rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::config::{ConflictPolicy, DeleteMode, Direction, FirstLink, KindRules};
use crate::model::{Contact, Event, EventTime, Record};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn contact(first: &str, last: &str, email: &str) -> Fields {
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
    .to_fields()
}

fn with(mut fields: Fields, key: &str, value: serde_json::Value) -> Fields {
    fields.insert(key.into(), value);
    fields
}

fn crm(id: &str, fields: Fields) -> Change {
    Change::Upsert(Item {
        id: ItemId::Crm(id.into()),
        fields,
        version: Some(format!("v-{id}")),
        modified: None,
        origin: None,
    })
}

fn exch(id: &str, fields: Fields) -> Change {
    Change::Upsert(Item {
        id: ItemId::Exchange(id.into()),
        fields,
        version: Some(format!("ck-{id}")),
        modified: None,
        origin: None,
    })
}

fn at(change: Change, minutes: i64) -> Change {
    match change {
        Change::Upsert(mut item) => {
            item.modified = Some(now() + Duration::minutes(minutes));
            Change::Upsert(item)
        }
        other => other,
    }
}

fn pair(c: &str, e: &str, content: Fields) -> SyncedPair {
    SyncedPair {
        kind: ItemKind::Contact,
        crm_id: c.into(),
        exchange_id: e.into(),
        content,
        crm_version: Some("v0".into()),
        exchange_version: Some("ck0".into()),
    }
}

fn rules(direction: Direction) -> KindRules {
    KindRules {
        direction,
        ..KindRules::default_for(ItemKind::Contact)
    }
}

fn run(
    rules: &KindRules,
    pairs: &[SyncedPair],
    crm_changes: &[Change],
    exchange_changes: &[Change],
) -> Vec<Op> {
    plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Contact,
        rules,
        pairs,
        crm_changes: Cow::Borrowed(crm_changes),
        exchange_changes: Cow::Borrowed(exchange_changes),
        now: now(),
    })
}

/// A compact, readable form of a plan for assertions.
fn summary(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::Create {
                on,
                source,
                replaces: None,
                ..
            } => format!("create on {on} from {source}"),
            Op::Create {
                on,
                source,
                replaces: Some((c, e)),
                ..
            } => {
                format!("recreate on {on} from {source} replacing {c}/{e}")
            }
            Op::Update {
                on,
                crm_id,
                changed,
                ..
            } => format!("update {on} of {crm_id}: {}", changed.join(",")),
            Op::Delete {
                on,
                crm_id,
                exchange_id,
                ..
            } => format!("delete on {on} ({crm_id}/{exchange_id})"),
            Op::Link {
                crm_id,
                exchange_id,
                reason,
                ..
            } => format!("link {crm_id}/{exchange_id} {reason:?}"),
            Op::Forget {
                crm_id,
                exchange_id,
                ..
            } => format!("forget {crm_id}/{exchange_id}"),
            Op::Conflict {
                crm_id, conflict, ..
            } if conflict.first_link => format!(
                "first link {crm_id}.{} from newer {}",
                conflict.field, conflict.winner
            ),
            Op::Conflict {
                crm_id, conflict, ..
            } => format!(
                "conflict {crm_id}.{} won by {}",
                conflict.field, conflict.winner
            ),
            Op::Skip { id, reason, .. } => format!("skip {id}: {reason}"),
            Op::PauseUser { .. } => "pause user".to_owned(),
        })
        .collect()
}

fn linked_fields(ops: &[Op]) -> Fields {
    ops.iter()
        .find_map(|op| match op {
            Op::Link { fields, .. } => Some(fields.clone()),
            _ => None,
        })
        .expect("a link op")
}

#[test]
fn direction_off_plans_nothing() {
    let ops = run(
        &rules(Direction::Off),
        &[],
        &[crm("c1", contact("Ada", "L", "a@x.test"))],
        &[],
    );
    assert!(ops.is_empty());
}

#[test]
fn new_crm_record_is_created_in_exchange() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", contact("Ada", "L", "a@x.test"))],
        &[],
    );
    assert_eq!(summary(&ops), ["create on exchange from crm:c1"]);
}

#[test]
fn new_exchange_record_is_created_in_crm() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[],
        &[exch("e1", contact("Ada", "L", "a@x.test"))],
    );
    assert_eq!(summary(&ops), ["create on crm from exchange:e1"]);
}

#[test]
fn direction_limits_what_is_created() {
    let c = [crm("c1", contact("Ada", "L", "a@x.test"))];
    let e = [exch("e1", contact("Bob", "M", "b@x.test"))];
    assert_eq!(
        summary(&run(&rules(Direction::CrmToExchange), &[], &c, &e)),
        ["create on exchange from crm:c1"]
    );
    assert_eq!(
        summary(&run(&rules(Direction::ExchangeToCrm), &[], &c, &e)),
        ["create on crm from exchange:e1"]
    );
}

#[test]
fn first_sync_matches_contacts_by_email() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", contact("Ada", "Lovelace", "ADA@x.test"))],
        &[exch("e1", contact("Ada", "Lovelace", "ada@x.test"))],
    );
    assert_eq!(summary(&ops), ["link c1/e1 Email"]);
}

#[test]
fn first_sync_matches_on_any_address_of_the_contact() {
    let mut two = contact("Ada", "Lovelace", "work@x.test");
    two.insert("emails".into(), json!(["work@x.test", "home@x.test"]));
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", contact("Ada", "Lovelace", "home@x.test"))],
        &[exch("e1", two)],
    );
    assert!(
        summary(&ops).contains(&"link c1/e1 Email".to_owned()),
        "{ops:?}"
    );
}

#[test]
fn first_sync_matches_contacts_by_name_and_company_when_no_email_matches() {
    let company = |f: Fields| with(f, "company", json!("Analytical Engines"));
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", company(contact("Ada", "Lovelace", "")))],
        &[exch("e1", company(contact("ada", "LOVELACE", "")))],
    );
    // The names differ only in case, which normalisation keeps: the match links them and the
    // CRM's spelling wins the resulting both-sides difference.
    assert_eq!(summary(&ops)[0..1], ["conflict c1.first_name won by crm"]);
    assert!(summary(&ops).contains(&"link c1/e1 NameAndCompany".to_owned()));
}

#[test]
fn first_sync_does_not_match_on_different_company() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm(
            "c1",
            with(contact("Ada", "Lovelace", ""), "company", json!("A")),
        )],
        &[exch(
            "e1",
            with(contact("Ada", "Lovelace", ""), "company", json!("B")),
        )],
    );
    assert_eq!(
        summary(&ops),
        [
            "create on exchange from crm:c1",
            "create on crm from exchange:e1"
        ]
    );
}

#[test]
fn first_sync_email_match_beats_name_match() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", contact("Ada", "Lovelace", "ada@x.test"))],
        &[
            exch("e1", contact("Ada", "Lovelace", "other@x.test")),
            exch("e2", contact("Augusta", "King", "ada@x.test")),
        ],
    );
    assert!(
        summary(&ops).contains(&"link c1/e2 Email".to_owned()),
        "{:?}",
        summary(&ops)
    );
    assert!(summary(&ops).contains(&"create on crm from exchange:e1".to_owned()));
}

#[test]
fn first_sync_never_links_one_record_twice() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[
            crm("c1", contact("Ada", "L", "a@x.test")),
            crm("c2", contact("Ada", "L", "a@x.test")),
        ],
        &[exch("e1", contact("Ada", "L", "a@x.test"))],
    );
    assert_eq!(
        summary(&ops),
        ["link c1/e1 Email", "create on exchange from crm:c2"]
    );
}

#[test]
fn first_sync_links_through_our_tag_before_anything_else() {
    let mut tagged = Item {
        id: ItemId::Exchange("e9".into()),
        fields: contact("Someone", "Else", "x@x.test"),
        version: None,
        modified: None,
        origin: Some(ItemId::Crm("c1".into())),
    };
    tagged.fields = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm("c1", contact("Ada", "L", "a@x.test"))],
        &[
            exch("e1", contact("Ada", "L", "a@x.test")),
            Change::Upsert(tagged),
        ],
    );
    assert_eq!(summary(&ops)[0], "link c1/e9 Tag");
    assert_eq!(summary(&ops)[1], "create on crm from exchange:e1");
}

#[test]
fn first_sync_fills_blanks_from_either_side() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm(
            "c1",
            with(contact("Ada", "L", "a@x.test"), "title", json!("Countess")),
        )],
        &[exch(
            "e1",
            with(contact("Ada", "L", "a@x.test"), "department", json!("Math")),
        )],
    );
    assert_eq!(
        summary(&ops),
        [
            "update crm of c1: department",
            "update exchange of c1: title",
            "link c1/e1 Email"
        ]
    );
    let merged = linked_fields(&ops);
    assert_eq!(
        (merged["title"].clone(), merged["department"].clone()),
        (json!("Countess"), json!("Math"))
    );
}

/// A contact as Lightning Sync left it on both sides, then edited on one: `department` in Outlook
/// (modified at minute 5) and `title` in the CRM (at minute 3), or the other way round.
fn edited_twins(crm_minutes: i64, exchange_minutes: i64) -> (Change, Change) {
    let both = with(
        contact("Ada", "L", "a@x.test"),
        "department",
        json!("Sales"),
    );
    let both = with(both, "title", json!("Countess"));
    (
        at(
            crm("c1", with(both.clone(), "title", json!("Analyst"))),
            crm_minutes,
        ),
        at(
            exch("e1", with(both, "department", json!("Marketing"))),
            exchange_minutes,
        ),
    )
}

#[test]
fn a_first_link_takes_each_differing_field_from_the_newer_record_and_records_no_conflict() {
    let (c, e) = edited_twins(3, 5);
    let ops = run(&rules(Direction::Both), &[], &[c], &[e]);
    assert_eq!(
        summary(&ops),
        [
            "first link c1.department from newer exchange",
            "first link c1.title from newer exchange",
            "update crm of c1: department,title",
            "link c1/e1 Email"
        ]
    );
    let merged = linked_fields(&ops);
    assert_eq!(merged["department"], json!("Marketing"));
    // The newer record wins the whole record's differences: the CRM's title edit is older.
    assert_eq!(merged["title"], json!("Countess"));

    let (c, e) = edited_twins(7, 5);
    let ops = run(&rules(Direction::Both), &[], &[c], &[e]);
    let merged = linked_fields(&ops);
    assert_eq!(
        (merged["department"].clone(), merged["title"].clone()),
        (json!("Sales"), json!("Analyst"))
    );
    assert!(summary(&ops).iter().all(|s| !s.starts_with("conflict")));
}

#[test]
fn a_first_link_fills_blanks_whichever_record_is_newer() {
    let c = at(
        crm(
            "c1",
            with(contact("Ada", "L", "a@x.test"), "title", json!("Countess")),
        ),
        9,
    );
    let e = at(
        exch(
            "e1",
            with(contact("Ada", "L", "a@x.test"), "department", json!("Math")),
        ),
        1,
    );
    let merged = linked_fields(&run(&rules(Direction::Both), &[], &[c], &[e]));
    assert_eq!(
        (merged["title"].clone(), merged["department"].clone()),
        (json!("Countess"), json!("Math"))
    );
}

#[test]
fn a_first_link_without_a_newer_record_falls_back_to_the_policy() {
    for (c_at, e_at) in [(Some(4), Some(4)), (None, Some(4)), (Some(4), None)] {
        let (c, e) = edited_twins(0, 0);
        let stamp = |change: Change, minutes: Option<i64>| match minutes {
            Some(m) => at(change, m),
            None => match change {
                Change::Upsert(mut item) => {
                    item.modified = None;
                    Change::Upsert(item)
                }
                other => other,
            },
        };
        let ops = run(
            &rules(Direction::Both),
            &[],
            &[stamp(c, c_at)],
            &[stamp(e, e_at)],
        );
        assert_eq!(
            summary(&ops)[..2],
            [
                "conflict c1.department won by crm".to_owned(),
                "conflict c1.title won by crm".to_owned()
            ],
            "{c_at:?} {e_at:?}"
        );
    }
}

#[test]
fn first_link_policy_settles_a_first_link_by_the_conflict_policy() {
    let (c, e) = edited_twins(3, 5);
    let rules = KindRules {
        first_link: FirstLink::Policy,
        ..rules(Direction::Both)
    };
    let ops = run(&rules, &[], &[c], &[e]);
    assert_eq!(
        summary(&ops)[..2],
        [
            "conflict c1.department won by crm".to_owned(),
            "conflict c1.title won by crm".to_owned()
        ]
    );
    assert_eq!(linked_fields(&ops)["department"], json!("Sales"));
}

#[test]
fn a_linked_pair_merges_against_its_base_not_by_time() {
    // Once paired, a field changed on one side only is taken from that side, whatever the
    // times: the newer-record rule is for first links only.
    let (c, e) = edited_twins(9, 1);
    let base = with(
        with(
            contact("Ada", "L", "a@x.test"),
            "department",
            json!("Sales"),
        ),
        "title",
        json!("Countess"),
    );
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base)],
        &[c],
        &[e],
    );
    let merged = linked_fields(&ops);
    assert_eq!(
        (merged["department"].clone(), merged["title"].clone()),
        (json!("Marketing"), json!("Analyst"))
    );
    assert!(summary(&ops)
        .iter()
        .all(|s| !s.contains("conflict") && !s.contains("first link")));
}

#[test]
fn first_sync_matches_events_by_subject_start_and_end() {
    let t = |h| EventTime::At(Utc.with_ymd_and_hms(2026, 6, 2, h, 0, 0).unwrap());
    let ev = |subject: &str, h| Event::new(subject, t(h), t(h + 1)).to_fields();
    let rules = KindRules::default_for(ItemKind::Event);
    let ops = plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Event,
        rules: &rules,
        pairs: &[],
        crm_changes: Cow::Borrowed(&[crm("c1", ev("Review", 9)), crm("c2", ev("Review", 10))]),
        exchange_changes: Cow::Borrowed(&[
            exch("e1", ev("review", 9)),
            exch("e2", ev("Review", 11)),
        ]),
        now: now(),
    });
    let s = summary(&ops);
    assert!(s.contains(&"link c1/e1 SubjectAndTime".to_owned()), "{s:?}");
    assert!(
        s.contains(&"create on exchange from crm:c2".to_owned()),
        "{s:?}"
    );
    assert!(
        s.contains(&"create on crm from exchange:e2".to_owned()),
        "{s:?}"
    );
}

#[test]
fn change_on_one_side_updates_the_other() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", with(base, "title", json!("Dr")))],
        &[],
    );
    assert_eq!(
        summary(&ops),
        ["update exchange of c1: title", "link c1/e1 Merged"]
    );
    match &ops[0] {
        Op::Update {
            expected_version, ..
        } => assert_eq!(expected_version.as_deref(), Some("ck0")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn three_way_merge_takes_each_field_from_the_side_that_changed_it() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", with(base.clone(), "title", json!("Dr")))],
        &[exch("e1", with(base, "department", json!("Math")))],
    );
    assert_eq!(
        summary(&ops),
        [
            "update crm of c1: department",
            "update exchange of c1: title",
            "link c1/e1 Merged"
        ]
    );
    assert!(!ops.iter().any(|op| matches!(op, Op::Conflict { .. })));
}

#[test]
fn update_names_the_version_the_side_reported() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", with(base.clone(), "title", json!("Dr")))],
        &[exch("e1", with(base, "department", json!("Math")))],
    );
    let versions: Vec<Option<String>> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Update {
                expected_version, ..
            } => Some(expected_version.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        versions,
        [Some("v-c1".to_owned()), Some("ck-e1".to_owned())]
    );
}

fn both_changed_title(policy: ConflictPolicy, crm_minutes: i64, exchange_minutes: i64) -> Vec<Op> {
    let base = contact("Ada", "L", "a@x.test");
    let rules = KindRules {
        conflict: policy,
        ..rules(Direction::Both)
    };
    run(
        &rules,
        &[pair("c1", "e1", base.clone())],
        &[at(
            crm("c1", with(base.clone(), "title", json!("CRM title"))),
            crm_minutes,
        )],
        &[at(
            exch("e1", with(base, "title", json!("Exchange title"))),
            exchange_minutes,
        )],
    )
}

#[test]
fn conflict_policy_crm_wins() {
    let ops = both_changed_title(ConflictPolicy::CrmWins, 0, 5);
    assert_eq!(
        summary(&ops),
        [
            "conflict c1.title won by crm",
            "update exchange of c1: title",
            "link c1/e1 Merged"
        ]
    );
    assert_eq!(linked_fields(&ops)["title"], json!("CRM title"));
}

#[test]
fn conflict_policy_exchange_wins() {
    let ops = both_changed_title(ConflictPolicy::ExchangeWins, 5, 0);
    assert_eq!(
        summary(&ops),
        [
            "conflict c1.title won by exchange",
            "update crm of c1: title",
            "link c1/e1 Merged"
        ]
    );
    assert_eq!(linked_fields(&ops)["title"], json!("Exchange title"));
}

#[test]
fn conflict_policy_newest_wins() {
    assert_eq!(
        linked_fields(&both_changed_title(ConflictPolicy::NewestWins, 0, 5))["title"],
        json!("Exchange title")
    );
    assert_eq!(
        linked_fields(&both_changed_title(ConflictPolicy::NewestWins, 5, 0))["title"],
        json!("CRM title")
    );
    // A tie goes to the CRM.
    assert_eq!(
        linked_fields(&both_changed_title(ConflictPolicy::NewestWins, 3, 3))["title"],
        json!("CRM title")
    );
}

#[test]
fn conflict_records_both_values() {
    let ops = both_changed_title(ConflictPolicy::CrmWins, 0, 0);
    match &ops[0] {
        Op::Conflict { conflict, .. } => {
            assert_eq!(conflict.crm_value, Some(json!("CRM title")));
            assert_eq!(conflict.exchange_value, Some(json!("Exchange title")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_change_on_both_sides_links_without_writing() {
    let base = contact("Ada", "L", "a@x.test");
    let new = with(base.clone(), "title", json!("Dr"));
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base)],
        &[crm("c1", new.clone())],
        &[exch("e1", new)],
    );
    assert_eq!(summary(&ops), ["link c1/e1 SameContent"]);
}

#[test]
fn echo_of_last_synced_content_is_not_written_back() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", base.clone())],
        &[exch("e1", base)],
    );
    assert!(ops.is_empty(), "{ops:?}");
}

#[test]
fn formatting_only_difference_is_an_echo() {
    let base = contact("Ada", "L", "a@x.test");
    let reformatted = Contact {
        first_name: " Ada ".into(),
        last_name: "L".into(),
        emails: vec!["A@X.TEST".into()],
        ..Contact::default()
    }
    .to_fields();
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base)],
        &[],
        &[exch("e1", reformatted)],
    );
    assert!(ops.is_empty(), "{ops:?}");
}

#[test]
fn one_way_target_edits_are_overwritten_by_the_source() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::CrmToExchange),
        &[pair("c1", "e1", base.clone())],
        &[],
        &[exch("e1", with(base, "title", json!("Mine")))],
    );
    assert_eq!(
        summary(&ops),
        ["update exchange of c1: title", "link c1/e1 Merged"]
    );
    assert!(!linked_fields(&ops).contains_key("title"));
}

#[test]
fn one_way_records_only_on_the_target_are_left_alone() {
    let ops = run(
        &rules(Direction::CrmToExchange),
        &[],
        &[],
        &[exch("e1", contact("Own", "Contact", "o@x.test"))],
    );
    assert!(ops.is_empty(), "{ops:?}");
}

#[test]
fn unsynced_fields_are_neither_compared_nor_written() {
    let mut r = rules(Direction::Both);
    r.fields.remove("title");
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &r,
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", with(base, "title", json!("Dr")))],
        &[],
    );
    assert!(ops.is_empty(), "{ops:?}");
}

#[test]
fn match_keys_read_only_the_fields_that_sync() {
    let fields = with(
        contact("Ada", "Lovelace", "Ada@X.test"),
        "company",
        json!("Analytical"),
    );
    let item = Item {
        id: ItemId::Crm("c1".into()),
        fields,
        version: None,
        modified: None,
        origin: Some(ItemId::Exchange("e9".into())),
    };
    let everything = rules(Direction::Both);
    let keys = record_keys(ItemKind::Contact, &everything, &item);
    assert_eq!(keys, match_keys(ItemKind::Contact, &item));
    assert!(
        keys.contains(&(2, "ada\u{1f}lovelace\u{1f}analytical".to_owned())),
        "{keys:?}"
    );
    let mut no_company = rules(Direction::Both);
    no_company.fields.remove("company");
    no_company.fields.remove("emails");
    assert_eq!(
        record_keys(ItemKind::Contact, &no_company, &item),
        [
            (0, "crm\u{1f}c1".to_owned()),
            (0, "exchange\u{1f}e9".to_owned()),
            (2, "ada\u{1f}lovelace\u{1f}".to_owned()),
        ],
        "a company and an address that do not sync match nothing"
    );
}

#[test]
fn delete_propagates_in_the_configured_direction() {
    let base = contact("Ada", "L", "a@x.test");
    let gone = [Change::Deleted {
        id: ItemId::Crm("c1".into()),
    }];
    let p = [pair("c1", "e1", base)];
    assert_eq!(
        summary(&run(&rules(Direction::Both), &p, &gone, &[])),
        ["delete on exchange (c1/e1)"]
    );
    assert_eq!(
        summary(&run(&rules(Direction::CrmToExchange), &p, &gone, &[])),
        ["delete on exchange (c1/e1)"]
    );
    // The CRM is not a source under exchange_to_crm: its delete is undone from Exchange.
    assert_eq!(
        summary(&run(&rules(Direction::ExchangeToCrm), &p, &gone, &[])),
        ["recreate on crm from exchange:e1 replacing c1/e1"]
    );
}

#[test]
fn delete_in_exchange_propagates_to_crm_when_exchange_changes_flow() {
    let p = [pair("c1", "e1", contact("Ada", "L", "a@x.test"))];
    let gone = [Change::Deleted {
        id: ItemId::Exchange("e1".into()),
    }];
    assert_eq!(
        summary(&run(&rules(Direction::Both), &p, &[], &gone)),
        ["delete on crm (c1/e1)"]
    );
    assert_eq!(
        summary(&run(&rules(Direction::CrmToExchange), &p, &[], &gone)),
        ["recreate on exchange from crm:c1 replacing c1/e1"]
    );
}

#[test]
fn recreate_policy_brings_deleted_records_back() {
    let r = KindRules {
        deletes: DeleteMode::Recreate,
        ..rules(Direction::Both)
    };
    let p = [pair("c1", "e1", contact("Ada", "L", "a@x.test"))];
    let ops = run(
        &r,
        &p,
        &[],
        &[Change::Deleted {
            id: ItemId::Exchange("e1".into()),
        }],
    );
    assert_eq!(
        summary(&ops),
        ["recreate on exchange from crm:c1 replacing c1/e1"]
    );
}

#[test]
fn edit_wins_over_delete_when_both_sides_flow() {
    let base = contact("Ada", "L", "a@x.test");
    let p = [pair("c1", "e1", base.clone())];
    let ops = run(
        &rules(Direction::Both),
        &p,
        &[crm("c1", with(base, "title", json!("Dr")))],
        &[Change::Deleted {
            id: ItemId::Exchange("e1".into()),
        }],
    );
    assert_eq!(
        summary(&ops),
        ["recreate on exchange from crm:c1 replacing c1/e1"]
    );
    match &ops[0] {
        Op::Create { fields, .. } => assert_eq!(fields["title"], json!("Dr")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleted_on_both_sides_is_forgotten() {
    let p = [pair("c1", "e1", contact("Ada", "L", "a@x.test"))];
    let ops = run(
        &rules(Direction::Both),
        &p,
        &[Change::Deleted {
            id: ItemId::Crm("c1".into()),
        }],
        &[Change::Deleted {
            id: ItemId::Exchange("e1".into()),
        }],
    );
    assert_eq!(summary(&ops), ["forget c1/e1"]);
}

#[test]
fn crm_record_leaving_scope_removes_the_exchange_copy_only() {
    let p = [pair("c1", "e1", contact("Ada", "L", "a@x.test"))];
    let out = [Change::OutOfScope {
        id: ItemId::Crm("c1".into()),
    }];
    assert_eq!(
        summary(&run(&rules(Direction::Both), &p, &out, &[])),
        ["delete on exchange (c1/e1)"]
    );
    assert_eq!(
        summary(&run(&rules(Direction::ExchangeToCrm), &p, &out, &[])),
        ["forget c1/e1"]
    );
}

fn many_pairs(n: usize) -> Vec<SyncedPair> {
    (0..n)
        .map(|i| {
            pair(
                &format!("c{i:02}"),
                &format!("e{i:02}"),
                contact("N", &format!("L{i}"), ""),
            )
        })
        .collect()
}

fn deletes(ids: std::ops::Range<usize>) -> Vec<Change> {
    ids.map(|i| Change::Deleted {
        id: ItemId::Crm(format!("c{i:02}").as_str().into()),
    })
    .collect()
}

#[test]
fn mass_delete_safety_valve_pauses_the_user() {
    let ops = run(
        &rules(Direction::Both),
        &many_pairs(20),
        &deletes(0..11),
        &[],
    );
    assert_eq!(summary(&ops), ["pause user"]);
    match &ops[0] {
        Op::PauseUser { reason, .. } => {
            assert!(reason.contains("delete 11 of the user's 20"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn safety_valve_allows_deletes_up_to_the_share() {
    let ops = run(
        &rules(Direction::Both),
        &many_pairs(20),
        &deletes(0..10),
        &[],
    );
    assert_eq!(ops.len(), 10);
    assert!(ops.iter().all(|op| matches!(op, Op::Delete { .. })));
}

#[test]
fn safety_valve_ignores_small_numbers() {
    // Two of three contacts is over half, but below the minimum count the valve watches.
    let ops = run(&rules(Direction::Both), &many_pairs(3), &deletes(0..2), &[]);
    assert_eq!(ops.len(), 2);
}

#[test]
fn invalid_record_is_skipped_with_its_reason_and_the_pass_goes_on() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[
            Change::Invalid {
                id: ItemId::Crm("c1".into()),
                reason: "Birthdate is not a date".into(),
            },
            crm("c2", contact("Ada", "L", "a@x.test")),
        ],
        &[],
    );
    assert_eq!(
        summary(&ops),
        [
            "skip crm:c1: Birthdate is not a date",
            "create on exchange from crm:c2"
        ]
    );
}

#[test]
fn record_a_side_refuses_is_skipped_not_created() {
    let no_last_name = Contact {
        first_name: "Cher".into(),
        ..Contact::default()
    }
    .to_fields();
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[],
        &[exch("e1", no_last_name)],
    );
    assert_eq!(
        summary(&ops),
        ["skip exchange:e1: not created in crm: the CRM requires a contact's last name"]
    );
}

#[test]
fn unreadable_side_holds_the_pair_and_skips_both_changes() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[Change::Invalid {
            id: ItemId::Crm("c1".into()),
            reason: "bad".into(),
        }],
        &[exch("e1", with(base, "title", json!("Dr")))],
    );
    assert_eq!(
        summary(&ops),
        [
            "skip crm:c1: bad",
            "skip exchange:e1: its counterpart could not be read in this pass"
        ]
    );
}

#[test]
fn merged_record_that_cannot_be_written_writes_nothing() {
    let t = |h| EventTime::At(Utc.with_ymd_and_hms(2026, 6, 2, h, 0, 0).unwrap());
    let base = Event::new("Review", t(9), t(10)).to_fields();
    let mut rules = KindRules::default_for(ItemKind::Event);
    rules.window = None;
    let p = SyncedPair {
        kind: ItemKind::Event,
        ..pair("c1", "e1", base.clone())
    };
    // The CRM moved the start to 11:00 and Exchange the end to 10:30: each side is valid, but
    // the merge ends before it starts, so neither side is written and both are retried later.
    let ops = plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Event,
        rules: &rules,
        pairs: std::slice::from_ref(&p),
        crm_changes: Cow::Borrowed(&[crm("c1", with(base.clone(), "start", json!(t(11))))]),
        exchange_changes: Cow::Borrowed(&[exch(
            "e1",
            with(with(base, "end", json!(t(12))), "start", json!(t(9))),
        )]),
        now: now(),
    });
    assert!(
        !ops.iter().any(|op| matches!(op, Op::Skip { .. })),
        "{:?}",
        summary(&ops)
    );
    let start_only = with(p.content.clone(), "start", json!(t(11)));
    let end_only = with(
        p.content.clone(),
        "end",
        json!(EventTime::At(
            Utc.with_ymd_and_hms(2026, 6, 2, 10, 30, 0).unwrap()
        )),
    );
    let ops = plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Event,
        rules: &rules,
        pairs: std::slice::from_ref(&p),
        crm_changes: Cow::Borrowed(&[crm("c1", start_only)]),
        exchange_changes: Cow::Borrowed(&[exch("e1", end_only)]),
        now: now(),
    });
    assert_eq!(
        summary(&ops),
        [
            "skip crm:c1: merged record cannot be written to crm: end is before start",
            "skip exchange:e1: merged record cannot be written to crm: end is before start",
        ]
    );
}

fn event_rules() -> KindRules {
    KindRules::default_for(ItemKind::Event)
}

fn event_plan(rules: &KindRules, pairs: &[SyncedPair], crm_changes: &[Change]) -> Vec<Op> {
    plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Event,
        rules,
        pairs,
        crm_changes: Cow::Borrowed(crm_changes),
        exchange_changes: Cow::Borrowed(&[]),
        now: now(),
    })
}

#[test]
fn events_outside_the_window_do_not_sync() {
    let hour_on = |d: i64| {
        let start = now() + Duration::days(d);
        (
            EventTime::At(start),
            EventTime::At(start + Duration::hours(1)),
        )
    };
    let ev = |subject: &str, d: i64| {
        let (start, end) = hour_on(d);
        Event::new(subject, start, end).to_fields()
    };
    let (old, far, soon) = (ev("Old", -40), ev("Far", 400), ev("Soon", 3));
    let ops = event_plan(
        &event_rules(),
        &[],
        &[crm("c1", old), crm("c2", far), crm("c3", soon)],
    );
    assert_eq!(summary(&ops), ["create on exchange from crm:c3"]);
}

#[test]
fn recurring_series_reaching_into_the_window_syncs() {
    let start = EventTime::At(now() - Duration::days(100));
    let mut series = Event::new(
        "Weekly",
        start,
        EventTime::At(now() - Duration::days(100) + Duration::hours(1)),
    );
    series.recurrence = crate::model::Recurrence::from_rrule(
        "FREQ=WEEKLY",
        (now() - Duration::days(100)).date_naive(),
    )
    .ok();
    let ops = event_plan(&event_rules(), &[], &[crm("c1", series.to_fields())]);
    assert_eq!(summary(&ops), ["create on exchange from crm:c1"]);
}

#[test]
fn private_events_sync_only_when_configured() {
    let t = EventTime::At(now() + Duration::days(1));
    let mut private = Event::new(
        "Doctor",
        t,
        EventTime::At(now() + Duration::days(1) + Duration::hours(1)),
    );
    private.private = true;
    let change = [crm("c1", private.to_fields())];
    assert!(event_plan(&event_rules(), &[], &change).is_empty());
    let allowed = KindRules {
        sync_private: true,
        ..event_rules()
    };
    assert_eq!(
        summary(&event_plan(&allowed, &[], &change)),
        ["create on exchange from crm:c1"]
    );
}

#[test]
fn pair_whose_event_leaves_the_window_is_kept_untouched() {
    let ev = |d: i64| {
        let start = now() + Duration::days(d);
        Event::new(
            "Moved",
            EventTime::At(start),
            EventTime::At(start + Duration::hours(1)),
        )
        .to_fields()
    };
    let (base, moved) = (ev(2), ev(900));
    let p = SyncedPair {
        kind: ItemKind::Event,
        ..pair("c1", "e1", base)
    };
    assert!(event_plan(&event_rules(), &[p], &[crm("c1", moved)]).is_empty());
}

#[test]
fn plans_are_deterministic_whatever_the_input_order() {
    let a = [
        crm("c2", contact("B", "B", "b@x.test")),
        crm("c1", contact("A", "A", "a@x.test")),
    ];
    let b = [
        crm("c1", contact("A", "A", "a@x.test")),
        crm("c2", contact("B", "B", "b@x.test")),
    ];
    assert_eq!(
        run(&rules(Direction::Both), &[], &a, &[]),
        run(&rules(Direction::Both), &[], &b, &[])
    );
}

#[test]
fn snapshot_of_a_mixed_plan() {
    let base = contact("Ada", "L", "a@x.test");
    let ops = run(
        &rules(Direction::Both),
        &[
            pair("c1", "e1", base.clone()),
            pair("c2", "e2", contact("Bob", "M", "b@x.test")),
        ],
        &[
            crm("c1", with(base.clone(), "title", json!("Dr"))),
            crm("c3", contact("Cy", "N", "c@x.test")),
        ],
        &[
            exch("e1", with(base, "title", json!("Prof"))),
            Change::Deleted {
                id: ItemId::Exchange("e2".into()),
            },
        ],
    );
    insta::assert_json_snapshot!(ops);
}

#[test]
fn recreate_finds_its_lost_first_attempt_by_tag() {
    // Last pass recreated the deleted Exchange copy, but the answer was lost: the pair still
    // names the deleted record, and the new copy shows up tagged with its CRM source.
    let base = contact("Ada", "L", "a@x.test");
    let first_attempt = Change::Upsert(Item {
        id: ItemId::Exchange("e2".into()),
        fields: base.clone(),
        version: Some("ck-e2".into()),
        modified: None,
        origin: Some(ItemId::Crm("c1".into())),
    });
    let r = KindRules {
        deletes: DeleteMode::Recreate,
        ..rules(Direction::Both)
    };
    let ops = run(
        &r,
        &[pair("c1", "e1", base)],
        &[],
        &[
            Change::Deleted {
                id: ItemId::Exchange("e1".into()),
            },
            first_attempt,
        ],
    );
    assert_eq!(summary(&ops), ["forget c1/e1", "link c1/e2 Tag"]);
}

#[test]
fn failed_recreate_keeps_the_pair_for_the_next_pass() {
    let ops = [Op::Create {
        kind: ItemKind::Contact,
        on: Side::Exchange,
        source: ItemId::Crm("c1".into()),
        source_version: Some("v-c1".into()),
        fields: contact("Ada", "L", "a@x.test"),
        replaces: Some(("c1".into(), "e1".into())),
    }];
    let mut spent = ops.clone();
    let failed = settle(
        &mut spent,
        &[WriteResult::Failed {
            reason: "503".into(),
        }],
    );
    assert_eq!(
        spent, ops,
        "a failed create keeps its fields: the report names its record"
    );
    assert!(failed.removals.is_empty() && failed.upserts.is_empty());
    let retried: Vec<&ItemId> = failed.failures.iter().map(|f| &f.id).collect();
    assert_eq!(
        retried,
        [&ItemId::Crm("c1".into()), &ItemId::Exchange("e1".into())]
    );
    let done = settle(
        &mut ops.clone(),
        &[WriteResult::Done {
            id: ItemId::Exchange("e2".into()),
            version: Some("ck".into()),
        }],
    );
    assert_eq!(done.removals, [("c1".into(), "e1".into())]);
    assert_eq!(
        (
            done.upserts[0].exchange_id.as_str(),
            done.upserts[0].exchange_version.as_deref()
        ),
        ("e2", Some("ck"))
    );
    assert_eq!(done.upserts[0].content, contact("Ada", "L", "a@x.test"));
}

fn update_then_link() -> Vec<Op> {
    let base = contact("Ada", "L", "a@x.test");
    run(
        &rules(Direction::Both),
        &[pair("c1", "e1", base.clone())],
        &[crm("c1", with(base.clone(), "title", json!("Dr")))],
        &[exch("e1", with(base, "department", json!("Math")))],
    )
}

#[test]
fn settle_commits_a_link_only_when_all_its_writes_succeeded() {
    let ops = update_then_link();
    let done = |v: &str| WriteResult::Done {
        id: ItemId::Crm("c1".into()),
        version: Some(v.into()),
    };
    let all = settle(&mut ops.clone(), &[done("v9"), done("ck9")]);
    assert_eq!(all.upserts.len(), 1);
    assert_eq!(all.upserts[0].crm_version.as_deref(), Some("v9"));
    assert_eq!(all.upserts[0].exchange_version.as_deref(), Some("ck9"));
    assert_eq!(all.updated, 2);
    let half = settle(
        &mut ops.clone(),
        &[
            done("v9"),
            WriteResult::Failed {
                reason: "ErrorServerBusy".into(),
            },
        ],
    );
    assert!(half.upserts.is_empty(), "{half:?}");
    assert_eq!(half.failures.len(), 2);
    assert!(half.failures.iter().all(|f| f.reason == "ErrorServerBusy"));
}

#[test]
fn settle_treats_missing_results_as_failed_writes() {
    let ops = update_then_link();
    let cut_short = settle(
        &mut ops.clone(),
        &[WriteResult::Done {
            id: ItemId::Crm("c1".into()),
            version: None,
        }],
    );
    assert!(cut_short.upserts.is_empty());
    assert!(cut_short.failures[0]
        .reason
        .contains("before this write was confirmed"));
}

#[test]
fn settle_records_skips_as_failures_and_conflicts_of_committed_pairs() {
    let ops = both_changed_title(ConflictPolicy::CrmWins, 0, 0);
    let s = settle(
        &mut ops.clone(),
        &[WriteResult::Done {
            id: ItemId::Exchange("e1".into()),
            version: None,
        }],
    );
    assert_eq!(s.conflicts.len(), 1);
    let s = settle(
        &mut ops.clone(),
        &[WriteResult::Failed { reason: "x".into() }],
    );
    assert!(
        s.conflicts.is_empty(),
        "a conflict of an uncommitted pair is recorded when it is met again"
    );
    let skip = [Op::Skip {
        kind: ItemKind::Contact,
        id: ItemId::Crm("c7".into()),
        reason: "bad".into(),
    }];
    assert_eq!(
        settle(&mut skip.clone(), &[]).failures[0].id,
        ItemId::Crm("c7".into())
    );
}

#[test]
fn settle_keeps_a_first_sync_match_whose_writes_failed() {
    let ops = run(
        &rules(Direction::Both),
        &[],
        &[crm(
            "c1",
            with(contact("Ada", "L", "a@x.test"), "title", json!("Countess")),
        )],
        &[exch(
            "e1",
            with(contact("Ada", "L", "a@x.test"), "department", json!("Math")),
        )],
    );
    let s = settle(
        &mut ops.clone(),
        &[
            WriteResult::Failed {
                reason: "lost".into(),
            },
            WriteResult::Failed {
                reason: "lost".into(),
            },
        ],
    );
    // The pair is kept with an empty base, so the next pass merges the same two records again
    // instead of matching them anew.
    assert_eq!(s.upserts.len(), 1);
    assert_eq!(
        (
            s.upserts[0].crm_id.as_str(),
            s.upserts[0].exchange_id.as_str()
        ),
        ("c1", "e1")
    );
    assert!(s.upserts[0].content.is_empty());
    let again = run(
        &rules(Direction::Both),
        &s.upserts,
        &[crm(
            "c1",
            with(contact("Ada", "L", "a@x.test"), "title", json!("Countess")),
        )],
        &[exch(
            "e1",
            with(contact("Ada", "L", "a@x.test"), "department", json!("Math")),
        )],
    );
    assert_eq!(
        summary(&again),
        [
            "update crm of c1: department",
            "update exchange of c1: title",
            "link c1/e1 Merged"
        ]
    );
}

#[test]
fn slices_leave_unpaired_records_alone_or_take_the_links_given() {
    let r = rules(Direction::Both);
    let base = contact("Ada", "Lovelace", "ada@x.test");
    let pairs = [pair("c1", "e1", base.clone())];
    let crm_changes = [
        crm("c1", with(base.clone(), "title", json!("Countess"))),
        crm("c2", contact("Kim", "Lee", "kim@x.test")),
    ];
    let exchange_changes = [
        exch("e2", contact("Kim", "Lee", "kim@x.test")),
        exch("e3", contact("Pat", "Doe", "pat@x.test")),
    ];
    let input = |new_records| PlanInput {
        crm_lens: &Identity,
        new_records,
        kind: ItemKind::Contact,
        rules: &r,
        pairs: &pairs,
        crm_changes: Cow::Borrowed(&crm_changes),
        exchange_changes: Cow::Borrowed(&exchange_changes),
        now: now(),
    };
    // A slice of pairs plans the pair only.
    assert_eq!(
        summary(&plan_unchecked(input(NewRecords::Claim))),
        ["update exchange of c1: title", "link c1/e1 Merged"]
    );
    // With links found elsewhere, those are linked and nothing else is matched.
    let links = [(
        ItemId::Crm("c2".into()),
        ItemId::Exchange("e3".into()),
        LinkReason::Email,
    )];
    let ops = summary(&plan_unchecked(input(NewRecords::Linked(&links))));
    assert!(ops.contains(&"link c2/e3 Email".to_owned()), "{ops:?}");
    assert!(
        ops.contains(&"create on crm from exchange:e2".to_owned()),
        "{ops:?}"
    );
    // Matching in one go links by e-mail instead.
    let ops = summary(&plan_unchecked(input(NewRecords::Match)));
    assert!(ops.contains(&"link c2/e2 Email".to_owned()), "{ops:?}");
}

#[test]
fn the_valve_weighs_deletes_against_all_pairs() {
    let r = rules(Direction::Both);
    assert!(valve(ItemKind::Contact, &r, 0, 10).is_none());
    let many = r.min_deletes_for_valve.max(1) * 4;
    assert!(valve(ItemKind::Contact, &r, many, many).is_some());
    assert!(valve(ItemKind::Contact, &r, many, many * 1000).is_none());
}

mod first_link_props {
    use proptest::prelude::*;

    use super::*;

    const FIELDS: [&str; 4] = ["title", "department", "company", "notes"];

    /// A value per field, or none (a blank): what one side holds besides the match key.
    fn values() -> impl Strategy<Value = Vec<Option<u8>>> {
        prop::collection::vec(prop::option::of(0u8..4), FIELDS.len())
    }

    fn record(values: &[Option<u8>]) -> Fields {
        let mut fields = contact("Ada", "L", "a@x.test");
        for (name, value) in FIELDS.iter().zip(values) {
            if let Some(v) = value {
                fields = with(fields, name, json!(format!("{name} {v}")));
            }
        }
        fields
    }

    proptest! {
        #[test]
        fn a_first_link_never_loses_a_value_of_the_newer_record(
            crm_values in values(),
            exchange_values in values(),
            crm_minute in 0i64..3,
            exchange_minute in 0i64..3,
        ) {
            let c = at(crm("c1", record(&crm_values)), crm_minute);
            let e = at(exch("e1", record(&exchange_values)), exchange_minute);
            let ops = run(&rules(Direction::Both), &[], &[c], &[e]);
            let merged = linked_fields(&ops);
            let newer = match crm_minute.cmp(&exchange_minute) {
                std::cmp::Ordering::Greater => Some(&crm_values),
                std::cmp::Ordering::Less => Some(&exchange_values),
                std::cmp::Ordering::Equal => None,
            };
            for (i, name) in FIELDS.iter().enumerate() {
                let held = [crm_values[i], exchange_values[i]];
                let want = match (newer.and_then(|n| n[i]), held) {
                    // The newer record's value, when it has one.
                    (Some(v), _) => Some(v),
                    // Otherwise a blank is filled from whichever side holds the field; on a
                    // tie the policy (the CRM) settles a real difference.
                    (None, [Some(c), _]) => Some(c),
                    (None, [None, e]) => e,
                };
                let want = want.map(|v| json!(format!("{name} {v}")));
                prop_assert_eq!(merged.get(*name), want.as_ref(), "{}", name);
            }
            // Only a tie makes conflicts; otherwise differences are first-link merges.
            let conflicts = ops.iter().filter(|op| matches!(op,
                Op::Conflict { conflict, .. } if !conflict.first_link)).count();
            prop_assert!(newer.is_none() || conflicts == 0);
        }
    }
}

/// Rules that sync only Outlook events carrying the `Salesforce` category.
fn by_category() -> KindRules {
    KindRules {
        select: crate::config::EventSelect::Category,
        ..event_rules()
    }
}

fn meeting(categories: &[&str]) -> Fields {
    let start = now() + Duration::days(2);
    let mut e = Event::new(
        "Pipeline review",
        EventTime::At(start),
        EventTime::At(start + Duration::hours(1)),
    );
    e.categories = categories.iter().map(|c| (*c).to_owned()).collect();
    e.to_fields()
}

/// Plans events the way a pass does: the mailbox's reports go through the configuration's
/// selection first.
fn selected_plan(
    rules: &KindRules,
    pairs: &[SyncedPair],
    crm_changes: &[Change],
    exchange_changes: &[Change],
) -> Vec<Op> {
    let exchange: Vec<Change> = exchange_changes
        .iter()
        .cloned()
        .map(|c| rules.select_exchange(ItemKind::Event, c))
        .collect();
    plan(PlanInput {
        crm_lens: &Identity,
        new_records: NewRecords::Match,
        kind: ItemKind::Event,
        rules,
        pairs,
        crm_changes: Cow::Borrowed(crm_changes),
        exchange_changes: Cow::Borrowed(&exchange),
        now: now(),
    })
}

fn event_pair(content: Fields) -> SyncedPair {
    SyncedPair {
        kind: ItemKind::Event,
        ..pair("c1", "e1", content)
    }
}

#[test]
fn by_category_an_outlook_event_without_it_is_not_created_in_the_crm() {
    let rules = by_category();
    let ops = selected_plan(&rules, &[], &[], &[exch("e1", meeting(&["Personal"]))]);
    assert!(ops.is_empty(), "{:?}", summary(&ops));
    // Under the default selection the same event syncs.
    let ops = selected_plan(
        &event_rules(),
        &[],
        &[],
        &[exch("e1", meeting(&["Personal"]))],
    );
    assert_eq!(summary(&ops), ["create on crm from exchange:e1"]);
}

#[test]
fn by_category_an_outlook_event_carrying_it_is_created_without_the_category() {
    let rules = by_category();
    // Compared ignoring case and spaces, as Outlook does.
    let ops = selected_plan(
        &rules,
        &[],
        &[],
        &[exch("e1", meeting(&[" salesforce", "Blue"]))],
    );
    assert_eq!(summary(&ops), ["create on crm from exchange:e1"]);
    let Op::Create { fields, .. } = &ops[0] else {
        panic!("{ops:?}");
    };
    // Categories are no CRM field: they are not written to the CRM.
    assert!(!fields.contains_key("categories"), "{fields:?}");
}

#[test]
fn by_category_losing_it_forgets_the_pair_and_deletes_nothing() {
    let rules = by_category();
    let base = meeting(&[]);
    let p = [event_pair(base.clone())];
    let edited = with(meeting(&["Blue"]), "location", json!("Room 4"));
    let ops = selected_plan(&rules, &p, &[], &[exch("e1", edited)]);
    assert_eq!(summary(&ops), ["forget c1/e1"], "{ops:?}");
    assert!(!ops.iter().any(|op| matches!(op, Op::Delete { .. })));
    // Even when the CRM edits the event in the same pass, neither copy is deleted or written.
    let crm_edit = with(base, "subject", json!("Pipeline review (moved)"));
    let ops = selected_plan(
        &rules,
        &p,
        &[crm("c1", crm_edit)],
        &[exch("e1", meeting(&[]))],
    );
    assert!(
        !ops.iter().any(|op| matches!(
            op,
            Op::Delete { .. } | Op::Update { .. } | Op::Create { .. }
        )),
        "{:?}",
        summary(&ops)
    );
}

#[test]
fn by_category_regaining_it_links_the_crm_copy_again_without_a_duplicate() {
    let rules = by_category();
    // The pair was forgotten; the CRM copy exsync made is still there, and the category is
    // back on the Outlook event. Both are reported: first-sync matching links them.
    let ops = selected_plan(
        &rules,
        &[],
        &[crm("c1", meeting(&[]))],
        &[exch("e1", meeting(&["Salesforce"]))],
    );
    assert!(
        !ops.iter().any(|op| matches!(op, Op::Create { .. })),
        "{:?}",
        summary(&ops)
    );
    assert!(
        summary(&ops).iter().any(|s| s.starts_with("link c1/e1")),
        "{:?}",
        summary(&ops)
    );
}

#[test]
fn by_category_crm_copies_in_outlook_carry_the_category() {
    let rules = by_category();
    let ops = selected_plan(&rules, &[], &[crm("c1", meeting(&[]))], &[]);
    assert_eq!(summary(&ops), ["create on exchange from crm:c1"]);
    let Op::Create { fields, .. } = &ops[0] else {
        panic!("{ops:?}");
    };
    let mut written = fields.clone();
    rules.mark_for_exchange(ItemKind::Event, &mut written);
    let event = Event::from_fields(&written).unwrap();
    assert_eq!(event.categories, ["Salesforce"]);
    // The copy read back from Outlook is selected, so it keeps syncing.
    assert!(rules.unselected(ItemKind::Event, &written).is_none());
    // The planner marks its creates already, so marking again changes nothing.
    assert_eq!(&written, fields);
    // Categories an event has stay; none is added when every event syncs.
    let mut blue = meeting(&["Blue"]);
    rules.mark_for_exchange(ItemKind::Event, &mut blue);
    assert_eq!(
        Event::from_fields(&blue).unwrap().categories,
        ["Blue", "Salesforce"]
    );
    let mut all = meeting(&[]);
    event_rules().mark_for_exchange(ItemKind::Event, &mut all);
    assert!(!all.contains_key("categories"));
}

#[test]
fn by_category_an_outlook_copy_of_a_crm_event_carries_the_category() {
    let rules = by_category();
    let ops = selected_plan(&rules, &[], &[crm("c1", meeting(&[]))], &[]);
    assert_eq!(summary(&ops), ["create on exchange from crm:c1"]);
    let Op::Create { fields, .. } = &ops[0] else {
        panic!("{ops:?}");
    };
    assert_eq!(fields["categories"], json!(["Salesforce"]), "{fields:?}");
    // Without the category rule nothing is added.
    let ops = selected_plan(&event_rules(), &[], &[crm("c1", meeting(&[]))], &[]);
    let Op::Create { fields, .. } = &ops[0] else {
        panic!("{ops:?}");
    };
    assert!(!fields.contains_key("categories"));
}

#[test]
fn by_category_a_recreated_outlook_copy_carries_the_category() {
    // One way from the CRM: a deleted Outlook copy comes back, still selected.
    let rules = KindRules {
        direction: Direction::CrmToExchange,
        ..by_category()
    };
    let ops = selected_plan(
        &rules,
        &[event_pair(meeting(&[]))],
        &[],
        &[Change::Deleted {
            id: ItemId::Exchange(ExchangeId::new("e1")),
        }],
    );
    let created: Vec<&Fields> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Create {
                on: Side::Exchange,
                fields,
                ..
            } => Some(fields),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{:?}", summary(&ops));
    assert_eq!(created[0]["categories"], json!(["Salesforce"]));
}
