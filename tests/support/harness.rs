//! A test's own corner of the local stack: an in-process provider sandbox the configuration points
//! at, queues and a tenant of the test's own, so tests in parallel never read each other's messages.

use chrono::Utc;
use reqwest::Url;
use shared::tenancy::{Plan, Tenant, TenantConfig};

use crate::{aws, unique, TestEnv};

/// The local stack with a sandbox of the test's own, and an HTTP client that does not follow
/// redirects (the consent answers with one that carries the code).
pub struct Sandboxed {
    pub env: TestEnv,
    pub sb: sandbox::RunningSandbox,
    pub http: reqwest::Client,
}

/// Starts a sandbox with `config` and points the providers' base URL at it.
pub async fn sandboxed(config: sandbox::SandboxConfig) -> Sandboxed {
    shared::http_client::install_crypto_provider();
    let mut env = aws().await;
    let sb = sandbox::spawn(config).await.expect("sandbox starts");
    env.config.provider_base_url = Some(Url::parse(&sb.base_url).unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sandboxed { env, sb, http }
}

/// A sandbox with no orgs or records: each test seeds what it reads.
pub fn unseeded() -> sandbox::SandboxConfig {
    sandbox::SandboxConfig { seed: false, ..Default::default() }
}

/// A new queue under a fresh name starting with `prefix`; its URL.
pub async fn own_queue(env: &TestEnv, prefix: &str) -> String {
    env.clients.sqs.create_queue().queue_name(unique(prefix)).send().await.unwrap().queue_url.unwrap()
}

/// The test's own sync queues (high, normal, low), in the configuration.
pub async fn own_sync_queues(env: &mut TestEnv) {
    env.config.queues.sync_high = own_queue(env, "sync-high").await;
    env.config.queues.sync_normal = own_queue(env, "sync-normal").await;
    env.config.queues.sync_low = own_queue(env, "sync-low").await;
}

/// Creates the tenant `tenant_id`: Acme, on the Enterprise plan, returning to the app's
/// integrations page.
pub async fn enterprise_tenant(env: &TestEnv, tenant_id: &str) {
    let cfg = TenantConfig { return_urls: vec!["https://app.example.com/integrations".into()], ..Default::default() };
    env.tenants().create(&Tenant::new(tenant_id, "Acme", Plan::Enterprise, cfg, Utc::now())).await.unwrap();
}
