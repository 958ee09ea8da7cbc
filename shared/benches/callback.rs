//! OAuth callback benchmark: the handler's own CPU time per callback, network excluded.
//!
//! Two measurements:
//! 1. Pure work: the steps of a callback that do not touch the network (state verification, query
//!    parsing, token sealing with a warm data key, the event document, the redirect), timed in a loop.
//! 2. Whole callbacks (`shared::connect::callback`) against the local AWS (moto) and the provider
//!    sandbox, timed by the CPU clock of the one thread the callback runs on
//!    (`/proc/thread-self/schedstat`): time spent waiting for moto or the sandbox is not CPU time,
//!    and the sandbox runs on a runtime of its own thread, so neither counts. What does count is all
//!    of our process's work for the callback: SDK request building and SigV4 signing, HTTP
//!    clients, JSON, crypto. AWS and provider calls per callback are counted too.
//!
//! 3. The CPU of single AWS and HTTP calls on the same clock, to show where (2) goes.
//!
//! moto answers every request on a new TCP connection (it closes each one), so against moto every
//! AWS call pays a connection set-up in our process and the kernel's loopback work on our thread;
//! against AWS the SDK keeps connections alive. (1) is the handler's own work; (2) is an upper
//! bound that is mostly SDK and transport.
//!
//! Target: under 1 ms of CPU per callback. Run in release: `cargo bench --workspace --bench callback`
//! with the local stack's environment (`infra/local-aws.sh up && source .local/aws.env`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use chrono::Utc;
use shared::aws::AwsClients;
use shared::connect::{self, app_auth, state, CallbackOutcome, ConnectDeps};
use shared::events::{AppEvent, ConnectedOrg, ConnectionCreated, EventType};
use shared::http_client::HttpClient;
use shared::tenancy::{Plan, Role, Tenant, TenantConfig};
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{Config, Provider, SecretString, TokenSet};

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

/// CPU time this thread has run, in nanoseconds (Linux schedstat; nanosecond resolution).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat (Linux)");
    s.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat run time")
}

/// (user, system) CPU of this thread in clock ticks (normally 10 ms): coarse, so only summed over
/// many callbacks. System time includes the kernel's loopback TCP work for moto and the sandbox.
fn thread_user_sys_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse().unwrap(), f[12].parse().unwrap())
}

fn per_op(label: &str, n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("  {label:<48} {us:>9.2} µs");
    us
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: SecretString::new("a".repeat(1200)),
        refresh_token: Some(SecretString::new("r".repeat(50))),
        access_expires_at: Utc::now(),
        refresh_expires_at: None,
        refresh_hard_expires_at: None,
        scopes: vec!["accounting.invoices".into(), "accounting.contacts".into()],
        api_domain: None,
        accounts_server: None,
    }
}

fn main() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        eprintln!("callback bench needs the local stack: infra/local-aws.sh up && source .local/aws.env");
        std::process::exit(2);
    }
    // The sandbox gets a runtime on its own thread so its CPU never lands on the measured thread.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            // Rate limits off: the bench connects the same sandbox organisations far more often
            // than a real tenant would (Zoho allows 100 calls a minute per organisation).
            let settings = sandbox::Settings { rate_limits_enabled: false, ..sandbox::Settings::default() };
            let sb = sandbox::spawn(sandbox::SandboxConfig { settings, ..sandbox::SandboxConfig::default() }).await.expect("sandbox");
            tx.send(sb.base_url.clone()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let sandbox_url = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(run(sandbox_url));
}

async fn run(sandbox_url: String) {
    let sandbox_url = sandbox_url.trim_end_matches('/').to_string();
    let mut config = Config::from_env().expect("local stack environment");
    config.provider_base_url = Some(url::Url::parse(&sandbox_url).unwrap());
    config.public_base_url = url::Url::parse("https://integrations.bench.example").unwrap();
    let sdk = aws_config::load_from_env().await;
    let counter = CallCounter::default();
    let clients = AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build()),
        sqs: aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&sdk).interceptor(counter.clone()).build()),
        kms: aws_sdk_kms::Client::from_conf(aws_sdk_kms::config::Builder::from(&sdk).interceptor(counter.clone()).build()).into(),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(counter.clone()).build(),
        ),
    };
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("bench-events-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url.unwrap();
    config.queues.events = queue_url.clone();
    let deps = ConnectDeps::new(config, &clients, HttpClient::new(Duration::from_secs(10)).unwrap());
    let signing = deps.secrets.app_signing(&deps.config.secrets.app_signing).await.unwrap();

    println!("1. pure work of a callback (no I/O), wall time per op on one thread");
    let state_key = signing.state_key.clone();
    let (st, _) = state::mint(&state_key, "bench-tenant", Provider::Xero, Utc::now() + chrono::Duration::minutes(10));
    let query = format!("code=AB11732564000sandboxcode&state={st}&scope=openid%20offline_access");
    let mut pure = 0.0;
    pure += per_op("parse the callback query", 50_000, || {
        let q: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        std::hint::black_box(q);
    });
    pure += per_op("verify the state (HMAC-SHA256, expiry)", 50_000, || {
        std::hint::black_box(state::verify(&state_key, &st, Provider::Xero, Utc::now()).unwrap());
    });
    let vault =
        Vault::new(clients.kms.clone(), deps.config.kms_key_id.clone(), CacheLimits { max_uses: u32::MAX, ..CacheLimits::default() });
    let ctx = SealContext::new("bench-tenant", Provider::Xero, "bench-grant");
    let t = tokens();
    vault.seal_tokens(&ctx, &t).await.unwrap();
    {
        let start = Instant::now();
        let n = 20_000;
        for _ in 0..n {
            std::hint::black_box(vault.seal_tokens(&ctx, &t).await.unwrap());
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("  {:<48} {us:>9.2} µs", "seal the token set (warm data key, AES-256-GCM)");
        pure += us;
    }
    let tenant = Tenant::new(
        "bench-tenant",
        "Bench",
        Plan::Enterprise,
        TenantConfig { return_urls: vec!["https://app.example.com/x".into()], ..Default::default() },
        Utc::now(),
    );
    pure += per_op("build the connection.created event (JSON)", 50_000, || {
        let data = ConnectionCreated {
            grant_id: "0b9d2f1e-1111-4c2b-9a55-5d1f0c7b8e21".into(),
            connections: vec![ConnectedOrg {
                org_id: "9341452000000001".into(),
                org_name: Some("Sandbox Company".into()),
                webhook_registered: false,
            }],
            scopes: connect::scopes_for(&tenant, Provider::Xero),
            user_id: "owner-1".into(),
        };
        let e =
            AppEvent::new(EventType::ConnectionCreated, "bench-tenant", Provider::Xero, Utc::now(), serde_json::to_value(data).unwrap());
        std::hint::black_box(e.to_json());
    });
    pure += per_op("allow-list check + success redirect", 50_000, || {
        assert!(tenant.return_url_allowed("https://app.example.com/x/done"));
        let g =
            connect::ConnectedGrant { tenant_id: "t".into(), provider: Provider::Xero, grant_id: "g".into(), org_ids: vec!["o".into()] };
        std::hint::black_box(connect::success_redirect("https://app.example.com/x/done", &g).unwrap());
    });
    let mut p = std::collections::BTreeMap::from([
        ("tenant".to_string(), "bench-tenant".to_string()),
        ("user".to_string(), "owner-1".to_string()),
        ("return_url".to_string(), "https://app.example.com/x".to_string()),
        ("ts".to_string(), Utc::now().timestamp().to_string()),
        ("kid".to_string(), "k".to_string()),
    ]);
    let keys = std::collections::BTreeMap::from([("k".to_string(), SecretString::new("bench-connect-key"))]);
    let sig = app_auth::sign(&keys["k"], "GET", "/connect/xero", &p);
    p.insert("sig".into(), sig);
    per_op("(connect) verify the app's signed request", 50_000, || {
        std::hint::black_box(
            app_auth::verify("GET", "/connect/xero", p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys, Utc::now().timestamp())
                .unwrap(),
        );
    });
    println!("  {:<48} {pure:>9.2} µs", "sum for one callback");

    println!("\n2. whole callbacks against moto + sandbox (CPU of the callback's thread; network waits excluded)");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (kid, key) = signing.connect_keys.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let mut all_ok = true;
    for provider in [Provider::QuickBooks, Provider::Xero, Provider::Zoho] {
        let mut cpu = Vec::new();
        let mut wall = Vec::new();
        let mut aws_calls = Vec::new();
        let (mut user_ticks, mut sys_ticks) = (0u64, 0u64);
        for i in 0..iterations + 3 {
            // A tenant per round, so every callback is a first connect (no reconnect clean-up).
            let tenant = Tenant::new(
                format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                "Bench",
                Plan::Enterprise,
                TenantConfig { return_urls: vec!["https://app.example.com/x".into()], ..Default::default() },
                Utc::now(),
            );
            deps.tenants.create(&tenant).await.unwrap();
            deps.tenants.set_role(&tenant, "owner-1", Role::Owner).await.unwrap();
            let mut params = std::collections::BTreeMap::from([
                ("tenant".to_string(), tenant.tenant_id.clone()),
                ("user".to_string(), "owner-1".to_string()),
                ("return_url".to_string(), "https://app.example.com/x".to_string()),
                ("ts".to_string(), Utc::now().timestamp().to_string()),
                ("kid".to_string(), kid.clone()),
                ("jti".to_string(), uuid::Uuid::new_v4().to_string()),
            ]);
            let path = format!("/connect/{}", provider.as_str());
            params.insert("sig".into(), app_auth::sign(&key, "GET", &path, &params));
            let signed = app_auth::verify(
                "GET",
                &path,
                params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &signing.connect_keys,
                Utc::now().timestamp(),
            )
            .unwrap();
            let started = connect::start(&deps, provider, &signed, Utc::now()).await.unwrap();
            // The browser binding, as the browser would send it back.
            let cookie = started.set_cookie.split(';').next().unwrap().to_string();
            let resp = browser.get(started.url).send().await.unwrap();
            let back = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();

            let calls0 = counter.0.load(Ordering::Relaxed);
            let wall0 = Instant::now();
            let ticks0 = thread_user_sys_ticks();
            let cpu0 = thread_cpu_ns();
            let outcome = connect::callback(&deps, provider, &query, &[cookie.as_str()], Utc::now()).await;
            let cpu1 = thread_cpu_ns();
            let ticks1 = thread_user_sys_ticks();
            let elapsed = wall0.elapsed();
            let calls = counter.0.load(Ordering::Relaxed) - calls0;
            match &outcome {
                CallbackOutcome::Redirect { result: Ok(_), .. } => {}
                other => {
                    eprintln!("{provider}: callback failed: {other:?}");
                    all_ok = false;
                }
            }
            // The first rounds warm connection pools and caches, as a warm Lambda container would be.
            if i >= 3 {
                cpu.push((cpu1 - cpu0) as f64 / 1e3);
                wall.push(elapsed.as_secs_f64() * 1e3);
                aws_calls.push(calls);
                user_ticks += ticks1.0 - ticks0.0;
                sys_ticks += ticks1.1 - ticks0.1;
            }
        }
        cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
        wall.sort_by(|a, b| a.partial_cmp(b).unwrap());
        aws_calls.sort_unstable();
        println!(
            "  {:<10} CPU µs p50 {:>7.0}  p90 {:>7.0}  max {:>7.0} (user {:.0}% / kernel {:.0}%) | wall ms p50 {:>6.1} | AWS calls per callback {}..{} ({} rounds)",
            provider.as_str(),
            percentile(&cpu, 0.5),
            percentile(&cpu, 0.9),
            cpu.last().unwrap(),
            100.0 * user_ticks as f64 / (user_ticks + sys_ticks).max(1) as f64,
            100.0 * sys_ticks as f64 / (user_ticks + sys_ticks).max(1) as f64,
            percentile(&wall, 0.5),
            aws_calls.first().unwrap(),
            aws_calls.last().unwrap(),
            cpu.len()
        );
    }
    println!("\n3. CPU of single calls the callback makes (same thread clock, 30 calls each)");
    macro_rules! cpu_of {
        ($label:expr, $call:expr) => {{
            let mut v = Vec::new();
            for _ in 0..33 {
                let c0 = thread_cpu_ns();
                let _ = $call;
                v.push((thread_cpu_ns() - c0) as f64 / 1e3);
            }
            v.drain(..3);
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!("  {:<48} p50 {:>7.0} µs", $label, percentile(&v, 0.5));
        }};
    }
    let tid = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    cpu_of!("DynamoDB GetItem (tenant)", deps.tenants.get(&tid).await);
    cpu_of!("DynamoDB Query (connections)", deps.grants.list_connections(&tid).await);
    cpu_of!("SQS SendMessage", clients.sqs.send_message().queue_url(&queue_url).message_body("x").send().await);
    cpu_of!("KMS GenerateDataKey (new context)", {
        let ctx = SealContext::new(&tid, Provider::Xero, uuid::Uuid::new_v4().to_string());
        deps.vault.seal_tokens(&ctx, &t).await
    });
    cpu_of!("Secrets (cached)", deps.secrets.app_signing(&deps.config.secrets.app_signing).await);
    cpu_of!(
        "HTTP GET to the sandbox (reqwest, pooled)",
        deps.http.reqwest().get(format!("{sandbox_url}/_sandbox/counters")).send().await.unwrap().bytes().await
    );
    let _ = clients.sqs.delete_queue().queue_url(queue_url).send().await;
    if !all_ok {
        std::process::exit(1);
    }
}
