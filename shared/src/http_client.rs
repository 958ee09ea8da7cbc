//! The one outbound HTTP client of a process.
//!
//! reqwest pools connections per `Client`, so building one per request would pay a TLS handshake on
//! every provider call; a Lambda container keeps this one alive between invocations. Redirects are
//! never followed: a provider that answers a token or API call with a redirect is misbehaving, and
//! following it could carry our credentials to a host we did not choose.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::provider::Provider;

/// The longest we wait for a TCP/TLS connection, whatever the overall request timeout is.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    timeout: Duration,
}

static SHARED: OnceLock<HttpClient> = OnceLock::new();

impl HttpClient {
    /// A client whose every request (connect, send, read the whole body) ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self> {
        install_crypto_provider();
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tya-integrations/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient { inner, timeout })
    }

    /// The process-wide client, built on first use with the configured provider timeout. Later calls
    /// return the same client whatever their config says: one process has one configuration.
    pub fn shared(config: &crate::Config) -> Result<&'static HttpClient> {
        if let Some(c) = SHARED.get() {
            return Ok(c);
        }
        let built = HttpClient::new(config.provider_timeout)?;
        Ok(SHARED.get_or_init(|| built))
    }

    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Maps a transport failure to our error: a timeout is retryable and says how long we waited;
    /// connection failures are transient. The URL is dropped because some provider URLs carry a
    /// token in the query string (Zoho's revoke).
    pub fn transport_error(&self, provider: Provider, e: reqwest::Error) -> Error {
        let e = e.without_url();
        if e.is_timeout() {
            Error::ProviderTimeout { provider, timeout: self.timeout }
        } else if e.is_decode() {
            Error::ProviderMalformed { provider, message: e.to_string() }
        } else if e.is_builder() {
            Error::Internal(format!("cannot build a {provider} request: {e}"))
        } else {
            Error::ProviderTransient { provider, status: None, message: format!("transport: {}", error_chain(&e)) }
        }
    }
}

/// reqwest is built without a rustls provider of its own; aws-lc-rs (the AWS SDK's) becomes the
/// process default. Installing twice fails harmlessly, so this is safe from any thread.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_retryable_timeout_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept and hold the connection open without ever writing a response.
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(sock);
        });
        let client = HttpClient::new(Duration::from_millis(500)).unwrap();
        let started = std::time::Instant::now();
        let err = client.reqwest().get(format!("http://{addr}/slow?token=secret-in-url")).send().await.unwrap_err();
        let mapped = client.transport_error(Provider::Xero, err);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert_eq!(mapped.code(), ErrorCode::ProviderTimeout);
        assert!(mapped.is_retryable());
        assert!(!mapped.to_string().contains("secret-in-url"));
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_does_not_echo_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = HttpClient::new(Duration::from_secs(2)).unwrap();
        let err = client.reqwest().get(format!("http://{addr}/revoke?token=rt-secret")).send().await.unwrap_err();
        let mapped = client.transport_error(Provider::Zoho, err);
        assert_eq!(mapped.code(), ErrorCode::ProviderTransient);
        assert!(mapped.is_retryable());
        assert!(!format!("{mapped} {mapped:?}").contains("rt-secret"));
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
            sock.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://example.invalid/steal\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        let client = HttpClient::new(Duration::from_secs(2)).unwrap();
        let resp = client.reqwest().get(format!("http://{addr}/token")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
    }
}
