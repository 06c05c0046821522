//! The CRM steps: a token from the org with the configured credentials, and how much of the
//! daily API allowance is left.

use exsync_core::config::CrmAuth;
use exsync_salesforce::{AuthConfig, Error, SalesforceClient, SalesforceConfig, Secret};

use super::{Inputs, Outcome, Step};

const TOKEN: &str = "CRM token";
const ALLOWANCE: &str = "CRM API allowance";

/// The CRM steps, and the client that got a token, for the per-user checks.
pub(super) async fn checks(inputs: &Inputs) -> (Vec<Step>, Option<SalesforceClient>) {
    let crm = &inputs.config.crm;
    let auth = match crm.auth {
        CrmAuth::Jwt => {
            let key = match (&inputs.crm_private_key, &crm.private_key_file) {
                (Some(k), _) => Ok(k.expose().as_bytes().to_vec()),
                (None, Some(path)) => std::fs::read(path).map_err(|e| {
                    format!("cannot read crm.private_key_file {}: {e}", path.display())
                }),
                (None, None) => Err(
                    "no private key: neither crm.private_key_file nor a stored crm.private_key"
                        .to_owned(),
                ),
            };
            let username = crm.username.clone().unwrap_or_default();
            match key {
                Ok(key) => AuthConfig::JwtBearer {
                    client_id: crm.client_id.clone(),
                    username,
                    private_key_pem: Secret::new(key),
                    audience: crm.login_url.clone(),
                },
                Err(reason) => {
                    return (
                        vec![
                            Step::new(TOKEN, Outcome::Fail)
                                .saw(reason)
                                .fix("upload the connected app's private key on the CRM connection page, or `exsync secrets set crm.private_key < key.pem`"),
                            Step::new(ALLOWANCE, Outcome::Skip),
                        ],
                        None,
                    );
                }
            }
        }
        CrmAuth::ClientCredentials => match &inputs.crm_client_secret {
            Some(secret) => AuthConfig::ClientCredentials {
                client_id: crm.client_id.clone(),
                client_secret: Secret::new(secret.expose().as_bytes().to_vec()),
            },
            None => {
                return (
                    vec![
                        Step::new(TOKEN, Outcome::Fail)
                            .saw("no client secret is stored")
                            .fix("`exsync secrets set crm.client_secret`, or enter it on the CRM connection page"),
                        Step::new(ALLOWANCE, Outcome::Skip),
                    ],
                    None,
                );
            }
        },
    };
    let mut config = SalesforceConfig::new(crm.login_url.clone(), auth);
    config.max_retries = 1;
    config.max_reply_bytes = inputs.config.network.max_reply_bytes();
    config.timeout = std::time::Duration::from_secs(20);
    config.mailbox_field = crm.mailbox_field.clone();
    if let Some(ca) = &crm.ca_file {
        match std::fs::read(ca) {
            Ok(pem) => config.ca_pem = Some(pem),
            Err(e) => {
                return (
                    vec![Step::new(TOKEN, Outcome::Fail)
                        .saw(format!("cannot read crm.ca_file {}: {e}", ca.display()))
                        .fix("correct crm.ca_file")],
                    None,
                );
            }
        }
    }
    let client = match SalesforceClient::new(config) {
        Ok(c) => c,
        Err(e) => {
            return (
                vec![Step::new(TOKEN, Outcome::Fail)
                    .saw(e.to_string())
                    .fix("check the [crm] section")],
                None,
            );
        }
    };
    let mut steps = Vec::new();
    let started = std::time::Instant::now();
    match client.instance_url().await {
        Ok(instance) => steps.push(
            Step::new(TOKEN, Outcome::Pass)
                .saw(format!(
                    "{} issued a token ({}) for client {}; instance {instance}",
                    crm.login_url,
                    crm.auth.as_str(),
                    crm.client_id
                ))
                .took(started),
        ),
        Err(e) => {
            let fix = match &e {
                Error::Auth { .. } => "check crm.client_id and crm.username, that the connected app holds the certificate of the uploaded private key, and that the user is pre-authorized for the app",
                Error::Transport(_) => "check that crm.login_url is reachable from this server (proxy, firewall, crm.ca_file)",
                _ => "check the [crm] section",
            };
            steps.push(Step::new(TOKEN, Outcome::Fail).saw(e.to_string()).fix(fix));
            steps.push(Step::new(ALLOWANCE, Outcome::Skip));
            return (steps, None);
        }
    }
    let started = std::time::Instant::now();
    let allowance = match client.refresh_api_usage().await {
        Ok(usage) => {
            let left = usage.max.saturating_sub(usage.used);
            let reserve = (usage.max as f64 * crm.api_reserve).ceil() as u64;
            let step = Step::new(ALLOWANCE, Outcome::Pass).saw(format!(
                "{} of {} daily API calls used, {left} left; exsync leaves {reserve} ({:.0}%) for others",
                usage.used,
                usage.max,
                crm.api_reserve * 100.0
            ));
            if left <= reserve {
                Step { outcome: Outcome::Warn, ..step }
                    .fix("the allowance is down to the reserve: sync pauses until it recovers; lower crm.api_reserve or raise the org's allowance")
            } else {
                step
            }
        }
        Err(e) => Step::new(ALLOWANCE, Outcome::Fail)
            .saw(e.to_string())
            .fix("the integration user needs the API Enabled permission"),
    };
    steps.push(allowance.took(started));
    (steps, Some(client))
}
