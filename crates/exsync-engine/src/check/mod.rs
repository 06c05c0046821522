//! The connectivity analyzer: the checks an admin runs before and after go-live,
//! each reported pass / warn / fail with the evidence seen and, when something is wrong,
//! the fix. `exsync check` and the console's connection test both run [`run`]; the command
//! adds [`files::permissions`], about the files on the server it runs on.

mod crm;
mod exchange;
pub mod files;
mod net;

use std::fmt::Write as _;

use exsync_core::config::ExsyncConfig;
use serde::Serialize;

use crate::vault::SecretValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Warn,
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

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub outcome: Outcome,
    /// What was seen, one fact per line.
    pub evidence: Vec<String>,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

impl Step {
    pub fn new(name: impl Into<String>, outcome: Outcome) -> Step {
        Step {
            name: name.into(),
            outcome,
            evidence: Vec::new(),
            fix: None,
        }
    }

    pub fn saw(mut self, fact: impl Into<String>) -> Step {
        self.evidence.push(fact.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Step {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub user: Option<String>,
    /// `fail` when any step failed, `warn` when any warned, else `pass`.
    pub status: Outcome,
    pub steps: Vec<Step>,
}

impl Report {
    fn new(user: Option<String>, steps: Vec<Step>) -> Report {
        Report {
            user,
            status: Report::status_of(&steps),
            steps,
        }
    }

    fn status_of(steps: &[Step]) -> Outcome {
        if steps.iter().any(|s| s.outcome == Outcome::Fail) {
            Outcome::Fail
        } else if steps.iter().any(|s| s.outcome == Outcome::Warn) {
            Outcome::Warn
        } else {
            Outcome::Pass
        }
    }

    /// Puts a step before the others (one checked before the network ones ran).
    pub fn push_front(&mut self, step: Step) {
        self.steps.insert(0, step);
        self.status = Report::status_of(&self.steps);
    }

    pub fn failed(&self) -> bool {
        self.status == Outcome::Fail
    }

    /// The human form: one block per step.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let _ = writeln!(out, "{}  {}", step.outcome.label(), step.name);
            for fact in &step.evidence {
                let _ = writeln!(out, "      {fact}");
            }
            if let Some(fix) = &step.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        let _ = writeln!(
            out,
            "\n{}: {} steps, {} passed, {} warned, {} failed, {} skipped",
            self.status.label(),
            self.steps.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Warn),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        );
        out
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.steps.iter().filter(|s| s.outcome == outcome).count()
    }
}

/// What the checks need: the configuration and the secrets from the vault.
pub struct Inputs {
    pub config: ExsyncConfig,
    pub exchange_password: Option<SecretValue>,
    pub crm_private_key: Option<SecretValue>,
    pub crm_client_secret: Option<SecretValue>,
    /// The mailbox to check impersonation and folder access for.
    pub user: Option<String>,
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
            user,
        }
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
            user,
        })
    }
}

/// Runs every check, Exchange first, then the CRM.
pub async fn run(inputs: &Inputs) -> Report {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut steps = exchange::checks(inputs).await;
    steps.extend(crm::checks(inputs).await);
    Report::new(inputs.user.clone(), steps)
}
