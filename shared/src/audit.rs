//! Audit records for every token event, kept under the tenant with a retention TTL.

use chrono::{DateTime, Utc};

use crate::store::{dynamo_error, epoch, get_s, get_s_opt, n, s, tenant_pk, Item};
use crate::{Provider, Result};

/// How long audit records are kept before DynamoDB's TTL may delete them.
pub const RETENTION_DAYS: i64 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEvent {
    Connected,
    Refreshed,
    RefreshFailed,
    NeedsReauth,
    Disconnected,
    Resealed,
}

impl TokenEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEvent::Connected => "connected",
            TokenEvent::Refreshed => "refreshed",
            TokenEvent::RefreshFailed => "refresh_failed",
            TokenEvent::NeedsReauth => "needs_reauth",
            TokenEvent::Disconnected => "disconnected",
            TokenEvent::Resealed => "resealed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub tenant_id: String,
    pub event: String,
    pub provider: Provider,
    pub grant_id: String,
    /// A user id of the main app, or `system:<function>` for automatic actions.
    pub actor: String,
    pub correlation_id: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct AuditLog {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl AuditLog {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        AuditLog { db, table: table.into() }
    }

    /// Records a token event. The correlation id comes from the current request context.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        tenant_id: &str,
        provider: Provider,
        grant_id: &str,
        event: TokenEvent,
        actor: &str,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let item = audit_item(tenant_id, provider, grant_id, event, actor, detail, now);
        self.db.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(|e| dynamo_error("PutItem(audit)", e))?;
        Ok(())
    }

    /// The table audit records live in (for writers that put one inside their own transaction).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The tenant's audit trail, oldest first (every page: a trail outgrows DynamoDB's 1 MB page).
    pub async fn list(&self, tenant_id: &str) -> Result<Vec<AuditRecord>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s("AUDIT#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(audit)", e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        items
            .iter()
            .map(|i| {
                Ok(AuditRecord {
                    tenant_id: get_s(i, "tenant_id")?,
                    event: get_s(i, "event")?,
                    provider: get_s(i, "provider")?.parse()?,
                    grant_id: get_s(i, "grant_id")?,
                    actor: get_s(i, "actor")?,
                    correlation_id: get_s(i, "correlation_id")?,
                    detail: get_s_opt(i, "detail"),
                    at: chrono::DateTime::parse_from_rfc3339(&get_s(i, "at")?).map(|t| t.with_timezone(&Utc)).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// One audit record as an item, for `record` or for a transaction that writes it together with the
/// change it records. The correlation id comes from the current request context.
pub fn audit_item(
    tenant_id: &str,
    provider: Provider,
    grant_id: &str,
    event: TokenEvent,
    actor: &str,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Item {
    let correlation_id = crate::context::current().map(|c| c.correlation_id).unwrap_or_else(crate::context::mint_correlation_id);
    let mut item = Item::new();
    item.insert("pk".into(), s(tenant_pk(tenant_id)));
    item.insert("sk".into(), s(format!("AUDIT#{}#{}", now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), uuid::Uuid::new_v4())));
    item.insert("tenant_id".into(), s(tenant_id));
    item.insert("event".into(), s(event.as_str()));
    item.insert("provider".into(), s(provider.as_str()));
    item.insert("grant_id".into(), s(grant_id));
    item.insert("actor".into(), s(actor));
    item.insert("correlation_id".into(), s(correlation_id));
    if let Some(d) = detail {
        item.insert("detail".into(), s(d));
    }
    item.insert("at".into(), s(now.to_rfc3339()));
    item.insert("expires_at".into(), n(epoch(now + chrono::Duration::days(RETENTION_DAYS))));
    item
}

/// How long provider-call audit records are kept, by plan. The token-event audit keeps 400 days
/// ([`RETENTION_DAYS`]) for every plan; call records are far more numerous, so smaller plans keep
/// them for a shorter time. Our own choice, not a provider rule.
pub fn call_retention_days(plan: crate::tenancy::Plan) -> i64 {
    use crate::tenancy::Plan;
    match plan {
        Plan::Starter => 90,
        Plan::Professional => 400,
        Plan::Enterprise => 2555,
    }
}

/// One attempt of a provider call, for its audit record: who, what, how it went; never tokens,
/// query strings or bodies. Written by the sync worker and the connect flow alike.
#[derive(Debug, Clone, Copy)]
pub struct ProviderCallRecord<'a> {
    pub tenant_id: &'a str,
    pub provider: Provider,
    pub grant_id: &'a str,
    pub org_id: &'a str,
    /// `system:<function>`.
    pub actor: &'a str,
    pub op: &'a str,
    pub method: &'a str,
    /// Ids only, never a query string or a token.
    pub path: &'a str,
    pub status: u16,
    pub latency_ms: u64,
    pub attempt: u32,
    pub error: Option<&'a crate::Error>,
    pub retention_days: i64,
}

/// The HTTP status a call's outcome stands for (0 when no answer came: timeout, transport).
pub fn status_of<T>(r: &Result<T>, creates: bool) -> u16 {
    use crate::Error;
    match r {
        Ok(_) if creates => 201,
        Ok(_) => 200,
        Err(Error::ProviderAuth { .. }) => 401,
        Err(Error::NotFound(_)) => 404,
        Err(Error::ProviderRateLimited { .. }) => 429,
        Err(Error::ProviderPermanent { status, .. }) | Err(Error::ProviderTransient { status, .. }) => status.unwrap_or(0),
        Err(Error::ProviderMalformed { .. }) => 200,
        Err(_) => 0,
    }
}

/// One provider-call audit record as an item. The correlation id comes from the current request
/// context.
pub fn provider_call_item(r: &ProviderCallRecord<'_>, now: DateTime<Utc>) -> Item {
    let correlation_id = crate::context::current().map(|c| c.correlation_id).unwrap_or_else(crate::context::mint_correlation_id);
    let ProviderCallRecord {
        tenant_id,
        provider,
        grant_id,
        org_id,
        actor,
        op,
        method,
        path,
        status,
        latency_ms,
        attempt,
        error,
        retention_days,
    } = *r;
    let mut item = Item::new();
    item.insert("pk".into(), s(tenant_pk(tenant_id)));
    item.insert("sk".into(), s(format!("AUDIT#{}#{}", now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), uuid::Uuid::new_v4())));
    item.insert("tenant_id".into(), s(tenant_id));
    item.insert("event".into(), s("provider_call"));
    item.insert("provider".into(), s(provider.as_str()));
    item.insert("grant_id".into(), s(grant_id));
    item.insert("actor".into(), s(actor));
    item.insert("correlation_id".into(), s(correlation_id));
    item.insert("org_id".into(), s(org_id));
    item.insert("operation".into(), s(op));
    item.insert("method".into(), s(method));
    item.insert("path".into(), s(path));
    item.insert("status".into(), n(status));
    item.insert("latency_ms".into(), n(latency_ms));
    item.insert("attempt".into(), n(attempt));
    if let Some(e) = error {
        item.insert("error_code".into(), n(e.code().as_u16()));
    }
    item.insert("detail".into(), s(format!("{op} {method} {path} -> {status} in {latency_ms} ms (attempt {attempt})")));
    item.insert("at".into(), s(now.to_rfc3339()));
    item.insert("expires_at".into(), n(epoch(now + chrono::Duration::days(retention_days))));
    item
}

/// Writes one provider-call audit record. A failure is logged, not fatal: the call already
/// happened and its effect is recorded elsewhere.
pub async fn put_provider_call(db: &aws_sdk_dynamodb::Client, table: &str, r: &ProviderCallRecord<'_>) {
    let item = provider_call_item(r, Utc::now());
    if let Err(e) = db.put_item().table_name(table).set_item(Some(item)).send().await {
        let e = dynamo_error("PutItem(call audit)", e);
        tracing::warn!(code = %e.code(), error = %e, "could not write the provider-call audit record");
    }
}

impl AuditLog {
    /// Records one attempt of a provider call (see [`put_provider_call`]).
    pub async fn provider_call(&self, r: &ProviderCallRecord<'_>) {
        put_provider_call(&self.db, &self.table, r).await
    }
}
