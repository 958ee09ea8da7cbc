//! The guard's per-org item write and Xero's app shares: what makes a permitted call cost less than
//! one DynamoDB call on average.
//!
//! # One item, one write per batch
//!
//! An org's rate limit, concurrency slots and breaker are one item (`pk = ORG#<provider>#<org>`,
//! `sk = RL`), shared by every tenant connected to the org. A worker that needs a place writes it
//! once for a batch of `k` places (see `limiter`, "Batches"), and the same conditional UpdateItem
//!
//! - reserves the places (`SET tat = tat + k·I` on a busy key, `tat = now + k·I` on an idle one,
//!   `ADD day_count k`),
//! - takes or renews the worker's slot (`SET holders.<worker> = last place + lease`, on condition
//!   that the worker holds it already or the map has room),
//! - adds the worker's held breaker counts (`ADD c_<bucket>, f_<bucket>`),
//! - refreshes the TTL (`expires_at`),
//! - on condition the breaker is closed, and returns the whole item, so the worker reads the
//!   breaker (its cache) for free.
//!
//! A failed condition returns the item as it was (`ReturnValuesOnConditionCheckFailure`), so the
//! worker sees why (queue past the horizon, day spent, slots full, breaker not closed, a new item)
//! without a read, and its next write is the right one.
//!
//! # Xero's app-wide limit as shares
//!
//! Xero also limits an app to 10,000 calls a minute across all tenants. A second GCRA key would
//! cost a write per call on an item every worker of every tenant shares. Instead an org holds a
//! *share* of the app budget: an entry `shares.<org> = until` in the app item
//! (`pk = APP#xero`, `sk = APP`), at most `floor(app limit / org limit)` entries, renewed every
//! half lease by whichever worker of the org notices first. The org's own GCRA keeps it to its
//! org limit, so the app sees at most `shares × org limit ≤ app limit` calls in any window. A
//! worker only reserves places up to the share's end (`app_share_until` in the org item, written
//! after the share itself, so it never claims more than the app item holds), and a share that ran
//! out may be taken by another org only one window (plus margin) later, so two orgs never use one
//! share inside the same window. The cost: an org holds a whole org limit of the app budget while
//! it is active, so at most 166 Xero orgs call at once; the 167th waits for a share.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::breaker::{BreakerSettings, Pending};
use super::limiter::{LimitKey, RateState};
use crate::store::{dynamo_error, n, s, Item};
use crate::Result;

/// How the write moves the rate-limit state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RatePlan {
    /// `tat` ahead of now: `tat += k·I`.
    Busy { k: u32 },
    /// `tat` behind now: `tat = now + k·I`.
    Idle { k: u32 },
    /// A new item or a day window to start: the state as computed, on condition it is unchanged.
    Exact { old: RateState, new: RateState },
}

/// What the write does with the worker's slot.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotPlan {
    /// No concurrency limit.
    None,
    /// Take or renew our entry, if we hold it or there is room.
    Renew,
    /// No map yet: create it with our entry.
    Init,
    /// Take the place of an expired entry (`victim` with lease `value`).
    Reclaim { victim: String, value: i64 },
}

pub struct OrgWrite<'a> {
    pub key: &'a LimitKey,
    pub breaker: &'a BreakerSettings,
    pub rate: RatePlan,
    pub slot: SlotPlan,
    pub holder: &'a str,
    /// Our slot entry's new lease end (µs).
    pub slot_until: i64,
    pub max_slots: u32,
    pub pending: &'a Pending,
    /// Write `app_share_until` (this worker just renewed the share).
    pub set_share_until: Option<i64>,
    /// Require `app_share_until` to cover this time (the batch's last place).
    pub need_share_until: Option<i64>,
    pub now: i64,
}

/// The item after the write, or as it was when a condition failed (`None`: no item, or the
/// emulator sent none back).
pub enum Written {
    Done(Item),
    Refused(Option<Item>),
}

fn refused_item(e: &SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>) -> Option<Option<Item>> {
    match e {
        SdkError::ServiceError(se) => match se.err() {
            UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
            // A document path into a map the item does not have yet (`holders.<id>` with no
            // `holders`): the caller reads the item and creates the map.
            other if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(other) == Some("ValidationException") => Some(None),
            _ => None,
        },
        _ => None,
    }
}

/// The org write described in the module docs.
pub async fn org_write(db: &aws_sdk_dynamodb::Client, table: &str, w: &OrgWrite<'_>) -> Result<Written> {
    let p = &w.key.params;
    let mut sets = vec!["expires_at = :ttl".to_string()];
    let mut adds: Vec<String> = Vec::new();
    let mut removes: Vec<String> = Vec::new();
    let mut conds = vec!["(attribute_not_exists(#st) OR #st = :closed)".to_string()];
    let mut names: HashMap<String, String> = HashMap::from([("#st".into(), "state".into())]);
    let mut values: HashMap<String, AttributeValue> =
        HashMap::from([(":ttl".into(), n(super::item_expiry(w.now))), (":closed".into(), s("closed"))]);
    let day_cond = |k: u32, values: &mut HashMap<String, AttributeValue>, conds: &mut Vec<String>, adds: &mut Vec<String>| {
        if let Some((limit, window)) = p.day {
            adds.push("day_count :k".into());
            values.insert(":k".into(), n(k));
            values.insert(":dlk".into(), n(limit as i64 - k as i64));
            // The batch's last place (at most horizon + (k-1)·I ahead) goes a margin before the window ends.
            values.insert(":ds".into(), n(w.now + p.horizon_us + p.tolerance_us + (k as i64 - 1) * p.interval_us - window + p.safety_us));
            conds.push("day_count <= :dlk AND day_start > :ds".into());
        }
    };
    match w.rate {
        RatePlan::Busy { k } => {
            sets.push("tat = tat + :ki".into());
            values.insert(":ki".into(), n(k as i64 * p.interval_us));
            values.insert(":now".into(), n(w.now));
            values.insert(":max".into(), n(w.now + p.horizon_us + p.tolerance_us));
            conds.push("tat BETWEEN :now AND :max".into());
            day_cond(k, &mut values, &mut conds, &mut adds);
        }
        RatePlan::Idle { k } => {
            sets.push("tat = :nt".into());
            values.insert(":nt".into(), n(w.now + k as i64 * p.interval_us));
            values.insert(":now".into(), n(w.now));
            conds.push("tat <= :now".into());
            day_cond(k, &mut values, &mut conds, &mut adds);
        }
        RatePlan::Exact { old, new } => {
            sets.push("tat = :tat, day_start = :nds, day_count = :ndc".into());
            values.insert(":tat".into(), n(new.tat_us));
            values.insert(":nds".into(), n(new.day_start_us));
            values.insert(":ndc".into(), n(new.day_count));
            if old.exists {
                values.insert(":otat".into(), n(old.tat_us));
                values.insert(":ods".into(), n(old.day_start_us));
                values.insert(":odc".into(), n(old.day_count));
                // A key written only by the fast paths may lack the day attributes (read as 0).
                let or_missing = |a: &str, v: i64, ph: &str| {
                    if v == 0 {
                        format!("(attribute_not_exists({a}) OR {a} = {ph})")
                    } else {
                        format!("{a} = {ph}")
                    }
                };
                conds.push(format!(
                    "tat = :otat AND {} AND {}",
                    or_missing("day_start", old.day_start_us, ":ods"),
                    or_missing("day_count", old.day_count as i64, ":odc")
                ));
            } else {
                conds.push("attribute_not_exists(tat)".into());
            }
        }
    }
    if w.max_slots > 0 {
        values.insert(":hexp".into(), n(w.slot_until));
        names.insert("#h".into(), w.holder.to_string());
        match &w.slot {
            SlotPlan::None => {}
            SlotPlan::Renew => {
                sets.push("holders.#h = :hexp".into());
                values.insert(":smax".into(), n(w.max_slots));
                // `size` only of a map that exists (moto fails the request otherwise; DynamoDB reads false).
                conds.push("(attribute_exists(holders.#h) OR (attribute_exists(holders) AND size(holders) < :smax))".into());
            }
            SlotPlan::Init => {
                values.remove(":hexp");
                names.remove("#h");
                sets.push("holders = :hm".into());
                values.insert(":hm".into(), AttributeValue::M(HashMap::from([(w.holder.to_string(), n(w.slot_until))])));
                conds.push("attribute_not_exists(holders)".into());
            }
            SlotPlan::Reclaim { victim, value } => {
                sets.push("holders.#h = :hexp".into());
                removes.push("holders.#v".into());
                names.insert("#v".into(), victim.clone());
                values.insert(":vv".into(), n(*value));
                values.insert(":smax".into(), n(w.max_slots));
                // One out, one in: the map never grows past the limit.
                conds.push("holders.#v = :vv AND (attribute_exists(holders.#h) OR size(holders) <= :smax)".into());
            }
        }
    }
    let counts = w.pending.clause(w.now, w.breaker);
    adds.extend(counts.adds);
    removes.extend(counts.removes);
    values.extend(counts.values);
    if let Some(u) = w.set_share_until {
        sets.push("app_share_until = :asu".into());
        values.insert(":asu".into(), n(u));
    } else if let Some(need) = w.need_share_until {
        conds.push("app_share_until >= :need".into());
        values.insert(":need".into(), n(need));
    }
    let mut expr = format!("SET {}", sets.join(", "));
    if !adds.is_empty() {
        expr.push_str(&format!(" ADD {}", adds.join(", ")));
    }
    if !removes.is_empty() {
        expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let r = db
        .update_item()
        .table_name(table)
        .key("pk", s(&w.key.pk))
        .key("sk", s(&w.key.sk))
        .update_expression(expr)
        .condition_expression(conds.join(" AND "))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match r {
        Ok(out) => Ok(Written::Done(out.attributes.unwrap_or_default())),
        Err(e) => match refused_item(&e) {
            Some(item) => Ok(Written::Refused(item)),
            None => Err(dynamo_error("UpdateItem(org lane)", e)),
        },
    }
}

/// The app item of a provider: its breaker and (Xero) the app shares.
pub fn app_item_key(provider: crate::Provider) -> (String, String) {
    (format!("APP#{}", provider.as_str()), "APP".to_string())
}

/// What a share write found.
pub enum ShareWritten {
    /// Held until the given time; the app item as it is now.
    Held(Item),
    Refused(Option<Item>),
}

/// Takes or renews an org's share (`SlotPlan` as for slots, on the `shares` map), adding the
/// provider breaker's held counts in the same write.
#[allow(clippy::too_many_arguments)]
pub async fn share_write(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    provider: crate::Provider,
    share: &str,
    until: i64,
    max: u32,
    plan: &SlotPlan,
    pending: &Pending,
    breaker: &BreakerSettings,
    now: i64,
) -> Result<ShareWritten> {
    let (pk, sk) = app_item_key(provider);
    let mut sets = vec!["expires_at = :ttl".to_string()];
    let mut removes: Vec<String> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut values: HashMap<String, AttributeValue> = HashMap::from([(":ttl".into(), n(super::item_expiry(now)))]);
    let cond: String = match plan {
        SlotPlan::Init => {
            sets.push("shares = :m".into());
            values.insert(":m".into(), AttributeValue::M(HashMap::from([(share.to_string(), n(until))])));
            "attribute_not_exists(shares)".into()
        }
        SlotPlan::Reclaim { victim, value } => {
            sets.push("shares.#o = :u".into());
            names.insert("#o".into(), share.to_string());
            names.insert("#v".into(), victim.clone());
            values.insert(":u".into(), n(until));
            values.insert(":vv".into(), n(*value));
            removes.push("shares.#v".into());
            // One out, one in: the map does not grow (a map left larger by a lowered limit only shrinks).
            "shares.#v = :vv".into()
        }
        SlotPlan::Renew | SlotPlan::None => {
            sets.push("shares.#o = :u".into());
            names.insert("#o".into(), share.to_string());
            values.insert(":u".into(), n(until));
            values.insert(":max".into(), n(max));
            "attribute_exists(shares.#o) OR (attribute_exists(shares) AND size(shares) < :max)".into()
        }
    };
    let counts = pending.clause(now, breaker);
    values.extend(counts.values);
    removes.extend(counts.removes);
    let mut expr = format!("SET {}", sets.join(", "));
    if !counts.adds.is_empty() {
        expr.push_str(&format!(" ADD {}", counts.adds.join(", ")));
    }
    if !removes.is_empty() {
        expr.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    let r = db
        .update_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .update_expression(expr)
        .condition_expression(cond)
        .set_expression_attribute_names(if names.is_empty() { None } else { Some(names) })
        .set_expression_attribute_values(Some(values))
        .return_values(ReturnValue::AllNew)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match r {
        Ok(out) => Ok(ShareWritten::Held(out.attributes.unwrap_or_default())),
        Err(e) => match refused_item(&e) {
            Some(item) => Ok(ShareWritten::Refused(item)),
            None => Err(dynamo_error("UpdateItem(app share)", e)),
        },
    }
}

/// The `shares` map of an app item; `None` when it has none yet.
pub fn shares_of(item: Option<&Item>) -> Option<HashMap<String, i64>> {
    match item?.get("shares") {
        Some(AttributeValue::M(m)) => {
            Some(m.iter().map(|(k, v)| (k.clone(), v.as_n().ok().and_then(|x| x.parse().ok()).unwrap_or(0))).collect())
        }
        _ => None,
    }
}

/// Gives our slot back (lazy release at the end of a job) and hands back the unused tail of our
/// last batch: `tat` moves back by the unused places on condition nobody reserved after them (their
/// daily counts go back separately, `Limiter::refund_days`). Two writes, so one's condition cannot
/// stop the other.
#[allow(clippy::too_many_arguments)]
pub async fn release(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &LimitKey,
    holder: Option<(&str, i64)>,
    unused: u32,
    tail_end: i64,
    now: i64,
    cost: &mut super::Cost,
) -> Result<()> {
    let p = &key.params;
    let ttl = n(super::item_expiry(now));
    let mut reqs = Vec::new();
    if let Some((h, v)) = holder {
        reqs.push(
            db.update_item()
                .update_expression("SET expires_at = :ttl REMOVE holders.#h")
                .condition_expression("holders.#h = :hv")
                .expression_attribute_names("#h", h)
                .expression_attribute_values(":hv", n(v))
                .expression_attribute_values(":ttl", ttl.clone()),
        );
    }
    if unused > 0 && tail_end > now {
        reqs.push(
            db.update_item()
                .update_expression("SET tat = :back, expires_at = :ttl")
                .condition_expression("tat = :end")
                .expression_attribute_values(":back", n(tail_end - unused as i64 * p.interval_us))
                .expression_attribute_values(":end", n(tail_end))
                .expression_attribute_values(":ttl", ttl.clone()),
        );
    }
    for r in reqs {
        cost.dynamo_calls += 1;
        match r.table_name(table).key("pk", s(&key.pk)).key("sk", s(&key.sk)).send().await {
            Ok(_) => {}
            // Someone reserved after us or reclaimed the slot: nothing of ours to give back.
            Err(e) if crate::store::is_conditional_failure(&e) => {}
            Err(e) => return Err(dynamo_error("UpdateItem(org lane release)", e)),
        }
    }
    Ok(())
}
