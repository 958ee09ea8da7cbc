//! Tenants: plan, limits, their own configuration, monthly usage, and the roles of the app's users.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};

use crate::store::{dynamo_error, get_item, get_n, get_n_opt, get_s, is_conditional_failure, n, s, tenant_pk, Item};
use crate::{Error, Provider, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Starter,
    Professional,
    Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub api_calls_per_month: u64,
    /// Connected provider organisations.
    pub integrations: u32,
    pub users: u32,
    /// The shortest scheduled sync interval the plan allows.
    pub min_sync_minutes: u32,
}

impl Plan {
    pub fn limits(self) -> Limits {
        match self {
            Plan::Starter => Limits { api_calls_per_month: 10_000, integrations: 1, users: 3, min_sync_minutes: 60 },
            Plan::Professional => Limits { api_calls_per_month: 100_000, integrations: 5, users: 25, min_sync_minutes: 15 },
            Plan::Enterprise => Limits { api_calls_per_month: 2_000_000, integrations: 100, users: 1_000, min_sync_minutes: 1 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Normal,
    Low,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Invoice,
    Contact,
    Account,
    Payment,
    Bill,
    Company,
    CreditNote,
    BillPayment,
    TaxRate,
    Item,
    TrackingCategory,
    Journal,
    PurchaseOrder,
    BankTransaction,
}

impl Entity {
    /// The provider clients' and the store's name for the same entity.
    pub fn model(self) -> crate::providers::model::Entity {
        use crate::providers::model::Entity as M;
        match self {
            Entity::Invoice => M::Invoice,
            Entity::Contact => M::Contact,
            Entity::Account => M::Account,
            Entity::Payment => M::Payment,
            Entity::Bill => M::Bill,
            Entity::Company => M::Company,
            Entity::CreditNote => M::CreditNote,
            Entity::BillPayment => M::BillPayment,
            Entity::TaxRate => M::TaxRate,
            Entity::Item => M::Item,
            Entity::TrackingCategory => M::TrackingCategory,
            Entity::Journal => M::Journal,
            Entity::PurchaseOrder => M::PurchaseOrder,
            Entity::BankTransaction => M::BankTransaction,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantConfig {
    pub enabled_providers: Vec<Provider>,
    pub enabled_entities: Vec<Entity>,
    pub sync_frequency_minutes: u32,
    pub queue_priority: Priority,
    /// Scopes to request per provider; a provider left out gets the defaults.
    #[serde(default)]
    pub scopes: BTreeMap<Provider, Vec<String>>,
    /// Where the connect flow may send the user back to (exact match on scheme, host, port, path prefix).
    pub return_urls: Vec<String>,
    /// No longer used: every event goes to the shared outbound events queue (IAM never allowed
    /// sending anywhere else). Kept so stored configurations still read and validate; see
    /// `EventPublisher::publish`.
    #[serde(default)]
    pub event_destination: Option<String>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            enabled_providers: Provider::ALL.to_vec(),
            enabled_entities: vec![Entity::Invoice, Entity::Contact, Entity::Account, Entity::Payment],
            sync_frequency_minutes: 60,
            queue_priority: Priority::Normal,
            scopes: BTreeMap::new(),
            return_urls: Vec::new(),
            event_destination: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
    pub plan: Plan,
    /// Negotiated limits (enterprise contracts); None means the plan's.
    #[serde(default)]
    pub limits_override: Option<Limits>,
    pub config: TenantConfig,
    #[serde(default)]
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Tenant {
    pub fn new(tenant_id: impl Into<String>, name: impl Into<String>, plan: Plan, config: TenantConfig, now: DateTime<Utc>) -> Self {
        Tenant {
            tenant_id: tenant_id.into(),
            name: name.into(),
            plan,
            limits_override: None,
            config,
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits_override.unwrap_or_else(|| self.plan.limits())
    }

    /// Every problem with the tenant, as one error naming each field.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if !valid_tenant_id(&self.tenant_id) {
            problems.push("tenant_id must be 1-64 letters, digits, '-' or '_'".to_string());
        }
        if self.name.trim().is_empty() {
            problems.push("name must not be empty".into());
        }
        let c = &self.config;
        if c.enabled_providers.is_empty() {
            problems.push("enabled_providers must name at least one provider".into());
        }
        if has_duplicates(&c.enabled_providers) {
            problems.push("enabled_providers has duplicates".into());
        }
        if c.enabled_entities.is_empty() {
            problems.push("enabled_entities must name at least one entity".into());
        }
        if has_duplicates(&c.enabled_entities) {
            problems.push("enabled_entities has duplicates".into());
        }
        let min = self.limits().min_sync_minutes;
        if c.sync_frequency_minutes < min || c.sync_frequency_minutes > 1440 {
            problems.push(format!("sync_frequency_minutes must be between {min} (the {:?} plan's minimum) and 1440", self.plan));
        }
        for (provider, scopes) in &c.scopes {
            if !c.enabled_providers.contains(provider) {
                problems.push(format!("scopes given for {provider}, which is not enabled"));
            }
            if scopes.is_empty() || scopes.iter().any(|s| s.is_empty() || s.chars().any(char::is_whitespace)) {
                problems.push(format!("scopes for {provider} must be non-empty tokens without spaces"));
            }
        }
        if c.return_urls.is_empty() || c.return_urls.len() > 20 {
            problems.push("return_urls must list 1 to 20 URLs".into());
        }
        for u in &c.return_urls {
            if let Err(why) = check_return_url(u) {
                problems.push(format!("return_urls entry '{u}' {why}"));
            }
        }
        if let Some(dest) = &c.event_destination {
            match url::Url::parse(dest) {
                Ok(u) if u.scheme() == "https" => {}
                _ => problems.push("event_destination must be an https URL (an SQS queue URL)".into()),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidTenantConfig(problems.join("; ")))
        }
    }

    /// Whether `url` is on this tenant's allow-list: same scheme, host and port as an entry, and a path
    /// under the entry's path. Used before any redirect so the connect flow cannot become an open redirect.
    pub fn return_url_allowed(&self, candidate: &str) -> bool {
        let Ok(c) = url::Url::parse(candidate) else { return false };
        if c.username() != "" || c.password().is_some() {
            return false;
        }
        self.config.return_urls.iter().filter_map(|a| url::Url::parse(a).ok()).any(|a| {
            a.scheme() == c.scheme()
                && a.host_str() == c.host_str()
                && a.port_or_known_default() == c.port_or_known_default()
                && path_under(a.path(), c.path())
        })
    }

    pub fn provider_enabled(&self, provider: Provider) -> bool {
        self.config.enabled_providers.contains(&provider)
    }
}

/// What routing an incoming webhook needs of a tenant: which providers and entities it syncs and
/// which queue its jobs go to. A copy rides on each of the tenant's connection items (attribute
/// `routing`, written with the connection and again on every tenant update, never older than the
/// copy it replaces), so the webhook receiver finds it in the `org` index it queries anyway and a
/// cold delivery need not read the tenant as well (`webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantRouting {
    pub tenant_id: String,
    /// The tenant's version the copy was taken from: a copy never replaces a newer one.
    pub version: i64,
    pub enabled_providers: Vec<Provider>,
    pub enabled_entities: Vec<Entity>,
    pub queue_priority: Priority,
}

impl TenantRouting {
    pub fn of(t: &Tenant) -> Self {
        TenantRouting {
            tenant_id: t.tenant_id.clone(),
            version: t.version,
            enabled_providers: t.config.enabled_providers.clone(),
            enabled_entities: t.config.enabled_entities.clone(),
            queue_priority: t.config.queue_priority,
        }
    }

    pub fn provider_enabled(&self, provider: Provider) -> bool {
        self.enabled_providers.contains(&provider)
    }
}

fn path_under(allowed: &str, candidate: &str) -> bool {
    if allowed == "/" || allowed.is_empty() {
        return true;
    }
    let base = allowed.trim_end_matches('/');
    candidate == base || candidate.starts_with(&format!("{base}/"))
}

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter().enumerate().any(|(i, a)| v[i + 1..].contains(a))
}

fn check_return_url(raw: &str) -> std::result::Result<(), &'static str> {
    let u = url::Url::parse(raw).map_err(|_| "is not a URL")?;
    let local = matches!(u.host_str(), Some("localhost") | Some("127.0.0.1"));
    if u.scheme() != "https" && !(u.scheme() == "http" && local) {
        return Err("must be https (http only for localhost)");
    }
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry a fragment or credentials");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Connect,
    Disconnect,
    TriggerSync,
    ViewConnections,
    ManageUsers,
    ManageTenant,
    /// Create and update records in the books (`crate::writes`).
    WriteBooks,
    /// Void and delete records in the books.
    VoidOrDelete,
}

impl Role {
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(p, ManageTenant),
            // Members keep the books (create, update); voiding and deleting is for admins.
            Role::Member => matches!(p, TriggerSync | ViewConnections | WriteBooks),
            Role::Viewer => matches!(p, ViewConnections),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "member" => Role::Member,
            "viewer" => Role::Viewer,
            other => return Err(Error::InvalidInput(format!("unknown role '{other}'"))),
        })
    }
}

fn usage_sk(now: DateTime<Utc>) -> String {
    format!("USAGE#{:04}-{:02}", now.year(), now.month())
}

#[derive(Clone, Debug)]
pub struct TenantStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl TenantStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        TenantStore { db, table: table.into() }
    }

    fn item(t: &Tenant) -> Result<Item> {
        let mut item = Item::new();
        item.insert("pk".into(), s(tenant_pk(&t.tenant_id)));
        item.insert("sk".into(), s("TENANT"));
        item.insert("doc".into(), s(serde_json::to_string(t).map_err(|e| Error::Internal(e.to_string()))?));
        item.insert("version".into(), n(t.version));
        Ok(item)
    }

    /// Creates a tenant; fails with Conflict if it exists.
    pub async fn create(&self, tenant: &Tenant) -> Result<()> {
        tenant.validate()?;
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(tenant)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("tenant {} already exists", tenant.tenant_id))),
            Err(e) => Err(dynamo_error("PutItem(tenant)", e)),
        }
    }

    /// Updates a tenant read at `tenant.version`; returns it with the new version.
    pub async fn update(&self, tenant: &Tenant, now: DateTime<Utc>) -> Result<Tenant> {
        tenant.validate()?;
        let mut next = tenant.clone();
        next.version = tenant.version + 1;
        next.updated_at = now;
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(&next)?))
            .condition_expression("attribute_exists(pk) AND version = :v")
            .expression_attribute_values(":v", n(tenant.version))
            .send()
            .await;
        match res {
            Ok(_) => Ok(next),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("tenant {} changed since it was read", tenant.tenant_id))),
            Err(e) => Err(dynamo_error("PutItem(tenant)", e)),
        }
    }

    pub async fn get(&self, tenant_id: &str) -> Result<Tenant> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), "TENANT".into())
            .await?
            .ok_or_else(|| Error::TenantNotFound(tenant_id.to_string()))?;
        let mut t: Tenant = serde_json::from_str(&get_s(&item, "doc")?)
            .map_err(|e| Error::Storage { message: format!("tenant document: {e}"), retryable: false })?;
        t.version = get_n(&item, "version")?;
        Ok(t)
    }

    /// Counts `calls` against this month's API-call quota. The increment and the limit check are one
    /// conditional update, so concurrent workers can never push the counter past the limit.
    pub async fn consume_api_calls(&self, tenant: &Tenant, calls: u64, now: DateTime<Utc>) -> Result<u64> {
        let limit = tenant.limits().api_calls_per_month;
        if calls > limit {
            return Err(Error::QuotaExceeded { limit });
        }
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&tenant.tenant_id)))
            .key("sk", s(usage_sk(now)))
            .update_expression("ADD api_calls :n SET expires_at = if_not_exists(expires_at, :exp)")
            .condition_expression("attribute_not_exists(api_calls) OR api_calls <= :max")
            .expression_attribute_values(":n", n(calls))
            .expression_attribute_values(":max", n(limit - calls))
            // Usage rows are kept about 13 months for billing questions.
            .expression_attribute_values(":exp", n((now + chrono::Duration::days(400)).timestamp()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.attributes.as_ref().and_then(|a| get_n_opt(a, "api_calls")).unwrap_or(0) as u64),
            Err(e) if is_conditional_failure(&e) => Err(Error::QuotaExceeded { limit }),
            Err(e) => Err(dynamo_error("UpdateItem(usage)", e)),
        }
    }

    /// Gives back `calls` charged by [`TenantStore::consume_api_calls`] at `charged_at` that never
    /// reached the provider (the resilience guard refused them), to the month they were charged to.
    /// Never takes the counter below zero.
    pub async fn refund_api_calls(&self, tenant_id: &str, calls: u64, charged_at: DateTime<Utc>) -> Result<()> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(usage_sk(charged_at)))
            .update_expression("ADD api_calls :neg")
            .condition_expression("api_calls >= :n")
            .expression_attribute_values(":neg", n(-(calls as i64)))
            .expression_attribute_values(":n", n(calls))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Nothing (or less) to give back: the month's row was reset or never written.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(dynamo_error("UpdateItem(usage refund)", e)),
        }
    }

    pub async fn api_calls_used(&self, tenant_id: &str, now: DateTime<Utc>) -> Result<u64> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), usage_sk(now)).await?;
        Ok(item.as_ref().and_then(|i| get_n_opt(i, "api_calls")).unwrap_or(0) as u64)
    }

    /// Gives a user a role. Adding a user is checked against the plan's user limit atomically: the
    /// count is tied to the tenant's user-set version, which the write bumps, so two additions racing
    /// at the limit cannot both land (the loser gets a retryable conflict).
    pub async fn set_role(&self, tenant: &Tenant, user_id: &str, role: Role) -> Result<()> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        if user_id.is_empty() || user_id.len() > 128 {
            return Err(Error::InvalidInput("user id must be 1-128 characters".into()));
        }
        let pk = tenant_pk(&tenant.tenant_id);
        let version = get_item(&self.db, &self.table, pk.clone(), USERSET_SK.into())
            .await?
            .as_ref()
            .and_then(|i| get_n_opt(i, "version"))
            .unwrap_or(0);
        if self.get_role(&tenant.tenant_id, user_id).await?.is_some() {
            // A role change: the user still counts once. Conditioned on existing, so a concurrent
            // removal does not let the change re-add a user past the limit.
            let changed = self
                .db
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pk.clone()))
                .item("sk", s(format!("USER#{user_id}")))
                .item("role", s(role.as_str()))
                .condition_expression("attribute_exists(pk)")
                .send()
                .await;
            return match changed {
                Ok(_) => Ok(()),
                Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("user {user_id} changed concurrently; try again"))),
                Err(e) => Err(dynamo_error("PutItem(role)", e)),
            };
        }
        let users = self.count_prefix(&tenant.tenant_id, "USER#").await?;
        if users >= tenant.limits().users as usize {
            return Err(Error::PlanLimit(format!("the {:?} plan allows {} users", tenant.plan, tenant.limits().users)));
        }
        let mut bump = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .key("sk", s(USERSET_SK))
            .update_expression("SET version = :nv")
            .expression_attribute_values(":nv", n(version + 1));
        bump = if version == 0 {
            bump.condition_expression("attribute_not_exists(version)")
        } else {
            bump.condition_expression("version = :v").expression_attribute_values(":v", n(version))
        };
        let items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", s(pk.clone()))
                        .item("sk", s(format!("USER#{user_id}")))
                        .item("role", s(role.as_str()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(Error::storage)?,
                )
                .build(),
            TransactWriteItem::builder().update(bump.build().map_err(Error::storage)?).build(),
        ];
        match self.db.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict("the tenant's users changed concurrently; try again".into())),
            Err(e) => Err(dynamo_error("TransactWriteItems(role)", e)),
        }
    }

    pub async fn get_role(&self, tenant_id: &str, user_id: &str) -> Result<Option<Role>> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), format!("USER#{user_id}")).await?;
        item.as_ref().map(|i| get_s(i, "role")?.parse()).transpose()
    }

    /// The user's role if it allows `permission`; Forbidden otherwise (also for unknown users).
    pub async fn authorize(&self, tenant_id: &str, user_id: &str, permission: Permission) -> Result<Role> {
        match self.get_role(tenant_id, user_id).await? {
            Some(role) if role.allows(permission) => Ok(role),
            Some(role) => Err(Error::Forbidden(format!("role {} may not {:?}", role.as_str(), permission))),
            None => Err(Error::Forbidden("user has no role in this tenant".into())),
        }
    }

    /// Every tenant, for operators (the ops CLI). A scan: tenants are few and this never runs on a
    /// request path. Paginates until the table is exhausted.
    pub async fn list(&self) -> Result<Vec<Tenant>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", s("TENANT"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("Scan(tenants)", e))?;
            for item in page.items() {
                let mut t: Tenant = serde_json::from_str(&get_s(item, "doc")?)
                    .map_err(|e| Error::Storage { message: format!("tenant document: {e}"), retryable: false })?;
                t.version = get_n(item, "version")?;
                out.push(t);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        Ok(out)
    }

    /// The tenant's users and their roles, sorted by user id.
    pub async fn list_users(&self, tenant_id: &str) -> Result<Vec<(String, Role)>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s("USER#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("Query(users)", e))?;
            for item in page.items() {
                let sk = get_s(item, "sk")?;
                let user = sk.strip_prefix("USER#").unwrap_or(&sk).to_string();
                out.push((user, get_s(item, "role")?.parse()?));
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes a user's role; false when the user had none.
    pub async fn remove_user(&self, tenant_id: &str, user_id: &str) -> Result<bool> {
        let out = self
            .db
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(format!("USER#{user_id}")))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| dynamo_error("DeleteItem(role)", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Counts every page: a COUNT query stops at 1 MB of items read like any other.
    async fn count_prefix(&self, tenant_id: &str, prefix: &str) -> Result<usize> {
        let mut count = 0usize;
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(prefix))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(count)", e))?;
            count += out.count.max(0) as usize;
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(count);
            }
        }
    }
}

/// The tenant's user-set version item: bumped by every user addition, read before counting.
const USERSET_SK: &str = "USERSET";

/// Refuses a new connection when the tenant already uses every integration its plan allows.
pub fn ensure_integration_capacity(tenant: &Tenant, active_connections: usize, adding: usize) -> Result<()> {
    let limit = tenant.limits().integrations as usize;
    if active_connections + adding > limit {
        return Err(Error::PlanLimit(format!("the {:?} plan allows {limit} connected organisations", tenant.plan)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        let cfg = TenantConfig { return_urls: vec!["https://app.example.com/integrations".into()], ..Default::default() };
        Tenant::new("t-1", "Acme", Plan::Professional, cfg, Utc::now())
    }

    #[test]
    fn valid_tenant_passes_and_each_bad_field_is_named() {
        tenant().validate().unwrap();
        let mut t = tenant();
        t.config.sync_frequency_minutes = 5;
        t.config.return_urls = vec!["http://evil.example.com".into()];
        t.config.scopes.insert(Provider::Xero, vec!["a b".into()]);
        t.config.enabled_providers = vec![Provider::QuickBooks, Provider::QuickBooks];
        let msg = t.validate().unwrap_err().to_string();
        for needle in ["sync_frequency_minutes", "return_urls", "scopes for xero", "duplicates", "not enabled"] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
        let mut bad_id = tenant();
        bad_id.tenant_id = "TENANT#x".into();
        assert!(bad_id.validate().is_err());
    }

    #[test]
    fn return_url_allow_list_is_strict() {
        let t = tenant();
        assert!(t.return_url_allowed("https://app.example.com/integrations"));
        assert!(t.return_url_allowed("https://app.example.com/integrations/done?x=1"));
        for bad in [
            "https://app.example.com/integrationsX",
            "https://app.example.com.evil.com/integrations",
            "http://app.example.com/integrations",
            "https://app.example.com:8443/integrations",
            "https://user@app.example.com/integrations",
            "//evil.com",
            "javascript:alert(1)",
        ] {
            assert!(!t.return_url_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn roles_grant_what_they_should() {
        assert!(Role::Owner.allows(Permission::ManageTenant));
        assert!(Role::Admin.allows(Permission::Connect) && Role::Admin.allows(Permission::Disconnect));
        assert!(!Role::Admin.allows(Permission::ManageTenant));
        assert!(!Role::Member.allows(Permission::Connect));
        assert!(Role::Member.allows(Permission::TriggerSync));
        assert!(!Role::Viewer.allows(Permission::TriggerSync));
        assert!(Role::Viewer.allows(Permission::ViewConnections));
        // Writes: members keep the books; voiding and deleting is for admins; viewers never write.
        assert!(Role::Member.allows(Permission::WriteBooks) && !Role::Member.allows(Permission::VoidOrDelete));
        assert!(Role::Admin.allows(Permission::VoidOrDelete) && Role::Owner.allows(Permission::VoidOrDelete));
        assert!(!Role::Viewer.allows(Permission::WriteBooks) && !Role::Viewer.allows(Permission::VoidOrDelete));
    }

    #[test]
    fn integration_capacity_follows_the_plan() {
        let mut t = tenant();
        t.plan = Plan::Starter;
        assert!(ensure_integration_capacity(&t, 0, 1).is_ok());
        let e = ensure_integration_capacity(&t, 1, 1).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::PlanLimit);
        t.limits_override = Some(Limits { integrations: 3, ..Plan::Starter.limits() });
        assert!(ensure_integration_capacity(&t, 1, 2).is_ok());
    }
}
