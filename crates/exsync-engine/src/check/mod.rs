//! The connectivity analyzer: the checks an admin runs before and after go-live,
//! each reported pass / warn / fail with the evidence seen and, when something is wrong,
//! the fix. `exsync check` and the console's connection test both run [`run`]; the command
//! adds [`files::permissions`], about the files on the server it runs on.

mod crm;
mod exchange;
pub mod files;
mod graph;
mod graph_write;
mod locate;
mod net;
mod sync_folder;
mod test_contact;
pub mod users;

use std::fmt::Write as _;

use exsync_core::config::ExsyncConfig;
use serde::Serialize;

use crate::connect::graph::setup::GraphSecrets;
use crate::vault::SecretValue;

/// How a step ended. A report fails when a step failed, and warns when a step warned or was
/// skipped (something was left unverified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing wrong was seen.
    Pass,
    /// Syncing can work, but something should be fixed (the step's `fix` says what); the report
    /// does not fail.
    Warn,
    /// Syncing cannot work until this is fixed; the report fails and `exsync check` exits non-zero.
    Fail,
    /// Not run, because an earlier step failed or an input is missing.
    Skip,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// One check in a report: what was checked, how it ended, what was seen and, when something is
/// wrong, how to fix it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked, as the report titles it (for instance `State and key file permissions`).
    pub name: String,
    /// How the check ended.
    pub outcome: Outcome,
    /// What was seen, one fact per line.
    pub evidence: Vec<String>,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
    /// How long the step took, in milliseconds, where it was timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

impl Step {
    /// A step with no evidence and no fix yet.
    pub fn new(name: impl Into<String>, outcome: Outcome) -> Step {
        Step {
            name: name.into(),
            outcome,
            evidence: Vec::new(),
            fix: None,
            ms: None,
        }
    }

    /// Sets the time the step took, counted from `since`.
    pub fn took(mut self, since: std::time::Instant) -> Step {
        self.ms = Some(u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Adds one fact to the evidence.
    pub fn saw(mut self, fact: impl Into<String>) -> Step {
        self.evidence.push(fact.into());
        self
    }

    /// Sets what to do about a warning or failure, replacing any fix set before.
    pub fn fix(mut self, fix: impl Into<String>) -> Step {
        self.fix = Some(fix.into());
        self
    }
}

/// The result of a check run: its steps in order and the overall status. `exsync check --json`
/// prints it as JSON; [`Report::render`] is the text form.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The mailbox the run checked impersonation and folder access for; `None` when no mailbox was
    /// named.
    pub user: Option<String>,
    /// `fail` when any step failed, `warn` when any warned or was skipped, else `pass`.
    pub status: Outcome,
    /// The steps in the order they ran, Exchange's before the CRM's, after any step put first with
    /// [`Report::push_front`].
    pub steps: Vec<Step>,
    /// Each user the configurations assign (or the `--user` one), checked on both sides;
    /// left out of the JSON when the users could not be listed (a step then says why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<users::UserCheck>,
}

impl Report {
    fn new(user: Option<String>, steps: Vec<Step>) -> Report {
        Report::with_users(user, steps, Vec::new())
    }

    fn with_users(user: Option<String>, steps: Vec<Step>, users: Vec<users::UserCheck>) -> Report {
        Report {
            user,
            status: Report::status_of(&steps, &users),
            steps,
            users,
        }
    }

    fn status_of(steps: &[Step], users: &[users::UserCheck]) -> Outcome {
        let outcomes = || {
            steps
                .iter()
                .map(|s| s.outcome)
                .chain(users.iter().map(|u| u.outcome))
        };
        if outcomes().any(|o| o == Outcome::Fail) {
            Outcome::Fail
        } else if outcomes().any(|o| matches!(o, Outcome::Warn | Outcome::Skip)) {
            // A skipped step verified nothing: the report cannot say all is well.
            Outcome::Warn
        } else {
            Outcome::Pass
        }
    }

    /// Puts a step before the others (one checked before the network ones ran).
    pub fn push_front(&mut self, step: Step) {
        self.steps.insert(0, step);
        self.status = Report::status_of(&self.steps, &self.users);
    }

    /// Whether any step failed, which makes `exsync check` exit non-zero.
    pub fn failed(&self) -> bool {
        self.status == Outcome::Fail
    }

    /// The human form: one block per step.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step.ms {
                Some(ms) => {
                    let _ = writeln!(out, "{}  {}  ({ms} ms)", step.outcome.label(), step.name);
                }
                None => {
                    let _ = writeln!(out, "{}  {}", step.outcome.label(), step.name);
                }
            }
            for fact in &step.evidence {
                let _ = writeln!(out, "      {fact}");
            }
            if let Some(fix) = &step.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        users::render(&self.users, &mut out);
        let _ = write!(
            out,
            "\n{}: {} steps, {} passed, {} warned, {} failed, {} skipped",
            self.status.label(),
            self.steps.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Warn),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        );
        if !self.users.is_empty() {
            let _ = write!(out, "; {}", users::summary(&self.users));
        }
        out.push('\n');
        out
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == outcome).count()
    }
}

/// What the checks need: the configuration and the secrets from the vault.
pub struct Inputs {
    /// The configuration whose servers, credentials and settings are checked.
    pub config: ExsyncConfig,
    /// The service account's password; `None` when the vault holds none (or was not read), which
    /// fails the password step.
    pub exchange_password: Option<SecretValue>,
    /// The PEM key that signs the CRM's JWT bearer assertions, needed when `crm.auth` is JWT;
    /// `None` when the vault holds none.
    pub crm_private_key: Option<SecretValue>,
    /// The CRM connected app's client secret, needed for the client-credentials flow; `None` when
    /// the vault holds none.
    pub crm_client_secret: Option<SecretValue>,
    /// The Exchange Online app's certificate and key or client secret, needed when
    /// `[exchange_online]` is configured; each `None` when the vault holds none.
    pub graph: GraphSecrets,
    /// The mailbox to check impersonation and folder access for.
    pub user: Option<String>,
    /// The Kerberos login ([`Inputs::with_kerberos`]), or why it could not be set up.
    pub kerberos: Result<Option<exsync_ews::KerberosLogin>, String>,
}

impl Inputs {
    /// No secrets: for a check run where none can be read (no state database or no master
    /// key yet), which then says which one is missing rather than create it.
    pub fn without_secrets(config: ExsyncConfig, user: Option<String>) -> Inputs {
        Inputs {
            config,
            exchange_password: None,
            crm_private_key: None,
            crm_client_secret: None,
            graph: GraphSecrets::default(),
            user,
            kerberos: Ok(None),
        }
    }

    /// Adds the Kerberos login the configuration asks for, with the keytab from `vault`. Call
    /// before the async runtime starts: it points MIT's library at its krb5.conf through the
    /// environment.
    pub fn with_kerberos(mut self, vault: &crate::vault::Vault) -> Inputs {
        let Some(exchange) = &self.config.exchange else {
            // No Exchange on premises: nothing logs in with Kerberos.
            return self;
        };
        self.kerberos = vault
            .get(crate::vault::EXCHANGE_KEYTAB)
            .map_err(|e| e.to_string())
            .and_then(|keytab| {
                crate::connect::build::kerberos_login(exchange, keytab.as_ref())
                    .map_err(|e| e.to_string())
            });
        if self.exchange_password.is_none()
            && matches!(&self.kerberos, Ok(Some(login)) if login.keytab.is_some())
        {
            // The keytab is the credential; Kerberos sends no password.
            self.exchange_password = Some(SecretValue::new(String::new()));
        }
        self
    }

    /// Reads the secrets the checks need from the vault.
    pub fn from_vault(
        config: ExsyncConfig,
        vault: &crate::vault::Vault,
        user: Option<String>,
    ) -> Result<Inputs, crate::vault::VaultError> {
        Ok(Inputs {
            config,
            exchange_password: vault.get(crate::vault::EXCHANGE_PASSWORD)?,
            crm_private_key: vault.get(crate::vault::CRM_PRIVATE_KEY)?,
            crm_client_secret: vault.get(crate::vault::CRM_CLIENT_SECRET)?,
            graph: GraphSecrets::from_vault(vault)?,
            user,
            kerberos: Ok(None),
        })
    }
}

/// Runs every check, Exchange first (on-premises over EWS, then Exchange Online over Graph
/// when `[exchange_online]` is configured), then the CRM. When every mailbox is online
/// (`exchange_online.all_users`, or no `[exchange]` section), the EWS steps are not run.
pub async fn run(inputs: &Inputs) -> Report {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let online_only = inputs
        .config
        .exchange_online
        .as_ref()
        .is_some_and(|o| o.all_users);
    let (mut steps, ews) = match &inputs.config.exchange {
        Some(x) if !online_only => exchange::checks(inputs, x).await,
        _ => (Vec::new(), None),
    };
    let (graph_steps, graph, graph_probed) = graph::checks(inputs).await;
    steps.extend(graph_steps);
    let (crm_steps, crm) = crm::checks(inputs).await;
    steps.extend(crm_steps);
    let reach = users::Reach {
        crm: crm.as_ref(),
        ews: ews.as_ref(),
        graph: graph.as_ref(),
        graph_probed: &graph_probed,
    };
    match users::checks(inputs, reach).await {
        Ok(users) => Report::with_users(inputs.user.clone(), steps, users),
        Err(step) => {
            steps.push(step);
            Report::new(inputs.user.clone(), steps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_step_makes_the_report_warn_not_pass() {
        let step = |outcome| Step::new("a step", outcome);
        let status = |outcomes: &[Outcome]| {
            Report::new(None, outcomes.iter().map(|o| step(*o)).collect()).status
        };
        assert_eq!(status(&[Outcome::Pass, Outcome::Pass]), Outcome::Pass);
        assert_eq!(status(&[Outcome::Pass, Outcome::Skip]), Outcome::Warn);
        assert_eq!(status(&[Outcome::Warn, Outcome::Pass]), Outcome::Warn);
        assert_eq!(status(&[Outcome::Fail, Outcome::Skip]), Outcome::Fail);
        let mut report = Report::new(None, vec![step(Outcome::Pass)]);
        report.push_front(step(Outcome::Skip));
        assert_eq!(report.status, Outcome::Warn);
        assert!(!report.failed());
    }
}
