//! Sync jobs as the main app sends them.

use chrono::Utc;
use shared::jobs::{Operation, Source, SyncJob, JOB_VERSION};
use shared::tenancy::{Entity, Priority};
use shared::Provider;

use crate::unique;

/// A new job from the app for `tenant`'s `org`: fresh job id, idempotency key and correlation id,
/// no cursor.
pub fn app_job(tenant: &str, provider: Provider, org: &str, operation: Operation, entity: Entity, priority: Priority) -> SyncJob {
    SyncJob {
        version: JOB_VERSION,
        job_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.to_string(),
        provider,
        org_id: org.to_string(),
        operation,
        entity,
        entity_id: None,
        cursor: None,
        change: None,
        merged_from: None,
        priority,
        idempotency_key: unique("app"),
        correlation_id: unique("corr"),
        requested_at: Utc::now(),
        source: Source::App,
        totals_before: None,
    }
}
