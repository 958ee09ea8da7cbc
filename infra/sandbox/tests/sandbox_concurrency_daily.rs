//! Concurrency limits (QuickBooks 10 per realm, Xero 5 per tenant), daily limits (Xero 5,000,
//! Zoho's plan limit) and windows shrunk through `/_sandbox/config`, answered the provider's way.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn defaults_carry_the_providers_concurrency_and_daily_limits() {
    let sb = start().await;
    let c = get(&format!("{}/_sandbox/config", sb.base_url), &[]).await.json();
    assert_eq!(c["quickbooks"]["max_concurrent"], 10);
    assert_eq!(c["xero"]["max_concurrent"], 5);
    assert_eq!(c["xero"]["rate_limit_per_day"], 5000);
    assert_eq!(c["zoho"]["rate_limit_per_day"], 1000);
    assert_eq!(c["xero"]["minute_window_seconds"], 60);
    assert_eq!(c["xero"]["day_window_seconds"], 86400);
    // Windows shorter than a second make no sense.
    let r = post_json(&format!("{}/_sandbox/config", sb.base_url), &[], &json!({"minute_window_seconds": 0})).await;
    assert_eq!(r.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_refuses_a_sixth_call_in_flight_with_a_concurrent_429() {
    let sb = start().await;
    let b = &sb.base_url;
    // Each answer takes long enough that all seven calls are in flight together even when a
    // loaded machine starts one late.
    control(b, "config", json!({"provider": "xero", "latency_ms": 2000})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    let calls = (0..7).map(|_| xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, refused.len()), (5, 2));
    for r in refused {
        assert_eq!(r.header("x-rate-limit-problem"), Some("concurrent"));
        assert!(r.header("retry-after").is_some());
    }
    // The other tenant has its own five.
    let other = futures::future::join_all((0..5).map(|_| xero_get(b, &at, XERO_T2, "Contacts?page=1", &[]))).await;
    assert!(other.iter().all(|r| r.status == 200));
    let counters = get(&format!("{b}/_sandbox/counters"), &[]).await.json();
    assert_eq!(counters["concurrency_limited"][format!("xero:{XERO_T1}")], 2);
    assert_eq!(counters["peak_in_flight"][format!("xero:{XERO_T1}")], 5);
    // Places are given back: once the calls are done, five go again.
    let again = futures::future::join_all((0..5).map(|_| xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]))).await;
    assert!(again.iter().all(|r| r.status == 200));
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_answers_too_many_in_flight_with_its_throttle_fault() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "quickbooks", "latency_ms": 2000, "max_concurrent": 3})).await;
    let (at, _, realm) = qbo_connect(b).await;
    let results = futures::future::join_all((0..5).map(|_| qbo_query(b, &at, &realm, "SELECT * FROM Invoice"))).await;
    let refused: Vec<_> = results.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 2);
    for r in refused {
        assert!(r.header("retry-after").is_none(), "QuickBooks sends no Retry-After");
        // The gateway's throttle shape: lower-case `fault`, type SERVICE, code 3001.
        assert_eq!(r.json()["fault"]["type"], "SERVICE");
        assert_eq!(r.json()["fault"]["error"][0]["code"], "3001");
    }
    // 0 turns the limit off.
    control(b, "config", json!({"provider": "quickbooks", "max_concurrent": 0})).await;
    let results = futures::future::join_all((0..12).map(|_| qbo_query(b, &at, &realm, "SELECT * FROM Invoice"))).await;
    assert!(results.iter().all(|r| r.status == 200));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_daily_limit_answers_code_44_until_its_shrunk_day_is_over() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "zoho", "rate_limit_per_day": 2, "day_window_seconds": 30})).await;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    for _ in 0..2 {
        assert_eq!(zoho_get(&api, &at, "invoices?organization_id=700000001").await.status, 200);
    }
    let r = zoho_get(&api, &at, "invoices?organization_id=700000001").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["code"], 44);
    control(b, "clock", json!({"advance_seconds": 31})).await;
    let (v, _) = zoho_connect(b, "us").await;
    assert_eq!(zoho_get(&s(&v["api_domain"]), &s(&v["access_token"]), "invoices?organization_id=700000001").await.status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_shrunk_minute_window_reopens_after_its_own_length() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "xero", "rate_limit_per_minute": 2, "minute_window_seconds": 5})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    for _ in 0..2 {
        assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    }
    let r = xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "Retry-After within the 5 s window: {retry}");
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    sb.shutdown().await;
}
