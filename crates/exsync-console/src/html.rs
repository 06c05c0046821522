//! Small helpers for the server-rendered pages: encoding, the page frame, forms with their
//! CSRF field.
//!
//! Every value from outside (addresses, names, subjects, configuration, error texts) is
//! encoded for where it lands: [`esc`] for element text and for attribute values, which are
//! always double-quoted; [`seg`] for a URL path segment. No value ever lands in a script:
//! the pages carry none, and `assets/console.js` reads what it needs from `data-` attributes
//! as plain text.

use axum::http::StatusCode;
use axum::response::Html;
use exsync_store::Role;

use super::assets;
use super::auth::{allows, Caller};
use super::guard::CSRF_FIELD;

/// Text for an HTML element or a double-quoted attribute value. The backtick is encoded as
/// well, since some old parsers took it for an attribute quote.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '`' => out.push_str("&#96;"),
            c => out.push(c),
        }
    }
    out
}

/// The attributes of a part of a form that only some choices of the select `by` (its id)
/// read, such as the Kerberos realm: the console's script shows it while the select holds
/// one of `choices` (space-separated), and the page is rendered with it hidden unless
/// `current`, the stored choice, is one of them, so a browser without the script shows the
/// fields of the stored mode. Every argument is the page's own text.
pub(crate) fn shown_for(by: &str, choices: &str, current: &str) -> String {
    let hidden = if choices.split(' ').any(|c| c == current) {
        ""
    } else {
        " hidden"
    };
    format!(
        r#" data-shown-by="{}" data-shown-for="{}"{hidden}"#,
        esc(by),
        esc(choices)
    )
}

/// The longest run of an address between two places a line may break that a table shows
/// whole: what the status table's first column can hold beside the others on a 1280-pixel
/// screen, with room to spare.
const ADDRESS_PART: usize = 16;

/// An address as a table column shows it: a line may break before each `@` and `.` and
/// nowhere else (not at a hyphen either: each part keeps to one line, by the stylesheet), so
/// a name is not split mid-word; a part longer than [`ADDRESS_PART`] is cut with `…`, and
/// the whole address is the title.
pub(crate) fn address(address: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in address.chars() {
        match parts.last_mut() {
            Some(part) if c != '@' && c != '.' => part.push(c),
            _ => parts.push(c.to_string()),
        }
    }
    let shown: Vec<String> = parts
        .iter()
        .map(|part| {
            let shown = if part.chars().count() > ADDRESS_PART {
                let kept: String = part.chars().take(ADDRESS_PART - 1).collect();
                format!("{kept}…")
            } else {
                part.clone()
            };
            format!("<span>{}</span>", esc(&shown))
        })
        .collect();
    format!(
        r#"<span class="address" title="{}">{}</span>"#,
        esc(address),
        shown.join("<wbr>")
    )
}

/// A URL path segment, percent-encoded (user addresses and configuration names go in URLs).
/// What comes out is letters, digits, `*-._` and `%XX` only, so it is also safe as (part of)
/// an attribute value.
pub(crate) fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub(crate) fn csrf_field(caller: &Caller) -> String {
    format!(
        r#"<input type="hidden" name="{CSRF_FIELD}" value="{}">"#,
        esc(caller.csrf())
    )
}

/// A page with the navigation a caller of this role can use.
pub(crate) fn page(title: &str, caller: Option<&Caller>, body: &str) -> Html<String> {
    let mut nav = String::new();
    if let Some(c) = caller {
        nav.push_str(r#"<a href="/">Status</a>"#);
        if allows(c.role, Role::Admin) {
            nav.push_str(r#"<a href="/service-account">Service account</a><a href="/exchange-online">Exchange Online</a><a href="/crm">CRM connection</a><a href="/configurations">Configurations</a>"#);
        }
        nav.push_str(r#"<a href="/audit">Audit log</a>"#);
        nav.push_str(&format!(
            r#"<span class="who">{} ({})</span><form class="inline" method="post" action="/logout">{}<button type="submit" id="logout">Log out</button></form>"#,
            esc(&c.name),
            c.role,
            csrf_field(c)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · exsync</title>\
         <link rel=\"stylesheet\" href=\"{css}\"><script src=\"{js}\" defer></script></head>\
         <body><header><strong>exsync</strong>{nav}</header>\
         <main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        css = esc(&assets::CSS.href()),
        js = esc(&assets::JS.href()),
    ))
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Html<String> {
    page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        &format!(
            r#"<p class="error" id="error">{}</p><p><a href="/">Back</a></p>"#,
            esc(message)
        ),
    )
}

pub(crate) fn notice(message: Option<&str>) -> String {
    message
        .map(|m| format!(r#"<p class="notice" id="notice">{}</p>"#, esc(m)))
        .unwrap_or_default()
}

pub(crate) fn error_box(message: Option<&str>) -> String {
    message
        .map(|m| format!(r#"<p class="error" id="error">{}</p>"#, esc(m)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address breaks only before `@` and `.`; a part too long for the column is cut,
    /// and what is shown is encoded.
    #[test]
    fn a_long_address_breaks_before_at_and_dots_and_a_long_part_is_cut() {
        assert_eq!(
            address("ann.lee@contoso.test"),
            r#"<span class="address" title="ann.lee@contoso.test"><span>ann</span><wbr><span>.lee</span><wbr><span>@contoso</span><wbr><span>.test</span></span>"#
        );
        assert_eq!(
            address("a-very-long-local-part@x<y>.test"),
            r#"<span class="address" title="a-very-long-local-part@x&lt;y&gt;.test"><span>a-very-long-loc…</span><wbr><span>@x&lt;y&gt;</span><wbr><span>.test</span></span>"#
        );
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("a`b`"), "a&#96;b&#96;");
        assert_eq!(seg("a b@c/d"), "a%20b%40c%2Fd");
        assert_eq!(
            seg("x'-alert`1`-'\"<>&?#@c.test"),
            "x%27-alert%601%60-%27%22%3C%3E%26%3F%23%40c.test"
        );
    }
}
