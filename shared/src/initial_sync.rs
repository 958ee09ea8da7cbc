//! The initial sync of a new connection: one full pull per enabled entity on the low queue, started
//! exactly once per connect, and one `sync.initial_completed` event when every entity's first pass
//! is done.
//!
//! State lives on the connection item (grants table, `TENANT#t` / `CONN#<provider>#<org>`), so a
//! reconnect, which replaces that item under a new grant, starts a new generation by itself:
//!
//! | attribute | what |
//! | --- | --- |
//! | `init_claim_until` | epoch s: a starter (the callback or the scheduler) is sending the jobs |
//! | `init_entities` | the entities enqueued (the tenant's enabled entities at connect time) |
//! | `init_sent_at` | epoch s: the jobs are on the queue |
//! | `init_done` | string set: entities whose full pass finished |
//! | `init_completed_at` | epoch s: every entity done and the event claimed (set once) |
//!
//! Idempotency keys are `init1:<provider>:<org>:<grant>:<entity>`: the grant id is the connect's
//! generation, so however often the start is retried, each entity's full pull runs once per connect.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::events::{AppEvent, EventPublisher, EventType, InitialSyncCompleted};
use crate::jobs::{entity_str, lineage_root, JobQueue, Operation, Source, SyncJob, FULL_SYNC, JOB_VERSION};
use crate::store::grants::{connection_sk, Connection, GrantStatus};
use crate::store::{dynamo_error, from_epoch, get_n_opt, get_s, is_conditional_failure, n, s, tenant_pk, Item};
use crate::tenancy::{Entity, Priority, Tenant};
use crate::{Error, Provider, Result};

pub const KEY_PREFIX: &str = "init1";

/// How long a starter holds the right to send the jobs; a starter that died is replaced after it.
pub const CLAIM_SECONDS: i64 = 120;

/// The idempotency key of an entity's initial full pull for one connect.
pub fn initial_key(provider: Provider, org_id: &str, grant_id: &str, entity: Entity) -> String {
    format!("{KEY_PREFIX}:{}:{org_id}:{grant_id}:{}", provider.as_str(), entity_str(entity))
}

/// The parts of an initial-pull key (or of one of its follow-up keys): provider, org, grant, entity.
pub fn parse_initial_key(key: &str) -> Option<(Provider, String, String, Entity)> {
    let root = lineage_root(key);
    let mut parts = root.split(':');
    if parts.next()? != KEY_PREFIX {
        return None;
    }
    let provider: Provider = parts.next()?.parse().ok()?;
    let org = parts.next()?.to_string();
    let grant = parts.next()?.to_string();
    let entity = parse_entity(parts.next()?)?;
    if parts.next().is_some() || org.is_empty() || grant.is_empty() {
        return None;
    }
    Some((provider, org, grant, entity))
}

pub fn parse_entity(s: &str) -> Option<Entity> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// The initial-sync state read from a connection item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitialState {
    pub entities: Vec<Entity>,
    pub done: Vec<Entity>,
    pub claim_until: Option<i64>,
    pub sent_at: Option<i64>,
    pub completed_at: Option<i64>,
}

impl InitialState {
    pub fn from_item(item: &Item) -> Self {
        let entities = match item.get("init_entities") {
            Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok()).filter_map(|s| parse_entity(s)).collect(),
            _ => Vec::new(),
        };
        let done = match item.get("init_done") {
            Some(AttributeValue::Ss(set)) => set.iter().filter_map(|s| parse_entity(s)).collect(),
            _ => Vec::new(),
        };
        InitialState {
            entities,
            done,
            claim_until: get_n_opt(item, "init_claim_until"),
            sent_at: get_n_opt(item, "init_sent_at"),
            completed_at: get_n_opt(item, "init_completed_at"),
        }
    }

    /// Every entity enqueued has finished its pass.
    pub fn all_done(&self) -> bool {
        self.sent_at.is_some() && !self.entities.is_empty() && self.entities.iter().all(|e| self.done.contains(e))
    }
}

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// This call sent one full pull per entity.
    Enqueued { jobs: usize },
    /// Someone already sent them for this connect (or is sending them now), or the connection is
    /// no longer the active one of this grant: nothing sent.
    AlreadyStarted,
}

/// Initial-sync state on connection items (grants table).
#[derive(Clone, Debug)]
pub struct InitialSync {
    db: aws_sdk_dynamodb::Client,
    table: String,
    jobs: JobQueue,
    events: EventPublisher,
}

impl InitialSync {
    pub fn new(db: aws_sdk_dynamodb::Client, grants_table: impl Into<String>, jobs: JobQueue, events: EventPublisher) -> Self {
        InitialSync { db, table: grants_table.into(), jobs, events }
    }

    fn key(&self, tenant_id: &str, provider: Provider, org_id: &str) -> (AttributeValue, AttributeValue) {
        (s(tenant_pk(tenant_id)), s(connection_sk(provider, org_id)))
    }

    /// Enqueues the full pull of every enabled entity for a connection that just became active,
    /// unless that already happened for this connect. Claim, send, mark: a starter that dies after
    /// its claim is replaced when the claim expires (the scheduler retries), one that dies after
    /// sending leaves jobs whose keys make a resend harmless.
    pub async fn start(&self, tenant: &Tenant, conn: &Connection, now: DateTime<Utc>) -> Result<Started> {
        if conn.status != GrantStatus::Active {
            return Ok(Started::AlreadyStarted);
        }
        let mut entities = tenant.config.enabled_entities.clone();
        entities.sort();
        entities.dedup();
        let until = now.timestamp() + CLAIM_SECONDS;
        let (pk, sk) = self.key(&conn.tenant_id, conn.provider, &conn.org_id);
        let claimed = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk.clone())
            .key("sk", sk.clone())
            .update_expression("SET init_claim_until = :until, init_entities = :ents")
            .condition_expression(
                "grant_id = :g AND #st = :active AND attribute_not_exists(init_sent_at) \
                 AND (attribute_not_exists(init_claim_until) OR init_claim_until < :now)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":ents", AttributeValue::L(entities.iter().map(|e| s(entity_str(*e))).collect()))
            .expression_attribute_values(":g", s(&conn.grant_id))
            .expression_attribute_values(":active", s(GrantStatus::Active.as_str()))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match claimed {
            Ok(_) => {}
            Err(e) if is_conditional_failure(&e) => return Ok(Started::AlreadyStarted),
            Err(e) => return Err(dynamo_error("UpdateItem(initial claim)", e)),
        }
        let correlation_id = crate::context::current().map(|c| c.correlation_id).unwrap_or_else(crate::context::mint_correlation_id);
        let jobs: Vec<SyncJob> = entities
            .iter()
            .map(|e| SyncJob {
                version: JOB_VERSION,
                job_id: uuid::Uuid::new_v4().to_string(),
                tenant_id: conn.tenant_id.clone(),
                provider: conn.provider,
                org_id: conn.org_id.clone(),
                operation: Operation::Pull,
                entity: *e,
                entity_id: None,
                cursor: Some(FULL_SYNC.to_string()),
                change: None,
                merged_from: None,
                // A first copy can be large: it must not hold up webhooks and the app's own requests.
                priority: Priority::Low,
                idempotency_key: initial_key(conn.provider, &conn.org_id, &conn.grant_id, *e),
                correlation_id: correlation_id.clone(),
                requested_at: now,
                source: Source::Connect,
                totals_before: None,
            })
            .collect();
        if let Err(e) = self.jobs.send(&jobs).await {
            // Give the claim back so the next attempt (the scheduler's) need not wait for it.
            let _ = self
                .db
                .update_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .update_expression("REMOVE init_claim_until")
                .condition_expression("init_claim_until = :until")
                .expression_attribute_values(":until", n(until))
                .send()
                .await;
            return Err(e);
        }
        let marked = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .update_expression("SET init_sent_at = :now REMOVE init_claim_until")
            .condition_expression("grant_id = :g")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":g", s(&conn.grant_id))
            .send()
            .await;
        if let Err(e) = marked {
            // The jobs are out; a later start resends the same keys, which the worker runs once.
            tracing::warn!(error = %aws_smithy_types::error::display::DisplayErrorContext(&e), org_id = %conn.org_id, "initial sync sent but not marked");
        }
        tracing::info!(tenant_id = %conn.tenant_id, provider = %conn.provider, org_id = %conn.org_id, jobs = jobs.len(), "initial sync enqueued");
        crate::telemetry::metric("InitialSyncStarted", 1.0, "Count", &[("provider", conn.provider.as_str())]);
        Ok(Started::Enqueued { jobs: jobs.len() })
    }

    /// Marks an initial pull's entity done (called by the worker when the pass of an `init1:` job
    /// finished) and, if it was the last, sends `sync.initial_completed`. Returns the event when
    /// this call sent it. Jobs of an older connect (another grant) change nothing.
    pub async fn entity_finished(&self, tenant_id: &str, key: &str, now: DateTime<Utc>) -> Result<Option<AppEvent>> {
        let Some((provider, org_id, grant_id, entity)) = parse_initial_key(key) else { return Ok(None) };
        let (pk, sk) = self.key(tenant_id, provider, &org_id);
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .update_expression("ADD init_done :e")
            .condition_expression("grant_id = :g AND attribute_exists(init_entities)")
            .expression_attribute_values(":e", AttributeValue::Ss(vec![entity_str(entity).to_string()]))
            .expression_attribute_values(":g", s(&grant_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match out {
            Ok(o) => o.attributes.unwrap_or_default(),
            Err(e) if is_conditional_failure(&e) => {
                tracing::info!(org_id = %org_id, grant_id = %grant_id, "initial pull of an older connect finished; nothing to record");
                return Ok(None);
            }
            Err(e) => return Err(dynamo_error("UpdateItem(initial done)", e)),
        };
        self.complete_if_done(tenant_id, provider, &item, now).await
    }

    /// Sends `sync.initial_completed` if every entity of the connection item's initial sync is done
    /// and nobody sent it yet. The conditional write decides the one sender, so two workers
    /// finishing the last two entities at once send it once. Also used by the scheduler to finish
    /// the job of a sender that died between its write and the event.
    pub async fn complete_if_done(&self, tenant_id: &str, provider: Provider, item: &Item, now: DateTime<Utc>) -> Result<Option<AppEvent>> {
        let state = InitialState::from_item(item);
        if !state.all_done() || state.completed_at.is_some() {
            return Ok(None);
        }
        let org_id = get_s(item, "org_id")?;
        let grant_id = get_s(item, "grant_id")?;
        let (pk, sk) = self.key(tenant_id, provider, &org_id);
        let stamp = now.timestamp();
        let won = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", pk.clone())
            .key("sk", sk.clone())
            .update_expression("SET init_completed_at = :now")
            .condition_expression("grant_id = :g AND attribute_not_exists(init_completed_at)")
            .expression_attribute_values(":now", n(stamp))
            .expression_attribute_values(":g", s(&grant_id))
            .send()
            .await;
        match won {
            Ok(_) => {}
            Err(e) if is_conditional_failure(&e) => return Ok(None),
            Err(e) => return Err(dynamo_error("UpdateItem(initial completed)", e)),
        }
        let mut entities = state.entities.clone();
        entities.sort();
        let data = InitialSyncCompleted {
            org_id: org_id.clone(),
            grant_id: grant_id.clone(),
            entities,
            started_at: from_epoch(state.sent_at.unwrap_or(stamp)).to_rfc3339_opts(SecondsFormat::Secs, true),
            completed_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        // One id per connect of the org, so a resend after a failed publish is a recognisable repeat.
        let event = AppEvent::keyed(
            EventType::SyncInitialCompleted,
            tenant_id,
            provider,
            now,
            serde_json::to_value(data).map_err(|e| Error::Internal(e.to_string()))?,
            &format!("{org_id}:{grant_id}"),
        );
        if let Err(e) = self.events.publish(&event, None).await {
            // Undo the claim so the event is not lost: the scheduler's next look at this
            // connection (or a redelivered job) sends it.
            let _ = self
                .db
                .update_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .update_expression("REMOVE init_completed_at")
                .condition_expression("init_completed_at = :now")
                .expression_attribute_values(":now", n(stamp))
                .send()
                .await;
            return Err(e);
        }
        tracing::info!(tenant_id, provider = %provider, org_id = %org_id, grant_id = %grant_id, "first full copy complete");
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_keys_name_the_connect_and_survive_continuations() {
        let k = initial_key(Provider::Xero, "7d5c-aa", "1b2f7c1e-9a4e-4d36-8c2a-0d6a1c1d9e11", Entity::Payment);
        assert_eq!(k, "init1:xero:7d5c-aa:1b2f7c1e-9a4e-4d36-8c2a-0d6a1c1d9e11:payment");
        let want = Some((Provider::Xero, "7d5c-aa".to_string(), "1b2f7c1e-9a4e-4d36-8c2a-0d6a1c1d9e11".to_string(), Entity::Payment));
        assert_eq!(parse_initial_key(&k), want);
        assert_eq!(parse_initial_key(&format!("{k}~c0123456789abcdef")), want, "a follow-up job belongs to the same entity");
        assert!(k.len() + 18 <= 256);
        for bad in [
            "sch1:xero:o:g:invoice",
            "init1:xero:o:g:budget",
            "init1:sage:o:g:invoice",
            "init1:xero:o:g",
            "init1:xero::g:invoice",
            "init1:xero:o:g:invoice:x",
            "",
        ] {
            assert_eq!(parse_initial_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn all_done_needs_every_enqueued_entity() {
        let mut st = InitialState { entities: vec![Entity::Invoice, Entity::Contact], sent_at: Some(1), ..Default::default() };
        assert!(!st.all_done());
        st.done = vec![Entity::Contact];
        assert!(!st.all_done());
        st.done.push(Entity::Invoice);
        assert!(st.all_done());
        st.sent_at = None;
        assert!(!st.all_done(), "not before the jobs were sent");
    }
}
