//! Where the token endpoint and Microsoft Graph live: national-cloud presets or any URL.

use url::Url;

use crate::error::GraphError;

/// A Microsoft cloud, or custom endpoints (entra-sim).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cloud {
    /// `login.microsoftonline.com` / `graph.microsoft.com`.
    #[default]
    Global,
    /// `login.microsoftonline.us` / `graph.microsoft.us` (GCC High, DoD).
    UsGovernment,
    /// `login.chinacloudapi.cn` / `microsoftgraph.chinacloudapi.cn` (operated by 21Vianet).
    China,
    /// Any authority host and Graph root, e.g. entra-sim on `https://localhost:PORT`.
    Custom(CustomCloud),
}

/// Custom endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCloud {
    authority_host: Url,
    graph_root: Url,
    scope: String,
}

impl CustomCloud {
    /// The scope requested for Graph tokens (default `https://graph.microsoft.com/.default`, the
    /// resource entra-sim issues tokens for).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
}

impl Cloud {
    /// Custom endpoints: the authority host (token URL = `{host}/{tenant}/oauth2/v2.0/token`)
    /// and the Graph base URL, with or without a trailing `/v1.0` or `/beta`. Both must be
    /// `https://`, except on a loopback address (local test servers).
    pub fn custom(authority_host: &str, graph_base: &str) -> Result<Self, GraphError> {
        let authority_host = parse_base(authority_host, "authority host")?;
        let mut graph_root = parse_base(graph_base, "Graph base URL")?;
        let path = graph_root.path().trim_end_matches('/').to_owned();
        let root_path = path
            .strip_suffix("/v1.0")
            .or_else(|| path.strip_suffix("/beta"))
            .unwrap_or(&path)
            .to_owned();
        graph_root.set_path(&format!("{root_path}/"));
        Ok(Self::Custom(CustomCloud {
            authority_host,
            graph_root,
            scope: "https://graph.microsoft.com/.default".to_owned(),
        }))
    }

    /// The authority host, ending in `/`.
    #[expect(
        clippy::expect_used,
        reason = "the preset URLs are constants that parse"
    )]
    pub fn authority_host(&self) -> Url {
        let fixed = |s: &str| Url::parse(s).expect("preset URLs are valid");
        match self {
            Self::Global => fixed("https://login.microsoftonline.com/"),
            Self::UsGovernment => fixed("https://login.microsoftonline.us/"),
            Self::China => fixed("https://login.chinacloudapi.cn/"),
            Self::Custom(custom) => custom.authority_host.clone(),
        }
    }

    /// The Graph root (without version), ending in `/`.
    #[expect(
        clippy::expect_used,
        reason = "the preset URLs are constants that parse"
    )]
    pub fn graph_root(&self) -> Url {
        let fixed = |s: &str| Url::parse(s).expect("preset URLs are valid");
        match self {
            Self::Global => fixed("https://graph.microsoft.com/"),
            Self::UsGovernment => fixed("https://graph.microsoft.us/"),
            Self::China => fixed("https://microsoftgraph.chinacloudapi.cn/"),
            Self::Custom(custom) => custom.graph_root.clone(),
        }
    }

    /// The scope requested for Graph tokens (`{graph root}/.default`).
    pub fn graph_scope(&self) -> String {
        match self {
            Self::Custom(custom) => custom.scope.clone(),
            other => format!("{}.default", other.graph_root()),
        }
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`, also the client assertion's `aud`.
    pub fn token_endpoint(&self, tenant: &str) -> Result<Url, GraphError> {
        let mut url = self.authority_host();
        url.path_segments_mut()
            .map_err(|()| GraphError::Config("the authority host cannot be a base URL".to_owned()))?
            .pop_if_empty()
            .extend([tenant, "oauth2", "v2.0", "token"]);
        Ok(url)
    }
}

fn parse_base(text: &str, what: &str) -> Result<Url, GraphError> {
    let mut url = Url::parse(text.trim())
        .map_err(|e| GraphError::Config(format!("the {what} '{text}' is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(GraphError::Config(format!(
                "the {what} '{text}' must start with https:// (plain http is allowed for localhost only)"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(GraphError::Config(format!(
            "the {what} '{text}' must not have a query or fragment"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets() {
        assert_eq!(
            Cloud::Global
                .token_endpoint("contoso.onmicrosoft.com")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            Cloud::Global.graph_scope(),
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            Cloud::UsGovernment.token_endpoint("t").unwrap().as_str(),
            "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        );
        assert_eq!(
            Cloud::UsGovernment.graph_scope(),
            "https://graph.microsoft.us/.default"
        );
        assert_eq!(
            Cloud::China.graph_root().as_str(),
            "https://microsoftgraph.chinacloudapi.cn/"
        );
        assert_eq!(
            Cloud::China.token_endpoint("t").unwrap().as_str(),
            "https://login.chinacloudapi.cn/t/oauth2/v2.0/token"
        );
    }

    #[test]
    fn custom_endpoints_like_entra_sim() {
        let cloud = Cloud::custom("https://localhost:8443", "https://localhost:8443/v1.0").unwrap();
        assert_eq!(cloud.graph_root().as_str(), "https://localhost:8443/");
        assert_eq!(
            cloud.token_endpoint("tenant-id").unwrap().as_str(),
            "https://localhost:8443/tenant-id/oauth2/v2.0/token"
        );
        assert_eq!(cloud.graph_scope(), "https://graph.microsoft.com/.default");
        let prefixed = Cloud::custom(
            "https://sim.example/login/",
            "https://sim.example/graph/beta/",
        )
        .unwrap();
        assert_eq!(prefixed.graph_root().as_str(), "https://sim.example/graph/");
        assert_eq!(
            prefixed.token_endpoint("t").unwrap().as_str(),
            "https://sim.example/login/t/oauth2/v2.0/token"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(Cloud::custom("http://127.0.0.1:9000", "http://127.0.0.1:9000").is_ok());
        let error = Cloud::custom("http://sim.example", "https://sim.example").unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
        assert!(Cloud::custom("not a url", "https://x").is_err());
    }
}
