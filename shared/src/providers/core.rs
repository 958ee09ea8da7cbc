//! Plumbing the three clients share: send a request, read the answer, map failures.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Result;
use crate::http_client::HttpClient;
use crate::providers::endpoints::Endpoints;
use crate::providers::errors::{provider_error, rate_limit_info, success_json, ApiResponse};
use crate::providers::model::{ClientCredentials, RateLimitInfo};
use crate::providers::Provider;

#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub provider: Provider,
    pub endpoints: Endpoints,
    pub credentials: ClientCredentials,
    pub http: HttpClient,
}

/// A successful API answer.
#[derive(Debug)]
pub(crate) struct ApiOk {
    pub body: Value,
    pub rate_limit: RateLimitInfo,
    /// The response's `Date` header, when the provider sent one.
    pub date: Option<DateTime<Utc>>,
}

impl Core {
    pub fn new(provider: Provider, endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        Core { provider, endpoints, credentials, http }
    }

    /// Sends and reads the whole response; the only errors are transport errors.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<ApiResponse> {
        let resp = req.send().await.map_err(|e| self.http.transport_error(self.provider, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.http.transport_error(self.provider, e))?;
        Ok(ApiResponse { status, headers, body })
    }

    /// Sends an API request and returns its JSON, or the provider's error mapped to ours.
    pub async fn call(&self, req: reqwest::RequestBuilder) -> Result<ApiOk> {
        let resp = self.send(req.header(http::header::ACCEPT, "application/json")).await?;
        let now = Utc::now();
        if let Some(err) = provider_error(self.provider, &resp, now) {
            tracing::debug!(provider = %self.provider, status = resp.status, code = %err.code(), "provider call failed");
            return Err(err);
        }
        let body = success_json(self.provider, &resp)?;
        let date = resp
            .headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc));
        Ok(ApiOk { body, rate_limit: rate_limit_info(&resp.headers, now), date })
    }

    /// For calls whose success has no body (DELETE answering 204).
    pub async fn call_no_content(&self, req: reqwest::RequestBuilder) -> Result<()> {
        let resp = self.send(req.header(http::header::ACCEPT, "application/json")).await?;
        match provider_error(self.provider, &resp, Utc::now()) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}
