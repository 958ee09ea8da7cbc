//! The attributes that place a record item in the records API's indexes (GSIs on the sync table,
//! read by `crate::records`). They live beside the record writer because every write of a record
//! must carry them: `PutItem` replaces the whole item, so a record whose status or dates changed
//! leaves its old index entries at once.
//!
//! Every index is sparse (an item without the attribute is not in it) and keyed under the tenant
//! (`TENANT#<t>#...`), so IAM's `dynamodb:LeadingKeys` holds on the indexes as on the table.
//!
//! | index | hash | range |
//! | --- | --- | --- |
//! | `records_by_modified` | `rx_scope` = `TENANT#<t>#<provider>#<org>#<entity>` | `rx_mod` = `<written ms, 15 digits>#<provider id>` |
//! | `records_by_due` | `rx_scope` | `rx_due` = `<YYYY-MM-DD>#<provider id>` |
//! | `records_by_issue` | `rx_scope` | `rx_issue` = `<YYYY-MM-DD>#<provider id>` |
//! | `records_by_status` | `rx_status` = `<scope>#<status, lower case>` | `rx_mod` |
//! | `records_by_contact` | `rx_contact` = `<scope>#<contact id>` | `rx_mod` |
//!
//! Records written before these attributes existed are in none of the indexes until [`backfill`]
//! adds them: a pull does not rewrite a record whose content is unchanged (`SyncStore::put_records`
//! skips it by its content hash), so a full sync alone leaves old records out.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::providers::model::Entity;
use crate::store::{dynamo_error, is_conditional_failure, tenant_pk, Item};
use crate::sync::model::{SyncRecord, MAX_ID_LEN};
use crate::{Provider, Result};

pub const BY_MODIFIED: &str = "records_by_modified";
pub const BY_DUE: &str = "records_by_due";
pub const BY_ISSUE: &str = "records_by_issue";
pub const BY_STATUS: &str = "records_by_status";
pub const BY_CONTACT: &str = "records_by_contact";

pub const ATTR_SCOPE: &str = "rx_scope";
pub const ATTR_MODIFIED: &str = "rx_mod";
pub const ATTR_DUE: &str = "rx_due";
pub const ATTR_ISSUE: &str = "rx_issue";
pub const ATTR_STATUS: &str = "rx_status";
pub const ATTR_CONTACT: &str = "rx_contact";

/// Digits of the zero-padded write time: epoch milliseconds stay 13 digits until the year 2286, and
/// the padding keeps string order equal to time order past that.
const MS_DIGITS: usize = 15;
/// Status texts and contact ids longer than this are not indexed (GSI hash keys hold 2,048 bytes;
/// no provider sends anything near it, so a longer one is hostile or broken data).
const MAX_KEY_PART: usize = MAX_ID_LEN;

/// The hash key of one connection's records of one entity.
pub fn scope(tenant_id: &str, provider: Provider, org_id: &str, entity: Entity) -> String {
    format!("TENANT#{tenant_id}#{provider}#{org_id}#{entity}")
}

/// `rx_mod`'s time part: records written at or after `ms` sort at or after this string.
pub fn modified_key(ms: i64) -> String {
    format!("{:0width$}", ms.max(0), width = MS_DIGITS)
}

/// The written time back from an `rx_mod` value.
pub fn modified_ms(rx_mod: &str) -> Option<i64> {
    rx_mod.get(..MS_DIGITS)?.parse().ok()
}

/// `YYYY-MM-DD`, or `None` for years that would not sort as text (before 0 or after 9999).
pub fn date_key(d: NaiveDate) -> Option<String> {
    (0..=9999).contains(&d.year()).then(|| format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()))
}

pub fn status_key(scope: &str, status: &str) -> String {
    format!("{scope}#{}", status.to_lowercase())
}

pub fn contact_key(scope: &str, contact_id: &str) -> String {
    format!("{scope}#{contact_id}")
}

/// The index attributes of a record item written at `written_at`.
pub fn index_attributes(tenant_id: &str, r: &SyncRecord, written_at: DateTime<Utc>) -> Vec<(String, AttributeValue)> {
    let scope = scope(tenant_id, r.provider, &r.org_id, r.entity);
    let id = &r.provider_id;
    let mut out = vec![(ATTR_MODIFIED.to_string(), AttributeValue::S(format!("{}#{id}", modified_key(written_at.timestamp_millis()))))];
    if let Some(d) = r.due_date.and_then(date_key) {
        out.push((ATTR_DUE.to_string(), AttributeValue::S(format!("{d}#{id}"))));
    }
    if let Some(d) = r.issue_date.and_then(date_key) {
        out.push((ATTR_ISSUE.to_string(), AttributeValue::S(format!("{d}#{id}"))));
    }
    if let Some(st) = r.status.as_deref().filter(|s| !s.is_empty() && s.len() <= MAX_KEY_PART) {
        out.push((ATTR_STATUS.to_string(), AttributeValue::S(status_key(&scope, st))));
    }
    if let Some(c) = r.contact_id.as_deref().filter(|c| !c.is_empty() && c.len() <= MAX_KEY_PART) {
        out.push((ATTR_CONTACT.to_string(), AttributeValue::S(contact_key(&scope, c))));
    }
    out.push((ATTR_SCOPE.to_string(), AttributeValue::S(scope)));
    out
}

/// What [`backfill`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfilled {
    /// Record items that got their index attributes.
    pub indexed: usize,
    /// Rewritten by a sync while we looked (they carry the attributes already), or unreadable.
    pub skipped: usize,
}

/// Adds the index attributes to a tenant's record items written before they existed, keeping
/// their write time (`synced_at`), so `modified_after` keeps its order. Reads only items without
/// them; each update is conditioned on the item's `doc` being the one read, so a record a sync
/// rewrote meanwhile is left as the sync wrote it. Changes no record content, version or hash.
pub async fn backfill(db: &aws_sdk_dynamodb::Client, table: &str, tenant_id: &str) -> Result<Backfilled> {
    let mut done = Backfilled::default();
    let mut start: Option<Item> = None;
    loop {
        let out = db
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
            .filter_expression("attribute_not_exists(#scope)")
            .projection_expression("pk, sk, #doc, synced_at")
            .expression_attribute_names("#scope", ATTR_SCOPE)
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant_id)))
            .expression_attribute_values(":rec", AttributeValue::S("REC#".into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| dynamo_error("Query(records to index)", e))?;
        for item in out.items.unwrap_or_default() {
            let (Some(sk), Some(doc)) = (item.get("sk").cloned(), item.get("doc").and_then(|d| d.as_s().ok()).cloned()) else {
                done.skipped += 1;
                continue;
            };
            let Ok(record) = serde_json::from_str::<SyncRecord>(&doc) else {
                done.skipped += 1;
                continue;
            };
            let written_at = item
                .get("synced_at")
                .and_then(|t| t.as_s().ok())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default();
            let attrs = index_attributes(tenant_id, &record, written_at);
            let set = (0..attrs.len()).map(|i| format!("#a{i} = :a{i}")).collect::<Vec<_>>().join(", ");
            let mut req = db
                .update_item()
                .table_name(table)
                .key("pk", AttributeValue::S(tenant_pk(tenant_id)))
                .key("sk", sk)
                .update_expression(format!("SET {set}"))
                .condition_expression("#doc = :doc")
                .expression_attribute_names("#doc", "doc")
                .expression_attribute_values(":doc", AttributeValue::S(doc));
            for (i, (name, value)) in attrs.into_iter().enumerate() {
                req = req.expression_attribute_names(format!("#a{i}"), name).expression_attribute_values(format!(":a{i}"), value);
            }
            match req.send().await {
                Ok(_) => done.indexed += 1,
                Err(e) if is_conditional_failure(&e) => done.skipped += 1,
                Err(e) => return Err(dynamo_error("UpdateItem(record index)", e)),
            }
        }
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SyncRecord {
        SyncRecord {
            provider: Provider::Xero,
            org_id: "org-1".into(),
            entity: Entity::Invoice,
            provider_id: "inv-9".into(),
            number: None,
            name: None,
            status: Some("AUTHORISED".into()),
            amount: None,
            contact_id: Some("c-1".into()),
            issue_date: NaiveDate::from_ymd_opt(2026, 1, 5),
            due_date: NaiveDate::from_ymd_opt(2026, 2, 4),
            updated_at: None,
            deleted: false,
            raw_ref: "xero/org-1/invoice/inv-9".into(),
            flags: vec![],
            document: None,
            company: None,
            version: None,
            payment: None,
            reference: Default::default(),
            contact: None,
        }
    }

    fn get(attrs: &[(String, AttributeValue)], name: &str) -> Option<String> {
        attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_s().unwrap().clone())
    }

    #[test]
    fn every_key_starts_with_the_tenant_and_sorts_as_its_value() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let a = index_attributes("acme-1", &record(), at);
        assert_eq!(get(&a, ATTR_SCOPE).unwrap(), "TENANT#acme-1#xero#org-1#invoice");
        assert_eq!(get(&a, ATTR_MODIFIED).unwrap(), "001767225600123#inv-9");
        assert_eq!(get(&a, ATTR_DUE).unwrap(), "2026-02-04#inv-9");
        assert_eq!(get(&a, ATTR_ISSUE).unwrap(), "2026-01-05#inv-9");
        assert_eq!(get(&a, ATTR_STATUS).unwrap(), "TENANT#acme-1#xero#org-1#invoice#authorised");
        assert_eq!(get(&a, ATTR_CONTACT).unwrap(), "TENANT#acme-1#xero#org-1#invoice#c-1");
        assert_eq!(modified_ms(&get(&a, ATTR_MODIFIED).unwrap()), Some(1_767_225_600_123));
        assert!(modified_key(999) < modified_key(1000), "padding keeps text order equal to time order");
    }

    #[test]
    fn absent_or_unsortable_values_leave_the_record_out_of_that_index() {
        let mut r = record();
        r.status = None;
        r.contact_id = Some("x".repeat(MAX_KEY_PART + 1));
        r.due_date = NaiveDate::from_ymd_opt(12026, 1, 1);
        r.issue_date = None;
        let a = index_attributes("acme-1", &r, Utc::now());
        let names: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, vec![ATTR_MODIFIED, ATTR_SCOPE]);
    }
}
