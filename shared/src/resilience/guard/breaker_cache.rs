//! The breakers as the worker last read them, and the outcomes it holds until its next write: the
//! provider breaker in the app lane, the org breaker in the org's lane.

use std::sync::atomic::Ordering;

use super::{us, ProviderGuard};
use crate::providers::Provider;
use crate::resilience::limiter::{self, Cost};
use crate::resilience::{Admission, BreakerKey, BreakerState, Outcome, Transition};
use crate::Result;

impl ProviderGuard {
    /// The provider breaker's admission: from the cache while it is fresh, else one write that adds
    /// the held counts and reads the breaker back. Half-open rounds always go to DynamoDB.
    pub(super) async fn provider_admit(&self, bk: &BreakerKey, transitions: &mut Vec<Transition>, cost: &mut Cost) -> Result<Admission> {
        let st = &self.limits.provider_breaker;
        let app = self.app_lane(bk.provider);
        let mut a = app.lock().await;
        for _ in 0..2 {
            let fresh = a.breaker.as_ref().filter(|(_, at)| at.elapsed() < st.cache_ttl()).map(|(s, _)| s.clone());
            if let Some(snap) = fresh {
                let now = limiter::now_us();
                return Ok(match snap.state {
                    BreakerState::Closed => Admission::Go,
                    BreakerState::Open if now < snap.open_until_us => Admission::Refused { retry_after: us(snap.open_until_us - now) },
                    _ => {
                        a.breaker = None;
                        drop(a);
                        let (adm, t) = self.breakers.admit(bk, st, cost).await?;
                        transitions.extend(t);
                        adm
                    }
                });
            }
            let pending = std::mem::take(&mut a.pending);
            self.stats.breaker_reads.fetch_add(1, Ordering::Relaxed);
            match self.breakers.flush(bk, st, &pending, cost).await {
                Ok((snap, t)) => {
                    transitions.extend(t);
                    a.breaker = Some((snap, std::time::Instant::now()));
                }
                Err(e) => {
                    a.pending.merge(pending);
                    return Err(e);
                }
            }
        }
        Ok(Admission::Go)
    }

    /// Counts a provider-breaker outcome: held for the next refresh, a failure written at once.
    pub(super) async fn provider_record(
        &self,
        bk: &BreakerKey,
        adm: &Admission,
        outcome: Outcome,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) {
        let st = &self.limits.provider_breaker;
        let app = self.app_lane(bk.provider);
        let r = match adm {
            Admission::Refused { .. } => return,
            Admission::Probe { .. } => {
                app.lock().await.breaker = None;
                self.breakers.record(bk, st, adm, outcome, cost).await
            }
            Admission::Go => {
                let mut a = app.lock().await;
                a.pending.add(limiter::now_us(), st, outcome);
                if outcome != Outcome::Failure {
                    return;
                }
                let pending = std::mem::take(&mut a.pending);
                match self.breakers.flush(bk, st, &pending, cost).await {
                    Ok((snap, t)) => {
                        a.breaker = Some((snap, std::time::Instant::now()));
                        Ok(t)
                    }
                    Err(e) => {
                        a.pending.merge(pending);
                        Err(e)
                    }
                }
            }
        };
        match r {
            Ok(t) => transitions.extend(t),
            Err(e) => tracing::warn!(provider = %bk.provider, error = %e, "could not record a breaker outcome"),
        }
    }

    /// Counts an org-breaker outcome in the lane: held for its next write, a failure written at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn org_record(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        bk: &BreakerKey,
        adm: &Admission,
        outcome: Outcome,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) {
        let st = &self.limits.org_breaker;
        let lane = self.lane(tenant_id, provider, org_id);
        let r = match adm {
            Admission::Refused { .. } => return,
            Admission::Probe { .. } => {
                lane.lock().await.breaker = None;
                self.breakers.record(bk, st, adm, outcome, cost).await
            }
            Admission::Go => {
                let mut g = lane.lock().await;
                g.pending.add(limiter::now_us(), st, outcome);
                if outcome != Outcome::Failure {
                    return;
                }
                let pending = std::mem::take(&mut g.pending);
                match self.breakers.flush(bk, st, &pending, cost).await {
                    Ok((snap, t)) => {
                        g.breaker = Some((snap, std::time::Instant::now()));
                        Ok(t)
                    }
                    Err(e) => {
                        g.pending.merge(pending);
                        Err(e)
                    }
                }
            }
        };
        match r {
            Ok(t) => transitions.extend(t),
            Err(e) => tracing::warn!(provider = %provider, tenant_id, error = %e, "could not record a breaker outcome"),
        }
    }
}
