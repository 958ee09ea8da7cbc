//! The app's connection health events for an org breaker's transitions.

use super::{BreakerState, Transition};
use crate::events::{AppEvent, EventPublisher, EventType};
use crate::Result;

/// The app event for an org breaker's transition: opened → `connection.degraded`, closed again →
/// `connection.recovered`, to the tenant whose call performed it. Other transitions (half-open,
/// provider-wide, or with no tenant: an operator's) are logged only.
pub fn transition_event(t: &Transition) -> Option<AppEvent> {
    let org = t.key.org.as_ref()?;
    let tenant = t.key.tenant.as_ref()?;
    let now = chrono::Utc::now();
    let degraded = match (t.from, t.to) {
        (BreakerState::Closed, BreakerState::Open) => true,
        (BreakerState::HalfOpen, BreakerState::Closed) => false,
        _ => return None,
    };
    // The same `data` shape as the refresher's health events (schemas/app-event.v1.json).
    let data = crate::events::ConnectionHealth {
        grant_id: None,
        org_ids: vec![org.clone()],
        cause: crate::events::HealthCause::ProviderErrors,
        error_code: degraded.then_some(crate::ErrorCode::CircuitOpen.as_u16()),
        message: Some(format!("{} failed {} of the last {} calls for this organisation", t.key.provider, t.failures, t.calls)),
        since: degraded.then(|| now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        reconnect_url: None,
    };
    let kind = if degraded { EventType::ConnectionDegraded } else { EventType::ConnectionRecovered };
    Some(AppEvent::new(kind, tenant, t.key.provider, now, serde_json::to_value(data).unwrap_or_default()))
}

/// Sends the app event for a transition, if it has one.
pub async fn notify_transition(events: &EventPublisher, t: &Transition) -> Result<()> {
    match transition_event(t) {
        Some(e) => events.publish(&e, None).await,
        None => Ok(()),
    }
}
