//! `exsync check` looks at every user a configuration assigns, on both sides: one good user,
//! one listed in the configuration whom no CRM user pairs with, one whose mailbox the service
//! account may not impersonate, and one whose CRM address names no mailbox. Each is named with
//! its reason and fix, the run fails, and it leaves the directory as it found it.

use std::collections::BTreeSet;
use std::path::Path;

use exsync_core::CrmId;
use exsync_lab::{Lab, LabOptions};
use exsync_testkit::cli::Cli;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::{shared_key, MASTER_KEY};

fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path.display().to_string());
        }
    }
    out
}

pub(crate) fn check(config: &Path, json: bool) -> exsync_testkit::cli::Ran {
    let mut cli = Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["check", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "error");
    if json {
        cli = cli.arg("--json");
    }
    cli.run()
}

/// The report's line for `user`, with the fix line under it when there is one.
pub(crate) fn block(text: &str, user: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains(&format!("  {user} (")));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no line for {user}:\n{text}"));
    match lines.next() {
        Some(fix) if fix.trim_start().starts_with("fix: ") => format!("{first}\n{fix}"),
        _ => first.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_assigned_user_that_cannot_sync_with_the_reason_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path().join("lab"), 3);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    // user2's mailbox may no longer be impersonated.
    lab.exchange_control(
        Method::POST,
        "/impersonation",
        &json!({"mailboxes": ["user2@contoso.test"], "allowed": false}),
    )
    .await
    .unwrap();
    // user3's CRM user now holds an address no mailbox has, while the configuration still
    // lists user3's mailbox by name.
    let mut email = Map::new();
    email.insert("Email".into(), Value::String("user3@elsewhere.test".into()));
    let crm_id: &CrmId = &lab.users[2].crm_id;
    let written = lab
        .crm
        .update_sobjects("User", &[(crm_id.clone(), email)])
        .await
        .unwrap();
    assert!(written[0].error.is_none(), "{written:?}");

    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "[configurations.sales]\n",
            "[configurations.sales]\nusers = [\"user3@contoso.test\"]\n",
        ),
    )
    .unwrap();

    let before = listing(dir.path());
    let ran = check(&config, false);
    assert_eq!(ran.code(), Some(1), "{}", ran.text());
    let out = ran.stdout.clone();
    assert!(
        out.contains("\nAssigned users (4, checked 4 at a time)\n"),
        "{out}"
    );

    let good = block(&out, "user1@contoso.test");
    assert!(
        good.starts_with(
            "PASS  user1@contoso.test (sales, via group Sales User): CRM user User 1 (005"
        ),
        "{good}"
    );
    assert!(
        good.contains("impersonates user1@contoso.test; calendar readable"),
        "{good}"
    );

    let no_crm = block(&out, "user3@contoso.test");
    assert!(
        no_crm.starts_with("FAIL  user3@contoso.test (sales, assigned individually): no active CRM user has user3@contoso.test in their Email"),
        "{no_crm}"
    );
    assert!(
        no_crm.contains("fix: set Email of the user's CRM record to user3@contoso.test"),
        "{no_crm}"
    );

    let denied = block(&out, "user2@contoso.test");
    assert!(
        denied.starts_with("FAIL  user2@contoso.test (sales, via group Sales User): "),
        "{denied}"
    );
    assert!(
        denied.contains("may not impersonate user2@contoso.test"),
        "{denied}"
    );
    assert!(
        denied.contains("fix: in the Exchange Management Shell: New-ManagementRoleAssignment"),
        "{denied}"
    );

    let no_mailbox = block(&out, "user3@elsewhere.test");
    assert!(
        no_mailbox.contains(
            "ErrorNonExistentMailbox: no mailbox has the primary address user3@elsewhere.test"
        ),
        "{no_mailbox}"
    );
    assert!(
        no_mailbox
            .contains("fix: check the address with Get-Mailbox -Identity user3@elsewhere.test"),
        "{no_mailbox}"
    );

    assert!(
        out.ends_with(
            " failed, 0 skipped; 4 assigned users, 1 passed, 0 warned, 3 failed, 0 not checked
"
        ) && out.contains(
            "
FAIL: "
        ),
        "{out}"
    );

    // The steps before the users: the Exchange version, each step's time, and one test contact
    // written, read back and deleted in the sync folder of the mailbox checked.
    assert!(
        out.contains("      Exchange version 15.2.1544.4 (V2017_07_11) (ServerVersionInfo)\n"),
        "{out}"
    );
    for step in [
        "DNS",
        "TLS and certificate chain",
        "EWS reachable with the service account",
        "Write round trip",
        "CRM token",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("PASS  {step}  (")) && l.ends_with(" ms)")),
            "{step} with its time: {out}"
        );
    }
    let round_trip: String = out
        .lines()
        .skip_while(|l| !l.starts_with("PASS  Write round trip"))
        .skip(1)
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        round_trip.contains("created a contact tagged exsync-check-")
            && round_trip.contains("in Contacts/Salesforce_Sync of user3@contoso.test (")
            && round_trip.contains("read it back by its tag (")
            && round_trip.contains("deleted it ("),
        "{round_trip}"
    );
    let state = lab
        .exchange_control(Method::GET, "/state", &Value::Null)
        .await
        .unwrap();
    let mailbox = state["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == "user3@contoso.test")
        .unwrap();
    let sync_folder = mailbox["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Salesforce_Sync")
        .unwrap();
    assert_eq!(
        sync_folder["items"], 0,
        "the test contact was left: {mailbox:#}"
    );

    let json = check(&config, true);
    assert_eq!(json.code(), Some(1));
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["status"], "fail");
    let users: Vec<(&str, &str)> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["user"].as_str().unwrap(), u["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        users,
        [
            ("user1@contoso.test", "pass"),
            ("user2@contoso.test", "fail"),
            ("user3@contoso.test", "fail"),
            ("user3@elsewhere.test", "fail"),
        ]
    );

    assert_eq!(
        listing(dir.path()),
        before,
        "the check created or removed files"
    );
}
