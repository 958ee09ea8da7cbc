//! Zoho Books webhooks for the modules of a tenant's enabled entities beyond the four the connect
//! callback registers.
//!
//! Zoho delivers webhooks only through workflow rules registered in each organisation
//! (`providers::zoho_webhooks`). The callback's 20 s budget holds the four modules it registers
//! (24 calls at the org's one call per 0.6 s); the rest are registered here, by the first job of
//! each Zoho pull (the initial sync's and every scheduled incremental pull's), for the job's
//! entity's modules (`zoho_webhooks::modules_for`) that the connection's stored registrations lack.
//!
//! Never the pull's failure: whatever goes wrong is logged (with the reason: a grant without
//! `ZohoBooks.settings.CREATE`, Zoho refusing, no time left) and the next pull tries again; until
//! then the scheduled incremental pull keeps the entity current as before. Every call goes through
//! the resilience guard under the org's limit and leaves a provider-call audit record
//! (`zoho_webhooks::Guarded`). The calls are ours, not the tenant's, so they are not charged to the
//! tenant's API quota.

use chrono::{DateTime, Utc};

use crate::audit::AuditLog;
use crate::jobs::{lineage_root, Operation};
use crate::providers::endpoints::Endpoints;
use crate::providers::zoho_webhooks::{self, Guarded, ZohoWebhooks};
use crate::store::grants::{Connection, GrantStatus};
use crate::worker::job::{JobCtx, SyncDeps};
use crate::{Error, Provider, Result, SecretString};

/// The audit actor of these registrations.
const ACTOR: &str = "system:sync-worker";
/// The scopes any one of which lets a grant create webhooks and workflow rules.
const SETTINGS_CREATE: [&str; 3] = ["ZohoBooks.settings.CREATE", "ZohoBooks.settings.ALL", "ZohoBooks.fullaccess.all"];
/// Tries of the conditional write against concurrent pulls of the same organisation.
const STORE_TRIES: usize = 4;

/// Whether this job should see to its entity's webhooks: a Zoho pull's first job (a follow-up of
/// a long pull has the same entity, so its first job has done it).
pub(crate) fn applies(ctx: &JobCtx) -> bool {
    ctx.provider == Provider::Zoho
        && ctx.job.operation == Operation::Pull
        && lineage_root(&ctx.job.idempotency_key) == ctx.job.idempotency_key
        && !zoho_webhooks::modules_for(ctx.entity).is_empty()
}

/// Registers what the job's entity's modules lack, calls done by `calls_by`. Logs, never fails.
pub(crate) async fn ensure_registered(deps: &SyncDeps, ctx: &JobCtx, calls_by: DateTime<Utc>) {
    if !applies(ctx) {
        return;
    }
    let (tenant_id, org_id) = (ctx.tenant.tenant_id.as_str(), ctx.org_id.as_str());
    let correlation_id = ctx.job.correlation_id.as_str();
    match crate::resilience::within_deadline(calls_by, Box::pin(register_missing(deps, ctx))).await {
        Ok(Registered::Nothing) => {}
        Ok(Registered::Modules(modules)) => {
            tracing::info!(tenant_id, provider = "zoho", correlation_id, org_id, modules = ?modules, "Zoho webhooks and workflow rules registered");
        }
        // Connections stored without a secret (before Zoho webhooks existed) are normal, not a fault.
        Ok(Registered::NoSecret) => {
            tracing::info!(
                tenant_id,
                provider = "zoho",
                correlation_id,
                org_id,
                "no webhook secret on the connection: Zoho webhooks need a reconnect; the scheduled pull covers the entity"
            );
        }
        Ok(Registered::Skipped(reason)) => {
            tracing::warn!(tenant_id, provider = "zoho", correlation_id, org_id, entity = %ctx.entity, reason, "Zoho webhooks not registered; the scheduled pull covers the entity");
        }
        Err(e) => {
            let reason = failure_reason(&e);
            tracing::warn!(tenant_id, provider = "zoho", correlation_id, org_id, entity = %ctx.entity, code = %e.code(), error = %e, reason, "Zoho webhook registration failed; the next pull tries again");
        }
    }
}

enum Registered {
    Nothing,
    Modules(Vec<&'static str>),
    Skipped(&'static str),
    NoSecret,
}

/// A short reason for the log: Zoho answers code 57 for a grant or user without the permission.
fn failure_reason(e: &Error) -> &'static str {
    match e {
        Error::ProviderAuth { reason, .. } if reason.starts_with("code 57:") => {
            "Zoho refused: the grant or its user lacks ZohoBooks.settings.CREATE (or the org's plan has no workflow rules)"
        }
        _ if crate::resilience::is_deadline(e) => "no time left before the job's deadline",
        _ => "Zoho or the store refused",
    }
}

/// Whether the grant's scopes allow creating webhooks. A grant that recorded no scopes is not
/// refused here; Zoho decides.
pub(crate) fn may_create_webhooks(scopes: &[String]) -> bool {
    scopes.is_empty() || scopes.iter().any(|g| SETTINGS_CREATE.iter().any(|s| g.eq_ignore_ascii_case(s)))
}

async fn register_missing(deps: &SyncDeps, ctx: &JobCtx) -> Result<Registered> {
    let (tenant_id, org_id) = (ctx.tenant.tenant_id.as_str(), ctx.org_id.as_str());
    let Some(conn) = usable(deps.grants.get_connection(tenant_id, Provider::Zoho, org_id).await?, ctx) else {
        return Ok(Registered::Nothing);
    };
    let missing: Vec<&'static str> = zoho_webhooks::modules_for(ctx.entity)
        .iter()
        .copied()
        .filter(|m| !zoho_webhooks::is_registered(conn.webhook_id.as_deref(), m))
        .collect();
    if missing.is_empty() {
        return Ok(Registered::Nothing);
    }
    if !may_create_webhooks(&ctx.scopes) {
        return Ok(Registered::Skipped("the grant lacks ZohoBooks.settings.CREATE (reconnect to grant it)"));
    }
    let Some(sealed) = conn.webhook_secret.as_ref() else {
        return Ok(Registered::NoSecret);
    };
    let secret = deps.tokens.vault().unseal_bytes(&crate::webhooks::zoho_secret_context(tenant_id, org_id), sealed).await?;
    let secret = SecretString::new(String::from_utf8(secret.to_vec()).map_err(|_| Error::Crypto("webhook secret is not text".into()))?);
    let tokens = deps.tokens.valid_access_token(tenant_id, Provider::Zoho, &ctx.grant_id).await?.tokens;
    let api_domain = tokens
        .api_domain
        .as_deref()
        .ok_or_else(|| Error::ProviderMalformed { provider: Provider::Zoho, message: "stored tokens have no api_domain".into() })?;
    let audit = AuditLog::new(deps.db.clone(), deps.audit_table.clone());
    let guarded = Guarded {
        guard: &deps.guard,
        audit: &audit,
        tenant_id,
        grant_id: &ctx.grant_id,
        plan: ctx.tenant.plan,
        actor: ACTOR,
        limited: true,
    };
    let config = deps.tokens.config();
    let hooks = ZohoWebhooks::new(deps.tokens.http(), &Endpoints::from_config(config, Provider::Zoho), api_domain, guarded)?;
    let url = zoho_webhooks::callback_url(&config.public_base_url, org_id);
    let mut made: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut failure = None;
    for module in &missing {
        match hooks.register_module(&tokens.access_token, org_id, &url, module, &secret).await {
            Ok(ids) => made.push((module, ids)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let stored = store(deps, ctx, &hooks, &tokens.access_token, made).await?;
    match failure {
        Some(e) => Err(e),
        None if stored.is_empty() => Ok(Registered::Nothing),
        None => Ok(Registered::Modules(stored)),
    }
}

/// The connection if registrations may be added to it: active and served by the job's grant.
fn usable(conn: Option<Connection>, ctx: &JobCtx) -> Option<Connection> {
    conn.filter(|c| c.status == GrantStatus::Active && c.grant_id == ctx.grant_id)
}

/// Appends what was registered to the connection with a conditional write, reading again after a
/// concurrent change. A module another pull stored meanwhile is removed again here (one
/// registration per module); when the connection is gone, disconnected, moved to another grant or
/// being disconnected, everything made here is removed again. Returns the modules stored.
async fn store(
    deps: &SyncDeps,
    ctx: &JobCtx,
    hooks: &ZohoWebhooks<'_>,
    token: &SecretString,
    mut made: Vec<(&'static str, Vec<String>)>,
) -> Result<Vec<&'static str>> {
    let (tenant_id, org_id) = (ctx.tenant.tenant_id.as_str(), ctx.org_id.as_str());
    let mut last = None;
    for _ in 0..STORE_TRIES {
        if made.is_empty() {
            return Ok(Vec::new());
        }
        let conn = match deps.grants.get_connection(tenant_id, Provider::Zoho, org_id).await {
            Ok(c) => c,
            Err(e) => {
                last = Some(e);
                break;
            }
        };
        let Some(conn) = usable(conn, ctx) else {
            remove(hooks, token, org_id, made.iter().flat_map(|(_, ids)| ids)).await;
            return Ok(Vec::new());
        };
        let before = conn.webhook_id.as_deref();
        let (dupes, fresh): (Vec<_>, Vec<_>) = made.into_iter().partition(|(m, _)| zoho_webhooks::is_registered(before, m));
        remove(hooks, token, org_id, dupes.iter().flat_map(|(_, ids)| ids)).await;
        made = fresh;
        if made.is_empty() {
            return Ok(Vec::new());
        }
        let mut all = zoho_webhooks::split_ids(before);
        all.extend(made.iter().flat_map(|(_, ids)| ids.iter().cloned()));
        let after = zoho_webhooks::join_ids(&all).unwrap_or_default();
        match deps.grants.replace_webhook_registrations(tenant_id, Provider::Zoho, org_id, &ctx.grant_id, before, &after, Utc::now()).await
        {
            Ok(()) => return Ok(made.iter().map(|(m, _)| *m).collect()),
            Err(Error::Conflict(_)) => continue,
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    // Not stored: what is not stored no disconnect would remove, so it goes now.
    remove(hooks, token, org_id, made.iter().flat_map(|(_, ids)| ids)).await;
    Err(last.unwrap_or_else(|| Error::Conflict("the connection kept changing while storing webhook registrations".into())))
}

async fn remove<'a>(hooks: &ZohoWebhooks<'_>, token: &SecretString, org_id: &str, ids: impl Iterator<Item = &'a String>) {
    for id in ids {
        if let Err(e) = hooks.delete(token, org_id, id).await {
            tracing::warn!(code = %e.code(), error = %e, org_id, "could not remove a Zoho webhook registration that was not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_webhooks_needs_the_settings_create_scope() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(may_create_webhooks(&s(&["ZohoBooks.bills.READ", "ZohoBooks.settings.CREATE"])));
        assert!(may_create_webhooks(&s(&["zohobooks.fullaccess.all"])));
        assert!(!may_create_webhooks(&s(&["ZohoBooks.bills.READ", "ZohoBooks.settings.READ"])));
        // Scopes not recorded: Zoho decides.
        assert!(may_create_webhooks(&[]));
    }
}
