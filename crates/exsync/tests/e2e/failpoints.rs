//! Crash safety at named points, on each mailbox backend (EWS and Graph): `exsync sync`, built
//! with the `failpoints` feature, is made to abort at each point of
//! `exsync_engine::failpoints::POINTS` during a first sync (the first and the second time the
//! point is reached). A clean pass afterwards must leave both sides
//! equal, with every seeded record present once on each side, and a further clean pass must
//! write nothing. Unlike `crash.rs`, which kills after a delay, every crash lands where it
//! says, on any machine.
//!
//! A second test has people work between the crash and the clean pass: on each side they edit
//! every copy exsync made, delete one copy, and delete one original. Every edit must be kept
//! and every delete must propagate, whatever step the crash hit (see `exsync-engine`'s
//! `sync/pass/recover.rs`).
//!
//! Without the feature the binary has no failpoints, so the test only says it was skipped
//! (`scripts/test` builds with `--features exsync/failpoints`).

#[cfg(not(all(unix, feature = "failpoints")))]
#[test]
fn failpoints_need_the_feature() {
    eprintln!(
        "skipped: exsync was built without its failpoints feature (or not on Unix); \
         run with --features exsync/failpoints"
    );
}

#[cfg(all(unix, feature = "failpoints"))]
mod crashes {
    use std::collections::BTreeMap;
    use std::os::unix::process::ExitStatusExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::Duration;

    use crate::{shared_key, MASTER_KEY};
    use exsync_core::plan::Change;
    use exsync_core::{ItemKind, Side};
    use exsync_engine::failpoints::{ENV, POINTS};
    use exsync_engine::sync::mailboxes::Backend;
    use exsync_lab::{crm_contact, exchange_contact, Lab, Seed};
    use serde_json::json;

    /// The signal `std::process::abort()` raises (the same number on Linux and macOS).
    const SIGABRT: i32 = 6;

    /// The lab's CRM connector leaves records stamped in the last second for the next pass.
    const SETTLE: Duration = Duration::from_millis(1100);

    const USERS: usize = 2;

    const SEED: Seed = Seed {
        crm_contacts: 12,
        crm_events: 5,
        exchange_contacts: 6,
        exchange_events: 3,
        invalid_record: false,
    };

    async fn lab(dir: &Path, backend: Backend) -> (Lab, PathBuf) {
        let mut options = crate::lab_options(dir, USERS, backend);
        options.crm_key_pem = Some(shared_key());
        // One user at a time, so each crash lands where its point says: with users in
        // parallel, another user's write may be between its side's answer and the journal's
        // record of it, a window of milliseconds no named point can aim at.
        options.concurrency = 1;
        let lab = Lab::start(options).await.unwrap();
        lab.seed(&SEED).await.unwrap();
        let config = dir.join("exsync.toml");
        lab.write_config(&config, MASTER_KEY).unwrap();
        (lab, config)
    }

    /// Runs `exsync sync` to its end, with `failpoint` armed when given.
    async fn sync(config: &Path, failpoint: Option<&str>) -> Output {
        // Records the previous pass wrote must be old enough for the CRM connector to read.
        tokio::time::sleep(SETTLE).await;
        let mut command = Command::new(env!("CARGO_BIN_EXE_exsync"));
        command
            .args(["sync", "--config"])
            .arg(config)
            .env("EXSYNC_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "error")
            .env_remove(ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(point) = failpoint {
            command.env(ENV, point);
        }
        let child = command.spawn().expect("exsync runs");
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap()
    }

    fn text(output: &Output) -> String {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// A clean pass that must succeed; returns its summary.
    async fn clean_sync(config: &Path, what: &str) -> String {
        let output = sync(config, None).await;
        assert!(
            output.status.success(),
            "{what}: exsync sync failed: {}",
            text(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Every mailbox item's id and ChangeKey: a write of any kind changes them.
    async fn mailboxes(lab: &Lab) -> BTreeMap<(String, ItemKind), Vec<(String, Option<String>)>> {
        let mut out = BTreeMap::new();
        for user in &lab.users {
            for kind in [ItemKind::Contact, ItemKind::Event] {
                let mut items: Vec<(String, Option<String>)> = lab
                    .syncer
                    .exchange
                    .read_folder(&user.key, kind)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|change| match change {
                        Change::Upsert(item) => Some((item.id.to_string(), item.version)),
                        _ => None,
                    })
                    .collect();
                items.sort();
                out.insert((user.key.to_string(), kind), items);
            }
        }
        out
    }

    async fn crash_then_recover(point: &str, time: u32, backend: Backend) {
        let armed = if time == 1 {
            point.to_owned()
        } else {
            format!("{point}:{time}")
        };
        let dir = tempfile::tempdir().unwrap();
        let (lab, config) = lab(dir.path(), backend).await;

        let crashed = sync(&config, Some(&armed)).await;
        assert_eq!(
            crashed.status.signal(),
            Some(SIGABRT),
            "{armed}: exsync sync should have aborted at the failpoint: {}",
            text(&crashed)
        );
        assert!(
            String::from_utf8_lossy(&crashed.stderr)
                .contains(&format!("failpoint {point} reached")),
            "{armed}: the abort was not the failpoint's: {}",
            text(&crashed)
        );

        clean_sync(&config, &format!("{armed}: the pass after the crash")).await;
        let check = lab.convergence().await.unwrap();
        assert!(
            check.converged(),
            "{armed}: the sides differ after the crash: {:#?}",
            check.problems
        );
        assert_eq!(check.unresolved, 0, "{armed}: records left unresolved");
        let seeded = USERS
            * (SEED.crm_contacts + SEED.crm_events + SEED.exchange_contacts + SEED.exchange_events);
        // Every seeded record is paired once, and each side holds exactly those: nothing lost
        // and nothing copied twice.
        assert_eq!(check.pairs, seeded, "{armed}: pairs");
        assert_eq!(check.crm_records, seeded, "{armed}: CRM records");
        assert_eq!(check.exchange_items, seeded, "{armed}: mailbox items");

        // Converged means the next pass has nothing to do.
        let before = mailboxes(&lab).await;
        let summary = clean_sync(&config, &format!("{armed}: the second clean pass")).await;
        let lines: Vec<&str> = summary
            .lines()
            .filter(|l| l.contains(": created "))
            .collect();
        assert_eq!(lines.len(), USERS, "{armed}: a summary per user: {summary}");
        for line in lines {
            assert!(
                line.ends_with("created 0 updated 0 deleted 0 conflicts 0 failures 0"),
                "{armed}: the second clean pass wrote: {summary}"
            );
        }
        assert_eq!(
            mailboxes(&lab).await,
            before,
            "{armed}: the second clean pass changed the mailboxes"
        );
        let check = lab.convergence().await.unwrap();
        assert!(check.converged(), "{armed}: {:#?}", check.problems);
        assert_eq!(check.pairs, seeded, "{armed}: pairs after the second pass");
    }

    async fn a_first_sync_crashed_at_each_failpoint_recovers_without_duplicates(backend: Backend) {
        for (point, _) in POINTS {
            // The first time a point is reached nothing of the pass is stored yet; the second
            // time, some user or kind has already written or committed before the crash.
            for time in [1, 2] {
                crash_then_recover(point, time, backend).await;
            }
        }
    }

    /// What people did between the crash and the clean pass, to check afterwards.
    #[derive(Default)]
    struct Work {
        /// (user, last name, field, value): edits made to a copy exsync made.
        edits: Vec<(usize, String, &'static str, String)>,
        /// (user, last name): contacts deleted on one side.
        deletes: Vec<(usize, String)>,
    }

    /// Whether the user's contact with that last name exists on `side`.
    async fn exists(lab: &Lab, side: Side, u: usize, name: &str) -> bool {
        let user = &lab.users[u];
        match side {
            Side::Crm => lab.crm_record(user, ItemKind::Contact, name).await.is_ok(),
            Side::Exchange => lab
                .exchange_item(user, ItemKind::Contact, name)
                .await
                .is_ok(),
        }
    }

    /// On each side, people edit every copy the crashed pass made, delete the last of them, and
    /// delete the first seeded original.
    async fn people_work(lab: &Lab) -> Work {
        let mut work = Work::default();
        for u in 0..USERS {
            let user = &lab.users[u];
            for (copies_on, seeded, name_of) in [
                (
                    Side::Exchange,
                    SEED.crm_contacts,
                    crm_contact as fn(usize, usize) -> _,
                ),
                (Side::Crm, SEED.exchange_contacts, exchange_contact),
            ] {
                let (field, value) = match copies_on {
                    Side::Exchange => ("department", format!("Outlook {u}")),
                    Side::Crm => ("title", format!("CRM {u}")),
                };
                for i in 1..seeded {
                    let name = name_of(u, i).last_name;
                    if !exists(lab, copies_on, u, &name).await {
                        continue;
                    }
                    if i == seeded - 1 {
                        // The last copy made is deleted where it was made: it must not be
                        // made again, and its original goes with it.
                        lab.delete(copies_on, user, ItemKind::Contact, &name)
                            .await
                            .unwrap();
                        work.deletes.push((u, name));
                        continue;
                    }
                    let v = value.clone();
                    lab.edit(copies_on, user, ItemKind::Contact, &name, |f| {
                        f.insert(field.into(), json!(v));
                    })
                    .await
                    .unwrap();
                    work.edits.push((u, name, field, value.clone()));
                }
                // The first seeded contact: its original is deleted where it was seeded, copied
                // or not.
                let name = name_of(u, 0).last_name;
                lab.delete(copies_on.other(), user, ItemKind::Contact, &name)
                    .await
                    .unwrap();
                work.deletes.push((u, name));
            }
        }
        work
    }

    async fn crash_then_people_then_recover(point: &str, backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let (lab, config) = lab(dir.path(), backend).await;
        let crashed = sync(&config, Some(point)).await;
        assert_eq!(
            crashed.status.signal(),
            Some(SIGABRT),
            "{point}: exsync sync should have aborted at the failpoint: {}",
            text(&crashed)
        );
        let work = people_work(&lab).await;

        let summary = clean_sync(&config, &format!("{point}: the pass after the crash")).await;
        for line in summary.lines().filter(|l| l.contains(": created ")) {
            assert!(
                line.contains(" conflicts 0 "),
                "{point}: only one side changed each record, yet: {summary}"
            );
        }
        for (u, name, field, value) in &work.edits {
            for side in [Side::Crm, Side::Exchange] {
                let user = &lab.users[*u];
                let item = match side {
                    Side::Crm => lab.crm_record(user, ItemKind::Contact, name).await,
                    Side::Exchange => lab.exchange_item(user, ItemKind::Contact, name).await,
                }
                .unwrap_or_else(|e| panic!("{point}: {name} is missing in {side}: {e}"));
                assert_eq!(
                    item.fields.get(*field),
                    Some(&json!(value)),
                    "{point}: the edit of {name}'s {field} was lost in {side}"
                );
            }
        }
        for (u, name) in &work.deletes {
            for side in [Side::Crm, Side::Exchange] {
                assert!(
                    !exists(&lab, side, *u, name).await,
                    "{point}: {name} was deleted but is in {side}"
                );
            }
        }
        let check = lab.convergence().await.unwrap();
        assert!(check.converged(), "{point}: {:#?}", check.problems);
        assert_eq!(check.unresolved, 0, "{point}: records left unresolved");
        let seeded = USERS
            * (SEED.crm_contacts + SEED.crm_events + SEED.exchange_contacts + SEED.exchange_events);
        let left = seeded - work.deletes.len();
        assert_eq!(
            (check.pairs, check.crm_records, check.exchange_items),
            (left, left, left),
            "{point}: each record once on each side, the deleted ones on neither"
        );
    }

    async fn people_working_after_a_crash_at_each_failpoint_lose_no_edit_and_no_delete(
        backend: Backend,
    ) {
        for (point, _) in POINTS {
            crash_then_people_then_recover(point, backend).await;
        }
    }

    crate::on_each_backend!(
        a_first_sync_crashed_at_each_failpoint_recovers_without_duplicates,
        people_working_after_a_crash_at_each_failpoint_lose_no_edit_and_no_delete,
    );
}
