//! `exsync check` looks at the contact sync folder the passes use, found by the id the state
//! database holds, against the simulators: renamed or moved by its user it is reported found,
//! and no second `Salesforce_Sync` is made; deleted, it is reported (the next pass makes it
//! again), and the check makes none either.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{shared_key, MASTER_KEY};
use exsync_lab::{Lab, LabOptions, Seed};
use reqwest::Method;
use serde_json::{json, Value};

/// The lab's CRM connector leaves records stamped in the last second for the next pass.
const SETTLE: Duration = Duration::from_millis(1100);

const FOLDER: &str = "Salesforce_Sync";

const CONTACTS_STEP: &str = "Contacts folder access";

const SEED: Seed = Seed {
    crm_contacts: 2,
    crm_events: 0,
    exchange_contacts: 1,
    exchange_events: 0,
    invalid_record: false,
};

async fn lab(dir: &Path) -> (Lab, PathBuf) {
    let mut options = LabOptions::new(dir, 1);
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
async fn contacts_step(lab: &Lab, config: &Path) -> Value {
    let user = lab.users[0].key.as_str();
    let (_, stdout, stderr) = exsync(config, &["check", "--user", user, "--json"]).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout:\n{stdout}\nstderr:\n{stderr}"));
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == CONTACTS_STEP)
        .unwrap_or_else(|| panic!("no {CONTACTS_STEP} step: {report:#}"))
        .clone()
}

/// The user's mailbox folders as the simulator holds them.
async fn folders(lab: &Lab) -> Vec<Value> {
    let state = lab
        .exchange_control(Method::GET, "/state", &Value::Null)
        .await
        .unwrap();
    let user = lab.users[0].key.as_str();
    state["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"].as_str().unwrap().eq_ignore_ascii_case(user))
        .unwrap()["folders"]
        .as_array()
        .unwrap()
        .clone()
}

fn named<'a>(folders: &'a [Value], name: &str) -> Vec<&'a Value> {
    folders.iter().filter(|f| f["name"] == name).collect()
}

/// Acts on the folder as its user would in Outlook.
async fn change(lab: &Lab, folder: &str, what: Value) {
    let mut body = json!({"mailbox": lab.users[0].key.as_str(), "folder": folder});
    for (k, v) in what.as_object().unwrap() {
        body[k] = v.clone();
    }
    lab.exchange_control(Method::POST, "/folders/change", &body)
        .await
        .unwrap();
}

/// Syncs once, and returns the lab, its configuration and the id of the sync folder made.
async fn synced(dir: &Path) -> (Lab, PathBuf, String) {
    let (lab, config) = lab(dir).await;
    let (status, stdout, stderr) = exsync(&config, &["sync"]).await;
    assert!(status.success(), "{stdout}\n{stderr}");
    let before = folders(&lab).await;
    let ours = named(&before, FOLDER);
    assert_eq!(ours.len(), 1, "{before:#?}");
    let id = ours[0]["id"].as_str().unwrap().to_owned();
    (lab, config, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_or_moved_sync_folder_is_found_by_its_id_and_none_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config, id) = synced(dir.path()).await;

    change(&lab, &id, json!({"rename": "My CRM contacts"})).await;
    let step = contacts_step(&lab, &config).await;
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

    // Moved to the top of the mailbox, under its first name again.
    let top = after
        .iter()
        .find(|f| f["distinguished"] == "msgfolderroot")
        .unwrap()["id"]
        .clone();
    change(&lab, &id, json!({ "move_to": top })).await;
    change(&lab, &id, json!({ "rename": FOLDER })).await;
    let step = contacts_step(&lab, &config).await;
    assert_eq!(step["outcome"], "pass", "{step:#}");
    let after = folders(&lab).await;
    let ours = named(&after, FOLDER);
    assert_eq!(ours.len(), 1, "a second one: {after:#?}");
    assert_eq!(ours[0]["id"], id.as_str());
    assert_eq!(ours[0]["parent"], top);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_sync_folder_is_reported_and_not_made_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, config, id) = synced(dir.path()).await;

    change(&lab, &id, json!({"delete": "deleteditems"})).await;
    let step = contacts_step(&lab, &config).await;
    assert_eq!(step["outcome"], "warn", "{step:#}");
    assert!(
        step["evidence"][0]
            .as_str()
            .unwrap()
            .contains("deleted into Deleted Items"),
        "{step:#}"
    );
    let after = folders(&lab).await;
    let ours = named(&after, FOLDER);
    assert_eq!(ours.len(), 1, "only the deleted one: {after:#?}");
    assert_eq!(ours[0]["id"], id.as_str());
}
