//! Every console page, rendered with hostile values in the state database, the audit log,
//! the configuration file and the request: no inline script, inline style or event-handler
//! attribute anywhere, every attribute value quoted, every script the console's own file,
//! and each hostile value present only encoded (as text once decoded, never as markup).
//! Also the script and stylesheet themselves: served with their types and a cache policy.

use crate::support::*;
use axum::http::{Method, StatusCode};
use chrono::Utc;
use exsync_console::sha256_hex;
use exsync_core::plan::SyncedPair;
use exsync_core::{Contact, ItemKind, Record, UserKey};
use exsync_store::{AuditEvent, PassCommit, Role, Session};
use serde_json::json;

/// A value that is markup, closes both kinds of quotes, and holds a backtick and an
/// ampersand; `tag` tells the values apart. No space, comma or semicolon, so that with a
/// domain appended it is still an address the configuration accepts.
fn evil(tag: &str) -> String {
    format!("{tag}<svg/onload=alert(1)>\"'`&x")
}

fn address(tag: &str) -> String {
    format!("{}@contoso.test", evil(tag))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A start tag as the browser would read it.
#[derive(Debug)]
struct Tag {
    name: String,
    /// Name, value, and the quote the value was in (`None`: no value or unquoted).
    attrs: Vec<(String, Option<String>, Option<char>)>,
    /// The raw text up to the matching end tag, for elements whose content is not markup.
    raw_text: Option<String>,
}

/// The start tags of `html`, read the way an HTML parser reads them: attribute names end at
/// space, `/`, `>` or `=`; values are quoted or run to the next space or `>`; the content of
/// `script`, `style`, `textarea` and `title` is text up to its end tag.
fn tags(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        if b.get(i + 1).is_some_and(|c| *c == b'!' || *c == b'/') {
            i = html[i..].find('>').map_or(b.len(), |e| i + e + 1);
            continue;
        }
        if !b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' && b[j] != b'/' {
            j += 1;
        }
        let name = html[i + 1..j].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' {
                break;
            }
            let start = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b'/' | b'>' | b'=')
            {
                j += 1;
            }
            if j == start {
                // A lone `=`: the parser takes it as the start of a name.
                j += 1;
            }
            let attr = html[start..j].to_ascii_lowercase();
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == b'=' {
                j += 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
                    let q = b[j];
                    let end = html[j + 1..].find(q as char).map_or(b.len(), |e| j + 1 + e);
                    attrs.push((attr, Some(html[j + 1..end].to_owned()), Some(q as char)));
                    j = end + 1;
                } else {
                    let end = j + html[j..]
                        .find(|c: char| c.is_ascii_whitespace() || c == '>')
                        .unwrap_or(b.len() - j);
                    attrs.push((attr, Some(html[j..end].to_owned()), None));
                    j = end;
                }
            } else {
                attrs.push((attr, None, None));
            }
        }
        i = j + 1;
        let mut raw_text = None;
        if matches!(name.as_str(), "script" | "style" | "textarea" | "title") {
            let close = format!("</{name}");
            let end = html[i.min(b.len())..]
                .to_ascii_lowercase()
                .find(&close)
                .map_or(b.len(), |e| i + e);
            raw_text = Some(html[i.min(b.len())..end].to_owned());
            i = end;
        }
        out.push(Tag {
            name,
            attrs,
            raw_text,
        });
    }
    out
}

/// Character references decoded, as the browser shows text and attribute values.
fn decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The checks every page must pass; `shown` are values that must be on it as text.
fn check_page(what: &str, answer: &Answer, hostile: &[String], shown: &[&str]) {
    let body = &answer.body;
    let csp = answer.headers["content-security-policy"].to_str().unwrap();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"script-src 'self'"), "{what}: {csp}");
    assert!(directives.contains(&"default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("'unsafe-"), "{what}: {csp}");

    let parsed = tags(body);
    assert!(parsed.iter().any(|t| t.name == "main"), "{what}: {body}");
    let mut scripts = 0;
    for tag in &parsed {
        for (name, value, quote) in &tag.attrs {
            assert!(
                !name.starts_with("on"),
                "{what}: inline handler {name} on <{}>: {body}",
                tag.name
            );
            assert_ne!(name, "style", "{what}: inline style on <{}>", tag.name);
            assert!(
                value.is_none() || *quote == Some('"'),
                "{what}: attribute {name} of <{}> is not double-quoted: {value:?}",
                tag.name
            );
            if matches!(name.as_str(), "href" | "src" | "action" | "formaction") {
                let v = decode(value.as_deref().unwrap_or_default()).to_ascii_lowercase();
                assert!(
                    v.starts_with('/'),
                    "{what}: {name}={v:?} leaves the console"
                );
            }
        }
        assert_ne!(tag.name, "style", "{what}: inline <style>");
        assert!(
            !matches!(
                tag.name.as_str(),
                "svg" | "img" | "iframe" | "object" | "embed"
            ),
            "{what}: injected <{}>: {body}",
            tag.name
        );
        if tag.name == "script" {
            scripts += 1;
            let src = tag
                .attrs
                .iter()
                .find(|(n, _, _)| n == "src")
                .and_then(|(_, v, _)| v.clone());
            assert!(
                src.as_deref()
                    .is_some_and(|s| s.starts_with("/assets/console.js")),
                "{what}: a script that is not the console's file: {tag:?}"
            );
            assert_eq!(
                tag.raw_text.as_deref().map(str::trim),
                Some(""),
                "{what}: inline script"
            );
        }
    }
    assert_eq!(scripts, 1, "{what}: the page loads the console's script");

    for value in hostile {
        assert!(
            !body.contains(value.as_str()),
            "{what}: {value:?} unencoded"
        );
    }
    assert!(!body.contains("<svg"), "{what}: {body}");
    let text = decode(body);
    for value in shown {
        assert!(
            text.contains(value),
            "{what}: {value:?} is not on the page: {body}"
        );
    }
}

#[tokio::test]
async fn every_page_encodes_hostile_values_and_carries_no_inline_code() {
    let env = Env::new();
    let synced = address("synced");
    let never = address("never");
    let assigned = address("assigned");
    let run_error = evil("run error");
    let (notice_code, notice_message, notice_fix) = (
        evil("notice code"),
        evil("notice message"),
        evil("notice fix"),
    );
    let pause = evil("pause");
    let config_name = evil("configuration");
    let group = evil("group");
    let service_account = address("service");
    let ews_url = format!("https://mail.contoso.test/EWS/{}", evil("ews"));
    let client_id = evil("client");
    let crm_user = address("integration");
    let login_url = format!("https://login.contoso.test/{}", evil("login"));
    let admin = evil("admin");
    let actor = evil("actor");
    let action = evil("action");
    let detail = evil("detail");
    let asked_user = address("asked");
    let asked_group = evil("asked group");
    // A CRM user left out for an address that names no mailbox: the address is whatever the
    // CRM holds, so it is as hostile as anything.
    let skipped_address = format!("{} ", address("skipped"));
    let skipped_reason = evil("skip reason");
    // What a first sync chose between two records: every part is the CRM's or the mailbox's.
    let conflict_crm_id = evil("conflict crm id");
    let conflict_exchange_id = evil("conflict exchange id");
    let conflict_field = evil("conflict field");
    let conflict_crm_value = evil("conflict crm value");
    let conflict_exchange_value = evil("conflict exchange value");
    // Records are shown by name: a conflicting pair's and a failing record's, with the
    // failure's reason and id, all from outside.
    let record_name = evil("record name");
    let unresolved_name = evil("unresolved name");
    let unresolved_reason = evil("unresolved reason");
    let unresolved_id = evil("unresolved id");

    std::fs::write(
        env.config_path(),
        format!(
            r#"[store]
path = "state.db"

[exchange]
service_account = {sa}
ews_url = {ews}

[crm]
client_id = {client}
username = {crm_user}
login_url = {login}

[configurations.{name}]
users = [{synced}, {assigned}]
groups = [{group}]
"#,
            sa = toml_str(&service_account),
            ews = toml_str(&ews_url),
            client = toml_str(&client_id),
            crm_user = toml_str(&crm_user),
            login = toml_str(&login_url),
            name = toml_str(&config_name),
            synced = toml_str(&synced),
            assigned = toml_str(&assigned),
            group = toml_str(&group),
        ),
    )
    .unwrap();
    exsync_core::config::load(&env.config_path()).expect("the hostile configuration loads");

    let user = UserKey::from_email(&synced);
    assert_eq!(user.as_str(), synced, "the address is already a key");
    let mut commit = PassCommit::new(user.clone(), Utc::now(), Utc::now());
    commit.upserts = vec![SyncedPair {
        kind: ItemKind::Contact,
        crm_id: "0031".into(),
        exchange_id: "AAMk1".into(),
        content: Contact {
            last_name: evil("last name"),
            ..Contact::default()
        }
        .to_fields(),
        crm_version: None,
        exchange_version: None,
    }];
    commit.error = Some(run_error.clone());
    commit.notices = vec![exsync_store::Notice {
        code: notice_code.clone(),
        message: notice_message.clone(),
        fix: notice_fix.clone(),
    }];
    // A first link's merge over values the CRM and the mailbox held, ids included.
    commit.conflicts = vec![exsync_store::ConflictEntry {
        kind: ItemKind::Contact,
        crm_id: conflict_crm_id.as_str().into(),
        exchange_id: conflict_exchange_id.as_str().into(),
        conflict: exsync_core::plan::Conflict {
            field: conflict_field.clone(),
            crm_value: Some(json!(conflict_crm_value)),
            exchange_value: Some(json!(conflict_exchange_value)),
            winner: exsync_core::Side::Exchange,
            first_link: true,
        },
        name: Some(record_name.clone()),
    }];
    commit.unresolved = vec![exsync_store::UnresolvedReport {
        kind: ItemKind::Contact,
        id: exsync_core::ItemId::Crm(unresolved_id.as_str().into()),
        reason: unresolved_reason.clone(),
        name: Some(unresolved_name.clone()),
    }];
    env.store.commit_pass(&commit).unwrap();
    env.store.set_paused(&user, Some(&pause)).unwrap();
    env.store
        .record_skipped_crm_users(
            &[exsync_store::CrmUserSkip {
                crm_id: "005SKIP".into(),
                address: skipped_address.clone(),
                reason: skipped_reason.clone(),
            }],
            Utc::now(),
        )
        .unwrap();
    env.store
        .append_audit(&AuditEvent {
            at: Utc::now(),
            actor: actor.clone(),
            action: action.clone(),
            detail: json!({ "note": detail }),
        })
        .unwrap();

    // Logged in as an admin whose very name is hostile.
    env.store
        .create_admin_user(
            &admin,
            &exsync_console::hash_password(PASSWORD).unwrap(),
            Role::Admin,
            Utc::now(),
        )
        .unwrap();
    let cookie = exsync_console::new_api_token();
    let csrf = exsync_console::new_api_token();
    env.store
        .create_session(&Session {
            id: sha256_hex(&cookie),
            admin_user: admin.clone(),
            csrf_token: csrf.clone(),
            created_at: Utc::now(),
            expires_at: Utc::now() + chrono::TimeDelta::hours(1),
        })
        .unwrap();
    let auth = Auth::Session {
        cookie,
        csrf: Some(csrf),
    };

    let hostile = vec![
        synced.clone(),
        never.clone(),
        assigned.clone(),
        run_error.clone(),
        notice_code.clone(),
        notice_message.clone(),
        notice_fix.clone(),
        pause.clone(),
        config_name.clone(),
        group.clone(),
        service_account.clone(),
        ews_url.clone(),
        client_id.clone(),
        crm_user.clone(),
        login_url.clone(),
        admin.clone(),
        actor.clone(),
        action.clone(),
        detail.clone(),
        asked_user.clone(),
        asked_group.clone(),
        skipped_address.clone(),
        skipped_reason.clone(),
        conflict_crm_id.clone(),
        conflict_exchange_id.clone(),
        conflict_field.clone(),
        conflict_crm_value.clone(),
        conflict_exchange_value.clone(),
        record_name.clone(),
        unresolved_name.clone(),
        unresolved_reason.clone(),
        unresolved_id.clone(),
    ];
    let seg = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };

    let login = env
        .send(request(Method::GET, "/login", &Auth::None, None))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    check_page("login", &login, &hostile, &[]);

    let status = env.send(request(Method::GET, "/", &auth, None)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let confirm = format!(
        "Reset Sync for {synced}? Its pairs and cursors are forgotten; no data is deleted."
    );
    check_page(
        "status",
        &status,
        &hostile,
        &[
            &synced,
            &run_error,
            &notice_code,
            &notice_message,
            &notice_fix,
            &pause,
            &config_name,
            &admin,
            &confirm,
            &skipped_address,
            &skipped_reason,
        ],
    );
    assert!(
        status
            .body
            .contains(&format!("action=\"/users/{}/reset\"", seg(&synced))),
        "the address is a percent-encoded path segment in the form's URL"
    );

    // The user's conflicts, and the user's page: everything the CRM, the mailbox and the
    // passes said, encoded.
    let conflict_values = [
        &synced,
        &conflict_crm_id,
        &conflict_exchange_id,
        &conflict_field,
        &conflict_crm_value,
        &conflict_exchange_value,
        &record_name,
    ];
    let mut user_values = conflict_values.to_vec();
    user_values.extend([
        &run_error,
        &notice_code,
        &notice_message,
        &notice_fix,
        &pause,
        &config_name,
        &unresolved_name,
        &unresolved_reason,
        &unresolved_id,
    ]);
    for (what, path, shown) in [
        (
            "conflicts",
            format!("/users/{}/conflicts", seg(&synced)),
            &conflict_values[..],
        ),
        ("user", format!("/users/{}", seg(&synced)), &user_values[..]),
    ] {
        let answer = env.send(request(Method::GET, &path, &auth, None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
        let shown: Vec<&str> = shown.iter().map(|s| s.as_str()).collect();
        check_page(what, &answer, &hostile, &shown);
    }
    assert!(
        status
            .body
            .contains(&format!("href=\"/users/{}\"", seg(&synced))),
        "the status page links the user's page by a percent-encoded path segment"
    );

    assert!(
        status
            .body
            .contains(&format!("href=\"/users/{}/conflicts\"", seg(&synced))),
        "the status page links the user's conflicts by a percent-encoded path segment"
    );

    let page = env
        .send(request(Method::GET, "/service-account", &auth, None))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    check_page(
        "service account",
        &page,
        &hostile,
        &[&service_account, &ews_url],
    );

    let page = env.send(request(Method::GET, "/crm", &auth, None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    check_page("CRM", &page, &hostile, &[&client_id, &crm_user, &login_url]);

    let explain = format!(
        "/configurations?user={}&groups={}",
        seg(&asked_user),
        seg(&asked_group)
    );
    let page = env.send(request(Method::GET, &explain, &auth, None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    check_page(
        "configurations",
        &page,
        &hostile,
        &[
            &config_name,
            &group,
            &synced,
            &assigned,
            &asked_user,
            &asked_group,
        ],
    );
    assert!(page
        .body
        .contains(&format!("action=\"/configurations/{}\"", seg(&config_name))));

    let page = env.send(request(Method::GET, "/audit", &auth, None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    check_page("audit", &page, &hostile, &[&actor, &action]);

    // Answers to form posts, which put the address from the URL on the page.
    let page = env
        .send(request(
            Method::POST,
            &format!("/users/{}/test", seg(&never)),
            &auth,
            Some(form(&[])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::NOT_IMPLEMENTED, "{}", page.body);
    check_page("connection test", &page, &hostile, &[&never]);

    let page = env
        .send(request(
            Method::POST,
            &format!("/users/{}/reset", seg(&never)),
            &auth,
            Some(form(&[])),
        ))
        .await;
    check_page("reset of an unknown user", &page, &hostile, &[&never]);
    assert!(decode(&page.body).contains("has never been synced"));

    let page = env
        .send(request(
            Method::POST,
            &format!("/users/{}/reset", seg(&synced)),
            &auth,
            Some(form(&[])),
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    check_page(
        "reset",
        &page,
        &hostile,
        &[&format!("Reset Sync for {synced}: 1 pairs")],
    );

    // A page the guard refuses, with a message of its own.
    let viewer = {
        let (cookie, csrf) = env.session(Role::Viewer);
        Auth::Session {
            cookie,
            csrf: Some(csrf),
        }
    };
    let page = env.send(request(Method::GET, "/crm", &viewer, None)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    check_page("refused", &page, &hostile, &[]);
}

#[tokio::test]
async fn the_script_and_stylesheet_are_files_with_their_types_and_a_cache_policy() {
    let env = Env::new();
    let login = env
        .send(request(Method::GET, "/login", &Auth::None, None))
        .await;
    let linked = |kind: &str, attr: &str| -> String {
        tags(&login.body)
            .into_iter()
            .find(|t| t.name == kind && t.attrs.iter().any(|(n, _, _)| n == attr))
            .and_then(|t| {
                t.attrs
                    .into_iter()
                    .find(|(n, _, _)| n == attr)
                    .and_then(|(_, v, _)| v)
            })
            .map(|v| decode(&v))
            .unwrap_or_else(|| panic!("no <{kind} {attr}>: {}", login.body))
    };
    for (url, path, content_type) in [
        (
            linked("script", "src"),
            "/assets/console.js",
            "text/javascript",
        ),
        (linked("link", "href"), "/assets/console.css", "text/css"),
    ] {
        assert!(url.starts_with(&format!("{path}?v=")), "{url}");
        let a = env
            .send(request(Method::GET, &url, &Auth::None, None))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{url}");
        assert!(
            a.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{url}: {:?}",
            a.headers["content-type"]
        );
        assert_eq!(a.headers["x-content-type-options"], "nosniff");
        let cache = a.headers["cache-control"].to_str().unwrap();
        assert!(cache.contains("immutable"), "{url}: {cache}");
        let etag = a.headers["etag"].clone();

        // Any other version is revalidated, so an upgrade is never hidden behind a cache.
        let a = env
            .send(request(Method::GET, path, &Auth::None, None))
            .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["cache-control"], "no-cache");
        let mut req = request(Method::GET, path, &Auth::None, None);
        req.headers_mut().insert("if-none-match", etag);
        let a = env.send(req).await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    }

    let js = env
        .send(request(
            Method::GET,
            "/assets/console.js",
            &Auth::None,
            None,
        ))
        .await
        .body;
    for unsafe_sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
    ] {
        assert!(!js.contains(unsafe_sink), "console.js uses {unsafe_sink}");
    }
    assert!(js.contains("data-confirm") && js.contains("addEventListener"));
}
