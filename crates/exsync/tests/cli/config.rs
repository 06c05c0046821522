//! Runs the built `exsync` binary on configuration files, as an admin would.

use std::path::PathBuf;

use exsync_testkit::cli::{self, Ran};

fn exsync(args: &[&str]) -> Ran {
    cli::run(env!("CARGO_BIN_EXE_exsync"), args)
}

fn example() -> PathBuf {
    exsync_testkit::paths::workspace().join("exsync.example.toml")
}

const BAD: &str = r#"[exchange]
service_account = "svc@example.com"
ews_url = "http://mail.example.com/EWS/Exchange.asmx"
password = "hunter2"

[crm]
client_id = "abc"
username = "int@example.com"

[configurations.sales]
users = ["bob@example.com", "not-an-address"]
events.past_days = 4000

[configurations.support]
users = ["BOB@example.com"]
contacts.direction = "off"
events.direction = "off"
"#;

#[test]
fn check_reports_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exsync.toml");
    std::fs::write(&file, BAD).unwrap();
    let out = exsync(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let f = file.display();
    let expected = [
        format!("{f}:3: exchange.ews_url: must be an https:// URL: the service account's password is only ever sent over TLS"),
        format!("{f}:4: exchange.password: secrets do not belong in the configuration file; store it in the vault with `exsync secrets set` instead"),
        format!("{f}:11: configurations.sales.users: `not-an-address` is not an e-mail address"),
        format!("{f}:12: configurations.sales.events.past_days: must be between 0 and 3650 days, found 4000"),
        format!("{f}:14: configurations.support: contacts and events are both off, so this configuration syncs nothing; set contacts.direction or events.direction"),
        format!("{f}:15: configurations.support.users: `bob@example.com` is already assigned to configuration `sales` (line 11); a user can be assigned individually to one active configuration only"),
        "6 problems found".to_owned(),
    ];
    let text = out.stdout.clone();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, expected, "{text}");
    // The secret's value is never echoed back.
    assert!(!text.contains("hunter2"));
}

#[test]
fn check_on_a_missing_file_exits_1() {
    let out = exsync(&["config", "check", "/nonexistent/exsync.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .stdout
        .starts_with("/nonexistent/exsync.toml: cannot read the file: "));
}

/// `config check` reads the file `-c` names, before or after the subcommand, as every command
/// does.
#[test]
fn check_takes_the_file_from_c_too() {
    let file = example();
    for args in [
        vec!["-c", file.to_str().unwrap(), "config", "check"],
        vec!["config", "check", "--config", file.to_str().unwrap()],
    ] {
        let out = exsync(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(
            out.stdout.starts_with(&format!("{}: OK\n", file.display())),
            "{args:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn check_summarises_a_clean_file_and_exits_0() {
    let file = example();
    let out = exsync(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = out.stdout.clone();
    assert!(
        text.starts_with(&format!("{}: OK\n", file.display())),
        "{text}"
    );
    for line in [
        "exchange: svc-exsync@example.com via Autodiscover (auth auto)",
        "configurations: 2 (2 active)",
        "  sales (active): contacts both (owned), events both (30 days back, 365 ahead)",
        "    users: alice@example.com, bob@example.com",
        "    groups: Sales User",
        "  support (active): contacts crm_to_exchange (visible), events off",
        "    groups: Support Agent",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn show_prints_the_effective_configuration_that_loads_back() {
    let out = exsync(&["config", "show", example().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = out.stdout.clone();
    // Defaults the example leaves out are filled in.
    assert!(text.contains("[network.resolve]"), "{text}");
    assert!(text.contains("min_deletes_for_valve = 5"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().join("shown.toml");
    std::fs::write(&shown, &text).unwrap();
    let again = exsync(&["config", "check", shown.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", again.stdout);

    let json = exsync(&[
        "config",
        "show",
        "--format",
        "json",
        example().to_str().unwrap(),
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["crm"]["api_reserve"], 0.2);
    assert_eq!(value["service"]["poll_interval"], "5m");
}

#[test]
fn show_user_explains_which_configuration_applies() {
    let file = example();
    let out = exsync(&[
        "config",
        "show",
        file.to_str().unwrap(),
        "--user",
        "Bob@Example.com",
        "--groups",
        "Support Agent",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = out.stdout.clone();
    let head: Vec<&str> = text.lines().take(5).collect();
    assert_eq!(
        head,
        [
            "# user: bob@example.com",
            "# paired by Email: bob@example.com → mailbox bob@example.com",
            "# configuration: sales (assigned individually)",
            "# - `bob@example.com` is assigned individually to configuration `sales`",
            "# - group `Support Agent` is assigned to configuration `support`, but an individual assignment beats a group one",
        ],
        "{text}"
    );
    assert!(text.contains("[configurations.sales.events]"), "{text}");
    assert!(!text.contains("[configurations.support"), "{text}");

    let out = exsync(&[
        "config",
        "show",
        file.to_str().unwrap(),
        "--format",
        "json",
        "--user",
        "carl@example.com",
        "--groups",
        "Support Agent,Marketing",
    ]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(value["assignment"]["configuration"], "support");
    assert_eq!(value["assignment"]["assigned_by"], "group");
    assert_eq!(value["assignment"]["group"], "Support Agent");
    assert_eq!(value["configuration"]["contacts"]["scope"], "visible");
    assert_eq!(value["paired_by"], "Email");
}

#[test]
fn show_user_names_the_configured_pairing_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exsync.toml");
    let text = std::fs::read_to_string(example()).unwrap();
    assert!(text.contains("\nmailbox_field = \"Email\"\n"), "{text}");
    for (field, line) in [
        (
            "Username",
            "# paired by Username: alice@example.com → mailbox alice@example.com",
        ),
        (
            "Exchange_Mailbox__c",
            "# paired by Exchange_Mailbox__c: alice@example.com → mailbox alice@example.com",
        ),
    ] {
        std::fs::write(
            &file,
            text.replace(
                "\nmailbox_field = \"Email\"\n",
                &format!("\nmailbox_field = \"{field}\"\n"),
            ),
        )
        .unwrap();
        let out = exsync(&[
            "config",
            "show",
            file.to_str().unwrap(),
            "--user",
            "alice@example.com",
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout.lines().nth(1), Some(line), "{}", out.stdout);
    }
    // A field that is not an API name is refused by `config check` with its line and reason.
    std::fs::write(
        &file,
        text.replace(
            "\nmailbox_field = \"Email\"\n",
            "\nmailbox_field = \"Exchange Mailbox\"\n",
        ),
    )
    .unwrap();
    let out = exsync(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains(": crm.mailbox_field: `Exchange Mailbox` is not Email, Username, FederationIdentifier or the API name of a custom User field"),
        "{}",
        out.stdout
    );
}

#[test]
fn show_on_a_bad_file_prints_problems_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exsync.toml");
    std::fs::write(&file, BAD).unwrap();
    let out = exsync(&["config", "show", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = out.stderr;
    assert!(err.ends_with("6 problems found\n"), "{err}");
}
