//! The token refresher against moto and the provider sandbox: one refresh per grant however many
//! callers, crashes at every step, dead and throttled grants, the scheduled run, re-seal races, 401s.
//! Each test runs its own sandbox and its own tenant; the scheduled run gets its own grants table,
//! because it refreshes whatever the `due` index holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use integration_tests::harness::{own_queue, sandboxed, Sandboxed};
use integration_tests::{copy_grants_table, sandbox_control, unique, TestEnv};
use serde_json::{json, Value};
use shared::events::AppEvent;
use shared::refresh::schedule::RunLimits;
use shared::refresh::{RefreshSettings, Step, TokenService};
use shared::store::grants::{Grant, GrantStatus, GrantStore};
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{Error, ErrorCode, Provider, SecretString};

struct H {
    env: TestEnv,
    sb: sandbox::RunningSandbox,
    http: reqwest::Client,
    tenant: String,
}

async fn harness_with(settings: sandbox::Settings) -> H {
    let Sandboxed { mut env, sb, http } = sandboxed(sandbox::SandboxConfig { settings, ..Default::default() }).await;
    // Events go to a queue of the test's own, so it reads exactly what it caused.
    env.config.queues.events = own_queue(&env, "events").await;
    H { env, sb, http, tenant: unique("tenant") }
}

async fn harness() -> H {
    harness_with(sandbox::Settings::default()).await
}

fn settings() -> RefreshSettings {
    RefreshSettings {
        margin: Duration::minutes(5),
        lease: Duration::seconds(30),
        wait_max: StdDuration::from_secs(20),
        poll: StdDuration::from_millis(50),
    }
}

fn whole(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

impl H {
    /// A new TokenService: a separate "process" with its own lease owner id and caches.
    fn service(&self) -> TokenService {
        self.env.token_service(StdDuration::from_secs(10)).with_settings(settings())
    }

    fn store(&self) -> GrantStore {
        self.env.grants()
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        sandbox_control::control(&self.http, &self.sb, method, path, body).await
    }

    /// Refreshes the sandbox has answered (replays within Xero's grace included).
    async fn refreshes(&self) -> u64 {
        let c = self.control("GET", "counters", None).await;
        c["refreshes"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0)
    }

    /// A real grant: consent at the sandbox, code exchange, sealed and stored like the connect flow
    /// does, with the stored access expiry set to `access_in` from now.
    async fn connect(&self, svc: &TokenService, provider: Provider, access_in: Duration) -> Grant {
        self.connect_in(svc, &self.store(), provider, access_in).await
    }

    async fn connect_in(&self, svc: &TokenService, store: &GrantStore, provider: Provider, access_in: Duration) -> Grant {
        integration_tests::sandbox_grant(&self.http, svc, store, &self.tenant, provider, access_in).await
    }

    /// The stored refresh token (to revoke it at the sandbox).
    async fn stored_refresh_token(&self, svc: &TokenService, g: &Grant) -> String {
        let stored = self.store().get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
        let t = svc
            .vault()
            .unseal_tokens(&SealContext::new(&g.tenant_id, g.provider, &g.grant_id), stored.sealed.as_ref().unwrap())
            .await
            .unwrap();
        t.refresh_token.unwrap().expose().to_string()
    }

    /// Events of `event_type` on this test's queue: everything that arrives until the queue has
    /// been empty for a second after at least `want` were seen (or ten seconds pass).
    async fn events(&self, want: usize, event_type: &str) -> Vec<AppEvent> {
        let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
        let mut seen: Vec<AppEvent> = Vec::new();
        while std::time::Instant::now() < deadline {
            let out = self
                .env
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.env.config.queues.events)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() && seen.len() >= want {
                break;
            }
            for m in msgs {
                let e: AppEvent = serde_json::from_str(m.body.as_deref().unwrap_or("")).expect("events are valid JSON");
                assert_eq!(e.tenant_id, self.tenant);
                if e.event_type.as_str() == event_type {
                    seen.push(e);
                }
            }
        }
        seen
    }
}

#[tokio::test]
async fn fifty_concurrent_callers_on_an_expired_grant_make_exactly_one_refresh() {
    let h = harness().await;
    for provider in [Provider::Xero, Provider::QuickBooks] {
        let setup = h.service();
        let g = h.connect(&setup, provider, Duration::minutes(-1)).await;
        let before = h.refreshes().await;
        // Five "processes" with ten callers each.
        let services: Vec<Arc<TokenService>> = (0..5).map(|_| Arc::new(h.service())).collect();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let svc = services[i % 5].clone();
            let (t, p, id) = (g.tenant_id.clone(), g.provider, g.grant_id.clone());
            tasks.push(tokio::spawn(async move { svc.valid_access_token(&t, p, &id).await }));
        }
        let mut tokens = std::collections::HashSet::new();
        for t in tasks {
            let v = t.await.unwrap().expect("every caller gets a token");
            assert!(v.tokens.access_expires_at > Utc::now() + Duration::minutes(5));
            tokens.insert(v.tokens.access_token.expose().to_string());
        }
        assert_eq!(h.refreshes().await - before, 1, "{provider}: one refresh at the provider for 50 callers");
        assert_eq!(tokens.len(), 1, "{provider}: everyone got the one refreshed token");
        let stored = h.store().get_grant(&g.tenant_id, provider, &g.grant_id).await.unwrap().unwrap();
        assert_eq!(stored.version, g.version + 1);
        assert!(stored.lease_owner.is_none(), "the lease went with the write");
    }
}

#[tokio::test]
async fn a_crash_at_any_step_loses_no_grant() {
    let h = harness().await;
    let seed: u64 = std::env::var("REFRESH_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand_seed);
    println!("REFRESH_CRASH_SEED={seed}");
    let mut rng = Lcg(seed);
    let steps = [Step::BeforeProviderCall, Step::AfterProviderAnswer, Step::AfterWrite];
    let mut covered = std::collections::HashSet::new();
    for run in 0..18 {
        // Every provider x step at least once (the first nine runs), then random ones.
        let (provider, step) = if run < 9 {
            (Provider::ALL[run / 3], steps[run % 3])
        } else {
            (Provider::ALL[rng.next() as usize % 3], steps[rng.next() as usize % 3])
        };
        covered.insert((provider, step));
        let setup = h.service();
        let g = h.connect(&setup, provider, Duration::minutes(-1)).await;
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let crashing = h.service().with_fail_point(Arc::new(move |s, _| s == step && !f.swap(true, Ordering::SeqCst)));
        let first = crashing.valid_access_token(&g.tenant_id, provider, &g.grant_id).await;
        assert!(first.is_err(), "run {run}: the injected crash stops the first attempt");
        assert!(fired.load(Ordering::SeqCst));

        // The next attempt runs after the dead holder's lease expired (a later clock), in another process.
        let later = Arc::new(|| Utc::now() + Duration::seconds(31));
        let next = h.service().with_clock(later.clone());
        let got = next.valid_access_token(&g.tenant_id, provider, &g.grant_id).await;
        let stored = h.store().get_grant(&g.tenant_id, provider, &g.grant_id).await.unwrap().expect("never deleted");
        if provider == Provider::QuickBooks && step == Step::AfterProviderAnswer {
            // The documented limit: QuickBooks rotated and the new pair died with the process.
            // The grant is flagged for a reconnect, not lost: record, tokens and connections stay.
            assert_eq!(got.unwrap_err().code(), ErrorCode::NeedsReauth, "run {run}");
            assert_eq!(stored.status, GrantStatus::NeedsReauth);
            assert!(stored.sealed.is_some());
            continue;
        }
        let v = got.unwrap_or_else(|e| panic!("run {run} {provider} {step:?}: recovery failed: {e}"));
        assert_eq!(stored.status, GrantStatus::Active, "run {run}");
        // The stored refresh token is live: a forced refresh with it succeeds.
        next.after_unauthorized(&g.tenant_id, provider, &g.grant_id, &v.tokens.access_token)
            .await
            .unwrap_or_else(|e| panic!("run {run} {provider} {step:?}: the stored refresh token is dead: {e}"));
    }
    assert_eq!(covered.len(), 9);
}

#[tokio::test]
async fn a_revoked_grant_becomes_needs_reauth_with_its_event_and_nothing_is_deleted() {
    let h = harness().await;
    let svc = h.service();
    let g = h.connect(&svc, Provider::Xero, Duration::minutes(-1)).await;
    let rt = h.stored_refresh_token(&svc, &g).await;
    h.control("POST", "revoke", Some(json!({"provider": "xero", "refresh_token": rt}))).await;

    let err = svc.valid_access_token(&g.tenant_id, Provider::Xero, &g.grant_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NeedsReauth);
    assert!(!err.is_retryable());
    let stored = h.store().get_grant(&g.tenant_id, Provider::Xero, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(stored.status, GrantStatus::NeedsReauth);
    assert!(stored.sealed.is_some(), "tokens kept");
    let conns = h.store().list_connections(&g.tenant_id).await.unwrap();
    assert!(conns.iter().all(|c| c.status == GrantStatus::NeedsReauth));
    let events = h.events(1, "connection.needs_reauth").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["grant_id"], g.grant_id.as_str());
    assert!(events[0].data["reconnect_url"].as_str().unwrap().ends_with("/connect/xero"));
    let schema: Value = serde_json::from_str(include_str!("../schemas/app-event.v1.json")).unwrap();
    shared::events::check_against_schema(&schema, &serde_json::to_value(&events[0]).unwrap()).unwrap();
    let trail =
        shared::audit::AuditLog::new(h.env.clients.dynamodb.clone(), h.env.config.tables.tenants.clone()).list(&g.tenant_id).await.unwrap();
    assert!(trail.iter().any(|r| r.event == "needs_reauth"));
    // A second call does not go to the provider again.
    let before = h.refreshes().await;
    assert_eq!(svc.valid_access_token(&g.tenant_id, Provider::Xero, &g.grant_id).await.unwrap_err().code(), ErrorCode::NeedsReauth);
    assert_eq!(h.refreshes().await, before);
}

#[tokio::test]
async fn a_zoho_token_throttle_degrades_but_never_marks_needs_reauth() {
    let h = harness_with(sandbox::Settings { zoho_token_issue_limit: 2, ..Default::default() }).await;
    let svc = h.service();
    let g = h.connect(&svc, Provider::Zoho, Duration::minutes(50)).await;
    let mut current = svc.valid_access_token(&g.tenant_id, Provider::Zoho, &g.grant_id).await.unwrap().tokens.access_token;
    for _ in 0..2 {
        current = svc.after_unauthorized(&g.tenant_id, Provider::Zoho, &g.grant_id, &current).await.unwrap().tokens.access_token;
    }
    for _ in 0..2 {
        let err = svc.after_unauthorized(&g.tenant_id, Provider::Zoho, &g.grant_id, &current).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.code(), ErrorCode::ProviderRateLimited, "{err}");
    }
    let stored = h.store().get_grant(&g.tenant_id, Provider::Zoho, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(stored.status, GrantStatus::Active);
    assert!(stored.degraded_since.is_some());
    assert!(stored.lease_owner.is_none(), "the lease is released on failure");
    assert_eq!(h.events(1, "connection.degraded").await.len(), 1, "one event per state change");

    // The window passes: the next refresh works and the app hears it recovered.
    h.control("POST", "clock", Some(json!({"advance_seconds": 601}))).await;
    svc.after_unauthorized(&g.tenant_id, Provider::Zoho, &g.grant_id, &current).await.unwrap();
    let stored = h.store().get_grant(&g.tenant_id, Provider::Zoho, &g.grant_id).await.unwrap().unwrap();
    assert!(stored.degraded_since.is_none());
    assert_eq!(h.events(1, "connection.recovered").await.len(), 1);
}

#[tokio::test]
async fn a_401_refreshes_once_and_a_second_401_is_an_auth_error() {
    let h = harness().await;
    let svc = h.service();
    let g = h.connect(&svc, Provider::QuickBooks, Duration::minutes(50)).await;
    let before = h.refreshes().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let ok = svc
        .with_token(&g.tenant_id, Provider::QuickBooks, &g.grant_id, move |t| {
            let s2 = s2.clone();
            async move {
                let mut s = s2.lock().unwrap();
                s.push(t.access_token.expose().to_string());
                if s.len() == 1 {
                    Err(Error::ProviderAuth { provider: Provider::QuickBooks, reason: "HTTP 401".into() })
                } else {
                    Ok(s.len())
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(ok, 2);
    let s = seen.lock().unwrap().clone();
    assert_ne!(s[0], s[1], "the retry used a refreshed token");
    assert_eq!(h.refreshes().await - before, 1);

    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = calls.clone();
    let err = svc
        .with_token(&g.tenant_id, Provider::QuickBooks, &g.grant_id, move |_t| {
            c2.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::ProviderAuth { provider: Provider::QuickBooks, reason: "HTTP 401".into() }) }
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ProviderAuthFailed);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one retry, not a loop");
    assert_eq!(h.refreshes().await - before, 2, "one refresh per 401 episode");
}

#[tokio::test]
async fn a_reseal_racing_a_refresh_loses_nothing() {
    let h = harness().await;
    let svc = h.service();
    let store = h.store();
    let g = h.connect(&svc, Provider::Xero, Duration::minutes(50)).await;
    let new_key = h.env.clients.kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let rotated = Vault::new(h.env.clients.kms.clone(), new_key.clone(), CacheLimits::default());
    let audit = shared::audit::AuditLog::new(h.env.clients.dynamodb.clone(), h.env.config.tables.tenants.clone());

    // A refresher holds the lease and read version v.
    let now = whole(Utc::now());
    let (_, leased) = store.acquire_lease(&g.tenant_id, g.provider, &g.grant_id, "refresher-x", Duration::seconds(60), now).await.unwrap();
    // A reader under the new key re-seals lazily: it must not touch a leased grant.
    shared::grant_tokens::read_tokens(&store, &rotated, &audit, &leased, now).await.unwrap();
    let mid = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(mid.sealed, leased.sealed, "no re-seal under someone else's lease");
    // The refresher's write (version v + its lease) still succeeds.
    let ctx = SealContext::new(&g.tenant_id, g.provider, &g.grant_id);
    let mut t = svc.vault().unseal_tokens(&ctx, leased.sealed.as_ref().unwrap()).await.unwrap();
    t.refresh_token = Some(SecretString::new("rotated-rt"));
    let sealed = svc.vault().seal_tokens(&ctx, &t).await.unwrap();
    store
        .update_tokens(&leased, &sealed, t.access_expires_at, t.refresh_expires_at, leased.version, Some("refresher-x"), now)
        .await
        .unwrap();

    // Now free: a re-seal goes through without taking the version, so a refresher that read the
    // grant before the re-seal can still store its pair.
    let before_reseal = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    shared::grant_tokens::read_tokens(&store, &rotated, &audit, &before_reseal, now).await.unwrap();
    let resealed = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    assert!(resealed.sealed.as_ref().unwrap().key_id.ends_with(&new_key), "re-sealed under the new key (by ARN)");
    assert_eq!(resealed.version, before_reseal.version, "a re-seal never takes the version");
    assert_eq!(resealed.seal_version, before_reseal.seal_version + 1);
    let mut t2 = t.clone();
    t2.refresh_token = Some(SecretString::new("rotated-again"));
    let sealed2 = rotated.seal_tokens(&ctx, &t2).await.unwrap();
    store.update_tokens(&before_reseal, &sealed2, t2.access_expires_at, None, before_reseal.version, None, now).await.unwrap();
    let last = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    let got = rotated.unseal_tokens(&ctx, last.sealed.as_ref().unwrap()).await.unwrap();
    assert_eq!(got.refresh_token.unwrap().expose(), "rotated-again");
}

#[tokio::test]
async fn a_scheduled_run_refreshes_exactly_the_grants_that_are_due() {
    let mut h = harness().await;
    // The run refreshes whatever the index holds: give it a table of its own.
    let table = copy_grants_table(&h.env).await;
    h.env.config.tables.grants = table.clone();
    let svc = h.service();
    let store = h.store();
    // Expiries either side of the run's 10-minute window; the nearest outside it (12) leaves two
    // minutes for the 200 connects before the run on a loaded machine (they take about 10 s).
    let offsets = [-5i64, 2, 9, 12, 30, 55];
    let mut expected_due = Vec::new();
    let mut not_due = Vec::new();
    for i in 0..200usize {
        let provider = Provider::ALL[i % 3];
        let off = offsets[i % offsets.len()];
        let mut g = h.connect_in(&svc, &store, provider, Duration::minutes(off)).await;
        let mut due = off <= 10;
        if i % 25 == 7 && provider == Provider::Xero && !due {
            // Access far away but the refresh token lapses soon (Xero's 60 unused days): due.
            g.refresh_expires_at = Some(whole(Utc::now()) + Duration::minutes(4));
            store.put_grant(&g, &[]).await.unwrap();
            due = true;
        }
        if i % 50 == 3 {
            // A grant needing re-auth is out of the index whatever its expiry.
            store.mark_needs_reauth(&g, Utc::now()).await.unwrap();
            due = false;
        }
        if due {
            expected_due.push(g);
        } else {
            not_due.push(g);
        }
    }
    let before = h.refreshes().await;
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(300);
    let report = svc.run_scheduled(Duration::minutes(10), deadline, &RunLimits { concurrency: 8, ..Default::default() }).await.unwrap();
    assert_eq!(report.found, expected_due.len(), "{report:?}");
    assert_eq!(report.needs_reauth + report.left_for_next_run, 0, "{report:?}");
    // A transient failure (a slow local stack under a parallel test run) leaves the grant due:
    // the next run takes exactly those, and nothing is refreshed twice.
    let mut refreshed = report.refreshed;
    if report.failed > 0 {
        let retry = svc.run_scheduled(Duration::minutes(10), deadline, &RunLimits { concurrency: 8, ..Default::default() }).await.unwrap();
        assert!(retry.found <= report.failed, "the next run finds only the failed ones: {report:?} {retry:?}");
        refreshed += retry.refreshed;
    }
    if report.failed == 0 {
        assert_eq!(refreshed, expected_due.len(), "{report:?}");
    }
    // Either way, every due grant ends refreshed exactly once (checked grant by grant below).
    assert!(h.refreshes().await - before >= expected_due.len() as u64);
    for g in &expected_due {
        let s = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
        assert_eq!(s.version, g.version + 1, "due grant {} refreshed", g.grant_id);
        assert!(s.due_at() > Utc::now() + Duration::minutes(10), "no longer due");
    }
    for g in &not_due {
        let s = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
        assert_eq!(s.access_expires_at, g.access_expires_at, "grant {} left alone", g.grant_id);
    }
    // A second run finds nothing left to do.
    let again = svc.run_scheduled(Duration::minutes(10), deadline, &RunLimits::default()).await.unwrap();
    assert_eq!(again.found, 0, "{again:?}");

    // A run whose deadline is already near starts nothing and leaves every due grant for the next.
    let soon = tokio::time::Instant::now() + StdDuration::from_secs(1);
    let cut = svc.run_scheduled(Duration::minutes(60), soon, &RunLimits::default()).await.unwrap();
    assert_eq!(cut.refreshed, 0, "{cut:?}");
    assert_eq!(cut.shards_left_for_next_run, 3 * shared::store::grants::DUE_SHARDS as usize, "not even read: {cut:?}");
    // With time to spare, the next run takes what the cut one left.
    let next = svc.run_scheduled(Duration::minutes(60), deadline, &RunLimits::default()).await.unwrap();
    assert!(next.found > 0 && next.refreshed == next.found - next.failed, "{next:?}");
    h.env.clients.dynamodb.delete_table().table_name(table).send().await.unwrap();
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A tiny deterministic generator: the seed printed above replays a failing run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test]
async fn disconnect_waits_for_a_refresh_in_progress_and_status_conflicts_are_conflicts() {
    let h = harness().await;
    let svc = h.service();
    let store = h.store();
    let g = h.connect(&svc, Provider::Zoho, Duration::minutes(50)).await;
    // A refresher holds the lease.
    let now = whole(Utc::now());
    store.acquire_lease(&g.tenant_id, g.provider, &g.grant_id, "refresher-x", Duration::seconds(30), now).await.unwrap();
    let deps = shared::connect::ConnectDeps::new(
        h.env.config.clone(),
        &h.env.clients,
        shared::http_client::HttpClient::new(StdDuration::from_secs(10)).unwrap(),
    );
    let (t, id) = (g.tenant_id.clone(), g.grant_id.clone());
    let started = std::time::Instant::now();
    let task = tokio::spawn(async move { shared::connect::disconnect(&deps, &t, Provider::Zoho, &id, "user-1", Utc::now()).await });
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    let mid = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(mid.status, GrantStatus::Active, "no revoke while the refresher holds the lease");
    if task.is_finished() {
        panic!("disconnect ended while the lease was held: {:?}", task.await.unwrap());
    }
    assert!(store.release_lease(&g.tenant_id, g.provider, &g.grant_id, "refresher-x").await.unwrap());
    let done = task.await.unwrap().expect("disconnect proceeds once the lease is free");
    assert!(done.changed && started.elapsed() >= StdDuration::from_millis(700));
    let last = store.get_grant(&g.tenant_id, g.provider, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(last.status, GrantStatus::Disconnected);
    assert!(last.lease_owner.is_none() && last.sealed.is_none());

    // A status change on a grant that moved on since it was read is a retryable conflict.
    let other = h.connect(&svc, Provider::Xero, Duration::minutes(50)).await;
    let current = svc.valid_access_token(&other.tenant_id, Provider::Xero, &other.grant_id).await.unwrap().tokens.access_token;
    svc.after_unauthorized(&other.tenant_id, Provider::Xero, &other.grant_id, &current).await.unwrap();
    let err = store.mark_needs_reauth(&other, Utc::now()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict, "{err}");
    assert!(err.is_retryable());
    let kept = store.get_grant(&other.tenant_id, Provider::Xero, &other.grant_id).await.unwrap().unwrap();
    assert_eq!(kept.status, GrantStatus::Active, "the stale change did not land");
}

#[tokio::test]
async fn callers_waiting_on_a_failing_refresh_share_its_failure() {
    // Every refresh is throttled.
    let h = harness_with(sandbox::Settings { zoho_token_issue_limit: 0, ..Default::default() }).await;
    let g = h.connect(&h.service(), Provider::Zoho, Duration::minutes(-1)).await;
    let services: Vec<Arc<TokenService>> = (0..4).map(|_| Arc::new(h.service())).collect();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let svc = services[i % 4].clone();
        let (t, id) = (g.tenant_id.clone(), g.grant_id.clone());
        tasks.push(tokio::spawn(async move { svc.valid_access_token(&t, Provider::Zoho, &id).await }));
    }
    for t in tasks {
        let err = t.await.unwrap().expect_err("throttled");
        assert!(err.is_retryable(), "{err}");
    }
    let c = h.control("GET", "counters", None).await;
    let attempts: u64 = c["rate_limited"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("zoho token issue"))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    assert_eq!(attempts, 1, "one attempt at the token endpoint for 20 callers: {c}");
    let stored = h.store().get_grant(&g.tenant_id, Provider::Zoho, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(stored.status, GrantStatus::Active);
    assert!(stored.lease_owner.is_none());
}
