//! An SQS batch of sync jobs: each message runs on its own (a panic or error in one is that
//! message's failure only), and each outcome becomes an acknowledgement, a delayed retry, a parked
//! job or a dead letter.
//!
//! | outcome | what happens to the message |
//! | --- | --- |
//! | done, or done before (same key) | acknowledged |
//! | not JSON, wrong version, bad fields | sent to the DLQ with the reason as attributes, acknowledged |
//! | 429, open breaker, limiter | visibility set to the wait (Retry-After or backoff, jittered), reported failed |
//! | quota spent (6002) | parked outside SQS (see [`crate::sync::parked`]), acknowledged; `sync.failed` (parked) once |
//! | needs re-auth (1008) | parked outside SQS, acknowledged; `sync.failed` (parked) once |
//! | parked longer than `PARK_MAX_AGE` and still blocked | DLQ with the reason, `sync.failed` (not parked), acknowledged |
//! | key in progress elsewhere | visibility until that claim ends, reported failed |
//! | transient (5xx, timeout, storage) | visibility set to an exponential backoff, reported failed (SQS retries, then its DLQ) |
//! | permanent (4xx, missing scope, unknown tenant) | DLQ with the reason, `sync.failed`, acknowledged |
//! | panic | reported failed |
//!
//! A job that keeps waiting (rate limits, a busy key) would reach the queue's redrive limit and
//! dead-letter although nothing is wrong with it, so after `requeue_at_receive` receives it is sent
//! again as a fresh message (same body, so the same idempotency key) and the old one acknowledged.
//!
//! Waits that stay in the message respect SQS's rule that a message's visibility ends at most
//! 12 hours after its first receipt: the requested visibility is capped by what is left of that
//! (from `ApproximateFirstReceiveTimestamp`), or, when the first receipt is unknown, by
//! [`UNKNOWN_FIRST_RECEIPT_WAIT`], which over the queue's five receives stays far inside 12 hours.
//! Waits longer than SQS can hold (quota, re-auth) never stay in the message: they are parked.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use futures::FutureExt;

use crate::events::EventType;
use crate::jobs::{Operation, SyncJob};
use crate::sync::parked::{self, ParkCause, ParkedJobs, PARK_MAX_AGE};
use crate::webhooks::nonce::NonceRef;
use crate::worker::job::{failed_data, publish, run_job, validate, Outcome, SyncDeps};
use crate::{Error, ErrorCode, RequestContext, Result};

/// SQS refuses a visibility timeout above 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS DelaySeconds is at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// How long a job waits when the provider asked for a wait without saying how long.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// Left unused of the 12 hours, for clock skew between SQS, us and the request's travel.
const VISIBILITY_SAFETY: Duration = Duration::from_secs(120);
/// The longest in-message wait when the message's first receipt is unknown: five receives (the
/// redrive limit) of this plus the queue's 720 s timeout stay within 12 hours of the first.
pub const UNKNOWN_FIRST_RECEIPT_WAIT: Duration = Duration::from_secs(3600);

/// One SQS message as the worker needs it (the Lambda crate maps its event type to this).
#[derive(Debug, Clone, Default)]
pub struct InMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// The source queue's ARN.
    pub event_source_arn: String,
    /// `ApproximateReceiveCount` (1 on first delivery).
    pub receive_count: u32,
    /// `ApproximateFirstReceiveTimestamp` (epoch ms), when the event carries it.
    pub first_received_ms: Option<i64>,
}

impl InMessage {
    /// The longest visibility SQS still allows this message at `now`: 12 hours from its first
    /// receipt, less a safety margin (zero when that has passed).
    pub fn visibility_left(&self, now: DateTime<Utc>) -> Duration {
        match self.first_received_ms {
            Some(first) => {
                let used = Duration::from_millis(now.timestamp_millis().saturating_sub(first).max(0) as u64);
                MAX_VISIBILITY.saturating_sub(used).saturating_sub(VISIBILITY_SAFETY)
            }
            None => UNKNOWN_FIRST_RECEIPT_WAIT,
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Acknowledged: done (or done before).
    Done,
    /// Acknowledged after being dead-lettered with this reason.
    DeadLettered { code: u16, reason: String },
    /// Acknowledged after a fresh copy was queued (a long wait near the redrive limit).
    Requeued { delay: Duration },
    /// Acknowledged after the job was parked outside SQS until its cause clears (`sync::parked`).
    Parked { code: u16 },
    /// Reported failed; SQS delivers it again after `visible_in` (None: the queue's own timeout).
    Retry { code: u16, visible_in: Option<Duration> },
}

impl Disposition {
    pub fn acknowledged(&self) -> bool {
        matches!(self, Disposition::Done | Disposition::DeadLettered { .. } | Disposition::Requeued { .. } | Disposition::Parked { .. })
    }
}

/// Runs every message of a batch concurrently. Returns each message's disposition, in order; the
/// Lambda reports the ids of those not acknowledged as batch item failures.
pub async fn handle_batch(deps: &SyncDeps, messages: &[InMessage], deadline: DateTime<Utc>) -> Vec<(String, Disposition)> {
    let futs = messages.iter().map(|m| async move {
        let fut = AssertUnwindSafe(handle_message(deps, m, deadline)).catch_unwind();
        let d = match fut.await {
            Ok(d) => d,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::error!(code = ErrorCode::Internal.as_u16(), message_id = %m.message_id, panic = %what, "sync job panicked");
                Disposition::Retry { code: ErrorCode::Internal.as_u16(), visible_in: None }
            }
        };
        (m.message_id.clone(), d)
    });
    let out = futures::future::join_all(futs).await;
    // The guard keeps slots and reserved places between a worker's calls; a frozen Lambda would
    // hold them until their leases end, so the batch gives them back (and writes its held counts).
    deps.guard.flush().await;
    out
}

async fn handle_message(deps: &SyncDeps, m: &InMessage, deadline: DateTime<Utc>) -> Disposition {
    // `payload` (push jobs) is part of the published job format but not of `SyncJob`, whose
    // producers never set it; read it from the same body.
    // Report and passthrough jobs carry their request as `report` / `passthrough` the same way.
    let mut body = serde_json::from_str::<serde_json::Value>(&m.body).ok();
    let payload = body.as_mut().and_then(|v| {
        let key = crate::reports::payload_key(v);
        v.get_mut(key).map(serde_json::Value::take)
    });
    // Likewise `webhook_nonce`: the receiver's claim on the delivery this job came from.
    let nonce = body.as_ref().and_then(NonceRef::from_job_body);
    let job = match SyncJob::from_json(&m.body).and_then(|j| validate(&j, payload.as_ref()).map(|_| j)) {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(code = %e.code(), message_id = %m.message_id, reason = %e, "malformed sync job");
            let d = dead_letter(deps, m, None, e.code().as_u16(), &e.to_string()).await;
            outcome_metric(&d, "unknown", "unknown");
            return d;
        }
    };
    let ctx = RequestContext::new(Some(&job.correlation_id)).with_tenant(job.tenant_id.clone()).with_provider(job.provider);
    ctx.scope(async {
        // Boxed: a job's future is deep (provider call, token refresh, stores); on the heap it
        // does not weigh on the runtime thread's stack.
        let run = Box::pin(run_job(deps, &job, payload.as_ref(), deadline));
        let (result, ()) = futures::join!(run, confirm_nonce(deps, &job, nonce.as_ref()));
        note_freshness(deps, &job, &result).await;
        let d = Box::pin(classify(deps, m, &job, result)).await;
        outcome_metric(&d, job.provider.as_str(), operation_name(job.operation));
        d
    })
    .await
}

/// The job is on the queue, so its delivery was enqueued: extend the receiver's pending nonce claim
/// to the full window, so provider redeliveries are answered as duplicates without enqueuing again
/// (see `webhooks::nonce`). Runs beside the job; a failure only costs a redundant message later.
async fn confirm_nonce(deps: &SyncDeps, job: &SyncJob, nonce: Option<&NonceRef>) {
    let Some(r) = nonce.filter(|_| job.operation == Operation::Webhook) else { return };
    match deps.nonces.confirm(job.provider, &r.key, &r.claim_id, Utc::now(), crate::webhooks::nonce::DEFAULT_WINDOW).await {
        Ok(true) => {}
        // A redelivery after our claim lapsed holds the item now; its own jobs confirm it.
        Ok(false) => tracing::debug!("webhook nonce claim already replaced; not confirmed"),
        Err(e) => {
            tracing::warn!(code = %e.code(), error = %e, "could not confirm the webhook nonce; a redelivery may enqueue this work again")
        }
    }
}

async fn classify(deps: &SyncDeps, m: &InMessage, job: &SyncJob, result: Result<Outcome>) -> Disposition {
    let e = match result {
        Ok(Outcome::Done(_)) | Ok(Outcome::Duplicate(_)) => return Disposition::Done,
        Ok(Outcome::InProgress { retry_after }) => {
            return wait(deps, m, ErrorCode::Conflict.as_u16(), retry_after).await;
        }
        Err(e) => e,
    };
    let code = e.code().as_u16();
    match &e {
        Error::RateLimited { .. } | Error::CircuitOpen { .. } | Error::ProviderRateLimited { .. } => {
            tracing::info!(code, error = %e, "provider busy; the job comes back later");
            wait(deps, m, code, e.retry_after().unwrap_or(DEFAULT_WAIT)).await
        }
        Error::QuotaExceeded { .. } => {
            // Parked, not lost: it waits until the quota resets or is raised.
            tracing::error!(code, error = %e, "tenant API quota spent; job parked");
            park(deps, m, job, &e, ParkCause::Quota).await
        }
        Error::NeedsReauth { .. } | Error::InvalidGrant { .. } => {
            tracing::warn!(code, error = %e, "connection needs re-authorisation; job parked");
            park(deps, m, job, &e, ParkCause::NeedsReauth).await
        }
        _ if e.is_retryable() => {
            tracing::warn!(code, error = %e, receive_count = m.receive_count, "transient failure; SQS retries the job");
            let backoff =
                jitter(Duration::from_secs(2u64 << m.receive_count.min(8)), 0.2).min(MAX_DELAY).min(m.visibility_left(Utc::now()));
            set_visibility(deps, m, backoff).await;
            Disposition::Retry { code, visible_in: Some(backoff) }
        }
        _ => {
            tracing::error!(code, error = %e, "sync job failed permanently");
            publish(deps, job, EventType::SyncFailed, failed_data(job, &e, false)).await;
            dead_letter(deps, m, Some(job), code, &e.to_string()).await
        }
    }
}

/// Parks a job that cannot run until its cause clears, outside SQS (see `sync::parked`), and
/// acknowledges the message. The first parking is announced; a released job parked again is not,
/// unless it has waited longer than `PARK_MAX_AGE`, when it is dead-lettered with the reason.
/// If the park cannot be stored, the message waits in SQS instead (within SQS's limits).
async fn park(deps: &SyncDeps, m: &InMessage, job: &SyncJob, e: &Error, cause: ParkCause) -> Disposition {
    let code = e.code().as_u16();
    let now = Utc::now();
    let first_parking = parked::parked_since(&m.body);
    let since = first_parking.unwrap_or(now);
    if now - since > PARK_MAX_AGE {
        let reason = format!(
            "parked since {} ({}), longer than the {} days a job is kept waiting: {}",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            cause.as_str(),
            PARK_MAX_AGE.num_days(),
            e
        );
        tracing::error!(code, cause = cause.as_str(), "parked job too old; dead-lettered");
        publish(deps, job, EventType::SyncFailed, failed_data(job, e, false)).await;
        return dead_letter(deps, m, Some(job), code, &reason).await;
    }
    let store = ParkedJobs::new(deps.db.clone(), deps.store.table(), deps.sqs.clone(), deps.queues.clone());
    let parked = async {
        let newly = store.park(job, &m.body, cause, code, since, now).await?;
        // After the record: a release that sees the mark finds the record. If the mark fails, the
        // message comes back and parks again (the record is kept; the mark is retried).
        store.mark_connection(deps.grants.table(), &job.tenant_id, job.provider, &job.org_id, now).await?;
        Ok::<bool, Error>(newly)
    };
    match parked.await {
        Ok(newly) => {
            if newly && first_parking.is_none() {
                publish(deps, job, EventType::SyncFailed, failed_data(job, e, true)).await;
            }
            Disposition::Parked { code }
        }
        Err(err) => {
            tracing::warn!(code = %err.code(), error = %err, "could not park the job; it waits in its queue");
            wait(deps, m, code, MAX_VISIBILITY).await
        }
    }
}

/// A wait: the message comes back after `d` (jittered so a storm of waiters does not return at
/// once). Near the redrive limit a fresh copy is queued instead, so waiting never dead-letters.
async fn wait(deps: &SyncDeps, m: &InMessage, code: u16, d: Duration) -> Disposition {
    let d = jitter(d.max(Duration::from_secs(1)), 0.1).min(m.visibility_left(Utc::now()));
    if m.receive_count >= deps.settings.requeue_at_receive {
        let delay = d.min(MAX_DELAY);
        match requeue(deps, m, delay).await {
            Ok(()) => return Disposition::Requeued { delay },
            Err(e) => tracing::warn!(code = %e.code(), error = %e, "could not requeue a waiting job; returning it instead"),
        }
    }
    set_visibility(deps, m, d).await;
    Disposition::Retry { code, visible_in: Some(d) }
}

fn jitter(d: Duration, frac: f64) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 10_000) as f64 / 10_000.0;
    d.mul_f64(1.0 + frac * r)
}

/// The queue URL for a queue ARN (`arn:aws:sqs:<region>:<account>:<name>`), cached.
async fn queue_url(deps: &SyncDeps, arn: &str) -> Result<String> {
    if let Some(u) = deps.queue_urls.lock().unwrap_or_else(|p| p.into_inner()).get(arn) {
        return Ok(u.clone());
    }
    let parts: Vec<&str> = arn.split(':').collect();
    let (account, name) = match parts.as_slice() {
        [_, _, "sqs", _, account, name] => (*account, *name),
        _ => return Err(Error::Internal(format!("'{arn}' is not an SQS queue ARN"))),
    };
    let out = deps
        .sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| Error::queue(format!("GetQueueUrl: {}", aws_smithy_types::error::display::DisplayErrorContext(&e))))?;
    let url = out.queue_url.ok_or_else(|| Error::queue("GetQueueUrl returned no URL".to_string()))?;
    deps.queue_urls.lock().unwrap_or_else(|p| p.into_inner()).insert(arn.to_string(), url.clone());
    Ok(url)
}

/// The DLQ: configured, or the source queue's redrive target.
async fn dlq_url(deps: &SyncDeps, source_arn: &str) -> Result<String> {
    if let Some(u) = &deps.dlq_url {
        return Ok(u.clone());
    }
    let cache_key = format!("dlq:{source_arn}");
    if let Some(u) = deps.queue_urls.lock().unwrap_or_else(|p| p.into_inner()).get(&cache_key) {
        return Ok(u.clone());
    }
    let source = queue_url(deps, source_arn).await?;
    let attrs = deps
        .sqs
        .get_queue_attributes()
        .queue_url(&source)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| Error::queue(format!("GetQueueAttributes: {}", aws_smithy_types::error::display::DisplayErrorContext(&e))))?;
    let policy = attrs
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy).cloned())
        .ok_or_else(|| Error::queue("the source queue has no RedrivePolicy".to_string()))?;
    let target = serde_json::from_str::<serde_json::Value>(&policy)
        .ok()
        .and_then(|p| p.get("deadLetterTargetArn").and_then(|a| a.as_str()).map(str::to_string))
        .ok_or_else(|| Error::queue("RedrivePolicy names no deadLetterTargetArn".to_string()))?;
    let url = queue_url(deps, &target).await?;
    deps.queue_urls.lock().unwrap_or_else(|p| p.into_inner()).insert(cache_key, url.clone());
    Ok(url)
}

async fn set_visibility(deps: &SyncDeps, m: &InMessage, d: Duration) {
    let url = match queue_url(deps, &m.event_source_arn).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(code = %e.code(), error = %e, "cannot find the source queue; the message returns after the queue's timeout");
            return;
        }
    };
    // Zero is allowed (visible again at once): what is left of the 12 hours may be nothing.
    let secs = d.min(m.visibility_left(Utc::now())).as_secs() as i32;
    if let Err(e) =
        deps.sqs.change_message_visibility().queue_url(url).receipt_handle(&m.receipt_handle).visibility_timeout(secs).send().await
    {
        tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), "ChangeMessageVisibility failed; the queue's timeout applies");
    }
}

fn attr(v: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().map_err(Error::queue)
}

async fn requeue(deps: &SyncDeps, m: &InMessage, delay: Duration) -> Result<()> {
    let url = queue_url(deps, &m.event_source_arn).await?;
    deps.sqs
        .send_message()
        .queue_url(url)
        .message_body(&m.body)
        .delay_seconds(delay.as_secs().min(900) as i32)
        .message_attributes("requeued_from", attr(&m.message_id)?)
        .send()
        .await
        .map_err(|e| Error::queue(format!("SendMessage(requeue): {}", aws_smithy_types::error::display::DisplayErrorContext(&e))))?;
    Ok(())
}

/// Sends the message to the DLQ with its reason as attributes and acknowledges it. If the DLQ
/// cannot be reached the message is reported failed instead (SQS's own redrive still catches it).
async fn dead_letter(deps: &SyncDeps, m: &InMessage, job: Option<&SyncJob>, code: u16, reason: &str) -> Disposition {
    let reason: String = reason.chars().take(1000).collect();
    // An empty body cannot be sent to SQS; keep a marker instead.
    let body = if m.body.is_empty() { "(empty message body)" } else { m.body.as_str() };
    let code_text = code.to_string();
    let mut wanted: Vec<(&str, &str)> =
        vec![("error_code", code_text.as_str()), ("reason", reason.as_str()), ("source_message_id", m.message_id.as_str())];
    if let Some(j) = job {
        wanted.push(("tenant_id", j.tenant_id.as_str()));
        wanted.push(("idempotency_key", j.idempotency_key.as_str()));
    }
    if !m.event_source_arn.is_empty() {
        wanted.push(("source_queue", m.event_source_arn.as_str()));
    }
    let sent: Result<()> = async {
        let url = dlq_url(deps, &m.event_source_arn).await?;
        let mut attrs: HashMap<String, MessageAttributeValue> = HashMap::new();
        for (name, value) in fit_attributes(body.len(), &wanted) {
            attrs.insert(name, attr(&value)?);
        }
        deps.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .set_message_attributes(Some(attrs))
            .send()
            .await
            .map_err(|e| Error::queue(format!("SendMessage(DLQ): {}", aws_smithy_types::error::display::DisplayErrorContext(&e))))?;
        Ok(())
    }
    .await;
    match sent {
        Ok(()) => Disposition::DeadLettered { code, reason },
        Err(err) => {
            tracing::error!(code = %err.code(), error = %err, "could not dead-letter the job; SQS will retry it");
            Disposition::Retry { code, visible_in: None }
        }
    }
}

/// What a pull or webhook job's end says about the copy's freshness (`sync::freshness`). Best
/// effort: a failed write is logged and the job's own outcome stands.
async fn note_freshness(deps: &SyncDeps, job: &SyncJob, result: &Result<Outcome>) {
    if !matches!(job.operation, Operation::Pull | Operation::Webhook) {
        return;
    }
    let now = Utc::now();
    let of = crate::sync::freshness::CopyOf {
        tenant_id: &job.tenant_id,
        provider: job.provider,
        org_id: &job.org_id,
        entity: job.entity.model(),
    };
    let written = match result {
        Ok(Outcome::Done(v)) => v["counts"]["written"].as_u64().unwrap_or(0),
        Ok(_) => return,
        Err(e) => {
            if let Err(w) = deps.freshness.failure(of, e.code().as_u16(), now).await {
                tracing::warn!(code = %w.code(), error = %w, "could not record the job's failure for freshness");
            }
            return;
        }
    };
    let pull = job.operation == Operation::Pull;
    if let Err(w) = deps.freshness.success(of, pull, written > 0, now).await {
        tracing::warn!(code = %w.code(), error = %w, "could not record the job's success for freshness");
    }
}

fn operation_name(o: Operation) -> &'static str {
    match o {
        Operation::Pull => "pull",
        Operation::Push => "push",
        Operation::Webhook => "webhook",
        Operation::Report => "report",
        Operation::Passthrough => "passthrough",
    }
}

/// One count per job outcome, for the dashboard: completed, not finished this time (SQS delivers it
/// again, or a fresh copy after a long wait), parked, dead-lettered.
fn outcome_metric(d: &Disposition, provider: &str, operation: &str) {
    let name = match d {
        Disposition::Done => "SyncJobCompleted",
        Disposition::Retry { .. } | Disposition::Requeued { .. } => "SyncJobFailed",
        Disposition::Parked { .. } => "SyncJobParked",
        Disposition::DeadLettered { .. } => "SyncJobDeadLettered",
    };
    crate::telemetry::metric(name, 1.0, "Count", &[("provider", provider), ("operation", operation)]);
}

/// SQS's message quota: body and attributes together (the queues keep the default MaximumMessageSize).
const SQS_MESSAGE_MAX: usize = 256 * 1024;

/// The dead-letter attributes that fit beside a body of `body_len` bytes in one SQS message, in the
/// order given (most useful first), the last one that fits only in part cut at a character boundary.
/// A message near the quota still reaches the DLQ (its body is what an operator replays) rather than
/// being refused there and retried until the redrive moves it without a reason.
fn fit_attributes(body_len: usize, wanted: &[(&str, &str)]) -> Vec<(String, String)> {
    // An attribute counts its name, its data type ("String") and its value.
    const TYPE_LEN: usize = "String".len();
    let mut room = SQS_MESSAGE_MAX.saturating_sub(body_len);
    let mut out = Vec::new();
    for (name, value) in wanted {
        let fixed = name.len() + TYPE_LEN;
        if value.is_empty() || room <= fixed {
            continue;
        }
        let mut end = value.len().min(room - fixed);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        if end == 0 {
            continue;
        }
        room -= fixed + end;
        out.push((name.to_string(), value[..end].to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dead_letter_attributes_fit_beside_a_body_near_the_sqs_quota() {
        let reason = "é".repeat(600);
        let wanted = [("error_code", "4000"), ("reason", reason.as_str()), ("source_message_id", "m-1")];
        let size = |body: usize, a: &[(String, String)]| body + a.iter().map(|(n, v)| n.len() + 6 + v.len()).sum::<usize>();
        // Far from the quota: every attribute whole.
        let all = fit_attributes(1000, &wanted);
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].1, reason);
        // 700 bytes of room: the code whole, the reason cut on a character boundary, the rest left out.
        let body = SQS_MESSAGE_MAX - 700;
        let fitted = fit_attributes(body, &wanted);
        assert_eq!(fitted[0], ("error_code".to_string(), "4000".to_string()));
        assert_eq!(fitted[1].0, "reason");
        assert!(fitted[1].1.len() < reason.len() && fitted[1].1.chars().all(|c| c == 'é'));
        assert!(size(body, &fitted) <= SQS_MESSAGE_MAX, "{}", size(body, &fitted));
        // No room at all: the body alone.
        assert!(fit_attributes(SQS_MESSAGE_MAX, &wanted).is_empty());
    }

    #[test]
    fn in_message_waits_never_reach_past_12_hours_from_the_first_receipt() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let at = |ago: i64| InMessage {
            first_received_ms: Some((now - chrono::Duration::seconds(ago)).timestamp_millis()),
            ..Default::default()
        };
        assert_eq!(at(0).visibility_left(now), MAX_VISIBILITY - VISIBILITY_SAFETY);
        assert_eq!(at(11 * 3600).visibility_left(now), Duration::from_secs(3600) - VISIBILITY_SAFETY);
        assert_eq!(at(12 * 3600 - 60).visibility_left(now), Duration::ZERO, "inside the safety margin: nothing left");
        assert_eq!(at(13 * 3600).visibility_left(now), Duration::ZERO);
        // Unknown first receipt: five receives of the bound plus the queue's timeout fit in 12 h.
        assert_eq!(InMessage::default().visibility_left(now), UNKNOWN_FIRST_RECEIPT_WAIT);
        assert!((UNKNOWN_FIRST_RECEIPT_WAIT + Duration::from_secs(720)) * 5 < MAX_VISIBILITY);
    }

    #[test]
    fn jitter_only_lengthens_within_its_fraction() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100), 0.2);
            assert!(d >= Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        }
    }
}
