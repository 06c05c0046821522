//! The `auto` lookup the service uses: on-premises Autodiscover, asked within the allow-list
//! and under the EWS client's caps and deadlines; a redirect to the tenant's routing domain
//! means Exchange Online (nothing is sent there).

use exsync_core::UserKey;
use exsync_ews::{Autodiscover, MailboxLocation};

use crate::sync::locate::{Locate, LocateFuture, Located};
use crate::sync::mailboxes::Backend;

/// Locates mailboxes with on-premises Autodiscover.
pub struct AutodiscoverLocator {
    autodiscover: Autodiscover,
    routing_domain: String,
}

impl AutodiscoverLocator {
    /// A locator asking `autodiscover`, for which a redirect into `routing_domain` means
    /// online.
    pub fn new(autodiscover: Autodiscover, routing_domain: impl Into<String>) -> Self {
        AutodiscoverLocator {
            autodiscover,
            routing_domain: routing_domain.into(),
        }
    }
}

impl Locate for AutodiscoverLocator {
    fn locate<'a>(&'a self, user: &'a UserKey) -> LocateFuture<'a> {
        Box::pin(async move {
            match self
                .autodiscover
                .locate(user.as_str(), &self.routing_domain)
                .await
            {
                Ok(MailboxLocation::Online { target }) => Ok(Located {
                    backend: Backend::Graph,
                    evidence: format!("Autodiscover: routing address {target}"),
                }),
                Ok(MailboxLocation::OnPremises(url)) => Ok(Located {
                    backend: Backend::Ews,
                    evidence: format!("Autodiscover: EWS URL {url}"),
                }),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
