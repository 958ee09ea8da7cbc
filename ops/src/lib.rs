//! The operator CLI behind `ttya-ops`: every command goes through the same `shared` stores the
//! functions use (TenantStore, GrantStore, the connect flow's disconnect, the TokenService, the
//! Vault), never through raw DynamoDB items, so an operator cannot write what the code could not.
//!
//! `main.rs` parses the process arguments and builds [`Ops`] from the environment; tests build
//! [`Ops`] from the local stack and call [`run`] with argument lists, so the clap wiring is tested too.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use shared::aws::AwsClients;
use shared::connect::ConnectDeps;
use shared::http_client::HttpClient;
use shared::jobs::{SyncJob, SyncQueues};
use shared::refresh::TokenService;
use shared::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use shared::tenancy::{Entity, Plan, Priority, Role, Tenant, TenantConfig, TenantStore};
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{Config, Error, Provider, Result};

#[derive(Debug, Parser)]
#[command(name = "ttya-ops", about = "Operate Talk-to-Your-Accounts integrations (local stack or AWS)", version)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which AWS: the default chain, narrowed by these. The resource names (tables, queues, key,
/// secrets) come from the same environment variables the functions read; `--env-file` loads them.
#[derive(Debug, Clone, Args, Default)]
pub struct Target {
    /// AWS profile (~/.aws/config).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS endpoint, e.g. the local stack's moto (http://127.0.0.1:PORT).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// KEY=VALUE lines (`export` prefixes and comments allowed) loaded before the configuration is
    /// read; variables already set in the environment win. E.g. .local/aws.env.
    #[arg(long, global = true)]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tenants: create, list, show, set plan, set config.
    #[command(subcommand)]
    Tenants(TenantCmd),
    /// The app's users of a tenant and their roles.
    #[command(subcommand)]
    Users(UserCmd),
    /// Provider connections: list, health, disconnect, force a token refresh.
    #[command(subcommand)]
    Connections(ConnCmd),
    /// Sync and event queues: depths, dead letters, redrive.
    #[command(subcommand)]
    Queues(QueueCmd),
    /// Token encryption keys.
    #[command(subcommand)]
    Keys(KeyCmd),
    /// Circuit breakers: show or close by hand (provider-wide, or one provider org's, shared by
    /// every tenant connected to it).
    #[command(subcommand)]
    Breakers(BreakerCmd),
}

#[derive(Debug, Subcommand)]
pub enum BreakerCmd {
    /// State, window counts and probes of a breaker.
    Show {
        provider: String,
        /// Optional with --org: a tenant connected to the org, checked to be connected (the breaker
        /// is the org's, shared by every tenant connected to it).
        #[arg(long, requires = "org")]
        tenant: Option<String>,
        /// The org's breaker instead of the provider-wide one.
        #[arg(long)]
        org: Option<String>,
    },
    /// Closes a breaker (after the provider's outage is over and its open time is too long to wait).
    /// An org's breaker closes for every tenant connected to the org.
    Reset {
        provider: String,
        #[arg(long, requires = "org")]
        tenant: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    List {
        tenant_id: String,
    },
    /// Gives a user a role (owner, admin, member, viewer); adds the user if new (plan limits apply).
    SetRole {
        tenant_id: String,
        user_id: String,
        role: String,
    },
    Remove {
        tenant_id: String,
        user_id: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Visible, in-flight and delayed messages of every queue and dead-letter queue.
    Depths,
    /// Shows dead-lettered messages (left in place) with why they are there.
    Dlq {
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Moves dead-lettered messages back to their queue (sync jobs by their priority).
    Redrive {
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Re-seals every stored token under a new KMS key. Resumable: grants already under the new key
    /// and those listed in the checkpoint file are skipped.
    Reseal {
        /// The new KMS key (id, ARN or alias).
        #[arg(long)]
        new_key: String,
        #[arg(long, default_value = ".ttya-ops-reseal.checkpoint")]
        checkpoint: PathBuf,
    },
}

/// What every command needs, built once.
pub struct Ops {
    pub config: Config,
    pub clients: AwsClients,
    pub http: HttpClient,
    pub now: fn() -> DateTime<Utc>,
}

impl Ops {
    pub fn new(config: Config, clients: AwsClients) -> Result<Self> {
        let http = HttpClient::new(config.provider_timeout)?;
        Ok(Ops { config, clients, http, now: Utc::now })
    }

    /// From the process environment narrowed by the target flags.
    pub async fn from_target(target: &Target) -> std::result::Result<Self, String> {
        if let Some(path) = &target.env_file {
            load_env_file(path)?;
        }
        let config = Config::from_env().map_err(|e| format!("{e} (set them, or pass --env-file)"))?;
        let mut loader = aws_config::from_env();
        if let Some(p) = &target.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &target.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        if let Some(r) = &target.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = loader.load().await;
        Ops::new(config, AwsClients::from_conf(&sdk)).map_err(|e| e.to_string())
    }

    fn tenants(&self) -> TenantStore {
        TenantStore::new(self.clients.dynamodb.clone(), self.config.tables.tenants.clone())
    }

    fn grants(&self) -> GrantStore {
        GrantStore::new(self.clients.dynamodb.clone(), self.config.tables.grants.clone())
    }
}

fn load_env_file(path: &PathBuf) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            if std::env::var_os(k.trim()).is_none() {
                // Single-threaded at this point (before the runtime spawns work on other threads).
                std::env::set_var(k.trim(), v);
            }
        }
    }
    Ok(())
}

/// Parses `args` (argv, program name first) and runs the command; the text is what the CLI prints.
pub async fn run_args<I, T>(ops: &Ops, args: I) -> Result<String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| Error::InvalidInput(e.to_string()))?;
    run(ops, cli.command).await
}

pub async fn run(ops: &Ops, command: Command) -> Result<String> {
    match command {
        Command::Tenants(c) => tenants(ops, c).await,
        Command::Users(c) => users(ops, c).await,
        Command::Connections(c) => connections(ops, c).await,
        Command::Queues(c) => queues(ops, c).await,
        Command::Keys(KeyCmd::Reseal { new_key, checkpoint }) => reseal(ops, &new_key, &checkpoint).await.map(|r| r.to_string()),
        Command::Breakers(c) => breakers(ops, c).await,
    }
}

async fn breakers(ops: &Ops, c: BreakerCmd) -> Result<String> {
    let guard = shared::resilience::ProviderGuard::new(&ops.config, ops.clients.dynamodb.clone());
    let (reset, provider, tenant, org) = match c {
        BreakerCmd::Show { provider, tenant, org } => (false, provider, tenant, org),
        BreakerCmd::Reset { provider, tenant, org } => (true, provider, tenant, org),
    };
    let provider: Provider = parse("provider", &provider)?;
    // The breaker is the org's; a tenant named with it must be connected to that org, so a typo
    // in the org id is not mistaken for a closed breaker of the tenant's org.
    if let (Some(t), Some(o)) = (tenant.as_deref(), org.as_deref()) {
        if ops.grants().get_connection(t, provider, o).await?.is_none() {
            return Err(Error::NotFound(format!("tenant {t} has no {provider} connection to org {o}")));
        }
    }
    let scope = org.as_deref();
    let name = match scope {
        Some(o) => format!("{provider} org {o} (shared by every tenant connected to it)"),
        None => format!("{provider} (provider-wide)"),
    };
    if reset {
        guard.reset_breaker(provider, scope).await?;
        return Ok(format!("breaker {name}: closed"));
    }
    let b = guard.breaker_state(provider, scope).await?;
    Ok(format!(
        "breaker {name}: {} (window: {} calls, {} failures; half-open probes {} of which {} succeeded)",
        b.state.as_str(),
        b.calls,
        b.failures,
        b.probes,
        b.probe_ok
    ))
}

fn parse<T: FromStr>(what: &str, raw: &str) -> Result<T> {
    raw.parse().map_err(|_| Error::InvalidInput(format!("unknown {what} '{raw}'")))
}

fn parse_json_enum<T: serde::de::DeserializeOwned>(what: &str, raw: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(raw.trim().to_ascii_lowercase()))
        .map_err(|_| Error::InvalidInput(format!("unknown {what} '{raw}'")))
}

fn list_of<T>(raw: &str, f: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(f).collect()
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

async fn tenants(ops: &Ops, cmd: TenantCmd) -> Result<String> {
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

async fn users(ops: &Ops, cmd: UserCmd) -> Result<String> {
    let store = ops.tenants();
    match cmd {
        UserCmd::List { tenant_id } => {
            store.get(&tenant_id).await?;
            let users = store.list_users(&tenant_id).await?;
            Ok(users.iter().map(|(u, r)| format!("{u}\t{}", r.as_str())).collect::<Vec<_>>().join("\n"))
        }
        UserCmd::SetRole { tenant_id, user_id, role } => {
            let tenant = store.get(&tenant_id).await?;
            let role: Role = role.parse()?;
            store.set_role(&tenant, &user_id, role).await?;
            Ok(format!("{user_id} is {} of {tenant_id}", role.as_str()))
        }
        UserCmd::Remove { tenant_id, user_id } => {
            if store.remove_user(&tenant_id, &user_id).await? {
                Ok(format!("removed {user_id} from {tenant_id}"))
            } else {
                Err(Error::NotFound(format!("user {user_id} in tenant {tenant_id}")))
            }
        }
    }
}

async fn tenant_ids(ops: &Ops, tenant: Option<String>) -> Result<Vec<String>> {
    match tenant {
        Some(t) => Ok(vec![t]),
        None => Ok(ops.tenants().list().await?.into_iter().map(|t| t.tenant_id).collect()),
    }
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
    for t in tenant_ids(ops, tenant).await? {
        let (conns, grants) = futures::try_join!(store.list_connections(&t), store.list_grants(&t))?;
        for c in &conns {
            let g = grants.iter().find(|g| g.provider == c.provider && g.grant_id == c.grant_id);
            out.push(judge(c, g, now));
        }
    }
    Ok(out)
}

async fn connections(ops: &Ops, cmd: ConnCmd) -> Result<String> {
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
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut out = String::from("connection health (tenant provider org grant: health, access expires in, refresh expires in)\n");
            for h in &rows {
                *counts.entry(h.health.as_str()).or_default() += 1;
                out.push_str(&format!(
                    "  {} {} {} {}: {}, access {}, refresh {}{}{}\n",
                    h.tenant_id,
                    h.provider.as_str(),
                    h.org_id,
                    h.grant_id,
                    h.health,
                    secs(h.access_expires_in_s),
                    secs(h.refresh_expires_in_s),
                    h.degraded_since.map(|d| format!(", degraded since {d}")).unwrap_or_default(),
                    h.leased_by.as_ref().map(|o| format!(", leased by {o}")).unwrap_or_default(),
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

/// A queue of ours and its dead-letter queue, from the queue's own redrive policy.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: &'static str,
    pub url: String,
    pub dlq_url: Option<String>,
}

fn sqs_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    op: &str,
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> Error {
    let retryable = matches!(e, aws_sdk_sqs::error::SdkError::TimeoutError(_) | aws_sdk_sqs::error::SdkError::DispatchFailure(_));
    Error::Queue { message: format!("{op}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)), retryable }
}

fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

pub async fn queue_infos(ops: &Ops) -> Result<Vec<QueueInfo>> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let q = &ops.config.queues;
    let sqs = &ops.clients.sqs;
    let mut out = Vec::new();
    for (name, url) in [("sync-high", &q.sync_high), ("sync-normal", &q.sync_normal), ("sync-low", &q.sync_low), ("events", &q.events)] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", e))?;
        let dlq_arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|v| v["deadLetterTargetArn"].as_str().map(str::to_string));
        let dlq_url = match dlq_arn {
            Some(arn) => Some(
                sqs.get_queue_url()
                    .queue_name(queue_name(&arn))
                    .send()
                    .await
                    .map_err(|e| sqs_error("GetQueueUrl", e))?
                    .queue_url
                    .unwrap_or_default(),
            ),
            None => None,
        };
        out.push(QueueInfo { name, url: url.clone(), dlq_url });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
}

pub async fn depth(ops: &Ops, url: &str) -> Result<Depth> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = ops
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", e))?;
    let get = |k: A| out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Depth {
        visible: get(A::ApproximateNumberOfMessages),
        in_flight: get(A::ApproximateNumberOfMessagesNotVisible),
        delayed: get(A::ApproximateNumberOfMessagesDelayed),
    })
}

/// Why a message is in a DLQ, as far as the message itself can tell.
pub fn dlq_reason(body: &str, receives: u32, attributes: &BTreeMap<String, String>) -> String {
    let recorded: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base = match SyncJob::from_json(body) {
        Ok(_) => format!("failed {receives} deliveries"),
        // Not a sync job: app events end in their DLQ when the app does not consume them.
        Err(_) if serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| v.get("job_id").is_none() && v.get("type").is_some()) => {
            format!("not consumed after {receives} deliveries")
        }
        Err(e) => format!("poison: {} {e} ({receives} deliveries)", e.code()),
    };
    if recorded.is_empty() {
        base
    } else {
        format!("{base}; {}", recorded.join(" "))
    }
}

async fn queues(ops: &Ops, cmd: QueueCmd) -> Result<String> {
    let infos = queue_infos(ops).await?;
    match cmd {
        QueueCmd::Depths => {
            let mut out = String::from("queue depths (visible / in flight / delayed)\n");
            let mut seen_dlq = HashSet::new();
            for q in &infos {
                let d = depth(ops, &q.url).await?;
                out.push_str(&format!("  {:<22} {} / {} / {}\n", q.name, d.visible, d.in_flight, d.delayed));
                if let Some(dlq) = &q.dlq_url {
                    if seen_dlq.insert(dlq.clone()) {
                        let d = depth(ops, dlq).await?;
                        out.push_str(&format!("  {:<22} {} / {} / {}\n", queue_name(dlq), d.visible, d.in_flight, d.delayed));
                    }
                }
            }
            Ok(out.trim_end().to_string())
        }
        QueueCmd::Dlq { max } => {
            let mut out = String::new();
            let mut seen = HashSet::new();
            for dlq in infos.iter().filter_map(|q| q.dlq_url.clone()) {
                if !seen.insert(dlq.clone()) {
                    continue;
                }
                let msgs = receive(ops, &dlq, max).await?;
                out.push_str(&format!("{} ({} shown)\n", queue_name(&dlq), msgs.len()));
                for m in &msgs {
                    out.push_str(&format!(
                        "  {}: {}\n    {}\n",
                        m.id,
                        dlq_reason(&m.body, m.receives, &m.attributes),
                        truncate(&m.body, 300)
                    ));
                }
                // Shown, not consumed: make them visible again right away.
                release(ops, &dlq, &msgs).await;
            }
            Ok(out.trim_end().to_string())
        }
        QueueCmd::Redrive { max } => {
            let sync = SyncQueues::from_config(&ops.config);
            let mut by_dlq: BTreeMap<String, Vec<&QueueInfo>> = BTreeMap::new();
            for q in &infos {
                if let Some(d) = &q.dlq_url {
                    by_dlq.entry(d.clone()).or_default().push(q);
                }
            }
            let (mut moved, mut kept) = (0usize, 0usize);
            for (dlq, sources) in by_dlq {
                while moved < max {
                    let msgs = receive(ops, &dlq, (max - moved).min(10)).await?;
                    if msgs.is_empty() {
                        break;
                    }
                    let mut skipped = Vec::new();
                    for m in msgs {
                        let target = match SyncJob::from_json(&m.body) {
                            Ok(job) if sources.iter().any(|q| q.name.starts_with("sync-")) => Some(sync.url(job.priority).to_string()),
                            _ if sources.len() == 1 && !sources[0].name.starts_with("sync-") => Some(sources[0].url.clone()),
                            _ => None,
                        };
                        let Some(target) = target else {
                            skipped.push(m);
                            continue;
                        };
                        // Send first, delete after: a crash in between duplicates a job, which its
                        // idempotency key makes harmless, rather than losing one.
                        ops.clients
                            .sqs
                            .send_message()
                            .queue_url(&target)
                            .message_body(&m.body)
                            .send()
                            .await
                            .map_err(|e| sqs_error("SendMessage", e))?;
                        ops.clients
                            .sqs
                            .delete_message()
                            .queue_url(&dlq)
                            .receipt_handle(&m.receipt)
                            .send()
                            .await
                            .map_err(|e| sqs_error("DeleteMessage", e))?;
                        moved += 1;
                    }
                    kept += skipped.len();
                    release(ops, &dlq, &skipped).await;
                    if !skipped.is_empty() {
                        // Poison left in place would come back on every receive: stop this DLQ.
                        break;
                    }
                }
            }
            Ok(format!("redrove {moved} messages; {kept} left in the dead-letter queues (not sync jobs: see `queues dlq`)"))
        }
    }
}

struct Received {
    id: String,
    body: String,
    receipt: String,
    receives: u32,
    attributes: BTreeMap<String, String>,
}

async fn receive(ops: &Ops, url: &str, max: usize) -> Result<Vec<Received>> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as S;
    let mut out = Vec::new();
    while out.len() < max {
        let got = ops
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((max - out.len()).min(10) as i32)
            .visibility_timeout(60)
            .message_system_attribute_names(S::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let receives = m.attributes().and_then(|a| a.get(&S::ApproximateReceiveCount)).and_then(|v| v.parse().ok()).unwrap_or(0);
            let attributes = m
                .message_attributes()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            out.push(Received {
                id: m.message_id.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                receives,
                attributes,
            });
        }
    }
    Ok(out)
}

async fn release(ops: &Ops, url: &str, msgs: &[Received]) {
    for m in msgs {
        let _ = ops.clients.sqs.change_message_visibility().queue_url(url).receipt_handle(&m.receipt).visibility_timeout(0).send().await;
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    pub total: usize,
    pub resealed: usize,
    /// Already under the new key, or listed in the checkpoint.
    pub skipped: usize,
    /// Held by a refresher or changed meanwhile: run again to finish them.
    pub deferred: usize,
}

impl std::fmt::Display for ResealReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} grants with tokens: {} re-sealed, {} already done, {} deferred",
            self.total, self.resealed, self.skipped, self.deferred
        )?;
        if self.deferred > 0 {
            write!(f, " (leased or changed meanwhile: run the same command again)")?;
        }
        Ok(())
    }
}

fn checkpoint_key(g: &Grant, new_key: &str) -> String {
    format!("{new_key}\t{}\t{}\t{}", g.tenant_id, g.provider.as_str(), g.grant_id)
}

/// Re-seals every sealed grant under `new_key` through `GrantStore::replace_sealed` (which never
/// races a refresher: it requires the version read and no live lease). Each done grant is appended
/// to `checkpoint`, so an interrupted run resumes where it stopped; grants already under the new key
/// are skipped too, so even without the checkpoint a rerun only does what is left. The functions
/// must be deployed with the new key (KMS_KEY_ID) before or right after, or they will lazily re-seal
/// back under the old one.
pub async fn reseal(ops: &Ops, new_key: &str, checkpoint: &PathBuf) -> Result<ResealReport> {
    let store = ops.grants();
    let old = Vault::from_config(ops.clients.kms.clone(), &ops.config);
    // The key's ARN, whatever names it (id, ARN, alias): blobs record the ARN, and an alias cannot
    // be compared with them (Vault::is_current would call every blob current).
    let described = ops
        .clients
        .kms
        .describe_key()
        .key_id(new_key)
        .send()
        .await
        .map_err(|e| Error::Crypto(format!("DescribeKey {new_key}: {}", aws_sdk_kms::error::DisplayErrorContext(&e))))?;
    let new_key = described.key_metadata.and_then(|m| m.arn).ok_or_else(|| Error::Crypto(format!("KMS key {new_key} has no ARN")))?;
    let new_key = new_key.as_str();
    // A vault on the new key only to ask whether a blob is already under it.
    let new = Vault::new(ops.clients.kms.clone(), new_key, CacheLimits::default());
    let done: HashSet<String> = std::fs::read_to_string(checkpoint).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default();
    let mut ck = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(checkpoint)
        .map_err(|e| Error::Internal(format!("checkpoint {}: {e}", checkpoint.display())))?;
    let mut grants = Vec::new();
    for t in tenant_ids(ops, None).await? {
        grants.extend(store.list_grants(&t).await?.into_iter().filter(|g| g.sealed.is_some()));
    }
    let mut report = ResealReport { total: grants.len(), ..Default::default() };
    let started = std::time::Instant::now();
    for (i, g) in grants.iter().enumerate() {
        let key = checkpoint_key(g, new_key);
        let blob = g.sealed.as_ref().expect("filtered on sealed");
        if done.contains(&key) || new.is_current(blob) {
            report.skipped += 1;
        } else {
            let ctx = SealContext::new(&g.tenant_id, g.provider, &g.grant_id);
            let sealed = old.reseal(&ctx, blob, new_key).await?;
            match store.replace_sealed(g, &sealed, (ops.now)()).await {
                Ok(_) => {
                    report.resealed += 1;
                    let _ = writeln!(ck, "{key}");
                }
                Err(Error::Conflict(_)) => report.deferred += 1,
                Err(e) => return Err(e),
            }
        }
        progress(i + 1, grants.len(), started);
    }
    if !grants.is_empty() {
        eprintln!();
    }
    Ok(report)
}

/// One progress line, rewritten in place on a terminal.
fn progress(done: usize, total: usize, started: std::time::Instant) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    let eta = if rate > 0.0 { ((total - done) as f64 / rate) as u64 } else { 0 };
    eprint!("\r[{}{}] {done}/{total} grants, {rate:.1}/s, eta {eta}s ", "#".repeat(filled), ".".repeat(width - filled));
    let _ = std::io::stderr().flush();
}
