//! Autodiscover with its security rules (`ARCHITECTURE.md`, "Credentials"): the configured EWS URL
//! wins; candidates come only from the mailbox's own domain; credentials go only over verified
//! https and only to hosts in the allow-list; the plain-http step is an unauthenticated GET whose
//! https Location is followed only into the allow-list; at most 10 redirects, loops detected;
//! results cached with a TTL.
//!
//! Addresses and URLs from answers are parsed, never matched as strings: a host is only ever the
//! one a URL parser (the same one that then connects) reads out of a URL, and a domain is only ever
//! a valid DNS name. No request of any kind, anonymous or not, goes to a host outside the
//! allow-list, and each candidate (with its redirects) gets one request timeout in all.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

pub(crate) use exsync_core::{dns_name, AllowList};

use crate::dns::{SrvResolver, StaticSrv};
use crate::error::EwsError;
use crate::transport::conn::Deadline;
use crate::transport::HttpClient;
use crate::xml::{escape, parse, Element};

pub(crate) const MAX_REDIRECTS: usize = 10;
/// Restarts with a new address (`redirectAddr`) per lookup.
pub(crate) const MAX_ADDRESS_REDIRECTS: usize = 2;

/// A mailbox address split at its one `@`, the domain a valid DNS name (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub local: String,
    pub domain: String,
}

impl Address {
    pub(crate) fn parse(text: &str) -> Result<Address, String> {
        let text = text.trim();
        let (local, domain) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not an e-mail address (no @)"))?;
        if local.is_empty()
            || local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>'))
        {
            return Err(format!(
                "{text:?} is not an e-mail address (bad local part)"
            ));
        }
        let domain = dns_name(domain).ok_or_else(|| {
            format!("{text:?} is not an e-mail address: {domain:?} is not a domain name")
        })?;
        Ok(Address {
            local: local.to_owned(),
            domain,
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The host a URL will connect to, as the URL parser reads it (lower-cased, without a
/// trailing dot): the only host an allow-list decision may be made on.
pub(crate) fn url_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

/// Where Autodiscover may look and how long an answer is trusted.
#[derive(Clone)]
pub struct AutodiscoverConfig {
    /// An EWS URL the admin configured: used as is, nothing is discovered.
    pub configured: Option<Url>,
    /// The service account's domain plus the admin's other domains to sync.
    pub allow: AllowList,
    /// How long a discovered EWS URL is reused before it is looked up again.
    pub ttl: Duration,
    /// Answers the `_autodiscover._tcp` SRV lookup, the last candidate tried.
    pub srv: Arc<dyn SrvResolver>,
    /// Port for the candidate URLs (443 in production; tests use the simulator's).
    pub https_port: Option<u16>,
    /// Port for the plain-HTTP redirect candidate, which only ever yields a redirect.
    pub http_port: Option<u16>,
}

impl AutodiscoverConfig {
    /// Discovery limited to the `allow`ed domains, with a day's cache and no SRV answers.
    pub fn new(allow: AllowList) -> Self {
        AutodiscoverConfig {
            configured: None,
            allow,
            ttl: Duration::from_secs(24 * 3600),
            srv: Arc::new(StaticSrv::default()),
            https_port: None,
            http_port: None,
        }
    }
}

/// Finds each mailbox's EWS URL, following redirects only within the allow-list, and caches it.
pub struct Autodiscover {
    http: Arc<HttpClient>,
    config: AutodiscoverConfig,
    cache: Mutex<HashMap<String, (Url, Instant)>>,
}

/// Where on-premises Autodiscover places a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxLocation {
    /// On premises, reached at this EWS URL.
    OnPremises(Url),
    /// In Exchange Online: Autodiscover redirected to the tenant's routing address (a remote
    /// mailbox's `targetAddress`, `user@tenant.mail.onmicrosoft.com`). Nothing is sent there.
    Online {
        /// The routing address Autodiscover answered with.
        target: String,
    },
}

/// What one Autodiscover endpoint said.
enum Answer {
    Ews(Url),
    RedirectAddr(String),
}

/// The per-lookup redirect budget and the places already seen.
struct Walk {
    redirects: usize,
    visited: HashSet<String>,
    tried: Vec<String>,
}

/// The POX request body.
pub(crate) fn request_body(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
<Request><EMailAddress>{}</EMailAddress>\
<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
</Request></Autodiscover>",
        escape(address)
    )
}

/// Reads a POX response: the EWS URL (EXCH protocol first, then EXPR), a redirect, or why not.
fn read_response(root: &Element) -> Result<PoxAnswer, String> {
    let response = root
        .child("Response")
        .ok_or("Autodiscover answer without Response")?;
    if let Some(error) = response.child("Error") {
        return Err(format!(
            "Autodiscover error {}: {}",
            error.child_text("ErrorCode").unwrap_or("?").trim(),
            error.child_text("Message").unwrap_or("").trim()
        ));
    }
    let account = response
        .child("Account")
        .ok_or("Autodiscover answer without Account")?;
    match account.child_text("Action").map(str::trim) {
        Some("redirectAddr") => Ok(PoxAnswer::RedirectAddr(
            account
                .child_text("RedirectAddr")
                .ok_or("redirectAddr without an address")?
                .trim()
                .to_owned(),
        )),
        Some("redirectUrl") => Ok(PoxAnswer::RedirectUrl(
            account
                .child_text("RedirectUrl")
                .ok_or("redirectUrl without a URL")?
                .trim()
                .to_owned(),
        )),
        _ => {
            let ews = ["EXCH", "EXPR"].iter().find_map(|kind| {
                account
                    .children_named("Protocol")
                    .find(|p| p.child_text("Type").map(str::trim) == Some(*kind))
                    .and_then(|p| p.child_text("EwsUrl"))
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
            });
            ews.map(PoxAnswer::Ews)
                .ok_or_else(|| "Autodiscover settings without an EWS URL".into())
        }
    }
}

enum PoxAnswer {
    Ews(String),
    RedirectUrl(String),
    RedirectAddr(String),
}

impl Autodiscover {
    /// Discovery over `http`, so the scheme pinned for a host holds for EWS calls too.
    pub fn new(http: Arc<HttpClient>, config: AutodiscoverConfig) -> Self {
        Autodiscover {
            http,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the cached URL of `address`, e.g. after EWS says the mailbox moved.
    pub fn invalidate(&self, address: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&address.trim().to_ascii_lowercase());
        }
    }

    /// The EWS URL for a mailbox.
    pub async fn ews_url(&self, address: &str) -> Result<Url, EwsError> {
        if let Some(url) = &self.config.configured {
            return Ok(url.clone());
        }
        let key = address.trim().to_ascii_lowercase();
        if let Some((url, at)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            if at.elapsed() < self.config.ttl {
                return Ok(url);
            }
        }
        let url = match self.discover(address, None).await? {
            MailboxLocation::OnPremises(url) => url,
            // Only a lookup given a routing domain answers this.
            MailboxLocation::Online { target } => {
                return Err(Self::fail(address, format!("redirected to {target}")))
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (url.clone(), Instant::now()));
        }
        Ok(url)
    }

    /// Whether a mailbox is on premises or in Exchange Online, asked of on-premises
    /// Autodiscover (even when an EWS URL is configured): a redirect to an address in
    /// `routing_domain` (the tenant's `tenant.mail.onmicrosoft.com`) means online. Any other
    /// redirect is followed as [`Self::ews_url`] follows it, inside the allow-list only.
    pub async fn locate(
        &self,
        address: &str,
        routing_domain: &str,
    ) -> Result<MailboxLocation, EwsError> {
        self.discover(address, Some(routing_domain)).await
    }

    fn fail(address: &str, reason: impl Into<String>) -> EwsError {
        EwsError::Autodiscover {
            address: address.to_owned(),
            reason: reason.into(),
        }
    }

    /// `https://{host}/autodiscover/autodiscover.xml` (on the configured port), checked to
    /// connect to exactly `host`.
    fn candidate(&self, host: &str) -> Result<Url, EwsError> {
        let port = self
            .config
            .https_port
            .map_or_else(String::new, |p| format!(":{p}"));
        Self::url_for(
            host,
            &format!("https://{host}{port}/autodiscover/autodiscover.xml"),
        )
    }

    fn url_for(host: &str, text: &str) -> Result<Url, EwsError> {
        let url =
            Url::parse(text).map_err(|e| EwsError::InvalidInput(format!("URL for {host}: {e}")))?;
        if url_host(&url).as_deref() != Some(host) {
            return Err(EwsError::InvalidInput(format!(
                "{text} does not lead to the host {host}"
            )));
        }
        Ok(url)
    }

    async fn discover(
        &self,
        original: &str,
        routing_domain: Option<&str>,
    ) -> Result<MailboxLocation, EwsError> {
        let mut text = original.trim().to_owned();
        let mut seen_addresses = HashSet::new();
        let mut walk = Walk {
            redirects: 0,
            visited: HashSet::new(),
            tried: Vec::new(),
        };
        loop {
            // The user's own address and every redirectAddr answer alike: only a parsed
            // domain decides where candidates are looked for.
            let address = Address::parse(&text).map_err(|reason| Self::fail(original, reason))?;
            if !seen_addresses.insert(address.to_string().to_ascii_lowercase()) {
                return Err(Self::fail(
                    original,
                    format!("redirect loop through address {address}"),
                ));
            }
            let domain = address.domain.clone();
            if !self.config.allow.allows(&domain) {
                return Err(Self::fail(
                    original,
                    format!(
                        "the domain {domain} is not in the allow-list (the service account's \
                         domain and the other domains to sync); nothing is sent there"
                    ),
                ));
            }
            match self
                .discover_domain(&address.to_string(), &domain, &mut walk)
                .await?
            {
                Some(Answer::Ews(url)) => return Ok(MailboxLocation::OnPremises(url)),
                Some(Answer::RedirectAddr(next))
                    if routing_domain.is_some_and(|routing| {
                        Address::parse(&next)
                            .is_ok_and(|a| a.domain.eq_ignore_ascii_case(routing.trim()))
                    }) =>
                {
                    tracing::info!(from = %address, to = %next, "Autodiscover redirects to the tenant's routing address: the mailbox is in Exchange Online");
                    return Ok(MailboxLocation::Online { target: next });
                }
                Some(Answer::RedirectAddr(next)) => {
                    if seen_addresses.len() > MAX_ADDRESS_REDIRECTS {
                        return Err(Self::fail(original, "too many address redirects"));
                    }
                    tracing::info!(from = %address, to = %next, "Autodiscover redirects to another address");
                    text = next;
                }
                None => {
                    return Err(Self::fail(
                        original,
                        format!("no candidate answered: {}", walk.tried.join("; ")),
                    ))
                }
            }
        }
    }

    /// Tries the candidates of one domain in order. Each candidate, redirects included, has
    /// one request timeout in all.
    async fn discover_domain(
        &self,
        address: &str,
        domain: &str,
        walk: &mut Walk,
    ) -> Result<Option<Answer>, EwsError> {
        for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
            let url = self.candidate(&host)?;
            let deadline = self.http.deadline();
            if let Some(answer) = self.follow(address, url, walk, deadline).await? {
                return Ok(Some(answer));
            }
        }
        // Plain http: never authenticated; only an https Location inside the allow-list counts.
        let port = self
            .config
            .http_port
            .map_or_else(String::new, |p| format!(":{p}"));
        let host = format!("autodiscover.{domain}");
        if let Ok(url) = Self::url_for(
            &host,
            &format!("http://{host}{port}/autodiscover/autodiscover.xml"),
        ) {
            let deadline = self.http.deadline();
            let answer = match self.inside(&url) {
                Err(reason) => Err(reason),
                Ok(()) => self
                    .http
                    .get_anonymous_within(&url, deadline)
                    .await
                    .map_err(|e| format!("{url}: {e}")),
            };
            match answer {
                Ok(response) if matches!(response.status, 301 | 302 | 307 | 308) => {
                    let location = response
                        .headers
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| url.join(l).ok());
                    match location {
                        Some(target) => {
                            walk.redirects += 1;
                            if let Some(answer) =
                                self.follow(address, target, walk, deadline).await?
                            {
                                return Ok(Some(answer));
                            }
                        }
                        None => walk
                            .tried
                            .push(format!("{url}: redirect without a usable Location")),
                    }
                }
                Ok(response) => walk.tried.push(format!("{url}: HTTP {}", response.status)),
                Err(reason) => walk.tried.push(reason),
            }
        }
        // SRV: each target is as untrusted as any redirect.
        let name = format!("_autodiscover._tcp.{domain}");
        match self.config.srv.lookup(&name).await {
            Ok(records) => {
                for record in records {
                    let Some(target) = dns_name(&record.target) else {
                        walk.tried
                            .push(format!("SRV target {:?} is not a host name", record.target));
                        continue;
                    };
                    let url = Self::url_for(
                        &target,
                        &format!(
                            "https://{target}:{}/autodiscover/autodiscover.xml",
                            record.port
                        ),
                    );
                    match url {
                        Ok(url) => {
                            let deadline = self.http.deadline();
                            if let Some(answer) = self.follow(address, url, walk, deadline).await? {
                                return Ok(Some(answer));
                            }
                        }
                        Err(e) => walk.tried.push(format!("SRV target {target}: {e}")),
                    }
                }
            }
            Err(e) => walk.tried.push(format!("SRV {name}: {e}")),
        }
        Ok(None)
    }

    /// Whether a URL's host, as it will be connected to, is inside the allow-list: asked
    /// before any request, with or without credentials.
    fn inside(&self, url: &Url) -> Result<(), String> {
        let host = url_host(url).unwrap_or_default();
        if self.config.allow.allows(&host) {
            Ok(())
        } else {
            tracing::warn!(url = %url, "Autodiscover target outside the allow-list refused");
            Err(format!("{url}: host {host} is outside the allow-list"))
        }
    }

    /// Checks a URL we are about to send credentials to.
    fn admissible(&self, url: &Url, walk: &mut Walk) -> Result<(), String> {
        if url.scheme() != "https" {
            return Err(format!("{url}: not https; credentials go only over https"));
        }
        self.inside(url)?;
        if walk.redirects > MAX_REDIRECTS {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let key = url.as_str().to_ascii_lowercase();
        if !walk.visited.insert(key) {
            return Err(format!("{url}: redirect loop"));
        }
        Ok(())
    }

    /// POSTs to one endpoint and follows its redirects, all before `deadline`.
    async fn follow(
        &self,
        address: &str,
        mut url: Url,
        walk: &mut Walk,
        deadline: Deadline,
    ) -> Result<Option<Answer>, EwsError> {
        loop {
            if let Err(reason) = self.admissible(&url, walk) {
                walk.tried.push(reason);
                return Ok(None);
            }
            let response = match self
                .http
                .post_within(&url, &request_body(address), &[], deadline)
                .await
            {
                Ok(r) => r,
                // A wrong password is not a reason to try the next candidate with it.
                Err(e @ (EwsError::Unauthorized { .. } | EwsError::AuthDowngrade { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    walk.tried.push(format!("{url}: {e}"));
                    return Ok(None);
                }
            };
            let next = match response.status {
                301 | 302 | 307 | 308 => response
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok()),
                200 => {
                    let parsed = parse(&response.text())
                        .map_err(|e| e.to_string())
                        .and_then(|root| read_response(&root));
                    match parsed {
                        Ok(PoxAnswer::Ews(ews)) => match Url::parse(&ews) {
                            Ok(ews)
                                if ews.scheme() == "https"
                                    && url_host(&ews)
                                        .is_some_and(|h| self.config.allow.allows(&h)) =>
                            {
                                return Ok(Some(Answer::Ews(ews)))
                            }
                            _ => {
                                walk.tried.push(format!(
                                    "{url}: EWS URL {ews} is not https inside the allow-list"
                                ));
                                return Ok(None);
                            }
                        },
                        Ok(PoxAnswer::RedirectAddr(next)) => {
                            if next.eq_ignore_ascii_case(address) {
                                walk.tried
                                    .push(format!("{url}: redirect to the same address"));
                                return Ok(None);
                            }
                            // Checked again (parsed, against the allow-list) before any use.
                            return Ok(Some(Answer::RedirectAddr(next)));
                        }
                        Ok(PoxAnswer::RedirectUrl(next)) => Url::parse(&next).ok(),
                        Err(reason) => {
                            walk.tried.push(format!("{url}: {reason}"));
                            return Ok(None);
                        }
                    }
                }
                status => {
                    walk.tried.push(format!("{url}: HTTP {status}"));
                    return Ok(None);
                }
            };
            match next {
                Some(next) => {
                    walk.redirects += 1;
                    url = next;
                }
                None => {
                    walk.tried
                        .push(format!("{url}: redirect without a usable target"));
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn allow_list_matches_domains_and_subdomains_only() {
        let allow = AllowList::new(["contoso.test", "Fabrikam.Test."]);
        assert!(allow.allows("contoso.test"));
        assert!(allow.allows("autodiscover.contoso.test"));
        assert!(allow.allows("mail.fabrikam.test"));
        assert!(!allow.allows("evilcontoso.test"));
        assert!(!allow.allows("contoso.test.evil.example"));
        assert!(!allow.allows("test"));
        assert!(!AllowList::new(Vec::<String>::new()).allows("contoso.test"));
    }

    #[test]
    fn allow_list_refuses_what_is_not_a_host_name() {
        let allow = AllowList::new(["contoso.test"]);
        assert!(allow.allows("Autodiscover.Contoso.Test."));
        for host in [
            "evil.test#.contoso.test",
            "evil.test?.contoso.test",
            "evil.test/.contoso.test",
            "user@evil.test.contoso.test",
            "evil.test:443.contoso.test",
            "evil test.contoso.test",
            "-x.contoso.test",
            "x..contoso.test",
            "",
        ] {
            assert!(!allow.allows(host), "{host}");
        }
    }

    #[test]
    fn addresses_are_parsed_not_matched() {
        let a = Address::parse(" Ann@Contoso.Test. ").unwrap();
        assert_eq!(
            (a.local.as_str(), a.domain.as_str()),
            ("Ann", "contoso.test")
        );
        assert_eq!(a.to_string(), "Ann@contoso.test");
        for bad in [
            "user1@evil.test#.contoso.test",
            "user1@evil.test?.contoso.test",
            "user1@evil.test/.contoso.test",
            "user1@evil.test:80.contoso.test",
            "user1@contoso.test@evil.test",
            "user1@evil test.contoso.test",
            "user1@127.0.0.1",
            "user1@",
            "@contoso.test",
            "no-at-sign",
            "a b@contoso.test",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_host_is_what_the_parser_connects_to() {
        for (text, host) in [
            ("https://evil.test#.contoso.test/x", "evil.test"),
            ("https://evil.test?.contoso.test/x", "evil.test"),
            ("https://contoso.test@evil.test/x", "evil.test"),
            ("https://evil.test\\.contoso.test/x", "evil.test"),
            ("https://MAIL.Contoso.Test./x", "mail.contoso.test"),
        ] {
            let url = Url::parse(text).unwrap();
            assert_eq!(url_host(&url).as_deref(), Some(host), "{text}");
        }
    }

    #[test]
    fn reads_pox_answers() {
        let ok = parse(
            r#"<Autodiscover><Response><Account><Action>settings</Action>
<Protocol><Type>EXPR</Type><EwsUrl>https://ext.contoso.test/EWS/Exchange.asmx</EwsUrl></Protocol>
<Protocol><Type>EXCH</Type><EwsUrl>https://int.contoso.test/EWS/Exchange.asmx</EwsUrl></Protocol>
</Account></Response></Autodiscover>"#,
        )
        .map_err(|e| e.to_string())
        .and_then(|r| read_response(&r));
        assert!(matches!(ok, Ok(PoxAnswer::Ews(u)) if u.starts_with("https://int.")));
        let err = parse("<Autodiscover><Response><Error><ErrorCode>500</ErrorCode><Message>no</Message></Error></Response></Autodiscover>")
            .map_err(|e| e.to_string())
            .and_then(|r| read_response(&r));
        assert!(matches!(err, Err(m) if m.contains("500")));
    }

    #[test]
    fn request_escapes_the_address() {
        assert!(request_body("a<b@x.test").contains("a&lt;b@x.test"));
    }
}
