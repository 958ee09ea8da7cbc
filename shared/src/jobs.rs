//! The sync job: the versioned JSON message on the high, normal and low sync queues.
//!
//! This is a public contract with the main app (it enqueues jobs too): `schemas/sync-job.v1.json`
//! describes it and a test checks serialised jobs against that schema. Only add optional fields; a
//! breaking change is a new `version` and a new schema file.
//!
//! [`JobQueue`] sends jobs with `SendMessageBatch` (at most 10 per call) to the queue of the job's
//! priority.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::tenancy::{Entity, Priority};
use crate::{Error, Provider, Result};

pub const JOB_VERSION: u32 = 1;

/// A job's `cursor` value that asks for a full re-read from the first record.
pub const FULL_SYNC: &str = "full";

/// SQS allows at most 10 entries per `SendMessageBatch`.
pub const MAX_BATCH: usize = 10;

/// Batches of one send in flight at once.
pub const MAX_CONCURRENT_BATCHES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Pull,
    Push,
    Webhook,
    /// A financial report fetched from the provider's reports API; the message's `report` says
    /// which (read beside `SyncJob`, like a push job's `payload`; see `crate::reports`).
    Report,
    /// One provider call the main app asked for (the message's `passthrough`), allow-listed per
    /// provider.
    Passthrough,
}

impl Operation {
    /// Report and passthrough jobs concern no entity: their `entity` is absent on the wire.
    pub fn has_entity(self) -> bool {
        !matches!(self, Operation::Report | Operation::Passthrough)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Webhook,
    Schedule,
    App,
    /// The initial full sync of a new connection (`crate::initial_sync`).
    Connect,
}

/// What the provider said happened to the entity. Only a hint: the worker re-reads the entity, but a
/// deletion cannot be re-read, so the worker needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Deleted,
    Merged,
    Voided,
    /// The provider did not say (Zoho's default payload), or said something we do not model.
    Unknown,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
            Change::Merged => "merged",
            Change::Voided => "voided",
            Change::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncJob {
    pub version: u32,
    /// Unique per message (a redelivered webhook gets a new job id but the same idempotency key).
    pub job_id: String,
    pub tenant_id: String,
    pub provider: Provider,
    pub org_id: String,
    pub operation: Operation,
    pub entity: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Webhook jobs only: what happened to the entity according to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Webhook jobs for a merge: the record merged away into `entity_id`, gone at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<String>,
    pub priority: Priority,
    /// Same work => same key. The worker records finished keys, so a job that arrives twice (SQS
    /// at-least-once, or a provider redelivering after our nonce expired) is done once.
    pub idempotency_key: String,
    pub correlation_id: String,
    pub requested_at: DateTime<Utc>,
    pub source: Source,
    /// Internal, follow-up jobs of a long pull only (written by the worker): what the lineage's
    /// earlier jobs read and wrote, so the job that ends the pass announces the whole pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals_before: Option<LineageTotals>,
}

/// Running totals of a pull that continues in follow-up jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineageTotals {
    /// Record counts by name (fetched, written, stale, deleted, skipped).
    pub counts: std::collections::BTreeMap<String, u64>,
    pub pages: u64,
    /// Jobs of the lineage these totals cover.
    #[serde(default)]
    pub jobs: u64,
}

impl LineageTotals {
    /// These totals plus one more job with its own `counts` object and `pages`.
    pub fn plus(&self, counts: Option<&serde_json::Value>, pages: u64) -> LineageTotals {
        let mut out = self.clone();
        if let Some(obj) = counts.and_then(serde_json::Value::as_object) {
            for (k, v) in obj {
                if let Some(v) = v.as_u64() {
                    let e = out.counts.entry(k.clone()).or_default();
                    *e = e.saturating_add(v);
                }
            }
        }
        out.pages = out.pages.saturating_add(pages);
        out.jobs = out.jobs.saturating_add(1);
        out
    }
}

/// What a report or passthrough job carries in `entity` internally: the wire format has none, and
/// nothing reads it for those operations.
const NO_ENTITY: &str = "account";

impl SyncJob {
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("plain struct serialises");
        if !self.operation.has_entity() {
            if let Some(o) = v.as_object_mut() {
                o.remove("entity");
            }
        }
        v.to_string()
    }

    /// Parses a message body; any other version is rejected rather than half-understood.
    pub fn from_json(body: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(body).map_err(|e| Error::InvalidInput(format!("sync job is not JSON: {e}")))?;
        match v.get("version").and_then(|v| v.as_u64()) {
            Some(n) if n == JOB_VERSION as u64 => {}
            other => return Err(Error::InvalidInput(format!("unsupported sync job version {other:?}"))),
        }
        let mut v = v;
        let entityless = matches!(v.get("operation").and_then(|o| o.as_str()), Some("report" | "passthrough"));
        if entityless {
            if let Some(o) = v.as_object_mut() {
                o.entry("entity").or_insert_with(|| NO_ENTITY.into());
            }
        }
        serde_json::from_value(v).map_err(|e| Error::InvalidInput(format!("sync job does not match version {JOB_VERSION}: {e}")))
    }
}

/// Deterministic idempotency key for a webhook-triggered job: the same provider event always maps to
/// the same key, whoever delivers it and however often. `event_version` is the provider's own
/// timestamp or event id for that change (empty if it sends none).
pub fn webhook_idempotency_key(
    provider: Provider,
    org_id: &str,
    entity: Entity,
    entity_id: &str,
    change: Change,
    event_version: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed parts so ("a","bc") and ("ab","c") differ.
    for part in [provider.as_str(), org_id, entity_str(entity), entity_id, change.as_str(), event_version] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("wh1:{}", hex::encode(h.finalize()))
}

pub fn entity_str(e: Entity) -> &'static str {
    match e {
        Entity::Invoice => "invoice",
        Entity::Contact => "contact",
        Entity::Account => "account",
        Entity::Payment => "payment",
        Entity::Bill => "bill",
        Entity::Company => "company",
        Entity::CreditNote => "credit_note",
        Entity::BillPayment => "bill_payment",
        Entity::TaxRate => "tax_rate",
        Entity::Item => "item",
        Entity::TrackingCategory => "tracking_category",
        Entity::Journal => "journal",
        Entity::PurchaseOrder => "purchase_order",
        Entity::BankTransaction => "bank_transaction",
    }
}

pub fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Low => "low",
    }
}

/// The three sync queue URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncQueues {
    pub high: String,
    pub normal: String,
    pub low: String,
}

impl SyncQueues {
    pub fn from_config(c: &crate::Config) -> Self {
        SyncQueues { high: c.queues.sync_high.clone(), normal: c.queues.sync_normal.clone(), low: c.queues.sync_low.clone() }
    }

    pub fn url(&self, p: Priority) -> &str {
        match p {
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        }
    }
}

/// The job-body field that carries a delivery's nonce claim from the receiver to the worker.
pub const JOB_FIELD: &str = "webhook_nonce";

/// A delivery's nonce claim, as the receiver writes it into each job body of that delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonceRef {
    /// The delivery's dedupe key (the nonce item is `WEBHOOK#<provider>#<key>`).
    pub key: String,
    pub claim_id: String,
}

impl NonceRef {
    /// Reads [`JOB_FIELD`] from a job body. Anything malformed is ignored: the claim then lapses on
    /// its own and a late redelivery is deduplicated by the job's idempotency key.
    pub fn from_job_body(body: &serde_json::Value) -> Option<Self> {
        let r: NonceRef = serde_json::from_value(body.get(JOB_FIELD)?.clone()).ok()?;
        // Bounds keep a hostile body from producing a key DynamoDB refuses (2 KiB partition keys).
        let ok = !r.key.is_empty() && r.key.len() <= 512 && !r.claim_id.is_empty() && r.claim_id.len() <= 64;
        ok.then_some(r)
    }
}

/// Sends sync jobs to their priority's queue.
#[derive(Debug, Clone)]
pub struct JobQueue {
    sqs: aws_sdk_sqs::Client,
    queues: SyncQueues,
}

/// What a send did, for metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    pub jobs: usize,
    pub calls: usize,
}

impl JobQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, queues: SyncQueues) -> Self {
        JobQueue { sqs, queues }
    }

    pub fn queues(&self) -> &SyncQueues {
        &self.queues
    }

    /// Sends every job, grouped by priority, 10 per `SendMessageBatch`; the batches of one call go out
    /// concurrently (at most [`MAX_CONCURRENT_BATCHES`]) so a large delivery still answers quickly.
    /// Entries SQS reports as failed are retried once when SQS says the failure was on its side;
    /// anything still failing is an error (the caller answers 5xx so the provider redelivers; the
    /// idempotency key makes the jobs that did go through harmless when they arrive again).
    pub async fn send(&self, jobs: &[SyncJob]) -> Result<SendReport> {
        self.send_bodies(jobs.iter().map(|j| (j.priority, j.to_json())).collect()).await
    }

    /// As [`send`](Self::send), with the delivery's nonce claim in every body
    /// (`webhook_nonce`, see [`crate::webhooks::nonce`]) for the worker to confirm when it takes the job.
    pub async fn send_with_nonce(&self, jobs: &[SyncJob], nonce: &NonceRef) -> Result<SendReport> {
        let field = serde_json::to_value(nonce).map_err(|e| Error::Internal(format!("nonce ref: {e}")))?;
        let bodies = jobs
            .iter()
            .map(|j| {
                let mut v = serde_json::to_value(j).map_err(|e| Error::Internal(format!("sync job: {e}")))?;
                if let Some(o) = v.as_object_mut() {
                    o.insert(JOB_FIELD.to_string(), field.clone());
                }
                Ok((j.priority, v.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        self.send_bodies(bodies).await
    }

    async fn send_bodies(&self, bodies: Vec<(Priority, String)>) -> Result<SendReport> {
        let mut by_priority: BTreeMap<u8, (Priority, Vec<&str>)> = BTreeMap::new();
        for (p, body) in &bodies {
            by_priority.entry(*p as u8).or_insert_with(|| (*p, Vec::new())).1.push(body.as_str());
        }
        let batches: Vec<(&str, &[&str])> =
            by_priority.values().flat_map(|(p, group)| group.chunks(MAX_BATCH).map(move |c| (self.queues.url(*p), c))).collect();
        let mut total = SendReport::default();
        for wave in batches.chunks(MAX_CONCURRENT_BATCHES) {
            // Boxed as `Send` explicitly: Lambda's runtime needs a Send future, and rustc cannot prove
            // it through the unboxed borrowed futures (higher-ranked lifetime limitation).
            let futs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Result<SendReport>> + Send + '_>>> =
                wave.iter().map(|(url, chunk)| Box::pin(self.send_batch(url, chunk)) as _).collect();
            for r in futures::future::try_join_all(futs).await? {
                total.jobs += r.jobs;
                total.calls += r.calls;
            }
        }
        Ok(total)
    }

    async fn send_batch(&self, url: &str, chunk: &[&str]) -> Result<SendReport> {
        let mut report = SendReport::default();
        let mut pending: Vec<(String, String)> = chunk.iter().enumerate().map(|(i, b)| (i.to_string(), b.to_string())).collect();
        for attempt in 0..2 {
            let entries = pending
                .iter()
                .map(|(id, body)| SendMessageBatchRequestEntry::builder().id(id).message_body(body).build().map_err(Error::queue))
                .collect::<Result<Vec<_>>>()?;
            report.calls += 1;
            let out = self.sqs.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await.map_err(|e| Error::Queue {
                message: format!("SendMessageBatch failed: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
                retryable: true,
            })?;
            let failed = out.failed;
            report.jobs += pending.len() - failed.len();
            if failed.is_empty() {
                return Ok(report);
            }
            let retry_ok = attempt == 0 && failed.iter().all(|f| !f.sender_fault);
            if !retry_ok {
                let first = &failed[0];
                return Err(Error::Queue {
                    message: format!(
                        "{} of {} jobs not enqueued ({}: {})",
                        failed.len(),
                        pending.len(),
                        first.code,
                        first.message.as_deref().unwrap_or("")
                    ),
                    retryable: !first.sender_fault,
                });
            }
            let failed_ids: Vec<&str> = failed.iter().map(|f| f.id.as_str()).collect();
            pending.retain(|(id, _)| failed_ids.contains(&id.as_str()));
        }
        Ok(report)
    }
}

/// The root of a job's continuation lineage: continuation keys are `<root>~c<hash>` (a long
/// pull's or report's follow-up jobs, `worker::job::follow_up`, `reports::partial`).
pub fn lineage_root(key: &str) -> &str {
    match key.rfind("~c") {
        Some(i) if key[i + 2..].len() == 16 && key[i + 2..].bytes().all(|b| b.is_ascii_hexdigit()) => &key[..i],
        _ => key,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn job() -> SyncJob {
        SyncJob {
            version: JOB_VERSION,
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: "t-1".into(),
            provider: Provider::QuickBooks,
            org_id: "9341452000000001".into(),
            operation: Operation::Webhook,
            entity: Entity::Invoice,
            entity_id: Some("130".into()),
            cursor: None,
            change: Some(Change::Updated),
            merged_from: None,
            priority: Priority::High,
            idempotency_key: webhook_idempotency_key(
                Provider::QuickBooks,
                "9341452000000001",
                Entity::Invoice,
                "130",
                Change::Updated,
                "x",
            ),
            correlation_id: "c-1".into(),
            requested_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            source: Source::Webhook,
            totals_before: None,
        }
    }

    /// The contract: every field the schema requires is present with the type and enum values the
    /// schema names. A small checker instead of a JSON Schema crate, covering the keywords the schema uses.
    #[test]
    fn serialised_job_satisfies_the_published_schema() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../schemas/sync-job.v1.json")).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let mut jobs = vec![job()];
        let mut pull = job();
        pull.operation = Operation::Pull;
        pull.entity_id = None;
        pull.change = None;
        pull.cursor = Some("2026-01-01T00:00:00Z".into());
        pull.source = Source::Schedule;
        pull.priority = Priority::Low;
        jobs.push(pull);
        let mut merge = job();
        merge.entity = Entity::Contact;
        merge.change = Some(Change::Merged);
        merge.merged_from = Some("27".into());
        jobs.push(merge);
        for j in jobs {
            let v = serde_json::to_value(&j).unwrap();
            check_against(&schema, &v).unwrap_or_else(|e| panic!("{e}: {v}"));
        }
        // And the checker does catch a broken job, so the test above can fail.
        let mut bad = serde_json::to_value(job()).unwrap();
        bad["entity"] = "budget".into();
        assert!(check_against(&schema, &bad).is_err());
        let mut bad = serde_json::to_value(job()).unwrap();
        bad.as_object_mut().unwrap().remove("idempotency_key");
        assert!(check_against(&schema, &bad).is_err());
        let mut bad = serde_json::to_value(job()).unwrap();
        bad["version"] = 2.into();
        assert!(check_against(&schema, &bad).is_err());
    }

    /// Checks `type`, `required`, `enum`, `const`, `minLength`, `format: date-time` and
    /// `additionalProperties: false` recursively through `properties`.
    pub(crate) fn check_against(schema: &serde_json::Value, v: &serde_json::Value) -> std::result::Result<(), String> {
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "string" => v.is_string(),
                "integer" => v.is_u64() || v.is_i64(),
                "null" => v.is_null(),
                "array" => v.is_array(),
                "boolean" => v.is_boolean(),
                "number" => v.is_number(),
                _ => false,
            });
            if !ok {
                return Err(format!("{v} is not of type {types:?}"));
            }
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                return Err(format!("{v} is not {c}"));
            }
        }
        if let Some(e) = schema.get("enum").and_then(|e| e.as_array()) {
            if !e.contains(v) {
                return Err(format!("{v} not in {e:?}"));
            }
        }
        if let (Some(min), Some(s)) = (schema.get("minLength").and_then(|m| m.as_u64()), v.as_str()) {
            if (s.chars().count() as u64) < min {
                return Err(format!("'{s}' shorter than {min}"));
            }
        }
        if schema.get("format").and_then(|f| f.as_str()) == Some("date-time") {
            if let Some(s) = v.as_str() {
                DateTime::parse_from_rfc3339(s).map_err(|e| format!("'{s}' is not a date-time: {e}"))?;
            }
        }
        if schema.get("format").and_then(|f| f.as_str()) == Some("date") {
            if let Some(s) = v.as_str() {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("'{s}' is not a date: {e}"))?;
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                check_against(items, item).map_err(|e| format!("[{i}]: {e}"))?;
            }
        }
        // `allOf` of `if`/`then` rules: a rule applies when the value passes its `if`.
        for rule in schema.get("allOf").and_then(|a| a.as_array()).into_iter().flatten() {
            if let (Some(cond), Some(then)) = (rule.get("if"), rule.get("then")) {
                if check_against(cond, v).is_ok() {
                    check_against(then, v)?;
                }
            }
        }
        if let Some(obj) = v.as_object() {
            for r in schema.get("required").and_then(|r| r.as_array()).into_iter().flatten() {
                let name = r.as_str().unwrap();
                if !obj.contains_key(name) {
                    return Err(format!("missing required '{name}'"));
                }
            }
            let props = schema.get("properties").and_then(|p| p.as_object());
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check_against(sub, val).map_err(|e| format!("{k}: {e}"))?,
                    None if schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) => {
                        return Err(format!("unexpected property '{k}'"))
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Report and passthrough jobs: no entity on the wire, their request beside the job, and the
    /// schema requires each operation's own fields (an entity for the others).
    #[test]
    fn report_and_passthrough_jobs_follow_the_schema() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../schemas/sync-job.v1.json")).unwrap();
        let mut j = job();
        j.operation = Operation::Report;
        let mut v: serde_json::Value = serde_json::from_str(&j.to_json()).unwrap();
        assert!(v.get("entity").is_none());
        v["report"] = serde_json::json!({"kind": "profit_and_loss", "from": "2026-01-01", "to": "2026-03-31", "basis": "cash"});
        check_against(&schema, &v).unwrap();
        let parsed = SyncJob::from_json(&v.to_string()).unwrap();
        assert_eq!(parsed.operation, Operation::Report);
        let mut bad = v.clone();
        bad.as_object_mut().unwrap().remove("report");
        assert!(check_against(&schema, &bad).is_err(), "a report job needs its report");
        let mut bad = v.clone();
        bad["report"]["kind"] = "cash_flow".into();
        assert!(check_against(&schema, &bad).is_err());
        let mut bad = v.clone();
        bad["report"]["from"] = "01/01/2026".into();
        assert!(check_against(&schema, &bad).is_err());
        let mut p = v.clone();
        p.as_object_mut().unwrap().remove("report");
        p["operation"] = "passthrough".into();
        p["passthrough"] = serde_json::json!({"method": "GET", "path": "invoice/130"});
        check_against(&schema, &p).unwrap();
        p["passthrough"]["method"] = "DELETE".into();
        assert!(check_against(&schema, &p).is_err());
        // The older operations still need their entity.
        let mut pull = serde_json::to_value(job()).unwrap();
        pull["operation"] = "pull".into();
        pull.as_object_mut().unwrap().remove("entity");
        assert!(check_against(&schema, &pull).is_err(), "a pull without entity passed");
        assert!(SyncJob::from_json(&pull.to_string()).is_err());
    }

    /// Every example job in schemas/examples satisfies the schema and parses.
    #[test]
    fn example_jobs_satisfy_the_schema() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../schemas/sync-job.v1.json")).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("job-") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            check_against(&schema, &v).unwrap_or_else(|e| panic!("{name}: {e}"));
            SyncJob::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
        assert!(n >= 4, "examples found: {n}");
    }

    #[test]
    fn jobs_round_trip_and_other_versions_are_refused() {
        let j = job();
        assert_eq!(SyncJob::from_json(&j.to_json()).unwrap(), j);
        let mut v = serde_json::to_value(&j).unwrap();
        v["version"] = 2.into();
        assert_eq!(SyncJob::from_json(&v.to_string()).unwrap_err().code(), crate::ErrorCode::InvalidInput);
        // Unknown optional fields from a newer minor revision are tolerated.
        let mut v = serde_json::to_value(&j).unwrap();
        v["future_field"] = 1.into();
        assert_eq!(SyncJob::from_json(&v.to_string()).unwrap(), j);
    }

    #[test]
    fn idempotency_key_depends_on_every_part() {
        let base = webhook_idempotency_key(Provider::Xero, "org", Entity::Invoice, "id1", Change::Updated, "2026-01-01T00:00:00");
        assert_eq!(base, webhook_idempotency_key(Provider::Xero, "org", Entity::Invoice, "id1", Change::Updated, "2026-01-01T00:00:00"));
        let variants = [
            webhook_idempotency_key(Provider::QuickBooks, "org", Entity::Invoice, "id1", Change::Updated, "2026-01-01T00:00:00"),
            webhook_idempotency_key(Provider::Xero, "org2", Entity::Invoice, "id1", Change::Updated, "2026-01-01T00:00:00"),
            webhook_idempotency_key(Provider::Xero, "org", Entity::Contact, "id1", Change::Updated, "2026-01-01T00:00:00"),
            webhook_idempotency_key(Provider::Xero, "org", Entity::Invoice, "id2", Change::Updated, "2026-01-01T00:00:00"),
            webhook_idempotency_key(Provider::Xero, "org", Entity::Invoice, "id1", Change::Created, "2026-01-01T00:00:00"),
            webhook_idempotency_key(Provider::Xero, "org", Entity::Invoice, "id1", Change::Updated, "2026-01-01T00:00:01"),
            webhook_idempotency_key(Provider::Xero, "orgi", Entity::Invoice, "d1", Change::Updated, "2026-01-01T00:00:00"),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }
}
