//! Taking a connection back: the undo of a callback that failed after the code exchange, and a
//! disconnect the app asks for (`POST /disconnect/{provider}`).

use chrono::{DateTime, Utc};

use crate::audit::TokenEvent;
use crate::events::{AppEvent, ConnectionDisconnected, EventType};
use crate::providers::client::{AccountingProvider, ProviderClient};
use crate::providers::zoho_webhooks;
use crate::resilience::within_deadline;
use crate::store::grants::{Connection, Grant, GrantStatus};
use crate::tenancy::{Permission, Tenant};
use crate::vault::SealContext;
use crate::{Error, Provider, Result, TokenSet};

use super::app_auth::SignedRequest;
use super::callback::Registered;
use super::{publish, ConnectDeps};

/// Best effort: removes webhooks registered during a failed connect and revokes the new grant, so
/// a failed connect leaves nothing behind at the provider.
pub(super) async fn undo(
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
            if let Ok(hooks) = deps.zoho_hooks_unlimited(domain, &tenant.tenant_id, grant_id, tenant.plan) {
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
    // The prefix tells the sync worker a disconnect holds the grant: it then stores no new
    // webhook registration this disconnect would not see (`store::webhook_registrations`).
    let owner = format!("{}{}", crate::store::webhook_registrations::DISCONNECT_LEASE_PREFIX, uuid::Uuid::new_v4().simple());
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
                // Not waiting for the org's limit: with the sync worker's registrations (each
                // enabled entity's module: up to 33 registrations, 66 calls) the evenly spaced
                // limit (one call per 0.6 s) would take about 40 s, past what a request may take;
                // the calls go one after the other, well inside Zoho's 100 a minute on their own.
                // A 429 fails the disconnect before anything local changes, and its retry finds
                // the ones already gone removed.
                let hooks = deps.zoho_hooks_unlimited(&domain, tenant_id, grant_id, plan)?;
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
