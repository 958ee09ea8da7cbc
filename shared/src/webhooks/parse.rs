//! Turns a verified webhook body into the entity changes it reports, plus the delivery's dedupe key.
//!
//! Only called after the signature check. Payloads are thin everywhere (ids, never field values), so a
//! change is just (org, entity, id, what happened, the provider's version of the event). Entities we do
//! not sync (bills, items, credit notes, ...) are counted as ignored, not rejected: the provider would
//! otherwise retry them forever, and QuickBooks holds back later events behind a failing one.
//!
//! Formats:
//! - QuickBooks legacy: `{"eventNotifications":[{"realmId","dataChangeEvent":{"entities":[{name,id,operation,lastUpdated}]}}]}`
//! - QuickBooks CloudEvents: a JSON array of `{specversion,id,type:"qbo.<entity>.<action>.v1",time,intuitentityid,intuitaccountid,data}`
//! - Xero: `{"events":[{resourceId,eventCategory,eventType,eventDateUtc,tenantId,tenantType,...}],firstEventSequence,lastEventSequence,entropy}`
//! - Zoho Books: either Zoho's default module payload (`{"invoice":{"invoice_id":..,"last_modified_time":..}}`)
//!   or a flat template (`{"entity"|"module","entity_id","event_type","last_modified_time"}`), as JSON or
//!   form fields (`JSONString=<json>` or the flat fields). The organisation comes from the verified URL.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::jobs::Change;
use crate::tenancy::Entity;
use crate::{Error, Provider, Result};

/// One changed record as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityChange {
    pub org_id: String,
    pub entity: Entity,
    /// None only for Zoho hints that name no record: the worker then pulls changes for the entity.
    pub entity_id: Option<String>,
    pub change: Change,
    /// A merge (QuickBooks): the id of the record merged away into `entity_id`, which no longer
    /// exists. Kept when a later event in the same delivery updates the survivor; None when the
    /// delivery reported no merge or did not name the merged-away record.
    pub merged_from: Option<String>,
    /// The provider's identity for this event (CloudEvents id, lastUpdated, eventDateUtc,
    /// last_modified_time); part of the job's idempotency key.
    pub event_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// One per changed record: several events for the same record in one delivery collapse into the
    /// last one, since the worker re-reads the record anyway.
    pub changes: Vec<EntityChange>,
    /// Events in the body, including ignored ones.
    pub events: usize,
    /// Events about entities or org types we do not sync.
    pub ignored: usize,
    /// Identity of the delivery for the replay/duplicate check; None when it carries no events (Xero's
    /// intent-to-receive), which needs no nonce.
    pub dedupe_key: Option<String>,
}

/// Longest id we accept from a provider (QuickBooks ids are digits, Xero's uuids, Zoho's digits).
const MAX_ID_LEN: usize = 128;

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("webhook payload: {what}"))
}

fn json_error(e: serde_json::Error) -> Error {
    // serde's message can quote payload text; keep only the category and position.
    malformed(format_args!("not the expected JSON ({:?} at line {} column {})", e.classify(), e.line(), e.column()))
}

/// The dedupe identity of a delivery from its events' identifying parts: sorted (so the same events
/// in another order match), length-prefixed (so part boundaries cannot be shifted), hashed without
/// building a string per event.
fn hash_events<const N: usize>(kind: &str, mut events: Vec<[&str; N]>) -> Option<String> {
    if events.is_empty() {
        return None;
    }
    events.sort_unstable();
    let mut h = Sha256::new();
    for ev in &events {
        for p in ev {
            h.update((p.len() as u32).to_be_bytes());
            h.update(p.as_bytes());
        }
    }
    Some(format!("{kind}:{}", hex::encode(h.finalize())))
}

/// Keeps the last change per (org, entity, id), in order of first appearance. Borrows the ids from
/// the parsed body and allocates only for the changes it returns.
#[derive(Default)]
struct Collector<'s> {
    index: BTreeMap<(&'s str, Entity, Cow<'s, str>), usize>,
    out: Vec<EntityChange>,
}

impl<'s> Collector<'s> {
    fn push(&mut self, org: &'s str, entity: Entity, id: &'s str, change: Change, version: &str) {
        self.push_merge(org, entity, Cow::Borrowed(id), change, version, None)
    }

    fn push_merge(&mut self, org: &'s str, entity: Entity, id: Cow<'s, str>, change: Change, version: &str, merged_from: Option<&str>) {
        let merged_from = merged_from.filter(|m| change == Change::Merged && valid_id(m) && *m != id).map(str::to_string);
        let entity_id = Some(id.to_string());
        match self.index.entry((org, entity, id)) {
            Entry::Occupied(i) => {
                let c = &mut self.out[*i.get()];
                c.change = change;
                // A later event for the survivor must not lose which record was merged away: the
                // worker still has to drop it.
                c.merged_from = merged_from.or_else(|| c.merged_from.take());
                c.event_version = version.to_string();
            }
            Entry::Vacant(v) => {
                v.insert(self.out.len());
                self.out.push(EntityChange {
                    org_id: org.to_string(),
                    entity,
                    entity_id,
                    change,
                    merged_from,
                    event_version: version.to_string(),
                });
            }
        }
    }
}

/// Parses a verified body. `zoho_org` is the organisation the delivery was verified for (Zoho only).
pub fn parse(provider: Provider, body: &[u8], zoho_org: Option<&str>) -> Result<Delivery> {
    match provider {
        Provider::QuickBooks => parse_quickbooks(body),
        Provider::Xero => parse_xero(body),
        Provider::Zoho => parse_zoho(body, zoho_org.ok_or_else(|| malformed("zoho delivery without organization"))?),
    }
}

// ---------- QuickBooks ----------
// Fields borrow from the body (`Cow` falls back to an owned string only when JSON escapes are present).

#[derive(Deserialize)]
struct QboLegacy<'a> {
    #[serde(rename = "eventNotifications", borrow)]
    event_notifications: Vec<QboNotification<'a>>,
}

#[derive(Deserialize)]
struct QboNotification<'a> {
    #[serde(rename = "realmId", borrow)]
    realm_id: Cow<'a, str>,
    #[serde(rename = "dataChangeEvent", borrow)]
    data_change_event: Option<QboDataChange<'a>>,
}

#[derive(Deserialize)]
struct QboDataChange<'a> {
    #[serde(default, borrow)]
    entities: Vec<QboEntity<'a>>,
}

#[derive(Deserialize)]
struct QboEntity<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    operation: Cow<'a, str>,
    #[serde(rename = "lastUpdated", default, borrow)]
    last_updated: Option<Cow<'a, str>>,
    /// Merge events: the record merged away (legacy format; the exact casing is unconfirmed in the
    /// legacy docs, Intuit's CloudEvents page spells it `deletedid`).
    #[serde(rename = "deletedId", alias = "deletedid", default)]
    deleted_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct QboCloudEvent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    specversion: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    intuitentityid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    intuitaccountid: Option<Cow<'a, str>>,
    /// For `qbo.<entity>.merged.v1`, `{"deletedid": "<merged-away id>"}` (Intuit's "Understanding
    /// the data object" page); other members vary by event and are ignored. Read loosely so no
    /// shape of `data` can fail a delivery.
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A merged-away id as sent: a string, or a number (ids are numeric strings, but a delivery must not
/// fail over the type: QuickBooks holds back later events behind a rejected one).
fn loose_id(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn qbo_entity(name: &str) -> Option<Entity> {
    // Vendors are contacts too: the worker reads a contact from Customer, then Vendor.
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if is("invoice") {
        Some(Entity::Invoice)
    } else if is("customer") || is("vendor") {
        Some(Entity::Contact)
    } else if is("account") {
        Some(Entity::Account)
    } else if is("payment") {
        Some(Entity::Payment)
    } else if is("bill") {
        Some(Entity::Bill)
    } else if is("item") {
        Some(Entity::Item)
    } else if is("class") || is("department") {
        // A department's id is prefixed as the worker keys it (`quickbooks::record_id`).
        Some(Entity::TrackingCategory)
    } else if is("journalentry") {
        Some(Entity::Journal)
    } else if is("creditmemo") || is("vendorcredit") {
        // Both are credit notes: the worker reads the id from CreditMemo, then VendorCredit.
        Some(Entity::CreditNote)
    } else if is("billpayment") {
        Some(Entity::BillPayment)
    } else if is("purchaseorder") {
        Some(Entity::PurchaseOrder)
    } else if is("purchase") || is("deposit") || is("transfer") {
        // One entity read from three collections; the worker looks the id up in each.
        Some(Entity::BankTransaction)
    } else {
        None
    }
}

/// The id the worker keys a QuickBooks record of entity `name` by (a Department's is prefixed:
/// its Ids and Classes' may be equal).
fn qbo_record_id<'a>(name: &str, id: &'a str) -> Cow<'a, str> {
    match crate::providers::quickbooks::record_id(name, id) {
        r if r == id => Cow::Borrowed(id),
        r => Cow::Owned(r),
    }
}

fn qbo_change(op: &str) -> Change {
    let is = |a: &str, b: &str| op.eq_ignore_ascii_case(a) || op.eq_ignore_ascii_case(b);
    if is("create", "created") {
        Change::Created
    } else if is("update", "updated") {
        Change::Updated
    } else if is("delete", "deleted") {
        Change::Deleted
    } else if is("merge", "merged") {
        Change::Merged
    } else if is("void", "voided") {
        Change::Voided
    } else {
        Change::Unknown
    }
}

fn first_non_ws(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn parse_quickbooks(body: &[u8]) -> Result<Delivery> {
    if first_non_ws(body) == Some(b'[') {
        return parse_qbo_cloudevents(body);
    }
    let legacy: QboLegacy = serde_json::from_slice(body).map_err(json_error)?;
    let mut d = Delivery::default();
    let mut col = Collector::default();
    let mut idents = Vec::new();
    for n in &legacy.event_notifications {
        let realm: &str = &n.realm_id;
        if !valid_id(realm) {
            return Err(malformed("realmId missing or invalid"));
        }
        for e in n.data_change_event.iter().flat_map(|c| &c.entities) {
            d.events += 1;
            let last: &str = e.last_updated.as_deref().unwrap_or("");
            idents.push([realm, &e.name, &e.id, &e.operation, last]);
            match qbo_entity(&e.name) {
                Some(entity) if valid_id(&e.id) => {
                    let merged_from = loose_id(e.deleted_id.as_ref()).map(|m| qbo_record_id(&e.name, &m).into_owned());
                    col.push_merge(realm, entity, qbo_record_id(&e.name, &e.id), qbo_change(&e.operation), last, merged_from.as_deref())
                }
                _ => d.ignored += 1,
            }
        }
    }
    // No event id in this format: the delivery is identified by its events (realm, entity, id,
    // operation, lastUpdated).
    d.dedupe_key = hash_events("qbo", idents);
    d.changes = col.out;
    fill_versions(&mut d);
    Ok(d)
}

fn parse_qbo_cloudevents(body: &[u8]) -> Result<Delivery> {
    let events: Vec<QboCloudEvent> = serde_json::from_slice(body).map_err(json_error)?;
    let mut d = Delivery::default();
    let mut col = Collector::default();
    let mut ids = Vec::with_capacity(events.len());
    for e in &events {
        d.events += 1;
        if !valid_id(&e.id) {
            return Err(malformed("CloudEvent without a valid id"));
        }
        if e.specversion.as_deref().is_some_and(|v| !v.starts_with('1')) {
            return Err(malformed("unsupported CloudEvents specversion"));
        }
        ids.push([e.id.as_ref()]);
        // type = qbo.<entity>.<action>.v<n>
        let mut parts = e.kind.split('.');
        let (vendor, name, action) = (parts.next(), parts.next(), parts.next());
        let entity = match (vendor, name) {
            (Some("qbo"), Some(name)) => qbo_entity(name),
            _ => None,
        };
        let name = name.unwrap_or("");
        match (entity, e.intuitaccountid.as_deref(), e.intuitentityid.as_deref()) {
            (Some(entity), Some(realm), Some(id)) if valid_id(realm) && valid_id(id) => {
                let merged_from = loose_id(e.data.as_ref().and_then(|d| d.get("deletedid").or_else(|| d.get("deletedId"))))
                    .map(|m| qbo_record_id(name, &m).into_owned());
                col.push_merge(realm, entity, qbo_record_id(name, id), qbo_change(action.unwrap_or("")), &e.id, merged_from.as_deref())
            }
            _ => d.ignored += 1,
        }
    }
    // CloudEvents carry the provider's event id: the delivery is the set of its event ids.
    d.dedupe_key = hash_events("qboce", ids);
    d.changes = col.out;
    Ok(d)
}

// ---------- Xero ----------

#[derive(Deserialize)]
struct XeroPayload<'a> {
    #[serde(borrow)]
    events: Vec<XeroEvent<'a>>,
    // Required by Xero's schema; checked so a random signed JSON object is not taken for a delivery.
    #[serde(rename = "firstEventSequence")]
    _first: serde::de::IgnoredAny,
    #[serde(rename = "lastEventSequence")]
    _last: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
struct XeroEvent<'a> {
    #[serde(rename = "resourceId", borrow)]
    resource_id: Cow<'a, str>,
    #[serde(rename = "eventCategory", borrow)]
    event_category: Cow<'a, str>,
    #[serde(rename = "eventType", borrow)]
    event_type: Cow<'a, str>,
    #[serde(rename = "eventDateUtc", default, borrow)]
    event_date_utc: Option<Cow<'a, str>>,
    #[serde(rename = "tenantId", borrow)]
    tenant_id: Cow<'a, str>,
    #[serde(rename = "tenantType", default, borrow)]
    tenant_type: Option<Cow<'a, str>>,
}

fn parse_xero(body: &[u8]) -> Result<Delivery> {
    let p: XeroPayload = serde_json::from_slice(body).map_err(json_error)?;
    let mut d = Delivery::default();
    let mut col = Collector::default();
    let mut idents = Vec::with_capacity(p.events.len());
    for e in &p.events {
        d.events += 1;
        let date: &str = e.event_date_utc.as_deref().unwrap_or("");
        idents.push([e.tenant_id.as_ref(), &e.event_category, &e.resource_id, &e.event_type, date]);
        // SUBSCRIPTION (App Store, tenantType APPLICATION) is not a synced entity. INVOICE covers
        // bills too (ACCPAY invoices), CREDITNOTE both kinds of credit note (xero-webhooks.yaml):
        // the worker's read of the record tells them apart.
        let entity = match e.event_category.as_ref() {
            "INVOICE" => Some(Entity::Invoice),
            "CONTACT" => Some(Entity::Contact),
            "CREDITNOTE" => Some(Entity::CreditNote),
            _ => None,
        };
        let org = e.tenant_type.as_deref().is_none_or(|t| t == "ORGANISATION");
        match entity {
            Some(entity) if org && valid_id(&e.tenant_id) && valid_id(&e.resource_id) => {
                col.push(&e.tenant_id, entity, &e.resource_id, qbo_change(&e.event_type), date)
            }
            _ => d.ignored += 1,
        }
    }
    // Xero has no event id; `entropy` and the sequence numbers describe the batch, not the events,
    // so the delivery is identified by its events (tenant, category, resource, type, date).
    d.dedupe_key = hash_events("xero", idents);
    d.changes = col.out;
    fill_versions(&mut d);
    Ok(d)
}

// ---------- Zoho Books ----------

/// Zoho module names (default payload keys and template values) and their id fields.
fn zoho_entity(name: &str) -> Option<(Entity, &'static str)> {
    match name.to_ascii_lowercase().as_str() {
        "invoice" | "invoices" => Some((Entity::Invoice, "invoice_id")),
        "contact" | "contacts" | "customer" => Some((Entity::Contact, "contact_id")),
        "chartofaccount" | "chartofaccounts" | "chart_of_account" | "account" => Some((Entity::Account, "account_id")),
        "customerpayment" | "customerpayments" | "customer_payment" | "payment" => Some((Entity::Payment, "payment_id")),
        "bill" | "bills" => Some((Entity::Bill, "bill_id")),
        // The connect callback registers the four above; the sync worker registers the modules of
        // the entities a tenant enables (`providers::zoho_webhooks::modules_for`).
        "creditnote" | "creditnotes" => Some((Entity::CreditNote, "creditnote_id")),
        "vendorcredit" | "vendorcredits" | "vendor_credit" => Some((Entity::CreditNote, "vendor_credit_id")),
        "vendorpayment" | "vendorpayments" | "vendor_payment" => Some((Entity::BillPayment, "payment_id")),
        "purchaseorder" | "purchaseorders" | "purchase_order" => Some((Entity::PurchaseOrder, "purchaseorder_id")),
        "journal" | "journals" => Some((Entity::Journal, "journal_id")),
        "item" | "items" => Some((Entity::Item, "item_id")),
        // Expenses are bank transactions in the common model (`providers::zoho::collections`).
        "expense" | "expenses" => Some((Entity::BankTransaction, "expense_id")),
        _ => None,
    }
}

fn zoho_change(ev: &str) -> Change {
    let ev = ev.to_ascii_lowercase();
    if ev.contains("creat") {
        Change::Created
    } else if ev.contains("delet") {
        Change::Deleted
    } else if ev.contains("void") {
        Change::Voided
    } else if ev.contains("updat") || ev.contains("edit") {
        Change::Updated
    } else {
        Change::Unknown
    }
}

fn json_str(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_zoho(body: &[u8], org: &str) -> Result<Delivery> {
    if !valid_id(org) {
        return Err(malformed("organization_id invalid"));
    }
    let value: serde_json::Value = match first_non_ws(body) {
        Some(b'{') => serde_json::from_slice(body).map_err(json_error)?,
        Some(b'[') => return Err(malformed("expected a JSON object")),
        Some(_) => {
            // Form body: Zoho's `JSONString` field, or the template's flat fields.
            let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
            match pairs.get("JSONString") {
                Some(j) => serde_json::from_str(j).map_err(json_error)?,
                None => serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect()),
            }
        }
        None => return Err(malformed("empty body")),
    };
    let obj = value.as_object().ok_or_else(|| malformed("expected a JSON object"))?;
    let mut d = Delivery { events: 1, ..Default::default() };
    // Flat template first, then Zoho's default `{ "<module>": { ... } }` payload.
    let found = if let Some(module) = json_str(obj.get("entity")).or_else(|| json_str(obj.get("module"))) {
        zoho_entity(&module).map(|(entity, id_field)| {
            let id = json_str(obj.get("entity_id")).or_else(|| json_str(obj.get(id_field)));
            let ev = json_str(obj.get("event_type")).or_else(|| json_str(obj.get("event"))).unwrap_or_default();
            (entity, id, zoho_change(&ev), json_str(obj.get("last_modified_time")).unwrap_or_default())
        })
    } else {
        obj.iter().find_map(|(k, v)| {
            let (entity, id_field) = zoho_entity(k)?;
            let rec = v.as_object()?;
            let ev = json_str(obj.get("event_type")).unwrap_or_default();
            Some((entity, json_str(rec.get(id_field)), zoho_change(&ev), json_str(rec.get("last_modified_time")).unwrap_or_default()))
        })
    };
    match found {
        Some((entity, id, change, version)) => {
            let entity_id = match id {
                Some(id) if valid_id(&id) => Some(id),
                Some(_) => return Err(malformed("entity id invalid")),
                None => None,
            };
            d.changes.push(EntityChange { org_id: org.to_string(), entity, entity_id, change, merged_from: None, event_version: version });
        }
        None => d.ignored = 1,
    }
    // No event id in Zoho Books deliveries: the (org-scoped) body is the delivery's identity.
    let mut h = Sha256::new();
    h.update(org.as_bytes());
    h.update([0u8]);
    h.update(body);
    let digest = hex::encode(h.finalize());
    // `last_modified_time` is in whole seconds, so two updates of a record within one second would
    // share it, and the second's job would be skipped as done when the first's re-read came before
    // that update. Sent with Zoho's default payload (which carries the record) their bodies differ,
    // so the body is part of the version: a repeat of one delivery is still one job. Identical
    // bodies (the registered template's) are one delivery to the nonce check anyway.
    for c in d.changes.iter_mut().filter(|c| !c.event_version.is_empty()) {
        c.event_version = format!("{}#{}", c.event_version, &digest[..16]);
    }
    d.dedupe_key = Some(format!("zoho:{digest}"));
    fill_versions(&mut d);
    Ok(d)
}

/// An event without its own timestamp or id takes the delivery's identity as its version. Otherwise
/// every such event for a record would share one idempotency key forever, and the worker would skip
/// all but the first.
fn fill_versions(d: &mut Delivery) {
    if let Some(key) = &d.dedupe_key {
        for c in d.changes.iter_mut().filter(|c| c.event_version.is_empty()) {
            c.event_version = key.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Intuit's own sample from the CloudEvents migration announcement (blog 2025-11-12).
    const QBO_LEGACY: &str = r#"{"eventNotifications":[{"realmId":"310687","dataChangeEvent":{"entities":[{"id":"1234","operation":"Create","name":"Account","lastUpdated":"2025-09-08T20:52:31.657Z"}]}}]}"#;
    const QBO_CE: &str = r#"[{"specversion":"1.0","id":"88cd52aa-33b6-4351-9aa4-47572edbd068","source":"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.account.created.v1","datacontenttype":"application/json","time":"2025-09-10T21:31:25.179851517Z","intuitentityid":"1234","intuitaccountid":"310687","data":{}}]"#;
    // Xero's example from xero-webhooks.yaml.
    const XERO: &str = r#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","eventDateUtc":"2024-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"CONTACT","tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f","tenantType":"ORGANISATION"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}"#;
    const XERO_ITR: &str = r#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"CWJLQXKOBYLKYFYHGXCK"}"#;

    #[test]
    fn quickbooks_merges_carry_the_surviving_and_the_merged_away_ids() {
        let legacy = r#"{"eventNotifications":[{"realmId":"310687","dataChangeEvent":{"entities":[
            {"name":"Customer","id":"12","operation":"Merge","lastUpdated":"2026-01-01T00:00:00Z","deletedId":"7"},
            {"name":"Customer","id":"12","operation":"Update","lastUpdated":"2026-01-01T00:00:05Z"},
            {"name":"Account","id":"3","operation":"Merge","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}"#;
        let d = parse(Provider::QuickBooks, legacy.as_bytes(), None).unwrap();
        let got: Vec<_> = d.changes.iter().map(|c| (c.entity, c.entity_id.as_deref(), c.change, c.merged_from.as_deref())).collect();
        assert_eq!(
            got,
            vec![(Entity::Contact, Some("12"), Change::Updated, Some("7")), (Entity::Account, Some("3"), Change::Merged, None)]
        );
        // Intuit's CloudEvents merge sample ("Understanding the data object").
        let ce = r#"[{"specversion":"1.0","id":"e-Customer-123","source":"intuit.x","type":"qbo.customer.merged.v1","datacontenttype":"application/json","time":"2025-12-04T15:25:05Z","intuitentityid":"123","intuitaccountid":"9341455600","data":{"deletedid":"27"}}]"#;
        let d = parse(Provider::QuickBooks, ce.as_bytes(), None).unwrap();
        assert_eq!(
            (d.changes[0].entity_id.as_deref(), d.changes[0].change, d.changes[0].merged_from.as_deref()),
            (Some("123"), Change::Merged, Some("27"))
        );
        // A deletedid that is not an id, or names the survivor itself, is dropped rather than trusted.
        for (data, want) in [
            (r#""data":{"deletedid":"a b"}"#, None),
            (r#""data":{"deletedid":"123"}"#, None),
            (r#""data":{"deletedid":{"id":"5"}}"#, None),
            (r#""data":{"deletedid":5}"#, Some("5")),
        ] {
            let body = ce.replace(r#""data":{"deletedid":"27"}"#, data);
            let d = parse(Provider::QuickBooks, body.as_bytes(), None).expect(data);
            assert_eq!(d.changes[0].merged_from.as_deref(), want, "{data}");
        }
    }

    #[test]
    fn quickbooks_legacy_sample() {
        let d = parse(Provider::QuickBooks, QBO_LEGACY.as_bytes(), None).unwrap();
        assert_eq!(d.events, 1);
        assert_eq!(
            d.changes,
            vec![EntityChange {
                org_id: "310687".into(),
                entity: Entity::Account,
                entity_id: Some("1234".into()),
                change: Change::Created,
                merged_from: None,
                event_version: "2025-09-08T20:52:31.657Z".into()
            }]
        );
        assert!(d.dedupe_key.unwrap().starts_with("qbo:"));
    }

    #[test]
    fn quickbooks_cloudevents_sample_and_dedupe_on_event_ids() {
        let d = parse(Provider::QuickBooks, QBO_CE.as_bytes(), None).unwrap();
        assert_eq!(d.changes.len(), 1);
        let c = &d.changes[0];
        assert_eq!(
            (c.org_id.as_str(), c.entity, c.entity_id.as_deref(), c.change),
            ("310687", Entity::Account, Some("1234"), Change::Created)
        );
        assert_eq!(c.event_version, "88cd52aa-33b6-4351-9aa4-47572edbd068");
        // Same event ids re-serialised differently => same delivery identity.
        let reformatted: serde_json::Value = serde_json::from_str(QBO_CE).unwrap();
        let pretty = serde_json::to_string_pretty(&reformatted).unwrap();
        assert_eq!(parse(Provider::QuickBooks, pretty.as_bytes(), None).unwrap().dedupe_key, d.dedupe_key);
        let other = QBO_CE.replace("88cd52aa", "99cd52aa");
        assert_ne!(parse(Provider::QuickBooks, other.as_bytes(), None).unwrap().dedupe_key, d.dedupe_key);
    }

    #[test]
    fn mixed_realms_unsupported_entities_and_repeats_collapse() {
        let body = r#"{"eventNotifications":[
            {"realmId":"1","dataChangeEvent":{"entities":[
                {"name":"Invoice","id":"10","operation":"Create","lastUpdated":"2026-01-01T00:00:00Z"},
                {"name":"Invoice","id":"10","operation":"Update","lastUpdated":"2026-01-01T00:00:05Z"},
                {"name":"Bill","id":"11","operation":"Create","lastUpdated":"2026-01-01T00:00:00Z"},
                {"name":"Estimate","id":"13","operation":"Create","lastUpdated":"2026-01-01T00:00:00Z"},
                {"name":"Customer","id":"12","operation":"Merge","lastUpdated":"2026-01-01T00:00:00Z"}]}},
            {"realmId":"2","dataChangeEvent":{"entities":[
                {"name":"Invoice","id":"10","operation":"Delete","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}"#;
        let d = parse(Provider::QuickBooks, body.as_bytes(), None).unwrap();
        assert_eq!((d.events, d.ignored), (6, 1), "an estimate is not a synced entity");
        let got: Vec<_> = d.changes.iter().map(|c| (c.org_id.as_str(), c.entity, c.entity_id.as_deref().unwrap(), c.change)).collect();
        assert_eq!(
            got,
            vec![
                ("1", Entity::Invoice, "10", Change::Updated),
                ("1", Entity::Bill, "11", Change::Created),
                ("1", Entity::Contact, "12", Change::Merged),
                ("2", Entity::Invoice, "10", Change::Deleted)
            ]
        );
    }

    /// QuickBooks sends Item, Class and JournalEntry notifications (its webhooks' entity list): they
    /// reach the item, tracking category and journal entities (jobs for one the tenant has not
    /// enabled are skipped by the worker). TaxCode has no notifications.
    #[test]
    fn quickbooks_reference_data_notifications_map_to_their_entities() {
        let body = r#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[
            {"name":"Item","id":"11","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"Class","id":"5000000000000000001","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"JournalEntry","id":"81","operation":"Delete","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"Purchase","id":"90","operation":"Create","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"Transfer","id":"91","operation":"Delete","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}"#;
        let d = parse(Provider::QuickBooks, body.as_bytes(), None).unwrap();
        let got: Vec<_> = d.changes.iter().map(|c| (c.entity, c.change)).collect();
        assert_eq!(
            got,
            vec![
                (Entity::Item, Change::Updated),
                (Entity::TrackingCategory, Change::Updated),
                (Entity::Journal, Change::Deleted),
                (Entity::BankTransaction, Change::Created),
                (Entity::BankTransaction, Change::Deleted)
            ]
        );
    }

    /// QuickBooks notifies Department changes (its webhooks' entity list: create, update, delete):
    /// they reach tracking categories under the department's prefixed id, in both formats, so a
    /// department never reads as the class of the same Id.
    #[test]
    fn quickbooks_department_notifications_carry_the_department_id() {
        let body = r#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[
            {"name":"Department","id":"3","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"Class","id":"3","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}"#;
        let d = parse(Provider::QuickBooks, body.as_bytes(), None).unwrap();
        let got: Vec<_> = d.changes.iter().map(|c| (c.entity, c.entity_id.as_deref().unwrap_or_default())).collect();
        assert_eq!(got, vec![(Entity::TrackingCategory, "department-3"), (Entity::TrackingCategory, "3")]);
        let ce = r#"[{"specversion":"1.0","id":"e1","source":"intuit.x","type":"qbo.department.updated.v1","time":"2026-01-01T00:00:00Z",
            "intuitentityid":"4","intuitaccountid":"1","data":{}}]"#;
        let d = parse(Provider::QuickBooks, ce.as_bytes(), None).unwrap();
        assert_eq!(d.changes[0].entity_id.as_deref(), Some("department-4"));
    }

    /// QuickBooks notifies CreditMemo, VendorCredit, BillPayment and PurchaseOrder changes; Xero
    /// CREDITNOTE events (its webhooks spec's own example); Zoho modules an org's workflow rules
    /// may send. Each reaches its entity.
    #[test]
    fn credit_notes_payments_made_and_orders_reach_their_entities() {
        let body = r#"{"eventNotifications":[{"realmId":"1","dataChangeEvent":{"entities":[
            {"name":"CreditMemo","id":"21","operation":"Create","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"VendorCredit","id":"22","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"BillPayment","id":"23","operation":"Delete","lastUpdated":"2026-01-01T00:00:00Z"},
            {"name":"PurchaseOrder","id":"24","operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}"#;
        let d = parse(Provider::QuickBooks, body.as_bytes(), None).unwrap();
        let got: Vec<_> = d.changes.iter().map(|c| (c.entity, c.entity_id.as_deref().unwrap_or_default(), c.change)).collect();
        assert_eq!(
            got,
            vec![
                (Entity::CreditNote, "21", Change::Created),
                (Entity::CreditNote, "22", Change::Updated),
                (Entity::BillPayment, "23", Change::Deleted),
                (Entity::PurchaseOrder, "24", Change::Updated)
            ]
        );
        let xero = r#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/CreditNotes/55d84274-a3da-4829-a7c0-0cab601b95cc",
            "resourceId":"55d84274-a3da-4829-a7c0-0cab601b95cc","tenantId":"aef86862-2015-4b6b-88bc-d89032cecc50",
            "tenantType":"ORGANISATION","eventCategory":"CREDITNOTE","eventType":"CREATE","eventDateUtc":"2025-12-02T00:44:09.923",
            "data":{"Type":"ACCPAYCREDIT","Status":"DRAFT"}}],"firstEventSequence":76,"lastEventSequence":76,"entropy":"FXNGWLCCGVANWHKILRUB"}"#;
        let d = parse(Provider::Xero, xero.as_bytes(), None).unwrap();
        assert_eq!((d.changes.len(), d.changes[0].entity, d.changes[0].change), (1, Entity::CreditNote, Change::Created));
        for (module, id_field, entity) in [
            ("vendorcredit", "vendor_credit_id", Entity::CreditNote),
            ("vendorpayment", "payment_id", Entity::BillPayment),
            ("journal", "journal_id", Entity::Journal),
        ] {
            let body = format!(r#"{{"{module}":{{"{id_field}":"4600000001","last_modified_time":"2026-01-01T00:00:00+0000"}}}}"#);
            let d = parse(Provider::Zoho, body.as_bytes(), Some("700000001")).unwrap();
            assert_eq!((d.changes[0].entity, d.changes[0].entity_id.as_deref().unwrap_or_default()), (entity, "4600000001"), "{module}");
        }
    }

    #[test]
    fn xero_sample_and_intent_to_receive() {
        let d = parse(Provider::Xero, XERO.as_bytes(), None).unwrap();
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].entity, Entity::Contact);
        assert_eq!(d.changes[0].org_id, "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f");
        assert_eq!(d.changes[0].change, Change::Updated);
        let itr = parse(Provider::Xero, XERO_ITR.as_bytes(), None).unwrap();
        assert_eq!((itr.events, itr.changes.len(), itr.dedupe_key), (0, 0, None));
        // The entropy is not part of the identity: Xero may resend the same events with new entropy.
        let resent = XERO.replace("S0m3r4Nd0mt3xt", "OTHERENTROPY");
        assert_eq!(parse(Provider::Xero, resent.as_bytes(), None).unwrap().dedupe_key, d.dedupe_key);
        // Subscriptions are counted, not synced (credit notes are synced since Xero sends them).
        let sub = XERO.replace("\"CONTACT\"", "\"SUBSCRIPTION\"");
        let d = parse(Provider::Xero, sub.as_bytes(), None).unwrap();
        assert_eq!((d.changes.len(), d.ignored), (0, 1));
    }

    #[test]
    fn zoho_default_payload_template_and_form() {
        let d = parse(
            Provider::Zoho,
            br#"{"invoice":{"invoice_id":"4600000012345","last_modified_time":"2026-01-02T10:00:00+0000","total":10}}"#,
            Some("700000001"),
        )
        .unwrap();
        assert_eq!(d.changes[0].entity, Entity::Invoice);
        assert_eq!(d.changes[0].entity_id.as_deref(), Some("4600000012345"));
        assert_eq!(d.changes[0].org_id, "700000001");
        let t =
            parse(Provider::Zoho, br#"{"entity":"contact","entity_id":"77","event_type":"contact_updated"}"#, Some("700000001")).unwrap();
        assert_eq!((t.changes[0].entity, t.changes[0].change), (Entity::Contact, Change::Updated));
        let f = parse(Provider::Zoho, b"entity=customerpayment&entity_id=5&event_type=created", Some("700000001")).unwrap();
        assert_eq!(
            (f.changes[0].entity, f.changes[0].entity_id.as_deref(), f.changes[0].change),
            (Entity::Payment, Some("5"), Change::Created)
        );
        let j = parse(Provider::Zoho, b"JSONString=%7B%22invoice%22%3A%7B%22invoice_id%22%3A%229%22%7D%7D", Some("700000001")).unwrap();
        assert_eq!(j.changes[0].entity_id.as_deref(), Some("9"));
        // Two updates within one of Zoho's whole seconds, in different bodies, are two jobs; a
        // repeat of either is not.
        let first = br#"{"invoice":{"invoice_id":"46","last_modified_time":"2026-01-02T10:00:00+0000","status":"draft"}}"#;
        let second = br#"{"invoice":{"invoice_id":"46","last_modified_time":"2026-01-02T10:00:00+0000","status":"sent"}}"#;
        let key = |body: &[u8]| {
            let c = parse(Provider::Zoho, body, Some("700000001")).unwrap().changes.remove(0);
            crate::jobs::webhook_idempotency_key(
                Provider::Zoho,
                &c.org_id,
                c.entity,
                c.entity_id.as_deref().unwrap(),
                c.change,
                &c.event_version,
            )
        };
        assert_ne!(key(first), key(second));
        assert_eq!(key(first), key(first));
        // Same body for another org is another delivery.
        let a = parse(Provider::Zoho, b"{\"invoice\":{}}", Some("1")).unwrap();
        let b = parse(Provider::Zoho, b"{\"invoice\":{}}", Some("2")).unwrap();
        assert_ne!(a.dedupe_key, b.dedupe_key);
        assert_eq!(a.changes[0].entity_id, None);
    }

    #[test]
    fn malformed_bodies_are_invalid_input() {
        let cases: Vec<(Provider, &[u8])> = vec![
            (Provider::QuickBooks, b"{"),
            (Provider::QuickBooks, b"{\"eventNotifications\":{}}"),
            (Provider::QuickBooks, b"[{\"type\":\"qbo.invoice.created.v1\"}]"),
            (Provider::QuickBooks, b"{\"eventNotifications\":[{\"realmId\":\"\"}]}"),
            (Provider::Xero, b"{\"events\":[]}"),
            (Provider::Xero, b""),
            (Provider::Xero, b"null"),
            (Provider::Zoho, b""),
            (Provider::Zoho, b"[1]"),
            (Provider::Zoho, b"{\"invoice\":{\"invoice_id\":\"a b\"}}"),
        ];
        for (p, body) in cases {
            let err = parse(p, body, Some("700000001")).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::InvalidInput, "{p} {:?}", String::from_utf8_lossy(body));
        }
        assert!(parse(Provider::Zoho, b"{}", None).is_err());
    }
}
