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
