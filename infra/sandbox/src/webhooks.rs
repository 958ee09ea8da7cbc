//! Webhook payloads and signatures exactly as each provider builds them.
//!
//! - QuickBooks: `intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)); legacy
//!   `eventNotifications` body or the CloudEvents array.
//! - Xero: `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)); `events` body with sequence
//!   numbers and entropy; intent-to-receive sends correctly and incorrectly signed empty batches.
//! - Zoho Books: delivered to the org's registered URL with its registered headers and query
//!   parameters. When the registration has a `secret`, `X-Zoho-Webhook-Signature` = hex(HMAC-SHA256(
//!   secret, sorted query key+value pairs concatenated, then the raw body)). Zoho documents this scheme
//!   for Zoho Billing; for Books the scheme is unconfirmed (see providers.md), so receivers should also
//!   rely on the registered custom header.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::model::{Entity, Provider};

type HmacSha256 = hmac::Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// QuickBooks' `intuit-signature` and Xero's `x-xero-signature`.
pub fn base64_hmac(key: &str, body: &[u8]) -> String {
    STANDARD.encode(hmac_sha256(key.as_bytes(), &[body]))
}

/// Zoho's signature: query parameters sorted by key, each as key+value with no separators, then the
/// raw body; hex HMAC-SHA256 with the registration's secret.
pub fn zoho_signature(secret: &str, query: &[(String, String)], body: &[u8]) -> String {
    let mut q: Vec<&(String, String)> = query.iter().collect();
    q.sort();
    let mut msg = Vec::new();
    for (k, v) in q {
        msg.extend_from_slice(k.as_bytes());
        msg.extend_from_slice(v.as_bytes());
    }
    msg.extend_from_slice(body);
    hex::encode(hmac_sha256(secret.as_bytes(), &[&msg]))
}

/// Normalised operation: create, update, delete, merge, void.
pub fn parse_operation(op: &str) -> Option<&'static str> {
    match op.to_ascii_lowercase().as_str() {
        "create" | "created" => Some("create"),
        "update" | "updated" => Some("update"),
        "delete" | "deleted" => Some("delete"),
        "merge" | "merged" => Some("merge"),
        "void" | "voided" => Some("void"),
        _ => None,
    }
}

fn capitalised(op: &str) -> String {
    let mut c = op.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// Legacy QuickBooks notification: one `eventNotifications` element per realm, no event id.
/// `merged_from`: for a Merge, the record merged away into `id` (sent as `deletedId`; the legacy
/// member's casing is unconfirmed, Intuit's CloudEvents page spells it `deletedid`).
pub fn qbo_legacy(realm: &str, e: Entity, id: &str, op: &str, at: DateTime<Utc>, merged_from: Option<&str>) -> Value {
    let mut entity = json!({
        "name": e.qbo_name(), "id": id, "operation": capitalised(op),
        "lastUpdated": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    });
    if let Some(m) = merged_from {
        entity["deletedId"] = json!(m);
    }
    json!({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [entity]}}]})
}

/// QuickBooks CloudEvents delivery: a JSON array of events; `id` is the dedupe key.
pub fn qbo_cloudevents(realm: &str, e: Entity, id: &str, op: &str, at: DateTime<Utc>, merged_from: Option<&str>) -> Value {
    let past = match op {
        "create" => "created",
        "update" => "updated",
        "delete" => "deleted",
        "merge" => "merged",
        "void" => "voided",
        other => other,
    };
    json!([{
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "intuit.sandbox",
        "type": format!("qbo.{}.{}.v1", e.qbo_name().to_ascii_lowercase(), past),
        "datacontenttype": "application/json",
        "time": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "intuitentityid": id,
        "intuitaccountid": realm,
        // Intuit's "Understanding the data object": a merge names the merged-away record here.
        "data": merged_from.map_or_else(|| json!({}), |m| json!({"deletedid": m})),
    }])
}

/// Xero's event category for an entity; Xero sends no webhooks for payments or accounts.
pub fn xero_category(e: Entity) -> Option<&'static str> {
    match e {
        // INVOICE covers bills (ACCPAY) too, CONTACT suppliers, CREDITNOTE both kinds of credit note
        // (xero-webhooks.yaml, publishCreditNoteEvent).
        Entity::Invoice | Entity::Bill => Some("INVOICE"),
        Entity::Contact | Entity::Vendor => Some("CONTACT"),
        Entity::CreditNote | Entity::VendorCredit => Some("CREDITNOTE"),
        _ => None,
    }
}

pub fn xero_event(base: &str, tenant: &str, e: Entity, id: &str, op: &str, at: DateTime<Utc>, seq: u64) -> Option<Value> {
    let category = xero_category(e)?;
    let event_type = match op {
        "create" => "CREATE",
        _ => "UPDATE",
    };
    Some(json!({
        "events": [{
            "resourceUrl": format!("{base}/xero/api.xro/2.0/{}/{id}", e.xero_name()),
            "resourceId": id,
            "eventDateUtc": at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": tenant,
            "tenantType": "ORGANISATION",
        }],
        "firstEventSequence": seq,
        "lastEventSequence": seq,
        "entropy": entropy(),
    }))
}

pub fn xero_itr_body() -> String {
    json!({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": entropy()}).to_string()
}

fn entropy() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..20).map(|_| (b'A' + r.gen_range(0..26)) as char).collect()
}

/// Zoho's default webhook body for a module: the record under its module key.
pub fn zoho_body(e: Entity, record: &Value) -> Value {
    json!({ e.zoho_singular(): record })
}

pub fn signature_header(p: Provider) -> &'static str {
    match p {
        Provider::Quickbooks => "intuit-signature",
        Provider::Xero => "x-xero-signature",
        Provider::Zoho => "x-zoho-webhook-signature",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn zoho_signature_sorts_query_pairs() {
        let a = zoho_signature("secret123456", &[("b".into(), "2".into()), ("a".into(), "1".into())], b"{}");
        let want = hex::encode(hmac_sha256(b"secret123456", &[b"a1b2{}"]));
        assert_eq!(a, want);
    }
}
