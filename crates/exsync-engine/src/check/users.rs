//! Every assigned user on both sides: the active CRM user the pairing rule matches to the
//! mailbox, and the mailbox itself (impersonation, the calendar and the sync folder over EWS;
//! the app's scope and the folders over Graph), a few users at a time, each with the reason
//! and the fix when something stands in the way of their sync.

use std::collections::{BTreeMap, BTreeSet};

use exsync_core::config::{
    effective_configuration, AssignedBy, ExsyncConfig, MailboxRouting, SyncConfiguration,
};
use exsync_core::UserKey;
use exsync_ews::EwsError;
use exsync_graph::GraphClient;
use exsync_salesforce::{SalesforceClient, SfUser};
use futures_util::StreamExt;
use serde::Serialize;

use super::exchange::{impersonation_command, response_code, EwsReach};
use super::{Inputs, Outcome, Step};

/// Mailboxes probed at once: enough to get through thousands of users in minutes, few enough
/// that the check does not look like a burst to Exchange's throttling.
pub const AT_ONCE: usize = 4;

/// Up to this many users every line is printed; above it passing users are counted and only
/// the others listed, so the ones that need the admin stay readable.
pub const LIST_ALL_MAX: usize = 25;

/// The name of the step that stands in for the users when they cannot be listed.
pub(super) const ASSIGNED: &str = "Assigned users";

/// One assigned user, checked on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct UserCheck {
    /// The mailbox address (the configuration's key for the user), or for a CRM user whose
    /// pairing field names no mailbox, `CRM user <Username>`.
    pub user: String,
    /// How the user's checks ended, the worst of both sides.
    pub outcome: Outcome,
    /// The configuration and how it came to the user (`sales, via group Sales User`).
    pub configuration: String,
    /// What was seen, CRM side first.
    pub evidence: Vec<String>,
    /// What to do, when the outcome is not a pass.
    pub fix: Option<String>,
}

/// The connections the earlier steps opened; `None` where they failed.
pub(super) struct Reach<'a> {
    pub crm: Option<&'a SalesforceClient>,
    pub ews: Option<&'a EwsReach>,
    pub graph: Option<&'a GraphClient>,
    /// The online mailboxes the Exchange Online steps already probed.
    pub graph_probed: &'a super::graph::Probed,
}

/// Who the configurations assign, as far as the CRM's users tell.
#[derive(Debug)]
struct Assigned {
    user: String,
    configuration: String,
    /// The matched CRM user, or why there is none (and the fix).
    crm: Result<String, (String, String)>,
    /// Set when the user can be probed in Exchange.
    key: Option<UserKey>,
}

/// The users checks, or the step that says why they could not run.
pub(super) async fn checks(inputs: &Inputs, reach: Reach<'_>) -> Result<Vec<UserCheck>, Step> {
    let config = &inputs.config;
    let Some(crm) = reach.crm else {
        return Err(Step::new(ASSIGNED, Outcome::Skip)
            .saw("the CRM could not be reached, so who is assigned is not known")
            .fix("fix the CRM steps above and run the check again"));
    };
    let users = match crm.users().await {
        Ok(users) => users,
        Err(e) => {
            return Err(Step::new(ASSIGNED, Outcome::Fail)
                .saw(format!("reading the CRM's users: {e}"))
                .fix(format!(
                    "the integration user must be able to read User and its field {}",
                    config.crm.mailbox_field
                )))
        }
    };
    let only = inputs.user.as_deref().map(UserKey::from_email);
    let assigned = assigned(config, &users, only.as_ref());
    if assigned.is_empty() {
        let seen = match &only {
            Some(user) => format!("no active configuration assigns {user}"),
            None => "no active configuration assigns anyone".to_owned(),
        };
        return Err(Step::new(ASSIGNED, Outcome::Warn)
            .saw(seen)
            .fix("assign users or groups in [configurations.<name>] (users, groups)"));
    }
    let mut checked: Vec<UserCheck> = futures_util::stream::iter(assigned)
        .map(|a| probe(config, &reach, a))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    checked.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(checked)
}

/// The users active configurations assign: active CRM users matched by the pairing rule, and
/// addresses a configuration lists that no active CRM user holds. With `only`, that user alone.
fn assigned(config: &ExsyncConfig, users: &[SfUser], only: Option<&UserKey>) -> Vec<Assigned> {
    let field = config.crm.mailbox_field.as_str();
    let configurations = &config.configurations;
    let mut out = Vec::new();
    let mut active = BTreeSet::new();
    let mut inactive: BTreeMap<UserKey, &SfUser> = BTreeMap::new();
    for user in users {
        let groups = BTreeSet::from([user.profile.clone()]);
        let key = UserKey::parse(&user.mailbox);
        if !user.active {
            if let Ok(key) = key {
                inactive.insert(key, user);
            }
            continue;
        }
        let key = match key {
            Ok(key) => key,
            Err(why) => {
                // Only a group can assign a user whose field names no mailbox.
                let Some((c, _)) =
                    effective_configuration(configurations, &UserKey::new(""), &groups)
                else {
                    continue;
                };
                if only.is_some() {
                    continue;
                }
                let value = if user.mailbox.is_empty() {
                    "is empty".to_owned()
                } else {
                    format!("`{}` cannot name a mailbox: {why}", shown(&user.mailbox))
                };
                out.push(Assigned {
                    user: format!("CRM user {}", shown(&user.username)),
                    configuration: format!("{}, via group {}", c.name, user.profile),
                    crm: Err((
                        format!("{} ({}): {field} {value}", shown(&user.name), user.id),
                        format!(
                            "set the user's {field} to their mailbox's primary SMTP address \
                             (Setup → Users), or pair by another field with crm.mailbox_field"
                        ),
                    )),
                    key: None,
                });
                continue;
            }
        };
        if only.is_some_and(|o| *o != key) {
            continue;
        }
        active.insert(key.clone());
        if let Some((c, by)) = effective_configuration(configurations, &key, &groups) {
            out.push(Assigned {
                user: key.as_str().to_owned(),
                configuration: how(c, by, &user.profile),
                crm: Ok(format!(
                    "CRM user {} ({}, profile {}) has it in their {field}",
                    shown(&user.name),
                    user.id,
                    shown(&user.profile)
                )),
                key: Some(key),
            });
        }
    }
    for c in configurations.iter().filter(|c| c.active) {
        for key in &c.users {
            if active.contains(key) || only.is_some_and(|o| o != key) {
                continue;
            }
            active.insert(key.clone());
            let why = match inactive.get(key) {
                Some(user) => (
                    format!(
                        "the CRM user with it in their {field}, {} ({}), is inactive",
                        shown(&user.name),
                        user.id
                    ),
                    format!(
                        "activate the CRM user, or remove {key} from configurations.{}.users",
                        c.name
                    ),
                ),
                None => (
                    format!("no active CRM user has {key} in their {field}"),
                    format!(
                        "set {field} of the user's CRM record to {key}, or pair by another field \
                         with crm.mailbox_field, or remove {key} from configurations.{}.users",
                        c.name
                    ),
                ),
            };
            out.push(Assigned {
                user: key.as_str().to_owned(),
                configuration: format!("{}, assigned individually", c.name),
                crm: Err(why),
                key: None,
            });
        }
    }
    out
}

fn how(c: &SyncConfiguration, by: AssignedBy, profile: &str) -> String {
    match by {
        AssignedBy::Individual => format!("{}, assigned individually", c.name),
        AssignedBy::Group => format!("{}, via group {}", c.name, shown(profile)),
    }
}

/// CRM text in a line of the report: one line, cut short.
fn shown(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    if text.chars().count() > 80 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

async fn probe(config: &ExsyncConfig, reach: &Reach<'_>, a: Assigned) -> UserCheck {
    let mut check = UserCheck {
        user: a.user,
        outcome: Outcome::Pass,
        configuration: a.configuration,
        evidence: Vec::new(),
        fix: None,
    };
    match a.crm {
        Ok(seen) => check.evidence.push(seen),
        Err((seen, fix)) => {
            check.outcome = Outcome::Fail;
            check.evidence.push(seen);
            check.fix = Some(fix);
            return check;
        }
    }
    let Some(key) = a.key else {
        return check;
    };
    let mut online = config
        .exchange_online
        .as_ref()
        .filter(|o| o.serves(key.as_str()) || config.exchange.is_none());
    if let Some(o) = config
        .exchange_online
        .as_ref()
        .filter(|o| config.exchange.is_some() && o.routing_of(key.as_str()) == MailboxRouting::Auto)
    {
        match super::locate::place(config, reach.ews, key.as_str()).await {
            Ok(placed) => {
                check.evidence.push(placed.seen);
                online = placed.online.then_some(o);
            }
            Err((outcome, seen, fix)) => {
                check.outcome = outcome;
                check.evidence.push(seen);
                check.fix = Some(fix);
                return check;
            }
        }
    }
    let (outcome, seen, fix) = match online {
        Some(o) => match (reach.graph_probed.get(&key), reach.graph) {
            (Some(probed), _) => probed.clone(),
            (None, Some(client)) => {
                super::graph::probe_mailbox(
                    client,
                    &o.client_id,
                    key.as_str(),
                    super::graph::SyncFolder::of(config),
                )
                .await
            }
            (None, None) => not_reached("Exchange Online"),
        },
        None => match reach.ews {
            Some(ews) => ews_mailbox(ews, config, key.as_str()).await,
            None => not_reached("Exchange"),
        },
    };
    check.outcome = outcome;
    check.evidence.extend(seen);
    check.fix = fix;
    check
}

fn not_reached(what: &str) -> (Outcome, Vec<String>, Option<String>) {
    (
        Outcome::Skip,
        vec![format!(
            "the mailbox was not checked: {what} could not be logged in to"
        )],
        Some("fix the steps above and run the check again".to_owned()),
    )
}

/// Impersonation and the calendar, then the contact sync folder, read only: a check makes
/// no folder in the mailboxes of every assigned user.
async fn ews_mailbox(
    ews: &EwsReach,
    config: &ExsyncConfig,
    address: &str,
) -> (Outcome, Vec<String>, Option<String>) {
    let svc = config
        .exchange
        .as_ref()
        .map(|x| x.service_account.as_str())
        .unwrap_or_default();
    let mailbox = ews.client.mailbox(address, ews.url.clone());
    if let Err(e) = mailbox.calendar_folder().await {
        let code = response_code(&e).map(str::to_owned);
        let (seen, fix) = match (&e, code.as_deref()) {
            (_, Some(c)) if c.starts_with("ErrorImpersonat") => (
                format!("{c}: {svc} may not impersonate {address}"),
                impersonation_command(svc),
            ),
            (_, Some(c @ ("ErrorNonExistentMailbox" | "ErrorInvalidExchangeImpersonationHeaderData"))) => (
                format!("{c}: no mailbox has the primary address {address}"),
                format!(
                    "check the address with Get-Mailbox -Identity {address} | fl PrimarySmtpAddress; \
                     the CRM user's {} must hold the mailbox's primary SMTP address",
                    config.crm.mailbox_field
                ),
            ),
            (EwsError::Unauthorized { .. }, _) => (
                e.to_string(),
                "the server refused the service account: `exsync secrets set exchange.password`".to_owned(),
            ),
            _ => (
                e.to_string(),
                format!(
                    "check the ApplicationImpersonation assignment: Get-ManagementRoleAssignment -Role ApplicationImpersonation -RoleAssignee {svc}"
                ),
            ),
        };
        return (Outcome::Fail, vec![seen], Some(fix));
    }
    let mut seen = vec![format!(
        "EWS: {svc} impersonates {address}; calendar readable"
    )];
    let name = &config.sync_folder;
    match mailbox.existing_contacts_folder().await {
        Ok(Some(_)) => seen.push(format!("contact folder {name} found under Contacts")),
        Ok(None) => seen.push(format!(
            "contact folder {name} not there yet: the first pass creates it"
        )),
        Err(e) => {
            seen.push(format!("looking for Contacts/{name}: {e}"));
            return (
                Outcome::Fail,
                seen,
                Some(format!(
                    "check that {svc} may read and create folders under Contacts in {address}"
                )),
            );
        }
    }
    (Outcome::Pass, seen, None)
}

/// The users part of the text report: failures and warnings in full, passes one line each up
/// to [`LIST_ALL_MAX`] users and counted above it, then a summary line.
pub(super) fn render(users: &[UserCheck], out: &mut String) {
    use std::fmt::Write as _;
    if users.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{ASSIGNED} ({}, checked {AT_ONCE} at a time)",
        users.len()
    );
    let all = users.len() <= LIST_ALL_MAX;
    for u in users {
        let listed = all || matches!(u.outcome, Outcome::Fail | Outcome::Warn);
        if !listed {
            continue;
        }
        let _ = writeln!(
            out,
            "{}  {} ({}): {}",
            u.outcome.label(),
            u.user,
            u.configuration,
            u.evidence.join("; ")
        );
        if let Some(fix) = &u.fix {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    let unlisted = users
        .iter()
        .filter(|u| !all && !matches!(u.outcome, Outcome::Fail | Outcome::Warn))
        .count();
    if unlisted > 0 {
        let _ = writeln!(
            out,
            "      ({unlisted} users that passed or were not checked are not listed; --json lists every one)"
        );
    }
}

/// The users' part of the report's last line.
pub(super) fn summary(users: &[UserCheck]) -> String {
    let count = |o: Outcome| users.iter().filter(|u| u.outcome == o).count();
    format!(
        "{} assigned users, {} passed, {} warned, {} failed, {} not checked",
        users.len(),
        count(Outcome::Pass),
        count(Outcome::Warn),
        count(Outcome::Fail),
        count(Outcome::Skip)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> ExsyncConfig {
        let text = format!(
            "[exchange]\nservice_account = \"svc@x.test\"\n[crm]\nclient_id = \"c\"\nusername = \"int@x.test\"\n{extra}\n\
             [configurations.sales]\nusers = [\"ann@x.test\", \"gone@x.test\", \"old@x.test\"]\ngroups = [\"Sales\"]\n"
        );
        exsync_core::config::parse(&text, Path::new("/etc/exsync/exsync.toml")).unwrap()
    }

    fn user(id: &str, mailbox: &str, profile: &str, active: bool) -> SfUser {
        SfUser {
            id: id.into(),
            username: format!("{id}@crm.test"),
            email: format!("{id}@home.test"),
            mailbox: mailbox.into(),
            name: format!("User {id}"),
            active,
            profile: profile.into(),
            time_zone: String::new(),
        }
    }

    #[test]
    fn each_assigned_user_is_listed_with_the_crm_side_of_the_pairing() {
        let config = config("mailbox_field = \"Username\"");
        let users = [
            user("005a", "ann@x.test", "Other", true),
            user("005b", "bo@x.test", "Sales", true),
            user("005c", "cy@x.test", "Support", true),
            user("005d", "old@x.test", "Sales", false),
            user("005e", "", "Sales", true),
            user("005f", "", "Support", true),
        ];
        let found = assigned(&config, &users, None);
        let lines: Vec<(String, String, bool)> = found
            .iter()
            .map(|a| {
                let said = match &a.crm {
                    Ok(seen) => seen.clone(),
                    Err((seen, fix)) => format!("{seen} / {fix}"),
                };
                (a.user.clone(), said, a.key.is_some())
            })
            .collect();
        let text = format!("{lines:#?}");
        assert_eq!(found.len(), 5, "{text}");
        let line = |user: &str| lines.iter().find(|l| l.0 == user).unwrap();
        assert!(
            line("ann@x.test").1.contains("has it in their Username"),
            "{text}"
        );
        assert!(line("ann@x.test").2);
        assert!(line("bo@x.test").2, "assigned through the group");
        assert!(
            line("gone@x.test")
                .1
                .starts_with("no active CRM user has gone@x.test in their Username"),
            "{text}"
        );
        assert!(line("old@x.test").1.contains("is inactive"), "{text}");
        assert!(
            line("CRM user 005e@crm.test")
                .1
                .contains("Username is empty"),
            "{text}"
        );
        assert!(
            !text.contains("cy@x.test") && !text.contains("005f"),
            "users no configuration assigns are no concern here: {text}"
        );

        let only = assigned(&config, &users, Some(&UserKey::from_email("gone@x.test")));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].user, "gone@x.test");
    }

    #[test]
    fn many_users_list_the_failures_and_count_the_passes() {
        let mut users: Vec<UserCheck> = (0..LIST_ALL_MAX + 10)
            .map(|i| UserCheck {
                user: format!("u{i:03}@x.test"),
                outcome: Outcome::Pass,
                configuration: "sales, via group Sales".into(),
                evidence: vec!["fine".into()],
                fix: None,
            })
            .collect();
        users[3].outcome = Outcome::Fail;
        users[3].evidence = vec!["no active CRM user has u003@x.test in their Email".into()];
        users[3].fix = Some("set Email".into());
        let mut out = String::new();
        render(&users, &mut out);
        assert!(
            out.contains("FAIL  u003@x.test (sales, via group Sales): no active CRM user"),
            "{out}"
        );
        assert!(out.contains("      fix: set Email"), "{out}");
        assert!(!out.contains("PASS  u000@x.test"), "{out}");
        assert!(
            out.contains("(34 users that passed or were not checked are not listed"),
            "{out}"
        );
        assert_eq!(
            summary(&users),
            "35 assigned users, 34 passed, 0 warned, 1 failed, 0 not checked"
        );

        let mut few = String::new();
        render(&users[..3], &mut few);
        assert_eq!(
            few.lines().filter(|l| l.starts_with("PASS  ")).count(),
            3,
            "{few}"
        );
    }
}
