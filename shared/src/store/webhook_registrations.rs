//! Zoho webhook registrations the sync worker adds to a connection after connect
//! (`Connection::webhook_id`; format in `providers::zoho_webhooks`).
//!
//! The race that matters is with a disconnect: it removes at Zoho the registrations it reads from
//! the connections, then marks them disconnected. An addition stored after that read would stay at
//! Zoho for good. A disconnect holds its grant's lease (owner [`DISCONNECT_LEASE_PREFIX`]...) from
//! before that read until the connections are marked, so an addition is stored only while no
//! disconnect holds the lease; otherwise the caller removes what it registered.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
use chrono::{DateTime, Utc};

use super::grants::{connection_sk, grant_sk, GrantStatus, GrantStore};
use super::*;
use crate::Provider;

/// The lease owner prefix of a disconnect (`connect::disconnect`).
pub const DISCONNECT_LEASE_PREFIX: &str = "disconnect-";

impl GrantStore {
    /// Replaces the connection's registrations `before` (as read) with `after`, only while the
    /// connection is still active and served by `grant_id`, its registrations are still `before`,
    /// and the grant is active with no disconnect holding its lease. `Conflict` when any of that
    /// no longer holds (or a concurrent transaction touched the items): read again and decide.
    #[allow(clippy::too_many_arguments)]
    pub async fn replace_webhook_registrations(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        grant_id: &str,
        before: Option<&str>,
        after: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let active = s(GrantStatus::Active.as_str());
        let mut conn = Update::builder()
            .table_name(self.table())
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(connection_sk(provider, org_id)))
            .update_expression("SET webhook_id = :after, updated_at = :u")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":after", s(after))
            .expression_attribute_values(":u", s(now.to_rfc3339()))
            .expression_attribute_values(":g", s(grant_id))
            .expression_attribute_values(":active", active.clone());
        conn = match before {
            Some(b) => conn
                .condition_expression("grant_id = :g AND #st = :active AND webhook_id = :before")
                .expression_attribute_values(":before", s(b)),
            None => conn.condition_expression("grant_id = :g AND #st = :active AND attribute_not_exists(webhook_id)"),
        };
        let grant = ConditionCheck::builder()
            .table_name(self.table())
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(grant_sk(provider, grant_id)))
            .condition_expression(
                "#st = :active AND (attribute_not_exists(lease_owner) OR NOT begins_with(lease_owner, :disc) OR lease_expires_at < :now)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":active", active)
            .expression_attribute_values(":disc", s(DISCONNECT_LEASE_PREFIX))
            .expression_attribute_values(":now", n(epoch(now)));
        let items = vec![
            TransactWriteItem::builder().update(conn.build().map_err(Error::storage)?).build(),
            TransactWriteItem::builder().condition_check(grant.build().map_err(Error::storage)?).build(),
        ];
        match self.db().transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::Conflict(format!(
                "{provider} organisation {org_id}: the connection, its registrations or its grant changed (or a disconnect holds the grant)"
            ))),
            Err(e) => Err(dynamo_error("TransactWriteItems(webhook registrations)", e)),
        }
    }
}
