//! The scheduled sync: an EventBridge Scheduler event in, one `shared` call, a run report out.

use lambda_runtime::{Error, LambdaEvent};
use shared::sync::schedule::{RunLimits, RunReport, SyncScheduler, SYNC_SHARDS};
use shared::RequestContext;

pub struct Deps {
    pub scheduler: SyncScheduler,
    pub limits: RunLimits,
}

impl Deps {
    pub fn new(scheduler: SyncScheduler) -> Self {
        Deps { scheduler, limits: RunLimits::default() }
    }
}

/// One run. A failure to read the whole index is an error (the scheduler retries the invocation,
/// then its dead-letter queue keeps it); a connection that fails is counted and stays due.
///
/// The payload is read loosely like the refresher's: `{"detail": {"shards": [..]}}` names the
/// shards of the `sync_due` index this schedule covers (absent: all).
pub async fn handle(deps: &Deps, event: LambdaEvent<serde_json::Value>) -> Result<RunReport, Error> {
    let id = event.payload.get("id").and_then(serde_json::Value::as_str);
    let ctx = RequestContext::new(id);
    let deadline = deadline_of(&event.context);
    let detail = event.payload.get("detail").cloned().unwrap_or_default();
    let limits = RunLimits { shards: shards_of(&detail), ..deps.limits.clone() };
    ctx.scope(async {
        Box::pin(deps.scheduler.run(chrono::Utc::now(), deadline, &limits)).await.map_err(|e| {
            tracing::error!(code = %e.code(), error = %e, "scheduled sync run failed");
            Error::from(format!("E{}: scheduled sync run failed", e.code().as_u16()))
        })
    })
    .await
}

/// `{"shards": [0, 1, ...]}`, each below SYNC_SHARDS; absent or invalid means every shard, so a bad
/// input never leaves connections unsynced.
fn shards_of(detail: &serde_json::Value) -> Option<Vec<u32>> {
    let list = detail.get("shards")?.as_array()?;
    let shards: Vec<u32> =
        list.iter().filter_map(serde_json::Value::as_u64).filter(|s| *s < u64::from(SYNC_SHARDS)).map(|s| s as u32).collect();
    if shards.is_empty() || shards.len() != list.len() {
        tracing::warn!("invalid shards in the event; covering every shard");
        return None;
    }
    Some(shards)
}

/// The invocation's deadline as an Instant; the template's timeout stands in for a missing one.
fn deadline_of(ctx: &lambda_runtime::Context) -> tokio::time::Instant {
    const TEMPLATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(50);
    let left = (ctx.deadline as i64).saturating_sub(chrono::Utc::now().timestamp_millis());
    let left = if left > 0 { std::time::Duration::from_millis(left as u64) } else { TEMPLATE_TIMEOUT };
    tokio::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_may_name_its_shards_and_a_bad_list_means_all() {
        assert_eq!(shards_of(&serde_json::json!({})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": [0, 7, 15]})), Some(vec![0, 7, 15]));
        assert_eq!(shards_of(&serde_json::json!({"shards": [0, 16]})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": []})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": "0-7"})), None);
    }
}
