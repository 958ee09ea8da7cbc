//! `ProviderGuard`: the guarded call path (breaker → rate limiter → slot → call → classify → retry)
//! and the worker's lanes it keeps per org and per provider (see the module docs of `resilience`).
//! How a call gets its place, slot and admission is in `ticket` (the lane's batch write) and
//! `reserve` (the one-call path); the cached breakers and held outcome counts in `breaker_cache`.

mod breaker_cache;
mod reserve;
mod ticket;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::deadline::{current_deadline, deadline_error};
use super::health::notify_transition;
use super::limiter::{self, Cost, LimitKey, Limiter};
use super::{lane, slots, Admission, BreakerKey, BreakerSettings, BreakerSnapshot, Breakers, Limits, Outcome, Pending, Slots, Transition};
use crate::events::EventPublisher;
use crate::providers::Provider;
use crate::{Config, Error, Result};

/// Counters since the guard was built (benchmark and tests).
#[derive(Debug, Default)]
struct Stats {
    dynamo_calls: AtomicU64,
    limiter_calls: AtomicU64,
    permitted: AtomicU64,
    provider_429: AtomicU64,
    missed: AtomicU64,
    breaker_reads: AtomicU64,
    share_writes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Every DynamoDB call the guard made.
    pub dynamo_calls: u64,
    /// Of those, the rate limiter's.
    pub limiter_calls: u64,
    /// Calls that reached the provider.
    pub permitted: u64,
    /// Provider answers that were 429s.
    pub provider_429: u64,
    /// Reserved places given up because the call could not leave on time.
    pub missed: u64,
    /// Of the DynamoDB calls, breaker reads outside a batch write (cache refreshes, failures).
    pub breaker_reads: u64,
    /// Of the DynamoDB calls, Xero app-share writes.
    pub share_writes: u64,
}

/// The result of a guarded call with the breaker transitions this call performed.
#[derive(Debug)]
pub struct Guarded<T> {
    pub result: Result<T>,
    pub transitions: Vec<Transition>,
}

/// One worker's state for one org (see the module docs).
#[derive(Debug)]
struct Lane {
    key: LimitKey,
    breaker_key: BreakerKey,
    /// Our entry in the org's slot map.
    holder: String,
    /// Our slot entry's lease end as last written, while we hold it.
    slot_until: Option<i64>,
    /// A call of ours is in flight on the slot.
    slot_busy: bool,
    holders_missing: bool,
    /// Reserved places: when to go (monotonic) and the same on the wall clock (µs).
    places: VecDeque<(tokio::time::Instant, i64)>,
    /// `tat` after our last batch, and the wall clock it was reserved at.
    tail_end: i64,
    batch_at: i64,
    breaker: Option<(BreakerSnapshot, std::time::Instant)>,
    pending: Pending,
    /// The wait in front of our last batch (µs).
    queue_us: i64,
    last_go: Option<tokio::time::Instant>,
    /// How soon the worker comes back after a call leaves (moving average).
    cycle: Option<Duration>,
    /// Slots found full: refuse locally until then.
    full_until: Option<tokio::time::Instant>,
    /// Xero: the org's app share as last seen (µs).
    share_until: i64,
}

/// One worker's state for a provider's app item: the provider breaker as last read and the
/// outcomes not yet written.
#[derive(Debug, Default)]
struct AppLane {
    breaker: Option<(BreakerSnapshot, std::time::Instant)>,
    pending: Pending,
}

type Shared<T> = Arc<tokio::sync::Mutex<T>>;

/// Where a call's slot came from.
#[derive(Debug)]
enum SlotHold {
    None,
    /// The lane's slot, kept after the call.
    Lane(Shared<Lane>),
    /// A slot of its own, given back after the call.
    Lease(slots::SlotLease),
}

#[derive(Debug)]
struct Ticket {
    go_at: tokio::time::Instant,
    org: Admission,
    slot: SlotHold,
}

#[derive(Clone, Debug)]
pub struct ProviderGuard {
    limiter: Limiter,
    slots: Slots,
    breakers: Breakers,
    limits: Arc<Limits>,
    events: Option<EventPublisher>,
    stats: Arc<Stats>,
    db: aws_sdk_dynamodb::Client,
    table: String,
    lanes: Arc<std::sync::Mutex<HashMap<String, Shared<Lane>>>>,
    apps: Arc<std::sync::Mutex<HashMap<Provider, Shared<AppLane>>>>,
}

fn us(d: i64) -> Duration {
    Duration::from_micros(d.max(0) as u64)
}

impl ProviderGuard {
    /// The guard over `config.tables.resilience` with limits from the configuration.
    pub fn new(config: &Config, db: aws_sdk_dynamodb::Client) -> Self {
        Self::with_limits(db, config.tables.resilience.clone(), Limits::from_config(config))
    }

    pub fn with_limits(db: aws_sdk_dynamodb::Client, table: impl Into<String>, limits: Limits) -> Self {
        let table = table.into();
        ProviderGuard {
            limiter: Limiter::new(db.clone(), table.clone()),
            slots: Slots::new(db.clone(), table.clone()),
            breakers: Breakers::new(db.clone(), table.clone()),
            limits: Arc::new(limits),
            events: None,
            stats: Arc::new(Stats::default()),
            db,
            table,
            lanes: Default::default(),
            apps: Default::default(),
        }
    }

    /// Sends `connection.degraded` / `connection.recovered` when an org's breaker opens or closes.
    pub fn with_events(mut self, publisher: EventPublisher) -> Self {
        self.events = Some(publisher);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> GuardStats {
        GuardStats {
            dynamo_calls: self.stats.dynamo_calls.load(Ordering::Relaxed),
            limiter_calls: self.stats.limiter_calls.load(Ordering::Relaxed),
            permitted: self.stats.permitted.load(Ordering::Relaxed),
            provider_429: self.stats.provider_429.load(Ordering::Relaxed),
            missed: self.stats.missed.load(Ordering::Relaxed),
            breaker_reads: self.stats.breaker_reads.load(Ordering::Relaxed),
            share_writes: self.stats.share_writes.load(Ordering::Relaxed),
        }
    }

    /// Runs one provider call under the shared limits. `f` is called once per attempt.
    pub async fn call<T, F, Fut>(&self, tenant_id: &str, provider: Provider, org_id: &str, op: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.call_reporting(tenant_id, provider, org_id, op, f).await.result
    }

    /// As [`ProviderGuard::call`] for a call that is not idempotent at the provider (a create with
    /// no idempotency key, like Zoho's): a timeout or 5xx is returned, never retried here, because
    /// the first attempt may have taken effect. The caller retries after checking (a lookup by
    /// reference). Waits for rate limits and slots are still taken as usual.
    pub async fn call_once<T, F, Fut>(&self, tenant_id: &str, provider: Provider, org_id: &str, op: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut transitions = Vec::new();
        let mut cost = Cost::default();
        let result = self.run(tenant_id, provider, org_id, op, &mut f, &mut transitions, &mut cost, false).await;
        self.finish(provider, tenant_id, org_id, op, &result, &transitions, cost).await;
        result
    }

    /// [`ProviderGuard::call`], also returning the breaker transitions this call performed (already
    /// logged, and sent to the app when `with_events` was set).
    pub async fn call_reporting<T, F, Fut>(&self, tenant_id: &str, provider: Provider, org_id: &str, op: &str, mut f: F) -> Guarded<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut transitions = Vec::new();
        let mut cost = Cost::default();
        let result = self.run(tenant_id, provider, org_id, op, &mut f, &mut transitions, &mut cost, true).await;
        self.finish(provider, tenant_id, org_id, op, &result, &transitions, cost).await;
        Guarded { result, transitions }
    }

    /// Counts the call's cost, sends the transitions' events, logs a failure.
    #[allow(clippy::too_many_arguments)]
    async fn finish<T>(
        &self,
        provider: Provider,
        tenant_id: &str,
        org_id: &str,
        op: &str,
        result: &Result<T>,
        transitions: &[Transition],
        cost: Cost,
    ) {
        self.stats.dynamo_calls.fetch_add(cost.dynamo_calls as u64, Ordering::Relaxed);
        if let Some(events) = &self.events {
            for t in transitions {
                if let Err(e) = notify_transition(events, t).await {
                    tracing::warn!(provider = %provider, tenant_id, error = %e, code = %e.code(), "could not send the connection health event");
                }
            }
        }
        if let Err(e) = result {
            tracing::debug!(provider = %provider, tenant_id, org_id, op, code = %e.code(), "guarded call failed");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run<T, F, Fut>(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        f: &mut F,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
        retry_transient: bool,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let l = &*self.limits;
        let keys = l.keys(provider, org_id);
        let org_bk = BreakerKey::org(provider, org_id).for_tenant(tenant_id);
        let prov_bk = BreakerKey::provider(provider);
        let budget = l.retry.budget;
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let deadline = current_deadline();
        loop {
            // Under a deadline, an attempt starts only if its worst case fits before it, and the
            // waits in front of it may use only what is left after that: `waited` is raised so
            // every budget check below (here and in the lane) also holds the deadline.
            if let Some(d) = deadline {
                let worst = l.attempt_timeout + l.horizon;
                match d.checked_duration_since(tokio::time::Instant::now()).and_then(|left| left.checked_sub(worst)) {
                    Some(room) => waited = waited.max(budget.saturating_sub(room)),
                    None => {
                        tracing::info!(provider = %provider, tenant_id, org_id, op, attempt, "deadline near: not starting another attempt");
                        return Err(deadline_error(provider, org_id));
                    }
                }
            }
            // 0. An org this worker found with every slot held waits out the earliest lease first.
            self.wait_if_full(tenant_id, provider, org_id, &mut waited).await?;
            // 1. The provider's breaker, from the cache. First, so a refused call costs no rate.
            let prov_adm = self.provider_admit(&prov_bk, transitions, cost).await?;
            if let Admission::Refused { retry_after } = prov_adm {
                return Err(Error::CircuitOpen { scope: prov_bk.scope(), retry_after });
            }
            // 2. The org: its breaker, a rate-limit place and a slot, usually from the lane.
            let ticket = match self.org_ticket(tenant_id, provider, org_id, op, &keys, &org_bk, &mut waited, transitions, cost).await {
                Ok(t) => t,
                Err(e) => {
                    // A probe that will not call gives its place in the half-open round back.
                    self.breakers.release_probe(&prov_bk, &prov_adm).await.ok();
                    return Err(e);
                }
            };
            let now = tokio::time::Instant::now();
            if ticket.go_at > now {
                waited += ticket.go_at - now;
                tokio::time::sleep_until(ticket.go_at).await;
            }
            // 3. The call.
            self.stats.permitted.fetch_add(1, Ordering::Relaxed);
            let result = f().await;
            match &ticket.slot {
                SlotHold::None => {}
                // Kept for the worker's next call; `flush` or the lease gives it back.
                SlotHold::Lane(lane) => lane.lock().await.slot_busy = false,
                SlotHold::Lease(lease) => {
                    if let Err(e) = self.slots.release(lease, cost).await {
                        // The lease runs out on its own.
                        tracing::warn!(provider = %provider, tenant_id, error = %e, "could not give a concurrency slot back");
                    }
                }
            }
            // 4. Classify: the breakers count 5xx and timeouts; a 429 goes to the limiter.
            let outcome = Outcome::of(&result);
            self.provider_record(&prov_bk, &prov_adm, outcome, transitions, cost).await;
            self.org_record(tenant_id, provider, org_id, &org_bk, &ticket.org, outcome, transitions, cost).await;
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if let Error::ProviderRateLimited { problem, retry_after, .. } = &err {
                self.stats.provider_429.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::metric("ProviderRateLimited", 1.0, "Count", &[("provider", provider.as_str())]);
                let wait = retry_after.unwrap_or(l.minute);
                let day = problem.eq_ignore_ascii_case("day");
                // The places in hand were reserved before the provider said stop.
                self.drop_places(tenant_id, provider, org_id, cost).await;
                if let Some(key) = keys.first() {
                    cost.dynamo_calls += 1;
                    self.limiter.penalise(key, wait, day).await?;
                }
                tracing::warn!(provider = %provider, tenant_id, org_id, op, problem = %problem, wait_ms = wait.as_millis() as u64, "provider rate limit hit; the shared limiter waits it out");
                if day || attempt + 1 >= l.retry.max_attempts || waited + wait > budget {
                    let scope = format!("{}:{}:{}", provider.as_str(), org_id, problem);
                    return Err(Error::RateLimited { scope, retry_after: wait });
                }
                attempt += 1;
                continue;
            }
            let delay = l.retry.next_delay(&err, attempt, waited, &mut rand::thread_rng());
            match delay {
                Some(d) if retry_transient && matches!(err, Error::ProviderTransient { .. } | Error::ProviderTimeout { .. }) => {
                    tracing::info!(provider = %provider, tenant_id, org_id, op, attempt, code = %err.code(), delay_ms = d.as_millis() as u64, "retrying provider call");
                    tokio::time::sleep(d).await;
                    waited += d;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    /// The worker's lane for an org: one per org item, whichever tenants it calls for.
    fn lane(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Shared<Lane> {
        let id = format!("{}\u{1f}{org_id}", provider.as_str());
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry(id)
            .or_insert_with(|| {
                let key = self.limits.keys(provider, org_id).swap_remove(0);
                Arc::new(tokio::sync::Mutex::new(Lane {
                    key,
                    breaker_key: BreakerKey::org(provider, org_id).for_tenant(tenant_id),
                    holder: uuid::Uuid::new_v4().simple().to_string(),
                    slot_until: None,
                    slot_busy: false,
                    holders_missing: false,
                    places: VecDeque::new(),
                    tail_end: 0,
                    batch_at: 0,
                    breaker: None,
                    pending: Pending::default(),
                    queue_us: 0,
                    last_go: None,
                    cycle: None,
                    full_until: None,
                    share_until: 0,
                }))
            })
            .clone()
    }

    fn app_lane(&self, provider: Provider) -> Shared<AppLane> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.entry(provider).or_default().clone()
    }

    /// Gives back what this worker holds between calls: each org's slot, the unused tail of its
    /// last batch (and those places' daily counts), and writes the outcome counts it still holds.
    /// Call it at the end of a job or invocation; without it the slot frees when its lease ends.
    /// Breaker transitions this performs are logged and sent like a call's.
    pub async fn flush(&self) -> Vec<Transition> {
        let lanes: Vec<Shared<Lane>> = self.lanes.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let apps: Vec<(Provider, Shared<AppLane>)> =
            self.apps.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect();
        let mut transitions = Vec::new();
        let mut cost = Cost::default();
        for lane in lanes {
            let mut g = lane.lock().await;
            let now = limiter::now_us();
            let unused = g.places.len() as u32;
            let holder = if g.slot_busy { None } else { g.slot_until.take().map(|v| (g.holder.clone(), v)) };
            if let Err(e) = lane::release(
                &self.db,
                &self.table,
                &g.key,
                holder.as_ref().map(|(h, v)| (h.as_str(), *v)),
                unused,
                g.tail_end,
                now,
                &mut cost,
            )
            .await
            {
                tracing::warn!(error = %e, "could not give a slot or places back; their leases run out");
            }
            self.drop_lane_places(&mut g, &mut cost).await;
            g.tail_end = 0;
            if !g.pending.is_empty() {
                let pending = std::mem::take(&mut g.pending);
                let bk = g.breaker_key.clone();
                match self.breakers.flush(&bk, &self.limits.org_breaker, &pending, &mut cost).await {
                    Ok((snap, t)) => {
                        g.breaker = Some((snap, std::time::Instant::now()));
                        transitions.extend(t);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not write breaker counts"),
                }
            }
        }
        for (provider, app) in apps {
            let mut a = app.lock().await;
            if a.pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut a.pending);
            match self.breakers.flush(&BreakerKey::provider(provider), &self.limits.provider_breaker, &pending, &mut cost).await {
                Ok((snap, t)) => {
                    a.breaker = Some((snap, std::time::Instant::now()));
                    transitions.extend(t);
                }
                Err(e) => tracing::warn!(provider = %provider, error = %e, "could not write breaker counts"),
            }
        }
        self.stats.dynamo_calls.fetch_add(cost.dynamo_calls as u64, Ordering::Relaxed);
        if let Some(events) = &self.events {
            for t in &transitions {
                if let Err(e) = notify_transition(events, t).await {
                    tracing::warn!(provider = %t.key.provider, error = %e, code = %e.code(), "could not send the connection health event");
                }
            }
        }
        transitions
    }

    /// The breaker of an org (`Some(org)`, shared by every tenant connected to it) or of the
    /// provider as a whole (`None`).
    pub async fn breaker_state(&self, provider: Provider, org: Option<&str>) -> Result<BreakerSnapshot> {
        let (key, st) = self.breaker_key(provider, org);
        self.breakers.snapshot(&key, st).await
    }

    /// Closes a breaker by hand (ops).
    pub async fn reset_breaker(&self, provider: Provider, org: Option<&str>) -> Result<()> {
        let (key, st) = self.breaker_key(provider, org);
        self.breakers.reset(&key, st).await
    }

    fn breaker_key(&self, provider: Provider, org: Option<&str>) -> (BreakerKey, &BreakerSettings) {
        match org {
            Some(org) => (BreakerKey::org(provider, org), &self.limits.org_breaker),
            None => (BreakerKey::provider(provider), &self.limits.provider_breaker),
        }
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    pub fn slots(&self) -> &Slots {
        &self.slots
    }
}
