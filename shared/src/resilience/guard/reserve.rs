//! The one-call path's reservation: a place on every rate-limit key and a concurrency slot of its
//! own, taken just before the place.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::ProviderGuard;
use crate::providers::Provider;
use crate::resilience::limiter::{self, Cost, Decision, LimitKey};
use crate::resilience::{slots, SlotDecision};
use crate::{Error, Result};

/// How long before its reserved time a call takes its concurrency slot (and reserves its next
/// key): a few DynamoDB round trips, so the call still leaves on time.
const SLOT_LEAD: Duration = Duration::from_millis(100);

impl ProviderGuard {
    /// Reserves a place on every rate-limit key, takes a concurrency slot just before it and
    /// sleeps until it. A call that would leave later than half the safety margin after its place
    /// (a slow slot, a stalled worker) gives the place up and reserves again, so every call leaves
    /// within the margin of its reserved time, which is what the limiter's maths assumes.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reserve(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        waited: &mut Duration,
        cost: &mut Cost,
    ) -> Result<Option<slots::SlotLease>> {
        let l = &*self.limits;
        let budget = l.retry.budget;
        let late = l.safety / 2;
        let max = l.concurrency(provider);
        // Per key: the reserved place (monotonic time) and the wall clock when it was reserved.
        let mut places: Vec<Option<(tokio::time::Instant, i64)>> = vec![None; keys.len()];
        loop {
            for (i, key) in keys.iter().enumerate() {
                if places[i].is_some() {
                    continue;
                }
                // Reserve the next key close to the places already held, so they can all be kept.
                if let Some(latest) = places.iter().flatten().map(|p| p.0).max() {
                    let target = latest.checked_sub(SLOT_LEAD).unwrap_or(latest);
                    let now = tokio::time::Instant::now();
                    if target > now {
                        *waited += target - now;
                        tokio::time::sleep_until(target).await;
                    }
                }
                let before = cost.dynamo_calls;
                let at = limiter::now_us();
                let d = self.limiter.acquire(key, cost).await?;
                self.stats.limiter_calls.fetch_add((cost.dynamo_calls - before) as u64, Ordering::Relaxed);
                match d {
                    Decision::Go(delay) => places[i] = Some((tokio::time::Instant::now() + delay, at)),
                    Decision::Wait { after, day } => {
                        // The places already held are given up (their daily counts back).
                        for (k, p) in keys.iter().zip(places.iter_mut()) {
                            if let Some((_, at)) = p.take() {
                                self.limiter.refund_day(k, at).await.ok();
                            }
                        }
                        if day || *waited + after > budget {
                            tracing::info!(provider = %provider, tenant_id, org_id, op, scope = %key.scope, day, wait_ms = after.as_millis() as u64, "rate limit: handing the wait to the caller");
                            return Err(limiter::wait_error(&key.scope, after, day));
                        }
                        tokio::time::sleep(after).await;
                        *waited += after;
                        break;
                    }
                }
            }
            if places.iter().any(Option::is_none) {
                continue;
            }
            let go_at = places.iter().flatten().map(|p| p.0).max().unwrap_or_else(tokio::time::Instant::now);
            // The slot is taken just before the reserved time: a slot held through the whole wait
            // would keep other workers from their own, earlier places.
            let lease = if max > 0 {
                let take_at = go_at.checked_sub(SLOT_LEAD).unwrap_or(go_at);
                let now = tokio::time::Instant::now();
                if take_at > now {
                    *waited += take_at - now;
                    tokio::time::sleep_until(take_at).await;
                }
                loop {
                    match self.slots.acquire(provider, org_id, max, l.slot_lease, cost).await? {
                        SlotDecision::Held(lease) => break Some(lease),
                        SlotDecision::Full { retry_after } => {
                            if *waited + retry_after > budget {
                                for (k, p) in keys.iter().zip(places.iter_mut()) {
                                    if let Some((_, at)) = p.take() {
                                        self.limiter.refund_day(k, at).await.ok();
                                    }
                                }
                                return Err(Error::RateLimited {
                                    scope: format!("{}:{}:concurrency", provider.as_str(), org_id),
                                    retry_after: retry_after.max(Duration::from_secs(1)),
                                });
                            }
                            tokio::time::sleep(retry_after).await;
                            *waited += retry_after;
                        }
                    }
                }
            } else {
                None
            };
            // Every key's place must be kept to within `late`; a place we would miss by more is
            // given up (its daily count back) and reserved again.
            let leave_at = go_at.max(tokio::time::Instant::now());
            let mut missed = false;
            for (k, p) in keys.iter().zip(places.iter_mut()) {
                if let Some((place, at)) = *p {
                    if leave_at > place + late {
                        missed = true;
                        self.stats.missed.fetch_add(1, Ordering::Relaxed);
                        self.limiter.refund_day(k, at).await.ok();
                        *p = None;
                    }
                }
            }
            if missed {
                tracing::debug!(provider = %provider, tenant_id, org_id, "missed a reserved place; reserving again");
                if let Some(lease) = &lease {
                    self.slots.release(lease, cost).await.ok();
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            if go_at > now {
                *waited += go_at - now;
                tokio::time::sleep_until(go_at).await;
            }
            return Ok(lease);
        }
    }
}
