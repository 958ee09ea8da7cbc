//! DynamoDB access. Every tenant-owned item's partition key begins with `TENANT#<tenant_id>`, so IAM
//! `dynamodb:LeadingKeys` conditions and any per-tenant export or deletion work on key prefixes.
//!
//! Access patterns (table: key -> purpose):
//! - grants: `TENANT#t` / `GRANT#<provider>#<grant_id>` -> one OAuth token set (sealed), lease, version
//! - grants: `TENANT#t` / `CONN#<provider>#<org_id>` -> one provider org served by a grant
//! - grants GSI `due`: `due_pk = DUE#<provider>`, `due_at` (epoch s) -> grants to refresh before T
//! - grants GSI `org`: `org_key = <provider>#<org_id>` -> tenant and connection for a webhook
//! - tenants: `TENANT#t` / `TENANT` -> plan, limits, configuration
//! - tenants: `TENANT#t` / `USAGE#<yyyy-mm>` -> monthly API-call counter
//! - tenants: `TENANT#t` / `USER#<user_id>` -> role of a main-app user
//! - tenants: `TENANT#t` / `AUDIT#<rfc3339>#<id>` -> audit record with a retention TTL (`expires_at`);
//!   token events and, from the sync worker, one `provider_call` record per provider call
//! - sync: `TENANT#t` / `REC#<provider>#<org>#<entity>#<id>`, `CURSOR#<provider>#<org>#<entity>`,
//!   `JOB#<idempotency key>` -> normalised records, pull cursors, job records (see `crate::sync::store`)
//! - resilience (not tenant-owned): `ORG#<provider>#<org>` / `RL` -> the provider org's rate limit,
//!   slots and breaker, shared by every tenant connected to the org; `APP#<provider>` / `APP` -> the
//!   provider breaker and Xero's app shares (see `crate::resilience`)

pub mod grants;
pub mod keys;
pub mod webhook_registrations;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::{Error, Result};

pub type Item = HashMap<String, AttributeValue>;

/// Reads one item by its full key; strongly consistent, so a read right after a conditional write sees it.
pub async fn get_item(db: &aws_sdk_dynamodb::Client, table: &str, pk: String, sk: String) -> Result<Option<Item>> {
    let out = db
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| dynamo_error("GetItem", e))?;
    Ok(out.item)
}

pub fn tenant_pk(tenant_id: &str) -> String {
    format!("TENANT#{tenant_id}")
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn get_s(item: &Item, key: &str) -> Result<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(Error::Storage { message: format!("item attribute '{key}' missing or not a string"), retryable: false }),
    }
}

pub fn get_s_opt(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub fn get_n_opt(item: &Item, key: &str) -> Option<i64> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub fn get_n(item: &Item, key: &str) -> Result<i64> {
    get_n_opt(item, key)
        .ok_or_else(|| Error::Storage { message: format!("item attribute '{key}' missing or not a number"), retryable: false })
}

pub fn get_ss(item: &Item, key: &str) -> Vec<String> {
    match item.get(key) {
        Some(AttributeValue::L(list)) => list.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
        Some(AttributeValue::Ss(set)) => set.clone(),
        _ => Vec::new(),
    }
}

pub fn list_s(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.clone())).collect())
}

/// True when a DynamoDB call failed only because its condition did not hold.
pub fn is_conditional_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_dynamodb::error::SdkError::ServiceError(se) => {
            matches!(se.err().code(), Some("ConditionalCheckFailedException") | Some("TransactionCanceledException"))
        }
        _ => false,
    }
}

/// Maps any other DynamoDB failure to a storage error; throttling and 5xx are retryable.
pub fn dynamo_error<E, R>(op: &str, err: aws_sdk_dynamodb::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown").to_string();
            let retryable = matches!(
                code.as_str(),
                "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded" | "InternalServerError"
            );
            Error::Storage { message: format!("DynamoDB {op} failed: {code}"), retryable }
        }
        _ => Error::Storage {
            message: format!("DynamoDB {op} failed: {}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
            retryable: true,
        },
    }
}

pub fn epoch(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp()
}

pub fn from_epoch(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default()
}
