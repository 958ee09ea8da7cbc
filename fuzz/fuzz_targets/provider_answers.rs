//! Any HTTP answer from a provider (status, rate-limit headers, body) through the error classifier,
//! the success reader, the rate-limit reader, the token-response and token-endpoint readers, Xero's
//! connections and the JWT claim reader.
#![no_main]

mod common;

use bytes::Bytes;
use chrono::DateTime;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use shared::fuzzing::{token_endpoint_answer, token_response};
use shared::providers::errors::{parse_retry_after, provider_error, rate_limit_info, success_json, ApiResponse};
use shared::providers::oauth::jwt_claim;
use shared::providers::xero;
use shared::{Provider, SecretString, TokenSet};

const HEADERS: [&str; 7] = [
    "retry-after",
    "x-rate-limit-problem",
    "x-daylimit-remaining",
    "x-minlimit-remaining",
    "x-appminlimit-remaining",
    "intuit_tid",
    "date",
];

fuzz_target!(|data: &[u8]| {
    let mut g = common::Gen::new(data);
    let status = u16::from_le_bytes([g.byte(), g.byte()]) % 600;
    let flags = g.byte();
    let mut headers = HeaderMap::new();
    for (i, name) in HEADERS.iter().enumerate() {
        if flags & (1 << i) != 0 {
            if let Ok(v) = HeaderValue::from_str(&g.string()) {
                headers.insert(*name, v);
            }
        }
    }
    let body: Vec<u8> = if flags & 0x80 != 0 { g.value(0).to_string().into_bytes() } else { g.rest().to_vec() };
    let now = DateTime::from_timestamp(1_780_000_000, 0).expect("a fixed time");
    let resp = ApiResponse { status, headers, body: Bytes::from(body) };
    let previous = TokenSet {
        access_token: SecretString::new("old-at"),
        refresh_token: Some(SecretString::new("old-rt")),
        access_expires_at: now,
        refresh_expires_at: Some(now),
        refresh_hard_expires_at: None,
        scopes: vec!["a".into()],
        api_domain: None,
        accounts_server: None,
    };
    for p in Provider::ALL {
        let err = provider_error(p, &resp, now);
        let ok = success_json(p, &resp);
        // A 2xx the classifier lets through is read as JSON or refused; never both an error and a body.
        if err.is_none() && (200..300).contains(&status) {
            let _ = ok;
        }
        let _ = token_endpoint_answer(p, &resp);
        for prev in [None, Some(&previous)] {
            if let Ok(t) = token_response(p, &resp.body, prev, now) {
                assert!(!t.access_token.expose().is_empty());
                assert!(t.access_expires_at >= now);
            }
        }
    }
    let info = rate_limit_info(&resp.headers, now);
    if let Some(wait) = info.retry_after {
        assert!(wait.as_secs() <= 24 * 3600);
    }
    if let Some(v) = resp.headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        let _ = parse_retry_after(v, now);
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
        let _ = xero::parse_connections(&v);
    }
    let text = String::from_utf8_lossy(&resp.body);
    let _ = jwt_claim(&text, "authentication_event_id");
});
