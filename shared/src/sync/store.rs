//! The sync table (`SYNC_TABLE`): normalised records, cursors and job records, all under the
//! tenant's partition `TENANT#<tenant_id>`.
//!
//! Access patterns (pk = `TENANT#<t>`; the main app reads the first two):
//! - `REC#<provider>#<org>#<entity>#<provider id>` -> one normalised record: `doc` (the `SyncRecord`
//!   JSON), `raw` (the provider's JSON when it fits in `MAX_RAW_BYTES`), `updated_ms`, `ver` (the
//!   version the change feed announced, higher with every stored change), `deleted`,
//!   `synced_at`. All records of one org and entity: Query `begins_with(sk, "REC#<provider>#<org>#<entity>#")`.
//!   Deleted records stay as tombstones (`deleted = true`) so the app sees the deletion.
//! - `CURSOR#<provider>#<org>#<entity>` -> where the next pull starts (`cursor`: the provider
//!   client's `Cursor` JSON), `version` (optimistic lock), `cdc_since` (QuickBooks deletions).
//! - `JOB#<idempotency key>` -> the job record: `status` INPROGRESS | COMPLETED, `in_progress_expiry`
//!   (epoch ms: the claiming invocation's deadline), `owner`, `result` (JSON), `expires_at` (TTL).
//! - `PARKED#<provider>#<org>#<idempotency key>` -> a job waiting for a reconnect or quota
//!   (see `sync::parked`).
//!
//! Job records follow AWS Lambda Powertools' idempotency semantics: a conditional put claims the key
//! unless a live record exists; a COMPLETED record returns its stored result; an INPROGRESS record
//! whose `in_progress_expiry` has passed (its worker died) can be claimed again; a failed run deletes
//! its record so the retry is not blocked.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use crate::providers::model::{Cursor, Entity};
use crate::store::{dynamo_error, get_item, get_n_opt, get_s, get_s_opt, is_conditional_failure, n, s, tenant_pk, Item};
use crate::sync::model::SyncRecord;
use crate::{Error, Provider, Result};

/// Raw provider JSON larger than this is not stored beside the record (DynamoDB items are at most
/// 400 KB); `raw_ref` still says where to read it.
pub const MAX_RAW_BYTES: usize = 64 * 1024;
/// How long a completed job record answers redeliveries (and announces the job again). Webhook keys
/// are derived from the provider's event, so a redelivery within this window is done once. Report
/// and passthrough jobs keep their record as long as their stored answer
/// (`reports::store::LIFETIME`), so a repeat never announces an answer that is gone.
pub const COMPLETED_TTL: chrono::Duration = chrono::Duration::days(7);
/// Concurrent record writes per page.
const WRITE_CONCURRENCY: usize = 16;

pub const STATUS_IN_PROGRESS: &str = "INPROGRESS";
pub const STATUS_COMPLETED: &str = "COMPLETED";
/// What `job_status` reports for a claim released after a failed run (stored as INPROGRESS with an
/// expiry in the past, so the next claim takes it at once).
pub const STATUS_RELEASED: &str = "RELEASED";

pub fn record_sk(provider: Provider, org_id: &str, entity: Entity, id: &str) -> String {
    format!("REC#{provider}#{org_id}#{entity}#{id}")
}

pub fn records_prefix(provider: Provider, org_id: &str, entity: Entity) -> String {
    format!("REC#{provider}#{org_id}#{entity}#")
}

pub fn cursor_sk(provider: Provider, org_id: &str, entity: Entity) -> String {
    format!("CURSOR#{provider}#{org_id}#{entity}")
}

pub fn write_attempt_sk(idempotency_key: &str) -> String {
    format!("WRITESENT#{idempotency_key}")
}

pub fn job_sk(idempotency_key: &str) -> String {
    format!("JOB#{idempotency_key}")
}

/// A stored cursor and the version to write the next one against.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCursor {
    pub cursor: Cursor,
    pub version: i64,
    pub cdc_since: Option<DateTime<Utc>>,
    /// The lineage root of the job that wrote it (`worker::lineage_root`): a `full` job resumes
    /// from a stored cursor only when its own lineage wrote it.
    pub lineage: Option<String>,
}

/// What claiming a job key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours: run the job.
    Claimed,
    /// Done before: this is the stored result.
    Completed(serde_json::Value),
    /// Another invocation holds it until this time (epoch ms).
    InProgress { until_ms: i64 },
}

/// Outcome of writing a page of records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteCounts {
    pub written: usize,
    /// A newer version was already stored (a webhook job overtook this pull): left alone.
    pub stale: usize,
    /// What the change feed must announce: every record this write changed, and every unchanged one
    /// this same job stored before (its earlier delivery may have died before announcing).
    pub changes: Vec<RecordChange>,
}

/// One stored change of a record, as the change feed announces it (`records.changed`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordChange {
    pub entity: Entity,
    pub provider_id: String,
    /// Orders the copies of one record, higher with every stored change (`ver` on the item): the
    /// provider's updated time in epoch ms, or one millisecond after the version announced last
    /// when that time does not move past it (two changes in one whole second); for a record
    /// without one, the time we stored it.
    pub version: i64,
    pub deleted: bool,
    /// The stored record (the `SyncRecord` JSON).
    pub doc: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct SyncStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl SyncStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        SyncStore { db, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Upserts records; a record whose stored version is newer (`updated_ms`) is not overwritten, so
    /// an old page read late cannot undo a newer change, and one stored with the same updated time
    /// and the same content (`doc_hash`) is not written again (an overlapping pass re-reads a few
    /// records; they cost a conditional check, not a write). `stale` counts both.
    pub async fn put_records(
        &self,
        tenant_id: &str,
        records: &[(SyncRecord, Option<String>)],
        job_id: &str,
        now: DateTime<Utc>,
    ) -> Result<WriteCounts> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let results: Vec<(bool, Option<RecordChange>)> = stream::iter(records.iter())
            .map(|(r, raw)| self.put_record(tenant_id, r, raw.as_deref(), job_id, now))
            .buffered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let written = results.iter().filter(|(w, _)| *w).count();
        Ok(WriteCounts { written, stale: results.len() - written, changes: results.into_iter().filter_map(|(_, c)| c).collect() })
    }

    /// Writes one record when it is new or changed. Returns whether it wrote, and the change to
    /// announce: this write's, or, when nothing changed, the stored one if this same job wrote it
    /// (a redelivery after the job died between the write and the announcement: see `sync::feed`).
    async fn put_record(
        &self,
        tenant_id: &str,
        r: &SyncRecord,
        raw: Option<&str>,
        job_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(bool, Option<RecordChange>)> {
        let (wrote, change, old) = self.put_record_once(tenant_id, r, raw, job_id, now).await?;
        // A tombstone (a deletion seen at the provider: no copy of the record is left there) is
        // stamped with our clock. A live copy stamped by a provider clock running ahead of ours
        // would otherwise outrank it, and a record deleted seconds after its last change would
        // stay live here. Nothing live can follow a deletion (no provider reuses an id), so the
        // tombstone goes just after the copy it replaces, once, still conditional on that copy.
        let live_ms =
            old.as_ref().filter(|o| !matches!(o.get("deleted"), Some(AttributeValue::Bool(true)))).and_then(|o| get_n_opt(o, "updated_ms"));
        match (wrote, live_ms) {
            (false, Some(ms)) if r.deleted && raw.is_none() && r.updated_at.is_some_and(|u| u.timestamp_millis() <= ms) => {
                let mut after = r.clone();
                after.updated_at = DateTime::from_timestamp_millis(ms + 1);
                let (wrote, change, _) = self.put_record_once(tenant_id, &after, None, job_id, now).await?;
                Ok((wrote, change))
            }
            _ => Ok((wrote, change)),
        }
    }

    /// One write of a record, conditional on it being news; with the stored item when it was not.
    ///
    /// The version it is announced at (`ver`) goes up with every stored change of the record: the
    /// provider's updated time, or, when that does not move past the version announced last, one
    /// millisecond after it. Zoho and QuickBooks give whole seconds, so two changes within one
    /// second (a workflow rule updating what was just created) carry the same time; announced at
    /// that time twice, the app would take the second for a repeat of the first. The common case
    /// (a new record, a later time) is one write; a change that needs its version moved on is a
    /// second, conditional on the item the first found.
    async fn put_record_once(
        &self,
        tenant_id: &str,
        r: &SyncRecord,
        raw: Option<&str>,
        job_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(bool, Option<RecordChange>, Option<Item>)> {
        let doc = serde_json::to_string(r).map_err(|e| Error::Internal(format!("record JSON: {e}")))?;
        let hash = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(doc.as_bytes());
            h.update([0]);
            h.update(raw.unwrap_or_default().as_bytes());
            hex::encode(&h.finalize()[..16])
        };
        let updated_ms = r.updated_at.map(|u| u.timestamp_millis());
        let base = updated_ms.unwrap_or(now.timestamp_millis());
        // None: the first write, at `base`; Some(item): the stored item a version moves on from.
        let mut seen: Option<Item> = None;
        for _ in 0..VERSION_TRIES {
            let ver = match &seen {
                None => base,
                Some(o) => base.max(announced_version(o).saturating_add(1)),
            };
            let mut req = self
                .db
                .put_item()
                .table_name(&self.table)
                .item("pk", s(tenant_pk(tenant_id)))
                .item("sk", s(record_sk(r.provider, &r.org_id, r.entity, &r.provider_id)))
                .item("doc", s(&doc))
                .item("doc_hash", s(&hash))
                .item("deleted", AttributeValue::Bool(r.deleted))
                .item("job_id", s(job_id))
                .item("synced_at", s(now.to_rfc3339()))
                .item("ver", n(ver))
                .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld);
            req = super::record_index::index_attributes(tenant_id, r, now).into_iter().fold(req, |q, (k, v)| q.item(k, v));
            if let Some(raw) = raw.filter(|raw| raw.len() <= MAX_RAW_BYTES) {
                req = req.item("raw", s(raw));
            }
            if let Some(u) = updated_ms {
                req = req.item("updated_ms", n(u));
            }
            req = match &seen {
                // News by itself: a record not stored yet, or a later provider time (without one,
                // other content) than stored, and a version past the one announced last.
                None => match updated_ms {
                    Some(u) => req
                        .condition_expression(
                            "attribute_not_exists(sk) OR ((attribute_not_exists(updated_ms) OR updated_ms < :u) \
                             AND (attribute_not_exists(ver) OR ver < :v))",
                        )
                        .expression_attribute_values(":u", n(u))
                        .expression_attribute_values(":v", n(ver)),
                    None => req
                        .condition_expression(
                            "attribute_not_exists(sk) OR ((attribute_not_exists(doc_hash) OR doc_hash <> :h) \
                             AND (attribute_not_exists(ver) OR ver < :v))",
                        )
                        .expression_attribute_values(":h", s(&hash))
                        .expression_attribute_values(":v", n(ver)),
                },
                // Judged news against this stored item: only if it is still the one stored.
                Some(o) => match get_n_opt(o, "ver") {
                    Some(ov) => req.condition_expression("ver = :ov").expression_attribute_values(":ov", n(ov)),
                    None => req
                        .condition_expression("attribute_not_exists(ver) AND synced_at = :osa")
                        .expression_attribute_values(":osa", s(get_s_opt(o, "synced_at").unwrap_or_default())),
                },
            };
            let old = match req.send().await {
                Ok(_) => {
                    let doc = serde_json::to_value(r).map_err(|e| Error::Internal(format!("record JSON: {e}")))?;
                    return Ok((true, Some(self::change(r, ver, r.deleted, doc)), None));
                }
                Err(e) if is_conditional_failure(&e) => match &e {
                    aws_sdk_dynamodb::error::SdkError::ServiceError(se) => match se.err() {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                        _ => None,
                    },
                    _ => None,
                },
                Err(e) => return Err(dynamo_error("PutItem(record)", e)),
            };
            let Some(old) = old else {
                // The item judged against is gone since (nothing else is refused without one):
                // judged afresh, as the first write.
                seen = None;
                continue;
            };
            if !is_news(r, updated_ms, &hash, &old) {
                // The stored copy is as new or newer. Written by this same job (its earlier
                // delivery), its announcement may never have happened: announce it again, as stored.
                let pending = (get_s_opt(&old, "job_id").as_deref() == Some(job_id)).then(|| {
                    let deleted = matches!(old.get("deleted"), Some(AttributeValue::Bool(true)));
                    let doc = get_s_opt(&old, "doc").and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
                    self::change(r, announced_version(&old), deleted, doc)
                });
                return Ok((false, pending, Some(old)));
            }
            seen = Some(old);
        }
        // Other writers moved the record on every time: the job's retry writes it against the latest.
        Err(Error::Storage { message: "record kept changing under its write".into(), retryable: true })
    }

    pub async fn get_record(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        entity: Entity,
        id: &str,
    ) -> Result<Option<SyncRecord>> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), record_sk(provider, org_id, entity, id)).await?;
        item.map(|i| record_from(&i)).transpose()
    }

    /// Every record of one org and entity (the main app's read, paged through here for tests).
    pub async fn list_records(&self, tenant_id: &str, provider: Provider, org_id: &str, entity: Entity) -> Result<Vec<SyncRecord>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(records_prefix(provider, org_id, entity)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("Query(records)", e))?;
            for i in resp.items.unwrap_or_default() {
                out.push(record_from(&i)?);
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn get_cursor(&self, tenant_id: &str, provider: Provider, org_id: &str, entity: Entity) -> Result<Option<StoredCursor>> {
        let Some(item) = get_item(&self.db, &self.table, tenant_pk(tenant_id), cursor_sk(provider, org_id, entity)).await? else {
            return Ok(None);
        };
        let cursor: Cursor = serde_json::from_str(&get_s(&item, "cursor")?)
            .map_err(|e| Error::Storage { message: format!("stored cursor: {e}"), retryable: false })?;
        let cdc_since = get_s_opt(&item, "cdc_since").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
        Ok(Some(StoredCursor {
            cursor,
            version: get_n_opt(&item, "version").unwrap_or(0),
            cdc_since,
            lineage: get_s_opt(&item, "lineage"),
        }))
    }

    /// Stores the next cursor if nobody moved it since `expected_version` (0: none stored yet).
    /// Conflict means another job advanced it: this one stops rather than move it backwards.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_cursor(
        &self,
        tenant_id: &str,
        org_id: &str,
        cursor: &Cursor,
        cdc_since: Option<DateTime<Utc>>,
        lineage: &str,
        expected_version: i64,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let json = serde_json::to_string(cursor).map_err(|e| Error::Internal(format!("cursor JSON: {e}")))?;
        let next = expected_version + 1;
        let mut req = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant_id)))
            .item("sk", s(cursor_sk(cursor.provider, org_id, cursor.entity)))
            .item("cursor", s(json))
            .item("version", n(next))
            .item("lineage", s(lineage))
            .item("updated_at", s(now.to_rfc3339()));
        if let Some(c) = cdc_since {
            req = req.item("cdc_since", s(c.to_rfc3339()));
        }
        req = if expected_version == 0 {
            req.condition_expression("attribute_not_exists(sk)")
        } else {
            req.condition_expression("version = :v").expression_attribute_values(":v", n(expected_version))
        };
        match req.send().await {
            Ok(_) => Ok(next),
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("cursor for {}/{org_id}/{} moved", cursor.provider, cursor.entity)))
            }
            Err(e) => Err(dynamo_error("PutItem(cursor)", e)),
        }
    }

    /// Whether a write job (by its idempotency key) has sent its change before: a run after a crash
    /// or a timeout may find its own change already applied at the provider (`worker::write`).
    pub async fn write_attempted(&self, tenant_id: &str, key: &str) -> Result<bool> {
        Ok(get_item(&self.db, &self.table, tenant_pk(tenant_id), write_attempt_sk(key)).await?.is_some())
    }

    /// Notes, before a write job sends its change, that it may have been sent.
    pub async fn mark_write_attempt(&self, tenant_id: &str, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant_id)))
            .item("sk", s(write_attempt_sk(key)))
            .item("at", s(now.to_rfc3339()))
            .item("expires_at", n((now + COMPLETED_TTL).timestamp()))
            .send()
            .await
            .map_err(|e| dynamo_error("PutItem(write attempt)", e))?;
        Ok(())
    }

    /// Claims a job key until `in_progress_until` (the invocation's deadline).
    pub async fn claim_job(
        &self,
        tenant_id: &str,
        key: &str,
        owner: &str,
        in_progress_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant_id)))
            .item("sk", s(job_sk(key)))
            .item("status", s(STATUS_IN_PROGRESS))
            .item("owner", s(owner))
            .item("in_progress_expiry", n(in_progress_until.timestamp_millis()))
            .item("expires_at", n((now + COMPLETED_TTL).timestamp()))
            // TTL deletes late, so expiry is part of the condition; an INPROGRESS record past its
            // invocation's deadline belongs to a worker that died.
            .condition_expression("attribute_not_exists(sk) OR expires_at < :now_s OR (#st = :inprogress AND in_progress_expiry < :now_ms)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":now_s", n(now.timestamp()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) if is_conditional_failure(&e) => {
                // Read what holds the key (strongly consistent).
                let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), job_sk(key)).await?;
                let Some(item) = item else {
                    // Deleted between our put and the read (a failed run released it): try again later.
                    return Ok(Claim::InProgress { until_ms: now.timestamp_millis() });
                };
                if get_s_opt(&item, "status").as_deref() == Some(STATUS_COMPLETED) {
                    let result = get_s_opt(&item, "result").and_then(|r| serde_json::from_str(&r).ok()).unwrap_or(serde_json::Value::Null);
                    Ok(Claim::Completed(result))
                } else {
                    Ok(Claim::InProgress { until_ms: get_n_opt(&item, "in_progress_expiry").unwrap_or(0) })
                }
            }
            Err(e) => Err(dynamo_error("PutItem(job claim)", e)),
        }
    }

    /// Marks our claimed job done with its result. Conflict if we no longer own it (our claim
    /// expired and another worker took it), in which case that worker's result stands.
    pub async fn complete_job(
        &self,
        tenant_id: &str,
        key: &str,
        owner: &str,
        result: &serde_json::Value,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(job_sk(key)))
            .update_expression("SET #st = :done, #res = :r, completed_at = :at, expires_at = :exp REMOVE in_progress_expiry")
            .condition_expression("#own = :owner AND #st = :inprogress")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#res", "result")
            .expression_attribute_names("#own", "owner")
            .expression_attribute_values(":done", s(STATUS_COMPLETED))
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":r", s(result.to_string()))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":exp", n((now + ttl).timestamp()))
            .expression_attribute_values(":owner", s(owner))
            .return_values(ReturnValue::None)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("job {key} is no longer ours"))),
            Err(e) => Err(dynamo_error("UpdateItem(job complete)", e)),
        }
    }

    /// Releases our claim after a failed run so the retry can claim it at once: the claim's expiry
    /// is set to the past, which `claim_job`'s condition takes as free. An update rather than a
    /// delete, so the worker's role needs no DeleteItem on the tenant tables.
    pub async fn release_job(&self, tenant_id: &str, key: &str, owner: &str) -> Result<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(job_sk(key)))
            .update_expression("SET in_progress_expiry = :released")
            .condition_expression("#own = :owner AND #st = :inprogress")
            .expression_attribute_names("#own", "owner")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":released", n(0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(job release)", e)),
        }
    }

    /// The job record's status, for tests and operators.
    pub async fn job_status(&self, tenant_id: &str, key: &str) -> Result<Option<(String, Option<serde_json::Value>)>> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), job_sk(key)).await?;
        Ok(item.map(|i| {
            let mut status = get_s_opt(&i, "status").unwrap_or_default();
            // A claim released after a failed run (`release_job`) is free, not running.
            if status == STATUS_IN_PROGRESS && get_n_opt(&i, "in_progress_expiry") == Some(0) {
                status = STATUS_RELEASED.to_string();
            }
            (status, get_s_opt(&i, "result").and_then(|r| serde_json::from_str(&r).ok()))
        }))
    }
}

/// Attempts of one record write whose version must move on past writers racing it.
const VERSION_TRIES: usize = 5;

fn change(r: &SyncRecord, version: i64, deleted: bool, doc: serde_json::Value) -> RecordChange {
    RecordChange { entity: r.entity, provider_id: r.provider_id.clone(), version, deleted, doc }
}

/// The version a stored item was announced at: `ver`, or for an item stored before there was one,
/// what was announced then (the provider's updated time, else when it was stored).
fn announced_version(o: &Item) -> i64 {
    get_n_opt(o, "ver")
        .or_else(|| get_n_opt(o, "updated_ms"))
        .or_else(|| get_s_opt(o, "synced_at").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.timestamp_millis()))
        .unwrap_or(0)
}

/// Whether `r` (its provider time `updated_ms`, content `hash`) changes the stored item `o`: a
/// later provider time, or the same time (whole seconds) with other content. QuickBooks numbers
/// every change of a record (SyncToken): at the same time, a lower one is an older copy read late.
fn is_news(r: &SyncRecord, updated_ms: Option<i64>, hash: &str, o: &Item) -> bool {
    let other_content = get_s_opt(o, "doc_hash").as_deref() != Some(hash);
    let Some(u) = updated_ms else { return other_content };
    match get_n_opt(o, "updated_ms") {
        None => true,
        Some(om) if om < u => true,
        Some(om) if om > u => false,
        Some(_) => other_content && !older_sync_token(r, o),
    }
}

/// A QuickBooks copy whose SyncToken is below the stored copy's.
fn older_sync_token(r: &SyncRecord, o: &Item) -> bool {
    if r.provider != Provider::QuickBooks {
        return false;
    }
    let stored = get_s_opt(o, "doc")
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|d| d.get("version").and_then(|v| v.as_str()).and_then(|v| v.parse::<u64>().ok()));
    matches!((r.version.as_deref().and_then(|v| v.parse::<u64>().ok()), stored), (Some(new), Some(old)) if new < old)
}

fn record_from(item: &Item) -> Result<SyncRecord> {
    serde_json::from_str(&get_s(item, "doc")?).map_err(|e| Error::Storage { message: format!("record document: {e}"), retryable: false })
}
