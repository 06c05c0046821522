//! A small namespace-agnostic element tree for SOAP bodies.
//!
//! EWS puts every item property in the `types` namespace, so the simulator matches on local
//! names and writes item content back with the `t:` prefix. Property values are kept as the
//! client sent them (element trees), which is what lets the store treat items as property bags.

use anyhow::{anyhow, bail, Context, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Element>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

fn open_element(e: &quick_xml::events::BytesStart<'_>) -> Result<Element> {
    let mut el = Element {
        name: local(e.name().as_ref()),
        ..Default::default()
    };
    for a in e.attributes() {
        let a = a.context("bad attribute")?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        // Namespace declarations carry no data for us.
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = a.unescape_value().context("bad attribute value")?;
        el.attrs.push((local(key.as_bytes()), value.into_owned()));
    }
    Ok(el)
}

const MAX_DEPTH: usize = 128;

/// Parses a document into its root element.
pub(crate) fn parse(input: &str) -> Result<Element> {
    let mut reader = Reader::from_str(input);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let ev = reader
            .read_event()
            .with_context(|| format!("XML error at byte {}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) => {
                // Trees are dropped and written recursively; bound the depth so a hostile
                // document cannot exhaust the stack.
                if stack.len() >= MAX_DEPTH {
                    bail!("XML nested deeper than {MAX_DEPTH} elements");
                }
                stack.push(open_element(&e)?)
            }
            Event::Empty(e) => {
                let el = open_element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| anyhow!("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().context("bad text")?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().context("bad CDATA")?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Some(c) = r.resolve_char_ref().context("bad character reference")? {
                        top.text.push(c);
                    } else {
                        let name = r.decode().context("bad entity")?;
                        let c = match name.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => bail!("unknown entity &{other};"),
                        };
                        top.text.push(c);
                    }
                }
            }
            Event::Eof => bail!("unexpected end of document"),
            _ => {}
        }
    }
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn with_text(name: &str, text: &str) -> Element {
        Element {
            name: name.to_string(),
            text: text.to_string(),
            ..Default::default()
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.attrs.push((name.to_string(), value.to_string())),
        }
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of a direct child, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Finds a descendant by a path of local names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for n in names {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    pub fn push(&mut self, child: Element) -> &mut Element {
        self.children.push(child);
        self
    }

    /// Writes the element with `prefix` on it and on every descendant.
    pub fn write(&self, prefix: &str, out: &mut String) {
        out.push('<');
        out.push_str(prefix);
        out.push(':');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape(v));
            out.push('"');
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write(prefix, out);
        }
        out.push_str("</");
        out.push_str(prefix);
        out.push(':');
        out.push_str(&self.name);
        out.push('>');
    }
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_namespaced_text_and_entities() {
        let doc = r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><t:A Key="k&amp;1">a &amp; b &#65;</t:A><t:B/></s:Body></s:Envelope>"#;
        let e = parse(doc).unwrap();
        assert_eq!(e.name, "Envelope");
        let a = e.path(&["Body", "A"]).unwrap();
        assert_eq!(a.text, "a & b A");
        assert_eq!(a.attr("Key"), Some("k&1"));
        let mut out = String::new();
        a.write("t", &mut out);
        assert_eq!(out, r#"<t:A Key="k&amp;1">a &amp; b A</t:A>"#);
    }

    #[test]
    fn rejects_very_deep_documents() {
        let deep = "<a>".repeat(10_000) + &"</a>".repeat(10_000);
        assert!(parse(&deep).is_err());
        let ok = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(parse("<a><b></b>").is_err());
        assert!(parse("<a></b>").is_err());
    }
}
