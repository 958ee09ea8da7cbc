//! The records API's one entry point: route, signature, tenant and role, then the read.
//!
//! Order matters for what a bad request can make us read: the route and the signature come first
//! (no tenant data read), then the path's tenant is compared with the signed one, so a request for
//! another tenant's connection is refused (403) before anything of either tenant is read; the
//! parameters and the cursor are checked before the tenant's role is read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::query::{check_known, parse_route, ListParams, Route};
use super::reader::RecordsReader;
use crate::aws::AwsClients;
use crate::connect::app_auth;
use crate::secrets::SecretsCache;
use crate::store::grants::{Connection, GrantStatus, GrantStore};
use crate::tenancy::{Permission, TenantStore};
use crate::{Config, Error, Result};

/// How long the app's signing keys are cached (as for the connect routes).
const SECRETS_TTL: std::time::Duration = std::time::Duration::from_secs(300);

pub struct RecordsApi {
    pub config: Config,
    pub tenants: TenantStore,
    pub grants: GrantStore,
    pub reader: RecordsReader,
    pub freshness: crate::sync::freshness::FreshnessStore,
    pub secrets: SecretsCache,
}

impl RecordsApi {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
        RecordsApi {
            tenants: TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            grants: GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
            reader: RecordsReader::new(clients.dynamodb.clone(), config.tables.sync.clone()),
            freshness: crate::sync::freshness::FreshnessStore::new(
                clients.dynamodb.clone(),
                config.tables.sync.clone(),
                config.tables.grants.clone(),
            ),
            secrets: SecretsCache::new(clients.secrets.clone(), SECRETS_TTL),
            config,
        }
    }
}

/// What the HTTP layer hands over: method, raw path (percent-encoded, as sent) and the decoded
/// query pairs.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
}

/// One request to the answer's JSON body (200), or the error to answer with.
pub async fn handle(api: &RecordsApi, req: &ApiRequest<'_>, now: DateTime<Utc>) -> Result<Value> {
    let (route, signed_path) = parse_route(req.path)?;
    if req.method != "GET" {
        return Err(Error::MethodNotAllowed(format!("{} (the records API is read-only)", req.method)));
    }
    let signing = api.secrets.app_signing(&api.config.secrets.app_signing).await?;
    let signed = app_auth::verify(
        "GET",
        signed_path,
        req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &signing.connect_keys,
        now.timestamp(),
    )?;
    authorize_path(&route, &signed.tenant_id)?;
    check_known(&route, &signed.params)?;
    crate::context::scoped(|c| c.with_tenant(&signed.tenant_id), serve(api, route, &signed.params, &signed.user_id)).await
}

/// The signed tenant must be the path's: one tenant's signed request never reads another's data.
pub fn authorize_path(route: &Route, signed_tenant: &str) -> Result<()> {
    if route.tenant() != signed_tenant {
        return Err(Error::Forbidden("the request is signed for another tenant".into()));
    }
    Ok(())
}

async fn serve(api: &RecordsApi, route: Route, params: &BTreeMap<String, String>, user_id: &str) -> Result<Value> {
    let list = match &route {
        Route::List { tenant, provider, org_id, entity } => {
            let p = ListParams::parse(params)?;
            // The cursor too is checked before anything is read (the reader checks it again).
            if let Some(c) = &p.cursor {
                let plan = super::query::plan(tenant, *provider, org_id, *entity, &p)?;
                super::cursor::decode(&plan, tenant, *provider, org_id, *entity, c)?;
            }
            Some(p)
        }
        _ => None,
    };
    let include_raw = params.get("include_raw").map(String::as_str);
    let include_raw = match include_raw {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::InvalidInput("include_raw must be true or false".into())),
    };
    let tenant_id = route.tenant().to_string();
    let tenant = api.tenants.get(&tenant_id).await?;
    api.tenants.authorize(&tenant_id, user_id, Permission::ViewConnections).await?;
    match route {
        Route::Connections { .. } => {
            let connections = api.grants.list_connections(&tenant_id).await?;
            let entities: Vec<_> = tenant.config.enabled_entities.iter().map(|e| e.model()).collect();
            let pairs: Vec<_> = connections.iter().map(|c| (c.provider, c.org_id.clone())).collect();
            let fresh = api.freshness.read_entities(&tenant_id, &pairs, &entities).await?;
            let interval_s = i64::from(crate::sync::schedule::interval_minutes(&tenant)) * 60;
            let now = chrono::Utc::now();
            let list: Vec<Value> = connections
                .iter()
                .zip(&fresh)
                .map(|(c, f)| {
                    let mut v = connection_json(c);
                    v["freshness"] = freshness_json(c, f, interval_s, now);
                    v
                })
                .collect();
            Ok(json!({ "connections": list }))
        }
        Route::List { provider, org_id, entity, .. } => {
            let p = list.expect("parsed above for the list route");
            require_connection(&api.grants, &tenant_id, provider, &org_id).await?;
            let page = api.reader.list(&tenant_id, provider, &org_id, entity, &p).await?;
            tracing::info!(
                provider = %provider,
                entity = %entity,
                returned = page.records.len(),
                scanned = page.scanned,
                more = page.next_cursor.is_some(),
                "records page"
            );
            Ok(json!({
                "records": page.records.iter().map(|r| r.to_json(p.include_raw)).collect::<Vec<_>>(),
                "next_cursor": page.next_cursor,
            }))
        }
        Route::Get { provider, org_id, entity, provider_id, .. } => {
            require_connection(&api.grants, &tenant_id, provider, &org_id).await?;
            let r = api
                .reader
                .get(&tenant_id, provider, &org_id, entity, &provider_id, include_raw)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no {entity} with that id in this connection")))?;
            Ok(r.to_json(include_raw))
        }
    }
}

async fn require_connection(grants: &GrantStore, tenant_id: &str, provider: crate::Provider, org_id: &str) -> Result<Connection> {
    grants
        .get_connection(tenant_id, provider, org_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no {provider} connection with that org id")))
}

/// A connection as the app sees it: never its webhook secret.
pub fn connection_json(c: &Connection) -> Value {
    json!({
        "provider": c.provider.as_str(),
        "org_id": c.org_id,
        "org_name": c.org_name,
        "grant_id": c.grant_id,
        "status": c.status.as_str(),
        "needs_reauth": c.status == GrantStatus::NeedsReauth,
        "connected_at": c.created_at.to_rfc3339(),
        "updated_at": c.updated_at.to_rfc3339(),
        // Filled by the connections route (`freshness_json`): it needs the tenant's schedule.
        "freshness": Value::Null,
    })
}

/// A connection's copy per enabled entity: last successful pull, last change stored, last error,
/// and how far behind its schedule it is (`sync::freshness`).
pub fn freshness_json(
    c: &Connection,
    f: &[crate::sync::freshness::EntityFreshness],
    interval_s: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| d.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let entities: Vec<Value> = f
        .iter()
        .map(|e| {
            json!({
                "entity": e.entity,
                "last_success_at": t(e.last_success_at),
                "last_change_at": t(e.last_change_at),
                "last_error_code": e.last_error_code,
                "last_error_at": t(e.last_error_at),
                "lag_seconds": e.lag_seconds(interval_s, c.created_at, now),
            })
        })
        .collect();
    let lag = f.iter().map(|e| e.lag_seconds(interval_s, c.created_at, now)).max().unwrap_or(0);
    json!({ "interval_seconds": interval_s, "lag_seconds": lag, "entities": entities })
}
