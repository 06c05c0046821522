//! Text normalisation shared by every record type: both systems reformat what they store
//! (trailing spaces, CRLF, upper-case addresses), and none of that is a real change.

/// One-line fields: trimmed, inner runs of whitespace folded to one space.
pub fn clean_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Multi-line fields: CRLF and CR become LF, trailing space on each line and blank lines at
/// either end go.
pub fn clean_multiline(s: &str) -> String {
    let unified = s.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = unified.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').trim_start().to_owned()
}

/// An e-mail address: trimmed and lower-cased (the local part is case-insensitive in every
/// mail system these records come from).
pub fn clean_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A list of addresses: cleaned, empties dropped, duplicates removed keeping the first.
pub fn clean_email_list(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for email in list {
        let email = clean_email(email);
        if !email.is_empty() && !out.contains(&email) {
            out.push(email);
        }
    }
    out
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
