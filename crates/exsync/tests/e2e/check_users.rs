//! `exsync check` looks at every user a configuration assigns, on both sides: one good user,
//! one listed in the configuration whom no CRM user pairs with, one whose mailbox the service
//! may not reach (on premises the account may not impersonate it; online it is out of the
//! app's management scope), and one whose CRM address names no mailbox. Each is named with
//! its reason and fix, the run fails, and it leaves the directory as it found it.

use std::collections::BTreeSet;
use std::path::Path;

use exsync_core::CrmId;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::Lab;
use exsync_testkit::cli::Cli;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::{shared_key, MASTER_KEY};

/// Every file under `dir`, but for the simulators' scratch files: a simulator saves its state
/// through a `.tmp` file renamed into place, whenever its own clock says, so one may be there
/// for a moment whatever exsync does.
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
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

async fn check_names_each_assigned_user_that_cannot_sync_with_the_reason_and_fix(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path().join("lab"), 3, backend);
    options.crm_key_pem = Some(shared_key());
    let lab = Lab::start(options).await.unwrap();
    // user2's mailbox may no longer be reached.
    let refused = match backend {
        Backend::Ews => {
            lab.exchange_control(
                Method::POST,
                "/impersonation",
                &json!({"mailboxes": ["user2@contoso.test"], "allowed": false}),
            )
            .await
        }
        Backend::Graph => {
            lab.graph_control(
                Method::PUT,
                "/mailboxes/user2@contoso.test/scope",
                &json!({ "in_scope": false }),
            )
            .await
        }
    };
    refused.unwrap();
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
    let reached = match backend {
        Backend::Ews => "impersonates user1@contoso.test; calendar readable",
        Backend::Graph => "contact folders: readable; calendar: readable",
    };
    assert!(good.contains(reached), "{good}");

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
    let (why, fix) = match backend {
        Backend::Ews => (
            "may not impersonate user2@contoso.test",
            "fix: in the Exchange Management Shell: New-ManagementRoleAssignment",
        ),
        Backend::Graph => ("access denied", "New-ManagementScope"),
    };
    assert!(denied.contains(why), "{denied}");
    assert!(denied.contains(fix), "{denied}");

    let no_mailbox = block(&out, "user3@elsewhere.test");
    let (why, fix) = match backend {
        Backend::Ews => (
            "ErrorNonExistentMailbox: no mailbox has the primary address user3@elsewhere.test",
            "fix: check the address with Get-Mailbox -Identity user3@elsewhere.test",
        ),
        Backend::Graph => (
            "Graph knows no user user3@elsewhere.test (404)",
            "fix: check the address",
        ),
    };
    assert!(no_mailbox.contains(why), "{no_mailbox}");
    assert!(no_mailbox.contains(fix), "{no_mailbox}");

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

    // The steps before the users: on premises the Exchange version; each step's time, and one
    // test contact written, read back and deleted in the sync folder of the mailbox checked.
    let steps: &[&str] = match backend {
        Backend::Ews => {
            assert!(
                out.contains(
                    "      Exchange version 15.2.1544.4 (V2017_07_11) (ServerVersionInfo)\n"
                ),
                "{out}"
            );
            &[
                "DNS",
                "TLS and certificate chain",
                "EWS reachable with the service account",
                "Write round trip",
                "CRM token",
            ]
        }
        Backend::Graph => &[
            "Exchange Online app token",
            "Mailbox in the app's scope (user3@contoso.test)",
            "Write round trip (user3@contoso.test)",
            "CRM token",
        ],
    };
    for step in steps {
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
    let folders = lab.mailbox_folders(&lab.users[2]).await.unwrap();
    let sync_folder = folders
        .iter()
        .find(|f| f.name == "Salesforce_Sync")
        .unwrap();
    assert_eq!(
        sync_folder.items, 0,
        "the test contact was left: {folders:#?}"
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

crate::on_each_backend!(check_names_each_assigned_user_that_cannot_sync_with_the_reason_and_fix);
