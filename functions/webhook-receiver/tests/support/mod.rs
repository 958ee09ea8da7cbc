//! Fixture for the handler tests: the real handler against the local AWS (moto), with per-test
//! tenants, org ids (uuids) and SQS queues so tests run in parallel without seeing each other.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use integration_tests::{aws, unique, TestEnv};
use lambda_http::{Body, Request, RequestExt};
use shared::jobs::{JobQueue, SyncJob, SyncQueues};
use shared::secrets::SecretsCache;
use shared::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use shared::tenancy::{Entity, Plan, Priority, Tenant, TenantConfig, TenantRouting, TenantStore};
use shared::vault::{CacheLimits, Vault};
use shared::webhooks::{nonce, verify, zoho_secret_context, Clock, KeySource, NonceStore, Receiver};
use shared::Provider;

pub const QBO_KEY: &str = "sandbox-qbo-verifier";
pub const QBO_OLD_KEY: &str = "sandbox-qbo-verifier-old";
pub const XERO_KEY: &str = "sandbox-xero-webhook-key";

pub struct Fixture {
    pub env: TestEnv,
    pub deps: Receiver,
    pub queues: SyncQueues,
    pub tenant_id: String,
    pub grants: GrantStore,
    pub tenants: TenantStore,
    pub vault: Vault,
    /// Seconds added to the real clock (to jump past the nonce window).
    pub clock_offset: Arc<AtomicI64>,
}

pub struct Options {
    pub priority: Priority,
    pub max_body_bytes: usize,
    pub entities: Vec<Entity>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            priority: Priority::High,
            max_body_bytes: 262_144,
            entities: vec![Entity::Invoice, Entity::Contact, Entity::Account, Entity::Payment],
        }
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(Options::default()).await
}

pub async fn fixture_with(opts: Options) -> Fixture {
    let env = aws().await;
    let sqs = &env.clients.sqs;
    let mut urls = Vec::new();
    for p in ["high", "normal", "low"] {
        let out = sqs.create_queue().queue_name(unique(&format!("wh-{p}"))).send().await.expect("create test queue");
        urls.push(out.queue_url.unwrap());
    }
    let queues = SyncQueues { high: urls[0].clone(), normal: urls[1].clone(), low: urls[2].clone() };
    let tenants = TenantStore::new(env.clients.dynamodb.clone(), env.config.tables.tenants.clone());
    let tenant_id = unique("wh");
    let config = TenantConfig {
        queue_priority: opts.priority,
        enabled_entities: opts.entities,
        return_urls: vec!["https://app.example.com/integrations".into()],
        ..TenantConfig::default()
    };
    tenants.create(&Tenant::new(&tenant_id, "Webhook test tenant", Plan::Enterprise, config, Utc::now())).await.expect("create tenant");
    let grants = GrantStore::new(env.clients.dynamodb.clone(), env.config.tables.grants.clone());
    let vault = Vault::new(env.clients.kms.clone(), env.config.kms_key_id.clone(), CacheLimits::default());
    let clock_offset = Arc::new(AtomicI64::new(0));
    let deps = receiver(&env, queues.clone(), opts.max_body_bytes, clock_offset.clone());
    Fixture { env, deps, queues, tenant_id, grants, tenants, vault, clock_offset }
}

/// The production wiring (real Secrets Manager cache with the local webhook keys secret) except for
/// the queues, body limit and clock, which the test controls.
pub fn receiver(env: &TestEnv, queues: SyncQueues, max_body_bytes: usize, clock_offset: Arc<AtomicI64>) -> Receiver {
    let clock: Clock = Arc::new(move || Utc::now() + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst)));
    Receiver::new(
        KeySource::Secrets {
            cache: Arc::new(SecretsCache::new(env.clients.secrets.clone(), shared::secrets::DEFAULT_TTL)),
            secret_id: env.config.secrets.webhook_keys.clone(),
        },
        GrantStore::new(env.clients.dynamodb.clone(), env.config.tables.grants.clone()),
        TenantStore::new(env.clients.dynamodb.clone(), env.config.tables.tenants.clone()),
        Vault::new(env.clients.kms.clone(), env.config.kms_key_id.clone(), CacheLimits::default()),
        NonceStore::new(env.clients.dynamodb.clone(), env.config.tables.ephemeral.clone()),
        JobQueue::new(env.clients.sqs.clone(), queues),
        max_body_bytes,
        nonce::DEFAULT_WINDOW,
        clock,
    )
}

impl Fixture {
    /// Connects `org_ids` of `provider` to this fixture's tenant (one grant). For Zoho, each org gets
    /// a sealed webhook secret `secret-<org>`, as the connect flow stores it; each connection
    /// carries the tenant's routing copy, as the connect flow writes it.
    pub async fn connect(&self, provider: Provider, org_ids: &[&str]) {
        self.connect_unrouted(provider, org_ids).await;
        let tenant = self.tenants().get(&self.tenant_id).await.unwrap();
        self.grants.set_routing(&TenantRouting::of(&tenant)).await.expect("routing copy");
    }

    pub fn tenants(&self) -> TenantStore {
        TenantStore::new(self.env.clients.dynamodb.clone(), self.env.config.tables.tenants.clone())
    }

    /// [`Self::connect`] as connections stored before the routing copy existed: no copy.
    pub async fn connect_unrouted(&self, provider: Provider, org_ids: &[&str]) {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let grant_id = unique("g");
        let grant = Grant {
            tenant_id: self.tenant_id.clone(),
            provider,
            grant_id: grant_id.clone(),
            org_ids: org_ids.iter().map(|o| o.to_string()).collect(),
            status: GrantStatus::Active,
            scopes: vec![],
            sealed: None,
            access_expires_at: now,
            refresh_expires_at: None,
            version: 1,
            lease_owner: None,
            lease_expires_at: None,
            seal_version: 0,
            degraded_since: None,
            last_failure_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut conns = Vec::new();
        for org in org_ids {
            let webhook_secret = if provider == Provider::Zoho {
                Some(self.vault.seal_bytes(&zoho_secret_context(&self.tenant_id, org), zoho_secret(org).as_bytes()).await.unwrap())
            } else {
                None
            };
            conns.push(Connection {
                tenant_id: self.tenant_id.clone(),
                provider,
                org_id: org.to_string(),
                org_name: None,
                grant_id: grant_id.clone(),
                status: GrantStatus::Active,
                webhook_id: None,
                webhook_secret,
                created_at: now,
                updated_at: now,
            });
        }
        self.grants.put_grant(&grant, &conns).await.expect("put grant");
    }

    pub async fn send(&self, req: Request) -> (u16, String) {
        let resp = webhook_receiver::handle(&self.deps, req).await.expect("handler never errors at the Lambda level");
        let status = resp.status().as_u16();
        let body = String::from_utf8(resp.body().to_vec()).unwrap();
        (status, body)
    }

    /// Every message currently on a queue (received and deleted), parsed as sync jobs. Taking a job
    /// does what the sync worker does when it takes one (shared::worker::batch): it confirms the
    /// delivery's nonce claim carried in the body, at the fixture's clock.
    pub async fn drain(&self, url: &str) -> Vec<SyncJob> {
        let sqs = &self.env.clients.sqs;
        let mut jobs = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(60)
                .send()
                .await
                .unwrap();
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                return jobs;
            }
            for m in msgs {
                let job = SyncJob::from_json(m.body().unwrap()).expect("queue holds valid sync jobs");
                let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
                let nonce = shared::webhooks::nonce::NonceRef::from_job_body(&body).expect("webhook jobs carry their nonce claim");
                let now = (self.deps.clock)();
                self.deps
                    .nonces
                    .confirm(job.provider, &nonce.key, &nonce.claim_id, now, shared::webhooks::nonce::DEFAULT_WINDOW)
                    .await
                    .unwrap();
                jobs.push(job);
                sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
            }
        }
    }

    /// Jobs on all three queues, with the queue each was found on.
    pub async fn drain_all(&self) -> Vec<(Priority, SyncJob)> {
        let mut all = Vec::new();
        for (p, url) in [(Priority::High, &self.queues.high), (Priority::Normal, &self.queues.normal), (Priority::Low, &self.queues.low)] {
            all.extend(self.drain(url).await.into_iter().map(|j| (p, j)));
        }
        all
    }

    pub fn advance_clock(&self, secs: i64) {
        self.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }
}

pub fn zoho_secret(org: &str) -> String {
    format!("secret{}", org.replace('-', ""))
}

pub fn org() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A numeric org id (QuickBooks realms and Zoho organisations are digits).
pub fn numeric_org() -> String {
    format!("{}", 9_000_000_000_000_000u64 + (uuid::Uuid::new_v4().as_u128() % 999_999_999_999_999) as u64)
}

pub struct Req {
    pub method: &'static str,
    pub provider: String,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Body,
}

impl Req {
    pub fn post(provider: &str, body: impl Into<Vec<u8>>) -> Self {
        let bytes: Vec<u8> = body.into();
        let body = match String::from_utf8(bytes.clone()) {
            Ok(s) => Body::Text(s),
            Err(_) => Body::Binary(bytes),
        };
        Req {
            method: "POST",
            provider: provider.to_string(),
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            query: vec![],
            body,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn without_header(mut self, k: &str) -> Self {
        self.headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        self
    }

    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.to_string(), v.to_string()));
        self
    }

    pub fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// As API Gateway (HTTP API v2) hands it to lambda_http: path and query parameters set.
    pub fn build(self) -> Request {
        let qs: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.query.iter()).finish();
        let uri = if qs.is_empty() {
            format!("https://integrations.example.com/webhooks/{}", self.provider)
        } else {
            format!("https://integrations.example.com/webhooks/{}?{qs}", self.provider)
        };
        let mut b = http::Request::builder().method(self.method).uri(uri);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in self.query {
            query.entry(k).or_default().push(v);
        }
        b.body(self.body)
            .unwrap()
            .with_path_parameters(HashMap::from([("provider".to_string(), self.provider.clone())]))
            .with_query_string_parameters(query)
    }
}

pub fn qbo_signed(body: &str) -> Request {
    Req::post("quickbooks", body).header("intuit-signature", &verify::sign_base64(QBO_KEY, body.as_bytes())).build()
}

pub fn xero_signed(body: &str) -> Request {
    Req::post("xero", body).header("x-xero-signature", &verify::sign_base64(XERO_KEY, body.as_bytes())).build()
}

pub fn qbo_legacy(realm: &str, entities: &[(&str, &str, &str, &str)]) -> String {
    let ents: Vec<serde_json::Value> =
        entities.iter().map(|(name, id, op, at)| serde_json::json!({"name": name, "id": id, "operation": op, "lastUpdated": at})).collect();
    serde_json::json!({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": ents}}]}).to_string()
}

pub fn xero_events(tenant: &str, events: &[(&str, &str, &str)]) -> String {
    let evs: Vec<serde_json::Value> = events
        .iter()
        .map(|(cat, id, ty)| {
            let path = if *cat == "INVOICE" { "Invoices" } else { "Contacts" };
            serde_json::json!({
                "resourceUrl": format!("https://api.xero.com/api.xro/2.0/{path}/{id}"),
                "resourceId": id,
                "eventDateUtc": "2026-11-24T17:59:41.902",
                "eventType": ty,
                "eventCategory": cat,
                "tenantId": tenant,
                "tenantType": "ORGANISATION"
            })
        })
        .collect();
    serde_json::json!({"events": evs, "firstEventSequence": 1, "lastEventSequence": evs.len(), "entropy": "KJHGFDSAQWERTYUIOPLM"})
        .to_string()
}
