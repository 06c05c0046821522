//! Autodiscover with the security rules of DESIGN §2: the configured EWS URL wins; candidates
//! come only from the mailbox's own domain; credentials go only over verified https and only
//! to hosts in the allow-list; the plain-http step is an unauthenticated GET whose https
//! Location is followed only into the allow-list; at most 10 redirects, loops detected;
//! results cached with a TTL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use url::Url;

use crate::dns::{SrvResolver, StaticSrv};
use crate::error::EwsError;
use crate::transport::HttpClient;
use crate::xml::{escape, parse, Element};

pub const MAX_REDIRECTS: usize = 10;
/// Restarts with a new address (`redirectAddr`) per lookup.
pub const MAX_ADDRESS_REDIRECTS: usize = 2;

/// Domains credentials may be sent to: a host is inside when it is one of them or a
/// subdomain of one.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    domains: Vec<String>,
}

impl AllowList {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(domains: I) -> Self {
        AllowList {
            domains: domains
                .into_iter()
                .map(|d| d.as_ref().trim().trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
    }
}

#[derive(Clone)]
pub struct AutodiscoverConfig {
    /// An EWS URL the admin configured: used as is, nothing is discovered.
    pub configured: Option<Url>,
    /// The service account's domain plus the admin's other domains to sync.
    pub allow: AllowList,
    pub ttl: Duration,
    pub srv: Arc<dyn SrvResolver>,
    /// Port for the candidate URLs (443 in production; tests use the simulator's).
    pub https_port: Option<u16>,
    pub http_port: Option<u16>,
}

impl AutodiscoverConfig {
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

pub struct Autodiscover {
    http: Arc<HttpClient>,
    config: AutodiscoverConfig,
    cache: Mutex<HashMap<String, (Url, Instant)>>,
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

fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty() && !domain.contains('/')).then_some(domain)
}

/// The POX request body.
pub fn request_body(address: &str) -> String {
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
    pub fn new(http: Arc<HttpClient>, config: AutodiscoverConfig) -> Self {
        Autodiscover {
            http,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

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
        let url = self.discover(address).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (url.clone(), Instant::now()));
        }
        Ok(url)
    }

    fn fail(address: &str, reason: impl Into<String>) -> EwsError {
        EwsError::Autodiscover {
            address: address.to_owned(),
            reason: reason.into(),
        }
    }

    fn candidate(&self, host: &str) -> Result<Url, EwsError> {
        let port = self
            .config
            .https_port
            .map_or_else(String::new, |p| format!(":{p}"));
        Url::parse(&format!(
            "https://{host}{port}/autodiscover/autodiscover.xml"
        ))
        .map_err(|e| EwsError::InvalidInput(format!("candidate for {host}: {e}")))
    }

    async fn discover(&self, original: &str) -> Result<Url, EwsError> {
        let mut address = original.trim().to_owned();
        let mut seen_addresses = HashSet::new();
        let mut walk = Walk {
            redirects: 0,
            visited: HashSet::new(),
            tried: Vec::new(),
        };
        loop {
            if !seen_addresses.insert(address.to_ascii_lowercase()) {
                return Err(Self::fail(
                    original,
                    format!("redirect loop through address {address}"),
                ));
            }
            let domain = domain_of(&address).ok_or_else(|| {
                Self::fail(original, format!("{address:?} is not an e-mail address"))
            })?;
            if !self.config.allow.allows(&domain) {
                return Err(Self::fail(
                    original,
                    format!(
                        "the domain {domain} is not in the allow-list (the service account's \
                         domain and the other domains to sync); no credentials are sent there"
                    ),
                ));
            }
            match self.discover_domain(&address, &domain, &mut walk).await? {
                Some(Answer::Ews(url)) => return Ok(url),
                Some(Answer::RedirectAddr(next)) => {
                    if seen_addresses.len() > MAX_ADDRESS_REDIRECTS {
                        return Err(Self::fail(original, "too many address redirects"));
                    }
                    tracing::info!(from = %address, to = %next, "Autodiscover redirects to another address");
                    address = next;
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

    /// Tries the candidates of one domain in order.
    async fn discover_domain(
        &self,
        address: &str,
        domain: &str,
        walk: &mut Walk,
    ) -> Result<Option<Answer>, EwsError> {
        for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
            let url = self.candidate(&host)?;
            if let Some(answer) = self.follow(address, url, walk).await? {
                return Ok(Some(answer));
            }
        }
        // Plain http: never authenticated; only an https Location inside the allow-list counts.
        let port = self
            .config
            .http_port
            .map_or_else(String::new, |p| format!(":{p}"));
        if let Ok(url) = Url::parse(&format!(
            "http://autodiscover.{domain}{port}/autodiscover/autodiscover.xml"
        )) {
            match self.http.get_anonymous(&url).await {
                Ok(response) if matches!(response.status, 301 | 302 | 307 | 308) => {
                    let location = response
                        .headers
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| url.join(l).ok());
                    match location {
                        Some(target) => {
                            walk.redirects += 1;
                            if let Some(answer) = self.follow(address, target, walk).await? {
                                return Ok(Some(answer));
                            }
                        }
                        None => walk
                            .tried
                            .push(format!("{url}: redirect without a usable Location")),
                    }
                }
                Ok(response) => walk.tried.push(format!("{url}: HTTP {}", response.status)),
                Err(e) => walk.tried.push(format!("{url}: {e}")),
            }
        }
        // SRV: each target is as untrusted as any redirect.
        let name = format!("_autodiscover._tcp.{domain}");
        match self.config.srv.lookup(&name).await {
            Ok(records) => {
                for record in records {
                    let url = Url::parse(&format!(
                        "https://{}:{}/autodiscover/autodiscover.xml",
                        record.target.trim_end_matches('.'),
                        record.port
                    ));
                    match url {
                        Ok(url) => {
                            if let Some(answer) = self.follow(address, url, walk).await? {
                                return Ok(Some(answer));
                            }
                        }
                        Err(e) => walk
                            .tried
                            .push(format!("SRV target {}: {e}", record.target)),
                    }
                }
            }
            Err(e) => walk.tried.push(format!("SRV {name}: {e}")),
        }
        Ok(None)
    }

    /// Checks a URL we are about to send credentials to.
    fn admissible(&self, url: &Url, walk: &mut Walk) -> Result<(), String> {
        if url.scheme() != "https" {
            return Err(format!("{url}: not https; credentials go only over https"));
        }
        let host = url.host_str().unwrap_or("");
        if !self.config.allow.allows(host) {
            tracing::warn!(url = %url, "Autodiscover target outside the allow-list refused");
            return Err(format!("{url}: host {host} is outside the allow-list"));
        }
        if walk.redirects > MAX_REDIRECTS {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let key = url.as_str().to_ascii_lowercase();
        if !walk.visited.insert(key) {
            return Err(format!("{url}: redirect loop"));
        }
        Ok(())
    }

    /// POSTs to one endpoint and follows its redirects.
    async fn follow(
        &self,
        address: &str,
        mut url: Url,
        walk: &mut Walk,
    ) -> Result<Option<Answer>, EwsError> {
        loop {
            if let Err(reason) = self.admissible(&url, walk) {
                walk.tried.push(reason);
                return Ok(None);
            }
            let response = match self.http.post(&url, &request_body(address), &[]).await {
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
                                    && self.config.allow.allows(ews.host_str().unwrap_or("")) =>
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
