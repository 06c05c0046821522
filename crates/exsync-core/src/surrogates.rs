//! JSON from a server may escape half of a UTF-16 surrogate pair alone (`"\ud83d"` with no
//! low half after it, or a lone `"\udc00"`), as one does that cuts text at a length limit
//! between the two halves of an emoji. Such a string has no Unicode value, so `serde_json`
//! refuses the whole document, and one such record would fail its user's page on every pass.
//! [`mend_lone_surrogates`] replaces each lone half with [`BROKEN`] before the text is parsed:
//! a noncharacter, which Unicode keeps for a program's own use, so the model's text cleaning
//! (`model/text.rs`) can say in which field it was when it turns it into U+FFFD, the
//! replacement character `String::from_utf16_lossy` would give.

use std::borrow::Cow;

/// JSON text with every lone surrogate escape replaced, and how many were.
#[derive(Debug)]
pub struct Mended<'a> {
    /// The text to parse: the input itself when nothing was replaced.
    pub text: Cow<'a, [u8]>,
    /// How many lone surrogate escapes became [`BROKEN`].
    pub replaced: usize,
}

/// What a lone surrogate is read as, until the model's text cleaning makes it U+FFFD and
/// notes where it was. No server sends it: it is a noncharacter.
pub const BROKEN: char = '\u{FDD0}';

/// The escape each lone surrogate becomes: [`BROKEN`].
const REPLACEMENT: &[u8] = b"\\ufdd0";
/// Length of one `\uXXXX` escape.
const ESCAPE: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    High,
    Low,
}

/// Replaces each `\uD800`–`\uDFFF` escape of `json` that is not half of a pair (a high half
/// followed at once by a low one) with [`BROKEN`]. Pairs, every other escape and all other bytes
/// are kept as they are, so text that parsed before parses to the same value. One pass over
/// the bytes; text with no surrogate escape at all is given back as it is without a copy.
pub fn mend_lone_surrogates(json: &[u8]) -> Mended<'_> {
    let unchanged = Mended {
        text: Cow::Borrowed(json),
        replaced: 0,
    };
    // Every surrogate escape starts `\ud` or `\uD`: text without either (nearly every answer)
    // is searched at memory speed and given back.
    if memchr::memmem::find(json, br"\ud").is_none()
        && memchr::memmem::find(json, br"\uD").is_none()
    {
        return unchanged;
    }
    let mut out: Vec<u8> = Vec::new();
    let mut replaced = 0;
    // Bytes before `copied` are in `out` already; the scan goes on from `next`.
    let mut copied = 0;
    let mut next = 0;
    while let Some(offset) = json
        .get(next..)
        .and_then(|rest| memchr::memchr(b'\\', rest))
    {
        let at = next + offset;
        next = match half_at(json, at) {
            Some(Half::High) if half_at(json, at + ESCAPE) == Some(Half::Low) => at + 2 * ESCAPE,
            Some(_) => {
                if out.is_empty() {
                    out.reserve(json.len() + 16);
                }
                out.extend_from_slice(&json[copied..at]);
                out.extend_from_slice(REPLACEMENT);
                replaced += 1;
                copied = at + ESCAPE;
                copied
            }
            // Any other escape is two bytes or more: skipping both keeps an escaped backslash
            // (`\\`) from being read as the start of an escape after it.
            None => at + 2,
        };
    }
    if replaced == 0 {
        return unchanged;
    }
    out.extend_from_slice(&json[copied..]);
    Mended {
        text: Cow::Owned(out),
        replaced,
    }
}

/// Which surrogate half the `\uXXXX` escape at `at` names, if it is one.
fn half_at(json: &[u8], at: usize) -> Option<Half> {
    let escape = json.get(at..at + ESCAPE)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let mut unit: u32 = 0;
    for &digit in &escape[2..] {
        unit = unit * 16 + char::from(digit).to_digit(16)?;
    }
    match unit {
        0xD800..=0xDBFF => Some(Half::High),
        0xDC00..=0xDFFF => Some(Half::Low),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn mend(text: &str) -> (String, usize) {
        let m = mend_lone_surrogates(text.as_bytes());
        (String::from_utf8(m.text.into_owned()).unwrap(), m.replaced)
    }

    fn parsed(text: &str) -> String {
        let m = mend_lone_surrogates(text.as_bytes());
        serde_json::from_slice(&m.text).unwrap()
    }

    #[test]
    fn a_pair_is_kept_in_either_case() {
        for text in [
            r#""\ud83d\ude00""#,
            r#""\uD83D\uDE00""#,
            r#""\uD83d\udE00 x""#,
        ] {
            let m = mend_lone_surrogates(text.as_bytes());
            assert!(matches!(m.text, Cow::Borrowed(_)), "{text}");
            assert_eq!(m.replaced, 0);
        }
        assert_eq!(parsed(r#""a\ud83d\ude00b""#), "a\u{1f600}b");
    }

    #[test]
    fn a_lone_high_half_is_replaced() {
        assert_eq!(
            mend(r#"{"n":"Ann\ud83d Lee"}"#),
            (r#"{"n":"Ann\ufdd0 Lee"}"#.to_owned(), 1)
        );
        assert_eq!(parsed(r#""Ann\uD83D Lee""#), "Ann\u{fdd0} Lee");
        // A high half followed by an escape that is not a low half.
        assert_eq!(parsed(r#""\ud83d\u0041""#), "\u{fdd0}A");
        // Two high halves, then a low one: the first is lone, the second pairs.
        assert_eq!(parsed(r#""\ud83d\ud83d\ude00""#), "\u{fdd0}\u{1f600}");
    }

    #[test]
    fn a_lone_low_half_is_replaced() {
        assert_eq!(mend(r#""\udc00""#), (r#""\ufdd0""#.to_owned(), 1));
        assert_eq!(parsed(r#""x\uDFFFy""#), "x\u{fdd0}y");
        // Low before high is no pair: both are lone.
        assert_eq!(parsed(r#""\ude00\ud83d""#), "\u{fdd0}\u{fdd0}");
    }

    #[test]
    fn a_high_half_at_the_end_of_a_string_is_replaced() {
        let m = mend_lone_surrogates(br#"["cut\ud83d","next"]"#);
        assert_eq!(m.replaced, 1);
        let v: Vec<String> = serde_json::from_slice(&m.text).unwrap();
        assert_eq!(v, ["cut\u{fdd0}", "next"]);
    }

    #[test]
    fn a_high_half_cut_at_the_end_of_the_text_is_replaced() {
        assert_eq!(mend(r#""\ud83d""#), (r#""\ufdd0""#.to_owned(), 1));
        // Text that ends within or right after the escape: replaced where whole, never read
        // past the end.
        assert_eq!(mend(r"\ud83d"), (r"\ufdd0".to_owned(), 1));
        assert_eq!(mend(r"\ud83"), (r"\ud83".to_owned(), 0));
        assert_eq!(mend(r"\ud83d\ude0"), (r"\ufdd0\ude0".to_owned(), 1));
        assert_eq!(mend("\\"), ("\\".to_owned(), 0));
    }

    #[test]
    fn an_escaped_backslash_before_u_is_no_escape() {
        let text = r#""\\ud800""#;
        let m = mend_lone_surrogates(text.as_bytes());
        assert!(matches!(m.text, Cow::Borrowed(_)));
        assert_eq!(m.replaced, 0);
        assert_eq!(parsed(text), r"\ud800");
        // Three backslashes: an escaped one, then a real escape.
        assert_eq!(parsed(r#""\\\ud800""#), "\\\u{fdd0}");
        // Four: two escaped backslashes.
        assert_eq!(parsed(r#""\\\\ud800""#), r"\\ud800");
    }

    #[test]
    fn other_escapes_and_text_are_kept() {
        let text = r#"{"a":"\"\/\b\f\n\r\t\u00e9\u20AC","b":[1,2.5e3,null,true]}"#;
        let m = mend_lone_surrogates(text.as_bytes());
        assert!(matches!(m.text, Cow::Borrowed(_)));
        // A surrogate-looking escape that is none: `\ud7ff` and `\ue000` are ordinary.
        let (out, n) = mend(r#""\ud7ff\ue000\udx00""#);
        assert_eq!((out.as_str(), n), (r#""\ud7ff\ue000\udx00""#, 0));
    }

    /// One UTF-16 code unit written as JSON string text, the way a server might.
    fn written(unit: u16, upper: bool, raw: bool) -> String {
        match char::from_u32(u32::from(unit)) {
            Some(c) if raw => {
                let quoted = serde_json::to_string(&c.to_string()).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            }
            _ if upper => format!("\\u{unit:04X}"),
            _ => format!("\\u{unit:04x}"),
        }
    }

    proptest! {
        /// Any sequence of UTF-16 units, lone halves included, each written as an escape in
        /// either case or as the character itself (a backslash as `\\`, so `\\` followed by
        /// `u` and hex digits is common): the mended text parses, to what
        /// `String::from_utf16_lossy` makes of the units with [`BROKEN`] for U+FFFD; text that had no lone half is given
        /// back untouched.
        #[test]
        fn mended_text_parses_to_the_lossy_decoding(
            units in proptest::collection::vec(
                prop_oneof![
                    any::<u16>(),
                    0xD800u16..0xE000,
                    Just(u16::from(b'\\')),
                    Just(u16::from(b'u')),
                    Just(u16::from(b'd')),
                    Just(u16::from(b'8')),
                ],
                0..40,
            ),
            style in proptest::collection::vec((any::<bool>(), any::<bool>()), 40),
        ) {
            let body: String = units
                .iter()
                .zip(&style)
                .map(|(&unit, &(upper, raw))| written(unit, upper, raw))
                .collect();
            let text = format!(r#"{{"k":["{body}",1]}}"#);
            let strict = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            let m = mend_lone_surrogates(text.as_bytes());
            let value: serde_json::Value = serde_json::from_slice(&m.text).unwrap();
            let lossy: String = char::decode_utf16(units.iter().copied())
                .map(|unit| unit.unwrap_or(BROKEN))
                .collect();
            prop_assert_eq!(value["k"][0].as_str().unwrap(), lossy);
            let lone = char::decode_utf16(units.iter().copied())
                .filter(Result::is_err)
                .count();
            prop_assert_eq!(m.replaced, lone);
            prop_assert_eq!(strict, lone == 0);
            if strict {
                prop_assert!(matches!(m.text, Cow::Borrowed(_)));
            }
        }

        /// Any string serde_json writes comes back untouched.
        #[test]
        fn text_that_parses_is_kept(s in any::<String>()) {
            let text = serde_json::to_string(&serde_json::json!({ "s": s, "t": [s.clone()] })).unwrap();
            let m = mend_lone_surrogates(text.as_bytes());
            prop_assert!(matches!(m.text, Cow::Borrowed(_)));
            prop_assert_eq!(m.replaced, 0);
        }
    }
}
