//! Replay and duplicate protection: one nonce item per delivery in the ephemeral table.
//!
//! Key: pk `WEBHOOK#<provider>#<dedupe key>`, sk `NONCE`. The tenant is not known when the nonce is
//! claimed (one QuickBooks delivery can span several realms and tenants), so the key is the
//! provider's delivery identity. The identity goes into the partition key rather than under one
//! `WEBHOOK#<provider>` partition so a burst of deliveries spreads over partitions instead of
//! hitting one key's write limit.
//!
//! Claim = one conditional `PutItem` with `attribute_not_exists(pk) OR expires_at < :now`: DynamoDB's
//! TTL deletes expired items up to days late, so an expired item must count as absent in the
//! condition itself. A claim carries a random claim id so that a failed enqueue can release exactly
//! its own claim (and not one a concurrent redelivery made after ours expired).
//!
//! Two phases, so a handler that dies between the claim and the SQS send (timeout, crash, out of
//! memory) does not turn the provider's retry into a "duplicate" for a whole day:
//! 1. [`NonceStore::claim`] writes the item as `pending` with a short expiry ([`PENDING_WINDOW`],
//!    about twice the receiver's timeout). A retry while it is pending is answered "duplicate" (the
//!    first attempt may still be running); a retry after it lapsed is processed again.
//! 2. [`NonceStore::confirm`] extends the item to the full window, only while it still carries our
//!    claim id. The sync worker does this when it takes one of the delivery's jobs: every job body
//!    carries the claim as `webhook_nonce` ([`NonceRef`]). A job on the queue is proof the send
//!    succeeded, and the receiver's delivery path stays at two sequential round trips (claim, send).
//!    A failed send [`NonceStore::release`]s the claim at once, also conditioned on the claim id.
//!
//! Why the confirm may wait for the worker: if a provider retry arrives after the pending claim
//! lapsed but before a worker took the job (a backed-up queue), the retry claims anew and enqueues
//! jobs with the same idempotency keys (derived from the provider's event, `jobs::webhook_idempotency_key`),
//! and the worker's job record (`JOB#<key>`: INPROGRESS, then COMPLETED for 7 days) does that work
//! once. The older claim's confirm then fails its condition (the item carries the retry's claim id)
//! and the retry's own jobs confirm the retry's claim. What is lost is only an SQS message, never a
//! change.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Duration, Utc};

use crate::store::{dynamo_error, epoch, is_conditional_failure, n, s};
use crate::{Provider, Result};

/// How long a delivery's identity is remembered. Providers redeliver what they think failed: Xero
/// retries for up to 24 h, QuickBooks' schedule (0 s .. 6 h steps) passes 12 h by its ninth try.
/// Later replays are harmless anyway: the job's idempotency key is derived from the event itself.
pub const DEFAULT_WINDOW: Duration = Duration::hours(24);

/// How long an unconfirmed claim holds: twice the webhook receiver's Lambda timeout (10 s in
/// template.yaml), so a still-running first attempt is not doubled, and a dead one blocks the
/// provider's retry for at most this long.
pub const PENDING_WINDOW: Duration = Duration::seconds(20);

// The claim's form in a job body belongs to the job format (jobs.rs sends it).
pub use crate::jobs::{NonceRef, JOB_FIELD};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time (or first time since the previous claim expired); holds our claim id.
    Claimed(String),
    /// Seen within the window.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct NonceStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

pub fn nonce_pk(provider: Provider, dedupe_key: &str) -> String {
    format!("WEBHOOK#{}#{dedupe_key}", provider.as_str())
}

pub const NONCE_SK: &str = "NONCE";

impl NonceStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        NonceStore { db, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Claims the delivery as pending for `pending` with one conditional PutItem. A pending claim
    /// whose expiry has passed (its handler died) counts as absent.
    pub async fn claim(&self, provider: Provider, dedupe_key: &str, now: DateTime<Utc>, pending: Duration) -> Result<Claim> {
        let claim_id = uuid::Uuid::new_v4().to_string();
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(nonce_pk(provider, dedupe_key)))
            .item("sk", s(NONCE_SK))
            .item("kind", s("webhook_nonce"))
            .item("provider", s(provider.as_str()))
            .item("claim_id", s(&claim_id))
            .item("status", s("pending"))
            .item("received_at", n(epoch(now)))
            .item("expires_at", n(epoch(now + pending)))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(epoch(now)))
            .return_values(ReturnValue::None)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Claimed(claim_id)),
            Err(e) if is_conditional_failure(&e) => Ok(Claim::Duplicate),
            Err(e) => Err(dynamo_error("PutItem(nonce)", e)),
        }
    }

    /// Extends our claim to the full dedupe window once the delivery is safely on the queue. False
    /// when the item is no longer ours (our pending claim lapsed and a redelivery claimed it): that
    /// redelivery then owns the item, and its jobs carry the same idempotency keys as ours.
    pub async fn confirm(
        &self,
        provider: Provider,
        dedupe_key: &str,
        claim_id: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(nonce_pk(provider, dedupe_key)))
            .key("sk", s(NONCE_SK))
            .update_expression("SET #st = :done, expires_at = :exp, confirmed_at = :now")
            .condition_expression("claim_id = :c")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":exp", n(epoch(now + window)))
            .expression_attribute_values(":now", n(epoch(now)))
            .expression_attribute_values(":c", s(claim_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(nonce)", e)),
        }
    }

    /// Gives up our claim after the delivery could not be enqueued, so the provider's retry is not
    /// taken for a duplicate. Only deletes the item if it is still ours.
    pub async fn release(&self, provider: Provider, dedupe_key: &str, claim_id: &str) -> Result<bool> {
        let res = self
            .db
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(nonce_pk(provider, dedupe_key)))
            .key("sk", s(NONCE_SK))
            .condition_expression("claim_id = :c")
            .expression_attribute_values(":c", s(claim_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("DeleteItem(nonce)", e)),
        }
    }
}
