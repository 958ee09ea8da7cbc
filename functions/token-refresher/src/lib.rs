//! The scheduled refresher: an EventBridge Scheduler event in, one `shared` call, a run report out.

use lambda_runtime::{Error, LambdaEvent};
use shared::refresh::schedule::{RunLimits, RunReport};
use shared::refresh::TokenService;
use shared::{Config, RequestContext};

pub struct Deps {
    pub service: TokenService,
    pub window: chrono::Duration,
    pub limits: RunLimits,
}

impl Deps {
    pub fn new(config: &Config, service: TokenService) -> Self {
        let window = chrono::Duration::from_std(config.refresh_window).unwrap_or(chrono::Duration::minutes(10));
        // A refresh started must be able to finish: the token call's timeout plus two writes.
        let stop_before = config.provider_timeout + std::time::Duration::from_secs(5);
        Deps { service, window, limits: RunLimits { stop_before, ..RunLimits::default() } }
    }
}

/// One run. A failure to read the index is an error (the scheduler retries the invocation, then
/// its dead-letter queue keeps it); a grant that fails to refresh is counted, not an error: it
/// stays due and the next run takes it.
///
/// The payload is read loosely: EventBridge Scheduler sends whatever input the schedule names (an
/// empty object when none), an EventBridge rule sends the full event, and an operator may send
/// `{"detail": {"window_seconds": N}}`.
pub async fn handle(deps: &Deps, event: LambdaEvent<serde_json::Value>) -> Result<RunReport, Error> {
    let id = event.payload.get("id").and_then(serde_json::Value::as_str);
    let ctx = RequestContext::new(id);
    let deadline = deadline_of(&event.context);
    let detail = event.payload.get("detail").cloned().unwrap_or_default();
    let window = window_of(&detail, deps.window);
    let limits = RunLimits { shards: shards_of(&detail), ..deps.limits.clone() };
    tracing::info!(
        remaining_ms = deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis() as u64,
        window_seconds = window.num_seconds(),
        "refresh run starts"
    );
    ctx.scope(async {
        Box::pin(deps.service.run_scheduled(window, deadline, &limits)).await.map_err(|e| {
            tracing::error!(code = %e.code(), error = %e, "scheduled refresh run failed");
            Error::from(format!("E{}: scheduled refresh run failed", e.code().as_u16()))
        })
    })
    .await
}

/// The schedule sends an empty `detail`; an operator (or the local walk-through) may send
/// `{"window_seconds": N}` to refresh everything due within N seconds now (1 s to 1 day).
fn window_of(detail: &serde_json::Value, default: chrono::Duration) -> chrono::Duration {
    match detail.get("window_seconds").and_then(serde_json::Value::as_i64) {
        Some(s) if (1..=86_400).contains(&s) => chrono::Duration::seconds(s),
        Some(s) => {
            tracing::warn!(window_seconds = s, "window_seconds out of range (1..=86400); using the configured window");
            default
        }
        None => default,
    }
}

/// `{"shards": [0, 1, ...]}`: the `due` shards this schedule covers (each below DUE_SHARDS); absent
/// or invalid means every shard, so a bad input never leaves grants unrefreshed.
fn shards_of(detail: &serde_json::Value) -> Option<Vec<u32>> {
    let list = detail.get("shards")?.as_array()?;
    let shards: Vec<u32> = list
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .filter(|s| *s < u64::from(shared::store::grants::DUE_SHARDS))
        .map(|s| s as u32)
        .collect();
    if shards.is_empty() || shards.len() != list.len() {
        tracing::warn!("invalid shards in the event; covering every shard");
        return None;
    }
    Some(shards)
}

/// The invocation's deadline as an Instant (the runtime gives epoch milliseconds). Some emulators
/// send a deadline that has already passed; then the template's timeout stands in for it.
fn deadline_of(ctx: &lambda_runtime::Context) -> tokio::time::Instant {
    const TEMPLATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(240);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let left = (ctx.deadline as i64).saturating_sub(now_ms);
    let left = if left > 0 {
        std::time::Duration::from_millis(left as u64)
    } else {
        tracing::warn!(deadline_ms = ctx.deadline, "the invocation carries no future deadline; assuming the template's timeout");
        TEMPLATE_TIMEOUT
    };
    tokio::time::Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_can_be_widened_by_the_event_within_bounds() {
        let d = chrono::Duration::minutes(10);
        assert_eq!(window_of(&serde_json::json!({}), d), d);
        assert_eq!(window_of(&serde_json::json!({"window_seconds": 7200}), d), chrono::Duration::hours(2));
        assert_eq!(window_of(&serde_json::json!({"window_seconds": 0}), d), d);
        assert_eq!(window_of(&serde_json::json!({"window_seconds": 999_999}), d), d);
        assert_eq!(window_of(&serde_json::json!({"window_seconds": "3600"}), d), d);
    }

    #[test]
    fn a_schedule_may_name_its_shards_and_a_bad_list_means_all() {
        assert_eq!(shards_of(&serde_json::json!({})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": [0, 7, 15]})), Some(vec![0, 7, 15]));
        assert_eq!(shards_of(&serde_json::json!({"shards": [0, 16]})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": []})), None);
        assert_eq!(shards_of(&serde_json::json!({"shards": "0-7"})), None);
    }
}
