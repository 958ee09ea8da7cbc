//! Plumbing the three clients share: send a request, read the answer, map failures.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, Result};

/// The largest provider response body we read. A full QuickBooks page (1,000 invoices with lines)
/// is a few MB; anything past this is refused rather than buffered.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
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
    /// The response's `Date` header, when the provider sent one.
    pub date: Option<DateTime<Utc>>,
}

/// A successful API answer, its body as received.
#[derive(Debug)]
pub(crate) struct ApiText {
    pub response: ApiResponse,
    pub rate_limit: RateLimitInfo,
    pub date: Option<DateTime<Utc>>,
}

impl Core {
    pub fn new(provider: Provider, endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        Core { provider, endpoints, credentials, http }
    }

    /// Sends and reads the whole response; the only errors are transport errors.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<ApiResponse> {
        let mut resp = req.send().await.map_err(|e| self.http.transport_error(self.provider, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // Read with a cap: a provider (or anything posing as one) must not make us buffer an
        // unbounded body. The declared length is checked first, then the bytes actually read.
        let too_large = |n: u64| Error::ProviderMalformed {
            provider: self.provider,
            message: format!("response body of at least {n} bytes exceeds the {MAX_RESPONSE_BYTES}-byte limit"),
        };
        if let Some(len) = resp.content_length() {
            if len > MAX_RESPONSE_BYTES as u64 {
                return Err(too_large(len));
            }
        }
        let mut body = bytes::BytesMut::with_capacity(resp.content_length().unwrap_or(8192).min(1 << 20) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.http.transport_error(self.provider, e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(ApiResponse { status, headers, body: body.freeze() })
    }

    /// Sends an API request and returns its JSON, or the provider's error mapped to ours.
    pub async fn call(&self, req: reqwest::RequestBuilder) -> Result<ApiOk> {
        let ok = self.call_text(req).await?;
        let body = success_json(self.provider, &ok.response)?;
        Ok(ApiOk { body, date: ok.date })
    }

    /// `call`, the successful answer's body left unparsed (list pages are read a record at a time:
    /// `model::split_page`).
    pub async fn call_text(&self, req: reqwest::RequestBuilder) -> Result<ApiText> {
        let resp = self.send(req.header(http::header::ACCEPT, "application/json")).await?;
        let now = Utc::now();
        if let Some(err) = provider_error(self.provider, &resp, now) {
            tracing::debug!(provider = %self.provider, status = resp.status, code = %err.code(), "provider call failed");
            return Err(err);
        }
        let date = resp
            .headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc));
        Ok(ApiText { rate_limit: rate_limit_info(&resp.headers, now), date, response: resp })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretString;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn core() -> Core {
        let creds = ClientCredentials { client_id: "c".into(), client_secret: SecretString::new("s".to_string()) };
        Core::new(Provider::Xero, Endpoints::real(Provider::Xero), creds, HttpClient::new(std::time::Duration::from_secs(5)).unwrap())
    }

    /// A server that answers one request with `head` and then streams `body_len` bytes.
    async fn serve(head: String, body_len: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = chunk.len().min(body_len - sent);
                if sock.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                sent += n;
            }
        });
        addr
    }

    #[tokio::test]
    async fn bodies_past_the_cap_are_refused_whether_declared_or_streamed() {
        let c = core();
        let declared = serve(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE_BYTES + 1), 10).await;
        let e = c.send(c.http.reqwest().get(format!("http://{declared}/"))).await.unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ProviderMalformed, "{e}");
        // No length declared: the bytes read are counted.
        let streamed = serve("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string(), MAX_RESPONSE_BYTES + 100_000).await;
        let e = c.send(c.http.reqwest().get(format!("http://{streamed}/"))).await.unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ProviderMalformed, "{e}");
        let small = serve("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_string(), 5).await;
        assert_eq!(c.send(c.http.reqwest().get(format!("http://{small}/"))).await.unwrap().body.len(), 5);
    }
}
