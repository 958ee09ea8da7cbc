//! The shared limiter, slots and breakers (`shared::resilience`) against moto and the provider
//! sandbox: several guards stand for several Lambda workers sharing only DynamoDB. Every test uses
//! a fresh tenant and a fresh org id for the guard's keys (the sandbox's seeded Xero tenant 1 is
//! the org actually called), so its keys are its own: the guard keys state by provider org.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::{aws, unique};
use reqwest::Url;
use serde_json::{json, Value};
use shared::http_client::HttpClient;
use shared::providers::{
    AccountingProvider, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Endpoints, Entity, ProviderClient,
};
use shared::resilience::{BreakerSettings, BreakerState, Limits, ProviderGuard, RetryPolicy, SlotDecision, Transition};
use shared::{Error, ErrorCode, Provider, SecretString, TokenSet};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
const XERO_T1: &str = sandbox::state::XERO_TENANT_1;

struct Env {
    sb: sandbox::RunningSandbox,
    http: reqwest::Client,
    client: ProviderClient,
    tokens: TokenSet,
    db: aws_sdk_dynamodb::Client,
    table: String,
    config: shared::Config,
    events: shared::events::EventPublisher,
    /// Wall-clock µs at which each guarded call left for the provider.
    starts: std::sync::Mutex<Vec<i64>>,
    /// The org id the guard keys this test's calls by (they go to the sandbox's `XERO_T1`).
    org: String,
}

impl Env {
    /// A sandbox with `sandbox_config` for Xero, and a Xero token for its seeded tenants.
    async fn xero(sandbox_config: Value) -> Env {
        shared::http_client::install_crypto_provider();
        let t = aws().await;
        let sb = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let base = Url::parse(&sb.base_url).unwrap();
        let creds = ClientCredentials { client_id: "sandbox-xero-client".into(), client_secret: SecretString::new("sandbox-xero-secret") };
        let client = ProviderClient::new(
            Provider::Xero,
            Endpoints::sandbox(Provider::Xero, &base),
            creds,
            HttpClient::new(Duration::from_secs(10)).unwrap(),
        );
        let state = "st-resilience";
        let redirect = Url::parse(REDIRECT).unwrap();
        let req = AuthorizeRequest { state, redirect_uri: &redirect, scopes: &[], pkce_challenge: None, extra: &[] };
        let resp = http.get(client.authorize_url(&req).unwrap()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        let callback = CallbackParams::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let grant = client.exchange_code(&q["code"], &redirect, None, &callback).await.expect("code exchange");
        let events = shared::events::EventPublisher::new(t.clients.sqs.clone(), t.config.queues.events.clone());
        let env = Env {
            sb,
            http,
            client,
            tokens: grant.tokens,
            db: t.clients.dynamodb.clone(),
            // The provider-wide breaker's item is one per provider: in the shared table the
            // failures these tests cause would count against every other test's Xero calls.
            table: integration_tests::harness::own_resilience_table(&t.clients.dynamodb).await,
            config: t.config,
            events,
            starts: Default::default(),
            org: unique("org"),
        };
        let mut body = sandbox_config;
        body["provider"] = json!("xero");
        env.control("config", body).await;
        env
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self.http.post(format!("{}/_sandbox/{path}", self.sb.base_url)).json(&body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "control {path} {body}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn counters(&self) -> Value {
        self.http.get(format!("{}/_sandbox/counters", self.sb.base_url)).send().await.unwrap().json().await.unwrap()
    }

    /// A fresh events queue for one test.
    async fn events_queue(&self) -> String {
        let sqs = aws().await.clients.sqs;
        sqs.create_queue().queue_name(unique("events")).send().await.unwrap().queue_url.unwrap()
    }

    /// Every message on `queue` until it has been empty for a second, as JSON.
    async fn drain(&self, queue: &str) -> Vec<Value> {
        let sqs = aws().await.clients.sqs;
        let mut out = Vec::new();
        loop {
            let got = sqs.receive_message().queue_url(queue).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                out.push(serde_json::from_str(m.body.as_deref().unwrap_or("")).expect("events are JSON"));
            }
        }
    }

    async fn clear_faults(&self) {
        self.http.delete(format!("{}/_sandbox/faults", self.sb.base_url)).send().await.unwrap();
    }

    /// One worker: its own guard (nothing shared in memory with the others).
    fn guard(&self, limits: Limits) -> ProviderGuard {
        ProviderGuard::with_limits(self.db.clone(), self.table.clone(), limits)
    }

    /// A guarded Xero list call for `tenant`'s connection to the seeded tenant 1. `reached` counts
    /// the calls that got past the guard.
    async fn list(&self, guard: &ProviderGuard, tenant: &str, reached: &AtomicU32) -> (shared::Result<usize>, Vec<Transition>) {
        let g = guard
            .call_reporting(tenant, Provider::Xero, &self.org, "list contacts", || async {
                reached.fetch_add(1, Ordering::SeqCst);
                self.starts.lock().unwrap().push(chrono::Utc::now().timestamp_micros());
                self.client.list(&self.tokens, XERO_T1, &Cursor::start(Provider::Xero, Entity::Contact)).await.map(|p| p.records.len())
            })
            .await;
        (g.result, g.transitions)
    }
}

/// Generous limits so only what a test is about can bite.
fn roomy() -> Limits {
    Limits {
        xero_per_minute: 10_000,
        xero_per_day: 1_000_000,
        // Every test's org takes a share of the app-wide limit in the one app item: room for all.
        xero_app_per_minute: 1_000_000_000,
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        provider_breaker: BreakerSettings { min_calls: 1_000_000, ..BreakerSettings::default() },
        ..Limits::default()
    }
}

fn rate_limited_count(counters: &Value) -> u64 {
    counters["rate_limited"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_workers_share_a_per_window_budget_without_a_429() {
    // 60 calls per 10-second window (the minute, shrunk), 5 in flight, each answer 20 ms.
    let env = Env::xero(json!({"rate_limit_per_minute": 60, "minute_window_seconds": 10, "rate_limit_per_day": 100000,
        "app_rate_limit_per_minute": 100000, "max_concurrent": 5, "latency_ms": 20}))
    .await;
    let limits = Limits {
        minute: Duration::from_secs(10),
        // Covers the jitter between our reservation and the sandbox's check on a loaded 2-core box
        // (the sandbox shares the test's runtime, and other builds share the cores).
        safety: Duration::from_millis(500),
        xero_per_minute: 60,
        xero_per_day: 1_000_000,
        xero_app_per_minute: 100_000,
        provider_breaker: BreakerSettings { min_calls: 1_000_000, ..BreakerSettings::default() },
        ..Limits::default()
    };
    let tenant = unique("t-rl");
    let run_for = Duration::from_secs(20);
    let start = Instant::now();
    let env = Arc::new(env);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (env, tenant, guard) = (env.clone(), tenant.clone(), env.guard(limits.clone()));
        tasks.push(tokio::spawn(async move {
            let reached = AtomicU32::new(0);
            let mut errors = Vec::new();
            // Past the run, one more window's worth so the last calls of the run can complete.
            while start.elapsed() < run_for + Duration::from_secs(2) {
                if let Err(e) = env.list(&guard, &tenant, &reached).await.0 {
                    errors.push((e.code(), e.to_string()));
                }
            }
            (errors, guard.stats())
        }));
    }
    let (mut errors, mut stats) = (Vec::new(), Vec::new());
    for t in tasks {
        let (e, st) = t.await.unwrap();
        errors.extend(e);
        stats.push(st);
    }
    let dynamo: u64 = stats.iter().map(|s| s.dynamo_calls).sum();
    let lim: u64 = stats.iter().map(|s| s.limiter_calls).sum();
    let permitted: u64 = stats.iter().map(|s| s.permitted).sum();
    let missed: u64 = stats.iter().map(|s| s.missed).sum();
    let p429: u64 = stats.iter().map(|s| s.provider_429).sum();
    let breaker_reads: u64 = stats.iter().map(|s| s.breaker_reads).sum();
    let shares: u64 = stats.iter().map(|s| s.share_writes).sum();
    // The provider's windows start at its first call: the budget of `run_for` from there.
    let mut starts = env.starts.lock().unwrap().clone();
    starts.sort_unstable();
    let first = starts[0];
    let in_run = starts.iter().filter(|t| **t < first + run_for.as_micros() as i64).count();
    let counters = env.counters().await;
    let budget = 60.0 * run_for.as_secs_f64() / 10.0;
    let used = in_run as f64 / budget;
    println!(
        "10 workers: {in_run} calls in the first {run_for:?} of a {budget} budget ({:.1}%); {dynamo} DynamoDB calls ({lim} org writes, {breaker_reads} breaker reads, {shares} share writes) for {permitted} permitted, {missed} places missed",
        used * 100.0
    );
    assert_eq!(rate_limited_count(&counters), 0, "the sandbox refused calls: {counters}");
    assert_eq!(p429, 0);
    // Only waits handed back may be errors; never a provider error.
    assert!(errors.iter().all(|(c, _)| *c == ErrorCode::RateLimited), "{errors:?}");
    assert!(used >= 0.9, "used {:.1}% of the budget", used * 100.0);
    Arc::try_unwrap(env).ok().unwrap().sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_breaker_opens_across_workers_lets_the_probes_through_and_closes() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 0})).await;
    let settings = BreakerSettings {
        window: Duration::from_secs(60),
        buckets: 6,
        failure_rate: 0.5,
        min_calls: 6,
        open_for: Duration::from_secs(2),
        half_open_probes: 2,
        close_after: 2,
        probe_lease: Duration::from_secs(30),
        cache_for: Duration::from_secs(2),
    };
    let limits = Limits { org_breaker: settings.clone(), ..roomy() };
    let tenant = unique("t-cb");
    // The workers send connection health events to a queue of this test's own.
    let queue = env.events_queue().await;
    let publisher = shared::events::EventPublisher::new(aws().await.clients.sqs.clone(), queue.clone());
    let workers: Vec<ProviderGuard> = (0..3).map(|_| env.guard(limits.clone()).with_events(publisher.clone())).collect();
    env.control("faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "500", "count": 100})).await;
    let reached = AtomicU32::new(0);

    // Three workers, two failing calls each: the sixth failure, counted across all, opens it once.
    let mut transitions = Vec::new();
    for round in 0..2 {
        let results = futures::future::join_all(workers.iter().map(|w| env.list(w, &tenant, &reached))).await;
        for (r, t) in results {
            assert_eq!(r.unwrap_err().code(), ErrorCode::ProviderTransient, "round {round}");
            transitions.extend(t);
        }
    }
    let opened: Vec<_> = transitions.iter().filter(|t| t.to == BreakerState::Open).collect();
    assert_eq!(opened.len(), 1, "exactly one worker opens it: {transitions:?}");
    assert_eq!(opened[0].from, BreakerState::Closed);
    assert!(opened[0].failures >= 6);
    let snap = workers[0].breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert_eq!(snap.state, BreakerState::Open);

    // Open: refused without reaching the provider.
    let before = reached.load(Ordering::SeqCst);
    let (r, _) = env.list(&workers[1], &tenant, &reached).await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::CircuitOpen);
    assert!(e.retry_after().unwrap() <= settings.open_for);
    assert_eq!(reached.load(Ordering::SeqCst), before);

    // The provider recovers; after the open time, six concurrent calls: exactly the two probes go.
    env.clear_faults().await;
    env.control("config", json!({"provider": "xero", "latency_ms": 400})).await;
    tokio::time::sleep(settings.open_for + Duration::from_millis(200)).await;
    let before = reached.load(Ordering::SeqCst);
    let calls = (0..6).map(|i| env.list(&workers[i % 3], &tenant, &reached));
    let results = futures::future::join_all(calls).await;
    assert_eq!(reached.load(Ordering::SeqCst) - before, 2, "exactly the permitted probes reach the provider");
    let (mut ok, mut refused, mut transitions) = (0, 0, Vec::new());
    for (r, t) in results {
        match r {
            Ok(_) => ok += 1,
            Err(e) if e.code() == ErrorCode::CircuitOpen => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        transitions.extend(t);
    }
    assert_eq!((ok, refused), (2, 4));
    let to: Vec<(BreakerState, BreakerState)> = transitions.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(to.iter().filter(|t| **t == (BreakerState::Open, BreakerState::HalfOpen)).count(), 1, "{to:?}");
    assert_eq!(to.iter().filter(|t| **t == (BreakerState::HalfOpen, BreakerState::Closed)).count(), 1, "{to:?}");
    let snap = workers[2].breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!(snap.failures, 0, "a closed breaker starts with a clean window");
    assert!(env.list(&workers[0], &tenant, &reached).await.0.is_ok());

    // The app hears about it: degraded on open, recovered on close, in the public event format.
    let schema: Value = serde_json::from_str(include_str!("../schemas/app-event.v1.json")).unwrap();
    let degraded = shared::resilience::transition_event(opened[0]).expect("an event for the org");
    assert_eq!(degraded.event_type, shared::events::EventType::ConnectionDegraded);
    assert_eq!(degraded.data["org_ids"][0], env.org.as_str());
    assert_eq!(degraded.data["cause"], "provider_errors");
    shared::events::check_against_schema(&schema, &serde_json::to_value(&degraded).unwrap()).unwrap();
    let closed = transitions.iter().find(|t| t.to == BreakerState::Closed).unwrap();
    let recovered = shared::resilience::transition_event(closed).unwrap();
    assert_eq!(recovered.event_type, shared::events::EventType::ConnectionRecovered);
    shared::events::check_against_schema(&schema, &serde_json::to_value(&recovered).unwrap()).unwrap();
    // On the events queue: exactly one degraded (the opening) and one recovered (the closing),
    // although three workers saw the failures and six calls the half-open round.
    for w in &workers {
        w.flush().await;
    }
    let sent = env.drain(&queue).await;
    let kinds: Vec<&str> = sent.iter().map(|e| e["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "connection.degraded").count(), 1, "{sent:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "connection.recovered").count(), 1, "{sent:?}");
    assert_eq!(kinds.len(), 2, "nothing else: {sent:?}");
    for e in &sent {
        assert_eq!(e["tenant_id"], tenant.as_str());
        assert_eq!(e["data"]["org_ids"][0], env.org.as_str());
        shared::events::check_against_schema(&schema, e).unwrap();
    }
    let _ = (&env.config, &env.events);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_dead_workers_slot_frees_after_its_lease() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 2})).await;
    // Leases long enough that the set-up's own calls never outlive them.
    let lease = Duration::from_secs(4);
    let limits = Limits { xero_concurrency: 2, slot_lease: lease, ..roomy() };
    let tenant = unique("t-slot");
    let guard = env.guard(limits.clone());
    // Two workers take the org's two slots and die mid-call (never give them back).
    let mut cost = Default::default();
    for _ in 0..2 {
        let d = guard.slots().acquire(Provider::Xero, &env.org, 2, lease, &mut cost).await.unwrap();
        assert!(matches!(d, SlotDecision::Held(_)));
    }
    assert!(matches!(guard.slots().acquire(Provider::Xero, &env.org, 2, lease, &mut cost).await.unwrap(), SlotDecision::Full { .. }));
    // A live worker's call waits for the dead leases to run out, reclaims one, and goes.
    let reached = AtomicU32::new(0);
    let live = env.guard(limits);
    let (r, _) = env.list(&live, &tenant, &reached).await;
    r.expect("the call goes once a dead slot is reclaimed");
    // The live worker keeps its slot for its next call until it flushes (the end of its job).
    let holders = guard.slots().holders(Provider::Xero, &env.org).await.unwrap();
    assert_eq!(holders.len(), 2, "one dead lease reclaimed and ours taken in its place, the other dead one left: {holders:?}");
    live.flush().await;
    let holders = guard.slots().holders(Provider::Xero, &env.org).await.unwrap();
    assert_eq!(holders.len(), 1, "ours given back, the other dead one left: {holders:?}");
    assert_eq!(rate_limited_count(&env.counters().await), 0);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_4xx_never_opens_the_breaker_and_a_429_feeds_the_limiter_not_the_breaker() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 0})).await;
    let settings = BreakerSettings { min_calls: 3, failure_rate: 0.1, ..BreakerSettings::default() };
    let limits = Limits { org_breaker: settings, ..roomy() };
    let tenant = unique("t-4xx");
    let guard = env.guard(limits);
    let reached = AtomicU32::new(0);
    // 401s (the token refused) are the provider answering: successes for the breaker.
    env.control("faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "invalid_grant", "count": 5})).await;
    for _ in 0..5 {
        let (r, t) = env.list(&guard, &tenant, &reached).await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::ProviderAuthFailed);
        assert!(t.is_empty());
    }
    // Successes are held by the worker and written in batches; flushing writes them all.
    guard.flush().await;
    let snap = guard.breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert_eq!((snap.state, snap.calls, snap.failures), (BreakerState::Closed, 5, 0));

    // 429s: not counted by the breaker; the limiter holds the org back for the Retry-After.
    env.control(
        "faults",
        json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "429", "retry_after": 30, "count": 3}),
    )
    .await;
    let (r, t) = env.list(&guard, &tenant, &reached).await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert!(t.is_empty());
    guard.flush().await;
    let snap = guard.breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert_eq!((snap.state, snap.calls, snap.failures), (BreakerState::Closed, 5, 0));
    // The next call does not reach the provider: it is told to wait out the penalty.
    let before = reached.load(Ordering::SeqCst);
    let (r, _) = env.list(&guard, &tenant, &reached).await;
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::RateLimited);
    assert!(e.retry_after().unwrap() > Duration::from_secs(20), "{e}");
    assert_eq!(reached.load(Ordering::SeqCst), before);
    assert_eq!(guard.stats().provider_429, 1);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_spent_daily_limit_parks_the_org_until_the_reset() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 3, "max_concurrent": 0})).await;
    let limits = Limits { xero_per_day: 3, ..roomy() };
    let tenant = unique("t-day");
    let guard = env.guard(limits);
    let reached = AtomicU32::new(0);
    for i in 0..3 {
        if let Err(e) = env.list(&guard, &tenant, &reached).await.0 {
            panic!("call {i} within the day: {e:?}; sandbox {}; reached {}", env.counters().await, reached.load(Ordering::SeqCst));
        }
    }
    let (r, _) = env.list(&guard, &tenant, &reached).await;
    let e = r.unwrap_err();
    assert!(matches!(&e, Error::RateLimited { scope, .. } if scope.ends_with(":day")), "{e}");
    assert!(e.retry_after().unwrap() > Duration::from_secs(86_000), "parked until the day resets: {e}");
    assert_eq!(reached.load(Ordering::SeqCst), 3);
    assert_eq!(rate_limited_count(&env.counters().await), 0, "the provider never had to refuse");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_busy_key_costs_one_dynamodb_call_per_reservation() {
    let t = aws().await;
    let limiter = shared::resilience::Limiter::new(t.clients.dynamodb.clone(), t.config.tables.resilience.clone());
    let tenant = unique("t-fast");
    for (label, params) in [
        ("minute", shared::resilience::RateParams::per_window(60, Duration::from_secs(60), 1, Duration::ZERO, Duration::from_secs(30))),
        (
            "minute+day",
            shared::resilience::RateParams::per_window(60, Duration::from_secs(60), 1, Duration::ZERO, Duration::from_secs(30))
                .with_day(5000, Duration::from_secs(86_400)),
        ),
    ] {
        let key = shared::resilience::limiter::org_key(Provider::Xero, &format!("{tenant}-{label}"), params);
        // Before the first reservation: its slot is no earlier than this.
        let started = std::time::Instant::now();
        let mut first = shared::resilience::Cost::default();
        assert!(matches!(limiter.acquire(&key, &mut first).await.unwrap(), shared::resilience::Decision::Go(d) if d.is_zero()));
        for i in 1..10 {
            let mut cost = shared::resilience::Cost::default();
            let d = limiter.acquire(&key, &mut cost).await.unwrap();
            // Reservation i is one second after the one before: i seconds after the first, however
            // long the calls took (the wait shrinks by the time already spent).
            let at = |d: Duration| started.elapsed() + d;
            assert!(
                matches!(d, shared::resilience::Decision::Go(d) if at(d) > Duration::from_millis(900 * i)),
                "{label} {i}: {d:?} after {:?}",
                started.elapsed()
            );
            assert_eq!(cost.dynamo_calls, 1, "{label}: a reservation on a busy key is one UpdateItem");
        }
    }
}

#[tokio::test]
async fn a_probe_that_cannot_call_gives_its_place_back() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 0})).await;
    let settings =
        BreakerSettings { min_calls: 2, open_for: Duration::from_millis(500), half_open_probes: 1, ..BreakerSettings::default() };
    let limits = Limits { org_breaker: settings.clone(), ..roomy() };
    let tenant = unique("t-probe");
    let guard = env.guard(limits.clone());
    let reached = AtomicU32::new(0);
    env.control("faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "500", "count": 2})).await;
    for _ in 0..2 {
        assert_eq!(env.list(&guard, &tenant, &reached).await.0.unwrap_err().code(), ErrorCode::ProviderTransient);
    }
    assert_eq!(guard.breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap().state, BreakerState::Open);
    tokio::time::sleep(settings.open_for + Duration::from_millis(100)).await;
    // The org is rate limited for a minute: the probe is admitted, cannot call, and gives it back.
    let key = &limits.keys(Provider::Xero, &env.org)[0];
    guard.limiter().penalise(key, Duration::from_secs(60), false).await.unwrap();
    let before = reached.load(Ordering::SeqCst);
    let (r, t) = env.list(&guard, &tenant, &reached).await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::RateLimited);
    assert_eq!(reached.load(Ordering::SeqCst), before);
    assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), vec![BreakerState::HalfOpen]);
    let snap = guard.breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert_eq!((snap.state, snap.probes), (BreakerState::HalfOpen, 0), "the one probe is free again");
    env.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_counts_still_open_the_breaker_at_the_threshold_counted_across_workers() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 0})).await;
    // Opens at 20 calls in the window with at least 40 % failed: with every worker's successes
    // counted that is exactly the 8th failure after 12 successes (12 + 8 = 20, 8/20 = 40 %). Had
    // the successes held in the workers been lost it would open at the 20th failure; had the
    // failures been held it would open late or never.
    let settings = BreakerSettings { min_calls: 20, failure_rate: 0.4, open_for: Duration::from_secs(30), ..BreakerSettings::default() };
    let limits = Limits { org_breaker: settings, ..roomy() };
    let tenant = unique("t-batch");
    let workers: Vec<ProviderGuard> = (0..4).map(|_| env.guard(limits.clone())).collect();
    let reached = AtomicU32::new(0);
    // Three successes per worker, concurrently; each worker holds its last one unwritten.
    for _ in 0..3 {
        let results = futures::future::join_all(workers.iter().map(|w| env.list(w, &tenant, &reached))).await;
        for (r, _) in results {
            r.expect("a success");
        }
    }
    let snap = workers[0].breaker_state(Provider::Xero, Some(env.org.as_str())).await.unwrap();
    assert!(snap.calls < 12, "some successes are still held by the workers: {snap:?}");
    env.control("faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "500", "count": 100})).await;
    // Failures one at a time, round the workers, until the breaker refuses.
    let mut transitions = Vec::new();
    let mut failed = 0;
    for i in 0..40 {
        let (r, t) = env.list(&workers[i % 4], &tenant, &reached).await;
        transitions.extend(t);
        match r {
            Err(e) if e.code() == ErrorCode::ProviderTransient => failed += 1,
            Err(e) if e.code() == ErrorCode::CircuitOpen => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let opened: Vec<_> = transitions.iter().filter(|t| t.to == BreakerState::Open).collect();
    assert_eq!(opened.len(), 1, "{transitions:?}");
    assert_eq!((opened[0].calls, opened[0].failures), (20, 8), "every worker's successes counted, every failure at once");
    assert_eq!(failed, 8, "no call reaches the provider once it is open");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn resilience_items_carry_a_ttl_and_a_busy_worker_costs_under_one_write_per_call() {
    let env = Env::xero(json!({"rate_limit_per_minute": 10000, "rate_limit_per_day": 100000, "max_concurrent": 0})).await;
    let tenant = unique("t-ttl");
    let guard = env.guard(Limits { xero_per_minute: 600, ..roomy() });
    let reached = AtomicU32::new(0);
    // Warm up (the lane learns the worker comes straight back), then count.
    for _ in 0..5 {
        env.list(&guard, &tenant, &reached).await.0.unwrap();
    }
    let before = guard.stats();
    for _ in 0..40 {
        env.list(&guard, &tenant, &reached).await.0.unwrap();
    }
    let after = guard.stats();
    let per_call = (after.dynamo_calls - before.dynamo_calls) as f64 / (after.permitted - before.permitted) as f64;
    println!("one busy worker: {per_call:.2} DynamoDB calls per permitted call");
    assert!(per_call < 0.5, "batches of places: {per_call:.2} DynamoDB calls per call");
    guard.flush().await;
    let now = chrono::Utc::now().timestamp();
    for (pk, sk) in [(format!("ORG#xero#{}", env.org), "RL".to_string()), ("APP#xero".to_string(), "APP".to_string())] {
        let item = shared::store::get_item(&env.db, &env.table, pk.clone(), sk.clone()).await.unwrap().expect("the item");
        let exp = shared::store::get_n_opt(&item, "expires_at").unwrap_or_else(|| panic!("{pk}/{sk} has no expires_at"));
        assert!(exp > now + 86_400 && exp <= now + 4 * 86_400, "{pk}/{sk}: expires_at {exp} (now {now})");
    }
    env.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tenants_on_one_org_share_its_rate_limit_and_its_breaker() {
    // The sandbox counts calls per organisation: 10 per 5-second window (the minute, shrunk).
    let env = Env::xero(json!({"rate_limit_per_minute": 10, "minute_window_seconds": 5, "rate_limit_per_day": 100000,
        "app_rate_limit_per_minute": 100000, "max_concurrent": 0}))
    .await;
    let limits = Limits {
        minute: Duration::from_secs(5),
        safety: Duration::from_millis(500),
        xero_per_minute: 10,
        // The first part's successes stay in the breaker's window: a low rate opens it soon after.
        org_breaker: BreakerSettings { min_calls: 2, failure_rate: 0.05, open_for: Duration::from_secs(60), ..BreakerSettings::default() },
        ..roomy()
    };
    // Two tenants of ours connected to the one Xero organisation, each with its own worker.
    let (tenant_a, tenant_b) = (unique("t-orgA"), unique("t-orgB"));
    let env = Arc::new(env);
    let run_for = Duration::from_secs(7);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tenant in [tenant_a.clone(), tenant_b.clone()] {
        let (env, guard) = (env.clone(), env.guard(limits.clone()));
        tasks.push(tokio::spawn(async move {
            let reached = AtomicU32::new(0);
            let mut errors = Vec::new();
            while start.elapsed() < run_for {
                if let Err(e) = env.list(&guard, &tenant, &reached).await.0 {
                    errors.push(e.code());
                    // A wait handed back: the worker would return its message; here, pause.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            guard.flush().await;
            (reached.load(Ordering::SeqCst), errors)
        }));
    }
    let mut per_tenant = Vec::new();
    for t in tasks {
        let (reached, errors) = t.await.unwrap();
        assert!(errors.iter().all(|c| *c == ErrorCode::RateLimited), "only waits handed back: {errors:?}");
        per_tenant.push(reached);
    }
    assert!(per_tenant.iter().all(|n| *n > 0), "both tenants called: {per_tenant:?}");
    // Both tenants' calls together stay within the org's limit: no 429 from the provider, and no
    // 5-second window (from the first call) holds more than 10.
    let counters = env.counters().await;
    assert_eq!(rate_limited_count(&counters), 0, "the organisation's limit was exceeded: {per_tenant:?} {counters}");
    let mut starts = env.starts.lock().unwrap().clone();
    starts.sort_unstable();
    let first = starts[0];
    let in_window = starts.iter().filter(|t| **t < first + 5_000_000).count();
    assert!(in_window <= 10, "{in_window} calls in the org's first window, limit 10 ({per_tenant:?})");

    // Tenant A's failures open the org's breaker; tenant B is refused without reaching the provider.
    tokio::time::sleep(Duration::from_secs(6)).await;
    env.control("faults", json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "500", "count": 100})).await;
    let (worker_a, worker_b) = (env.guard(limits.clone()), env.guard(limits.clone()));
    let reached = AtomicU32::new(0);
    let mut failed = 0;
    for _ in 0..30 {
        match env.list(&worker_a, &tenant_a, &reached).await.0.unwrap_err().code() {
            ErrorCode::ProviderTransient => failed += 1,
            ErrorCode::CircuitOpen => break,
            ErrorCode::RateLimited => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("{other:?}"),
        }
    }
    assert!(failed >= 1, "tenant A's calls failed at the provider");
    let before = reached.load(Ordering::SeqCst);
    let (r, _) = env.list(&worker_b, &tenant_b, &reached).await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::CircuitOpen, "tenant B is refused by the breaker tenant A opened");
    assert_eq!(reached.load(Ordering::SeqCst), before);
    Arc::try_unwrap(env).ok().unwrap().sb.shutdown().await;
}
