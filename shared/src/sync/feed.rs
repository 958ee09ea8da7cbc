//! The change feed: every change a job stores (create, update, deletion as a tombstone) reaches the
//! app as `records.changed` on the events queue, at least once, without the app knowing our keys.
//!
//! At least once across a crash: a page's changes are announced before its cursor is stored, and
//! every record item keeps the id of the job that wrote it (`job_id`). A job that dies between the
//! write and the announcement is delivered again (same job id), re-reads the same page from the
//! stored cursor, finds the records unchanged (so it writes nothing) but written by itself (the
//! conditional put hands back the stored item when it refuses), and announces them then. Another
//! job re-reading unchanged records announces nothing, and a job already completed is not run again.
//! Each announcement's `event_id` is derived from what it announces, so a repeat keeps its id;
//! `version` orders the copies of one record. No write beyond the record's own.

use chrono::Utc;
use serde_json::{json, Value};

use crate::events::{AppEvent, EventPublisher, EventType};
use crate::sync::store::RecordChange;
use crate::{Provider, Result};

/// An event's changes stay below this many bytes of JSON, well inside SQS's 256 KiB message with
/// the envelope and attributes; a change whose document alone is larger goes without it.
const EVENT_CHANGES_BYTES: usize = 192 * 1024;
const DOC_MAX_BYTES: usize = 64 * 1024;

/// Announces `changes` (one job's page). An error fails the job before its cursor moves, so its
/// retry reads the page again and announces them.
pub async fn announce(
    events: &EventPublisher,
    tenant_id: &str,
    provider: Provider,
    org_id: &str,
    job_id: &str,
    changes: &[RecordChange],
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    for batch in batches(changes) {
        let key = batch_key(org_id, &batch);
        let data = json!({ "org_id": org_id, "job_id": job_id, "changes": batch });
        let event = AppEvent::keyed(EventType::RecordsChanged, tenant_id, provider, Utc::now(), data, &key);
        events.publish(&event, None).await?;
    }
    crate::telemetry::metric("RecordsChanged", changes.len() as f64, "Count", &[("provider", provider.as_str())]);
    Ok(())
}

/// The changes as event entries, split so each event stays under `EVENT_CHANGES_BYTES`, in order.
fn batches(changes: &[RecordChange]) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut size = 0usize;
    for c in changes {
        let mut entry = serde_json::to_value(c).unwrap_or_default();
        let mut len = entry.to_string().len();
        if len > DOC_MAX_BYTES {
            if let Some(o) = entry.as_object_mut() {
                o.remove("doc");
            }
            len = entry.to_string().len();
        }
        if out.is_empty() || size + len > EVENT_CHANGES_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += len + 1;
        out.last_mut().expect("pushed above").push(entry);
    }
    out
}

/// What an event announces, as the key its id is derived from: the same records at the same
/// versions give the same id.
fn batch_key(org_id: &str, batch: &[Value]) -> String {
    let mut key = String::from(org_id);
    for e in batch {
        key.push('|');
        key.push_str(e["entity"].as_str().unwrap_or_default());
        key.push('/');
        key.push_str(e["provider_id"].as_str().unwrap_or_default());
        key.push('@');
        key.push_str(&e["version"].to_string());
        if e["deleted"].as_bool() == Some(true) {
            key.push('x');
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::model::Entity;

    fn change(id: usize, doc_bytes: usize) -> RecordChange {
        RecordChange {
            entity: Entity::Invoice,
            provider_id: id.to_string(),
            version: 1_700_000_000_000 + id as i64,
            deleted: false,
            doc: json!({ "memo": "m".repeat(doc_bytes) }),
        }
    }

    #[test]
    fn events_stay_within_a_message_and_keep_the_order() {
        let changes: Vec<RecordChange> = (0..400).map(|i| change(i, 2000)).collect();
        let b = batches(&changes);
        assert!(b.len() >= 4, "{}", b.len());
        for batch in &b {
            assert!(Value::Array(batch.clone()).to_string().len() <= EVENT_CHANGES_BYTES + batch.len());
        }
        let ids: Vec<String> = b.iter().flatten().map(|e| e["provider_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids, (0..400).map(|i| i.to_string()).collect::<Vec<_>>());
        // A document too large for an event goes without it (the app reads it from the API).
        let big = batches(&[change(1, DOC_MAX_BYTES + 1)]);
        assert!(big[0][0].get("doc").is_none() && big[0][0]["provider_id"] == "1");
    }

    #[test]
    fn the_same_changes_give_the_same_key_and_another_version_another() {
        let a = batches(&[change(1, 10), change(2, 10)]);
        let mut moved = change(2, 10);
        moved.version += 1;
        let b = batches(&[change(1, 10), moved]);
        assert_eq!(batch_key("o", &a[0]), batch_key("o", &a[0].clone()));
        assert_ne!(batch_key("o", &a[0]), batch_key("o", &b[0]));
    }
}
