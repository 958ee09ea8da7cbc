//! The deadline a guarded call must return by (see "Deadlines" in `resilience`).

use std::future::Future;
use std::time::Duration;

use crate::providers::Provider;
use crate::Error;

tokio::task_local! {
    static DEADLINE: tokio::time::Instant;
}

/// Runs `fut` with every guarded call in it bounded by `deadline` (see "Deadlines"). Nested scopes
/// keep the earlier deadline. Task-local: calls in tasks spawned from `fut` are not bounded.
pub async fn within_deadline<F: Future>(deadline: chrono::DateTime<chrono::Utc>, fut: F) -> F::Output {
    let left = (deadline - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let mut at = tokio::time::Instant::now() + left;
    if let Some(outer) = current_deadline() {
        at = at.min(outer);
    }
    DEADLINE.scope(at, fut).await
}

pub(super) fn current_deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// What is left before the deadline of the enclosing [`within_deadline`], if there is one.
pub fn time_left() -> Option<Duration> {
    current_deadline().map(|d| d.saturating_duration_since(tokio::time::Instant::now()))
}

/// Whether `e` is a guard's refusal to start an attempt that could not finish before the deadline
/// of [`within_deadline`].
pub fn is_deadline(e: &Error) -> bool {
    matches!(e, Error::RateLimited { scope, .. } if scope.ends_with(":deadline"))
}

pub(super) fn deadline_error(provider: Provider, org_id: &str) -> Error {
    // Retryable, and soon: the next invocation has its own deadline.
    Error::RateLimited { scope: format!("{}:{}:deadline", provider.as_str(), org_id), retry_after: Duration::from_secs(1) }
}
