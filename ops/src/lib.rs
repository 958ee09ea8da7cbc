//! The operator CLI behind `ttya-ops`: every command goes through the same `shared` stores the
//! functions use (TenantStore, GrantStore, the connect flow's disconnect, the TokenService, the
//! Vault), never through raw DynamoDB items, so an operator cannot write what the code could not.
//!
//! `main.rs` parses the process arguments and builds [`Ops`] from the environment; tests build
//! [`Ops`] from the local stack and call [`run`] with argument lists, so the clap wiring is tested too.
//!
//! Each command group is a module (tenants, users, connections, queues, keys, breakers, records) holding its
//! subcommands and what they do; this file keeps the CLI's top level, [`Ops`], the dispatch and the
//! small parsing helpers the groups share.

mod breakers;
mod connections;
mod keys;
mod queues;
mod records;
mod tenants;
mod users;

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use shared::aws::AwsClients;
use shared::http_client::HttpClient;
use shared::store::grants::GrantStore;
use shared::tenancy::TenantStore;
use shared::{Config, Error, Result};

pub use breakers::BreakerCmd;
pub use connections::{health, judge, ConnCmd, Health};
pub use keys::{reseal, KeyCmd, ResealReport};
pub use queues::{depth, dlq_reason, queue_infos, Depth, QueueCmd, QueueInfo};
pub use records::RecordsCmd;
pub use tenants::TenantCmd;
pub use users::UserCmd;

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
    /// The synced copy: index records stored before the records API's indexes.
    #[command(subcommand)]
    Records(RecordsCmd),
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
        Command::Tenants(c) => tenants::run(ops, c).await,
        Command::Users(c) => users::run(ops, c).await,
        Command::Connections(c) => connections::run(ops, c).await,
        Command::Queues(c) => queues::run(ops, c).await,
        Command::Keys(KeyCmd::Reseal { new_key, checkpoint }) => reseal(ops, &new_key, &checkpoint).await.map(|r| r.to_string()),
        Command::Breakers(c) => breakers::run(ops, c).await,
        Command::Records(c) => records::run(ops, c).await,
    }
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

async fn tenant_ids(ops: &Ops, tenant: Option<String>) -> Result<Vec<String>> {
    match tenant {
        Some(t) => Ok(vec![t]),
        None => Ok(ops.tenants().list().await?.into_iter().map(|t| t.tenant_id).collect()),
    }
}
