//! The connect flow: the main app sends a user to `GET /connect/{provider}`; we check the app's
//! signature, the user's role and the plan, mint a state and send the user to the provider. The
//! provider sends them back to `GET /oauth/{provider}/callback`; we consume the state, exchange the
//! code, discover the organisations, seal and store the grant, register Zoho webhooks, audit, tell
//! the app, and send the user back to the app. `disconnect` undoes it.
//!
//! The HTTP layer (functions/oauth-callback) only parses requests and renders these results.
//!
//! By concern: `start.rs` (the connect route), `callback.rs` (the callback), `disconnect.rs` (the undo
//! of a failed callback, and disconnects), `scopes.rs` (what a connect asks for and accepts),
//! `state.rs` (the OAuth state), `app_auth.rs` (the app's signed requests). Here: what they share.

pub mod app_auth;
mod callback;
mod disconnect;
mod scopes;
mod start;
pub mod state;

use chrono::{DateTime, Utc};
use url::Url;

use crate::audit::AuditLog;
use crate::aws::AwsClients;
use crate::events::{AppEvent, EventPublisher};
use crate::http_client::HttpClient;
use crate::providers::client::ProviderClient;
use crate::providers::endpoints::Endpoints;
use crate::providers::zoho_webhooks::{self, ZohoWebhooks};
use crate::secrets::{SecretsCache, SECRETS_TTL};
use crate::store::grants::{Connection, GrantStatus, GrantStore};
use crate::tenancy::{Plan, Tenant, TenantStore};
use crate::vault::Vault;
use crate::{Config, Provider, Result, SecretString};

use self::state::StateStore;

pub use callback::{callback, error_redirect, success_redirect, CallbackOutcome, ConnectedGrant};
pub use disconnect::{disconnect, disconnect_request, Disconnected};
pub use scopes::{check_granted_scopes, scopes_for, scopes_for_set};
pub use start::{start, Started};

/// Everything the connect flow talks to. Built once per container.
#[derive(Debug)]
pub struct ConnectDeps {
    pub config: Config,
    pub tenants: TenantStore,
    pub grants: GrantStore,
    pub states: StateStore,
    pub audit: AuditLog,
    pub vault: Vault,
    pub secrets: SecretsCache,
    pub events: EventPublisher,
    /// Starts a new connection's initial full sync (low queue).
    pub initial_sync: crate::initial_sync::InitialSync,
    pub http: HttpClient,
    /// Every provider call made after discovery (Zoho webhook and workflow-rule registration and
    /// removal) goes through it, under the org's limit shared with the sync worker.
    pub guard: crate::resilience::ProviderGuard,
    /// How long a callback may work before it gives up and undoes what it did ([`CALLBACK_BUDGET`]).
    pub callback_budget: std::time::Duration,
    /// How long the undo after a failure or the deadline may take ([`UNDO_BUDGET`]).
    pub undo_budget: std::time::Duration,
}

/// The callback's own deadline. API Gateway ends an HTTP API integration at 30 s and the function's
/// timeout is 29 s; one provider call may take up to PROVIDER_TIMEOUT_SECONDS (20 s), so without a
/// deadline a slow provider would have Lambda kill the callback halfway, leaving Zoho webhooks
/// registered and a grant unrevoked. 20 s of work, then up to [`UNDO_BUDGET`] to clean up, leaves a
/// few seconds for the redirect.
pub const CALLBACK_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);
pub const UNDO_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

/// The actor of the connect flow's provider-call audit records.
const ACTOR: &str = "system:oauth-callback";

/// The guard's limits for the connect flow. Every guarded call here runs under a `timeout_at` of
/// the callback's (or the undo's) own budget, which cancels an attempt still in flight when the
/// budget ends and undoes what was done; so the guard need not keep a whole provider timeout free
/// before the deadline (with 20 s of each, no call could ever start). Its deadline rule still keeps
/// waits for the org's limit from running past the budget.
pub fn connect_limits(config: &Config) -> crate::resilience::Limits {
    crate::resilience::Limits { attempt_timeout: std::time::Duration::ZERO, ..crate::resilience::Limits::from_config(config) }
}

/// `deadline` on the wall clock, for `resilience::within_deadline`.
fn wall_deadline(deadline: tokio::time::Instant) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(deadline.saturating_duration_since(tokio::time::Instant::now())).unwrap_or_default()
}

impl ConnectDeps {
    pub fn new(config: Config, clients: &AwsClients, http: HttpClient) -> Self {
        let vault = Vault::from_config(clients.kms.clone(), &config);
        ConnectDeps {
            tenants: TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            grants: GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
            states: StateStore::new(clients.dynamodb.clone(), config.tables.ephemeral.clone(), vault.clone()),
            audit: AuditLog::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            vault,
            secrets: SecretsCache::new(clients.secrets.clone(), SECRETS_TTL),
            events: EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            initial_sync: crate::initial_sync::InitialSync::new(
                clients.dynamodb.clone(),
                config.tables.grants.clone(),
                crate::jobs::JobQueue::new(clients.sqs.clone(), crate::jobs::SyncQueues::from_config(&config)),
                EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            ),
            http,
            guard: crate::resilience::ProviderGuard::with_limits(
                clients.dynamodb.clone(),
                config.tables.resilience.clone(),
                connect_limits(&config),
            )
            .with_events(EventPublisher::new(clients.sqs.clone(), config.queues.events.clone())),
            callback_budget: CALLBACK_BUDGET,
            undo_budget: UNDO_BUDGET,
            config,
        }
    }

    /// `{PUBLIC_BASE_URL}/oauth/{provider}/callback`, registered at each provider.
    pub fn redirect_uri(&self, provider: Provider) -> Url {
        redirect_uri(&self.config, provider)
    }

    pub fn endpoints(&self, provider: Provider) -> Endpoints {
        Endpoints::from_config(&self.config, provider)
    }

    /// A client with the credentials from Secrets Manager (cached per container by SecretsCache).
    pub async fn provider_client(&self, provider: Provider) -> Result<ProviderClient> {
        let creds = self.secrets.provider_credentials(&self.config.secrets.provider_credentials, provider).await?;
        Ok(ProviderClient::new(provider, self.endpoints(provider), creds, self.http.clone()))
    }

    /// Zoho's webhook API for one grant, every call guarded and audited for `tenant_id`.
    fn zoho_hooks<'a>(&'a self, api_domain: &str, tenant_id: &'a str, grant_id: &'a str, plan: Plan) -> Result<ZohoWebhooks<'a>> {
        let guarded =
            zoho_webhooks::Guarded { guard: &self.guard, audit: &self.audit, tenant_id, grant_id, plan, actor: ACTOR, limited: true };
        ZohoWebhooks::new(&self.http, &self.endpoints(Provider::Zoho), api_domain, guarded)
    }

    /// As `zoho_hooks`, audited but not waiting for the org's limit: for the undo of a failed
    /// connect and a disconnect's removals only (see `zoho_webhooks::Guarded::limited`).
    fn zoho_hooks_unlimited<'a>(&'a self, api_domain: &str, tenant_id: &'a str, grant_id: &'a str, plan: Plan) -> Result<ZohoWebhooks<'a>> {
        let guarded =
            zoho_webhooks::Guarded { guard: &self.guard, audit: &self.audit, tenant_id, grant_id, plan, actor: ACTOR, limited: false };
        ZohoWebhooks::new(&self.http, &self.endpoints(Provider::Zoho), api_domain, guarded)
    }

    async fn state_key(&self) -> Result<SecretString> {
        Ok(self.secrets.app_signing(&self.config.secrets.app_signing).await?.state_key.clone())
    }
}

/// `{PUBLIC_BASE_URL}/oauth/{provider}/callback`.
pub fn redirect_uri(config: &Config, provider: Provider) -> Url {
    let mut u = config.public_base_url.clone();
    let path = format!("{}/oauth/{}/callback", u.path().trim_end_matches('/'), provider.as_str());
    u.set_path(&path);
    u.set_query(None);
    u
}

/// Connections that take a slot of the plan's integration limit.
fn occupies_slot(c: &Connection) -> bool {
    matches!(c.status, GrantStatus::Active | GrantStatus::NeedsReauth)
}

/// Sends an event; one retry, then the failure is logged and counted. The connection already
/// exists at this point, so the user is not sent back with an error because the app's queue hiccuped.
async fn publish(deps: &ConnectDeps, tenant: &Tenant, event: &AppEvent) {
    let dest = tenant.config.event_destination.as_deref();
    for attempt in 1..=2 {
        match deps.events.publish(event, dest).await {
            Ok(()) => return,
            Err(e) if attempt == 1 && e.is_retryable() => continue,
            Err(e) => {
                tracing::error!(code = %e.code(), error = %e, event_id = %event.event_id, event_type = event.event_type.as_str(), "event not delivered");
                crate::telemetry::metric("EventPublishFailed", 1.0, "Count", &[("type", event.event_type.as_str())]);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_is_built_from_the_public_base_url() {
        let mut vars: std::collections::HashMap<&str, String> = Config::REQUIRED.iter().map(|k| (*k, format!("v-{k}"))).collect();
        vars.insert("STAGE", "dev".into());
        vars.insert("PUBLIC_BASE_URL", "https://api.example.com/prod/".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(redirect_uri(&config, Provider::Zoho).as_str(), "https://api.example.com/prod/oauth/zoho/callback");
        vars.insert("PUBLIC_BASE_URL", "http://127.0.0.1:9000".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(redirect_uri(&config, Provider::QuickBooks).as_str(), "http://127.0.0.1:9000/oauth/quickbooks/callback");
    }
}
