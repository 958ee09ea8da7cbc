//! Concurrency slots: at most N calls in flight per provider org (QuickBooks 10 per realm, Xero 5
//! per organisation), shared by every worker and every tenant connected to the org.
//!
//! In the org's item (`pk = ORG#<provider>#<org>`, `sk = RL`, beside its rate limit
//! and breaker, so the guard takes or renews a slot in the same write that reserves its places), a map
//! `holders: {<holder id>: <lease expiry, µs>}`. Taking a slot is a conditional write
//! (`size(holders) < N`); giving it back removes the holder. A worker that dies mid-call never gives
//! its slot back, so every holder has a lease: once it has expired, the next worker that finds the
//! map full removes it in the same conditional write that adds itself (on condition the expired
//! entries are still what it read), so a dead worker's slot is reclaimed exactly once.
//!
//! The guard keeps a slot across a worker's consecutive calls (renewed by each batched write,
//! released lazily by `ProviderGuard::flush` or when its lease runs out); this module's
//! `acquire` / `release` are the one-call-at-a-time path (probes, a second call in flight on the
//! same worker and org).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::providers::Provider;
use crate::store::{dynamo_error, is_conditional_failure, n, s};
use crate::Result;

use super::limiter::{now_us, Cost};

#[derive(Clone, Debug)]
pub struct Slots {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

/// A slot held by this worker. Give it back with [`Slots::release`].
#[derive(Debug, Clone)]
pub struct SlotLease {
    pub pk: String,
    pub sk: String,
    pub holder: String,
    pub expires_us: i64,
}

/// Either a slot, or how long until one may be free (the earliest lease expiry, or a short pause).
#[derive(Debug)]
pub enum SlotDecision {
    Held(SlotLease),
    Full { retry_after: Duration },
}

pub fn slot_key(provider: Provider, org_id: &str) -> (String, String) {
    super::limiter::org_item_key(provider, org_id)
}

/// Lets a busy org's slot holders finish before asking again.
const FULL_PAUSE: Duration = Duration::from_millis(50);
const MAX_CONFLICTS: u32 = 6;

impl Slots {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Slots { db, table: table.into() }
    }

    /// Takes one of `max` slots for `lease` (the longest a call can take, plus a margin).
    pub async fn acquire(&self, provider: Provider, org_id: &str, max: u32, lease: Duration, cost: &mut Cost) -> Result<SlotDecision> {
        let (pk, sk) = slot_key(provider, org_id);
        let holder = uuid::Uuid::new_v4().simple().to_string();
        for _ in 0..MAX_CONFLICTS {
            let now = now_us();
            let expires_us = now + lease.as_micros() as i64;
            let lease_of = || SlotLease { pk: pk.clone(), sk: sk.clone(), holder: holder.clone(), expires_us };
            // Fast path: the map exists and has room.
            cost.dynamo_calls += 1;
            let r = self
                .db
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .update_expression("SET holders.#h = :exp, expires_at = :ttl")
                .condition_expression("size(holders) < :max")
                .expression_attribute_values(":ttl", n(super::item_expiry(now)))
                .expression_attribute_names("#h", &holder)
                .expression_attribute_values(":exp", n(expires_us))
                .expression_attribute_values(":max", n(max))
                .send()
                .await;
            // With no map yet, DynamoDB may refuse the document path instead of failing the
            // condition; the read below tells the two apart.
            let fast_err = match r {
                Ok(_) => return Ok(SlotDecision::Held(lease_of())),
                Err(e) if is_conditional_failure(&e) => None,
                Err(e) => Some(dynamo_error("UpdateItem(slot)", e)),
            };
            // Full, or no map yet: read it and reclaim expired leases.
            cost.dynamo_calls += 1;
            let item = crate::store::get_item(&self.db, &self.table, pk.clone(), sk.clone()).await?;
            let holders: HashMap<String, i64> = match item.as_ref().and_then(|i| i.get("holders")) {
                Some(AttributeValue::M(m)) => {
                    if let Some(e) = fast_err {
                        return Err(e);
                    }
                    m.iter().map(|(k, v)| (k.clone(), v.as_n().ok().and_then(|x| x.parse().ok()).unwrap_or(0))).collect()
                }
                _ => {
                    cost.dynamo_calls += 1;
                    let r = self
                        .db
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(&pk))
                        .key("sk", s(&sk))
                        .update_expression("SET holders = :m, expires_at = :ttl")
                        .condition_expression("attribute_not_exists(holders)")
                        .expression_attribute_values(":ttl", n(super::item_expiry(now)))
                        .expression_attribute_values(":m", AttributeValue::M(HashMap::from([(holder.clone(), n(expires_us))])))
                        .send()
                        .await;
                    match r {
                        Ok(_) => return Ok(SlotDecision::Held(lease_of())),
                        Err(e) if is_conditional_failure(&e) => continue,
                        Err(e) => return Err(dynamo_error("UpdateItem(slot)", e)),
                    }
                }
            };
            // Only as many expired leases as it takes: the oldest one.
            let expired: Vec<(&String, &i64)> =
                holders.iter().filter(|(_, exp)| **exp <= now).min_by_key(|(_, exp)| **exp).into_iter().collect();
            let live = holders.values().filter(|exp| **exp > now).count();
            if live as u32 >= max {
                let next_free = holders.values().min().copied().unwrap_or(now);
                let wait = Duration::from_micros((next_free - now).max(0) as u64);
                return Ok(SlotDecision::Full { retry_after: wait.clamp(Duration::from_millis(1), FULL_PAUSE) });
            }
            if expired.is_empty() {
                // Someone gave a slot back since our first try.
                continue;
            }
            let mut names = HashMap::new();
            let mut values = HashMap::new();
            let mut removes = Vec::new();
            let mut conds = Vec::new();
            for (i, (h, exp)) in expired.iter().enumerate() {
                names.insert(format!("#d{i}"), (*h).clone());
                values.insert(format!(":d{i}"), n(**exp));
                removes.push(format!("holders.#d{i}"));
                conds.push(format!("holders.#d{i} = :d{i}"));
            }
            names.insert("#h".into(), holder.clone());
            values.insert(":exp".into(), n(expires_us));
            values.insert(":ttl".into(), n(super::item_expiry(now)));
            values.insert(":cap".into(), n(max as usize + expired.len()));
            conds.push("size(holders) < :cap".into());
            tracing::info!(provider = %provider, org_id, reclaimed = expired.len(), "reclaiming expired concurrency slots");
            cost.dynamo_calls += 1;
            let r = self
                .db
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .update_expression(format!("SET holders.#h = :exp, expires_at = :ttl REMOVE {}", removes.join(", ")))
                .condition_expression(conds.join(" AND "))
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(SlotDecision::Held(lease_of())),
                Err(e) if is_conditional_failure(&e) => continue,
                Err(e) => return Err(dynamo_error("UpdateItem(slot reclaim)", e)),
            }
        }
        Ok(SlotDecision::Full { retry_after: FULL_PAUSE })
    }

    /// Gives a slot back. Removing a holder that was already reclaimed (its lease ran out) is a no-op.
    pub async fn release(&self, lease: &SlotLease, cost: &mut Cost) -> Result<()> {
        cost.dynamo_calls += 1;
        self.db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&lease.pk))
            .key("sk", s(&lease.sk))
            .update_expression("REMOVE holders.#h")
            .condition_expression("attribute_exists(holders)")
            .expression_attribute_names("#h", &lease.holder)
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if is_conditional_failure(&e) { Ok(()) } else { Err(dynamo_error("UpdateItem(slot release)", e)) })
    }

    /// Holders and their lease expiries (ops and tests).
    pub async fn holders(&self, provider: Provider, org_id: &str) -> Result<HashMap<String, i64>> {
        let (pk, sk) = slot_key(provider, org_id);
        let item = crate::store::get_item(&self.db, &self.table, pk, sk).await?;
        Ok(holders_of(item.as_ref()).unwrap_or_default())
    }
}

/// The `holders` map of an item; `None` when the item has none yet.
pub(crate) fn holders_of(item: Option<&crate::store::Item>) -> Option<HashMap<String, i64>> {
    match item?.get("holders") {
        Some(AttributeValue::M(m)) => {
            Some(m.iter().map(|(k, v)| (k.clone(), v.as_n().ok().and_then(|x| x.parse().ok()).unwrap_or(0))).collect())
        }
        _ => None,
    }
}
