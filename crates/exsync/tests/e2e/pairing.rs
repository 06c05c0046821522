//! The pairing rule (`crm.mailbox_field`): CRM users whose Email names no mailbox sync once the
//! rule points at the field that does, through the configuration file and the `exsync` binary,
//! on premises and online.

use std::time::Duration;

use exsync_core::config::MailboxField;
use exsync_engine::sync::mailboxes::Backend;
use exsync_lab::{Lab, Seed};
use exsync_testkit::cli::Cli;

use crate::MASTER_KEY;

fn sync(config: &std::path::Path) -> exsync_testkit::cli::Ran {
    Cli::new(env!("CARGO_BIN_EXE_exsync"))
        .args(["sync", "--config"])
        .arg(config)
        .env("EXSYNC_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "error")
        .run()
}

/// Runs the lab with its CRM users' mailboxes in `field`, their Email at another domain; a
/// pass under the Email rule fails them all, one under `field` converges.
async fn users_pair_by(field: MailboxField, backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = crate::lab_options(dir.path(), 2, backend);
    options.mailbox_field = field.clone();
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&Seed {
        crm_contacts: 3,
        crm_events: 2,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    })
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let rule = format!("mailbox_field = \"{field}\"\n");
    assert!(text.contains(&rule), "{text}");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Switched off: under the Email rule the users' addresses at home.test name no mailbox.
    std::fs::write(&config, text.replace(&rule, "")).unwrap();
    let off = sync(&config);
    assert!(!off.status.success(), "{}", off.text());
    assert!(off.text().contains("user1@home.test"), "{}", off.text());
    let check = lab.convergence().await.unwrap();
    assert!(!check.converged(), "nothing should reach the mailboxes yet");

    std::fs::write(&config, &text).unwrap();
    let on = sync(&config);
    assert!(on.status.success(), "{}", on.text());
    for user in &lab.users {
        assert!(
            on.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{}: created ", user.key))),
            "{user:?} did not sync: {}",
            on.stdout
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = sync(&config);
    assert!(again.status.success(), "{}", again.text());
    let check = lab.convergence().await.unwrap();
    assert!(check.converged(), "{:#?}", check.problems);
    assert!(check.pairs > 0);
    crate::served_by(&lab, backend);
}

async fn users_pair_by_username_when_their_email_names_no_mailbox(backend: Backend) {
    users_pair_by(MailboxField::Username, backend).await;
}

async fn users_pair_by_their_federation_identifier(backend: Backend) {
    users_pair_by(MailboxField::FederationIdentifier, backend).await;
}

async fn users_pair_by_a_custom_field(backend: Backend) {
    users_pair_by(
        MailboxField::Custom(exsync_sim::salesforce::USER_MAILBOX_FIELD.into()),
        backend,
    )
    .await;
}

crate::on_each_backend!(
    users_pair_by_username_when_their_email_names_no_mailbox,
    users_pair_by_their_federation_identifier,
    users_pair_by_a_custom_field,
);
