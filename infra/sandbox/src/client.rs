//! A minimal HTTP/1.1 client for the webhook emitter: plain `http://` only, one request per connection.
//!
//! The workspace's reqwest is built with rustls and *no* crypto provider (the AWS SDK supplies one in
//! the Lambda binaries). A sandbox built on its own (`cargo run -p sandbox`) has none, and reqwest
//! panics when building a client without one. Webhook receivers in local runs and tests are plain
//! HTTP on localhost, so a small client avoids pulling a TLS stack into the sandbox at all.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum ClientError {
    UnsupportedUrl(String),
    Io(std::io::Error),
    Timeout,
    BadResponse(&'static str),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::UnsupportedUrl(u) => write!(f, "unsupported URL (only http:// is delivered): {u}"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Timeout => write!(f, "timed out"),
            ClientError::BadResponse(w) => write!(f, "bad HTTP response: {w}"),
        }
    }
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, ClientError> {
    match tokio::time::timeout(timeout, request_inner(method, url, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Timeout),
    }
}

async fn request_inner(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<HttpResponse, ClientError> {
    let u = url::Url::parse(url).map_err(|_| ClientError::UnsupportedUrl(url.to_string()))?;
    if u.scheme() != "http" {
        return Err(ClientError::UnsupportedUrl(url.to_string()));
    }
    let host = u.host_str().ok_or_else(|| ClientError::UnsupportedUrl(url.to_string()))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let mut target = u.path().to_string();
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut stream = TcpStream::connect((host, port)).await.map_err(ClientError::Io)?;
    let host_header = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.map_err(ClientError::Io)?;
    stream.write_all(body).await.map_err(ClientError::Io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(ClientError::Io)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, ClientError> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(ClientError::BadResponse("no header terminator"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| ClientError::BadResponse("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(ClientError::BadResponse("empty response"))?;
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(ClientError::BadResponse("bad status line"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or(ClientError::BadResponse("bad chunk size line"))?;
        let size_str = std::str::from_utf8(&b[..nl]).map_err(|_| ClientError::BadResponse("bad chunk size"))?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| ClientError::BadResponse("bad chunk size"))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err(ClientError::BadResponse("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_response(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(r.status, 401);
        assert!(r.body.is_empty());
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"garbage").is_err());
    }
}
