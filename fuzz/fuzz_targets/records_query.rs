//! The records API's request parsing (`shared::records::query` and `cursor`): any path, any query
//! parameters and any cursor. Asserted besides "no panic": an accepted request has a limit from 1
//! to 500 and a plan whose key condition names the index's hash key; a cursor is accepted only for
//! the tenant and connection of the request, and an accepted one round-trips.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shared::providers::Entity;
use shared::records::{cursor, query};
use shared::store::tenant_pk;
use shared::Provider;

const NAMES: [&str; 16] = [
    "limit",
    "cursor",
    "modified_after",
    "status",
    "contact_id",
    "due_before",
    "due_after",
    "issued_before",
    "issued_after",
    "include_deleted",
    "include_raw",
    "tenant",
    "user",
    "ts",
    "kid",
    "x",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    // Mode bit 0: the first line is the path; otherwise a fixed list route, so the parameters are reached.
    let path = if mode & 1 == 0 { first.to_string() } else { "/v1/tenants/acme-1/connections/xero/o%2F1/records/invoice".to_string() };
    let Ok((route, signed)) = query::parse_route(&path) else { return };
    assert!(signed.starts_with("/v1/") && path.ends_with(signed));
    // Each further line: a selector byte (a known name) or `name=value`.
    let mut params = BTreeMap::new();
    for line in lines {
        let (k, v) = match line.split_once('=') {
            Some((k, v)) if k.len() == 1 => (NAMES[k.as_bytes()[0] as usize % NAMES.len()].to_string(), v.to_string()),
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => continue,
        };
        params.insert(k, v);
    }
    let _ = query::check_known(&route, &params);
    let query::Route::List { tenant, provider, org_id, entity } = route else { return };
    let Ok(p) = query::ListParams::parse(&params) else { return };
    assert!((1..=query::MAX_LIMIT).contains(&p.limit));
    let Ok(plan) = query::plan(&tenant, provider, &org_id, entity, &p) else { return };
    assert!(plan.key_condition.starts_with(&format!("{} = :h", plan.hash_attr)), "{}", plan.key_condition);
    assert!(plan.hash_value.starts_with(&format!("TENANT#{tenant}#")));
    if let Some(c) = &p.cursor {
        if let Ok(key) = cursor::decode(&plan, &tenant, provider, &org_id, entity, c) {
            assert_eq!(key["pk"].as_s().unwrap(), &tenant_pk(&tenant));
            // Never accepted for another tenant or connection.
            assert!(cursor::decode(&plan, "acme-2", provider, &org_id, entity, c).is_err());
            assert!(cursor::decode(&plan, &tenant, Provider::Zoho, &org_id, Entity::Payment, c).is_err());
            let again = cursor::encode(&plan, &key).expect("an accepted key encodes");
            assert_eq!(cursor::decode(&plan, &tenant, provider, &org_id, entity, &again).unwrap(), key);
        }
    }
});
