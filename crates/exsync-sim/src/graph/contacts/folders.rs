//! Contact folders: `contactFolders` (the folders under the default Contacts folder),
//! `childFolders` of any folder, and one folder's GET, PATCH and DELETE.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{collection, method_not_allowed, sort_by_keys, Contacts, Listing};
use crate::graph::call::{Answer, Call};
use crate::graph::odata::extended::ExtendedProps;
use crate::graph::odata::filter::Schema;
use crate::graph::odata::tracked::Tracked;
use crate::graph::odata::{check_select, new_item_id, project};

/// Folders one mailbox may have; more is a runaway client.
const MAX_FOLDERS: usize = 1_000;
/// Exchange's limit on a folder's display name.
const MAX_NAME: usize = 255;
pub(super) const PROPERTIES: &[&str] = &["id", "displayName", "parentFolderId"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Folder {
    pub(crate) display_name: String,
    pub(crate) parent: String,
}

impl Folder {
    pub(crate) fn new(display_name: &str, parent: &str) -> Folder {
        Folder {
            display_name: display_name.to_owned(),
            parent: parent.to_owned(),
        }
    }

    pub(super) fn render(&self, id: &str) -> Value {
        json!({"id": id, "displayName": self.display_name, "parentFolderId": self.parent})
    }
}

/// The `displayName` of a folder body; `required` on create. Unknown properties are 400.
fn display_name(body: Option<&Value>, required: bool) -> Result<Option<String>, Answer> {
    let Some(Value::Object(map)) = body else {
        return Err(Answer::bad_request(
            "The request body must be a JSON object describing a contact folder.",
        ));
    };
    let mut name = None;
    for (key, value) in map {
        match key.as_str() {
            "displayName" => match value {
                Value::String(s) if s.trim().is_empty() => {
                    return Err(Answer::error(
                        400,
                        "ErrorInvalidRequest",
                        "The folder's displayName cannot be empty.",
                    ))
                }
                Value::String(s) if s.chars().count() > MAX_NAME => {
                    return Err(Answer::error(
                        400,
                        "ErrorInvalidRequest",
                        &format!("A folder's displayName is at most {MAX_NAME} characters."),
                    ))
                }
                Value::String(s) => name = Some(s.clone()),
                other => {
                    return Err(Answer::error(
                        400,
                        "BadRequest",
                        &format!("Cannot convert the literal '{other}' to the expected type 'Edm.String' of property 'displayName'."),
                    ))
                }
            },
            // What a client read may be written back; the server owns these.
            "id" | "parentFolderId" => {}
            k if k.starts_with("@odata.") => {}
            other => {
                return Err(Answer::error(
                    400,
                    "RequestBodyRead",
                    &format!("The property '{other}' does not exist on type 'microsoft.graph.contactFolder'. Make sure to only use property names that are defined by the type or mark the type as open type."),
                ))
            }
        }
    }
    if required && name.is_none() {
        return Err(Answer::error(
            400,
            "ErrorInvalidRequest",
            "A contact folder needs a displayName.",
        ));
    }
    Ok(name)
}

impl Contacts {
    /// Whether `parent` already has a child folder of this name (Exchange compares folder
    /// names without regard to case), other than `except`.
    fn name_taken(&self, parent: &str, name: &str, except: Option<&str>) -> bool {
        self.folders.iter().any(|(id, f)| {
            f.parent == parent && Some(id) != except && f.display_name.eq_ignore_ascii_case(name)
        })
    }

    /// `GET`/`POST` of the folders directly under `parent`.
    pub(super) fn folder_collection(
        &mut self,
        call: &Call<'_>,
        parent: &str,
    ) -> Result<Answer, Answer> {
        match *call.method {
            Method::GET => {
                check_select(call.query.select.as_deref(), PROPERTIES)?;
                if call.query.expand.is_some() {
                    return Err(Answer::bad_request(
                        "$expand is not supported on contact folders by this service.",
                    ));
                }
                let listing = Listing::from(
                    call,
                    Schema {
                        strings: &["displayName"],
                        email_addresses: false,
                    },
                    &["displayName"],
                )?;
                let none = ExtendedProps::default();
                let mut matching: Vec<Value> = self
                    .folders
                    .iter()
                    .filter(|(_, f)| f.parent == parent)
                    .map(|(id, f)| f.render(id))
                    .filter(|json| {
                        listing
                            .filter
                            .as_ref()
                            .is_none_or(|f| f.matches(json, &none))
                    })
                    .collect();
                sort_by_keys(&mut matching, &listing.order, |f, prop| {
                    f.get(prop).and_then(Value::as_str).map(str::to_owned)
                });
                let page = listing.page(call, matching.into_iter());
                let select = call.query.select.as_deref();
                let items = page.items.iter().map(|f| project(f, select, &[])).collect();
                Ok(collection(items, page.next, page.count))
            }
            Method::POST => {
                let name = display_name(call.body, true)?.unwrap_or_default();
                if self.name_taken(parent, &name, None) {
                    return Err(Answer::error(
                        409,
                        "ErrorFolderExists",
                        "A folder with the specified name already exists.",
                    ));
                }
                if self.folders.len() >= MAX_FOLDERS {
                    return Err(Answer::bad_request(&format!(
                        "A mailbox holds at most {MAX_FOLDERS} contact folders here."
                    )));
                }
                let id = new_item_id();
                let folder = Folder::new(&name, parent);
                let body = folder.render(&id);
                self.folders.put(&id, folder);
                self.contacts.insert(id, Tracked::default());
                Ok(Answer::created(body))
            }
            ref other => Err(method_not_allowed(other)),
        }
    }

    /// `GET`/`PATCH`/`DELETE` of one folder.
    pub(super) fn folder_item(&mut self, call: &Call<'_>, id: &str) -> Result<Answer, Answer> {
        let folder = self
            .folders
            .get(id)
            .cloned()
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        match *call.method {
            Method::GET => {
                check_select(call.query.select.as_deref(), PROPERTIES)?;
                Ok(Answer::ok(project(
                    &folder.render(id),
                    call.query.select.as_deref(),
                    &[],
                )))
            }
            Method::PATCH => {
                let name = display_name(call.body, false)?;
                let Some(name) = name else {
                    return Ok(Answer::ok(folder.render(id)));
                };
                if id == self.root {
                    return Err(Answer::error(
                        403,
                        "ErrorAccessDenied",
                        "The default Contacts folder cannot be renamed.",
                    ));
                }
                if self.name_taken(&folder.parent, &name, Some(id)) {
                    return Err(Answer::error(
                        409,
                        "ErrorFolderExists",
                        "A folder with the specified name already exists.",
                    ));
                }
                let body = self
                    .folders
                    .update(id, |f| {
                        f.display_name = name;
                        f.render(id)
                    })
                    .unwrap_or(Value::Object(Map::new()));
                Ok(Answer::ok(body))
            }
            Method::DELETE => {
                if id == self.root {
                    return Err(Answer::error(
                        400,
                        "ErrorDeleteDistinguishedFolder",
                        "Distinguished folders cannot be deleted.",
                    ));
                }
                self.delete_folder_tree(id);
                Ok(Answer::no_content())
            }
            ref other => Err(method_not_allowed(other)),
        }
    }

    /// Every folder with its parent and how many contacts it holds: the mailbox's contact
    /// folders as its user sees them in Outlook, for the control API.
    pub(crate) fn folder_listing(&self) -> Value {
        let folders: Vec<Value> = self
            .folders
            .iter()
            .map(|(id, f)| {
                json!({
                    "id": id,
                    "name": f.display_name,
                    "parent": f.parent,
                    "items": self.contacts.get(id).map_or(0, Tracked::len),
                })
            })
            .collect();
        json!({"root": self.root, "bin": self.bin, "folders": folders})
    }

    /// Moves a folder, with what is under it, into Deleted Items, as Outlook's Delete does:
    /// it keeps its id and its contacts, and is numbered (`Name1`, `Name2`, …) where Deleted
    /// Items already holds a folder of its name.
    pub(crate) fn delete_to_bin(&mut self, id: &str) -> Result<Value, Answer> {
        if id == self.root {
            return Err(Answer::error(
                400,
                "ErrorDeleteDistinguishedFolder",
                "Distinguished folders cannot be deleted.",
            ));
        }
        let folder = self
            .folders
            .get(id)
            .cloned()
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        let mut name = folder.display_name.clone();
        let mut n = 0;
        while self.name_taken(&self.bin, &name, Some(id)) {
            n += 1;
            name = format!("{}{n}", folder.display_name);
        }
        let bin = self.bin.clone();
        Ok(self
            .folders
            .update(id, |f| {
                f.parent = bin;
                f.display_name = name;
                f.render(id)
            })
            .unwrap_or(Value::Null))
    }

    /// Moves a folder, with what is under it, under `to`, as its user dragging it in Outlook
    /// does (Graph v1.0 has no move for contact folders; the control API offers this). As in
    /// Exchange, the folder keeps its id.
    pub(crate) fn move_folder(&mut self, id: &str, to: &str) -> Result<Value, Answer> {
        if id == self.root {
            return Err(Answer::error(
                403,
                "ErrorAccessDenied",
                "The default Contacts folder cannot be moved.",
            ));
        }
        let folder = self
            .folders
            .get(id)
            .cloned()
            .ok_or_else(|| Answer::not_found("contactFolder"))?;
        if !self.folders.contains(to) {
            return Err(Answer::not_found("contactFolder"));
        }
        // Walks up from the target: a folder cannot go under itself. The walk ends at the
        // default folder, whose parent this store does not hold.
        let mut above = Some(to.to_owned());
        while let Some(current) = above {
            if current == id {
                return Err(Answer::bad_request(
                    "A folder cannot be moved under itself.",
                ));
            }
            above = self.folders.get(&current).map(|f| f.parent.clone());
        }
        if self.name_taken(to, &folder.display_name, Some(id)) {
            return Err(Answer::error(
                409,
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ));
        }
        Ok(self
            .folders
            .update(id, |f| {
                f.parent = to.to_owned();
                f.render(id)
            })
            .unwrap_or(Value::Null))
    }

    /// Removes a folder, its descendants and all their contacts (a worklist, not recursion:
    /// the tree's depth is the client's to choose).
    fn delete_folder_tree(&mut self, id: &str) {
        let mut doomed = vec![id.to_owned()];
        let mut at = 0;
        while let Some(current) = doomed.get(at).cloned() {
            doomed.extend(
                self.folders
                    .iter()
                    .filter(|(_, f)| f.parent == current)
                    .map(|(child, _)| child.to_owned()),
            );
            at += 1;
        }
        for folder in doomed {
            self.folders.remove(&folder);
            self.index.drop_folder(&folder);
            if let Some(tracked) = self.contacts.remove(&folder) {
                for (contact, _) in tracked.iter() {
                    self.home.remove(contact);
                }
            }
        }
    }
}
