//! The XML we need and no more: a writer that escapes everything it is given, and a small
//! namespace-agnostic element tree for responses. EWS puts each name in one of two namespaces
//! whose prefixes servers choose freely, so responses are matched on local names.
//!
//! Replies come from servers we do not control, so the tree is bounded in depth when parsed,
//! and dropped and searched without recursion: a deeply nested reply must be an error, never
//! a stack overflow that takes the process down.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Escapes text for element content and attribute values alike.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// [`escape`], appended to `out`. Most text needs no escaping and is copied in one go.
fn escape_into(out: &mut String, s: &str) {
    let plain = |b: u8| !matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0..=0x1f);
    if s.bytes().all(plain) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all, escaped or not; dropping
            // them beats a request the server rejects as a whole.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

/// Builds an XML fragment; names are written as given (with their prefix), values escaped.
#[derive(Debug, Default, Clone)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// An empty fragment.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty fragment with room for `bytes` before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
        }
    }

    /// `<name a="v">` with escaped attribute values.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name a="v"/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// `<name>text</name>`.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.text_with(name, &[], text)
    }

    /// `<name a="v">text</name>`, the text escaped.
    pub fn text_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.close(name)
    }

    /// Appends an already-built fragment.
    pub fn raw(&mut self, fragment: &str) -> &mut Self {
        self.out.push_str(fragment);
        self
    }

    /// The fragment, to embed or send.
    pub fn finish(self) -> String {
        self.out
    }

    /// The fragment so far, e.g. to check what a mapping wrote.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
    }
}

/// Deepest nesting accepted in a reply. Real EWS replies nest about 15 levels (envelope,
/// body, response, messages, items, item, recurrence, pattern…) and Autodiscover ones about
/// 6, so this is far above anything genuine while keeping every walk over the tree shallow.
pub(crate) const MAX_DEPTH: usize = 256;

/// A parsed element: local name, attributes by local name, children, and its direct text.
///
/// The derived `Clone`, `PartialEq` and `Debug` recurse; on parsed trees that is bounded by
/// [`MAX_DEPTH`]. Dropping never recurses, whatever the depth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

/// Why a response could not be read as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML at byte {position}: {reason}")]
pub struct XmlError {
    pub position: u64,
    pub reason: String,
}

fn local(name: &[u8]) -> String {
    let local = match name.iter().rposition(|b| *b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    };
    match std::str::from_utf8(local) {
        Ok(local) => local.to_owned(),
        Err(_) => String::from_utf8_lossy(local).into_owned(),
    }
}

impl Drop for Element {
    fn drop(&mut self) {
        // The default drop would recurse once per level. Instead the descendants are moved
        // onto a heap stack and each is dropped with no children left in it.
        if self.children.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut el) = pending.pop() {
            pending.append(&mut el.children);
        }
    }
}

impl Element {
    pub fn new(name: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            attrs: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        }
    }

    pub fn with_text(name: impl Into<String>, text: impl Into<String>) -> Element {
        let mut el = Element::new(name);
        el.text = text.into();
        el
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of local names below this one.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut here = self;
        for name in names {
            here = here.child(name)?;
        }
        Some(here)
    }

    /// Text of a child, if the child is there.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// First descendant (depth-first in document order, self included) with this local name.
    pub fn find(&self, name: &str) -> Option<&Element> {
        // An explicit stack, children pushed last-first so they come off in document order.
        let mut pending = vec![self];
        while let Some(el) = pending.pop() {
            if el.name == name {
                return Some(el);
            }
            pending.extend(el.children.iter().rev());
        }
        None
    }

    fn open(e: &BytesStart<'_>, position: u64) -> Result<Element, XmlError> {
        let mut el = Element::new(local(e.name().as_ref()));
        for attr in e.attributes() {
            let attr = attr.map_err(|err| XmlError {
                position,
                reason: err.to_string(),
            })?;
            let key = attr.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                continue;
            }
            let value = attr.unescape_value().map_err(|err| XmlError {
                position,
                reason: err.to_string(),
            })?;
            el.attrs.push((local(key), value.into_owned()));
        }
        Ok(el)
    }
}

fn too_deep(position: u64) -> XmlError {
    XmlError {
        position,
        reason: format!(
            "elements nested deeper than {MAX_DEPTH} levels; no genuine EWS or Autodiscover \
             reply is that deep, so this one is refused"
        ),
    }
}

/// Parses a whole document into its root element.
pub(crate) fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(input);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let fail = |reason: String| XmlError { position, reason };
        let event = reader.read_event().map_err(|e| fail(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(position));
                }
                stack.push(Element::open(&e, position)?)
            }
            Event::Empty(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(position));
                }
                let el = Element::open(&e, position)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| fail("closing tag without an opening one".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    let text = t.decode().map_err(|e| fail(e.to_string()))?;
                    el.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    let text = t.decode().map_err(|e| fail(e.to_string()))?;
                    el.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(el) = stack.last_mut() {
                    if let Some(c) = r.resolve_char_ref().map_err(|e| fail(e.to_string()))? {
                        el.text.push(c);
                    } else {
                        let name = r.decode().map_err(|e| fail(e.to_string()))?;
                        let c = match name.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => return Err(fail(format!("unknown entity &{other};"))),
                        };
                        el.text.push(c);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError {
            position: reader.buffer_position(),
            reason: "document ends inside an element".into(),
        });
    }
    root.ok_or(XmlError {
        position: 0,
        reason: "no root element".into(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_name_loses_its_prefix_and_keeps_its_text() {
        assert_eq!(local(b"t:Contact"), "Contact");
        assert_eq!(local(b"a:b:Item"), "Item");
        assert_eq!(local(b"Body"), "Body");
        assert_eq!(local(b"t:"), "");
        assert_eq!(local("t:Caf\u{e9}".as_bytes()), "Caf\u{e9}");
        assert_eq!(local(b"t:A\xff"), "A\u{fffd}");
    }

    proptest::proptest! {
        // Whatever the text, an element and an attribute carry it back as written, less the
        // controls XML cannot hold (a carriage return stays, escaped).
        #[test]
        fn any_text_comes_back_as_written(s in "[ a-z<>&\"'\t\n\r\x01\u{e9}\u{1d11e}]{0,16}") {
            let mut w = XmlWriter::new();
            w.open("t:A", &[("x", &s)]).text("t:B", &s).close("t:A");
            let el = parse(&w.finish()).unwrap();
            let kept: String = s
                .chars()
                .filter(|c| (*c as u32) >= 0x20 || matches!(c, '\t' | '\n' | '\r'))
                .collect();
            proptest::prop_assert_eq!(el.child_text("B").unwrap_or_default(), kept.as_str());
            proptest::prop_assert!(el.attr("x").is_some());
        }
    }

    #[test]
    fn escapes_and_parses_back() {
        let mut w = XmlWriter::new();
        w.open("t:A", &[("x", "a\"<b>&'")])
            .text("t:B", "x < y & \"z\" \r\n\u{1}ok")
            .close("t:A");
        let xml = w.finish();
        let el = parse(&xml).unwrap();
        assert_eq!(el.name, "A");
        assert_eq!(el.attr("x"), Some("a\"<b>&'"));
        assert_eq!(el.child_text("B"), Some("x < y & \"z\" \r\nok"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a>&bogus;</a>").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let deepest = parse(&nested(MAX_DEPTH)).unwrap();
        assert!(deepest.find("b").is_none());
        let err = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(
            err.reason.contains("nested deeper than 256 levels"),
            "{err}"
        );
        // An empty element one level too deep counts as well.
        let empty = format!(
            "{}<b/>{}",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        assert!(parse(&empty).is_err());
        // Deep nesting is refused wherever it starts, long before the document ends.
        let err = parse(&nested(200_000)).unwrap_err();
        assert!(err.position < 2_000, "{err}");
    }

    /// A tree far deeper than any parse allows, built by hand: searching and dropping it must
    /// not recurse.
    #[test]
    fn a_deep_tree_is_searched_and_dropped_without_recursion() {
        let mut tree = Element::with_text("leaf", "bottom");
        for _ in 0..1_000_000 {
            let mut parent = Element::new("a");
            parent.children.push(tree);
            tree = parent;
        }
        tree.children.push(Element::new("sibling"));
        assert_eq!(tree.find("leaf").map(|l| l.text.as_str()), Some("bottom"));
        assert!(tree.find("absent").is_none());
        drop(tree);
    }

    #[test]
    fn find_goes_in_document_order() {
        let el = parse("<r><x><t>1</t></x><t>2</t></r>").unwrap();
        assert_eq!(el.find("t").map(|t| t.text.as_str()), Some("1"));
        assert_eq!(el.find("r").map(|r| r.name.as_str()), Some("r"));
    }

    #[test]
    fn prefixes_are_dropped() {
        let el =
            parse(r#"<s:Envelope xmlns:s="x"><s:Body><m:R m:A="1">t</m:R></s:Body></s:Envelope>"#)
                .unwrap();
        assert_eq!(el.path(&["Body", "R"]).and_then(|r| r.attr("A")), Some("1"));
        assert_eq!(el.find("R").map(|r| r.text.as_str()), Some("t"));
    }
}
