//! The records API's request parsing (`shared::records::query` and `cursor`): any path, any query
//! parameters and any cursor. Asserted besides "no panic": an accepted request has a limit from 1
//! to 500 and a plan whose key condition names the index's hash key; a cursor is accepted only for
//! the tenant and connection of the request, and an accepted one round-trips. A cursor the fuzzer
//! makes up almost never carries the query's fingerprint (a hash), so the target also encodes a last
//! key of its own with a hostile sort and range value, as DynamoDB could hand one back: that cursor
//! decodes to the same key for its own query and for no other tenant, or is refused for its size.
#![no_main]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use libfuzzer_sys::fuzz_target;
use shared::providers::Entity;
use shared::records::{cursor, query};
use shared::store::{tenant_pk, Item};
use shared::sync::store::records_prefix;
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
    let tail = p.cursor.as_deref().unwrap_or(first);
    let last: Item = [
        ("pk".to_string(), tenant_pk(&tenant)),
        ("sk".to_string(), format!("{}{tail}", records_prefix(provider, &org_id, entity))),
        (plan.hash_attr.to_string(), plan.hash_value.clone()),
        (plan.range_attr.to_string(), tail.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k, AttributeValue::S(v)))
    .collect();
    let c = cursor::encode(&plan, &last).expect("a key with every attribute of the index encodes");
    // Within DynamoDB's key sizes (1,024 bytes for a range key) and the cursor's cap it must be accepted.
    let fits = !tail.is_empty() && last.values().all(|v| v.as_s().is_ok_and(|s| s.len() <= 1024)) && c.len() <= cursor::MAX_CURSOR_LEN;
    match cursor::decode(&plan, &tenant, provider, &org_id, entity, &c) {
        Ok(key) => {
            assert_eq!(key, last);
            assert!(cursor::decode(&plan, "acme-2", provider, &org_id, entity, &c).is_err());
        }
        Err(e) => assert!(!fits, "a key that fits was refused: {e}; {tail:?}"),
    }
});
