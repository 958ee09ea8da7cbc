//! One code path for every provider call: circuit breaker → rate limiter → concurrency slot → call →
//! classify (→ retry within budget), all state in the resilience table so every worker, refresher
//! and callback shares one budget per provider and org. The breaker comes first so a refused call
//! spends no rate; the limiter reserves a place and the slot is taken while waiting for it, so the
//! call leaves at its reserved time give or take network jitter.
//!
//! ```text
//! guard.call(tenant, provider, org, "list invoices", || client.list(&tokens, org, &cursor)).await
//! ```
//!
//! Short waits (a reserved rate-limit place, a full slot, a backoff) are slept in-process within the
//! retry budget; longer ones come back as `Error::RateLimited` / `Error::CircuitOpen` with
//! `retry_after`, so an SQS consumer delays the message instead of holding a Lambda.
//!
//! # Deadlines
//!
//! A caller that must be done by a time (a Lambda's deadline, less what it needs afterwards) runs
//! its calls inside [`within_deadline`]. Before each attempt the guard checks that the attempt's
//! worst case (`Limits::attempt_timeout`, the provider timeout, plus the `horizon` a reserved place
//! may lie ahead) still fits before the deadline, and bounds every wait by what is left after it.
//! An attempt that cannot fit is not started: the call returns `Error::RateLimited` with a scope
//! ending in `:deadline` ([`is_deadline`]), retryable, so a pull hands over to a follow-up job and
//! anything else comes back as a retry. So a guarded call returns by the deadline whatever the
//! provider does (the guard's own DynamoDB calls aside). Not covered: a 401 answered by a token
//! refresh and a second send inside one attempt (`TokenService::with_token`) can take two provider
//! timeouts.
//!
//! # Cost: less than one DynamoDB call per permitted call
//!
//! Each worker (guard) keeps, per org it calls, a *lane*: the places it has reserved, the slot it
//! holds, the org breaker as last read and the outcomes not yet written. A call that finds a place
//! in hand costs nothing; otherwise one write to the org's item reserves a batch of places, renews
//! the slot, adds the held outcome counts and reads the breaker back (`lane`). The provider-wide
//! breaker is read at most once per `cache_for` per worker (with the held counts added in the same
//! write), and a failure is written at once. Xero's app-wide limit costs a write per org per half
//! share lease, not per call (`lane`, "shares"). The slot is kept across a worker's consecutive
//! calls and given back by [`ProviderGuard::flush`] at the end of a job (or when its lease ends).
//!
//! Keys (resilience table, see each module): `ORG#<provider>#<org>` / `RL` (the org's rate limit,
//! slots and breaker in one item); app-wide `APP#<provider>` / `APP` (the provider breaker, Xero's
//! app shares). No key holds a tenant: the providers count per org and app, so every tenant
//! connected to one org shares its budget, its slots and its breaker. The tenant a call is made
//! for only decides where a breaker transition's app event goes and what the logs say. Every item carries `expires_at` (epoch seconds, the table's TTL attribute),
//! pushed forward by each write, so state nobody has touched for [`ITEM_TTL`] goes away.

pub mod breaker;
pub mod lane;
pub mod limiter;
pub mod retry;
pub mod slots;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use breaker::{Admission, BreakerKey, BreakerSettings, BreakerSnapshot, BreakerState, Breakers, Outcome, Pending, Transition};
pub use limiter::{Cost, Decision, LimitKey, Limiter, RateParams};
pub use retry::RetryPolicy;
pub use slots::{SlotDecision, Slots};

use crate::events::{AppEvent, EventPublisher, EventType};
use crate::providers::Provider;
use crate::{Config, Error, Result};

/// How long before its reserved time a call takes its concurrency slot (and reserves its next
/// key): a few DynamoDB round trips, so the call still leaves on time.
const SLOT_LEAD: Duration = Duration::from_millis(100);

/// How long a resilience item lives untouched before DynamoDB's TTL may delete it: longer than any
/// state in it matters (a day window, a breaker's open time, a slot or share lease).
pub const ITEM_TTL: Duration = Duration::from_secs(3 * 86_400);

/// `expires_at` for a resilience item written at `now_us`: epoch seconds.
pub fn item_expiry(now_us: i64) -> i64 {
    now_us.div_euclid(1_000_000) + ITEM_TTL.as_secs() as i64
}

/// Every limit, with the providers' published values as defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The providers' "minute" (tests shrink it, as the sandbox can).
    pub minute: Duration,
    /// The providers' "day".
    pub day: Duration,
    /// Margin added to every window for jitter between our clocks and the provider's arrivals.
    pub safety: Duration,
    /// A call may reserve a rate-limit place this far ahead and sleep until it.
    pub horizon: Duration,
    /// Calls let through at once on an idle key (1: evenly spaced; see `limiter` for the maths).
    pub burst: u32,
    pub quickbooks_per_minute: u32,
    pub xero_per_minute: u32,
    pub xero_per_day: u32,
    pub xero_app_per_minute: u32,
    pub zoho_per_minute: u32,
    /// Zoho's plan limit per org: Free 1,000 … 10,000 (plan mapping unconfirmed).
    pub zoho_per_day: u32,
    /// Calls in flight per org; 0 means no limit.
    pub quickbooks_concurrency: u32,
    pub xero_concurrency: u32,
    /// Zoho's concurrency limit is documented for Inventory only (unconfirmed for Books): off.
    pub zoho_concurrency: u32,
    /// A slot's lease: the longest a call can take plus a margin; a dead worker's slot frees after it.
    pub slot_lease: Duration,
    /// The longest one attempt can take (the provider HTTP timeout): what must be left before a
    /// deadline for an attempt to start (see "Deadlines").
    pub attempt_timeout: Duration,
    pub org_breaker: BreakerSettings,
    /// Provider-wide: needs more calls before it judges, so one org's trouble does not trip it.
    pub provider_breaker: BreakerSettings,
    pub retry: RetryPolicy,
    /// Most places one worker reserves in one write (see `limiter`, "Batches").
    pub max_batch: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            minute: Duration::from_secs(60),
            day: Duration::from_secs(86_400),
            safety: Duration::from_millis(600),
            horizon: Duration::from_secs(5),
            burst: 1,
            quickbooks_per_minute: 500,
            xero_per_minute: 60,
            xero_per_day: 5_000,
            xero_app_per_minute: 10_000,
            zoho_per_minute: 100,
            zoho_per_day: 1_000,
            quickbooks_concurrency: 10,
            xero_concurrency: 5,
            zoho_concurrency: 0,
            slot_lease: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(20),
            org_breaker: BreakerSettings::default(),
            provider_breaker: BreakerSettings { min_calls: 50, ..BreakerSettings::default() },
            retry: RetryPolicy::default(),
            max_batch: 8,
        }
    }
}

impl Limits {
    /// Defaults, the slot lease from the provider timeout, and the optional overrides
    /// `XERO_DAILY_LIMIT` (1,000 on Xero's Starter tier) and `ZOHO_DAILY_LIMIT` (the org's plan).
    pub fn from_config(config: &Config) -> Self {
        Self::from_lookup(config, |k| std::env::var(k).ok())
    }

    pub fn from_lookup(config: &Config, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = Limits::default();
        let mut l = Limits { slot_lease: config.provider_timeout + Duration::from_secs(10), attempt_timeout: config.provider_timeout, ..d };
        let num = |name: &str| -> Option<u32> {
            let raw = lookup(name)?;
            match raw.trim().parse::<u32>() {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    tracing::warn!(variable = name, "ignoring an invalid limit override");
                    None
                }
            }
        };
        if let Some(v) = num("XERO_DAILY_LIMIT") {
            l.xero_per_day = v;
        }
        if let Some(v) = num("ZOHO_DAILY_LIMIT") {
            l.zoho_per_day = v;
        }
        l
    }

    fn minute_params(&self, per_minute: u32) -> RateParams {
        RateParams::per_window(per_minute, self.minute, self.burst, self.safety, self.horizon)
    }

    /// The limit keys one call draws on (one: the org's; Xero's app-wide limit is kept as shares,
    /// see `lane`).
    pub fn keys(&self, provider: Provider, org_id: &str) -> Vec<LimitKey> {
        match provider {
            Provider::QuickBooks => vec![limiter::org_key(provider, org_id, self.minute_params(self.quickbooks_per_minute))],
            Provider::Xero => {
                vec![limiter::org_key(provider, org_id, self.minute_params(self.xero_per_minute).with_day(self.xero_per_day, self.day))]
            }
            Provider::Zoho => {
                vec![limiter::org_key(provider, org_id, self.minute_params(self.zoho_per_minute).with_day(self.zoho_per_day, self.day))]
            }
        }
    }

    /// How long an org's share of Xero's app-wide limit is held per renewal: a minute, or longer
    /// when the horizon is long against a shrunk minute, so renewals stay rare.
    pub fn share_lease(&self) -> Duration {
        self.minute.max(self.horizon * 6)
    }

    /// How many Xero orgs may hold a share of the app-wide limit at once.
    pub fn xero_app_shares(&self) -> u32 {
        (self.xero_app_per_minute / self.xero_per_minute.max(1)).max(1)
    }

    pub fn concurrency(&self, provider: Provider) -> u32 {
        match provider {
            Provider::QuickBooks => self.quickbooks_concurrency,
            Provider::Xero => self.xero_concurrency,
            Provider::Zoho => self.zoho_concurrency,
        }
    }
}

tokio::task_local! {
    static DEADLINE: tokio::time::Instant;
}

/// Runs `fut` with every guarded call in it bounded by `deadline` (see "Deadlines"). Nested scopes
/// keep the earlier deadline. Task-local: calls in tasks spawned from `fut` are not bounded.
pub async fn within_deadline<F: Future>(deadline: chrono::DateTime<chrono::Utc>, fut: F) -> F::Output {
    let left = (deadline - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let mut at = tokio::time::Instant::now() + left;
    if let Some(outer) = current_deadline() {
        at = at.min(outer);
    }
    DEADLINE.scope(at, fut).await
}

fn current_deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Whether `e` is a guard's refusal to start an attempt that could not finish before the deadline
/// of [`within_deadline`].
pub fn is_deadline(e: &Error) -> bool {
    matches!(e, Error::RateLimited { scope, .. } if scope.ends_with(":deadline"))
}

fn deadline_error(provider: Provider, org_id: &str) -> Error {
    // Retryable, and soon: the next invocation has its own deadline.
    Error::RateLimited { scope: format!("{}:{}:deadline", provider.as_str(), org_id), retry_after: Duration::from_secs(1) }
}

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

    /// An org whose slots were all held by live workers: no slot can free (short of a holder's
    /// flush) before the earliest lease ends, so nothing is asked before then. The wait is slept
    /// within the budget (a caller looping on the error would spin), the rest handed back.
    async fn wait_for_slots(
        until: tokio::time::Instant,
        provider: Provider,
        org_id: &str,
        budget: Duration,
        waited: &mut Duration,
    ) -> Result<()> {
        let now = tokio::time::Instant::now();
        if until <= now {
            return Ok(());
        }
        let nap = (until - now).min(budget.saturating_sub(*waited));
        *waited += nap;
        tokio::time::sleep(nap).await;
        let now = tokio::time::Instant::now();
        if until > now {
            return Err(Error::RateLimited { scope: format!("{}:{}:concurrency", provider.as_str(), org_id), retry_after: until - now });
        }
        Ok(())
    }

    /// [`ProviderGuard::wait_for_slots`] for an org this worker found full, before anything else is
    /// asked (the provider breaker included).
    async fn wait_if_full(&self, tenant_id: &str, provider: Provider, org_id: &str, waited: &mut Duration) -> Result<()> {
        let lane = self.lane(tenant_id, provider, org_id);
        let until = lane.lock().await.full_until;
        match until {
            Some(until) => Self::wait_for_slots(until, provider, org_id, self.limits.retry.budget, waited).await,
            None => Ok(()),
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

    /// The provider breaker's admission: from the cache while it is fresh, else one write that adds
    /// the held counts and reads the breaker back. Half-open rounds always go to DynamoDB.
    async fn provider_admit(&self, bk: &BreakerKey, transitions: &mut Vec<Transition>, cost: &mut Cost) -> Result<Admission> {
        let st = &self.limits.provider_breaker;
        let app = self.app_lane(bk.provider);
        let mut a = app.lock().await;
        for _ in 0..2 {
            let fresh = a.breaker.as_ref().filter(|(_, at)| at.elapsed() < st.cache_ttl()).map(|(s, _)| s.clone());
            if let Some(snap) = fresh {
                let now = limiter::now_us();
                return Ok(match snap.state {
                    BreakerState::Closed => Admission::Go,
                    BreakerState::Open if now < snap.open_until_us => Admission::Refused { retry_after: us(snap.open_until_us - now) },
                    _ => {
                        a.breaker = None;
                        drop(a);
                        let (adm, t) = self.breakers.admit(bk, st, cost).await?;
                        transitions.extend(t);
                        adm
                    }
                });
            }
            let pending = std::mem::take(&mut a.pending);
            self.stats.breaker_reads.fetch_add(1, Ordering::Relaxed);
            match self.breakers.flush(bk, st, &pending, cost).await {
                Ok((snap, t)) => {
                    transitions.extend(t);
                    a.breaker = Some((snap, std::time::Instant::now()));
                }
                Err(e) => {
                    a.pending.merge(pending);
                    return Err(e);
                }
            }
        }
        Ok(Admission::Go)
    }

    /// Counts a provider-breaker outcome: held for the next refresh, a failure written at once.
    async fn provider_record(
        &self,
        bk: &BreakerKey,
        adm: &Admission,
        outcome: Outcome,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) {
        let st = &self.limits.provider_breaker;
        let app = self.app_lane(bk.provider);
        let r = match adm {
            Admission::Refused { .. } => return,
            Admission::Probe { .. } => {
                app.lock().await.breaker = None;
                self.breakers.record(bk, st, adm, outcome, cost).await
            }
            Admission::Go => {
                let mut a = app.lock().await;
                a.pending.add(limiter::now_us(), st, outcome);
                if outcome != Outcome::Failure {
                    return;
                }
                let pending = std::mem::take(&mut a.pending);
                match self.breakers.flush(bk, st, &pending, cost).await {
                    Ok((snap, t)) => {
                        a.breaker = Some((snap, std::time::Instant::now()));
                        Ok(t)
                    }
                    Err(e) => {
                        a.pending.merge(pending);
                        Err(e)
                    }
                }
            }
        };
        match r {
            Ok(t) => transitions.extend(t),
            Err(e) => tracing::warn!(provider = %bk.provider, error = %e, "could not record a breaker outcome"),
        }
    }

    /// Counts an org-breaker outcome in the lane: held for its next write, a failure written at once.
    #[allow(clippy::too_many_arguments)]
    async fn org_record(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        bk: &BreakerKey,
        adm: &Admission,
        outcome: Outcome,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) {
        let st = &self.limits.org_breaker;
        let lane = self.lane(tenant_id, provider, org_id);
        let r = match adm {
            Admission::Refused { .. } => return,
            Admission::Probe { .. } => {
                lane.lock().await.breaker = None;
                self.breakers.record(bk, st, adm, outcome, cost).await
            }
            Admission::Go => {
                let mut g = lane.lock().await;
                g.pending.add(limiter::now_us(), st, outcome);
                if outcome != Outcome::Failure {
                    return;
                }
                let pending = std::mem::take(&mut g.pending);
                match self.breakers.flush(bk, st, &pending, cost).await {
                    Ok((snap, t)) => {
                        g.breaker = Some((snap, std::time::Instant::now()));
                        Ok(t)
                    }
                    Err(e) => {
                        g.pending.merge(pending);
                        Err(e)
                    }
                }
            }
        };
        match r {
            Ok(t) => transitions.extend(t),
            Err(e) => tracing::warn!(provider = %provider, tenant_id, error = %e, "could not record a breaker outcome"),
        }
    }

    /// Drops the lane's reserved places (their daily counts back): the breaker or the provider
    /// said stop.
    async fn drop_places(&self, tenant_id: &str, provider: Provider, org_id: &str, cost: &mut Cost) {
        let lane = self.lane(tenant_id, provider, org_id);
        let mut g = lane.lock().await;
        self.drop_lane_places(&mut g, cost).await;
    }

    async fn drop_lane_places(&self, g: &mut Lane, cost: &mut Cost) {
        let unused = g.places.len() as u32;
        if unused == 0 {
            return;
        }
        g.places.clear();
        if g.key.params.day.is_some() {
            cost.dynamo_calls += 1;
            self.limiter.refund_days(&g.key, g.batch_at, unused).await.ok();
        }
    }

    /// How many places the next batch asks for: one for a worker that does not come back within
    /// half an interval (it could not keep consecutive places); otherwise as many as fit in the
    /// horizon behind the queue it found last time, within the breaker cache's life and
    /// `max_batch`.
    fn batch_size(&self, g: &Lane) -> u32 {
        let p = &g.key.params;
        let i = p.interval_us.max(1);
        match g.cycle {
            Some(c) if (c.as_micros() as i64) * 2 <= i => {}
            _ => return 1,
        }
        let room = (p.horizon_us - g.queue_us.max(0)) / i;
        let ttl = self.limits.org_breaker.cache_ttl().as_micros() as i64 / i;
        room.min(ttl).min(self.limits.max_batch as i64).max(1) as u32
    }

    /// A place, a slot and the org breaker's admission for one call (see the module docs).
    #[allow(clippy::too_many_arguments)]
    async fn org_ticket(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        org_bk: &BreakerKey,
        waited: &mut Duration,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) -> Result<Ticket> {
        let l = &*self.limits;
        let st = &l.org_breaker;
        let max = l.concurrency(provider);
        let budget = l.retry.budget;
        let late = l.safety / 2;
        let lane = self.lane(tenant_id, provider, org_id);
        let mut g = lane.lock().await;
        // A transition `flush` performs is reported to the tenant the lane last called for.
        g.breaker_key = org_bk.clone();
        let key = g.key.clone();
        let p = key.params;
        if let Some(last) = g.last_go.take() {
            let c = last.elapsed();
            g.cycle = Some(match g.cycle {
                Some(prev) => (prev * 3 + c) / 4,
                None => c,
            });
        }
        // What the next write should be, learnt from the item a refused write sent back.
        #[derive(Clone, Copy)]
        enum Next {
            Guess,
            Busy,
            Idle,
            Exact(limiter::RateState),
        }
        let mut next = Next::Guess;
        let mut next_slot: Option<lane::SlotPlan> = None;
        let mut renew_share = false;
        let mut k_cap = u32::MAX;
        for _ in 0..12 {
            if let Some(until) = g.full_until {
                Self::wait_for_slots(until, provider, org_id, budget, waited).await?;
                g.full_until = None;
            }
            // The org breaker, as cached.
            let cached = g.breaker.as_ref().filter(|(_, at)| at.elapsed() < st.cache_ttl()).map(|(s, _)| s.clone());
            match cached {
                Some(snap) if snap.state != BreakerState::Closed => {
                    self.drop_lane_places(&mut g, cost).await;
                    let now = limiter::now_us();
                    if snap.state == BreakerState::Open && now < snap.open_until_us {
                        return Err(Error::CircuitOpen { scope: org_bk.scope(), retry_after: us(snap.open_until_us - now) });
                    }
                    // Half-open rounds are never cached: the probes are handed out in DynamoDB.
                    g.breaker = None;
                    drop(g);
                    return self.single_ticket(tenant_id, provider, org_id, op, keys, Some(org_bk), waited, transitions, cost).await;
                }
                None if !g.places.is_empty() => {
                    // Places in hand but a stale breaker: read it (adding our counts) first.
                    let pending = std::mem::take(&mut g.pending);
                    self.stats.breaker_reads.fetch_add(1, Ordering::Relaxed);
                    match self.breakers.flush(org_bk, st, &pending, cost).await {
                        Ok((snap, t)) => {
                            transitions.extend(t);
                            g.breaker = Some((snap, std::time::Instant::now()));
                        }
                        Err(e) => {
                            g.pending.merge(pending);
                            return Err(e);
                        }
                    }
                    continue;
                }
                _ => {}
            }
            // Places the worker came back too late for are dropped, never used late.
            let mut missed = 0u32;
            while let Some(&(at, _)) = g.places.front() {
                if at + late < tokio::time::Instant::now() {
                    g.places.pop_front();
                    missed += 1;
                } else {
                    break;
                }
            }
            if missed > 0 {
                self.stats.missed.fetch_add(missed as u64, Ordering::Relaxed);
                if p.day.is_some() {
                    cost.dynamo_calls += 1;
                    self.limiter.refund_days(&key, g.batch_at, missed).await.ok();
                }
            }
            // A second call of this worker in flight on the org: a slot of its own.
            if max > 0 && g.slot_busy {
                drop(g);
                return self.single_ticket(tenant_id, provider, org_id, op, keys, None, waited, transitions, cost).await;
            }
            if let Some((at, _)) = g.places.pop_front() {
                g.slot_busy = max > 0;
                g.last_go = Some(at.max(tokio::time::Instant::now()));
                let slot = if max > 0 { SlotHold::Lane(lane.clone()) } else { SlotHold::None };
                return Ok(Ticket { go_at: at, org: Admission::Go, slot });
            }
            // One write: a batch of places, the slot, our counts, the breaker read back.
            let mut set_share = None;
            if provider == Provider::Xero {
                // Renewed only when the org item's share end falls short of the write's need (its
                // condition), so one worker of the org renews, not each that notices the end near.
                if renew_share {
                    let until = self.ensure_share(org_id, transitions, cost).await?;
                    g.share_until = until;
                    set_share = Some(until);
                    renew_share = false;
                }
            }
            let k = self.batch_size(&g).min(k_cap).max(1);
            let now = limiter::now_us();
            let now_i = tokio::time::Instant::now();
            // A lane's first write guesses busy: under contention other workers keep the key busy.
            let busy = g.tail_end > now || g.tail_end == 0;
            let (rate, exact_places) = match next {
                Next::Exact(old) => match limiter::decide_batch(old, now, &p, k) {
                    Ok((places, new)) => (lane::RatePlan::Exact { old, new }, Some(places)),
                    Err(_) => (lane::RatePlan::Busy { k }, None),
                },
                Next::Busy => (lane::RatePlan::Busy { k }, None),
                Next::Idle => (lane::RatePlan::Idle { k }, None),
                Next::Guess if busy => (lane::RatePlan::Busy { k }, None),
                Next::Guess => (lane::RatePlan::Idle { k }, None),
            };
            let slot_plan = if max == 0 {
                lane::SlotPlan::None
            } else {
                next_slot.take().unwrap_or(if g.holders_missing { lane::SlotPlan::Init } else { lane::SlotPlan::Renew })
            };
            let last_place_bound = now + p.horizon_us + p.tolerance_us + (k as i64) * p.interval_us;
            let slot_until = last_place_bound + l.slot_lease.as_micros() as i64;
            let pending = std::mem::take(&mut g.pending);
            let holder = g.holder.clone();
            let w = lane::OrgWrite {
                key: &key,
                breaker: st,
                rate,
                slot: slot_plan,
                holder: &holder,
                slot_until,
                max_slots: max,
                pending: &pending,
                set_share_until: set_share,
                // A quarter lease to spare, so the share is renewed while it still holds.
                need_share_until: (provider == Provider::Xero && set_share.is_none())
                    .then_some(last_place_bound + (l.share_lease() / 4).as_micros() as i64),
                now,
            };
            cost.dynamo_calls += 1;
            self.stats.limiter_calls.fetch_add(1, Ordering::Relaxed);
            let written = match lane::org_write(&self.db, &self.table, &w).await {
                Ok(x) => x,
                Err(e) => {
                    g.pending.merge(pending);
                    return Err(e);
                }
            };
            match written {
                lane::Written::Done(item) => {
                    let snap = breaker::snapshot(Some(&item), now, st);
                    if pending.failures() > 0 {
                        transitions.extend(self.breakers.trip(org_bk, st, &snap, now, cost).await?);
                    }
                    g.breaker = Some((snap, std::time::Instant::now()));
                    let new = limiter::from_item(&item);
                    let places: Vec<i64> = match (rate, exact_places) {
                        (lane::RatePlan::Busy { k }, _) => {
                            let old = new.tat_us - k as i64 * p.interval_us;
                            (0..k as i64).map(|j| now.max(old + j * p.interval_us - p.tolerance_us)).collect()
                        }
                        (lane::RatePlan::Idle { k }, _) => {
                            (0..k as i64).map(|j| now.max(now + j * p.interval_us - p.tolerance_us)).collect()
                        }
                        (lane::RatePlan::Exact { .. }, Some(pl)) => pl,
                        (lane::RatePlan::Exact { .. }, None) => vec![now],
                    };
                    g.queue_us = places.first().map(|f| f - now).unwrap_or(0);
                    g.tail_end = new.tat_us;
                    g.batch_at = now;
                    if max > 0 {
                        g.slot_until = Some(slot_until);
                        g.holders_missing = false;
                    }
                    if let Some(su) = crate::store::get_n_opt(&item, "app_share_until") {
                        g.share_until = su;
                    }
                    for pl in places {
                        g.places.push_back((now_i + us(pl - now), pl));
                    }
                    next = Next::Guess;
                }
                lane::Written::Refused(item) => {
                    g.pending.merge(pending);
                    let item = match item {
                        Some(i) => Some(i),
                        None => {
                            cost.dynamo_calls += 1;
                            crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?
                        }
                    };
                    let now = limiter::now_us();
                    let snap = breaker::snapshot(item.as_ref(), now, st);
                    if snap.state != BreakerState::Closed {
                        g.breaker = Some((snap, std::time::Instant::now()));
                        continue;
                    }
                    if provider == Provider::Xero {
                        let su = item.as_ref().and_then(|i| crate::store::get_n_opt(i, "app_share_until")).unwrap_or(0);
                        g.share_until = g.share_until.max(su);
                        if set_share.is_none() && su < last_place_bound + (l.share_lease() / 4).as_micros() as i64 {
                            renew_share = true;
                        }
                    }
                    if max > 0 {
                        match slots::holders_of(item.as_ref()) {
                            None => next_slot = Some(lane::SlotPlan::Init),
                            Some(h) if h.contains_key(&g.holder) || (h.len() as u32) < max => next_slot = Some(lane::SlotPlan::Renew),
                            Some(h) => {
                                g.slot_until = None;
                                if let Some((victim, value)) = h.iter().filter(|(_, v)| **v <= now).min_by_key(|(_, v)| **v) {
                                    tracing::info!(provider = %provider, tenant_id, org_id, "reclaiming an expired concurrency slot");
                                    next_slot = Some(lane::SlotPlan::Reclaim { victim: victim.clone(), value: *value });
                                } else {
                                    let earliest = h.values().min().copied().unwrap_or(now);
                                    let wait = us(earliest - now).max(Duration::from_millis(1));
                                    if *waited + wait <= budget {
                                        *waited += wait;
                                        tokio::time::sleep(wait).await;
                                        next_slot = Some(lane::SlotPlan::Reclaim {
                                            victim: h.iter().min_by_key(|(_, v)| **v).map(|(k, _)| k.clone()).unwrap_or_default(),
                                            value: earliest,
                                        });
                                        continue;
                                    }
                                    // Held by live workers beyond our budget: hand the wait back,
                                    // and do not ask again before it (a busy org's slots are
                                    // renewed by their holders, so asking sooner only costs).
                                    g.full_until = Some(tokio::time::Instant::now() + wait);
                                    return Err(Error::RateLimited {
                                        scope: format!("{}:{}:concurrency", provider.as_str(), org_id),
                                        retry_after: wait.max(Duration::from_millis(1)),
                                    });
                                }
                            }
                        }
                    }
                    let state = item.as_ref().map(limiter::from_item).unwrap_or_default();
                    match limiter::decide_batch(state, now, &p, k) {
                        Err(limiter::Step::Wait { until_us, day }) => {
                            let after = us(until_us - now).max(Duration::from_millis(1));
                            if day || *waited + after > budget {
                                tracing::info!(provider = %provider, tenant_id, org_id, op, scope = %key.scope, day, wait_ms = after.as_millis() as u64, "rate limit: handing the wait to the caller");
                                return Err(limiter::wait_error(&key.scope, after, day));
                            }
                            *waited += after;
                            tokio::time::sleep(after).await;
                            next = Next::Guess;
                        }
                        Err(limiter::Step::Reserve { .. }) => next = Next::Guess,
                        Ok((places, new)) => {
                            k_cap = places.len() as u32;
                            next = if !state.exists || new.day_start_us != state.day_start_us {
                                Next::Exact(state)
                            } else if state.tat_us <= now {
                                Next::Idle
                            } else {
                                Next::Busy
                            };
                        }
                    }
                }
            }
        }
        // Every worker is racing for the same item: back off briefly.
        Err(Error::RateLimited { scope: key.scope.clone(), retry_after: us(p.interval_us).max(Duration::from_millis(50)) })
    }

    /// The one-call path: a probe of a half-open org breaker (`probe_of`), or a second call of
    /// this worker in flight on an org: its own place and slot, given back after the call.
    #[allow(clippy::too_many_arguments)]
    async fn single_ticket(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        probe_of: Option<&BreakerKey>,
        waited: &mut Duration,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) -> Result<Ticket> {
        let org = match probe_of {
            Some(bk) => {
                let (adm, t) = self.breakers.admit(bk, &self.limits.org_breaker, cost).await?;
                transitions.extend(t);
                if let Admission::Refused { retry_after } = adm {
                    return Err(Error::CircuitOpen { scope: bk.scope(), retry_after });
                }
                adm
            }
            None => Admission::Go,
        };
        if provider == Provider::Xero {
            if let Err(e) = self.ensure_share(org_id, transitions, cost).await {
                if let Some(bk) = probe_of {
                    self.breakers.release_probe(bk, &org).await.ok();
                }
                return Err(e);
            }
        }
        match self.reserve(tenant_id, provider, org_id, op, keys, waited, cost).await {
            Ok(lease) => Ok(Ticket { go_at: tokio::time::Instant::now(), org, slot: lease.map(SlotHold::Lease).unwrap_or(SlotHold::None) }),
            Err(e) => {
                if let Some(bk) = probe_of {
                    self.breakers.release_probe(bk, &org).await.ok();
                }
                Err(e)
            }
        }
    }

    /// Takes or renews this org's share of Xero's app-wide limit (see `lane`); returns its end.
    async fn ensure_share(&self, org_id: &str, transitions: &mut Vec<Transition>, cost: &mut Cost) -> Result<i64> {
        let l = &*self.limits;
        let st = &l.provider_breaker;
        let bk = BreakerKey::provider(Provider::Xero);
        // The org's share, whichever tenant calls: the org's own limit is one budget for all of them.
        let share = org_id.to_string();
        let max = l.xero_app_shares();
        let gap = (l.minute + l.safety).as_micros() as i64;
        let app = self.app_lane(Provider::Xero);
        let mut a = app.lock().await;
        let mut plan = lane::SlotPlan::Renew;
        for _ in 0..4 {
            let now = limiter::now_us();
            let until = now + l.share_lease().as_micros() as i64;
            let pending = std::mem::take(&mut a.pending);
            cost.dynamo_calls += 1;
            self.stats.share_writes.fetch_add(1, Ordering::Relaxed);
            let r = lane::share_write(&self.db, &self.table, Provider::Xero, &share, until, max, &plan, &pending, st, now).await;
            match r {
                Err(e) => {
                    a.pending.merge(pending);
                    return Err(e);
                }
                Ok(lane::ShareWritten::Held(item)) => {
                    let snap = breaker::snapshot(Some(&item), now, st);
                    if pending.failures() > 0 {
                        transitions.extend(self.breakers.trip(&bk, st, &snap, now, cost).await?);
                    }
                    a.breaker = Some((snap, std::time::Instant::now()));
                    return Ok(until);
                }
                Ok(lane::ShareWritten::Refused(item)) => {
                    a.pending.merge(pending);
                    let item = match item {
                        Some(i) => Some(i),
                        None => {
                            let (pk, sk) = lane::app_item_key(Provider::Xero);
                            cost.dynamo_calls += 1;
                            crate::store::get_item(&self.db, &self.table, pk, sk).await?
                        }
                    };
                    plan = match lane::shares_of(item.as_ref()) {
                        None => lane::SlotPlan::Init,
                        Some(m) if m.contains_key(&share) || (m.len() as u32) < max => lane::SlotPlan::Renew,
                        Some(m) => {
                            // A share that ran out is free one window later, never sooner.
                            match m.iter().filter(|(_, v)| **v + gap <= now).min_by_key(|(_, v)| **v) {
                                Some((victim, value)) => lane::SlotPlan::Reclaim { victim: victim.clone(), value: *value },
                                None => {
                                    let next = m.values().min().copied().unwrap_or(now) + gap;
                                    return Err(Error::RateLimited {
                                        scope: "xero:app".into(),
                                        retry_after: us(next - now).max(Duration::from_millis(1)),
                                    });
                                }
                            }
                        }
                    };
                }
            }
        }
        Err(Error::RateLimited { scope: "xero:app".into(), retry_after: Duration::from_millis(100) })
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

    /// Reserves a place on every rate-limit key, takes a concurrency slot just before it and
    /// sleeps until it. A call that would leave later than half the safety margin after its place
    /// (a slow slot, a stalled worker) gives the place up and reserves again, so every call leaves
    /// within the margin of its reserved time, which is what the limiter's maths assumes.
    #[allow(clippy::too_many_arguments)]
    async fn reserve(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        waited: &mut Duration,
        cost: &mut Cost,
    ) -> Result<Option<slots::SlotLease>> {
        let l = &*self.limits;
        let budget = l.retry.budget;
        let late = l.safety / 2;
        let max = l.concurrency(provider);
        // Per key: the reserved place (monotonic time) and the wall clock when it was reserved.
        let mut places: Vec<Option<(tokio::time::Instant, i64)>> = vec![None; keys.len()];
        loop {
            for (i, key) in keys.iter().enumerate() {
                if places[i].is_some() {
                    continue;
                }
                // Reserve the next key close to the places already held, so they can all be kept.
                if let Some(latest) = places.iter().flatten().map(|p| p.0).max() {
                    let target = latest.checked_sub(SLOT_LEAD).unwrap_or(latest);
                    let now = tokio::time::Instant::now();
                    if target > now {
                        *waited += target - now;
                        tokio::time::sleep_until(target).await;
                    }
                }
                let before = cost.dynamo_calls;
                let at = limiter::now_us();
                let d = self.limiter.acquire(key, cost).await?;
                self.stats.limiter_calls.fetch_add((cost.dynamo_calls - before) as u64, Ordering::Relaxed);
                match d {
                    Decision::Go(delay) => places[i] = Some((tokio::time::Instant::now() + delay, at)),
                    Decision::Wait { after, day } => {
                        // The places already held are given up (their daily counts back).
                        for (k, p) in keys.iter().zip(places.iter_mut()) {
                            if let Some((_, at)) = p.take() {
                                self.limiter.refund_day(k, at).await.ok();
                            }
                        }
                        if day || *waited + after > budget {
                            tracing::info!(provider = %provider, tenant_id, org_id, op, scope = %key.scope, day, wait_ms = after.as_millis() as u64, "rate limit: handing the wait to the caller");
                            return Err(limiter::wait_error(&key.scope, after, day));
                        }
                        tokio::time::sleep(after).await;
                        *waited += after;
                        break;
                    }
                }
            }
            if places.iter().any(Option::is_none) {
                continue;
            }
            let go_at = places.iter().flatten().map(|p| p.0).max().unwrap_or_else(tokio::time::Instant::now);
            // The slot is taken just before the reserved time: a slot held through the whole wait
            // would keep other workers from their own, earlier places.
            let lease = if max > 0 {
                let take_at = go_at.checked_sub(SLOT_LEAD).unwrap_or(go_at);
                let now = tokio::time::Instant::now();
                if take_at > now {
                    *waited += take_at - now;
                    tokio::time::sleep_until(take_at).await;
                }
                loop {
                    match self.slots.acquire(provider, org_id, max, l.slot_lease, cost).await? {
                        SlotDecision::Held(lease) => break Some(lease),
                        SlotDecision::Full { retry_after } => {
                            if *waited + retry_after > budget {
                                for (k, p) in keys.iter().zip(places.iter_mut()) {
                                    if let Some((_, at)) = p.take() {
                                        self.limiter.refund_day(k, at).await.ok();
                                    }
                                }
                                return Err(Error::RateLimited {
                                    scope: format!("{}:{}:concurrency", provider.as_str(), org_id),
                                    retry_after: retry_after.max(Duration::from_secs(1)),
                                });
                            }
                            tokio::time::sleep(retry_after).await;
                            *waited += retry_after;
                        }
                    }
                }
            } else {
                None
            };
            // Every key's place must be kept to within `late`; a place we would miss by more is
            // given up (its daily count back) and reserved again.
            let leave_at = go_at.max(tokio::time::Instant::now());
            let mut missed = false;
            for (k, p) in keys.iter().zip(places.iter_mut()) {
                if let Some((place, at)) = *p {
                    if leave_at > place + late {
                        missed = true;
                        self.stats.missed.fetch_add(1, Ordering::Relaxed);
                        self.limiter.refund_day(k, at).await.ok();
                        *p = None;
                    }
                }
            }
            if missed {
                tracing::debug!(provider = %provider, tenant_id, org_id, "missed a reserved place; reserving again");
                if let Some(lease) = &lease {
                    self.slots.release(lease, cost).await.ok();
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            if go_at > now {
                *waited += go_at - now;
                tokio::time::sleep_until(go_at).await;
            }
            return Ok(lease);
        }
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

/// The app event for an org breaker's transition: opened → `connection.degraded`, closed again →
/// `connection.recovered`, to the tenant whose call performed it. Other transitions (half-open,
/// provider-wide, or with no tenant: an operator's) are logged only.
pub fn transition_event(t: &Transition) -> Option<AppEvent> {
    let org = t.key.org.as_ref()?;
    let tenant = t.key.tenant.as_ref()?;
    let now = chrono::Utc::now();
    let degraded = match (t.from, t.to) {
        (BreakerState::Closed, BreakerState::Open) => true,
        (BreakerState::HalfOpen, BreakerState::Closed) => false,
        _ => return None,
    };
    // The same `data` shape as the refresher's health events (schemas/app-event.v1.json).
    let data = crate::events::ConnectionHealth {
        grant_id: None,
        org_ids: vec![org.clone()],
        cause: crate::events::HealthCause::ProviderErrors,
        error_code: degraded.then_some(crate::ErrorCode::CircuitOpen.as_u16()),
        message: Some(format!("{} failed {} of the last {} calls for this organisation", t.key.provider, t.failures, t.calls)),
        since: degraded.then(|| now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        reconnect_url: None,
    };
    let kind = if degraded { EventType::ConnectionDegraded } else { EventType::ConnectionRecovered };
    Some(AppEvent::new(kind, tenant, t.key.provider, now, serde_json::to_value(data).unwrap_or_default()))
}

/// Sends the app event for a transition, if it has one.
pub async fn notify_transition(events: &EventPublisher, t: &Transition) -> Result<()> {
    match transition_event(t) {
        Some(e) => events.publish(&e, None).await,
        None => Ok(()),
    }
}
