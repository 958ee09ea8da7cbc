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

/// Starts a sandbox with `config` and points the providers' base URL at it, with a resilience
/// table of the test's own (see [`own_resilience_table`]).
pub async fn sandboxed(config: sandbox::SandboxConfig) -> Sandboxed {
    shared::http_client::install_crypto_provider();
    let mut env = aws().await;
    let sb = sandbox::spawn(config).await.expect("sandbox starts");
    env.config.provider_base_url = Some(Url::parse(&sb.base_url).unwrap());
    env.config.tables.resilience = own_resilience_table(&env.clients.dynamodb).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sandboxed { env, sb, http }
}

/// A fresh table shaped like the resilience table (pk, sk), for a test's own limits and breakers.
/// In the one shared table, tests in parallel draw on each other's org limits where their sandboxes
/// share org ids, and every test's provider calls feed one provider-wide breaker per provider: the
/// 5xx a few tests inject on purpose, together within its minute, opened it for every other test
/// of that provider (`CircuitOpen` in sync, reports and schedule tests at once).
pub async fn own_resilience_table(db: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
    let name = unique("resilience");
    let attr = |n: &str| AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build().unwrap();
    let key = |n: &str, k: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(k).build().unwrap();
    db.create_table()
        .table_name(&name)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
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
