//! Which Microsoft cloud a tenant lives in. Tokens are not interchangeable between clouds, and
//! the scope must name the Graph host the token is used on, so the authority, the Graph host
//! and the scope are chosen together, never one by one.

use url::Url;

use crate::error::{Error, Result};

/// The Graph API version every request is made against.
pub const API_VERSION: &str = "v1.0";

/// A Microsoft cloud: where tokens come from and where Graph answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    /// The worldwide service (also Microsoft 365 GCC).
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsDod,
    /// China, operated by 21Vianet.
    China,
    /// Explicit endpoints: a simulator, a test server, a future cloud. The scope is asked
    /// for as given: a simulator of the worldwide service takes the worldwide scope.
    Custom {
        /// Authority host URL without the tenant (`https://127.0.0.1:8443`).
        authority: String,
        /// Graph's base URL without the version (`https://127.0.0.1:8443`).
        graph: String,
        /// The `.default` scope tokens are requested for.
        scope: String,
    },
}

impl Cloud {
    /// Explicit endpoints whose tokens are asked for with the worldwide Graph scope, as a
    /// simulator of the worldwide service expects. `graph` may end in `/v1.0` (as a
    /// simulator's `graph_url` does); the version is added by the client either way.
    pub fn custom(authority: impl Into<String>, graph: impl Into<String>) -> Cloud {
        let graph: String = graph.into();
        let graph = graph.trim_end_matches('/');
        let graph = graph
            .strip_suffix(&format!("/{API_VERSION}"))
            .unwrap_or(graph);
        Cloud::Custom {
            authority: authority.into().trim_end_matches('/').to_owned(),
            graph: graph.to_owned(),
            scope: "https://graph.microsoft.com/.default".to_owned(),
        }
    }

    /// The name used in configuration (`global`, `usgov`, `usdod`, `china`); a custom cloud
    /// has none.
    pub fn parse(name: &str) -> Option<Cloud> {
        match name.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" | "gcc" => Some(Cloud::Global),
            "usgov" | "gcchigh" | "gcc-high" | "usgovernment" => Some(Cloud::UsGov),
            "usdod" | "dod" => Some(Cloud::UsDod),
            "china" | "21vianet" => Some(Cloud::China),
            _ => None,
        }
    }

    /// The authority host URL, without the tenant.
    pub fn authority_host(&self) -> &str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::Custom { authority, .. } => authority,
        }
    }

    /// Graph's base URL, without the version.
    pub fn graph_base(&self) -> &str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
            Cloud::Custom { graph, .. } => graph,
        }
    }

    /// The client-credentials scope: the Graph host's `/.default`.
    pub fn scope(&self) -> String {
        match self {
            Cloud::Custom { scope, .. } => scope.clone(),
            _ => format!("{}/.default", self.graph_base()),
        }
    }

    /// `<authority>/<tenant>/oauth2/v2.0/token`: where tokens are requested, and the `aud`
    /// of a client assertion.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority_host())
    }

    /// `<graph>/v1.0`: what relative request paths are appended to.
    pub fn graph_url(&self) -> String {
        format!("{}/{API_VERSION}", self.graph_base())
    }

    /// Checks that both endpoints are absolute https URLs with a host.
    pub(crate) fn validate(&self) -> Result<()> {
        for (what, text) in [
            ("authority", self.authority_host()),
            ("Graph", self.graph_base()),
        ] {
            let url = Url::parse(text)
                .map_err(|e| Error::Config(format!("the {what} URL {text:?} is not a URL: {e}")))?;
            if url.scheme() != "https" || url.host_str().is_none() {
                return Err(Error::Config(format!(
                    "the {what} URL {text} must be https with a host: credentials only travel \
                     over verified TLS"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_clouds_set_authority_graph_and_scope_together() {
        let cases = [
            (
                Cloud::Global,
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            (
                Cloud::UsGov,
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            (
                Cloud::UsDod,
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            (
                Cloud::China,
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ];
        for (cloud, authority, graph) in cases {
            assert_eq!(cloud.authority_host(), authority);
            assert_eq!(cloud.graph_base(), graph);
            assert_eq!(cloud.scope(), format!("{graph}/.default"));
            assert_eq!(cloud.graph_url(), format!("{graph}/v1.0"));
            assert_eq!(
                cloud.token_url("t1"),
                format!("{authority}/t1/oauth2/v2.0/token")
            );
            assert!(cloud.validate().is_ok());
        }
        assert_eq!(Cloud::parse("GCC-High"), Some(Cloud::UsGov));
        assert_eq!(Cloud::parse("dod"), Some(Cloud::UsDod));
        assert_eq!(Cloud::parse("mars"), None);
    }

    #[test]
    fn custom_cloud_takes_a_simulator_graph_url_and_refuses_plain_http() {
        let cloud = Cloud::custom("https://127.0.0.1:9/", "https://127.0.0.1:9/v1.0");
        assert_eq!(cloud.graph_url(), "https://127.0.0.1:9/v1.0");
        assert_eq!(
            cloud.token_url("t"),
            "https://127.0.0.1:9/t/oauth2/v2.0/token"
        );
        assert_eq!(cloud.scope(), "https://graph.microsoft.com/.default");
        assert!(Cloud::custom("http://x.test", "https://x.test")
            .validate()
            .is_err());
    }
}
