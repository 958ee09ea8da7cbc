//! Typed configuration from the environment.
//!
//! Every variable is listed in docs/configuration.md's table. Loading collects every problem at
//! once and names each variable, so a misconfigured function fails at start-up with one clear error
//! instead of failing later on the first request that happens to need the value.

use std::time::Duration;

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// The names of the variables at fault, in the order they were checked.
    pub fn names(&self) -> Vec<&'static str> {
        self.problems
            .iter()
            .map(|p| match p {
                ConfigProblem::Missing(n) => *n,
                ConfigProblem::Invalid { name, .. } => *name,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub tenants: String,
    pub grants: String,
    pub ephemeral: String,
    pub resilience: String,
    pub sync: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    pub sync_high: String,
    pub sync_normal: String,
    pub sync_low: String,
    pub events: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// JSON `{ "<provider>": { "client_id": "...", "client_secret": "..." } }`.
    pub provider_credentials: String,
    /// JSON `{ "<provider>": { "current": "...", "previous": "..." } }`.
    pub webhook_keys: String,
    /// JSON `{ "connect_keys": {"<kid>": "..."}, "state_key": "..." }`.
    pub app_signing: String,
}

/// Which of Intuit's two API hosts this deployment talks to. Intuit issues separate development and
/// production keys; development keys reach only sandbox companies, on
/// `sandbox-quickbooks.api.intuit.com`. OAuth endpoints are the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuickBooksEnvironment {
    #[default]
    Production,
    Sandbox,
}

impl std::str::FromStr for QuickBooksEnvironment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "production" => Ok(QuickBooksEnvironment::Production),
            "sandbox" | "development" => Ok(QuickBooksEnvironment::Sandbox),
            _ => Err("must be production or sandbox".into()),
        }
    }
}

/// Which of Xero's scope vocabularies this deployment's Xero app accepts. Apps created on or after
/// 2 March 2026 may only ask for the granular scopes (`accounting.invoices`, `accounting.payments`,
/// ...); older apps keep the broad `accounting.transactions` until their migration deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XeroScopeSet {
    #[default]
    Granular,
    Broad,
}

impl std::str::FromStr for XeroScopeSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "granular" => Ok(XeroScopeSet::Granular),
            "broad" | "legacy" => Ok(XeroScopeSet::Broad),
            _ => Err("must be granular or broad".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub stage: String,
    pub region: String,
    pub tables: Tables,
    pub queues: Queues,
    pub kms_key_id: String,
    pub secrets: Secrets,
    /// Our own public base URL; OAuth redirect URIs are built from it.
    pub public_base_url: Url,
    /// When set, every provider is reached through the provider sandbox at this URL.
    pub provider_base_url: Option<Url>,
    pub log_level: String,
    pub webhook_max_body_bytes: usize,
    pub refresh_window: Duration,
    pub lease_duration: Duration,
    pub oauth_state_ttl: Duration,
    pub data_key_cache_max_age: Duration,
    pub data_key_cache_max_uses: u32,
    pub provider_timeout: Duration,
    /// QUICKBOOKS_ENVIRONMENT: production (default) or sandbox (Intuit's development host).
    pub quickbooks_environment: QuickBooksEnvironment,
    /// XERO_SCOPE_SET: granular (default; apps created from March 2026) or broad (older apps).
    pub xero_scope_set: XeroScopeSet,
}

/// Reads variables through a lookup function so tests never touch the process environment.
struct Reader<F: Fn(&str) -> Option<String>> {
    lookup: F,
    problems: Vec<ConfigProblem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &'static str) -> String {
        match self.raw(name) {
            Some(v) => v,
            None => {
                self.problems.push(ConfigProblem::Missing(name));
                String::new()
            }
        }
    }

    fn optional_or(&mut self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    fn parsed<T: std::str::FromStr>(&mut self, name: &'static str, default: T, check: impl Fn(&T) -> Result<(), String>) -> T
    where
        T::Err: std::fmt::Display,
    {
        let Some(raw) = self.raw(name) else { return default };
        match raw.parse::<T>() {
            Ok(v) => match check(&v) {
                Ok(()) => v,
                Err(reason) => {
                    self.problems.push(ConfigProblem::Invalid { name, reason });
                    default
                }
            },
            Err(e) => {
                self.problems.push(ConfigProblem::Invalid { name, reason: format!("'{raw}': {e}") });
                default
            }
        }
    }

    fn url(&mut self, name: &'static str, required: bool) -> Option<Url> {
        let raw = match self.raw(name) {
            Some(r) => r,
            None => {
                if required {
                    self.problems.push(ConfigProblem::Missing(name));
                }
                return None;
            }
        };
        match Url::parse(&raw) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            Ok(_) => {
                self.problems.push(ConfigProblem::Invalid { name, reason: "must be an http(s) URL".into() });
                None
            }
            Err(e) => {
                self.problems.push(ConfigProblem::Invalid { name, reason: format!("'{raw}': {e}") });
                None
            }
        }
    }

    fn seconds(&mut self, name: &'static str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_secs(self.parsed(name, default, |v| {
            if (min..=max).contains(v) {
                Ok(())
            } else {
                Err(format!("must be between {min} and {max} seconds"))
            }
        }))
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader { lookup, problems: Vec::new() };
        let stage = r.required("STAGE");
        if !stage.is_empty() && !stage.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            r.problems.push(ConfigProblem::Invalid { name: "STAGE", reason: "letters, digits and '-' only".into() });
        }
        let region = r.required("AWS_REGION");
        let tables = Tables {
            tenants: r.required("TENANTS_TABLE"),
            grants: r.required("GRANTS_TABLE"),
            ephemeral: r.required("EPHEMERAL_TABLE"),
            resilience: r.required("RESILIENCE_TABLE"),
            sync: r.required("SYNC_TABLE"),
        };
        let queues = Queues {
            sync_high: r.required("SYNC_QUEUE_HIGH_URL"),
            sync_normal: r.required("SYNC_QUEUE_NORMAL_URL"),
            sync_low: r.required("SYNC_QUEUE_LOW_URL"),
            events: r.required("EVENTS_QUEUE_URL"),
        };
        let kms_key_id = r.required("KMS_KEY_ID");
        let secrets = Secrets {
            provider_credentials: r.required("PROVIDER_CREDENTIALS_SECRET_ID"),
            webhook_keys: r.required("WEBHOOK_KEYS_SECRET_ID"),
            app_signing: r.required("APP_SIGNING_SECRET_ID"),
        };
        let public_base_url = r.url("PUBLIC_BASE_URL", true);
        let provider_base_url = r.url("PROVIDER_BASE_URL", false);
        // The sandbox URL sends every client secret, code and token to whatever it names; the template
        // refuses it for prod, and so does the code, in case a function is configured by hand.
        if stage == "prod" && provider_base_url.is_some() {
            r.problems.push(ConfigProblem::Invalid {
                name: "PROVIDER_BASE_URL",
                reason: "must not be set when STAGE=prod (it points every provider call at a sandbox)".into(),
            });
        }
        let log_level = r.optional_or("LOG_LEVEL", "info");
        if let Err(reason) = crate::telemetry::log_filter(&log_level) {
            r.problems.push(ConfigProblem::Invalid { name: "LOG_LEVEL", reason });
        }
        let webhook_max_body_bytes = r.parsed("WEBHOOK_MAX_BODY_BYTES", 262_144usize, |v| {
            if (1024..=6 * 1024 * 1024).contains(v) {
                Ok(())
            } else {
                Err("must be between 1024 and 6291456 bytes".into())
            }
        });
        let refresh_window = r.seconds("REFRESH_WINDOW_SECONDS", 600, 60, 86_400);
        let lease_duration = r.seconds("LEASE_SECONDS", 60, 5, 900);
        let oauth_state_ttl = r.seconds("OAUTH_STATE_TTL_SECONDS", 600, 60, 3600);
        let data_key_cache_max_age = r.seconds("DATA_KEY_CACHE_MAX_AGE_SECONDS", 300, 0, 86_400);
        let data_key_cache_max_uses = r.parsed("DATA_KEY_CACHE_MAX_USES", 10_000u32, |_| Ok(()));
        let provider_timeout = r.seconds("PROVIDER_TIMEOUT_SECONDS", 20, 1, 120);
        let quickbooks_environment = r.parsed("QUICKBOOKS_ENVIRONMENT", QuickBooksEnvironment::Production, |_| Ok(()));
        let xero_scope_set = r.parsed("XERO_SCOPE_SET", XeroScopeSet::Granular, |_| Ok(()));

        if !r.problems.is_empty() {
            return Err(ConfigError { problems: r.problems });
        }
        Ok(Config {
            stage,
            region,
            tables,
            queues,
            kms_key_id,
            secrets,
            public_base_url: public_base_url.expect("checked above"),
            provider_base_url,
            log_level,
            webhook_max_body_bytes,
            refresh_window,
            lease_duration,
            oauth_state_ttl,
            data_key_cache_max_age,
            data_key_cache_max_uses,
            provider_timeout,
            quickbooks_environment,
            xero_scope_set,
        })
    }

    /// Every variable this crate reads, for the table in docs/configuration.md and for tests.
    pub const REQUIRED: [&'static str; 16] = [
        "STAGE",
        "AWS_REGION",
        "TENANTS_TABLE",
        "GRANTS_TABLE",
        "EPHEMERAL_TABLE",
        "RESILIENCE_TABLE",
        "SYNC_TABLE",
        "SYNC_QUEUE_HIGH_URL",
        "SYNC_QUEUE_NORMAL_URL",
        "SYNC_QUEUE_LOW_URL",
        "EVENTS_QUEUE_URL",
        "KMS_KEY_ID",
        "PROVIDER_CREDENTIALS_SECRET_ID",
        "WEBHOOK_KEYS_SECRET_ID",
        "APP_SIGNING_SECRET_ID",
        "PUBLIC_BASE_URL",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn full() -> HashMap<&'static str, String> {
        Config::REQUIRED
            .iter()
            .map(|k| {
                let v = match *k {
                    "PUBLIC_BASE_URL" => "https://api.example.com".to_string(),
                    "STAGE" => "dev".to_string(),
                    other => format!("value-of-{other}"),
                };
                (*k, v)
            })
            .collect()
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn complete_environment_loads_with_documented_defaults() {
        let c = load(&full()).unwrap();
        assert_eq!(c.tables.grants, "value-of-GRANTS_TABLE");
        assert_eq!(c.webhook_max_body_bytes, 262_144);
        assert_eq!(c.refresh_window, Duration::from_secs(600));
        assert_eq!(c.provider_base_url, None);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn quickbooks_environment_and_xero_scope_set_are_read() {
        let c = load(&full()).unwrap();
        assert_eq!((c.quickbooks_environment, c.xero_scope_set), (QuickBooksEnvironment::Production, XeroScopeSet::Granular));
        let mut vars = full();
        vars.insert("QUICKBOOKS_ENVIRONMENT", "sandbox".into());
        vars.insert("XERO_SCOPE_SET", "broad".into());
        let c = load(&vars).unwrap();
        assert_eq!((c.quickbooks_environment, c.xero_scope_set), (QuickBooksEnvironment::Sandbox, XeroScopeSet::Broad));
        vars.insert("QUICKBOOKS_ENVIRONMENT", "staging".into());
        vars.insert("XERO_SCOPE_SET", "all".into());
        assert_eq!(load(&vars).unwrap_err().names(), vec!["QUICKBOOKS_ENVIRONMENT", "XERO_SCOPE_SET"]);
    }

    #[test]
    fn each_missing_variable_is_named() {
        for name in Config::REQUIRED {
            let mut vars = full();
            vars.remove(name);
            let err = load(&vars).unwrap_err();
            assert_eq!(err.names(), vec![name], "removing {name}");
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn blank_counts_as_missing_and_all_problems_are_reported_together() {
        let mut vars = full();
        vars.insert("KMS_KEY_ID", "   ".into());
        vars.remove("STAGE");
        vars.insert("LEASE_SECONDS", "abc".into());
        let err = load(&vars).unwrap_err();
        assert_eq!(err.names(), vec!["STAGE", "KMS_KEY_ID", "LEASE_SECONDS"]);
    }

    #[test]
    fn invalid_values_are_rejected_with_a_reason() {
        let cases = [
            ("PUBLIC_BASE_URL", "not a url"),
            ("PUBLIC_BASE_URL", "ftp://example.com"),
            ("PROVIDER_BASE_URL", "::"),
            ("WEBHOOK_MAX_BODY_BYTES", "10"),
            ("REFRESH_WINDOW_SECONDS", "5"),
            ("STAGE", "dev stage"),
            ("LOG_LEVEL", "info,[[["),
        ];
        for (name, value) in cases {
            let mut vars = full();
            vars.insert(name, value.into());
            let err = load(&vars).unwrap_err();
            assert_eq!(err.names(), vec![name], "{name}={value}");
            assert!(matches!(err.problems[0], ConfigProblem::Invalid { .. }));
        }
    }

    #[test]
    fn a_provider_sandbox_is_refused_in_prod() {
        let mut vars = full();
        vars.insert("STAGE", "prod".into());
        assert!(load(&vars).is_ok());
        vars.insert("PROVIDER_BASE_URL", "http://127.0.0.1:8787".into());
        let err = load(&vars).unwrap_err();
        assert_eq!(err.names(), vec!["PROVIDER_BASE_URL"]);
        vars.insert("STAGE", "dev".into());
        assert!(load(&vars).is_ok(), "dev may use the sandbox");
    }

    #[test]
    fn config_error_becomes_the_config_error_code() {
        let err = load(&HashMap::new()).unwrap_err();
        assert_eq!(err.problems.len(), Config::REQUIRED.len());
        let e: crate::Error = err.into();
        assert_eq!(e.code(), crate::ErrorCode::Config);
        assert!(!e.is_retryable());
    }
}
