//! Events for the main app: one versioned JSON document per thing that happened to a tenant's
//! connections or syncs, sent to one outbound SQS queue the app reads.
//!
//! The format is a public contract (schemas/app-event.v1.json). Only add optional fields within
//! version 1; anything else is a version 2 with its own schema.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::{Error, Provider, Result};

pub const EVENT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "connection.created")]
    ConnectionCreated,
    #[serde(rename = "connection.degraded")]
    ConnectionDegraded,
    #[serde(rename = "connection.recovered")]
    ConnectionRecovered,
    #[serde(rename = "connection.needs_reauth")]
    ConnectionNeedsReauth,
    #[serde(rename = "connection.disconnected")]
    ConnectionDisconnected,
    #[serde(rename = "sync.completed")]
    SyncCompleted,
    #[serde(rename = "sync.failed")]
    SyncFailed,
    /// The first full copy of a new connection is complete: every entity's initial pull is done.
    #[serde(rename = "sync.initial_completed")]
    SyncInitialCompleted,
    #[serde(rename = "report.ready")]
    ReportReady,
    #[serde(rename = "report.failed")]
    ReportFailed,
    #[serde(rename = "passthrough.ready")]
    PassthroughReady,
    #[serde(rename = "passthrough.failed")]
    PassthroughFailed,
    /// Stored records changed (created, updated, deleted): the change feed (`sync::feed`).
    #[serde(rename = "records.changed")]
    RecordsChanged,
    /// A write (push job) was applied, found already applied, or (dry run) passed every check.
    #[serde(rename = "write.completed")]
    WriteCompleted,
    /// A write was refused (role, validation, the provider) or conflicted; nothing changed.
    #[serde(rename = "write.failed")]
    WriteFailed,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        EventType::ConnectionCreated,
        EventType::ConnectionDegraded,
        EventType::ConnectionRecovered,
        EventType::ConnectionNeedsReauth,
        EventType::ConnectionDisconnected,
        EventType::SyncCompleted,
        EventType::SyncFailed,
        EventType::SyncInitialCompleted,
        EventType::ReportReady,
        EventType::ReportFailed,
        EventType::PassthroughReady,
        EventType::PassthroughFailed,
        EventType::RecordsChanged,
        EventType::WriteCompleted,
        EventType::WriteFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConnectionCreated => "connection.created",
            EventType::ConnectionDegraded => "connection.degraded",
            EventType::ConnectionRecovered => "connection.recovered",
            EventType::ConnectionNeedsReauth => "connection.needs_reauth",
            EventType::ConnectionDisconnected => "connection.disconnected",
            EventType::SyncCompleted => "sync.completed",
            EventType::SyncFailed => "sync.failed",
            EventType::SyncInitialCompleted => "sync.initial_completed",
            EventType::ReportReady => "report.ready",
            EventType::ReportFailed => "report.failed",
            EventType::PassthroughReady => "passthrough.ready",
            EventType::PassthroughFailed => "passthrough.failed",
            EventType::RecordsChanged => "records.changed",
            EventType::WriteCompleted => "write.completed",
            EventType::WriteFailed => "write.failed",
        }
    }
}

/// One event. `data` depends on `type`; the schema documents the fields each type carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppEvent {
    pub version: u32,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub tenant_id: String,
    pub provider: Provider,
    /// RFC 3339 UTC with milliseconds.
    pub occurred_at: String,
    pub correlation_id: String,
    pub data: Value,
}

impl AppEvent {
    /// A new event with a fresh id; the correlation id comes from the current request context.
    pub fn new(event_type: EventType, tenant_id: &str, provider: Provider, occurred_at: DateTime<Utc>, data: Value) -> Self {
        let correlation_id = crate::context::current().map(|c| c.correlation_id).unwrap_or_else(crate::context::mint_correlation_id);
        AppEvent {
            version: EVENT_VERSION,
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type,
            tenant_id: tenant_id.to_string(),
            provider,
            occurred_at: occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            correlation_id,
            data,
        }
    }

    /// An event whose id is derived from what it announces (`key`: e.g. the job's idempotency key),
    /// so announcing the same thing again (a redelivered job, a retried publish) sends the same
    /// `event_id` and the app can recognise the repeat.
    pub fn keyed(event_type: EventType, tenant_id: &str, provider: Provider, occurred_at: DateTime<Utc>, data: Value, key: &str) -> Self {
        let mut e = AppEvent::new(event_type, tenant_id, provider, occurred_at, data);
        e.event_id = stable_event_id(event_type, tenant_id, key);
        e
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain struct serialises")
    }
}

/// A UUID (version 8, "custom") from a hash of the event type, tenant and key: the same inputs
/// always give the same id, different tenants or keys never share one in practice.
pub fn stable_event_id(event_type: EventType, tenant_id: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [event_type.as_str(), tenant_id, key] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

/// `data` of `connection.created`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionCreated {
    pub grant_id: String,
    pub connections: Vec<ConnectedOrg>,
    pub scopes: Vec<String>,
    /// The main-app user who connected.
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectedOrg {
    pub org_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    /// Whether a provider-side webhook was registered for this org (Zoho); QuickBooks and Xero
    /// deliver through the app-level subscription, so this is false for them.
    pub webhook_registered: bool,
}

/// `data` of `connection.disconnected`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionDisconnected {
    pub grant_id: String,
    pub org_ids: Vec<String>,
    /// A main-app user id, or `system:<function>`.
    pub actor: String,
    /// Whether the provider confirmed the revocation (false when the grant was already dead there).
    pub revoked_at_provider: bool,
}

/// Why a connection's health changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCause {
    /// Refreshing the OAuth grant failed (degraded, needs_reauth) or works again (recovered).
    TokenRefresh,
    /// The provider fails calls for the organisation (the circuit breaker opened or closed).
    ProviderErrors,
}

/// `data` of `connection.degraded`, `connection.recovered` and `connection.needs_reauth`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    pub org_ids: Vec<String>,
    pub cause: HealthCause,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// needs_reauth only: where the app sends an admin to connect again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_url: Option<String>,
}

/// `data` of `sync.initial_completed`: sent once per connect of an organisation, when the full pull
/// of every entity the tenant enabled at connect time has finished.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InitialSyncCompleted {
    pub org_id: String,
    /// The grant the connect created (a reconnect starts a new initial sync under its new grant).
    pub grant_id: String,
    pub entities: Vec<crate::tenancy::Entity>,
    /// When the full pulls were enqueued and when the last one finished (RFC 3339).
    pub started_at: String,
    pub completed_at: String,
}

/// Sends events to the app's queue (or a tenant's own destination queue, when configured).
#[derive(Clone, Debug)]
pub struct EventPublisher {
    sqs: aws_sdk_sqs::Client,
    default_queue_url: String,
}

impl EventPublisher {
    pub fn new(sqs: aws_sdk_sqs::Client, default_queue_url: impl Into<String>) -> Self {
        EventPublisher { sqs, default_queue_url: default_queue_url.into() }
    }

    pub fn default_queue_url(&self) -> &str {
        &self.default_queue_url
    }

    /// Sends one event to the events queue. The event id travels as a message attribute too, so
    /// consumers can dedupe without parsing.
    ///
    /// `destination` (a tenant's `event_destination`) is accepted for compatibility and ignored:
    /// per-tenant queues were never granted by IAM (every function may send only to `EventsQueue`),
    /// so honouring it made events fail for those tenants. Every event goes to the shared queue;
    /// the message attribute `tenant_id` lets the app route them.
    pub async fn publish(&self, event: &AppEvent, destination: Option<&str>) -> Result<()> {
        if let Some(d) = destination {
            tracing::debug!(ignored_destination = %d, "event_destination is not supported; using the events queue");
        }
        use aws_sdk_sqs::types::MessageAttributeValue;
        let attr = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().map_err(Error::queue);
        self.sqs
            .send_message()
            .queue_url(&self.default_queue_url)
            .message_body(event.to_json())
            .message_attributes("event_type", attr(event.event_type.as_str())?)
            .message_attributes("event_id", attr(&event.event_id)?)
            .message_attributes("tenant_id", attr(&event.tenant_id)?)
            .send()
            .await
            .map_err(|e| {
                Error::queue(format!(
                    "SendMessage(event {}): {}",
                    event.event_type.as_str(),
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }
}

/// A small check of an event against the published JSON Schema: required fields, types, enums and
/// the `data` fields each type requires. Enough to catch drift between code and contract without a
/// JSON Schema engine; the tests run it on every event the code emits.
pub fn check_against_schema(schema: &Value, event: &Value) -> std::result::Result<(), String> {
    let obj = event.as_object().ok_or("event is not an object")?;
    let required = schema["required"].as_array().ok_or("schema has no required list")?;
    for r in required {
        let name = r.as_str().ok_or("required entry is not a string")?;
        if !obj.contains_key(name) {
            return Err(format!("missing required field '{name}'"));
        }
    }
    if schema["additionalProperties"] == Value::Bool(false) {
        for k in obj.keys() {
            if schema["properties"].get(k).is_none() {
                return Err(format!("field '{k}' is not in the schema"));
            }
        }
    }
    for (name, prop) in schema["properties"].as_object().ok_or("schema has no properties")? {
        let Some(value) = obj.get(name) else { continue };
        check_value(&format!("/{name}"), prop, value)?;
    }
    // Per-type data requirements: `allOf: [{if: {properties: {type: {const: T}}}, then: {properties: {data: {required: [...]}}}}]`.
    if let Some(rules) = schema["allOf"].as_array() {
        for rule in rules {
            let Some(t) = rule["if"]["properties"]["type"]["const"].as_str() else { continue };
            if obj.get("type").and_then(Value::as_str) != Some(t) {
                continue;
            }
            let data_schema = &rule["then"]["properties"]["data"];
            for r in data_schema["required"].as_array().into_iter().flatten() {
                let name = r.as_str().unwrap_or_default();
                if obj["data"].get(name).is_none() {
                    return Err(format!("{t}: data is missing '{name}'"));
                }
            }
            for (name, prop) in data_schema["properties"].as_object().into_iter().flatten() {
                if let Some(v) = obj["data"].get(name) {
                    check_value(&format!("/data/{name}"), prop, v)?;
                }
            }
        }
    }
    Ok(())
}

fn check_value(path: &str, prop: &Value, value: &Value) -> std::result::Result<(), String> {
    if let Some(c) = prop.get("const") {
        if c != value {
            return Err(format!("{path}: expected {c}, got {value}"));
        }
    }
    if let Some(options) = prop["enum"].as_array() {
        if !options.contains(value) {
            return Err(format!("{path}: {value} is not one of {options:?}"));
        }
    }
    if let Some(t) = prop["type"].as_str() {
        let ok = match t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => true,
        };
        if !ok {
            return Err(format!("{path}: expected {t}, got {value}"));
        }
    }
    if let (Some(min), Some(s)) = (prop["minLength"].as_u64(), value.as_str()) {
        if (s.len() as u64) < min {
            return Err(format!("{path}: shorter than {min}"));
        }
    }
    if prop["format"] == "date-time" {
        if let Some(s) = value.as_str() {
            DateTime::parse_from_rfc3339(s).map_err(|_| format!("{path}: '{s}' is not an RFC 3339 date-time"))?;
        }
    }
    if prop["format"] == "uuid" {
        if let Some(s) = value.as_str() {
            uuid::Uuid::parse_str(s).map_err(|_| format!("{path}: '{s}' is not a uuid"))?;
        }
    }
    if let (Some(items), Some(arr)) = (prop.get("items"), value.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_value(&format!("{path}/{i}"), items, item)?;
            if let (Some(req), Some(o)) = (items["required"].as_array(), item.as_object()) {
                for r in req {
                    let name = r.as_str().unwrap_or_default();
                    if !o.contains_key(name) {
                        return Err(format!("{path}/{i}: missing '{name}'"));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::from_str(include_str!("../../schemas/app-event.v1.json")).expect("schema is JSON")
    }

    fn created() -> AppEvent {
        let data = ConnectionCreated {
            grant_id: "g-1".into(),
            connections: vec![ConnectedOrg { org_id: "9341".into(), org_name: Some("Acme".into()), webhook_registered: false }],
            scopes: vec!["com.intuit.quickbooks.accounting".into()],
            user_id: "u-1".into(),
        };
        AppEvent::new(EventType::ConnectionCreated, "t-1", Provider::QuickBooks, Utc::now(), serde_json::to_value(data).unwrap())
    }

    #[test]
    fn serialised_event_has_the_contract_shape() {
        let v: Value = serde_json::from_str(&created().to_json()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["type"], "connection.created");
        assert_eq!(v["provider"], "quickbooks");
        assert_eq!(v["data"]["connections"][0]["org_id"], "9341");
        assert!(v["occurred_at"].as_str().unwrap().ends_with('Z'));
        check_against_schema(&schema(), &v).unwrap();
    }

    #[test]
    fn schema_enum_lists_every_event_type_the_code_knows() {
        let s = schema();
        let listed: Vec<&str> = s["properties"]["type"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(listed, known);
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }

    /// The entities a sync event may name are every entity the code syncs, and those a write event
    /// may name every entity writes take (the lists drifted as entities were added).
    #[test]
    fn schema_entity_lists_are_the_codes() {
        use crate::providers::model::Entity;
        let s = schema();
        let all: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        let writable: Vec<&str> = Entity::ALL.iter().filter(|e| crate::writes::writable(**e)).map(|e| e.as_str()).collect();
        let mut seen = 0;
        for rule in s["allOf"].as_array().unwrap() {
            let Some(kind) = rule["if"]["properties"]["type"]["const"].as_str() else { continue };
            let data = &rule["then"]["properties"]["data"]["properties"];
            let list = data["entity"]["enum"].as_array().or_else(|| data["entities"]["items"]["enum"].as_array());
            let Some(list) = list else { continue };
            let mut listed: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            let mut want = if kind.starts_with("write.") { writable.clone() } else { all.clone() };
            listed.sort_unstable();
            want.sort_unstable();
            assert_eq!(listed, want, "{kind}");
            seen += 1;
        }
        assert!(seen >= 5, "entity lists found: {seen}");
    }

    #[test]
    fn the_schema_check_rejects_drift() {
        let s = schema();
        let good: Value = serde_json::from_str(&created().to_json()).unwrap();
        let mut cases = Vec::new();
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove("correlation_id");
        cases.push(("missing correlation_id", v));
        let mut v = good.clone();
        v["type"] = "connection.exploded".into();
        cases.push(("unknown type", v));
        let mut v = good.clone();
        v["version"] = 2.into();
        cases.push(("wrong version", v));
        let mut v = good.clone();
        v["provider"] = "sage".into();
        cases.push(("unknown provider", v));
        let mut v = good.clone();
        v["occurred_at"] = "yesterday".into();
        cases.push(("bad time", v));
        let mut v = good.clone();
        v["data"].as_object_mut().unwrap().remove("grant_id");
        cases.push(("data without grant_id", v));
        let mut v = good.clone();
        v["data"]["connections"][0].as_object_mut().unwrap().remove("org_id");
        cases.push(("connection without org_id", v));
        let mut v = good;
        v["extra"] = 1.into();
        cases.push(("unknown top-level field", v));
        for (label, v) in cases {
            assert!(check_against_schema(&s, &v).is_err(), "{label} passed the check");
        }
    }

    /// Every example event in schemas/examples satisfies the schema and parses; and the new event
    /// types' required data is enforced.
    #[test]
    fn example_events_satisfy_the_schema() {
        let s = schema();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("event-") {
                continue;
            }
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            check_against_schema(&s, &v).unwrap_or_else(|e| panic!("{name}: {e}"));
            let e: AppEvent = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            if e.event_type == EventType::RecordsChanged {
                let mut bad = v.clone();
                bad["data"].as_object_mut().unwrap().remove("changes");
                assert!(check_against_schema(&s, &bad).is_err(), "records.changed without changes passed");
            }
            if e.event_type == EventType::ReportReady {
                let mut bad = v.clone();
                bad["data"].as_object_mut().unwrap().remove("location");
                assert!(check_against_schema(&s, &bad).is_err(), "report.ready without location passed");
                let mut bad = v.clone();
                bad["data"]["kind"] = "cash_flow".into();
                assert!(check_against_schema(&s, &bad).is_err());
            }
            n += 1;
        }
        assert!(n >= 5, "examples found: {n}");
    }

    #[test]
    fn disconnected_event_passes_the_schema() {
        let data = ConnectionDisconnected { grant_id: "g".into(), org_ids: vec!["o".into()], actor: "u".into(), revoked_at_provider: true };
        let e = AppEvent::new(EventType::ConnectionDisconnected, "t", Provider::Zoho, Utc::now(), serde_json::to_value(data).unwrap());
        check_against_schema(&schema(), &serde_json::to_value(&e).unwrap()).unwrap();
    }
}
