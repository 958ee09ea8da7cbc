//! Zoho Books webhooks, registered per organisation through its API.
//!
//! QuickBooks and Xero deliver to one URL configured for the whole app; Zoho Books has no app-level
//! subscription, so the connect flow registers a webhook in each organisation it connects
//! (`POST {api_domain}/books/v3/settings/webhooks?organization_id=..`, scope ZohoBooks.settings.CREATE)
//! and disconnect removes it (`DELETE .../settings/webhooks/{webhook_id}`).
//!
//! Each organisation gets its own random secret. Zoho documents a `secret` field for signature
//! verification but not the signature scheme, so the secret also travels in a custom header we set
//! (`x-ttya-webhook-secret`), which the receiver compares in constant time. Zoho requires the
//! `secret` to be 12-50 alphanumeric characters; we use 40 (about 238 bits).

use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};
use url::Url;

use crate::error::{Error, Result};
use crate::http_client::HttpClient;
use crate::providers::endpoints::Endpoints;
use crate::providers::errors::{success_json, zoho_error, ApiResponse};
use crate::providers::Provider;
use crate::secret::SecretString;

/// The header our per-organisation secret travels in.
pub const SECRET_HEADER: &str = "x-ttya-webhook-secret";
pub const SECRET_LEN: usize = 40;
/// The entities whose changes the sync worker cares about (Zoho module names).
pub const ENTITIES: [&str; 4] = ["invoice", "contact", "customerpayment", "chartofaccount"];

/// A fresh per-organisation secret in the alphabet Zoho accepts.
pub fn new_secret() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    SecretString::new((0..SECRET_LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect::<String>())
}

/// `{public_base_url}/webhooks/zoho?organization_id=<org>`: the receiver reads the org from the query
/// string before it parses any body.
pub fn callback_url(public_base_url: &Url, org_id: &str) -> Url {
    let mut u = public_base_url.clone();
    let path = format!("{}/webhooks/zoho", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u.query_pairs_mut().clear().append_pair("organization_id", org_id);
    u
}

/// What we register in one organisation.
#[derive(Debug, Clone)]
pub struct WebhookSpec<'a> {
    pub org_id: &'a str,
    pub url: &'a Url,
    pub entity: &'a str,
    pub secret: &'a SecretString,
}

impl WebhookSpec<'_> {
    /// The create body. The name is unique per entity so an org's webhook list shows what is ours.
    pub fn body(&self) -> Value {
        json!({
            "webhook_name": format!("ttya-{}", self.entity),
            "description": "Talk to Your Accounts: change notifications (the app re-reads the record)",
            "entity": self.entity,
            "url": self.url.as_str(),
            "method": "POST",
            "body_type": "application/json",
            "headers": [{ "param_name": SECRET_HEADER, "param_value": self.secret.expose() }],
            "secret": self.secret.expose(),
            "events": ["created", "updated", "deleted"],
        })
    }
}

/// A client for one grant's API domain.
#[derive(Debug, Clone)]
pub struct ZohoWebhooks<'a> {
    http: &'a HttpClient,
    /// `{api_domain}/books/v3/`, checked against the known Zoho data centres.
    api_base: Url,
}

impl<'a> ZohoWebhooks<'a> {
    /// `api_domain` comes from the token response; it is checked against Zoho's data centres (or the
    /// sandbox's) before any token is sent to it.
    pub fn new(http: &'a HttpClient, endpoints: &Endpoints, api_domain: &str) -> Result<Self> {
        let domain = endpoints.zoho_check_api_domain(api_domain)?;
        Ok(ZohoWebhooks { http, api_base: Endpoints::zoho_api_base(&domain)? })
    }

    fn url(&self, path: &str, org_id: &str) -> Result<Url> {
        let mut u = self.api_base.join(path).map_err(|e| Error::Internal(format!("zoho webhooks url: {e}")))?;
        u.query_pairs_mut().append_pair("organization_id", org_id);
        Ok(u)
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: &SecretString) -> Result<Value> {
        let resp = req
            .header("authorization", format!("Zoho-oauthtoken {}", token.expose()))
            .send()
            .await
            .map_err(|e| self.http.transport_error(Provider::Zoho, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.http.transport_error(Provider::Zoho, e))?;
        let api = ApiResponse { status, headers, body };
        if let Some(err) = zoho_error(&api, Utc::now()) {
            return Err(err);
        }
        success_json(Provider::Zoho, &api)
    }

    /// Registers one webhook; returns Zoho's webhook id.
    pub async fn register(&self, token: &SecretString, spec: &WebhookSpec<'_>) -> Result<String> {
        let req = self.http.reqwest().post(self.url("settings/webhooks", spec.org_id)?).json(&spec.body());
        let body = self.send(req, token).await?;
        body["webhook"]["webhook_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| body["webhook"]["webhook_id"].as_i64().map(|n| n.to_string()))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::ProviderMalformed {
                provider: Provider::Zoho,
                message: "webhook create answer has no webhook.webhook_id".into(),
            })
    }

    /// Removes a webhook. One that is already gone counts as removed.
    pub async fn delete(&self, token: &SecretString, org_id: &str, webhook_id: &str) -> Result<()> {
        if webhook_id.is_empty() || !webhook_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::InvalidInput("webhook id has unexpected characters".into()));
        }
        let req = self.http.reqwest().delete(self.url(&format!("settings/webhooks/{webhook_id}"), org_id)?);
        match self.send(req, token).await {
            Ok(_) => Ok(()),
            Err(Error::NotFound(_)) => Ok(()),
            Err(Error::ProviderPermanent { status: Some(404), .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Several webhook ids of one organisation (one per entity) kept in `Connection::webhook_id`.
pub fn join_ids(ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        None
    } else {
        Some(ids.join(","))
    }
}

pub fn split_ids(stored: Option<&str>) -> Vec<String> {
    stored.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_fit_zohos_rules_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert!((12..=50).contains(&a.expose().len()));
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn callback_url_carries_the_org_and_keeps_the_base_path() {
        let base = Url::parse("https://api.example.com/prod/").unwrap();
        assert_eq!(callback_url(&base, "700000001").as_str(), "https://api.example.com/prod/webhooks/zoho?organization_id=700000001");
        let base = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(callback_url(&base, "a&b").as_str(), "http://127.0.0.1:9000/webhooks/zoho?organization_id=a%26b");
    }

    #[test]
    fn create_body_sets_header_and_secret_and_never_prints_the_secret_in_debug() {
        let secret = SecretString::new("S3cretS3cretS3cret");
        let url = Url::parse("https://api.example.com/webhooks/zoho?organization_id=1").unwrap();
        let spec = WebhookSpec { org_id: "1", url: &url, entity: "invoice", secret: &secret };
        let body = spec.body();
        assert_eq!(body["headers"][0]["param_name"], SECRET_HEADER);
        assert_eq!(body["headers"][0]["param_value"], "S3cretS3cretS3cret");
        assert_eq!(body["secret"], "S3cretS3cretS3cret");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["url"], url.as_str());
        assert!(!format!("{spec:?}").contains("S3cret"));
    }

    #[test]
    fn webhook_ids_round_trip() {
        let ids = vec!["1".to_string(), "22".to_string()];
        assert_eq!(split_ids(join_ids(&ids).as_deref()), ids);
        assert_eq!(join_ids(&[]), None);
        assert!(split_ids(None).is_empty());
    }

    #[test]
    fn api_domain_must_be_a_zoho_one() {
        let http = HttpClient::new(std::time::Duration::from_secs(1)).unwrap();
        let e = Endpoints::real(Provider::Zoho);
        assert!(ZohoWebhooks::new(&http, &e, "https://www.zohoapis.eu").is_ok());
        assert!(ZohoWebhooks::new(&http, &e, "https://attacker.example").is_err());
    }
}
