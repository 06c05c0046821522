//! The control API (JSON over the same HTTPS port, `Authorization: Bearer <token>`): seed
//! mailboxes, folders and items (one or a batch a call), change a folder as its user would
//! (rename, move, delete), grant or revoke impersonation (one mailbox or a list), set
//! Autodiscover redirects, faults and throttling, read counters.

// Errors here are finished HTTP replies, made at most once per control request; boxing
// them would only add noise.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{json, Value};

use super::faults::Faults;
use super::ops::{self, Ctx};
use super::outlook_view;
use super::server::{App, Counters};
use super::store::{self, Folder, Id};
use super::xml;

type Body = Full<Bytes>;

fn json_reply(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn bad(msg: impl Into<String>) -> Response<Body> {
    json_reply(StatusCode::BAD_REQUEST, &json!({"error": msg.into()}))
}

fn token_ok(app: &App, header: Option<&str>) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let Ok(st) = app.state.lock() else {
        return false;
    };
    let want = st.control_token.as_bytes();
    let given = given.trim().as_bytes();
    given.len() == want.len() && given.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response<Body>> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMailbox {
    address: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    impersonation: bool,
    /// The owner's time zone (IANA); UTC when left out.
    #[serde(default)]
    time_zone: Option<String>,
}

/// The owner's time zone of one mailbox, or of every mailbox when `mailbox` is left out, as
/// an admin sets it with `Set-MailboxRegionalConfiguration -TimeZone`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxZone {
    #[serde(default)]
    mailbox: Option<String>,
    time_zone: String,
}

/// Whose calendar to show as Outlook shows it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarView {
    mailbox: String,
}

/// Impersonation rights for `mailbox`, or for every mailbox in `mailboxes` at once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    #[serde(default)]
    mailbox: Option<String>,
    #[serde(default)]
    mailboxes: Vec<String>,
    allowed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFolder {
    mailbox: String,
    parent: String,
    name: String,
    #[serde(default)]
    class: Option<String>,
}

/// What a user does to one of their folders in Outlook: rename it, move it under another
/// folder, or delete it (`"deleteditems"`: into Deleted Items, as Outlook's delete does;
/// `"hard"`: gone with its items, as a permanent delete or emptying Deleted Items leaves it).
/// At most one of the three at a time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderChange {
    mailbox: String,
    /// A folder id from an earlier answer (or a distinguished folder name, which is refused).
    folder: String,
    #[serde(default)]
    rename: Option<String>,
    /// A distinguished folder name or a folder id.
    #[serde(default)]
    move_to: Option<String>,
    #[serde(default)]
    delete: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    mailbox: String,
    /// A distinguished folder name (`contacts`) or a folder id from an earlier answer.
    folder: String,
    /// The item element as EWS would carry it in CreateItem, e.g. `<t:Contact>…</t:Contact>`.
    xml: String,
}

/// Many items in one call and one commit, for seeding.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItems {
    items: Vec<NewItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redirect {
    #[serde(default)]
    mailbox: Option<String>,
    #[serde(default)]
    redirect_addr: Option<String>,
    #[serde(default)]
    redirect_url: Option<String>,
    /// The mailbox moved to Exchange Online: EWS no longer finds it (unset: unchanged).
    #[serde(default)]
    remote: Option<bool>,
    /// Location of the plain-HTTP Autodiscover 302 (null: the simulator's own https URL).
    #[serde(default)]
    http_redirect: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleSettings {
    #[serde(default)]
    max_concurrency: Option<usize>,
    #[serde(default)]
    back_off_ms: Option<u64>,
}

pub(crate) fn handle(
    app: &App,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Response<Body> {
    if !token_ok(app, token) {
        return json_reply(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "missing or wrong control token"}),
        );
    }
    let route = path.trim_start_matches("/_control").trim_end_matches('/');
    let res = match (method.clone(), route) {
        (Method::GET, "/state") => state_summary(app),
        (Method::POST, "/mailboxes") => add_mailbox(app, body),
        (Method::PUT, "/mailboxes/time_zone") => set_time_zone(app, body),
        (Method::POST, "/calendar/view") => calendar_view(app, body),
        (Method::POST, "/impersonation") => grant(app, body),
        (Method::POST, "/folders") => add_folder(app, body),
        (Method::POST, "/folders/change") => change_folder(app, body),
        (Method::POST, "/items") => add_item(app, body),
        (Method::POST, "/items/batch") => add_items(app, body),
        (Method::POST, "/autodiscover") => redirect(app, body),
        (Method::GET, "/faults") => app
            .faults
            .lock()
            .map(|f| json_reply(StatusCode::OK, &json!(*f)))
            .map_err(|_| bad("lock")),
        (Method::PUT, "/faults") => parse::<Faults>(body).and_then(|f| {
            let mut g = app.faults.lock().map_err(|_| bad("lock"))?;
            *g = f;
            Ok(json_reply(StatusCode::OK, &json!(*g)))
        }),
        (Method::DELETE, "/faults") => app
            .faults
            .lock()
            .map(|mut f| {
                *f = Faults::default();
                json_reply(StatusCode::OK, &json!(*f))
            })
            .map_err(|_| bad("lock")),
        (Method::GET, "/counters") => app
            .counters
            .lock()
            .map(|c| json_reply(StatusCode::OK, &json!(*c)))
            .map_err(|_| bad("lock")),
        (Method::DELETE, "/counters") => app
            .counters
            .lock()
            .map(|mut c| {
                *c = Counters::default();
                json_reply(StatusCode::OK, &json!(*c))
            })
            .map_err(|_| bad("lock")),
        (Method::GET, "/throttle") => {
            let (max, back_off) = app.throttle.settings();
            Ok(json_reply(
                StatusCode::OK,
                &json!({"max_concurrency": max, "back_off_ms": back_off}),
            ))
        }
        (Method::PUT, "/throttle") => parse::<ThrottleSettings>(body).map(|t| {
            app.throttle.configure(t.max_concurrency, t.back_off_ms);
            let (max, back_off) = app.throttle.settings();
            json_reply(
                StatusCode::OK,
                &json!({"max_concurrency": max, "back_off_ms": back_off}),
            )
        }),
        _ => Ok(json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no control route {method} {route}")}),
        )),
    };
    res.unwrap_or_else(|r| r)
}

/// Makes durable what this control request did (since sequence `since`) to the mailboxes
/// `keys`, before the reply goes out.
fn commit(
    app: &App,
    st: &mut store::State,
    since: u64,
    keys: &[String],
) -> Result<(), Response<Body>> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    let failed = |e: anyhow::Error| {
        json_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": format!("persisting failed: {e:#}")}),
        )
    };
    app.persistence
        .lock()
        .map_err(|_| bad("lock"))?
        .commit(st, since, &keys)
        .map_err(failed)
}

fn state_summary(app: &App) -> Result<Response<Body>, Response<Body>> {
    let st = app.state.lock().map_err(|_| bad("lock"))?;
    let mailboxes: Vec<Value> = st
        .mailboxes
        .values()
        .map(|m| {
            json!({
                "address": m.address,
                "display_name": m.display_name,
                "impersonation": m.impersonation,
                "redirect_addr": m.redirect_addr,
                "redirect_url": m.redirect_url,
                "remote": m.remote,
                "time_zone": outlook_view::mailbox_zone(m).name(),
                "folders": m.folders.values().map(|f| json!({
                    "id": Id::Folder { mailbox: m.key(), id: f.id }.encode(),
                    "name": f.name,
                    "class": f.class,
                    "parent": f.parent.map(|p| Id::Folder { mailbox: m.key(), id: p }.encode()),
                    "distinguished": f.distinguished,
                    "items": m.items.values().filter(|i| i.folder == f.id).count(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"mailboxes": mailboxes, "seq": st.seq}),
    ))
}

fn add_mailbox(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let m: NewMailbox = parse(body)?;
    if !m.address.contains('@') || m.address.trim() != m.address {
        return Err(bad("address must be an SMTP address"));
    }
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let since = st.seq;
    let name = m
        .display_name
        .unwrap_or_else(|| m.address.split('@').next().unwrap_or("").to_string());
    let zone = match &m.time_zone {
        Some(zone) => Some(outlook_view::checked_zone(zone).map_err(bad)?),
        None => None,
    };
    if !st.add_mailbox(&m.address, &name, m.impersonation) {
        return Err(json_reply(
            StatusCode::CONFLICT,
            &json!({"error": "mailbox exists"}),
        ));
    }
    if let (Some(zone), Some(mb)) = (zone, st.mailbox_mut(&m.address)) {
        mb.time_zone = zone;
    }
    commit(app, &mut st, since, std::slice::from_ref(&m.address))?;
    Ok(json_reply(
        StatusCode::CREATED,
        &json!({"address": m.address}),
    ))
}

fn set_time_zone(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let z: MailboxZone = parse(body)?;
    let zone = outlook_view::checked_zone(&z.time_zone).map_err(bad)?;
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let since = st.seq;
    let keys: Vec<String> = match &z.mailbox {
        Some(m) => vec![m.clone()],
        None => st.mailboxes.values().map(|m| m.address.clone()).collect(),
    };
    for key in &keys {
        let mb = st.mailbox_mut(key).ok_or_else(|| {
            json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such mailbox"}))
        })?;
        mb.time_zone = zone.clone();
    }
    commit(app, &mut st, since, &keys)?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"time_zone": zone, "mailboxes": keys.len()}),
    ))
}

fn calendar_view(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let v: CalendarView = parse(body)?;
    let st = app.state.lock().map_err(|_| bad("lock"))?;
    let mb = st
        .mailbox(&v.mailbox)
        .ok_or_else(|| json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such mailbox"})))?;
    Ok(json_reply(StatusCode::OK, &outlook_view::calendar_view(mb)))
}

fn grant(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let g: Grant = parse(body)?;
    let one = g.mailbox.is_some();
    let keys: Vec<String> = g.mailbox.into_iter().chain(g.mailboxes).collect();
    if keys.is_empty() {
        return Err(bad("say mailbox or mailboxes"));
    }
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    // All or nothing: an unknown mailbox refuses the whole list before anything changes.
    if let Some(unknown) = keys.iter().find(|k| st.mailbox(k).is_none()) {
        return Err(json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no such mailbox {unknown}")}),
        ));
    }
    let since = st.seq;
    for k in &keys {
        if let Some(mb) = st.mailbox_mut(k) {
            mb.impersonation = g.allowed;
        }
    }
    commit(app, &mut st, since, &keys)?;
    let answer = if one && keys.len() == 1 {
        json!({"mailbox": keys[0], "allowed": g.allowed})
    } else {
        json!({"mailboxes": keys, "allowed": g.allowed})
    };
    Ok(json_reply(StatusCode::OK, &answer))
}

fn folder_id_by_ref(st: &store::State, mailbox: &str, r: &str) -> Option<u64> {
    let mb = st.mailbox(mailbox)?;
    if let Some(f) = mb.distinguished(r) {
        return Some(f.id);
    }
    match Id::decode(r) {
        Some(Id::Folder { mailbox: m, id }) if m == mb.key() && mb.folders.contains_key(&id) => {
            Some(id)
        }
        _ => None,
    }
}

fn add_folder(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let f: NewFolder = parse(body)?;
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let parent = folder_id_by_ref(&st, &f.mailbox, &f.parent).ok_or_else(|| {
        json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "no such parent folder"}),
        )
    })?;
    let since = st.seq;
    let seq = st.next_seq();
    let mb = st
        .mailbox_mut(&f.mailbox)
        .ok_or_else(|| json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such mailbox"})))?;
    if mb
        .folders
        .values()
        .any(|x| x.parent == Some(parent) && x.name.eq_ignore_ascii_case(&f.name))
    {
        return Err(json_reply(
            StatusCode::CONFLICT,
            &json!({"error": "folder exists"}),
        ));
    }
    mb.folders.insert(
        seq,
        Folder {
            id: seq,
            parent: Some(parent),
            name: f.name,
            class: f.class.unwrap_or_else(|| "IPF.Note".into()),
            distinguished: None,
            created_seq: seq,
            seq,
        },
    );
    let id = Id::Folder {
        mailbox: mb.key(),
        id: seq,
    }
    .encode();
    commit(app, &mut st, since, &[f.mailbox])?;
    Ok(json_reply(StatusCode::CREATED, &json!({"id": id})))
}

/// Changes a folder as its user would in Outlook (see [`FolderChange`]); answers the folder's
/// id, name and parent afterwards (`null` name and parent once it is gone).
fn change_folder(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let c: FolderChange = parse(body)?;
    let asked = [c.rename.is_some(), c.move_to.is_some(), c.delete.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if asked != 1 {
        return Err(bad("say one of rename, move_to or delete"));
    }
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let not_found = || json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such folder"}));
    let id = folder_id_by_ref(&st, &c.mailbox, &c.folder).ok_or_else(not_found)?;
    let to = match &c.move_to {
        Some(r) => Some(folder_id_by_ref(&st, &c.mailbox, r).ok_or_else(not_found)?),
        None => None,
    };
    let since = st.seq;
    let seq = st.next_seq();
    let mb = st.mailbox_mut(&c.mailbox).ok_or_else(not_found)?;
    if mb
        .folders
        .get(&id)
        .is_some_and(|f| f.distinguished.is_some())
    {
        return Err(json_reply(
            StatusCode::CONFLICT,
            &json!({"error": "a distinguished folder cannot be renamed, moved or deleted"}),
        ));
    }
    let refused = |e: crate::exchange::soap::EwsError| {
        json_reply(
            StatusCode::CONFLICT,
            &json!({"error": format!("{}: {}", e.code, e.text)}),
        )
    };
    let taken = |mb: &store::Mailbox, parent: Option<u64>, name: &str| {
        mb.folders
            .values()
            .any(|x| x.parent == parent && x.id != id && x.name.eq_ignore_ascii_case(name))
    };
    match (&c.rename, to, c.delete.as_deref()) {
        (Some(name), _, _) => {
            let parent = mb.folders.get(&id).and_then(|f| f.parent);
            if name.trim().is_empty() || taken(mb, parent, name) {
                return Err(bad("the name is empty or a sibling has it"));
            }
            if let Some(f) = mb.folders.get_mut(&id) {
                f.name = name.trim().to_string();
                f.seq = seq;
            }
        }
        (None, Some(to), _) => {
            let mut below = Vec::new();
            collect_below(mb, id, &mut below);
            let name = mb
                .folders
                .get(&id)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            if to == id || below.contains(&to) || taken(mb, Some(to), &name) {
                return Err(bad("cannot move the folder there"));
            }
            if let Some(f) = mb.folders.get_mut(&id) {
                f.parent = Some(to);
                f.seq = seq;
            }
        }
        (None, None, Some("deleteditems")) => {
            ops::folders::move_to_deleted_items(mb, id, seq).map_err(refused)?;
        }
        (None, None, Some("hard")) => ops::folders::remove_folder_tree(mb, id, seq),
        _ => return Err(bad("delete is \"deleteditems\" or \"hard\"")),
    }
    let now = mb.folders.get(&id).map(|f| (f.name.clone(), f.parent));
    let key = mb.key();
    commit(app, &mut st, since, std::slice::from_ref(&key))?;
    let encode = |id: u64| {
        Id::Folder {
            mailbox: key.clone(),
            id,
        }
        .encode()
    };
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "id": encode(id),
            "name": now.as_ref().map(|(n, _)| n.clone()),
            "parent": now.and_then(|(_, p)| p).map(encode),
        }),
    ))
}

fn collect_below(mb: &store::Mailbox, root: u64, out: &mut Vec<u64>) {
    for f in mb.folders.values().filter(|f| f.parent == Some(root)) {
        out.push(f.id);
        collect_below(mb, f.id, out);
    }
}

fn add_item(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let it: NewItem = parse(body)?;
    let el = xml::parse(&it.xml).map_err(|e| bad(format!("xml: {e:#}")))?;
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let folder = folder_id_by_ref(&st, &it.mailbox, &it.folder)
        .ok_or_else(|| json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such folder"})))?;
    let key = it.mailbox.to_ascii_lowercase();
    let since = st.seq;
    let created = create_item(&mut st, key.clone(), &el, folder)?;
    commit(app, &mut st, since, &[key])?;
    Ok(json_reply(StatusCode::CREATED, &created))
}

/// Creates one item as CreateItem would; answers its id and change key.
fn create_item(
    st: &mut store::State,
    key: String,
    el: &xml::Element,
    folder: u64,
) -> Result<Value, Response<Body>> {
    let mut ctx = Ctx {
        st,
        mailbox: key,
        dirty: false,
    };
    let created = ops::items::create_one(&mut ctx, el, Some(folder))
        .map_err(|e| bad(format!("{}: {}", e.code, e.text)))?;
    // The answer is the CreateItem fragment; hand back just the id attributes.
    let doc = xml::parse(&created).map_err(|e| bad(format!("{e:#}")))?;
    let id_el = doc.children.first().and_then(|k| k.child("ItemId"));
    Ok(json!({
        "id": id_el.and_then(|e| e.attr("Id")),
        "change_key": id_el.and_then(|e| e.attr("ChangeKey")),
    }))
}

/// `{"items": [{mailbox, folder, xml}, …]}`: every item checked first (so a bad one changes
/// nothing), then all created and committed together. Answers `{"items": [{id, change_key}]}`
/// in the order given.
fn add_items(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let batch: NewItems = parse(body)?;
    let mut st = app.state.lock().map_err(|_| bad("lock"))?;
    let mut checked = Vec::with_capacity(batch.items.len());
    for (i, it) in batch.items.iter().enumerate() {
        let el = xml::parse(&it.xml).map_err(|e| bad(format!("item {i}: xml: {e:#}")))?;
        let folder = folder_id_by_ref(&st, &it.mailbox, &it.folder).ok_or_else(|| {
            json_reply(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("item {i}: no such folder")}),
            )
        })?;
        checked.push((it.mailbox.to_ascii_lowercase(), el, folder));
    }
    let since = st.seq;
    let mut answers = Vec::with_capacity(checked.len());
    let mut keys: Vec<String> = Vec::new();
    let mut outcome = Ok(());
    for (key, el, folder) in checked {
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        match create_item(&mut st, key, &el, folder) {
            Ok(a) => answers.push(a),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    // What was created before a refusal stays, so it is committed either way.
    commit(app, &mut st, since, &keys)?;
    outcome?;
    Ok(json_reply(
        StatusCode::CREATED,
        &json!({ "items": answers }),
    ))
}

fn redirect(app: &App, body: &[u8]) -> Result<Response<Body>, Response<Body>> {
    let r: Redirect = parse(body)?;
    if let Some(h) = &r.http_redirect {
        let mut g = app.http_redirect.lock().map_err(|_| bad("lock"))?;
        *g = Some(h.clone());
    }
    if let Some(m) = &r.mailbox {
        let mut st = app.state.lock().map_err(|_| bad("lock"))?;
        let since = st.seq;
        let mb = st.mailbox_mut(m).ok_or_else(|| {
            json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such mailbox"}))
        })?;
        mb.redirect_addr = r.redirect_addr.clone();
        mb.redirect_url = r.redirect_url.clone();
        if let Some(remote) = r.remote {
            mb.remote = remote;
        }
        commit(app, &mut st, since, std::slice::from_ref(m))?;
    }
    Ok(json_reply(StatusCode::OK, &json!({"ok": true})))
}
