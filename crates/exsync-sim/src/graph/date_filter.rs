//! `$filter` comparisons on an event's times (`start/dateTime ge '2026-03-01T00:00:00'`),
//! which the shared OData filter (strings and extended properties) does not read. They are
//! taken off the top-level `and` chain; what remains goes to the shared parser, so a time
//! comparison under `or` or `not` is still refused there.

use chrono::{DateTime, Utc};

use super::call::Answer;
use super::time_zone::{parse_local, Zone};

/// Which time of the event a comparison reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Side {
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One `start/dateTime ge '…'`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeTest {
    side: Side,
    op: Op,
    at: DateTime<Utc>,
}

impl TimeTest {
    /// Whether an event starting and ending at these instants passes.
    pub(crate) fn passes(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let value = match self.side {
            Side::Start => start,
            Side::End => end,
        };
        match self.op {
            Op::Eq => value == self.at,
            Op::Ne => value != self.at,
            Op::Gt => value > self.at,
            Op::Ge => value >= self.at,
            Op::Lt => value < self.at,
            Op::Le => value <= self.at,
        }
    }
}

/// Splits on ` and ` outside quotes and parentheses; `None` when parentheses don't balance
/// (the shared parser then says what is wrong).
fn top_level_and(raw: &str) -> Option<Vec<&str>> {
    let lower = raw.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let (mut depth, mut quoted, mut start, mut i) = (0usize, false, 0usize, 0usize);
    let mut parts = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.checked_sub(1)?,
            b' ' if !quoted && depth == 0 && lower[i..].starts_with(" and ") => {
                parts.push(raw.get(start..i)?);
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(raw.get(start..)?);
    Some(parts)
}

/// A clause `start/dateTime op 'literal'`, if that is what it is.
fn time_test(clause: &str) -> Result<Option<TimeTest>, Answer> {
    let mut words = clause.trim().splitn(3, ' ');
    let (Some(field), Some(op), Some(literal)) = (words.next(), words.next(), words.next()) else {
        return Ok(None);
    };
    let side = match field {
        f if f.eq_ignore_ascii_case("start/dateTime") => Side::Start,
        f if f.eq_ignore_ascii_case("end/dateTime") => Side::End,
        _ => return Ok(None),
    };
    let op = match op.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        other => {
            return Err(Answer::bad_request(&format!(
                "Invalid $filter: '{other}' can't compare {field}."
            )))
        }
    };
    let literal = literal.trim();
    let text = literal
        .strip_prefix('\'')
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or(literal);
    // Stored times compare in UTC, as Graph compares them.
    let at = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_local(text).map(|t| Zone::utc().to_utc(t)))
        .ok_or_else(|| {
            Answer::bad_request(&format!(
                "Invalid $filter: '{text}' is not a date and time for {field}."
            ))
        })?;
    Ok(Some(TimeTest { side, op, at }))
}

/// The time tests of a `$filter` and the rest of it for the shared parser (`None` when
/// nothing remains).
pub(crate) fn split(raw: &str) -> Result<(Vec<TimeTest>, Option<String>), Answer> {
    let Some(clauses) = top_level_and(raw) else {
        return Ok((Vec::new(), Some(raw.to_owned())));
    };
    let mut tests = Vec::new();
    let mut rest = Vec::new();
    for clause in clauses {
        match time_test(clause)? {
            Some(test) => tests.push(test),
            None => rest.push(clause.trim()),
        }
    }
    let rest = (!rest.is_empty()).then(|| rest.join(" and "));
    Ok((tests, rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn time_comparisons_come_off_the_and_chain() {
        let (tests, rest) = split(
            "start/dateTime ge '2026-03-01T00:00:00' and subject eq 'a and b' and End/DateTime lt '2026-03-02T00:00:00Z'",
        )
        .unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!(rest.as_deref(), Some("subject eq 'a and b'"));
        let inside = (t("2026-03-01T09:00:00Z"), t("2026-03-01T10:00:00Z"));
        let before = (t("2026-02-28T09:00:00Z"), t("2026-02-28T10:00:00Z"));
        assert!(tests.iter().all(|x| x.passes(inside.0, inside.1)));
        assert!(!tests.iter().all(|x| x.passes(before.0, before.1)));
    }

    #[test]
    fn other_filters_pass_through_and_bad_times_are_400() {
        assert_eq!(
            split("subject eq 'x' or start/dateTime ge '2026-03-01'").unwrap(),
            (
                Vec::new(),
                Some("subject eq 'x' or start/dateTime ge '2026-03-01'".into())
            )
        );
        let (tests, rest) = split("start/dateTime ge '2026-03-01'").unwrap();
        assert_eq!((tests.len(), rest), (1, None));
        assert_eq!(split("start/dateTime ge 'soon'").unwrap_err().status, 400);
        assert_eq!(
            split("start/dateTime startswith '2026'")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            split("(subject eq 'x'").unwrap().1.as_deref(),
            Some("(subject eq 'x'")
        );
    }
}
