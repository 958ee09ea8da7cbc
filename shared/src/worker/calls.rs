//! The one way the sync worker calls a provider: scope check, tenant quota, (resilience guard),
//! a valid token with one refresh-and-retry on 401, and an audit record per attempt.
//!
//! Every provider call of the worker goes through [`provider_call`]; nothing else in `sync` touches
//! a provider client's network methods.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use chrono::Utc;

use crate::audit::status_of;
use crate::providers::client::ProviderClient;
use crate::providers::model::Entity;
use crate::tenancy::Plan;
use crate::worker::job::{JobCtx, SyncDeps};
use crate::{Error, Provider, Result, TokenSet};

/// What a call does, for the scope check and the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List,
    Get,
    /// QuickBooks change data capture.
    Cdc,
    /// Zoho: look a record up by our reference before creating it.
    Find,
    Create,
    /// A change to an existing record (`crate::writes`): update, void, delete.
    Update,
    Void,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Get => "get",
            Op::Cdc => "cdc",
            Op::Find => "find",
            Op::Create => "create",
            Op::Update => "update",
            Op::Void => "void",
            Op::Delete => "delete",
        }
    }

    fn writes(self) -> bool {
        matches!(self, Op::Create | Op::Update | Op::Void | Op::Delete)
    }

    /// Zoho's scope action for the operation (its scopes name each: CREATE, UPDATE, DELETE).
    fn zoho_action(self) -> &'static str {
        match self {
            Op::Create => "CREATE",
            Op::Update | Op::Void => "UPDATE",
            Op::Delete => "DELETE",
            Op::List | Op::Get | Op::Cdc | Op::Find => "READ",
        }
    }
}

/// How long provider-call audit records are kept, by plan (see `audit::call_retention_days`).
pub fn audit_retention_days(plan: Plan) -> i64 {
    crate::audit::call_retention_days(plan)
}

/// The scopes (any one of them) an operation on `entity` needs, the preferred one first.
pub fn required_scopes(provider: Provider, entity: Entity, op: Op) -> Vec<String> {
    let write = op.writes();
    match provider {
        Provider::QuickBooks => vec!["com.intuit.quickbooks.accounting".into()],
        Provider::Xero => {
            // Granular scopes (apps from 2026-03-02) and the broad ones of older apps.
            let (granular, broad) = match entity {
                Entity::Invoice => ("accounting.invoices", "accounting.transactions"),
                Entity::Payment => ("accounting.payments", "accounting.transactions"),
                // Bills are ACCPAY invoices: the same scopes as sales invoices.
                Entity::Bill => ("accounting.invoices", "accounting.transactions"),
                Entity::Company => ("accounting.settings", "accounting.settings"),
                Entity::CreditNote => ("accounting.invoices", "accounting.transactions"),
                Entity::BillPayment => ("accounting.payments", "accounting.transactions"),
                Entity::TaxRate => ("accounting.settings", "accounting.settings"),
                // Items are served by accounting.settings and accounting.invoices alike (Xero's
                // 2026 scope notes); settings is asked for anyway.
                Entity::Item => ("accounting.settings", "accounting.settings"),
                Entity::TrackingCategory => ("accounting.settings", "accounting.settings"),
                Entity::Journal => ("accounting.manualjournals", "accounting.transactions"),
                Entity::PurchaseOrder => ("accounting.invoices", "accounting.transactions"),
                Entity::BankTransaction => ("accounting.banktransactions", "accounting.transactions"),
                Entity::Contact => ("accounting.contacts", "accounting.contacts"),
                Entity::Account => ("accounting.settings", "accounting.settings"),
            };
            let mut v = vec![granular.to_string(), broad.to_string()];
            if !write {
                v.push(format!("{granular}.read"));
                v.push(format!("{broad}.read"));
            }
            v.dedup();
            v
        }
        Provider::Zoho => {
            // The chart of accounts sits under the `accountants` module scope (unconfirmed: Zoho's
            // scope list names it so, the chart-of-accounts page does not say).
            let module = match entity {
                Entity::Invoice => "invoices",
                Entity::Contact => "contacts",
                Entity::Account => "accountants",
                Entity::Payment => "customerpayments",
                Entity::Bill => "bills",
                Entity::Company => "settings",
                // Vendor credits are the `debitnotes` module: a grant without it fails at that
                // collection's list call, naming the entity.
                Entity::CreditNote => "creditnotes",
                Entity::BillPayment => "vendorpayments",
                // Taxes sit under Settings in Zoho's API reference (`/settings/taxes`).
                Entity::TaxRate => "settings",
                // Items under the settings module scope (unconfirmed; Zoho's scope list has no
                // items module).
                Entity::Item => "settings",
                // Reporting tags are organisation settings (unconfirmed scope).
                Entity::TrackingCategory => "settings",
                // Journals are under the accountant module (Zoho's scope list).
                Entity::Journal => "accountants",
                Entity::PurchaseOrder => "purchaseorders",
                // Expenses first; bank transactions are the `banking` module: a grant without it
                // fails at that collection's list call, naming the entity.
                Entity::BankTransaction => "expenses",
            };
            let action = op.zoho_action();
            vec![format!("ZohoBooks.{module}.{action}"), format!("ZohoBooks.{module}.ALL"), "ZohoBooks.fullaccess.all".into()]
        }
    }
}

/// Fails at once, naming the scope, when the grant's scopes cannot cover the operation. A grant
/// that recorded no scopes (the provider did not say) is not refused here; the provider decides.
pub fn check_scope(provider: Provider, granted: &[String], entity: Entity, op: Op) -> Result<()> {
    if granted.is_empty() {
        return Ok(());
    }
    let needed = required_scopes(provider, entity, op);
    if needed.iter().any(|n| granted.iter().any(|g| g.eq_ignore_ascii_case(n))) {
        return Ok(());
    }
    Err(Error::MissingScope { provider, scope: needed[0].clone(), operation: format!("{} {entity}", op.as_str()) })
}

/// Method and path of an operation, for the audit record (ids are not secret; tokens never appear).
pub fn method_path(provider: Provider, org_id: &str, entity: Entity, op: Op, id: Option<&str>) -> (&'static str, String) {
    let id = id.unwrap_or("");
    match provider {
        Provider::QuickBooks => {
            let seg = crate::providers::quickbooks::entity_names(entity).1;
            match op {
                Op::List | Op::Find => ("GET", format!("/v3/company/{org_id}/query")),
                Op::Get => ("GET", format!("/v3/company/{org_id}/{seg}/{id}")),
                Op::Cdc => ("GET", format!("/v3/company/{org_id}/cdc")),
                Op::Create | Op::Update => ("POST", format!("/v3/company/{org_id}/{seg}")),
                Op::Void => ("POST", format!("/v3/company/{org_id}/{seg}?operation=void")),
                Op::Delete => ("POST", format!("/v3/company/{org_id}/{seg}?operation=delete")),
            }
        }
        Provider::Xero => {
            let seg = crate::providers::xero::entity_names(entity).0;
            match op {
                Op::Get => ("GET", format!("/api.xro/2.0/{seg}/{id}")),
                Op::Create => ("PUT", format!("/api.xro/2.0/{seg}")),
                Op::Update | Op::Void | Op::Delete => ("POST", format!("/api.xro/2.0/{seg}/{id}")),
                _ => ("GET", format!("/api.xro/2.0/{seg}")),
            }
        }
        Provider::Zoho => {
            let seg = crate::providers::zoho::entity_names(entity).0;
            match op {
                Op::Get => ("GET", format!("/books/v3/{seg}/{id}")),
                Op::Create => ("POST", format!("/books/v3/{seg}")),
                Op::Update => ("PUT", format!("/books/v3/{seg}/{id}")),
                Op::Void => ("POST", format!("/books/v3/{seg}/{id}/status/void")),
                Op::Delete => ("DELETE", format!("/books/v3/{seg}/{id}")),
                _ => ("GET", format!("/books/v3/{seg}")),
            }
        }
    }
}

/// Runs one provider operation for a job. `f` gets the provider client and a valid token set and
/// may be called twice (once more after a 401 and a refresh).
pub async fn provider_call<T, F, Fut>(deps: &SyncDeps, job: &JobCtx, entity: Entity, op: Op, id: Option<&str>, f: F) -> Result<T>
where
    F: FnMut(ProviderClient, TokenSet) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    check_scope(job.provider, &job.scopes, entity, op)?;
    let (method, path) = method_path(job.provider, &job.org_id, entity, op, id);
    // Zoho has no idempotency key: a timed-out create may have landed, so it is not retried in
    // place; the job's retry looks the record up by our reference first.
    let once = job.provider == Provider::Zoho && op == Op::Create;
    guarded_call(deps, job, GuardedOp { name: op.as_str(), method, path: &path, creates: op.writes(), once }, f)
        .await
        .map_err(|e| scope_refusal(job.provider, entity, op, e))
}

/// Zoho answers code 57 ("not authorized to perform this operation") both for a token that is no
/// longer valid and for a grant or user without the module's permission. The token path has
/// refreshed once and tried again by now (`TokenService::with_token`), so a 57 that is still there
/// is the permission: that entity's job fails naming the scope it needs, and the connection's other
/// entities go on (never a re-authorisation of the whole connection).
pub fn scope_refusal(provider: Provider, entity: Entity, op: Op, e: Error) -> Error {
    match e {
        Error::ProviderAuth { provider: Provider::Zoho, reason } if provider == Provider::Zoho && reason.starts_with("code 57:") => {
            let scope = required_scopes(provider, entity, op).remove(0);
            Error::MissingScope { provider, scope, operation: format!("{} {entity}", op.as_str()) }
        }
        e => e,
    }
}

/// What a guarded call is, for the guard's keys and the audit record.
#[derive(Debug, Clone, Copy)]
pub struct GuardedOp<'a> {
    /// The operation's name (`list`, `report`, `passthrough`, ...).
    pub name: &'static str,
    pub method: &'a str,
    /// The path for the audit record: ids only, never a query string or a token.
    pub path: &'a str,
    pub creates: bool,
    /// Not retried in place (a write the provider cannot deduplicate).
    pub once: bool,
}

/// The guarded path under every provider call: tenant quota, a valid token with one refresh and
/// retry on 401, an audit record per attempt, and the resilience guard (breaker, limiter, slot,
/// retries). Callers check scopes first.
///
/// The quota counts calls sent to the provider, once each. The first is charged before the guard,
/// so a spent quota stops the job here (QuotaExceeded, 6002) without spending the org's rate; it is
/// given back when nothing was sent (the breaker, the limiter or the slots refused, or no token), so
/// a 429 storm or an open breaker costs the tenant nothing. Each further attempt that is sent (the
/// guard's retries, the retry after a 401) is charged just before it goes, and is not sent when the
/// quota is spent.
pub async fn guarded_call<T, F, Fut>(deps: &SyncDeps, job: &JobCtx, gop: GuardedOp<'_>, f: F) -> Result<T>
where
    F: FnMut(ProviderClient, TokenSet) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let provider = job.provider;
    let charged_at = Utc::now();
    deps.tenants.consume_api_calls(&job.tenant, 1, charged_at).await?;
    let result = Box::pin(charged_call(deps, job, gop, f)).await;
    let (result, sent) = match result {
        Ok((r, sent)) => (r, sent),
        Err(e) => (Err(e), 0),
    };
    if sent == 0 {
        if let Err(e) = Box::pin(deps.tenants.refund_api_calls(&job.tenant.tenant_id, 1, charged_at)).await {
            tracing::warn!(provider = %provider, code = %e.code(), error = %e, "could not give back the quota of a call that was not sent");
        }
    }
    result
}

/// The call itself; also returns how many attempts were sent to the provider.
async fn charged_call<T, F, Fut>(deps: &SyncDeps, job: &JobCtx, gop: GuardedOp<'_>, f: F) -> Result<(Result<T>, u32)>
where
    F: FnMut(ProviderClient, TokenSet) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let provider = job.provider;
    let client = deps.tokens.provider_client(provider).await?;
    let sent = AtomicU32::new(0);
    let GuardedOp { name, method, path, creates, once } = gop;
    let sent = &sent;
    let client = &client;
    // The guard may run the call more than once (its retries), so it gets a closure that builds a
    // fresh future each time; `f` is shared behind a lock held only while a future is built.
    let f = std::sync::Mutex::new(f);
    let f = &f;
    // Boxed: these futures nest (guard, token service, provider client) and would otherwise put
    // tens of kilobytes on the polling thread's stack per level.
    let call = || async move {
        Box::pin(deps.tokens.with_token(&job.tenant.tenant_id, provider, &job.grant_id, |tokens| {
            let fut = (f.lock().unwrap_or_else(|p| p.into_inner()))(client.clone(), tokens);
            async move {
                // The first send uses the call's charge; every further one is charged before it goes.
                if sent.load(Ordering::SeqCst) > 0 {
                    Box::pin(deps.tenants.consume_api_calls(&job.tenant, 1, Utc::now())).await?;
                }
                let n = sent.fetch_add(1, Ordering::SeqCst) + 1;
                let started = Instant::now();
                let r = fut.await;
                let latency_ms = started.elapsed().as_millis() as u64;
                audit_call(deps, job, name, method, path, status_of(&r, creates), latency_ms, n, r.as_ref().err()).await;
                r
            }
        }))
        .await
    };
    // Limiter -> slot -> breaker -> call -> classify: the one path every provider call of a sync job takes.
    let result = if once {
        Box::pin(deps.guard.call_once(&job.tenant.tenant_id, provider, &job.org_id, name, call)).await
    } else {
        Box::pin(deps.guard.call(&job.tenant.tenant_id, provider, &job.org_id, name, call)).await
    };
    Ok((result, sent.load(Ordering::SeqCst)))
}

/// One audit record per attempt (see `audit::put_provider_call`).
#[allow(clippy::too_many_arguments)]
async fn audit_call(
    deps: &SyncDeps,
    job: &JobCtx,
    op: &str,
    method: &str,
    path: &str,
    status: u16,
    latency_ms: u64,
    attempt: u32,
    err: Option<&Error>,
) {
    let record = crate::audit::ProviderCallRecord {
        tenant_id: &job.tenant.tenant_id,
        provider: job.provider,
        grant_id: &job.grant_id,
        org_id: &job.org_id,
        actor: "system:sync-worker",
        op,
        method,
        path,
        status,
        latency_ms,
        attempt,
        error: err,
        retention_days: audit_retention_days(job.tenant.plan),
    };
    crate::audit::put_provider_call(&deps.db, &deps.audit_table, &record).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_zoho_refusal_that_survives_a_refresh_names_the_entitys_scope() {
        let e = scope_refusal(
            Provider::Zoho,
            Entity::Bill,
            Op::List,
            Error::ProviderAuth { provider: Provider::Zoho, reason: "code 57: You are not authorized to perform this operation".into() },
        );
        assert_eq!(e.code(), crate::ErrorCode::MissingScope);
        assert!(e.to_string().contains("ZohoBooks.bills.READ"), "{e}");
        // An invalid token (code 14) and other providers' 401s stay authentication failures.
        for (p, reason) in [(Provider::Zoho, "code 14: Invalid OAuth token"), (Provider::Xero, "code 57: x")] {
            let e = scope_refusal(p, Entity::Bill, Op::List, Error::ProviderAuth { provider: p, reason: reason.into() });
            assert_eq!(e.code(), crate::ErrorCode::ProviderAuthFailed, "{p} {reason}");
        }
    }

    use super::*;

    #[test]
    fn a_missing_scope_is_named() {
        let granted = vec!["offline_access".to_string(), "accounting.contacts.read".to_string()];
        check_scope(Provider::Xero, &granted, Entity::Contact, Op::List).unwrap();
        let e = check_scope(Provider::Xero, &granted, Entity::Contact, Op::Create).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::MissingScope);
        assert!(e.to_string().contains("accounting.contacts"), "{e}");
        let e = check_scope(Provider::Xero, &granted, Entity::Invoice, Op::List).unwrap_err();
        assert!(e.to_string().contains("accounting.invoices"), "{e}");
        assert!(!e.is_retryable());
        let zoho = vec!["ZohoBooks.invoices.READ".to_string()];
        check_scope(Provider::Zoho, &zoho, Entity::Invoice, Op::List).unwrap();
        let e = check_scope(Provider::Zoho, &zoho, Entity::Invoice, Op::Create).unwrap_err();
        assert!(e.to_string().contains("ZohoBooks.invoices.CREATE"), "{e}");
        check_scope(Provider::Zoho, &["zohobooks.fullaccess.ALL".to_string()], Entity::Payment, Op::Create).unwrap();
        check_scope(Provider::QuickBooks, &[], Entity::Invoice, Op::Create).unwrap();
        // A Xero grant without the manual journals scope fails journal jobs, naming it.
        let e = check_scope(Provider::Xero, &["accounting.settings.read".to_string()], Entity::Journal, Op::List).unwrap_err();
        assert!(e.to_string().contains("accounting.manualjournals"), "{e}");
        check_scope(Provider::Xero, &["accounting.manualjournals.read".to_string()], Entity::Journal, Op::List).unwrap();
        assert!(check_scope(Provider::QuickBooks, &["openid".into()], Entity::Invoice, Op::List).is_err());
    }
}
