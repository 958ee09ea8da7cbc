//! Deletions no provider tells us about: at the end of a full pass (a pull from the first record,
//! not an incremental one), a stored record the provider no longer listed is gone at the provider
//! and becomes a tombstone. Zoho lists leave deleted records out and sends no deletion without a
//! webhook; QuickBooks CDC looks back only 30 days; Xero's listing of deleted documents is
//! unconfirmed. This pass covers every entity of every provider alike.
//!
//! The pass can span several jobs (follow-ups across the Lambda deadline, a retry after a crash), so
//! what it saw is kept in DynamoDB, one `RECON#` item per page (the page's ids; rewriting a re-read
//! page is idempotent), keyed by the pass's start on our clock (`Cursor::full_pass_started`). At the
//! last page, the live records of the scope stored before that start and not seen are the missing
//! ones. A record stored at or after the start (a webhook's write during the pass) is never taken
//! for missing. A pass that would delete more than [`MASS_DELETION_SHARE`] of a scope's records
//! (and more than [`MASS_DELETION_FLOOR`]) deletes nothing and says so: an empty or truncated
//! answer from a provider must not empty the copy.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::providers::model::Entity;
use crate::store::{dynamo_error, get_s_opt, n, s, tenant_pk, Item};
use crate::sync::store::records_prefix;
use crate::Provider;

/// Ids per `RECON#` item: 500 of the longest id we key a record by (255 bytes) stay far under
/// DynamoDB's 400 KB item limit.
pub const IDS_PER_ITEM: usize = 500;
/// How long a pass's page items are kept (a full pass of the largest books ends well within it).
pub const SEEN_TTL: chrono::Duration = chrono::Duration::days(3);
/// A pass that finds more than this share of a scope missing deletes nothing.
pub const MASS_DELETION_SHARE: f64 = 0.5;
/// ... unless it is at most this many records.
pub const MASS_DELETION_FLOOR: usize = 20;
/// Records written this close before the pass's start are not taken for missing either: the
/// provider's clock and ours differ a little, and a record created just before the pass may be
/// listed on a later page than its write suggests.
const CLOCK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// Where a pass stands: the scope and the pass's start.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    pub tenant_id: &'a str,
    pub provider: Provider,
    pub org_id: &'a str,
    pub entity: Entity,
    pub started: DateTime<Utc>,
}

impl Pass<'_> {
    fn prefix(&self) -> String {
        format!("RECON#{}#{}#{}#{}#", self.provider, self.org_id, self.entity, self.started.timestamp_millis())
    }
}

/// What the end of a pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// Provider ids of live records the pass did not see (to tombstone).
    pub ids: Vec<String>,
    /// Live records stored before the pass.
    pub live: usize,
    /// More were missing than a pass may delete: `ids` is empty and this is how many.
    pub refused: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Reconciler {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl Reconciler {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Reconciler { db, table: table.into() }
    }

    /// Keeps the ids one page listed, in items of at most [`IDS_PER_ITEM`] (a provider may send
    /// more rows than asked, and an item is at most 400 KB). Each item is named by its first and
    /// last id and count, so a page read again (a retry) rewrites its own items.
    pub async fn seen(&self, pass: Pass<'_>, ids: &[&str], now: DateTime<Utc>) -> Result<()> {
        for chunk in ids.chunks(IDS_PER_ITEM) {
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else { continue };
            let name = {
                use sha2::{Digest, Sha256};
                let mut h = Sha256::new();
                h.update(first.as_bytes());
                h.update([0]);
                h.update(last.as_bytes());
                h.update([0]);
                h.update((chunk.len() as u64).to_be_bytes());
                hex::encode(&h.finalize()[..12])
            };
            let list = serde_json::to_string(chunk).map_err(|e| Error::Internal(format!("ids JSON: {e}")))?;
            self.db
                .put_item()
                .table_name(&self.table)
                .item("pk", s(tenant_pk(pass.tenant_id)))
                .item("sk", s(format!("{}{name}", pass.prefix())))
                .item("ids", s(list))
                .item("expires_at", n((now + SEEN_TTL).timestamp()))
                .send()
                .await
                .map_err(|e| dynamo_error("PutItem(reconcile page)", e))?;
        }
        Ok(())
    }

    /// The live records of the pass's scope, stored before it started, that it did not see.
    pub async fn missing(&self, pass: Pass<'_>) -> Result<Missing> {
        let mut seen: HashSet<String> = HashSet::new();
        for item in self.query(pass.tenant_id, &pass.prefix(), &["ids"]).await? {
            let ids: Vec<String> = get_s_opt(&item, "ids").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
            seen.extend(ids);
        }
        let prefix = records_prefix(pass.provider, pass.org_id, pass.entity);
        let cutoff = pass.started - CLOCK_MARGIN;
        let mut out = Missing::default();
        for item in self.query(pass.tenant_id, &prefix, &["sk", "deleted", "synced_at"]).await? {
            if matches!(item.get("deleted"), Some(AttributeValue::Bool(true))) {
                continue;
            }
            let before = get_s_opt(&item, "synced_at")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .is_some_and(|t| t.with_timezone(&Utc) < cutoff);
            if !before {
                continue;
            }
            out.live += 1;
            let Some(id) = get_s_opt(&item, "sk").and_then(|sk| sk.strip_prefix(&prefix).map(str::to_string)) else { continue };
            if !seen.contains(&id) {
                out.ids.push(id);
            }
        }
        if out.ids.len() > MASS_DELETION_FLOOR && out.ids.len() as f64 > out.live as f64 * MASS_DELETION_SHARE {
            out.refused = Some(out.ids.len());
            out.ids.clear();
        }
        Ok(out)
    }

    /// Every item of the tenant under `prefix`, every page (answers are cut at 1 MB).
    async fn query(&self, tenant_id: &str, prefix: &str, attributes: &[&str]) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        let projection = (0..attributes.len()).map(|i| format!("#a{i}")).collect::<Vec<_>>().join(", ");
        loop {
            let mut req = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .projection_expression(&projection)
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(prefix))
                .set_exclusive_start_key(start.take());
            for (i, a) in attributes.iter().enumerate() {
                req = req.expression_attribute_names(format!("#a{i}"), *a);
            }
            let out = req.send().await.map_err(|e| dynamo_error("Query(reconcile)", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}
