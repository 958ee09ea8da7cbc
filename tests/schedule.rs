//! Keeping books current, against moto and the in-process provider sandbox: the initial full sync a
//! connect starts (once, announced once), the scheduled incremental pulls from the `sync_due` index
//! over a simulated day, a dropped webhook healed by the next scheduled pull, and an open breaker
//! skipping (and rescheduling) a connection.
//!
//! Every test has its own copy of the grants table (so its scheduler sees only its connections), its
//! own queues and its own sandbox. The test plays the Lambda event source mapping for the worker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use chrono::{DateTime, Duration, Utc};
use integration_tests::harness::{own_queue, own_sync_queues, sandboxed, unseeded, Sandboxed};
use integration_tests::{active_connection, connect_sandbox, copy_grants_table, queues, sandbox_control, unique, TestEnv};
use reqwest::Url;
use serde_json::{json, Value};
use shared::connect::app_auth::SignedRequest;
use shared::connect::{CallbackOutcome, ConnectDeps};
use shared::events::check_against_schema;
use shared::initial_sync::Started;
use shared::jobs::{Source, SyncJob};
use shared::providers::model::{Cursor, Entity as PEntity};
use shared::providers::AccountingProvider;
use shared::refresh::TokenService;
use shared::resilience::breaker::BreakerState;
use shared::resilience::ProviderGuard;
use shared::store::grants::{Grant, GrantStore};
use shared::sync::schedule::{next_slot, RunLimits, RunReport, SyncScheduler};
use shared::sync::SyncStore;
use shared::tenancy::{Entity, Plan, Priority, Role, Tenant, TenantConfig, TenantStore};
use shared::worker::batch::Disposition;
use shared::worker::SyncDeps;
use shared::Provider;

const RETURN_URL: &str = "https://app.example.com/settings/integrations";
const OWNER: &str = "owner-1";

struct H {
    env: TestEnv,
    sb: sandbox::RunningSandbox,
    http: reqwest::Client,
}

async fn harness() -> H {
    let Sandboxed { mut env, sb, http } = sandboxed(unseeded()).await;
    env.config.public_base_url = Url::parse("https://integrations.test.example").unwrap();
    // Our own grants table: the scheduler must see this test's connections only.
    env.config.tables.grants = copy_grants_table(&env).await;
    env.config.queues.events = own_queue(&env, "events").await;
    own_sync_queues(&mut env).await;
    H { env, sb, http }
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + StdDuration::from_secs(120)
}

impl H {
    fn tenants(&self) -> TenantStore {
        self.env.tenants()
    }

    fn grants(&self) -> GrantStore {
        self.env.grants()
    }

    fn store(&self) -> SyncStore {
        self.env.sync_store()
    }

    fn scheduler(&self) -> SyncScheduler {
        SyncScheduler::new(&self.env.config, &self.env.clients)
    }

    fn service(&self) -> TokenService {
        self.env.token_service(StdDuration::from_secs(10))
    }

    fn worker(&self) -> SyncDeps {
        self.env.sync_deps(StdDuration::from_secs(10))
    }

    async fn tenant(&self, plan: Plan, minutes: u32, entities: Vec<Entity>) -> Tenant {
        let cfg = TenantConfig {
            return_urls: vec![RETURN_URL.into()],
            sync_frequency_minutes: minutes,
            enabled_entities: entities,
            ..Default::default()
        };
        let t = Tenant::new(unique("tenant"), "Acme", plan, cfg, Utc::now());
        self.tenants().create(&t).await.unwrap();
        t
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        sandbox_control::control(&self.http, &self.sb, method, path, body).await
    }

    /// A fresh org with `counts` generated records per entity, stamped an hour back.
    async fn make_org(&self, provider: Provider, counts: &[(&str, usize)]) -> (String, BTreeMap<String, Vec<String>>) {
        sandbox_control::make_org(&self.http, &self.sb, provider, counts).await
    }

    /// A real grant for `org` (consent at the sandbox, code exchange, sealed) stored with its
    /// connection the way `put_grant` stores it: active, so due for sync at once.
    async fn stored_grant(&self, tenant: &str, provider: Provider, org: &str) -> Grant {
        connect_sandbox(&self.http, &self.service(), &self.grants(), tenant, provider, Some(org), &[], None).await.0
    }

    async fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .env
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let a = out.attributes.unwrap();
        a[&A::ApproximateNumberOfMessages].parse::<u64>().unwrap() + a[&A::ApproximateNumberOfMessagesNotVisible].parse::<u64>().unwrap()
    }

    /// Receives and deletes everything on a queue.
    async fn drain(&self, url: &str) -> Vec<String> {
        let sqs = &self.env.clients.sqs;
        let mut out = Vec::new();
        loop {
            let r = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            let mut del = sqs.delete_message_batch().queue_url(url);
            for (i, m) in msgs.iter().enumerate() {
                del = del.entries(
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap())
                        .build()
                        .unwrap(),
                );
                out.push(m.body.clone().unwrap_or_default());
            }
            del.send().await.unwrap();
        }
    }

    async fn events(&self) -> Vec<Value> {
        self.drain(&self.env.config.queues.events).await.iter().map(|b| serde_json::from_str(b).unwrap()).collect()
    }

    /// Plays the event source mapping on every sync queue until they stay empty; returns every
    /// message body received (first receive of each) with what the batch made of it.
    async fn pump(&self, deps: &SyncDeps) -> Vec<(SyncJob, Disposition)> {
        let c = &self.env.config.queues;
        let urls = [c.sync_high.clone(), c.sync_normal.clone(), c.sync_low.clone()];
        let arns: Vec<String> =
            urls.iter().map(|url| format!("arn:aws:sqs:us-east-1:123456789012:{}", url.rsplit('/').next().unwrap())).collect();
        queues::pump(&self.env, deps, &urls, &arns, 2, false)
            .await
            .into_iter()
            .map(|(m, (_, d))| (SyncJob::from_json(&m.body).unwrap(), d))
            .collect()
    }
}

fn schema() -> Value {
    serde_json::from_str(include_str!("../schemas/app-event.v1.json")).unwrap()
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

fn assert_all_done(results: &[(SyncJob, Disposition)]) {
    for (j, d) in results {
        assert!(matches!(d, Disposition::Done), "{} {:?}: {d:?}", j.idempotency_key, j.entity);
    }
}

#[tokio::test]
async fn a_connect_starts_exactly_one_full_sync_and_announces_the_first_copy_once() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::QuickBooks, &[("invoice", 7), ("contact", 3), ("account", 2), ("payment", 2)]).await;
    let deps =
        ConnectDeps::new(h.env.config.clone(), &h.env.clients, shared::http_client::HttpClient::new(StdDuration::from_secs(5)).unwrap());
    let tenant = h.tenant(Plan::Professional, 60, TenantConfig::default().enabled_entities).await;
    deps.tenants.set_role(&tenant, OWNER, Role::Owner).await.unwrap();

    // The real connect flow: signed start, consent at the sandbox, callback.
    let req = SignedRequest {
        tenant_id: tenant.tenant_id.clone(),
        user_id: OWNER.into(),
        kid: "k1".into(),
        ts: Utc::now().timestamp(),
        params: [("jti".to_string(), uuid::Uuid::new_v4().simple().to_string()), ("return_url".to_string(), RETURN_URL.to_string())]
            .into_iter()
            .collect(),
    };
    let started = shared::connect::start(&deps, Provider::QuickBooks, &req, Utc::now()).await.unwrap();
    let mut url = started.url.clone();
    url.query_pairs_mut().append_pair("sandbox_realm", &org).append_pair("sandbox_user", &unique("user"));
    let resp = h.http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let cookie = started.set_cookie.split(';').next().unwrap().to_string();
    let grant = match shared::connect::callback(&deps, Provider::QuickBooks, &query, &[cookie.as_str()], Utc::now()).await {
        CallbackOutcome::Redirect { result: Ok(g), .. } => g,
        other => panic!("connect failed: {other:?}"),
    };
    assert_eq!(grant.org_ids, vec![org.clone()]);

    // The callback retried (a browser refresh, a proxy retry): refused, nothing enqueued again.
    let replay = shared::connect::callback(&deps, Provider::QuickBooks, &query, &[cookie.as_str()], Utc::now()).await;
    assert!(!matches!(replay, CallbackOutcome::Redirect { result: Ok(_), .. }), "a replayed callback connected again: {replay:?}");
    // The start step itself retried, and a scheduler run right after: neither sends anything.
    let conn = h.grants().get_connection(&tenant.tenant_id, Provider::QuickBooks, &org).await.unwrap().unwrap();
    assert_eq!(deps.initial_sync.start(&tenant, &conn, Utc::now()).await.unwrap(), Started::AlreadyStarted);
    let report = h.scheduler().run(Utc::now(), deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!((report.found, report.jobs, report.skipped_initial_running), (1, 0, 1), "{report:?}");

    let q = &h.env.config.queues;
    assert_eq!(h.depth(&q.sync_low).await, 4, "one full pull per enabled entity, on the low queue");
    assert_eq!(h.depth(&q.sync_normal).await + h.depth(&q.sync_high).await, 0);

    // The worker runs them (one batch, in parallel: the last two may finish together).
    let worker = h.worker();
    let results = h.pump(&worker).await;
    assert_all_done(&results);
    assert_eq!(results.len(), 4, "{results:?}");
    let entities: BTreeSet<Entity> = results.iter().map(|(j, _)| j.entity).collect();
    assert_eq!(entities.len(), 4);
    for (j, _) in &results {
        assert_eq!(j.source, Source::Connect);
        assert_eq!(j.priority, Priority::Low);
        assert_eq!(j.cursor.as_deref(), Some("full"));
        assert!(j.idempotency_key.starts_with("init1:quickbooks:") && j.idempotency_key.contains(&grant.grant_id), "{}", j.idempotency_key);
    }
    let stored = h.store().list_records(&tenant.tenant_id, Provider::QuickBooks, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(stored.len(), ids["invoice"].len());

    let events = h.events().await;
    assert_eq!(of_type(&events, "sync.completed").len(), 4, "{events:#?}");
    let first = of_type(&events, "sync.initial_completed");
    assert_eq!(first.len(), 1, "exactly one first-copy event: {events:#?}");
    check_against_schema(&schema(), first[0]).unwrap();
    assert_eq!(first[0]["data"]["org_id"], org);
    assert_eq!(first[0]["data"]["grant_id"], grant.grant_id);
    assert_eq!(first[0]["data"]["entities"].as_array().unwrap().len(), 4);

    // A redelivered initial job is a duplicate: no second event.
    let body = results[0].0.to_json();
    h.env.clients.sqs.send_message().queue_url(&q.sync_low).message_body(body).send().await.unwrap();
    let again = h.pump(&worker).await;
    assert!(matches!(again[0].1, Disposition::Done), "{again:?}");
    assert!(of_type(&h.events().await, "sync.initial_completed").is_empty());
}

#[tokio::test]
async fn workers_finishing_the_last_entities_at_once_send_the_first_copy_event_once() {
    let h = harness().await;
    let sched = h.scheduler();
    let initial = sched.initial();
    let tenant = h.tenant(Plan::Enterprise, 60, TenantConfig::default().enabled_entities).await;
    let now = Utc::now();
    for round in 0..5 {
        let org = format!("org-{round}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let grant_id = unique("g");
        let conn = active_connection(&tenant.tenant_id, Provider::Xero, &org, &grant_id, now);
        h.grants().put_connection(&conn).await.unwrap();
        assert_eq!(initial.start(&tenant, &conn, now).await.unwrap(), Started::Enqueued { jobs: 4 });
        let keys: Vec<String> =
            h.drain(&h.env.config.queues.sync_low).await.iter().map(|b| SyncJob::from_json(b).unwrap().idempotency_key).collect();
        assert_eq!(keys.len(), 4);
        // Every entity finishes at once, each reported three times (redeliveries, retries).
        let calls = keys.iter().flat_map(|k| std::iter::repeat_n(k.clone(), 3)).map(|k| {
            let tenant_id = tenant.tenant_id.clone();
            async move { initial.entity_finished(&tenant_id, &k, Utc::now()).await.unwrap() }
        });
        let sent: Vec<_> = futures::future::join_all(calls).await.into_iter().flatten().collect();
        assert_eq!(sent.len(), 1, "round {round}: one sender");
        let events = of_type(&h.events().await, "sync.initial_completed").into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(events.len(), 1, "round {round}");
        assert_eq!(events[0]["data"]["org_id"], org);
        // A job of an older connect (another grant) records nothing.
        let stale = shared::initial_sync::initial_key(Provider::Xero, &org, "older-grant", Entity::Invoice);
        assert_eq!(initial.entity_finished(&tenant.tenant_id, &stale, Utc::now()).await.unwrap(), None);
    }
}

/// Intervals over 100 tenants of 10 connections: one tenant every 15 minutes, most hourly to daily.
/// Tenant `i` of `n`: at 100 or more, its share of that mix; below, each interval keeps one tenant
/// and the rest are daily, so the short test still covers every interval.
fn interval_for(i: usize, n: usize) -> u32 {
    const MIX: [(usize, u32); 6] = [(1, 15), (4, 60), (14, 120), (30, 240), (50, 720), (100, 1440)];
    let p = if n >= 100 {
        i * 100 / n
    } else if i < MIX.len() {
        MIX[i].0 - 1
    } else {
        99
    };
    MIX.iter().find(|(upto, _)| p < *upto).map_or(1440, |(_, m)| *m)
}

/// Tenants in the day simulation (10 connections each): `SCHEDULE_SIM_TENANTS`, 10 by default (a
/// test's worth, 100 connections); `scripts/bench schedule_day` runs 100 (1,000 connections) and prints
/// the figures.
fn sim_tenants() -> usize {
    std::env::var("SCHEDULE_SIM_TENANTS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(10)
}

#[tokio::test]
async fn connections_get_exactly_their_due_pulls_over_a_simulated_day() {
    let h = harness().await;
    let n_tenants = sim_tenants();
    let sched = h.scheduler();
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().into();
    let end = start + Duration::days(1);
    let setup = StdInstant::now();
    let mut tenants = Vec::new();
    for i in 0..n_tenants {
        tenants.push(h.tenant(Plan::Enterprise, interval_for(i, n_tenants), vec![Entity::Invoice]).await);
    }
    // expected idempotency keys -> due time
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    // the keys of the pulls that are full passes (one per connection and full-pass period)
    let mut full: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut conns = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        for k in 0..10 {
            let provider = Provider::ALL[(i + k) % 3];
            conns.push((t.clone(), provider, format!("o{i}x{k}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])));
        }
    }
    for chunk in conns.chunks(25) {
        futures::future::join_all(chunk.iter().map(|(t, p, org)| {
            let (h, sched) = (&h, &sched);
            async move {
                h.grants().put_connection(&active_connection(&t.tenant_id, *p, org, "g-1", start)).await.unwrap();
                sched.enroll(t, *p, org, true, start).await.unwrap()
            }
        }))
        .await;
    }
    for (t, p, org) in &conns {
        let interval = i64::from(shared::sync::schedule::interval_minutes(t)) * 60;
        let mut slot = next_slot(t, *p, org, start);
        while slot <= end.timestamp() {
            let key = shared::sync::schedule::scheduled_key(*p, org, Entity::Invoice, slot);
            if shared::sync::schedule::is_full_pass_slot(t, *p, org, slot) {
                full.insert(key.clone());
            }
            expected.insert(key, slot);
            slot += interval;
        }
    }
    let setup = setup.elapsed();

    // One run every 15 simulated minutes (the shortest interval here; deployed it runs every
    // minute); every hour two runs at once.
    let sim = StdInstant::now();
    let tick = 900;
    let mut got: HashMap<String, u32> = HashMap::new();
    let mut total = RunReport::default();
    let mut runs = 0;
    let mut max_per_tick = 0usize;
    for k in 1..=(86_400 / tick) {
        let now = start + Duration::seconds(k * tick);
        let reports = if k % 4 == 0 {
            let limits = RunLimits::default();
            let (a, b) = tokio::join!(sched.run(now, deadline(), &limits), sched.run(now, deadline(), &limits));
            vec![a.unwrap(), b.unwrap()]
        } else {
            vec![sched.run(now, deadline(), &RunLimits::default()).await.unwrap()]
        };
        for r in reports {
            runs += 1;
            assert_eq!((r.failed, r.left_for_next_run, r.shards_left_for_next_run), (0, 0, 0), "{r:?}");
            total.pulled += r.pulled;
            total.jobs += r.jobs;
            total.lost_race += r.lost_race;
            total.found += r.found;
        }
        let bodies = h.drain(&h.env.config.queues.sync_normal).await;
        max_per_tick = max_per_tick.max(bodies.len());
        for b in bodies {
            let j = SyncJob::from_json(&b).unwrap();
            assert_eq!(j.source, Source::Schedule);
            // Incremental (the worker resumes from its stored cursor), or the connection's full pass.
            let want = full.contains(&j.idempotency_key).then_some("full");
            assert_eq!(j.cursor.as_deref(), want, "{}", j.idempotency_key);
            let due = *expected.get(&j.idempotency_key).unwrap_or_else(|| panic!("not a due pull: {}", j.idempotency_key));
            let at = j.requested_at.timestamp();
            assert!(due <= at && at < due + tick, "{} due {due} enqueued at {at}", j.idempotency_key);
            *got.entry(j.idempotency_key).or_default() += 1;
        }
    }
    let sim = sim.elapsed();
    let dupes: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "enqueued twice: {dupes:?}");
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty(), "due pulls never enqueued (first 5): {missing:?}");
    assert_eq!(got.len(), expected.len());
    // Enterprise: a full pass every 12 hours, so one or two per connection in the day.
    assert!(full.len() >= conns.len() && full.len() <= 3 * conns.len(), "{} full passes", full.len());
    assert_eq!(total.jobs, expected.len());
    assert_eq!(h.depth(&h.env.config.queues.sync_low).await + h.depth(&h.env.config.queues.sync_high).await, 0);
    println!(
        "simulated day: {} connections, {} pulls due and enqueued exactly once ({} runs, {} lost races between concurrent runs, at most {} per 15-minute run); set-up {:.1} s, simulation {:.1} s",
        conns.len(),
        expected.len(),
        runs,
        total.lost_race,
        max_per_tick,
        setup.as_secs_f64(),
        sim.as_secs_f64()
    );
}

#[tokio::test]
async fn a_dropped_webhook_is_healed_by_the_next_scheduled_pull() {
    let h = harness().await;
    let provider = Provider::QuickBooks;
    let (org, ids) = h.make_org(provider, &[("invoice", 5)]).await;
    let tenant = h.tenant(Plan::Professional, 15, vec![Entity::Invoice]).await;
    // Stored as a connect stores it, but nothing enqueued its initial sync (as if the callback died
    // right after the write): the scheduler's first run does.
    let grant = h.stored_grant(&tenant.tenant_id, provider, &org).await;
    let sched = h.scheduler();
    let r = sched.run(Utc::now(), deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!((r.initial_started, r.jobs), (1, 1), "{r:?}");
    let worker = h.worker();
    assert_all_done(&h.pump(&worker).await);
    assert_eq!(of_type(&h.events().await, "sync.initial_completed").len(), 1);
    let before = h.store().get_record(&tenant.tenant_id, provider, &org, PEntity::Invoice, &ids["invoice"][0]).await.unwrap().unwrap();

    // The invoice changes at QuickBooks; its webhook never arrives.
    let svc = h.service();
    let client = svc.provider_client(provider).await.unwrap();
    let tokens = svc.valid_access_token(&tenant.tenant_id, provider, &grant.grant_id).await.unwrap().tokens;
    let mut raw = client.get(&tokens, &org, PEntity::Invoice, &ids["invoice"][0]).await.unwrap().raw;
    raw["TotalAmt"] = json!(4321.5);
    h.control("POST", "seed", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "invoice", "records": [raw]}))).await;

    // Nothing is due yet; at the connection's next slot the scheduler enqueues the pull.
    let due = sched.connection_schedule(&tenant.tenant_id, provider, &org).await.unwrap().unwrap().next_sync_at;
    let early = sched.run(DateTime::from_timestamp(due - 1, 0).unwrap(), deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!(early.found, 0, "{early:?}");
    let at_due = DateTime::from_timestamp(due, 0).unwrap();
    let r = sched.run(at_due, deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!((r.pulled, r.jobs), (1, 1), "{r:?}");
    let results = h.pump(&worker).await;
    assert_all_done(&results);
    assert_eq!(results[0].0.source, Source::Schedule);
    let after = h.store().get_record(&tenant.tenant_id, provider, &org, PEntity::Invoice, &ids["invoice"][0]).await.unwrap().unwrap();
    assert_ne!(before.amount, after.amount);
    assert_eq!(after.amount.unwrap().minor, 432_150, "the change reached SYNC_TABLE without its webhook");
    // And the connection moved on by one interval (15 minutes).
    let next = sched.connection_schedule(&tenant.tenant_id, provider, &org).await.unwrap().unwrap().next_sync_at;
    assert_eq!(next, due + 900);
}

#[tokio::test]
async fn a_connection_whose_breaker_is_open_is_skipped_and_rescheduled() {
    let h = harness().await;
    let provider = Provider::QuickBooks;
    let (org, _) = h.make_org(provider, &[("invoice", 2)]).await;
    let tenant = h.tenant(Plan::Enterprise, 60, vec![Entity::Invoice, Entity::Contact]).await;
    let grant = h.stored_grant(&tenant.tenant_id, provider, &org).await;
    let sched = h.scheduler();
    let now = Utc::now();
    let due = sched.enroll(&tenant, provider, &org, true, now).await.unwrap();

    // The org's breaker opens: QuickBooks answers 500 to every call.
    h.control("POST", "faults", Some(json!({"provider": "quickbooks", "kind": "500", "count": 100}))).await;
    let guard = ProviderGuard::new(&h.env.config, h.env.clients.dynamodb.clone());
    let svc = h.service();
    let client = svc.provider_client(provider).await.unwrap();
    let tokens = svc.valid_access_token(&tenant.tenant_id, provider, &grant.grant_id).await.unwrap().tokens;
    let cursor = Cursor::start(provider, PEntity::Invoice);
    for _ in 0..30 {
        let r = guard.call_once(&tenant.tenant_id, provider, &org, "list", || client.list(&tokens, &org, &cursor)).await;
        assert!(r.is_err());
        if guard.breaker_state(provider, Some(org.as_str())).await.unwrap().state == BreakerState::Open {
            break;
        }
    }
    assert_eq!(guard.breaker_state(provider, Some(org.as_str())).await.unwrap().state, BreakerState::Open);

    let at_due = DateTime::from_timestamp(due, 0).unwrap();
    let r = sched.run(at_due, deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!((r.found, r.skipped_breaker_open, r.jobs), (1, 1, 0), "{r:?}");
    assert_eq!(h.depth(&h.env.config.queues.sync_normal).await, 0, "no pull while the breaker is open");
    let again = sched.connection_schedule(&tenant.tenant_id, provider, &org).await.unwrap().unwrap().next_sync_at;
    assert!(again > due && again <= due + 300, "rescheduled for after the breaker's open time: {due} -> {again}");
    // Not due before then: a run in between finds nothing.
    let r = sched.run(at_due + Duration::seconds(60), deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!(r.found, 0, "{r:?}");

    // The provider recovers and the breaker closes: the rescheduled pull goes out.
    h.control("DELETE", "faults", None).await;
    guard.reset_breaker(provider, Some(org.as_str())).await.unwrap();
    let r = sched.run(DateTime::from_timestamp(again, 0).unwrap(), deadline(), &RunLimits::default()).await.unwrap();
    assert_eq!((r.pulled, r.jobs), (1, 2), "{r:?}");
    let jobs: Vec<SyncJob> = h.drain(&h.env.config.queues.sync_normal).await.iter().map(|b| SyncJob::from_json(b).unwrap()).collect();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j.source == Source::Schedule && j.idempotency_key.ends_with(&format!(":{again}"))), "{jobs:?}");
}
