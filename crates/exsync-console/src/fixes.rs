//! A fix as the console shows it: the commands in it as code the admin can copy (the console's
//! script adds a Copy button to each), the rest as text.
//!
//! The checks and passes write a fix as one line of prose that the terminal shows too, so the
//! commands are found in that line: a span between backticks, or, outside them, a run that
//! starts with a PowerShell cmdlet (`Get-Mailbox`, `New-ManagementRoleAssignment`) or a tool
//! the fixes name (`setspn`, `chmod`) and ends with its clause. Everything is encoded.

use crate::html::esc;

/// The PowerShell verbs of the cmdlets fixes name; a hyphenated word of prose ("Read-Only")
/// is not a command.
const VERBS: &[&str] = &[
    "Add", "Connect", "Disable", "Enable", "Get", "Grant", "New", "Remove", "Set", "Test",
];

/// Programs a fix may tell the admin to run without backticks.
const TOOLS: &[&str] = &["chmod", "setspn"];

/// The fix as HTML: text, with each command in `<code class="command">`.
pub(crate) fn render(fix: &str) -> String {
    let parts: Vec<&str> = fix.split('`').collect();
    // An odd backtick opens no span: it is shown as it is.
    let closed = parts.len() % 2 == 1;
    let mut out = String::with_capacity(fix.len() + 32);
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            prose(part, &mut out);
        } else if closed || i + 1 < parts.len() {
            out.push_str(&code(part));
        } else {
            out.push_str("&#96;");
            prose(part, &mut out);
        }
    }
    out
}

fn code(command: &str) -> String {
    format!(r#"<code class="command">{}</code>"#, esc(command))
}

/// Text outside backticks, with the commands in it as code.
fn prose(mut text: &str, out: &mut String) {
    while let Some(start) = command_start(text) {
        let end = start + command_len(text, start);
        out.push_str(&esc(&text[..start]));
        out.push_str(&code(text[start..end].trim_end()));
        let trailing = text[start..end].len() - text[start..end].trim_end().len();
        out.push_str(&esc(&text[end - trailing..end]));
        text = &text[end..];
    }
    out.push_str(&esc(text));
}

/// Where the first command in `text` starts: a word at the start, or after a space or `(`.
fn command_start(text: &str) -> Option<usize> {
    let mut word_start = true;
    for (i, c) in text.char_indices() {
        if word_start && is_command(first_word(&text[i..])) {
            return Some(i);
        }
        word_start = c.is_whitespace() || c == '(';
    }
    None
}

fn first_word(text: &str) -> &str {
    let end = text
        .find(|c: char| c.is_whitespace() || "(),;".contains(c))
        .unwrap_or(text.len());
    &text[..end]
}

fn is_command(word: &str) -> bool {
    if TOOLS.contains(&word) {
        return true;
    }
    match word.split_once('-') {
        Some((verb, noun)) => {
            VERBS.contains(&verb)
                && noun.starts_with(|c: char| c.is_ascii_uppercase())
                && noun.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// How long the command starting at `start` runs: to the end of its clause, which a `;`, a
/// `, `, a sentence's full stop, a parenthesis closing one opened just before it or opening
/// an aside after it, or ` and ` / ` or ` before another command ends.
fn command_len(text: &str, start: usize) -> usize {
    let in_parens = text[..start].ends_with('(');
    let rest = &text[start..];
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        let after = &rest[i + c.len_utf8()..];
        let ends = match c {
            ';' => true,
            ',' => after.starts_with(' '),
            '.' => after.is_empty() || after.starts_with(char::is_whitespace),
            '(' if depth == 0 && rest[..i].ends_with(' ') => true,
            '(' => {
                depth += 1;
                false
            }
            ')' if depth == 0 => in_parens,
            ')' => {
                depth -= 1;
                false
            }
            ' ' => ["and ", "or "].iter().any(|joint| {
                after
                    .strip_prefix(joint)
                    .is_some_and(|next| is_command(first_word(next)))
            }),
            _ => false,
        };
        if ends {
            return i;
        }
    }
    rest.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(command: &str) -> String {
        code(command)
    }

    #[test]
    fn commands_in_backticks_and_cmdlets_in_prose_are_code() {
        assert_eq!(
            render("store it with `exsync secrets set exchange.password` or on the console's Service account page"),
            format!(
                "store it with {} or on the console&#39;s Service account page",
                coded("exsync secrets set exchange.password")
            )
        );
        assert_eq!(
            render("check the address with Get-Mailbox -Identity a@x.test | fl PrimarySmtpAddress; or remove the user"),
            format!(
                "check the address with {}; or remove the user",
                coded("Get-Mailbox -Identity a@x.test | fl PrimarySmtpAddress")
            )
        );
        assert_eq!(
            render("check that EWS is enabled on the server (Get-WebServicesVirtualDirectory) and reachable from here"),
            format!(
                "check that EWS is enabled on the server ({}) and reachable from here",
                coded("Get-WebServicesVirtualDirectory")
            )
        );
        assert_eq!(
            render("grant it: New-ManagementRoleAssignment -App a -Role \"Application Contacts.ReadWrite\" and New-ManagementRoleAssignment -App a -Role \"Application Calendars.ReadWrite\". Then wait."),
            format!(
                "grant it: {} and {}. Then wait.",
                coded("New-ManagementRoleAssignment -App a -Role \"Application Contacts.ReadWrite\""),
                coded("New-ManagementRoleAssignment -App a -Role \"Application Calendars.ReadWrite\"")
            )
        );
        assert_eq!(
            render("chmod 600 /var/lib/exsync/state.db (the state database holds the secrets)"),
            format!(
                "{} (the state database holds the secrets)",
                coded("chmod 600 /var/lib/exsync/state.db")
            )
        );
        assert_eq!(
            render("register the name (setspn -s http/mail.contoso.test EXCH-ASA$), then retry"),
            format!(
                "register the name ({}), then retry",
                coded("setspn -s http/mail.contoso.test EXCH-ASA$")
            )
        );
    }

    #[test]
    fn prose_stays_text_and_everything_is_encoded() {
        for prose in [
            "set exchange.ews_url, or run with --user EMAIL",
            "the folder is Read-Only; Getting-Started says how",
            "Nothing to do.",
            "",
        ] {
            assert_eq!(render(prose), esc(prose), "{prose}");
        }
        assert_eq!(
            render("run `<b>x</b>` then Get-Mailbox <i>"),
            format!(
                "run {} then {}",
                coded("<b>x</b>"),
                coded("Get-Mailbox <i>")
            )
        );
        // An unclosed backtick is shown as typed.
        assert_eq!(
            render("a `b` c `<d>"),
            format!("a {} c &#96;&lt;d&gt;", coded("b"))
        );
    }
}
