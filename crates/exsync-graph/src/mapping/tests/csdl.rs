//! A small reader of Graph's v1.0 CSDL (the `microsoft.graph` schema only), enough to check
//! that the JSON we send uses declared property names, types and enum members. The schema
//! is not in the repository: `EXSYNC_GRAPH_SCHEMA` names its folder, else `graph-schema`
//! beside the repository (`../shared/graph-schema`), as `scripts/test` finds it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

pub(super) struct Csdl {
    /// Structured types by short name: base type and declared properties (name → type).
    types: BTreeMap<String, (Option<String>, BTreeMap<String, String>)>,
    enums: BTreeMap<String, Vec<String>>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn short(type_name: &str) -> String {
    type_name
        .strip_prefix("graph.")
        .or_else(|| type_name.strip_prefix("microsoft.graph."))
        .unwrap_or(type_name)
        .to_owned()
}

impl Csdl {
    /// The schema, or `None` (with a printed note) when it is not on this machine.
    pub(super) fn load() -> Option<Csdl> {
        let dir = std::env::var_os("EXSYNC_GRAPH_SCHEMA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/graph-schema")
            });
        let path = dir.join("v1.0-Prod.csdl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var("EXSYNC_REQUIRE_SCHEMA").as_deref() != Ok("1"),
                "Graph's schema is required (EXSYNC_REQUIRE_SCHEMA=1) but {} is missing",
                path.display()
            );
            eprintln!(
                "note: Graph schema check SKIPPED: no {} (set EXSYNC_GRAPH_SCHEMA to its folder)",
                path.display()
            );
            return None;
        };
        Some(Csdl::parse(&text))
    }

    fn parse(text: &str) -> Csdl {
        let start = text
            .find("<Schema Namespace=\"microsoft.graph\"")
            .expect("the microsoft.graph schema");
        let rest = &text[start + 1..];
        let schema = &rest[..rest.find("<Schema ").unwrap_or(rest.len())];
        let mut types = BTreeMap::new();
        let mut enums = BTreeMap::new();
        let mut current: Option<(String, bool)> = None;
        for raw in schema.split('<').skip(1) {
            let tag = raw.split('>').next().unwrap_or("");
            let tag = format!(" {}", tag.trim_end_matches('/'));
            let element = tag.split_whitespace().next().unwrap_or("");
            match element {
                "EntityType" | "ComplexType" => {
                    let name = attr(&tag, "Name").expect("a type name");
                    let base = attr(&tag, "BaseType").map(|b| short(&b));
                    types.insert(name.clone(), (base, BTreeMap::new()));
                    current = Some((name, false));
                }
                "EnumType" => {
                    let name = attr(&tag, "Name").expect("an enum name");
                    enums.insert(name.clone(), Vec::new());
                    current = Some((name, true));
                }
                "Property" | "NavigationProperty" => {
                    if let Some((owner, false)) = &current {
                        let name = attr(&tag, "Name").expect("a property name");
                        let type_name = attr(&tag, "Type").expect("a property type");
                        if let Some((_, props)) = types.get_mut(owner) {
                            props.insert(name, type_name);
                        }
                    }
                }
                "Member" => {
                    if let Some((owner, true)) = &current {
                        if let Some(members) = enums.get_mut(owner) {
                            members.push(attr(&tag, "Name").expect("a member name"));
                        }
                    }
                }
                "/EntityType" | "/ComplexType" | "/EnumType" => current = None,
                _ => {}
            }
        }
        Csdl { types, enums }
    }

    fn property(&self, type_name: &str, name: &str) -> Option<&str> {
        let mut next = Some(type_name.to_owned());
        while let Some(t) = next {
            let (base, props) = self.types.get(&t)?;
            if let Some(p) = props.get(name) {
                return Some(p);
            }
            next = base.clone();
        }
        None
    }

    /// Problems of `value` as a `type_name` (short name, e.g. `contact`), one line each.
    pub(super) fn check(&self, value: &Value, type_name: &str) -> Vec<String> {
        let mut problems = Vec::new();
        self.check_type(value, type_name, "$", &mut problems);
        problems
    }

    fn check_type(&self, value: &Value, type_name: &str, path: &str, out: &mut Vec<String>) {
        if value.is_null() {
            return;
        }
        if let Some(inner) = type_name
            .strip_prefix("Collection(")
            .and_then(|t| t.strip_suffix(')'))
        {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_type(item, inner, &format!("{path}[{i}]"), out);
                    }
                }
                None => out.push(format!("{path}: {type_name} wants a collection")),
            }
            return;
        }
        let ok = match type_name {
            "Edm.String" => value.is_string(),
            "Edm.Boolean" => value.is_boolean(),
            "Edm.Int32" | "Edm.Int64" => value.is_i64() || value.is_u64(),
            "Edm.Date" => value
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            "Edm.DateTimeOffset" => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            other => {
                let name = short(other);
                if let Some(members) = self.enums.get(&name) {
                    value
                        .as_str()
                        .is_some_and(|v| members.iter().any(|m| m == v))
                } else if self.types.contains_key(&name) {
                    match value.as_object() {
                        Some(map) => {
                            for (key, v) in map {
                                // Annotations (`@odata.type`, `name@odata.type`) are OData's.
                                if key.contains('@') {
                                    continue;
                                }
                                match self.property(&name, key) {
                                    Some(t) => self.check_type(v, t, &format!("{path}.{key}"), out),
                                    None => out
                                        .push(format!("{path}.{key}: no such property of {name}")),
                                }
                            }
                            true
                        }
                        None => false,
                    }
                } else {
                    out.push(format!("{path}: unknown type {other}"));
                    true
                }
            }
        };
        if !ok {
            out.push(format!("{path}: {value} is not a {type_name}"));
        }
    }
}

#[test]
fn the_schema_reader_knows_contact_and_event() {
    let Some(csdl) = Csdl::load() else { return };
    assert_eq!(csdl.property("contact", "givenName"), Some("Edm.String"));
    assert_eq!(csdl.property("contact", "changeKey"), Some("Edm.String"));
    assert_eq!(csdl.property("event", "id"), Some("Edm.String"));
    assert!(csdl.property("contact", "givenname").is_none());
    assert!(!csdl
        .check(&serde_json::json!({"showAs": "away"}), "event")
        .is_empty());
    assert!(!csdl
        .check(&serde_json::json!({"nickname": "x"}), "contact")
        .is_empty());
    assert!(csdl
        .check(
            &serde_json::json!({"nickName": "x", "@odata.etag": "W/\"1\""}),
            "contact"
        )
        .is_empty());
}
