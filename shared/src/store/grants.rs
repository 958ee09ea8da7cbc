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
    /// Bumped by a lazy re-seal (same tokens under a new KMS key). Kept apart from `version`, which
    /// only token writes and status changes take, so a re-seal never invalidates a refresher's write.
    pub seal_version: i64,
    /// Set while refreshes fail transiently; the app was told `connection.degraded` once.
    pub degraded_since: Option<DateTime<Utc>>,
    /// When the last refresh attempt failed (transiently). Callers that waited for that attempt
    /// take its failure instead of trying again at once.
    pub last_failure_at: Option<DateTime<Utc>>,
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

fn insert_routing(item: &mut Item, r: &crate::tenancy::TenantRouting) -> Result<()> {
    let json = serde_json::to_string(r).map_err(|e| Error::Internal(format!("routing JSON: {e}")))?;
    item.insert("routing".into(), s(json));
    item.insert("routing_version".into(), n(r.version));
    Ok(())
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

/// The tenant's connection-set version item (in the grants table, beside the grants).
const SLOTS_SK: &str = "SLOTS";

/// The `due` index is spread over this many partition keys per provider, so 300,000 grants (about
/// 170 refreshes a second at peak) never concentrate their index writes and reads on one key.
pub const DUE_SHARDS: u32 = 16;

/// The grant's shard of the `due` index: a stable hash of the grant id (FNV-1a; not `DefaultHasher`,
/// whose output may change between Rust releases and would strand grants in old shards).
pub fn due_shard(grant_id: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in grant_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % DUE_SHARDS
}

pub fn due_pk(provider: Provider, grant_id: &str) -> String {
    format!("DUE#{}#{:02}", provider.as_str(), due_shard(grant_id))
}

fn due_shard_pk(provider: Provider, shard: u32) -> String {
    format!("DUE#{}#{:02}", provider.as_str(), shard)
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

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn db(&self) -> &aws_sdk_dynamodb::Client {
        &self.db
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
        item.insert("seal_version".into(), n(g.seal_version));
        if let Some(d) = g.degraded_since {
            item.insert("degraded_since".into(), n(epoch(d)));
        }
        if let Some(d) = g.last_failure_at {
            item.insert("last_failure_at".into(), n(d.timestamp_millis()));
        }
        item.insert("created_at".into(), s(g.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(g.updated_at.to_rfc3339()));
        // Only grants that can be refreshed sit in the due index; a grant needing re-auth drops out.
        if g.status == GrantStatus::Active && g.sealed.is_some() {
            item.insert("due_pk".into(), s(due_pk(g.provider, &g.grant_id)));
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
            seal_version: get_n_opt(item, "seal_version").unwrap_or(0),
            degraded_since: get_n_opt(item, "degraded_since").map(from_epoch),
            // Milliseconds: callers compare it with the moment they arrived.
            last_failure_at: get_n_opt(item, "last_failure_at").and_then(DateTime::from_timestamp_millis),
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
        // An active connection is due for sync at once: the scheduler's next run enqueues its
        // initial sync if the connect did not get to it (see crate::sync::schedule).
        if c.status == GrantStatus::Active {
            item.insert("sync_pk".into(), s(super::keys::sync_pk(&c.tenant_id, c.provider, &c.org_id)));
            item.insert("next_sync_at".into(), n(epoch(c.updated_at)));
        }
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

    /// The version of the tenant's set of connections (0 before the first connect). Read it before
    /// listing the connections a plan check counts, and hand it to `put_grant_checked`.
    pub async fn slots_version(&self, tenant_id: &str) -> Result<i64> {
        let item = get_item(&self.db, &self.table, tenant_pk(tenant_id), SLOTS_SK.into()).await?;
        Ok(item.as_ref().and_then(|i| get_n_opt(i, "version")).unwrap_or(0))
    }

    /// The connect flow's write: the new grant and its connections, only if the tenant's set of
    /// connections is still the one the plan check counted (`slots_version`) and each connection is
    /// still as read (`existing`: absent, or held by the grant it had). Two racing connects cannot
    /// both pass a plan limit, nor can one silently overwrite the other's connection.
    pub async fn put_grant_checked(
        &self,
        grant: &Grant,
        connections: &[Connection],
        existing: &[Connection],
        slots_version: i64,
        routing: Option<&crate::tenancy::TenantRouting>,
    ) -> Result<()> {
        let mut slots = Update::builder()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(SLOTS_SK))
            .update_expression("SET version = :nv")
            .expression_attribute_values(":nv", n(slots_version + 1));
        slots = if slots_version == 0 {
            slots.condition_expression("attribute_not_exists(version)")
        } else {
            slots.condition_expression("version = :v").expression_attribute_values(":v", n(slots_version))
        };
        let mut items = vec![
            TransactWriteItem::builder().update(slots.build().map_err(Error::storage)?).build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(Self::grant_item(grant)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(Error::storage)?,
                )
                .build(),
        ];
        for c in connections {
            let mut item = Self::connection_item(c);
            if let Some(r) = routing {
                insert_routing(&mut item, r)?;
            }
            let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
            put = match existing.iter().find(|e| e.provider == c.provider && e.org_id == c.org_id) {
                Some(old) => put.condition_expression("grant_id = :old").expression_attribute_values(":old", s(&old.grant_id)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(Error::storage)?).build());
        }
        match self.db.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!(
                "the tenant's connections changed while connecting {} (another connect at the same time); try again",
                grant.provider
            ))),
            Err(e) => Err(dynamo_error("TransactWriteItems(connect)", e)),
        }
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
    /// from the `due` index (never a scan): every shard, soonest first within a shard, at most
    /// `limit` in all.
    pub async fn due_grants(&self, provider: Provider, before: DateTime<Utc>, limit: usize) -> Result<Vec<Grant>> {
        let mut grants = Vec::new();
        for shard in 0..DUE_SHARDS {
            if grants.len() >= limit {
                break;
            }
            let room = limit - grants.len();
            grants.extend(self.due_in_shard(provider, shard, before, room).await?);
        }
        grants.sort_by_key(|g| g.due_at());
        Ok(grants)
    }

    /// One shard of the `due` index. The index projects the whole item, so no second read is needed.
    pub async fn due_in_shard(&self, provider: Provider, shard: u32, before: DateTime<Utc>, limit: usize) -> Result<Vec<Grant>> {
        let mut grants = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .index_name("due")
                .key_condition_expression("due_pk = :d AND due_at <= :t")
                .expression_attribute_values(":d", s(due_shard_pk(provider, shard)))
                .expression_attribute_values(":t", n(epoch(before)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(due)", e))?;
            for item in out.items.unwrap_or_default() {
                match Self::grant_from_item(&item) {
                    Ok(g) => grants.push(g),
                    // One unreadable row must not stop every other grant from being refreshed.
                    Err(e) => tracing::error!(code = %e.code(), error = %e, "skipping an unreadable grant in the due index"),
                }
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
        Ok(self.connections_for_org_routed(provider, org_id).await?.into_iter().map(|(c, _)| c).collect())
    }

    /// [`Self::connections_for_org`] with each connection's copy of its tenant's routing, where the
    /// item carries one (connections written before the copy existed do not, until the tenant's
    /// next update).
    pub async fn connections_for_org_routed(
        &self,
        provider: Provider,
        org_id: &str,
    ) -> Result<Vec<(Connection, Option<crate::tenancy::TenantRouting>)>> {
        // Every page, though one is the rule: a second costs the receiver a round trip only when the
        // org's connection items pass 1 MB.
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .index_name("org")
                .key_condition_expression("org_key = :o")
                .expression_attribute_values(":o", s(org_key(provider, org_id)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(org)", e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        items
            .iter()
            .map(|item| {
                // A copy that does not read is treated as absent: the receiver reads the tenant.
                let routing = get_s_opt(item, "routing").and_then(|j| serde_json::from_str(&j).ok());
                Self::connection_from_item(item).map(|c| (c, routing))
            })
            .collect()
    }

    /// Writes `routing` onto every connection item of its tenant (after a tenant update), never
    /// over a newer copy. Returns how many items took it.
    pub async fn set_routing(&self, routing: &crate::tenancy::TenantRouting) -> Result<usize> {
        let json = serde_json::to_string(routing).map_err(|e| Error::Internal(format!("routing JSON: {e}")))?;
        let mut start = None;
        let mut keys = Vec::new();
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :conn)")
                .expression_attribute_values(":pk", s(tenant_pk(&routing.tenant_id)))
                .expression_attribute_values(":conn", s("CONN#"))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(connections)", e))?;
            keys.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let mut written = 0;
        for key in keys {
            let res = self
                .db
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression("SET routing = :r, routing_version = :v")
                .condition_expression("attribute_exists(pk) AND (attribute_not_exists(routing_version) OR routing_version < :v)")
                .expression_attribute_values(":r", s(&json))
                .expression_attribute_values(":v", n(routing.version))
                .send()
                .await;
            match res {
                Ok(_) => written += 1,
                // Gone, or a newer copy is already there.
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(dynamo_error("UpdateItem(connection routing)", e)),
            }
        }
        Ok(written)
    }

    /// Stores a refreshed token set. Succeeds only if the stored version is still `expected_version`
    /// and, when `lease_owner` is given, that owner still holds an unexpired lease. Returns the new version.
    #[allow(clippy::too_many_arguments)]
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
        let write = TokenWrite { sealed, access_expires_at, refresh_expires_at, expected_version, lease_owner, now };
        let update = self.token_update(grant, &write)?;
        let items = vec![TransactWriteItem::builder().update(update).build()];
        self.transact_token_write(grant, items, expected_version).await
    }

    /// The refresher's write: the new pair, the lease released and the degraded flag cleared in
    /// one conditional update (lease owner + version), plus the audit record in the same
    /// transaction, so a refresh costs one write call and an audit record exists iff the pair does.
    pub async fn store_refreshed(&self, grant: &Grant, write: &TokenWrite<'_>, audit: Option<Item>, audit_table: &str) -> Result<i64> {
        let update = self.token_update(grant, write)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(item) = audit {
            items.push(
                TransactWriteItem::builder()
                    .put(Put::builder().table_name(audit_table).set_item(Some(item)).build().map_err(Error::storage)?)
                    .build(),
            );
        }
        self.transact_token_write(grant, items, write.expected_version).await
    }

    fn token_update(&self, grant: &Grant, w: &TokenWrite<'_>) -> Result<Update> {
        let mut due = w.access_expires_at;
        if let Some(r) = w.refresh_expires_at {
            due = due.min(r);
        }
        let mut set = String::from(
            "SET sealed = :s, access_expires_at = :a, version = :nv, updated_at = :u, #st = :active, due_pk = :dp, due_at = :due",
        );
        let mut remove = String::from(" REMOVE degraded_since, last_failure_at");
        let mut req = Update::builder()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":s", s(w.sealed.to_json()))
            .expression_attribute_values(":a", n(epoch(w.access_expires_at)))
            .expression_attribute_values(":nv", n(w.expected_version + 1))
            .expression_attribute_values(":v", n(w.expected_version))
            .expression_attribute_values(":u", s(w.now.to_rfc3339()))
            .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
            .expression_attribute_values(":dp", s(due_pk(grant.provider, &grant.grant_id)))
            .expression_attribute_values(":due", n(epoch(due)));
        match w.refresh_expires_at {
            Some(r) => {
                set.push_str(", refresh_expires_at = :r");
                req = req.expression_attribute_values(":r", n(epoch(r)));
            }
            None => remove.push_str(", refresh_expires_at"),
        }
        let mut cond = String::from("attribute_exists(pk) AND version = :v");
        if let Some(owner) = w.lease_owner {
            // The lease goes with the write: whoever waits for this refresh sees it done at once.
            remove.push_str(", lease_owner, lease_expires_at");
            cond.push_str(" AND lease_owner = :o AND lease_expires_at > :now");
            req = req.expression_attribute_values(":o", s(owner)).expression_attribute_values(":now", n(epoch(w.now)));
        }
        req.update_expression(format!("{set}{remove}")).condition_expression(cond).build().map_err(Error::storage)
    }

    async fn transact_token_write(&self, grant: &Grant, items: Vec<TransactWriteItem>, expected_version: i64) -> Result<i64> {
        match self.db.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(expected_version + 1),
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("grant {} changed (version or lease) since it was read", grant.grant_id)))
            }
            Err(e) => Err(dynamo_error("TransactWriteItems(tokens)", e)),
        }
    }

    /// Takes the grant's lease for `duration` if nobody holds an unexpired one (or we already do),
    /// and returns the grant as it stands under the lease (one call: read and lock together).
    pub async fn acquire_lease(
        &self,
        tenant_id: &str,
        provider: Provider,
        grant_id: &str,
        owner: &str,
        duration: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(Lease, Grant)> {
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
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item =
                    out.attributes.ok_or_else(|| Error::Storage { message: "lease update returned no item".into(), retryable: true })?;
                Ok((Lease { owner: owner.to_string(), expires_at }, Self::grant_from_item(&item)?))
            }
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

    /// Records a failed refresh and releases our lease in one write; the first failure also flags
    /// the grant degraded. Returns true only for the call that flagged it, so `connection.degraded`
    /// goes out once per state change.
    pub async fn mark_degraded(&self, grant: &Grant, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let update = |first: bool| {
            let (expr, cond) = if first {
                (
                    "SET degraded_since = :now, last_failure_at = :ms REMOVE lease_owner, lease_expires_at",
                    "lease_owner = :o AND attribute_not_exists(degraded_since)",
                )
            } else {
                ("SET last_failure_at = :ms REMOVE lease_owner, lease_expires_at", "lease_owner = :o")
            };
            let req = self
                .db
                .update_item()
                .table_name(&self.table)
                .key("pk", s(tenant_pk(&grant.tenant_id)))
                .key("sk", s(grant.sk()))
                .update_expression(expr)
                .condition_expression(cond)
                .expression_attribute_values(":o", s(owner))
                .expression_attribute_values(":ms", n(now.timestamp_millis()));
            // DynamoDB refuses values an expression does not use.
            if first { req.expression_attribute_values(":now", n(epoch(now))) } else { req }.send()
        };
        match update(true).await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => match update(false).await {
                Ok(_) => Ok(false),
                // The lease is gone (expired and taken): nothing of ours to record.
                Err(e) if is_conditional_failure(&e) => Ok(false),
                Err(e) => Err(dynamo_error("UpdateItem(failure)", e)),
            },
            Err(e) => Err(dynamo_error("UpdateItem(degraded)", e)),
        }
    }

    /// Sets the status of the grant and every connection it serves in one transaction. With
    /// `remove_tokens` the sealed tokens go too (disconnect); the records themselves always stay.
    /// `guard` says what must still hold of the grant we read; each connection must still belong to
    /// the grant (a reconnect may have moved the org to a newer grant meanwhile).
    async fn set_status(
        &self,
        grant: &Grant,
        status: GrantStatus,
        remove_tokens: bool,
        guard: Guard<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut update =
            String::from("SET #st = :st, updated_at = :u, version = version + :one REMOVE due_pk, due_at, lease_owner, lease_expires_at");
        if remove_tokens {
            update.push_str(", sealed");
        }
        let mut grant_update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .expression_attribute_values(":u", s(now.to_rfc3339()))
            .expression_attribute_values(":one", n(1));
        let cond = match guard {
            Guard::Exists => "attribute_exists(pk)".to_string(),
            Guard::Version(v) => {
                grant_update = grant_update.expression_attribute_values(":v", n(v));
                "attribute_exists(pk) AND version = :v".to_string()
            }
            Guard::Lease(owner, v) => {
                grant_update = grant_update
                    .expression_attribute_values(":o", s(owner))
                    .expression_attribute_values(":now", n(epoch(now)))
                    .expression_attribute_values(":v", n(v));
                "attribute_exists(pk) AND lease_owner = :o AND lease_expires_at > :now AND version = :v".to_string()
            }
        };
        let mut items = vec![TransactWriteItem::builder()
            .update(grant_update.update_expression(update).condition_expression(cond).build().map_err(Error::storage)?)
            .build()];
        for c in self
            .list_connections(&grant.tenant_id)
            .await?
            .into_iter()
            .filter(|c| c.grant_id == grant.grant_id && c.provider == grant.provider)
        {
            // Off the sync schedule too: only active connections are pulled.
            let mut conn_update = String::from("SET #st = :st, updated_at = :u REMOVE sync_pk");
            if remove_tokens {
                conn_update.push_str(", webhook_secret");
            }
            items.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(tenant_pk(&c.tenant_id)))
                            .key("sk", s(connection_sk(c.provider, &c.org_id)))
                            .update_expression(conn_update)
                            .condition_expression("grant_id = :g")
                            .expression_attribute_names("#st", "status")
                            .expression_attribute_values(":st", s(status.as_str()))
                            .expression_attribute_values(":u", s(now.to_rfc3339()))
                            .expression_attribute_values(":g", s(&grant.grant_id))
                            .build()
                            .map_err(Error::storage)?,
                    )
                    .build(),
            );
        }
        match self.db.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            // A condition failed (lease lost, version moved, a connection re-assigned) or a
            // concurrent transaction touched the same items: a conflict the caller may retry after
            // reading again, never "not found".
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("grant {} or its connections changed while updating its status", grant.grant_id)))
            }
            Err(e) => Err(dynamo_error("TransactWriteItems(status)", e)),
        }
    }

    /// The grant can no longer be refreshed: keep it and its connections, flag them for the user.
    /// Guarded by the version read, so a grant refreshed meanwhile is not flagged.
    pub async fn mark_needs_reauth(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::NeedsReauth, false, Guard::Version(grant.version), now).await
    }

    /// As `mark_needs_reauth`, by the holder of the grant's lease (the refresher).
    pub async fn mark_needs_reauth_leased(&self, grant: &Grant, owner: &str, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::NeedsReauth, false, Guard::Lease(owner, grant.version), now).await
    }

    /// Removes the tokens and marks grant and connections disconnected; the records stay for audit.
    /// Guarded by the version read (the tokens revoked are the tokens stored).
    pub async fn disconnect(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::Disconnected, true, Guard::Version(grant.version), now).await
    }

    /// As `disconnect`, by the holder of the grant's lease.
    pub async fn disconnect_leased(&self, grant: &Grant, owner: &str, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::Disconnected, true, Guard::Lease(owner, grant.version), now).await
    }

    pub async fn set_revoked(&self, grant: &Grant, now: DateTime<Utc>) -> Result<()> {
        self.set_status(grant, GrantStatus::Revoked, true, Guard::Exists, now).await
    }

    /// Replaces only the sealed blob (lazy re-seal under a new KMS key). It never takes `version`
    /// (a refresher holding version v must still be able to write) and never runs while anyone holds
    /// the lease: the blob must still be the one re-sealed (same version) and no live lease exists.
    pub async fn replace_sealed(&self, grant: &Grant, sealed: &SealedBlob, now: DateTime<Utc>) -> Result<i64> {
        let res = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&grant.tenant_id)))
            .key("sk", s(grant.sk()))
            .update_expression("SET sealed = :s, seal_version = :nsv, updated_at = :u")
            .condition_expression(
                "version = :v AND attribute_exists(sealed) AND (attribute_not_exists(lease_owner) OR lease_expires_at <= :now)",
            )
            .expression_attribute_values(":s", s(sealed.to_json()))
            .expression_attribute_values(":nsv", n(grant.seal_version + 1))
            .expression_attribute_values(":v", n(grant.version))
            .expression_attribute_values(":u", s(now.to_rfc3339()))
            .expression_attribute_values(":now", n(epoch(now)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(grant.seal_version + 1),
            Err(e) if is_conditional_failure(&e) => {
                Err(Error::Conflict(format!("grant {} changed or is leased; re-seal left for later", grant.grant_id)))
            }
            Err(e) => Err(dynamo_error("UpdateItem(reseal)", e)),
        }
    }
}

/// A token write: what `update_tokens` / `store_refreshed` store and what must still hold.
pub struct TokenWrite<'a> {
    pub sealed: &'a SealedBlob,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub expected_version: i64,
    pub lease_owner: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// What must still hold of a grant for a status change.
#[derive(Clone, Copy, Debug)]
enum Guard<'a> {
    Exists,
    Version(i64),
    /// We hold the lease, and the grant is still the version we read under it (a lapsed lease's
    /// holder may have stored a new pair meanwhile).
    Lease(&'a str, i64),
}

fn parse_time(item: &Item, key: &str) -> Result<DateTime<Utc>> {
    let raw = get_s(item, key)?;
    DateTime::parse_from_rfc3339(&raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::Storage { message: format!("attribute '{key}' is not an RFC 3339 time"), retryable: false })
}
