//! Reports and passthrough answers in the sync table, under the tenant, for a short time.
//!
//! | sk | what |
//! | --- | --- |
//! | `REPORT#<provider>#<org>#<kind>#<job hash>` | `doc`: the normalised report (JSON), `generated_at`, `expires_at` (TTL) |
//! | `PASSTHROUGH#<provider>#<org>#<job hash>` | `status`, `content_type`, `body` (the answer's bytes as text when they are UTF-8, else base64), `body_encoding` (`utf-8` or `base64`), `body_bytes`, `truncated` (always false), `method`, `path`, `generated_at`, `expires_at` |
//!
//! The job hash is derived from the job's idempotency key, so the event of a job names the one item
//! it wrote. The main app reads with `GetItem(pk, sk)` from the event and must treat an item whose
//! `expires_at` has passed as gone (DynamoDB deletes expired items late).

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::store::{dynamo_error, epoch, is_conditional_failure, n, s, tenant_pk, Item};
use crate::{Provider, Result};

/// How long a stored report or answer stays readable.
pub const LIFETIME: Duration = Duration::hours(24);
/// DynamoDB's item limit, counting every attribute's name and value: "400 KB", which AWS documents
/// without saying which kilobyte and which measures at about 409,600 bytes; moto refuses above
/// 405,000. The decimal figure is below both.
pub const MAX_ITEM_BYTES: usize = 400_000;
/// Largest report document stored, for the same item limit.
pub const MAX_DOC_BYTES: usize = 350 * 1024;

/// Where a stored item is, as the events tell the app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub table: String,
    pub pk: String,
    pub sk: String,
    pub expires_at: String,
}

/// The key and bookkeeping attributes every stored answer carries.
fn finish_item(item: &mut Item, tenant_id: &str, sk: &str, now: DateTime<Utc>) {
    item.insert("pk".into(), s(tenant_pk(tenant_id)));
    item.insert("sk".into(), s(sk));
    item.insert("tenant_id".into(), s(tenant_id));
    item.insert("generated_ms".into(), n(now.timestamp_millis()));
    item.insert("generated_at".into(), s(now.to_rfc3339()));
    item.insert("expires_at".into(), n(epoch(now + LIFETIME)));
}

/// An item's size as DynamoDB counts it against its 400 KB limit: each attribute's name plus its
/// value (strings and binaries by their bytes, numbers up to 21 bytes, booleans 1). An upper bound
/// for the types used here.
pub fn item_size(item: &Item) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    A::S(x) => x.len(),
                    A::N(x) => x.len().min(38) / 2 + 2,
                    A::B(b) => b.as_ref().len(),
                    A::Bool(_) | A::Null(_) => 1,
                    // Not written by this store; counted generously.
                    _ => MAX_ITEM_BYTES,
                }
        })
        .sum()
}

/// The passthrough answer's item, with its key, checked against DynamoDB's item limit; and how its
/// body is encoded (`utf-8` or `base64`).
pub fn answer_item(
    tenant_id: &str,
    sk: &str,
    method: &str,
    path: &str,
    answer: &crate::providers::raw::RawAnswer,
    now: DateTime<Utc>,
) -> Result<(Item, &'static str)> {
    use base64::Engine;
    let mut item = Item::new();
    item.insert("method".into(), s(method));
    item.insert("path".into(), s(path));
    item.insert("status".into(), n(answer.status));
    if let Some(ct) = &answer.content_type {
        item.insert("content_type".into(), s(ct.chars().take(200).collect::<String>()));
    }
    item.insert("body_bytes".into(), n(answer.body.len()));
    item.insert("truncated".into(), aws_sdk_dynamodb::types::AttributeValue::Bool(false));
    let (body, encoding) = match std::str::from_utf8(&answer.body) {
        Ok(text) => (text.to_string(), "utf-8"),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&answer.body), "base64"),
    };
    item.insert("body".into(), s(body));
    item.insert("body_encoding".into(), s(encoding));
    finish_item(&mut item, tenant_id, sk, now);
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(crate::Error::PayloadTooLarge { size, limit: MAX_ITEM_BYTES });
    }
    Ok((item, encoding))
}

pub fn job_hash(idempotency_key: &str) -> String {
    hex::encode(&Sha256::digest(idempotency_key.as_bytes())[..12])
}

#[derive(Debug, Clone)]
pub struct ReportStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl ReportStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ReportStore { db, table: table.into() }
    }

    /// Writes `item` under (tenant, `sk`) (the key and bookkeeping attributes are added here; see
    /// [`finish_item`]). A re-run of the same job (its claim ran out) writes the
    /// same key: the newer answer wins, an older one arriving late is dropped.
    async fn put(&self, tenant_id: &str, sk: String, mut item: Item, now: DateTime<Utc>) -> Result<Location> {
        let expires = now + LIFETIME;
        finish_item(&mut item, tenant_id, &sk, now);
        let r = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk) OR generated_ms <= :g")
            .expression_attribute_values(":g", n(now.timestamp_millis()))
            .send()
            .await;
        match r {
            Ok(_) => {}
            Err(e) if is_conditional_failure(&e) => tracing::info!(sk = %sk, "a newer answer is already stored; keeping it"),
            Err(e) => return Err(dynamo_error("PutItem(report)", e)),
        }
        Ok(Location {
            table: self.table.clone(),
            pk: tenant_pk(tenant_id),
            sk,
            expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    pub async fn put_report(
        &self,
        tenant_id: &str,
        report: &crate::reports::model::Report,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Location> {
        let doc = serde_json::to_string(report).map_err(|e| crate::Error::Internal(format!("report JSON: {e}")))?;
        if doc.len() > MAX_DOC_BYTES {
            return Err(crate::Error::ProviderMalformed {
                provider: report.provider,
                message: format!("the normalised report is {} bytes, over the {MAX_DOC_BYTES}-byte limit", doc.len()),
            });
        }
        let sk = format!("REPORT#{}#{}#{}#{}", report.provider, report.org_id, report.kind.as_str(), job_hash(idempotency_key));
        let mut item = Item::new();
        item.insert("doc".into(), s(doc));
        item.insert("kind".into(), s(report.kind.as_str()));
        self.put(tenant_id, sk, item, now).await
    }

    /// Stores a passthrough answer whole. A body that is not UTF-8 (a PDF, an image) is stored as
    /// base64, never converted lossily (which could also triple its size). An answer that does not
    /// fit one DynamoDB item is refused with [`Error::PayloadTooLarge`] (4002) before anything is
    /// written: the app asked for one call, not a bulk export, and learns it from
    /// `passthrough.failed`.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_answer(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        idempotency_key: &str,
        method: &str,
        path: &str,
        answer: &crate::providers::raw::RawAnswer,
        now: DateTime<Utc>,
    ) -> Result<(Location, &'static str)> {
        let sk = format!("PASSTHROUGH#{provider}#{org_id}#{}", job_hash(idempotency_key));
        let (item, encoding) = answer_item(tenant_id, &sk, method, path, answer, now)?;
        Ok((self.put(tenant_id, sk, item, now).await?, encoding))
    }

    /// One stored item (tests and operators); `None` when absent or past its lifetime.
    pub async fn get(&self, tenant_id: &str, sk: &str, now: DateTime<Utc>) -> Result<Option<Item>> {
        let item = crate::store::get_item(&self.db, &self.table, tenant_pk(tenant_id), sk.to_string()).await?;
        Ok(item.filter(|i| crate::store::get_n_opt(i, "expires_at").is_some_and(|e| e > epoch(now))))
    }
}
