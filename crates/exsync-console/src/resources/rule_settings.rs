//! The per-kind rules of a configuration an admin edits from the console: direction,
//! conflict policy, first link, deletes and the valve, the contact scope and condition, the
//! event window, private events and the selecting category, and the field mappings
//! (`[configurations.<name>.<kind>.fields]`).
//!
//! An edit is turned into a TOML value and written under the kind's table; whether the value
//! is allowed is left to the loader's check, which refuses the whole change with the file,
//! key and reason. That keeps one set of rules for the file and the console, so a text that
//! is not a number is written as text and refused by the check rather than dropped here.

use std::collections::BTreeMap;

use exsync_core::config::default_field_map;
use exsync_core::{field_names, ItemKind};
use serde_json::Value as Json;
use toml_edit::Value;

use crate::error::ConsoleError;
use crate::html::esc;

/// How a setting is typed in the file, which decides how form text becomes TOML and which
/// widget the page shows.
#[derive(Clone, Copy)]
enum Shape {
    /// One of these names; the page shows a select.
    Choice(&'static [&'static str]),
    /// A number such as a share.
    Number,
    /// A whole number.
    Whole,
    /// `true` or `false`; the page shows a select.
    Flag,
    /// Free text. When `clearable`, a blank field removes the key (the contact condition is
    /// optional); otherwise a blank field leaves the key as it is.
    Text { clearable: bool },
}

/// One editable key of `[configurations.<name>.<kind>]`.
struct Setting {
    kind: &'static str,
    key: &'static str,
    shape: Shape,
}

const DIRECTIONS: &[&str] = &["both", "crm_to_exchange", "exchange_to_crm", "off"];
const CONFLICTS: &[&str] = &["crm_wins", "exchange_wins", "newest_wins"];
const FIRST_LINKS: &[&str] = &["newest", "policy"];
const DELETES: &[&str] = &["propagate", "recreate"];

const fn common(kind: &'static str) -> [Setting; 6] {
    [
        Setting {
            kind,
            key: "direction",
            shape: Shape::Choice(DIRECTIONS),
        },
        Setting {
            kind,
            key: "conflict",
            shape: Shape::Choice(CONFLICTS),
        },
        Setting {
            kind,
            key: "first_link",
            shape: Shape::Choice(FIRST_LINKS),
        },
        Setting {
            kind,
            key: "deletes",
            shape: Shape::Choice(DELETES),
        },
        Setting {
            kind,
            key: "max_delete_share",
            shape: Shape::Number,
        },
        Setting {
            kind,
            key: "min_deletes_for_valve",
            shape: Shape::Whole,
        },
    ]
}

static CONTACT_COMMON: [Setting; 6] = common("contacts");
static EVENT_COMMON: [Setting; 6] = common("events");
static CONTACT_ONLY: &[Setting] = &[
    Setting {
        kind: "contacts",
        key: "scope",
        shape: Shape::Choice(&["owned", "visible"]),
    },
    Setting {
        kind: "contacts",
        key: "condition",
        shape: Shape::Text { clearable: true },
    },
];
static EVENT_ONLY: &[Setting] = &[
    Setting {
        kind: "events",
        key: "past_days",
        shape: Shape::Whole,
    },
    Setting {
        kind: "events",
        key: "future_days",
        shape: Shape::Whole,
    },
    Setting {
        kind: "events",
        key: "sync_private",
        shape: Shape::Flag,
    },
    Setting {
        kind: "events",
        key: "select",
        shape: Shape::Choice(&["all", "category"]),
    },
    Setting {
        kind: "events",
        key: "category",
        shape: Shape::Text { clearable: false },
    },
];

fn settings_of(kind: &str) -> impl Iterator<Item = &'static Setting> {
    let (common, only): (&'static [Setting], &'static [Setting]) = match kind {
        "contacts" => (&CONTACT_COMMON, CONTACT_ONLY),
        "events" => (&EVENT_COMMON, EVENT_ONLY),
        _ => (&[], &[]),
    };
    common.iter().chain(only)
}

/// The sub-table of a kind that holds its field mappings.
pub(crate) const FIELDS: &str = "fields";

/// One key to set (or, with `None`, to remove so the default applies) under a kind's table,
/// or under its `fields` table for a field mapping.
#[derive(Debug)]
pub(crate) struct RuleEdit {
    pub kind: &'static str,
    /// `Some(FIELDS)` for a field mapping; `None` for a rule of the kind's own table.
    pub table: Option<&'static str>,
    /// The rule's key, or the domain field a mapping names. A field name the kind lacks is
    /// kept as given, for the file check to refuse by its key.
    pub key: String,
    pub value: Option<Value>,
}

impl RuleEdit {
    /// Where the key goes in `exsync.toml`, below `[configurations.<name>]`.
    pub(crate) fn path<'a>(&'a self, configuration: &'a str) -> Vec<&'a str> {
        let mut path = vec!["configurations", configuration, self.kind];
        path.extend(self.table);
        path
    }

    /// The key's value in a configuration's view (`null` when unset).
    pub(crate) fn shown_in<'a>(&self, view: &'a Json) -> &'a Json {
        let kind = &view[self.kind];
        match self.table {
            Some(table) => &kind[table][self.key.as_str()],
            None => &kind[self.key.as_str()],
        }
    }

    /// Whether the edit sets what already applies: `shown` is the key's value in the
    /// configuration's view (`null` when unset). A mapping taken out of the file applies the
    /// field's standard CRM field, so it is already in place when the view shows that one.
    pub(crate) fn already(&self, shown: &Json) -> bool {
        match &self.value {
            // A mapping not in the file, or one at the standard field: removing it changes
            // nothing.
            None if self.table.is_some() => {
                shown.is_null()
                    || shown.as_str().is_some_and(|crm| {
                        standard_field(self.kind, &self.key).is_some_and(|s| s == crm)
                    })
            }
            None => shown.is_null(),
            Some(Value::String(t)) => shown.as_str() == Some(t.value().as_str()),
            Some(Value::Boolean(b)) => shown.as_bool() == Some(*b.value()),
            Some(Value::Integer(i)) => shown.as_f64() == Some(*i.value() as f64),
            Some(Value::Float(f)) => shown.as_f64() == Some(*f.value()),
            Some(_) => false,
        }
    }

    /// `contacts.conflict` (or `contacts.fields.notes`) and the value as the file will read,
    /// for the audit log.
    pub(crate) fn audited(&self) -> (String, Json) {
        let mut key = self.kind.to_owned();
        for part in self.table.into_iter().chain([self.key.as_str()]) {
            key.push('.');
            key.push_str(part);
        }
        (
            key,
            self.value.as_ref().map_or(Json::Null, |v| {
                Json::String(v.to_string().trim().to_owned())
            }),
        )
    }
}

fn item_kind(kind: &str) -> Option<ItemKind> {
    match kind {
        "contacts" => Some(ItemKind::Contact),
        "events" => Some(ItemKind::Event),
        _ => None,
    }
}

/// The domain fields of a kind (`contacts`, `events`).
fn fields_of(kind: &str) -> &'static [&'static str] {
    item_kind(kind).map_or(&[], field_names)
}

/// The CRM field a domain field syncs with when the file does not remap it.
pub(crate) fn standard_field(kind: &str, field: &str) -> Option<String> {
    default_field_map(item_kind(kind)?).remove(field)
}

/// A field mapping as form text or JSON gives it: `false` stops the field syncing, `true`
/// keeps its standard CRM field, a blank takes the mapping out of the file (the standard
/// applies), anything else is the CRM field's name, which the file check judges.
fn mapping_value(text: &str) -> Option<Value> {
    match text.trim() {
        "" => None,
        "false" => Some(Value::from(false)),
        "true" => Some(Value::from(true)),
        name => Some(Value::from(name)),
    }
}

/// The form field of a mapping: `contacts_field_notes`.
pub(crate) fn mapping_form_name(kind: &str, field: &str) -> String {
    format!("{kind}_field_{field}")
}

/// The name a setting's field has in the form: `contacts_conflict`, `events_past_days`.
fn form_name(s: &Setting) -> String {
    format!("{}_{}", s.kind, s.key)
}

/// The edits a posted form asks for. A field the form did not send is left alone, so a form
/// with fewer fields (the new-configuration form) changes only what it shows.
pub(crate) fn from_form(fields: &BTreeMap<String, String>) -> Vec<RuleEdit> {
    let mut edits = Vec::new();
    for s in settings_of("contacts").chain(settings_of("events")) {
        let Some(text) = fields.get(&form_name(s)).map(|t| t.trim()) else {
            continue;
        };
        let value = if text.is_empty() {
            match s.shape {
                Shape::Text { clearable: true } => None,
                _ => continue,
            }
        } else {
            Some(match s.shape {
                Shape::Number => text
                    .parse::<f64>()
                    .map_or_else(|_| Value::from(text), Value::from),
                Shape::Whole => text
                    .parse::<i64>()
                    .map_or_else(|_| Value::from(text), Value::from),
                Shape::Flag => match text {
                    "true" => Value::from(true),
                    "false" => Value::from(false),
                    other => Value::from(other),
                },
                Shape::Choice(_) | Shape::Text { .. } => Value::from(text),
            })
        };
        edits.push(RuleEdit {
            kind: s.kind,
            table: None,
            key: s.key.to_owned(),
            value,
        });
    }
    for kind in ["contacts", "events"] {
        for field in fields_of(kind) {
            if let Some(text) = fields.get(&mapping_form_name(kind, field)) {
                edits.push(RuleEdit {
                    kind,
                    table: Some(FIELDS),
                    key: (*field).to_owned(),
                    value: mapping_value(text),
                });
            }
        }
    }
    edits
}

/// The edits a JSON object for one kind asks for (`{"conflict": "crm_wins", ...}`): a
/// string, number or boolean is written as it is and `null` (or an empty optional text)
/// removes the key; `fields` holds the kind's field mappings. A key that is not an editable
/// rule of the kind, or a list or object, is refused here with its name.
pub(crate) fn from_json(
    kind: &'static str,
    object: &BTreeMap<String, Json>,
) -> Result<Vec<RuleEdit>, ConsoleError> {
    let mut edits = Vec::new();
    for (key, json) in object {
        if key == FIELDS {
            edits.extend(mappings_from_json(kind, json)?);
            continue;
        }
        let Some(s) = settings_of(kind).find(|s| s.key == key) else {
            let editable: Vec<&str> = settings_of(kind).map(|s| s.key).chain([FIELDS]).collect();
            return Err(ConsoleError::bad_request(format!(
                "`{kind}.{key}` is not a rule the console edits; editable: {}",
                editable.join(", ")
            )));
        };
        let value = match json {
            Json::Null => None,
            Json::Bool(b) => Some(Value::from(*b)),
            Json::String(t)
                if t.trim().is_empty() && matches!(s.shape, Shape::Text { clearable: true }) =>
            {
                None
            }
            Json::String(t) => Some(Value::from(t.as_str())),
            Json::Number(n) => Some(match n.as_i64() {
                Some(i) => Value::from(i),
                None => Value::from(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Json::Array(_) | Json::Object(_) => {
                return Err(ConsoleError::bad_request(format!(
                    "`{kind}.{key}` takes a string, a number, true/false or null"
                )))
            }
        };
        edits.push(RuleEdit {
            kind,
            table: None,
            key: s.key.to_owned(),
            value,
        });
    }
    Ok(edits)
}

/// The mappings a kind's `fields` object asks for (`{"notes": "Body__c", "birthday":
/// false, "phones": null}`), as the file takes them; `null` or a blank name takes a mapping
/// out of the file. A field the kind lacks is passed on for the file check to refuse by its
/// key.
fn mappings_from_json(kind: &'static str, json: &Json) -> Result<Vec<RuleEdit>, ConsoleError> {
    let Json::Object(object) = json else {
        return Err(ConsoleError::bad_request(format!(
            "`{kind}.fields` takes an object of domain field = CRM field name, false or null"
        )));
    };
    object
        .iter()
        .map(|(field, value)| {
            let value = match value {
                Json::Null => None,
                Json::Bool(b) => Some(Value::from(*b)),
                Json::String(name) => mapping_value(name),
                _ => {
                    return Err(ConsoleError::bad_request(format!(
                        "`{kind}.fields.{field}` takes a CRM field name, false or null"
                    )))
                }
            };
            Ok(RuleEdit {
                kind,
                table: Some(FIELDS),
                key: field.clone(),
                value,
            })
        })
        .collect()
}

/// The editable rules of one kind as form fields joined to the row's form by `form`.
/// `current` gives each key's value as the page should show it: what the admin typed when
/// the change was refused, else the file's. The box opens when `open` (a refused change) so
/// the typed values are in sight.
pub(crate) fn render_fields(
    kind: &str,
    form: &str,
    open: bool,
    current: impl Fn(&str) -> String,
) -> String {
    let mut out = format!(
        r#"<details class="rules" data-kind="{k}"{o}><summary>Rules</summary>"#,
        k = esc(kind),
        o = if open { " open" } else { "" },
    );
    // The direction has its own select in the cell.
    for s in settings_of(kind).filter(|s| s.key != "direction") {
        let name = esc(&form_name(s));
        let value = current(s.key);
        let widget = match s.shape {
            Shape::Choice(names) => select(&name, form, names, &value),
            Shape::Flag => select(&name, form, &["false", "true"], &value),
            Shape::Number | Shape::Whole | Shape::Text { .. } => format!(
                r#"<input type="text" name="{name}" form="{f}" value="{v}">"#,
                f = esc(form),
                v = esc(&value),
            ),
        };
        out.push_str(&format!(
            r#"<label>{} {widget}</label>"#,
            esc(&s.key.replace('_', " "))
        ));
    }
    out.push_str("</details>");
    out
}

/// The field mappings of one kind as text fields joined to the row's form by `form`, each
/// showing `current(field)` (the CRM field, `false`, or what the admin typed) over the
/// standard CRM field as its placeholder. The box opens when `open` (a refused change).
pub(crate) fn render_mappings(
    kind: &str,
    form: &str,
    open: bool,
    current: impl Fn(&str) -> String,
) -> String {
    let mut out = format!(
        r#"<details class="fields" data-kind="{k}"{o}><summary>Fields</summary><p class="muted">The CRM field each syncs with; false stops it syncing, blank restores the standard one.</p>"#,
        k = esc(kind),
        o = if open { " open" } else { "" },
    );
    for field in fields_of(kind) {
        out.push_str(&format!(
            r#"<label>{label} <input type="text" name="{name}" form="{f}" value="{v}" placeholder="{p}"></label>"#,
            label = esc(&field.replace('_', " ")),
            name = esc(&mapping_form_name(kind, field)),
            f = esc(form),
            v = esc(&current(field)),
            p = esc(&standard_field(kind, field).unwrap_or_default()),
        ));
    }
    out.push_str("</details>");
    out
}

/// A select of `names` with `current` chosen; a current value not among them (typed into the
/// API or the file) is kept as an extra option so saving the row does not change it.
pub(crate) fn select(name: &str, form: &str, names: &[&str], current: &str) -> String {
    let form = if form.is_empty() {
        String::new()
    } else {
        format!(r#" form="{}""#, esc(form))
    };
    let mut s = format!(r#"<select name="{name}"{form}>"#);
    let listed = names.contains(&current);
    for n in names
        .iter()
        .copied()
        .chain((!listed && !current.is_empty()).then_some(current))
    {
        s.push_str(&format!(
            r#"<option value="{v}"{sel}>{v}</option>"#,
            v = esc(n),
            sel = if n == current { " selected" } else { "" }
        ));
    }
    s.push_str("</select>");
    s
}

/// The choices of a select setting, for the direction selects the page renders itself.
pub(crate) fn directions() -> &'static [&'static str] {
    DIRECTIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn shown(edits: &[RuleEdit]) -> Vec<(String, Json)> {
        edits.iter().map(RuleEdit::audited).collect()
    }

    #[test]
    fn form_text_becomes_typed_toml_and_bad_text_stays_text_for_the_check() {
        let edits = from_form(&form(&[
            ("contacts_max_delete_share", "0.25"),
            ("events_past_days", "-3"),
            ("events_future_days", "soon"),
            ("events_sync_private", "true"),
            ("contacts_condition", "  "),
            ("events_category", ""),
            ("unrelated", "x"),
        ]));
        assert_eq!(
            shown(&edits),
            [
                ("contacts.max_delete_share".to_owned(), Json::from("0.25")),
                ("contacts.condition".to_owned(), Json::Null),
                ("events.past_days".to_owned(), Json::from("-3")),
                ("events.future_days".to_owned(), Json::from("\"soon\"")),
                ("events.sync_private".to_owned(), Json::from("true")),
            ]
        );
    }

    #[test]
    fn json_names_a_key_it_does_not_edit() {
        let object: BTreeMap<String, Json> = [("past_days".to_owned(), Json::from(3))]
            .into_iter()
            .collect();
        let message = from_json("contacts", &object).map_or_else(|e| e.message, |_| String::new());
        assert!(message.contains("`contacts.past_days`"), "{message}");
        let object: BTreeMap<String, Json> = [("conflict".to_owned(), Json::from(vec![1]))]
            .into_iter()
            .collect();
        assert!(from_json("events", &object).is_err());
    }

    #[test]
    fn a_value_outside_the_choices_stays_selected() {
        let s = select("x", "", &["a", "b"], "c<");
        assert!(
            s.contains(r#"<option value="c&lt;" selected>c&lt;</option>"#),
            "{s}"
        );
    }
}
