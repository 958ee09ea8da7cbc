//! A report that takes more than one invocation: Xero's aged receivables cost one call per contact
//! (its API has no all-contacts aged report), and at Xero's 60 calls a minute 300 contacts take
//! five minutes against the worker's 120-second Lambda timeout. The job stops before its deadline,
//! stores what it has, and hands over to a follow-up job (as long pulls do), so each contact is
//! fetched once and `report.ready` goes out once, from the job that finishes.
//!
//! The partial state lives in the sync table under the tenant, not in the message (300 contacts'
//! rows do not fit SQS's 256 KB comfortably):
//!
//! | sk | what |
//! | --- | --- |
//! | `REPORTPART#<provider>#<org>#<lineage hash>` | `state` (JSON: the contacts to ask about, the rows read so far, where to go on), `owner` (the idempotency key of the one job that may go on with it), `expires_at` (TTL, [`LIFETIME`]) |
//!
//! Ownership makes the hand-over safe under redelivery: a job saves the state naming its follow-up
//! as owner (conditional on still owning it), then sends the follow-up. A redelivered predecessor
//! finds another owner and only sends the follow-up again; the follow-up's key is derived from the
//! lineage and the position, so a second copy is a duplicate the worker runs once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::jobs::lineage_root;
use crate::jobs::SyncJob;
use crate::reports::model::Row;
use crate::reports::store::job_hash;
use crate::store::{dynamo_error, epoch, is_conditional_failure, n, s, tenant_pk, Item};
use crate::{Error, Provider, Result};

/// How long a partial report is kept: a lineage that has not finished by then has failed (its
/// follow-ups are in the DLQ) and a new request starts again.
pub const LIFETIME: Duration = Duration::hours(24);
/// DynamoDB's item limit is 400 KB (names and values, [`crate::reports::store::MAX_ITEM_BYTES`]);
/// the state's JSON leaves room for the keys and the other attributes.
pub const MAX_STATE_BYTES: usize = 390_000;

/// Xero aged receivables part-way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgedState {
    pub as_of: NaiveDate,
    pub currency: String,
    /// Every contact with an open sales invoice: (ContactID, name), in the order they are read.
    pub contacts: Vec<(String, String)>,
    /// How many of `contacts` have been read.
    pub next: usize,
    /// The rows of the contacts read so far that owe something.
    pub rows: Vec<Row>,
}

/// What a job finds when it loads its lineage's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// Nothing stored: the first job of the lineage starts from the beginning.
    Fresh,
    /// The state, and this job may go on with it.
    Mine(AgedState),
    /// The state belongs to a later job of the lineage: this one handed over before (it is a
    /// redelivery); the key it handed over to.
    HandedOver(String),
}

fn sk(provider: Provider, org_id: &str, idempotency_key: &str) -> String {
    format!("REPORTPART#{provider}#{org_id}#{}", job_hash(lineage_root(idempotency_key)))
}

/// The key of the job that goes on from `next`: `<root>~c<hash>`, so `lineage_root` finds the
/// app's key again and the same hand-over always names the same job.
pub fn follow_up_key(idempotency_key: &str, next: usize) -> String {
    let root = lineage_root(idempotency_key);
    let mut h = Sha256::new();
    h.update(root.as_bytes());
    h.update(b"\nreport-part\n");
    h.update(next.to_string().as_bytes());
    let suffix = &hex::encode(h.finalize())[..16];
    let root = if root.len() + 18 > 256 { format!("h:{}", &hex::encode(Sha256::digest(root.as_bytes()))[..32]) } else { root.to_string() };
    format!("{root}~c{suffix}")
}

/// The follow-up job: the same job (same `job_id`, so the app's events name the job it sent) under
/// the follow-up key.
pub fn follow_up(job: &SyncJob, next: usize) -> SyncJob {
    SyncJob { idempotency_key: follow_up_key(&job.idempotency_key, next), requested_at: Utc::now(), ..job.clone() }
}

#[derive(Debug, Clone)]
pub struct PartialStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl PartialStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        PartialStore { db, table: table.into() }
    }

    pub async fn load(&self, job: &SyncJob, now: DateTime<Utc>) -> Result<Loaded> {
        let item =
            crate::store::get_item(&self.db, &self.table, tenant_pk(&job.tenant_id), sk(job.provider, &job.org_id, &job.idempotency_key))
                .await?;
        let Some(item) = item.filter(|i| crate::store::get_n_opt(i, "expires_at").is_some_and(|e| e > epoch(now))) else {
            return Ok(Loaded::Fresh);
        };
        let owner = crate::store::get_s(&item, "owner")?;
        if owner != job.idempotency_key {
            return Ok(Loaded::HandedOver(owner));
        }
        let text = crate::store::get_s(&item, "state")?;
        let state = serde_json::from_str(&text).map_err(|e| Error::Internal(format!("partial report state: {e}")))?;
        Ok(Loaded::Mine(state))
    }

    /// Stores `state` for `owner` to go on with, if `job` still owns it (or nobody does yet).
    /// A state too large for one item is refused with [`Error::PayloadTooLarge`] before anything is
    /// written.
    pub async fn save(&self, job: &SyncJob, state: &AgedState, owner: &str, now: DateTime<Utc>) -> Result<()> {
        let text = serde_json::to_string(state).map_err(|e| Error::Internal(format!("partial report state: {e}")))?;
        if text.len() > MAX_STATE_BYTES {
            return Err(Error::PayloadTooLarge { size: text.len(), limit: MAX_STATE_BYTES });
        }
        let mut item = Item::new();
        item.insert("pk".into(), s(tenant_pk(&job.tenant_id)));
        item.insert("sk".into(), s(sk(job.provider, &job.org_id, &job.idempotency_key)));
        item.insert("tenant_id".into(), s(&job.tenant_id));
        item.insert("state".into(), s(text));
        item.insert("owner".into(), s(owner));
        item.insert("expires_at".into(), n(epoch(now + LIFETIME)));
        let r = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk) OR #o = :me OR expires_at < :now")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(&job.idempotency_key))
            .expression_attribute_values(":now", n(epoch(now)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("job {} no longer owns its report's partial state", job.idempotency_key)))
            }
            Err(e) => Err(dynamo_error("PutItem(report part)", e)),
        }
    }
}

/// The message for a follow-up: the job and the app's `report` beside it, as the app sent it.
pub fn message_body(job: &SyncJob, request: &Value) -> Result<String> {
    let mut v: Value = serde_json::from_str(&job.to_json()).map_err(|e| Error::Internal(format!("sync job: {e}")))?;
    v["report"] = request.clone();
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_keys_stay_in_the_lineage_and_are_stable() {
        let k1 = follow_up_key("app:42", 60);
        assert_eq!(lineage_root(&k1), "app:42");
        assert_eq!(k1, follow_up_key("app:42", 60), "the same hand-over names the same job");
        assert_eq!(follow_up_key(&k1, 60), k1, "derived from the root, not from the job handing over");
        assert_ne!(follow_up_key("app:42", 61), k1);
        assert!(follow_up_key(&"x".repeat(256), 1).len() <= 256);
    }
}
