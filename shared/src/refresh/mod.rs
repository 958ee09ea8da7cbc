//! Keeping grants alive: `valid_access_token` for callers that need a token now, and the scheduled
//! run that refreshes every grant due soon. Both refresh under the grant's lease, so one grant is
//! refreshed by one worker at a time, in this process and across processes.
//!
//! A refresh, step by step (DynamoDB and KMS calls in brackets):
//! 1. take the lease and read the grant in one conditional update [1 DynamoDB];
//! 2. unseal the tokens [1 KMS Decrypt, none when the data key is cached];
//! 3. call the provider's token endpoint;
//! 4. seal the new pair with the data key just unwrapped [no KMS call] and store it, release the
//!    lease and write the audit record in one conditional transaction (lease owner + version)
//!    [1 DynamoDB]. Nothing else runs between the provider's answer and this write.
//!
//! `valid_access_token` adds one read before step 1 (the fast path when the token is still good),
//! so a refresh costs at most 3 DynamoDB calls and 1 KMS call.
//!
//! Rotation safety: what if the process dies between step 3 and step 4? The lease expires and the
//! next attempt refreshes with the refresh token still stored:
//! - Xero rotates on every refresh, but the previous refresh token keeps working for 30 minutes and
//!   answers with the same new pair (Xero OAuth FAQ). The lease (60 s) is far shorter, so the
//!   retry recovers the pair the dead process lost.
//! - Zoho does not rotate refresh tokens at all; the retry simply mints another access token.
//! - QuickBooks rotates (the value changes about once a day) and whether the previous refresh token
//!   keeps working is unconfirmed, so we assume it does not: a crash in that window, on the refresh
//!   that rotated, leaves a dead refresh token. The retry then gets `invalid_grant` and the grant
//!   becomes `needs_reauth` with an event for the app: it is never deleted, and the admin connects
//!   again. We keep the window as small as we can: the data key for the new seal is already in
//!   memory, so step 4 starts with no other network call; if our lease expired meanwhile we still
//!   store the pair when nobody else wrote since (same version), because ours is the only valid one.
//!
//! Failures: `invalid_grant` (revoked, expired, consent withdrawn) marks the grant and its
//! connections `needs_reauth` at once, audits it and tells the app; nothing is deleted. Anything else
//! (429, 5xx, timeouts, Zoho's token-issue limit, our own credentials being refused) is transient:
//! the grant stays active, is flagged degraded once (one `connection.degraded` event), and the next
//! success clears it (one `connection.recovered`).

pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::audit::{audit_item, AuditLog, TokenEvent};
use crate::aws::AwsClients;
use crate::events::{AppEvent, ConnectionHealth, EventPublisher, EventType, HealthCause};
use crate::grant_tokens::{self, seal_context};
use crate::http_client::HttpClient;
use crate::providers::client::{AccountingProvider, ProviderClient};
use crate::providers::endpoints::Endpoints;
use crate::secrets::SecretsCache;
use crate::store::grants::{Grant, GrantStatus, GrantStore, TokenWrite};
use crate::vault::Vault;
use crate::{Config, Error, Provider, Result, SecretString, TokenSet};

/// The current time; replaceable so tests can move past a lease without sleeping.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The points at which a test can make a refresh stop dead, as if the process had died there: no
/// clean-up runs, the lease stays held until it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Lease taken, provider not called yet.
    BeforeProviderCall,
    /// The provider answered with a new pair; nothing stored yet.
    AfterProviderAnswer,
    /// The new pair is stored.
    AfterWrite,
}

pub type FailPoint = Arc<dyn Fn(Step, &Grant) -> bool + Send + Sync>;

#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// An access token valid for less than this is refreshed before use.
    pub margin: chrono::Duration,
    /// How long a refresher's lease lasts: longer than the token call's timeout plus the write.
    pub lease: chrono::Duration,
    /// How long a caller waits for another worker's refresh before giving up (retryable).
    pub wait_max: Duration,
    /// How often a waiting caller looks again.
    pub poll: Duration,
}

impl RefreshSettings {
    pub fn from_config(config: &Config) -> Self {
        let lease = chrono::Duration::from_std(config.lease_duration).unwrap_or(chrono::Duration::seconds(60));
        RefreshSettings {
            margin: chrono::Duration::minutes(5),
            lease,
            wait_max: config.lease_duration.min(Duration::from_secs(25)),
            poll: Duration::from_millis(150),
        }
    }
}

/// A token fit for use now, and the grant it came from.
#[derive(Debug, Clone)]
pub struct ValidToken {
    pub tokens: TokenSet,
    pub grant: Grant,
}

pub struct TokenService {
    grants: GrantStore,
    vault: Vault,
    audit: AuditLog,
    events: EventPublisher,
    secrets: SecretsCache,
    config: Config,
    http: HttpClient,
    settings: RefreshSettings,
    /// This process's lease owner id.
    owner: String,
    /// One async lock per grant: callers in this process queue behind one refresh.
    local: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    clock: Clock,
    fail_point: Option<FailPoint>,
    /// Provider clients by provider (credentials come from Secrets Manager, cached).
    clients: Arc<Mutex<HashMap<Provider, ProviderClient>>>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("owner", &self.owner).field("settings", &self.settings).finish()
    }
}

impl TokenService {
    pub fn new(config: &Config, clients: &AwsClients, http: HttpClient) -> Self {
        TokenService {
            grants: GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
            vault: Vault::from_config(clients.kms.clone(), config),
            audit: AuditLog::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
            events: EventPublisher::new(clients.sqs.clone(), config.queues.events.clone()),
            secrets: SecretsCache::new(clients.secrets.clone(), crate::secrets::SECRETS_TTL),
            settings: RefreshSettings::from_config(config),
            config: config.clone(),
            http,
            owner: format!("refresher-{}", uuid::Uuid::new_v4().simple()),
            local: Default::default(),
            clock: Arc::new(Utc::now),
            fail_point: None,
            clients: Default::default(),
        }
    }

    pub fn with_settings(mut self, settings: RefreshSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Test hook: stop a refresh dead at a step (see `Step`).
    pub fn with_fail_point(mut self, fail_point: FailPoint) -> Self {
        self.fail_point = Some(fail_point);
        self
    }

    pub fn with_vault(mut self, vault: Vault) -> Self {
        self.vault = vault;
        self
    }

    pub fn grants(&self) -> &GrantStore {
        &self.grants
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn settings(&self) -> &RefreshSettings {
        &self.settings
    }

    /// The configuration it was built from (the sync worker's Zoho webhook registrations need the
    /// public URL and the provider endpoints).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The provider client, with credentials from Secrets Manager (cached per container).
    pub async fn provider_client(&self, provider: Provider) -> Result<ProviderClient> {
        if let Some(c) = lock(&self.clients).get(&provider) {
            return Ok(c.clone());
        }
        let creds = self.secrets.provider_credentials(&self.config.secrets.provider_credentials, provider).await?;
        let client = ProviderClient::new(provider, Endpoints::from_config(&self.config, provider), creds, self.http.clone());
        lock(&self.clients).insert(provider, client.clone());
        Ok(client)
    }

    /// The grant's access token when it stays valid for at least the margin; otherwise a refreshed
    /// one. Callers arriving while a refresh runs (here or in another process) wait for its result
    /// instead of refreshing again.
    pub async fn valid_access_token(&self, tenant_id: &str, provider: Provider, grant_id: &str) -> Result<ValidToken> {
        let arrived = self.now();
        let grant = self.read_grant(tenant_id, provider, grant_id).await?;
        let tokens = self.unseal(&grant).await?;
        if !tokens.access_expires_within(arrived, self.settings.margin) {
            return Ok(ValidToken { tokens, grant });
        }
        self.refresh_coalesced(grant, None, arrived).await
    }

    /// After the provider answered 401 to `rejected`: one refresh (unless another worker already
    /// replaced that token), under the lease. The caller retries once; a second 401 is an auth error.
    pub async fn after_unauthorized(
        &self,
        tenant_id: &str,
        provider: Provider,
        grant_id: &str,
        rejected: &SecretString,
    ) -> Result<ValidToken> {
        let arrived = self.now();
        let grant = self.read_grant(tenant_id, provider, grant_id).await?;
        self.refresh_coalesced(grant, Some(rejected.clone()), arrived).await
    }

    /// Runs `call` with a valid token; on a 401 (ProviderAuth) refreshes once and runs it once more.
    pub async fn with_token<T, F, Fut>(&self, tenant_id: &str, provider: Provider, grant_id: &str, mut call: F) -> Result<T>
    where
        F: FnMut(TokenSet) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let first = self.valid_access_token(tenant_id, provider, grant_id).await?;
        let rejected = first.tokens.access_token.clone();
        match call(first.tokens).await {
            Err(Error::ProviderAuth { .. }) => {
                tracing::info!(tenant_id, provider = %provider, grant_id, "provider answered 401; refreshing once and retrying");
                let again = self.after_unauthorized(tenant_id, provider, grant_id, &rejected).await?;
                call(again.tokens).await
            }
            other => other,
        }
    }

    async fn read_grant(&self, tenant_id: &str, provider: Provider, grant_id: &str) -> Result<Grant> {
        let grant = self
            .grants
            .get_grant(tenant_id, provider, grant_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{provider} grant {grant_id}")))?;
        usable(&grant)?;
        Ok(grant)
    }

    async fn unseal(&self, grant: &Grant) -> Result<TokenSet> {
        grant_tokens::read_tokens(&self.grants, &self.vault, &self.audit, grant, self.now()).await
    }

    fn local_lock(&self, grant: &Grant) -> Arc<tokio::sync::Mutex<()>> {
        let key = format!("{}/{}/{}", grant.tenant_id, grant.provider, grant.grant_id);
        let mut map = lock(&self.local);
        // Drop locks nobody holds or waits for, so the map does not grow with every grant seen.
        if map.len() > 1024 {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(key).or_default().clone()
    }

    /// One refresh per grant in this process: later callers wait on the lock, then find the fresh
    /// token the first one stored.
    async fn refresh_coalesced(&self, grant: Grant, rejected: Option<SecretString>, arrived: DateTime<Utc>) -> Result<ValidToken> {
        let lock = self.local_lock(&grant);
        let _held = lock.lock().await;
        self.refresh_leased(&grant, rejected.as_ref(), arrived).await
    }

    /// Takes the lease (waiting while another process holds it) and refreshes unless the token
    /// became good meanwhile.
    async fn refresh_leased(&self, seen: &Grant, rejected: Option<&SecretString>, arrived: DateTime<Utc>) -> Result<ValidToken> {
        let started = tokio::time::Instant::now();
        loop {
            let now = self.now();
            match self.grants.acquire_lease(&seen.tenant_id, seen.provider, &seen.grant_id, &self.owner, self.settings.lease, now).await {
                Ok((_lease, grant)) => {
                    if let Err(e) = usable(&grant) {
                        self.release(&grant).await;
                        return Err(e);
                    }
                    let tokens = match self.unseal(&grant).await {
                        Ok(t) => t,
                        Err(e) => {
                            self.release(&grant).await;
                            return Err(e);
                        }
                    };
                    if fresh_enough(&tokens, rejected, now, self.settings.margin) {
                        // Someone refreshed while we queued: use theirs.
                        self.release(&grant).await;
                        return Ok(ValidToken { tokens, grant });
                    }
                    if grant.last_failure_at.is_some_and(|f| f >= arrived) {
                        // The refresh we waited for failed moments ago: share its outcome rather
                        // than hitting a failing (or throttling) token endpoint once per caller.
                        self.release(&grant).await;
                        return Err(Error::ProviderTransient {
                            provider: grant.provider,
                            status: None,
                            message: "the grant's refresh failed moments ago; retry later".into(),
                        });
                    }
                    return self.refresh_under_lease(grant, tokens).await;
                }
                Err(Error::Conflict(_)) => {
                    // Another process is refreshing: wait for its write instead of refreshing again.
                    if started.elapsed() >= self.settings.wait_max {
                        return Err(Error::TokenUnavailable(format!(
                            "grant {} is being refreshed by another worker; try again shortly",
                            seen.grant_id
                        )));
                    }
                    tokio::time::sleep(self.settings.poll).await;
                    let grant = self.read_grant(&seen.tenant_id, seen.provider, &seen.grant_id).await?;
                    if grant.version != seen.version && grant.lease_owner.is_none() {
                        let tokens = self.unseal(&grant).await?;
                        if fresh_enough(&tokens, rejected, self.now(), self.settings.margin) {
                            return Ok(ValidToken { tokens, grant });
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn release(&self, grant: &Grant) {
        if let Err(e) = self.grants.release_lease(&grant.tenant_id, grant.provider, &grant.grant_id, &self.owner).await {
            // The lease expires on its own; only later callers wait a little longer.
            tracing::warn!(code = %e.code(), error = %e, grant_id = %grant.grant_id, "could not release a grant lease");
        }
    }

    fn fail(&self, step: Step, grant: &Grant) -> Result<()> {
        match &self.fail_point {
            Some(f) if f(step, grant) => Err(Error::Internal(format!("injected crash at {step:?}"))),
            _ => Ok(()),
        }
    }

    /// The refresh itself. We hold the lease on `grant` (as read under it) and its `tokens`.
    pub(crate) async fn refresh_under_lease(&self, grant: Grant, tokens: TokenSet) -> Result<ValidToken> {
        self.fail(Step::BeforeProviderCall, &grant)?;
        let client = match self.provider_client(grant.provider).await {
            Ok(c) => c,
            Err(e) => {
                self.release(&grant).await;
                return Err(e);
            }
        };
        let answer = client.refresh(&tokens).await;
        let new = match answer {
            Ok(new) => new,
            Err(e) => return Err(self.refresh_failed(&grant, e).await),
        };
        self.fail(Step::AfterProviderAnswer, &grant)?;
        let stored = self.store(&grant, &new).await?;
        self.fail(Step::AfterWrite, &stored)?;
        tracing::info!(tenant_id = %grant.tenant_id, provider = %grant.provider, grant_id = %grant.grant_id, version = stored.version, "grant refreshed");
        crate::telemetry::metric("GrantRefreshed", 1.0, "Count", &[("provider", grant.provider.as_str())]);
        if let Some(since) = grant.degraded_since {
            let data = self.health(&grant, None, Some(since));
            self.emit(EventType::ConnectionRecovered, &grant, data).await;
        }
        Ok(ValidToken { tokens: new, grant: stored })
    }

    /// Stores a new pair under our lease. If the lease lapsed (a slow provider), the pair is still
    /// stored when the version has not moved: it is the only valid pair there is (QuickBooks and Xero
    /// rotated the old one away), and nobody else has written since.
    async fn store(&self, grant: &Grant, new: &TokenSet) -> Result<Grant> {
        let now = self.now();
        let sealed = self.vault.seal_tokens(&seal_context(grant), new).await?;
        let write = TokenWrite {
            sealed: &sealed,
            access_expires_at: new.access_expires_at,
            refresh_expires_at: refresh_due(new),
            expected_version: grant.version,
            lease_owner: Some(&self.owner),
            now,
        };
        let audit =
            audit_item(&grant.tenant_id, grant.provider, &grant.grant_id, TokenEvent::Refreshed, "system:token-refresher", None, now);
        // The provider has already answered: this pair may be the only valid one (QuickBooks and
        // Xero rotate), so a throttled or timed-out write is retried a few times before giving up.
        let mut attempt = 0;
        let version = loop {
            attempt += 1;
            match self.grants.store_refreshed(grant, &write, Some(audit.clone()), self.audit.table()).await {
                Ok(v) => break v,
                Err(Error::Conflict(_)) => {
                    // An earlier attempt whose answer we lost (a timeout) may have landed: then the
                    // stored blob is ours.
                    if attempt > 1 && self.stored_blob_is(grant, &sealed).await {
                        break grant.version + 1;
                    }
                    tracing::warn!(grant_id = %grant.grant_id, "lease lapsed during the refresh; storing the new pair by version alone");
                    let rescue = TokenWrite { lease_owner: None, ..write };
                    match self.grants.store_refreshed(grant, &rescue, Some(audit), self.audit.table()).await {
                        Ok(v) => break v,
                        Err(Error::Conflict(_)) if self.stored_blob_is(grant, &sealed).await => break grant.version + 1,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.is_retryable() && attempt < 4 => {
                    tracing::warn!(code = %e.code(), error = %e, attempt, grant_id = %grant.grant_id, "storing the refreshed pair failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * (1 << attempt))).await;
                }
                Err(e) => {
                    tracing::error!(code = %e.code(), error = %e, tenant_id = %grant.tenant_id, grant_id = %grant.grant_id, "the refreshed pair could not be stored");
                    return Err(e);
                }
            }
        };
        let mut stored = grant.clone();
        stored.sealed = Some(sealed);
        stored.version = version;
        stored.access_expires_at = new.access_expires_at;
        stored.refresh_expires_at = refresh_due(new);
        stored.lease_owner = None;
        stored.lease_expires_at = None;
        stored.degraded_since = None;
        stored.status = GrantStatus::Active;
        stored.updated_at = now;
        Ok(stored)
    }

    /// Whether the grant now holds exactly `sealed` (a write of ours that landed unseen).
    async fn stored_blob_is(&self, grant: &Grant, sealed: &crate::vault::SealedBlob) -> bool {
        match self.grants.get_grant(&grant.tenant_id, grant.provider, &grant.grant_id).await {
            Ok(Some(now)) => now.sealed.as_ref() == Some(sealed),
            _ => false,
        }
    }

    /// Classifies a failed refresh and records it; returns the error for the caller.
    async fn refresh_failed(&self, grant: &Grant, err: Error) -> Error {
        let now = self.now();
        if is_permanent(&err) {
            tracing::warn!(tenant_id = %grant.tenant_id, provider = %grant.provider, grant_id = %grant.grant_id, code = %err.code(), error = %err, "grant is dead; marking needs_reauth");
            match self.grants.mark_needs_reauth_leased(grant, &self.owner, now).await {
                Ok(()) => {
                    let detail = format!("{}: {}", err.code(), err);
                    if let Err(e) = self
                        .audit
                        .record(
                            &grant.tenant_id,
                            grant.provider,
                            &grant.grant_id,
                            TokenEvent::NeedsReauth,
                            "system:token-refresher",
                            Some(&detail),
                            now,
                        )
                        .await
                    {
                        tracing::error!(code = %e.code(), error = %e, "audit record for needs_reauth failed");
                    }
                    let mut data = self.health(grant, Some(&err), None);
                    data.reconnect_url = Some(reconnect_url(&self.config, grant.provider));
                    self.emit(EventType::ConnectionNeedsReauth, grant, data).await;
                    crate::telemetry::metric("GrantNeedsReauth", 1.0, "Count", &[("provider", grant.provider.as_str())]);
                }
                Err(e) => {
                    tracing::error!(code = %e.code(), error = %e, grant_id = %grant.grant_id, "could not mark the grant needs_reauth")
                }
            }
            return Error::NeedsReauth { provider: grant.provider, grant_id: grant.grant_id.clone() };
        }
        tracing::warn!(tenant_id = %grant.tenant_id, provider = %grant.provider, grant_id = %grant.grant_id, code = %err.code(), error = %err, "refresh failed; will retry");
        crate::telemetry::metric("GrantRefreshFailed", 1.0, "Count", &[("provider", grant.provider.as_str())]);
        match self.grants.mark_degraded(grant, &self.owner, now).await {
            Ok(true) => {
                let data = self.health(grant, Some(&err), Some(now));
                self.emit(EventType::ConnectionDegraded, grant, data).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(code = %e.code(), error = %e, "could not flag the grant degraded"),
        }
        // Transient by classification, whatever the variant says: the grant is fine, the call failed.
        if err.is_retryable() {
            err
        } else {
            Error::ProviderTransient { provider: grant.provider, status: None, message: format!("token refresh failed: {}", err.code()) }
        }
    }

    fn health(&self, grant: &Grant, err: Option<&Error>, since: Option<DateTime<Utc>>) -> ConnectionHealth {
        ConnectionHealth {
            grant_id: Some(grant.grant_id.clone()),
            org_ids: grant.org_ids.clone(),
            cause: HealthCause::TokenRefresh,
            error_code: err.map(|e| e.code().as_u16()),
            message: err.map(public_message),
            since: since.map(|s| s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            reconnect_url: None,
        }
    }

    /// Sends an event to the app's queue: one retry, then logged and counted (the state change is
    /// already stored; a lost event must not undo it).
    async fn emit(&self, event_type: EventType, grant: &Grant, data: ConnectionHealth) {
        let data = serde_json::to_value(data).unwrap_or_default();
        let event = AppEvent::new(event_type, &grant.tenant_id, grant.provider, self.now(), data);
        for attempt in 1..=2 {
            match self.events.publish(&event, None).await {
                Ok(()) => return,
                Err(e) if attempt == 1 && e.is_retryable() => continue,
                Err(e) => {
                    tracing::error!(code = %e.code(), error = %e, event_type = event_type.as_str(), "event not delivered");
                    crate::telemetry::metric("EventPublishFailed", 1.0, "Count", &[("type", event_type.as_str())]);
                    return;
                }
            }
        }
    }
}

/// Only `invalid_grant` (and Zoho's equivalents, mapped to it) says the grant itself is dead. Our
/// own client credentials being refused (invalid_client) or an odd answer is not the tenant's
/// fault: marking every grant needs_reauth for a rotated client secret would be a disaster.
fn is_permanent(e: &Error) -> bool {
    matches!(e, Error::InvalidGrant { .. })
}

/// A grant a token can come from.
fn usable(grant: &Grant) -> Result<()> {
    match grant.status {
        GrantStatus::Active if grant.sealed.is_some() => Ok(()),
        GrantStatus::NeedsReauth => Err(Error::NeedsReauth { provider: grant.provider, grant_id: grant.grant_id.clone() }),
        other => Err(Error::TokenUnavailable(format!("grant {} is {}", grant.grant_id, other.as_str()))),
    }
}

/// Good enough to hand out: valid for the margin, and not the token a provider just refused.
fn fresh_enough(tokens: &TokenSet, rejected: Option<&SecretString>, now: DateTime<Utc>, margin: chrono::Duration) -> bool {
    match rejected {
        Some(r) => tokens.access_token != *r && tokens.access_expires_at > now,
        None => !tokens.access_expires_within(now, margin),
    }
}

/// When the refresh token must be used by: its own (rolling) expiry, or the hard cap if sooner.
fn refresh_due(t: &TokenSet) -> Option<DateTime<Utc>> {
    match (t.refresh_expires_at, t.refresh_hard_expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What an event may say about an error: the code's name and the provider, never provider text
/// (which can echo request details).
fn public_message(e: &Error) -> String {
    match e {
        Error::InvalidGrant { provider, .. } => format!("{provider} no longer accepts this connection's authorisation"),
        Error::ProviderRateLimited { provider, .. } => format!("{provider} is limiting token requests"),
        Error::ProviderTimeout { provider, .. } => format!("{provider} did not answer in time"),
        Error::ProviderTransient { provider, .. } => format!("{provider} had a temporary failure"),
        Error::ProviderAuth { provider, .. } => format!("{provider} refused our application credentials"),
        other => format!("{:?}", other.code()),
    }
}

/// `{PUBLIC_BASE_URL}/connect/{provider}`: the app signs it as for any connect.
pub fn reconnect_url(config: &Config, provider: Provider) -> String {
    let mut u = config.public_base_url.clone();
    let path = format!("{}/connect/{}", u.path().trim_end_matches('/'), provider.as_str());
    u.set_path(&path);
    u.set_query(None);
    u.to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: &str, exp: DateTime<Utc>) -> TokenSet {
        TokenSet {
            access_token: SecretString::new(access),
            refresh_token: Some(SecretString::new("rt")),
            access_expires_at: exp,
            refresh_expires_at: None,
            refresh_hard_expires_at: None,
            scopes: vec![],
            api_domain: None,
            accounts_server: None,
        }
    }

    #[test]
    fn only_invalid_grant_kills_a_grant() {
        assert!(is_permanent(&Error::InvalidGrant { provider: Provider::Xero, reason: "invalid_grant".into() }));
        for e in [
            Error::ProviderAuth { provider: Provider::Xero, reason: "invalid_client".into() },
            Error::ProviderRateLimited { provider: Provider::Zoho, problem: "token issue limit".into(), retry_after: None },
            Error::ProviderTransient { provider: Provider::QuickBooks, status: Some(503), message: "x".into() },
            Error::ProviderPermanent { provider: Provider::Zoho, status: None, message: "x".into() },
        ] {
            assert!(!is_permanent(&e), "{e:?}");
        }
    }

    #[test]
    fn a_rejected_token_is_never_handed_out_again() {
        let now = Utc::now();
        let t = tokens("a", now + chrono::Duration::minutes(50));
        assert!(fresh_enough(&t, None, now, chrono::Duration::minutes(5)));
        assert!(!fresh_enough(&t, Some(&SecretString::new("a")), now, chrono::Duration::minutes(5)));
        assert!(fresh_enough(&t, Some(&SecretString::new("old")), now, chrono::Duration::minutes(5)));
        let soon = tokens("a", now + chrono::Duration::minutes(2));
        assert!(!fresh_enough(&soon, None, now, chrono::Duration::minutes(5)));
    }

    #[test]
    fn the_refresh_token_is_due_at_the_earlier_of_its_expiries() {
        let now = Utc::now();
        let mut t = tokens("a", now);
        assert_eq!(refresh_due(&t), None);
        t.refresh_expires_at = Some(now + chrono::Duration::days(100));
        t.refresh_hard_expires_at = Some(now + chrono::Duration::days(3));
        assert_eq!(refresh_due(&t), Some(now + chrono::Duration::days(3)));
    }

    #[test]
    fn event_messages_carry_no_provider_text() {
        let e = Error::InvalidGrant { provider: Provider::Xero, reason: "invalid_grant: token abc123 revoked".into() };
        assert!(!public_message(&e).contains("abc123"));
    }
}
