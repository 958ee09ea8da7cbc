//! Webhook intake: `POST /webhooks/{provider}` from QuickBooks, Xero and Zoho Books.
//!
//! Pipeline ([`Receiver::receive`]), cheapest and most hostile checks first:
//! 1. method POST (405), known provider (404), JSON (or, for Zoho, form) content type (415), body no
//!    larger than the configured limit (413);
//! 2. signature over the raw bytes, constant time, current then previous key (401). Nothing is
//!    parsed before this, so Xero's intent-to-receive gets its 200/401 purely from the signature;
//! 3. parse (400 for a signed body that is not the provider's format);
//! 4. map provider orgs to our tenants through the connections index; unknown orgs are acknowledged,
//!    logged and counted; build one job per changed record per tenant;
//! 5. claim the delivery's nonce as pending for a few seconds (one conditional PutItem) - a duplicate
//!    is acknowledged, not enqueued;
//! 6. SendMessageBatch to the tenant's priority queue, each job carrying the claim (`webhook_nonce`).
//!    The sync worker that takes a job extends the claim to the full window. If the send fails the
//!    claim is released and we answer 500; if the function dies before the send, the pending claim
//!    lapses. Either way the provider's retry is processed, not taken for a duplicate.
//!
//! Round trips on the delivery path (QuickBooks/Xero): the signing keys are read during the
//! container's init ([`Receiver::warm`]); the connections index carries each connection's copy of
//! its tenant's routing (`tenancy::TenantRouting`: enabled providers and entities, queue priority),
//! so the tenant itself is not read; org-to-connections and routing are cached per container for
//! 30 s; the lookup runs concurrently with the nonce claim (step 5 with step 4). Cold: (connections
//! index) alongside the claim = 1, SendMessageBatch = 2. Warm: claim, SendMessageBatch = 2
//! (functions/webhook-receiver/tests/round_trips.rs counts them). A connection without a copy
//! (stored before it existed) costs the tenant read as before, 3. A copy that lags a tenant change
//! sends at worst a job the worker skips (`worker::job`), or misses a change the next scheduled
//! pull brings; `ttya-ops tenants set-*` writes the copies, never over a newer one. The confirm
//! the pending claim needs (a crash before the send must not turn the retry into a duplicate) is off
//! this path: see [`nonce`] for why the worker may do it.
//!
//! None of the three providers signs a timestamp (providers.md §0; Zoho Books' own scheme is
//! unconfirmed), so there is no stale-timestamp rejection at the edge: replays inside the nonce window
//! are duplicates, and a replay after it produces jobs with the same idempotency keys as the original,
//! which the worker has already done. Error code 4006 stays reserved for a provider that signs one.

pub mod nonce;
pub mod parse;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use http::HeaderMap;

use crate::jobs::{self, JobQueue, Operation, Source, SyncJob, JOB_VERSION};
use crate::secrets::SecretsCache;
use crate::store::grants::{Connection, GrantStatus, GrantStore};
use crate::telemetry::metric;
use crate::tenancy::{TenantRouting, TenantStore};
use crate::vault::{SealContext, Vault};
use crate::{Error, ErrorCode, Provider, Result, SecretString};

pub use nonce::{Claim, NonceStore};
pub use parse::{Delivery, EntityChange};
pub use verify::KeyUsed;

/// Header names (lower case; `HeaderMap` lookups are case-insensitive).
pub const QBO_SIGNATURE: &str = "intuit-signature";
pub const XERO_SIGNATURE: &str = "x-xero-signature";
pub const ZOHO_SECRET_HEADER: &str = "x-ttya-webhook-secret";
pub const ZOHO_SIGNATURE: &str = "x-zoho-webhook-signature";
/// Query parameter of the URL registered with Zoho.
pub const ZOHO_ORG_PARAM: &str = "organization_id";

/// The seal context of a Zoho organisation's webhook secret (written by the connect flow).
pub fn zoho_secret_context(tenant_id: &str, org_id: &str) -> SealContext {
    SealContext::new(tenant_id, Provider::Zoho, format!("webhook:{org_id}"))
}

/// Where the QuickBooks and Xero signing keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// The webhook keys secret, through the per-container Secrets Manager cache.
    Secrets { cache: Arc<SecretsCache>, secret_id: String },
    /// Keys given directly (benchmarks and tests that do not exercise Secrets Manager).
    Fixed(BTreeMap<Provider, (SecretString, Option<SecretString>)>),
}

impl KeySource {
    async fn keys(&self, provider: Provider) -> Result<(SecretString, Option<SecretString>)> {
        match self {
            KeySource::Secrets { cache, secret_id } => {
                let k = cache.webhook_keys(secret_id, provider).await?;
                Ok((k.current.clone(), k.previous.clone()))
            }
            KeySource::Fixed(map) => {
                map.get(&provider).cloned().ok_or_else(|| Error::Internal(format!("no webhook key configured for {provider}")))
            }
        }
    }

    /// Drops the cached keys so the next read fetches them again. Returns false when there is nothing
    /// to refresh (fixed keys).
    fn invalidate(&self) -> bool {
        match self {
            KeySource::Secrets { cache, secret_id } => {
                cache.invalidate(secret_id);
                true
            }
            KeySource::Fixed(_) => false,
        }
    }
}

/// After a rotation the cached keys can be up to the cache TTL old. A signature that fails against
/// them triggers one re-read of the secret, at most this often per container, so a flood of bad
/// signatures cannot turn into a flood of Secrets Manager calls.
const KEY_REFRESH_INTERVAL: StdDuration = StdDuration::from_secs(60);

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Everything the receiver needs; built once per container.
#[derive(Clone)]
pub struct Receiver {
    pub keys: KeySource,
    pub grants: GrantStore,
    pub tenants: TenantStore,
    pub vault: Vault,
    pub nonces: NonceStore,
    pub jobs: JobQueue,
    pub max_body_bytes: usize,
    pub nonce_window: Duration,
    /// How long an unconfirmed claim holds ([`nonce::PENDING_WINDOW`] unless a test changes it).
    pub claim_window: Duration,
    pub clock: Clock,
    tenant_cache: Arc<TenantCache>,
    org_cache: Arc<OrgCache>,
    keys_refreshed_at: Arc<Mutex<Option<Instant>>>,
}

/// A short-lived per-container cache of org-to-connections lookups (the connections index query),
/// so a warm container's delivery goes straight to the nonce claim and SQS. Only found orgs are
/// kept: an organisation connected a moment ago is seen on its first webhook. A disconnect takes at
/// most `ORG_CACHE_TTL` to stop new jobs here; the worker re-checks the grant before any call.
#[derive(Default)]
struct OrgCache(Mutex<HashMap<(Provider, String), CachedOrg>>);

/// When the lookup was made, and what it found.
type CachedOrg = (Instant, Vec<Connection>);

const ORG_CACHE_TTL: StdDuration = StdDuration::from_secs(30);

impl OrgCache {
    fn get(&self, provider: Provider, org: &str) -> Option<Vec<Connection>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(provider, org.to_string())).filter(|(at, _)| at.elapsed() < ORG_CACHE_TTL).map(|(_, c)| c.clone())
    }
    fn put(&self, provider: Provider, org: &str, conns: &[Connection]) {
        if conns.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= TENANT_CACHE_MAX {
            map.retain(|_, (at, _)| at.elapsed() < ORG_CACHE_TTL);
            if map.len() >= TENANT_CACHE_MAX {
                map.clear();
            }
        }
        map.insert((provider, org.to_string()), (Instant::now(), conns.to_vec()));
    }
}

/// A short-lived per-container cache of what a webhook needs of a tenant (its routing: enabled
/// providers and entities, queue priority), which changes rarely. Filled from the routing copy on
/// the connection items the org lookup returns, or by reading the tenant when a connection carries
/// none. A change takes at most `TENANT_CACHE_TTL` to apply.
#[derive(Default)]
struct TenantCache(Mutex<HashMap<String, (Instant, Arc<TenantRouting>)>>);

const TENANT_CACHE_TTL: StdDuration = StdDuration::from_secs(30);
const TENANT_CACHE_MAX: usize = 10_000;

impl TenantCache {
    fn get(&self, id: &str) -> Option<Arc<TenantRouting>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|(at, _)| at.elapsed() < TENANT_CACHE_TTL).map(|(_, t)| t.clone())
    }
    fn put(&self, t: Arc<TenantRouting>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Two connections of one tenant may carry copies of different ages: keep the newer.
        if map.get(&t.tenant_id).is_some_and(|(at, old)| at.elapsed() < TENANT_CACHE_TTL && old.version > t.version) {
            return;
        }
        if map.len() >= TENANT_CACHE_MAX {
            map.retain(|_, (at, _)| at.elapsed() < TENANT_CACHE_TTL);
            if map.len() >= TENANT_CACHE_MAX {
                map.clear();
            }
        }
        map.insert(t.tenant_id.clone(), (Instant::now(), t));
    }
}

/// One inbound HTTP request, independent of Lambda's types.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub method: &'a str,
    /// The `{provider}` path segment as sent.
    pub provider: &'a str,
    pub headers: &'a HeaderMap,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    pub correlation_id: &'a str,
}

/// What an accepted (2xx) delivery led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Signed, but carries no events (Xero's intent-to-receive).
    NoEvents,
    /// Jobs were sent.
    Enqueued { jobs: usize, sqs_calls: usize },
    /// Seen within the nonce window: acknowledged, nothing sent.
    Duplicate,
    /// No event maps to a tenant's enabled entity (unknown orgs, ignored entities, inactive connections).
    NothingToDo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider: Provider,
    pub disposition: Disposition,
    pub events: usize,
    pub ignored_events: usize,
    pub unknown_orgs: usize,
    pub key_used: Option<KeyUsed>,
}

/// Result of [`Receiver::receive`]: the provider (when the path named a known one) and the outcome.
#[derive(Debug)]
pub struct Reply {
    pub provider: Option<Provider>,
    pub outcome: Result<Accepted>,
}

impl Reply {
    pub fn status(&self) -> u16 {
        match &self.outcome {
            Ok(_) => 200,
            Err(e) => e.http_status(),
        }
    }
}

impl Receiver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: KeySource,
        grants: GrantStore,
        tenants: TenantStore,
        vault: Vault,
        nonces: NonceStore,
        jobs: JobQueue,
        max_body_bytes: usize,
        nonce_window: Duration,
        clock: Clock,
    ) -> Self {
        Receiver {
            keys,
            grants,
            tenants,
            vault,
            nonces,
            jobs,
            max_body_bytes,
            nonce_window,
            claim_window: nonce::PENDING_WINDOW,
            clock,
            tenant_cache: Arc::default(),
            org_cache: Arc::default(),
            keys_refreshed_at: Arc::default(),
        }
    }

    /// Fetches the QuickBooks and Xero signing keys (one Secrets Manager read) during the
    /// container's init, so a cold delivery does not wait for it. A failure is only logged: the
    /// first delivery then fetches the keys itself and answers 5xx if they are still unreadable.
    pub async fn warm(&self) {
        for p in [Provider::QuickBooks, Provider::Xero] {
            if let Err(e) = self.keys.keys(p).await {
                tracing::warn!(provider = p.as_str(), code = %e.code(), error = %e, "webhook keys not prefetched");
            }
        }
    }

    async fn connections_for_org(&self, provider: Provider, org: &str) -> Result<Vec<Connection>> {
        if let Some(c) = self.org_cache.get(provider, org) {
            return Ok(c);
        }
        let routed = self.grants.connections_for_org_routed(provider, org).await?;
        // The routing copies the index carries spare a cold delivery the tenant read.
        for r in routed.iter().filter_map(|(_, r)| r.clone()) {
            self.tenant_cache.put(Arc::new(r));
        }
        let conns: Vec<Connection> = routed.into_iter().map(|(c, _)| c).collect();
        self.org_cache.put(provider, org, &conns);
        Ok(conns)
    }

    /// Handles one delivery end to end, logging and counting every rejection with its reason code.
    pub async fn receive(&self, req: Inbound<'_>) -> Reply {
        let started = Instant::now();
        let provider = req.provider.parse::<Provider>().ok();
        let outcome = match provider {
            None => Err(Error::NotFound(format!("no webhook endpoint for '{}'", truncate(req.provider, 32)))),
            Some(p) => self.receive_for(p, &req).await,
        };
        let pname = provider.map(Provider::as_str).unwrap_or("unknown");
        match &outcome {
            Ok(a) => {
                let (name, value) = match a.disposition {
                    Disposition::Enqueued { jobs, .. } => ("WebhookJobsEnqueued", jobs as f64),
                    Disposition::Duplicate => ("WebhookDuplicate", 1.0),
                    Disposition::NoEvents => ("WebhookNoEvents", 1.0),
                    Disposition::NothingToDo => ("WebhookNothingToDo", 1.0),
                };
                metric(name, value, "Count", &[("provider", pname)]);
                if a.unknown_orgs > 0 {
                    metric("WebhookUnknownOrg", a.unknown_orgs as f64, "Count", &[("provider", pname)]);
                }
                if a.key_used == Some(KeyUsed::Previous) {
                    metric("WebhookPreviousKeyUsed", 1.0, "Count", &[("provider", pname)]);
                }
                tracing::info!(
                    provider = pname,
                    disposition = ?a.disposition,
                    events = a.events as u64,
                    ignored_events = a.ignored_events as u64,
                    unknown_orgs = a.unknown_orgs as u64,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "webhook accepted"
                );
            }
            Err(e) => {
                let reason = e.code().to_string();
                if e.http_status() >= 500 {
                    tracing::error!(provider = pname, reason = %reason, error = %e, "webhook failed");
                    metric("WebhookFailed", 1.0, "Count", &[("provider", pname), ("reason", &reason)]);
                } else {
                    tracing::warn!(provider = pname, reason = %reason, error = %e, bytes = req.body.len() as u64, "webhook rejected");
                    metric("WebhookRejected", 1.0, "Count", &[("provider", pname), ("reason", &reason)]);
                }
            }
        }
        metric("WebhookLatency", started.elapsed().as_secs_f64() * 1000.0, "Milliseconds", &[("provider", pname)]);
        Reply { provider, outcome }
    }

    async fn receive_for(&self, provider: Provider, req: &Inbound<'_>) -> Result<Accepted> {
        check_envelope(provider, req, self.max_body_bytes)?;

        // Signature before any parsing.
        let (key_used, zoho) = match provider {
            Provider::QuickBooks | Provider::Xero => (Some(self.verify_hmac(provider, req).await?), None),
            Provider::Zoho => match self.verify_zoho(req).await? {
                Some(z) => (None, Some(z)),
                None => {
                    // No tenant has connected this organisation, so there is no secret to check it
                    // against: acknowledge (a stale registration stops retrying), parse nothing, enqueue nothing.
                    tracing::warn!("zoho webhook for an organisation no tenant has connected");
                    return Ok(Accepted {
                        provider,
                        disposition: Disposition::NothingToDo,
                        events: 0,
                        ignored_events: 0,
                        unknown_orgs: 1,
                        key_used: None,
                    });
                }
            },
        };

        let delivery = parse::parse(provider, req.body, zoho.as_ref().map(|z| z.org_id.as_str()))?;
        let mut accepted = Accepted {
            provider,
            disposition: Disposition::NoEvents,
            events: delivery.events,
            ignored_events: delivery.ignored,
            unknown_orgs: 0,
            key_used,
        };
        let Some(dedupe_key) = delivery.dedupe_key.clone() else {
            return Ok(accepted);
        };

        let now = (self.clock)();
        // The nonce claim and the org/tenant lookups are independent round trips: run them together,
        // so a delivery waits for max(lookups, claim) and then SQS instead of their sum. The price is
        // a claim (released again) for a delivery that turns out to have nothing to enqueue.
        let (built, claimed) = futures::join!(
            self.build_jobs(provider, &delivery.changes, zoho.map(|z| z.connections), req.correlation_id, now),
            self.nonces.claim(provider, &dedupe_key, now, self.claim_window),
        );
        let (jobs, unknown_orgs) = match built {
            Ok(b) => b,
            Err(e) => {
                if let Ok(Claim::Claimed(id)) = &claimed {
                    self.release_claim(provider, &dedupe_key, id).await;
                }
                return Err(e);
            }
        };
        accepted.unknown_orgs = unknown_orgs;
        let claim_id = match claimed? {
            Claim::Duplicate => {
                accepted.disposition = Disposition::Duplicate;
                return Ok(accepted);
            }
            Claim::Claimed(id) => id,
        };
        if jobs.is_empty() {
            // Nothing was enqueued, so nothing may count as seen: a redelivery after the org is
            // connected (or the entity enabled) must be processed.
            self.release_claim(provider, &dedupe_key, &claim_id).await;
            accepted.disposition = Disposition::NothingToDo;
            return Ok(accepted);
        }
        // The claim is confirmed (extended to the full window) by the worker that takes one of
        // these jobs, not here: the delivery waits for two sequential round trips, claim and send
        // (see `nonce` for why a late confirm loses nothing).
        let nonce = nonce::NonceRef { key: dedupe_key.clone(), claim_id: claim_id.clone() };
        match self.jobs.send_with_nonce(&jobs, &nonce).await {
            Ok(report) => {
                accepted.disposition = Disposition::Enqueued { jobs: report.jobs, sqs_calls: report.calls };
                Ok(accepted)
            }
            Err(e) => {
                // Let the provider's retry through; if even the release fails, the retry is taken for
                // a duplicate until the pending claim lapses: say so loudly.
                if let Err(re) = self.nonces.release(provider, &dedupe_key, &claim_id).await {
                    tracing::error!(error = %re, "could not release webhook nonce after a failed enqueue; redeliveries are duplicates until the pending claim lapses");
                }
                Err(e)
            }
        }
    }

    async fn release_claim(&self, provider: Provider, dedupe_key: &str, claim_id: &str) {
        if let Err(e) = self.nonces.release(provider, dedupe_key, claim_id).await {
            // The pending claim lapses on its own within the claim window.
            tracing::warn!(code = %e.code(), error = %e, "could not release an unused webhook nonce claim");
        }
    }

    async fn verify_hmac(&self, provider: Provider, req: &Inbound<'_>) -> Result<KeyUsed> {
        let header = header_str(req.headers, if provider == Provider::QuickBooks { QBO_SIGNATURE } else { XERO_SIGNATURE });
        let (current, previous) = self.keys.keys(provider).await?;
        let first = verify::verify_hmac_base64(&current, previous.as_ref(), req.body, header);
        if first.is_ok() || header.is_none() || !self.may_refresh_keys() {
            return first;
        }
        // Perhaps the key was rotated since we cached it: read the secret once more.
        if !self.keys.invalidate() {
            return first;
        }
        let (current, previous) = self.keys.keys(provider).await?;
        verify::verify_hmac_base64(&current, previous.as_ref(), req.body, header)
    }

    fn may_refresh_keys(&self) -> bool {
        let mut last = self.keys_refreshed_at.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(at) if at.elapsed() < KEY_REFRESH_INTERVAL => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }

    /// Looks the organisation up, unseals its webhook secret and checks our header against it. An
    /// organisation no tenant has connected is refused like a wrong secret.
    async fn verify_zoho(&self, req: &Inbound<'_>) -> Result<Option<ZohoVerified>> {
        let org_id = req
            .query
            .iter()
            .find(|(k, _)| k == ZOHO_ORG_PARAM)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric()))
            .ok_or(Error::InvalidSignature)?;
        let presented = header_str(req.headers, ZOHO_SECRET_HEADER).ok_or(Error::InvalidSignature)?;
        let connections = self.grants.connections_for_org(Provider::Zoho, &org_id).await?;
        if connections.is_empty() {
            // Answered exactly like a wrong secret for a connected organisation: a different answer
            // would tell anyone with curl which organisations are our customers.
            tracing::warn!(org_id = %org_id, "zoho webhook for an organisation no tenant has connected");
            metric("WebhookUnknownOrg", 1.0, "Count", &[("provider", Provider::Zoho.as_str())]);
            return Err(Error::InvalidSignature);
        }
        // Several of our tenants may have connected the same organisation, each with its own secret.
        let mut matched = Vec::new();
        for c in &connections {
            let Some(blob) = &c.webhook_secret else { continue };
            let secret = self.vault.unseal_bytes(&zoho_secret_context(&c.tenant_id, &org_id), blob).await?;
            let secret = SecretString::new(String::from_utf8_lossy(&secret).into_owned());
            if verify::verify_shared_secret(&secret, Some(presented)).is_ok() {
                if let Some(sig) = header_str(req.headers, ZOHO_SIGNATURE) {
                    // Zoho Books' own signature scheme is unconfirmed: report, never reject on it.
                    let ok = verify::zoho_signature_matches(&secret, req.query, req.body, sig);
                    tracing::info!(zoho_signature_valid = ok, "zoho signature header present");
                    metric("ZohoSignatureChecked", 1.0, "Count", &[("valid", if ok { "true" } else { "false" })]);
                }
                matched.push(c.clone());
            }
        }
        if matched.is_empty() {
            return Err(Error::InvalidSignature);
        }
        Ok(Some(ZohoVerified { org_id, connections: matched }))
    }

    /// Jobs for every change whose org maps to an active connection of a tenant that syncs the entity.
    /// Returns the jobs and the number of orgs no tenant has connected.
    async fn build_jobs(
        &self,
        provider: Provider,
        changes: &[EntityChange],
        zoho_connections: Option<Vec<Connection>>,
        correlation_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<SyncJob>, usize)> {
        let mut orgs: Vec<&str> = changes.iter().map(|c| c.org_id.as_str()).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let lookups: Vec<(String, Vec<Connection>)> = match zoho_connections {
            Some(conns) => orgs.iter().map(|o| (o.to_string(), conns.clone())).collect(),
            None => {
                futures::future::try_join_all(
                    orgs.iter().map(|o| async move { self.connections_for_org(provider, o).await.map(|c| (o.to_string(), c)) }),
                )
                .await?
            }
        };
        // Every tenant behind an active connection, fetched at once (one round trip, not one per
        // connection) into the tenant cache, which the loop below then reads. A failed fetch is
        // simply tried again there and reported as before.
        let mut tenant_ids: Vec<&str> = lookups
            .iter()
            .flat_map(|(_, cs)| cs.iter().filter(|c| c.status == GrantStatus::Active).map(|c| c.tenant_id.as_str()))
            .collect();
        tenant_ids.sort_unstable();
        tenant_ids.dedup();
        if tenant_ids.len() > 1 {
            futures::future::join_all(tenant_ids.iter().map(|t| self.tenant(t))).await;
        }
        let mut jobs = Vec::new();
        let mut unknown = 0;
        for (org, conns) in lookups {
            let mut known = false;
            for conn in conns.iter().filter(|c| c.status == GrantStatus::Active) {
                let tenant = match self.tenant(&conn.tenant_id).await {
                    Ok(t) => t,
                    Err(e) if e.code() == ErrorCode::TenantNotFound => {
                        tracing::warn!(tenant_id = %conn.tenant_id, org_id = %org, "connection points at a missing tenant");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                known = true;
                if !tenant.provider_enabled(provider) {
                    continue;
                }
                for c in changes.iter().filter(|c| c.org_id == org && tenant.enabled_entities.contains(&c.entity)) {
                    jobs.push(SyncJob {
                        version: JOB_VERSION,
                        job_id: uuid::Uuid::new_v4().to_string(),
                        tenant_id: tenant.tenant_id.clone(),
                        provider,
                        org_id: org.clone(),
                        operation: Operation::Webhook,
                        entity: c.entity,
                        entity_id: c.entity_id.clone(),
                        cursor: None,
                        change: Some(c.change),
                        merged_from: c.merged_from.clone(),
                        priority: tenant.queue_priority,
                        idempotency_key: jobs::webhook_idempotency_key(
                            provider,
                            &org,
                            c.entity,
                            c.entity_id.as_deref().unwrap_or(""),
                            c.change,
                            &c.event_version,
                        ),
                        correlation_id: correlation_id.to_string(),
                        requested_at: now,
                        source: Source::Webhook,
                        totals_before: None,
                    });
                }
            }
            if !known {
                unknown += 1;
                tracing::warn!(org_id = %org, "webhook for an organisation no tenant has connected");
            }
        }
        Ok((jobs, unknown))
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Arc<TenantRouting>> {
        if let Some(t) = self.tenant_cache.get(tenant_id) {
            return Ok(t);
        }
        let t = Arc::new(TenantRouting::of(&self.tenants.get(tenant_id).await?));
        self.tenant_cache.put(t.clone());
        Ok(t)
    }
}

struct ZohoVerified {
    org_id: String,
    connections: Vec<Connection>,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).filter(|c| !c.is_control()).collect()
}

/// Method, content type and size: everything that can be rejected without a key.
pub fn check_envelope(provider: Provider, req: &Inbound<'_>, max_body_bytes: usize) -> Result<()> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(Error::MethodNotAllowed(format!("{} (only POST)", truncate(req.method, 16))));
    }
    let ct = header_str(req.headers, "content-type").unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    let form = provider == Provider::Zoho && mime == "application/x-www-form-urlencoded";
    if !(json || form) {
        return Err(Error::UnsupportedMediaType(if mime.is_empty() { "missing content-type".into() } else { truncate(&mime, 64) }));
    }
    if req.body.len() > max_body_bytes {
        return Err(Error::PayloadTooLarge { size: req.body.len(), limit: max_body_bytes });
    }
    Ok(())
}

/// Verification and parsing only, no I/O: what the fuzz test and the CPU benchmark exercise.
pub fn verify_and_parse(
    provider: Provider,
    current: &SecretString,
    previous: Option<&SecretString>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Delivery> {
    verify::verify_hmac_base64(current, previous, body, signature)?;
    parse::parse(provider, body, None)
}
