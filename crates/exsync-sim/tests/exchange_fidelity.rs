//! Places where the Exchange simulator must behave as Exchange does because a sync engine
//! would notice the difference: restrictions on multi-valued properties, length limits,
//! emptied addresses, all-day events, CalendarView edges, DeleteItem change keys, folder
//! shapes and moves, id formats. Each test talks EWS over HTTPS to `exsync-sim exchange`
//! and checks every reply against the EWS schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64::Engine;
use exsync_testkit::schema::assert_replies_valid;
use exsync_testkit::sim::{post_ews, SimCommand, SimProcess, Simulator};

const USER: &str = "user1@contoso.test";

/// A simulator in `dir` (Basic auth), tracing every exchange to `dir/trace`.
struct Ews {
    sim: SimProcess,
    trace: PathBuf,
}

impl Ews {
    fn start(dir: &Path) -> Ews {
        let trace = dir.join("trace");
        let sim = SimCommand::new(env!("CARGO_BIN_EXE_exsync-sim"), Simulator::Exchange, dir)
            .arg("--trace-dir")
            .arg(&trace)
            .args(["--auth", "basic"])
            .start();
        Ews { sim, trace }
    }

    /// Posts `body` (the child of soap:Body) impersonating `USER`; returns the reply body.
    async fn call(&self, body: &str) -> String {
        let sa = &self.sim.info["service_account"];
        let auth = (
            sa["upn"].as_str().unwrap(),
            sa["password"].as_str().unwrap(),
        );
        let envelope = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{USER}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body>{body}</s:Body></s:Envelope>"#
        );
        post_ews(&self.sim, Some(auth), &envelope).await.body
    }

    /// Creates `item` (a `<t:…>` element) in the distinguished folder `folder`; returns
    /// (Id, ChangeKey) or panics with the reply.
    async fn create(&self, folder: &str, item: &str) -> (String, String) {
        let r = self
            .call(&format!(
                r#"<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SavedItemFolderId><m:Items>{item}</m:Items></m:CreateItem>"#
            ))
            .await;
        assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
        (
            attr(&r, "Id").to_string(),
            attr(&r, "ChangeKey").to_string(),
        )
    }

    async fn get(&self, id: &str, shape: &str) -> String {
        self.call(&format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>{shape}</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
        ))
        .await
    }

    fn finish(self) {
        let trace = self.trace.clone();
        drop(self.sim);
        assert_replies_valid(&trace);
    }
}

/// The value of the first `name="…"` attribute in `xml`.
fn attr<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + name.len()
        + 3;
    let end = start + xml[start..].find('"').unwrap();
    &xml[start..end]
}

fn count(xml: &str, needle: &str) -> usize {
    xml.matches(needle).count()
}

/// Exchange evaluates a restriction on a multi-valued property against each member: an
/// IsEqualTo on item:Categories finds the items carrying that category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_restriction_matches_members() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    ews.create("contacts", "<t:Contact><t:Categories><t:String>Red</t:String><t:String>Salesforce</t:String></t:Categories><t:GivenName>A</t:GivenName></t:Contact>").await;
    ews.create("contacts", "<t:Contact><t:Categories><t:String>Blue</t:String></t:Categories><t:GivenName>B</t:GivenName></t:Contact>").await;
    ews.create(
        "contacts",
        "<t:Contact><t:GivenName>C</t:GivenName></t:Contact>",
    )
    .await;
    let find = |op: &str, value: &str| {
        format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="contacts:GivenName"/></t:AdditionalProperties></m:ItemShape><m:Restriction>{op}</m:Restriction><m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>"#,
            op = op.replace("VALUE", value)
        )
    };
    let eq = r#"<t:IsEqualTo><t:FieldURI FieldURI="item:Categories"/><t:FieldURIOrConstant><t:Constant Value="VALUE"/></t:FieldURIOrConstant></t:IsEqualTo>"#;
    let r = ews.call(&find(eq, "Salesforce")).await;
    assert!(r.contains(r#"TotalItemsInView="1""#), "{r}");
    assert!(r.contains("<t:GivenName>A</t:GivenName>"), "{r}");
    let r = ews.call(&find(eq, "blue")).await;
    assert!(r.contains("<t:GivenName>B</t:GivenName>"), "{r}");
    let r = ews.call(&find(eq, "Green")).await;
    assert!(r.contains(r#"TotalItemsInView="0""#), "{r}");
    let exists = r#"<t:Exists><t:FieldURI FieldURI="item:Categories"/></t:Exists>"#;
    let r = ews.call(&find(exists, "")).await;
    assert!(r.contains(r#"TotalItemsInView="2""#), "{r}");
    let contains = r#"<t:Contains ContainmentMode="Prefixed" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="item:Categories"/><t:Constant Value="VALUE"/></t:Contains>"#;
    let r = ews.call(&find(contains, "sales")).await;
    assert!(r.contains("<t:GivenName>A</t:GivenName>"), "{r}");
    assert_eq!(count(&r, "<t:Contact>"), 1, "{r}");
    ews.finish();
}

/// Deleting every field of an indexed address removes the address: Exchange answers no empty
/// `<t:Entry Key="Business"/>`, and with no address left no PhysicalAddresses at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_address_is_omitted() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let (id, ck) = ews.create("contacts", r#"<t:Contact><t:GivenName>Ada</t:GivenName><t:PhysicalAddresses><t:Entry Key="Business"><t:Street>1 Main St</t:Street><t:City>Springfield</t:City></t:Entry><t:Entry Key="Home"><t:City>Shelbyville</t:City></t:Entry></t:PhysicalAddresses></t:Contact>"#).await;
    let delete = |key: &str, parts: &[&str]| {
        parts
            .iter()
            .map(|p| format!(r#"<t:DeleteItemField><t:IndexedFieldURI FieldURI="contacts:PhysicalAddress:{p}" FieldIndex="{key}"/></t:DeleteItemField>"#))
            .collect::<String>()
    };
    let update = |id: &str, ck: &str, updates: String| {
        format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates>{updates}</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        )
    };
    let r = ews
        .call(&update(&id, &ck, delete("Business", &["Street", "City"])))
        .await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let ck = attr(&r, "ChangeKey").to_string();
    let r = ews.get(&id, "AllProperties").await;
    assert!(!r.contains(r#"Key="Business""#), "{r}");
    assert!(r.contains("<t:City>Shelbyville</t:City>"), "{r}");
    let r = ews.call(&update(&id, &ck, delete("Home", &["City"]))).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let r = ews.get(&id, "AllProperties").await;
    assert!(!r.contains("PhysicalAddresses"), "{r}");
    ews.finish();
}

/// CalendarView leaves out items that end before StartDate; one ending exactly at StartDate
/// is in the view, one starting exactly at EndDate is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_view_includes_item_ending_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    ews.create("calendar", "<t:CalendarItem><t:Subject>Nine</t:Subject><t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T10:00:00Z</t:End></t:CalendarItem>").await;
    ews.create("calendar", r#"<t:CalendarItem><t:Subject>Daily</t:Subject><t:Recurrence><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence><t:NumberedRecurrence><t:StartDate>2026-03-01Z</t:StartDate><t:NumberOfOccurrences>3</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence><t:Start>2026-03-01T08:00:00Z</t:Start><t:End>2026-03-01T10:00:00Z</t:End></t:CalendarItem>"#).await;
    let view = |from: &str, to: &str| {
        format!(
            r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape><m:CalendarView StartDate="{from}" EndDate="{to}"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#
        )
    };
    let r = ews
        .call(&view("2026-03-02T10:00:00Z", "2026-03-02T12:00:00Z"))
        .await;
    assert!(r.contains("<t:Subject>Nine</t:Subject>"), "{r}");
    assert!(r.contains("<t:Subject>Daily</t:Subject>"), "{r}");
    let r = ews
        .call(&view("2026-03-02T10:00:01Z", "2026-03-02T12:00:00Z"))
        .await;
    assert!(r.contains(r#"TotalItemsInView="0""#), "{r}");
    let r = ews
        .call(&view("2026-03-02T07:00:00Z", "2026-03-02T08:00:00Z"))
        .await;
    assert!(r.contains(r#"TotalItemsInView="0""#), "{r}");
    ews.finish();
}

/// Exchange keeps Subject and the contact name fields to 255 characters and cuts a longer
/// value on CreateItem and UpdateItem rather than refusing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_and_names_are_cut_to_255() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let long = "é".repeat(300);
    let cut = "é".repeat(255);
    let (id, ck) = ews
        .create(
            "contacts",
            &format!("<t:Contact><t:Subject>{long}</t:Subject><t:GivenName>{long}</t:GivenName><t:Surname>Short</t:Surname></t:Contact>"),
        )
        .await;
    let r = ews.get(&id, "AllProperties").await;
    assert!(
        r.contains(&format!("<t:GivenName>{cut}</t:GivenName>")),
        "{r}"
    );
    assert!(r.contains(&format!("<t:Subject>{cut}</t:Subject>")), "{r}");
    assert!(r.contains("<t:Surname>Short</t:Surname>"), "{r}");
    let r = ews
        .call(&format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>{long}</t:Surname></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ))
        .await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let r = ews.get(&id, "AllProperties").await;
    assert!(r.contains(&format!("<t:Surname>{cut}</t:Surname>")), "{r}");
    ews.finish();
}

/// DeleteItem: a bare ItemId deletes (the DeleteItem reference's own example), a change key
/// of an older version is ErrorStaleObject, one that is no change key is ErrorInvalidChangeKey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_item_checks_a_change_key_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let delete = |id: &str, ck: Option<&str>| {
        let ck = ck
            .map(|c| format!(r#" ChangeKey="{c}""#))
            .unwrap_or_default();
        format!(
            r#"<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds><t:ItemId Id="{id}"{ck}/></m:ItemIds></m:DeleteItem>"#
        )
    };
    let (id, old) = ews
        .create(
            "contacts",
            "<t:Contact><t:GivenName>Ada</t:GivenName></t:Contact>",
        )
        .await;
    let r = ews
        .call(&format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{old}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:Surname"/><t:Contact><t:Surname>L</t:Surname></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ))
        .await;
    let new = attr(&r, "ChangeKey").to_string();
    let r = ews.call(&delete(&id, Some(&old))).await;
    assert!(r.contains("ErrorStaleObject"), "{r}");
    let r = ews.call(&delete(&id, Some("bm90IGEga2V5"))).await;
    assert!(r.contains("ErrorInvalidChangeKey"), "{r}");
    let r = ews.call(&delete(&id, Some(""))).await;
    assert!(r.contains("ErrorStaleObject"), "{r}");
    assert!(ews.get(&id, "IdOnly").await.contains("Success"));
    let r = ews.call(&delete(&id, Some(&new))).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let (id, _) = ews
        .create(
            "contacts",
            "<t:Contact><t:GivenName>Bo</t:GivenName></t:Contact>",
        )
        .await;
    let r = ews.call(&delete(&id, None)).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    ews.finish();
}

/// A user renames `Salesforce_Sync`, moves it, empties it: UpdateFolder, MoveFolder and
/// EmptyFolder keep the folder's id, move its change key on, and SyncFolderHierarchy
/// reports the rename as an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_move_and_empty_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let r = ews.call(r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:ContactsFolder><t:DisplayName>Salesforce_Sync</t:DisplayName></t:ContactsFolder></m:Folders></m:CreateFolder>"#).await;
    let id = attr(&r, "Id").to_string();
    let ck = attr(&r, "ChangeKey").to_string();
    let sync = r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/></t:AdditionalProperties></m:FolderShape></m:SyncFolderHierarchy>"#;
    let r = ews.call(sync).await;
    let state = r
        .split("<m:SyncState>")
        .nth(1)
        .and_then(|s| s.split("</m:SyncState>").next())
        .unwrap()
        .to_string();
    let rename = |ck: &str, name: &str| {
        format!(
            r#"<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:FolderId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:ContactsFolder><t:DisplayName>{name}</t:DisplayName></t:ContactsFolder></t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>"#
        )
    };
    let r = ews.call(&rename(&ck, "CRM contacts")).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    assert_eq!(attr(&r, "Id"), id);
    let ck2 = attr(&r, "ChangeKey").to_string();
    assert_ne!(ck2, ck);
    // The old change key is stale now.
    let r = ews.call(&rename(&ck, "Again")).await;
    assert!(r.contains("ErrorStaleObject"), "{r}");
    let r = ews
        .call(&sync.replace(
            "</m:FolderShape>",
            &format!("</m:FolderShape><m:SyncState>{state}</m:SyncState>"),
        ))
        .await;
    assert!(r.contains("<t:Update>"), "{r}");
    assert!(
        r.contains("<t:DisplayName>CRM contacts</t:DisplayName>"),
        "{r}"
    );

    ews.create(
        "contacts",
        "<t:Contact><t:GivenName>Ada</t:GivenName></t:Contact>",
    )
    .await;
    let r = ews.call(&format!(r#"<m:CreateItem><m:SavedItemFolderId><t:FolderId Id="{id}"/></m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>In</t:GivenName></t:Contact></m:Items></m:CreateItem>"#)).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");

    let r = ews.call(&format!(r#"<m:MoveFolder><m:ToFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:ToFolderId><m:FolderIds><t:FolderId Id="{id}"/></m:FolderIds></m:MoveFolder>"#)).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let r = ews.call(r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#).await;
    assert!(
        r.contains("<t:DisplayName>CRM contacts</t:DisplayName>"),
        "{r}"
    );
    let r = ews.call(r#"<m:MoveFolder><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:MoveFolder>"#).await;
    assert!(r.contains("ErrorMoveDistinguishedFolder"), "{r}");

    let r = ews.call(&format!(r#"<m:EmptyFolder DeleteType="HardDelete" DeleteSubFolders="false"><m:FolderIds><t:FolderId Id="{id}"/></m:FolderIds></m:EmptyFolder>"#)).await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let r = ews.call(&format!(r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:FolderId Id="{id}"/></m:FolderIds></m:GetFolder>"#)).await;
    assert!(r.contains("<t:TotalCount>0</t:TotalCount>"), "{r}");
    // The contact in Contacts itself was not touched.
    let r = ews.call(r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>"#).await;
    assert!(r.contains("<t:TotalCount>1</t:TotalCount>"), "{r}");
    ews.finish();
}

/// FindFolder answers the shape asked for: IdOnly is the FolderId alone, Default adds the
/// display name and counts, AllProperties everything, AdditionalProperties what it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_folder_honours_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let find = |base: &str, extra: &str| {
        format!(
            r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>{base}</t:BaseShape>{extra}</m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>"#
        )
    };
    let r = ews.call(&find("IdOnly", "")).await;
    assert!(r.contains("<t:FolderId "), "{r}");
    for absent in ["DisplayName", "FolderClass", "ParentFolderId", "TotalCount"] {
        assert!(!r.contains(&format!("<t:{absent}")), "{absent}: {r}");
    }
    let r = ews
        .call(&find(
            "IdOnly",
            r#"<t:AdditionalProperties><t:FieldURI FieldURI="folder:FolderClass"/></t:AdditionalProperties>"#,
        ))
        .await;
    assert!(
        r.contains("<t:FolderClass>IPF.Contact</t:FolderClass>"),
        "{r}"
    );
    assert!(!r.contains("<t:DisplayName>"), "{r}");
    let r = ews.call(&find("Default", "")).await;
    assert!(r.contains("<t:DisplayName>Contacts</t:DisplayName>"), "{r}");
    assert!(r.contains("<t:ChildFolderCount>"), "{r}");
    assert!(!r.contains("<t:FolderClass>"), "{r}");
    assert!(!r.contains("<t:ParentFolderId "), "{r}");
    let r = ews.call(&find("AllProperties", "")).await;
    assert!(
        r.contains("<t:FolderClass>IPF.Contact</t:FolderClass>"),
        "{r}"
    );
    assert!(r.contains("<t:ParentFolderId "), "{r}");
    ews.finish();
}

/// An all-day event's times are snapped to midnight in the event's zone: the start to the
/// midnight before, the end to the midnight after, on create and on update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_day_events_snap_to_midnight_in_their_zone() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    // 15:00-17:00 Berlin summer time (UTC+2) on 6 June: the whole of 6 June in Berlin.
    let (id, ck) = ews.create("calendar", r#"<t:CalendarItem><t:Subject>Holiday</t:Subject><t:Start>2026-06-06T13:00:00Z</t:Start><t:End>2026-06-06T15:00:00Z</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent><t:StartTimeZone Id="W. Europe Standard Time"/><t:EndTimeZone Id="W. Europe Standard Time"/></t:CalendarItem>"#).await;
    let r = ews.get(&id, "AllProperties").await;
    assert!(r.contains("<t:Start>2026-06-05T22:00:00Z</t:Start>"), "{r}");
    assert!(r.contains("<t:End>2026-06-06T22:00:00Z</t:End>"), "{r}");
    // Moving the end into the next afternoon makes it a two-day event.
    let r = ews
        .call(&format!(
            r#"<m:UpdateItem ConflictResolution="AlwaysOverwrite" SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="calendar:End"/><t:CalendarItem><t:End>2026-06-07T12:00:00Z</t:End></t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ))
        .await;
    assert!(r.contains(r#"ResponseClass="Success""#), "{r}");
    let r = ews.get(&id, "AllProperties").await;
    assert!(r.contains("<t:Start>2026-06-05T22:00:00Z</t:Start>"), "{r}");
    assert!(r.contains("<t:End>2026-06-07T22:00:00Z</t:End>"), "{r}");
    // Without a zone the event's day is the UTC day; a timed event is left alone.
    let (id, _) = ews.create("calendar", "<t:CalendarItem><t:Start>2026-06-06T13:00:00Z</t:Start><t:End>2026-06-06T13:00:00Z</t:End><t:IsAllDayEvent>true</t:IsAllDayEvent></t:CalendarItem>").await;
    let r = ews.get(&id, "AllProperties").await;
    assert!(r.contains("<t:Start>2026-06-06T00:00:00Z</t:Start>"), "{r}");
    assert!(r.contains("<t:End>2026-06-07T00:00:00Z</t:End>"), "{r}");
    let (id, _) = ews.create("calendar", "<t:CalendarItem><t:Start>2026-06-06T13:00:00Z</t:Start><t:End>2026-06-06T14:00:00Z</t:End></t:CalendarItem>").await;
    let r = ews.get(&id, "AllProperties").await;
    assert!(r.contains("<t:Start>2026-06-06T13:00:00Z</t:Start>"), "{r}");
    ews.finish();
}

/// Ids and change keys have Exchange's shape (base64, ~150 and 40 characters), and ConvertId
/// turns an id into each format exchangelib asks for and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_look_like_exchange_and_convert_between_formats() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let (id, ck) = ews
        .create(
            "contacts",
            "<t:Contact><t:GivenName>Ada</t:GivenName></t:Contact>",
        )
        .await;
    assert!((140..=170).contains(&id.len()), "{id}");
    assert_eq!(ck.len(), 40, "{ck}");
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(b64.decode(&id).is_ok() && b64.decode(&ck).is_ok());
    let convert = |from: &str, id: &str, to: &str| {
        format!(
            r#"<m:ConvertId DestinationFormat="{to}"><m:SourceIds><t:AlternateId Format="{from}" Id="{id}" Mailbox="{USER}"/></m:SourceIds></m:ConvertId>"#
        )
    };
    let mut alt = std::collections::BTreeMap::new();
    for to in ["EwsLegacyId", "EntryId", "HexEntryId", "StoreId", "OwaId"] {
        let r = ews.call(&convert("EwsId", &id, to)).await;
        assert!(r.contains(r#"ResponseClass="Success""#), "{to}: {r}");
        let got = attr(&r, "Id").to_string();
        alt.insert(to, got);
    }
    assert!(alt["HexEntryId"].chars().all(|c| c.is_ascii_hexdigit()));
    for (from, value) in &alt {
        let r = ews.call(&convert(from, value, "EwsId")).await;
        assert!(r.contains(r#"ResponseClass="Success""#), "{from}: {r}");
        assert_eq!(attr(&r, "Id"), id, "{from} back to EwsId");
    }
    let r = ews.call(&convert("EwsId", "bm90IGFuIGlk", "EntryId")).await;
    assert!(r.contains("ErrorInvalidIdMalformed"), "{r}");
    ews.finish();
}

/// Smaller differences: IsRecurring on singles and masters, a plain folder's class taken
/// from its parent, the common Windows zones, contacts found by ResolveNames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_differences() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    let (single, _) = ews.create("calendar", "<t:CalendarItem><t:Start>2026-03-02T09:00:00Z</t:Start><t:End>2026-03-02T10:00:00Z</t:End></t:CalendarItem>").await;
    let r = ews.get(&single, "AllProperties").await;
    assert!(r.contains("<t:IsRecurring>false</t:IsRecurring>"), "{r}");
    let (master, _) = ews.create("calendar", r#"<t:CalendarItem><t:Recurrence><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence><t:NumberedRecurrence><t:StartDate>2026-03-01Z</t:StartDate><t:NumberOfOccurrences>3</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence><t:Start>2026-03-01T08:00:00Z</t:Start><t:End>2026-03-01T09:00:00Z</t:End></t:CalendarItem>"#).await;
    let r = ews.get(&master, "AllProperties").await;
    assert!(r.contains("<t:IsRecurring>false</t:IsRecurring>"), "{r}");
    assert!(
        r.contains("<t:CalendarItemType>RecurringMaster</t:CalendarItemType>"),
        "{r}"
    );

    // The range's StartDate comes back with the series zone's suffix.
    let (paris, _) = ews.create("calendar", r#"<t:CalendarItem><t:Recurrence><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence><t:NumberedRecurrence><t:StartDate>2026-03-02</t:StartDate><t:NumberOfOccurrences>3</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence><t:Start>2026-03-02T08:00:00Z</t:Start><t:End>2026-03-02T09:00:00Z</t:End><t:StartTimeZone Id="Romance Standard Time"/></t:CalendarItem>"#).await;
    let r = ews.get(&paris, "AllProperties").await;
    assert!(
        r.contains("<t:StartDate>2026-03-02+01:00</t:StartDate>"),
        "{r}"
    );
    let r = ews.get(&master, "AllProperties").await;
    assert!(r.contains("<t:StartDate>2026-03-01Z</t:StartDate>"), "{r}");

    let r = ews.call(r#"<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderId><m:Folders><t:Folder><t:DisplayName>Plain</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"#).await;
    assert!(r.contains("<t:ContactsFolder>"), "{r}");
    let id = attr(&r, "Id").to_string();
    let r = ews.call(&format!(r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds><t:FolderId Id="{id}"/></m:FolderIds></m:GetFolder>"#)).await;
    assert!(
        r.contains("<t:FolderClass>IPF.Contact</t:FolderClass>"),
        "{r}"
    );

    let r = ews
        .call(r#"<m:GetServerTimeZones ReturnFullTimeZoneData="false"/>"#)
        .await;
    for zone in [
        "Tokyo Standard Time",
        "Romance Standard Time",
        "AUS Eastern Standard Time",
    ] {
        assert!(r.contains(&format!(r#"Id="{zone}""#)), "{zone}: {r}");
    }

    ews.create("contacts", r#"<t:Contact><t:DisplayName>Grace Hopper</t:DisplayName><t:EmailAddresses><t:Entry Key="EmailAddress1">grace@example.com</t:Entry></t:EmailAddresses><t:GivenName>Grace</t:GivenName></t:Contact>"#).await;
    let r = ews.call(r#"<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>hopper</m:UnresolvedEntry></m:ResolveNames>"#).await;
    assert!(
        r.contains("<t:EmailAddress>grace@example.com</t:EmailAddress>"),
        "{r}"
    );
    assert!(r.contains("<t:MailboxType>Contact</t:MailboxType>"), "{r}");
    ews.finish();
}

/// A new mailbox has Exchange's system folders besides the usual well-known ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_has_the_usual_system_folders() {
    let dir = tempfile::tempdir().unwrap();
    let ews = Ews::start(dir.path());
    for id in [
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
        "conversationhistory",
        "searchfolders",
        "recoverableitemsroot",
        "recoverableitemsdeletions",
    ] {
        let r = ews.call(&format!(r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="{id}"/></m:FolderIds></m:GetFolder>"#)).await;
        assert!(r.contains(r#"ResponseClass="Success""#), "{id}: {r}");
    }
    let r = ews.call(r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="root"/></m:FolderIds></m:GetFolder>"#).await;
    assert!(
        r.contains("<t:DisplayName></t:DisplayName>") || r.contains("<t:DisplayName/>"),
        "{r}"
    );
    let r = ews.call(r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="syncissues"/></m:ParentFolderIds></m:FindFolder>"#).await;
    assert!(r.contains(r#"TotalItemsInView="3""#), "{r}");
    ews.finish();
}
