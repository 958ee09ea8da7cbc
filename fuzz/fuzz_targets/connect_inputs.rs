//! What reaches the connect flow and the sync queue from outside: OAuth state strings (hostile, and
//! validly signed with hostile payloads), binding cookies, the app's signed connect/disconnect query
//! (validly signed with hostile parameters), the provider's callback query (Zoho accounts-server /
//! location), sync job bodies, and stored Zoho webhook registrations and cursors.
#![no_main]

mod common;

use std::collections::BTreeMap;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use shared::connect::{app_auth, state};
use shared::providers::{CallbackParams, Cursor, Endpoints, Entity};
use shared::{Provider, SecretString};

const PARAMS: [&str; 9] = ["tenant", "user", "ts", "kid", "return_url", "jti", "grant_id", "org_id", "sig"];

fuzz_target!(|data: &[u8]| {
    let mut g = common::Gen::new(data);
    let key = SecretString::new("fuzz-state-key");
    let now = DateTime::from_timestamp(1_780_000_000, 0).expect("a fixed time");
    match g.byte() % 6 {
        0 => {
            let s = String::from_utf8_lossy(g.rest()).into_owned();
            for p in Provider::ALL {
                let _ = state::verify(&key, &s, p, now);
            }
        }
        1 => {
            let s = shared::fuzzing::signed_state(&key, g.rest());
            for p in Provider::ALL {
                if let Ok(c) = state::verify(&key, &s, p, now) {
                    assert_eq!(c.provider, p);
                    assert!(c.expires_at > now.timestamp());
                    let cookie = format!("{}={}", state::binding_cookie_name(&c), state::binding_value(&s));
                    assert!(state::check_binding([cookie.as_str()], &s, &c).is_ok());
                }
            }
        }
        2 => {
            let (s, claims) = state::mint(&key, "tenant-1", Provider::Xero, now + chrono::Duration::minutes(10));
            let cookies = String::from_utf8_lossy(g.rest()).into_owned();
            let _ = state::check_binding(cookies.split('\n'), &s, &claims);
        }
        3 => {
            let sign = g.byte() & 1 == 1;
            let mut pairs: Vec<(String, String)> = Vec::new();
            for _ in 0..g.byte() % 9 {
                let k = g.byte();
                let name = if k < 240 { PARAMS[k as usize % PARAMS.len()].to_string() } else { g.raw_string(12) };
                let value = match g.byte() % 4 {
                    0 => (g.u64() as i64).to_string(),
                    1 => (now.timestamp() + i64::from(g.byte() as i8)).to_string(),
                    2 => "k1".to_string(),
                    _ => g.string(),
                };
                pairs.push((name, value));
            }
            let keys: BTreeMap<String, SecretString> = [("k1".to_string(), SecretString::new("app-key"))].into();
            if sign {
                pairs.retain(|(k, _)| k != "sig");
                let map: BTreeMap<String, String> = pairs.iter().cloned().collect();
                pairs.push(("sig".into(), app_auth::sign(&keys["k1"], "GET", "/connect/xero", &map)));
            }
            let r = app_auth::verify("GET", "/connect/xero", pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys, now.timestamp());
            if let Ok(req) = r {
                assert!((now.timestamp() - req.ts).abs() <= app_auth::MAX_SKEW_SECS);
            }
        }
        4 => {
            let q = g.rest();
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q).into_owned().collect();
            let cb = CallbackParams::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let sandbox = url::Url::parse("http://127.0.0.1:8787/").expect("a fixed URL");
            for ep in [Endpoints::real(Provider::Zoho), Endpoints::sandbox(Provider::Zoho, &sandbox)] {
                if let Ok(server) = ep.zoho_accounts_server(cb.accounts_server.as_deref(), cb.location.as_deref()) {
                    assert!(Endpoints::zoho_token_url(&server).is_ok());
                    let _ = ep.zoho_location_of(&server);
                }
                if let Some(d) = &cb.accounts_server {
                    if let Ok(domain) = ep.zoho_check_api_domain(d) {
                        assert!(Endpoints::zoho_api_base(&domain).is_ok());
                    }
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(g.rest()).into_owned();
            if let Ok(job) = shared::jobs::SyncJob::from_json(&text) {
                let payload = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("payload").cloned());
                let _ = shared::worker::job::validate(&job, payload.as_ref());
            }
            let _ = shared::providers::zoho_webhooks::registration_parts(&text);
            let _ = shared::providers::zoho_webhooks::split_ids(Some(&text));
            if let Ok(c) = serde_json::from_str::<Cursor>(&text) {
                for p in Provider::ALL {
                    for e in Entity::ALL {
                        let _ = c.check(p, e);
                    }
                }
            }
        }
    }
});
