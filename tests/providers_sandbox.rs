//! The provider clients against the in-process provider sandbox: every operation per provider,
//! paging, token rotation, error mapping and timeouts. Each test runs its own sandbox on a random
//! port, so tests share no state and can run in parallel.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{json, Value};
use shared::http_client::HttpClient;
use shared::providers::{
    new_pkce, AccountingProvider, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Endpoints, Entity, Grant, ProviderClient,
};
use shared::{ErrorCode, Provider, SecretString, TokenSet};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

struct Env {
    sb: sandbox::RunningSandbox,
    base: Url,
    control: reqwest::Client,
}

impl Env {
    async fn start() -> Env {
        Self::with(sandbox::Settings::default()).await
    }

    async fn with(settings: sandbox::Settings) -> Env {
        // The test's own reqwest client is built before any of ours.
        shared::http_client::install_crypto_provider();
        let sb = sandbox::spawn(sandbox::SandboxConfig { settings, ..Default::default() }).await.expect("sandbox starts");
        let base = Url::parse(&sb.base_url).unwrap();
        let control = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Env { sb, base, control }
    }

    fn credentials(provider: Provider) -> ClientCredentials {
        let (id, secret) = match provider {
            Provider::QuickBooks => ("sandbox-qbo-client", "sandbox-qbo-secret"),
            Provider::Xero => ("sandbox-xero-client", "sandbox-xero-secret"),
            Provider::Zoho => ("sandbox-zoho-client", "sandbox-zoho-secret"),
        };
        ClientCredentials { client_id: id.into(), client_secret: SecretString::new(secret) }
    }

    fn client_with(&self, provider: Provider, credentials: ClientCredentials, timeout: Duration) -> ProviderClient {
        ProviderClient::new(provider, Endpoints::sandbox(provider, &self.base), credentials, HttpClient::new(timeout).unwrap())
    }

    fn client(&self, provider: Provider) -> ProviderClient {
        self.client_with(provider, Self::credentials(provider), Duration::from_secs(10))
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self.control.post(format!("{}/_sandbox/{path}", self.sb.base_url)).json(&body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "control {path} {body}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn counters(&self) -> Value {
        self.control.get(format!("{}/_sandbox/counters", self.sb.base_url)).send().await.unwrap().json().await.unwrap()
    }

    async fn fault(&self, provider: Provider, path_prefix: &str, kind: &str, retry_after: Option<u64>) {
        let mut body = json!({"provider": provider.as_str(), "path_prefix": path_prefix, "kind": kind, "count": 1});
        if let Some(r) = retry_after {
            body["retry_after"] = json!(r);
        }
        self.control("faults", body).await;
    }

    /// The whole consent: authorize URL, the sandbox's redirect, the code exchange.
    async fn connect(&self, client: &ProviderClient, extra: &[(&str, &str)]) -> (Grant, CallbackParams) {
        let (callback, code, verifier) = self.authorize(client, extra).await;
        let grant =
            client.exchange_code(&code, &Url::parse(REDIRECT).unwrap(), verifier.as_deref(), &callback).await.expect("code exchange");
        (grant, callback)
    }

    /// Follows the authorize URL to the redirect and returns the callback's parameters.
    async fn authorize(&self, client: &ProviderClient, extra: &[(&str, &str)]) -> (CallbackParams, String, Option<String>) {
        let (challenge, verifier) = new_pkce();
        let redirect = Url::parse(REDIRECT).unwrap();
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let state = format!("st-{}", uuid::Uuid::new_v4());
        let req = AuthorizeRequest { state: &state, redirect_uri: &redirect, scopes: &[], pkce_challenge: Some(&challenge), extra: &extra };
        let url = client.authorize_url(&req).unwrap();
        let resp = self.control.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "authorize {url}: {}", resp.text().await.unwrap_or_default());
        let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT), "{location}");
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(q.get("state"), Some(&state), "state comes back unchanged");
        let code = q.get("code").unwrap_or_else(|| panic!("no code in {location}")).clone();
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let callback = CallbackParams::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let verifier = client.supports_pkce().then(|| verifier.secret().to_string());
        (callback, code, verifier)
    }
}

fn org_of(provider: Provider) -> &'static str {
    match provider {
        Provider::QuickBooks => sandbox::state::QBO_DEFAULT_REALM,
        Provider::Xero => sandbox::state::XERO_TENANT_1,
        Provider::Zoho => sandbox::state::ZOHO_ORG_US,
    }
}

fn new_contact(provider: Provider, name: &str) -> Value {
    match provider {
        Provider::QuickBooks => json!({"DisplayName": name}),
        Provider::Xero => json!({"Name": name}),
        Provider::Zoho => json!({"contact_name": name}),
    }
}

fn assert_code(err: &shared::Error, code: ErrorCode, retryable: bool) {
    assert_eq!(err.code(), code, "{err:?}");
    assert_eq!(err.is_retryable(), retryable, "{err:?}");
}

/// Reads every page of a pass; returns the records' ids and the cursor for the next pass.
async fn read_pass(client: &ProviderClient, tokens: &TokenSet, org: &str, start: Cursor) -> (Vec<String>, Cursor, usize) {
    let mut cursor = start;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.list(tokens, org, &cursor).await.expect("list");
        pages += 1;
        ids.extend(page.records.iter().map(|r| r.id.clone()));
        cursor = page.next_cursor;
        if !page.has_more {
            return (ids, cursor, pages);
        }
        assert!(pages < 100, "paging does not end");
    }
}

async fn every_operation(provider: Provider) {
    let env = Env::start().await;
    let client = env.client(provider);
    let (grant, callback) = env.connect(&client, &[]).await;
    let tokens = grant.tokens;
    assert!(tokens.refresh_token.is_some(), "{provider}: a refresh token");
    assert!(tokens.access_expires_at > chrono::Utc::now());

    // Organisations.
    let orgs = client.discover_orgs(&tokens, &callback).await.expect("discover orgs");
    let org = org_of(provider);
    assert!(orgs.iter().any(|o| o.id == org), "{provider}: {orgs:?}");
    assert!(orgs.iter().all(|o| o.name.is_some()), "{provider}: orgs are named: {orgs:?}");

    // List and get each entity (the sandbox seeds no bills, credits, payments made, journals or expenses by default: a few are seeded here).
    let sandbox = match provider {
        Provider::QuickBooks => "quickbooks",
        Provider::Xero => "xero",
        Provider::Zoho => "zoho",
    };
    for (entity, count) in
        [("bill", 3), ("credit_note", 2), ("vendor_credit", 2), ("bill_payment", 2), ("journal", 2), ("purchase_order", 2), ("expense", 2)]
    {
        env.control("seed", json!({"provider": sandbox, "org_id": org, "entity": entity, "count": count})).await;
    }
    for entity in Entity::ALL {
        let page =
            client.list(&tokens, org, &Cursor::start(provider, entity)).await.unwrap_or_else(|e| panic!("{provider} list {entity}: {e}"));
        assert!(!page.records.is_empty(), "{provider}/{entity}: the sandbox seeds records");
        let first = &page.records[0];
        assert_eq!((first.provider, first.entity, first.org_id.as_str()), (provider, entity, org));
        if entity == Entity::Company {
            // One record, read whole by every list (Xero's Organisation has no updated time and no
            // read by id).
            assert_eq!(page.records.len(), 1, "{provider}: the org's own company only");
            continue;
        }
        // Xero's and Zoho's tax rates and tracking categories carry no updated time (they are read
        // whole each time).
        let timed = !(matches!(entity, Entity::TaxRate | Entity::TrackingCategory) && provider != Provider::QuickBooks);
        assert_eq!(first.updated_at.is_some(), timed, "{provider}/{entity}: updated_at from {}", first.raw);
        let one = client.get(&tokens, org, entity, &first.id).await.unwrap_or_else(|e| panic!("{provider} get {entity}: {e}"));
        assert_eq!(one.id, first.id);
    }
    if provider == Provider::Xero {
        let page = client.list(&tokens, org, &Cursor::start(provider, Entity::Invoice)).await.unwrap();
        assert!(page.rate_limit.minute_remaining.is_some() && page.rate_limit.day_remaining.is_some(), "{:?}", page.rate_limit);
    }

    // Create, and create again with the same key.
    let name = format!("Client Test {}", uuid::Uuid::new_v4().simple());
    let key = uuid::Uuid::new_v4().to_string();
    let created = client.create(&tokens, org, Entity::Contact, &new_contact(provider, &name), &key).await.expect("create");
    assert_eq!(created.name.as_deref(), Some(name.as_str()));
    let fetched = client.get(&tokens, org, Entity::Contact, &created.id).await.unwrap();
    assert_eq!(fetched.name.as_deref(), Some(name.as_str()));
    match provider {
        Provider::QuickBooks | Provider::Xero => {
            let again = client.create(&tokens, org, Entity::Contact, &new_contact(provider, &name), &key).await.expect("idempotent replay");
            assert_eq!(again.id, created.id, "{provider}: the same key gives the same record");
        }
        // Zoho has no idempotency key: a second create with the same name is a duplicate error.
        Provider::Zoho => {
            let err = client.create(&tokens, org, Entity::Contact, &new_contact(provider, &name), &key).await.unwrap_err();
            assert_code(&err, ErrorCode::ProviderPermanent, false);
        }
    }

    // Refresh: a new access token that works.
    let refreshed = client.refresh(&tokens).await.expect("refresh");
    assert_ne!(refreshed.access_token.expose(), tokens.access_token.expose());
    match provider {
        Provider::Zoho => assert_eq!(refreshed.refresh_token, tokens.refresh_token, "Zoho does not rotate"),
        _ => assert_ne!(refreshed.refresh_token, tokens.refresh_token, "{provider} rotates"),
    }
    assert_eq!(refreshed.api_domain, tokens.api_domain);
    client.list(&refreshed, org, &Cursor::start(provider, Entity::Contact)).await.expect("list with the refreshed token");

    // Revoke: the grant is dead afterwards, and revoking again still succeeds.
    client.revoke(&refreshed).await.expect("revoke");
    let err = client.refresh(&refreshed).await.unwrap_err();
    assert_code(&err, ErrorCode::InvalidGrant, false);
    client.revoke(&refreshed).await.expect("revoking a dead grant succeeds");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_every_operation() {
    every_operation(Provider::QuickBooks).await;
}

#[tokio::test]
async fn xero_every_operation() {
    every_operation(Provider::Xero).await;
}

#[tokio::test]
async fn zoho_every_operation() {
    every_operation(Provider::Zoho).await;
}

/// Seeds enough records for three pages and more, reads them all once, then reads incrementally.
async fn pagination(provider: Provider, entity: Entity) {
    let env = Env::start().await;
    let client = env.client(provider);
    let (grant, _) = env.connect(&client, &[]).await;
    let tokens = grant.tokens;
    let org = org_of(provider);
    // A second after the org's own records, so the first page spans two listed seconds and its
    // first record sits exactly on the next page's filter time (read twice, once, in CI).
    env.control("clock", json!({"advance_seconds": 1})).await;
    env.control("seed", json!({"provider": provider.as_str(), "org_id": org, "entity": entity.as_str(), "count": 25})).await;
    // Let the clock move on so the seeded records are clearly older than the pass.
    env.control("clock", json!({"advance_seconds": 600})).await;

    let (ids, next, pages) = read_pass(&client, &tokens, org, Cursor::start(provider, entity).with_page_size(10)).await;
    assert!(ids.len() >= 25, "{provider}: {} records", ids.len());
    assert!(pages >= 3, "{provider}: {pages} pages");
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{provider}: no record twice in one pass");
    assert!(next.modified_since.is_some() && next.position == 1, "{provider}: the next pass is incremental: {next:?}");

    // The cursor survives storage, and the next pass finds a record made after the first.
    let stored: Cursor = serde_json::from_str(&serde_json::to_string(&next).unwrap()).unwrap();
    env.control("clock", json!({"advance_seconds": 600})).await;
    let name = format!("Late {}", uuid::Uuid::new_v4().simple());
    let created =
        client.create(&tokens, org, Entity::Contact, &new_contact(provider, &name), &uuid::Uuid::new_v4().to_string()).await.unwrap();
    let (later_ids, _, _) = read_pass(&client, &tokens, org, Cursor { entity: Entity::Contact, ..stored.clone() }).await;
    assert!(later_ids.contains(&created.id), "{provider}: the new record is in the next pass");
    // Zoho reports no server time in its body and the sandbox's Date header is the real clock, so
    // the seeded records fall inside Zoho's watermark overlap; the others exclude them.
    if provider != Provider::Zoho {
        assert!(later_ids.len() < ids.len(), "{provider}: the incremental pass skips old records ({} vs {})", later_ids.len(), ids.len());
    }
    env.sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_pages_through_three_pages_and_resumes_incrementally() {
    pagination(Provider::QuickBooks, Entity::Contact).await;
}

#[tokio::test]
async fn xero_pages_through_three_pages_and_resumes_incrementally() {
    pagination(Provider::Xero, Entity::Contact).await;
}

#[tokio::test]
async fn zoho_pages_through_three_pages_and_resumes_incrementally() {
    pagination(Provider::Zoho, Entity::Contact).await;
}

#[tokio::test]
async fn zoho_modified_since_filter_reaches_the_api() {
    let env = Env::start().await;
    let client = env.client(Provider::Zoho);
    let (grant, _) = env.connect(&client, &[]).await;
    let org = org_of(Provider::Zoho);
    env.control("clock", json!({"advance_seconds": 7200})).await;
    // Two hours on, the access token has expired: the API says so, and a refresh fixes it.
    let expired = client.list(&grant.tokens, org, &Cursor::start(Provider::Zoho, Entity::Contact)).await.unwrap_err();
    assert_code(&expired, ErrorCode::ProviderAuthFailed, false);
    let tokens = client.refresh(&grant.tokens).await.unwrap();
    let name = format!("Fresh {}", uuid::Uuid::new_v4().simple());
    let created = client.create(&tokens, org, Entity::Contact, &new_contact(Provider::Zoho, &name), "k").await.unwrap();
    let since = chrono::Utc::now() + chrono::Duration::seconds(3600);
    let page = client.list(&tokens, org, &Cursor::since(Provider::Zoho, Entity::Contact, since)).await.unwrap();
    let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![created.id.as_str()]);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn xero_rotation_keeps_the_old_refresh_token_for_the_grace_period_only() {
    let mut settings = sandbox::Settings::default();
    settings.xero.refresh_grace = 120;
    let env = Env::with(settings).await;
    let client = env.client(Provider::Xero);
    let (grant, _) = env.connect(&client, &[]).await;
    let first = grant.tokens;

    let second = client.refresh(&first).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    // A lost answer can be fetched again with the old token while the grace period lasts.
    let replay = client.refresh(&first).await.expect("old refresh token inside the grace period");
    assert_eq!(replay.refresh_token, second.refresh_token);

    env.control("clock", json!({"advance_seconds": 121})).await;
    let err = client.refresh(&first).await.unwrap_err();
    assert_code(&err, ErrorCode::InvalidGrant, false);
    assert!(matches!(err, shared::Error::InvalidGrant { provider: Provider::Xero, .. }));
    // The current token is unaffected.
    let third = client.refresh(&second).await.expect("the rotated token still works");
    assert_ne!(third.refresh_token, second.refresh_token);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_rotated_refresh_token_is_single_use() {
    let env = Env::start().await;
    let client = env.client(Provider::QuickBooks);
    let (grant, _) = env.connect(&client, &[]).await;
    let second = client.refresh(&grant.tokens).await.unwrap();
    assert!(second.refresh_expires_at.is_some(), "x_refresh_token_expires_in is read");
    assert_code(&client.refresh(&grant.tokens).await.unwrap_err(), ErrorCode::InvalidGrant, false);
    client.refresh(&second).await.expect("the newest token works");
    env.sb.shutdown().await;
}

/// QuickBooks' 5-year cap, end to end: the client opts in, the sandbox reports the hard expiry, the
/// rolling expiry never passes it, and past it the grant is dead (invalid_grant, not a retry).
#[tokio::test]
async fn quickbooks_hard_refresh_expiry_is_reported_and_enforced() {
    let env = Env::start().await;
    env.control("config", json!({"quickbooks_refresh_hard_ttl": 7200})).await;
    let client = env.client(Provider::QuickBooks);
    let before = chrono::Utc::now();
    let (grant, _) = env.connect(&client, &[]).await;
    let hard = grant.tokens.refresh_hard_expires_at.expect("x_refresh_token_hard_expires_in is read");
    let secs = (hard - before).num_seconds();
    assert!((7100..=7205).contains(&secs), "hard expiry {secs}s from now");
    assert!(grant.tokens.refresh_expires_at.unwrap() <= hard, "the rolling expiry is capped by the hard one");
    let next = client.refresh(&grant.tokens).await.unwrap();
    assert_eq!(next.refresh_hard_expires_at.map(|t| (t - hard).num_seconds().abs() <= 2), Some(true), "the same cap on every refresh");
    env.control("clock", json!({"advance_seconds": 7201})).await;
    assert_code(&client.refresh(&next).await.unwrap_err(), ErrorCode::InvalidGrant, false);
    env.sb.shutdown().await;
}

/// Zoho's token endpoint answers every error with HTTP 200; only a dead code or refresh token kills
/// the grant, our credentials are ProviderAuth, the throttle a rate limit, anything unknown transient.
#[tokio::test]
async fn zoho_token_errors_are_classified_from_the_docs() {
    let env = Env::start().await;
    let client = env.client(Provider::Zoho);
    let (grant, _) = env.connect(&client, &[]).await;
    let tokens = grant.tokens;
    for (error, code, retryable) in [
        ("invalid_code", ErrorCode::InvalidGrant, false),
        ("invalid_client", ErrorCode::ProviderAuthFailed, false),
        ("invalid_client_secret", ErrorCode::ProviderAuthFailed, false),
        ("invalid_redirect_uri", ErrorCode::ProviderPermanent, false),
        ("Access Denied", ErrorCode::ProviderRateLimited, true),
        ("general_error", ErrorCode::ProviderTransient, true),
        ("something_new", ErrorCode::ProviderTransient, true),
    ] {
        env.control(
            "faults",
            json!({"provider": "zoho", "path_prefix": token_prefix(Provider::Zoho), "kind": "token_error", "error": error}),
        )
        .await;
        let err = client.refresh(&tokens).await.unwrap_err();
        assert_eq!((err.code(), err.is_retryable()), (code, retryable), "{error}: {err}");
    }
    client.refresh(&tokens).await.expect("the grant survived every answer");
    env.sb.shutdown().await;
}

/// Zoho's per-plan daily budget, per organisation: spent, the API answers 429 and the client
/// reports a day-long limit; the next (UTC) day it works again.
#[tokio::test]
async fn zoho_daily_api_limit_follows_the_orgs_plan() {
    let env = Env::start().await;
    env.control("config", json!({"zoho_daily_limit_by_plan": {"free": 3}, "zoho_org_plans": {"700000001": "free"}})).await;
    let client = env.client(Provider::Zoho);
    let (grant, _) = env.connect(&client, &[]).await;
    let org = org_of(Provider::Zoho);
    let start = Cursor::start(Provider::Zoho, Entity::Contact);
    for _ in 0..3 {
        client.list(&grant.tokens, org, &start).await.expect("within the day's budget");
    }
    let err = client.list(&grant.tokens, org, &start).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ProviderRateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.to_string().contains("(day)"), "{err}");
    // An unknown plan is refused by the control API rather than silently unlimited.
    let bad = env
        .control
        .post(format!("{}/_sandbox/config", env.sb.base_url))
        .json(&json!({"zoho_org_plans": {"1": "gold"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    env.control("clock", json!({"advance_seconds": 86_400})).await;
    let fresh = client.refresh(&grant.tokens).await.unwrap();
    client.list(&fresh, org, &start).await.expect("a new day, a new budget");
    env.sb.shutdown().await;
}

/// Path prefixes of each provider's API (not its token endpoint), for fault injection.
fn api_prefix(provider: Provider) -> &'static str {
    match provider {
        Provider::QuickBooks => "/quickbooks/v3/",
        Provider::Xero => "/xero/api.xro/",
        Provider::Zoho => "/zoho/api/",
    }
}

fn token_prefix(provider: Provider) -> &'static str {
    match provider {
        Provider::QuickBooks => "/quickbooks/oauth2/v1/tokens/bearer",
        Provider::Xero => "/xero/identity/connect/token",
        Provider::Zoho => "/zoho/accounts/",
    }
}

async fn error_families(provider: Provider) {
    let env = Env::start().await;
    let client = env.client(provider);
    let (grant, _) = env.connect(&client, &[]).await;
    let tokens = grant.tokens;
    let org = org_of(provider);
    let start = Cursor::start(provider, Entity::Invoice);
    let list = || client.list(&tokens, org, &start);

    env.fault(provider, api_prefix(provider), "500", None).await;
    assert_code(&list().await.unwrap_err(), ErrorCode::ProviderTransient, true);

    env.fault(provider, api_prefix(provider), "429", Some(7)).await;
    let err = list().await.unwrap_err();
    assert_code(&err, ErrorCode::ProviderRateLimited, true);
    let expected_wait = match provider {
        Provider::Xero => Duration::from_secs(7),
        // Neither sends Retry-After; we suggest their documented window.
        _ => Duration::from_secs(60),
    };
    assert_eq!(err.retry_after(), Some(expected_wait), "{provider}");

    env.fault(provider, api_prefix(provider), "malformed", None).await;
    assert_code(&list().await.unwrap_err(), ErrorCode::ProviderMalformed, false);

    // An access token the provider rejects.
    env.fault(provider, api_prefix(provider), "invalid_grant", None).await;
    assert_code(&list().await.unwrap_err(), ErrorCode::ProviderAuthFailed, false);

    // Not found, and a request the provider refuses.
    assert_code(&client.get(&tokens, org, Entity::Invoice, "999999999").await.unwrap_err(), ErrorCode::NotFound, false);
    assert_code(
        &client.create(&tokens, org, Entity::Contact, &json!({}), "k-empty").await.unwrap_err(),
        ErrorCode::ProviderPermanent,
        false,
    );

    // The token endpoint: throttled and failing are retryable, a dead grant or bad client is not.
    env.fault(provider, token_prefix(provider), "500", None).await;
    assert_code(&client.refresh(&tokens).await.unwrap_err(), ErrorCode::ProviderTransient, true);
    env.fault(provider, token_prefix(provider), "429", Some(3)).await;
    assert_code(&client.refresh(&tokens).await.unwrap_err(), ErrorCode::ProviderRateLimited, true);
    env.fault(provider, token_prefix(provider), "malformed", None).await;
    let err = client.refresh(&tokens).await.unwrap_err();
    assert_code(&err, ErrorCode::ProviderMalformed, false);
    assert!(!format!("{err} {err:?}").contains("eyJhbGciOi"), "a partial token body is not quoted: {err}");
    env.fault(provider, token_prefix(provider), "invalid_grant", None).await;
    assert_code(&client.refresh(&tokens).await.unwrap_err(), ErrorCode::InvalidGrant, false);

    let wrong = ClientCredentials { client_secret: SecretString::new("wrong-secret"), ..Env::credentials(provider) };
    let bad_client = env.client_with(provider, wrong, Duration::from_secs(10));
    let err = bad_client.refresh(&tokens).await.unwrap_err();
    assert_code(&err, ErrorCode::ProviderAuthFailed, false);
    assert!(!format!("{err} {err:?}").contains("wrong-secret"));

    // None of the faults cost the grant: the unfaulted refresh still works.
    client.refresh(&tokens).await.expect("refresh after the faults");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_error_families_map_to_codes() {
    error_families(Provider::QuickBooks).await;
}

#[tokio::test]
async fn xero_error_families_map_to_codes() {
    error_families(Provider::Xero).await;
}

#[tokio::test]
async fn zoho_error_families_map_to_codes() {
    error_families(Provider::Zoho).await;
}

/// Each of QuickBooks' error shapes, as the sandbox sends them, lands in the right family; above all
/// a throttle (JSON SERVICE fault, XML even though JSON was asked for, XML with 403) never sends a
/// grant to re-authorisation.
#[tokio::test]
async fn quickbooks_error_shapes_as_intuit_sends_them() {
    let env = Env::start().await;
    let client = env.client(Provider::QuickBooks);
    let (grant, _) = env.connect(&client, &[]).await;
    let tokens = grant.tokens;
    let org = org_of(Provider::QuickBooks);
    let start = Cursor::start(Provider::QuickBooks, Entity::Invoice);
    for kind in ["qbo_throttle_service", "qbo_throttle_xml", "qbo_throttle_403"] {
        env.fault(Provider::QuickBooks, "/v3/", kind, None).await;
        let err = client.list(&tokens, org, &start).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ProviderRateLimited, "{kind}: {err}");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{kind}");
    }
    env.fault(Provider::QuickBooks, "/v3/", "qbo_auth", None).await;
    assert_code(&client.list(&tokens, org, &start).await.unwrap_err(), ErrorCode::ProviderAuthFailed, false);
    // The client's pages never exceed QuickBooks' MAXRESULTS maximum, which the sandbox refuses.
    let big = Cursor::start(Provider::QuickBooks, Entity::Invoice).with_page_size(5000);
    assert_eq!(big.page_size, 1000);
    client.list(&tokens, org, &big).await.expect("a 1000-row page is allowed");
    let mut forged = Cursor::start(Provider::QuickBooks, Entity::Invoice);
    forged.page_size = 1001;
    assert_eq!(client.list(&tokens, org, &forged).await.unwrap_err().code(), ErrorCode::InvalidInput);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_timeout_is_a_retryable_error_within_the_configured_time() {
    let settings = sandbox::Settings { timeout_fault_seconds: 8, ..Default::default() };
    let env = Env::with(settings).await;
    for provider in Provider::ALL {
        let setup = env.client(provider);
        let (grant, _) = env.connect(&setup, &[]).await;
        let client = env.client_with(provider, Env::credentials(provider), Duration::from_secs(1));

        env.fault(provider, api_prefix(provider), "timeout", None).await;
        let started = Instant::now();
        let err = client.list(&grant.tokens, org_of(provider), &Cursor::start(provider, Entity::Contact)).await.unwrap_err();
        let took = started.elapsed();
        assert_code(&err, ErrorCode::ProviderTimeout, true);
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "{provider}: took {took:?}");

        env.fault(provider, token_prefix(provider), "timeout", None).await;
        let started = Instant::now();
        let err = client.refresh(&grant.tokens).await.unwrap_err();
        assert_code(&err, ErrorCode::ProviderTimeout, true);
        assert!(started.elapsed() < Duration::from_secs(3), "{provider}: refresh took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn xero_discovers_only_the_tenants_of_this_consent() {
    let env = Env::start().await;
    let client = env.client(Provider::Xero);
    let (a, cb) = env.connect(&client, &[("sandbox_tenants", sandbox::state::XERO_TENANT_1)]).await;
    let (b, _) = env.connect(&client, &[("sandbox_tenants", sandbox::state::XERO_TENANT_2)]).await;
    let orgs_a = client.discover_orgs(&a.tokens, &cb).await.unwrap();
    let orgs_b = client.discover_orgs(&b.tokens, &cb).await.unwrap();
    assert_eq!(orgs_a.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec![sandbox::state::XERO_TENANT_1]);
    assert_eq!(orgs_b.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec![sandbox::state::XERO_TENANT_2]);
    assert!(orgs_a[0].connection_id.is_some() && orgs_a[0].kind.as_deref() == Some("ORGANISATION"));
    // A tenant the token does not reach is refused by Xero, as auth.
    let err = client.list(&a.tokens, sandbox::state::XERO_TENANT_2, &Cursor::start(Provider::Xero, Entity::Invoice)).await.unwrap_err();
    assert_code(&err, ErrorCode::ProviderAuthFailed, false);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn zoho_grant_follows_the_users_data_centre() {
    let env = Env::start().await;
    let client = env.client(Provider::Zoho);
    let (grant, callback) = env.connect(&client, &[("sandbox_dc", "eu")]).await;
    let base = env.sb.base_url.trim_end_matches('/');
    assert_eq!(grant.tokens.accounts_server.as_deref(), Some(format!("{base}/zoho/accounts/eu").as_str()));
    assert_eq!(grant.tokens.api_domain.as_deref(), Some(format!("{base}/zoho/api/eu").as_str()));
    let orgs = client.discover_orgs(&grant.tokens, &callback).await.unwrap();
    assert!(orgs.iter().any(|o| o.id == sandbox::state::ZOHO_ORG_EU), "{orgs:?}");
    assert!(orgs.iter().all(|o| o.region.as_deref() == Some("eu")));
    let refreshed = client.refresh(&grant.tokens).await.expect("refresh at the EU accounts server");
    client.list(&refreshed, sandbox::state::ZOHO_ORG_EU, &Cursor::start(Provider::Zoho, Entity::Invoice)).await.unwrap();
    env.sb.shutdown().await;
}

/// A user in Zoho's UAE data centre connects, refreshes and reads like any other.
#[tokio::test]
async fn zoho_uae_data_centre_is_on_the_allow_list() {
    let env = Env::start().await;
    env.control("seed", json!({"provider": "zoho", "org_id": "800000001", "name": "Dubai Books LLC", "dc": "ae"})).await;
    let client = env.client(Provider::Zoho);
    let (grant, callback) = env.connect(&client, &[("sandbox_dc", "ae")]).await;
    let base = env.sb.base_url.trim_end_matches('/');
    assert_eq!(grant.tokens.api_domain.as_deref(), Some(format!("{base}/zoho/api/ae").as_str()));
    let orgs = client.discover_orgs(&grant.tokens, &callback).await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), vec!["800000001"]);
    let refreshed = client.refresh(&grant.tokens).await.expect("refresh at the UAE accounts server");
    client.list(&refreshed, "800000001", &Cursor::start(Provider::Zoho, Entity::Contact)).await.unwrap();
    env.sb.shutdown().await;
}

#[tokio::test]
async fn zoho_forged_accounts_server_is_refused_before_any_request() {
    let env = Env::start().await;
    let client = env.client(Provider::Zoho);
    let (mut callback, code, verifier) = env.authorize(&client, &[]).await;
    let before = env.counters().await;
    for forged in ["https://attacker.example", "http://127.0.0.1:1/zoho/accounts/us"] {
        callback.accounts_server = Some(forged.to_string());
        let err = client.exchange_code(&code, &Url::parse(REDIRECT).unwrap(), verifier.as_deref(), &callback).await.unwrap_err();
        assert_code(&err, ErrorCode::InvalidInput, false);
    }
    assert_eq!(env.counters().await["calls"], before["calls"], "no token request was sent anywhere we know of");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_denied_consent_redirects_with_an_error() {
    let env = Env::start().await;
    let client = env.client(Provider::Xero);
    let redirect = Url::parse(REDIRECT).unwrap();
    let extra = vec![("sandbox_deny".to_string(), "1".to_string())];
    let req = AuthorizeRequest { state: "s", redirect_uri: &redirect, scopes: &[], pkce_challenge: None, extra: &extra };
    let resp = env.control.get(client.authorize_url(&req).unwrap()).send().await.unwrap();
    let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    env.sb.shutdown().await;
}

#[tokio::test]
async fn xero_pkce_verifier_is_checked() {
    let env = Env::start().await;
    let client = env.client(Provider::Xero);
    let (callback, code, _verifier) = env.authorize(&client, &[]).await;
    let (_, other) = new_pkce();
    let err = client.exchange_code(&code, &Url::parse(REDIRECT).unwrap(), Some(other.secret()), &callback).await.unwrap_err();
    assert_code(&err, ErrorCode::InvalidGrant, false);
    env.sb.shutdown().await;
}
