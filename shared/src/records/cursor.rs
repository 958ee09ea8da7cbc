//! Page cursors: DynamoDB's `LastEvaluatedKey`, made opaque (base64url JSON) and checked on the way
//! back in. A cursor carries the fingerprint of the query that made it, and every key attribute it
//! names must be the one this request's query would use: the table key under the caller's own
//! tenant and connection, the index's hash key exactly. A cursor from another tenant, connection,
//! entity or filter set, or one edited by hand to point elsewhere, is refused (4012) before any
//! read. Within those bounds a hand-made cursor can only skip records the caller may read anyway,
//! so cursors need no key of their own.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::query::{start_key_names, QueryPlan};
use crate::providers::model::Entity;
use crate::store::{tenant_pk, Item};
use crate::sync::store::records_prefix;
use crate::{Error, Provider, Result};

const VERSION: u64 = 1;
/// Longer cursors are refused before decoding (real ones are a few hundred bytes).
pub const MAX_CURSOR_LEN: usize = 4096;
/// DynamoDB range keys hold at most 1,024 bytes, hash keys 2,048.
const MAX_KEY_BYTES: usize = 2048;

#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    v: u64,
    f: String,
    k: BTreeMap<String, String>,
}

/// The cursor for the page after the one that ended at `last`.
pub fn encode(plan: &QueryPlan, last: &Item) -> Result<String> {
    let mut k = BTreeMap::new();
    for name in start_key_names(plan) {
        let v = last
            .get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| Error::Internal(format!("the page's last key has no string '{name}'")))?;
        k.insert(name.to_string(), v.clone());
    }
    let json = serde_json::to_vec(&Wire { v: VERSION, f: plan.fingerprint.clone(), k })
        .map_err(|e| Error::Internal(format!("cursor JSON: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The `ExclusiveStartKey` of a cursor, if it belongs to this query of this tenant's connection.
pub fn decode(plan: &QueryPlan, tenant_id: &str, provider: Provider, org_id: &str, entity: Entity, cursor: &str) -> Result<Item> {
    let bad = |why: &str| Error::InvalidCursor(why.to_string());
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad("too long"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad("not base64url"))?;
    let wire: Wire = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor"))?;
    if wire.v != VERSION {
        return Err(bad("unknown cursor version"));
    }
    if wire.f != plan.fingerprint {
        return Err(bad("made for another query (tenant, connection, entity or filters differ)"));
    }
    let names = start_key_names(plan);
    if wire.k.len() != names.len() || !wire.k.keys().all(|k| names.contains(k.as_str())) {
        return Err(bad("its key does not fit this query's index"));
    }
    let get = |n: &str| wire.k.get(n).map(String::as_str).unwrap_or_default();
    if get("pk") != tenant_pk(tenant_id) || get(plan.hash_attr) != plan.hash_value {
        return Err(bad("points outside this tenant's connection"));
    }
    let sk = get("sk");
    if !sk.starts_with(&records_prefix(provider, org_id, entity)) || sk.len() > 1024 {
        return Err(bad("points outside this connection's records"));
    }
    let range = get(plan.range_attr);
    if range.is_empty() || range.len() > 1024 || wire.k.values().any(|v| v.len() > MAX_KEY_BYTES) {
        return Err(bad("its key is not a key of this index"));
    }
    Ok(wire.k.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::super::query::{plan, ListParams};
    use super::*;
    use crate::sync::record_index as rx;

    fn plan_for(tenant: &str, pairs: &[(&str, &str)]) -> QueryPlan {
        let p = ListParams::parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap();
        plan(tenant, Provider::Xero, "o1", Entity::Invoice, &p).unwrap()
    }

    fn last(tenant: &str) -> Item {
        Item::from([
            ("pk".to_string(), AttributeValue::S(tenant_pk(tenant))),
            ("sk".to_string(), AttributeValue::S("REC#xero#o1#invoice#i-1".into())),
            (rx::ATTR_SCOPE.to_string(), AttributeValue::S(rx::scope(tenant, Provider::Xero, "o1", Entity::Invoice))),
            (rx::ATTR_MODIFIED.to_string(), AttributeValue::S("001767225600000#i-1".into())),
        ])
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_query_only() {
        let mine = plan_for("acme-1", &[]);
        let c = encode(&mine, &last("acme-1")).unwrap();
        let key = decode(&mine, "acme-1", Provider::Xero, "o1", Entity::Invoice, &c).unwrap();
        assert_eq!(key, last("acme-1"));

        // Another tenant's cursor, presented to a query of mine.
        let theirs = plan_for("acme-2", &[]);
        let c2 = encode(&theirs, &last("acme-2")).unwrap();
        assert_eq!(
            decode(&mine, "acme-1", Provider::Xero, "o1", Entity::Invoice, &c2).unwrap_err().code(),
            crate::ErrorCode::InvalidCursor
        );
        // The same cursor for another filter set or connection.
        let filtered = plan_for("acme-1", &[("include_deleted", "true")]);
        assert!(decode(&filtered, "acme-1", Provider::Xero, "o1", Entity::Invoice, &c).is_err());
        assert!(decode(&mine, "acme-1", Provider::Xero, "o2", Entity::Invoice, &c).is_err());
    }

    #[test]
    fn a_forged_cursor_with_the_right_fingerprint_cannot_leave_the_tenant() {
        let mine = plan_for("acme-1", &[]);
        for (attr, value) in [("pk", "TENANT#acme-2"), ("sk", "REC#xero#o2#invoice#x"), (rx::ATTR_SCOPE, "TENANT#acme-2#xero#o1#invoice")] {
            let mut k: BTreeMap<String, String> = last("acme-1").into_iter().map(|(k, v)| (k, v.as_s().unwrap().clone())).collect();
            k.insert(attr.into(), value.into());
            let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Wire { v: 1, f: mine.fingerprint.clone(), k }).unwrap());
            assert!(decode(&mine, "acme-1", Provider::Xero, "o1", Entity::Invoice, &c).is_err(), "{attr}");
        }
        for junk in ["", "!!!", "e30", &"A".repeat(MAX_CURSOR_LEN + 1)] {
            assert!(decode(&mine, "acme-1", Provider::Xero, "o1", Entity::Invoice, junk).is_err(), "{junk}");
        }
    }
}
