//! The connect flow through the real handler (`oauth_callback::handle`) with API Gateway-shaped
//! requests, against the local AWS (moto) and the in-process provider sandbox. Each test has its own
//! tenant and its own events queue, so tests run in parallel and read exactly their own events.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::Utc;
use integration_tests::harness::own_resilience_table;
use integration_tests::{aws, unique};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};
use shared::audit::AuditLog;
use shared::connect::app_auth;
use shared::connect::state::{self, StateClaims};
use shared::connect::ConnectDeps;
use shared::events::check_against_schema;
use shared::http_client::HttpClient;
use shared::providers::zoho_webhooks;
use shared::store::grants::GrantStatus;
use shared::tenancy::{Plan, Role, Tenant, TenantConfig};
use shared::vault::SealContext;
use shared::{Provider, SecretString};
use url::Url;

const RETURN_URL: &str = "https://app.example.com/settings/integrations";
const OWNER: &str = "owner-1";

struct Fixture {
    deps: ConnectDeps,
    sandbox: sandbox::RunningSandbox,
    tenant: Tenant,
    kid: String,
    key: SecretString,
    browser: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    db: aws_sdk_dynamodb::Client,
    /// The user's browser's cookies for our API (name -> value), kept like a browser keeps them.
    jar: std::sync::Mutex<BTreeMap<String, String>>,
}

async fn fixture(plan: Plan) -> Fixture {
    let env = aws().await;
    let sandbox = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
    let mut config = env.config.clone();
    config.provider_base_url = Some(Url::parse(&sandbox.base_url).unwrap());
    config.public_base_url = Url::parse("https://integrations.test.example").unwrap();
    // A queue of our own, so this test reads exactly the events it caused.
    let queue = env.clients.sqs.create_queue().queue_name(unique("events")).send().await.unwrap().queue_url.unwrap();
    config.queues.events = queue;
    // The org limits and breakers of our own sandbox's orgs: every test's sandbox has the same org
    // ids, which in one shared table would draw on one limit across tests running in parallel.
    config.tables.resilience = own_resilience_table(&env.clients.dynamodb).await;
    let deps = ConnectDeps::new(config, &env.clients, HttpClient::new(Duration::from_secs(5)).unwrap());

    let cfg = TenantConfig { return_urls: vec![RETURN_URL.into()], ..Default::default() };
    let tenant = Tenant::new(unique("tenant"), "Acme Ltd", plan, cfg, Utc::now());
    deps.tenants.create(&tenant).await.unwrap();
    deps.tenants.set_role(&tenant, OWNER, Role::Owner).await.unwrap();
    deps.tenants.set_role(&tenant, "member-1", Role::Member).await.unwrap();
    let signing = deps.secrets.app_signing(&deps.config.secrets.app_signing).await.unwrap();
    let (kid, key) = signing.connect_keys.iter().next().map(|(k, v)| (k.clone(), v.clone())).expect("a connect key");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Fixture {
        deps,
        sandbox,
        tenant,
        kid,
        key,
        browser,
        sqs: env.clients.sqs.clone(),
        db: env.clients.dynamodb.clone(),
        jar: Default::default(),
    }
}

fn request(method: &str, path: &str, query: &[(String, String)], path_provider: &str) -> Request {
    let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in query {
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    http::Request::builder()
        .method(method)
        .uri(format!("https://integrations.test.example{path}?{qs}"))
        .header("accept", "application/json")
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(multi)
        .with_path_parameters(HashMap::from([("provider".to_string(), path_provider.to_string())]))
}

impl Fixture {
    fn signed(&self, method: &str, path: &str, params: &[(&str, &str)], ts: i64) -> Vec<(String, String)> {
        let mut p: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.insert("ts".into(), ts.to_string());
        p.insert("kid".into(), self.kid.clone());
        // A fresh jti per signed URL, as the app sends it (connect URLs work once).
        p.entry("jti".into()).or_insert_with(|| uuid::Uuid::new_v4().to_string());
        let sig = app_auth::sign(&self.key, method, path, &p);
        p.insert("sig".into(), sig);
        p.into_iter().collect()
    }

    fn connect_query(&self, provider: Provider, user: &str, return_url: &str) -> Vec<(String, String)> {
        let path = format!("/connect/{}", provider.as_str());
        self.signed("GET", &path, &[("tenant", &self.tenant.tenant_id), ("user", user), ("return_url", return_url)], Utc::now().timestamp())
    }

    /// GET through the real handler from the fixture's browser: its cookies go along, and the
    /// answer's Set-Cookie headers land in its jar.
    async fn get(&self, path: &str, query: &[(String, String)], provider: Provider) -> Response<Body> {
        let mut req = request("GET", path, query, provider.as_str());
        let cookie = self.jar.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        if !cookie.is_empty() {
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        let resp = oauth_callback::handle(&self.deps, req).await.unwrap();
        let mut jar = self.jar.lock().unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        resp
    }

    /// Zoho's "minute" shrunk to 10 s at the sandbox and in the guard alike (still 100 calls), and
    /// the guard's reservation horizon to half a second, so a callback budget of a few seconds
    /// still lets registrations start while the limit keeps its shape.
    async fn shrink_zoho_minute(&mut self) {
        let config = json!({"provider": "zoho", "rate_limit_per_minute": 100, "minute_window_seconds": 10});
        let resp = self.browser.post(format!("{}/_sandbox/config", self.sandbox.base_url)).json(&config).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap_or_default());
        let limits = shared::resilience::Limits {
            minute: Duration::from_secs(10),
            safety: Duration::from_millis(300),
            horizon: Duration::from_millis(500),
            ..shared::connect::connect_limits(&self.deps.config)
        };
        self.deps.guard =
            shared::resilience::ProviderGuard::with_limits(self.db.clone(), self.deps.config.tables.resilience.clone(), limits);
    }

    /// Another browser: forgets every cookie.
    fn clear_cookies(&self) {
        self.jar.lock().unwrap().clear();
    }

    /// GET /connect/{provider}; returns the provider authorize URL we were sent to.
    async fn start(&self, provider: Provider) -> Url {
        let resp = self.get(&format!("/connect/{}", provider.as_str()), &self.connect_query(provider, OWNER, RETURN_URL), provider).await;
        assert_eq!(resp.status(), 302, "connect answered {}: {}", resp.status(), body(&resp));
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let url = Url::parse(location(&resp)).unwrap();
        assert!(url.as_str().starts_with(&self.sandbox.base_url), "{url}");
        url
    }

    /// Plays the user's browser at the provider: follows the authorize URL (plus sandbox knobs) and
    /// returns the callback query the provider redirected back with.
    async fn consent(&self, authorize: &Url, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut url = authorize.clone();
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        let resp = self.browser.get(url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "{}", resp.text().await.unwrap_or_default());
        let back = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let provider = back.path().split('/').nth(2).unwrap().to_string();
        assert_eq!(back.as_str().split('?').next().unwrap(), format!("https://integrations.test.example/oauth/{provider}/callback"));
        back.query_pairs().into_owned().collect()
    }

    async fn callback(&self, provider: Provider, query: &[(String, String)]) -> Response<Body> {
        self.get(&format!("/oauth/{}/callback", provider.as_str()), query, provider).await
    }

    async fn full_connect(&self, provider: Provider, extra: &[(&str, &str)]) -> (Vec<(String, String)>, Response<Body>) {
        let authorize = self.start(provider).await;
        let query = self.consent(&authorize, extra).await;
        let resp = self.callback(provider, &query).await;
        (query, resp)
    }

    async fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let got =
                self.sqs.receive_message().queue_url(&self.deps.config.queues.events).max_number_of_messages(10).send().await.unwrap();
            let msgs = got.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                out.push(serde_json::from_str(m.body.as_deref().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.deps.config.queues.events)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn assert_nothing_stored(&self) {
        let t = &self.tenant.tenant_id;
        assert!(self.deps.grants.list_grants(t).await.unwrap().is_empty(), "a grant was stored");
        assert!(self.deps.grants.list_connections(t).await.unwrap().is_empty(), "a connection was stored");
        assert!(self.events().await.is_empty(), "an event was sent");
    }

    /// How often the sandbox saw `"<METHOD> <route template>"`.
    async fn sandbox_calls(&self, key: &str) -> u64 {
        let c: Value = self.browser.get(format!("{}/_sandbox/counters", self.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
        c["calls"][key].as_u64().unwrap_or_else(|| panic!("no counter '{key}' in {}", c["calls"]))
    }

    async fn sandbox_calls_or_zero(&self, key: &str) -> u64 {
        let c: Value = self.browser.get(format!("{}/_sandbox/counters", self.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
        c["calls"][key].as_u64().unwrap_or(0)
    }

    async fn stored_states(&self) -> usize {
        let out = self
            .db
            .query()
            .table_name(&self.deps.config.tables.ephemeral)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", self.tenant.tenant_id)))
            .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("OAUTHSTATE#".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.count as usize
    }
}

fn location(resp: &Response<Body>) -> &str {
    resp.headers().get("location").expect("a Location header").to_str().unwrap()
}

fn body(resp: &Response<Body>) -> String {
    match resp.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    }
}

fn error_code(resp: &Response<Body>) -> u64 {
    let v: Value = serde_json::from_str(&body(resp)).unwrap_or_else(|_| panic!("JSON error body, got {}", body(resp)));
    v["error"]["code"].as_u64().unwrap()
}

fn redirect_params(resp: &Response<Body>) -> HashMap<String, String> {
    assert_eq!(resp.status(), 302, "{}", body(resp));
    let u = Url::parse(location(resp)).unwrap();
    assert!(u.as_str().starts_with(RETURN_URL), "redirected off the allow-list: {u}");
    u.query_pairs().into_owned().collect()
}

fn schema() -> Value {
    serde_json::from_str(include_str!("../../../schemas/app-event.v1.json")).unwrap()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test]
async fn quickbooks_full_connect_stores_a_sealed_grant_audits_emits_and_the_state_works_once() {
    let f = fixture(Plan::Professional).await;
    let (query, resp) = f.full_connect(Provider::QuickBooks, &[]).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");
    assert_eq!(params["provider"], "quickbooks");
    assert_eq!(params["connections"], "1");
    let realm = param(&query, "realmId");

    let t = &f.tenant.tenant_id;
    let conns = f.deps.grants.list_connections(t).await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].org_id, realm);
    assert_eq!(conns[0].status, GrantStatus::Active);
    assert_eq!(conns[0].grant_id, params["grant_id"]);
    let grant = f.deps.grants.get_grant(t, Provider::QuickBooks, &params["grant_id"]).await.unwrap().unwrap();
    assert_eq!(grant.org_ids, vec![realm.to_string()]);
    let tokens = f
        .deps
        .vault
        .unseal_tokens(&SealContext::new(t, Provider::QuickBooks, &grant.grant_id), grant.sealed.as_ref().unwrap())
        .await
        .unwrap();
    assert!(!tokens.access_token.expose().is_empty() && tokens.refresh_token.is_some());
    assert!(grant.refresh_expires_at.is_some(), "QuickBooks reports the refresh token's life");
    // The grant is findable by the webhook receiver's lookup.
    assert!(f.deps.grants.connections_for_org(Provider::QuickBooks, realm).await.unwrap().iter().any(|c| &c.tenant_id == t));
    // The connection carries its tenant's routing copy, so the webhook receiver need not read the tenant.
    let routed = f.deps.grants.connections_for_org_routed(Provider::QuickBooks, realm).await.unwrap();
    let (_, routing) = routed.iter().find(|(c, _)| &c.tenant_id == t).unwrap();
    let routing = routing.as_ref().expect("routing copy written with the connection");
    assert_eq!(&routing.tenant_id, t);
    assert!(routing.provider_enabled(Provider::QuickBooks));

    let audit = AuditLog::new(f.db.clone(), f.deps.config.tables.tenants.clone()).list(t).await.unwrap();
    assert!(audit.iter().any(|a| a.event == "connected" && a.actor == OWNER && a.grant_id == grant.grant_id), "{audit:?}");

    let events = f.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    check_against_schema(&schema(), &events[0]).unwrap();
    assert_eq!(events[0]["type"], "connection.created");
    assert_eq!(events[0]["tenant_id"], t.as_str());
    assert_eq!(events[0]["data"]["grant_id"], grant.grant_id.as_str());
    assert_eq!(events[0]["data"]["connections"][0]["org_id"], realm);

    // The same callback again (a replayed or double-submitted redirect): refused, nothing new stored.
    let again = f.callback(Provider::QuickBooks, &query).await;
    assert_eq!(again.status(), 400);
    assert_eq!(error_code(&again), 1004);
    assert_eq!(f.deps.grants.list_grants(t).await.unwrap().len(), 1);
    assert!(f.events().await.is_empty());
    assert_eq!(f.stored_states().await, 0);
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn xero_full_connect_uses_pkce_and_stores_one_connection_per_authorised_tenant() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Xero).await;
    let q: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"), "{q:?}");
    assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
    assert_eq!(q["redirect_uri"], "https://integrations.test.example/oauth/xero/callback");
    let query = f.consent(&authorize, &[]).await;
    let resp = f.callback(Provider::Xero, &query).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");

    let conns = f.deps.grants.list_connections(&f.tenant.tenant_id).await.unwrap();
    assert!(conns.len() >= 2, "the sandbox's Xero user authorises two organisations: {conns:?}");
    assert_eq!(params["connections"], conns.len().to_string());
    assert!(conns.iter().all(|c| c.grant_id == params["grant_id"] && c.org_name.is_some()));
    let grants = f.deps.grants.list_grants(&f.tenant.tenant_id).await.unwrap();
    assert_eq!(grants.len(), 1, "one grant serves every Xero tenant of the consent");
    let events = f.events().await;
    assert_eq!(events.len(), 1);
    check_against_schema(&schema(), &events[0]).unwrap();
    assert_eq!(events[0]["data"]["connections"].as_array().unwrap().len(), conns.len());
    f.sandbox.shutdown().await;
}

/// Issue 20 #10: five tenants connect the same Zoho organisation one after the other, within one
/// of the org's "minutes" (shrunk to 10 s at the sandbox and in the guard alike, 100 calls each as
/// at Zoho). Each connect registers 12 webhooks and 12 workflow rules, so the fifth alone takes the
/// org past its limit: unguarded, the sandbox answers 429 and the connect fails with
/// `webhook_registration_failed`. Guarded, the registrations wait for room in the org's shared
/// limit within the callback's deadline, every connect succeeds, Zoho never says 429, and each
/// registration call leaves an audit record with its method, path (no query) and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_connecting_one_zoho_org_within_its_minute_wait_for_its_limit_and_are_audited() {
    let mut f = fixture(Plan::Professional).await;
    f.shrink_zoho_minute().await;

    let per_connect = zoho_webhooks::ENTITIES.len() * zoho_webhooks::EVENTS.len();
    let started = std::time::Instant::now();
    let mut tenants = Vec::new();
    for i in 0..5 {
        if i > 0 {
            let cfg = TenantConfig { return_urls: vec![RETURN_URL.into()], ..Default::default() };
            let tenant = Tenant::new(unique("tenant"), "Acme Ltd", Plan::Professional, cfg, Utc::now());
            f.deps.tenants.create(&tenant).await.unwrap();
            f.deps.tenants.set_role(&tenant, OWNER, Role::Owner).await.unwrap();
            f.tenant = tenant;
            f.clear_cookies();
        }
        let (_, resp) = f.full_connect(Provider::Zoho, &[]).await;
        let params = redirect_params(&resp);
        assert_eq!(params["status"], "connected", "tenant {i}: {params:?}");
        let conns = f.deps.grants.list_connections(&f.tenant.tenant_id).await.unwrap();
        assert_eq!(conns.len(), 1, "{conns:?}");
        assert_eq!(zoho_webhooks::split_ids(conns[0].webhook_id.as_deref()).len(), per_connect);
        tenants.push((f.tenant.tenant_id.clone(), conns[0].org_id.clone(), params["grant_id"].clone()));
    }
    let org = &tenants[0].1;
    assert!(tenants.iter().all(|(_, o, _)| o == org), "one organisation: {tenants:?}");
    let counters: Value = f.browser.get(format!("{}/_sandbox/counters", f.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(counters["rate_limited"][format!("zoho:{org}")].as_u64().unwrap_or(0), 0, "Zoho answered 429: {counters}");
    // More calls than one window holds really were made, so the limit was in play.
    let registrations = f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await
        + f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/workflows").await;
    assert_eq!(registrations, (5 * 2 * per_connect) as u64);
    assert!(started.elapsed() > Duration::from_secs(10), "120 calls cannot fit one 10 s window of 100");

    for (tenant_id, _, grant_id) in &tenants {
        let calls: Vec<_> = f.deps.audit.list(tenant_id).await.unwrap().into_iter().filter(|r| r.event == "provider_call").collect();
        for (op, path) in [("register_webhook", "/books/v3/settings/webhooks"), ("register_workflow", "/books/v3/settings/workflows")] {
            let expected = format!("{op} POST {path} -> 201");
            let n = calls.iter().filter(|r| r.detail.as_deref().is_some_and(|d| d.starts_with(&expected))).count();
            assert_eq!(n, per_connect, "{op} records of {tenant_id}: {calls:?}");
        }
        assert!(calls.iter().all(|r| r.grant_id == *grant_id && r.provider == Provider::Zoho && r.actor == "system:oauth-callback"));
        // Discovery is audited too (not limited: no org is known before it answers).
        let discovery = calls
            .iter()
            .filter(|r| r.detail.as_deref().is_some_and(|d| d.starts_with("discover_orgs GET /books/v3/organizations -> 200")))
            .count();
        assert_eq!(discovery, 1, "{calls:?}");
        assert!(calls.iter().all(|r| !r.detail.as_deref().unwrap_or("").contains('?')), "no query strings: {calls:?}");
    }
}

/// `settings/{kind}` of a Zoho org as the sandbox holds it (empty when the token no longer works).
async fn zoho_list(f: &Fixture, api_domain: &str, tokens: &shared::TokenSet, kind: &str, org: &str) -> Vec<Value> {
    let listed: Value = f
        .browser
        .get(format!("{api_domain}/books/v3/settings/{kind}?organization_id={org}"))
        .header("authorization", format!("Zoho-oauthtoken {}", tokens.access_token.expose()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    listed[kind].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn zoho_connect_in_the_eu_registers_webhooks_and_disconnect_removes_them() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Zoho).await;
    assert!(authorize.path().contains("/zoho/accounts/us/"), "Zoho's flow starts at the .com (us) server: {authorize}");
    let query = f.consent(&authorize, &[("sandbox_dc", "eu")]).await;
    assert_eq!(param(&query, "location"), "eu");
    let resp = f.callback(Provider::Zoho, &query).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");

    let t = &f.tenant.tenant_id;
    let conns = f.deps.grants.list_connections(t).await.unwrap();
    assert!(!conns.is_empty());
    assert!(conns.iter().any(|c| c.org_id == "700000002"), "the EU organisation: {conns:?}");
    assert!(!conns.iter().any(|c| c.org_id == "700000001"), "the US organisation lives in another data centre: {conns:?}");
    let grant = f.deps.grants.get_grant(t, Provider::Zoho, &params["grant_id"]).await.unwrap().unwrap();
    let tokens =
        f.deps.vault.unseal_tokens(&SealContext::new(t, Provider::Zoho, &grant.grant_id), grant.sealed.as_ref().unwrap()).await.unwrap();
    let api_domain = tokens.api_domain.clone().expect("Zoho grants keep their api_domain");
    assert!(api_domain.ends_with("/zoho/api/eu"), "{api_domain}");

    for c in &conns {
        let ids = zoho_webhooks::split_ids(c.webhook_id.as_deref());
        assert_eq!(ids.len(), zoho_webhooks::ENTITIES.len() * zoho_webhooks::EVENTS.len(), "{c:?}");
        let ctx = SealContext::new(t, Provider::Zoho, format!("webhook:{}", c.org_id));
        let secret = f.deps.vault.unseal_bytes(&ctx, c.webhook_secret.as_ref().expect("sealed secret")).await.unwrap();
        let secret = String::from_utf8(secret.to_vec()).unwrap();
        // What Zoho holds: our URL for the org, and the org's secret in our header.
        let listed: Value = f
            .browser
            .get(format!("{api_domain}/books/v3/settings/webhooks?organization_id={}", c.org_id))
            .header("authorization", format!("Zoho-oauthtoken {}", tokens.access_token.expose()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let hooks = listed["webhooks"].as_array().unwrap_or_else(|| panic!("{listed}"));
        let hook_ids: Vec<&str> = ids.iter().map(|id| zoho_webhooks::registration_parts(id).0).collect();
        let ours: Vec<&Value> = hooks.iter().filter(|h| hook_ids.iter().any(|id| h["webhook_id"] == *id)).collect();
        assert_eq!(ours.len(), ids.len(), "{listed}");
        // Each webhook is the action of a workflow rule on its own module: without one Zoho Books
        // would never send it.
        let rules = zoho_list(&f, &api_domain, &tokens, "workflows", &c.org_id).await;
        for id in &ids {
            let (hook, wf) = zoho_webhooks::registration_parts(id);
            let wf = wf.unwrap_or_else(|| panic!("registration {id} has no workflow rule"));
            let rule = rules.iter().find(|r| r["workflow_id"] == wf).unwrap_or_else(|| panic!("rule {wf} not at Zoho"));
            let h = hooks.iter().find(|h| h["webhook_id"] == hook).unwrap();
            assert_eq!(rule["entity"], h["entity"]);
            assert_eq!(rule["actions"], json!([{"action_type": "webhook", "action_id": hook}]));
            assert!(["on_create", "on_edit", "on_delete"].contains(&rule["event"].as_str().unwrap()), "{rule}");
        }
        for h in ours {
            assert_eq!(h["url"], zoho_webhooks::callback_url(&f.deps.config.public_base_url, &c.org_id).as_str());
            let header = h["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["param_name"] == zoho_webhooks::SECRET_HEADER || x[0] == zoho_webhooks::SECRET_HEADER)
                .cloned();
            let value = header.map(|x| x["param_value"].as_str().or(x[1].as_str()).unwrap_or_default().to_string()).unwrap_or_default();
            assert_eq!(value, secret, "the registered header carries the org's sealed secret");
        }
    }
    let created = f.events().await;
    assert_eq!(created.len(), 1);
    assert!(created[0]["data"]["connections"].as_array().unwrap().iter().all(|c| c["webhook_registered"] == true));

    // Disconnect through the signed POST route.
    let path = "/disconnect/zoho";
    let q = f.signed("POST", path, &[("tenant", t), ("user", OWNER), ("grant_id", &grant.grant_id)], Utc::now().timestamp());
    let resp = oauth_callback::handle(&f.deps, request("POST", path, &q, "zoho")).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", body(&resp));
    let out: Value = serde_json::from_str(&body(&resp)).unwrap();
    assert_eq!(out["revoked_at_provider"], true);
    for c in &conns {
        let listed: Value = f
            .browser
            .get(format!("{api_domain}/books/v3/settings/webhooks?organization_id={}", c.org_id))
            .header("authorization", format!("Zoho-oauthtoken {}", tokens.access_token.expose()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        let ids = zoho_webhooks::split_ids(c.webhook_id.as_deref());
        let left = listed["webhooks"]
            .as_array()
            .map(|a| a.iter().filter(|h| ids.iter().any(|id| h["webhook_id"] == zoho_webhooks::registration_parts(id).0)).count())
            .unwrap_or(0);
        assert_eq!(left, 0, "webhooks still registered: {listed}");
        assert!(zoho_list(&f, &api_domain, &tokens, "workflows", &c.org_id).await.is_empty(), "workflow rules still there");
    }
    let after = f.deps.grants.get_grant(t, Provider::Zoho, &grant.grant_id).await.unwrap().unwrap();
    assert_eq!(after.status, GrantStatus::Disconnected);
    assert!(after.sealed.is_none(), "tokens are dropped on disconnect");
    for c in f.deps.grants.list_connections(t).await.unwrap() {
        assert_eq!(c.status, GrantStatus::Disconnected);
        assert!(c.webhook_secret.is_none());
    }
    let events = f.events().await;
    assert_eq!(events.len(), 1);
    check_against_schema(&schema(), &events[0]).unwrap();
    assert_eq!(events[0]["type"], "connection.disconnected");
    // Idempotent: a second disconnect changes nothing and sends nothing.
    let q = f.signed("POST", path, &[("tenant", t), ("user", OWNER), ("grant_id", &grant.grant_id)], Utc::now().timestamp());
    let resp = oauth_callback::handle(&f.deps, request("POST", path, &q, "zoho")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(f.events().await.is_empty());
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn forged_expired_and_other_tenant_states_are_refused_without_redirect_or_storage() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Xero).await;
    let query = f.consent(&authorize, &[]).await;
    let real_state = param(&query, "state").to_string();
    let state_key = f.deps.secrets.app_signing(&f.deps.config.secrets.app_signing).await.unwrap().state_key.clone();
    let claims = state::verify(&state_key, &real_state, Provider::Xero, Utc::now()).unwrap();
    let with_state = |s: &str| -> Vec<(String, String)> {
        query.iter().map(|(k, v)| if k == "state" { (k.clone(), s.to_string()) } else { (k.clone(), v.clone()) }).collect()
    };

    let other_tenant = unique("tenant");
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no state", query.iter().filter(|(k, _)| k != "state").cloned().collect()),
        ("garbage", with_state("not-a-state")),
        ("signed with another key", with_state(&state::encode(&SecretString::new("attacker"), &claims))),
        ("tampered", with_state(&format!("{}A", real_state))),
        // Validly signed (the key leaked, say) but for another tenant: the stored half is not there.
        ("other tenant", with_state(&state::encode(&state_key, &StateClaims { tenant_id: other_tenant.clone(), ..claims.clone() }))),
        ("expired", with_state(&state::encode(&state_key, &StateClaims { expires_at: Utc::now().timestamp() - 1, ..claims.clone() }))),
    ];
    for (label, q) in cases {
        let resp = f.callback(Provider::Xero, &q).await;
        assert_eq!(resp.status(), 400, "{label}: {}", body(&resp));
        assert!(resp.headers().get("location").is_none(), "{label}: an invalid state must not redirect");
        assert_eq!(error_code(&resp), 1004, "{label}");
    }
    // The real state at another provider's callback.
    let resp = f.callback(Provider::QuickBooks, &query).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (400, 1004));
    // A browser gets a page, not JSON, and the page escapes what it shows.
    let mut req = request("GET", "/oauth/xero/callback", &with_state("<script>"), "xero");
    req.headers_mut().insert("accept", "text/html".parse().unwrap());
    let resp = oauth_callback::handle(&f.deps, req).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(body(&resp).contains("<h1>") && !body(&resp).contains("<script>"));

    f.assert_nothing_stored().await;
    // None of that consumed the real state, and the state's stored half expires with it: after the
    // TTL the real state is refused even though DynamoDB may not have deleted the item yet.
    assert!(f.deps.states.exists(&f.tenant.tenant_id, &claims.id_hex()).await.unwrap());
    let later = Utc::now() + chrono::Duration::from_std(f.deps.config.oauth_state_ttl).unwrap() + chrono::Duration::seconds(1);
    let resp = oauth_callback::handle_at(&f.deps, request("GET", "/oauth/xero/callback", &query, "xero"), later).await.unwrap();
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (400, 1004));
    let consumed = f.deps.states.consume(&claims, later).await.unwrap_err();
    assert_eq!(consumed.code(), shared::ErrorCode::InvalidState, "the store's own expiry check");
    f.assert_nothing_stored().await;

    // And it still works once, in time.
    let resp = f.callback(Provider::Xero, &query).await;
    assert_eq!(redirect_params(&resp)["status"], "connected");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn provider_denial_and_missing_code_redirect_back_with_an_error_and_store_nothing() {
    let f = fixture(Plan::Professional).await;
    // The user declines at the provider.
    let authorize = f.start(Provider::QuickBooks).await;
    let query = f.consent(&authorize, &[("sandbox_deny", "1")]).await;
    assert_eq!(param(&query, "error"), "access_denied");
    let params = redirect_params(&f.callback(Provider::QuickBooks, &query).await);
    assert_eq!(params["status"], "error");
    assert_eq!(params["code"], "E1007");
    assert_eq!(params["reason"], "access_denied");
    assert_eq!(params["provider"], "quickbooks");
    f.assert_nothing_stored().await;

    // A callback with a good state but no code.
    let authorize = f.start(Provider::Zoho).await;
    let query = f.consent(&authorize, &[]).await;
    let no_code: Vec<(String, String)> = query.iter().filter(|(k, _)| k != "code").cloned().collect();
    let params = redirect_params(&f.callback(Provider::Zoho, &no_code).await);
    assert_eq!((params["status"].as_str(), params["code"].as_str(), params["reason"].as_str()), ("error", "E4000", "missing_code"));
    f.assert_nothing_stored().await;

    // A code the provider does not know (forged or already used) fails the exchange.
    let authorize = f.start(Provider::Xero).await;
    let query = f.consent(&authorize, &[]).await;
    let bad_code: Vec<(String, String)> =
        query.iter().map(|(k, v)| if k == "code" { (k.clone(), "forged-code".into()) } else { (k.clone(), v.clone()) }).collect();
    let params = redirect_params(&f.callback(Provider::Xero, &bad_code).await);
    assert_eq!((params["status"].as_str(), params["reason"].as_str()), ("error", "exchange_failed"), "{params:?}");
    assert_eq!(params["code"], "E1003", "invalid_grant from the token endpoint");
    f.assert_nothing_stored().await;

    // A forged Zoho data centre in the callback: the code (and our client secret) never go there.
    let authorize = f.start(Provider::Zoho).await;
    let query = f.consent(&authorize, &[("sandbox_dc", "eu")]).await;
    let forged: Vec<(String, String)> =
        query
            .iter()
            .map(|(k, v)| {
                if k == "accounts-server" {
                    (k.clone(), "https://accounts.zoho.eu.attacker.example".into())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
    let params = redirect_params(&f.callback(Provider::Zoho, &forged).await);
    assert_eq!((params["status"].as_str(), params["reason"].as_str()), ("error", "exchange_failed"), "{params:?}");
    // Refused as bad input (an unknown data centre), not as some provider or network failure.
    assert_eq!((params["code"].as_str(), params["retryable"].as_str()), ("E4000", "false"), "{params:?}");
    f.assert_nothing_stored().await;
    assert_eq!(f.sandbox_calls_or_zero("POST /zoho/accounts/{dc}/oauth/v2/token").await, 0, "no code exchange was attempted");
    assert_eq!(f.stored_states().await, 0, "every state was consumed");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn connect_requests_need_a_valid_signature_a_connecting_role_an_allowed_return_url_and_a_free_slot() {
    let f = fixture(Plan::Starter).await;
    let t = f.tenant.tenant_id.clone();
    let path = "/connect/xero";
    let now = Utc::now().timestamp();
    // (label, query, expected status, expected error code)
    type Case = (&'static str, Vec<(String, String)>, u16, u64);
    let mut cases: Vec<Case> = Vec::new();
    let good = f.connect_query(Provider::Xero, OWNER, RETURN_URL);
    cases.push(("unsigned", good.iter().filter(|(k, _)| k != "sig").cloned().collect(), 401, 1001));
    cases.push(("stale", f.signed("GET", path, &[("tenant", &t), ("user", OWNER), ("return_url", RETURN_URL)], now - 301), 401, 1001));
    cases.push((
        "tampered tenant",
        good.iter().map(|(k, v)| if k == "tenant" { (k.clone(), unique("tenant")) } else { (k.clone(), v.clone()) }).collect(),
        401,
        1001,
    ));
    cases.push(("member role", f.connect_query(Provider::Xero, "member-1", RETURN_URL), 403, 1002));
    cases.push(("unknown user", f.connect_query(Provider::Xero, "stranger", RETURN_URL), 403, 1002));
    cases.push((
        "return url off the allow-list",
        f.connect_query(Provider::Xero, OWNER, "https://evil.example/settings/integrations"),
        403,
        4010,
    ));
    cases.push((
        "return url lookalike",
        f.connect_query(Provider::Xero, OWNER, "https://app.example.com.evil.example/settings/integrations"),
        403,
        4010,
    ));
    cases.push(("no return url", f.signed("GET", path, &[("tenant", &t), ("user", OWNER)], now), 400, 4000));
    for (label, q, status, code) in cases {
        let resp = f.get(path, &q, Provider::Xero).await;
        assert_eq!(resp.status().as_u16(), status, "{label}: {}", body(&resp));
        assert_eq!(error_code(&resp), code, "{label}");
        assert!(resp.headers().get("location").is_none(), "{label}");
    }
    // A signature for one provider does not open another.
    let resp = f.get("/connect/zoho", &good, Provider::Zoho).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(f.stored_states().await, 0, "no state for refused requests");
    f.assert_nothing_stored().await;

    // The Starter plan allows one organisation: the first connect works, the next is refused up front.
    let (_, resp) = f.full_connect(Provider::QuickBooks, &[]).await;
    assert_eq!(redirect_params(&resp)["status"], "connected");
    f.events().await;
    let resp = f.get(path, &good, Provider::Xero).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (429, 6003), "{}", body(&resp));
    assert_eq!(f.deps.grants.list_grants(&t).await.unwrap().len(), 1);
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_consent_that_would_exceed_the_plan_is_refused_at_the_callback_and_revoked() {
    // Starter allows one organisation; the limit is checked again when the provider tells us how
    // many the user picked (one Xero consent can add several).
    let f = fixture(Plan::Starter).await;
    let authorize = f.start(Provider::Xero).await;
    let query = f.consent(&authorize, &[]).await;
    let params = redirect_params(&f.callback(Provider::Xero, &query).await);
    assert_eq!(
        (params["status"].as_str(), params["code"].as_str(), params["reason"].as_str()),
        ("error", "E6003", "plan_limit"),
        "{params:?}"
    );
    f.assert_nothing_stored().await;
    assert_eq!(f.sandbox_calls("POST /xero/identity/connect/revocation").await, 1, "the refused grant is revoked at Xero");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_xero_grant_without_the_scopes_for_enabled_entities_is_refused_naming_them_and_revoked() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Xero).await;
    let q: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    // The default deployment asks in Xero's granular vocabulary (apps created from March 2026).
    assert!(q["scope"].split(' ').any(|s| s == "accounting.invoices"), "{q:?}");
    assert!(!q["scope"].contains("accounting.transactions"), "{q:?}");
    // The consent grants contacts and settings only.
    let query = f.consent(&authorize, &[("sandbox_scope", "offline_access accounting.contacts accounting.settings.read")]).await;
    let params = redirect_params(&f.callback(Provider::Xero, &query).await);
    assert_eq!(
        (params["status"].as_str(), params["code"].as_str(), params["reason"].as_str()),
        ("error", "E1010", "insufficient_scope"),
        "{params:?}"
    );
    assert_eq!(params["missing_scopes"], "accounting.invoices accounting.payments", "{params:?}");
    f.assert_nothing_stored().await;
    assert_eq!(f.sandbox_calls("POST /xero/identity/connect/revocation").await, 1, "the refused grant is revoked at Xero");
    assert_eq!(f.sandbox_calls_or_zero("GET /xero/connections").await, 0, "refused before org discovery");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failed_zoho_webhook_registration_fails_the_connect_and_leaves_nothing_behind() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Zoho).await;
    let query = f.consent(&authorize, &[]).await;
    let fault = serde_json::json!({"provider": "zoho", "method": "POST", "path_prefix": "/zoho/api/us/books/v3/settings/webhooks", "kind": "500", "count": 1});
    let r = f.browser.post(format!("{}/_sandbox/faults", f.sandbox.base_url)).json(&fault).send().await.unwrap();
    assert!(r.status().is_success());
    let params = redirect_params(&f.callback(Provider::Zoho, &query).await);
    assert_eq!(params["status"], "error");
    assert_eq!(params["reason"], "webhook_registration_failed");
    assert_eq!(params["code"], "E5001");
    assert_eq!(params["retryable"], "true");
    f.assert_nothing_stored().await;
    assert_eq!(f.sandbox_calls("POST /zoho/accounts/{dc}/oauth/v2/token/revoke").await, 1, "the new Zoho grant is revoked");
    f.sandbox.shutdown().await;
}

/// QuickBooks' hard cap reaches the stored grant: the sealed tokens keep it and the grant is due by
/// it (the refresher's due index reads `refresh_expires_at`).
#[tokio::test]
async fn a_quickbooks_grant_is_due_by_its_hard_refresh_expiry() {
    let f = fixture(Plan::Professional).await;
    let cfg = json!({"quickbooks_refresh_hard_ttl": 7200});
    assert!(f.browser.post(format!("{}/_sandbox/config", f.sandbox.base_url)).json(&cfg).send().await.unwrap().status().is_success());
    let before = Utc::now();
    let (_, resp) = f.full_connect(Provider::QuickBooks, &[]).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");
    let t = &f.tenant.tenant_id;
    let grant = f.deps.grants.get_grant(t, Provider::QuickBooks, &params["grant_id"]).await.unwrap().unwrap();
    let tokens = f
        .deps
        .vault
        .unseal_tokens(&SealContext::new(t, Provider::QuickBooks, &grant.grant_id), grant.sealed.as_ref().unwrap())
        .await
        .unwrap();
    let hard = tokens.refresh_hard_expires_at.expect("the hard expiry is asked for and kept");
    assert!((7100..=7205).contains(&(hard - before).num_seconds()), "{hard}");
    assert_eq!(grant.refresh_expires_at.map(|r| r.timestamp()), Some(hard.timestamp()), "due by the hard cap");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failed_zoho_workflow_rule_fails_the_connect_and_removes_every_webhook_and_rule() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Zoho).await;
    let query = f.consent(&authorize, &[]).await;
    let fault =
        json!({"provider": "zoho", "method": "POST", "path_prefix": "/zoho/api/us/books/v3/settings/workflows", "kind": "500", "count": 1});
    assert!(f.browser.post(format!("{}/_sandbox/faults", f.sandbox.base_url)).json(&fault).send().await.unwrap().status().is_success());
    let params = redirect_params(&f.callback(Provider::Zoho, &query).await);
    assert_eq!((params["status"].as_str(), params["reason"].as_str()), ("error", "webhook_registration_failed"), "{params:?}");
    f.assert_nothing_stored().await;
    let c: Value = f.browser.get(format!("{}/_sandbox/counters", f.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
    let count = |method: &str, kind: &str| -> u64 {
        c["calls"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(method) && k.contains(&format!("settings/{kind}")))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let n = (zoho_webhooks::ENTITIES.len() * zoho_webhooks::EVENTS.len()) as u64;
    assert_eq!((count("POST ", "webhooks"), count("POST ", "workflows")), (n, n), "{c}");
    // The webhook whose rule failed is removed by the registration itself, the others by the undo
    // (rule first, then webhook).
    assert_eq!(count("DELETE ", "webhooks"), n, "{c}");
    assert_eq!(count("DELETE ", "workflows"), n - 1, "{c}");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn reconnecting_the_same_organisation_moves_it_to_the_new_grant_and_retires_the_old_one() {
    let f = fixture(Plan::Starter).await;
    let (_, first) = f.full_connect(Provider::QuickBooks, &[]).await;
    let first = redirect_params(&first);
    // A Starter tenant at its limit may still reconnect the organisation it has.
    let (_, second) = f.full_connect(Provider::QuickBooks, &[]).await;
    let second = redirect_params(&second);
    assert_eq!(second["status"], "connected", "{second:?}");
    assert_ne!(first["grant_id"], second["grant_id"]);
    let t = &f.tenant.tenant_id;
    let conns = f.deps.grants.list_connections(t).await.unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].grant_id, second["grant_id"]);
    let old = f.deps.grants.get_grant(t, Provider::QuickBooks, &first["grant_id"]).await.unwrap().unwrap();
    assert_eq!(old.status, GrantStatus::Disconnected);
    assert!(old.sealed.is_none());
    f.sandbox.shutdown().await;
}

/// The sample events in events/oauth-callback (what `cargo lambda invoke` / `sam local invoke` send)
/// reach the right route and carry a valid app signature; replayed later than 5 minutes after their
/// fixed `ts` they are stale, which is what the local smoke run sees.
#[tokio::test]
async fn sample_events_parse_route_and_verify() {
    let f = fixture(Plan::Professional).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/oauth-callback");
    for provider in ["quickbooks", "xero", "zoho"] {
        let raw = std::fs::read_to_string(format!("{dir}/connect-{provider}.json")).unwrap();
        let ts: i64 = serde_json::from_str::<Value>(&raw).unwrap()["queryStringParameters"]["ts"].as_str().unwrap().parse().unwrap();
        let at_signing = chrono::DateTime::from_timestamp(ts, 0).unwrap();
        let resp = oauth_callback::handle_at(&f.deps, lambda_http::request::from_str(&raw).unwrap(), at_signing).await.unwrap();
        // The signature holds; the sample's tenant is not in this database.
        assert_eq!((resp.status().as_u16(), error_code(&resp)), (404, 6001), "{provider}: {}", body(&resp));
        let later = at_signing + chrono::Duration::seconds(301);
        let resp = oauth_callback::handle_at(&f.deps, lambda_http::request::from_str(&raw).unwrap(), later).await.unwrap();
        assert_eq!((resp.status().as_u16(), error_code(&resp)), (401, 1001), "{provider}");
    }
    let raw = std::fs::read_to_string(format!("{dir}/callback-quickbooks.json")).unwrap();
    let resp = oauth_callback::handle(&f.deps, lambda_http::request::from_str(&raw).unwrap()).await.unwrap();
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (400, 1004), "a made-up state is refused");
    f.sandbox.shutdown().await;
}

/// The hijack: an admin of tenant A starts a connect and hands the consent link to a victim, who
/// consents with their own books. The victim's browser has no binding cookie for that state, so the
/// callback refuses it, stores nothing and leaves the state for the browser that started it.
#[tokio::test]
async fn a_consent_link_completed_in_another_browser_is_refused() {
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::QuickBooks).await;
    let attackers_browser = f.jar.lock().unwrap().clone();
    assert_eq!(attackers_browser.len(), 1, "/connect sets one binding cookie");
    let query = f.consent(&authorize, &[]).await;

    // The victim's browser: no cookie.
    f.clear_cookies();
    let resp = f.callback(Provider::QuickBooks, &query).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (400, 1004), "{}", body(&resp));
    assert!(resp.headers().get("location").is_none());
    f.assert_nothing_stored().await;
    assert_eq!(f.stored_states().await, 1, "a refused browser does not burn the state");

    // A browser with the binding cookie of another connect (of the same tenant) does not pass either.
    let _ = f.start(Provider::QuickBooks).await;
    let other: BTreeMap<String, String> = f.jar.lock().unwrap().clone();
    assert!(other.keys().all(|k| !attackers_browser.contains_key(k)));
    let (name, _) = attackers_browser.iter().next().unwrap();
    let (_, other_value) = other.iter().next().unwrap();
    f.jar.lock().unwrap().insert(name.clone(), other_value.clone());
    let resp = f.callback(Provider::QuickBooks, &query).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (400, 1004));
    f.assert_nothing_stored().await;

    // The browser that started it completes it, and the cookie is removed on the way back.
    *f.jar.lock().unwrap() = attackers_browser.clone();
    let resp = f.callback(Provider::QuickBooks, &query).await;
    assert_eq!(redirect_params(&resp)["status"], "connected");
    let cleared: Vec<&str> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(cleared.iter().any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0")), "{cleared:?}");
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn the_binding_cookie_is_httponly_secure_lax_and_scoped_to_the_callback() {
    let f = fixture(Plan::Professional).await;
    let resp = f.get("/connect/xero", &f.connect_query(Provider::Xero, OWNER, RETURN_URL), Provider::Xero).await;
    assert_eq!(resp.status(), 302);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let state = Url::parse(location(&resp)).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/oauth/xero/callback", "Max-Age=600"] {
        assert!(set.split(';').any(|a| a.trim() == attr), "{attr} missing in {set}");
    }
    assert!(!set.contains(&state), "the cookie carries a hash of the state, not the state");
    f.sandbox.shutdown().await;
}

/// A signed connect URL works once: a replay (from a log, a referrer, a forwarded link) is refused
/// while its signature is still fresh, and a URL without a jti is not accepted at all.
#[tokio::test]
async fn a_signed_connect_url_is_single_use() {
    let f = fixture(Plan::Professional).await;
    let q = f.connect_query(Provider::Xero, OWNER, RETURN_URL);
    assert_eq!(f.get("/connect/xero", &q, Provider::Xero).await.status(), 302);
    let again = f.get("/connect/xero", &q, Provider::Xero).await;
    assert_eq!((again.status().as_u16(), error_code(&again)), (401, 1001), "{}", body(&again));
    assert!(body(&again).contains("already used"));
    assert_eq!(f.stored_states().await, 1, "the replay minted no state");

    // Without a jti (signed all the same): refused.
    let t = f.tenant.tenant_id.clone();
    let mut p: BTreeMap<String, String> = BTreeMap::from([
        ("tenant".to_string(), t),
        ("user".to_string(), OWNER.to_string()),
        ("return_url".to_string(), RETURN_URL.to_string()),
        ("ts".to_string(), Utc::now().timestamp().to_string()),
        ("kid".to_string(), f.kid.clone()),
    ]);
    p.insert("sig".into(), app_auth::sign(&f.key, "GET", "/connect/xero", &p));
    let no_jti: Vec<(String, String)> = p.into_iter().collect();
    let resp = f.get("/connect/xero", &no_jti, Provider::Xero).await;
    assert_eq!((resp.status().as_u16(), error_code(&resp)), (401, 1001));
    f.sandbox.shutdown().await;
}

/// The user's role is checked again when the provider sends them back: demoted while at the consent
/// page, they connect nothing.
#[tokio::test]
async fn a_user_demoted_during_consent_connects_nothing() {
    let f = fixture(Plan::Professional).await;
    f.deps.tenants.set_role(&f.tenant, "admin-2", Role::Admin).await.unwrap();
    let q = f.signed(
        "GET",
        "/connect/quickbooks",
        &[("tenant", &f.tenant.tenant_id), ("user", "admin-2"), ("return_url", RETURN_URL)],
        Utc::now().timestamp(),
    );
    let resp = f.get("/connect/quickbooks", &q, Provider::QuickBooks).await;
    assert_eq!(resp.status(), 302, "{}", body(&resp));
    let query = f.consent(&Url::parse(location(&resp)).unwrap(), &[]).await;
    f.deps.tenants.set_role(&f.tenant, "admin-2", Role::Member).await.unwrap();
    let params = redirect_params(&f.callback(Provider::QuickBooks, &query).await);
    assert_eq!((params["status"].as_str(), params["code"].as_str(), params["reason"].as_str()), ("error", "E1002", "forbidden"));
    f.assert_nothing_stored().await;
    f.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_member_cannot_disconnect() {
    let f = fixture(Plan::Professional).await;
    let (_, resp) = f.full_connect(Provider::QuickBooks, &[]).await;
    let grant_id = redirect_params(&resp)["grant_id"].clone();
    f.events().await;
    let t = f.tenant.tenant_id.clone();
    let path = "/disconnect/quickbooks";
    for user in ["member-1", "stranger"] {
        let q = f.signed("POST", path, &[("tenant", &t), ("user", user), ("grant_id", &grant_id)], Utc::now().timestamp());
        let resp = oauth_callback::handle(&f.deps, request("POST", path, &q, "quickbooks")).await.unwrap();
        assert_eq!((resp.status().as_u16(), error_code(&resp)), (403, 1002), "{user}: {}", body(&resp));
    }
    let grant = f.deps.grants.get_grant(&t, Provider::QuickBooks, &grant_id).await.unwrap().unwrap();
    assert_eq!(grant.status, GrantStatus::Active);
    assert!(grant.sealed.is_some());
    assert!(f.events().await.is_empty());
    f.sandbox.shutdown().await;
}

/// A failure of ours (here: the signing secret cannot be read) reaches the browser and API callers
/// as a code, a fixed message and the correlation id: no SDK error chain, no secret ARN.
#[tokio::test]
async fn server_errors_show_no_internal_detail_on_the_callback_page_or_in_json() {
    let env = aws().await;
    let mut config = env.config.clone();
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ttya-missing-signing-AbCdEf";
    config.secrets.app_signing = arn.to_string();
    let deps = ConnectDeps::new(config, &env.clients, HttpClient::new(Duration::from_secs(5)).unwrap());
    let query = vec![("state".to_string(), "x.y".to_string()), ("code".to_string(), "c".to_string())];
    for accept in ["text/html", "application/json"] {
        let mut req = request("GET", "/oauth/xero/callback", &query, "xero");
        req.headers_mut().insert("accept", accept.parse().unwrap());
        req.headers_mut().insert("x-correlation-id", "corr-5xx-1".parse().unwrap());
        let resp = oauth_callback::handle(&deps, req).await.unwrap();
        assert!(resp.status().as_u16() >= 500, "{accept}: {}", resp.status());
        let b = body(&resp);
        assert!(
            !b.contains("arn:aws") && !b.contains("ttya-missing") && !b.contains("Exception") && !b.contains("secret"),
            "{accept}: {b}"
        );
        assert!(b.contains("corr-5xx-1"), "{accept}: the correlation id is shown: {b}");
        assert!(b.contains("9001") || b.contains("9000"), "{accept}: the code is shown: {b}");
    }
    let q = vec![("tenant".to_string(), "t".to_string())];
    let resp = oauth_callback::handle(&deps, request("GET", "/connect/xero", &q, "xero")).await.unwrap();
    assert!(resp.status().as_u16() >= 500);
    assert!(!body(&resp).contains("arn:aws"), "{}", body(&resp));
}

/// The PKCE verifier waits in the ephemeral table for up to the state's lifetime: it is stored
/// sealed, bound to the tenant, provider and state, never in clear; the callback still completes.
#[tokio::test]
async fn the_pkce_verifier_is_stored_sealed_and_bound_to_its_state() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let f = fixture(Plan::Professional).await;
    let authorize = f.start(Provider::Xero).await;
    let state_param = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let state_key = f.deps.secrets.app_signing(&f.deps.config.secrets.app_signing).await.unwrap().state_key.clone();
    let claims = state::verify(&state_key, &state_param, Provider::Xero, Utc::now()).unwrap();
    let item =
        f.db.get_item()
            .table_name(&f.deps.config.tables.ephemeral)
            .key("pk", AttributeValue::S(format!("TENANT#{}", f.tenant.tenant_id)))
            .key("sk", AttributeValue::S(state::state_sk(&claims.id_hex())))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the state is stored");
    assert!(!item.contains_key("pkce_verifier"), "no verifier in clear: {:?}", item.keys());
    let sealed = shared::vault::SealedBlob::from_json(item["pkce_verifier_sealed"].as_s().unwrap()).unwrap();
    let ctx = state::pkce_context(&f.tenant.tenant_id, Provider::Xero, &claims.id_hex());
    let verifier = f.deps.vault.unseal_bytes(&ctx, &sealed).await.unwrap();
    assert!((43..=128).contains(&verifier.len()), "an RFC 7636 verifier");
    for other in [
        state::pkce_context("another-tenant", Provider::Xero, &claims.id_hex()),
        state::pkce_context(&f.tenant.tenant_id, Provider::Zoho, &claims.id_hex()),
        state::pkce_context(&f.tenant.tenant_id, Provider::Xero, &"0".repeat(64)),
    ] {
        assert!(f.deps.vault.unseal_bytes(&other, &sealed).await.is_err(), "{other:?}");
    }
    let query = f.consent(&authorize, &[]).await;
    let params = redirect_params(&f.callback(Provider::Xero, &query).await);
    assert_eq!(params["status"], "connected", "the sealed verifier is unsealed for the exchange");
    f.sandbox.shutdown().await;
}

/// A provider that stops answering mid-connect: the callback gives up at its own deadline (well
/// before Lambda's 29 s), removes the Zoho webhooks it had registered, revokes the new grant and
/// sends the user back with a retryable error, instead of being killed halfway.
#[tokio::test]
async fn a_callback_that_reaches_its_deadline_undoes_what_it_registered() {
    let mut f = fixture(Plan::Professional).await;
    f.deps.callback_budget = Duration::from_secs(3);
    f.shrink_zoho_minute().await;
    let authorize = f.start(Provider::Zoho).await;
    let query = f.consent(&authorize, &[]).await;
    // One webhook registration hangs (the sandbox holds it for 8 s, far past the 3 s budget).
    let cfg = serde_json::json!({"timeout_fault_seconds": 8});
    assert!(f.browser.post(format!("{}/_sandbox/config", f.sandbox.base_url)).json(&cfg).send().await.unwrap().status().is_success());
    let fault = serde_json::json!({"provider": "zoho", "method": "POST", "path_prefix": "/zoho/api/us/books/v3/settings/webhooks", "kind": "timeout", "count": 1});
    assert!(f.browser.post(format!("{}/_sandbox/faults", f.sandbox.base_url)).json(&fault).send().await.unwrap().status().is_success());

    let params = redirect_params(&f.callback(Provider::Zoho, &query).await);
    assert_eq!(
        (params["status"].as_str(), params["code"].as_str(), params["reason"].as_str(), params["retryable"].as_str()),
        ("error", "E5003", "deadline", "true"),
        "{params:?}"
    );
    f.assert_nothing_stored().await;
    assert_eq!(f.sandbox_calls("POST /zoho/accounts/{dc}/oauth/v2/token/revoke").await, 1, "the new grant is revoked");
    // Every registration that was answered in time is removed again (they ran concurrently, so all
    // but the hanging one were answered).
    let c: Value = f.browser.get(format!("{}/_sandbox/counters", f.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
    let count = |method: &str| -> u64 {
        c["calls"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(method) && k.contains("settings/webhooks"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    let registered = count("POST ");
    assert_eq!(
        registered as usize,
        zoho_webhooks::ENTITIES.len() * zoho_webhooks::EVENTS.len(),
        "one registration per entity and event, all started: {c}"
    );
    assert_eq!(count("DELETE "), registered - 1, "each answered registration is deleted: {c}");
    f.sandbox.shutdown().await;
}

/// The sync worker's side of a Zoho connection (issue 22): a worker over the fixture's
/// configuration, its own sync queues (the connect's initial sync lands there), and the webhook
/// receiver as deployed, so a test can play connect, pull, webhook and disconnect end to end.
struct ZohoWorld {
    sync: shared::worker::SyncDeps,
    receiver: shared::webhooks::Receiver,
    queues: shared::jobs::SyncQueues,
    sqs: aws_sdk_sqs::Client,
}

/// Enables bills for the fixture's tenant (before the connect, so its scopes and routing cover
/// them), points the connect's initial sync at queues of the test's own, and builds the worker and
/// the receiver.
async fn zoho_world(f: &mut Fixture) -> ZohoWorld {
    let mut tenant = f.tenant.clone();
    tenant.config.enabled_entities.push(shared::tenancy::Entity::Bill);
    f.tenant = f.deps.tenants.update(&tenant, Utc::now()).await.unwrap();
    let mut urls = Vec::new();
    for p in ["high", "normal", "low"] {
        urls.push(f.sqs.create_queue().queue_name(unique(&format!("zh-{p}"))).send().await.unwrap().queue_url.unwrap());
    }
    let queues = shared::jobs::SyncQueues { high: urls[0].clone(), normal: urls[1].clone(), low: urls[2].clone() };
    let mut config = f.deps.config.clone();
    config.queues.sync_high = queues.high.clone();
    config.queues.sync_normal = queues.normal.clone();
    config.queues.sync_low = queues.low.clone();
    let clients = integration_tests::clients().await;
    let events = shared::events::EventPublisher::new(f.sqs.clone(), config.queues.events.clone());
    f.deps.initial_sync = shared::initial_sync::InitialSync::new(
        f.db.clone(),
        config.tables.grants.clone(),
        shared::jobs::JobQueue::new(f.sqs.clone(), queues.clone()),
        events,
    );
    let tokens = shared::refresh::TokenService::new(&config, &clients, HttpClient::new(Duration::from_secs(5)).unwrap());
    let sync = shared::worker::SyncDeps::new(&config, &clients, tokens);
    let receiver = shared::webhooks::Receiver::new(
        shared::webhooks::KeySource::Secrets {
            cache: std::sync::Arc::new(shared::secrets::SecretsCache::new(clients.secrets.clone(), shared::secrets::DEFAULT_TTL)),
            secret_id: config.secrets.webhook_keys.clone(),
        },
        shared::store::grants::GrantStore::new(f.db.clone(), config.tables.grants.clone()),
        shared::tenancy::TenantStore::new(f.db.clone(), config.tables.tenants.clone()),
        shared::vault::Vault::from_config(clients.kms.clone(), &config),
        shared::webhooks::NonceStore::new(f.db.clone(), config.tables.ephemeral.clone()),
        shared::jobs::JobQueue::new(f.sqs.clone(), queues.clone()),
        262_144,
        shared::webhooks::nonce::DEFAULT_WINDOW,
        shared::webhooks::system_clock(),
    );
    ZohoWorld { sync, receiver, queues, sqs: f.sqs.clone() }
}

impl ZohoWorld {
    /// Every job on the world's sync queues (received and deleted).
    async fn jobs(&self) -> Vec<shared::jobs::SyncJob> {
        let mut out = Vec::new();
        for url in [&self.queues.high, &self.queues.normal, &self.queues.low] {
            loop {
                let got = self.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
                let msgs = got.messages.unwrap_or_default();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    out.push(shared::jobs::SyncJob::from_json(m.body.as_deref().unwrap()).unwrap());
                    self.sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
                }
            }
        }
        out
    }

    /// Runs one job as the worker does and expects it done.
    async fn run(&self, job: &shared::jobs::SyncJob) -> Value {
        match shared::worker::run_job(&self.sync, job, None, Utc::now() + chrono::Duration::seconds(120)).await {
            Ok(shared::worker::Outcome::Done(v)) => v,
            other => panic!("{:?} {:?}: {other:?}", job.operation, job.entity),
        }
    }
}

/// A pull the app asks for (as the scheduler's incremental pulls are: a job of its own lineage).
fn bill_pull(tenant: &str, org: &str) -> shared::jobs::SyncJob {
    integration_tests::jobs::app_job(
        tenant,
        Provider::Zoho,
        org,
        shared::jobs::Operation::Pull,
        shared::tenancy::Entity::Bill,
        shared::tenancy::Priority::Normal,
    )
}

/// The Zoho org's webhooks and workflow rules of `module` at the sandbox.
async fn zoho_module(f: &Fixture, api_domain: &str, tokens: &shared::TokenSet, org: &str, module: &str) -> (Vec<Value>, Vec<Value>) {
    let of = |v: Vec<Value>| v.into_iter().filter(|x| x["entity"] == module).collect::<Vec<_>>();
    (of(zoho_list(f, api_domain, tokens, "webhooks", org).await), of(zoho_list(f, api_domain, tokens, "workflows", org).await))
}

/// Issue 22: Zoho sends webhooks only through workflow rules registered per organisation, and the
/// callback has time for its four modules only. A tenant with bills enabled: the initial pull of
/// bills registers the bill module's three webhooks and rules (stored under the module beside the
/// callback's), a later pull does not register again, a bill made at Zoho reaches the receiver and
/// becomes a stored record, and a disconnect removes every registration, old and new.
#[tokio::test]
async fn zoho_bills_get_their_webhooks_from_the_first_pull_and_disconnect_removes_them_all() {
    let mut f = fixture(Plan::Professional).await;
    let w = zoho_world(&mut f).await;
    let (_, resp) = f.full_connect(Provider::Zoho, &[]).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");
    let t = f.tenant.tenant_id.clone();
    let conn = f.deps.grants.list_connections(&t).await.unwrap().remove(0);
    let org = conn.org_id.clone();
    let grant = f.deps.grants.get_grant(&t, Provider::Zoho, &params["grant_id"]).await.unwrap().unwrap();
    let tokens =
        f.deps.vault.unseal_tokens(&SealContext::new(&t, Provider::Zoho, &grant.grant_id), grant.sealed.as_ref().unwrap()).await.unwrap();
    let api_domain = tokens.api_domain.clone().unwrap();
    assert_eq!(zoho_module(&f, &api_domain, &tokens, &org, "bill").await.0.len(), 0, "the callback registers its four modules only");
    let callback_entries = zoho_webhooks::split_ids(conn.webhook_id.as_deref());

    // The connect's initial pull of bills.
    let initial = w.jobs().await;
    let bills = initial.iter().find(|j| j.entity == shared::tenancy::Entity::Bill && j.org_id == org).expect("an initial pull of bills");
    let posts = f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await;
    w.run(bills).await;
    let (hooks, rules) = zoho_module(&f, &api_domain, &tokens, &org, "bill").await;
    assert_eq!((hooks.len(), rules.len()), (3, 3), "{hooks:?} {rules:?}");
    let mut events: Vec<&str> = rules.iter().map(|r| r["event"].as_str().unwrap()).collect();
    events.sort_unstable();
    assert_eq!(events, ["on_create", "on_delete", "on_edit"]);
    let secret = f
        .deps
        .vault
        .unseal_bytes(&SealContext::new(&t, Provider::Zoho, format!("webhook:{org}")), conn.webhook_secret.as_ref().unwrap())
        .await
        .unwrap();
    for h in &hooks {
        assert_eq!(h["url"], zoho_webhooks::callback_url(&f.deps.config.public_base_url, &org).as_str());
        assert_eq!(h["headers"][0]["param_value"].as_str().unwrap().as_bytes(), &secret[..], "the org's secret, as the callback's");
    }
    let stored = f.deps.grants.get_connection(&t, Provider::Zoho, &org).await.unwrap().unwrap();
    let entries = zoho_webhooks::split_ids(stored.webhook_id.as_deref());
    assert_eq!(&entries[..callback_entries.len()], &callback_entries[..], "the callback's registrations stay");
    let added: Vec<&String> = entries[callback_entries.len()..].iter().collect();
    assert_eq!(added.len(), 3);
    assert!(added.iter().all(|e| zoho_webhooks::registration_module(e) == Some("bill")), "{added:?}");
    let audit: Vec<_> = f.deps.audit.list(&t).await.unwrap().into_iter().filter(|r| r.actor == "system:sync-worker").collect();
    let made = |op: &str| audit.iter().filter(|r| r.detail.as_deref().is_some_and(|d| d.starts_with(op))).count();
    assert_eq!((made("register_webhook POST"), made("register_workflow POST")), (3, 3), "{audit:?}");

    // A later pull finds the module registered: no registration call.
    let posts_after = f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await;
    assert_eq!(posts_after, posts + 3);
    w.run(&bill_pull(&t, &org)).await;
    assert_eq!(f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await, posts_after, "registered once");

    // A bill made at Zoho: its workflow rule fires the webhook, which is delivered to our receiver as
    // registered (its URL's query and headers, Zoho's body).
    let emit = json!({"provider": "zoho", "org_id": org, "entity": "bill", "operation": "create"});
    let out: Value =
        f.browser.post(format!("{}/_sandbox/webhooks/emit", f.sandbox.base_url)).json(&emit).send().await.unwrap().json().await.unwrap();
    let deliveries = out["deliveries"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(deliveries.len(), 1, "one rule fires for a created bill: {out}");
    let fired = hooks.iter().find(|h| h["url"] == deliveries[0]["url"]).expect("delivered to our registered URL");
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    for hd in fired["headers"].as_array().unwrap() {
        let name: http::HeaderName = hd["param_name"].as_str().unwrap().parse().unwrap();
        headers.insert(name, hd["param_value"].as_str().unwrap().parse().unwrap());
    }
    let url = Url::parse(deliveries[0]["url"].as_str().unwrap()).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let payload = deliveries[0]["payload"].as_str().unwrap();
    let inbound = shared::webhooks::Inbound {
        method: "POST",
        provider: "zoho",
        headers: &headers,
        query: &query,
        body: payload.as_bytes(),
        correlation_id: "corr-zoho-bill",
    };
    let reply = w.receiver.receive(inbound).await;
    assert_eq!(reply.status(), 200);
    let jobs = w.jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0].entity, jobs[0].operation), (shared::tenancy::Entity::Bill, shared::jobs::Operation::Webhook));
    let bill_id = jobs[0].entity_id.clone().expect("the bill's id");
    w.run(&jobs[0]).await;
    let record = w
        .sync
        .store
        .get_record(&t, Provider::Zoho, &org, shared::providers::model::Entity::Bill, &bill_id)
        .await
        .unwrap()
        .expect("the new bill is stored");
    assert!(!record.deleted);

    // Disconnect removes every registration: the callback's and the worker's.
    let path = "/disconnect/zoho";
    let q = f.signed("POST", path, &[("tenant", &t), ("user", OWNER), ("grant_id", &grant.grant_id)], Utc::now().timestamp());
    let resp = oauth_callback::handle(&f.deps, request("POST", path, &q, "zoho")).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", body(&resp));
    let c: Value = f.browser.get(format!("{}/_sandbox/counters", f.sandbox.base_url)).send().await.unwrap().json().await.unwrap();
    let count = |key: &str| c["calls"][key].as_u64().unwrap_or(0);
    assert_eq!(count("DELETE /zoho/api/{dc}/books/v3/settings/webhooks/{id}"), entries.len() as u64, "{c}");
    assert_eq!(count("DELETE /zoho/api/{dc}/books/v3/settings/workflows/{id}"), entries.len() as u64, "{c}");
    // The revoked token lists nothing any more; what the org still holds shows in what it fires:
    // no rule is left on any module, the callback's or the worker's.
    for module in zoho_webhooks::ENTITIES.iter().chain(["bill"].iter()) {
        let emit = json!({"provider": "zoho", "org_id": org, "entity": module, "operation": "create"});
        let r = f.browser.post(format!("{}/_sandbox/webhooks/emit", f.sandbox.base_url)).json(&emit).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 404, "{module}: a workflow rule still fires: {text}");
        assert!(text.contains("no Zoho workflow rule fires"), "{module}: {text}");
    }
    f.sandbox.shutdown().await;
}

/// A grant without the settings scope sends nothing and a registration Zoho refuses is audited;
/// either way the pull is done, and a later pull registers.
#[tokio::test]
async fn a_refused_zoho_registration_leaves_the_pull_done_and_a_later_pull_registers() {
    let mut f = fixture(Plan::Professional).await;
    let w = zoho_world(&mut f).await;
    let (_, resp) = f.full_connect(Provider::Zoho, &[]).await;
    let params = redirect_params(&resp);
    assert_eq!(params["status"], "connected", "{params:?}");
    let t = f.tenant.tenant_id.clone();
    let org = f.deps.grants.list_connections(&t).await.unwrap().remove(0).org_id;
    let grant = f.deps.grants.get_grant(&t, Provider::Zoho, &params["grant_id"]).await.unwrap().unwrap();
    let tokens =
        f.deps.vault.unseal_tokens(&SealContext::new(&t, Provider::Zoho, &grant.grant_id), grant.sealed.as_ref().unwrap()).await.unwrap();
    let api_domain = tokens.api_domain.clone().unwrap();
    let conn = f.deps.grants.get_connection(&t, Provider::Zoho, &org).await.unwrap().unwrap();
    let before = conn.webhook_id.clone();
    let _ = w.jobs().await;

    // A grant without ZohoBooks.settings.CREATE: nothing is sent, the pull is done all the same.
    assert!(grant.scopes.iter().any(|s| s == "ZohoBooks.settings.CREATE"), "{:?}", grant.scopes);
    let mut narrow = grant.clone();
    narrow.scopes.retain(|s| !s.starts_with("ZohoBooks.settings."));
    f.deps.grants.put_grant(&narrow, std::slice::from_ref(&conn)).await.unwrap();
    let posts = f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await;
    let done = w.run(&bill_pull(&t, &org)).await;
    assert_eq!(done["operation"], "pull", "{done}");
    assert_eq!(f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await, posts, "nothing sent without the scope");
    f.deps.grants.put_grant(&grant, std::slice::from_ref(&conn)).await.unwrap();

    // Zoho refuses the module's first webhook: nothing is registered, nothing stored.
    let fault =
        json!({"provider": "zoho", "method": "POST", "path_prefix": "/zoho/api/us/books/v3/settings/webhooks", "kind": "500", "count": 1});
    let posts = f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await;
    assert!(f.browser.post(format!("{}/_sandbox/faults", f.sandbox.base_url)).json(&fault).send().await.unwrap().status().is_success());
    let done = w.run(&bill_pull(&t, &org)).await;
    assert_eq!(done["operation"], "pull", "{done}");
    assert_eq!(
        f.sandbox_calls("POST /zoho/api/{dc}/books/v3/settings/webhooks").await,
        posts + 1,
        "the refused call is not retried in place"
    );
    let (hooks, rules) = zoho_module(&f, &api_domain, &tokens, &org, "bill").await;
    assert_eq!((hooks.len(), rules.len()), (0, 0), "nothing is left half-registered: {hooks:?} {rules:?}");
    assert_eq!(f.deps.grants.get_connection(&t, Provider::Zoho, &org).await.unwrap().unwrap().webhook_id, before);
    let audit = f.deps.audit.list(&t).await.unwrap();
    assert!(
        audit.iter().any(|r| r.actor == "system:sync-worker"
            && r.detail.as_deref().is_some_and(|d| d.starts_with("register_webhook POST") && !d.contains("-> 201"))),
        "the refused call is audited: {audit:?}"
    );

    // The next pull registers.
    w.run(&bill_pull(&t, &org)).await;
    let (hooks, rules) = zoho_module(&f, &api_domain, &tokens, &org, "bill").await;
    assert_eq!((hooks.len(), rules.len()), (3, 3), "{hooks:?} {rules:?}");
    let after = f.deps.grants.get_connection(&t, Provider::Zoho, &org).await.unwrap().unwrap();
    let added = zoho_webhooks::split_ids(after.webhook_id.as_deref())
        .into_iter()
        .filter(|e| zoho_webhooks::registration_module(e) == Some("bill"))
        .count();
    assert_eq!(added, 3);
    f.sandbox.shutdown().await;
}
