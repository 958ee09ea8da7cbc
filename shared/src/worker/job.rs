//! One sync job, start to finish: claim its idempotency key, load the tenant and its connection,
//! pull (every page, resumable), push (through each provider's idempotency mechanism) or re-read a
//! webhook's record, write the normalised records, advance the cursor, mark the job done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::aws::AwsClients;
use crate::events::{AppEvent, EventPublisher, EventType};
use crate::jobs::{Change, LineageTotals, Operation, SyncJob, SyncQueues, FULL_SYNC};
use crate::providers::client::{AccountingProvider, ProviderClient};
use crate::providers::model::{Cursor, Entity, Record};
use crate::refresh::TokenService;
use crate::store::grants::GrantStore;
use crate::sync::model::{self, SyncRecord};
use crate::sync::store::{Claim, SyncStore, COMPLETED_TTL};
use crate::tenancy::{self, Tenant, TenantStore};
use crate::worker::calls::{provider_call, Op};
use crate::{Config, Error, Provider, Result};

/// QuickBooks CDC looks back at most 30 days; older windows fall back to the query's changes only.
const CDC_MAX_AGE: chrono::Duration = chrono::Duration::days(29);

/// Test hook: called after each page is stored with the number of pages this run stored; returning
/// true makes the run panic there, as if the process had died (no clean-up runs).
pub type CrashPoint = Arc<dyn Fn(u32) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct WorkerSettings {
    /// Stop paging and hand over to a follow-up job when less than this is left before the deadline;
    /// provider calls must return by half of it before the deadline (the guard holds them to that).
    pub deadline_margin: Duration,
    /// Page size for pulls (None: the provider's default).
    pub page_size: Option<u32>,
    pub crash_after_page: Option<CrashPoint>,
    /// Test hook: panic after the job's completion is stored and before its event is published,
    /// as if the process had died there.
    pub crash_before_publish: bool,
    /// Receives after which a job waiting for a rate limit, quota or re-auth is re-sent as a fresh
    /// message instead of returned, so it never reaches the queue's redrive limit (5 in the template).
    pub requeue_at_receive: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            deadline_margin: Duration::from_secs(20),
            page_size: None,
            crash_after_page: None,
            crash_before_publish: false,
            requeue_at_receive: 4,
        }
    }
}

impl std::fmt::Debug for WorkerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSettings").field("deadline_margin", &self.deadline_margin).field("page_size", &self.page_size).finish()
    }
}

/// Everything the worker needs, built once per container.
pub struct SyncDeps {
    pub tokens: TokenService,
    /// Rate limits, concurrency slots and breakers shared by every worker (RESILIENCE_TABLE).
    pub guard: crate::resilience::ProviderGuard,
    pub store: SyncStore,
    /// What a full pass listed, and the records it no longer lists (`sync::reconcile`).
    pub reconciler: crate::sync::reconcile::Reconciler,
    /// Each pull's end, for `connections health`, the records API and the scheduler's stale check.
    pub freshness: crate::sync::freshness::FreshnessStore,
    pub tenants: TenantStore,
    pub grants: GrantStore,
    pub events: EventPublisher,
    pub sqs: aws_sdk_sqs::Client,
    pub db: aws_sdk_dynamodb::Client,
    /// Where provider-call audit records go (the tenants table, beside the token audit).
    pub audit_table: String,
    pub queues: SyncQueues,
    /// The dead-letter queue for malformed and permanently failing jobs. None: the source queue's
    /// own redrive target (read from its RedrivePolicy once per container).
    pub dlq_url: Option<String>,
    pub settings: WorkerSettings,
    /// This container's claim owner id.
    pub owner: String,
    /// Webhook nonces (EPHEMERAL_TABLE): a webhook job confirms its delivery's claim (worker::batch).
    pub nonces: crate::webhooks::NonceStore,
    pub(crate) queue_urls: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for SyncDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDeps").field("owner", &self.owner).field("settings", &self.settings).finish()
    }
}

impl SyncDeps {
    pub fn new(config: &Config, clients: &AwsClients, tokens: TokenService) -> Self {
        SyncDeps {
            tokens,
            guard: crate::resilience::ProviderGuard::new(config, clients.dynamodb.clone())
                .with_events(EventPublisher::new(clients.sqs.clone(), config.queues.events.clone())),
            store: SyncStore::new(clients.dynamodb.clone(), config.tables.sync.clone()),
            reconciler: crate::sync::reconcile::Reconciler::new(clients.dynamodb.clone(), config.tables.sync.clone()),
            freshness: crate::sync::freshness::FreshnessStore::new(
                clients.dynamodb.clone(),
                config.tables.sync.clone(),
                config.tables.grants.clone(),
            ),
            tenants: TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            grants: GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
            events: EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            sqs: clients.sqs.clone(),
            db: clients.dynamodb.clone(),
            audit_table: config.tables.tenants.clone(),
            queues: SyncQueues::from_config(config),
            dlq_url: None,
            settings: WorkerSettings::default(),
            owner: format!("sync-{}", uuid::Uuid::new_v4().simple()),
            nonces: crate::webhooks::NonceStore::new(clients.dynamodb.clone(), config.tables.ephemeral.clone()),
            queue_urls: Default::default(),
        }
    }

    pub fn with_settings(mut self, settings: WorkerSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn with_dlq_url(mut self, url: impl Into<String>) -> Self {
        self.dlq_url = Some(url.into());
        self
    }
}

/// The job with what the worker looked up for it.
#[derive(Debug, Clone)]
pub struct JobCtx {
    pub job: SyncJob,
    pub tenant: Tenant,
    pub provider: Provider,
    pub org_id: String,
    pub entity: Entity,
    pub grant_id: String,
    /// The grant's scopes, for the scope check.
    pub scopes: Vec<String>,
    /// Push jobs: the record to create (the message's `payload`, which `SyncJob` does not carry).
    pub payload: Option<Value>,
}

/// What running a job came to (errors are returned separately and classified by the caller).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done now; the stored result.
    Done(Value),
    /// Done before (same idempotency key): the result stored then. Nothing was applied again.
    Duplicate(Value),
    /// Another invocation is running this key until then: try again after it.
    InProgress { retry_after: Duration },
}

pub fn entity_of(e: tenancy::Entity) -> Entity {
    e.model()
}

/// Checks a parsed job's fields beyond what serde checks; any failure is permanent (DLQ).
pub fn validate(job: &SyncJob, payload: Option<&Value>) -> Result<()> {
    let mut problems = Vec::new();
    if !tenancy::valid_tenant_id(&job.tenant_id) {
        problems.push("tenant_id must be 1-64 letters, digits, '-' or '_'");
    }
    if job.org_id.is_empty() || job.org_id.len() > 64 || !job.org_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        problems.push("org_id must be 1-64 letters, digits or '-'");
    }
    if job.idempotency_key.is_empty() || job.idempotency_key.len() > 256 {
        problems.push("idempotency_key must be 1-256 characters");
    }
    if job.job_id.is_empty() || job.job_id.len() > 128 {
        problems.push("job_id must be 1-128 characters");
    }
    if job.entity_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > model::MAX_ID_LEN) {
        problems.push("entity_id must be 1-255 characters");
    }
    if !problems.is_empty() {
        return Err(Error::InvalidInput(format!("sync job rejected: {}", problems.join("; "))));
    }
    if job.operation == Operation::Push {
        crate::writes::WriteRequest::parse(payload, entity_of(job.entity))?;
    }
    Ok(())
}

/// Runs one job exactly once per idempotency key: claims the key until `deadline`, runs it, stores
/// the result. A failed run releases the key so the retry can run; a run that dies leaves the claim
/// to expire at `deadline`.
///
/// Events: the completion is stored first, then announced ([`announce`]). A job found done
/// before (a redelivery after a crash or a failed publish, or the same job sent twice) is
/// announced again with the same event id, so every completed job's event reaches the app at
/// least once and the app recognises repeats. A failed announcement fails the message, whose
/// redelivery announces it.
pub async fn run_job(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>, deadline: DateTime<Utc>) -> Result<Outcome> {
    let now = Utc::now();
    match deps.store.claim_job(&job.tenant_id, &job.idempotency_key, &deps.owner, deadline, now).await? {
        Claim::Completed(result) => {
            tracing::info!(idempotency_key = %job.idempotency_key, "job already done; not applied again, announced again");
            announce(deps, job, &result).await?;
            return Ok(Outcome::Duplicate(result));
        }
        Claim::InProgress { until_ms } => {
            let wait = (until_ms - now.timestamp_millis()).clamp(1000, 900_000) as u64;
            return Ok(Outcome::InProgress { retry_after: Duration::from_millis(wait) });
        }
        Claim::Claimed => {}
    }
    match execute(deps, job, payload, deadline).await {
        Ok(result) => {
            // A report's job record lives as long as the report it points to, so a repeat after
            // that runs the report again instead of announcing one that is gone.
            let ttl = if job.operation.has_entity() { COMPLETED_TTL } else { crate::reports::store::LIFETIME };
            match deps.store.complete_job(&job.tenant_id, &job.idempotency_key, &deps.owner, &result, Utc::now(), ttl).await {
                Ok(()) => {}
                // Our claim ran out and another worker took the key: its run stands. Ours wrote
                // the same upserts, so nothing is doubled.
                Err(Error::Conflict(m)) => tracing::warn!(message = %m, "job finished after its claim expired"),
                Err(e) => return Err(e),
            }
            if deps.settings.crash_before_publish {
                panic!("injected crash between completion and publish");
            }
            announce(deps, job, &result).await?;
            Ok(Outcome::Done(result))
        }
        Err(e) => {
            if let Err(re) = deps.store.release_job(&job.tenant_id, &job.idempotency_key, &deps.owner).await {
                tracing::warn!(code = %re.code(), error = %re, "could not release the job claim; it expires at the deadline");
            }
            Err(e)
        }
    }
}

async fn load(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>) -> Result<JobCtx> {
    let tenant = deps.tenants.get(&job.tenant_id).await?;
    if !tenant.provider_enabled(job.provider) {
        return Err(Error::ProviderNotEnabled(job.provider));
    }
    if !tenant.config.enabled_entities.contains(&job.entity) {
        return Err(Error::InvalidInput(format!("{ENTITY_NOT_ENABLED}: {:?}", job.entity)));
    }
    let conn = deps
        .grants
        .get_connection(&job.tenant_id, job.provider, &job.org_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no {} connection for org {}", job.provider, job.org_id)))?;
    let grant = deps
        .grants
        .get_grant(&job.tenant_id, job.provider, &conn.grant_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{} grant {}", job.provider, conn.grant_id)))?;
    Ok(JobCtx {
        job: job.clone(),
        provider: job.provider,
        org_id: job.org_id.clone(),
        entity: entity_of(job.entity),
        grant_id: conn.grant_id,
        scopes: grant.scopes,
        payload: payload.cloned(),
        tenant,
    })
}

async fn execute(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>, deadline: DateTime<Utc>) -> Result<Value> {
    if let Operation::Report | Operation::Passthrough = job.operation {
        return crate::worker::report::execute(deps, job, payload, deadline).await;
    }
    let ctx = match load(deps, job, payload).await {
        Ok(ctx) => ctx,
        // The receiver routes webhooks by a copy of the tenant's settings that may lag a change
        // (`tenancy::TenantRouting`): a change for a provider or entity the tenant has since
        // turned off is dropped, not dead-lettered.
        Err(e) if job.operation == Operation::Webhook && stale_routing(&e) => {
            tracing::info!(code = %e.code(), reason = %e, "webhook job for a provider or entity the tenant no longer syncs; skipped");
            return Ok(json!({"operation": "webhook", "skipped": true, "counts": Counts::default()}));
        }
        Err(e) => return Err(e),
    };
    match (job.operation, job.entity_id.as_deref()) {
        (Operation::Push, _) => Box::pin(crate::worker::write::run(deps, &ctx)).await,
        (Operation::Webhook, Some(id)) => one_record(deps, &ctx, id).await,
        _ => pull(deps, &ctx, deadline).await,
    }
}

/// A webhook job the tenant's current settings no longer cover.
fn stale_routing(e: &Error) -> bool {
    match e {
        Error::ProviderNotEnabled(_) => true,
        Error::InvalidInput(m) => m.starts_with(ENTITY_NOT_ENABLED),
        _ => false,
    }
}

const ENTITY_NOT_ENABLED: &str = "entity not enabled for this tenant";

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub(crate) struct Counts {
    fetched: usize,
    written: usize,
    stale: usize,
    pub(crate) deleted: usize,
    skipped: usize,
    /// Stored with a flag (`SyncRecord::flags`): something the provider sent could not be normalised.
    flagged: usize,
    /// Tombstoned at a full pass's end: stored, but no longer listed by the provider
    /// (`sync::reconcile`; also counted in `deleted`).
    #[serde(skip_serializing_if = "is_zero")]
    reconciled: usize,
    /// Missing at a full pass's end but not tombstoned: more than a pass may delete.
    #[serde(skip_serializing_if = "is_zero")]
    reconcile_refused: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a job stored incompletely, for its result and `sync.completed` (never a silent drop).
pub(crate) fn add_warnings(v: &mut Value, counts: &Counts) {
    let mut warnings = Vec::new();
    if counts.flagged > 0 {
        warnings.push(format!(
            "{} record(s) stored with a flag ({}: the provider's amount does not fit integer minor units and is not stored; {}: a \
             document too large for one item is stored without its lines, which the provider still has)",
            counts.flagged,
            model::FLAG_AMOUNT_UNREADABLE,
            model::FLAG_LINES_OMITTED
        ));
    }
    if counts.reconcile_refused > 0 {
        warnings.push(format!(
            "{} stored record(s) were not listed by the provider's full pass: more than a pass may delete, so none was deleted (check the connection, then run a full sync again)",
            counts.reconcile_refused
        ));
    }
    if !warnings.is_empty() {
        v["warnings"] = json!(warnings);
    }
}

/// Normalises provider records; the raw JSON goes beside each one.
pub(crate) fn normalise_all(records: &[Record], counts: &mut Counts) -> Vec<(SyncRecord, Option<String>)> {
    count_finished(records.iter().map(finish).collect(), counts)
}

/// A record into the sync model, with the raw JSON's text stored beside it (`None`: the model
/// cannot take it).
fn finish(r: &Record) -> Finished {
    // The same text as `Display` writes, into one buffer rather than through a formatter.
    model::normalise(r).map(|n| (n, serde_json::to_string(&r.raw).ok()))
}

type Finished = Option<(SyncRecord, Option<String>)>;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn count_finished(finished: Vec<Finished>, counts: &mut Counts) -> Vec<(SyncRecord, Option<String>)> {
    let mut out = Vec::with_capacity(finished.len());
    for f in finished {
        counts.fetched += 1;
        match f {
            Some((n, raw)) => {
                counts.deleted += usize::from(n.deleted);
                counts.flagged += usize::from(!n.flags.is_empty());
                out.push((n, raw));
            }
            None => counts.skipped += 1,
        }
    }
    out
}

pub(crate) async fn write_records(
    deps: &SyncDeps,
    ctx: &JobCtx,
    records: &[(SyncRecord, Option<String>)],
    counts: &mut Counts,
) -> Result<()> {
    write(deps, ctx, records, counts).await
}

async fn write(deps: &SyncDeps, ctx: &JobCtx, records: &[(SyncRecord, Option<String>)], counts: &mut Counts) -> Result<()> {
    let w = deps.store.put_records(&ctx.tenant.tenant_id, records, &ctx.job.job_id, Utc::now()).await?;
    counts.written += w.written;
    counts.stale += w.stale;
    // Before the cursor moves on: a failed announcement fails the job, whose retry re-reads this
    // page and announces what is still marked.
    crate::sync::feed::announce(&deps.events, &ctx.tenant.tenant_id, ctx.provider, &ctx.org_id, &ctx.job.job_id, &w.changes).await
}

/// The cursor a pull starts from: the stored one (so a retried or continued job resumes where the
/// last page was stored), or the job's own cursor when nothing is stored. A `full` job starts from
/// the first record unless the stored cursor was written by its own lineage (it crashed or handed
/// over mid-pass: it resumes there rather than re-reading from page 1). A job cursor that is not
/// one of ours for this provider and entity (garbage, forged, another entity's) is refused: a
/// silent full re-read would spend the org's quota on a bad request.
fn start_cursor(ctx: &JobCtx, stored: Option<&crate::sync::store::StoredCursor>, page_size: Option<u32>) -> Result<Cursor> {
    let fresh = || {
        let c = Cursor::start(ctx.provider, ctx.entity);
        match page_size {
            Some(p) => c.with_page_size(p),
            None => c,
        }
    };
    let usable = |c: &Cursor| c.check(ctx.provider, ctx.entity).is_ok();
    let stored = stored.filter(|st| usable(&st.cursor));
    match ctx.job.cursor.as_deref() {
        Some(FULL_SYNC) => {
            let lineage = lineage_root(&ctx.job.idempotency_key);
            Ok(stored.filter(|st| st.lineage.as_deref() == Some(lineage)).map(|st| st.cursor.clone()).unwrap_or_else(fresh))
        }
        Some(text) => {
            let mut job_cursor: Cursor = serde_json::from_str(text)
                .map_err(|_| Error::InvalidInput("job cursor is not a cursor the worker wrote (send \"full\" or omit it)".into()))?;
            job_cursor.check(ctx.provider, ctx.entity)?;
            // Only the worker starts a full pass's bookkeeping: a cursor from outside that claimed
            // one mid-way would take the records before it for deleted.
            job_cursor.full_pass_started = None;
            Ok(stored.map(|st| st.cursor.clone()).unwrap_or(job_cursor))
        }
        None => Ok(stored.map(|st| st.cursor.clone()).unwrap_or_else(fresh)),
    }
}

/// Every page from the start cursor to the end of the pass, storing the cursor after each page.
///
/// Deletions: QuickBooks through CDC at the end of an incremental pass (documented by Intuit). Xero
/// marks deleted documents `Status: DELETED`; that an `If-Modified-Since` listing returns them is
/// unconfirmed. Zoho lists do not show deleted records (unconfirmed whether any filter does), so
/// Zoho deletions arrive only through webhook jobs (`change: deleted`).
///
/// Every provider call returns by half the margin before `deadline` (the guard does not start an
/// attempt that could not), leaving that half to store the page and hand over; at most half the
/// time left is kept back, so a first page is always tried when it fits. An attempt refused for
/// time after the first page hands over to a follow-up; before it, the job comes back as a retry.
async fn pull(deps: &SyncDeps, ctx: &JobCtx, deadline: DateTime<Utc>) -> Result<Value> {
    let left = (deadline - Utc::now()).to_std().unwrap_or_default();
    let reserve = (deps.settings.deadline_margin / 2).min(left / 2);
    let calls_by = deadline - chrono::Duration::from_std(reserve).unwrap_or(chrono::Duration::seconds(10));
    // Before the first page: a change made after this is delivered by webhook, one before it is
    // read by the pull. Never fails the pull.
    Box::pin(crate::worker::zoho_hooks::ensure_registered(deps, ctx, calls_by)).await;
    crate::resilience::within_deadline(calls_by, Box::pin(pull_pages(deps, ctx, deadline))).await
}

async fn pull_pages(deps: &SyncDeps, ctx: &JobCtx, deadline: DateTime<Utc>) -> Result<Value> {
    let tenant_id = &ctx.tenant.tenant_id;
    let stored = deps.store.get_cursor(tenant_id, ctx.provider, &ctx.org_id, ctx.entity).await?;
    let mut version = stored.as_ref().map(|s| s.version).unwrap_or(0);
    let mut cdc_since = stored.as_ref().and_then(|s| s.cdc_since);
    let mut cursor = start_cursor(ctx, stored.as_ref(), deps.settings.page_size)?;
    if cursor.modified_since.is_none() && cursor.is_first_page() && cursor.full_pass_started.is_none() {
        cursor.full_pass_started = Some(Utc::now());
    }
    let lineage = lineage_root(&ctx.job.idempotency_key);
    let mut counts = Counts::default();
    let mut pages = 0u32;
    let margin = chrono::Duration::from_std(deps.settings.deadline_margin).unwrap_or(chrono::Duration::seconds(20));
    loop {
        if pages > 0 && Utc::now() + margin >= deadline {
            let next = with_counts(follow_up(ctx, &cursor), &counts, pages);
            deps_send_follow_up(deps, &next).await?;
            tracing::info!(pages, next_key = %next.idempotency_key, "deadline near: continuing in a follow-up job");
            return Ok(result_json(ctx, counts, pages, &cursor, Some(&next)));
        }
        let c = cursor.clone();
        let org = ctx.org_id.clone();
        // Each record is normalised as the client reads it, while its parsed JSON is in the cache,
        // and its tree freed at once (a page's trees held through its writes took a 10,000-bill
        // pull to 75 MiB).
        let finished: Arc<std::sync::Mutex<Vec<Finished>>> = Arc::default();
        let page = match provider_call(deps, ctx, ctx.entity, Op::List, None, |client, tokens| {
            let c = c.clone();
            let org = org.clone();
            let finished = finished.clone();
            async move {
                // What an earlier attempt read before it failed is read again.
                lock(&finished).clear();
                client
                    .list_with(&tokens, &org, &c, |r| {
                        let f = finish(r);
                        r.raw = Value::Null;
                        lock(&finished).push(f);
                    })
                    .await
            }
        })
        .await
        {
            Err(e) if pages > 0 && crate::resilience::is_deadline(&e) => {
                let next = follow_up(ctx, &cursor);
                deps_send_follow_up(deps, &next).await?;
                tracing::info!(pages, next_key = %next.idempotency_key, "no time for another page: continuing in a follow-up job");
                return Ok(result_json(ctx, counts, pages, &cursor, Some(&next)));
            }
            r => r?,
        };
        let records = count_finished(std::mem::take(&mut *lock(&finished)), &mut counts);
        write(deps, ctx, &records, &mut counts).await?;
        if let Some(started) = cursor.full_pass_started {
            reconcile_page(deps, ctx, started, &page, &mut counts).await?;
        }
        if !page.has_more && ctx.provider == Provider::QuickBooks && crate::providers::quickbooks::in_cdc(ctx.entity) {
            cdc_since = quickbooks_deletions(deps, ctx, cursor.modified_since.and(cdc_since.or(cursor.modified_since)), &mut counts)
                .await?
                .or(page.next_cursor.modified_since)
                .or(cdc_since);
        }
        version = match deps.store.put_cursor(tenant_id, &ctx.org_id, &page.next_cursor, cdc_since, lineage, version, Utc::now()).await {
            Ok(v) => v,
            Err(Error::Conflict(m)) => {
                // Another job of this org and entity moved the cursor: it carries on from there.
                tracing::info!(message = %m, "cursor moved by another job; stopping here");
                let mut r = result_json(ctx, counts, pages + 1, &page.next_cursor, None);
                r["superseded"] = Value::Bool(true);
                return Ok(r);
            }
            Err(e) => return Err(e),
        };
        pages += 1;
        cursor = page.next_cursor;
        if let Some(crash) = &deps.settings.crash_after_page {
            if crash(pages) {
                panic!("injected crash after page {pages}");
            }
        }
        if !page.has_more {
            return Ok(result_json(ctx, counts, pages, &cursor, None));
        }
    }
}

/// A full pass keeps what each page listed; its last page turns the stored records it never listed
/// into tombstones (written and announced like any deletion), before the cursor moves on, so a
/// retry of the last page does it again rather than never.
async fn reconcile_page(
    deps: &SyncDeps,
    ctx: &JobCtx,
    started: DateTime<Utc>,
    page: &crate::providers::Page,
    counts: &mut Counts,
) -> Result<()> {
    let pass = crate::sync::reconcile::Pass {
        tenant_id: &ctx.tenant.tenant_id,
        provider: ctx.provider,
        org_id: &ctx.org_id,
        entity: ctx.entity,
        started,
    };
    let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    deps.reconciler.seen(pass, &ids, Utc::now()).await?;
    if page.has_more {
        return Ok(());
    }
    let missing = deps.reconciler.missing(pass).await?;
    if let Some(n) = missing.refused {
        tracing::warn!(missing = n, live = missing.live, "full pass: too many stored records not listed; none deleted");
        counts.reconcile_refused += n;
        return Ok(());
    }
    let now = Utc::now();
    let tombstones: Vec<(SyncRecord, Option<String>)> =
        missing.ids.iter().filter_map(|id| model::tombstone(ctx.provider, &ctx.org_id, ctx.entity, id, now)).map(|t| (t, None)).collect();
    if tombstones.is_empty() {
        return Ok(());
    }
    tracing::info!(deleted = tombstones.len(), live = missing.live, "full pass: records no longer listed become tombstones");
    counts.reconciled += tombstones.len();
    counts.deleted += tombstones.len();
    write(deps, ctx, &tombstones, counts).await
}

/// QuickBooks: deletions do not show in queries, so an incremental pass ends with a CDC call over
/// the same window, and the deleted ids become tombstones. Returns the server time to start the
/// next window from. Windows older than CDC's 30 days are skipped (a full sync is the remedy).
async fn quickbooks_deletions(
    deps: &SyncDeps,
    ctx: &JobCtx,
    since: Option<DateTime<Utc>>,
    counts: &mut Counts,
) -> Result<Option<DateTime<Utc>>> {
    let Some(since) = since else { return Ok(None) };
    if since < Utc::now() - CDC_MAX_AGE {
        tracing::warn!(since = %since, "QuickBooks CDC window older than 30 days: deletions before a full sync are not seen");
        return Ok(None);
    }
    let org = ctx.org_id.clone();
    let entity = ctx.entity;
    let (records, server_time) = provider_call(deps, ctx, entity, Op::Cdc, None, |client, tokens| {
        let org = org.clone();
        async move {
            match client {
                ProviderClient::QuickBooks(q) => q.cdc(&tokens, &org, entity, since).await,
                _ => Err(Error::Internal("CDC is QuickBooks only".into())),
            }
        }
    })
    .await?;
    let mut cdc_counts = Counts::default();
    let deletions: Vec<Record> = records.into_iter().filter(|r| r.raw.get("status").and_then(Value::as_str) == Some("Deleted")).collect();
    let mut tombstones = normalise_all(&deletions, &mut cdc_counts);
    for (t, _) in &mut tombstones {
        // A deletion has no other update time than CDC's; keep it after any earlier version.
        t.updated_at = t.updated_at.or(server_time);
    }
    write(deps, ctx, &tombstones, counts).await?;
    counts.deleted += cdc_counts.deleted;
    Ok(server_time)
}

/// How long after its delivery came in a Zoho webhook job re-reads its record. Zoho stamps a change
/// in whole seconds, so two updates of a record within one second are one body from the webhook
/// template we register: one delivery (the nonce check cannot tell them apart) and one job. The
/// second update happened within a second of the first, which came before the delivery; a re-read
/// a second after the delivery (and half a second for the clocks of the receiver, this worker and
/// Zoho's own reads) finds both.
pub const ZOHO_REREAD_AFTER: Duration = Duration::from_millis(1500);
/// A wait before a re-read leaves at least this before the invocation's deadline, or is not made
/// (the provider call's own worst case and the writes after it).
const REREAD_WAIT_ROOM: Duration = Duration::from_secs(30);

/// When a webhook job may re-read its record: a Zoho job not before `ZOHO_REREAD_AFTER` past its
/// delivery, any other at once.
pub fn reread_not_before(job: &SyncJob) -> Option<DateTime<Utc>> {
    let after = chrono::Duration::from_std(ZOHO_REREAD_AFTER).ok()?;
    (job.provider == Provider::Zoho && job.source == crate::jobs::Source::Webhook).then(|| job.requested_at + after)
}

/// A webhook job: re-read the one record (a deletion cannot be re-read: it becomes a tombstone).
async fn one_record(deps: &SyncDeps, ctx: &JobCtx, id: &str) -> Result<Value> {
    let mut counts = Counts::default();
    let tombstone = || model::tombstone(ctx.provider, &ctx.org_id, ctx.entity, id, ctx.job.requested_at);
    let record = if ctx.job.change == Some(Change::Deleted) {
        None
    } else {
        if let Some(wait) = reread_not_before(&ctx.job).and_then(|at| (at - Utc::now()).to_std().ok()) {
            let wait = wait.min(ZOHO_REREAD_AFTER);
            if crate::resilience::deadline::time_left().is_none_or(|left| left > wait + REREAD_WAIT_ROOM) {
                tokio::time::sleep(wait).await;
            }
        }
        let org = ctx.org_id.clone();
        let entity = ctx.entity;
        let owned_id = id.to_string();
        let got = provider_call(deps, ctx, entity, Op::Get, Some(id), |client, tokens| {
            let org = org.clone();
            let id = owned_id.clone();
            async move { client.get(&tokens, &org, entity, &id).await }
        })
        .await;
        match got {
            Ok(r) => Some(r),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        }
    };
    let rows = match record {
        Some(r) => normalise_all(std::slice::from_ref(&r), &mut counts),
        None => {
            counts.deleted += 1;
            tombstone().map(|t| vec![(t, None)]).unwrap_or_default()
        }
    };
    write(deps, ctx, &rows, &mut counts).await?;
    let mut v = json!({"operation": "webhook", "entity_id": id, "counts": counts});
    add_warnings(&mut v, &counts);
    Ok(v)
}

/// Our reference for a pushed record: derived from the tenant and the idempotency key, at most 50
/// characters (QuickBooks' `requestid` limit; Xero's Idempotency-Key allows 128).
pub fn push_reference(tenant_id: &str, idempotency_key: &str) -> String {
    let mut h = Sha256::new();
    h.update((tenant_id.len() as u32).to_be_bytes());
    h.update(tenant_id.as_bytes());
    h.update(idempotency_key.as_bytes());
    format!("tya-{}", &hex::encode(h.finalize())[..40])
}

/// The Zoho custom field (by `api_name`) that carries our push reference. Zoho Books records take
/// `custom_fields: [{api_name, value}]` on create and return them on a read; that the org must
/// define the field first (Settings > Preferences > custom fields, or `POST /settings/fields`) and
/// that a create naming an undefined one is refused are unconfirmed.
pub const ZOHO_PUSH_REF_FIELD: &str = "cf_ttya_push_ref";

/// Whether a Zoho record carries our push reference in `ZOHO_PUSH_REF_FIELD`.
pub(crate) fn carries_reference(raw: &Value, reference: &str) -> bool {
    raw.get("custom_fields").and_then(Value::as_array).is_some_and(|fields| {
        fields.iter().any(|f| {
            f.get("api_name").and_then(Value::as_str) == Some(ZOHO_PUSH_REF_FIELD)
                && f.get("value").and_then(Value::as_str) == Some(reference)
        })
    })
}

fn result_json(ctx: &JobCtx, counts: Counts, pages: u32, cursor: &Cursor, next: Option<&SyncJob>) -> Value {
    let mut v = json!({
        "operation": "pull",
        "counts": counts,
        "pages": pages,
        "cursor": serde_json::to_string(cursor).unwrap_or_default(),
        "continued": next.is_some(),
    });
    if let Some(n) = next {
        v["next_idempotency_key"] = Value::String(n.idempotency_key.clone());
    }
    add_warnings(&mut v, &counts);
    let _ = ctx;
    v
}

pub use crate::jobs::lineage_root;

/// The next job of a long pull: same lineage, same work, starting at `cursor`. Its key is derived
/// from the lineage root and the cursor, so a job that hands over twice (redelivered after a crash)
/// hands over to the same key, which runs once.
pub fn follow_up(ctx: &JobCtx, cursor: &Cursor) -> SyncJob {
    let cursor_json = serde_json::to_string(cursor).unwrap_or_default();
    continuation(&ctx.job, &cursor_json, ctx.job.totals_before.clone().unwrap_or_default())
}

/// The job of `job`'s lineage that starts at `cursor_json`, carrying the lineage's running totals.
pub fn continuation(job: &SyncJob, cursor_json: &str, totals: LineageTotals) -> SyncJob {
    let root = lineage_root(&job.idempotency_key);
    let mut h = Sha256::new();
    h.update(root.as_bytes());
    h.update(b"\n");
    h.update(cursor_json.as_bytes());
    let suffix = &hex::encode(h.finalize())[..16];
    let root = if root.len() + 18 > 256 { format!("h:{}", &hex::encode(Sha256::digest(root.as_bytes()))[..32]) } else { root.to_string() };
    SyncJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        cursor: Some(cursor_json.to_string()),
        idempotency_key: format!("{root}~c{suffix}"),
        requested_at: Utc::now(),
        totals_before: Some(totals),
        ..job.clone()
    }
}

/// A follow-up job of a pull that stopped after `pages` pages with `counts`: its running totals.
fn with_counts(mut next: SyncJob, counts: &Counts, pages: u32) -> SyncJob {
    let own = serde_json::to_value(counts).ok();
    let before = next.totals_before.take().unwrap_or_default();
    next.totals_before = Some(before.plus(own.as_ref(), u64::from(pages)));
    next
}

async fn deps_send_follow_up(deps: &SyncDeps, job: &SyncJob) -> Result<()> {
    crate::jobs::JobQueue::new(deps.sqs.clone(), deps.queues.clone()).send(std::slice::from_ref(job)).await.map(|_| ())
}

fn base_data(job: &SyncJob) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("job_id".into(), json!(job.job_id));
    m.insert("idempotency_key".into(), json!(job.idempotency_key));
    m.insert("org_id".into(), json!(job.org_id));
    m.insert("operation".into(), serde_json::to_value(job.operation).unwrap_or(Value::Null));
    m.insert("entity".into(), serde_json::to_value(job.entity).unwrap_or(Value::Null));
    m
}

/// The lineage's totals including this job's own result.
fn totals_through(job: &SyncJob, result: &Value) -> LineageTotals {
    let pages = result.get("pages").and_then(Value::as_u64).unwrap_or(0);
    job.totals_before.clone().unwrap_or_default().plus(result.get("counts"), pages)
}

fn completed_data(job: &SyncJob, result: &Value) -> Value {
    let mut m = base_data(job);
    let mut counts = result.get("counts").cloned().unwrap_or_else(|| json!({}));
    if result.get("operation").and_then(Value::as_str) == Some("pull") {
        // The app asked for one pull: it hears about all of it, not the last job's share.
        let totals = totals_through(job, result);
        counts = serde_json::to_value(&totals.counts).unwrap_or(counts);
        m.insert("pages".into(), json!(totals.pages));
        m.insert("jobs".into(), json!(totals.jobs));
        // Flagged records anywhere in the lineage are warned about, not only the last job's.
        let flagged = totals.counts.get("flagged").copied().unwrap_or(0) as usize;
        let mut w = json!({});
        add_warnings(&mut w, &Counts { flagged, ..Counts::default() });
        if let Some(w) = w.get("warnings") {
            m.insert("warnings".into(), w.clone());
        }
    }
    m.insert("counts".into(), counts);
    for k in ["pages", "cursor", "provider_id", "warnings"] {
        if m.contains_key(k) {
            continue;
        }
        if let Some(v) = result.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// `data` of `write.completed` and `write.failed`: the job's result beside the job's identity.
fn write_data(job: &SyncJob, result: &Value) -> Value {
    let mut m = base_data(job);
    if let Value::Object(r) = result {
        for (k, v) in r {
            if k != "operation" {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Value::Object(m)
}

/// `data` of `sync.failed`.
pub fn failed_data(job: &SyncJob, err: &Error, parked: bool) -> Value {
    if !job.operation.has_entity() {
        return crate::reports::failed_data(job, err, parked);
    }
    let mut m = base_data(job);
    m.insert("error_code".into(), json!(err.code().as_u16()));
    // A fixed sentence per code: the error's own text can carry provider answers and internals.
    m.insert("message".into(), json!(err.code().public_message()));
    if let Some(d) = err.public_detail() {
        m.insert("detail".into(), d);
    }
    m.insert("retryable".into(), json!(err.is_retryable()));
    m.insert("parked".into(), json!(parked));
    if let Some(c) = &job.cursor {
        m.insert("cursor".into(), json!(c));
    }
    Value::Object(m)
}

/// What a completed job tells the app, from its stored result (so a repeat tells the same):
/// - a report or passthrough: its ready event;
/// - a pull that handed over to a follow-up job: nothing (the last job of the lineage announces);
/// - an initial pull whose cursor another job moved: it continues from the stored cursor in a
///   follow-up of its own lineage, so its entity counts as done only when a pass really ended;
/// - anything else: `sync.completed` (for a pull, with the whole lineage's counts), then an
///   initial pull records its entity done, which may send `sync.initial_completed`.
///
/// An error means the app may not have been told: the caller fails the message and its
/// redelivery (a duplicate by then) announces again.
pub async fn announce(deps: &SyncDeps, job: &SyncJob, result: &Value) -> Result<()> {
    if let Some((t, data)) = crate::reports::completion_event(job, result) {
        return try_publish(deps, job, t, data).await;
    }
    if result.get("continued").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    if job.operation == Operation::Push {
        let t = if crate::worker::write::Outcome::succeeded(result) { EventType::WriteCompleted } else { EventType::WriteFailed };
        return try_publish(deps, job, t, write_data(job, result)).await;
    }
    let initial = job.operation == Operation::Pull
        && job.source == crate::jobs::Source::Connect
        && crate::initial_sync::parse_initial_key(&job.idempotency_key).is_some();
    if initial && result.get("superseded").and_then(Value::as_bool) == Some(true) {
        let cursor = result.get("cursor").and_then(Value::as_str).unwrap_or_default();
        let next = continuation(job, cursor, totals_through(job, result));
        tracing::info!(next_key = %next.idempotency_key, "initial pull superseded: it continues from the stored cursor");
        return deps_send_follow_up(deps, &next).await;
    }
    try_publish(deps, job, EventType::SyncCompleted, completed_data(job, result)).await?;
    after_pull(deps, job).await
}

/// Publishes an event whose id is derived from the job's idempotency key (and the event type), so
/// a repeat carries the same id.
pub async fn try_publish(deps: &SyncDeps, job: &SyncJob, t: EventType, data: Value) -> Result<()> {
    let t = crate::reports::event_type_for(job, t);
    let event = AppEvent::keyed(t, &job.tenant_id, job.provider, Utc::now(), data, &job.idempotency_key);
    deps.events.publish(&event, None).await.inspect_err(|e| {
        tracing::warn!(code = %e.code(), error = %e, event_type = t.as_str(), "could not publish the event");
    })
}

/// Events go to the shared events queue only: a tenant's `event_destination` is not used (see
/// `EventPublisher::publish`). For failure announcements: each is its own occurrence (a parking,
/// a dead letter), so each has a fresh event id; a failed publish is logged and the job's
/// disposition stands.
pub async fn publish(deps: &SyncDeps, job: &SyncJob, t: EventType, data: Value) {
    let t = crate::reports::event_type_for(job, t);
    let event = AppEvent::new(t, &job.tenant_id, job.provider, Utc::now(), data);
    if let Err(e) = deps.events.publish(&event, None).await {
        tracing::warn!(code = %e.code(), error = %e, event_type = t.as_str(), "could not publish the event");
    }
}

/// The worker's hook after a pull finished its pass (not handed over to a follow-up, not
/// superseded: see `worker::announce`): an initial pull marks its entity done. It runs again for
/// a redelivered completed job (marking is idempotent), so a crash before the mark, or a failed
/// mark, is repaired by the redelivery: the error fails the message.
pub async fn after_pull(deps: &SyncDeps, job: &SyncJob) -> Result<()> {
    if job.operation != Operation::Pull
        || job.source != crate::jobs::Source::Connect
        || crate::initial_sync::parse_initial_key(&job.idempotency_key).is_none()
    {
        return Ok(());
    }
    let initial = crate::initial_sync::InitialSync::new(
        deps.db.clone(),
        deps.grants.table(),
        crate::jobs::JobQueue::new(deps.sqs.clone(), deps.queues.clone()),
        deps.events.clone(),
    );
    initial.entity_finished(&job.tenant_id, &job.idempotency_key, Utc::now()).await.map(|_| ()).inspect_err(|e| {
        tracing::warn!(code = %e.code(), error = %e, idempotency_key = %job.idempotency_key, "could not record the initial pull's completion");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_references_fit_quickbooks_and_differ_per_tenant() {
        let a = push_reference("t1", "k");
        assert!(a.len() <= 50, "{a}");
        assert_eq!(a, push_reference("t1", "k"));
        assert_ne!(a, push_reference("t2", "k"));
        assert_ne!(a, push_reference("t1", "k2"));
    }

    #[test]
    fn continuation_keys_share_the_lineage_root() {
        assert_eq!(lineage_root("wh1:abc~c0123456789abcdef"), "wh1:abc");
        assert_eq!(lineage_root("plain~cnot-hex"), "plain~cnot-hex");
        assert_eq!(lineage_root("app:1"), "app:1");
    }
}
