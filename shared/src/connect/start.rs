//! `GET /connect/{provider}`: the app's signed request becomes a state and the provider's consent URL.

use chrono::{DateTime, Utc};
use url::Url;

use crate::providers::client::AccountingProvider;
use crate::providers::model::AuthorizeRequest;
use crate::tenancy::{ensure_integration_capacity, Permission};
use crate::{Error, Provider, Result, SecretString};

use super::app_auth::SignedRequest;
use super::scopes::scopes_for_set;
use super::state::StoredState;
use super::{app_auth, occupies_slot, state, ConnectDeps};

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
