//! Token refresher benchmark against the provider sandbox and the local AWS (MiniStack or moto) (`scripts/bench refresh`).
//!
//! Part 1, cost per refresh: DynamoDB and KMS calls per refresh (counted by SDK interceptors) on the
//! on-demand path (`valid_access_token`) and the scheduled path, and refreshes per second.
//! Targets: at most 3 DynamoDB calls and 1 KMS call per refresh.
//!
//! Part 2, simulation: REFRESH_SIM_GRANTS grants (default 10,000) whose access tokens expire within
//! one compressed hour (1 h -> 60 s, so 10,000 grants need about 167 refreshes/s: the peak of 100,000
//! tenants x 3 providers). The scheduled run fires every compressed 5 minutes (5 s) with a 10-minute
//! window (10 s). Prints refreshes/s and the oldest token age (how far past its expiry the most
//! overdue grant got before it was refreshed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::{Duration, Utc};
use integration_tests::{aws, copy_grants_table, sandbox_grant, unique};
use shared::aws::AwsClients;
use shared::http_client::HttpClient;
use shared::refresh::schedule::RunLimits;
use shared::refresh::TokenService;
use shared::store::grants::GrantStore;
use shared::Provider;

#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<AtomicU64>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }
    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, _: &mut ConfigBag) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl CallCounter {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    shared::http_client::install_crypto_provider();
    let mut env = aws().await;
    let settings = sandbox::Settings { rate_limits_enabled: false, ..Default::default() };
    let sb = sandbox::spawn(sandbox::SandboxConfig { settings, ..Default::default() }).await.expect("sandbox");
    env.config.provider_base_url = Some(reqwest::Url::parse(&sb.base_url).unwrap());
    env.config.tables.grants = copy_grants_table(&env).await;
    let q = env.clients.sqs.create_queue().queue_name(unique("bench-events")).send().await.unwrap();
    env.config.queues.events = q.queue_url.unwrap();

    let sdk = aws_config::load_from_env().await;
    let (ddb, kms) = (CallCounter::default(), CallCounter::default());
    let counted = AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(ddb.clone()).build()),
        kms: aws_sdk_kms::Client::from_conf(aws_sdk_kms::config::Builder::from(&sdk).interceptor(kms.clone()).build()).into(),
        sqs: env.clients.sqs.clone(),
        secrets: env.clients.secrets.clone(),
    };
    let http = HttpClient::new(StdDuration::from_secs(10)).unwrap();
    let web = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let setup = TokenService::new(&env.config, &env.clients, http.clone());
    let store = GrantStore::new(env.clients.dynamodb.clone(), env.config.tables.grants.clone());
    let tenant = unique("bench");

    println!("== cost per refresh (sandbox + local AWS, {} )", std::env::consts::ARCH);
    let n = 150usize;
    let mut grants = Vec::new();
    for i in 0..n {
        grants.push(sandbox_grant(&web, &setup, &store, &tenant, Provider::ALL[i % 3], Duration::minutes(-1)).await);
    }
    let svc = TokenService::new(&env.config, &counted, http.clone());
    let (d0, k0, t0) = (ddb.get(), kms.get(), Instant::now());
    for g in &grants {
        svc.valid_access_token(&g.tenant_id, g.provider, &g.grant_id).await.expect("refresh");
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "on demand (valid_access_token, sequential): {n} refreshes, {:.0}/s, DynamoDB calls/refresh {:.2}, KMS calls/refresh {:.2}",
        n as f64 / secs,
        (ddb.get() - d0) as f64 / n as f64,
        (kms.get() - k0) as f64 / n as f64
    );

    let mut due = Vec::new();
    for i in 0..n {
        due.push(sandbox_grant(&web, &setup, &store, &tenant, Provider::ALL[i % 3], Duration::minutes(-1)).await);
    }
    let sched = TokenService::new(&env.config, &counted, http.clone());
    let (d0, k0, t0) = (ddb.get(), kms.get(), Instant::now());
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(600);
    let r = sched.run_scheduled(Duration::minutes(10), deadline, &RunLimits { concurrency: 32, ..Default::default() }).await.unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "scheduled (concurrency 32): {} refreshes, {:.0}/s, DynamoDB calls/refresh {:.2} (incl. {} index queries), KMS calls/refresh {:.2}",
        r.refreshed,
        r.refreshed as f64 / secs,
        (ddb.get() - d0) as f64 / r.refreshed.max(1) as f64,
        3 * shared::store::grants::DUE_SHARDS,
        (kms.get() - k0) as f64 / r.refreshed.max(1) as f64
    );

    let total: usize = std::env::var("REFRESH_SIM_GRANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    println!("\n== simulation: {total} grants, 1 h compressed to 60 s (needs {:.0} refreshes/s)", total as f64 / 60.0);
    let sim_table = copy_grants_table(&env).await;
    let mut sim_env = env.config.clone();
    sim_env.tables.grants = sim_table;
    let sim_store = GrantStore::new(env.clients.dynamodb.clone(), sim_env.tables.grants.clone());
    let sim_setup = TokenService::new(&sim_env, &env.clients, http.clone());
    // Expiries are spread over the compressed hour starting when the simulation starts, not when a
    // grant is made: set-up takes minutes at this size, and grants that expired while others were
    // still being made would measure the set-up, not the refresher. So time a few throwaway grants
    // (expiring in a day: never due here) and put the hour's start after the expected set-up.
    let setup_concurrency = 8;
    let probe = 48;
    let t_probe = Instant::now();
    futures::stream::iter(0..probe)
        .map(|i| sandbox_grant(&web, &sim_setup, &sim_store, &tenant, Provider::ALL[i % 3], Duration::days(1)))
        .buffer_unordered(setup_concurrency)
        .count()
        .await;
    let per_grant = t_probe.elapsed().as_secs_f64() / probe as f64;
    let lead = Duration::milliseconds((per_grant * total as f64 * 1.5 * 1000.0) as i64 + 10_000);
    let hour_start = Utc::now() + lead;
    println!("set-up estimate {:.1} ms a grant: the compressed hour starts in {} s", per_grant * 1000.0, lead.num_seconds());
    let t_setup = Instant::now();
    let made = futures::stream::iter(0..total)
        .map(|i| {
            let (web, svc, store, tenant) = (&web, &sim_setup, &sim_store, &tenant);
            async move {
                let at = hour_start + Duration::milliseconds((60_000 * i as i64) / total as i64);
                sandbox_grant(web, svc, store, tenant, Provider::ALL[i % 3], at - Utc::now()).await
            }
        })
        .buffer_unordered(setup_concurrency)
        .count()
        .await;
    println!("set up {made} grants in {:.0} s", t_setup.elapsed().as_secs_f64());
    // The first run goes one window (10 s) before the first expiry, as a run every 5 minutes would.
    let first_run = hour_start - Duration::seconds(10);
    let wait = (first_run - Utc::now()).to_std().unwrap_or_default();
    if wait.is_zero() {
        println!("set-up overran its estimate by {} s: the first grants are already due", (Utc::now() - first_run).num_seconds());
    }
    tokio::time::sleep(wait).await;
    let sim = TokenService::new(&sim_env, &env.clients, http.clone());
    let started = Instant::now();
    let (mut refreshed, mut oldest, mut left, mut runs) = (0usize, 0i64, 0usize, 0);
    // Time spent inside runs, and the best single run: what the refresher achieves when busy.
    let (mut busy, mut best) = (0f64, 0f64);
    // Enough compressed runs to cover the hour and the last window.
    while refreshed < total && started.elapsed() < StdDuration::from_secs(200) {
        let run_start = tokio::time::Instant::now();
        // Runs may overlap in production (two shard groups, a 240 s timeout on a 5-minute rate); here
        // they run one after another, each allowed up to 20 compressed seconds.
        let deadline = run_start + StdDuration::from_secs(20);
        let limits = RunLimits { concurrency: 64, stop_before: StdDuration::from_millis(500), max_grants: 20_000, shards: None };
        let r = sim.run_scheduled(Duration::seconds(10), deadline, &limits).await.unwrap();
        let took = run_start.elapsed().as_secs_f64();
        busy += took;
        best = best.max(r.refreshed as f64 / took);
        runs += 1;
        refreshed += r.refreshed;
        left += r.left_for_next_run;
        oldest = oldest.max(r.most_overdue_seconds);
        tokio::time::sleep_until(run_start + StdDuration::from_secs(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{runs} runs in {secs:.0} s: {refreshed} refreshed, {:.0} refreshes/s over the run, {left} left for a next run, oldest token age {oldest} s past expiry",
        refreshed as f64 / secs
    );
    println!(
        "inside the runs: {busy:.0} s busy, {:.0} refreshes/s on average, {best:.0}/s in the best run (needed: {:.0}/s)",
        refreshed as f64 / busy.max(0.001),
        total as f64 / 60.0
    );
    sb.shutdown().await;
}

use futures::StreamExt;
