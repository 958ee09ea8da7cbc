//! `ttya-ops tenants`: create, list, show, set plan, set config.

use clap::Subcommand;
use shared::tenancy::{Entity, Plan, Priority, Tenant, TenantConfig};
use shared::{Error, Provider, Result};

use crate::{list_of, parse, parse_json_enum, pretty, Ops};

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    Create {
        tenant_id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "starter")]
        plan: String,
        /// Where the connect flow may send users back to (repeatable).
        #[arg(long = "return-url")]
        return_urls: Vec<String>,
        /// Comma-separated providers (default: all).
        #[arg(long)]
        providers: Option<String>,
    },
    List,
    Show {
        tenant_id: String,
    },
    SetPlan {
        tenant_id: String,
        plan: String,
    },
    /// Sets configuration fields: sync_frequency_minutes=N, queue_priority=high|normal|low,
    /// enabled_providers=a,b, enabled_entities=a,b, return_urls=u1,u2, event_destination=URL|none.
    SetConfig {
        tenant_id: String,
        #[arg(required = true)]
        settings: Vec<String>,
    },
}

pub(crate) async fn run(ops: &Ops, cmd: TenantCmd) -> Result<String> {
    let store = ops.tenants();
    let now = (ops.now)();
    match cmd {
        TenantCmd::Create { tenant_id, name, plan, return_urls, providers } => {
            let mut config = TenantConfig { return_urls, ..Default::default() };
            if let Some(p) = providers {
                config.enabled_providers = list_of(&p, |s| parse::<Provider>("provider", s))?;
            }
            let tenant = Tenant::new(tenant_id, name, parse_json_enum::<Plan>("plan", &plan)?, config, now);
            store.create(&tenant).await?;
            Ok(format!("created tenant {} ({:?} plan)", tenant.tenant_id, tenant.plan))
        }
        TenantCmd::List => {
            let mut out = String::new();
            for t in store.list().await? {
                out.push_str(&format!("{}\t{:?}\t{}\n", t.tenant_id, t.plan, t.name));
            }
            Ok(out.trim_end().to_string())
        }
        TenantCmd::Show { tenant_id } => {
            let t = store.get(&tenant_id).await?;
            let used = store.api_calls_used(&tenant_id, now).await?;
            let users = store.list_users(&tenant_id).await?;
            Ok(pretty(&serde_json::json!({
                "tenant": t,
                "limits": t.limits(),
                "api_calls_this_month": used,
                "users": users.iter().map(|(u, r)| serde_json::json!({"user_id": u, "role": r.as_str()})).collect::<Vec<_>>(),
            })))
        }
        TenantCmd::SetPlan { tenant_id, plan } => {
            let mut t = store.get(&tenant_id).await?;
            t.plan = parse_json_enum::<Plan>("plan", &plan)?;
            let t = store.update(&t, now).await?;
            routing_to_connections(ops, &t).await?;
            Ok(format!("tenant {} is on the {:?} plan (version {})", t.tenant_id, t.plan, t.version))
        }
        TenantCmd::SetConfig { tenant_id, settings } => {
            let mut t = store.get(&tenant_id).await?;
            for setting in &settings {
                apply_setting(&mut t.config, setting)?;
            }
            let t = store.update(&t, now).await?;
            routing_to_connections(ops, &t).await?;
            Ok(format!("tenant {} updated (version {})\n{}", t.tenant_id, t.version, pretty(&t.config)))
        }
    }
}

/// A tenant update reaches the routing copy on each of its connection items, which the webhook
/// receiver reads instead of the tenant. Run again (any update) if this fails half-way: a copy is
/// never older than the one it replaces, and the receiver's cache expires in 30 s.
async fn routing_to_connections(ops: &Ops, t: &shared::tenancy::Tenant) -> Result<()> {
    ops.grants().set_routing(&shared::tenancy::TenantRouting::of(t)).await.map(|_| ())
}

fn apply_setting(c: &mut TenantConfig, setting: &str) -> Result<()> {
    let (key, value) = setting.split_once('=').ok_or_else(|| Error::InvalidInput(format!("'{setting}' is not KEY=VALUE")))?;
    match key.trim() {
        "sync_frequency_minutes" => {
            c.sync_frequency_minutes = value.trim().parse().map_err(|_| Error::InvalidInput(format!("sync_frequency_minutes '{value}'")))?
        }
        "queue_priority" => c.queue_priority = parse_json_enum::<Priority>("queue priority", value)?,
        "enabled_providers" => c.enabled_providers = list_of(value, |s| parse::<Provider>("provider", s))?,
        "enabled_entities" => c.enabled_entities = list_of(value, |s| parse_json_enum::<Entity>("entity", s))?,
        "return_urls" => c.return_urls = list_of(value, |s| Ok(s.to_string()))?,
        "event_destination" => c.event_destination = (value.trim() != "none" && !value.trim().is_empty()).then(|| value.trim().to_string()),
        other => return Err(Error::InvalidInput(format!("unknown setting '{other}'"))),
    }
    Ok(())
}
