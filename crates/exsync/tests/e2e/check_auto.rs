//! `exsync check` on users whose mailbox is located automatically (`auto`): it asks
//! on-premises Autodiscover for each, as the service does before their pass, and shows where
//! the mailbox is (on premises with its EWS URL, or online with its routing address) before
//! checking it on that backend; a user Autodiscover cannot place fails with the reason and fix.

use exsync_lab::{Lab, LabOptions};
use reqwest::Method;
use serde_json::json;

use crate::check_users::{block, check};
use crate::MASTER_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_places_each_auto_user_with_autodiscover() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = LabOptions::new(dir.path().join("lab"), 3);
    options.crm_key_pem = Some(crate::shared_key());
    options.exchange_online = Some(1);
    options.auto_routing = true;
    let lab = Lab::start(options).await.unwrap();
    let (on_premises, lost, online) = (&lab.users[0], &lab.users[1], &lab.users[2]);
    lab.make_remote(online).await.unwrap();
    // Autodiscover sends the second user's address to a domain outside the allow-list, where
    // neither the check nor the service follows it.
    lab.exchange_control(
        Method::POST,
        "/autodiscover",
        &json!({"mailbox": lost.key.as_str(), "redirect_addr": "user2@elsewhere.example"}),
    )
    .await
    .unwrap();
    let config = dir.path().join("exsync.toml");
    lab.write_config(&config, MASTER_KEY).unwrap();

    let ran = check(&config, false);
    let text = ran.text();
    assert!(
        !ran.status.success(),
        "a user that cannot be placed fails the check: {text}"
    );

    let here = block(&ran.stdout, on_premises.key.as_str());
    assert!(
        here.starts_with("PASS")
            && here.contains("auto: Autodiscover places the mailbox on premises (EWS at https://")
            && here.contains("EWS: "),
        "{here}\n{text}"
    );
    let there = block(&ran.stdout, online.key.as_str());
    assert!(
        there.starts_with("PASS")
            && there.contains(
                "auto: Autodiscover places the mailbox in Exchange Online (routing address \
                 user3@contoso.mail.onmicrosoft.com)"
            )
            && there.contains("; mailbox ")
            && !there.contains("EWS: "),
        "checked over Graph, not EWS: {there}\n{text}"
    );
    let failed = block(&ran.stdout, lost.key.as_str());
    assert!(
        failed.starts_with("FAIL")
            && failed
                .contains("auto: Autodiscover could not place the mailbox, so it cannot sync: ")
            && failed.contains("fix: ")
            && failed.contains("instead of locating it automatically"),
        "{failed}\n{text}"
    );
}
