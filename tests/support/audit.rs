//! The audit trail the code under test leaves in the tenants table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::TestEnv;

/// The tenant's audit records of provider calls.
pub async fn provider_calls(env: &TestEnv, tenant: &str) -> Vec<HashMap<String, AttributeValue>> {
    let out = env
        .clients
        .dynamodb
        .query()
        .table_name(&env.config.tables.tenants)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .expression_attribute_values(":p", AttributeValue::S("AUDIT#".into()))
        .send()
        .await
        .unwrap();
    out.items
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i.get("event").and_then(|e| e.as_s().ok()).map(String::as_str) == Some("provider_call"))
        .collect()
}
