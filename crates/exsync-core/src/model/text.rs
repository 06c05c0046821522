//! Text normalisation shared by every record type: both systems reformat what they store
//! (trailing spaces, CRLF, upper-case addresses), and none of that is a real change. Text
//! neither side can hold is made to fit here too, so both sides compare what can be written:
//! control characters go (XML 1.0, which EWS speaks, cannot carry them, and one in a batch
//! fails the whole batch), and text longer than a field holds is cut. [`Fit`] says what it
//! changed, for the admin.

use std::fmt::{self, Display};

use super::address::{check_address, Charset};
use crate::surrogates::BROKEN;

/// What Exchange holds in a subject, a location and a contact's name, company, title,
/// department, phone numbers and address parts. Counted in UTF-16 code units, as .NET (and
/// Salesforce's Java) count a string's length, so text outside the Basic Multilingual Plane
/// cannot overflow the limit on either side.
pub const MAX_LINE: usize = 255;

/// What the CRM's `Description` holds (a contact's notes, an event's body). Exchange takes
/// far more, but a longer text could never be the same on both sides, and the pair would be
/// written again on every pass.
pub const MAX_TEXT: usize = 32_000;

/// How much of a rejected value a reason quotes: enough to find the record, bounded so a
/// hostile megabyte does not end up in the status database.
const QUOTED: usize = 60;

/// Characters that cannot travel in XML 1.0 whatever the escaping: the controls (tab, line
/// feed and carriage return aside, which the callers treat as formatting) and U+FFFE/U+FFFF.
fn unsendable(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Half of a character a server sent alone ([`BROKEN`]) becomes U+FFFD, the replacement
/// character; every other character stays.
fn mended(c: char) -> char {
    if c == BROKEN {
        '\u{FFFD}'
    } else {
        c
    }
}

/// One-line fields: control characters removed, trimmed, inner runs of whitespace (tabs and
/// line breaks included) folded to one space.
pub fn clean_line(s: &str) -> String {
    // Nearly every value read is clean already; checking is cheaper than rebuilding it.
    if is_clean_line(s) {
        return s.to_owned();
    }
    s.split(char::is_whitespace)
        .map(|word| {
            word.chars()
                .filter(|c| !unsendable(*c))
                .map(mended)
                .collect::<String>()
        })
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Multi-line fields: CRLF and CR become LF, control characters other than tab and line feed
/// go, trailing space on each line and blank lines at either end go.
pub fn clean_multiline(s: &str) -> String {
    if is_clean_multiline(s) {
        return s.to_owned();
    }
    let unified: String = s
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !unsendable(*c))
        .map(mended)
        .collect();
    let lines: Vec<&str> = unified.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').trim_start().to_owned()
}

/// Whether [`clean_line`] would give `s` back unchanged: single spaces between words and
/// nothing it removes.
fn is_clean_line(s: &str) -> bool {
    let mut after_space = true;
    for c in s.chars() {
        if c == ' ' {
            if after_space {
                return false;
            }
            after_space = true;
        } else if c.is_whitespace() || unsendable(c) || c == BROKEN {
            return false;
        } else {
            after_space = false;
        }
    }
    s.is_empty() || !after_space
}

/// Whether [`clean_multiline`] would give `s` back unchanged.
fn is_clean_multiline(s: &str) -> bool {
    !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && s.chars()
            .all(|c| c != '\r' && c != BROKEN && (c == '\n' || c == '\t' || !unsendable(c)))
        && s.split('\n')
            .all(|line| line.len() == line.trim_end().len())
}

/// An e-mail address: trimmed and lower-cased (the local part is case-insensitive in every
/// mail system these records come from).
pub fn clean_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A list of addresses: cleaned, empties dropped, duplicates removed keeping the first.
pub(super) fn clean_email_list(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for email in list {
        let email = clean_email(email);
        if !email.is_empty() && !out.contains(&email) {
            out.push(email);
        }
    }
    out
}

/// `s` cut to at most `max` UTF-16 code units, never inside a character. Returns whether it
/// was cut.
fn cut(s: &mut String, max: usize) -> bool {
    let mut units = 0;
    for (at, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            s.truncate(at);
            return true;
        }
    }
    false
}

/// A quoted, escaped and shortened rendering of a value for a reason.
pub(crate) fn quoted(s: &str) -> String {
    let mut shown: String = s.chars().take(QUOTED).collect();
    if s.chars().nth(QUOTED).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// A field's dotted name (`addresses.business.city`) for a note, put together only when a
/// note is written.
pub(crate) struct Dotted<'a>(pub(crate) &'a [&'a str]);

impl Display for Dotted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, part) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(".")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// Cleans text and makes it fit a field, noting in `notes` what was removed or cut.
#[derive(Debug, Default)]
pub(crate) struct Fit {
    pub(crate) notes: Vec<String>,
}

impl Fit {
    fn controls(&mut self, field: &str, s: &str, formatting: impl Fn(char) -> bool) {
        if s.chars().any(|c| unsendable(c) && !formatting(c)) {
            self.notes
                .push(format!("{field}: control characters removed"));
        }
        if s.contains(BROKEN) {
            self.notes.push(format!(
                "{field}: half of a character (such as an emoji cut short) came alone and \
                 reads as U+FFFD (\u{FFFD}); correct the text where it was written"
            ));
        }
    }

    fn limit(
        &mut self,
        field: &str,
        mut s: String,
        max: usize,
        clean: fn(&str) -> String,
    ) -> String {
        // Counted as the limit is, so the two numbers compare.
        let before = s.encode_utf16().count();
        if cut(&mut s, max) {
            // The cut may leave a space or a line break at the end, which cleaning takes off.
            s = clean(&s);
            self.notes.push(format!(
                "{field}: {before} characters, cut to the first {max}"
            ));
        }
        s
    }

    /// A one-line field (see [`clean_line`]) of at most `max` UTF-16 code units.
    pub(crate) fn line(&mut self, field: impl Display, s: &str, max: usize) -> String {
        // A UTF-8 string has at least as many bytes as UTF-16 units, so one no longer in
        // bytes than the limit fits; with nearly every value clean, most take this path.
        if s.len() <= max && is_clean_line(s) {
            return s.to_owned();
        }
        let field = field.to_string();
        self.controls(&field, s, char::is_whitespace);
        self.limit(&field, clean_line(s), max, clean_line)
    }

    /// [`Self::line`] in place, leaving a value that fits untouched.
    pub(crate) fn line_in_place(&mut self, field: impl Display, s: &mut String, max: usize) {
        if !(s.len() <= max && is_clean_line(s)) {
            *s = self.line(field, s, max);
        }
    }

    /// A multi-line field (see [`clean_multiline`]) of at most `max` UTF-16 code units.
    pub(crate) fn multiline(&mut self, field: impl Display, s: &str, max: usize) -> String {
        if s.len() <= max && is_clean_multiline(s) {
            return s.to_owned();
        }
        let field = field.to_string();
        self.controls(&field, s, |c| matches!(c, '\n' | '\r' | '\t'));
        self.limit(&field, clean_multiline(s), max, clean_multiline)
    }

    /// [`Self::multiline`] in place, leaving a value that fits untouched.
    pub(crate) fn multiline_in_place(&mut self, field: impl Display, s: &mut String, max: usize) {
        if !(s.len() <= max && is_clean_multiline(s)) {
            *s = self.multiline(field, s, max);
        }
    }

    /// Addresses cleaned, those that are no e-mail address dropped (one note for all of
    /// them, however many), duplicates removed keeping the first.
    pub(crate) fn emails(&mut self, field: &str, list: &[String]) -> Vec<String> {
        let mut dropped = Dropped::default();
        let kept = clean_email_list(list)
            .into_iter()
            .filter(|email| dropped.admits(email))
            .collect();
        dropped.note(field, &mut self.notes);
        kept
    }
}

/// Addresses left out of one field, for one note.
#[derive(Debug, Default)]
pub(crate) struct Dropped {
    count: usize,
    first: String,
}

impl Dropped {
    /// Whether an address may be kept; one that is no address is counted here instead.
    pub(crate) fn admits(&mut self, email: &str) -> bool {
        match check_address(email, Charset::International) {
            Ok(()) => true,
            Err(why) => {
                if self.count == 0 {
                    self.first = format!("{} ({why})", quoted(email));
                }
                self.count += 1;
                false
            }
        }
    }

    pub(crate) fn note(&self, field: &str, notes: &mut Vec<String>) {
        match self.count {
            0 => {}
            1 => notes.push(format!(
                "{field}: {} left out, not an e-mail address",
                self.first
            )),
            n => notes.push(format!(
                "{field}: {n} entries left out that are no e-mail address, the first {}",
                self.first
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_folds_inner_whitespace() {
        assert_eq!(clean_line("  Ada \t Lovelace \n"), "Ada Lovelace");
    }

    #[test]
    fn multiline_unifies_line_endings_and_trims() {
        assert_eq!(
            clean_multiline("\r\n one  \r\ntwo\rthree \n\n"),
            "one\ntwo\nthree"
        );
    }

    proptest::proptest! {
        // The fast paths must agree with the cleaning they skip, on any text.
        #[test]
        fn clean_text_is_given_back_as_it_is(s in "[ a-z\\t\\n\\r\\x00\\x0b\\u{a0}\\u{fffe}é]{0,12}") {
            let line = clean_line(&s);
            proptest::prop_assert_eq!(is_clean_line(&s), line == s);
            proptest::prop_assert_eq!(clean_line(&line), line.clone());
            let text = clean_multiline(&s);
            proptest::prop_assert_eq!(is_clean_multiline(&s), text == s);
            proptest::prop_assert_eq!(clean_multiline(&text), text.clone());
        }

        // A value that fits is given back without the checks; it must come out as the
        // checks would give it, notes included.
        #[test]
        fn fitting_skips_nothing_it_would_note(
            s in "[ a-z\t\n\r\x00\u{a0}é𝄞]{0,12}",
            max in 0usize..14,
        ) {
            let mut fast = Fit::default();
            let mut line = s.clone();
            fast.line_in_place("f", &mut line, max);
            let mut text = s.clone();
            fast.multiline_in_place("f", &mut text, max);
            let mut slow = Fit::default();
            slow.controls("f", &s, char::is_whitespace);
            let slow_line = slow.limit("f", clean_line(&s), max, clean_line);
            slow.controls("f", &s, |c| matches!(c, '\n' | '\r' | '\t'));
            let slow_text = slow.limit("f", clean_multiline(&s), max, clean_multiline);
            proptest::prop_assert_eq!(line, slow_line);
            proptest::prop_assert_eq!(text, slow_text);
            proptest::prop_assert_eq!(fast.notes, slow.notes);
        }
    }

    #[test]
    fn a_field_is_named_by_its_dotted_path_in_a_note() {
        let mut fit = Fit::default();
        let mut city = "a\u{7}b".to_owned();
        fit.line_in_place(Dotted(&["addresses", "business", "city"]), &mut city, 255);
        assert_eq!(city, "ab");
        assert_eq!(
            fit.notes,
            ["addresses.business.city: control characters removed"]
        );
    }

    #[test]
    fn email_list_dedupes_case_insensitively() {
        let list = vec![
            " A@X.test".into(),
            "".into(),
            "a@x.test".into(),
            "b@x.test".into(),
        ];
        assert_eq!(clean_email_list(&list), vec!["a@x.test", "b@x.test"]);
    }
}
