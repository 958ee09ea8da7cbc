//! The provider sandbox's control API (`/_sandbox/…`): seeding orgs, moving its clock, faults,
//! counters and records.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use shared::Provider;

/// One control call; panics unless the sandbox answers with success. Returns its JSON answer
/// (null when it has none).
pub async fn control(http: &reqwest::Client, sb: &sandbox::RunningSandbox, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}/_sandbox/{path}", sb.base_url);
    let req = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "control {path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// A fresh org id in the provider's own form.
pub fn org_id_for(provider: Provider) -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    match provider {
        Provider::Xero => uuid::Uuid::new_v4().to_string(),
        Provider::QuickBooks => format!("9{:015}", n % 1_000_000_000_000_000),
        Provider::Zoho => format!("8{:010}", n % 10_000_000_000),
    }
}

/// The ids of the records a `seed` call made.
pub fn seeded_ids(out: &Value) -> Vec<String> {
    out["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// A fresh org with `counts` generated records per entity, stamped an hour in the past so a later
/// incremental pass cannot see them again through its overlap window. Returns the org and the
/// records' ids by entity.
pub async fn make_org(
    http: &reqwest::Client,
    sb: &sandbox::RunningSandbox,
    provider: Provider,
    counts: &[(&str, usize)],
) -> (String, BTreeMap<String, Vec<String>>) {
    let org = org_id_for(provider);
    control(http, sb, "POST", "clock", Some(json!({"advance_seconds": -3600}))).await;
    let mut ids = BTreeMap::new();
    for (entity, count) in counts {
        let out = control(
            http,
            sb,
            "POST",
            "seed",
            Some(json!({"provider": provider.as_str(), "org_id": org, "dc": "us", "entity": entity, "count": count})),
        )
        .await;
        ids.insert(entity.to_string(), seeded_ids(&out));
    }
    control(http, sb, "POST", "clock", Some(json!({"advance_seconds": 3600}))).await;
    (org, ids)
}

/// Sandbox calls whose key ("METHOD /path") contains `needle`.
pub async fn calls(http: &reqwest::Client, sb: &sandbox::RunningSandbox, needle: &str) -> u64 {
    let c = control(http, sb, "GET", "counters", None).await;
    c["calls"].as_object().unwrap().iter().filter(|(k, _)| k.contains(needle)).filter_map(|(_, v)| v.as_u64()).sum()
}
