//! Shared rate limits per provider and provider org, kept in the resilience table.
//!
//! # The maths (GCRA)
//!
//! A limit of `L` calls per window `W` is enforced with the generic cell rate algorithm: one number
//! per limit key, the *theoretical arrival time* `tat`. With emission interval `I` and burst `B`
//! (tolerance `τ = (B-1)·I`), a call asked for at time `now` may go at
//!
//! ```text
//! go  = max(now, tat - τ)          (now when the key is idle)
//! tat' = max(tat, now) + I
//! ```
//!
//! Every reservation pushes `tat` forward by at least `I`, and `tat' ≥ go + I`, so for any calls
//! `j < k` in write order `go_k ≥ go_j + (k-j)·I - τ` whatever clocks the workers had. Hence any
//! window of length `W` holds fewer than `B + W/I` calls. We pick
//!
//! ```text
//! I = (W + s) / (L - B + 1)
//! ```
//!
//! with a safety margin `s` (network jitter between our clock and the provider's arrival), which
//! gives at most `L` calls in *any* window of length `W + s`: never more than the limit, under any
//! interleaving of workers (property-tested in `tests::`). With `B = 1` the steady rate is
//! `L / (W + s)`, i.e. `W/(W+s)` of the budget (99 % for a minute with a 0.6 s margin).
//!
//! Callers do not poll: a call whose `go` lies within `horizon` of now *reserves* its place (writes
//! `tat'`) and sleeps until `go`. Neither common case needs a read first: on a busy key
//! (`tat ≥ now`) `SET tat = tat + I` on condition `tat BETWEEN now AND now + horizon + τ`; on an idle
//! key `SET tat = now + I` on condition `tat ≤ now`. The one that worked last time is tried
//! first, so a permitted call costs one conditional UpdateItem. Otherwise it reads the item: too far
//! ahead (or a spent day) answers `Wait`; a new key or a day window to reset is written in full on
//! condition that the item is unchanged; anything else goes back to the increment, which workers
//! reserving at the same moment cannot make fail.
//!
//! # Daily limits
//!
//! A daily limit (Xero 5,000 per organisation, Zoho's plan limit per org) is a counter in the same item,
//! in a window anchored at its first call like the providers' (the sandbox's; the real providers'
//! exact reset is unconfirmed), so the one UpdateItem also does `ADD day_count 1` on condition
//! `day_count < L`. A window starts when its first call goes and counts only calls that go at least
//! the safety margin before its end; it resets only once it is over by the margin and every reserved
//! call has gone. So no call of ours lands in the provider's next window uncounted. A spent
//! day answers `Wait` until the reset: the org's work is parked rather than retried every minute.
//! One gap, old as the single-place limiter and found by the batch proptest: if the *first* place
//! of a window is never used (dropped, or its worker died), the provider's window starts at the
//! first call that does arrive, later than ours, so calls early in our next window can land in its
//! previous one. Unused places get their daily count back but cannot move the anchor; the
//! property is tested with every place used.
//!
//! # Keys
//!
//! Per provider org, not per tenant: `pk = ORG#<provider>#<org>`, `sk = RL` (minute GCRA and day
//! counter; the org's slots and breaker share the item, see `lane`). The providers count calls per
//! org (and app), so every tenant connected to one org draws on the one item: two tenants on one
//! Xero organisation get one 60-a-minute budget between them, not one each. Xero's app-wide limit
//! is kept as shares in the app item (`lane`), not as a second GCRA key.
//!
//! # Batches
//!
//! A worker that calls an org back to back may reserve `k` places in one write (`tat += k·I`,
//! `day_count += k`). That is exactly `k` reservations made at the same instant, one after another,
//! so the bound above holds unchanged (see [`decide_batch`] and the proptest that interleaves
//! batches with single calls and leaves places unused). A place is used only at its own time
//! (within `s/2`); one the worker cannot keep is dropped, never used late. An unused place was
//! spent budget as far as the minute goes (it can only make the spacing wider); its daily count
//! is given back, and at the end of a job the unused tail is handed back by moving `tat` back on
//! condition nobody reserved after it. `k` is small (at most 8) and adapts: one when the worker
//! does not come back within half an interval, else no more than fits in the horizon behind the
//! queue it found.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValue;

use crate::providers::Provider;
use crate::store::{dynamo_error, get_n_opt, is_conditional_failure, n, s, Item};
use crate::{Error, Result};

/// One limit's parameters, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateParams {
    /// Emission interval `I`.
    pub interval_us: i64,
    /// Burst tolerance `τ = (B-1)·I`.
    pub tolerance_us: i64,
    /// How far ahead a call may reserve its place (and sleep) instead of being told to wait.
    pub horizon_us: i64,
    /// Daily limit: (calls, window length), if any.
    pub day: Option<(u32, i64)>,
    /// Safety margin `s`: widens every window, and delays a day window's reset.
    pub safety_us: i64,
}

impl RateParams {
    /// `limit` calls per `window` with `burst` and `safety` as in the module docs.
    pub fn per_window(limit: u32, window: Duration, burst: u32, safety: Duration, horizon: Duration) -> RateParams {
        let limit = limit.max(1) as i64;
        let burst = (burst.max(1) as i64).min(limit);
        let w = window.as_micros() as i64 + safety.as_micros() as i64;
        // Round up: a shorter interval could fit L+1 calls in a window.
        let interval_us = ((w + (limit - burst + 1) - 1) / (limit - burst + 1)).max(1);
        RateParams {
            interval_us,
            tolerance_us: (burst - 1) * interval_us,
            horizon_us: horizon.as_micros() as i64,
            day: None,
            safety_us: safety.as_micros() as i64,
        }
    }

    pub fn with_day(mut self, limit: u32, window: Duration) -> RateParams {
        self.day = Some((limit, window.as_micros() as i64));
        self
    }
}

/// What the item holds. A missing item is `RateState::default()` with `exists = false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateState {
    pub tat_us: i64,
    pub day_start_us: i64,
    pub day_count: u32,
    pub exists: bool,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write `new` (on condition the item is unchanged), then go at `go_at_us`.
    Reserve { new: RateState, go_at_us: i64 },
    /// Ask again at `until_us`. `day` is true when the daily limit is spent.
    Wait { until_us: i64, day: bool },
}

/// The limiter's pure maths: given the stored state and the caller's clock, reserve or wait.
pub fn decide(state: RateState, now_us: i64, p: &RateParams) -> Step {
    let tat = if state.exists { state.tat_us } else { i64::MIN / 2 };
    let go = now_us.max(tat - p.tolerance_us);
    let new_tat = tat.max(now_us) + p.interval_us;
    let mut day_start = state.day_start_us;
    let mut day_count = state.day_count;
    let mut day_spent_wait = None;
    if let Some((limit, window)) = p.day {
        // Every reserved call has gone by `tat - I`; a window resets after that and its own end.
        let last_go = if state.exists { state.tat_us - p.interval_us } else { i64::MIN / 2 };
        let reset_at = (state.day_start_us + window).max(last_go) + p.safety_us;
        if !state.exists || state.day_count == 0 || now_us >= reset_at {
            // The window starts when its first call goes, as the provider's starts when it arrives.
            day_start = go;
            day_count = 0;
        }
        if day_count >= limit || go >= day_start + window - p.safety_us {
            // Spent; or a call so late in the window that, arriving up to the margin late, it
            // could fall into the provider's next window uncounted there: wait for the reset.
            day_spent_wait = Some(reset_at.max(now_us + 1));
        }
        day_count += 1;
    }
    if let Some(until_us) = day_spent_wait {
        return Step::Wait { until_us, day: true };
    }
    if go - now_us > p.horizon_us {
        return Step::Wait { until_us: go - p.horizon_us, day: false };
    }
    Step::Reserve { new: RateState { tat_us: new_tat, day_start_us: day_start, day_count, exists: true }, go_at_us: go }
}

/// `k` reservations made one after another at `now`: their places and the state after them, or
/// the wait when not even the first fits. Fewer places than asked when the horizon or the day
/// ends first.
pub fn decide_batch(state: RateState, now_us: i64, p: &RateParams, k: u32) -> std::result::Result<(Vec<i64>, RateState), Step> {
    let mut st = state;
    let mut places = Vec::new();
    for _ in 0..k.max(1) {
        match decide(st, now_us, p) {
            Step::Reserve { new, go_at_us } => {
                places.push(go_at_us);
                st = new;
            }
            w @ Step::Wait { .. } => {
                if places.is_empty() {
                    return Err(w);
                }
                break;
            }
        }
    }
    Ok((places, st))
}

/// The caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A place is reserved: call after this delay (zero when the key was idle).
    Go(Duration),
    /// Not now: ask again after this long. `day` marks a spent daily limit (park the org's work).
    Wait { after: Duration, day: bool },
}

/// Which limit keys one call of a provider for an org draws on.
#[derive(Debug, Clone)]
pub struct LimitKey {
    pub pk: String,
    pub sk: String,
    pub params: RateParams,
    /// For errors and logs: e.g. "xero:<org>:minute", "xero:app".
    pub scope: String,
}

/// The key of a provider org's item (rate limit, slots, breaker): the org's, whichever tenant calls.
pub fn org_item_key(provider: Provider, org_id: &str) -> (String, String) {
    (format!("ORG#{}#{}", provider.as_str(), org_id), "RL".to_string())
}

pub fn org_key(provider: Provider, org_id: &str, params: RateParams) -> LimitKey {
    let (pk, sk) = org_item_key(provider, org_id);
    LimitKey { pk, sk, params, scope: format!("{}:{}", provider.as_str(), org_id) }
}

/// How a limiter call went, for the benchmark and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub dynamo_calls: u32,
}

/// Shared GCRA limiter over one DynamoDB table.
#[derive(Clone, Debug)]
pub struct Limiter {
    db: aws_sdk_dynamodb::Client,
    table: String,
    /// Per key: whether the idle fast path worked last time, and the `tat` we wrote then (only a
    /// hint for which write to try first).
    idle_hint: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (bool, i64)>>>,
}

/// Conditional-write conflicts tolerated before answering "wait a moment".
const MAX_CONFLICTS: u32 = 8;

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub(crate) fn from_item(item: &Item) -> RateState {
    RateState {
        tat_us: get_n_opt(item, "tat").unwrap_or(0),
        day_start_us: get_n_opt(item, "day_start").unwrap_or(0),
        day_count: get_n_opt(item, "day_count").unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
        exists: item.contains_key("tat"),
    }
}

fn us(d: i64) -> Duration {
    Duration::from_micros(d.max(0) as u64)
}

impl Limiter {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Limiter { db, table: table.into(), idle_hint: Default::default() }
    }

    /// Reserves a place on `key` or says how long to wait. Adds its DynamoDB calls to `cost`.
    pub async fn acquire(&self, key: &LimitKey, cost: &mut Cost) -> Result<Decision> {
        let p = &key.params;
        let now = now_us();
        // The place is reserved on the clock as read here; the DynamoDB round trip comes off the sleep.
        let read_at = std::time::Instant::now();
        // Fast paths, one UpdateItem with no read: a busy key (`tat` ahead of now: `tat += I`) or
        // an idle one (`tat` behind now: `tat = now + I`). Which one was right last time for this
        // key is tried first, so a steady caller pays one call.
        // A `tat` we wrote that is still ahead means busy for sure; otherwise the path that worked last.
        let (last_idle, last_tat) = self.idle_hint.lock().ok().and_then(|h| h.get(&key.sk).copied()).unwrap_or((false, 0));
        let idle_first = last_idle && last_tat <= now;
        for idle in [idle_first, !idle_first] {
            cost.dynamo_calls += 1;
            match self.fast_path(key, now, idle).await? {
                Some(go) => {
                    if let Ok(mut h) = self.idle_hint.lock() {
                        if h.len() > 10_000 {
                            h.clear();
                        }
                        h.insert(key.sk.clone(), (idle, go + p.interval_us));
                    }
                    return Ok(Decision::Go(us(go - now).saturating_sub(read_at.elapsed())));
                }
                None => continue,
            }
        }
        // Slow path: read, decide, write on condition nothing changed.
        for _ in 0..MAX_CONFLICTS {
            cost.dynamo_calls += 1;
            let item = crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?;
            let state = item.as_ref().map(from_item).unwrap_or_default();
            let now = now_us();
            let read_at = std::time::Instant::now();
            match decide(state, now, p) {
                Step::Wait { until_us, day } => return Ok(Decision::Wait { after: us(until_us - now).max(Duration::from_millis(1)), day }),
                Step::Reserve { new, go_at_us } => {
                    cost.dynamo_calls += 1;
                    if state.exists && new.day_start_us == state.day_start_us {
                        // No window to reset: the increment, which other workers cannot make fail
                        // by reserving at the same time (an exact-state write would).
                        if let Some(go) = self.fast_path(key, now, state.tat_us <= now).await? {
                            return Ok(Decision::Go(us(go - now).saturating_sub(read_at.elapsed())));
                        }
                    } else if self.write_if_unchanged(key, state, new).await? {
                        return Ok(Decision::Go(us(go_at_us - now).saturating_sub(read_at.elapsed())));
                    }
                }
            }
        }
        // Heavy contention: every worker is racing for the same key; back off briefly.
        Ok(Decision::Wait { after: us(p.interval_us).max(Duration::from_millis(5)), day: false })
    }

    /// One conditional UpdateItem; `Some(go)` when it reserved a place.
    async fn fast_path(&self, key: &LimitKey, now: i64, idle: bool) -> Result<Option<i64>> {
        let p = &key.params;
        let mut upd = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .return_values(ReturnValue::UpdatedOld);
        let (set, mut cond) = if idle {
            // tat ≤ now: the call goes now (tat - τ ≤ now) and tat' = max(tat, now) + I = now + I.
            upd = upd.expression_attribute_values(":new", n(now + p.interval_us));
            // A key without a daily count is created the same way.
            (
                "SET tat = :new, expires_at = :ttl",
                if p.day.is_none() { "attribute_not_exists(tat) OR tat <= :now" } else { "tat <= :now" }.to_string(),
            )
        } else {
            upd = upd
                .expression_attribute_values(":i", n(p.interval_us))
                .expression_attribute_values(":max", n(now + p.horizon_us + p.tolerance_us));
            ("SET tat = tat + :i, expires_at = :ttl", "tat BETWEEN :now AND :max".to_string())
        };
        if let Some((limit, window)) = p.day {
            upd = upd
                .update_expression(format!("{set} ADD day_count :one"))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":dl", n(limit))
                // The reserved call (at most `horizon` ahead) must go a margin before the window ends.
                .expression_attribute_values(":ds", n(now + p.horizon_us + p.tolerance_us - window + p.safety_us));
            cond.push_str(" AND day_count < :dl AND day_start > :ds");
        } else {
            upd = upd.update_expression(set);
        }
        match upd.condition_expression(cond).send().await {
            Ok(out) => {
                if idle {
                    return Ok(Some(now));
                }
                let old = out.attributes.as_ref().and_then(|a| get_n_opt(a, "tat")).unwrap_or(now);
                Ok(Some(now.max(old - p.tolerance_us)))
            }
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(dynamo_error("UpdateItem(rate limit)", e)),
        }
    }

    async fn write_if_unchanged(&self, key: &LimitKey, old: RateState, new: RateState) -> Result<bool> {
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("SET tat = :tat, day_start = :ds, day_count = :dc, expires_at = :ttl")
            .expression_attribute_values(":ttl", n(super::item_expiry(now_us())))
            .expression_attribute_values(":tat", n(new.tat_us))
            .expression_attribute_values(":ds", n(new.day_start_us))
            .expression_attribute_values(":dc", n(new.day_count));
        req = if old.exists {
            req.condition_expression("tat = :otat AND day_start = :ods AND day_count = :odc")
                .expression_attribute_values(":otat", n(old.tat_us))
                .expression_attribute_values(":ods", n(old.day_start_us))
                .expression_attribute_values(":odc", n(old.day_count))
        } else {
            req.condition_expression("attribute_not_exists(tat)")
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(rate limit)", e)),
        }
    }

    /// Gives back the daily count of a place reserved at `reserved_at_us` (wall clock) that was
    /// never used, if its window is still the current one. The minute place is not given back.
    pub async fn refund_day(&self, key: &LimitKey, reserved_at_us: i64) -> Result<()> {
        self.refund_days(key, reserved_at_us, 1).await
    }

    /// [`Limiter::refund_day`] for `count` places reserved together.
    pub async fn refund_days(&self, key: &LimitKey, reserved_at_us: i64, count: u32) -> Result<()> {
        if key.params.day.is_none() || count == 0 {
            return Ok(());
        }
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("SET expires_at = :ttl ADD day_count :minus")
            .expression_attribute_values(":ttl", n(super::item_expiry(now_us())))
            .condition_expression("day_count >= :cnt AND day_start <= :at")
            .expression_attribute_values(":minus", n(-(count as i64)))
            .expression_attribute_values(":cnt", n(count))
            .expression_attribute_values(":at", n(reserved_at_us + key.params.horizon_us))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(rate refund)", e)),
        }
    }

    /// The provider said 429: nobody calls on `key` before `now + wait`. With `day` the daily
    /// counter is marked spent too, so the org stays parked until the window's reset.
    pub async fn penalise(&self, key: &LimitKey, wait: Duration, day: bool) -> Result<()> {
        let until = now_us() + wait.as_micros() as i64;
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":ttl", n(super::item_expiry(now_us())));
        if day {
            if let Some((limit, _)) = key.params.day {
                // A spent day with no window yet starts one now.
                req = req
                    .update_expression("SET tat = :until, day_count = :dl, day_start = if_not_exists(day_start, :now), expires_at = :ttl")
                    .expression_attribute_values(":dl", n(limit))
                    .expression_attribute_values(":now", n(now_us()));
            } else {
                req = req.update_expression("SET tat = :until, expires_at = :ttl");
            }
        } else {
            req = req.update_expression("SET tat = :until, expires_at = :ttl");
        }
        // Only ever moves tat forward; a later penalty already in place wins.
        match req.condition_expression("attribute_not_exists(tat) OR tat < :until").send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(rate penalty)", e)),
        }
    }

    /// The stored state of a key (ops and tests).
    pub async fn state(&self, key: &LimitKey) -> Result<RateState> {
        let item = crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?;
        Ok(item.as_ref().map(from_item).unwrap_or_default())
    }
}

/// A `Wait` as the error a queue consumer understands (delay the message by `retry_after`).
pub fn wait_error(scope: &str, after: Duration, day: bool) -> Error {
    Error::RateLimited { scope: if day { format!("{scope}:day") } else { scope.to_string() }, retry_after: after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(limit: u32) -> RateParams {
        RateParams::per_window(limit, Duration::from_secs(60), 1, Duration::from_millis(600), Duration::from_secs(5))
    }

    #[test]
    fn interval_covers_the_window_plus_margin() {
        let p = minute(60);
        assert_eq!(p.interval_us, 1_010_000);
        assert_eq!(p.tolerance_us, 0);
        let p = RateParams::per_window(500, Duration::from_secs(60), 10, Duration::ZERO, Duration::ZERO);
        // 491 intervals after the burst of 10 fill the minute.
        assert_eq!(p.interval_us, (60_000_000 + 490) / 491);
        assert_eq!(p.tolerance_us, 9 * p.interval_us);
    }

    #[test]
    fn idle_key_goes_now_and_busy_key_reserves_ahead() {
        let p = minute(60);
        let now = 1_000_000_000;
        let Step::Reserve { new, go_at_us } = decide(RateState::default(), now, &p) else { panic!() };
        assert_eq!(go_at_us, now);
        assert_eq!(new.tat_us, now + p.interval_us);
        let Step::Reserve { new: n2, go_at_us: g2 } = decide(new, now, &p) else { panic!() };
        assert_eq!(g2, now + p.interval_us);
        assert_eq!(n2.tat_us, now + 2 * p.interval_us);
    }

    #[test]
    fn too_far_ahead_waits_until_within_the_horizon() {
        let p = minute(60);
        let now = 1_000_000_000;
        let state = RateState { tat_us: now + 10_000_000, exists: true, ..Default::default() };
        assert_eq!(decide(state, now, &p), Step::Wait { until_us: now + 10_000_000 - p.horizon_us, day: false });
    }

    #[test]
    fn a_spent_day_waits_for_the_reset_not_a_minute() {
        let day = Duration::from_secs(86_400);
        let p = minute(60).with_day(2, day);
        let now = 1_000_000_000_000;
        let mut st = RateState::default();
        let mut t = now;
        for _ in 0..2 {
            let Step::Reserve { new, .. } = decide(st, t, &p) else { panic!() };
            st = new;
            t += 2_000_000;
        }
        match decide(st, t, &p) {
            Step::Wait { until_us, day: true } => assert!(until_us >= now + day.as_micros() as i64, "waits a day: {until_us}"),
            other => panic!("{other:?}"),
        }
        // After the reset (plus margin) the day starts over.
        let later = now + day.as_micros() as i64 + p.safety_us;
        assert!(matches!(decide(st, later, &p), Step::Reserve { new: RateState { day_count: 1, .. }, .. }));
    }

    use proptest::prelude::*;

    /// Replays requests in write order: (worker, time advance in µs). Each worker's clock is off by
    /// its skew; each call reaches the provider up to `jitter` late. Returns the arrival times.
    fn simulate(p: &RateParams, skews: &[i64], jitters: &[i64], steps: &[(usize, i64)]) -> Vec<i64> {
        let mut state = RateState::default();
        let mut t = 1_700_000_000_000_000i64;
        let mut arrivals = Vec::new();
        for (i, (w, advance)) in steps.iter().enumerate() {
            t += advance;
            let skew = skews[w % skews.len()];
            if let Step::Reserve { new, go_at_us } = decide(state, t + skew, p) {
                state = new;
                // The worker sleeps until go_at on its own clock: real time go_at - skew.
                arrivals.push(go_at_us - skew + jitters[i % jitters.len()]);
            }
        }
        arrivals.sort_unstable();
        arrivals
    }

    /// As [`simulate`], with batches: each step reserves `k` places in one write (`decide_batch`)
    /// and the worker uses only those its mask picks (the rest are left unused, as a worker that
    /// stops or comes back late leaves them). Single reservations are batches of one.
    fn simulate_batches(p: &RateParams, skews: &[i64], jitters: &[i64], steps: &[(usize, i64, u32, u8)]) -> Vec<i64> {
        let mut state = RateState::default();
        let mut t = 1_700_000_000_000_000i64;
        let mut arrivals = Vec::new();
        let mut n = 0usize;
        for (w, advance, k, mask) in steps {
            t += advance;
            let skew = skews[w % skews.len()];
            if let Ok((places, new)) = decide_batch(state, t + skew, p, *k) {
                state = new;
                for (j, go_at_us) in places.into_iter().enumerate() {
                    if mask & (1 << j) != 0 {
                        arrivals.push(go_at_us - skew + jitters[n % jitters.len()]);
                        n += 1;
                    }
                }
            }
        }
        arrivals.sort_unstable();
        arrivals
    }

    #[test]
    fn a_batch_is_k_reservations_in_a_row() {
        let p = minute(60);
        let now = 1_000_000_000;
        let (places, st) = decide_batch(RateState::default(), now, &p, 4).unwrap();
        assert_eq!(places, vec![now, now + p.interval_us, now + 2 * p.interval_us, now + 3 * p.interval_us]);
        assert_eq!(st.tat_us, now + 4 * p.interval_us);
        // A day with 2 calls left gives a batch of 2, not 4.
        let p = minute(60).with_day(2, Duration::from_secs(86_400));
        let (places, st) = decide_batch(RateState::default(), now, &p, 4).unwrap();
        assert_eq!((places.len(), st.day_count), (2, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

        /// Batched reservations (any sizes, interleaved with single ones from other workers, any
        /// places left unused) never put more than the limit in any window.
        #[test]
        fn batched_reservations_never_exceed_the_limit_in_any_window(
            limit in 1u32..120,
            burst in 1u32..6,
            window_ms in 100u64..60_000,
            safety_ms in 0u64..1_000,
            horizon_ms in 0u64..10_000,
            skews in proptest::collection::vec(0i64..1_000, 1..10),
            jitters in proptest::collection::vec(0i64..1_000, 1..20),
            steps in proptest::collection::vec(
                (0usize..10, prop_oneof![Just(0i64), 0i64..50_000, 0i64..5_000_000], 1u32..9, any::<u8>()),
                1..300,
            ),
        ) {
            let p = RateParams::per_window(limit, Duration::from_millis(window_ms), burst, Duration::from_millis(safety_ms), Duration::from_millis(horizon_ms));
            let spread = safety_ms as i64 * 1000;
            let skews: Vec<i64> = skews.iter().map(|s| s * spread / 2 / 1000).collect();
            let jitters: Vec<i64> = jitters.iter().map(|j| j * spread / 2 / 1000).collect();
            let arrivals = simulate_batches(&p, &skews, &jitters, &steps);
            let w = window_ms as i64 * 1000;
            let mut lo = 0;
            for hi in 0..arrivals.len() {
                while arrivals[hi] - arrivals[lo] >= w { lo += 1; }
                prop_assert!(hi - lo < limit as usize, "{} calls within {window_ms} ms (limit {limit})", hi - lo + 1);
            }
        }

        /// Batches never overflow a provider day window either, when their places are used. (A
        /// window whose *first* place goes unused starts later at the provider than here, with or
        /// without batches: see "Daily limits" in the module docs.)
        #[test]
        fn batched_reservations_never_overflow_a_provider_day(
            day_limit in 1u32..40,
            day_ms in 1_000u64..20_000,
            safety_ms in 0u64..500,
            jitters in proptest::collection::vec(0i64..1_000, 1..20),
            steps in proptest::collection::vec((0usize..4, prop_oneof![Just(0i64), 0i64..200_000, 0i64..3_000_000], 1u32..9, Just(u8::MAX)), 1..300),
        ) {
            let p = RateParams::per_window(1000, Duration::from_millis(100), 1, Duration::from_millis(safety_ms), Duration::from_millis(500))
                .with_day(day_limit, Duration::from_millis(day_ms));
            let jitters: Vec<i64> = jitters.iter().map(|j| j * safety_ms as i64).collect();
            let arrivals = simulate_batches(&p, &[0], &jitters, &steps);
            let d = day_ms as i64 * 1000;
            let (mut start, mut count) = (None::<i64>, 0u32);
            for a in arrivals {
                if start.is_none_or(|s| a - s >= d) { start = Some(a); count = 0; }
                count += 1;
                prop_assert!(count <= day_limit, "{count} calls in one provider day (limit {day_limit})");
            }
        }

        /// Never more than the limit in any window, under any interleaving of workers whose clocks
        /// and network paths differ by less than the safety margin in all.
        #[test]
        fn never_more_than_the_limit_in_any_window(
            limit in 1u32..120,
            burst in 1u32..6,
            window_ms in 100u64..60_000,
            safety_ms in 0u64..1_000,
            horizon_ms in 0u64..10_000,
            skews in proptest::collection::vec(0i64..1_000, 1..10),
            jitters in proptest::collection::vec(0i64..1_000, 1..20),
            steps in proptest::collection::vec((0usize..10, prop_oneof![Just(0i64), 0i64..50_000, 0i64..5_000_000]), 1..600),
        ) {
            let p = RateParams::per_window(limit, Duration::from_millis(window_ms), burst, Duration::from_millis(safety_ms), Duration::from_millis(horizon_ms));
            let spread = safety_ms as i64 * 1000;
            // Skew spread plus jitter within the margin.
            let skews: Vec<i64> = skews.iter().map(|s| s * spread / 2 / 1000).collect();
            let jitters: Vec<i64> = jitters.iter().map(|j| j * spread / 2 / 1000).collect();
            let arrivals = simulate(&p, &skews, &jitters, &steps);
            let w = window_ms as i64 * 1000;
            let mut lo = 0;
            for hi in 0..arrivals.len() {
                while arrivals[hi] - arrivals[lo] >= w { lo += 1; }
                prop_assert!(hi - lo < limit as usize, "{} calls within {window_ms} ms (limit {limit})", hi - lo + 1);
            }
        }

        /// A daily limit never lets the provider's own day window (anchored at its first call, as
        /// the sandbox does) see more than the limit.
        #[test]
        fn a_provider_day_window_never_overflows(
            day_limit in 1u32..40,
            day_ms in 1_000u64..20_000,
            safety_ms in 0u64..500,
            jitters in proptest::collection::vec(0i64..1_000, 1..20),
            steps in proptest::collection::vec((0usize..4, prop_oneof![Just(0i64), 0i64..200_000, 0i64..3_000_000]), 1..400),
        ) {
            let p = RateParams::per_window(1000, Duration::from_millis(100), 1, Duration::from_millis(safety_ms), Duration::from_millis(500))
                .with_day(day_limit, Duration::from_millis(day_ms));
            let jitters: Vec<i64> = jitters.iter().map(|j| j * safety_ms as i64).collect();
            let arrivals = simulate(&p, &[0], &jitters, &steps);
            let d = day_ms as i64 * 1000;
            let (mut start, mut count) = (None::<i64>, 0u32);
            for a in arrivals {
                if start.is_none_or(|s| a - s >= d) { start = Some(a); count = 0; }
                count += 1;
                prop_assert!(count <= day_limit, "{count} calls in one provider day (limit {day_limit})");
            }
        }
    }
}
