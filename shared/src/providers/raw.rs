//! Calls outside the entity API: the reports endpoints and the main app's passthrough calls.
//!
//! The org routing and the token are always added here, never taken from the caller: QuickBooks'
//! realm is the first path segment, Xero's tenant goes in `xero-tenant-id`, Zoho's organisation in
//! `organization_id` (and Zoho's API domain is the grant's own, checked against the known data
//! centres). `segments` are pushed one by one as path segments, so none can climb out of the API
//! root or name another host.

use std::time::Instant;

use chrono::Utc;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::providers::client::ProviderClient;
use crate::providers::core::Core;
use crate::providers::endpoints::Endpoints;
use crate::providers::errors::{provider_error, success_json, ApiResponse};
use crate::providers::model::api_url;
use crate::providers::Provider;
use crate::tokens::TokenSet;

/// QuickBooks' minor version, as the entity client sends it.
const QUICKBOOKS_MINOR_VERSION: &str = "75";

/// A provider's answer to a passthrough call, as read off the wire.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
    pub latency_ms: u64,
}

fn digits(provider: Provider, org_id: &str, what: &str) -> Result<()> {
    if !org_id.is_empty() && org_id.len() <= 32 && org_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("{provider} {what} must be digits")))
    }
}

/// The request for `segments` under the org's API root, with token and org routing.
fn request(
    client: &ProviderClient,
    tokens: &TokenSet,
    org_id: &str,
    method: reqwest::Method,
    segments: &[&str],
    query: &[(String, String)],
) -> Result<(reqwest::RequestBuilder, Provider)> {
    let core: &Core = match client {
        ProviderClient::QuickBooks(c) => c.core(),
        ProviderClient::Xero(c) => c.core(),
        ProviderClient::Zoho(c) => c.core(),
    };
    let provider = core.provider;
    let http = core.http.reqwest();
    let req = match provider {
        Provider::QuickBooks => {
            digits(provider, org_id, "realmId")?;
            let mut all = vec![org_id];
            all.extend_from_slice(segments);
            let url = api_url(&core.endpoints.api, &all)?;
            http.request(method, url)
                .bearer_auth(tokens.access_token.expose())
                .query(query)
                .query(&[("minorversion", QUICKBOOKS_MINOR_VERSION)])
        }
        Provider::Xero => {
            if org_id.is_empty() || org_id.len() > 64 || !org_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(Error::InvalidInput("Xero tenant id must be a uuid".into()));
            }
            let url = api_url(&core.endpoints.api, segments)?;
            http.request(method, url).bearer_auth(tokens.access_token.expose()).header("xero-tenant-id", org_id).query(query)
        }
        Provider::Zoho => {
            digits(provider, org_id, "organization_id")?;
            let base = match tokens.api_domain.as_deref() {
                Some(d) => Endpoints::zoho_api_base(&core.endpoints.zoho_check_api_domain(d)?)?,
                None => core.endpoints.api.clone(),
            };
            let url = api_url(&base, segments)?;
            http.request(method, url)
                .header(http::header::AUTHORIZATION, format!("Zoho-oauthtoken {}", tokens.access_token.expose()))
                .query(query)
                .query(&[("organization_id", org_id)])
        }
    };
    Ok((req.header(http::header::ACCEPT, "application/json"), provider))
}

fn core_of(client: &ProviderClient) -> &Core {
    match client {
        ProviderClient::QuickBooks(c) => c.core(),
        ProviderClient::Xero(c) => c.core(),
        ProviderClient::Zoho(c) => c.core(),
    }
}

/// GET `segments` and return its JSON, or the provider's error mapped to ours (a 200 carrying an
/// error body, as QuickBooks and Zoho send, is an error too).
pub async fn get_json(
    client: &ProviderClient,
    tokens: &TokenSet,
    org_id: &str,
    segments: &[&str],
    query: &[(String, String)],
) -> Result<Value> {
    let (req, provider) = request(client, tokens, org_id, reqwest::Method::GET, segments, query)?;
    let resp = core_of(client).send(req).await?;
    if let Some(err) = provider_error(provider, &resp, Utc::now()) {
        return Err(err);
    }
    success_json(provider, &resp)
}

/// Sends one passthrough call and returns the provider's answer, whatever its status, except the
/// ones our machinery must act on: a refused token (so the caller refreshes and retries once), a
/// throttle (so the limiter backs off) and a server failure or timeout (so the breaker counts it).
pub async fn call(
    client: &ProviderClient,
    tokens: &TokenSet,
    org_id: &str,
    method: reqwest::Method,
    segments: &[&str],
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<RawAnswer> {
    let (mut req, provider) = request(client, tokens, org_id, method, segments, query)?;
    if let Some(b) = body {
        req = req.json(b);
    }
    let started = Instant::now();
    let resp: ApiResponse = core_of(client).send(req).await?;
    let latency_ms = started.elapsed().as_millis() as u64;
    if let Some(err) = provider_error(provider, &resp, Utc::now()) {
        if matches!(
            err,
            Error::ProviderAuth { .. }
                | Error::ProviderRateLimited { .. }
                | Error::ProviderTransient { .. }
                | Error::ProviderTimeout { .. }
        ) {
            return Err(err);
        }
    }
    let content_type = resp.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(RawAnswer { status: resp.status, content_type, body: resp.body, latency_ms })
}
