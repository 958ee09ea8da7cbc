//! Secrets Manager access, cached per container.
//!
//! A Lambda container serves many invocations; fetching a secret on each would add latency and
//! Secrets Manager cost, and caching forever would miss a rotation. Entries live for a TTL (five
//! minutes by default), after which the next read fetches again. `invalidate` drops an entry early
//! (e.g. when every cached webhook key fails to verify, in case the key was just rotated).
//!
//! Nothing here prints secret content: values are `SecretString`, and JSON errors are reported by
//! position only, because serde_json's messages can quote the offending value.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use crate::config::{ConfigError, ConfigProblem};
use crate::error::{Error, Result};
use crate::providers::{ClientCredentials, Provider};
use crate::secret::SecretString;

pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// How long secrets stay cached in a container before Secrets Manager is asked again (the connect
/// and refresh flows' caches).
pub const SECRETS_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The variables that name each secret, so an error says which setting to fix.
const CREDENTIALS_VAR: &str = "PROVIDER_CREDENTIALS_SECRET_ID";
const WEBHOOK_KEYS_VAR: &str = "WEBHOOK_KEYS_SECRET_ID";
const APP_SIGNING_VAR: &str = "APP_SIGNING_SECRET_ID";

/// A provider's webhook signing key, and the previous one while a rotation is in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookKeys {
    pub current: SecretString,
    pub previous: Option<SecretString>,
}

impl WebhookKeys {
    /// Current first: the order to try them in.
    pub fn all(&self) -> impl Iterator<Item = &SecretString> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// Our own keys: connect-request signing keys by key id, and the OAuth state signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSigning {
    pub connect_keys: BTreeMap<String, SecretString>,
    pub state_key: SecretString,
}

struct Entry {
    fetched: Instant,
    value: Arc<SecretString>,
}

pub struct SecretsCache {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// One fetch at a time: a read arriving while another fetch (the init prefetch) is in flight
    /// waits for it and takes its value instead of reading Secrets Manager a second time.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SecretsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn config_error(var: &'static str, reason: String) -> Error {
    Error::Config(ConfigError { problems: vec![ConfigProblem::Invalid { name: var, reason }] })
}

fn json_error(var: &'static str, secret_id: &str, e: &serde_json::Error) -> Error {
    let kind = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof | serde_json::error::Category::Io => "is not valid JSON",
        serde_json::error::Category::Data => "does not have the expected shape",
    };
    config_error(var, format!("secret '{secret_id}' {kind} (line {}, column {})", e.line(), e.column()))
}

fn fetch_error(var: &'static str, secret_id: &str, e: SdkError<GetSecretValueError>) -> Error {
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("unknown");
            match err {
                GetSecretValueError::ResourceNotFoundException(_) => config_error(var, format!("secret '{secret_id}' does not exist")),
                GetSecretValueError::InternalServiceError(_) => {
                    Error::Storage { message: format!("secrets manager failed reading '{secret_id}' ({code})"), retryable: true }
                }
                _ if code.contains("Throttl") => {
                    Error::Storage { message: format!("secrets manager throttled reading '{secret_id}'"), retryable: true }
                }
                // Access denied, decryption failure, invalid request: someone has to fix the setup.
                _ => config_error(var, format!("secret '{secret_id}' cannot be read ({code})")),
            }
        }
        // Timeouts, connection and dispatch failures.
        _ => Error::Storage { message: format!("secrets manager unreachable reading '{secret_id}': {e}"), retryable: true },
    }
}

#[derive(serde::Deserialize)]
struct CredentialsEntry {
    client_id: String,
    client_secret: SecretString,
}

#[derive(serde::Deserialize)]
struct WebhookEntry {
    current: SecretString,
    #[serde(default)]
    previous: Option<SecretString>,
}

#[derive(serde::Deserialize)]
struct AppSigningJson {
    connect_keys: BTreeMap<String, SecretString>,
    state_key: SecretString,
}

fn parse<T: serde::de::DeserializeOwned>(var: &'static str, secret_id: &str, raw: &SecretString) -> Result<T> {
    serde_json::from_str(raw.expose()).map_err(|e| json_error(var, secret_id, &e))
}

pub fn parse_provider_credentials(secret_id: &str, raw: &SecretString, provider: Provider) -> Result<ClientCredentials> {
    let mut all: HashMap<String, CredentialsEntry> = parse(CREDENTIALS_VAR, secret_id, raw)?;
    let entry = all
        .remove(provider.as_str())
        .ok_or_else(|| config_error(CREDENTIALS_VAR, format!("secret '{secret_id}' has no entry for {provider}")))?;
    if entry.client_id.trim().is_empty() || entry.client_secret.is_empty() {
        return Err(config_error(CREDENTIALS_VAR, format!("secret '{secret_id}' has an empty client_id or client_secret for {provider}")));
    }
    Ok(ClientCredentials { client_id: entry.client_id, client_secret: entry.client_secret })
}

pub fn parse_webhook_keys(secret_id: &str, raw: &SecretString, provider: Provider) -> Result<WebhookKeys> {
    let mut all: HashMap<String, WebhookEntry> = parse(WEBHOOK_KEYS_VAR, secret_id, raw)?;
    let entry = all
        .remove(provider.as_str())
        .ok_or_else(|| config_error(WEBHOOK_KEYS_VAR, format!("secret '{secret_id}' has no entry for {provider}")))?;
    if entry.current.is_empty() {
        return Err(config_error(WEBHOOK_KEYS_VAR, format!("secret '{secret_id}' has an empty current key for {provider}")));
    }
    Ok(WebhookKeys { current: entry.current, previous: entry.previous.filter(|p| !p.is_empty()) })
}

pub fn parse_app_signing(secret_id: &str, raw: &SecretString) -> Result<AppSigning> {
    let v: AppSigningJson = parse(APP_SIGNING_VAR, secret_id, raw)?;
    if v.state_key.is_empty() || v.connect_keys.is_empty() || v.connect_keys.values().any(SecretString::is_empty) {
        return Err(config_error(
            APP_SIGNING_VAR,
            format!("secret '{secret_id}' needs a state_key and at least one non-empty connect key"),
        ));
    }
    Ok(AppSigning { connect_keys: v.connect_keys, state_key: v.state_key })
}

impl SecretsCache {
    pub fn new(client: aws_sdk_secretsmanager::Client, ttl: Duration) -> Self {
        SecretsCache { client, ttl, entries: Mutex::new(HashMap::new()), fetching: tokio::sync::Mutex::new(()) }
    }

    fn cached(&self, secret_id: &str) -> Option<Arc<SecretString>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(secret_id).filter(|e| e.fetched.elapsed() < self.ttl).map(|e| e.value.clone())
    }

    /// The secret's string, from the cache while fresh.
    async fn raw(&self, var: &'static str, secret_id: &str) -> Result<Arc<SecretString>> {
        if let Some(v) = self.cached(secret_id) {
            return Ok(v);
        }
        let _one_fetch = self.fetching.lock().await;
        if let Some(v) = self.cached(secret_id) {
            return Ok(v);
        }
        let out = self.client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| fetch_error(var, secret_id, e))?;
        let value = out
            .secret_string
            .map(SecretString::new)
            .ok_or_else(|| config_error(var, format!("secret '{secret_id}' has no string value")))?;
        let value = Arc::new(value);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(secret_id.to_string(), Entry { fetched: Instant::now(), value: value.clone() });
        Ok(value)
    }

    /// Forgets a secret so the next read fetches it again.
    pub fn invalidate(&self, secret_id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(secret_id);
    }

    /// `{"quickbooks": {"client_id": "..", "client_secret": ".."}, "xero": {..}, "zoho": {..}}`
    pub async fn provider_credentials(&self, secret_id: &str, provider: Provider) -> Result<ClientCredentials> {
        parse_provider_credentials(secret_id, &*self.raw(CREDENTIALS_VAR, secret_id).await?, provider)
    }

    /// `{"quickbooks": {"current": "..", "previous": ".."}, "xero": {"current": ".."}}`
    pub async fn webhook_keys(&self, secret_id: &str, provider: Provider) -> Result<WebhookKeys> {
        parse_webhook_keys(secret_id, &*self.raw(WEBHOOK_KEYS_VAR, secret_id).await?, provider)
    }

    /// `{"connect_keys": {"<kid>": ".."}, "state_key": ".."}`
    pub async fn app_signing(&self, secret_id: &str) -> Result<AppSigning> {
        parse_app_signing(secret_id, &*self.raw(APP_SIGNING_VAR, secret_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn s(v: &str) -> SecretString {
        SecretString::new(v)
    }

    #[test]
    fn provider_credentials_are_read_per_provider() {
        let raw =
            s(r#"{"quickbooks":{"client_id":"q-id","client_secret":"q-secret"},"xero":{"client_id":"x-id","client_secret":"x-secret"}}"#);
        let q = parse_provider_credentials("creds", &raw, Provider::QuickBooks).unwrap();
        assert_eq!((q.client_id.as_str(), q.client_secret.expose()), ("q-id", "q-secret"));
        assert!(!format!("{q:?}").contains("q-secret"));
        let e = parse_provider_credentials("creds", &raw, Provider::Zoho).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Config);
        assert!(e.to_string().contains("zoho") && e.to_string().contains(CREDENTIALS_VAR), "{e}");
        let empty = s(r#"{"zoho":{"client_id":"","client_secret":"z"}}"#);
        assert_eq!(parse_provider_credentials("creds", &empty, Provider::Zoho).unwrap_err().code(), ErrorCode::Config);
    }

    #[test]
    fn invalid_json_errors_never_quote_the_secret() {
        for raw in [
            r#"{"xero":{"client_id":"x","client_secret":12345678}}"#,
            r#"{"xero":{"client_id":"x","client_secret":"hunter2-topsecret""#,
            "hunter2-topsecret",
        ] {
            let e = parse_provider_credentials("creds", &s(raw), Provider::Xero).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert_eq!(e.code(), ErrorCode::Config);
            assert!(!shown.contains("hunter2") && !shown.contains("12345678"), "{shown}");
        }
    }

    #[test]
    fn webhook_keys_with_and_without_previous() {
        let raw = s(r#"{"quickbooks":{"current":"k2","previous":"k1"},"xero":{"current":"x1"},"zoho":{"current":"z","previous":""}}"#);
        let q = parse_webhook_keys("wk", &raw, Provider::QuickBooks).unwrap();
        assert_eq!(q.all().map(|k| k.expose().to_string()).collect::<Vec<_>>(), vec!["k2", "k1"]);
        assert_eq!(parse_webhook_keys("wk", &raw, Provider::Xero).unwrap().previous, None);
        assert_eq!(parse_webhook_keys("wk", &raw, Provider::Zoho).unwrap().previous, None);
        let e = parse_webhook_keys("wk", &s(r#"{"xero":{"current":""}}"#), Provider::Xero).unwrap_err();
        assert!(e.to_string().contains(WEBHOOK_KEYS_VAR));
    }

    #[test]
    fn app_signing_needs_keys() {
        let ok = parse_app_signing("as", &s(r#"{"connect_keys":{"k1":"a","k2":"b"},"state_key":"st"}"#)).unwrap();
        assert_eq!(ok.connect_keys.len(), 2);
        assert_eq!(ok.state_key.expose(), "st");
        for bad in [r#"{"connect_keys":{},"state_key":"st"}"#, r#"{"connect_keys":{"k":"a"},"state_key":""}"#, r#"{"state_key":"x"}"#] {
            assert_eq!(parse_app_signing("as", &s(bad)).unwrap_err().code(), ErrorCode::Config, "{bad}");
        }
    }
}
