//! `ttya-ops connections`: list, health (judged from the grants alone), disconnect, a forced
//! token refresh, and enrolling connections on the sync schedule.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use shared::connect::ConnectDeps;
use shared::refresh::TokenService;
use shared::store::grants::{Connection, Grant, GrantStatus};
use shared::{Error, Provider, Result};

use crate::{parse, tenant_ids, Ops};

#[derive(Debug, Subcommand)]
pub enum ConnCmd {
    /// Connections of one tenant, or of every tenant.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Grant state behind each connection: status, token expiries, degraded, lease.
    Health {
        #[arg(long)]
        tenant: Option<String>,
        /// Every tenant (the default when --tenant is not given).
        #[arg(long)]
        all: bool,
    },
    /// Disconnects a grant as the app's disconnect does (provider revoke, tokens dropped, event).
    Disconnect {
        tenant_id: String,
        provider: String,
        grant_id: String,
        #[arg(long, default_value = "ops")]
        actor: String,
    },
    /// Refreshes the grant's tokens now, under the grant's lease like the refresher.
    Refresh { tenant_id: String, provider: String, grant_id: String },
    /// Puts active connections that are not on the sync schedule (stored before scheduled sync
    /// existed) on it. Already scheduled ones are left alone, so it can be re-run.
    EnrollSync {
        #[arg(long)]
        tenant: Option<String>,
        /// Treat their books as already copied: no initial full sync, first pull at the next slot.
        #[arg(long)]
        initial_done: bool,
    },
}

/// One connection and the state of the grant behind it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub tenant_id: String,
    pub provider: Provider,
    pub org_id: String,
    pub grant_id: String,
    /// ok | expiring | overdue | degraded | needs_reauth | revoked | disconnected | missing_grant
    pub health: String,
    pub access_expires_in_s: Option<i64>,
    pub refresh_expires_in_s: Option<i64>,
    pub degraded_since: Option<DateTime<Utc>>,
    pub leased_by: Option<String>,
    /// The copy per entity (`shared::sync::freshness`): last successful pull, last change, last error.
    pub freshness: Vec<shared::sync::freshness::EntityFreshness>,
    /// Seconds the oldest entity's copy is behind its schedule (0: on time; None: not read).
    pub copy_lag_s: Option<i64>,
}

/// How healthy a connection is, judged from its grant alone (no provider call).
pub fn judge(conn: &Connection, grant: Option<&Grant>, now: DateTime<Utc>) -> Health {
    let mut h = Health {
        tenant_id: conn.tenant_id.clone(),
        provider: conn.provider,
        org_id: conn.org_id.clone(),
        grant_id: conn.grant_id.clone(),
        health: String::new(),
        access_expires_in_s: None,
        refresh_expires_in_s: None,
        degraded_since: None,
        leased_by: None,
        freshness: Vec::new(),
        copy_lag_s: None,
    };
    let Some(g) = grant else {
        h.health = "missing_grant".into();
        return h;
    };
    h.access_expires_in_s = g.sealed.as_ref().map(|_| (g.access_expires_at - now).num_seconds());
    h.refresh_expires_in_s = g.refresh_expires_at.map(|r| (r - now).num_seconds());
    h.degraded_since = g.degraded_since;
    h.leased_by = g.lease_owner.clone().filter(|_| g.lease_expires_at.is_some_and(|e| e > now));
    h.health = match g.status {
        GrantStatus::Active if g.degraded_since.is_some() => "degraded",
        GrantStatus::Active if g.refresh_expires_at.is_some_and(|r| r <= now) => "overdue",
        // The refresher runs every 5 minutes and refreshes ahead of expiry: an access token expired
        // for longer than two runs means refreshing is not happening for this grant.
        GrantStatus::Active if g.access_expires_at < now - chrono::Duration::minutes(10) => "overdue",
        GrantStatus::Active if g.refresh_expires_at.is_some_and(|r| r <= now + chrono::Duration::days(7)) => "expiring",
        GrantStatus::Active => "ok",
        other => other.as_str(),
    }
    .to_string();
    h
}

pub async fn health(ops: &Ops, tenant: Option<String>) -> Result<Vec<Health>> {
    let store = ops.grants();
    let now = (ops.now)();
    let mut out = Vec::new();
    let fresh = shared::sync::freshness::FreshnessStore::new(
        ops.clients.dynamodb.clone(),
        ops.config.tables.sync.clone(),
        ops.config.tables.grants.clone(),
    );
    for t in tenant_ids(ops, tenant).await? {
        let (conns, grants) = futures::try_join!(store.list_connections(&t), store.list_grants(&t))?;
        // The schedule the copy is held to: the tenant's interval and enabled entities.
        let (interval_s, enabled) = match ops.tenants().get(&t).await {
            Ok(tenant) => (
                i64::from(shared::sync::schedule::interval_minutes(&tenant)) * 60,
                tenant.config.enabled_entities.iter().map(|e| e.model()).collect(),
            ),
            Err(_) => (0, Vec::new()),
        };
        for c in &conns {
            let g = grants.iter().find(|g| g.provider == c.provider && g.grant_id == c.grant_id);
            let mut h = judge(c, g, now);
            h.freshness = fresh.read(&t, c.provider, &c.org_id).await?;
            if interval_s > 0 && c.status == shared::store::grants::GrantStatus::Active {
                // An enabled entity never pulled is behind since the connection was made.
                let lag = enabled
                    .iter()
                    .map(|e| match h.freshness.iter().find(|f| f.entity == *e) {
                        Some(f) => f.lag_seconds(interval_s, c.created_at, now),
                        None => ((now - c.created_at).num_seconds() - interval_s).max(0),
                    })
                    .max()
                    .unwrap_or(0);
                h.copy_lag_s = Some(lag);
            }
            out.push(h);
        }
    }
    Ok(out)
}

pub(crate) async fn run(ops: &Ops, cmd: ConnCmd) -> Result<String> {
    match cmd {
        ConnCmd::List { tenant } => {
            let store = ops.grants();
            let mut out = String::new();
            for t in tenant_ids(ops, tenant).await? {
                for c in store.list_connections(&t).await? {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\t{}\n",
                        c.tenant_id,
                        c.provider.as_str(),
                        c.org_id,
                        c.org_name.as_deref().unwrap_or("-"),
                        c.grant_id,
                        c.status.as_str()
                    ));
                }
            }
            Ok(out.trim_end().to_string())
        }
        ConnCmd::Health { tenant, all } => {
            let rows = health(ops, if all { None } else { tenant }).await?;
            let now = (ops.now)();
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut out = String::from("connection health (tenant provider org grant: health, access expires in, refresh expires in)\n");
            for h in &rows {
                *counts.entry(h.health.as_str()).or_default() += 1;
                out.push_str(&format!(
                    "  {} {} {} {}: {}, access {}, refresh {}{}{}{}\n",
                    h.tenant_id,
                    h.provider.as_str(),
                    h.org_id,
                    h.grant_id,
                    h.health,
                    secs(h.access_expires_in_s),
                    secs(h.refresh_expires_in_s),
                    h.degraded_since.map(|d| format!(", degraded since {d}")).unwrap_or_default(),
                    h.leased_by.as_ref().map(|o| format!(", leased by {o}")).unwrap_or_default(),
                    copy_text(h, now),
                ));
            }
            let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            out.push_str(&format!("  {} connections: {}", rows.len(), if summary.is_empty() { "none".into() } else { summary.join(", ") }));
            Ok(out)
        }
        ConnCmd::Disconnect { tenant_id, provider, grant_id, actor } => {
            let provider: Provider = parse("provider", &provider)?;
            let deps = ConnectDeps::new(ops.config.clone(), &ops.clients, ops.http.clone());
            let d = shared::connect::disconnect(&deps, &tenant_id, provider, &grant_id, &actor, (ops.now)()).await?;
            Ok(if d.changed {
                format!(
                    "disconnected {grant_id} (orgs {}); revoked at the provider: {}",
                    d.org_ids.join(","),
                    if d.revoked_at_provider { "yes" } else { "no" }
                )
            } else {
                format!("{grant_id} was already disconnected")
            })
        }
        ConnCmd::EnrollSync { tenant, initial_done } => {
            let scheduler = shared::sync::schedule::SyncScheduler::new(&ops.config, &ops.clients);
            let tenants = ops.tenants();
            let (mut enrolled, mut scheduled, mut inactive) = (0, 0, 0);
            let mut out = String::new();
            for t in tenant_ids(ops, tenant).await? {
                let connections = ops.grants().list_connections(&t).await?;
                if connections.is_empty() {
                    continue;
                }
                let tenant = tenants.get(&t).await?;
                for c in connections {
                    if c.status != GrantStatus::Active {
                        inactive += 1;
                        continue;
                    }
                    // A connection on the schedule reads back with its due time; one without fails
                    // to (it has none) or is missing.
                    if matches!(scheduler.connection_schedule(&t, c.provider, &c.org_id).await, Ok(Some(_))) {
                        scheduled += 1;
                        continue;
                    }
                    let next = scheduler.enroll(&tenant, c.provider, &c.org_id, initial_done, (ops.now)()).await?;
                    enrolled += 1;
                    out.push_str(&format!("  enrolled {} {} {}: first pull at {next} (epoch s)\n", t, c.provider.as_str(), c.org_id));
                }
            }
            out.push_str(&format!("{enrolled} enrolled, {scheduled} already scheduled, {inactive} not active"));
            Ok(out)
        }
        ConnCmd::Refresh { tenant_id, provider, grant_id } => {
            let provider: Provider = parse("provider", &provider)?;
            let svc = TokenService::new(&ops.config, &ops.clients, ops.http.clone());
            let stored = svc
                .grants()
                .get_grant(&tenant_id, provider, &grant_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("grant {grant_id}")))?;
            let before = svc.valid_access_token(&tenant_id, provider, &grant_id).await?;
            // valid_access_token refreshes only near expiry. When it did not, declaring the current
            // token rejected makes the service refresh now, under the lease, exactly as after a
            // provider 401 (and not twice when it already had).
            let after = if before.grant.version == stored.version {
                svc.after_unauthorized(&tenant_id, provider, &grant_id, &before.tokens.access_token).await?
            } else {
                before
            };
            Ok(format!(
                "refreshed {grant_id}: version {}, access token valid until {}",
                after.grant.version, after.tokens.access_expires_at
            ))
        }
    }
}

fn secs(v: Option<i64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 0 => format!("expired {}", human(-s)),
        Some(s) => human(s),
    }
}

fn human(s: i64) -> String {
    if s >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 3_600 {
        format!("{}h", s / 3_600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The copy's freshness on one line: lag behind the schedule, then per entity the age of its last
/// successful pull and its last error when that came after.
fn copy_text(h: &Health, now: DateTime<Utc>) -> String {
    let Some(lag) = h.copy_lag_s else { return String::new() };
    let mut parts = vec![format!("copy lag {}", secs(Some(lag)))];
    for f in &h.freshness {
        let age = f
            .last_success_at
            .map(|t| format!("pulled {} ago", secs(Some((now - t).num_seconds()))))
            .unwrap_or_else(|| "never pulled".into());
        let err = match (f.last_error_code, f.last_error_at) {
            (Some(c), Some(at)) if f.last_success_at.is_none_or(|s| at > s) => {
                format!(", error E{c} {} ago", secs(Some((now - at).num_seconds())))
            }
            _ => String::new(),
        };
        parts.push(format!("{} {age}{err}", f.entity));
    }
    format!("; {}", parts.join("; "))
}
