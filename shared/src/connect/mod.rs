//! The connect flow: the main app sends a user to `GET /connect/{provider}`; we check the app's
//! signature, the user's role and the plan, mint a state and send the user to the provider. The
//! provider sends them back to `GET /oauth/{provider}/callback`; we consume the state, exchange the
//! code, discover the organisations, seal and store the grant, register Zoho webhooks, audit, tell
//! the app, and send the user back to the app. `disconnect` undoes it.
//!
//! The HTTP layer (functions/oauth-callback) only parses requests and renders these results.

pub mod app_auth;
pub mod state;

use chrono::{DateTime, Utc};
use url::Url;

use crate::audit::{AuditLog, TokenEvent};
use crate::aws::AwsClients;
use crate::config::XeroScopeSet;
use crate::events::{AppEvent, ConnectedOrg, ConnectionCreated, ConnectionDisconnected, EventPublisher, EventType};
use crate::http_client::HttpClient;
use crate::providers::client::{AccountingProvider, ProviderClient};
use crate::providers::endpoints::Endpoints;
use crate::providers::model::{AuthorizeRequest, CallbackParams, Org};
use crate::providers::zoho_webhooks::{self, WebhookSpec, ZohoWebhooks};
use crate::resilience::within_deadline;
use crate::secrets::{SecretsCache, SECRETS_TTL};
use crate::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use crate::tenancy::{ensure_integration_capacity, Entity, Permission, Plan, Tenant, TenantRouting, TenantStore};
use crate::vault::{SealContext, SealedBlob, Vault};
use crate::{Config, Error, Provider, Result, SecretString, TokenSet};

use self::app_auth::SignedRequest;
use self::state::{StateStore, StoredState};

/// Everything the connect flow talks to. Built once per container.
#[derive(Debug)]
pub struct ConnectDeps {
    pub config: Config,
    pub tenants: TenantStore,
    pub grants: GrantStore,
    pub states: StateStore,
    pub audit: AuditLog,
    pub vault: Vault,
    pub secrets: SecretsCache,
    pub events: EventPublisher,
    /// Starts a new connection's initial full sync (low queue).
    pub initial_sync: crate::initial_sync::InitialSync,
    pub http: HttpClient,
    /// Every provider call made after discovery (Zoho webhook and workflow-rule registration and
    /// removal) goes through it, under the org's limit shared with the sync worker.
    pub guard: crate::resilience::ProviderGuard,
    /// How long a callback may work before it gives up and undoes what it did ([`CALLBACK_BUDGET`]).
    pub callback_budget: std::time::Duration,
    /// How long the undo after a failure or the deadline may take ([`UNDO_BUDGET`]).
    pub undo_budget: std::time::Duration,
}

/// The callback's own deadline. API Gateway ends an HTTP API integration at 30 s and the function's
/// timeout is 29 s; one provider call may take up to PROVIDER_TIMEOUT_SECONDS (20 s), so without a
/// deadline a slow provider would have Lambda kill the callback halfway, leaving Zoho webhooks
/// registered and a grant unrevoked. 20 s of work, then up to [`UNDO_BUDGET`] to clean up, leaves a
/// few seconds for the redirect.
pub const CALLBACK_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
pub const UNDO_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

/// The actor of the connect flow's provider-call audit records.
const ACTOR: &str = "system:oauth-callback";

/// The guard's limits for the connect flow. Every guarded call here runs under a `timeout_at` of
/// the callback's (or the undo's) own budget, which cancels an attempt still in flight when the
/// budget ends and undoes what was done; so the guard need not keep a whole provider timeout free
/// before the deadline (with 20 s of each, no call could ever start). Its deadline rule still keeps
/// waits for the org's limit from running past the budget.
pub fn connect_limits(config: &Config) -> crate::resilience::Limits {
    crate::resilience::Limits { attempt_timeout: std::time::Duration::ZERO, ..crate::resilience::Limits::from_config(config) }
}

/// `deadline` on the wall clock, for `resilience::within_deadline`.
fn wall_deadline(deadline: tokio::time::Instant) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(deadline.saturating_duration_since(tokio::time::Instant::now())).unwrap_or_default()
}

impl ConnectDeps {
    pub fn new(config: Config, clients: &AwsClients, http: HttpClient) -> Self {
        let vault = Vault::from_config(clients.kms.clone(), &config);
        ConnectDeps {
            tenants: TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            grants: GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
            states: StateStore::new(clients.dynamodb.clone(), config.tables.ephemeral.clone(), vault.clone()),
            audit: AuditLog::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            vault,
            secrets: SecretsCache::new(clients.secrets.clone(), SECRETS_TTL),
            events: EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            initial_sync: crate::initial_sync::InitialSync::new(
                clients.dynamodb.clone(),
                config.tables.grants.clone(),
                crate::jobs::JobQueue::new(clients.sqs.clone(), crate::jobs::SyncQueues::from_config(&config)),
                EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            ),
            http,
            guard: crate::resilience::ProviderGuard::with_limits(
                clients.dynamodb.clone(),
                config.tables.resilience.clone(),
                connect_limits(&config),
            )
            .with_events(EventPublisher::new(clients.sqs.clone(), config.queues.events.clone())),
            callback_budget: CALLBACK_BUDGET,
            undo_budget: UNDO_BUDGET,
            config,
        }
    }

    /// `{PUBLIC_BASE_URL}/oauth/{provider}/callback`, registered at each provider.
    pub fn redirect_uri(&self, provider: Provider) -> Url {
        redirect_uri(&self.config, provider)
    }

    pub fn endpoints(&self, provider: Provider) -> Endpoints {
        Endpoints::from_config(&self.config, provider)
    }

    /// A client with the credentials from Secrets Manager (cached per container by SecretsCache).
    pub async fn provider_client(&self, provider: Provider) -> Result<ProviderClient> {
        let creds = self.secrets.provider_credentials(&self.config.secrets.provider_credentials, provider).await?;
        Ok(ProviderClient::new(provider, self.endpoints(provider), creds, self.http.clone()))
    }

    /// Zoho's webhook API for one grant, every call guarded and audited for `tenant_id`.
    fn zoho_hooks<'a>(&'a self, api_domain: &str, tenant_id: &'a str, grant_id: &'a str, plan: Plan) -> Result<ZohoWebhooks<'a>> {
        let guarded =
            zoho_webhooks::Guarded { guard: &self.guard, audit: &self.audit, tenant_id, grant_id, plan, actor: ACTOR, limited: true };
        ZohoWebhooks::new(&self.http, &self.endpoints(Provider::Zoho), api_domain, guarded)
    }

    /// As `zoho_hooks`, audited but not waiting for the org's limit: for the undo of a failed
    /// connect only (see `zoho_webhooks::Guarded::limited`).
    fn zoho_hooks_for_undo<'a>(&'a self, api_domain: &str, tenant_id: &'a str, grant_id: &'a str, plan: Plan) -> Result<ZohoWebhooks<'a>> {
        let guarded =
            zoho_webhooks::Guarded { guard: &self.guard, audit: &self.audit, tenant_id, grant_id, plan, actor: ACTOR, limited: false };
        ZohoWebhooks::new(&self.http, &self.endpoints(Provider::Zoho), api_domain, guarded)
    }

    async fn state_key(&self) -> Result<SecretString> {
        Ok(self.secrets.app_signing(&self.config.secrets.app_signing).await?.state_key.clone())
    }
}

/// `{PUBLIC_BASE_URL}/oauth/{provider}/callback`.
pub fn redirect_uri(config: &Config, provider: Provider) -> Url {
    let mut u = config.public_base_url.clone();
    let path = format!("{}/oauth/{}/callback", u.path().trim_end_matches('/'), provider.as_str());
    u.set_path(&path);
    u.set_query(None);
    u
}

/// The scopes a tenant's plan asks for, unless the tenant configured its own. Starter plans only
/// read (sync pulls); the others may also create records. Xero needs `offline_access` for a refresh
/// token and Zoho needs settings create/delete to manage its per-organisation webhooks, so those are
/// always added.
pub fn scopes_for(tenant: &Tenant, provider: Provider) -> Vec<String> {
    scopes_for_set(tenant, provider, XeroScopeSet::Granular)
}

/// [`scopes_for`] in the scope vocabulary this deployment's Xero app accepts: an app created on or
/// after 2 March 2026 is refused the broad `accounting.transactions`, an older one keeps it until
/// Xero retires it.
pub fn scopes_for_set(tenant: &Tenant, provider: Provider, xero: XeroScopeSet) -> Vec<String> {
    let write = tenant.plan != Plan::Starter;
    let mut scopes: Vec<String> = match tenant.config.scopes.get(&provider) {
        Some(custom) => custom.clone(),
        None => {
            let list: &[&str] = match (provider, write) {
                // QuickBooks has no read-only accounting scope.
                (Provider::QuickBooks, _) => &["com.intuit.quickbooks.accounting"],
                // The report scopes serve report jobs (crate::reports): the broad
                // `accounting.reports.read`, or the granular names, which only third parties
                // document (unconfirmed; see crate::reports::job::report_scopes).
                (Provider::Xero, true) if xero == XeroScopeSet::Broad => {
                    &["accounting.transactions", "accounting.contacts", "accounting.settings.read", "accounting.reports.read"]
                }
                (Provider::Xero, false) if xero == XeroScopeSet::Broad => {
                    &["accounting.transactions.read", "accounting.contacts.read", "accounting.settings.read", "accounting.reports.read"]
                }
                (Provider::Xero, true) => &[
                    "accounting.invoices",
                    "accounting.payments",
                    "accounting.contacts",
                    "accounting.settings.read",
                    "accounting.reports.profitandloss.read",
                    "accounting.reports.balancesheet.read",
                    "accounting.reports.aged.read",
                ],
                (Provider::Xero, false) => &[
                    "accounting.invoices.read",
                    "accounting.payments.read",
                    "accounting.contacts.read",
                    "accounting.settings.read",
                    "accounting.reports.profitandloss.read",
                    "accounting.reports.balancesheet.read",
                    "accounting.reports.aged.read",
                ],
                (Provider::Zoho, true) => &[
                    "ZohoBooks.invoices.ALL",
                    "ZohoBooks.contacts.ALL",
                    "ZohoBooks.customerpayments.ALL",
                    "ZohoBooks.accountants.READ",
                    "ZohoBooks.settings.READ",
                    // Unconfirmed scope name (crate::reports::job::report_scopes).
                    "ZohoBooks.reports.READ",
                ],
                (Provider::Zoho, false) => &[
                    "ZohoBooks.invoices.READ",
                    "ZohoBooks.contacts.READ",
                    "ZohoBooks.customerpayments.READ",
                    "ZohoBooks.accountants.READ",
                    "ZohoBooks.settings.READ",
                    // Unconfirmed scope name (crate::reports::job::report_scopes).
                    "ZohoBooks.reports.READ",
                ],
            };
            list.iter().map(|s| s.to_string()).collect()
        }
    };
    let required: &[&str] = match provider {
        Provider::Xero => &["offline_access"],
        Provider::Zoho => &["ZohoBooks.settings.CREATE", "ZohoBooks.settings.DELETE"],
        Provider::QuickBooks => &[],
    };
    for r in required {
        if !scopes.iter().any(|s| s == r) {
            scopes.push(r.to_string());
        }
    }
    scopes
}

/// Xero scopes that serve an entity; any one of them is enough. Granular first, then the broad
/// pre-March-2026 ones (Xero's scopes page; the granular/broad mapping per endpoint follows Xero's
/// 2026 migration notes).
fn xero_entity_scopes(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Invoice => &["accounting.invoices", "accounting.invoices.read", "accounting.transactions", "accounting.transactions.read"],
        Entity::Payment => &["accounting.payments", "accounting.payments.read", "accounting.transactions", "accounting.transactions.read"],
        Entity::Contact => &["accounting.contacts", "accounting.contacts.read"],
        Entity::Account => &["accounting.settings", "accounting.settings.read"],
    }
}

/// Refuses a token whose granted scopes cannot serve the tenant's enabled entities, naming the
/// scopes that are missing (as we would have asked for them). Only Xero is checked: QuickBooks has
/// one accounting scope, and Zoho reports no granted scopes in its token response.
pub fn check_granted_scopes(tenant: &Tenant, provider: Provider, granted: &[String], xero: XeroScopeSet) -> Result<()> {
    if provider != Provider::Xero || granted.is_empty() {
        return Ok(());
    }
    let asked = scopes_for_set(tenant, provider, xero);
    let mut missing: Vec<String> = Vec::new();
    for entity in &tenant.config.enabled_entities {
        let serving = xero_entity_scopes(*entity);
        if granted.iter().any(|g| serving.contains(&g.as_str())) {
            continue;
        }
        let name = asked
            .iter()
            .find(|a| serving.contains(&a.as_str()))
            .cloned()
            .unwrap_or_else(|| serving[if xero == XeroScopeSet::Broad && serving.len() > 2 { 3 } else { 1 }].to_string());
        let entry = format!("{name} ({})", entity_label(*entity));
        if !missing.contains(&entry) {
            missing.push(entry);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::InsufficientScope { provider, missing: missing.join(", ") })
    }
}

fn entity_label(e: Entity) -> &'static str {
    match e {
        Entity::Invoice => "invoices",
        Entity::Contact => "contacts",
        Entity::Account => "accounts",
        Entity::Payment => "payments",
    }
}

/// When the grant's refresh token must be used by: its rolling expiry, or QuickBooks' hard cap
/// (`x_refresh_token_hard_expires_in`) when that comes first. The stored grant is due by this, the
/// same rule the refresher applies when it writes a refreshed grant.
fn refresh_deadline(t: &TokenSet) -> Option<DateTime<Utc>> {
    match (t.refresh_expires_at, t.refresh_hard_expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Connections that take a slot of the plan's integration limit.
fn occupies_slot(c: &Connection) -> bool {
    matches!(c.status, GrantStatus::Active | GrantStatus::NeedsReauth)
}

/// Where `/connect` sends the browser, and the cookie that binds the state to that browser.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: Url,
    /// A `Set-Cookie` value (see [`state::binding_cookie`]).
    pub set_cookie: String,
}

/// `GET /connect/{provider}` after the signature check: the provider's consent URL to redirect to.
pub async fn start(deps: &ConnectDeps, provider: Provider, req: &SignedRequest, now: DateTime<Utc>) -> Result<Started> {
    let jti = req
        .param("jti")
        .filter(|j| state::valid_jti(j))
        .ok_or_else(|| Error::Unauthenticated("jti is missing or malformed (16-64 of A-Z a-z 0-9 - _)".into()))?;
    let tenant = deps.tenants.get(&req.tenant_id).await?;
    if !tenant.provider_enabled(provider) {
        return Err(Error::ProviderNotEnabled(provider));
    }
    deps.tenants.authorize(&tenant.tenant_id, &req.user_id, Permission::Connect).await?;
    let return_url =
        req.param("return_url").filter(|u| !u.is_empty()).ok_or_else(|| Error::InvalidInput("return_url is missing".into()))?;
    if !tenant.return_url_allowed(return_url) {
        return Err(Error::RedirectNotAllowed);
    }
    // A signed URL starts one connect, so a replayed URL (from a log, a referrer, a forwarded link)
    // is refused even while its signature is fresh. Claimed once the request is known to be
    // well-formed and allowed, and before any state exists.
    let jti_expires = req.ts + app_auth::MAX_SKEW_SECS + 1;
    if !deps.states.claim_jti(&req.tenant_id, &req.kid, jti, jti_expires, now).await? {
        return Err(Error::Unauthenticated("this signed connect URL was already used".into()));
    }
    // The exact check happens at the callback, once the provider says which organisations the user
    // picked. Here we refuse only what cannot succeed: no free slot, and no organisation of this
    // provider that the consent could be a reconnect of.
    let existing = deps.grants.list_connections(&tenant.tenant_id).await?;
    let occupied = existing.iter().filter(|c| occupies_slot(c)).count();
    if !existing.iter().any(|c| c.provider == provider && occupies_slot(c)) {
        ensure_integration_capacity(&tenant, occupied, 1)?;
    }

    let client = deps.provider_client(provider).await?;
    let expires = now + chrono::Duration::from_std(deps.config.oauth_state_ttl).map_err(|e| Error::Internal(e.to_string()))?;
    let (state, claims) = state::mint(&deps.state_key().await?, &tenant.tenant_id, provider, expires);
    let pkce = client.supports_pkce().then(crate::providers::oauth::new_pkce);
    let stored = StoredState {
        tenant_id: tenant.tenant_id.clone(),
        provider,
        user_id: req.user_id.clone(),
        return_url: return_url.to_string(),
        pkce_verifier: pkce.as_ref().map(|(_, v)| SecretString::new(v.secret().as_str())),
        expires_at: claims.expires_at,
    };
    let scopes = scopes_for_set(&tenant, provider, deps.config.xero_scope_set);
    let redirect_uri = deps.redirect_uri(provider);
    let url = client.authorize_url(&AuthorizeRequest {
        state: &state,
        redirect_uri: &redirect_uri,
        scopes: &scopes,
        pkce_challenge: pkce.as_ref().map(|(c, _)| c),
        extra: &[],
    })?;
    deps.states.put(&claims, &stored, now).await?;
    tracing::info!(tenant_id = %tenant.tenant_id, provider = %provider, pkce = pkce.is_some(), "connect started");
    let set_cookie = state::binding_cookie(&state, &claims, redirect_uri.path(), deps.config.oauth_state_ttl.as_secs() as i64);
    Ok(Started { url, set_cookie })
}

/// How a callback ends.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// Back to the app's (allow-listed) return URL, with the result in its query string.
    Redirect {
        location: Url,
        result: Result<ConnectedGrant>,
        /// `Set-Cookie` that removes the used binding cookie.
        clear_cookie: String,
    },
    /// No trustworthy return URL (the state itself is bad, or the tenant no longer allows it):
    /// answer with the error directly, never redirect.
    Reject(Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedGrant {
    pub tenant_id: String,
    pub provider: Provider,
    pub grant_id: String,
    pub org_ids: Vec<String>,
}

/// `<return_url>?status=connected&provider=..&connections=<n>&grant_id=..`
pub fn success_redirect(return_url: &str, g: &ConnectedGrant) -> Result<Url> {
    let mut u = Url::parse(return_url).map_err(|_| Error::RedirectNotAllowed)?;
    u.query_pairs_mut()
        .append_pair("status", "connected")
        .append_pair("provider", g.provider.as_str())
        .append_pair("connections", &g.org_ids.len().to_string())
        .append_pair("grant_id", &g.grant_id);
    Ok(u)
}

/// `<return_url>?status=error&provider=..&code=E<code>&reason=<short machine reason>`. Only codes and
/// fixed reasons go into the URL; the provider's free text stays in our logs.
pub fn error_redirect(return_url: &str, provider: Provider, err: &Error, reason: &str) -> Result<Url> {
    let mut u = Url::parse(return_url).map_err(|_| Error::RedirectNotAllowed)?;
    u.query_pairs_mut()
        .append_pair("status", "error")
        .append_pair("provider", provider.as_str())
        .append_pair("code", &err.code().to_string())
        .append_pair("reason", reason)
        .append_pair("retryable", if err.is_retryable() { "true" } else { "false" });
    if let Error::InsufficientScope { missing, .. } = err {
        // Scope names only (our own constants), so the app can tell the admin what to grant.
        let names: Vec<String> = missing
            .split(", ")
            .map(|m| m.split(" (").next().unwrap_or("").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_').collect())
            .filter(|n: &String| !n.is_empty())
            .collect();
        u.query_pairs_mut().append_pair("missing_scopes", &names.join(" "));
    }
    Ok(u)
}

/// A provider `error` callback parameter, reduced to a safe token (`[a-z0-9_]`, at most 64).
fn sanitise_reason(raw: &str) -> String {
    let s: String = raw.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect::<String>().to_ascii_lowercase();
    if s.is_empty() {
        "provider_error".into()
    } else {
        s
    }
}

/// An error and the short reason the app sees for it.
struct Failure {
    err: Error,
    reason: String,
}

impl Failure {
    fn new(err: Error, reason: &str) -> Self {
        Failure { err, reason: reason.to_string() }
    }
}

/// `GET /oauth/{provider}/callback` with the callback's decoded query parameters and the browser's
/// `Cookie` header values.
pub async fn callback(
    deps: &ConnectDeps,
    provider: Provider,
    query: &[(String, String)],
    cookies: &[&str],
    now: DateTime<Utc>,
) -> CallbackOutcome {
    let deadline = tokio::time::Instant::now() + deps.callback_budget;
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    // 1. The state: signature and expiry first (no I/O), then the browser binding, then the
    //    single-use delete. A state presented by another browser is refused without consuming it.
    let key = match deps.state_key().await {
        Ok(k) => k,
        Err(e) => return CallbackOutcome::Reject(e),
    };
    let state_str = get("state").unwrap_or("");
    let claims = match state::verify(&key, state_str, provider, now) {
        Ok(c) => c,
        Err(e) => return CallbackOutcome::Reject(e),
    };
    if let Err(e) = state::check_binding(cookies.iter().copied(), state_str, &claims) {
        crate::telemetry::metric("ConnectBindingRefused", 1.0, "Count", &[("provider", provider.as_str())]);
        return CallbackOutcome::Reject(e);
    }
    let stored = match deps.states.consume(&claims, now).await {
        Ok(s) => s,
        Err(e) => return CallbackOutcome::Reject(e),
    };
    let tenant = match deps.tenants.get(&stored.tenant_id).await {
        Ok(t) => t,
        Err(e) => return CallbackOutcome::Reject(e),
    };
    // The allow-list may have changed since the connect started.
    if !tenant.return_url_allowed(&stored.return_url) {
        return CallbackOutcome::Reject(Error::RedirectNotAllowed);
    }
    let flow = Box::pin(complete(deps, &tenant, provider, &stored, query, deadline, now));
    let result = crate::context::scoped(|c| c.with_tenant(&tenant.tenant_id).with_provider(provider), flow).await;
    let (location, result) = match result {
        Ok(g) => (success_redirect(&stored.return_url, &g), Ok(g)),
        Err(f) => {
            tracing::warn!(tenant_id = %tenant.tenant_id, provider = %provider, code = %f.err.code(), reason = %f.reason, error = %f.err, "connect failed");
            crate::telemetry::metric("ConnectFailed", 1.0, "Count", &[("provider", provider.as_str()), ("reason", &f.reason)]);
            // Users declining consent or hitting their plan are not an outage; ours and the
            // providers' failures are, and page (ConnectFailuresAlarm).
            if f.err.http_status() >= 500 {
                crate::telemetry::metric("ConnectServerFailed", 1.0, "Count", &[("provider", provider.as_str()), ("reason", &f.reason)]);
            }
            (error_redirect(&stored.return_url, provider, &f.err, &f.reason), Err(f.err))
        }
    };
    match location {
        Ok(location) => CallbackOutcome::Redirect {
            location,
            result,
            clear_cookie: state::clear_binding_cookie(&claims, deps.redirect_uri(provider).path()),
        },
        Err(e) => CallbackOutcome::Reject(e),
    }
}

/// Everything after the state is known good. Any failure after the code exchange undoes what was
/// done at the provider (registered webhooks, the grant itself), so nothing dangles.
async fn complete(
    deps: &ConnectDeps,
    tenant: &Tenant,
    provider: Provider,
    stored: &StoredState,
    query: &[(String, String)],
    deadline: tokio::time::Instant,
    now: DateTime<Utc>,
) -> std::result::Result<ConnectedGrant, Failure> {
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    if let Some(error) = get("error") {
        let reason = sanitise_reason(error);
        let err = match reason.as_str() {
            "access_denied" | "consent_required" | "interaction_required" | "login_required" => {
                Error::ConsentDenied { provider, error: reason.clone() }
            }
            "server_error" | "temporarily_unavailable" => {
                Error::ProviderTransient { provider, status: None, message: format!("authorize answered {reason}") }
            }
            _ => Error::ProviderPermanent { provider, status: None, message: format!("authorize answered {reason}") },
        };
        return Err(Failure::new(err, &reason));
    }
    // The user may have lost the right to connect (demoted, removed) while at the provider's consent
    // page; checked before the code is exchanged, so nothing is granted to us.
    deps.tenants.authorize(&tenant.tenant_id, &stored.user_id, Permission::Connect).await.map_err(|e| {
        let reason = if e.code() == crate::ErrorCode::Forbidden { "forbidden" } else { "role_check_failed" };
        Failure::new(e, reason)
    })?;
    let code = get("code").ok_or_else(|| Failure::new(Error::InvalidInput("the callback carries no code".into()), "missing_code"))?;
    let callback = CallbackParams::from_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let client = deps.provider_client(provider).await.map_err(|e| Failure::new(e, "configuration"))?;
    let redirect_uri = deps.redirect_uri(provider);
    let verifier = stored.pkce_verifier.as_ref().map(|v| v.expose());
    // Past the deadline here the provider may still have issued tokens we never saw; there is
    // nothing we could revoke, and its codes and tokens expire on their own.
    let exchanged = match tokio::time::timeout_at(deadline, client.exchange_code(code, &redirect_uri, verifier, &callback)).await {
        Ok(r) => r.map_err(|e| Failure::new(e, "exchange_failed"))?,
        Err(_) => return Err(Failure::new(deadline_error(deps, provider), "deadline")),
    };
    let tokens = exchanged.tokens;

    let registered = std::sync::Mutex::new(Registered::new());
    // Chosen here so the undo's provider calls are audited under the grant they undo.
    let grant_id = uuid::Uuid::new_v4().to_string();
    let ids = (grant_id.as_str(), &registered);
    let result = Box::pin(finish(deps, &client, tenant, provider, stored, &tokens, &callback, ids, deadline, now)).await;
    match result {
        Ok(g) => Ok(g),
        Err(failure) => {
            let webhooks = std::mem::take(&mut *registered.lock().unwrap_or_else(|p| p.into_inner()));
            if failure.reason == "deadline" {
                tracing::error!(provider = %provider, webhooks = webhooks.len() as u64, "callback deadline reached; undoing the connect");
            }
            // Bounded too: the undo must not be what runs the function out of time.
            let undoing = undo(deps, &client, tenant, provider, &grant_id, &tokens, &webhooks);
            if tokio::time::timeout(deps.undo_budget, undoing).await.is_err() {
                tracing::error!(provider = %provider, "undo of a failed connect ran out of time; a webhook or the grant may remain at the provider");
                crate::telemetry::metric("ConnectUndoIncomplete", 1.0, "Count", &[("provider", provider.as_str())]);
            }
            Err(failure)
        }
    }
}

fn deadline_error(deps: &ConnectDeps, provider: Provider) -> Error {
    Error::ProviderTimeout { provider, timeout: deps.callback_budget }
}

/// Zoho webhooks registered so far: (org, webhook ids). Shared with the caller so that what was
/// registered before the deadline cut the work off can still be removed.
type Registered = Vec<(String, Vec<String>)>;

fn record_webhook(registered: &std::sync::Mutex<Registered>, org: &str, id: String) {
    let mut r = registered.lock().unwrap_or_else(|p| p.into_inner());
    match r.iter_mut().find(|(o, _)| o == org) {
        Some((_, ids)) => ids.push(id),
        None => r.push((org.to_string(), vec![id])),
    }
}

/// The audit record of organisation discovery. Not rate-limited: until it answers there is no
/// org to key a limit by (QuickBooks names its realm in the callback, but one call per connect is
/// far below its 500 a minute).
async fn audit_discovery(
    deps: &ConnectDeps,
    tenant: &Tenant,
    provider: Provider,
    grant_id: &str,
    callback: &CallbackParams,
    result: &Result<Vec<Org>>,
    took: std::time::Duration,
) {
    let realm = callback.realm_id.as_deref().filter(|r| !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_digit()));
    let path = match provider {
        Provider::Xero => "/connections".to_string(),
        Provider::Zoho => "/books/v3/organizations".to_string(),
        Provider::QuickBooks => {
            let realm = realm.unwrap_or("-");
            format!("/v3/company/{realm}/companyinfo/{realm}")
        }
    };
    let org_id = if provider == Provider::QuickBooks { realm.unwrap_or("") } else { "" };
    let record = crate::audit::ProviderCallRecord {
        tenant_id: &tenant.tenant_id,
        provider,
        grant_id,
        org_id,
        actor: ACTOR,
        op: "discover_orgs",
        method: "GET",
        path: &path,
        status: crate::audit::status_of(result, false),
        latency_ms: took.as_millis() as u64,
        attempt: 1,
        error: result.as_ref().err(),
        retention_days: crate::audit::call_retention_days(tenant.plan),
    };
    deps.audit.provider_call(&record).await;
}

/// What the steps before the write produced.
struct Prepared {
    orgs: Vec<Org>,
    existing: Vec<Connection>,
    slots_version: i64,
    grant_id: String,
    sealed: SealedBlob,
    /// Sealed Zoho webhook secret per org.
    secrets: Vec<(String, SealedBlob)>,
}

/// Org discovery, the exact plan check, sealing and (Zoho) webhook registration.
async fn prepare(
    deps: &ConnectDeps,
    client: &ProviderClient,
    tenant: &Tenant,
    provider: Provider,
    tokens: &TokenSet,
    callback: &CallbackParams,
    (grant_id, registered): (&str, &std::sync::Mutex<Registered>),
) -> std::result::Result<Prepared, Failure> {
    let fail = Failure::new;
    // Before anything else: a grant that cannot serve the tenant is refused (and revoked by the
    // caller), not stored to fail every sync later.
    check_granted_scopes(tenant, provider, &tokens.scopes, deps.config.xero_scope_set).map_err(|e| fail(e, "insufficient_scope"))?;
    let started = std::time::Instant::now();
    let discovered = client.discover_orgs(tokens, callback).await;
    audit_discovery(deps, tenant, provider, grant_id, callback, &discovered, started.elapsed()).await;
    let orgs = discovered.map_err(|e| fail(e, "org_discovery_failed"))?;
    let orgs = dedupe_orgs(orgs);
    if orgs.is_empty() {
        return Err(fail(Error::InvalidInput(format!("no {provider} organisation was authorised")), "no_organisation"));
    }

    // The plan's limit, exactly: orgs this tenant already has (active or awaiting re-auth) do not
    // take a new slot when they are connected again.
    // The version first: any connect that lands after this read makes our write fail, so the
    // count below cannot go stale unnoticed.
    let slots_version = deps.grants.slots_version(&tenant.tenant_id).await.map_err(|e| fail(e, "storage"))?;
    let existing = deps.grants.list_connections(&tenant.tenant_id).await.map_err(|e| fail(e, "storage"))?;
    let occupied = existing.iter().filter(|c| occupies_slot(c)).count();
    let adding = orgs.iter().filter(|o| !existing.iter().any(|c| occupies_slot(c) && c.provider == provider && c.org_id == o.id)).count();
    ensure_integration_capacity(tenant, occupied, adding).map_err(|e| fail(e, "plan_limit"))?;

    let grant_id = grant_id.to_string();
    let sealed =
        deps.vault.seal_tokens(&SealContext::new(&tenant.tenant_id, provider, &grant_id), tokens).await.map_err(|e| fail(e, "storage"))?;

    // Zoho: one webhook per entity and event in each organisation, all sharing the org's secret. All of them
    // at once: sequentially, four entities times N organisations of provider round trips could
    // alone outlast the deadline.
    let mut secrets: Vec<(String, SealedBlob)> = Vec::new();
    if provider == Provider::Zoho {
        let api_domain = tokens.api_domain.as_deref().ok_or_else(|| {
            fail(Error::ProviderMalformed { provider, message: "token response has no api_domain".into() }, "exchange_failed")
        })?;
        let hooks = deps.zoho_hooks(api_domain, &tenant.tenant_id, &grant_id, tenant.plan).map_err(|e| fail(e, "exchange_failed"))?;
        let org_secrets: Vec<(String, SecretString, Url)> = orgs
            .iter()
            .map(|o| (o.id.clone(), zoho_webhooks::new_secret(), zoho_webhooks::callback_url(&deps.config.public_base_url, &o.id)))
            .collect();
        let hooks = &hooks;
        let kinds: Vec<(&str, &str)> =
            zoho_webhooks::ENTITIES.iter().flat_map(|e| zoho_webhooks::EVENTS.iter().map(move |ev| (*e, *ev))).collect();
        let kinds = &kinds;
        let calls = org_secrets.iter().flat_map(|(org, secret, url)| {
            kinds.iter().map(move |(entity, event)| async move {
                let spec = WebhookSpec { org_id: org, url, entity, event, secret };
                let id = hooks.register(&tokens.access_token, &spec).await?;
                record_webhook(registered, org, id);
                Ok::<(), Error>(())
            })
        });
        let results = futures::future::join_all(calls).await;
        // A registration the guard would not start before the callback's deadline is the deadline's
        // failure, not the provider's.
        if results.iter().any(|r| r.as_ref().is_err_and(crate::resilience::is_deadline)) {
            return Err(fail(deadline_error(deps, provider), "deadline"));
        }
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            return Err(fail(e, "webhook_registration_failed"));
        }
        for (org, secret, _) in &org_secrets {
            let ctx = SealContext::new(&tenant.tenant_id, Provider::Zoho, format!("webhook:{org}"));
            let blob = deps.vault.seal_bytes(&ctx, secret.expose().as_bytes()).await.map_err(|e| fail(e, "storage"))?;
            secrets.push((org.clone(), blob));
        }
    }
    Ok(Prepared { orgs, existing, slots_version, grant_id, sealed, secrets })
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    deps: &ConnectDeps,
    client: &ProviderClient,
    tenant: &Tenant,
    provider: Provider,
    stored: &StoredState,
    tokens: &TokenSet,
    callback: &CallbackParams,
    (grant_id, registered): (&str, &std::sync::Mutex<Registered>),
    deadline: tokio::time::Instant,
    now: DateTime<Utc>,
) -> std::result::Result<ConnectedGrant, Failure> {
    // Everything up to the write runs under the deadline; the write itself and what follows do not,
    // because once the grant may be stored, undoing it at the provider would strand it.
    // The guard waits for room in the org's limit only as long as the deadline allows.
    let preparing =
        within_deadline(wall_deadline(deadline), prepare(deps, client, tenant, provider, tokens, callback, (grant_id, registered)));
    let Prepared { orgs, existing, slots_version, grant_id, sealed, secrets } = match tokio::time::timeout_at(deadline, preparing).await {
        Ok(r) => r?,
        Err(_) => return Err(Failure::new(deadline_error(deps, provider), "deadline")),
    };
    let registered: Registered = registered.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let scopes =
        if tokens.scopes.is_empty() { scopes_for_set(tenant, provider, deps.config.xero_scope_set) } else { tokens.scopes.clone() };
    let grant = Grant {
        tenant_id: tenant.tenant_id.clone(),
        provider,
        grant_id: grant_id.clone(),
        org_ids: orgs.iter().map(|o| o.id.clone()).collect(),
        status: GrantStatus::Active,
        scopes: scopes.clone(),
        sealed: Some(sealed),
        access_expires_at: tokens.access_expires_at,
        refresh_expires_at: refresh_deadline(tokens),
        version: 1,
        lease_owner: None,
        lease_expires_at: None,
        seal_version: 0,
        degraded_since: None,
        last_failure_at: None,
        created_at: now,
        updated_at: now,
    };
    let connections: Vec<Connection> = orgs
        .iter()
        .map(|o| Connection {
            tenant_id: tenant.tenant_id.clone(),
            provider,
            org_id: o.id.clone(),
            org_name: o.name.clone(),
            grant_id: grant_id.clone(),
            status: GrantStatus::Active,
            webhook_id: registered.iter().find(|(org, _)| *org == o.id).and_then(|(_, ids)| zoho_webhooks::join_ids(ids)),
            webhook_secret: secrets.iter().find(|(org, _)| *org == o.id).map(|(_, b)| b.clone()),
            created_at: now,
            updated_at: now,
        })
        .collect();
    match deps.grants.put_grant_checked(&grant, &connections, &existing, slots_version, Some(&TenantRouting::of(tenant))).await {
        Ok(()) => {}
        // Nothing was written (the transaction was refused as a whole): undoing at the provider is safe.
        Err(e @ Error::Conflict(_)) => return Err(Failure::new(e, "concurrent_connect")),
        Err(e) => return Err(Failure::new(e, "storage")),
    }

    // From here the connection exists: later steps log their failures but do not undo it.
    // After the write: its removals of old webhooks are bounded like an undo.
    let superseding = supersede(deps, tenant, provider, &grant, &existing, tokens, now);
    within_deadline(Utc::now() + chrono::Duration::from_std(deps.undo_budget).unwrap_or_default(), superseding).await;
    if let Err(e) = deps
        .audit
        .record(
            &tenant.tenant_id,
            provider,
            &grant_id,
            TokenEvent::Connected,
            &stored.user_id,
            Some(&format!("orgs={}", grant.org_ids.join(","))),
            now,
        )
        .await
    {
        tracing::error!(code = %e.code(), error = %e, "audit record for a new connection failed");
    }
    let data = ConnectionCreated {
        grant_id: grant_id.clone(),
        connections: connections
            .iter()
            .map(|c| ConnectedOrg { org_id: c.org_id.clone(), org_name: c.org_name.clone(), webhook_registered: c.webhook_id.is_some() })
            .collect(),
        scopes,
        user_id: stored.user_id.clone(),
    };
    let event =
        AppEvent::new(EventType::ConnectionCreated, &tenant.tenant_id, provider, now, serde_json::to_value(data).expect("plain struct"));
    publish(deps, tenant, &event).await;
    // The first full copy of each organisation. A failure here does not fail the connect: the
    // connection is already on the sync schedule as due now, and the scheduler's next run starts
    // whatever was not enqueued (same idempotency keys, so never twice).
    for c in &connections {
        if let Err(e) = deps.initial_sync.start(tenant, c, now).await {
            tracing::warn!(code = %e.code(), error = %e, org_id = %c.org_id, "initial sync not enqueued; the scheduler will start it");
        }
    }
    tracing::info!(tenant_id = %tenant.tenant_id, provider = %provider, grant_id = %grant_id, orgs = grant.org_ids.len(), "connected");
    crate::telemetry::metric("Connected", 1.0, "Count", &[("provider", provider.as_str())]);
    Ok(ConnectedGrant { tenant_id: tenant.tenant_id.clone(), provider, grant_id, org_ids: grant.org_ids })
}

fn dedupe_orgs(orgs: Vec<Org>) -> Vec<Org> {
    let mut out: Vec<Org> = Vec::with_capacity(orgs.len());
    for o in orgs {
        if !o.id.is_empty() && !out.iter().any(|x| x.id == o.id) {
            out.push(o);
        }
    }
    out
}

/// Best effort: removes webhooks registered during a failed connect and revokes the new grant, so
/// a failed connect leaves nothing behind at the provider.
async fn undo(
    deps: &ConnectDeps,
    client: &ProviderClient,
    tenant: &Tenant,
    provider: Provider,
    grant_id: &str,
    tokens: &TokenSet,
    webhooks: &Registered,
) {
    if provider == Provider::Zoho && !webhooks.is_empty() {
        if let Some(domain) = tokens.api_domain.as_deref() {
            if let Ok(hooks) = deps.zoho_hooks_for_undo(domain, &tenant.tenant_id, grant_id, tenant.plan) {
                let hooks = &hooks;
                let deletes = webhooks.iter().flat_map(|(org, ids)| {
                    ids.iter().map(move |id| async move {
                        let r = hooks.delete(&tokens.access_token, org, id).await;
                        if let Err(e) = &r {
                            tracing::warn!(code = %e.code(), error = %e, org_id = %org, "could not remove a webhook of a failed connect");
                        }
                        r.is_ok()
                    })
                });
                if !futures::future::join_all(deletes).await.into_iter().all(|ok| ok) {
                    crate::telemetry::metric("ConnectUndoIncomplete", 1.0, "Count", &[("provider", provider.as_str())]);
                }
            }
        }
    }
    if let Err(e) = client.revoke(tokens).await {
        tracing::warn!(code = %e.code(), error = %e, "could not revoke the grant of a failed connect");
    }
}

/// A reconnect moves orgs to the new grant. Older grants of the same provider that no longer serve
/// any org are marked disconnected (their tokens are dropped; they are not revoked at the provider,
/// because for QuickBooks and Xero that can end the new consent too). Zoho webhooks of the old
/// registration are removed with the new token, since the new ones replace them.
async fn supersede(
    deps: &ConnectDeps,
    tenant: &Tenant,
    provider: Provider,
    new: &Grant,
    before: &[Connection],
    tokens: &TokenSet,
    now: DateTime<Utc>,
) {
    let moved: Vec<&Connection> =
        before.iter().filter(|c| c.provider == provider && c.grant_id != new.grant_id && new.org_ids.contains(&c.org_id)).collect();
    if moved.is_empty() {
        return;
    }
    if provider == Provider::Zoho {
        if let Some(hooks) =
            tokens.api_domain.as_deref().and_then(|d| deps.zoho_hooks(d, &tenant.tenant_id, &new.grant_id, tenant.plan).ok())
        {
            for c in &moved {
                for id in zoho_webhooks::split_ids(c.webhook_id.as_deref()) {
                    if let Err(e) = hooks.delete(&tokens.access_token, &c.org_id, &id).await {
                        tracing::warn!(code = %e.code(), error = %e, org_id = %c.org_id, "could not remove a superseded webhook");
                    }
                }
            }
        }
    }
    let after = match deps.grants.list_connections(&tenant.tenant_id).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(code = %e.code(), error = %e, "could not list connections to retire superseded grants");
            return;
        }
    };
    let mut old_ids: Vec<&str> = moved.iter().map(|c| c.grant_id.as_str()).collect();
    old_ids.sort_unstable();
    old_ids.dedup();
    for old_id in old_ids {
        if after.iter().any(|c| c.provider == provider && c.grant_id == old_id && c.status != GrantStatus::Disconnected) {
            continue;
        }
        match deps.grants.get_grant(&tenant.tenant_id, provider, old_id).await {
            Ok(Some(old)) if old.status != GrantStatus::Disconnected => {
                if let Err(e) = deps.grants.disconnect(&old, now).await {
                    tracing::warn!(code = %e.code(), error = %e, grant_id = old_id, "could not retire a superseded grant");
                    continue;
                }
                let detail = format!("superseded by {}", new.grant_id);
                let _ = deps
                    .audit
                    .record(&tenant.tenant_id, provider, old_id, TokenEvent::Disconnected, "system:oauth-callback", Some(&detail), now)
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(code = %e.code(), error = %e, grant_id = old_id, "could not read a superseded grant"),
        }
    }
}

/// Sends an event; one retry, then the failure is logged and counted. The connection already
/// exists at this point, so the user is not sent back with an error because the app's queue hiccuped.
async fn publish(deps: &ConnectDeps, tenant: &Tenant, event: &AppEvent) {
    let dest = tenant.config.event_destination.as_deref();
    for attempt in 1..=2 {
        match deps.events.publish(event, dest).await {
            Ok(()) => return,
            Err(e) if attempt == 1 && e.is_retryable() => continue,
            Err(e) => {
                tracing::error!(code = %e.code(), error = %e, event_id = %event.event_id, event_type = event.event_type.as_str(), "event not delivered");
                crate::telemetry::metric("EventPublishFailed", 1.0, "Count", &[("type", event.event_type.as_str())]);
                return;
            }
        }
    }
}

/// The result of a disconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected {
    pub grant_id: String,
    pub org_ids: Vec<String>,
    pub revoked_at_provider: bool,
    /// False when the grant was already disconnected (the call is idempotent).
    pub changed: bool,
}

/// Disconnects a grant: removes Zoho webhooks, revokes at the provider, drops the tokens, marks the
/// grant and its connections disconnected (the records stay for audit), audits and tells the app.
/// A transient provider failure stops before anything local changes, so the caller can retry; a
/// grant the provider already considers dead is disconnected locally all the same.
pub async fn disconnect(
    deps: &ConnectDeps,
    tenant_id: &str,
    provider: Provider,
    grant_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Disconnected> {
    let seen = deps.grants.get_grant(tenant_id, provider, grant_id).await?.ok_or_else(|| Error::NotFound(format!("grant {grant_id}")))?;
    if seen.status == GrantStatus::Disconnected {
        return Ok(Disconnected { grant_id: grant_id.into(), org_ids: seen.org_ids.clone(), revoked_at_provider: false, changed: false });
    }
    // Under the grant's lease, like a refresh: the tokens revoked are the tokens stored, never a
    // pair a refresher is rotating away this very moment.
    let owner = format!("disconnect-{}", uuid::Uuid::new_v4().simple());
    let grant = lease_for_disconnect(deps, tenant_id, provider, grant_id, &owner, now).await?;
    let result = disconnect_leased(deps, grant, &owner, actor, now).await;
    if result.is_err() {
        let _ = deps.grants.release_lease(tenant_id, provider, grant_id, &owner).await;
    }
    result
}

/// Takes the grant's lease, waiting a few seconds for a refresh in progress to finish.
async fn lease_for_disconnect(
    deps: &ConnectDeps,
    tenant_id: &str,
    provider: Provider,
    grant_id: &str,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Grant> {
    let lease = chrono::Duration::from_std(deps.config.lease_duration).unwrap_or(chrono::Duration::seconds(60));
    let started = std::time::Instant::now();
    loop {
        let elapsed = chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
        match deps.grants.acquire_lease(tenant_id, provider, grant_id, owner, lease, now + elapsed).await {
            Ok((_, grant)) => return Ok(grant),
            // Held by a refresher (a conflict), or a storage hiccup: both pass within seconds.
            Err(e) if e.is_retryable() && started.elapsed() < std::time::Duration::from_secs(8) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn disconnect_leased(deps: &ConnectDeps, grant: Grant, owner: &str, actor: &str, now: DateTime<Utc>) -> Result<Disconnected> {
    let (tenant_id, provider, grant_id) = (grant.tenant_id.clone(), grant.provider, grant.grant_id.clone());
    let (tenant_id, grant_id) = (tenant_id.as_str(), grant_id.as_str());
    if grant.status == GrantStatus::Disconnected {
        let _ = deps.grants.release_lease(tenant_id, provider, grant_id, owner).await;
        return Ok(Disconnected { grant_id: grant_id.into(), org_ids: grant.org_ids.clone(), revoked_at_provider: false, changed: false });
    }
    let connections: Vec<Connection> =
        deps.grants.list_connections(tenant_id).await?.into_iter().filter(|c| c.provider == provider && c.grant_id == grant_id).collect();
    let mut revoked = false;
    if let Some(blob) = &grant.sealed {
        let ctx = SealContext::new(tenant_id, provider, grant_id);
        let mut tokens = deps.vault.unseal_tokens(&ctx, blob).await?;
        let client = deps.provider_client(provider).await?;
        if provider == Provider::Zoho && connections.iter().any(|c| c.webhook_id.is_some()) {
            // Zoho does not rotate refresh tokens, so refreshing here (without the refresher's lease)
            // cannot invalidate the stored token.
            if tokens.access_expires_within(now, chrono::Duration::seconds(60)) {
                match client.refresh(&tokens).await {
                    Ok(t) => tokens = t,
                    Err(e) if is_dead_grant(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some(domain) = tokens.api_domain.clone() {
                // The plan only sets how long the call audit records are kept.
                let plan = deps.tenants.get(tenant_id).await?.plan;
                let hooks = deps.zoho_hooks(&domain, tenant_id, grant_id, plan)?;
                let removing = async {
                    for c in &connections {
                        for id in zoho_webhooks::split_ids(c.webhook_id.as_deref()) {
                            match hooks.delete(&tokens.access_token, &c.org_id, &id).await {
                                Ok(()) => {}
                                // The grant is dead: the webhooks' secret goes with the tokens below, so
                                // the receiver refuses anything they still deliver.
                                Err(e) if is_dead_grant(&e) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Ok(())
                };
                // Waits for the org's limit end within a request's time, like a callback's.
                within_deadline(Utc::now() + chrono::Duration::from_std(deps.callback_budget).unwrap_or_default(), removing).await?;
            }
        }
        match client.revoke(&tokens).await {
            Ok(()) => revoked = true,
            Err(e) if is_dead_grant(&e) => {}
            Err(e) => return Err(e),
        }
    }
    deps.grants.disconnect_leased(&grant, owner, now).await?;
    if let Err(e) = deps.audit.record(tenant_id, provider, grant_id, TokenEvent::Disconnected, actor, None, now).await {
        tracing::error!(code = %e.code(), error = %e, "audit record for a disconnect failed");
    }
    let data = ConnectionDisconnected {
        grant_id: grant_id.into(),
        org_ids: grant.org_ids.clone(),
        actor: actor.into(),
        revoked_at_provider: revoked,
    };
    let event =
        AppEvent::new(EventType::ConnectionDisconnected, tenant_id, provider, now, serde_json::to_value(data).expect("plain struct"));
    match deps.tenants.get(tenant_id).await {
        Ok(tenant) => publish(deps, &tenant, &event).await,
        Err(e) => tracing::error!(code = %e.code(), error = %e, "tenant unreadable; disconnect event not sent"),
    }
    Ok(Disconnected { grant_id: grant_id.into(), org_ids: grant.org_ids, revoked_at_provider: revoked, changed: true })
}

fn is_dead_grant(e: &Error) -> bool {
    matches!(e, Error::InvalidGrant { .. } | Error::ProviderAuth { .. })
}

/// `POST /disconnect/{provider}` after the signature check: role check, then `disconnect`. The
/// request names the grant (`grant_id`) or one of its orgs (`org_id`); either way the whole grant
/// goes, because one OAuth grant is one revocation at the provider.
pub async fn disconnect_request(deps: &ConnectDeps, provider: Provider, req: &SignedRequest, now: DateTime<Utc>) -> Result<Disconnected> {
    deps.tenants.get(&req.tenant_id).await?;
    deps.tenants.authorize(&req.tenant_id, &req.user_id, Permission::Disconnect).await?;
    let grant_id = match (req.param("grant_id").filter(|g| !g.is_empty()), req.param("org_id").filter(|o| !o.is_empty())) {
        (Some(g), _) => g.to_string(),
        (None, Some(org)) => {
            deps.grants
                .get_connection(&req.tenant_id, provider, org)
                .await?
                .ok_or_else(|| Error::NotFound(format!("{provider} organisation {org}")))?
                .grant_id
        }
        (None, None) => return Err(Error::InvalidInput("grant_id or org_id is required".into())),
    };
    disconnect(deps, &req.tenant_id, provider, &grant_id, &req.user_id, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::TenantConfig;

    fn tenant(plan: Plan) -> Tenant {
        let cfg = TenantConfig { return_urls: vec!["https://app.example.com/integrations".into()], ..Default::default() };
        Tenant::new("t-1", "Acme", plan, cfg, Utc::now())
    }

    #[test]
    fn plan_scopes_read_only_for_starter_and_required_scopes_are_always_there() {
        let starter = scopes_for(&tenant(Plan::Starter), Provider::Xero);
        assert!(starter.contains(&"accounting.invoices.read".to_string()));
        assert!(!starter.contains(&"accounting.invoices".to_string()));
        assert!(starter.contains(&"offline_access".to_string()));
        let pro = scopes_for(&tenant(Plan::Professional), Provider::Xero);
        assert!(pro.contains(&"accounting.invoices".to_string()));
        let mut custom = tenant(Plan::Enterprise);
        custom.config.scopes.insert(Provider::Xero, vec!["accounting.contacts.read".into()]);
        assert_eq!(scopes_for(&custom, Provider::Xero), vec!["accounting.contacts.read", "offline_access"]);
        custom.config.scopes.insert(Provider::Zoho, vec!["ZohoBooks.invoices.READ".into()]);
        let z = scopes_for(&custom, Provider::Zoho);
        assert!(z.contains(&"ZohoBooks.settings.CREATE".to_string()) && z.contains(&"ZohoBooks.settings.DELETE".to_string()));
        assert_eq!(scopes_for(&tenant(Plan::Starter), Provider::QuickBooks), vec!["com.intuit.quickbooks.accounting"]);
    }

    #[test]
    fn default_scopes_serve_every_report_in_either_xero_vocabulary() {
        use crate::reports::job::report_scopes;
        use crate::reports::ReportKind;
        for plan in [Plan::Starter, Plan::Professional] {
            let t = tenant(plan);
            for (provider, set) in [
                (Provider::QuickBooks, XeroScopeSet::Granular),
                (Provider::Xero, XeroScopeSet::Granular),
                (Provider::Xero, XeroScopeSet::Broad),
                (Provider::Zoho, XeroScopeSet::Granular),
            ] {
                let asked = scopes_for_set(&t, provider, set);
                for kind in [ReportKind::ProfitAndLoss, ReportKind::BalanceSheet, ReportKind::AgedReceivables] {
                    assert!(
                        report_scopes(provider, kind).iter().any(|n| asked.iter().any(|a| a == n)),
                        "{provider:?} {set:?} {plan:?}: {kind:?} not covered by {asked:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn xero_scope_set_follows_the_deployment_and_granted_scopes_are_checked() {
        let pro = tenant(Plan::Professional);
        assert_eq!(
            scopes_for_set(&pro, Provider::Xero, XeroScopeSet::Broad),
            vec!["accounting.transactions", "accounting.contacts", "accounting.settings.read", "accounting.reports.read", "offline_access"]
        );
        assert_eq!(scopes_for_set(&pro, Provider::Xero, XeroScopeSet::Granular), scopes_for(&pro, Provider::Xero));
        assert!(!scopes_for(&pro, Provider::Xero).iter().any(|s| s.starts_with("accounting.transactions")));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // What we ask for is always enough, in either vocabulary.
        for set in [XeroScopeSet::Granular, XeroScopeSet::Broad] {
            for plan in [Plan::Starter, Plan::Professional] {
                let t = tenant(plan);
                check_granted_scopes(&t, Provider::Xero, &scopes_for_set(&t, Provider::Xero, set), set).unwrap();
            }
        }
        // A grant without invoices or payments is refused, naming what is missing.
        let granted = s(&["offline_access", "accounting.contacts", "accounting.settings.read"]);
        let e = check_granted_scopes(&pro, Provider::Xero, &granted, XeroScopeSet::Granular).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InsufficientScope);
        assert_eq!(e.http_status(), 403);
        let m = e.to_string();
        assert!(m.contains("accounting.invoices (invoices)") && m.contains("accounting.payments (payments)"), "{m}");
        let e = check_granted_scopes(&pro, Provider::Xero, &granted, XeroScopeSet::Broad).unwrap_err();
        assert!(e.to_string().contains("accounting.transactions (invoices)"), "{e}");
        // Only the enabled entities count; a broad scope serves a granular deployment too.
        let mut contacts_only = tenant(Plan::Professional);
        contacts_only.config.enabled_entities = vec![Entity::Contact];
        check_granted_scopes(&contacts_only, Provider::Xero, &granted, XeroScopeSet::Granular).unwrap();
        check_granted_scopes(
            &pro,
            Provider::Xero,
            &s(&["accounting.transactions.read", "accounting.contacts.read", "accounting.settings.read"]),
            XeroScopeSet::Granular,
        )
        .unwrap();
        // Other providers and tokens that report no scopes are not checked.
        check_granted_scopes(&pro, Provider::Zoho, &granted, XeroScopeSet::Granular).unwrap();
        check_granted_scopes(&pro, Provider::Xero, &[], XeroScopeSet::Granular).unwrap();
    }

    #[test]
    fn a_new_grant_is_due_by_the_earlier_of_its_refresh_expiries() {
        let now = Utc::now();
        let mut t = TokenSet {
            access_token: SecretString::new("a"),
            refresh_token: Some(SecretString::new("r")),
            access_expires_at: now,
            refresh_expires_at: Some(now + chrono::Duration::days(100)),
            refresh_hard_expires_at: Some(now + chrono::Duration::days(3)),
            scopes: Vec::new(),
            api_domain: None,
            accounts_server: None,
        };
        assert_eq!(refresh_deadline(&t), Some(now + chrono::Duration::days(3)));
        t.refresh_hard_expires_at = None;
        assert_eq!(refresh_deadline(&t), Some(now + chrono::Duration::days(100)));
        t.refresh_expires_at = None;
        t.refresh_hard_expires_at = Some(now);
        assert_eq!(refresh_deadline(&t), Some(now));
    }

    #[test]
    fn redirects_keep_the_apps_query_and_carry_only_codes() {
        let g = ConnectedGrant {
            tenant_id: "t".into(),
            provider: Provider::Xero,
            grant_id: "g-1".into(),
            org_ids: vec!["a".into(), "b".into()],
        };
        let u = success_redirect("https://app.example.com/integrations?tab=acc", &g).unwrap();
        assert_eq!(u.as_str(), "https://app.example.com/integrations?tab=acc&status=connected&provider=xero&connections=2&grant_id=g-1");
        let err = Error::ConsentDenied { provider: Provider::Xero, error: "access_denied".into() };
        let u = error_redirect("https://app.example.com/integrations", Provider::Xero, &err, "access_denied").unwrap();
        assert_eq!(
            u.as_str(),
            "https://app.example.com/integrations?status=error&provider=xero&code=E1007&reason=access_denied&retryable=false"
        );
    }

    #[test]
    fn provider_error_text_is_reduced_to_a_safe_token() {
        assert_eq!(sanitise_reason("access_denied"), "access_denied");
        assert_eq!(sanitise_reason("<script>alert(1)</script>"), "scriptalert1script");
        assert_eq!(sanitise_reason("&&&"), "provider_error");
        assert_eq!(sanitise_reason(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn redirect_uri_is_built_from_the_public_base_url() {
        let mut vars: std::collections::HashMap<&str, String> = Config::REQUIRED.iter().map(|k| (*k, format!("v-{k}"))).collect();
        vars.insert("STAGE", "dev".into());
        vars.insert("PUBLIC_BASE_URL", "https://api.example.com/prod/".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(redirect_uri(&config, Provider::Zoho).as_str(), "https://api.example.com/prod/oauth/zoho/callback");
        vars.insert("PUBLIC_BASE_URL", "http://127.0.0.1:9000".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(redirect_uri(&config, Provider::QuickBooks).as_str(), "http://127.0.0.1:9000/oauth/quickbooks/callback");
    }
}
