//! `exsync check` looks at the contact sync folder the passes use, found by the id the state
//! database holds, against the simulators: renamed or moved by its user it is reported found,
//! and no second `Salesforce_Sync` is made; deleted, it is reported (the next pass makes it
//! again), and the check makes none either. On premises and online (where the folder's
//! step is the one for the contact folder and calendar, and a folder is deleted for good: the
//! Graph simulator keeps no Deleted Items).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{shared_key, MASTER_KEY};
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{FolderChange, Lab, MailboxFolder, Seed};
use serde_json::Value;

/// The lab's CRM connector leaves records stamped in the last second for the next pass.
const SETTLE: Duration = Duration::from_millis(1100);

const FOLDER: &str = "Salesforce_Sync";

/// The step that looks at the contact sync folder, on each backend.
fn folder_step(backend: Backend) -> &'static str {
    match backend {
        Backend::Ews => "Contacts folder access",
        Backend::Graph => "Contact folder and calendar",
    }
}

const SEED: Seed = Seed {
    crm_contacts: 2,
    crm_events: 0,
    exchange_contacts: 1,
    exchange_events: 0,
    invalid_record: false,
};

async fn lab(dir: &Path, backend: Backend) -> (Lab, PathBuf) {
    let mut options = crate::lab_options(dir, 1, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&SEED).await.unwrap();
    let config = dir.join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    (lab, config)
}

/// Runs `exsync` with these arguments after the configuration; returns its exit status and
/// standard output.
async fn exsync(config: &Path, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    tokio::time::sleep(SETTLE).await;
    let child = Command::new(env!("CARGO_BIN_EXE_exsync"))
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
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
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `exsync check --json` for the lab's user: the contact folder step.
async fn contacts_step(lab: &Lab, config: &Path, backend: Backend) -> Value {
    let user = lab.users[0].key.as_str();
    let (_, stdout, stderr) = exsync(config, &["check", "--user", user, "--json"]).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{stdout}\nstderr:\n{stderr}"));
    let name = folder_step(backend);
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} step: {report:#}"))
        .clone()
}

/// The user's mailbox folders as the simulator holds them.
async fn folders(lab: &Lab) -> Vec<MailboxFolder> {
    lab.mailbox_folders(&lab.users[0]).await.unwrap()
}

fn named<'a>(folders: &'a [MailboxFolder], name: &str) -> Vec<&'a MailboxFolder> {
    folders.iter().filter(|f| f.name == name).collect()
}

/// Acts on the folder as its user would in Outlook.
async fn change(lab: &Lab, folder: &str, what: FolderChange) {
    lab.change_folder(&lab.users[0], folder, what)
        .await
        .unwrap();
}

/// Syncs once, and returns the lab, its configuration and the id of the sync folder made.
async fn synced(dir: &Path, backend: Backend) -> (Lab, PathBuf, String) {
    let (lab, config) = lab(dir, backend).await;
    let (status, stdout, stderr) = exsync(&config, &["sync"]).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    crate::served_by(&lab, backend);
    let before = folders(&lab).await;
    let ours = named(&before, FOLDER);
    assert_eq!(ours.len(), 1, "{before:#?}");
    let id = ours[0].id.clone();
    (lab, config, id)
}

async fn a_renamed_or_moved_sync_folder_is_found_by_its_id_and_none_is_made(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config, id) = synced(dir.path(), backend).await;

    change(&lab, &id, FolderChange::Rename("My CRM contacts".into())).await;
    let step = contacts_step(&lab, &config, backend).await;
    assert_eq!(step["outcome"], "pass", "{step:#}");
    assert!(
        step["evidence"][0]
            .as_str()
            .unwrap()
            .contains("found by its id"),
        "{step:#}"
    );
    let after = folders(&lab).await;
    assert!(named(&after, FOLDER).is_empty(), "a second one: {after:#?}");
    assert_eq!(named(&after, "My CRM contacts").len(), 1, "{after:#?}");

    // Moved to the top (of the mailbox on premises, of the contact folders online, where
    // Graph keeps them), under its first name again.
    let top = match backend {
        Backend::Ews => after
            .iter()
            .find(|f| f.role.as_deref() == Some("msgfolderroot"))
            .unwrap()
            .id
            .clone(),
        Backend::Graph => lab.new_top_folder(&lab.users[0], "Clients").await.unwrap(),
    };
    change(&lab, &id, FolderChange::MoveTo(top.clone())).await;
    change(&lab, &id, FolderChange::Rename(FOLDER.into())).await;
    let step = contacts_step(&lab, &config, backend).await;
    assert_eq!(step["outcome"], "pass", "{step:#}");
    let after = folders(&lab).await;
    let ours = named(&after, FOLDER);
    assert_eq!(ours.len(), 1, "a second one: {after:#?}");
    assert_eq!(ours[0].id, id);
    assert_eq!(ours[0].parent.as_deref(), Some(top.as_str()));
}

async fn a_deleted_sync_folder_is_reported_and_not_made_by_the_check(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config, id) = synced(dir.path(), backend).await;

    // Deleted into Deleted Items first, then emptied from there for good.
    let ways = [
        (
            FolderChange::DeleteToDeletedItems,
            "was deleted into Deleted Items",
            1,
        ),
        (FolderChange::DeleteHard, "was deleted", 0),
    ];
    for (delete, said, left) in ways {
        change(&lab, &id, delete).await;
        let step = contacts_step(&lab, &config, backend).await;
        assert_eq!(step["outcome"], "warn", "{said}: {step:#}");
        assert!(
            step["evidence"][0].as_str().unwrap().contains(said),
            "{step:#}"
        );
        let after = folders(&lab).await;
        let ours = named(&after, FOLDER);
        assert_eq!(ours.len(), left, "only the deleted one: {after:#?}");
        assert!(ours.iter().all(|f| f.id == id), "{after:#?}");
    }
}

crate::on_each_backend!(
    a_renamed_or_moved_sync_folder_is_found_by_its_id_and_none_is_made,
    a_deleted_sync_folder_is_reported_and_not_made_by_the_check,
);
