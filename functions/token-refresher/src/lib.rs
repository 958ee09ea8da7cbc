//! The scheduled refresher: an EventBridge Scheduler event in, one `shared` call, a run report out.

use aws_lambda_events::eventbridge::EventBridgeEvent;
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
        Deps { service, window, limits: RunLimits::default() }
    }
}

/// One run. A failure to read the index is an error (the scheduler retries the invocation, then
/// its dead-letter queue keeps it); a grant that fails to refresh is counted, not an error: it
/// stays due and the next run takes it.
pub async fn handle(deps: &Deps, event: LambdaEvent<EventBridgeEvent<serde_json::Value>>) -> Result<RunReport, Error> {
    let ctx = RequestContext::new(event.payload.id.as_deref());
    let deadline = deadline_of(&event.context);
    ctx.scope(async {
        deps.service.run_scheduled(deps.window, deadline, &deps.limits).await.map_err(|e| {
            tracing::error!(code = %e.code(), error = %e, "scheduled refresh run failed");
            Error::from(format!("E{}: scheduled refresh run failed", e.code().as_u16()))
        })
    })
    .await
}

/// The invocation's deadline as an Instant (the runtime gives epoch milliseconds).
fn deadline_of(ctx: &lambda_runtime::Context) -> tokio::time::Instant {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let left = (ctx.deadline as i64).saturating_sub(now_ms).max(0) as u64;
    tokio::time::Instant::now() + std::time::Duration::from_millis(left)
}
