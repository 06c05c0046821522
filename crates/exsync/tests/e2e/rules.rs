//! The sync rules end to end, each with its own configuration, through the simulators and on
//! each mailbox backend (EWS and Graph): directions, conflict policies, the mass-delete valve,
//! Reset Sync, private events and the event window.

use std::time::Duration;

use chrono::Utc;
use exsync_core::config::{ConflictPolicy, Direction, SyncConfiguration};
use exsync_core::{Event, EventTime, ItemKind, Record};
use exsync_engine::sync::mailboxes::Backend;
use exsync_engine::sync::service::{PassOptions, PassReport};
use exsync_engine::sync::sides::MailboxSide;
use exsync_lab::{crm_contact, exchange_contact, lab_configuration, Lab, Seed};
use exsync_salesforce::NewRecord;
use serde_json::json;

async fn start(
    dir: &std::path::Path,
    configuration: SyncConfiguration,
    seed: Seed,
    backend: Backend,
) -> Lab {
    let mut options = crate::lab_options(dir, 1, backend);
    options.configuration = Some(configuration);
    let lab = Lab::start(options).await.unwrap();
    lab.seed(&seed).await.unwrap();
    assert!(lab
        .users
        .iter()
        .all(|u| lab.syncer.exchange.backend(&u.key) == backend));
    lab
}

async fn pass(lab: &Lab) -> PassReport {
    tokio::time::sleep(lab.options.crm_settle + Duration::from_millis(100)).await;
    lab.syncer.run_pass(&PassOptions::default()).await.unwrap()
}

fn small() -> Seed {
    Seed {
        crm_contacts: 10,
        crm_events: 3,
        exchange_contacts: 2,
        exchange_events: 1,
        invalid_record: false,
    }
}

async fn crm_to_exchange_mirrors_the_crm_and_leaves_outlook_contacts_alone(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.contacts.direction = Direction::CrmToExchange;
    let lab = start(dir.path(), config, small(), backend).await;
    pass(&lab).await;
    let user = &lab.users[0];
    // Outlook's own contacts stay in Outlook only.
    let own = exchange_contact(0, 0).last_name;
    assert!(lab
        .exchange_item(user, ItemKind::Contact, &own)
        .await
        .is_ok());
    assert!(lab.crm_record(user, ItemKind::Contact, &own).await.is_err());
    // An Outlook edit of a CRM copy is put back; the CRM is not changed.
    let copy = crm_contact(0, 0).last_name;
    lab.edit_exchange(user, ItemKind::Contact, &copy, |f| {
        f.insert("title".into(), json!("Edited in Outlook"));
    })
    .await
    .unwrap();
    pass(&lab).await;
    assert_eq!(
        lab.exchange_item(user, ItemKind::Contact, &copy)
            .await
            .unwrap()
            .fields["title"],
        "Buyer"
    );
    assert_eq!(
        lab.crm_record(user, ItemKind::Contact, &copy)
            .await
            .unwrap()
            .fields["title"],
        "Buyer"
    );
    assert!(lab.convergence().await.unwrap().converged());
}

async fn exchange_wins_settles_a_both_sides_change_for_outlook(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.contacts.conflict = ConflictPolicy::ExchangeWins;
    let lab = start(dir.path(), config, small(), backend).await;
    pass(&lab).await;
    let user = &lab.users[0];
    let name = crm_contact(0, 2).last_name;
    lab.edit_crm(user, ItemKind::Contact, &name, |f| {
        f.insert("title".into(), json!("CRM title"));
    })
    .await
    .unwrap();
    lab.edit_exchange(user, ItemKind::Contact, &name, |f| {
        f.insert("title".into(), json!("Outlook title"));
    })
    .await
    .unwrap();
    let report = pass(&lab).await;
    assert_eq!(report.users[0].counts.conflicts, 1);
    assert_eq!(
        lab.crm_record(user, ItemKind::Contact, &name)
            .await
            .unwrap()
            .fields["title"],
        "Outlook title"
    );
    assert_eq!(
        lab.exchange_item(user, ItemKind::Contact, &name)
            .await
            .unwrap()
            .fields["title"],
        "Outlook title"
    );
}

async fn a_mass_delete_pauses_the_user_and_reset_rematches_without_duplicates(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let lab = start(dir.path(), lab_configuration(), small(), backend).await;
    pass(&lab).await;
    pass(&lab).await;
    let user = &lab.users[0];
    // 7 of the user's 12 contact pairs are deleted in the CRM: more than the 50% allowed.
    for i in 0..7 {
        lab.delete_crm(user, ItemKind::Contact, &crm_contact(0, i).last_name)
            .await
            .unwrap();
    }
    let report = pass(&lab).await;
    assert!(
        report.users[0]
            .paused
            .as_deref()
            .unwrap_or("")
            .contains("delete 7"),
        "{report:#?}"
    );
    assert!(
        lab.exchange_item(user, ItemKind::Contact, &crm_contact(0, 0).last_name)
            .await
            .is_ok(),
        "nothing deleted"
    );
    let status = lab.syncer.store.user_status(&user.key).unwrap().unwrap();
    assert!(status.paused.is_some());

    // Reset Sync: pairs and cursors are forgotten, the user resumes, and the next pass matches
    // everything again: the CRM's deletions are not applied (the pairs that carried them are
    // gone), the Outlook copies come back to the CRM, and nothing is duplicated.
    let before = lab.convergence().await.unwrap();
    lab.syncer.store.reset_user(&user.key).unwrap();
    pass(&lab).await;
    pass(&lab).await;
    let after = lab.convergence().await.unwrap();
    assert!(after.converged(), "{:#?}", after.problems);
    assert_eq!(
        after.exchange_items, before.exchange_items,
        "no Outlook item was duplicated"
    );
    assert_eq!(after.pairs, after.exchange_items, "every item paired once");
}

async fn private_events_and_events_outside_the_window_stay_where_they_are(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.events.sync_private = false;
    let lab = start(dir.path(), config, Seed::default(), backend).await;
    let user = &lab.users[0];
    let soon = Utc::now() + chrono::Duration::days(2);
    let at = |d: chrono::DateTime<Utc>| EventTime::At(d);
    let mut private = Event::new("Doctor", at(soon), at(soon + chrono::Duration::hours(1)));
    private.private = true;
    let far = Utc::now() + chrono::Duration::days(800);
    let distant = Event::new("Far away", at(far), at(far + chrono::Duration::hours(1)));
    let public = Event::new("Review", at(soon), at(soon + chrono::Duration::hours(1)));
    let owner = Some(user.crm_id.as_str().to_owned());
    let records = [private, distant, public].map(|record| NewRecord {
        external_key: None,
        owner_id: owner.clone(),
        record,
    });
    for outcome in lab.crm.create_events(&records).await.unwrap() {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    pass(&lab).await;
    assert!(lab
        .exchange_item(user, ItemKind::Event, "Review")
        .await
        .is_ok());
    assert!(
        lab.exchange_item(user, ItemKind::Event, "Doctor")
            .await
            .is_err(),
        "private stays private"
    );
    assert!(
        lab.exchange_item(user, ItemKind::Event, "Far away")
            .await
            .is_err(),
        "outside the window"
    );
    let review = lab
        .exchange_item(user, ItemKind::Event, "Review")
        .await
        .unwrap();
    assert_eq!(
        Event::from_fields(&review.fields).unwrap().subject,
        "Review"
    );
}

async fn newest_wins_takes_the_later_edit(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.contacts.conflict = ConflictPolicy::NewestWins;
    let lab = start(dir.path(), config, small(), backend).await;
    pass(&lab).await;
    let user = &lab.users[0];
    let name = crm_contact(0, 3).last_name;
    lab.edit_crm(user, ItemKind::Contact, &name, |f| {
        f.insert("title".into(), json!("Earlier, in the CRM"));
    })
    .await
    .unwrap();
    // Both systems stamp whole seconds: the Outlook edit comes clearly later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lab.edit_exchange(user, ItemKind::Contact, &name, |f| {
        f.insert("title".into(), json!("Later, in Outlook"));
    })
    .await
    .unwrap();
    let report = pass(&lab).await;
    assert_eq!(report.users[0].counts.conflicts, 1);
    assert_eq!(
        lab.crm_record(user, ItemKind::Contact, &name)
            .await
            .unwrap()
            .fields["title"],
        "Later, in Outlook"
    );
}

async fn exchange_to_crm_creates_in_the_crm_and_puts_crm_edits_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.contacts.direction = Direction::ExchangeToCrm;
    let lab = start(dir.path(), config, small(), backend).await;
    pass(&lab).await;
    let user = &lab.users[0];
    // Outlook's contacts reach the CRM; the CRM's own contacts stay in the CRM only.
    let own = exchange_contact(0, 1).last_name;
    assert!(lab.crm_record(user, ItemKind::Contact, &own).await.is_ok());
    assert!(lab
        .exchange_item(user, ItemKind::Contact, &crm_contact(0, 5).last_name)
        .await
        .is_err());
    // A CRM edit of a copy is put back from Outlook.
    lab.edit_crm(user, ItemKind::Contact, &own, |f| {
        f.insert("title".into(), json!("Edited in the CRM"));
    })
    .await
    .unwrap();
    pass(&lab).await;
    assert_eq!(
        lab.crm_record(user, ItemKind::Contact, &own)
            .await
            .unwrap()
            .fields["title"],
        "Engineer"
    );
    assert!(lab.convergence().await.unwrap().converged());
}

async fn a_soql_condition_limits_which_crm_contacts_sync(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lab_configuration();
    config.contacts.direction = Direction::CrmToExchange;
    // The seeded contacts' first names rotate through a list; only Ada's sync.
    config.contact_condition = Some("FirstName = 'Ada'".into());
    let lab = start(dir.path(), config, small(), backend).await;
    pass(&lab).await;
    let user = &lab.users[0];
    for i in 0..10 {
        let contact = crm_contact(0, i);
        let copied = lab
            .exchange_item(user, ItemKind::Contact, &contact.last_name)
            .await
            .is_ok();
        assert_eq!(
            copied,
            contact.first_name == "Ada",
            "{} {}",
            contact.first_name,
            contact.last_name
        );
    }
    let cursors = lab.syncer.store.list_cursors().unwrap();
    assert!(
        cursors
            .iter()
            .any(|c| c.scope
                == exsync_store::CursorScope::crm_object("Contact where FirstName = 'Ada'")),
        "the condition has its own cursor: {cursors:?}"
    );
}

crate::on_each_backend!(
    crm_to_exchange_mirrors_the_crm_and_leaves_outlook_contacts_alone,
    exchange_wins_settles_a_both_sides_change_for_outlook,
    a_mass_delete_pauses_the_user_and_reset_rematches_without_duplicates,
    private_events_and_events_outside_the_window_stay_where_they_are,
    newest_wins_takes_the_later_edit,
    exchange_to_crm_creates_in_the_crm_and_puts_crm_edits_back,
    a_soql_condition_limits_which_crm_contacts_sync,
);
