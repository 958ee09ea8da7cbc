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
//! Keys (resilience table, see each module): `TENANT#t` / `RL#<provider>#<org>` (rate limits),
//! `TENANT#t` / `SLOT#<provider>#<org>` (concurrency), `TENANT#t` / `CB#<provider>#<org>` (org
//! breaker); app-wide: `APP#xero` / `RL#app`, `APP#<provider>` / `CB`.

pub mod breaker;
pub mod limiter;
pub mod retry;
pub mod slots;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use breaker::{Admission, BreakerKey, BreakerSettings, BreakerSnapshot, BreakerState, Breakers, Outcome, Transition};
pub use limiter::{Cost, Decision, LimitKey, Limiter, RateParams};
pub use retry::RetryPolicy;
pub use slots::{SlotDecision, Slots};

use crate::events::{AppEvent, EventPublisher, EventType};
use crate::providers::Provider;
use crate::{Config, Error, Result};

/// How long before its reserved time a call takes its concurrency slot (and reserves its next
/// key): a few DynamoDB round trips, so the call still leaves on time.
const SLOT_LEAD: Duration = Duration::from_millis(100);

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
    pub org_breaker: BreakerSettings,
    /// Provider-wide: needs more calls before it judges, so one org's trouble does not trip it.
    pub provider_breaker: BreakerSettings,
    pub retry: RetryPolicy,
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
            org_breaker: BreakerSettings::default(),
            provider_breaker: BreakerSettings { min_calls: 50, ..BreakerSettings::default() },
            retry: RetryPolicy::default(),
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
        let mut l = Limits { slot_lease: config.provider_timeout + Duration::from_secs(10), ..d };
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

    /// The limit keys one call draws on, org key first.
    pub fn keys(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Vec<LimitKey> {
        match provider {
            Provider::QuickBooks => vec![limiter::org_key(tenant_id, provider, org_id, self.minute_params(self.quickbooks_per_minute))],
            Provider::Xero => vec![
                limiter::org_key(
                    tenant_id,
                    provider,
                    org_id,
                    self.minute_params(self.xero_per_minute).with_day(self.xero_per_day, self.day),
                ),
                limiter::app_key(provider, self.minute_params(self.xero_app_per_minute)),
            ],
            Provider::Zoho => {
                vec![limiter::org_key(
                    tenant_id,
                    provider,
                    org_id,
                    self.minute_params(self.zoho_per_minute).with_day(self.zoho_per_day, self.day),
                )]
            }
        }
    }

    pub fn concurrency(&self, provider: Provider) -> u32 {
        match provider {
            Provider::QuickBooks => self.quickbooks_concurrency,
            Provider::Xero => self.xero_concurrency,
            Provider::Zoho => self.zoho_concurrency,
        }
    }
}

/// Counters since the guard was built (benchmark and tests).
#[derive(Debug, Default)]
struct Stats {
    dynamo_calls: AtomicU64,
    limiter_calls: AtomicU64,
    permitted: AtomicU64,
    provider_429: AtomicU64,
    missed: AtomicU64,
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
}

/// The result of a guarded call with the breaker transitions this call performed.
#[derive(Debug)]
pub struct Guarded<T> {
    pub result: Result<T>,
    pub transitions: Vec<Transition>,
}

#[derive(Clone, Debug)]
pub struct ProviderGuard {
    limiter: Limiter,
    slots: Slots,
    breakers: Breakers,
    limits: Arc<Limits>,
    events: Option<EventPublisher>,
    stats: Arc<Stats>,
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
            breakers: Breakers::new(db, table),
            limits: Arc::new(limits),
            events: None,
            stats: Arc::new(Stats::default()),
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
        let keys = l.keys(tenant_id, provider, org_id);
        let org_bk = BreakerKey::org(tenant_id, provider, org_id);
        let prov_bk = BreakerKey::provider(provider);
        let budget = l.retry.budget;
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            // 1. Breakers: the provider's, then the org's. First, so a refused call costs no rate.
            let (prov_adm, org_adm) = match self.admit(&prov_bk, &org_bk, transitions, cost).await? {
                Ok(a) => a,
                Err(refused) => return Err(refused),
            };
            // 2. Rate limits and a concurrency slot, until the call can leave on time.
            let lease = match self.reserve(tenant_id, provider, org_id, op, &keys, &mut waited, cost).await {
                Ok(lease) => lease,
                Err(e) => {
                    // A probe that will not call gives its place in the half-open round back.
                    self.breakers.release_probe(&prov_bk, &prov_adm).await.ok();
                    self.breakers.release_probe(&org_bk, &org_adm).await.ok();
                    return Err(e);
                }
            };
            // 3. The call.
            self.stats.permitted.fetch_add(1, Ordering::Relaxed);
            let result = f().await;
            if let Some(lease) = &lease {
                if let Err(e) = self.slots.release(lease, cost).await {
                    // The lease runs out on its own.
                    tracing::warn!(provider = %provider, tenant_id, error = %e, "could not give a concurrency slot back");
                }
            }
            // 4. Classify: the breakers count 5xx and timeouts; a 429 goes to the limiter.
            let outcome = Outcome::of(&result);
            let (mut ca, mut cb) = (Cost::default(), Cost::default());
            let (a, b) = futures::join!(
                self.breakers.record(&prov_bk, &l.provider_breaker, &prov_adm, outcome, &mut ca),
                self.breakers.record(&org_bk, &l.org_breaker, &org_adm, outcome, &mut cb),
            );
            cost.dynamo_calls += ca.dynamo_calls + cb.dynamo_calls;
            transitions.extend([a, b].into_iter().filter_map(|r| {
                r.unwrap_or_else(|e| {
                    tracing::warn!(provider = %provider, tenant_id, error = %e, "could not record a breaker outcome");
                    None
                })
            }));
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if let Error::ProviderRateLimited { problem, retry_after, .. } = &err {
                self.stats.provider_429.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after.unwrap_or(l.minute);
                let day = problem.eq_ignore_ascii_case("day");
                // Xero names the limit it hit; the app-wide one is shared by every tenant.
                let key = if problem.to_ascii_lowercase().contains("app") { keys.last() } else { keys.first() };
                if let Some(key) = key {
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
                    match self.slots.acquire(tenant_id, provider, org_id, max, l.slot_lease, cost).await? {
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

    /// Provider breaker then org breaker. The inner `Err` is the refusal to return.
    async fn admit(
        &self,
        prov_bk: &BreakerKey,
        org_bk: &BreakerKey,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) -> Result<std::result::Result<(Admission, Admission), Error>> {
        let l = &*self.limits;
        let (pa, pt) = self.breakers.admit(prov_bk, &l.provider_breaker, cost).await?;
        transitions.extend(pt);
        if let Admission::Refused { retry_after } = pa {
            return Ok(Err(Error::CircuitOpen { scope: prov_bk.scope(), retry_after }));
        }
        let (oa, ot) = match self.breakers.admit(org_bk, &l.org_breaker, cost).await {
            Ok(a) => a,
            Err(e) => {
                self.breakers.release_probe(prov_bk, &pa).await.ok();
                return Err(e);
            }
        };
        transitions.extend(ot);
        if let Admission::Refused { retry_after } = oa {
            self.breakers.release_probe(prov_bk, &pa).await.ok();
            return Ok(Err(Error::CircuitOpen { scope: org_bk.scope(), retry_after }));
        }
        Ok(Ok((pa, oa)))
    }

    /// The breaker of an org (`Some(tenant, org)`) or of the provider as a whole (`None`).
    pub async fn breaker_state(&self, provider: Provider, org: Option<(&str, &str)>) -> Result<BreakerSnapshot> {
        let (key, st) = self.breaker_key(provider, org);
        self.breakers.snapshot(&key, st).await
    }

    /// Closes a breaker by hand (ops).
    pub async fn reset_breaker(&self, provider: Provider, org: Option<(&str, &str)>) -> Result<()> {
        let (key, st) = self.breaker_key(provider, org);
        self.breakers.reset(&key, st).await
    }

    fn breaker_key(&self, provider: Provider, org: Option<(&str, &str)>) -> (BreakerKey, &BreakerSettings) {
        match org {
            Some((tenant, org)) => (BreakerKey::org(tenant, provider, org), &self.limits.org_breaker),
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
/// `connection.recovered`. Other transitions (half-open, provider-wide) are logged only.
pub fn transition_event(t: &Transition) -> Option<AppEvent> {
    let (tenant, org) = t.key.org.as_ref()?;
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
