//! A fault injection of the Graph and Salesforce simulators: an answer carrying a lone UTF-16
//! surrogate escape (`"\ud83d"` with no low half after it), as a real server's does when it
//! cuts text at a length limit between an emoji's two halves. The simulators keep Rust
//! strings, which cannot hold a lone surrogate, so a test stores [`LONE_SURROGATE`] in any
//! field instead, and each simulator's JSON writer sends that character as the escape.

/// A private-use character the simulators' JSON writers send as the lone high surrogate
/// escape `\ud83d`. Nothing else uses it: a client that stores this character gets the fault.
pub const LONE_SURROGATE: char = '\u{10FFFD}';

/// `json` (as serde_json writes it: non-ASCII characters as UTF-8, never escaped) with each
/// [`LONE_SURROGATE`] turned into `\ud83d`.
pub(crate) fn inject(json: Vec<u8>) -> Vec<u8> {
    let mut marker = [0; 4];
    let marker = LONE_SURROGATE.encode_utf8(&mut marker).as_bytes();
    // Its first byte (0xF4) starts only the characters from U+100000 up: rare enough that an
    // answer without it is given back as it is.
    if !json.contains(&marker[0]) {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 8);
    let mut rest = json.as_slice();
    while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(br"\ud83d");
        rest = &rest[at + marker.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_marker_is_sent_as_a_lone_high_surrogate() {
        let json = serde_json::to_vec(&serde_json::json!({
            "n": format!("Ann{LONE_SURROGATE} Lee \u{10FFFC}{LONE_SURROGATE}"),
        }))
        .unwrap();
        let sent = inject(json);
        assert_eq!(
            String::from_utf8(sent.clone()).unwrap(),
            "{\"n\":\"Ann\\ud83d Lee \u{10FFFC}\\ud83d\"}"
        );
        assert!(serde_json::from_slice::<serde_json::Value>(&sent).is_err());
        let plain = br#"{"n":"caf\xc3\xa9"}"#.to_vec();
        assert_eq!(inject(plain.clone()), plain);
    }
}
