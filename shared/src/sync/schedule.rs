//! Scheduled incremental sync: every active connection whose sync interval has passed gets one
//! incremental pull per enabled entity, so a webhook that never arrived is healed by the next pull.
//!
//! **Finding due connections (never a scan).** Every active connection item carries `sync_pk =
//! SYNC#<shard 00-15>` (a stable hash of tenant, provider and org) and `next_sync_at` (epoch s), the
//! keys of the sparse grants-table index `sync_due`. A run queries each shard for `next_sync_at <=
//! now`. A connection that stops being active leaves the index (`set_status` removes `sync_pk`; a
//! run that still meets one removes it).
//!
//! **Spreading load.** A connection's pulls fall on fixed slots of its interval `I` (the tenant's
//! `sync_frequency_minutes`, never below its plan's minimum): `offset + k * I` on the epoch clock,
//! with `offset` a hash of tenant + provider + org modulo `I`. 100,000 hourly connections are
//! spread evenly over the hour (about 28 a second) instead of all pulling at :00, and a run that
//! comes late does not shift the slot: the next one stays where it was.
//!
//! **Exactly once per slot.** The run moves `next_sync_at` from the value it read to the next slot
//! with a conditional write before it enqueues, so two runs that read the same due connection
//! never both enqueue it; the jobs' keys (`sch1:<provider>:<org>:<entity>:<due time>`) make a
//! resend after a failed rollback harmless too.
//!
//! **Skips.** Rescheduled without a pull: an open breaker (the org's or the provider's; retried
//! after the breaker's open time, at the latest at the next slot), a spent monthly quota (next
//! slot), a disabled provider (next slot), and a connection whose initial full sync is still
//! running (next slot; after [`INITIAL_GRACE`] incremental pulls run anyway, so a failed initial
//! pull does not stop the connection from being kept current). A connection whose initial sync was
//! never enqueued (the callback died after storing it) gets it here.
//!
//! **Parked jobs.** A due connection is active; if it carries the parking mark (or is freshly
//! connected) and its tenant's quota has room, the run releases the jobs parked under it for a
//! re-authorisation or the quota (`sync::parked`). A reconnect makes the connection due at once, so
//! its parked jobs run on the next run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::AwsClients;
use crate::events::EventPublisher;
use crate::initial_sync::{InitialState, InitialSync, Started};
use crate::jobs::{entity_str, JobQueue, Operation, Source, SyncJob, SyncQueues, JOB_VERSION};
use crate::resilience::breaker::BreakerState;
use crate::resilience::ProviderGuard;
use crate::store::grants::{connection_sk, Connection, GrantStatus, GrantStore};
use crate::store::keys::fnv64;
pub use crate::store::keys::{sync_pk, sync_shard, sync_shard_pk, SYNC_SHARDS};
use crate::store::{dynamo_error, get_n_opt, is_conditional_failure, n, s, tenant_pk, Item};
use crate::sync::freshness;
use crate::sync::parked::{ParkedJobs, CONNECTION_MARK};
use crate::tenancy::{Plan, Tenant, TenantStore};
use crate::{Config, Error, Provider, Result};

/// The grants-table index of connections by sync due time.
pub const SYNC_INDEX: &str = "sync_due";

/// After this long a still-running initial sync no longer holds back incremental pulls.
pub const INITIAL_GRACE: chrono::Duration = chrono::Duration::hours(6);

/// An open breaker is looked at again after at least this long (or at the next slot, if sooner).
pub const BREAKER_RECHECK: chrono::Duration = chrono::Duration::minutes(5);

/// A connection whose initial sync could not be confirmed enqueued is looked at again after this.
pub const INITIAL_RETRY: chrono::Duration = chrono::Duration::minutes(5);

/// The connection's place within every interval of `interval_s` seconds.
pub fn slot_offset(tenant_id: &str, provider: Provider, org_id: &str, interval_s: i64) -> i64 {
    (fnv64(&["slot", tenant_id, provider.as_str(), org_id]) % interval_s.max(1) as u64) as i64
}

/// The first slot `offset + k * interval_s` strictly after `t` (epoch seconds).
pub fn next_slot_after(t: i64, interval_s: i64, offset: i64) -> i64 {
    let i = interval_s.max(1);
    offset + ((t - offset).div_euclid(i) + 1) * i
}

/// The interval the tenant's connections are pulled at: its configured frequency, never below its
/// plan's minimum nor above a day.
pub fn interval_minutes(tenant: &Tenant) -> u32 {
    tenant.config.sync_frequency_minutes.max(tenant.limits().min_sync_minutes).clamp(1, 1440)
}

/// The next slot of a connection after `now` for this tenant's interval.
pub fn next_slot(tenant: &Tenant, provider: Provider, org_id: &str, now: DateTime<Utc>) -> i64 {
    let interval = i64::from(interval_minutes(tenant)) * 60;
    next_slot_after(now.timestamp(), interval, slot_offset(&tenant.tenant_id, provider, org_id, interval))
}

/// The idempotency key of a scheduled pull: one per connection, entity and due time.
pub fn scheduled_key(provider: Provider, org_id: &str, entity: crate::tenancy::Entity, due_at: i64) -> String {
    format!("sch1:{}:{org_id}:{}:{due_at}", provider.as_str(), entity_str(entity))
}

#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Connections handled at once.
    pub concurrency: usize,
    /// No new connection is started when less than this is left before the deadline.
    pub stop_before: Duration,
    /// At most this many due connections are read per run; the rest stay due for the next run.
    pub max_connections: usize,
    /// The shards this run covers (None: all).
    pub shards: Option<Vec<u32>>,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { concurrency: 16, stop_before: Duration::from_secs(10), max_connections: 20_000, shards: None }
    }
}

/// What one run did; returned by the function and logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Due connections the index returned.
    pub found: usize,
    /// Connections that got their incremental pulls.
    pub pulled: usize,
    /// Jobs enqueued (incremental pulls and initial full pulls).
    pub jobs: usize,
    /// Connections whose missing initial sync this run enqueued.
    pub initial_started: usize,
    pub skipped_breaker_open: usize,
    pub skipped_quota_spent: usize,
    pub skipped_initial_running: usize,
    pub skipped_provider_disabled: usize,
    /// No longer active (or the tenant is gone): taken out of the index.
    pub dropped: usize,
    /// Another run moved the connection first: it enqueued (or skipped) it.
    pub lost_race: usize,
    /// Errors: the connection stays due and the next run tries again.
    pub failed: usize,
    pub left_for_next_run: usize,
    pub shards_left_for_next_run: usize,
    /// Seconds past its due time of the most overdue connection found.
    pub most_overdue_seconds: i64,
    /// Connections whose copy is older than twice their interval (`sync::freshness`).
    pub stale_connections: usize,
    /// Age of the oldest copy among the connections this run looked at.
    pub oldest_copy_seconds: i64,
    pub failures_by_code: BTreeMap<u16, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pulled(usize),
    InitialStarted(usize),
    Skipped(Skip),
    Dropped,
    LostRace,
    Failed(u16),
    Left,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    BreakerOpen,
    QuotaSpent,
    InitialRunning,
    ProviderDisabled,
}

/// A due connection as read from the index.
#[derive(Debug, Clone)]
pub struct DueConnection {
    pub connection: Connection,
    pub next_sync_at: i64,
    pub initial: InitialState,
    item: Item,
}

/// What the run looked up once and shares between connections.
#[derive(Default)]
struct RunCache {
    tenants: HashMap<String, Option<Tenant>>,
    quota_spent: HashMap<String, bool>,
    provider_open: HashMap<Provider, Option<chrono::Duration>>,
    stale: usize,
    oldest_copy: i64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The scheduled sync: reads the `sync_due` index, enqueues pulls, advances each connection.
#[derive(Clone, Debug)]
pub struct SyncScheduler {
    db: aws_sdk_dynamodb::Client,
    table: String,
    tenants: TenantStore,
    guard: ProviderGuard,
    jobs: JobQueue,
    initial: InitialSync,
    parked: ParkedJobs,
}

impl SyncScheduler {
    pub fn new(config: &Config, clients: &AwsClients) -> Self {
        let jobs = JobQueue::new(clients.sqs.clone(), SyncQueues::from_config(config));
        let events = EventPublisher::new(clients.sqs.clone(), config.queues.events.clone());
        SyncScheduler {
            db: clients.dynamodb.clone(),
            table: config.tables.grants.clone(),
            tenants: TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            guard: ProviderGuard::new(config, clients.dynamodb.clone()),
            initial: InitialSync::new(clients.dynamodb.clone(), config.tables.grants.clone(), jobs.clone(), events),
            parked: ParkedJobs::new(
                clients.dynamodb.clone(),
                config.tables.sync.clone(),
                clients.sqs.clone(),
                SyncQueues::from_config(config),
            ),
            jobs,
        }
    }

    pub fn initial(&self) -> &InitialSync {
        &self.initial
    }

    /// A connection's schedule and initial-sync state (None: no such connection).
    pub async fn connection_schedule(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Result<Option<DueConnection>> {
        let item = crate::store::get_item(&self.db, &self.table, tenant_pk(tenant_id), connection_sk(provider, org_id)).await?;
        item.map(due_from_item).transpose()
    }

    /// Puts an active connection on the schedule at its next slot. For connections stored before
    /// scheduled sync existed (an operator's backfill): with `initial_done` the connection is
    /// treated as already copied (no initial full sync, no `sync.initial_completed`); without it the
    /// next run enqueues the initial sync.
    pub async fn enroll(&self, tenant: &Tenant, provider: Provider, org_id: &str, initial_done: bool, now: DateTime<Utc>) -> Result<i64> {
        let next = if initial_done { next_slot(tenant, provider, org_id, now) } else { now.timestamp() };
        let mut update = String::from("SET sync_pk = :spk, next_sync_at = :next");
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&tenant.tenant_id)))
            .key("sk", s(connection_sk(provider, org_id)))
            .condition_expression("attribute_exists(pk) AND #st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
            .expression_attribute_values(":spk", s(sync_pk(&tenant.tenant_id, provider, org_id)))
            .expression_attribute_values(":next", n(next));
        if initial_done {
            update.push_str(", init_entities = :ents, init_done = :done, init_sent_at = :now, init_completed_at = :now");
            let ents: Vec<String> = tenant.config.enabled_entities.iter().map(|e| entity_str(*e).to_string()).collect();
            req = req
                .expression_attribute_values(":ents", AttributeValue::L(ents.iter().map(|e| s(e.clone())).collect()))
                .expression_attribute_values(":done", AttributeValue::Ss(ents))
                .expression_attribute_values(":now", n(now.timestamp()));
        }
        match req.update_expression(update).send().await {
            Ok(_) => Ok(next),
            Err(e) if is_conditional_failure(&e) => Err(Error::NotFound(format!("no active {provider} connection for org {org_id}"))),
            Err(e) => Err(dynamo_error("UpdateItem(enroll)", e)),
        }
    }

    /// One run at `now` (injected so a simulated day can be run). `deadline` is when the
    /// invocation must have answered.
    pub async fn run(&self, now: DateTime<Utc>, deadline: Instant, limits: &RunLimits) -> Result<RunReport> {
        let shards: Vec<u32> = (0..SYNC_SHARDS).filter(|s| limits.shards.as_ref().is_none_or(|only| only.contains(s))).collect();
        let total_shards = shards.len();
        let cache = Mutex::new(RunCache::default());
        let room = Mutex::new(limits.max_connections);
        let (cache, room) = (&cache, &room);
        let shard_errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
        let shards_left = Mutex::new(0usize);
        let most_overdue = Mutex::new(0i64);
        let (shard_errors_r, shards_left_r, most_overdue_r) = (&shard_errors, &shards_left, &most_overdue);
        let found = Mutex::new(0usize);
        let found_r = &found;
        let outcomes: Vec<Outcome> = futures::stream::iter(shards)
            .then(|shard| async move {
                let left = *lock(room);
                if left == 0 || Instant::now() + limits.stop_before >= deadline {
                    *lock(shards_left_r) += 1;
                    return Vec::new();
                }
                match self.due_in_shard(shard, now.timestamp(), left).await {
                    Ok(due) => {
                        *lock(room) = left.saturating_sub(due.len());
                        *lock(found_r) += due.len();
                        if let Some(d) = due.first() {
                            let mut m = lock(most_overdue_r);
                            *m = (*m).max(now.timestamp() - d.next_sync_at);
                        }
                        due
                    }
                    Err(e) => {
                        tracing::error!(code = %e.code(), error = %e, shard, "could not read a shard of the sync index");
                        lock(shard_errors_r).push(e);
                        Vec::new()
                    }
                }
            })
            .flat_map(futures::stream::iter)
            .map(|d| async move {
                if Instant::now() + limits.stop_before >= deadline {
                    return Outcome::Left;
                }
                let (tenant_id, provider) = (d.connection.tenant_id.clone(), d.connection.provider);
                let work = Box::pin(self.handle(d, now, cache));
                crate::context::scoped(|c| c.with_tenant(tenant_id).with_provider(provider), work).await
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        let shard_errors = std::mem::take(&mut *lock(&shard_errors));
        if !shard_errors.is_empty() && shard_errors.len() == total_shards {
            return Err(shard_errors.into_iter().next().expect("not empty"));
        }
        // One guard: two `lock(cache)` temporaries in one expression would deadlock.
        let (stale_connections, oldest_copy_seconds) = {
            let c = lock(cache);
            (c.stale, c.oldest_copy)
        };
        let mut report = RunReport {
            found: *lock(&found),
            shards_left_for_next_run: *lock(&shards_left),
            most_overdue_seconds: (*lock(&most_overdue)).max(0),
            stale_connections,
            oldest_copy_seconds,
            ..Default::default()
        };
        for e in &shard_errors {
            *report.failures_by_code.entry(e.code().as_u16()).or_default() += 1;
        }
        for o in outcomes {
            match o {
                Outcome::Pulled(jobs) => {
                    report.pulled += 1;
                    report.jobs += jobs;
                }
                Outcome::InitialStarted(jobs) => {
                    report.initial_started += 1;
                    report.jobs += jobs;
                }
                Outcome::Skipped(Skip::BreakerOpen) => report.skipped_breaker_open += 1,
                Outcome::Skipped(Skip::QuotaSpent) => report.skipped_quota_spent += 1,
                Outcome::Skipped(Skip::InitialRunning) => report.skipped_initial_running += 1,
                Outcome::Skipped(Skip::ProviderDisabled) => report.skipped_provider_disabled += 1,
                Outcome::Dropped => report.dropped += 1,
                Outcome::LostRace => report.lost_race += 1,
                Outcome::Failed(code) => {
                    report.failed += 1;
                    *report.failures_by_code.entry(code).or_default() += 1;
                }
                Outcome::Left => report.left_for_next_run += 1,
            }
        }
        tracing::info!(
            found = report.found,
            pulled = report.pulled,
            jobs = report.jobs,
            initial_started = report.initial_started,
            skipped_breaker_open = report.skipped_breaker_open,
            skipped_quota_spent = report.skipped_quota_spent,
            skipped_initial_running = report.skipped_initial_running,
            dropped = report.dropped,
            lost_race = report.lost_race,
            failed = report.failed,
            left_for_next_run = report.left_for_next_run,
            most_overdue_seconds = report.most_overdue_seconds,
            stale_connections = report.stale_connections,
            oldest_copy_seconds = report.oldest_copy_seconds,
            "scheduled sync run"
        );
        crate::telemetry::metric("SyncScheduleJobs", report.jobs as f64, "Count", &[]);
        crate::telemetry::metric("SyncScheduleMostOverdueSeconds", report.most_overdue_seconds as f64, "Seconds", &[]);
        crate::telemetry::metric("SyncStaleConnections", report.stale_connections as f64, "Count", &[]);
        crate::telemetry::metric("SyncOldestCopySeconds", report.oldest_copy_seconds as f64, "Seconds", &[]);
        Ok(report)
    }

    /// One shard of the index, most overdue first, at most `limit` connections.
    async fn due_in_shard(&self, shard: u32, now: i64, limit: usize) -> Result<Vec<DueConnection>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .index_name(SYNC_INDEX)
                .key_condition_expression("sync_pk = :p AND next_sync_at <= :t")
                .expression_attribute_values(":p", s(sync_shard_pk(shard)))
                .expression_attribute_values(":t", n(now))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(sync_due)", e))?;
            for item in page.items.unwrap_or_default() {
                match due_from_item(item) {
                    Ok(d) => out.push(d),
                    // One unreadable row must not stop every other connection's sync.
                    Err(e) => tracing::error!(code = %e.code(), error = %e, shard, "skipping an unreadable connection in the sync index"),
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    async fn handle(&self, d: DueConnection, now: DateTime<Utc>, cache: &Mutex<RunCache>) -> Outcome {
        match self.decide(&d, now, cache).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(code = %e.code(), error = %e, org_id = %d.connection.org_id, "scheduled sync of a connection failed; it stays due");
                Outcome::Failed(e.code().as_u16())
            }
        }
    }

    async fn decide(&self, d: &DueConnection, now: DateTime<Utc>, cache: &Mutex<RunCache>) -> Result<Outcome> {
        let c = &d.connection;
        if c.status != GrantStatus::Active {
            return self.drop_from_index(d, true).await;
        }
        let Some(tenant) = self.tenant(&c.tenant_id, cache).await? else {
            return self.drop_from_index(d, false).await;
        };
        let next = next_slot(&tenant, c.provider, &c.org_id, now);
        if !tenant.provider_enabled(c.provider) {
            return self.reschedule(d, next, Outcome::Skipped(Skip::ProviderDisabled)).await;
        }
        // Every connection is due once per interval, so each run sees a slice of them and any
        // window of one interval sees every one: how fresh is its copy?
        let entities: Vec<_> = tenant.config.enabled_entities.iter().map(|e| e.model()).collect();
        let age = freshness::copy_age_seconds(&d.item, &entities, c.created_at, now);
        {
            let mut cache = lock(cache);
            cache.oldest_copy = cache.oldest_copy.max(age);
            if freshness::is_stale(age, i64::from(interval_minutes(&tenant)) * 60) {
                cache.stale += 1;
                tracing::warn!(org_id = %c.org_id, copy_age_seconds = age, "the connection's copy is older than twice its interval");
            }
        }
        // The connection is active; with quota left, jobs parked for a re-authorisation or the
        // quota can run again (before the initial-sync checks: a reconnect starts one). Only
        // connections marked by a parking, or new ones (a reconnect writes a fresh item), are
        // looked at: no query for the others.
        let mark = get_n_opt(&d.item, CONNECTION_MARK);
        if (mark.is_some() || d.initial.sent_at.is_none()) && !self.quota_spent(&tenant, now, cache).await? {
            self.release_parked(c, mark).await;
        }
        let init = &d.initial;
        if init.sent_at.is_none() {
            return match self.initial.start(&tenant, c, now).await? {
                Started::Enqueued { jobs } => self.reschedule(d, next, Outcome::InitialStarted(jobs)).await,
                // Being sent by the connect right now (or it died holding the claim): look again soon.
                Started::AlreadyStarted => {
                    let soon = next.min(now.timestamp() + INITIAL_RETRY.num_seconds());
                    self.reschedule(d, soon, Outcome::Skipped(Skip::InitialRunning)).await
                }
            };
        }
        if init.completed_at.is_none() {
            if init.all_done() {
                // The last finisher died between its write and the event: send it now.
                if let Err(e) = self.initial.complete_if_done(&c.tenant_id, c.provider, &d.item, now).await {
                    tracing::warn!(code = %e.code(), error = %e, "could not send sync.initial_completed; next run tries again");
                }
            } else if init.sent_at.is_some_and(|t| now.timestamp() - t < INITIAL_GRACE.num_seconds()) {
                return self.reschedule(d, next, Outcome::Skipped(Skip::InitialRunning)).await;
            }
        }
        if self.quota_spent(&tenant, now, cache).await? {
            return self.reschedule(d, next, Outcome::Skipped(Skip::QuotaSpent)).await;
        }
        if let Some(open_for) = self.breaker_open(c, cache).await? {
            let again = now + open_for.max(BREAKER_RECHECK);
            tracing::info!(org_id = %c.org_id, "breaker open: scheduled pull skipped");
            return self.reschedule(d, next.min(again.timestamp()), Outcome::Skipped(Skip::BreakerOpen)).await;
        }
        // Advance first: the run that moves the connection is the one that enqueues.
        if self.advance(d, next).await? == Outcome::LostRace {
            return Ok(Outcome::LostRace);
        }
        let jobs = scheduled_jobs(&tenant, c, d.next_sync_at, now);
        match self.jobs.send(&jobs).await {
            Ok(_) => Ok(Outcome::Pulled(jobs.len())),
            Err(e) => {
                // Put the connection back where it was so the next run enqueues it.
                let rolled_back = self.move_next(c, next, d.next_sync_at).await;
                if !matches!(rolled_back, Ok(true)) {
                    tracing::error!(org_id = %c.org_id, "scheduled pull neither enqueued nor put back: it waits for the next slot");
                }
                Err(e)
            }
        }
    }

    async fn release_parked(&self, c: &Connection, mark: Option<i64>) {
        let released = async {
            let n = self.parked.release(&c.tenant_id, c.provider, &c.org_id).await?;
            if let Some(seen) = mark {
                self.parked.clear_mark(&self.table, &c.tenant_id, c.provider, &c.org_id, seen).await?;
            }
            Ok::<usize, Error>(n)
        };
        if let Err(e) = released.await {
            tracing::warn!(code = %e.code(), error = %e, org_id = %c.org_id, "could not release parked jobs; the next run tries again");
        }
    }

    async fn tenant(&self, tenant_id: &str, cache: &Mutex<RunCache>) -> Result<Option<Tenant>> {
        if let Some(t) = lock(cache).tenants.get(tenant_id) {
            return Ok(t.clone());
        }
        let t = match self.tenants.get(tenant_id).await {
            Ok(t) => Some(t),
            Err(Error::TenantNotFound(_)) => None,
            Err(e) => return Err(e),
        };
        lock(cache).tenants.insert(tenant_id.to_string(), t.clone());
        Ok(t)
    }

    async fn quota_spent(&self, tenant: &Tenant, now: DateTime<Utc>, cache: &Mutex<RunCache>) -> Result<bool> {
        if let Some(spent) = lock(cache).quota_spent.get(&tenant.tenant_id) {
            return Ok(*spent);
        }
        let used = self.tenants.api_calls_used(&tenant.tenant_id, now).await?;
        let spent = used >= tenant.limits().api_calls_per_month;
        lock(cache).quota_spent.insert(tenant.tenant_id.clone(), spent);
        Ok(spent)
    }

    /// How long the provider's or the org's breaker stays open (None: closed or half-open, where
    /// the worker's calls are the probes).
    async fn breaker_open(&self, c: &Connection, cache: &Mutex<RunCache>) -> Result<Option<chrono::Duration>> {
        let cached = lock(cache).provider_open.get(&c.provider).copied();
        let provider_open = match cached {
            Some(v) => v,
            None => {
                let v = open_remaining(&self.guard.breaker_state(c.provider, None).await?);
                lock(cache).provider_open.insert(c.provider, v);
                v
            }
        };
        if provider_open.is_some() {
            return Ok(provider_open);
        }
        Ok(open_remaining(&self.guard.breaker_state(c.provider, Some(&c.org_id)).await?))
    }

    async fn reschedule(&self, d: &DueConnection, to: i64, outcome: Outcome) -> Result<Outcome> {
        match self.move_next(&d.connection, d.next_sync_at, to).await? {
            true => Ok(outcome),
            false => Ok(Outcome::LostRace),
        }
    }

    async fn advance(&self, d: &DueConnection, to: i64) -> Result<Outcome> {
        self.reschedule(d, to, Outcome::Pulled(0)).await
    }

    /// `next_sync_at` from `from` to `to`, only if it still is `from` and the connection is still
    /// the same active one. False: another run (or a reconnect) moved it first.
    async fn move_next(&self, c: &Connection, from: i64, to: i64) -> Result<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&c.tenant_id)))
            .key("sk", s(connection_sk(c.provider, &c.org_id)))
            .update_expression("SET next_sync_at = :to")
            .condition_expression("next_sync_at = :from AND grant_id = :g AND #st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":to", n(to))
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":g", s(&c.grant_id))
            .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(next_sync_at)", e)),
        }
    }

    /// Takes a connection out of the index: it is no longer active, or its tenant is gone.
    async fn drop_from_index(&self, d: &DueConnection, inactive: bool) -> Result<Outcome> {
        let c = &d.connection;
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&c.tenant_id)))
            .key("sk", s(connection_sk(c.provider, &c.org_id)))
            .update_expression("REMOVE sync_pk")
            .expression_attribute_values(":from", n(d.next_sync_at));
        req = if inactive {
            req.condition_expression("next_sync_at = :from AND #st <> :active")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
        } else {
            req.condition_expression("next_sync_at = :from")
        };
        match req.send().await {
            Ok(_) => {
                tracing::info!(org_id = %c.org_id, inactive, "connection taken off the sync schedule");
                Ok(Outcome::Dropped)
            }
            Err(e) if is_conditional_failure(&e) => Ok(Outcome::LostRace),
            Err(e) => Err(dynamo_error("UpdateItem(unschedule)", e)),
        }
    }
}

fn open_remaining(snap: &crate::resilience::breaker::BreakerSnapshot) -> Option<chrono::Duration> {
    if snap.state != BreakerState::Open {
        return None;
    }
    // Breakers keep real time (microseconds); an open breaker past its time turns half-open on the
    // next call, which is then a probe: let the pull go.
    let left_us = snap.open_until_us - crate::resilience::limiter::now_us();
    (left_us > 0).then(|| chrono::Duration::microseconds(left_us))
}

fn due_from_item(item: Item) -> Result<DueConnection> {
    let connection = GrantStore::connection_from_item(&item)?;
    let next_sync_at = get_n_opt(&item, "next_sync_at")
        .ok_or_else(|| Error::Storage { message: "connection in the sync index has no next_sync_at".into(), retryable: false })?;
    let initial = InitialState::from_item(&item);
    Ok(DueConnection { connection, next_sync_at, initial, item })
}

/// How often a connection's scheduled pull is a full pass instead of an incremental one: the full
/// pass is what finds records deleted at the provider without a webhook or CDC saying so
/// (`sync::reconcile`), and it costs a read of every record, so the plans that pay for more
/// calls get it more often.
pub fn full_pass_every_s(plan: Plan) -> i64 {
    match plan {
        Plan::Starter => 7 * 86_400,
        Plan::Professional => 86_400,
        Plan::Enterprise => 12 * 3_600,
    }
}

/// Whether the slot at `due_at` is the connection's full pass: the first slot in each of its
/// full-pass periods. The periods are offset per connection (like the slots), so full passes are
/// spread over the period instead of all following midnight.
pub fn is_full_pass_slot(tenant: &Tenant, provider: Provider, org_id: &str, due_at: i64) -> bool {
    let period = full_pass_every_s(tenant.plan);
    let interval = i64::from(interval_minutes(tenant)) * 60;
    if interval >= period {
        return true;
    }
    let offset = (fnv64(&["full", &tenant.tenant_id, provider.as_str(), org_id]) % period as u64) as i64;
    (due_at - offset).div_euclid(period) != (due_at - interval - offset).div_euclid(period)
}

/// One pull per enabled entity: incremental (no cursor: the worker resumes from the stored one),
/// or a full pass on the connection's full-pass slot.
fn scheduled_jobs(tenant: &Tenant, c: &Connection, due_at: i64, now: DateTime<Utc>) -> Vec<SyncJob> {
    let correlation_id = crate::context::mint_correlation_id();
    let cursor = is_full_pass_slot(tenant, c.provider, &c.org_id, due_at).then(|| crate::jobs::FULL_SYNC.to_string());
    let mut entities = tenant.config.enabled_entities.clone();
    entities.sort();
    entities.dedup();
    entities
        .into_iter()
        .map(|e| SyncJob {
            version: JOB_VERSION,
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: c.tenant_id.clone(),
            provider: c.provider,
            org_id: c.org_id.clone(),
            operation: Operation::Pull,
            entity: e,
            entity_id: None,
            cursor: cursor.clone(),
            change: None,
            merged_from: None,
            priority: tenant.config.queue_priority,
            idempotency_key: scheduled_key(c.provider, &c.org_id, e, due_at),
            correlation_id: correlation_id.clone(),
            requested_at: now,
            source: Source::Schedule,
            totals_before: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_repeat_every_interval_and_never_come_early() {
        let (i, off) = (3600, 1234);
        assert_eq!(next_slot_after(0, i, off), 1234);
        assert_eq!(next_slot_after(1233, i, off), 1234);
        assert_eq!(next_slot_after(1234, i, off), 1234 + 3600, "strictly after");
        assert_eq!(next_slot_after(1_700_000_000, i, off) % i, off);
        for t in [0i64, 1, 1233, 1234, 99_999, 1_700_000_123] {
            let n = next_slot_after(t, i, off);
            assert!(n > t && n - t <= i, "{t} -> {n}");
        }
    }

    #[test]
    fn offsets_spread_connections_over_the_interval() {
        // 100,000 hourly connections: every minute of the hour gets about 1/60 of them.
        let mut per_minute = [0u32; 60];
        for k in 0..100_000 {
            let off = slot_offset(&format!("t-{k}"), Provider::Xero, &format!("org-{k}"), 3600);
            assert!((0..3600).contains(&off));
            per_minute[(off / 60) as usize] += 1;
        }
        let (min, max) = (per_minute.iter().min().unwrap(), per_minute.iter().max().unwrap());
        assert!(*min > 1_500 && *max < 1_850, "uneven spread: {min}..{max} per minute");
        // Shards too.
        let mut per_shard = [0u32; SYNC_SHARDS as usize];
        for k in 0..16_000 {
            per_shard[sync_shard(&format!("t-{k}"), Provider::Zoho, "o") as usize] += 1;
        }
        assert!(per_shard.iter().all(|c| (800..1200).contains(c)), "{per_shard:?}");
    }

    #[test]
    fn exactly_one_slot_in_each_full_pass_period_is_a_full_pass() {
        use crate::tenancy::TenantConfig;
        for (plan, minutes) in [(Plan::Enterprise, 5u32), (Plan::Professional, 60), (Plan::Starter, 1440)] {
            let mut t = Tenant::new("t-full", "T", plan, TenantConfig::default(), Utc::now());
            t.config.sync_frequency_minutes = minutes;
            let interval = i64::from(interval_minutes(&t)) * 60;
            let period = full_pass_every_s(plan);
            let off = slot_offset(&t.tenant_id, Provider::Xero, "org-1", interval);
            // Four periods of consecutive slots: one full pass in each, a period apart.
            let slots: Vec<i64> =
                (0..4 * period / interval).map(|k| 1_800_000_000 - 1_800_000_000 % interval + off + k * interval).collect();
            let full: Vec<i64> = slots.iter().copied().filter(|d| is_full_pass_slot(&t, Provider::Xero, "org-1", *d)).collect();
            assert!((4..=5).contains(&full.len()), "{plan:?}: {} full passes in four periods", full.len());
            assert!(full.windows(2).all(|w| w[1] - w[0] == period), "{plan:?}: {full:?}");
        }
        // Spread over the period, not all after midnight.
        let t = Tenant::new("t", "T", Plan::Professional, crate::tenancy::TenantConfig::default(), Utc::now());
        let mut hours = std::collections::HashSet::new();
        for k in 0..200 {
            let org = format!("org-{k}");
            let off = slot_offset("t", Provider::Zoho, &org, 3600);
            let first = (0..24)
                .map(|h| 1_800_000_000 - 1_800_000_000 % 86_400 + off + h * 3600)
                .find(|d| is_full_pass_slot(&t, Provider::Zoho, &org, *d));
            hours.insert(first.expect("one full pass a day") % 86_400 / 3600);
        }
        assert!(hours.len() > 18, "full passes fall in {} of 24 hours", hours.len());
    }

    #[test]
    fn the_interval_never_goes_below_the_plan_minimum() {
        use crate::tenancy::{Plan, TenantConfig};
        let mut t = Tenant::new("t", "T", Plan::Starter, TenantConfig::default(), Utc::now());
        t.config.sync_frequency_minutes = 5;
        assert_eq!(interval_minutes(&t), 60);
        t.plan = Plan::Enterprise;
        assert_eq!(interval_minutes(&t), 5);
        t.config.sync_frequency_minutes = 5000;
        assert_eq!(interval_minutes(&t), 1440);
    }

    #[test]
    fn scheduled_keys_differ_per_due_time_and_entity() {
        use crate::tenancy::Entity;
        let a = scheduled_key(Provider::QuickBooks, "9341", Entity::Invoice, 100);
        assert_ne!(a, scheduled_key(Provider::QuickBooks, "9341", Entity::Invoice, 160));
        assert_ne!(a, scheduled_key(Provider::QuickBooks, "9341", Entity::Contact, 100));
        assert!(a.len() < 200);
    }
}
