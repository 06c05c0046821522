//! E-mail addresses as RFC 5322 defines an `addr-spec`: a local part that is a dot-atom or a
//! quoted string, `@`, and a domain that is a DNS name. Comments, domain literals and the
//! obsolete forms are refused: no mailbox a CRM or Exchange holds has them, and each is a way
//! to make two programs read one address differently.

use std::fmt;

/// RFC 5321's limits, which every mail system enforces.
const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;
const MAX_ADDRESS: usize = 254;

/// Which characters an address may hold besides ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// RFC 5322 as written: ASCII only. Mailbox keys use it.
    Ascii,
    /// RFC 6532: UTF-8 letters in the local part and in the domain's labels, as contacts and
    /// invitees abroad have them.
    International,
}

/// Why a text is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is empty.
    #[error("it is empty")]
    Empty,
    /// No `@` separates a local part from a domain.
    #[error("it has no `@`")]
    NoAt,
    /// Over RFC 5321's 254 characters in all, beyond what any mail system delivers to.
    #[error("it is longer than {MAX_ADDRESS} characters")]
    TooLong,
    /// Nothing before the `@`.
    #[error("the part before `@` is empty")]
    EmptyLocal,
    /// The local part is over RFC 5321's 64 characters.
    #[error("the part before `@` is longer than {MAX_LOCAL} characters")]
    LocalTooLong,
    /// An unquoted local part holds a character RFC 5322 allows only inside quotes; the character
    /// is carried.
    #[error("the part before `@` has {0} where only letters, digits and !#$%&'*+-/=?^_`{{|}}~ may be, unless it is quoted")]
    LocalCharacter(Shown),
    /// The local part starts or ends with a dot or has two in a row.
    #[error("the part before `@` has an empty part between dots")]
    LocalDots,
    /// A quoted local part is not closed, has text after its closing quote, or holds the carried
    /// character.
    #[error("the quoted part before `@` is not closed, or holds {0}")]
    Quoted(Shown),
    /// Nothing after the `@`.
    #[error("the domain is empty")]
    EmptyDomain,
    /// The domain is over 253 characters, the DNS limit.
    #[error("the domain is longer than {MAX_DOMAIN} characters")]
    DomainTooLong,
    /// The domain has no dot: a host name on some network, not a mail domain.
    #[error("the domain has a single name; a mail domain has a dot, as in example.com")]
    DomainUndotted,
    /// The domain starts or ends with a dot or has two in a row.
    #[error("the domain has an empty name between dots")]
    EmptyLabel,
    /// A label of the domain is over 63 characters, the DNS limit.
    #[error("a name in the domain is longer than {MAX_LABEL} characters")]
    LabelTooLong,
    /// The domain holds a character a DNS name cannot; the character is carried.
    #[error("the domain has {0}, where only letters, digits, hyphens and dots may be")]
    DomainCharacter(Shown),
    /// A label of the domain starts or ends with a hyphen, which DNS forbids.
    #[error("a name in the domain starts or ends with a hyphen")]
    LabelHyphen,
}

/// A character as a message shows it: quoted, escaped when it does not print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown(pub char);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0.escape_debug())
    }
}

/// Checks `s` as an `addr-spec`, as it is (no trimming: a space around it is a fault).
pub fn check_address(s: &str, charset: Charset) -> Result<(), AddressError> {
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    // Lengths in characters, so a long text is refused without being walked to the end.
    if s.chars().take(MAX_ADDRESS + 1).count() > MAX_ADDRESS {
        return Err(AddressError::TooLong);
    }
    // The domain cannot hold `@`, nor can an unquoted local part; a quoted one can.
    let (local, domain) = s.rsplit_once('@').ok_or(AddressError::NoAt)?;
    check_local(local, charset)?;
    check_domain(domain, charset)
}

/// Whether `s` is an e-mail address (see [`check_address`]).
pub fn is_address(s: &str, charset: Charset) -> bool {
    check_address(s, charset).is_ok()
}

/// `atext` of RFC 5322, widened by RFC 6532 to any non-ASCII character that is not a control.
fn atext(c: char, charset: Charset) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (charset == Charset::International && !c.is_ascii() && !c.is_control())
}

fn check_local(local: &str, charset: Charset) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.chars().count() > MAX_LOCAL {
        return Err(AddressError::LocalTooLong);
    }
    if let Some(inner) = local.strip_prefix('"') {
        return check_quoted(inner, charset);
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(AddressError::LocalDots);
        }
        if let Some(c) = atom.chars().find(|c| !atext(*c, charset)) {
            return Err(AddressError::LocalCharacter(Shown(c)));
        }
    }
    Ok(())
}

/// The rest of a quoted local part after its opening quote: printable characters, spaces and
/// backslash pairs, then the closing quote and nothing after it.
fn check_quoted(inner: &str, charset: Charset) -> Result<(), AddressError> {
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return match chars.next() {
                    None => Ok(()),
                    Some(after) => Err(AddressError::Quoted(Shown(after))),
                }
            }
            '\\' => match chars.next() {
                Some(escaped)
                    if escaped == ' ' || escaped == '\t' || escaped.is_ascii_graphic() => {}
                Some(escaped) => return Err(AddressError::Quoted(Shown(escaped))),
                None => return Err(AddressError::Quoted(Shown('\\'))),
            },
            ' ' | '\t' => {}
            c if c.is_ascii_graphic() => {}
            c if charset == Charset::International && !c.is_ascii() && !c.is_control() => {}
            c => return Err(AddressError::Quoted(Shown(c))),
        }
    }
    Err(AddressError::Quoted(Shown('"')))
}

fn check_domain(domain: &str, charset: Charset) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.chars().count() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    if !domain.contains('.') {
        return Err(AddressError::DomainUndotted);
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::EmptyLabel);
        }
        if label.chars().count() > MAX_LABEL {
            return Err(AddressError::LabelTooLong);
        }
        let allowed = |c: char| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || (charset == Charset::International && !c.is_ascii() && c.is_alphanumeric())
        };
        if let Some(c) = label.chars().find(|c| !allowed(*c)) {
            return Err(AddressError::DomainCharacter(Shown(c)));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::LabelHyphen);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_pass() {
        for s in [
            "ann@contoso.test",
            "first.last+tag@mail.contoso.test",
            "x'-alert`document.domain`-'@contoso.test",
            "{ann}|~!#$%&*/=?^_@contoso.test",
            "\"a b\"@contoso.test",
            "\"a\\\"b@c\"@contoso.test",
            "o'brien@xn--mller-kva.test",
            "1@2.3",
        ] {
            assert_eq!(check_address(s, Charset::Ascii), Ok(()), "{s}");
        }
    }

    #[test]
    fn invalid_addresses_say_why() {
        let cases: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("ann.contoso.test", AddressError::NoAt),
            ("@contoso.test", AddressError::EmptyLocal),
            ("a b@contoso.test", AddressError::LocalCharacter(Shown(' '))),
            (
                "a\u{0}b@contoso.test",
                AddressError::LocalCharacter(Shown('\u{0}')),
            ),
            ("a@b@contoso.test", AddressError::LocalCharacter(Shown('@'))),
            ("<a>@contoso.test", AddressError::LocalCharacter(Shown('<'))),
            (
                "a(comment)@contoso.test",
                AddressError::LocalCharacter(Shown('(')),
            ),
            (".a@contoso.test", AddressError::LocalDots),
            ("a..b@contoso.test", AddressError::LocalDots),
            ("a.@contoso.test", AddressError::LocalDots),
            ("\"a\"b@contoso.test", AddressError::Quoted(Shown('b'))),
            ("\"a@contoso.test", AddressError::Quoted(Shown('"'))),
            ("\"a\nb\"@contoso.test", AddressError::Quoted(Shown('\n'))),
            (
                "x@evil.test#.contoso.test",
                AddressError::DomainCharacter(Shown('#')),
            ),
            (
                "x@evil.test/.contoso.test",
                AddressError::DomainCharacter(Shown('/')),
            ),
            ("x@[127.0.0.1]", AddressError::DomainCharacter(Shown('['))),
            ("x@contoso.test ", AddressError::DomainCharacter(Shown(' '))),
            (
                "x@contoso_corp.test",
                AddressError::DomainCharacter(Shown('_')),
            ),
            ("x@", AddressError::EmptyDomain),
            ("x@localhost", AddressError::DomainUndotted),
            ("x@contoso..test", AddressError::EmptyLabel),
            ("x@contoso.test.", AddressError::EmptyLabel),
            ("x@-contoso.test", AddressError::LabelHyphen),
            ("x@contoso-.test", AddressError::LabelHyphen),
            ("x@müller.test", AddressError::DomainCharacter(Shown('ü'))),
        ];
        for (s, why) in cases {
            assert_eq!(check_address(s, Charset::Ascii).as_ref(), Err(why), "{s:?}");
        }
    }

    #[test]
    fn lengths_are_those_of_rfc_5321() {
        let local = "a".repeat(64);
        assert!(is_address(&format!("{local}@contoso.test"), Charset::Ascii));
        assert_eq!(
            check_address(&format!("a{local}@contoso.test"), Charset::Ascii),
            Err(AddressError::LocalTooLong)
        );
        let label = "b".repeat(63);
        assert!(is_address(&format!("a@{label}.test"), Charset::Ascii));
        assert_eq!(
            check_address(&format!("a@b{label}.test"), Charset::Ascii),
            Err(AddressError::LabelTooLong)
        );
        let long = format!("a@{}.test", vec!["c".repeat(60); 5].join("."));
        assert_eq!(
            check_address(&long, Charset::Ascii),
            Err(AddressError::TooLong)
        );
        // A megabyte is refused without being read to its end.
        let huge = "x".repeat(1 << 20);
        assert_eq!(
            check_address(&huge, Charset::Ascii),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn international_addresses_pass_only_when_allowed() {
        for s in ["jörg@müller.test", "用户@例子.test", "\"ä b\"@contoso.test"] {
            assert_eq!(check_address(s, Charset::International), Ok(()), "{s}");
            assert!(!is_address(s, Charset::Ascii), "{s}");
        }
        // Controls and separators are no letters, in any charset.
        for s in [
            "a\u{85}b@contoso.test",
            "a@con\u{2028}toso.test",
            "a@con\u{200b}toso.test",
        ] {
            assert!(!is_address(s, Charset::International), "{s:?}");
        }
    }

    #[test]
    fn reasons_show_unprintable_characters_escaped() {
        let why = check_address("a\u{1b}[31m@contoso.test", Charset::Ascii)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            why.as_deref(),
            Some("the part before `@` has `\\u{1b}` where only letters, digits and !#$%&'*+-/=?^_`{|}~ may be, unless it is quoted")
        );
    }
}
