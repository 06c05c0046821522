//! The user's `Salesforce_Sync` contact folder in their hands, against the simulators with
//! `exsync sync` as an admin runs it, on premises and online.
//!
//! Renamed or moved between passes, the folder keeps syncing where it is: a new CRM contact is
//! copied into it, an Outlook edit made in it reaches the CRM, no second `Salesforce_Sync` is
//! made, and nothing is deleted in the CRM. Deleted (into Deleted Items, or for good), it is
//! made again under Contacts, the user's synced CRM contacts are copied into the new one, the
//! log says so, and nothing is deleted in the CRM either. The system folders Exchange keeps
//! under Contacts are never written to.
//!
//! Online, folders are made and moved only among the contact folders (Graph has no other
//! place for them), and Deleted Items is not there: the Graph simulator keeps none.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{shared_key, MASTER_KEY};
use exsync_core::{ItemKind, UserKey};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::PassOptions;
use exsync_engine::sync::sides::MailboxSide;
use exsync_lab::{crm_contact, FolderChange, Lab, MailboxFolder, Seed};
use exsync_salesforce::NewRecord;
use serde_json::json;

/// The lab's CRM connector leaves records stamped in the last second for the next pass.
const SETTLE: Duration = Duration::from_millis(1100);

const FOLDER: &str = "Salesforce_Sync";

const SEED: Seed = Seed {
    crm_contacts: 6,
    crm_events: 0,
    exchange_contacts: 3,
    exchange_events: 0,
    invalid_record: false,
};

/// The system folders a mailbox keeps under Contacts.
const SYSTEM: [&str; 5] = [
    "Recipient Cache",
    "PeopleCentricConversation Buddies",
    "Companies",
    "Organizational Contacts",
    "GAL Contacts",
];

async fn lab(dir: &Path, backend: Backend) -> (Lab, PathBuf) {
    let mut options = crate::lab_options(dir, 1, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&SEED).await.unwrap();
    let config = dir.join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    (lab, config)
}

/// Runs `exsync sync`, which must succeed; returns its output.
async fn sync(config: &Path, what: &str) -> Output {
    sync_with(config, &[], what).await
}

/// Runs `exsync sync` with `args`, which must succeed; returns its output.
async fn sync_with(config: &Path, args: &[&str], what: &str) -> Output {
    tokio::time::sleep(SETTLE).await;
    let child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .arg("sync")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exsync runs");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{what}: exsync sync failed: {}",
        text(&output)
    );
    output
}

/// `exsync status`'s output.
fn status(config: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .arg("status")
        .arg("--config")
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn text(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The user's mailbox folders as the simulator holds them.
async fn folders(lab: &Lab) -> Vec<MailboxFolder> {
    lab.mailbox_folders(&lab.users[0]).await.unwrap()
}

fn named<'a>(folders: &'a [MailboxFolder], name: &str) -> Vec<&'a MailboxFolder> {
    folders.iter().filter(|f| f.name == name).collect()
}

fn by_id<'a>(folders: &'a [MailboxFolder], id: &str) -> Option<&'a MailboxFolder> {
    folders.iter().find(|f| f.id == id)
}

fn role<'a>(folders: &'a [MailboxFolder], role: &str) -> &'a MailboxFolder {
    folders
        .iter()
        .find(|f| f.role.as_deref() == Some(role))
        .unwrap_or_else(|| panic!("no {role} folder: {folders:#?}"))
}

/// Acts on the folder as its user would in Outlook.
async fn change(lab: &Lab, folder: &str, what: FolderChange) {
    lab.change_folder(&lab.users[0], folder, what)
        .await
        .unwrap();
}

/// The user's CRM contacts' last names, sorted.
async fn crm_names(lab: &Lab) -> Vec<String> {
    let ids = lab
        .crm
        .query_all(&format!(
            "SELECT Id, LastName FROM Contact WHERE OwnerId = '{}'",
            lab.users[0].crm_id.as_str()
        ))
        .await
        .unwrap();
    let mut names: Vec<String> = ids
        .iter()
        .filter_map(|r| {
            r.get("LastName")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

async fn new_crm_contact(lab: &Lab, i: usize) -> String {
    let record = crm_contact(0, i);
    let name = record.last_name.clone();
    let outcome = lab
        .crm
        .create_contacts(&[NewRecord {
            external_key: None,
            owner_id: Some(lab.users[0].crm_id.as_str().to_owned()),
            record,
        }])
        .await
        .unwrap();
    assert!(outcome.iter().all(|o| o.error.is_none()), "{outcome:?}");
    name
}

/// Tells the lab's own connector which folder is the user's now, as a stored cursor would.
fn point_lab_at(lab: &Lab, folder: &MailboxFolder) {
    lab.syncer.exchange.known_folder(
        &UserKey::new(lab.users[0].key.as_str()),
        ItemKind::Contact,
        &(folder.id.clone(), String::new()),
    );
}

/// No mailbox item sits in a system folder under Contacts (the Exchange simulator's mailboxes
/// have them; the Graph simulator's contact folders are only the user's).
fn system_folders_untouched(folders: &[MailboxFolder], backend: Backend) {
    if backend == Backend::Graph {
        return;
    }
    let contacts = role(folders, "contacts").id.clone();
    for name in SYSTEM {
        let found = named(folders, name);
        assert_eq!(found.len(), 1, "{name}: {folders:#?}");
        assert_eq!(
            found[0].parent.as_deref(),
            Some(contacts.as_str()),
            "{name} is under Contacts"
        );
        assert_eq!(found[0].items, 0, "{name} was written to");
    }
}

/// The sides agree, every CRM contact has its copy, and every pair is whole.
async fn converged(lab: &Lab, what: &str) {
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{what}: {:#?}", check.problems);
    assert_eq!(
        check.crm_records, check.pairs,
        "{what}: CRM records vs pairs"
    );
    assert_eq!(check.exchange_items, check.pairs, "{what}: items vs pairs");
}

/// Between passes the user changes the folder (`what`): the next pass must follow it by id.
async fn follow(lab: &Lab, config: &Path, what: FolderChange, round: usize, backend: Backend) {
    let before = folders(lab).await;
    let ours = named(&before, FOLDER);
    assert_eq!(ours.len(), 1, "{before:#?}");
    let id = ours[0].id.clone();
    change(lab, &id, what.clone()).await;
    let changed = folders(lab).await;
    assert_ne!(
        by_id(&changed, &id),
        by_id(&before, &id),
        "{what:?}: the folder keeps its id and changed"
    );
    let names_before = crm_names(lab).await;

    // In the changed folder the user edits a contact; in the CRM someone adds one.
    let edited = crm_contact(0, 1).last_name;
    let department = format!("Outlook edit {round}");
    let d = department.clone();
    lab.edit_exchange(&lab.users[0], ItemKind::Contact, &edited, |f| {
        f.insert("department".into(), json!(d));
    })
    .await
    .unwrap();
    let added = new_crm_contact(lab, 100 + round).await;

    let output = sync(config, &format!("{what:?}")).await;
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains(" deleted 0 "),
        "{what:?}: {}",
        text(&output)
    );

    let after = folders(lab).await;
    assert!(
        named(&after, FOLDER).iter().all(|f| f.id == id),
        "{what:?}: a second {FOLDER} was made: {after:#?}"
    );
    let moved = by_id(&after, &id).unwrap();
    // The new CRM contact and the seeded ones are in the folder where the user put it.
    assert_eq!(
        moved.items,
        SEED.crm_contacts + SEED.exchange_contacts + round,
        "{what:?}: {moved:#?}"
    );
    let copy = lab
        .exchange_item(&lab.users[0], ItemKind::Contact, &added)
        .await
        .unwrap_or_else(|e| panic!("{what:?}: the new CRM contact was not copied: {e}"));
    assert_eq!(copy.fields.get("last_name"), Some(&json!(added)));
    let crm = lab
        .crm_record(&lab.users[0], ItemKind::Contact, &edited)
        .await
        .unwrap();
    assert_eq!(
        crm.fields.get("department"),
        Some(&json!(department)),
        "{what:?}: the Outlook edit did not reach the CRM"
    );
    let mut expected = names_before;
    expected.push(added);
    expected.sort();
    assert_eq!(crm_names(lab).await, expected, "{what:?}: CRM contacts");
    system_folders_untouched(&after, backend);
    converged(lab, &format!("{what:?}")).await;
}

async fn a_renamed_or_moved_folder_keeps_syncing_where_it_is(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config) = lab(dir.path(), backend).await;
    sync(&config, "the first pass").await;
    crate::served_by(&lab, backend);
    let first = folders(&lab).await;
    system_folders_untouched(&first, backend);
    converged(&lab, "the first pass").await;

    let renamed = FolderChange::Rename("My CRM contacts".into());
    follow(&lab, &config, renamed, 1, backend).await;

    // Moved under a folder of its own at the top.
    let clients = lab.new_top_folder(&lab.users[0], "Clients").await.unwrap();
    let folders_now = folders(&lab).await;
    let renamed = named(&folders_now, "My CRM contacts")[0].id.clone();
    // Back to its name, then moved: the pass after must still find it by id.
    change(&lab, &renamed, FolderChange::Rename(FOLDER.into())).await;
    let moved = FolderChange::MoveTo(clients.clone());
    follow(&lab, &config, moved, 2, backend).await;
    let after = folders(&lab).await;
    let ours = named(&after, FOLDER);
    assert_eq!(ours.len(), 1, "{after:#?}");
    assert_eq!(ours[0].parent.as_deref(), Some(clients.as_str()));

    // A pass with nothing new writes nothing.
    let output = sync(&config, "the idle pass").await;
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("created 0 updated 0 deleted 0 conflicts 0 failures 0"),
        "{}",
        text(&output)
    );
}

async fn a_deleted_folder_is_made_again_and_nothing_is_deleted_in_the_crm(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config) = lab(dir.path(), backend).await;
    sync(&config, "the first pass").await;
    crate::served_by(&lab, backend);
    converged(&lab, "the first pass").await;
    let synced = SEED.crm_contacts + SEED.exchange_contacts;
    let ways = [
        ("deleteditems", FolderChange::DeleteToDeletedItems),
        ("hard", FolderChange::DeleteHard),
    ];

    for (round, (how, delete)) in ways.into_iter().enumerate() {
        let before = folders(&lab).await;
        let contacts = role(&before, "contacts").id.clone();
        let ours: Vec<&MailboxFolder> = named(&before, FOLDER)
            .into_iter()
            .filter(|f| f.parent.as_deref() == Some(contacts.as_str()))
            .collect();
        assert_eq!(ours.len(), 1, "{how}: {before:#?}");
        let old = ours[0].id.clone();
        let names_before = crm_names(&lab).await;
        assert_eq!(names_before.len(), synced + round);
        change(&lab, &old, delete).await;
        // A CRM contact added meanwhile lands in the new folder too.
        let added = new_crm_contact(&lab, 200 + round).await;

        let output = sync(&config, how).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stdout.contains(" deleted 0 "), "{how}: {}", text(&output));
        assert!(!stdout.contains("PAUSED"), "{how}: {}", text(&output));
        assert!(!stdout.contains("ERROR"), "{how}: {}", text(&output));
        // The log names the user and says what happened; so do the pass's report and the
        // user's status, from the run stored with the notice.
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("sync folder was") && l.contains(lab.users[0].key.as_str())),
            "{how}: no warning about the folder: {}",
            text(&output)
        );
        assert!(
            stdout.contains("NOTICE [sync_folder_replaced]"),
            "{how}: {}",
            text(&output)
        );
        let status = status(&config);
        let noticed = format!(
            "{} [sync_folder_replaced] The contact sync folder was",
            lab.users[0].key
        );
        assert!(status.contains(&noticed), "{how}: {status}");

        // Nothing was deleted in the CRM: every contact is there, and the new one.
        let mut expected = names_before;
        expected.push(added.clone());
        expected.sort();
        assert_eq!(crm_names(&lab).await, expected, "{how}: CRM contacts");

        // A new folder under Contacts holds a copy of every CRM contact.
        let after = folders(&lab).await;
        let contacts = role(&after, "contacts").id.clone();
        let live: Vec<&MailboxFolder> = named(&after, FOLDER)
            .into_iter()
            .filter(|f| f.parent.as_deref() == Some(contacts.as_str()))
            .collect();
        assert_eq!(live.len(), 1, "{how}: {after:#?}");
        assert_ne!(live[0].id, old, "{how}: the old folder is used");
        assert_eq!(
            live[0].items,
            expected.len(),
            "{how}: copies in the new folder"
        );
        match how {
            "deleteditems" => {
                let bin = role(&after, "deleteditems").id.clone();
                let deleted = by_id(&after, &old).unwrap();
                assert_eq!(deleted.parent.as_deref(), Some(bin.as_str()));
                assert_eq!(
                    deleted.items, synced,
                    "{how}: the deleted folder was written to"
                );
            }
            _ => assert!(by_id(&after, &old).is_none()),
        }
        system_folders_untouched(&after, backend);

        point_lab_at(&lab, live[0]);
        converged(&lab, how).await;
        lab.exchange_item(&lab.users[0], ItemKind::Contact, &added)
            .await
            .unwrap_or_else(|e| panic!("{how}: the new CRM contact was not copied: {e}"));

        // The next pass is idle, and an edit in the new folder reaches the CRM.
        let edited = crm_contact(0, 2).last_name;
        lab.edit_exchange(&lab.users[0], ItemKind::Contact, &edited, |f| {
            f.insert("department".into(), json!(format!("after {how}")));
        })
        .await
        .unwrap();
        let output = sync(&config, "after").await;
        assert!(
            String::from_utf8_lossy(&output.stdout)
                .contains("created 0 updated 1 deleted 0 conflicts 0 failures 0"),
            "{how}: {}",
            text(&output)
        );
        let crm = lab
            .crm_record(&lab.users[0], ItemKind::Contact, &edited)
            .await
            .unwrap();
        assert_eq!(
            crm.fields.get("department"),
            Some(&json!(format!("after {how}")))
        );
        converged(&lab, how).await;
    }
}

/// The running service (one process, which keeps the folder it found between passes) notices
/// a folder deleted between its passes as a new process does, and makes it again: deleted into
/// Deleted Items, deleted inside a folder of the user's that went there, or deleted for good.
async fn a_folder_deleted_under_the_running_service_is_noticed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, _config) = lab(dir.path(), backend).await;
    tokio::time::sleep(SETTLE).await;
    let options = PassOptions::default();
    let pass = || lab.syncer.run_pass(&options);
    let first = pass().await.unwrap();
    assert_eq!(first.failed_users(), 0, "{first:#?}");
    crate::served_by(&lab, backend);
    let mut current = named(&folders(&lab).await, FOLDER)[0].id.clone();

    for (round, how) in ["deleteditems", "with its parent", "hard"]
        .into_iter()
        .enumerate()
    {
        match how {
            "deleteditems" => change(&lab, &current, FolderChange::DeleteToDeletedItems).await,
            "hard" => change(&lab, &current, FolderChange::DeleteHard).await,
            _ => {
                // The user files the folder under one of their own, which keeps syncing, and
                // then deletes that one.
                let holder = lab
                    .new_top_folder(&lab.users[0], &format!("Kept {round}"))
                    .await
                    .unwrap();
                change(&lab, &current, FolderChange::MoveTo(holder.clone())).await;
                tokio::time::sleep(SETTLE).await;
                let kept = pass().await.unwrap();
                assert_eq!(kept.failed_users(), 0, "{how}: {kept:#?}");
                assert!(kept.users[0].notices.is_empty(), "{how}: {kept:#?}");
                change(&lab, &holder, FolderChange::DeleteToDeletedItems).await;
            }
        }
        tokio::time::sleep(SETTLE).await;
        let next = pass().await.unwrap();
        assert_eq!(next.failed_users(), 0, "{how}: {next:#?}");
        let codes: Vec<&str> = next.users[0]
            .notices
            .iter()
            .map(|n| n.code.as_str())
            .collect();
        assert_eq!(codes, ["sync_folder_replaced"], "{how}: {next:#?}");
        assert_eq!(next.users[0].counts.deleted, 0, "{how}: {next:#?}");
        let after = folders(&lab).await;
        let contacts = role(&after, "contacts").id.clone();
        let live: Vec<&MailboxFolder> = named(&after, FOLDER)
            .into_iter()
            .filter(|f| f.parent.as_deref() == Some(contacts.as_str()))
            .collect();
        assert_eq!(live.len(), 1, "{how}: {after:#?}");
        assert_ne!(live[0].id, current, "{how}");
        assert_eq!(
            live[0].items,
            SEED.crm_contacts + SEED.exchange_contacts,
            "{how}"
        );
        current = live[0].id.clone();
        point_lab_at(&lab, live[0]);
        converged(&lab, how).await;
    }
}

/// A dry run makes nothing in the mailbox, the sync folder included. Before the first pass it
/// plans the CRM contacts' copies into a folder that is not there yet; after the folder was
/// deleted, it plans their copies again and deletes nothing in the CRM. The real pass after
/// each makes the folder.
async fn a_dry_run_makes_no_sync_folder(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path(), 1, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    // Nothing in the mailbox: seeding Outlook contacts would make the folder.
    let seed = Seed {
        exchange_contacts: 0,
        ..SEED
    };
    lab.seed(&seed).await.unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let user = lab.users[0].key.clone();
    let planned = format!("{user}: {} operations planned", SEED.crm_contacts);

    for (round, when) in ["before the first pass", "after the folder was deleted"]
        .into_iter()
        .enumerate()
    {
        let before = folders(&lab).await;
        assert!(named(&before, FOLDER).is_empty(), "{when}: {before:#?}");
        let output = sync_with(&config, &["--dry-run"], when).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(&planned), "{when}: {}", text(&output));
        let ops: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(ops.len(), SEED.crm_contacts, "{when}: {}", text(&output));
        assert!(
            ops.iter()
                .all(|l| l.trim_start().starts_with("create contact in exchange")),
            "{when}: {}",
            text(&output)
        );
        assert_eq!(
            folders(&lab).await,
            before,
            "{when}: the dry run changed the folders"
        );

        sync(&config, when).await;
        if round == 0 {
            crate::served_by(&lab, backend);
        }
        let after = folders(&lab).await;
        let ours = named(&after, FOLDER);
        assert_eq!(ours.len(), 1, "{when}: {after:#?}");
        assert_eq!(ours[0].items, SEED.crm_contacts, "{when}: {after:#?}");
        // The user deletes it; the next dry run must not make it again.
        change(&lab, &ours[0].id.clone(), FolderChange::DeleteHard).await;
    }
}

crate::on_each_backend!(
    a_dry_run_makes_no_sync_folder,
    a_renamed_or_moved_folder_keeps_syncing_where_it_is,
    a_deleted_folder_is_made_again_and_nothing_is_deleted_in_the_crm,
    a_folder_deleted_under_the_running_service_is_noticed,
);
