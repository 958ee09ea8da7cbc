//! Shared set-up for the integration tests: the local AWS (moto) that `scripts/test-all` starts, and
//! fresh names so tests run in parallel without seeing each other's data.
//!
//! Beside this: `harness` (a test's own sandbox, queues and tenant), `sandbox_control` (the
//! sandbox's control API), `queues` (the event source mapping the tests play, draining queues,
//! the events the app reads), `jobs` (app jobs), `audit` (the audit trail) and `aws_rules`.

pub mod audit;
pub mod aws_rules;
pub mod harness;
pub mod jobs;
pub mod queues;
pub mod sandbox_control;

use chrono::{DateTime, Duration, Utc};
use reqwest::Url;
use shared::aws::AwsClients;
use shared::providers::{new_pkce, AccountingProvider, AuthorizeRequest, CallbackParams};
use shared::refresh::TokenService;
use shared::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use shared::sync::SyncStore;
use shared::tenancy::TenantStore;
use shared::vault::SealContext;
use shared::worker::SyncDeps;
use shared::{Config, Provider};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

pub struct TestEnv {
    pub config: Config,
    pub clients: AwsClients,
}

impl TestEnv {
    pub fn tenants(&self) -> TenantStore {
        TenantStore::new(self.clients.dynamodb.clone(), self.config.tables.tenants.clone())
    }

    pub fn grants(&self) -> GrantStore {
        GrantStore::new(self.clients.dynamodb.clone(), self.config.tables.grants.clone())
    }

    pub fn sync_store(&self) -> SyncStore {
        SyncStore::new(self.clients.dynamodb.clone(), self.config.tables.sync.clone())
    }

    /// A new TokenService over this configuration, its provider calls given `timeout`: a separate
    /// "process" with its own lease owner id and caches.
    pub fn token_service(&self, timeout: std::time::Duration) -> TokenService {
        let http = shared::http_client::HttpClient::new(timeout).unwrap();
        TokenService::new(&self.config, &self.clients, http)
    }

    /// The sync worker's dependencies over this configuration, with a token service of its own.
    pub fn sync_deps(&self, timeout: std::time::Duration) -> SyncDeps {
        SyncDeps::new(&self.config, &self.clients, self.token_service(timeout))
    }
}

/// Configuration and AWS clients for the local stack. Fails loudly (not skips) when the stack is
/// not up, so a missing moto is a red test rather than a silently green one.
pub async fn aws() -> TestEnv {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        panic!("AWS_ENDPOINT_URL is not set: run the tests through scripts/test-all, or `infra/local-aws.sh up && source .local/aws.env`");
    }
    let config = Config::from_env().expect("the local stack's environment (.local/aws.env) is complete");
    TestEnv { config, clients: clients().await }
}

/// The AWS clients the code under test gets: the local emulator's, with DynamoDB and SQS refusing
/// what AWS refuses (`aws_rules`), whatever the emulator lets through.
pub async fn clients() -> AwsClients {
    let conf = aws_config::from_env()
        .timeout_config(shared::aws::Timeouts::LOCAL_EMULATOR.config())
        .http_client(shared::aws::https_client())
        .load()
        .await;
    let mut clients = AwsClients::from_conf(&conf);
    clients.dynamodb = aws_rules::dynamodb(&conf);
    clients.sqs = aws_rules::sqs(&conf);
    clients
}

/// A fresh id for a test's tenants, grants and resource names.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A grant at the sandbox for a made-up org, its access token expiring `access_in` from now (for
/// tests of tokens only; [`connect_sandbox`] reaches a real sandbox org).
pub async fn sandbox_grant(
    http: &reqwest::Client,
    svc: &TokenService,
    store: &GrantStore,
    tenant: &str,
    provider: Provider,
    access_in: Duration,
) -> Grant {
    connect_sandbox(http, svc, store, tenant, provider, None, &[], Some(access_in)).await.0
}

/// A real grant at the sandbox: consent, code exchange (PKCE where the provider takes it), sealed
/// and stored with its connection as the connect flow does. With `org`, the consent picks that
/// sandbox org and the grant must reach it; without, the connection gets a made-up org id.
/// `access_in` overrides the access token's expiry. Returns the grant and its access token.
#[allow(clippy::too_many_arguments)]
pub async fn connect_sandbox(
    http: &reqwest::Client,
    svc: &TokenService,
    store: &GrantStore,
    tenant: &str,
    provider: Provider,
    org: Option<&str>,
    scopes: &[String],
    access_in: Option<Duration>,
) -> (Grant, String) {
    let client = svc.provider_client(provider).await.unwrap();
    let (challenge, verifier) = new_pkce();
    let redirect = Url::parse(REDIRECT).unwrap();
    let state = unique("st");
    // One sandbox user per grant: Zoho keeps at most 20 refresh tokens per user and client.
    let mut extra = vec![("sandbox_user".to_string(), unique("user"))];
    match (provider, org) {
        (Provider::QuickBooks, Some(o)) => extra.push(("sandbox_realm".into(), o.to_string())),
        (Provider::Xero, Some(o)) => extra.push(("sandbox_tenants".into(), o.to_string())),
        _ => {}
    }
    let req = AuthorizeRequest { state: &state, redirect_uri: &redirect, scopes, pkce_challenge: Some(&challenge), extra: &extra };
    let url = client.authorize_url(&req).unwrap();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let code = pairs.iter().find(|(k, _)| k == "code").unwrap_or_else(|| panic!("no code: {location}")).1.clone();
    let callback = CallbackParams::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let v = client.supports_pkce().then(|| verifier.secret().to_string());
    let mut tokens = client.exchange_code(&code, &redirect, v.as_deref(), &callback).await.expect("code exchange").tokens;
    if let Some(o) = org {
        let orgs = client.discover_orgs(&tokens, &callback).await.unwrap();
        assert!(orgs.iter().any(|x| x.id == o), "{provider} grant does not reach {o}: {orgs:?}");
    }
    let now = whole(Utc::now());
    if let Some(d) = access_in {
        tokens.access_expires_at = now + d;
    }
    let grant_id = unique("g");
    let org = org.map(str::to_string).unwrap_or_else(|| format!("org-{grant_id}"));
    let sealed = svc.vault().seal_tokens(&SealContext::new(tenant, provider, &grant_id), &tokens).await.unwrap();
    let g = Grant {
        tenant_id: tenant.to_string(),
        provider,
        grant_id: grant_id.clone(),
        org_ids: vec![org.clone()],
        status: GrantStatus::Active,
        scopes: tokens.scopes.clone(),
        sealed: Some(sealed),
        access_expires_at: tokens.access_expires_at,
        refresh_expires_at: tokens.refresh_expires_at,
        version: 1,
        lease_owner: None,
        lease_expires_at: None,
        seal_version: 0,
        degraded_since: None,
        last_failure_at: None,
        created_at: now,
        updated_at: now,
    };
    let conn = active_connection(tenant, provider, &org, &grant_id, now);
    store.put_grant(&g, &[conn]).await.unwrap();
    (g, tokens.access_token.expose().to_string())
}

/// An active connection of `grant_id` to `org`, as the connect flow stores it (no name, no webhook).
pub fn active_connection(tenant: &str, provider: Provider, org: &str, grant_id: &str, now: DateTime<Utc>) -> Connection {
    Connection {
        tenant_id: tenant.to_string(),
        provider,
        org_id: org.to_string(),
        org_name: None,
        grant_id: grant_id.to_string(),
        status: GrantStatus::Active,
        webhook_id: None,
        webhook_secret: None,
        created_at: now,
        updated_at: now,
    }
}

/// A copy of the grants table (keys and indexes) under a fresh name.
pub async fn copy_grants_table(env: &TestEnv) -> String {
    use aws_sdk_dynamodb::types::{BillingMode, GlobalSecondaryIndex};
    let db = &env.clients.dynamodb;
    let src = db.describe_table().table_name(&env.config.tables.grants).send().await.unwrap().table.unwrap();
    let name = unique("grants");
    let gsis: Vec<GlobalSecondaryIndex> = src
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            GlobalSecondaryIndex::builder()
                .index_name(g.index_name().unwrap())
                .set_key_schema(Some(g.key_schema().to_vec()))
                .set_projection(g.projection().cloned())
                .build()
                .unwrap()
        })
        .collect();
    db.create_table()
        .table_name(&name)
        .set_attribute_definitions(Some(src.attribute_definitions().to_vec()))
        .set_key_schema(Some(src.key_schema().to_vec()))
        .set_global_secondary_indexes(Some(gsis))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

fn whole(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}
