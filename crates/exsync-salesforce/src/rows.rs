//! A query answer parsed into rows that borrow its text, for the change read: a first sync
//! reads every record of the org, and building a `serde_json::Value` of each (a map with a
//! `String` per key and per value) was a tenth of its CPU. A row is a flat list of the
//! record's fields in the order sent; text without escapes is borrowed from the answer, and
//! serde_json still does the escapes and bounds the nesting (its recursion limit).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::query::QueryAnswer;
use crate::record::SfRecord;

/// One JSON value of an answer, as `serde_json::Value` would hold it, its text borrowed where
/// it needed no unescaping.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Field<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Field<'a>>),
    Object(Row<'a>),
}

/// The members of a JSON object in the order sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Row<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

impl<'a> Row<'a> {
    /// The member named `name`; of a name sent twice the last, which is the one
    /// `serde_json::Value` keeps. A record has a few dozen fields, so a scan is quicker than
    /// building any index.
    fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| same_name(key, name))
            .map(|(_, value)| value)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Field<'a>> {
        self.0
            .iter_mut()
            .rev()
            .find(|(key, _)| same_name(key, name))
            .map(|(_, value)| value)
    }
}

/// `key == name`, with the first bytes compared before the call that compares the rest: a
/// record's field names often share a length, seldom a first letter.
fn same_name(key: &str, name: &str) -> bool {
    key.len() == name.len() && key.as_bytes().first() == name.as_bytes().first() && key == name
}

impl<'a> Field<'a> {
    fn get(&self, name: &str) -> Option<&Field<'a>> {
        match self {
            Field::Object(row) => row.get(name),
            _ => None,
        }
    }
}

impl SfRecord for Field<'_> {
    fn str_field(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Field::Str(text)) => Some(text),
            _ => None,
        }
    }

    fn bool_field(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(Field::Bool(flag)) => Some(*flag),
            _ => None,
        }
    }

    fn i64_field(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Field::Number(n)) => n.as_i64(),
            _ => None,
        }
    }

    fn u64_field(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(Field::Number(n)) => n.as_u64(),
            _ => None,
        }
    }

    fn record(&self, name: &str) -> Option<&Self> {
        self.get(name)
    }
}

impl QueryAnswer for Field<'_> {
    fn take_records(&mut self) -> Option<Vec<Self>> {
        let Field::Object(row) = self else {
            return None;
        };
        match row.get_mut("records").map(std::mem::take) {
            Some(Field::Array(list)) => Some(list),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FieldVisitor { members: 0 }.deserialize(deserializer)
    }
}

/// Reads one value; an object is given room for `members` at once. The records of a page
/// have the same fields, so each is sized as the one before it and never grows.
#[derive(Clone, Copy)]
struct FieldVisitor {
    members: usize,
}

impl<'de> DeserializeSeed<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Field<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Field::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // What `serde_json::Value` does with a number that is no finite f64.
        Ok(Number::from_f64(v).map_or(Field::Null, Field::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Field::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut item = FieldVisitor { members: 0 };
        while let Some(next) = seq.next_element_seed(item)? {
            if let Field::Object(Row(members)) = &next {
                item.members = members.len();
            }
            list.push(next);
        }
        Ok(Field::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(self.members));
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value_seed(FieldVisitor { members: 0 })?));
        }
        // Room that a smaller object left unused goes back at once: a hostile list of empty
        // objects after a large one would otherwise hold the large one's room for each.
        if members.len() < members.capacity() / 2 {
            members.shrink_to_fit();
        }
        Ok(Field::Object(Row(members)))
    }
}

/// A member's name, borrowed unless it held an escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Map, Value};

    use super::*;
    use crate::client::Answer;
    use crate::error::Error;
    use crate::query::page_of;

    /// The `Value` a field stands for, to hold it against serde_json's own reading.
    fn to_value(field: &Field<'_>) -> Value {
        match field {
            Field::Null => Value::Null,
            Field::Bool(b) => Value::Bool(*b),
            Field::Number(n) => Value::Number(n.clone()),
            Field::Str(s) => Value::String(s.to_string()),
            Field::Array(list) => Value::Array(list.iter().map(to_value).collect()),
            Field::Object(Row(members)) => {
                let mut map = Map::new();
                for (key, value) in members {
                    map.insert(key.to_string(), to_value(value));
                }
                Value::Object(map)
            }
        }
    }

    fn both(text: &str) -> (Value, Answer) {
        let answer = Answer::of_text("query", text);
        (answer.parse::<Value>().expect(text), answer)
    }

    #[test]
    fn rows_read_every_json_shape_as_value_does() {
        for text in [
            r#"{"Id":"003A","FirstName":"Zoë","LastName":"O\"Brien \\ \n \u00e9 \ud83d\ude00"}"#,
            r#"{"n":0,"neg":-9223372036854775808,"big":18446744073709551615,"bigger":18446744073709551616,"f":1.5e-10,"g":-0.0,"h":1e308,"i":12.0}"#,
            r#"{"a":null,"b":true,"c":false,"d":[],"e":{},"f":[1,"x",null,[{"y":[2]}]]}"#,
            r#"{"attributes":{"type":"Contact","url":"/services/data/v62.0/sobjects/Contact/003A"},"Account":{"attributes":{"type":"Account"},"Name":"Acme"},"Owner":null}"#,
            r#"{"Id":"first","Id":"second","\u0049d":"third"}"#,
            r#"["not", "an", {"object": 1}]"#,
            r#""text""#,
            "42",
            "  ",
        ] {
            let (value, answer) = both(text);
            let field: Field<'_> = answer.parse().expect(text);
            assert_eq!(to_value(&field), value, "{text}");
        }
    }

    #[test]
    fn text_without_escapes_is_borrowed_and_escaped_text_is_decoded() {
        let answer = Answer::of_text("query", r#"{"Plain":"Ada","Esc\u0061ped":"O\"Brien\n"}"#);
        let field: Field<'_> = answer.parse().unwrap();
        let Field::Object(Row(members)) = &field else {
            panic!("{field:?}")
        };
        assert!(matches!(members[0].0, Cow::Borrowed("Plain")));
        assert!(matches!(members[0].1, Field::Str(Cow::Borrowed("Ada"))));
        assert!(matches!(&members[1].0, Cow::Owned(k) if k == "Escaped"));
        assert!(matches!(&members[1].1, Field::Str(Cow::Owned(v)) if v == "O\"Brien\n"));
    }

    #[test]
    fn each_record_is_sized_as_the_one_before_and_keeps_no_more_room_than_it_needs() {
        let large: Vec<String> = (0..100).map(|i| format!(r#""F{i}":{i}"#)).collect();
        let large = format!("{{{}}}", large.join(","));
        let text = format!(r#"[{large},{large},{{}},{{"b":1}},{large}]"#);
        let answer = Answer::of_text("query", &text);
        let Field::Array(list) = answer.parse::<Field<'_>>().unwrap() else {
            panic!("a list")
        };
        let rooms: Vec<(usize, usize)> = list
            .iter()
            .map(|row| match row {
                Field::Object(Row(members)) => (members.len(), members.capacity()),
                other => panic!("{other:?}"),
            })
            .collect();
        // The second of two equal records is given exactly its room.
        assert_eq!(rooms[1], (100, 100));
        for (len, capacity) in rooms {
            assert!(
                capacity <= (2 * len).max(4),
                "{len} members in room for {capacity}"
            );
        }
    }

    #[test]
    fn look_ups_answer_as_value_answers() {
        let text = r#"{"s":"x","t":true,"i":-3,"u":7,"f":2.5,"big":18446744073709551615,
            "n":null,"o":{"Name":"Acme","Deep":{"s":"y"}},"a":[1],"s2":"1","Id":"a","Id":"b"}"#;
        let (value, answer) = both(text);
        let field: Field<'_> = answer.parse().unwrap();
        let names = [
            "s", "t", "i", "u", "f", "big", "n", "o", "a", "s2", "Id", "absent", "",
        ];
        let (r, v) = (&field, &value);
        for name in names {
            assert_eq!(r.str_field(name), v.str_field(name), "{name}");
            assert_eq!(r.bool_field(name), v.bool_field(name), "{name}");
            assert_eq!(r.i64_field(name), v.i64_field(name), "{name}");
            assert_eq!(r.u64_field(name), v.u64_field(name), "{name}");
            assert_eq!(
                r.record(name).map(to_value).as_ref(),
                v.record(name),
                "{name}"
            );
        }
        assert_eq!(r.str_field("Id"), Some("b"), "the last of a repeated name");
        let deep = r.record("o").and_then(|o| o.record("Deep"));
        assert_eq!(deep.and_then(|d| d.str_field("s")), Some("y"));
        // A record that is no object has no fields.
        let answer = Answer::of_text("query", "[1]");
        let list: Field<'_> = answer.parse().unwrap();
        assert_eq!(list.str_field("0"), None);
        assert_eq!(list.record("0"), None);
    }

    #[test]
    fn a_lone_surrogate_is_mended_before_the_rows_are_read() {
        let answer = Answer::of_text(
            "query",
            r#"{"records":[{"Id":"003A","LastName":"Cut \ud83d","Title":"\udc00 pair \ud83d\ude00"}]}"#,
        );
        let page = page_of::<Field<'_>>(answer.parse().unwrap()).unwrap();
        let broken = exsync_core::surrogates::BROKEN;
        assert_eq!(
            page.records[0].str_field("LastName"),
            Some(format!("Cut {broken}").as_str())
        );
        assert_eq!(
            page.records[0].str_field("Title"),
            Some(format!("{broken} pair 😀").as_str())
        );
    }

    #[test]
    fn a_depth_bomb_is_refused_as_value_refuses_it() {
        for text in [
            format!(r#"{{"records":[{}]}}"#, "[".repeat(100_000)),
            format!(r#"{{"records":[{}"#, r#"{"a":"#.repeat(100_000)),
        ] {
            let answer = Answer::of_text("query", &text);
            let rows = answer.parse::<Field<'_>>().map(|_| ()).unwrap_err();
            let value = answer.parse::<Value>().map(|_| ()).unwrap_err();
            assert_eq!(rows.to_string(), value.to_string());
            assert!(
                rows.to_string()
                    .starts_with("unexpected response: GET query: HTTP 200 OK: body is not JSON: recursion limit exceeded"),
                "{rows}"
            );
        }
        // As deep as serde_json allows still reads.
        let deep = format!(r#"{{"records":[{}{}]}}"#, "[".repeat(120), "]".repeat(120));
        let answer = Answer::of_text("query", &deep);
        let page = page_of::<Field<'_>>(answer.parse().unwrap()).unwrap();
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn a_page_of_rows_is_read_as_a_page_of_values_and_refused_alike() {
        let text = r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01g-2000","records":[{"Id":"003A"},{"Id":"003B"}]}"#;
        let answer = Answer::of_text("query", text);
        let rows = page_of::<Field<'_>>(answer.parse().unwrap()).unwrap();
        let values = page_of::<Value>(answer.parse().unwrap()).unwrap();
        assert_eq!(
            (rows.total_size, rows.done, &rows.next_records_url),
            (values.total_size, values.done, &values.next_records_url)
        );
        assert_eq!(
            rows.follow().as_deref(),
            Some("/services/data/v62.0/query/01g-2000")
        );
        let ids: Vec<_> = rows
            .records
            .iter()
            .filter_map(|r| r.str_field("Id"))
            .collect();
        assert_eq!(ids, ["003A", "003B"]);

        for bad in [
            r#"{"totalSize":0,"done":true}"#,
            r#"{"records":{"Id":"003A"}}"#,
            r#"{"records":null}"#,
            r#"[{"records":[]}]"#,
            "",
        ] {
            let answer = Answer::of_text("query", bad);
            let rows = page_of::<Field<'_>>(answer.parse().unwrap()).map(|_| ());
            let values = page_of::<Value>(answer.parse().unwrap()).map(|_| ());
            match (rows, values) {
                (Err(Error::Decode(rows)), Err(Error::Decode(values))) => {
                    assert_eq!(rows, "query answer without records", "{bad}");
                    assert_eq!(rows, values, "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
