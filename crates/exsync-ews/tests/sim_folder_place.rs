//! Where the sync folder is after its user renamed, moved or deleted it
//! ([`exsync_ews::MailboxClient::folder_place`]), against the Exchange simulator; every request
//! sent is checked against the schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sim::{Sim, SimOptions};
use exsync_ews::{AuthMode, EwsClient, FolderPlace};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_folder_is_found_by_id_wherever_its_user_put_it() {
    let sim = Sim::start(SimOptions::default());
    let trace = tempfile::tempdir().unwrap();
    let client = EwsClient::new(sim.config(AuthMode::Auto, Some(trace.path()))).unwrap();
    let user = sim.allowed_mailbox();
    let mb = client.mailbox(&user, sim.ews_url());
    let change = |what: Value| {
        let mut body = json!({"mailbox": user.clone()});
        for (k, v) in what.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };

    let folder = mb.ensure_contacts_folder().await.unwrap();
    assert_eq!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Live(folder.clone())
    );

    // Renamed: the same folder, with a new change key; looking it up by name finds nothing,
    // so a lookup by name would make a second one.
    let (status, _) = sim
        .control(
            "POST",
            "/folders/change",
            Some(change(json!({"folder": folder.id, "rename": "Clients"}))),
        )
        .await;
    assert_eq!(status, 200);
    let FolderPlace::Live(renamed) = mb.folder_place(&folder).await.unwrap() else {
        panic!("a renamed folder is live");
    };
    assert_eq!(renamed.id, folder.id);
    assert_ne!(renamed.change_key, folder.change_key);

    // Moved two levels down under the top of the mailbox: still live.
    let (_, outer) = sim
        .control(
            "POST",
            "/folders",
            Some(change(
                json!({"parent": "msgfolderroot", "name": "Work", "class": "IPF.Note"}),
            )),
        )
        .await;
    let (_, inner) = sim
        .control(
            "POST",
            "/folders",
            Some(change(
                json!({"parent": outer["id"], "name": "People", "class": "IPF.Contact"}),
            )),
        )
        .await;
    let (status, _) = sim
        .control(
            "POST",
            "/folders/change",
            Some(change(json!({"folder": folder.id, "move_to": inner["id"]}))),
        )
        .await;
    assert_eq!(status, 200);
    assert!(matches!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Live(f) if f.id == folder.id
    ));

    // The folder it sits in deleted: it is deleted with it.
    sim.control(
        "POST",
        "/folders/change",
        Some(change(
            json!({"folder": outer["id"], "delete": "deleteditems"}),
        )),
    )
    .await;
    assert_eq!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Deleted
    );

    // Taken out of Deleted Items again, then deleted itself.
    sim.control(
        "POST",
        "/folders/change",
        Some(change(json!({"folder": folder.id, "move_to": "contacts"}))),
    )
    .await;
    assert!(matches!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Live(_)
    ));
    sim.control(
        "POST",
        "/folders/change",
        Some(change(
            json!({"folder": folder.id, "delete": "deleteditems"}),
        )),
    )
    .await;
    assert_eq!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Deleted
    );

    // In Recoverable Items, out of the user's sight: deleted too.
    sim.control(
        "POST",
        "/folders/change",
        Some(change(
            json!({"folder": folder.id, "move_to": "recoverableitemsdeletions"}),
        )),
    )
    .await;
    assert_eq!(
        mb.folder_place(&folder).await.unwrap(),
        FolderPlace::Deleted
    );

    // Deleted for good: gone. A lookup by name makes a new one.
    sim.control(
        "POST",
        "/folders/change",
        Some(change(json!({"folder": folder.id, "delete": "hard"}))),
    )
    .await;
    assert_eq!(mb.folder_place(&folder).await.unwrap(), FolderPlace::Gone);
    let again = mb.ensure_contacts_folder().await.unwrap();
    assert_ne!(again.id, folder.id);

    exsync_testkit::schema::validate_requests(trace.path());
}
