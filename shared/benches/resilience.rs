//! Shared rate limits under load: N workers (each its own `ProviderGuard`, sharing only DynamoDB)
//! calling the provider sandbox through `ProviderGuard::call` as fast as they can.
//!
//! For each run it prints the share of the provider's budget used (calls that left in the first
//! run (20 s) from the first call, against the sandbox's limit over that time), the 429s the sandbox
//! answered, and DynamoDB calls per permitted call: the org writes (a batch of places, the slot,
//! the held breaker counts, the breaker read back, all in one), and the whole guard's (plus provider
//! breaker reads and Xero app-share writes). Targets: at least 95 % of the budget, zero 429s, at
//! most one DynamoDB call per permitted call for the whole guard.
//!
//! Windows are shrunk (60 calls per 10 s for Xero, 100 per 10 s for QuickBooks) so a run takes
//! seconds; the maths does not depend on the window length. Run with the local stack's environment:
//! `infra/local-aws.sh up && source .local/aws.env && cargo bench -p shared --bench resilience`
//! (or `scripts/bench resilience`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::http_client::HttpClient;
use shared::providers::{
    AccountingProvider, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Endpoints, Entity, ProviderClient,
};
use shared::resilience::{BreakerSettings, Limits, ProviderGuard};
use shared::{Config, Provider, SecretString, TokenSet};
use url::Url;

const WINDOW: Duration = Duration::from_secs(10);

/// The measured run: 20 s, or `RESILIENCE_BENCH_RUN_SECONDS` (a longer run spreads each worker's
/// start-up cost, its first writes on a fresh key, over more calls).
fn run_length() -> Duration {
    Duration::from_secs(std::env::var("RESILIENCE_BENCH_RUN_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20))
}

/// Worker counts: 1, 5, 10, 20, or `RESILIENCE_BENCH_WORKERS` (comma-separated).
fn worker_counts() -> Vec<usize> {
    std::env::var("RESILIENCE_BENCH_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1, 5, 10, 20])
}
const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

struct Target {
    provider: Provider,
    client: ProviderClient,
    tokens: TokenSet,
    org: String,
}

async fn connect(http: &reqwest::Client, base: &Url, provider: Provider) -> Target {
    let (id, secret) = match provider {
        Provider::QuickBooks => ("sandbox-qbo-client", "sandbox-qbo-secret"),
        Provider::Xero => ("sandbox-xero-client", "sandbox-xero-secret"),
        Provider::Zoho => ("sandbox-zoho-client", "sandbox-zoho-secret"),
    };
    let creds = ClientCredentials { client_id: id.into(), client_secret: SecretString::new(secret) };
    let client = ProviderClient::new(
        provider,
        Endpoints::sandbox(provider, base),
        creds,
        HttpClient::new(Duration::from_secs(10)).expect("http client"),
    );
    let redirect = Url::parse(REDIRECT).unwrap();
    let req = AuthorizeRequest { state: "st-bench", redirect_uri: &redirect, scopes: &[], pkce_challenge: None, extra: &[] };
    let resp = http.get(client.authorize_url(&req).unwrap()).send().await.unwrap();
    let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let callback = CallbackParams::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let grant = client.exchange_code(&q["code"], &redirect, None, &callback).await.expect("code exchange");
    let org = match provider {
        Provider::QuickBooks => grant.org_hint.clone().expect("realm"),
        Provider::Xero => sandbox::state::XERO_TENANT_1.to_string(),
        Provider::Zoho => sandbox::state::ZOHO_ORG_US.to_string(),
    };
    Target { provider, client, tokens: grant.tokens, org }
}

async fn control(http: &reqwest::Client, base: &str, path: &str, body: Value) {
    let r = http.post(format!("{base}/_sandbox/{path}")).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "control {path}");
}

struct Figures {
    used: f64,
    calls: usize,
    budget: f64,
    sandbox_429: u64,
    limiter_per_permitted: f64,
    keys: usize,
    dynamo_per_permitted: f64,
    missed: u64,
    breaker_reads: u64,
    share_writes: u64,
}

async fn run(cfg: &Config, db: &aws_sdk_dynamodb::Client, sb: &str, http: &reqwest::Client, t: Arc<Target>, workers: usize) -> Figures {
    let per_window: u32 = match t.provider {
        Provider::QuickBooks => 100,
        _ => 60,
    };
    http.delete(format!("{sb}/_sandbox/counters")).send().await.unwrap();
    control(
        http,
        sb,
        "config",
        json!({"provider": t.provider.as_str(), "rate_limit_per_minute": per_window, "minute_window_seconds": WINDOW.as_secs(),
            "rate_limit_per_day": 1_000_000, "app_rate_limit_per_minute": 1_000_000, "latency_ms": 20}),
    )
    .await;
    let limits = Limits {
        minute: WINDOW,
        safety: Duration::from_millis(300),
        quickbooks_per_minute: per_window,
        xero_per_minute: per_window,
        zoho_per_minute: per_window,
        xero_per_day: 1_000_000,
        zoho_per_day: 1_000_000,
        xero_app_per_minute: 1_000_000,
        provider_breaker: BreakerSettings { min_calls: 1_000_000, ..BreakerSettings::default() },
        ..Limits::default()
    };
    let keys = limits.keys(t.provider, &t.org).len();
    let tenant = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    // The guard keys its state by org: each run gets a fresh org id for its keys (the calls still
    // go to the sandbox's org), so one run's queue does not carry into the next.
    let key_org = format!("{}-{tenant}", t.org);
    let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let begin = Instant::now();
    let run_for = run_length();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let guard = ProviderGuard::with_limits(db.clone(), cfg.tables.resilience.clone(), limits.clone());
        let (t, tenant, key_org, starts) = (t.clone(), tenant.clone(), key_org.clone(), starts.clone());
        tasks.push(tokio::spawn(async move {
            while begin.elapsed() < run_for + Duration::from_secs(2) {
                let _ = guard
                    .call(&tenant, t.provider, &key_org, "bench list", || async {
                        starts.lock().unwrap().push(Instant::now());
                        t.client.list(&t.tokens, &t.org, &Cursor::start(t.provider, Entity::Contact)).await
                    })
                    .await;
            }
            guard.stats()
        }));
    }
    let mut stats = Vec::new();
    for task in tasks {
        stats.push(task.await.unwrap());
    }
    let mut starts = starts.lock().unwrap().clone();
    starts.sort();
    let calls = starts.iter().filter(|s| **s < starts[0] + run_for).count();
    let budget = per_window as f64 * run_for.as_secs_f64() / WINDOW.as_secs_f64();
    let counters: Value = http.get(format!("{sb}/_sandbox/counters")).send().await.unwrap().json().await.unwrap();
    let sandbox_429 = counters["rate_limited"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
    let permitted: u64 = stats.iter().map(|s| s.permitted).sum();
    Figures {
        used: calls as f64 / budget,
        calls,
        budget,
        sandbox_429,
        limiter_per_permitted: stats.iter().map(|s| s.limiter_calls).sum::<u64>() as f64 / permitted as f64,
        keys,
        dynamo_per_permitted: stats.iter().map(|s| s.dynamo_calls).sum::<u64>() as f64 / permitted as f64,
        missed: stats.iter().map(|s| s.missed).sum(),
        breaker_reads: stats.iter().map(|s| s.breaker_reads).sum(),
        share_writes: stats.iter().map(|s| s.share_writes).sum(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    shared::http_client::install_crypto_provider();
    let cfg = Config::from_env().expect("the local stack's environment (source .local/aws.env)");
    let clients = shared::aws::AwsClients::from_env().await;
    // The sandbox on a runtime of its own, so its work does not delay the workers' timers.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let sb = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
            tx.send(sb.base_url.clone()).unwrap();
            sb.wait().await;
        });
    });
    let sb = rx.recv().unwrap();
    let base = Url::parse(&sb).unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    println!("window {WINDOW:?}, run {:?}, 20 ms per provider answer; budget = limit per window x run / window", run_length());
    println!(
        "{:<11} {:>7} {:>14} {:>6} {:>22} {:>22} {:>7} {:>14} {:>13}",
        "provider",
        "workers",
        "budget used",
        "429s",
        "org writes/permit",
        "DynamoDB calls/permit",
        "missed",
        "breaker reads",
        "share writes"
    );
    for provider in [Provider::Xero, Provider::QuickBooks] {
        let t = Arc::new(connect(&http, &base, provider).await);
        for workers in worker_counts() {
            let f = run(&cfg, &clients.dynamodb, &sb, &http, t.clone(), workers).await;
            println!(
                "{:<11} {:>7} {:>6.1}% {:>3}/{:<3} {:>6} {:>13.2} ({} keys) {:>22.2} {:>7} {:>14} {:>13}",
                provider.as_str(),
                workers,
                f.used * 100.0,
                f.calls,
                f.budget,
                f.sandbox_429,
                f.limiter_per_permitted,
                f.keys,
                f.dynamo_per_permitted,
                f.missed,
                f.breaker_reads,
                f.share_writes
            );
        }
    }
}
