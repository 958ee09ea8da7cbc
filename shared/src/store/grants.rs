//! Grants (one per OAuth token set) and connections (one per provider org a grant serves).

use std::str::FromStr;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::*;
use crate::vault::SealedBlob;
use crate::Provider;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    NeedsReauth,
    Revoked,
    Disconnected,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::NeedsReauth => "needs_reauth",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Disconnected => "disconnected",
        }
    }
}

impl FromStr for GrantStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "active" => GrantStatus::Active,
            "needs_reauth" => GrantStatus::NeedsReauth,
            "revoked" => GrantStatus::Revoked,
            "disconnected" => GrantStatus::Disconnected,
            other => return Err(Error::Storage { message: format!("unknown grant status '{other}'"), retryable: false }),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub tenant_id: String,
    pub provider: Provider,
    pub grant_id: String,
    /// QuickBooks realm, Xero tenant ids, Zoho organization ids.
    pub org_ids: Vec<String>,
    pub status: GrantStatus,
    pub scopes: Vec<String>,
    /// None once disconnected: tokens are removed, the record stays.
    pub sealed: Option<SealedBlob>,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Grant {
    pub fn sk(&self) -> String {
        grant_sk(self.provider, &self.grant_id)
    }

    /// When the refresher must act: the earlier of the two expiries.
    pub fn due_at(&self) -> DateTime<Utc> {
        match self.refresh_expires_at {
            Some(r) if r < self.access_expires_at => r,
            _ => self.access_expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub tenant_id: String,
    pub provider: Provider,
    pub org_id: String,
    pub org_name: Option<String>,
    pub grant_id: String,
    pub status: GrantStatus,
    /// Provider-side webhook registration (Zoho registers one per organisation).
    pub webhook_id: Option<String>,
    /// The per-organisation webhook secret, sealed like tokens.
    pub webhook_secret: Option<SealedBlob>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn grant_sk(provider: Provider, grant_id: &str) -> String {
    format!("GRANT#{}#{grant_id}", provider.as_str())
}

pub fn connection_sk(provider: Provider, org_id: &str) -> String {
    format!("CONN#{}#{org_id}", provider.as_str())
}

pub fn org_key(provider: Provider, org_id: &str) -> String {
    format!("{}#{org_id}", provider.as_str())
}

pub fn due_pk(provider: Provider) -> String {
    format!("DUE#{}", provider.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct GrantStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
}

impl GrantStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        GrantStore { db, table: table.into() }
    }

    fn grant_item(g: &Grant) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(tenant_pk(&g.tenant_id)));
        item.insert("sk".into(), s(g.sk()));
        item.insert("kind".into(), s("grant"));
        item.insert("tenant_id".into(), s(&g.tenant_id));
        item.insert("provider".into(), s(g.provider.as_str()));
        item.insert("grant_id".into(), s(&g.grant_id));
        item.insert("org_ids".into(), list_s(&g.org_ids));
        item.insert("status".into(), s(g.status.as_str()));
        item.insert("scopes".into(), list_s(&g.scopes));
        if let Some(b) = &g.sealed {
            item.insert("sealed".into(), s(b.to_json()));
        }
        item.insert("access_expires_at".into(), n(epoch(g.access_expires_at)));
        if let Some(r) = g.refresh_expires_at {
            item.insert("refresh_expires_at".into(), n(epoch(r)));
        }
        item.insert("version".into(), n(g.version));
        if let Some(o) = &g.lease_owner {
            item.insert("lease_owner".into(), s(o));
        }
        if let Some(l) = g.lease_expires_at {
            item.insert("lease_expires_at".into(), n(epoch(l)));
        }
        item.insert("created_at".into(), s(g.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(g.updated_at.to_rfc3339()));
        // Only grants that can be refreshed sit in the due index; a grant needing re-auth drops out.
        if g.status == GrantStatus::Active && g.sealed.is_some() {
            item.insert("due_pk".into(), s(due_pk(g.provider)));
            item.insert("due_at".into(), n(epoch(g.due_at())));
        }
        item
    }

    pub fn grant_from_item(item: &Item) -> Result<Grant> {
        Ok(Grant {
            tenant_id: get_s(item, "tenant_id")?,
            provider: get_s(item, "provider")?.parse()?,
            grant_id: get_s(item, "grant_id")?,
            org_ids: get_ss(item, "org_ids"),
            status: get_s(item, "status")?.parse()?,
            scopes: get_ss(item, "scopes"),
            sealed: get_s_opt(item, "sealed").map(|j| SealedBlob::from_json(&j)).transpose()?,
            access_expires_at: from_epoch(get_n(item, "access_expires_at")?),
            refresh_expires_at: get_n_opt(item, "refresh_expires_at").map(from_epoch),
            version: get_n(item, "version")?,
            lease_owner: get_s_opt(item, "lease_owner"),
            lease_expires_at: get_n_opt(item, "lease_expires_at").map(from_epoch),
            created_at: parse_time(item, "created_at")?,
            updated_at: parse_time(item, "updated_at")?,
        })
    }

    fn connection_item(c: &Connection) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(tenant_pk(&c.tenant_id)));
        item.insert("sk".into(), s(connection_sk(c.provider, &c.org_id)));
        item.insert("kind".into(), s("connection"));
        item.insert("tenant_id".into(), s(&c.tenant_id));
        item.insert("provider".into(), s(c.provider.as_str()));
        item.insert("org_id".into(), s(&c.org_id));
        item.insert("org_key".into(), s(org_key(c.provider, &c.org_id)));
        if let Some(name) = &c.org_name {
            item.insert("org_name".into(), s(name));
        }
        item.insert("grant_id".into(), s(&c.grant_id));
        item.insert("status".into(), s(c.status.as_str()));
        if let Some(w) = &c.webhook_id {
            item.insert("webhook_id".into(), s(w));
        }
        if let Some(b) = &c.webhook_secret {
            item.insert("webhook_secret".into(), s(b.to_json()));
        }
        item.insert("created_at".into(), s(c.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(c.updated_at.to_rfc3339()));
        item
    }

    pub fn connection_from_item(item: &Item) -> Result<Connection> {
        Ok(Connection {
            tenant_id: get_s(item, "tenant_id")?,
            provider: get_s(item, "provider")?.parse()?,
            org_id: get_s(item, "org_id")?,
            org_name: get_s_opt(item, "org_name"),
            grant_id: get_s(item, "grant_id")?,
            status: get_s(item, "status")?.parse()?,
            webhook_id: get_s_opt(item, "webhook_id"),
            webhook_secret: get_s_opt(item, "webhook_secret").map(|j| SealedBlob::from_json(&j)).transpose()?,
            created_at: parse_time(item, "created_at")?,
            updated_at: parse_time(item, "updated_at")?,
        })
    }

    /// Creates or replaces a grant and its connections in one transaction (the connect flow).
    pub async fn put_grant(&self, grant: &Grant, connections: &[Connection]) -> Result<()> {
        let mut items = vec![TransactWriteItem::builder()
            .put(Put::builder().table_name(&self.table).set_item(Some(Self::grant_item(grant))).build().map_err(Error::storage)?)
            .build()];
        for c in connections {
            items.push(
                TransactWriteItem::builder()
                    .put(Put::builder().table_name(&self.table).set_item(Some(Self::connection_item(c))).build().map_err(Error::storage)?)
                    .build(),
            );
        }
        self.db.transact_write_items().set_transact_items(Some(items)).send().await.map_err(|e| dynamo_error("TransactWriteItems", e))?;
        Ok(())
    }

    pub async fn put_connection(&self, c: &Connection) -> Result<()> {
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::connection_item(c)))
            .send()
            .await
            .map_err(|e| dynamo_error("PutItem", e))?;
        Ok(())
    }

    pub async fn get_grant(&self, tenant_id: &str, provider: Provider, grant_id: &str) -> Result<Option<Grant>> {
        get_item(&self.db, &self.table, tenant_pk(tenant_id), grant_sk(provider, grant_id))
            .await?
            .as_ref()
            .map(Self::grant_from_item)
            .transpose()
    }

    async fn query_prefix(&self, tenant_id: &str, prefix: &str) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    pub async fn list_grants(&self, tenant_id: &str) -> Result<Vec<Grant>> {
        self.query_prefix(tenant_id, "GRANT#").await?.iter().map(Self::grant_from_item).collect()
    }

    pub async fn list_connections(&self, tenant_id: &str) -> Result<Vec<Connection>> {
        self.query_prefix(tenant_id, "CONN#").await?.iter().map(Self::connection_from_item).collect()
    }

    pub async fn get_connection(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Result<Option<Connection>> {
        get_item(&self.db, &self.table, tenant_pk(tenant_id), connection_sk(provider, org_id))
            .await?
            .as_ref()
            .map(Self::connection_from_item)
            .transpose()
    }

    /// Active grants of `provider` whose access or refresh token expires at or before `before`,
    /// soonest first, from the `due` index (never a scan). Pages through up to `limit` grants.
    pub async fn due_grants(&self, provider: Provider, before: DateTime<Utc>, limit: usize) -> Result<Vec<Grant>> {
        let mut grants = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .index_name("due")
                .key_condition_expression("due_pk = :d AND due_at <= :t")
                .expression_attribute_values(":d", s(due_pk(provider)))
                .expression_attribute_values(":t", n(epoch(before)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(due)", e))?;
            for item in out.items.unwrap_or_default() {
                grants.push(Self::grant_from_item(&item)?);
                if grants.len() >= limit {
                    return Ok(grants);
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(grants);
            }
        }
    }

    /// The connections (normally one; more if several of our tenants connected the same org) for a
    /// provider org id, from the `org` index: the webhook receiver's lookup.
    pub async fn connections_for_org(&self, provider: Provider, org_id: &str) -> Result<Vec<Connection>> {
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .index_name("org")
            .key_condition_expression("org_key = :o")
            .expression_attribute_values(":o", s(org_key(provider, org_id)))
            .send()
            .await
            .map_err(|e| dynamo_error("Query(org)", e))?;
        out.items.unwrap_or_default().iter().map(Self::connection_from_item).collect()
    }

    /// Stores a refreshed token set. Succeeds only if the stored version is still `expected_version`
    /// and, when `lease_owner` is given, that owner still holds an unexpired lease. Returns the new version.
    pub async fn update_tokens(
        &self,
        grant: &Grant,
        sealed: &SealedBlob,
        access_expires_at: DateTime<Utc>,
        refresh_expires_at: Option<DateTime<Utc>>,
        expected_version: i64,
        lease_owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut due = access_expires_at;
        if let Some(r) = refresh_expires_at {
            due = due.min(r);
        }
        let mut set = String::from(
            "SET sealed = :s, access_expires_at = :a, version = :nv, updated_at = :u, #st = :active, due_pk = :dp, due_at = :due",
        );
        let mut req = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":s", s(sealed.to_json()))
            .expression_attribute_values(":a", n(epoch(access_expires_at)))
            .expression_attribute_values(":nv", n(expected_version + 1))
            .expression_attribute_values(":v", n(expected_version))
            .expression_attribute_values(":u", s(now.to_rfc3339()))
            .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
            .expression_attribute_values(":dp", s(due_pk(grant.provider)))
            .expression_attribute_values(":due", n(epoch(due)));
        if let Some(r) = refresh_expires_at {
            set.push_str(", refresh_expires_at = :r");
            req = req.expression_attribute_values(":r", n(epoch(r)));
        }
        let mut cond = String::from("attribute_exists(pk) AND version = :v");
        if let Some(owner) = lease_owner {
            cond.push_str(" AND lease_owner = :o AND lease_expires_at > :now");
            req = req.expression_attribute_values(":o", s(owner)).expression_attribute_values(":now", n(epoch(now)));
        }
        match req.update_expression(set).condition_expression(cond).send().await {
            Ok(_) => Ok(expected_version + 1),
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("grant {} changed (version or lease) since it was read", grant.grant_id)))
            }
            Err(e) => Err(dynamo_error("UpdateItem", e)),
        }
    }

    /// Takes the grant's lease for `duration` if nobody holds an unexpired one (or we already do).
    pub async fn acquire_lease(
        &self,
        tenant_id: &str,
        provider: Provider,
        grant_id: &str,
        owner: &str,
        duration: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease> {
        let expires_at = now + duration;
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(grant_sk(provider, grant_id)))
            .update_expression("SET lease_owner = :o, lease_expires_at = :e")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(lease_owner) OR lease_expires_at <= :now OR lease_owner = :o)",
            )
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":e", n(epoch(expires_at)))
            .expression_attribute_values(":now", n(epoch(now)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Lease { owner: owner.to_string(), expires_at }),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("grant {grant_id} is leased by another worker"))),
            Err(e) => Err(dynamo_error("UpdateItem(lease)", e)),
        }
    }

    /// Extends a lease we still hold.
    pub async fn renew_lease(&self, grant: &Grant, owner: &str, duration: chrono::Duration, now: DateTime<Utc>) -> Result<Lease> {
        let expires_at = now + duration;
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .update_expression("SET lease_expires_at = :e")
            .condition_expression("lease_owner = :o AND lease_expires_at > :now")
            .expression_attribute_values(":o", s(owner))
            .expression_attribute_values(":e", n(epoch(expires_at)))
            .expression_attribute_values(":now", n(epoch(now)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Lease { owner: owner.to_string(), expires_at }),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("lease on grant {} was lost", grant.grant_id))),
            Err(e) => Err(dynamo_error("UpdateItem(renew)", e)),
        }
    }

    /// Gives the lease up; a no-op (Ok(false)) if someone else holds it by now.
    pub async fn release_lease(&self, tenant_id: &str, provider: Provider, grant_id: &str, owner: &str) -> Result<bool> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(grant_sk(provider, grant_id)))
            .update_expression("REMOVE lease_owner, lease_expires_at")
            .condition_expression("lease_owner = :o")
            .expression_attribute_values(":o", s(owner))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("UpdateItem(release)", e)),
        }
    }

    /// Sets the status of the grant and every connection it serves in one transaction. With
    /// `remove_tokens` the sealed tokens go too (disconnect); the records themselves always stay.
    async fn set_status(&self, grant: &Grant, status: GrantStatus, remove_tokens: bool, now: DateTime<Utc>) -> Result<()> {
        let mut update =
            String::from("SET #st = :st, updated_at = :u, version = version + :one REMOVE due_pk, due_at, lease_owner, lease_expires_at");
        if remove_tokens {
            update.push_str(", sealed");
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(tenant_pk(&grant.tenant_id)))
                    .key("sk", s(grant.sk()))
                    .update_expression(update)
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", s(status.as_str()))
                    .expression_attribute_values(":u", s(now.to_rfc3339()))
                    .expression_attribute_values(":one", n(1))
                    .build()
                    .map_err(Error::storage)?,
            )
            .build()];
        for c in self
            .list_connections(&grant.tenant_id)
            .await?
            .into_iter()
            .filter(|c| c.grant_id == grant.grant_id && c.provider == grant.provider)
        {
            let mut conn_update = String::from("SET #st = :st, updated_at = :u");
            if remove_tokens {
                conn_update.push_str(" REMOVE webhook_secret");
            }
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(tenant_pk(&c.tenant_id)))
                            .key("sk", s(connection_sk(c.provider, &c.org_id)))
                            .update_expression(conn_update)
                            .expression_attribute_names("#st", "status")
                            .expression_attribute_values(":st", s(status.as_str()))
                            .expression_attribute_values(":u", s(now.to_rfc3339()))
                            .build()
                            .map_err(Error::storage)?,
                    )
                    .build(),
            );
        }
        match self.db.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::NotFound(format!("grant {}", grant.grant_id))),
            Err(e) => Err(dynamo_error("TransactWriteItems(status)", e)),
        }
    }

    /// The grant can no longer be refreshed: keep it and its connections, flag them for the user.
    pub async fn mark_needs_reauth(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::NeedsReauth, false, now).await
    }

    /// Removes the tokens and marks grant and connections disconnected; the records stay for audit.
    pub async fn disconnect(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::Disconnected, true, now).await
    }

    pub async fn set_revoked(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::Revoked, true, now).await
    }

    /// Replaces only the sealed blob (lazy re-seal under a new KMS key), guarded by version.
    pub async fn replace_sealed(&self, grant: &Grant, sealed: &SealedBlob, now: DateTime<Utc>) -> Result<i64> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .update_expression("SET sealed = :s, version = :nv, updated_at = :u")
            .condition_expression("version = :v")
            .expression_attribute_values(":s", s(sealed.to_json()))
            .expression_attribute_values(":nv", n(grant.version + 1))
            .expression_attribute_values(":v", n(grant.version))
            .expression_attribute_values(":u", s(now.to_rfc3339()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(grant.version + 1),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!("grant {} changed since it was read", grant.grant_id))),
            Err(e) => Err(dynamo_error("UpdateItem(reseal)", e)),
        }
    }
}

fn parse_time(item: &Item, key: &str) -> Result<DateTime<Utc>> {
    let raw = get_s(item, key)?;
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::Storage { message: format!("attribute '{key}' is not an RFC 3339 time"), retryable: false })
}
