//! Rate limits answered the way each provider answers them, injected faults, counters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sandbox::client::{request, ClientError};
use serde_json::json;

#[tokio::test]
async fn quickbooks_throttle_is_a_fault_without_retry_after_per_realm() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "quickbooks", "rate_limit_per_minute": 3})).await;
    let (at, _, realm) = qbo_connect(b).await;
    for _ in 0..3 {
        assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await.status, 200);
    }
    let r = qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_none(), "QuickBooks sends no Retry-After");
    assert!(r.header("intuit_tid").is_some());
    let v = r.json();
    assert_eq!(v["fault"]["type"], "SERVICE");
    assert_eq!(v["fault"]["error"][0]["code"], "3001");
    assert!(v["fault"]["error"][0]["message"].as_str().unwrap().contains("ThrottleExceeded"));
    // Another realm has its own budget.
    let cb = qbo_code(b, "&sandbox_realm=4620816365").await;
    let at2 = s(&qbo_exchange(b, &cb["code"]).await.json()["access_token"]);
    assert_eq!(qbo_query(b, &at2, "4620816365", "SELECT * FROM Invoice").await.status, 200);
    // The window reopens after a minute.
    control(b, "clock", json!({"advance_seconds": 60})).await;
    let (at, _, _) = qbo_connect(b).await;
    assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await.status, 200);
    let counters = get(&format!("{b}/_sandbox/counters"), &[]).await.json();
    assert_eq!(counters["rate_limited"][format!("quickbooks:{realm}")], 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_minute_and_day_limits_with_headers() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "xero", "rate_limit_per_minute": 2, "rate_limit_per_day": 3})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    let r = xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-minlimit-remaining"), Some("1"));
    assert_eq!(r.header("x-daylimit-remaining"), Some("2"));
    assert_eq!(r.header("x-appminlimit-remaining"), Some("9999"));
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.header("x-minlimit-remaining"), Some("0"));
    let r = xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-rate-limit-problem"), Some("minute"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // The other tenant is unaffected.
    assert_eq!(xero_get(b, &at, XERO_T2, "Contacts?page=1", &[]).await.status, 200);
    // Next minute: one call left today, then the day limit answers.
    control(b, "clock", json!({"advance_seconds": 61})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    let r = xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-rate-limit-problem"), Some("day"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 3600, "a day-limit Retry-After points at the end of the day window: {retry}");
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_app_minute_limit_spans_tenants() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "xero", "app_rate_limit_per_minute": 3})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    assert_eq!(xero_get(b, &at, XERO_T2, "Contacts?page=1", &[]).await.status, 200);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    let r = xero_get(b, &at, XERO_T2, "Contacts?page=1", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-rate-limit-problem"), Some("appminute"));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_throttle_is_code_44_without_retry_after() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "zoho", "rate_limit_per_minute": 2})).await;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    for _ in 0..2 {
        assert_eq!(zoho_get(&api, &at, "invoices?organization_id=700000001").await.status, 200);
    }
    let r = zoho_get(&api, &at, "invoices?organization_id=700000001").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_none());
    assert_eq!(r.json(), json!({"code": 44, "message": "Rate Limit Exceeded (API usage limit exceeded)"}));
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_hit_the_next_n_matching_calls_in_provider_shape() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    control(b, "faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Invoices", "kind": "500", "count": 2})).await;
    // Other paths are untouched.
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.status, 200);
    for _ in 0..2 {
        let r = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[]).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["Status"], 500);
    }
    assert_eq!(xero_get(b, &at, XERO_T1, "Invoices?page=1", &[]).await.status, 200);

    control(b, "faults", json!({"provider": "xero", "kind": "429", "count": 1, "retry_after": 7})).await;
    let r = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.header("x-rate-limit-problem").is_some());

    control(b, "faults", json!({"provider": "xero", "kind": "malformed", "count": 1})).await;
    let r = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[]).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err(), "body must not parse: {}", r.text());

    let (qat, qrt, realm) = qbo_connect(b).await;
    control(b, "faults", json!({"provider": "quickbooks", "kind": "500", "count": 1})).await;
    let r = qbo_query(b, &qat, &realm, "SELECT * FROM Invoice").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["Fault"]["type"], "SystemFault");

    // invalid_grant on the token endpoint: the provider's own refusal; the refresh token survives.
    control(b, "faults", json!({"provider": "quickbooks", "path_prefix": "/oauth2/v1/tokens/bearer", "kind": "invalid_grant", "count": 1}))
        .await;
    let r = qbo_refresh(b, &qrt).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json(), json!({"error": "invalid_grant"}));
    assert_eq!(qbo_refresh(b, &qrt).await.status, 200);

    let (zv, zserver) = zoho_connect(b, "us").await;
    control(b, "faults", json!({"provider": "zoho", "path_prefix": "/zoho/accounts", "kind": "invalid_grant", "count": 1})).await;
    let r = zoho_token(&zserver, &[("grant_type", "refresh_token"), ("refresh_token", &s(&zv["refresh_token"]))]).await;
    assert_eq!((r.status, r.json()), (200, json!({"error": "invalid_code"})));
    control(b, "faults", json!({"provider": "zoho", "kind": "500", "count": 1})).await;
    let r = zoho_get(&s(&zv["api_domain"]), &s(&zv["access_token"]), "invoices?organization_id=700000001").await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (500, Some(1000)));

    let counters = get(&format!("{b}/_sandbox/counters"), &[]).await.json();
    assert_eq!(counters["faults_injected"], 8);
    assert_eq!(counters["calls"]["GET /xero/api.xro/2.0/Invoices"], 5);
    assert_eq!(counters["calls"]["GET /xero/api.xro/2.0/Contacts"], 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn timeout_fault_outlasts_the_client_and_the_work_still_happens() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"timeout_fault_seconds": 2})).await;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    control(b, "faults", json!({"provider": "zoho", "method": "POST", "kind": "timeout", "count": 1})).await;
    let url = format!("{api}/books/v3/contacts?organization_id=700000001");
    let headers =
        vec![("Authorization".to_string(), format!("Zoho-oauthtoken {at}")), ("Content-Type".to_string(), "application/json".to_string())];
    let started = Instant::now();
    let r = request("POST", &url, &headers, br#"{"contact_name":"Slow Co"}"#, Duration::from_millis(500)).await;
    assert!(matches!(r, Err(ClientError::Timeout)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The held request is served after the hold: the contact exists although the client gave up.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let list = zoho_get(&api, &at, "contacts?organization_id=700000001&per_page=200").await.json();
    assert!(list["contacts"].as_array().unwrap().iter().any(|c| c["contact_name"] == "Slow Co"));
    sb.shutdown().await;
}

#[tokio::test]
async fn reset_restores_the_start_state() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, rt, realm) = qbo_connect(b).await;
    control(b, "seed", json!({"provider": "quickbooks", "entity": "Customer", "count": 5})).await;
    control(b, "faults", json!({"kind": "500", "count": 5})).await;
    control(b, "config", json!({"access_token_ttl": 1})).await;
    control(b, "reset", json!({})).await;
    assert_eq!(get(&format!("{b}/_sandbox/faults"), &[]).await.json()["faults"], json!([]));
    assert_eq!(get(&format!("{b}/_sandbox/config"), &[]).await.json()["quickbooks"]["access_token_ttl"], 3600);
    assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Customer").await.status, 401, "tokens are gone");
    assert_eq!(qbo_refresh(b, &rt).await.status, 400);
    let (at, _, _) = qbo_connect(b).await;
    assert_eq!(qbo_query(b, &at, &realm, "SELECT COUNT(*) FROM Customer").await.json()["QueryResponse"]["totalCount"], 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_fault_modes_send_each_error_shape() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    let q = "SELECT * FROM Invoice";
    control(b, "faults", json!({"provider": "quickbooks", "kind": "qbo_throttle_service", "count": 1})).await;
    let r = qbo_query(b, &at, &realm, q).await;
    assert_eq!((r.status, r.json()["fault"]["type"].as_str()), (429, Some("SERVICE")));
    // XML although the request asked for JSON, with 429 and with 403.
    for (kind, status) in [("qbo_throttle_xml", 429), ("qbo_throttle_403", 403)] {
        control(b, "faults", json!({"provider": "quickbooks", "kind": kind, "count": 1})).await;
        let r = qbo_query(b, &at, &realm, q).await;
        assert_eq!(r.status, status, "{kind}");
        assert!(r.header("content-type").unwrap().contains("xml"), "{kind}");
        let t = r.text();
        assert!(t.contains("<Fault type=\"SERVICE\">") && t.contains("<Error code=\"3001\">"), "{t}");
    }
    control(b, "faults", json!({"provider": "quickbooks", "kind": "qbo_auth", "count": 1})).await;
    let r = qbo_query(b, &at, &realm, q).await;
    assert_eq!((r.status, r.json()["fault"]["type"].as_str()), (401, Some("AUTHENTICATION")));
    // The faults are spent: the next call works.
    assert_eq!(qbo_query(b, &at, &realm, q).await.status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_maxresults_over_1000_is_a_validation_fault_not_a_clamp() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Invoice MAXRESULTS 1000").await.status, 200);
    let r = qbo_query(b, &at, &realm, "SELECT * FROM Invoice MAXRESULTS 1001").await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["Fault"]["type"], "ValidationFault");
    assert_eq!(v["Fault"]["Error"][0]["code"], "4001");
    sb.shutdown().await;
}
