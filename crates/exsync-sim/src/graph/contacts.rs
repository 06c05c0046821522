//! The contacts of one mailbox: the default Contacts folder, the contact folders under it
//! (`contactFolders`, `childFolders`, as exsync's `Salesforce_Sync`) and their contacts, with
//! CRUD, `$select`/`$filter`/`$expand` of extended properties, paging and per-folder delta.

mod delta;
mod entity;
mod folders;
mod index;

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::entity::{check_body, Contact};
use self::folders::Folder;
use self::index::ExtIndex;
use super::call::{Answer, Call};
use super::odata::extended::{parse_expand, ExtendedProps};
use super::odata::filter::{self, Filter, Schema};
use super::odata::tracked::Tracked;
use super::odata::{
    check_if_match, check_select, link, new_item_id, page_size, project, LIST_DEFAULT_PAGE,
    LIST_MAX_PAGE,
};

/// Contacts one folder may hold; a runaway client meets a 400 long before memory does.
const MAX_CONTACTS_PER_FOLDER: usize = 250_000;
/// Longest `$skip` followed.
const MAX_SKIP: usize = 1_000_000;

/// Every contact folder of the mailbox and their contacts.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Contacts {
    /// The default Contacts folder: what `/contacts` means and where top-level
    /// `contactFolders` live.
    root: String,
    /// The mailbox's Deleted Items, where Outlook's Delete puts a contact folder. It is a mail
    /// folder, so no contact folder route serves it; only the folders in it name it.
    bin: String,
    /// Every folder, the default one included, by id.
    folders: Tracked<Folder>,
    /// Each folder's contacts, by folder id; each folder keeps its own change log, which is
    /// what its `contacts/delta` reads.
    contacts: HashMap<String, Tracked<Contact>>,
    /// Which folder a contact is in, so `/contacts/{id}` finds it anywhere.
    home: HashMap<String, String>,
    /// Extended property values → contacts (derived; rebuilt after a load).
    #[serde(skip)]
    index: ExtIndex,
}

impl Default for Contacts {
    fn default() -> Self {
        let root = new_item_id();
        let mut folders = Tracked::default();
        // The default folder's parent is the mailbox's root folder, which this store never
        // serves; an id for it keeps `parentFolderId` Graph-shaped.
        folders.put(&root, Folder::new("Contacts", &new_item_id()));
        let mut contacts = HashMap::new();
        contacts.insert(root.clone(), Tracked::default());
        Contacts {
            root,
            bin: new_item_id(),
            folders,
            contacts,
            home: HashMap::new(),
            index: ExtIndex::default(),
        }
    }
}

/// 400 for a path segment no resource has.
fn no_segment(segment: &str) -> Answer {
    Answer::error(
        400,
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
    )
}

fn method_not_allowed(method: &Method) -> Answer {
    Answer::error(
        405,
        "ErrorInvalidRequest",
        &format!("The method '{method}' is not allowed on this resource."),
    )
}

/// Exchange refuses an id that is not one of its ids before looking for it.
fn check_id(id: &str) -> Result<(), Answer> {
    match URL_SAFE.decode(id) {
        Ok(bytes) if bytes.len() >= 8 => Ok(()),
        _ => Err(Answer::error(
            400,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        )),
    }
}

fn is(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

/// Most `$orderby` keys followed.
const MAX_ORDER_KEYS: usize = 4;

/// What a plain list asks for, checked: `$top`/`$skip` paging, a `$filter` and an
/// `$orderby` (property names as the entity spells them, `true` for descending).
struct Listing {
    page: usize,
    skip: usize,
    filter: Option<Filter>,
    order: Vec<(&'static str, bool)>,
    /// `$count=true`: the number of matches goes in `@odata.count`.
    count: bool,
}

/// One page of a plain list.
struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
    count: Option<usize>,
}

/// `prop [asc|desc], …` over the properties a list may be sorted by.
fn parse_orderby(
    raw: Option<&str>,
    orderable: &[&'static str],
) -> Result<Vec<(&'static str, bool)>, Answer> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let bad = |why: String| Answer::error(400, "ErrorInvalidUrlQueryOrderBy", &why);
    let keys: Vec<&str> = raw.split(',').collect();
    if keys.len() > MAX_ORDER_KEYS {
        return Err(bad(format!(
            "$orderby takes at most {MAX_ORDER_KEYS} properties."
        )));
    }
    keys.into_iter()
        .map(|key| {
            let mut words = key.split_whitespace();
            let name = words.next().unwrap_or_default();
            let descending = match words.next() {
                None => false,
                Some(d) if d.eq_ignore_ascii_case("asc") => false,
                Some(d) if d.eq_ignore_ascii_case("desc") => true,
                Some(other) => {
                    return Err(bad(format!("'{other}' is not asc or desc in $orderby.")))
                }
            };
            if words.next().is_some() {
                return Err(bad(format!("'{key}' is not a valid $orderby key.")));
            }
            let prop = orderable
                .iter()
                .find(|p| p.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    bad(format!(
                        "The property '{name}' cannot be used in $orderby here."
                    ))
                })?;
            Ok((*prop, descending))
        })
        .collect()
}

/// Sorts by the `$orderby` keys, comparing strings as Exchange does (without regard to
/// case), an absent value before any other; a stable sort keeps creation order on ties.
fn sort_by_keys<T>(
    items: &mut [T],
    order: &[(&'static str, bool)],
    value: impl Fn(&T, &str) -> Option<String>,
) {
    items.sort_by(|a, b| {
        for (prop, descending) in order {
            let va = value(a, prop).map(|s| s.to_lowercase());
            let vb = value(b, prop).map(|s| s.to_lowercase());
            let ord = if *descending {
                vb.cmp(&va)
            } else {
                va.cmp(&vb)
            };
            if ord.is_ne() {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
}

impl Listing {
    fn from(
        call: &Call<'_>,
        schema: Schema<'_>,
        orderable: &[&'static str],
    ) -> Result<Listing, Answer> {
        // Options this store does not implement are refused, not ignored: a client would
        // otherwise take an unfiltered list for the answer to its query.
        for option in ["$search", "$skiptoken", "$deltatoken"] {
            if call.query.params.contains_key(option) {
                return Err(Answer::error(
                    400,
                    "ErrorInvalidUrlQuery",
                    &format!("{option} is not supported on this collection by this service."),
                ));
            }
        }
        let order = parse_orderby(call.query.orderby.as_deref(), orderable)?;
        let filter = match call.query.filter.as_deref() {
            Some(raw) => Some(filter::parse(raw, schema)?),
            None => None,
        };
        let skip = call.query.skip.unwrap_or(0);
        if skip > MAX_SKIP {
            return Err(Answer::bad_request(&format!(
                "$skip may be at most {MAX_SKIP}."
            )));
        }
        let count = match call
            .query
            .params
            .get("$count")
            .map(|c| c.to_ascii_lowercase())
        {
            None => false,
            Some(c) if c == "true" => true,
            Some(c) if c == "false" => false,
            Some(c) => {
                return Err(Answer::bad_request(&format!(
                    "Invalid value '{c}' for $count: true or false."
                )))
            }
        };
        Ok(Listing {
            count,
            page: page_size(
                call.prefer,
                call.query.top,
                LIST_DEFAULT_PAGE,
                LIST_MAX_PAGE,
            ),
            skip,
            filter,
            order,
        })
    }

    /// The page's items out of every match, and the `@odata.nextLink` when more follow
    /// (Outlook's `$top`/`$skip` form, with the request's other options kept).
    fn page<T>(&self, call: &Call<'_>, matching: impl Iterator<Item = T>) -> Page<T> {
        let mut counted = 0usize;
        let mut rest = matching.inspect(|_| counted += 1).skip(self.skip);
        let items: Vec<T> = rest.by_ref().take(self.page).collect();
        let more = rest.next().is_some();
        if self.count {
            rest.by_ref().for_each(drop);
        }
        drop(rest);
        let next = more.then(|| {
            let base = format!("{}/{}", call.user_url, call.path.join("/"));
            let select = call.query.select.as_ref().map(|s| s.join(","));
            let top = self.page.to_string();
            let skip = (self.skip + self.page).to_string();
            let mut params: Vec<(&str, &str)> = Vec::new();
            if let Some(select) = select.as_deref() {
                params.push(("$select", select));
            }
            if let Some(filter) = call.query.filter.as_deref() {
                params.push(("$filter", filter));
            }
            if let Some(expand) = call.query.expand.as_deref() {
                params.push(("$expand", expand));
            }
            if let Some(orderby) = call.query.orderby.as_deref() {
                params.push(("$orderby", orderby));
            }
            if self.count {
                params.push(("$count", "true"));
            }
            params.push(("$top", &top));
            params.push(("$skip", &skip));
            link(&base, &params)
        });
        Page {
            items,
            next,
            count: self.count.then_some(counted),
        }
    }
}

fn collection(items: Vec<Value>, next: Option<String>, count: Option<usize>) -> Answer {
    let mut body = json!({ "value": items });
    if let Some(count) = count {
        body["@odata.count"] = json!(count);
    }
    if let Some(next) = next {
        body["@odata.nextLink"] = json!(next);
    }
    Answer::ok(body)
}

impl Contacts {
    /// Answers a call whose path this store owns; `None` for any other path.
    pub(crate) fn handle(&mut self, call: &Call<'_>) -> Option<Answer> {
        let first = call.path.first()?;
        if !is(first, "contacts") && !is(first, "contactFolders") {
            return None;
        }
        self.build_index();
        let answer = if is(first, "contacts") {
            let root = self.root.clone();
            self.in_folder(call, &root, &call.path[1..], true)
        } else if is(first, "contactFolders") {
            self.folder_path(call)
        } else {
            return None;
        };
        Some(answer.unwrap_or_else(|a| a))
    }

    fn build_index(&mut self) {
        if self.index.is_built() {
            return;
        }
        for (folder, tracked) in &self.contacts {
            for (id, contact) in tracked.iter() {
                self.index.add(folder, id, &contact.extended);
            }
        }
        self.index.mark_built();
    }

    /// Forgets every delta token handed out so far: their next use answers 410
    /// `syncStateNotFound`, as Exchange Online does when its token cache drops them.
    pub(crate) fn expire_delta_tokens(&mut self) {
        for tracked in self.contacts.values_mut() {
            tracked.expire();
        }
        self.folders.expire();
    }

    /// Moves a contact to another folder, as a user dragging it in Outlook does (Graph v1.0
    /// has no move for contacts; the control API offers this). Like Exchange without
    /// immutable ids, the contact gets a new id; the source folder's delta reports the old id
    /// `@removed`, the target's the new one as added. Returns the new id.
    // Offered to the control API, which may not call it yet.
    #[allow(dead_code)]
    pub(crate) fn move_contact(
        &mut self,
        id: &str,
        to_folder: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Answer> {
        let from = self
            .home
            .get(id)
            .cloned()
            .ok_or_else(|| Answer::not_found("contact"))?;
        if !self.contacts.contains_key(to_folder) {
            return Err(Answer::not_found("contactFolder"));
        }
        if from == to_folder {
            return Ok(id.to_owned());
        }
        let mut contact = self
            .contacts
            .get_mut(&from)
            .and_then(|t| t.remove(id))
            .ok_or_else(|| Answer::not_found("contact"))?;
        self.home.remove(id);
        self.build_index();
        self.index.remove(&from, id, &contact.extended);
        contact.moved(now);
        let new_id = new_item_id();
        self.index.add(to_folder, &new_id, &contact.extended);
        if let Some(target) = self.contacts.get_mut(to_folder) {
            target.put(&new_id, contact);
        }
        self.home.insert(new_id.clone(), to_folder.to_owned());
        Ok(new_id)
    }

    /// `contactFolders[/{id}[/childFolders/{id}]…[/childFolders | /contacts…]]`.
    fn folder_path(&mut self, call: &Call<'_>) -> Result<Answer, Answer> {
        let Some(first_id) = call.path.get(1) else {
            let root = self.root.clone();
            return self.folder_collection(call, &root);
        };
        if call.path.len() == 2 && (is(first_id, "delta") || is(first_id, "delta()")) {
            return match *call.method {
                Method::GET => self.folder_delta(call),
                ref other => Err(method_not_allowed(other)),
            };
        }
        let mut current = self.resolve_folder(first_id)?;
        let mut rest = &call.path[2..];
        loop {
            match rest {
                [] => return self.folder_item(call, &current),
                [child] if is(child, "childFolders") => {
                    return self.folder_collection(call, &current)
                }
                [child, id, tail @ ..] if is(child, "childFolders") => {
                    let next = self.resolve_folder(id)?;
                    let parent = self.folders.get(&next).map(|f| f.parent.as_str());
                    if parent != Some(current.as_str()) {
                        return Err(Answer::not_found("contactFolder"));
                    }
                    current = next;
                    rest = tail;
                }
                [contacts, tail @ ..] if is(contacts, "contacts") => {
                    return self.in_folder(call, &current, tail, false)
                }
                [other, ..] => return Err(no_segment(other)),
            }
        }
    }

    fn resolve_folder(&self, id: &str) -> Result<String, Answer> {
        check_id(id)?;
        if self.folders.contains(id) {
            Ok(id.to_owned())
        } else {
            Err(Answer::not_found("contactFolder"))
        }
    }

    /// `…/contacts[/delta | /{id}]` of one folder; `anywhere` when reached as `/contacts`,
    /// where an id names a contact in any folder.
    fn in_folder(
        &mut self,
        call: &Call<'_>,
        folder: &str,
        rest: &[String],
        anywhere: bool,
    ) -> Result<Answer, Answer> {
        match rest {
            [] => match *call.method {
                Method::GET => self.list_contacts(call, folder),
                Method::POST => self.create_contact(call, folder),
                ref other => Err(method_not_allowed(other)),
            },
            // The SDKs call the function as `delta()`; Graph takes both spellings.
            [d] if is(d, "delta") || is(d, "delta()") => match *call.method {
                Method::GET => {
                    let link_path = if anywhere {
                        "contacts/delta".to_owned()
                    } else {
                        format!("contactFolders/{folder}/contacts/delta")
                    };
                    self.delta(call, folder, &link_path)
                }
                ref other => Err(method_not_allowed(other)),
            },
            [id] => {
                check_id(id)?;
                let home = match self.home.get(id.as_str()) {
                    Some(home) if anywhere || home == folder => home.clone(),
                    _ => return Err(Answer::not_found("contact")),
                };
                match *call.method {
                    Method::GET => self.get_contact(call, &home, id),
                    Method::PATCH => self.patch_contact(call, &home, id),
                    Method::DELETE => self.delete_contact(call, &home, id),
                    ref other => Err(method_not_allowed(other)),
                }
            }
            [_, other, ..] => Err(no_segment(other)),
        }
    }

    fn folder_contacts(&self, folder: &str) -> Result<&Tracked<Contact>, Answer> {
        self.contacts
            .get(folder)
            .ok_or_else(|| Answer::not_found("contactFolder"))
    }

    /// The `$select`, `$expand` of a contact read, checked.
    fn read_options(call: &Call<'_>) -> Result<Option<Vec<String>>, Answer> {
        let known = entity::selectable();
        check_select(call.query.select.as_deref(), &known)?;
        let expand = parse_expand(call.query.expand.as_deref())?;
        if let Some(other) = expand.other.first() {
            return Err(Answer::error(
                400,
                "BadRequest",
                &format!("'{other}' cannot be expanded on a contact by this service."),
            ));
        }
        Ok(expand.extended)
    }

    /// A contact as a read answers it: projected on `$select`, with the extended
    /// properties `$expand` named.
    fn shown(
        contact: &Contact,
        id: &str,
        folder: &str,
        select: Option<&[String]>,
        extended: Option<&[String]>,
    ) -> Value {
        let mut out = project(&contact.render(id, folder), select, &[]);
        if let Some(wanted) = extended {
            if let (Some(found), Value::Object(map)) = (contact.extended.render(wanted), &mut out) {
                map.insert("singleValueExtendedProperties".to_owned(), found);
            }
        }
        out
    }

    fn list_contacts(&self, call: &Call<'_>, folder: &str) -> Result<Answer, Answer> {
        let extended = Self::read_options(call)?;
        let listing = Listing::from(
            call,
            Schema {
                strings: entity::FILTERABLE,
                email_addresses: true,
            },
            entity::ORDERABLE,
        )?;
        let tracked = self.folder_contacts(folder)?;
        let passes = |c: &Contact| match &listing.filter {
            Some(f) => f.matches_map(c.filter_view(), &c.extended),
            None => true,
        };
        let lookup = listing.filter.as_ref().and_then(Filter::extended_equality);
        let page = match lookup {
            // A lookup by an extended property value reads only the contacts carrying it,
            // in creation order as a scan would give them.
            Some((key, value)) => {
                let mut found: Vec<(u64, &str, &Contact)> = self
                    .index
                    .lookup(folder, key, value)
                    .into_iter()
                    .filter_map(|id| Some((tracked.created(id)?, id, tracked.get(id)?)))
                    .filter(|(_, _, c)| passes(c))
                    .collect();
                found.sort_by_key(|(created, _, _)| *created);
                let mut all: Vec<(&str, &Contact)> =
                    found.into_iter().map(|(_, id, c)| (id, c)).collect();
                sort_by_keys(&mut all, &listing.order, |(_, c), prop| c.sort_value(prop));
                listing.page(call, all.into_iter())
            }
            None => {
                let matching = tracked.iter().filter(|(_, c)| passes(c));
                if listing.order.is_empty() {
                    listing.page(call, matching)
                } else {
                    let mut all: Vec<(&str, &Contact)> = matching.collect();
                    sort_by_keys(&mut all, &listing.order, |(_, c), prop| c.sort_value(prop));
                    listing.page(call, all.into_iter())
                }
            }
        };
        let select = call.query.select.as_deref();
        let items = page
            .items
            .into_iter()
            .map(|(id, c)| Self::shown(c, id, folder, select, extended.as_deref()))
            .collect();
        Ok(collection(items, page.next, page.count))
    }

    fn get_contact(&self, call: &Call<'_>, folder: &str, id: &str) -> Result<Answer, Answer> {
        let extended = Self::read_options(call)?;
        let contact = self
            .folder_contacts(folder)?
            .get(id)
            .ok_or_else(|| Answer::not_found("contact"))?;
        Ok(Answer::ok(Self::shown(
            contact,
            id,
            folder,
            call.query.select.as_deref(),
            extended.as_deref(),
        )))
    }

    fn create_contact(&mut self, call: &Call<'_>, folder: &str) -> Result<Answer, Answer> {
        let mut changes = check_body(call.body)?;
        let extended = match changes.extended.take() {
            Some(raw) => ExtendedProps::parse(&raw)?,
            None => Vec::new(),
        };
        let tracked = self
            .contacts
            .get_mut(folder)
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        if tracked.len() >= MAX_CONTACTS_PER_FOLDER {
            return Err(Answer::bad_request(&format!(
                "A contact folder holds at most {MAX_CONTACTS_PER_FOLDER} contacts here."
            )));
        }
        let mut contact = Contact::new(changes, call.now);
        contact.extended.apply(extended)?;
        let id = new_item_id();
        let body = contact.render(&id, folder);
        self.index.add(folder, &id, &contact.extended);
        tracked.put(&id, contact);
        self.home.insert(id, folder.to_owned());
        Ok(Answer::created(body))
    }

    fn patch_contact(&mut self, call: &Call<'_>, folder: &str, id: &str) -> Result<Answer, Answer> {
        let tracked = self
            .contacts
            .get_mut(folder)
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        let current = tracked
            .get(id)
            .ok_or_else(|| Answer::not_found("contact"))?;
        check_if_match(call.if_match, &current.change_key)?;
        let mut changes = check_body(call.body)?;
        let mut extended = current.extended.clone();
        if let Some(raw) = changes.extended.take() {
            extended.apply(ExtendedProps::parse(&raw)?)?;
        }
        self.index.remove(folder, id, &current.extended);
        self.index.add(folder, id, &extended);
        let body = tracked
            .update(id, |contact| {
                contact.patch(changes, call.now);
                contact.extended = extended;
                contact.render(id, folder)
            })
            .ok_or_else(|| Answer::not_found("contact"))?;
        Ok(Answer::ok(body))
    }

    fn delete_contact(
        &mut self,
        call: &Call<'_>,
        folder: &str,
        id: &str,
    ) -> Result<Answer, Answer> {
        let tracked = self
            .contacts
            .get_mut(folder)
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        let current = tracked
            .get(id)
            .ok_or_else(|| Answer::not_found("contact"))?;
        check_if_match(call.if_match, &current.change_key)?;
        if let Some(gone) = tracked.remove(id) {
            self.index.remove(folder, id, &gone.extended);
        }
        self.home.remove(id);
        Ok(Answer::no_content())
    }
}

#[cfg(test)]
mod tests;
