//! A Salesforce record as the mappings read it: a field's text, flag, number or nested record
//! by name. Implemented for `serde_json::Value`, which most callers hold, and for the borrowed
//! rows a change read parses its pages into (`rows.rs`), so one mapping serves both.

use serde_json::Value;

/// Read-only look-ups of a record's fields by name. A field that is absent, or holds another
/// JSON type, reads as `None`, as `serde_json::Value`'s accessors answer.
pub trait SfRecord {
    /// The field's text, when it is a JSON string.
    fn str_field(&self, name: &str) -> Option<&str>;

    /// The field's value, when it is `true` or `false`.
    fn bool_field(&self, name: &str) -> Option<bool>;

    /// The field's value, when it is a JSON number that is a whole number within `i64`.
    fn i64_field(&self, name: &str) -> Option<i64>;

    /// The field's value, when it is a JSON number that is a whole number within `u64`.
    fn u64_field(&self, name: &str) -> Option<u64>;

    /// What a field holds, as a record of its own: a relationship (`Account`, `Relation`) or
    /// `attributes`. Any JSON value is answered; its fields read as `None` unless it is an
    /// object.
    fn record(&self, name: &str) -> Option<&Self>;
}

impl SfRecord for Value {
    fn str_field(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    fn bool_field(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Value::as_bool)
    }

    fn i64_field(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }

    fn u64_field(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Value::as_u64)
    }

    fn record(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}
