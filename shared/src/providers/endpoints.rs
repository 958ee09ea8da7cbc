//! Where each provider lives: the real hosts, or the same paths under the provider sandbox.
//!
//! Zoho has one accounts server and one API domain per data centre; the callback and the token
//! response tell us which. Both values arrive from outside (the callback query string can be forged
//! by anyone who sends a user a link), and we send our client secret to the accounts server and the
//! access token to the API domain, so both are accepted only when they are one of Zoho's own data
//! centres, or, with the sandbox, one of the sandbox's.

use url::Url;

use crate::config::QuickBooksEnvironment;
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::Config;

/// Zoho data centres: (location, accounts server, API domain). From Zoho's multi-DC page; the UK API
/// domain is not documented there and follows the pattern of the others. The UAE (`ae`) and
/// Singapore (`sg`) data centres appear in Zoho's newer product pages and in many integrations'
/// region tables (accounts.zoho.ae / www.zohoapis.ae, accounts.zoho.sg / www.zohoapis.sg), but not
/// yet on Zoho Books' own API pages: their Books availability is unconfirmed. An unknown location
/// is still refused, so a DC that turns out not to serve Books only fails that user's connect.
pub const ZOHO_DATA_CENTRES: [(&str, &str, &str); 11] = [
    ("us", "https://accounts.zoho.com", "https://www.zohoapis.com"),
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    ("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
    ("au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    ("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    ("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    ("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    ("cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    ("ae", "https://accounts.zoho.ae", "https://www.zohoapis.ae"),
    ("sg", "https://accounts.zoho.sg", "https://www.zohoapis.sg"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Real,
    /// The sandbox base, normalised to end in '/'.
    Sandbox(Url),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub provider: Provider,
    pub authorize: Url,
    /// Zoho: the token URL of the default (US) accounts server; a grant uses its own DC's.
    pub token: Url,
    /// Zoho: as for `token`.
    pub revoke: Url,
    /// Prefix of the accounting API, ending in '/': QuickBooks `.../v3/company/`, Xero
    /// `.../api.xro/2.0/`, Zoho the default API domain's `.../books/v3/` (a grant uses its own).
    pub api: Url,
    /// Xero's connections endpoint (no trailing slash).
    pub connections: Option<Url>,
    mode: Mode,
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("static URL")
}

/// `base` + `path`, where `path` has no leading '/'.
fn join(base: &Url, path: &str) -> Url {
    base.join(path).expect("joining a relative path to an http(s) base")
}

fn with_trailing_slash(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u.set_query(None);
    u.set_fragment(None);
    u
}

impl Endpoints {
    pub fn real(provider: Provider) -> Self {
        match provider {
            Provider::QuickBooks => Endpoints {
                provider,
                authorize: url("https://appcenter.intuit.com/connect/oauth2"),
                token: url("https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"),
                revoke: url("https://developer.api.intuit.com/v2/oauth2/tokens/revoke"),
                api: url("https://quickbooks.api.intuit.com/v3/company/"),
                connections: None,
                mode: Mode::Real,
            },
            Provider::Xero => Endpoints {
                provider,
                authorize: url("https://login.xero.com/identity/connect/authorize"),
                token: url("https://identity.xero.com/connect/token"),
                revoke: url("https://identity.xero.com/connect/revocation"),
                api: url("https://api.xero.com/api.xro/2.0/"),
                connections: Some(url("https://api.xero.com/connections")),
                mode: Mode::Real,
            },
            Provider::Zoho => Endpoints {
                provider,
                // Zoho sends each user on from the .com server to their own DC.
                authorize: url("https://accounts.zoho.com/oauth/v2/auth"),
                token: url("https://accounts.zoho.com/oauth/v2/token"),
                revoke: url("https://accounts.zoho.com/oauth/v2/token/revoke"),
                api: url("https://www.zohoapis.com/books/v3/"),
                connections: None,
                mode: Mode::Real,
            },
        }
    }

    /// Intuit's development (sandbox company) API host; OAuth endpoints are the same as production.
    pub fn quickbooks_development() -> Self {
        Endpoints { api: url("https://sandbox-quickbooks.api.intuit.com/v3/company/"), ..Self::real(Provider::QuickBooks) }
    }

    /// The layout of the provider sandbox under `base` (see the sandbox's URL contract).
    pub fn sandbox(provider: Provider, base: &Url) -> Self {
        let base = with_trailing_slash(base.clone());
        let p = |path: &str| join(&base, path);
        let (authorize, token, revoke, api, connections) = match provider {
            Provider::QuickBooks => (
                p("quickbooks/connect/oauth2"),
                p("quickbooks/oauth2/v1/tokens/bearer"),
                p("quickbooks/oauth2/v2/tokens/revoke"),
                p("quickbooks/v3/company/"),
                None,
            ),
            Provider::Xero => (
                p("xero/identity/connect/authorize"),
                p("xero/identity/connect/token"),
                p("xero/identity/connect/revocation"),
                p("xero/api.xro/2.0/"),
                Some(p("xero/connections")),
            ),
            Provider::Zoho => (
                p("zoho/accounts/us/oauth/v2/auth"),
                p("zoho/accounts/us/oauth/v2/token"),
                p("zoho/accounts/us/oauth/v2/token/revoke"),
                p("zoho/api/us/books/v3/"),
                None,
            ),
        };
        Endpoints { provider, authorize, token, revoke, api, connections, mode: Mode::Sandbox(base) }
    }

    /// The sandbox when `PROVIDER_BASE_URL` is set, else the real provider; for QuickBooks, Intuit's
    /// development host when `QUICKBOOKS_ENVIRONMENT=sandbox`.
    pub fn from_config(config: &Config, provider: Provider) -> Self {
        match &config.provider_base_url {
            Some(base) => Self::sandbox(provider, base),
            None if provider == Provider::QuickBooks && config.quickbooks_environment == QuickBooksEnvironment::Sandbox => {
                Self::quickbooks_development()
            }
            None => Self::real(provider),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        matches!(self.mode, Mode::Sandbox(_))
    }

    /// The Zoho accounts servers we accept: (location, server URL without trailing slash).
    fn zoho_accounts_servers(&self) -> Vec<(&'static str, String)> {
        ZOHO_DATA_CENTRES
            .iter()
            .map(|(dc, accounts, _)| match &self.mode {
                Mode::Real => (*dc, accounts.to_string()),
                Mode::Sandbox(base) => (*dc, join(base, &format!("zoho/accounts/{dc}")).to_string()),
            })
            .collect()
    }

    fn zoho_api_domains(&self) -> Vec<String> {
        ZOHO_DATA_CENTRES
            .iter()
            .map(|(dc, _, api)| match &self.mode {
                Mode::Real => api.to_string(),
                Mode::Sandbox(base) => join(base, &format!("zoho/api/{dc}")).to_string(),
            })
            .collect()
    }

    /// The accounts server of a Zoho grant from the callback's `accounts-server` (preferred) or
    /// `location`. Anything that is not one of the known servers is refused.
    pub fn zoho_accounts_server(&self, accounts_server: Option<&str>, location: Option<&str>) -> Result<String> {
        let known = self.zoho_accounts_servers();
        if let Some(raw) = accounts_server.map(str::trim).filter(|s| !s.is_empty()) {
            let wanted = raw.trim_end_matches('/');
            return known
                .into_iter()
                .find(|(_, server)| server.eq_ignore_ascii_case(wanted))
                .map(|(_, server)| server)
                .ok_or_else(|| Error::InvalidInput("accounts-server is not a known Zoho data centre".into()));
        }
        if let Some(loc) = location.map(str::trim).filter(|s| !s.is_empty()) {
            return known
                .into_iter()
                .find(|(dc, _)| dc.eq_ignore_ascii_case(loc))
                .map(|(_, server)| server)
                .ok_or_else(|| Error::InvalidInput("location is not a known Zoho data centre".into()));
        }
        // No hint at all: the user is on the server the flow started at.
        Ok(self.authorize.as_str().trim_end_matches("/oauth/v2/auth").to_string())
    }

    /// Checks an accounts server taken from stored grant data before we send credentials to it.
    pub fn zoho_check_accounts_server(&self, server: &str) -> Result<String> {
        self.zoho_accounts_server(Some(server), None)
    }

    /// Checks Zoho's `api_domain` (from the token response) before we send an access token to it.
    pub fn zoho_check_api_domain(&self, api_domain: &str) -> Result<String> {
        let wanted = api_domain.trim().trim_end_matches('/');
        self.zoho_api_domains()
            .into_iter()
            .map(|d| d.trim_end_matches('/').to_string())
            .find(|d| d.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Error::ProviderMalformed {
                provider: Provider::Zoho,
                message: "api_domain is not a known Zoho API domain".into(),
            })
    }

    /// The data centre location of a (known) accounts server.
    pub fn zoho_location_of(&self, server: &str) -> Option<&'static str> {
        let wanted = server.trim().trim_end_matches('/');
        self.zoho_accounts_servers().into_iter().find(|(_, s)| s.eq_ignore_ascii_case(wanted)).map(|(dc, _)| dc)
    }

    pub fn zoho_token_url(accounts_server: &str) -> Result<Url> {
        Url::parse(&format!("{}/oauth/v2/token", accounts_server.trim_end_matches('/')))
            .map_err(|e| Error::Internal(format!("zoho token url: {e}")))
    }

    pub fn zoho_revoke_url(accounts_server: &str) -> Result<Url> {
        Url::parse(&format!("{}/oauth/v2/token/revoke", accounts_server.trim_end_matches('/')))
            .map_err(|e| Error::Internal(format!("zoho revoke url: {e}")))
    }

    /// `{api_domain}/books/v3/`.
    pub fn zoho_api_base(api_domain: &str) -> Result<Url> {
        Url::parse(&format!("{}/books/v3/", api_domain.trim_end_matches('/'))).map_err(|e| Error::Internal(format!("zoho api url: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn real_endpoints_are_the_documented_hosts() {
        let q = Endpoints::real(Provider::QuickBooks);
        assert_eq!(q.token.as_str(), "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer");
        assert_eq!(join(&q.api, "9341/query").as_str(), "https://quickbooks.api.intuit.com/v3/company/9341/query");
        let x = Endpoints::real(Provider::Xero);
        assert_eq!(join(&x.api, "Invoices").as_str(), "https://api.xero.com/api.xro/2.0/Invoices");
        assert_eq!(x.connections.unwrap().as_str(), "https://api.xero.com/connections");
        let z = Endpoints::real(Provider::Zoho);
        assert_eq!(z.authorize.as_str(), "https://accounts.zoho.com/oauth/v2/auth");
        assert!(!z.is_sandbox());
    }

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars: std::collections::HashMap<String, String> =
            Config::REQUIRED.iter().map(|k| (k.to_string(), format!("value-of-{k}"))).collect();
        vars.insert("STAGE".into(), "dev".into());
        vars.insert("PUBLIC_BASE_URL".into(), "https://api.example.com".into());
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| vars.get(k).cloned()).expect("config")
    }

    #[test]
    fn quickbooks_environment_selects_intuits_development_host() {
        let prod = Endpoints::from_config(&config(&[]), Provider::QuickBooks);
        assert_eq!(prod.api.as_str(), "https://quickbooks.api.intuit.com/v3/company/");
        let dev = Endpoints::from_config(&config(&[("QUICKBOOKS_ENVIRONMENT", "sandbox")]), Provider::QuickBooks);
        assert_eq!(dev.api.as_str(), "https://sandbox-quickbooks.api.intuit.com/v3/company/");
        // OAuth is shared by both environments; the other providers are unaffected.
        assert_eq!((dev.authorize.clone(), dev.token.clone(), dev.revoke.clone()), (prod.authorize, prod.token, prod.revoke));
        let x = Endpoints::from_config(&config(&[("QUICKBOOKS_ENVIRONMENT", "sandbox")]), Provider::Xero);
        assert_eq!(x, Endpoints::real(Provider::Xero));
        // The provider sandbox wins over either.
        let c = config(&[("QUICKBOOKS_ENVIRONMENT", "sandbox"), ("PROVIDER_BASE_URL", "http://127.0.0.1:4555")]);
        assert!(Endpoints::from_config(&c, Provider::QuickBooks).is_sandbox());
    }

    #[test]
    fn sandbox_paths_follow_the_contract_with_or_without_trailing_slash() {
        for base in ["http://127.0.0.1:4555", "http://127.0.0.1:4555/"] {
            let base = Url::parse(base).unwrap();
            let q = Endpoints::sandbox(Provider::QuickBooks, &base);
            assert_eq!(q.authorize.as_str(), "http://127.0.0.1:4555/quickbooks/connect/oauth2");
            assert_eq!(q.revoke.as_str(), "http://127.0.0.1:4555/quickbooks/oauth2/v2/tokens/revoke");
            assert_eq!(join(&q.api, "1/query").as_str(), "http://127.0.0.1:4555/quickbooks/v3/company/1/query");
            let x = Endpoints::sandbox(Provider::Xero, &base);
            assert_eq!(x.token.as_str(), "http://127.0.0.1:4555/xero/identity/connect/token");
            assert_eq!(x.connections.as_ref().unwrap().as_str(), "http://127.0.0.1:4555/xero/connections");
            let z = Endpoints::sandbox(Provider::Zoho, &base);
            assert_eq!(z.authorize.as_str(), "http://127.0.0.1:4555/zoho/accounts/us/oauth/v2/auth");
            assert!(z.is_sandbox());
        }
        // A base with a path prefix keeps it.
        let z = Endpoints::sandbox(Provider::Zoho, &Url::parse("http://h:1/prefix").unwrap());
        assert_eq!(z.token.as_str(), "http://h:1/prefix/zoho/accounts/us/oauth/v2/token");
    }

    #[test]
    fn zoho_accounts_server_accepts_known_data_centres_only() {
        let real = Endpoints::real(Provider::Zoho);
        assert_eq!(real.zoho_accounts_server(Some("https://accounts.zoho.eu"), Some("eu")).unwrap(), "https://accounts.zoho.eu");
        assert_eq!(real.zoho_accounts_server(Some("https://accounts.zohocloud.ca/"), None).unwrap(), "https://accounts.zohocloud.ca");
        assert_eq!(real.zoho_accounts_server(None, Some("AU")).unwrap(), "https://accounts.zoho.com.au");
        assert_eq!(real.zoho_accounts_server(None, None).unwrap(), "https://accounts.zoho.com");
        for forged in [
            "https://attacker.example",
            "https://accounts.zoho.eu.attacker.example",
            "http://accounts.zoho.eu",
            "https://accounts.zoho.eu/../x",
            "https://accounts.zoho.eu@attacker.example",
        ] {
            let err = real.zoho_accounts_server(Some(forged), Some("eu")).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidInput, "{forged}");
        }
        assert!(real.zoho_accounts_server(None, Some("mars")).is_err());
        // The UAE and Singapore data centres are on the allow-list, their look-alikes are not.
        assert_eq!(real.zoho_accounts_server(Some("https://accounts.zoho.ae"), Some("ae")).unwrap(), "https://accounts.zoho.ae");
        assert_eq!(real.zoho_accounts_server(None, Some("sg")).unwrap(), "https://accounts.zoho.sg");
        assert_eq!(real.zoho_location_of("https://accounts.zoho.ae"), Some("ae"));
        assert!(real.zoho_accounts_server(Some("https://accounts.zoho.ae.attacker.example"), None).is_err());
        assert_eq!(real.zoho_location_of("https://accounts.zoho.com.cn"), Some("cn"));
        assert_eq!(real.zoho_location_of("https://example.com"), None);

        let sb = Endpoints::sandbox(Provider::Zoho, &Url::parse("http://127.0.0.1:9/").unwrap());
        assert_eq!(
            sb.zoho_accounts_server(Some("http://127.0.0.1:9/zoho/accounts/eu"), None).unwrap(),
            "http://127.0.0.1:9/zoho/accounts/eu"
        );
        // The sandbox accepts its own servers, not the real ones, and not another port.
        assert!(sb.zoho_accounts_server(Some("https://accounts.zoho.eu"), None).is_err());
        assert!(sb.zoho_accounts_server(Some("http://127.0.0.1:10/zoho/accounts/eu"), None).is_err());
        assert!(sb.zoho_accounts_server(Some("http://127.0.0.1:9/zoho/accounts/xx"), None).is_err());
    }

    #[test]
    fn zoho_api_domain_must_be_a_known_one() {
        let real = Endpoints::real(Provider::Zoho);
        assert_eq!(real.zoho_check_api_domain("https://www.zohoapis.eu").unwrap(), "https://www.zohoapis.eu");
        assert_eq!(real.zoho_check_api_domain("https://evil.example").unwrap_err().code(), ErrorCode::ProviderMalformed);
        let sb = Endpoints::sandbox(Provider::Zoho, &Url::parse("http://127.0.0.1:9").unwrap());
        assert_eq!(sb.zoho_check_api_domain("http://127.0.0.1:9/zoho/api/eu/").unwrap(), "http://127.0.0.1:9/zoho/api/eu");
        assert_eq!(
            Endpoints::zoho_api_base("http://127.0.0.1:9/zoho/api/eu").unwrap().as_str(),
            "http://127.0.0.1:9/zoho/api/eu/books/v3/"
        );
        assert_eq!(Endpoints::zoho_token_url("https://accounts.zoho.eu/").unwrap().as_str(), "https://accounts.zoho.eu/oauth/v2/token");
    }
}
