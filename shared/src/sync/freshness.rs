//! How fresh a tenant's copy is, per connection and entity: the last successful pull, the last
//! change it stored, the last error, and the lag behind the schedule.
//!
//! Two places, for two readers:
//! - `FRESH#<provider>#<org>#<entity>` in the sync table (under the tenant): `last_success_at`,
//!   `last_change_at`, `last_error_code`, `last_error_at` (epoch ms), written by the worker at the
//!   end of every pull or webhook job; read by `ttya-ops connections health` and the records API.
//! - `pull_ok` on the connection item (grants table): a map entity -> epoch ms of the last successful
//!   pull, which the scheduler already reads with every due connection (the `sync_due` index
//!   projects all attributes), so finding stale copies costs it no read. A copy is stale when its
//!   oldest enabled entity was last pulled more than `STALE_AFTER_INTERVALS` sync intervals ago
//!   (from the connection's creation when it never was): the scheduler counts them
//!   (`SyncStaleConnections`, alarmed) and reports the oldest (`SyncOldestCopySeconds`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::providers::model::Entity;
use crate::store::{dynamo_error, get_n_opt, get_s_opt, is_conditional_failure, n, s, tenant_pk, Item};
use crate::{Provider, Result};

/// The connection item's map of last successful pulls.
pub const PULL_OK: &str = "pull_ok";
/// A copy older than this many intervals is stale (the alarm's threshold).
pub const STALE_AFTER_INTERVALS: i64 = 2;

pub fn freshness_sk(provider: Provider, org_id: &str, entity: Entity) -> String {
    format!("FRESH#{provider}#{org_id}#{entity}")
}

/// One entity's freshness, as `connections health` and the records API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntityFreshness {
    pub entity: Entity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
}

impl EntityFreshness {
    /// Seconds the copy is behind its schedule: its age past one interval (0 when on time; the
    /// age since `since` when it was never pulled).
    pub fn lag_seconds(&self, interval_s: i64, since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        let base = self.last_success_at.unwrap_or(since);
        ((now - base).num_seconds() - interval_s).max(0)
    }
}

/// One connection's copy of one entity.
#[derive(Debug, Clone, Copy)]
pub struct CopyOf<'a> {
    pub tenant_id: &'a str,
    pub provider: Provider,
    pub org_id: &'a str,
    pub entity: Entity,
}

/// Writes what a job's end says about freshness.
#[derive(Clone, Debug)]
pub struct FreshnessStore {
    db: aws_sdk_dynamodb::Client,
    sync_table: String,
    grants_table: String,
}

impl FreshnessStore {
    pub fn new(db: aws_sdk_dynamodb::Client, sync_table: impl Into<String>, grants_table: impl Into<String>) -> Self {
        FreshnessStore { db, sync_table: sync_table.into(), grants_table: grants_table.into() }
    }

    /// A pull (or webhook job) of `entity` succeeded; `changed`: it stored changes.
    pub async fn success(&self, of: CopyOf<'_>, pull: bool, changed: bool, now: DateTime<Utc>) -> Result<()> {
        let CopyOf { tenant_id, provider, org_id, entity } = of;
        let t = now.timestamp_millis();
        // A webhook job keeps one record current, not the copy: only its change counts.
        let mut set = Vec::new();
        if pull {
            set.push("last_success_at = :t");
        }
        if changed {
            set.push("last_change_at = :t");
        }
        if set.is_empty() {
            return Ok(());
        }
        self.db
            .update_item()
            .table_name(&self.sync_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(freshness_sk(provider, org_id, entity)))
            .update_expression(format!("SET {}", set.join(", ")))
            .expression_attribute_values(":t", n(t))
            .send()
            .await
            .map_err(|e| dynamo_error("UpdateItem(freshness)", e))?;
        if pull {
            self.mark_connection(tenant_id, provider, org_id, entity, t).await?;
        }
        Ok(())
    }

    /// A job of `entity` failed with `code` (it may still succeed on a retry).
    pub async fn failure(&self, of: CopyOf<'_>, code: u16, now: DateTime<Utc>) -> Result<()> {
        let CopyOf { tenant_id, provider, org_id, entity } = of;
        self.db
            .update_item()
            .table_name(&self.sync_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(freshness_sk(provider, org_id, entity)))
            .update_expression("SET last_error_code = :c, last_error_at = :t")
            .expression_attribute_values(":c", n(i64::from(code)))
            .expression_attribute_values(":t", n(now.timestamp_millis()))
            .send()
            .await
            .map_err(|e| dynamo_error("UpdateItem(freshness)", e))?;
        Ok(())
    }

    /// `pull_ok.<entity>` on the connection item, only while the connection exists (a deleted one
    /// is not brought back as a fragment).
    async fn mark_connection(&self, tenant_id: &str, provider: Provider, org_id: &str, entity: Entity, t: i64) -> Result<()> {
        let key_sk = crate::store::grants::connection_sk(provider, org_id);
        let nested = self
            .db
            .update_item()
            .table_name(&self.grants_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(&key_sk))
            .update_expression("SET #p.#e = :t")
            .condition_expression("attribute_exists(sk) AND attribute_type(#p, :map)")
            .expression_attribute_names("#p", PULL_OK)
            .expression_attribute_names("#e", entity.as_str())
            .expression_attribute_values(":t", n(t))
            .expression_attribute_values(":map", s("M"))
            .send()
            .await;
        match nested {
            Ok(_) => return Ok(()),
            Err(e) if is_conditional_failure(&e) => {}
            Err(e) => return Err(dynamo_error("UpdateItem(pull_ok)", e)),
        }
        // The first pull since the map existed: create it (a concurrent first pull of another
        // entity may have won; then the nested write above works).
        let mut map = HashMap::new();
        map.insert(entity.as_str().to_string(), n(t));
        let first = self
            .db
            .update_item()
            .table_name(&self.grants_table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(&key_sk))
            .update_expression("SET #p = :m")
            .condition_expression("attribute_exists(sk) AND attribute_not_exists(#p)")
            .expression_attribute_names("#p", PULL_OK)
            .expression_attribute_values(":m", AttributeValue::M(map))
            .send()
            .await;
        match first {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                // Gone (nothing to mark) or created meanwhile (mark it now; a gone item fails again, quietly).
                match self
                    .db
                    .update_item()
                    .table_name(&self.grants_table)
                    .key("pk", s(tenant_pk(tenant_id)))
                    .key("sk", s(&key_sk))
                    .update_expression("SET #p.#e = :t")
                    .condition_expression("attribute_exists(sk) AND attribute_type(#p, :map)")
                    .expression_attribute_names("#p", PULL_OK)
                    .expression_attribute_names("#e", entity.as_str())
                    .expression_attribute_values(":t", n(t))
                    .expression_attribute_values(":map", s("M"))
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_conditional_failure(&e) => Ok(()),
                    Err(e) => Err(dynamo_error("UpdateItem(pull_ok)", e)),
                }
            }
            Err(e) => Err(dynamo_error("UpdateItem(pull_ok)", e)),
        }
    }

    /// Every entity's freshness of one connection.
    pub async fn read(&self, tenant_id: &str, provider: Provider, org_id: &str) -> Result<Vec<EntityFreshness>> {
        let prefix = format!("FRESH#{provider}#{org_id}#");
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .db
                .query()
                .table_name(&self.sync_table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(tenant_pk(tenant_id)))
                .expression_attribute_values(":p", s(&prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo_error("Query(freshness)", e))?;
            for item in page.items.unwrap_or_default() {
                if let Some(f) = from_item(&item, &prefix) {
                    out.push(f);
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

impl FreshnessStore {
    /// The freshness of `entities` for each of `connections` (provider, org), in that order, by
    /// key (BatchGetItem: no query over the tenant's partition); an entity never pulled has no
    /// times.
    pub async fn read_entities(
        &self,
        tenant_id: &str,
        connections: &[(Provider, String)],
        entities: &[Entity],
    ) -> Result<Vec<Vec<EntityFreshness>>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let keys: Vec<(usize, Entity, String)> = connections
            .iter()
            .enumerate()
            .flat_map(|(i, (p, org))| entities.iter().map(move |e| (i, *e, freshness_sk(*p, org, *e))))
            .collect();
        let mut found: HashMap<String, Item> = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(_, _, sk)| HashMap::from([("pk".to_string(), s(tenant_pk(tenant_id))), ("sk".to_string(), s(sk))]))
                .collect();
            // Unprocessed keys (throttling) are asked again, a few times.
            for _ in 0..5 {
                if pending.is_empty() {
                    break;
                }
                let ka =
                    KeysAndAttributes::builder().set_keys(Some(std::mem::take(&mut pending))).build().map_err(crate::Error::storage)?;
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.sync_table, ka)
                    .send()
                    .await
                    .map_err(|e| dynamo_error("BatchGetItem(freshness)", e))?;
                for item in out.responses.unwrap_or_default().remove(&self.sync_table).unwrap_or_default() {
                    if let Some(sk) = get_s_opt(&item, "sk") {
                        found.insert(sk, item);
                    }
                }
                pending = out.unprocessed_keys.unwrap_or_default().remove(&self.sync_table).map(|k| k.keys).unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(crate::Error::Storage { message: "freshness: keys left unprocessed".into(), retryable: true });
            }
        }
        let mut out: Vec<Vec<EntityFreshness>> = vec![Vec::new(); connections.len()];
        for (i, entity, sk) in keys {
            let item = found.get(&sk);
            out[i].push(EntityFreshness {
                entity,
                last_success_at: item.and_then(|i| ms(i, "last_success_at")),
                last_change_at: item.and_then(|i| ms(i, "last_change_at")),
                last_error_code: item.and_then(|i| get_n_opt(i, "last_error_code")).and_then(|c| u16::try_from(c).ok()),
                last_error_at: item.and_then(|i| ms(i, "last_error_at")),
            });
        }
        Ok(out)
    }
}

fn ms(item: &Item, key: &str) -> Option<DateTime<Utc>> {
    get_n_opt(item, key).and_then(DateTime::from_timestamp_millis)
}

fn from_item(item: &Item, prefix: &str) -> Option<EntityFreshness> {
    let sk = get_s_opt(item, "sk")?;
    let entity: Entity = serde_json::from_value(serde_json::Value::String(sk.strip_prefix(prefix)?.to_string())).ok()?;
    Some(EntityFreshness {
        entity,
        last_success_at: ms(item, "last_success_at"),
        last_change_at: ms(item, "last_change_at"),
        last_error_code: get_n_opt(item, "last_error_code").and_then(|c| u16::try_from(c).ok()),
        last_error_at: ms(item, "last_error_at"),
    })
}

/// The age in seconds of a connection's oldest enabled entity copy, from its `pull_ok` map (an
/// entity never pulled counts from `created`).
pub fn copy_age_seconds(connection_item: &Item, entities: &[Entity], created: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let pulled = match connection_item.get(PULL_OK) {
        Some(AttributeValue::M(m)) => m.clone(),
        _ => HashMap::new(),
    };
    entities
        .iter()
        .map(|e| {
            let at = match pulled.get(e.as_str()) {
                Some(AttributeValue::N(v)) => v.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis).unwrap_or(created),
                _ => created,
            };
            (now - at).num_seconds().max(0)
        })
        .max()
        .unwrap_or(0)
}

/// Stale: older than `STALE_AFTER_INTERVALS` intervals.
pub fn is_stale(age_seconds: i64, interval_s: i64) -> bool {
    age_seconds > STALE_AFTER_INTERVALS * interval_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_enabled_entity_decides_and_never_pulled_counts_from_creation() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let created = now - chrono::Duration::hours(10);
        let mut m = HashMap::new();
        m.insert("invoice".to_string(), n((now - chrono::Duration::minutes(5)).timestamp_millis()));
        m.insert("contact".to_string(), n((now - chrono::Duration::minutes(50)).timestamp_millis()));
        let mut item = Item::new();
        item.insert(PULL_OK.into(), AttributeValue::M(m));
        assert_eq!(copy_age_seconds(&item, &[Entity::Invoice], created, now), 300);
        assert_eq!(copy_age_seconds(&item, &[Entity::Invoice, Entity::Contact], created, now), 3000);
        assert_eq!(copy_age_seconds(&item, &[Entity::Invoice, Entity::Payment], created, now), 36_000);
        assert_eq!(copy_age_seconds(&Item::new(), &[Entity::Invoice], created, now), 36_000);
        assert!(!is_stale(3000, 1800) && is_stale(3601, 1800));
        let f = EntityFreshness {
            entity: Entity::Invoice,
            last_success_at: Some(now - chrono::Duration::minutes(50)),
            last_change_at: None,
            last_error_code: None,
            last_error_at: None,
        };
        assert_eq!(f.lag_seconds(1800, created, now), 1200);
        assert_eq!(f.lag_seconds(3600, created, now), 0);
    }
}
