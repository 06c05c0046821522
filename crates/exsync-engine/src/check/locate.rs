//! Where an `auto` user's mailbox is: the check asks on-premises Autodiscover as the service
//! does before the user's pass, so the admin sees the answer the sync will act on, and why it
//! cannot be had when Autodiscover fails.

use exsync_core::config::ExsyncConfig;
use exsync_ews::{Autodiscover, AutodiscoverConfig, MailboxLocation};

use super::exchange::{autodiscover_fix, domain_of, EwsReach};
use super::Outcome;

/// Where Autodiscover placed the mailbox.
#[derive(Debug)]
pub(super) struct Placed {
    /// In Exchange Online, so the mailbox is checked over Graph.
    pub online: bool,
    /// What Autodiscover answered, for the report.
    pub seen: String,
}

/// Why the mailbox could not be placed: how the user's check ends, what was seen and the fix.
pub(super) type NotPlaced = (Outcome, String, String);

/// Server text in a line of the report: one line, at most a few hundred characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(600)
        .collect()
}

/// Asks on-premises Autodiscover where `address`'s mailbox is, within the allow-list and over
/// the check's EWS connection (its caps and deadlines); a redirect into the tenant's routing
/// domain means online.
pub(super) async fn place(
    config: &ExsyncConfig,
    ews: Option<&EwsReach>,
    address: &str,
) -> Result<Placed, NotPlaced> {
    let (Some(x), Some(online)) = (&config.exchange, &config.exchange_online) else {
        // `config check` refuses `auto` without both sections.
        return Err((
            Outcome::Fail,
            "auto: locating a mailbox needs both [exchange] and [exchange_online]".to_owned(),
            "run `exsync config check` and fix what it names".to_owned(),
        ));
    };
    let Some(routing_domain) = online.routing_domain() else {
        return Err((
            Outcome::Fail,
            "auto: no routing domain to tell an online mailbox by".to_owned(),
            "set exchange_online.routing_domain, e.g. contoso.mail.onmicrosoft.com".to_owned(),
        ));
    };
    let Some(ews) = ews else {
        return Err((
            Outcome::Skip,
            "auto: not located: Exchange on premises could not be logged in to, and its \
             Autodiscover says where the mailbox is"
                .to_owned(),
            "fix the Exchange steps above and run the check again".to_owned(),
        ));
    };
    let allow = x.allow_list();
    let domains = allow.domains().to_vec();
    let autodiscover = Autodiscover::new(ews.client.http().clone(), AutodiscoverConfig::new(allow));
    match autodiscover.locate(address, &routing_domain).await {
        Ok(MailboxLocation::Online { target }) => Ok(Placed {
            online: true,
            seen: format!(
                "auto: Autodiscover places the mailbox in Exchange Online (routing address {})",
                one_line(&target)
            ),
        }),
        Ok(MailboxLocation::OnPremises(url)) => Ok(Placed {
            online: false,
            seen: format!(
                "auto: Autodiscover places the mailbox on premises (EWS at {})",
                one_line(url.as_str())
            ),
        }),
        Err(e) => {
            let seen = e.to_string();
            let fix = autodiscover_fix(&seen, &domain_of(address).unwrap_or_default(), &domains);
            Err((
                Outcome::Fail,
                format!(
                    "auto: Autodiscover could not place the mailbox, so it cannot sync: {}",
                    one_line(&seen)
                ),
                format!(
                    "{fix}; or name the mailbox's backend in [exchange_online] (`users` for \
                     online) instead of locating it automatically"
                ),
            ))
        }
    }
}
