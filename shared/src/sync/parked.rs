//! Parked jobs: work that cannot run until something outside it changes (the connection is
//! authorised again, the tenant's monthly quota resets or is raised) waits here, not in SQS.
//!
//! SQS cannot hold such a job: a message's visibility ends at most 12 hours after its *first*
//! receipt (`ChangeMessageVisibility` beyond that is refused), so a job "parked" in its message
//! comes back, fails again, spends calls and loops. Instead the worker stores the message body under
//! the connection and acknowledges the message:
//!
//! - `PARKED#<provider>#<org>#<idempotency key>` (sync table, pk `TENANT#<tenant>`) -> `body` (the
//!   message body as received), `cause` (`needs_reauth` | `quota`), `error_code`, `priority`,
//!   `parked_since` (epoch ms of the first parking), `parked_at`, `expires_at` (TTL, see below).
//!
//! **Release.** Parking also stamps the connection item (grants table) with [`CONNECTION_MARK`],
//! so the sync scheduler, which reads every due active connection from its index anyway, knows
//! which connections have parked jobs without a query per connection. When it meets such a
//! connection (or a freshly connected one: a reconnect writes a new connection item) and the
//! tenant's quota has room, it re-enqueues the connection's parked jobs ([`ParkedJobs::release`])
//! and removes the mark if no job was parked since it read it. A connection that needed
//! re-authorisation is active (and due at once) again after a reconnect; a quota is cleared by the
//! month turning or a plan or limit change, seen at the connection's next slot. The released body carries
//! `parked_since`, so a job parked again is not announced again and its age keeps counting.
//! Send first, then delete: a crash between the two leaves a second copy of the job, which its
//! idempotency key runs once.
//!
//! **Announced once.** The first parking sends `sync.failed` with `parked: true`; a job parked
//! again after a release (its body carries `parked_since`) is not announced again.
//!
//! **Maximum age.** A released job parked since more than [`PARK_MAX_AGE`] that would be parked
//! again is dead-lettered with the reason instead (and `sync.failed` with `parked: false`). The
//! record's TTL is [`RECORD_TTL`] after its parking: the jobs of a connection that is never
//! authorised again (or never gets quota again) are dropped with it, which the app already knows
//! from `sync.failed` and `connection.needs_reauth`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::jobs::{SyncJob, SyncQueues};
use crate::providers::Provider;
use crate::store::{dynamo_error, get_n_opt, get_s, get_s_opt, is_conditional_failure, n, s, tenant_pk, Item};
use crate::tenancy::Priority;
use crate::{Error, Result};

/// A job parked longer than this is dead-lettered instead of parked again.
pub const PARK_MAX_AGE: chrono::Duration = chrono::Duration::days(14);
/// How long a parked record is kept at most (DynamoDB TTL): past the maximum age with room for a
/// late release to dead-letter it with its reason.
pub const RECORD_TTL: chrono::Duration = chrono::Duration::days(30);
/// The connection item's attribute saying it has parked jobs (epoch ms of the latest parking).
pub const CONNECTION_MARK: &str = "parked_jobs_at";
/// The body field a released job carries: when it was first parked (RFC 3339).
pub const PARKED_SINCE_FIELD: &str = "parked_since";

/// Why a job is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkCause {
    /// The connection's grant can no longer be refreshed: it waits for a reconnect.
    NeedsReauth,
    /// The tenant's monthly API calls are spent: it waits for the reset or a raise.
    Quota,
}

impl ParkCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkCause::NeedsReauth => "needs_reauth",
            ParkCause::Quota => "quota",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "needs_reauth" => Some(ParkCause::NeedsReauth),
            "quota" => Some(ParkCause::Quota),
            _ => None,
        }
    }
}

pub fn parked_prefix(provider: Provider, org_id: &str) -> String {
    format!("PARKED#{provider}#{org_id}#")
}

pub fn parked_sk(provider: Provider, org_id: &str, idempotency_key: &str) -> String {
    format!("{}{idempotency_key}", parked_prefix(provider, org_id))
}

/// One parked job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedJob {
    pub idempotency_key: String,
    pub body: String,
    pub cause: ParkCause,
    pub error_code: u16,
    pub priority: Priority,
    pub parked_since: DateTime<Utc>,
    sk: String,
}

/// When a (released) job body says it was first parked.
pub fn parked_since(body: &str) -> Option<DateTime<Utc>> {
    let v: Value = serde_json::from_str(body).ok()?;
    let t = v.get(PARKED_SINCE_FIELD)?.as_str()?;
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

/// The body to send on release: the stored one with `parked_since` set.
fn released_body(body: &str, since: DateTime<Utc>) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut o)) => {
            o.insert(PARKED_SINCE_FIELD.into(), Value::String(since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            Value::Object(o).to_string()
        }
        // Parked bodies were valid jobs; keep anything else as it was.
        _ => body.to_string(),
    }
}

/// Parked jobs in the sync table.
#[derive(Clone, Debug)]
pub struct ParkedJobs {
    db: aws_sdk_dynamodb::Client,
    table: String,
    sqs: aws_sdk_sqs::Client,
    queues: SyncQueues,
}

impl ParkedJobs {
    pub fn new(db: aws_sdk_dynamodb::Client, sync_table: impl Into<String>, sqs: aws_sdk_sqs::Client, queues: SyncQueues) -> Self {
        ParkedJobs { db, table: sync_table.into(), sqs, queues }
    }

    /// Stores a job to wait for its cause to clear. Returns false when it was already parked (the
    /// same job delivered twice): nothing changed.
    pub async fn park(
        &self,
        job: &SyncJob,
        body: &str,
        cause: ParkCause,
        error_code: u16,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(&job.tenant_id)))
            .item("sk", s(parked_sk(job.provider, &job.org_id, &job.idempotency_key)))
            .item("body", s(body))
            .item("cause", s(cause.as_str()))
            .item("error_code", n(i64::from(error_code)))
            .item("priority", s(serde_json::to_value(job.priority).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()))
            .item("parked_since", n(since.timestamp_millis()))
            .item("parked_at", n(now.timestamp_millis()))
            .item("expires_at", n((since + RECORD_TTL).timestamp()))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("PutItem(parked job)", e)),
        }
    }

    /// Marks the connection item as having parked jobs. Written after the parked record, so a
    /// release that saw this mark lists that record too.
    pub async fn mark_connection(
        &self,
        grants_table: &str,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let res = self
            .db
            .update_item()
            .table_name(grants_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(crate::store::grants::connection_sk(provider, org_id)))
            .update_expression("SET #m = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#m", CONNECTION_MARK)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // No connection item (disconnected): nothing will release the job but its expiry.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(connection parked mark)", e)),
        }
    }

    /// Removes the mark if it still has the value the releaser read before listing (a job parked
    /// since keeps it).
    pub async fn clear_mark(&self, grants_table: &str, tenant_id: &str, provider: Provider, org_id: &str, seen: i64) -> Result<()> {
        let res = self
            .db
            .update_item()
            .table_name(grants_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(crate::store::grants::connection_sk(provider, org_id)))
            .update_expression("REMOVE #m")
            .condition_expression("#m = :seen")
            .expression_attribute_names("#m", CONNECTION_MARK)
            .expression_attribute_values(":seen", n(seen))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(connection parked mark)", e)),
        }
    }

    /// The parked jobs of one connection, oldest parking first.
    pub async fn list(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Result<Vec<ParkedJob>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(parked_prefix(provider, org_id)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("Query(parked jobs)", e))?;
            for item in resp.items.unwrap_or_default() {
                match parked_from(&item) {
                    Ok(p) => out.push(p),
                    Err(e) => tracing::error!(code = %e.code(), error = %e, "skipping an unreadable parked job"),
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|p| p.parked_since);
        Ok(out)
    }

    /// Re-enqueues every parked job of a connection whose causes have cleared (the caller checked:
    /// the connection is active and the tenant's quota has room). Returns how many were released.
    /// A job whose send fails stays parked for the next release.
    pub async fn release(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Result<usize> {
        let parked = self.list(tenant_id, provider, org_id).await?;
        let mut released = 0;
        for p in parked {
            let sent = self
                .sqs
                .send_message()
                .queue_url(self.queues.url(p.priority))
                .message_body(released_body(&p.body, p.parked_since))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), idempotency_key = %p.idempotency_key, "could not release a parked job; it stays parked");
                continue;
            }
            let deleted = self.db.delete_item().table_name(&self.table).key("pk", s(tenant_pk(tenant_id))).key("sk", s(&p.sk)).send().await;
            if let Err(e) = deleted {
                // The next release sends it again; its idempotency key makes that harmless.
                tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "released a parked job but could not delete its record");
            }
            tracing::info!(idempotency_key = %p.idempotency_key, cause = p.cause.as_str(), "parked job released");
            released += 1;
        }
        if released > 0 {
            crate::telemetry::metric("ParkedJobsReleased", released as f64, "Count", &[("provider", provider.as_str())]);
        }
        Ok(released)
    }
}

fn parked_from(item: &Item) -> Result<ParkedJob> {
    let sk = get_s(item, "sk")?;
    let key = sk.splitn(4, '#').nth(3).unwrap_or_default().to_string();
    let cause = get_s_opt(item, "cause")
        .and_then(|c| ParkCause::parse(&c))
        .ok_or_else(|| Error::Storage { message: "parked job without a known cause".into(), retryable: false })?;
    let priority = get_s_opt(item, "priority").and_then(|p| serde_json::from_value(Value::String(p)).ok()).unwrap_or(Priority::Normal);
    let since = get_n_opt(item, "parked_since").and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
    Ok(ParkedJob {
        idempotency_key: key,
        body: get_s(item, "body")?,
        cause,
        error_code: get_n_opt(item, "error_code").and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
        priority,
        parked_since: since,
        sk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_body_says_since_when_and_keeps_the_job() {
        let since = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let body = r#"{"version":1,"idempotency_key":"k","payload":{"a":1}}"#;
        let out = released_body(body, since);
        assert_eq!(parked_since(&out), Some(since));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["payload"]["a"], 1);
        assert_eq!(parked_since(body), None);
        assert_eq!(released_body("not json", since), "not json");
    }
}
