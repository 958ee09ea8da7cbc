//! `GET /oauth/{provider}/callback`: consume the state, exchange the code, discover the orgs, seal
//! and store the grant (superseding older grants of the same orgs), register Zoho webhooks, tell the
//! app, and redirect back to it with the result.

use chrono::{DateTime, Utc};
use url::Url;

use crate::audit::TokenEvent;
use crate::events::{AppEvent, ConnectedOrg, ConnectionCreated, EventType};
use crate::providers::client::{AccountingProvider, ProviderClient};
use crate::providers::model::{CallbackParams, Org};
use crate::providers::zoho_webhooks::{self, WebhookSpec};
use crate::resilience::within_deadline;
use crate::store::grants::{Connection, Grant, GrantStatus};
use crate::tenancy::{ensure_integration_capacity, Permission, Tenant, TenantRouting};
use crate::vault::{SealContext, SealedBlob};
use crate::{Error, Provider, Result, SecretString, TokenSet};

use super::disconnect::undo;
use super::scopes::{check_granted_scopes, scopes_for_set};
use super::state::StoredState;
use super::{occupies_slot, publish, state, wall_deadline, ConnectDeps, ACTOR};

/// When the grant's refresh token must be used by: its rolling expiry, or QuickBooks' hard cap
/// (`x_refresh_token_hard_expires_in`) when that comes first. The stored grant is due by this, the
/// same rule the refresher applies when it writes a refreshed grant.
fn refresh_deadline(t: &TokenSet) -> Option<DateTime<Utc>> {
    match (t.refresh_expires_at, t.refresh_hard_expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
pub(super) type Registered = Vec<(String, Vec<String>)>;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
