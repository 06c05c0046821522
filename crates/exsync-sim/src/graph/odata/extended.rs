//! `singleValueExtendedProperties`: MAPI properties a client writes inline on an item and
//! reads back only by naming them (`$expand=singleValueExtendedProperties($filter=id eq …)`).
//!
//! An id is `"{type} {guid} Name {name}"` or `"{type} {guid} Id 0x8xxx"` (a named property),
//! or `"{type} {proptag}"` such as `"String 0x3A24"` (a predefined property by its tag, the
//! third form of Graph's extended-properties overview). Exchange resolves it to one
//! property, so two spellings that differ in the case of the type, GUID or hex digits are the
//! same property, while the name is case-sensitive (MAPI named properties are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::filter::{self, Lexer, Tok};
use crate::graph::call::Answer;

/// The property types a single-value extended property can have (the `…Array` ones are
/// multi-value and belong to `multiValueExtendedProperties`).
const TYPES: &[&str] = &[
    "Binary",
    "Boolean",
    "CLSID",
    "Currency",
    "Double",
    "Float",
    "Integer",
    "Long",
    "Object",
    "Short",
    "String",
    "SystemTime",
];

/// More extended properties than this on one item is a client bug (the named-property
/// quota of a real mailbox is the same warning, at mailbox scale).
pub(crate) const MAX_PER_ITEM: usize = 64;
/// Longest value kept; Exchange's string properties are limited too.
pub(crate) const MAX_VALUE_LEN: usize = 32 * 1024;
const MAX_ID_LEN: usize = 512;

/// The canonical form of a property id: type and GUID lower-cased, braces dropped, the name
/// as written or the number as a decimal. Two ids name the same property iff their canonical
/// forms are equal.
pub(crate) fn canonical_id(id: &str) -> Result<String, String> {
    let problem = |why: &str| {
        format!(
            "The extended property id '{id}' is not valid: {why}. Expected \"{{type}} {{guid}} Name {{name}}\", \"{{type}} {{guid}} Id 0x8xxx\" or \"{{type}} {{proptag}}\"."
        )
    };
    if id.len() > MAX_ID_LEN {
        return Err(problem("it is too long"));
    }
    if let Some((kind, tag)) = id.split_once(' ').filter(|(_, rest)| !rest.contains(' ')) {
        return proptag_id(kind, tag).map_err(&problem);
    }
    let mut parts = id.splitn(4, ' ');
    let (Some(kind), Some(guid), Some(form), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(problem("it has fewer than four parts"));
    };
    let Some(kind) = property_type(kind) else {
        return Err(problem("unknown property type"));
    };
    let bare = guid
        .strip_prefix('{')
        .and_then(|g| g.strip_suffix('}'))
        .unwrap_or(guid);
    let guid = uuid::Uuid::try_parse(bare).map_err(|_| problem("the GUID is malformed"))?;
    let key = if form.eq_ignore_ascii_case("Name") {
        if rest.is_empty() || rest.chars().any(char::is_control) {
            return Err(problem("the name is empty or has control characters"));
        }
        format!("name {rest}")
    } else if form.eq_ignore_ascii_case("Id") {
        let hex = rest
            .strip_prefix("0x")
            .or_else(|| rest.strip_prefix("0X"))
            .ok_or_else(|| problem("the id is not a 0x hexadecimal number"))?;
        let number = u16::from_str_radix(hex, 16)
            .map_err(|_| problem("the id is not a 16-bit hexadecimal number"))?;
        if number < 0x8000 || number == 0xFFFF {
            return Err(problem("the id must be in the named range 0x8000-0xFFFE"));
        }
        format!("id {number}")
    } else {
        return Err(problem("the third part must be Name or Id"));
    };
    Ok(format!(
        "{} {} {key}",
        kind.to_ascii_lowercase(),
        guid.hyphenated()
    ))
}

/// A type name of [`TYPES`], matched case-insensitively.
fn property_type(kind: &str) -> Option<&'static str> {
    TYPES.iter().copied().find(|t| t.eq_ignore_ascii_case(kind))
}

/// `0x` and up to four hexadecimal digits.
fn hex_u16(text: &str) -> Option<u16> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// The canonical form of `"{type} {proptag}"`: a predefined (tagged) property, whose ids
/// are 0x0001-0x7FFF; the ids above belong to named properties, reached through a GUID.
fn proptag_id(kind: &str, tag: &str) -> Result<String, &'static str> {
    let kind = property_type(kind).ok_or("unknown property type")?;
    let number = hex_u16(tag).ok_or("the property tag is not a 0x hexadecimal number")?;
    if number == 0 || number >= 0x8000 {
        return Err("a property tag must be in the range 0x0001-0x7FFF");
    }
    Ok(format!("{} tag {number}", kind.to_ascii_lowercase()))
}

fn invalid(message: &str) -> Answer {
    Answer::error(400, "ErrorInvalidExtendedPropertyValue", message)
}

/// One property as stored: the id as the client first wrote it, and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExtendedValue {
    pub(crate) id: String,
    pub(crate) value: String,
}

/// An item's extended properties, keyed by canonical id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct ExtendedProps(BTreeMap<String, ExtendedValue>);

impl ExtendedProps {
    /// Validates a body's `singleValueExtendedProperties` array (all of it, before anything
    /// is written) and returns it ready for [`ExtendedProps::apply`].
    pub(crate) fn parse(body: &Value) -> Result<Vec<(String, ExtendedValue)>, Answer> {
        let Value::Array(items) = body else {
            return Err(Answer::bad_request(
                "singleValueExtendedProperties must be an array of {id, value} objects.",
            ));
        };
        if items.len() > MAX_PER_ITEM {
            return Err(Answer::bad_request(&format!(
                "At most {MAX_PER_ITEM} singleValueExtendedProperties may be written on one item."
            )));
        }
        let mut parsed = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(fields) = item else {
                return Err(Answer::bad_request(
                    "Each singleValueExtendedProperties entry must be an object with id and value.",
                ));
            };
            if let Some(other) = fields
                .keys()
                .find(|k| !matches!(k.as_str(), "id" | "value" | "@odata.type"))
            {
                return Err(Answer::bad_request(&format!(
                    "The property '{other}' does not exist on type 'microsoft.graph.singleValueLegacyExtendedProperty'. Make sure to only use property names that are defined by the type."
                )));
            }
            let Some(Value::String(id)) = fields.get("id") else {
                return Err(invalid("An extended property needs an 'id' string."));
            };
            let value = match fields.get("value") {
                Some(Value::String(v)) => v.clone(),
                _ => return Err(invalid(&format!(
                    "The extended property '{id}' needs a 'value' string (Graph carries every type as a string)."
                ))),
            };
            if value.len() > MAX_VALUE_LEN {
                return Err(invalid(&format!(
                    "The value of the extended property '{id}' is longer than {MAX_VALUE_LEN} bytes."
                )));
            }
            let key = canonical_id(id).map_err(|m| invalid(&m))?;
            parsed.push((
                key,
                ExtendedValue {
                    id: id.clone(),
                    value,
                },
            ));
        }
        Ok(parsed)
    }

    /// Writes parsed properties: an existing one keeps its first spelling, as Exchange keeps
    /// the named property it resolved once.
    pub(crate) fn apply(&mut self, parsed: Vec<(String, ExtendedValue)>) -> Result<(), Answer> {
        let new = parsed
            .iter()
            .filter(|(k, _)| !self.0.contains_key(k))
            .count();
        if self.0.len() + new > MAX_PER_ITEM {
            return Err(Answer::bad_request(&format!(
                "An item may carry at most {MAX_PER_ITEM} extended properties."
            )));
        }
        for (key, prop) in parsed {
            match self.0.get_mut(&key) {
                Some(existing) => existing.value = prop.value,
                None => {
                    self.0.insert(key, prop);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &ExtendedValue)> {
        self.0.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `singleValueExtendedProperties` array for the wanted canonical ids, in the
    /// client's spelling; `None` when the item has none of them, since Graph then leaves
    /// the property out of the item.
    pub(crate) fn render(&self, wanted: &[String]) -> Option<Value> {
        let found: Vec<Value> = wanted
            .iter()
            .filter_map(|key| self.0.get(key))
            .map(|p| json!({"id": p.id, "value": p.value}))
            .collect();
        (!found.is_empty()).then_some(Value::Array(found))
    }
}

/// What a `$expand` asks for: the extended properties it names (canonical ids), and the
/// other navigation properties, raw, for the store to accept or refuse.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Expand {
    pub(crate) extended: Option<Vec<String>>,
    pub(crate) other: Vec<String>,
}

const EXTENDED: &str = "singleValueExtendedProperties";
/// Longest `$expand` parsed.
const MAX_EXPAND_LEN: usize = 8 * 1024;

/// Parses `$expand`; `singleValueExtendedProperties` must carry
/// `($filter=id eq '…' [or id eq '…']…)`, since Graph cannot list all of an item's
/// extended properties.
pub(crate) fn parse_expand(raw: Option<&str>) -> Result<Expand, Answer> {
    let mut expand = Expand::default();
    let Some(raw) = raw else {
        return Ok(expand);
    };
    if raw.len() > MAX_EXPAND_LEN {
        return Err(Answer::bad_request("$expand is too long."));
    }
    for part in split_top_level(raw)? {
        let part = part.trim();
        let (name, options) = match part.find('(') {
            Some(open) => {
                let inner = part[open + 1..].strip_suffix(')').ok_or_else(|| {
                    Answer::bad_request(&format!("Unbalanced parentheses in $expand: '{part}'."))
                })?;
                (part[..open].trim(), Some(inner))
            }
            None => (part, None),
        };
        if !name.eq_ignore_ascii_case(EXTENDED) {
            expand.other.push(part.to_owned());
            continue;
        }
        let filter = options
            .and_then(|o| {
                o.split(';').find_map(|opt| {
                    let (k, v) = opt.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("$filter").then_some(v)
                })
            })
            .ok_or_else(|| {
                Answer::bad_request(
                    "$expand=singleValueExtendedProperties needs ($filter=id eq '…'): the properties must be named.",
                )
            })?;
        let ids = parse_id_filter(filter)?;
        expand.extended.get_or_insert_with(Vec::new).extend(ids);
    }
    Ok(expand)
}

/// Splits on commas outside parentheses and quotes.
fn split_top_level(raw: &str) -> Result<Vec<&str>, Answer> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    for (i, c) in raw.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| Answer::bad_request("Unbalanced parentheses in $expand."))?
            }
            ',' if !quoted && depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return Err(Answer::bad_request(
            "Unbalanced parentheses or quotes in $expand.",
        ));
    }
    parts.push(&raw[start..]);
    Ok(parts)
}

/// `id eq '…' or id eq '…' …` → canonical ids.
fn parse_id_filter(raw: &str) -> Result<Vec<String>, Answer> {
    let tokens = Lexer::tokens(raw)?;
    let mut ids = Vec::new();
    let mut at = 0;
    loop {
        match tokens.get(at..at + 3) {
            Some([Tok::Ident(prop), Tok::Ident(op), Tok::Str(id)])
                if prop.eq_ignore_ascii_case("id") && op.eq_ignore_ascii_case("eq") =>
            {
                ids.push(canonical_id(id).map_err(|m| filter::invalid_filter(&m))?);
            }
            _ => {
                return Err(filter::invalid_filter(
                    "The $filter of singleValueExtendedProperties in $expand must be id eq '…', several joined by or.",
                ))
            }
        }
        at += 3;
        match tokens.get(at) {
            None => return Ok(ids),
            Some(Tok::Ident(or)) if or.eq_ignore_ascii_case("or") => at += 1,
            Some(_) => {
                return Err(filter::invalid_filter(
                    "Only 'or' may join the ids in the $filter of singleValueExtendedProperties.",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const GUID: &str = "8ECCC264-6880-4EBE-992F-8888D2EEAA1D";

    #[test]
    fn canonical_ids_fold_type_and_guid_case_but_not_the_name() {
        let a = canonical_id(&format!("String {{{GUID}}} Name CrmId")).unwrap();
        let b = canonical_id(&format!("string {{{}}} name CrmId", GUID.to_lowercase())).unwrap();
        let c = canonical_id(&format!("String {{{GUID}}} Name crmid")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let n = canonical_id(&format!("Integer {{{GUID}}} Id 0x8012")).unwrap();
        assert_eq!(
            n,
            canonical_id(&format!("integer {GUID} id 0X8012")).unwrap()
        );
        assert!(n.ends_with("id 32786"));
    }

    #[test]
    fn proptag_ids_name_a_predefined_property() {
        let a = canonical_id("String 0x3A24").unwrap();
        assert_eq!(a, canonical_id("string 0x3a24").unwrap());
        assert_eq!(a, canonical_id("STRING 0X3A24").unwrap());
        assert_ne!(a, canonical_id("Integer 0x3A24").unwrap());
        assert_ne!(a, canonical_id("String 0x3004").unwrap());
        assert!(canonical_id("Long 0x1").is_ok());
        for bad in [
            "String 0x0000",
            "String 0x8012",
            "String 0xFFFF",
            "String 0x13A24",
            "String 3A24",
            "String 0x",
            "String 0x3A2G",
            "String 0x+3A2",
            "Strung 0x3A24",
            "StringArray 0x3A24",
            "String  0x3A24",
        ] {
            assert!(canonical_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proptag_ids_are_written_expanded_and_rendered_as_spelled() {
        let body = json!([{"id": "String 0x3A24", "value": "a@example.com"}]);
        let mut props = ExtendedProps::default();
        props.apply(ExtendedProps::parse(&body).unwrap()).unwrap();
        let expand = parse_expand(Some(
            "singleValueExtendedProperties($filter=id eq 'string 0x3a24')",
        ))
        .unwrap();
        let wanted = expand.extended.unwrap();
        assert_eq!(
            props.render(&wanted),
            Some(json!([{"id": "String 0x3A24", "value": "a@example.com"}]))
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "String",
            &format!("Strung {{{GUID}}} Name X"),
            "String {not-a-guid} Name X",
            &format!("String {{{GUID}}} Label X"),
            &format!("String {{{GUID}}} Name "),
            &format!("String {{{GUID}}} Id 0x0037"),
            &format!("String {{{GUID}}} Id 8012"),
            &format!("String {{{GUID}}} Id 0x18012"),
            &format!("StringArray {{{GUID}}} Name X"),
        ] {
            assert!(canonical_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_apply_render_keeps_first_spelling() {
        let id = format!("String {{{GUID}}} Name CrmId");
        let body = json!([{"id": id, "value": "003A"}]);
        let mut props = ExtendedProps::default();
        props.apply(ExtendedProps::parse(&body).unwrap()).unwrap();
        let respelled = format!("string {{{}}} Name CrmId", GUID.to_lowercase());
        props
            .apply(ExtendedProps::parse(&json!([{"id": respelled, "value": "003B"}])).unwrap())
            .unwrap();
        let key = canonical_id(&id).unwrap();
        assert_eq!(
            props.render(std::slice::from_ref(&key)),
            Some(json!([{"id": id, "value": "003B"}]))
        );
        assert_eq!(props.render(&["string x name y".to_owned()]), None);
    }

    #[test]
    fn bodies_with_wrong_shapes_are_refused() {
        let id = format!("String {{{GUID}}} Name CrmId");
        for bad in [
            json!({"id": id, "value": "x"}),
            json!([{"id": id}]),
            json!([{"id": id, "value": 3}]),
            json!([{"id": 3, "value": "x"}]),
            json!([{"id": id, "value": "x", "extra": 1}]),
            json!([{"id": "String {zz} Name X", "value": "x"}]),
            json!(["x"]),
            json!([{"id": id, "value": "x".repeat(MAX_VALUE_LEN + 1)}]),
        ] {
            assert_eq!(ExtendedProps::parse(&bad).unwrap_err().status, 400, "{bad}");
        }
        let many: Vec<Value> = (0..=MAX_PER_ITEM)
            .map(|i| json!({"id": format!("String {{{GUID}}} Name P{i}"), "value": "v"}))
            .collect();
        assert!(ExtendedProps::parse(&Value::Array(many)).is_err());
    }

    #[test]
    fn expand_names_the_wanted_ids() {
        let a = format!("String {{{GUID}}} Name CrmId");
        let b = format!("String {{{GUID}}} Name CrmObject");
        let raw = format!(
            "singleValueExtendedProperties($filter=id eq '{a}' or id eq '{b}'),exceptionOccurrences"
        );
        let expand = parse_expand(Some(&raw)).unwrap();
        assert_eq!(
            expand.extended,
            Some(vec![canonical_id(&a).unwrap(), canonical_id(&b).unwrap()])
        );
        assert_eq!(expand.other, vec!["exceptionOccurrences".to_owned()]);
        assert_eq!(parse_expand(None).unwrap(), Expand::default());
    }

    #[test]
    fn expand_without_or_with_bad_filter_is_refused() {
        let a = format!("String {{{GUID}}} Name CrmId");
        for bad in [
            "singleValueExtendedProperties".to_owned(),
            "singleValueExtendedProperties($select=id)".to_owned(),
            format!("singleValueExtendedProperties($filter=id ne '{a}')"),
            format!("singleValueExtendedProperties($filter=id eq '{a}' and id eq '{a}')"),
            "singleValueExtendedProperties($filter=id eq 'nonsense')".to_owned(),
            format!("singleValueExtendedProperties($filter=id eq '{a}'"),
            "a)".to_owned(),
        ] {
            assert_eq!(parse_expand(Some(&bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
