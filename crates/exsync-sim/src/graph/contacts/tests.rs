#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use http::Method;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::*;
use crate::graph::call::{Prefer, Query};

const USER_URL: &str = "https://127.0.0.1:1/v1.0/users/u1";
const GUID: &str = "{8ECCC264-6880-4EBE-992F-8888D2EEAA1D}";

/// One request as the front would build it.
#[derive(Default)]
struct Req {
    path: String,
    query: Vec<(String, String)>,
    max_page: Option<usize>,
    if_match: Option<String>,
    body: Option<Value>,
    now: Option<DateTime<Utc>>,
}

impl Req {
    fn new(path: &str) -> Req {
        Req {
            path: path.to_owned(),
            ..Req::default()
        }
    }

    /// A link the store handed out, taken apart as the front would.
    fn link(url: &str) -> Req {
        let rest = url.strip_prefix(USER_URL).unwrap().trim_start_matches('/');
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut req = Req::new(path);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
            req.query.push((decode(k), decode(v)));
        }
        req
    }

    fn q(mut self, name: &str, value: &str) -> Req {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    fn body(mut self, body: Value) -> Req {
        self.body = Some(body);
        self
    }

    fn if_match(mut self, tag: &str) -> Req {
        self.if_match = Some(tag.to_owned());
        self
    }

    fn page(mut self, size: usize) -> Req {
        self.max_page = Some(size);
        self
    }

    fn send(&self, store: &mut Contacts, method: Method) -> Answer {
        let path: Vec<String> = self.path.split('/').map(str::to_owned).collect();
        let mut query = Query::default();
        for (k, v) in &self.query {
            match k.as_str() {
                "$select" => {
                    query.select = Some(v.split(',').map(|s| s.trim().to_owned()).collect())
                }
                "$filter" => query.filter = Some(v.clone()),
                "$expand" => query.expand = Some(v.clone()),
                "$orderby" => query.orderby = Some(v.clone()),
                "$top" => query.top = Some(v.parse().unwrap()),
                "$skip" => query.skip = Some(v.parse().unwrap()),
                _ => {
                    query.params.insert(k.clone(), v.clone());
                }
            }
        }
        let prefer = Prefer {
            max_page_size: self.max_page,
            ..Prefer::default()
        };
        let call = Call {
            method: &method,
            path: &path,
            query: &query,
            prefer: &prefer,
            if_match: self.if_match.as_deref(),
            body: self.body.as_ref(),
            now: self.now.unwrap_or_else(Utc::now),
            user_url: USER_URL,
        };
        store.handle(&call).expect("a contacts path")
    }

    fn get(&self, store: &mut Contacts) -> Answer {
        self.send(store, Method::GET)
    }

    fn post(&self, store: &mut Contacts) -> Answer {
        self.send(store, Method::POST)
    }

    fn patch(&self, store: &mut Contacts) -> Answer {
        self.send(store, Method::PATCH)
    }

    fn delete(&self, store: &mut Contacts) -> Answer {
        self.send(store, Method::DELETE)
    }
}

fn ok(answer: Answer, status: u16) -> Value {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    answer.body.unwrap_or(Value::Null)
}

fn code(answer: &Answer) -> String {
    answer.body.as_ref().unwrap()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn crm_id() -> String {
    format!("String {GUID} Name CrmId")
}

fn sync_folder(store: &mut Contacts) -> String {
    let folder = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "Salesforce_Sync"}))
            .post(store),
        201,
    );
    folder["id"].as_str().unwrap().to_owned()
}

fn add(store: &mut Contacts, folder: &str, given: &str, crm: &str) -> Value {
    ok(
        Req::new(&format!("contactFolders/{folder}/contacts"))
            .body(json!({"givenName": given, "surname": "Test",
                         "emailAddresses": [{"address": format!("{given}@contoso.test")}],
                         "singleValueExtendedProperties": [{"id": crm_id(), "value": crm}]}))
            .post(store),
        201,
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn foreign_paths_are_not_ours() {
    let mut store = Contacts::default();
    let path = vec!["events".to_owned()];
    let (query, prefer) = (Query::default(), Prefer::default());
    let call = Call {
        method: &Method::GET,
        path: &path,
        query: &query,
        prefer: &prefer,
        if_match: None,
        body: None,
        now: Utc::now(),
        user_url: USER_URL,
    };
    assert!(store.handle(&call).is_none());
}

#[test]
fn folders_create_list_filter_rename_delete() {
    let mut store = Contacts::default();
    let id = sync_folder(&mut store);
    assert!(id.starts_with("AAMkA"));
    let dup = Req::new("contactFolders")
        .body(json!({"displayName": "salesforce_sync"}))
        .post(&mut store);
    assert_eq!(
        (dup.status, code(&dup).as_str()),
        (409, "ErrorFolderExists")
    );
    ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "Other"}))
            .post(&mut store),
        201,
    );

    let all = ok(Req::new("contactFolders").get(&mut store), 200);
    assert_eq!(all["value"].as_array().unwrap().len(), 2);
    let root = all["value"][0]["parentFolderId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(root, store.root);
    let found = ok(
        Req::new("contactFolders")
            .q("$filter", "displayName eq 'Salesforce_Sync'")
            .get(&mut store),
        200,
    );
    assert_eq!(ids(&found), std::slice::from_ref(&id));
    assert_eq!(
        found["value"][0],
        json!({"id": id, "displayName": "Salesforce_Sync", "parentFolderId": root})
    );

    // A child folder is listed under its parent only, and reachable both ways.
    let child = ok(
        Req::new(&format!("contactFolders/{id}/childFolders"))
            .body(json!({"displayName": "Leads"}))
            .post(&mut store),
        201,
    );
    let child_id = child["id"].as_str().unwrap().to_owned();
    assert_eq!(child["parentFolderId"], id);
    let children = ok(
        Req::new(&format!("contactFolders/{id}/childFolders")).get(&mut store),
        200,
    );
    assert_eq!(ids(&children), std::slice::from_ref(&child_id));
    ok(
        Req::new(&format!("contactFolders/{id}/childFolders/{child_id}")).get(&mut store),
        200,
    );
    ok(
        Req::new(&format!("contactFolders/{child_id}")).get(&mut store),
        200,
    );
    assert_eq!(
        ids(&ok(Req::new("contactFolders").get(&mut store), 200)).len(),
        2
    );

    let renamed = ok(
        Req::new(&format!("contactFolders/{id}"))
            .body(json!({"displayName": "Sync"}))
            .patch(&mut store),
        200,
    );
    assert_eq!(renamed["displayName"], "Sync");
    let clash = Req::new(&format!("contactFolders/{id}"))
        .body(json!({"displayName": "OTHER"}))
        .patch(&mut store);
    assert_eq!(clash.status, 409);

    // Deleting a folder takes its children and their contacts with it.
    let contact = add(&mut store, &child_id, "Ann", "003A");
    let contact_id = contact["id"].as_str().unwrap();
    ok(
        Req::new(&format!("contactFolders/{id}")).delete(&mut store),
        204,
    );
    assert_eq!(
        Req::new(&format!("contactFolders/{id}"))
            .get(&mut store)
            .status,
        404
    );
    assert_eq!(
        Req::new(&format!("contactFolders/{child_id}"))
            .get(&mut store)
            .status,
        404
    );
    assert_eq!(
        Req::new(&format!("contacts/{contact_id}"))
            .get(&mut store)
            .status,
        404
    );
    let root_delete = Req::new(&format!("contactFolders/{root}")).delete(&mut store);
    assert_eq!(root_delete.status, 400);
}

#[test]
fn folder_bodies_and_paths_are_checked() {
    let mut store = Contacts::default();
    let id = sync_folder(&mut store);
    for body in [
        json!({}),
        json!({"displayName": ""}),
        json!({"displayName": 3}),
        json!({"displayName": "x", "colour": "red"}),
        json!({"displayName": "x".repeat(300)}),
        json!("Sync"),
    ] {
        let answer = Req::new("contactFolders")
            .body(body.clone())
            .post(&mut store);
        assert_eq!(answer.status, 400, "{body}");
    }
    let missing = Req::new("contactFolders/AAMkAAAAAAAAAAAAAAAAAAAAAAAA").get(&mut store);
    assert_eq!(
        (missing.status, code(&missing).as_str()),
        (404, "ErrorItemNotFound")
    );
    let malformed = Req::new("contactFolders/not!an!id").get(&mut store);
    assert_eq!(
        (malformed.status, code(&malformed).as_str()),
        (400, "ErrorInvalidIdMalformed")
    );
    let odd = Req::new(&format!("contactFolders/{id}/messages")).get(&mut store);
    assert_eq!(odd.status, 400);
    let bad_select = Req::new("contactFolders")
        .q("$select", "colour")
        .get(&mut store);
    assert_eq!(bad_select.status, 400);
    let selected = ok(
        Req::new(&format!("contactFolders/{id}"))
            .q("$select", "displayName")
            .get(&mut store),
        200,
    );
    assert_eq!(
        selected,
        json!({"id": id, "displayName": "Salesforce_Sync"})
    );
    assert_eq!(
        Req::new("contactFolders")
            .send(&mut store, Method::PUT)
            .status,
        405
    );
}

#[test]
fn contact_crud_with_etags() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let created = add(&mut store, &folder, "Ann", "003A");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["parentFolderId"], folder);
    assert_eq!(created["displayName"], "Ann Test");
    assert!(created["changeKey"].as_str().unwrap().len() > 10);
    assert_eq!(
        created["@odata.etag"],
        json!(format!("W/\"{}\"", created["changeKey"].as_str().unwrap()))
    );
    // Written inline, extended properties are not echoed without $expand.
    assert!(created.get("singleValueExtendedProperties").is_none());

    let path = format!("contactFolders/{folder}/contacts/{id}");
    let read = ok(Req::new(&path).get(&mut store), 200);
    assert_eq!(read, created);
    // The default folder's /contacts reaches a contact in any folder.
    ok(Req::new(&format!("contacts/{id}")).get(&mut store), 200);

    let etag = created["@odata.etag"].as_str().unwrap().to_owned();
    let later = Utc::now() + chrono::Duration::seconds(90);
    let mut patch = Req::new(&path)
        .body(json!({"jobTitle": "CFO"}))
        .if_match(&etag);
    patch.now = Some(later);
    let patched = ok(patch.patch(&mut store), 200);
    assert_eq!(patched["jobTitle"], "CFO");
    assert_eq!(patched["givenName"], "Ann");
    assert_ne!(patched["changeKey"], created["changeKey"]);
    assert_ne!(
        patched["lastModifiedDateTime"],
        created["lastModifiedDateTime"]
    );
    assert_eq!(patched["createdDateTime"], created["createdDateTime"]);

    let stale = Req::new(&path)
        .body(json!({"jobTitle": "CEO"}))
        .if_match(&etag)
        .patch(&mut store);
    assert_eq!(stale.status, 412);
    let stale_delete = Req::new(&path).if_match(&etag).delete(&mut store);
    assert_eq!(stale_delete.status, 412);
    ok(Req::new(&path).if_match("*").patch_empty(&mut store), 200);
    let current = ok(Req::new(&path).get(&mut store), 200);
    let fresh = current["@odata.etag"].as_str().unwrap();
    ok(Req::new(&path).if_match(fresh).delete(&mut store), 204);
    assert_eq!(Req::new(&path).get(&mut store).status, 404);
    assert_eq!(Req::new(&path).delete(&mut store).status, 404);
}

impl Req {
    fn patch_empty(self, store: &mut Contacts) -> Answer {
        self.body(json!({})).patch(store)
    }
}

#[test]
fn contact_in_another_folder_is_not_found_through_this_one() {
    let mut store = Contacts::default();
    let a = sync_folder(&mut store);
    let b = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "B"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = add(&mut store, &a, "Ann", "1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = Req::new(&format!("contactFolders/{b}/contacts/{id}")).get(&mut store);
    assert_eq!(wrong.status, 404);
    // The default folder's list holds only its own contacts.
    ok(
        Req::new("contacts")
            .body(json!({"givenName": "Root"}))
            .post(&mut store),
        201,
    );
    let root_list = ok(Req::new("contacts").get(&mut store), 200);
    assert_eq!(root_list["value"].as_array().unwrap().len(), 1);
    assert_eq!(root_list["value"][0]["parentFolderId"], store.root.as_str());
}

#[test]
fn bad_contact_bodies_are_400_and_write_nothing() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let path = format!("contactFolders/{folder}/contacts");
    for body in [
        json!({"givenName": "A", "favouriteColour": "red"}),
        json!({"givenName": ["A"]}),
        json!({"givenName": "A", "singleValueExtendedProperties": [{"id": "bogus", "value": "1"}]}),
        json!({"givenName": "A", "singleValueExtendedProperties": {"id": crm_id()}}),
    ] {
        let answer = Req::new(&path).body(body.clone()).post(&mut store);
        assert_eq!(answer.status, 400, "{body}");
    }
    let unknown = Req::new(&path)
        .body(json!({"favouriteColour": "red"}))
        .post(&mut store);
    let message = unknown.body.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with(
        "The property 'favouriteColour' does not exist on type 'microsoft.graph.contact'"
    ));
    assert!(ok(Req::new(&path).get(&mut store), 200)["value"]
        .as_array()
        .unwrap()
        .is_empty());

    let id = add(&mut store, &folder, "Ann", "1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad_patch = Req::new(&format!("{path}/{id}"))
        .body(json!({"surname": "B", "birthday": 5}))
        .patch(&mut store);
    assert_eq!(bad_patch.status, 400);
    assert_eq!(
        ok(Req::new(&format!("{path}/{id}")).get(&mut store), 200)["surname"],
        "Test"
    );
}

#[test]
fn select_filter_and_expand_of_extended_properties() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let path = format!("contactFolders/{folder}/contacts");
    let ann = add(&mut store, &folder, "Ann", "003AAA");
    add(&mut store, &folder, "Bob", "003BBB");
    let id = crm_id();

    let found = ok(
        Req::new(&path)
            .q(
                "$filter",
                &format!("singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '003AAA')"),
            )
            .q("$select", "givenName,surname")
            .q(
                "$expand",
                &format!("singleValueExtendedProperties($filter=id eq '{id}')"),
            )
            .get(&mut store),
        200,
    );
    assert_eq!(
        found["value"],
        json!([{"@odata.etag": ann["@odata.etag"], "id": ann["id"], "givenName": "Ann",
                "surname": "Test",
                "singleValueExtendedProperties": [{"id": id, "value": "003AAA"}]}])
    );

    let by_mail = ok(
        Req::new(&path)
            .q(
                "$filter",
                "emailAddresses/any(a: a/address eq 'bob@contoso.test')",
            )
            .get(&mut store),
        200,
    );
    assert_eq!(by_mail["value"][0]["givenName"], "Bob");
    let by_name = ok(
        Req::new(&path)
            .q("$filter", "givenName eq 'Ann' or displayName eq 'Bob Test'")
            .get(&mut store),
        200,
    );
    assert_eq!(by_name["value"].as_array().unwrap().len(), 2);

    // One contact read with an expand of a property it lacks: the collection is left out.
    let other = format!("String {GUID} Name Missing");
    let single = ok(
        Req::new(&format!("{path}/{}", ann["id"].as_str().unwrap()))
            .q(
                "$expand",
                &format!("singleValueExtendedProperties($filter=id eq '{other}')"),
            )
            .get(&mut store),
        200,
    );
    assert!(single.get("singleValueExtendedProperties").is_none());

    // PATCH writes an extended property in place.
    let ann_path = format!("{path}/{}", ann["id"].as_str().unwrap());
    ok(
        Req::new(&ann_path)
            .body(json!({"singleValueExtendedProperties": [{"id": id, "value": "003ZZZ"}]}))
            .patch(&mut store),
        200,
    );
    let read = ok(
        Req::new(&ann_path)
            .q(
                "$expand",
                &format!("singleValueExtendedProperties($filter=id eq '{id}')"),
            )
            .get(&mut store),
        200,
    );
    assert_eq!(read["singleValueExtendedProperties"][0]["value"], "003ZZZ");

    for (name, value) in [
        ("$select", "givenName,nonsense"),
        ("$filter", "givenName gt 'A'"),
        ("$filter", "birthday eq 'x'"),
        ("$expand", "photo"),
        ("$expand", "singleValueExtendedProperties"),
        ("$orderby", "birthday"),
        ("$search", "\"ann\""),
        ("$skiptoken", "x"),
        ("$orderby", "displayName sideways"),
    ] {
        let answer = Req::new(&path).q(name, value).get(&mut store);
        assert_eq!(answer.status, 400, "{name}={value}");
    }
}

#[test]
fn lists_page_with_top_skip_and_next_links() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let mut made = Vec::new();
    for i in 0..25 {
        made.push(
            add(&mut store, &folder, &format!("P{i:02}"), "x")["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let path = format!("contactFolders/{folder}/contacts");
    // Outlook's default page is 10.
    let mut page = ok(
        Req::new(&path).q("$select", "givenName").get(&mut store),
        200,
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        seen.extend(ids(&page));
        assert!(
            page["value"][0].get("surname").is_none(),
            "$select kept in nextLink"
        );
        let Some(next) = page["@odata.nextLink"].as_str() else {
            break;
        };
        assert!(next.starts_with(&format!("{USER_URL}/{path}?")), "{next}");
        page = ok(Req::link(next).get(&mut store), 200);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made);

    let top = ok(
        Req::new(&path)
            .q("$top", "7")
            .q("$skip", "20")
            .get(&mut store),
        200,
    );
    assert_eq!(ids(&top), made[20..]);
    assert!(top.get("@odata.nextLink").is_none());
    let prefer = ok(Req::new(&path).page(20).get(&mut store), 200);
    assert_eq!(ids(&prefer).len(), 20);
    assert!(prefer.get("@odata.count").is_none());

    // $count counts every match, not the page.
    let counted = ok(
        Req::new(&path)
            .q("$count", "true")
            .q("$top", "3")
            .get(&mut store),
        200,
    );
    assert_eq!(counted["@odata.count"], 25);
    assert_eq!(ids(&counted).len(), 3);
    let filtered = ok(
        Req::new(&path)
            .q("$count", "true")
            .q("$filter", "startswith(givenName,'P1')")
            .get(&mut store),
        200,
    );
    assert_eq!(filtered["@odata.count"], 10);
    assert_eq!(
        Req::new(&path).q("$count", "yes").get(&mut store).status,
        400
    );

    // $orderby sorts before paging, and the next link keeps it.
    let desc = ok(
        Req::new(&path)
            .q("$orderby", "givenName desc")
            .q("$top", "20")
            .get(&mut store),
        200,
    );
    let mut reversed = made.clone();
    reversed.reverse();
    assert_eq!(ids(&desc), reversed[..20]);
    let rest = ok(
        Req::link(desc["@odata.nextLink"].as_str().unwrap()).get(&mut store),
        200,
    );
    assert_eq!(ids(&rest), reversed[20..]);
}

#[test]
fn folders_sort_by_display_name() {
    let mut store = Contacts::default();
    for name in ["beta", "Alpha", "gamma"] {
        ok(
            Req::new("contactFolders")
                .body(json!({"displayName": name}))
                .post(&mut store),
            201,
        );
    }
    let sorted = ok(
        Req::new("contactFolders")
            .q("$orderby", "displayName")
            .get(&mut store),
        200,
    );
    let names: Vec<&str> = sorted["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "beta", "gamma"]);
}

/// Follows a delta round to its deltaLink, returning every entry and the deltaLink.
fn delta_round(store: &mut Contacts, first: Req) -> (Vec<Value>, String, usize) {
    let mut page = ok(first.get(store), 200);
    let mut entries = Vec::new();
    let mut pages = 1;
    loop {
        entries.extend(page["value"].as_array().unwrap().iter().cloned());
        if let Some(delta) = page["@odata.deltaLink"].as_str() {
            assert!(page.get("@odata.nextLink").is_none());
            return (entries, delta.to_owned(), pages);
        }
        let next = page["@odata.nextLink"].as_str().unwrap().to_owned();
        page = ok(Req::link(&next).page(2).get(store), 200);
        pages += 1;
    }
}

#[test]
fn delta_first_round_then_changes_and_removals() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let mut made = Vec::new();
    for name in ["A", "B", "C", "D", "E"] {
        made.push(
            add(&mut store, &folder, name, "x")["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let delta_path = format!("contactFolders/{folder}/contacts/delta");
    let (entries, delta_link, pages) = delta_round(
        &mut store,
        Req::new(&delta_path).q("$select", "givenName").page(2),
    );
    assert_eq!(pages, 3);
    let got: Vec<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(got, made);
    assert_eq!(entries[0]["givenName"], "A");
    assert!(entries[0].get("surname").is_none());
    assert!(delta_link.starts_with(&format!("{USER_URL}/{delta_path}?$deltatoken=")));

    // Nothing changed: an empty page and a new deltaLink.
    let (none, delta_link, _) = delta_round(&mut store, Req::link(&delta_link));
    assert!(none.is_empty());

    let b_path = format!("contactFolders/{folder}/contacts/{}", made[1]);
    ok(
        Req::new(&b_path)
            .body(json!({"givenName": "Bee"}))
            .patch(&mut store),
        200,
    );
    ok(
        Req::new(&format!("contactFolders/{folder}/contacts/{}", made[3])).delete(&mut store),
        204,
    );
    let new = add(&mut store, &folder, "F", "x")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A $select on a later call is ignored: the token's selection stands.
    let (changes, delta_link, _) =
        delta_round(&mut store, Req::link(&delta_link).q("$select", "surname"));
    assert_eq!(
        changes,
        vec![
            json!({"@odata.type": "#microsoft.graph.contact", "id": made[1],
                   "@odata.etag": changes[0]["@odata.etag"], "givenName": "Bee"}),
            json!({"@odata.type": "#microsoft.graph.contact", "id": made[3],
                   "@removed": {"reason": "deleted"}}),
            json!({"@odata.type": "#microsoft.graph.contact", "id": new,
                   "@odata.etag": changes[2]["@odata.etag"], "givenName": "F"}),
        ]
    );

    // A token from before an expiry is 410; a damaged one is 400; a token of another
    // folder is refused.
    store.expire_delta_tokens();
    let gone = Req::link(&delta_link).get(&mut store);
    assert_eq!(
        (gone.status, code(&gone).as_str()),
        (410, "syncStateNotFound")
    );
    let mut damaged = Req::link(&delta_link);
    damaged.query[0].1.push('x');
    assert_eq!(damaged.get(&mut store).status, 400);
    let (_, fresh, _) = delta_round(&mut store, Req::new(&delta_path));
    let mut other = Req::link(&fresh);
    other.path = "contacts/delta".to_owned();
    assert_eq!(other.get(&mut store).status, 400);
    // An empty $deltatoken starts over.
    let (all, _, _) = delta_round(&mut store, Req::new(&delta_path).q("$deltatoken", ""));
    assert_eq!(all.len(), 5);
}

#[test]
fn delta_writes_during_paging_wait_for_the_next_round() {
    let mut store = Contacts::default();
    let mut made = Vec::new();
    for i in 0..4 {
        let c = ok(
            Req::new("contacts")
                .body(json!({"givenName": format!("N{i}")}))
                .post(&mut store),
            201,
        );
        made.push(c["id"].as_str().unwrap().to_owned());
    }
    let first = ok(Req::new("contacts/delta()").page(2).get(&mut store), 200);
    assert_eq!(ids(&first), made[..2]);
    // Change the first (already returned) and add one while the round is under way.
    ok(
        Req::new(&format!("contacts/{}", made[0]))
            .body(json!({"surname": "X"}))
            .patch(&mut store),
        200,
    );
    let late = ok(
        Req::new("contacts")
            .body(json!({"givenName": "Late"}))
            .post(&mut store),
        201,
    );
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{USER_URL}/contacts/delta?$skiptoken=")));
    let second = ok(Req::link(next).page(2).get(&mut store), 200);
    assert_eq!(ids(&second), made[2..]);
    let delta_link = second["@odata.deltaLink"].as_str().unwrap();
    let (later, _, _) = delta_round(&mut store, Req::link(delta_link));
    let later_ids: Vec<&str> = later.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(later_ids, [made[0].as_str(), late["id"].as_str().unwrap()]);
}

#[test]
fn delta_refuses_filter_and_expand_and_bad_tokens() {
    let mut store = Contacts::default();
    for (name, value) in [
        ("$filter", "givenName eq 'a'"),
        (
            "$expand",
            "singleValueExtendedProperties($filter=id eq 'x')",
        ),
        ("$select", "nonsense"),
        ("$deltatoken", "garbage"),
        ("$skiptoken", "garbage"),
    ] {
        let answer = Req::new("contacts/delta").q(name, value).get(&mut store);
        assert_eq!(answer.status, 400, "{name}");
    }
    assert_eq!(
        Req::new("contacts/delta")
            .send(&mut store, Method::POST)
            .status,
        405
    );
}

#[test]
fn state_survives_serde_round_trip() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let id = add(&mut store, &folder, "Ann", "003A")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, delta_link, _) = delta_round(
        &mut store,
        Req::new(&format!("contactFolders/{folder}/contacts/delta")),
    );
    let saved = serde_json::to_string(&store).unwrap();
    let mut back: Contacts = serde_json::from_str(&saved).unwrap();
    let read = ok(
        Req::new(&format!("contacts/{id}"))
            .q(
                "$expand",
                &format!(
                    "singleValueExtendedProperties($filter=id eq '{}')",
                    crm_id()
                ),
            )
            .get(&mut back),
        200,
    );
    assert_eq!(read["singleValueExtendedProperties"][0]["value"], "003A");
    let (none, _, _) = delta_round(&mut back, Req::link(&delta_link));
    assert!(none.is_empty());
    // The placeholder's empty state loads as a fresh store.
    let empty: Contacts = serde_json::from_str("{}").unwrap();
    assert!(empty.folders.contains(&empty.root));
}

#[test]
fn contacts_under_child_folders_and_moves_out_of_a_folder() {
    let mut store = Contacts::default();
    let parent = sync_folder(&mut store);
    let child = ok(
        Req::new(&format!("contactFolders/{parent}/childFolders"))
            .body(json!({"displayName": "Leads"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let nested = format!("contactFolders/{parent}/childFolders/{child}/contacts");
    let made = ok(
        Req::new(&nested)
            .body(json!({"givenName": "Kid"}))
            .post(&mut store),
        201,
    );
    assert_eq!(made["parentFolderId"], child.as_str());
    let id = made["id"].as_str().unwrap().to_owned();
    ok(Req::new(&format!("{nested}/{id}")).get(&mut store), 200);
    // The parent's contacts do not include its child folder's.
    assert!(ids(&ok(
        Req::new(&format!("contactFolders/{parent}/contacts")).get(&mut store),
        200
    ))
    .is_empty());
    let (entries, delta_link, _) = delta_round(&mut store, Req::new(&format!("{nested}/delta")));
    assert_eq!(entries.len(), 1);
    assert!(delta_link.starts_with(&format!(
        "{USER_URL}/contactFolders/{child}/contacts/delta?"
    )));

    // A contact moved out of the folder is @removed from its delta and new in the other's.
    let (_, parent_link, _) = delta_round(
        &mut store,
        Req::new(&format!("contactFolders/{parent}/contacts/delta")),
    );
    let new_id = store.move_contact(&id, &parent, Utc::now()).unwrap();
    assert_ne!(new_id, id);
    let (gone, _, _) = delta_round(&mut store, Req::link(&delta_link));
    assert_eq!(
        gone,
        [json!({"@odata.type": "#microsoft.graph.contact", "id": id,
                              "@removed": {"reason": "deleted"}})]
    );
    let (arrived, _, _) = delta_round(&mut store, Req::link(&parent_link));
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0]["id"], new_id.as_str());
    assert_eq!(arrived[0]["parentFolderId"], parent.as_str());
    assert_eq!(
        Req::new(&format!("contacts/{id}")).get(&mut store).status,
        404
    );
    assert!(store.move_contact(&id, &parent, Utc::now()).is_err());
}

#[test]
fn folder_delta_reports_new_renamed_and_deleted_folders() {
    let mut store = Contacts::default();
    let a = sync_folder(&mut store);
    let (first, link, _) = delta_round(&mut store, Req::new("contactFolders/delta()"));
    assert_eq!(first.len(), 1, "the default folder is not listed");
    assert_eq!(first[0]["@odata.type"], "#microsoft.graph.contactFolder");
    assert_eq!(first[0]["displayName"], "Salesforce_Sync");
    ok(
        Req::new(&format!("contactFolders/{a}"))
            .body(json!({"displayName": "Renamed"}))
            .patch(&mut store),
        200,
    );
    let b = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "B"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        Req::new(&format!("contactFolders/{b}")).delete(&mut store),
        204,
    );
    let (changes, link, _) = delta_round(&mut store, Req::link(&link));
    assert_eq!(changes[0]["displayName"], "Renamed");
    assert_eq!(
        changes[1],
        json!({"@odata.type": "#microsoft.graph.contactFolder", "id": b,
                                  "@removed": {"reason": "deleted"}})
    );
    store.expire_delta_tokens();
    assert_eq!(Req::link(&link).get(&mut store).status, 410);
    assert_eq!(
        Req::new("contactFolders/delta")
            .send(&mut store, Method::POST)
            .status,
        405
    );
}

/// The ids a lookup by CRM id finds in a folder.
fn by_crm(store: &mut Contacts, folder: &str, value: &str) -> Vec<String> {
    let id = crm_id();
    ids(&ok(
        Req::new(&format!("contactFolders/{folder}/contacts"))
            .q(
                "$filter",
                &format!("singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value eq '{value}')"),
            )
            .get(store),
        200,
    ))
}

#[test]
fn lookups_by_crm_id_follow_every_write() {
    let mut store = Contacts::default();
    let folder = sync_folder(&mut store);
    let other = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "Other"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = add(&mut store, &folder, "A", "003A")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = add(&mut store, &folder, "B", "003a")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add(&mut store, &other, "C", "003A");
    // Values compare without regard to case; other folders are not searched; creation order.
    assert_eq!(by_crm(&mut store, &folder, "003A"), [a.clone(), b.clone()]);
    // The rest of the filter still applies.
    let id = crm_id();
    let narrowed = ids(&ok(
        Req::new(&format!("contactFolders/{folder}/contacts"))
            .q(
                "$filter",
                &format!("givenName eq 'B' and singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value eq '003A')"),
            )
            .get(&mut store),
        200,
    ));
    assert_eq!(narrowed, std::slice::from_ref(&b));

    ok(
        Req::new(&format!("contactFolders/{folder}/contacts/{a}"))
            .body(json!({"singleValueExtendedProperties": [{"id": id, "value": "003Z"}]}))
            .patch(&mut store),
        200,
    );
    assert_eq!(
        by_crm(&mut store, &folder, "003A"),
        std::slice::from_ref(&b)
    );
    assert_eq!(
        by_crm(&mut store, &folder, "003z"),
        std::slice::from_ref(&a)
    );
    ok(
        Req::new(&format!("contactFolders/{folder}/contacts/{b}")).delete(&mut store),
        204,
    );
    assert!(by_crm(&mut store, &folder, "003A").is_empty());

    // After a reload the index is rebuilt from the contacts.
    let mut back: Contacts = serde_json::from_str(&serde_json::to_string(&store).unwrap()).unwrap();
    assert_eq!(by_crm(&mut back, &folder, "003Z"), std::slice::from_ref(&a));
    // A move takes the contact's values along.
    let moved = back.move_contact(&a, &other, Utc::now()).unwrap();
    assert!(by_crm(&mut back, &folder, "003Z").is_empty());
    assert_eq!(by_crm(&mut back, &other, "003Z"), [moved]);
    // A deleted folder's entries go with it.
    ok(
        Req::new(&format!("contactFolders/{other}")).delete(&mut back),
        204,
    );
    let again = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "Other"}))
            .post(&mut back),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(by_crm(&mut back, &again, "003A").is_empty());
}

#[test]
fn a_folder_moves_under_another_keeping_its_id_and_the_listing_counts_contacts() {
    let mut store = Contacts::default();
    let ours = sync_folder(&mut store);
    add(&mut store, &ours, "Ada", "003A");
    let clients = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "Clients"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let moved = store.move_folder(&ours, &clients).unwrap();
    assert_eq!(moved["id"], ours.as_str());
    assert_eq!(moved["parentFolderId"], clients.as_str());
    // Found by its id where it is now, with its contact.
    let got = ok(
        Req::new(&format!("contactFolders/{ours}")).get(&mut store),
        200,
    );
    assert_eq!(got["parentFolderId"], clients.as_str());
    let listing = store.folder_listing();
    let folders = listing["folders"].as_array().unwrap();
    let entry = folders.iter().find(|f| f["id"] == ours.as_str()).unwrap();
    assert_eq!(
        (
            entry["name"].as_str(),
            entry["parent"].as_str(),
            entry["items"].as_u64()
        ),
        (Some("Salesforce_Sync"), Some(clients.as_str()), Some(1))
    );
    assert_eq!(listing["root"], store.root.as_str());
    assert!(folders.iter().any(|f| f["id"] == store.root.as_str()));

    // Not under itself, not the default folder, not beside a folder of the same name, not
    // under a folder that is not there.
    let status = |r: Result<Value, Answer>| r.err().map(|a| a.status);
    let root = store.root.clone();
    assert_eq!(status(store.move_folder(&clients, &ours)), Some(400));
    assert_eq!(status(store.move_folder(&clients, &clients)), Some(400));
    assert_eq!(status(store.move_folder(&root, &clients)), Some(403));
    let twin = ok(
        Req::new("contactFolders")
            .body(json!({"displayName": "salesforce_sync"}))
            .post(&mut store),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status(store.move_folder(&twin, &clients)), Some(409));
    assert_eq!(
        status(store.move_folder(&twin, "AAMkAGZvbGRlcg==")),
        Some(404)
    );
    assert_eq!(
        status(store.move_folder("AAMkAGZvbGRlcg==", &clients)),
        Some(404)
    );
}

#[test]
fn a_deleted_folder_goes_into_deleted_items_with_its_contacts_and_keeps_its_id() {
    let mut store = Contacts::default();
    let ours = sync_folder(&mut store);
    add(&mut store, &ours, "Ada", "003A");
    let bin = store.bin.clone();

    let moved = store.delete_to_bin(&ours).unwrap();
    assert_eq!(moved["id"], ours.as_str());
    assert_eq!(moved["parentFolderId"], bin.as_str());
    // Still a contact folder, read by its id, with its contact and its delta; no longer
    // among the folders under Contacts; Deleted Items itself is no contact folder.
    let got = ok(
        Req::new(&format!("contactFolders/{ours}")).get(&mut store),
        200,
    );
    assert_eq!(got["parentFolderId"], bin.as_str());
    let delta = ok(
        Req::new(&format!("contactFolders/{ours}/contacts/delta")).get(&mut store),
        200,
    );
    assert_eq!(delta["value"].as_array().unwrap().len(), 1, "{delta}");
    let listed = ok(Req::new("contactFolders").get(&mut store), 200);
    assert!(listed["value"].as_array().unwrap().is_empty(), "{listed}");
    ok(
        Req::new(&format!("contactFolders/{bin}")).get(&mut store),
        404,
    );
    assert_eq!(store.folder_listing()["bin"], bin.as_str());

    // A second folder of the name deleted after it is numbered; the default one stays.
    let again = sync_folder(&mut store);
    let second = store.delete_to_bin(&again).unwrap();
    assert_eq!(second["displayName"], "Salesforce_Sync1");
    let root = store.root.clone();
    assert_eq!(
        store.delete_to_bin(&root).err().map(|a| a.status),
        Some(400)
    );
    assert_eq!(
        store
            .delete_to_bin("AAMkAGZvbGRlcg==")
            .err()
            .map(|a| a.status),
        Some(404)
    );
}
