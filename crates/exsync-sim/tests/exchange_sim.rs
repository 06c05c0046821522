//! End-to-end tests of `exsync-sim exchange` over real HTTPS: start-up and sim.json, TLS with
//! the generated CA, Basic auth, impersonation errors, and committed writes surviving a kill.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use exsync_testkit::schema::assert_replies_valid;
use exsync_testkit::sim::{post_ews, SimCommand, SimProcess, Simulator};

/// `exsync-sim exchange` in `dir`, tracing every exchange to `dir/trace`.
fn start(dir: &Path, extra: &[&str]) -> SimProcess {
    SimCommand::new(env!("CARGO_BIN_EXE_exsync-sim"), Simulator::Exchange, dir)
        .arg("--trace-dir")
        .arg(dir.join("trace"))
        .args(extra)
        .start()
}

fn envelope(impersonate: Option<&str>, body: &str) -> String {
    let imp = impersonate
        .map(|a| format!("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{a}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/>{imp}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

fn attr<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let end = start + xml[start..].find('"').unwrap();
    &xml[start..end]
}

fn creds(sim: &SimProcess) -> (String, String) {
    let sa = &sim.info["service_account"];
    (
        sa["upn"].as_str().unwrap().to_string(),
        sa["password"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_json_auth_impersonation_and_durable_writes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), &["--auth", "basic", "--mailboxes", "3"]);
    let info = &sim.info;
    assert_eq!(info["domain"], "contoso.test");
    assert_eq!(
        info["impersonation_allowed"],
        serde_json::json!(["user1@contoso.test", "user2@contoso.test"])
    );
    assert!(info["ews_url"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(Path::new(info["ca_cert"].as_str().unwrap()).is_absolute());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sim.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "sim.json holds secrets");
    }
    let (user, pass) = creds(&sim);

    // No credentials, wrong credentials: 401 offering Basic.
    let get_contacts = r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>"#;
    let r = post_ews(&sim, None, &envelope(None, get_contacts)).await;
    assert_eq!(r.status, 401);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
    let r = post_ews(&sim, Some((&user, "wrong")), &envelope(None, get_contacts)).await;
    assert_eq!(r.status, 401);

    // Impersonation: allowed, denied, unknown.
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user1@contoso.test"), get_contacts),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<t:DisplayName>Contacts</t:DisplayName>"));
    assert!(r.body.contains("ServerVersionInfo"));
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user3@contoso.test"), get_contacts),
    )
    .await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("ErrorImpersonateUserDenied"), "{}", r.body);
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("ghost@contoso.test"), get_contacts),
    )
    .await;
    assert!(r.body.contains("ErrorNonExistentMailbox"), "{}", r.body);

    // A committed create survives SIGKILL right after the reply.
    let create = r#"<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Ada</t:GivenName><t:Surname>Lovelace</t:Surname></t:Contact></m:Items></m:CreateItem>"#;
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user2@contoso.test"), create),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = attr(&r.body, "Id").to_string();
    let ck = attr(&r.body, "ChangeKey").to_string();
    drop(sim);

    let sim = start(dir.path(), &["--auth", "basic"]);
    let (user2, pass2) = creds(&sim);
    assert_eq!(
        (user2.as_str(), pass2.as_str()),
        (user.as_str(), pass.as_str())
    );
    let get = format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
    );
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user2@contoso.test"), &get),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<t:GivenName>Ada</t:GivenName>"),
        "{}",
        r.body
    );
    assert!(r.body.contains(&format!("ChangeKey=\"{ck}\"")));
    // Another mailbox cannot read it by id.
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user1@contoso.test"), &get),
    )
    .await;
    assert!(r.body.contains("ErrorAccessDenied"), "{}", r.body);
    assert_replies_valid(&dir.path().join("trace"));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_state_pages_and_rejects_bad_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), &["--auth", "basic"]);
    let (user, pass) = creds(&sim);
    let mb = Some("user1@contoso.test");
    for i in 0..5 {
        let create = format!(
            r#"<m:CreateItem><m:Items><t:Contact><t:GivenName>P{i}</t:GivenName></t:Contact></m:Items></m:CreateItem>"#
        );
        assert_eq!(
            post_ews(&sim, Some((&user, &pass)), &envelope(mb, &create))
                .await
                .status,
            200
        );
    }
    let sync = |state: &str, max: u32| {
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="contacts"/></m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned></m:SyncFolderItems>"#
        )
    };
    let r = post_ews(&sim, Some((&user, &pass)), &envelope(mb, &sync("", 3))).await;
    assert_eq!(r.body.matches("<t:Create>").count(), 3);
    assert!(r
        .body
        .contains("<m:IncludesLastItemInRange>false</m:IncludesLastItemInRange>"));
    let state = r
        .body
        .split("<m:SyncState>")
        .nth(1)
        .unwrap()
        .split("</m:SyncState>")
        .next()
        .unwrap();
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(mb, &sync(&format!("<m:SyncState>{state}</m:SyncState>"), 3)),
    )
    .await;
    assert_eq!(r.body.matches("<t:Create>").count(), 2);
    assert!(r
        .body
        .contains("<m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"));
    let r = post_ews(&sim, Some((&user, &pass)), &envelope(mb, &sync("", 513))).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("ErrorSchemaValidation"));
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(mb, &sync("<m:SyncState>garbage</m:SyncState>", 10)),
    )
    .await;
    assert!(r.body.contains("ErrorInvalidSyncStateData"), "{}", r.body);
    assert_replies_valid(&dir.path().join("trace"));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_header_forms() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(dir.path(), &["--auth", "basic"]);
    let (user, pass) = creds(&sim);
    let get = r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>"#;
    let with_sid = |inner: &str| {
        envelope(None, get).replace(
            "</s:Header>",
            &format!("<t:ExchangeImpersonation><t:ConnectingSID>{inner}</t:ConnectingSID></t:ExchangeImpersonation></s:Header>"),
        )
    };
    for inner in [
        "<t:PrincipalName>user1@contoso.test</t:PrincipalName>",
        "<t:SmtpAddress>USER1@contoso.test</t:SmtpAddress>",
    ] {
        let r = post_ews(&sim, Some((&user, &pass)), &with_sid(inner)).await;
        assert_eq!(r.status, 200, "{inner}: {}", r.body);
        assert!(r.body.contains("NoError"));
    }
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &with_sid("<t:SID>S-1-5-21-1</t:SID>"),
    )
    .await;
    assert!(r.body.contains("ErrorImpersonationFailed"), "{}", r.body);
    // Without the header the service account works in its own mailbox.
    let r = post_ews(&sim, Some((&user, &pass)), &envelope(None, get)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_replies_valid(&dir.path().join("trace"));
}

/// The bulk control routes (impersonation for a list, items in batches), then EWS writes,
/// then SIGKILL: the restarted simulator has the same mailboxes, folders and item counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_seeding_and_writes_survive_a_kill() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let mut sim = start(dir.path(), &["--auth", "basic", "--mailboxes", "3"]);
    let control = sim.control();
    let all = [
        "user1@contoso.test",
        "user2@contoso.test",
        "user3@contoso.test",
    ];
    let granted = control
        .ok(
            "POST",
            "/impersonation",
            Some(&json!({"mailboxes": all, "allowed": true})),
        )
        .await;
    assert_eq!(granted["mailboxes"], json!(all));
    let (status, _) = control
        .call(
            "POST",
            "/impersonation",
            Some(&json!({"mailboxes": ["user1@contoso.test", "ghost@contoso.test"], "allowed": false})),
        )
        .await;
    assert_eq!(status, 404, "an unknown mailbox refuses the whole list");
    let items: Vec<_> = (0..120)
        .map(|i| {
            json!({
                "mailbox": all[i % 2],
                "folder": "contacts",
                "xml": format!("<t:Contact><t:GivenName>Ada</t:GivenName><t:Surname>Lovelace {i}</t:Surname></t:Contact>"),
            })
        })
        .collect();
    let created = control
        .ok("POST", "/items/batch", Some(&json!({ "items": items })))
        .await;
    let created = created["items"].as_array().unwrap();
    assert_eq!(created.len(), 120);
    let (user, pass) = creds(&sim);
    for c in created.iter().step_by(2).take(10) {
        let id = c["id"].as_str().unwrap();
        let update = format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>Byron</t:Surname></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        );
        let r = post_ews(
            &sim,
            Some((&user, &pass)),
            &envelope(Some("user1@contoso.test"), &update),
        )
        .await;
        assert!(r.body.contains("NoError"), "{}", r.body);
    }
    let before = control.ok("GET", "/state", None).await;
    sim.kill();

    let sim = start(dir.path(), &["--auth", "basic", "--mailboxes", "3"]);
    assert_eq!(sim.info["impersonation_allowed"], json!(all));
    let after = sim.control().ok("GET", "/state", None).await;
    assert_eq!(after, before);
    let (user, pass) = creds(&sim);
    let id = created[0]["id"].as_str().unwrap();
    let get = format!(
        r#"<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
    );
    let r = post_ews(
        &sim,
        Some((&user, &pass)),
        &envelope(Some("user1@contoso.test"), &get),
    )
    .await;
    assert!(
        r.body.contains("<t:Surname>Byron</t:Surname>"),
        "{}",
        r.body
    );
}
