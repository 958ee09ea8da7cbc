//! A call's ticket from the worker's lane: the org breaker as cached, a reserved place from the
//! lane's batch (one write reserves the next batch, renews the slot, adds the held counts and reads
//! the breaker back), and Xero's app share. Probes and a second call in flight take the one-call
//! path (`single_ticket`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{us, Lane, ProviderGuard, SlotHold, Ticket};
use crate::providers::Provider;
use crate::resilience::limiter::{self, Cost, LimitKey};
use crate::resilience::{breaker, lane, slots, Admission, BreakerKey, BreakerState, Transition};
use crate::{Error, Result};

impl ProviderGuard {
    /// An org whose slots were all held by live workers: no slot can free (short of a holder's
    /// flush) before the earliest lease ends, so nothing is asked before then. The wait is slept
    /// within the budget (a caller looping on the error would spin), the rest handed back.
    async fn wait_for_slots(
        until: tokio::time::Instant,
        provider: Provider,
        org_id: &str,
        budget: Duration,
        waited: &mut Duration,
    ) -> Result<()> {
        let now = tokio::time::Instant::now();
        if until <= now {
            return Ok(());
        }
        let nap = (until - now).min(budget.saturating_sub(*waited));
        *waited += nap;
        tokio::time::sleep(nap).await;
        let now = tokio::time::Instant::now();
        if until > now {
            return Err(Error::RateLimited { scope: format!("{}:{}:concurrency", provider.as_str(), org_id), retry_after: until - now });
        }
        Ok(())
    }

    /// [`ProviderGuard::wait_for_slots`] for an org this worker found full, before anything else is
    /// asked (the provider breaker included).
    pub(super) async fn wait_if_full(&self, tenant_id: &str, provider: Provider, org_id: &str, waited: &mut Duration) -> Result<()> {
        let lane = self.lane(tenant_id, provider, org_id);
        let until = lane.lock().await.full_until;
        match until {
            Some(until) => Self::wait_for_slots(until, provider, org_id, self.limits.retry.budget, waited).await,
            None => Ok(()),
        }
    }

    /// Drops the lane's reserved places (their daily counts back): the breaker or the provider
    /// said stop.
    pub(super) async fn drop_places(&self, tenant_id: &str, provider: Provider, org_id: &str, cost: &mut Cost) {
        let lane = self.lane(tenant_id, provider, org_id);
        let mut g = lane.lock().await;
        self.drop_lane_places(&mut g, cost).await;
    }

    pub(super) async fn drop_lane_places(&self, g: &mut Lane, cost: &mut Cost) {
        let unused = g.places.len() as u32;
        if unused == 0 {
            return;
        }
        g.places.clear();
        if g.key.params.day.is_some() {
            cost.dynamo_calls += 1;
            self.limiter.refund_days(&g.key, g.batch_at, unused).await.ok();
        }
    }

    /// How many places the next batch asks for: one for a worker that does not come back within
    /// half an interval (it could not keep consecutive places); otherwise as many as fit in the
    /// horizon behind the queue it found last time, within the breaker cache's life and
    /// `max_batch`.
    fn batch_size(&self, g: &Lane) -> u32 {
        let p = &g.key.params;
        let i = p.interval_us.max(1);
        match g.cycle {
            Some(c) if (c.as_micros() as i64) * 2 <= i => {}
            _ => return 1,
        }
        let room = (p.horizon_us - g.queue_us.max(0)) / i;
        let ttl = self.limits.org_breaker.cache_ttl().as_micros() as i64 / i;
        room.min(ttl).min(self.limits.max_batch as i64).max(1) as u32
    }

    /// A place, a slot and the org breaker's admission for one call (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn org_ticket(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        org_bk: &BreakerKey,
        waited: &mut Duration,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) -> Result<Ticket> {
        let l = &*self.limits;
        let st = &l.org_breaker;
        let max = l.concurrency(provider);
        let budget = l.retry.budget;
        let late = l.safety / 2;
        let lane = self.lane(tenant_id, provider, org_id);
        let mut g = lane.lock().await;
        // A transition `flush` performs is reported to the tenant the lane last called for.
        g.breaker_key = org_bk.clone();
        let key = g.key.clone();
        let p = key.params;
        if let Some(last) = g.last_go.take() {
            let c = last.elapsed();
            g.cycle = Some(match g.cycle {
                Some(prev) => (prev * 3 + c) / 4,
                None => c,
            });
        }
        // What the next write should be, learnt from the item a refused write sent back.
        #[derive(Clone, Copy)]
        enum Next {
            Guess,
            Busy,
            Idle,
            Exact(limiter::RateState),
        }
        let mut next = Next::Guess;
        let mut next_slot: Option<lane::SlotPlan> = None;
        let mut renew_share = false;
        let mut k_cap = u32::MAX;
        for _ in 0..12 {
            if let Some(until) = g.full_until {
                Self::wait_for_slots(until, provider, org_id, budget, waited).await?;
                g.full_until = None;
            }
            // The org breaker, as cached.
            let cached = g.breaker.as_ref().filter(|(_, at)| at.elapsed() < st.cache_ttl()).map(|(s, _)| s.clone());
            match cached {
                Some(snap) if snap.state != BreakerState::Closed => {
                    self.drop_lane_places(&mut g, cost).await;
                    let now = limiter::now_us();
                    if snap.state == BreakerState::Open && now < snap.open_until_us {
                        return Err(Error::CircuitOpen { scope: org_bk.scope(), retry_after: us(snap.open_until_us - now) });
                    }
                    // Half-open rounds are never cached: the probes are handed out in DynamoDB.
                    g.breaker = None;
                    drop(g);
                    return self.single_ticket(tenant_id, provider, org_id, op, keys, Some(org_bk), waited, transitions, cost).await;
                }
                None if !g.places.is_empty() => {
                    // Places in hand but a stale breaker: read it (adding our counts) first.
                    let pending = std::mem::take(&mut g.pending);
                    self.stats.breaker_reads.fetch_add(1, Ordering::Relaxed);
                    match self.breakers.flush(org_bk, st, &pending, cost).await {
                        Ok((snap, t)) => {
                            transitions.extend(t);
                            g.breaker = Some((snap, std::time::Instant::now()));
                        }
                        Err(e) => {
                            g.pending.merge(pending);
                            return Err(e);
                        }
                    }
                    continue;
                }
                _ => {}
            }
            // Places the worker came back too late for are dropped, never used late.
            let mut missed = 0u32;
            while let Some(&(at, _)) = g.places.front() {
                if at + late < tokio::time::Instant::now() {
                    g.places.pop_front();
                    missed += 1;
                } else {
                    break;
                }
            }
            if missed > 0 {
                self.stats.missed.fetch_add(missed as u64, Ordering::Relaxed);
                if p.day.is_some() {
                    cost.dynamo_calls += 1;
                    self.limiter.refund_days(&key, g.batch_at, missed).await.ok();
                }
            }
            // A second call of this worker in flight on the org: a slot of its own.
            if max > 0 && g.slot_busy {
                drop(g);
                return self.single_ticket(tenant_id, provider, org_id, op, keys, None, waited, transitions, cost).await;
            }
            if let Some((at, _)) = g.places.pop_front() {
                g.slot_busy = max > 0;
                g.last_go = Some(at.max(tokio::time::Instant::now()));
                let slot = if max > 0 { SlotHold::Lane(lane.clone()) } else { SlotHold::None };
                return Ok(Ticket { go_at: at, org: Admission::Go, slot });
            }
            // One write: a batch of places, the slot, our counts, the breaker read back.
            let mut set_share = None;
            if provider == Provider::Xero {
                // Renewed only when the org item's share end falls short of the write's need (its
                // condition), so one worker of the org renews, not each that notices the end near.
                if renew_share {
                    let until = self.ensure_share(org_id, transitions, cost).await?;
                    g.share_until = until;
                    set_share = Some(until);
                    renew_share = false;
                }
            }
            let k = self.batch_size(&g).min(k_cap).max(1);
            let now = limiter::now_us();
            let now_i = tokio::time::Instant::now();
            // A lane's first write guesses busy: under contention other workers keep the key busy.
            let busy = g.tail_end > now || g.tail_end == 0;
            let (rate, exact_places) = match next {
                Next::Exact(old) => match limiter::decide_batch(old, now, &p, k) {
                    Ok((places, new)) => (lane::RatePlan::Exact { old, new }, Some(places)),
                    Err(_) => (lane::RatePlan::Busy { k }, None),
                },
                Next::Busy => (lane::RatePlan::Busy { k }, None),
                Next::Idle => (lane::RatePlan::Idle { k }, None),
                Next::Guess if busy => (lane::RatePlan::Busy { k }, None),
                Next::Guess => (lane::RatePlan::Idle { k }, None),
            };
            let slot_plan = if max == 0 {
                lane::SlotPlan::None
            } else {
                next_slot.take().unwrap_or(if g.holders_missing { lane::SlotPlan::Init } else { lane::SlotPlan::Renew })
            };
            let last_place_bound = now + p.horizon_us + p.tolerance_us + (k as i64) * p.interval_us;
            let slot_until = last_place_bound + l.slot_lease.as_micros() as i64;
            let pending = std::mem::take(&mut g.pending);
            let holder = g.holder.clone();
            let w = lane::OrgWrite {
                key: &key,
                breaker: st,
                rate,
                slot: slot_plan,
                holder: &holder,
                slot_until,
                max_slots: max,
                pending: &pending,
                set_share_until: set_share,
                // A quarter lease to spare, so the share is renewed while it still holds.
                need_share_until: (provider == Provider::Xero && set_share.is_none())
                    .then_some(last_place_bound + (l.share_lease() / 4).as_micros() as i64),
                now,
            };
            cost.dynamo_calls += 1;
            self.stats.limiter_calls.fetch_add(1, Ordering::Relaxed);
            let written = match lane::org_write(&self.db, &self.table, &w).await {
                Ok(x) => x,
                Err(e) => {
                    g.pending.merge(pending);
                    return Err(e);
                }
            };
            match written {
                lane::Written::Done(item) => {
                    let snap = breaker::snapshot(Some(&item), now, st);
                    if pending.failures() > 0 {
                        transitions.extend(self.breakers.trip(org_bk, st, &snap, now, cost).await?);
                    }
                    g.breaker = Some((snap, std::time::Instant::now()));
                    let new = limiter::from_item(&item);
                    let places: Vec<i64> = match (rate, exact_places) {
                        (lane::RatePlan::Busy { k }, _) => {
                            let old = new.tat_us - k as i64 * p.interval_us;
                            (0..k as i64).map(|j| now.max(old + j * p.interval_us - p.tolerance_us)).collect()
                        }
                        (lane::RatePlan::Idle { k }, _) => {
                            (0..k as i64).map(|j| now.max(now + j * p.interval_us - p.tolerance_us)).collect()
                        }
                        (lane::RatePlan::Exact { .. }, Some(pl)) => pl,
                        (lane::RatePlan::Exact { .. }, None) => vec![now],
                    };
                    g.queue_us = places.first().map(|f| f - now).unwrap_or(0);
                    g.tail_end = new.tat_us;
                    g.batch_at = now;
                    if max > 0 {
                        g.slot_until = Some(slot_until);
                        g.holders_missing = false;
                    }
                    if let Some(su) = crate::store::get_n_opt(&item, "app_share_until") {
                        g.share_until = su;
                    }
                    for pl in places {
                        g.places.push_back((now_i + us(pl - now), pl));
                    }
                    next = Next::Guess;
                }
                lane::Written::Refused(item) => {
                    g.pending.merge(pending);
                    let item = match item {
                        Some(i) => Some(i),
                        None => {
                            cost.dynamo_calls += 1;
                            crate::store::get_item(&self.db, &self.table, key.pk.clone(), key.sk.clone()).await?
                        }
                    };
                    let now = limiter::now_us();
                    let snap = breaker::snapshot(item.as_ref(), now, st);
                    if snap.state != BreakerState::Closed {
                        g.breaker = Some((snap, std::time::Instant::now()));
                        continue;
                    }
                    if provider == Provider::Xero {
                        let su = item.as_ref().and_then(|i| crate::store::get_n_opt(i, "app_share_until")).unwrap_or(0);
                        g.share_until = g.share_until.max(su);
                        if set_share.is_none() && su < last_place_bound + (l.share_lease() / 4).as_micros() as i64 {
                            renew_share = true;
                        }
                    }
                    if max > 0 {
                        match slots::holders_of(item.as_ref()) {
                            None => next_slot = Some(lane::SlotPlan::Init),
                            Some(h) if h.contains_key(&g.holder) || (h.len() as u32) < max => next_slot = Some(lane::SlotPlan::Renew),
                            Some(h) => {
                                g.slot_until = None;
                                if let Some((victim, value)) = h.iter().filter(|(_, v)| **v <= now).min_by_key(|(_, v)| **v) {
                                    tracing::info!(provider = %provider, tenant_id, org_id, "reclaiming an expired concurrency slot");
                                    next_slot = Some(lane::SlotPlan::Reclaim { victim: victim.clone(), value: *value });
                                } else {
                                    let earliest = h.values().min().copied().unwrap_or(now);
                                    let wait = us(earliest - now).max(Duration::from_millis(1));
                                    if *waited + wait <= budget {
                                        *waited += wait;
                                        tokio::time::sleep(wait).await;
                                        next_slot = Some(lane::SlotPlan::Reclaim {
                                            victim: h.iter().min_by_key(|(_, v)| **v).map(|(k, _)| k.clone()).unwrap_or_default(),
                                            value: earliest,
                                        });
                                        continue;
                                    }
                                    // Held by live workers beyond our budget: hand the wait back,
                                    // and do not ask again before it (a busy org's slots are
                                    // renewed by their holders, so asking sooner only costs).
                                    g.full_until = Some(tokio::time::Instant::now() + wait);
                                    return Err(Error::RateLimited {
                                        scope: format!("{}:{}:concurrency", provider.as_str(), org_id),
                                        retry_after: wait.max(Duration::from_millis(1)),
                                    });
                                }
                            }
                        }
                    }
                    let state = item.as_ref().map(limiter::from_item).unwrap_or_default();
                    match limiter::decide_batch(state, now, &p, k) {
                        Err(limiter::Step::Wait { until_us, day }) => {
                            let after = us(until_us - now).max(Duration::from_millis(1));
                            if day || *waited + after > budget {
                                tracing::info!(provider = %provider, tenant_id, org_id, op, scope = %key.scope, day, wait_ms = after.as_millis() as u64, "rate limit: handing the wait to the caller");
                                return Err(limiter::wait_error(&key.scope, after, day));
                            }
                            *waited += after;
                            tokio::time::sleep(after).await;
                            next = Next::Guess;
                        }
                        Err(limiter::Step::Reserve { .. }) => next = Next::Guess,
                        Ok((places, new)) => {
                            k_cap = places.len() as u32;
                            next = if !state.exists || new.day_start_us != state.day_start_us {
                                Next::Exact(state)
                            } else if state.tat_us <= now {
                                Next::Idle
                            } else {
                                Next::Busy
                            };
                        }
                    }
                }
            }
        }
        // Every worker is racing for the same item: back off briefly.
        Err(Error::RateLimited { scope: key.scope.clone(), retry_after: us(p.interval_us).max(Duration::from_millis(50)) })
    }

    /// The one-call path: a probe of a half-open org breaker (`probe_of`), or a second call of
    /// this worker in flight on an org: its own place and slot, given back after the call.
    #[allow(clippy::too_many_arguments)]
    async fn single_ticket(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        op: &str,
        keys: &[LimitKey],
        probe_of: Option<&BreakerKey>,
        waited: &mut Duration,
        transitions: &mut Vec<Transition>,
        cost: &mut Cost,
    ) -> Result<Ticket> {
        let org = match probe_of {
            Some(bk) => {
                let (adm, t) = self.breakers.admit(bk, &self.limits.org_breaker, cost).await?;
                transitions.extend(t);
                if let Admission::Refused { retry_after } = adm {
                    return Err(Error::CircuitOpen { scope: bk.scope(), retry_after });
                }
                adm
            }
            None => Admission::Go,
        };
        if provider == Provider::Xero {
            if let Err(e) = self.ensure_share(org_id, transitions, cost).await {
                if let Some(bk) = probe_of {
                    self.breakers.release_probe(bk, &org).await.ok();
                }
                return Err(e);
            }
        }
        match self.reserve(tenant_id, provider, org_id, op, keys, waited, cost).await {
            Ok(lease) => Ok(Ticket { go_at: tokio::time::Instant::now(), org, slot: lease.map(SlotHold::Lease).unwrap_or(SlotHold::None) }),
            Err(e) => {
                if let Some(bk) = probe_of {
                    self.breakers.release_probe(bk, &org).await.ok();
                }
                Err(e)
            }
        }
    }

    /// Takes or renews this org's share of Xero's app-wide limit (see `lane`); returns its end.
    async fn ensure_share(&self, org_id: &str, transitions: &mut Vec<Transition>, cost: &mut Cost) -> Result<i64> {
        let l = &*self.limits;
        let st = &l.provider_breaker;
        let bk = BreakerKey::provider(Provider::Xero);
        // The org's share, whichever tenant calls: the org's own limit is one budget for all of them.
        let share = org_id.to_string();
        let max = l.xero_app_shares();
        let gap = (l.minute + l.safety).as_micros() as i64;
        let app = self.app_lane(Provider::Xero);
        let mut a = app.lock().await;
        let mut plan = lane::SlotPlan::Renew;
        for _ in 0..4 {
            let now = limiter::now_us();
            let until = now + l.share_lease().as_micros() as i64;
            let pending = std::mem::take(&mut a.pending);
            cost.dynamo_calls += 1;
            self.stats.share_writes.fetch_add(1, Ordering::Relaxed);
            let r = lane::share_write(&self.db, &self.table, Provider::Xero, &share, until, max, &plan, &pending, st, now).await;
            match r {
                Err(e) => {
                    a.pending.merge(pending);
                    return Err(e);
                }
                Ok(lane::ShareWritten::Held(item)) => {
                    let snap = breaker::snapshot(Some(&item), now, st);
                    if pending.failures() > 0 {
                        transitions.extend(self.breakers.trip(&bk, st, &snap, now, cost).await?);
                    }
                    a.breaker = Some((snap, std::time::Instant::now()));
                    return Ok(until);
                }
                Ok(lane::ShareWritten::Refused(item)) => {
                    a.pending.merge(pending);
                    let item = match item {
                        Some(i) => Some(i),
                        None => {
                            let (pk, sk) = lane::app_item_key(Provider::Xero);
                            cost.dynamo_calls += 1;
                            crate::store::get_item(&self.db, &self.table, pk, sk).await?
                        }
                    };
                    plan = match lane::shares_of(item.as_ref()) {
                        None => lane::SlotPlan::Init,
                        Some(m) if m.contains_key(&share) || (m.len() as u32) < max => lane::SlotPlan::Renew,
                        Some(m) => {
                            // A share that ran out is free one window later, never sooner.
                            match m.iter().filter(|(_, v)| **v + gap <= now).min_by_key(|(_, v)| **v) {
                                Some((victim, value)) => lane::SlotPlan::Reclaim { victim: victim.clone(), value: *value },
                                None => {
                                    let next = m.values().min().copied().unwrap_or(now) + gap;
                                    return Err(Error::RateLimited {
                                        scope: "xero:app".into(),
                                        retry_after: us(next - now).max(Duration::from_millis(1)),
                                    });
                                }
                            }
                        }
                    };
                }
            }
        }
        Err(Error::RateLimited { scope: "xero:app".into(), retry_after: Duration::from_millis(100) })
    }
}
