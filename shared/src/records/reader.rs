//! The records API's reads of the sync table: one Query per page on one of the record indexes
//! (`crate::sync::record_index`), one GetItem per record, and the raw provider JSON from the table
//! itself only when asked (the indexes do not project it, so it is not stored six times).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cursor;
use super::query::{plan, ListParams};
use crate::providers::model::Entity;
use crate::store::{dynamo_error, tenant_pk, Item};
use crate::sync::model::SyncRecord;
use crate::sync::record_index as rx;
use crate::sync::store::record_sk;
use crate::{Error, Provider, Result};

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Rounds of unprocessed keys retried before the page fails (retryable).
const BATCH_GET_ROUNDS: usize = 5;

/// One record as the API answers it: the common model's JSON, when we stored it, and the
/// provider's JSON when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub record: SyncRecord,
    pub modified_at: Option<DateTime<Utc>>,
    pub raw: Option<Value>,
}

impl RecordView {
    pub fn to_json(&self, include_raw: bool) -> Value {
        let mut v = serde_json::json!({
            "record": self.record,
            "modified_at": self.modified_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        });
        if include_raw {
            v["raw"] = self.raw.clone().unwrap_or(Value::Null);
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<RecordView>,
    pub next_cursor: Option<String>,
    /// Items DynamoDB read for the page (before filters): what a page costs.
    pub scanned: i32,
}

#[derive(Clone, Debug)]
pub struct RecordsReader {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

fn view(item: &Item) -> Result<RecordView> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| Error::Storage { message: "record item without doc".into(), retryable: false })?;
    let record: SyncRecord =
        serde_json::from_str(doc).map_err(|e| Error::Storage { message: format!("stored record: {e}"), retryable: false })?;
    let modified_at = item
        .get(rx::ATTR_MODIFIED)
        .and_then(|v| v.as_s().ok())
        .and_then(|m| rx::modified_ms(m))
        .or_else(|| {
            let t = item.get("synced_at")?.as_s().ok()?;
            DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis())
        })
        .and_then(DateTime::from_timestamp_millis);
    let raw = item.get("raw").and_then(|v| v.as_s().ok()).map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())));
    Ok(RecordView { record, modified_at, raw })
}

impl RecordsReader {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        RecordsReader { db, table: table.into() }
    }

    /// One page of a connection's records of one entity. The request's parameters were checked
    /// (`ListParams::parse`); the cursor is checked here, before the read.
    pub async fn list(&self, tenant_id: &str, provider: Provider, org_id: &str, entity: Entity, p: &ListParams) -> Result<Page> {
        let plan = plan(tenant_id, provider, org_id, entity, p)?;
        let start = p.cursor.as_deref().map(|c| cursor::decode(&plan, tenant_id, provider, org_id, entity, c)).transpose()?;
        let limit = i32::try_from(p.limit).map_err(|_| Error::InvalidInput("limit".into()))?;
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(plan.index)
            .key_condition_expression(&plan.key_condition)
            .set_filter_expression(plan.filter.clone())
            .set_expression_attribute_names(plan.names())
            .set_expression_attribute_values(Some(plan.values.clone().into_iter().collect()))
            .set_exclusive_start_key(start)
            .limit(limit)
            .send()
            .await
            .map_err(|e| dynamo_error("Query(records)", e))?;
        let items = out.items.unwrap_or_default();
        let mut records = items.iter().map(view).collect::<Result<Vec<_>>>()?;
        if p.include_raw && !records.is_empty() {
            let sks: Vec<String> = items.iter().filter_map(|i| i.get("sk")?.as_s().ok().cloned()).collect();
            let mut raws = self.raw_of(tenant_id, &sks).await?;
            for (r, sk) in records.iter_mut().zip(&sks) {
                r.raw = raws.remove(sk);
            }
        }
        let next_cursor = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(cursor::encode(&plan, &k)?),
            _ => None,
        };
        Ok(Page { records, next_cursor, scanned: out.scanned_count })
    }

    /// One record, tombstones included (the app asked for it by id).
    pub async fn get(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        entity: Entity,
        provider_id: &str,
        include_raw: bool,
    ) -> Result<Option<RecordView>> {
        // `raw` is a DynamoDB reserved word: every name goes through a placeholder.
        let projection = if include_raw { "#doc, #mod, #synced, #raw" } else { "#doc, #mod, #synced" };
        let mut req = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant_id)))
            .key("sk", AttributeValue::S(record_sk(provider, org_id, entity, provider_id)))
            .projection_expression(projection)
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_names("#mod", rx::ATTR_MODIFIED)
            .expression_attribute_names("#synced", "synced_at");
        if include_raw {
            req = req.expression_attribute_names("#raw", "raw");
        }
        let out = req.send().await.map_err(|e| dynamo_error("GetItem(record)", e))?;
        out.item.as_ref().map(view).transpose()
    }

    /// The raw provider JSON of a page's records, by sort key.
    async fn raw_of(&self, tenant_id: &str, sks: &[String]) -> Result<HashMap<String, Value>> {
        let mut found = HashMap::new();
        for chunk in sks.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|sk| {
                    Item::from([("pk".into(), AttributeValue::S(tenant_pk(tenant_id))), ("sk".into(), AttributeValue::S(sk.clone()))])
                })
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("#sk, #raw")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_names("#raw", "raw")
                    .build()
                    .map_err(|e| Error::Internal(format!("BatchGetItem keys: {e}")))?,
            );
            for round in 0.. {
                let Some(req) = pending.take() else { break };
                if round == BATCH_GET_ROUNDS {
                    return Err(Error::storage("BatchGetItem(raw): keys still unprocessed"));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round)).await;
                }
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| dynamo_error("BatchGetItem(raw)", e))?;
                for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    if let (Some(sk), Some(raw)) = (item.get("sk").and_then(|v| v.as_s().ok()), item.get("raw").and_then(|v| v.as_s().ok()))
                    {
                        found.insert(sk.clone(), serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())));
                    }
                }
                pending = out.unprocessed_keys.unwrap_or_default().remove(&self.table).filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }
}
