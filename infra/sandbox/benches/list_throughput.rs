//! List throughput of the sandbox on one core.
//!
//! The server runs on a current-thread Tokio runtime on its own OS thread (one core); the load
//! generator runs on another thread with its own current-thread runtime and keeps CONNECTIONS
//! keep-alive HTTP/1.1 connections busy with list requests. Prints requests/second per scenario.
//!
//!     cargo bench -p sandbox --bench list_throughput
//!
//! Target: 5,000 list requests per second. Rate limits are switched off for the run (they would
//! answer 429 long before that).

use std::time::{Duration, Instant};

use sandbox::{SandboxConfig, Settings};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

fn main() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let settings = Settings { rate_limits_enabled: false, ..Settings::default() };
            let sb = sandbox::spawn(SandboxConfig { settings, ..SandboxConfig::default() }).await.unwrap();
            tx.send(sb.base_url.clone()).unwrap();
            sb.wait().await;
        });
    });
    let base = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(base));
}

async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> sandbox::client::HttpResponse {
    let h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    sandbox::client::request(method, url, &h, body, Duration::from_secs(10)).await.expect("request")
}

fn location_params(r: &sandbox::client::HttpResponse) -> std::collections::HashMap<String, String> {
    let loc = &r.headers.iter().find(|(k, _)| k == "location").expect("redirect").1;
    url::Url::parse(loc).unwrap().query_pairs().into_owned().collect()
}

fn json(r: &sandbox::client::HttpResponse) -> Value {
    serde_json::from_slice(&r.body).expect("json")
}

async fn run(base: String) {
    let redirect = "http://localhost/cb";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let form = |pairs: &[(&str, &str)]| url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();

    // Tokens for each provider, through the ordinary OAuth flows.
    let cb = location_params(&call("GET", &format!("{base}/quickbooks/connect/oauth2?client_id=sandbox-qbo-client&response_type=code&scope=com.intuit.quickbooks.accounting&redirect_uri={}", enc(redirect)), &[], b"").await);
    let basic = format!("Basic {}", base64_encode("sandbox-qbo-client:sandbox-qbo-secret"));
    let body = form(&[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", redirect)]);
    let qbo = json(
        &call(
            "POST",
            &format!("{base}/quickbooks/oauth2/v1/tokens/bearer"),
            &[("Authorization", &basic), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await,
    );
    let qbo_at = qbo["access_token"].as_str().unwrap().to_string();

    let cb = location_params(&call("GET", &format!("{base}/xero/identity/connect/authorize?client_id=sandbox-xero-client&response_type=code&scope=offline_access&redirect_uri={}", enc(redirect)), &[], b"").await);
    let basic = format!("Basic {}", base64_encode("sandbox-xero-client:sandbox-xero-secret"));
    let body = form(&[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", redirect)]);
    let xero = json(
        &call(
            "POST",
            &format!("{base}/xero/identity/connect/token"),
            &[("Authorization", &basic), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await,
    );
    let xero_at = xero["access_token"].as_str().unwrap().to_string();

    let cb = location_params(&call("GET", &format!("{base}/zoho/accounts/us/oauth/v2/auth?client_id=sandbox-zoho-client&response_type=code&scope=ZohoBooks.invoices.READ&redirect_uri={}", enc(redirect)), &[], b"").await);
    let q = form(&[
        ("grant_type", "authorization_code"),
        ("code", &cb["code"]),
        ("redirect_uri", redirect),
        ("client_id", "sandbox-zoho-client"),
        ("client_secret", "sandbox-zoho-secret"),
    ]);
    let zoho = json(&call("POST", &format!("{}/oauth/v2/token?{q}", cb["accounts-server"]), &[], b"").await);
    let zoho_at = zoho["access_token"].as_str().unwrap().to_string();

    // A second Xero tenant with 100 invoices, for a full page.
    let big = "11111111-2222-4333-8444-555555555555";
    let seed = format!(r#"{{"provider":"xero","org_id":"{big}","entity":"Invoices","count":100}}"#);
    call("POST", &format!("{base}/_sandbox/seed"), &[("Content-Type", "application/json")], seed.as_bytes()).await;
    let cb = location_params(&call("GET", &format!("{base}/xero/identity/connect/authorize?client_id=sandbox-xero-client&response_type=code&scope=offline_access&redirect_uri={}&sandbox_tenants={big}", enc(redirect)), &[], b"").await);
    let body = form(&[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", redirect)]);
    let xero_big = json(
        &call(
            "POST",
            &format!("{base}/xero/identity/connect/token"),
            &[("Authorization", &basic), ("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await,
    );
    let xero_big_at = xero_big["access_token"].as_str().unwrap().to_string();

    let addr = base.trim_start_matches("http://").to_string();
    let qbo_query = enc("SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 100");
    let scenarios: Vec<(&str, String)> = vec![
        (
            "QuickBooks query Invoice (3 records)",
            format!("GET /quickbooks/v3/company/9341452000000001/query?query={qbo_query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {qbo_at}\r\nAccept: application/json\r\n\r\n"),
        ),
        (
            "Xero GET Invoices page 1 (3 records)",
            format!("GET /xero/api.xro/2.0/Invoices?page=1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {xero_at}\r\nxero-tenant-id: 4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61\r\nAccept: application/json\r\n\r\n"),
        ),
        (
            "Zoho GET invoices (3 records)",
            format!("GET /zoho/api/us/books/v3/invoices?organization_id=700000001 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Zoho-oauthtoken {zoho_at}\r\n\r\n"),
        ),
        (
            "Xero GET Invoices page 1 (100 records, ~80 KB)",
            format!("GET /xero/api.xro/2.0/Invoices?page=1&pageSize=100 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {xero_big_at}\r\nxero-tenant-id: {big}\r\nAccept: application/json\r\n\r\n"),
        ),
    ];
    println!(
        "sandbox list throughput: server on one current-thread runtime, {CONNECTIONS} keep-alive connections, {} s per scenario",
        MEASURE.as_secs()
    );
    for (name, req) in scenarios {
        let (n, bytes, elapsed) = load(&addr, req).await;
        let rps = n as f64 / elapsed.as_secs_f64();
        println!(
            "{name:<48} {rps:>9.0} req/s  ({:.0} KB/response){}",
            bytes as f64 / n.max(1) as f64 / 1024.0,
            if rps >= 5000.0 { "" } else { "  BELOW 5,000 req/s" }
        );
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Runs CONNECTIONS request loops; counts responses finished inside the measuring window.
async fn load(addr: &str, req: String) -> (u64, u64, Duration) {
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let until = measure_from + MEASURE;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let addr = addr.to_string();
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (rd, mut wr) = stream.into_split();
            let mut rd = BufReader::new(rd);
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut line = String::new();
            let mut body = Vec::new();
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                wr.write_all(req.as_bytes()).await.unwrap();
                let mut len = 0usize;
                let mut status_ok = false;
                loop {
                    line.clear();
                    rd.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    if line.starts_with("HTTP/1.1 ") {
                        status_ok = line.starts_with("HTTP/1.1 200");
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                body.resize(len, 0);
                rd.read_exact(&mut body).await.unwrap();
                assert!(status_ok, "non-200 answer: {}", String::from_utf8_lossy(&body));
                let done = Instant::now();
                if done >= measure_from && done < until {
                    n += 1;
                    bytes += len as u64;
                }
            }
            (n, bytes)
        }));
    }
    let (mut n, mut bytes) = (0, 0);
    for t in tasks {
        let (a, b) = t.await.unwrap();
        n += a;
        bytes += b;
    }
    (n, bytes, MEASURE)
}
