//! Circuit breakers shared by every worker: one per provider org and one per provider.
//!
//! States: closed (calls go, outcomes are counted), open (calls are refused until `open_until`),
//! half-open (a fixed number of probe calls go; `close_after` successes close it, one failure opens
//! it again). Outcomes are counted in time buckets (`c_<bucket>` calls, `f_<bucket>` failures, atomic
//! `ADD`s); the sliding window is the last `buckets` buckets. A closed breaker opens when the window
//! holds at least `min_calls` calls and the failure rate reaches `failure_rate`.
//!
//! Every transition is one conditional write on the breaker's generation `gen`, so of all workers
//! that see the threshold crossed exactly one performs (and reports) the transition. Probes are
//! handed out by `ADD probes 1` on condition `probes < max`, so exactly `max` probes go. A probe whose
//! worker died leaves the breaker half-open: after `probe_lease` the next caller starts a new round.
//!
//! Only 5xx and timeouts count as failures. 4xx answers are the provider working (successes for the
//! breaker); a 429 is the rate limiter's business and is not counted at all.
//!
//! Keys: the org breaker lives in the org's item (`pk = ORG#<provider>#<org>`, `sk = RL`, beside the
//! rate limit and the slots), one per provider org whichever tenant calls: failures seen through
//! one tenant's connection open it for every tenant connected to that org so the guard's one batched write per org reserves places,
//! renews its slot, adds its outcome counts and reads the breaker back. The provider breaker lives in
//! the provider's app item (`pk = APP#<provider>`, `sk = APP`, beside Xero's app shares).
//!
//! # Batched counts and cached state
//!
//! The guard keeps each breaker's state in process for `cache_for` (at most half the open time, so
//! a cached "closed" never outlives an opening into the half-open round: the probes stay exactly
//! `half_open_probes` across workers) and adds its outcomes to the shared counters in batches: the
//! successes ride on its next write to the item, a failure is written at once with every count
//! still held, so the window the opening decision reads is short only of other workers' latest
//! successes (at most one batch each). That errs towards opening early, never late. Open and
//! half-open transitions and probes are conditional writes as before, never cached.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValue;

use crate::providers::Provider;
use crate::store::{dynamo_error, get_n_opt, get_s_opt, is_conditional_failure, n, s, Item};
use crate::Result;

use super::limiter::{now_us, Cost};

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Sliding window length.
    pub window: Duration,
    /// Buckets the window is cut into.
    pub buckets: u32,
    /// Failure share (0..=1) that opens the breaker.
    pub failure_rate: f64,
    /// Calls in the window before the rate counts.
    pub min_calls: u32,
    pub open_for: Duration,
    /// Probe calls let through when half-open.
    pub half_open_probes: u32,
    /// Probe successes that close it.
    pub close_after: u32,
    /// A probe not concluded within this is presumed dead and a new round starts.
    pub probe_lease: Duration,
    /// How long a worker trusts the state it last read (capped at half of `open_for`).
    pub cache_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window: Duration::from_secs(60),
            buckets: 6,
            failure_rate: 0.5,
            min_calls: 10,
            open_for: Duration::from_secs(30),
            half_open_probes: 3,
            close_after: 2,
            probe_lease: Duration::from_secs(60),
            // Long enough to cover a batch's places behind a horizon's queue (a refresh per
            // batch would cost more than the batch saves), and capped at half the open time.
            cache_for: Duration::from_secs(10),
        }
    }
}

impl BreakerSettings {
    /// How long a cached state may be used: `cache_for`, but never half the open time or more.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_for.min(self.open_for / 2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn parse(s: Option<&str>) -> BreakerState {
        match s {
            Some("open") => BreakerState::Open,
            Some("half_open") => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// Which breaker: an org's, or the provider's as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerKey {
    pub pk: String,
    pub sk: String,
    pub provider: Provider,
    /// The org, for an org breaker.
    pub org: Option<String>,
    /// The tenant a call through this key was made for: where the app event of a transition the
    /// call performs goes. Not part of the stored key (the breaker is the org's).
    pub tenant: Option<String>,
}

impl BreakerKey {
    /// An org's breaker, shared by every tenant connected to the org.
    pub fn org(provider: Provider, org_id: &str) -> Self {
        let (pk, sk) = super::limiter::org_item_key(provider, org_id);
        BreakerKey { pk, sk, provider, org: Some(org_id.to_string()), tenant: None }
    }

    /// The same breaker, reporting its transitions to `tenant_id`.
    pub fn for_tenant(mut self, tenant_id: &str) -> Self {
        self.tenant = Some(tenant_id.to_string());
        self
    }

    pub fn provider(provider: Provider) -> Self {
        BreakerKey { pk: format!("APP#{}", provider.as_str()), sk: "APP".into(), provider, org: None, tenant: None }
    }

    pub fn scope(&self) -> String {
        match &self.org {
            Some(org) => format!("{}:{}", self.provider.as_str(), org),
            None => self.provider.as_str().to_string(),
        }
    }
}

/// A state change one worker performed. Exactly one worker sees each.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub key: BreakerKey,
    pub from: BreakerState,
    pub to: BreakerState,
    pub failures: u64,
    pub calls: u64,
}

/// What a stored breaker looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub gen: i64,
    pub open_until_us: i64,
    pub probes: i64,
    pub probe_ok: i64,
    pub probe_deadline_us: i64,
    pub calls: u64,
    pub failures: u64,
}

/// May the call go, and in which role.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Closed: go, and record the outcome.
    Go,
    /// Half-open: this call is one of the probes of generation `gen`.
    Probe { gen: i64 },
    /// Open (or every probe taken): do not call before `retry_after`.
    Refused { retry_after: Duration },
}

/// The outcome of a call as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Neither (429, our own errors): not counted.
    Ignored,
}

impl Outcome {
    pub fn of<T>(r: &crate::Result<T>) -> Outcome {
        use crate::Error::*;
        match r {
            Ok(_) => Outcome::Success,
            Err(ProviderTransient { .. } | ProviderTimeout { .. }) => Outcome::Failure,
            // The provider answered: 4xx, auth, not found, a permanent refusal.
            Err(ProviderPermanent { .. } | ProviderAuth { .. } | InvalidGrant { .. } | NotFound(_) | ConsentDenied { .. }) => {
                Outcome::Success
            }
            _ => Outcome::Ignored,
        }
    }
}

/// Outcomes a worker has seen but not yet added to the shared window: bucket → (calls, failures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending(std::collections::BTreeMap<i64, (u64, u64)>);

/// The update-expression pieces that add [`Pending`] counts to an item.
#[derive(Debug, Default)]
pub(crate) struct CountClause {
    pub adds: Vec<String>,
    pub removes: Vec<String>,
    pub values: Vec<(String, aws_sdk_dynamodb::types::AttributeValue)>,
}

impl Pending {
    pub fn add(&mut self, now_us: i64, st: &BreakerSettings, outcome: Outcome) {
        if outcome == Outcome::Ignored {
            return;
        }
        let e = self.0.entry(bucket_of(now_us, st)).or_default();
        e.0 += 1;
        e.1 += (outcome == Outcome::Failure) as u64;
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn failures(&self) -> u64 {
        self.0.values().map(|c| c.1).sum()
    }

    pub fn calls(&self) -> u64 {
        self.0.values().map(|c| c.0).sum()
    }

    /// Puts back counts whose write did not happen.
    pub fn merge(&mut self, other: Pending) {
        for (b, (c, f)) in other.0 {
            let e = self.0.entry(b).or_default();
            e.0 += c;
            e.1 += f;
        }
    }

    /// `ADD c_<b> :pc<i>, f_<b> :pf<i>` for the buckets still in the window, and `REMOVE` of the
    /// buckets that slid out of it, so the item stays small. Older counts are dropped: they no
    /// longer count for anything.
    pub(crate) fn clause(&self, now_us: i64, st: &BreakerSettings) -> CountClause {
        let b = bucket_of(now_us, st);
        let first = b - st.buckets as i64 + 1;
        let mut c = CountClause::default();
        for (i, (bucket, (calls, fails))) in self.0.iter().filter(|(k, _)| **k >= first && **k <= b).enumerate() {
            c.adds.push(format!("c_{bucket} :pc{i}"));
            c.adds.push(format!("f_{bucket} :pf{i}"));
            c.values.push((format!(":pc{i}"), n(*calls)));
            c.values.push((format!(":pf{i}"), n(*fails)));
        }
        if !c.adds.is_empty() {
            c.removes = (1..=st.buckets as i64).flat_map(|i| [format!("c_{}", first - i), format!("f_{}", first - i)]).collect();
        }
        c
    }
}

#[derive(Clone, Debug)]
pub struct Breakers {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

pub(crate) fn bucket_of(now_us: i64, st: &BreakerSettings) -> i64 {
    let len = (st.window.as_micros() as i64 / st.buckets.max(1) as i64).max(1);
    now_us.div_euclid(len)
}

pub(crate) fn snapshot(item: Option<&Item>, now_us: i64, st: &BreakerSettings) -> BreakerSnapshot {
    let Some(item) = item else {
        return BreakerSnapshot {
            state: BreakerState::Closed,
            gen: 0,
            open_until_us: 0,
            probes: 0,
            probe_ok: 0,
            probe_deadline_us: 0,
            calls: 0,
            failures: 0,
        };
    };
    let b = bucket_of(now_us, st);
    // Buckets before the last close do not count (a closed breaker starts with a clean window).
    let since = get_n_opt(item, "since_bucket").unwrap_or(i64::MIN);
    let first = (b - st.buckets as i64 + 1).max(since);
    let (mut calls, mut failures) = (0u64, 0u64);
    for k in first..=b {
        calls += get_n_opt(item, &format!("c_{k}")).unwrap_or(0).max(0) as u64;
        failures += get_n_opt(item, &format!("f_{k}")).unwrap_or(0).max(0) as u64;
    }
    BreakerSnapshot {
        state: BreakerState::parse(get_s_opt(item, "state").as_deref()),
        gen: get_n_opt(item, "gen").unwrap_or(0),
        open_until_us: get_n_opt(item, "open_until").unwrap_or(0),
        probes: get_n_opt(item, "probes").unwrap_or(0),
        probe_ok: get_n_opt(item, "probe_ok").unwrap_or(0),
        probe_deadline_us: get_n_opt(item, "probe_deadline").unwrap_or(0),
        calls,
        failures,
    }
}

/// The window's counter attributes, to clear them when a breaker closes.
fn window_attrs(now_us: i64, st: &BreakerSettings) -> String {
    let b = bucket_of(now_us, st);
    (0..st.buckets as i64).flat_map(|i| [format!("c_{}", b - i), format!("f_{}", b - i)]).collect::<Vec<_>>().join(", ")
}

fn us(d: i64) -> Duration {
    Duration::from_micros(d.max(0) as u64)
}

impl Breakers {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Breakers { db, table: table.into() }
    }

    pub async fn snapshot(&self, key: &BreakerKey, st: &BreakerSettings) -> Result<BreakerSnapshot> {
        let item = crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?;
        Ok(snapshot(item.as_ref(), now_us(), st))
    }

    /// Whether a call may go now. An expired open breaker turns half-open here (one worker does it
    /// and reports the transition).
    pub async fn admit(&self, key: &BreakerKey, st: &BreakerSettings, cost: &mut Cost) -> Result<(Admission, Option<Transition>)> {
        for _ in 0..6 {
            cost.dynamo_calls += 1;
            let item = crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?;
            let now = now_us();
            let snap = snapshot(item.as_ref(), now, st);
            match snap.state {
                BreakerState::Closed => return Ok((Admission::Go, None)),
                BreakerState::Open if now < snap.open_until_us => {
                    return Ok((Admission::Refused { retry_after: us(snap.open_until_us - now) }, None));
                }
                BreakerState::Open => {
                    // Open time is over: this caller starts the half-open round and is its first probe.
                    cost.dynamo_calls += 1;
                    if self.start_probe_round(key, st, snap.gen, now).await? {
                        let t =
                            Transition { key: key.clone(), from: BreakerState::Open, to: BreakerState::HalfOpen, failures: 0, calls: 0 };
                        log_transition(&t);
                        return Ok((Admission::Probe { gen: snap.gen + 1 }, Some(t)));
                    }
                }
                BreakerState::HalfOpen if now >= snap.probe_deadline_us => {
                    // The round's probes never concluded (their workers died): start a new round.
                    cost.dynamo_calls += 1;
                    if self.start_probe_round(key, st, snap.gen, now).await? {
                        return Ok((Admission::Probe { gen: snap.gen + 1 }, None));
                    }
                }
                BreakerState::HalfOpen => {
                    cost.dynamo_calls += 1;
                    let r = self
                        .db
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(&key.pk))
                        .key("sk", s(&key.sk))
                        .update_expression("SET expires_at = :ttl ADD probes :one")
                        .expression_attribute_values(":ttl", n(super::item_expiry(now)))
                        .condition_expression("#st = :half AND gen = :g AND probes < :max")
                        .expression_attribute_names("#st", "state")
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":half", s("half_open"))
                        .expression_attribute_values(":g", n(snap.gen))
                        .expression_attribute_values(":max", n(st.half_open_probes))
                        .send()
                        .await;
                    match r {
                        Ok(_) => return Ok((Admission::Probe { gen: snap.gen }, None)),
                        Err(e) if is_conditional_failure(&e) => {
                            if snap.probes >= st.half_open_probes as i64 {
                                // Every probe is out: come back when they should have concluded.
                                let wait = us(snap.probe_deadline_us - now).min(st.open_for).max(Duration::from_millis(100));
                                return Ok((Admission::Refused { retry_after: wait }, None));
                            }
                        }
                        Err(e) => return Err(dynamo_error("UpdateItem(breaker probe)", e)),
                    }
                }
            }
        }
        Ok((Admission::Refused { retry_after: Duration::from_millis(100) }, None))
    }

    async fn start_probe_round(&self, key: &BreakerKey, st: &BreakerSettings, gen: i64, now: i64) -> Result<bool> {
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("SET #st = :half, gen = :ng, probes = :one, probe_ok = :zero, probe_deadline = :pd, expires_at = :ttl")
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .condition_expression("gen = :g")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":half", s("half_open"))
            .expression_attribute_values(":ng", n(gen + 1))
            .expression_attribute_values(":g", n(gen))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pd", n(now + st.probe_lease.as_micros() as i64))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(breaker half-open)", e)),
        }
    }

    /// Records the outcome of an admitted call; returns the transition this worker performed.
    pub async fn record(
        &self,
        key: &BreakerKey,
        st: &BreakerSettings,
        admission: &Admission,
        outcome: Outcome,
        cost: &mut Cost,
    ) -> Result<Option<Transition>> {
        if outcome == Outcome::Ignored {
            return Ok(None);
        }
        match admission {
            Admission::Refused { .. } => Ok(None),
            Admission::Probe { gen } => self.record_probe(key, st, *gen, outcome, cost).await,
            Admission::Go => self.record_closed(key, st, outcome, cost).await,
        }
    }

    async fn record_closed(&self, key: &BreakerKey, st: &BreakerSettings, outcome: Outcome, cost: &mut Cost) -> Result<Option<Transition>> {
        let now = now_us();
        let b = bucket_of(now, st);
        let failed = outcome == Outcome::Failure;
        // Buckets that slid out of the window are dropped as we go, so the item stays small.
        let stale: Vec<String> = (1..=st.buckets as i64)
            .flat_map(|i| [format!("c_{}", b - st.buckets as i64 - i + 1), format!("f_{}", b - st.buckets as i64 - i + 1)])
            .collect();
        cost.dynamo_calls += 1;
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression(format!("SET expires_at = :ttl ADD c_{b} :one, f_{b} :f REMOVE {}", stale.join(", ")))
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":f", n(failed as u8))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| dynamo_error("UpdateItem(breaker count)", e))?;
        if !failed {
            return Ok(None);
        }
        let snap = snapshot(out.attributes.as_ref(), now, st);
        let tripped = snap.calls >= st.min_calls as u64 && (snap.failures as f64) >= st.failure_rate * snap.calls as f64;
        if snap.state != BreakerState::Closed || !tripped {
            return Ok(None);
        }
        cost.dynamo_calls += 1;
        if self.open(key, st, snap.gen, now, "closed").await? {
            let t = Transition {
                key: key.clone(),
                from: BreakerState::Closed,
                to: BreakerState::Open,
                failures: snap.failures,
                calls: snap.calls,
            };
            log_transition(&t);
            return Ok(Some(t));
        }
        Ok(None)
    }

    async fn record_probe(
        &self,
        key: &BreakerKey,
        st: &BreakerSettings,
        gen: i64,
        outcome: Outcome,
        cost: &mut Cost,
    ) -> Result<Option<Transition>> {
        let now = now_us();
        if outcome == Outcome::Failure {
            cost.dynamo_calls += 1;
            if self.open(key, st, gen, now, "half_open").await? {
                let t = Transition { key: key.clone(), from: BreakerState::HalfOpen, to: BreakerState::Open, failures: 1, calls: 1 };
                log_transition(&t);
                return Ok(Some(t));
            }
            return Ok(None);
        }
        cost.dynamo_calls += 1;
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("SET expires_at = :ttl ADD probe_ok :one")
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .condition_expression("#st = :half AND gen = :g")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":half", s("half_open"))
            .expression_attribute_values(":g", n(gen))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let ok = match r {
            Ok(out) => out.attributes.as_ref().and_then(|a| get_n_opt(a, "probe_ok")).unwrap_or(0),
            Err(e) if is_conditional_failure(&e) => return Ok(None),
            Err(e) => return Err(dynamo_error("UpdateItem(breaker probe result)", e)),
        };
        if ok < st.close_after as i64 {
            return Ok(None);
        }
        cost.dynamo_calls += 1;
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression(format!(
                "SET #st = :closed, gen = :ng, since_bucket = :sb, expires_at = :ttl REMOVE {}",
                window_attrs(now, st)
            ))
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .condition_expression("#st = :half AND gen = :g")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":half", s("half_open"))
            .expression_attribute_values(":g", n(gen))
            .expression_attribute_values(":ng", n(gen + 1))
            // The failures that opened it are history: the closed breaker counts from now on.
            .expression_attribute_values(":sb", n(bucket_of(now, st)))
            .send()
            .await;
        match r {
            Ok(_) => {
                let t =
                    Transition { key: key.clone(), from: BreakerState::HalfOpen, to: BreakerState::Closed, failures: 0, calls: ok as u64 };
                log_transition(&t);
                Ok(Some(t))
            }
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(dynamo_error("UpdateItem(breaker close)", e)),
        }
    }

    /// Adds a worker's held counts to the shared window in one UpdateItem and reads the breaker
    /// back (the read a cached state is refreshed with). When the counts include failures and the
    /// window has crossed the threshold, opens it (one worker does, on the generation).
    pub async fn flush(
        &self,
        key: &BreakerKey,
        st: &BreakerSettings,
        pending: &Pending,
        cost: &mut Cost,
    ) -> Result<(BreakerSnapshot, Option<Transition>)> {
        let now = now_us();
        let mut upd = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .expression_attribute_values(":ttl", n(super::item_expiry(now)));
        let counts = pending.clause(now, st);
        for (k, v) in &counts.values {
            upd = upd.expression_attribute_values(k.clone(), v.clone());
        }
        let mut expr = "SET expires_at = :ttl".to_string();
        if !counts.adds.is_empty() {
            expr.push_str(&format!(" ADD {}", counts.adds.join(", ")));
        }
        if !counts.removes.is_empty() {
            expr.push_str(&format!(" REMOVE {}", counts.removes.join(", ")));
        }
        cost.dynamo_calls += 1;
        let out = upd
            .update_expression(expr)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| dynamo_error("UpdateItem(breaker counts)", e))?;
        let snap = snapshot(out.attributes.as_ref(), now, st);
        let t = if pending.failures() > 0 { self.trip(key, st, &snap, now, cost).await? } else { None };
        Ok((snap, t))
    }

    /// Opens a closed breaker whose window (as just read back from a write that added failures)
    /// has crossed the threshold. Exactly one of the workers that see it does.
    pub(crate) async fn trip(
        &self,
        key: &BreakerKey,
        st: &BreakerSettings,
        snap: &BreakerSnapshot,
        now: i64,
        cost: &mut Cost,
    ) -> Result<Option<Transition>> {
        let tripped = snap.calls >= st.min_calls as u64 && (snap.failures as f64) >= st.failure_rate * snap.calls as f64;
        if snap.state != BreakerState::Closed || !tripped || snap.failures == 0 {
            return Ok(None);
        }
        cost.dynamo_calls += 1;
        if self.open(key, st, snap.gen, now, "closed").await? {
            let t = Transition {
                key: key.clone(),
                from: BreakerState::Closed,
                to: BreakerState::Open,
                failures: snap.failures,
                calls: snap.calls,
            };
            log_transition(&t);
            return Ok(Some(t));
        }
        Ok(None)
    }

    async fn open(&self, key: &BreakerKey, st: &BreakerSettings, gen: i64, now: i64, from: &str) -> Result<bool> {
        let cond = if gen == 0 {
            "attribute_not_exists(gen) OR (gen = :g AND (attribute_not_exists(#st) OR #st = :from))"
        } else {
            "gen = :g AND (attribute_not_exists(#st) OR #st = :from)"
        };
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("SET #st = :open, gen = :ng, open_until = :until, probes = :zero, probe_ok = :zero, expires_at = :ttl")
            .expression_attribute_values(":ttl", n(super::item_expiry(now)))
            .condition_expression(cond)
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":g", n(gen))
            .expression_attribute_values(":ng", n(gen + 1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":until", n(now + st.open_for.as_micros() as i64))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(breaker open)", e)),
        }
    }

    /// Gives back a probe that never called (its call was refused by the rate limiter or slots),
    /// so the half-open round does not wait for the probe lease.
    pub async fn release_probe(&self, key: &BreakerKey, admission: &Admission) -> Result<()> {
        let Admission::Probe { gen } = admission else { return Ok(()) };
        let r = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression("ADD probes :minus")
            .condition_expression("#st = :half AND gen = :g AND probes > :zero")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":half", s("half_open"))
            .expression_attribute_values(":g", n(*gen))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(breaker probe release)", e)),
        }
    }

    /// Closes a breaker by hand (ops): clean window, new generation.
    pub async fn reset(&self, key: &BreakerKey, st: &BreakerSettings) -> Result<()> {
        self.db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .update_expression(format!(
                "SET #st = :closed, since_bucket = :sb, probes = :zero, probe_ok = :zero, expires_at = :ttl REMOVE {} ADD gen :one",
                window_attrs(now_us(), st)
            ))
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":closed", s("closed"))
            .expression_attribute_values(":sb", n(bucket_of(now_us(), st)))
            .expression_attribute_values(":ttl", n(super::item_expiry(now_us())))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| dynamo_error("UpdateItem(breaker reset)", e))?;
        tracing::warn!(provider = %key.provider, scope = %key.scope(), "circuit breaker reset by hand");
        Ok(())
    }
}

fn log_transition(t: &Transition) {
    tracing::warn!(
        provider = %t.key.provider,
        tenant_id = t.key.tenant.as_deref().unwrap_or(""),
        org_id = t.key.org.as_deref().unwrap_or(""),
        breaker = %t.key.scope(),
        from = t.from.as_str(),
        to = t.to.as_str(),
        failures = t.failures,
        calls = t.calls,
        "circuit breaker transition"
    );
    crate::telemetry::metric(
        "CircuitBreakerTransition",
        1.0,
        "Count",
        &[("provider", t.key.provider.as_str()), ("level", if t.key.org.is_some() { "org" } else { "provider" }), ("to", t.to.as_str())],
    );
}
