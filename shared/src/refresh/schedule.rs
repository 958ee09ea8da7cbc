//! The scheduled run: every active grant whose access or refresh token expires within the window,
//! found through the sharded `due` index (never a scan), refreshed with bounded concurrency. The run
//! stops taking work before the Lambda deadline; what it did not reach is still due and is the next
//! run's (the schedule fires every few minutes and the window is longer than the interval).

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use super::TokenService;
use crate::store::grants::{Grant, DUE_SHARDS};
use crate::{Error, Provider, Result};

#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Refreshes in flight at once.
    pub concurrency: usize,
    /// No new refresh starts when less than this is left before the deadline (a refresh can take
    /// the provider timeout plus two writes).
    pub stop_before: Duration,
    /// At most this many grants are read from the index per run.
    pub max_grants: usize,
    /// The `due` shards this run covers (None: all). Several schedules, each with its own shards,
    /// spread a large fleet over parallel invocations.
    pub shards: Option<Vec<u32>>,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { concurrency: 32, stop_before: Duration::from_secs(25), max_grants: 20_000, shards: None }
    }
}

/// What one run did; returned by the function and logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// Grants the index returned as due.
    pub found: usize,
    pub refreshed: usize,
    /// Transient failures: the grant stays active and due, so the next run tries again.
    pub failed: usize,
    pub needs_reauth: usize,
    /// Another worker held the lease (an on-demand refresh): it is being refreshed anyway.
    pub busy: usize,
    /// Refreshed by someone else between the index read and our lease.
    pub already_fresh: usize,
    /// Not started because the deadline was near; still due, so the next run takes them.
    pub left_for_next_run: usize,
    /// Seconds past its due time of the most overdue grant found (0 when none was overdue).
    pub most_overdue_seconds: i64,
    /// Shards of the index not even read because the deadline was near (or `max_grants` reached):
    /// whatever they hold is still due and goes to the next run.
    pub shards_left_for_next_run: usize,
    /// The failures by error code, refreshes and shard reads (what to look at first).
    pub failures_by_code: std::collections::BTreeMap<u16, usize>,
}

/// What the shard reads of one run found.
#[derive(Default)]
struct Reading {
    room: usize,
    found: usize,
    most_overdue: i64,
    shards_left: usize,
    shard_errors: Vec<crate::Error>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Outcome {
    Refreshed,
    Failed(u16),
    NeedsReauth,
    Busy,
    AlreadyFresh,
    Left,
}

impl TokenService {
    /// One scheduled run over every provider. `deadline` is when the invocation must have answered.
    ///
    /// The index is read one shard at a time while earlier shards' grants are being refreshed (a
    /// stream, not one read of everything up front), so a large fleet starts refreshing at once and
    /// a run near its deadline stops reading too. Within a shard the most overdue go first.
    pub async fn run_scheduled(&self, window: chrono::Duration, deadline: Instant, limits: &RunLimits) -> Result<RunReport> {
        let now = self.now();
        let before = now + window;
        let shards: Vec<(Provider, u32)> = Provider::ALL
            .into_iter()
            .flat_map(|p| (0..DUE_SHARDS).map(move |s| (p, s)))
            .filter(|(_, s)| limits.shards.as_ref().is_none_or(|only| only.contains(s)))
            .collect();
        let total_shards = shards.len();
        let reading = std::sync::Mutex::new(Reading { room: limits.max_grants, ..Default::default() });
        let reading = &reading;
        let outcomes: Vec<Outcome> = futures::stream::iter(shards)
            .then(|(provider, shard)| async move {
                let room = lock(reading).room;
                if room == 0 || Instant::now() + limits.stop_before >= deadline {
                    lock(reading).shards_left += 1;
                    return Vec::new();
                }
                match self.grants.due_in_shard(provider, shard, before, room).await {
                    Ok(mut due) => {
                        due.sort_by_key(|g| g.due_at());
                        let mut r = lock(reading);
                        r.room = r.room.saturating_sub(due.len());
                        r.found += due.len();
                        if let Some(g) = due.first() {
                            r.most_overdue = r.most_overdue.max((now - g.due_at()).num_seconds().max(0));
                        }
                        due
                    }
                    Err(e) => {
                        tracing::error!(code = %e.code(), error = %e, provider = %provider, shard, "could not read a shard of the due index");
                        lock(reading).shard_errors.push(e);
                        Vec::new()
                    }
                }
            })
            .flat_map(futures::stream::iter)
            .map(|g| async move {
                if Instant::now() + limits.stop_before >= deadline {
                    return Outcome::Left;
                }
                // Boxed: keeps each in-flight refresh's state off the run's own future.
                Box::pin(self.refresh_due(g, window)).await
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        let read = std::mem::take(&mut *lock(reading));
        if !read.shard_errors.is_empty() && read.shard_errors.len() == total_shards {
            // Nothing could be read: an error, so the scheduler retries and its alarm sees it.
            return Err(read.shard_errors.into_iter().next().expect("not empty"));
        }
        let mut report = RunReport {
            found: read.found,
            most_overdue_seconds: read.most_overdue,
            shards_left_for_next_run: read.shards_left,
            ..Default::default()
        };
        for e in &read.shard_errors {
            *report.failures_by_code.entry(e.code().as_u16()).or_default() += 1;
        }
        for o in outcomes {
            match o {
                Outcome::Refreshed => report.refreshed += 1,
                Outcome::Failed(code) => {
                    report.failed += 1;
                    *report.failures_by_code.entry(code).or_default() += 1;
                }
                Outcome::NeedsReauth => report.needs_reauth += 1,
                Outcome::Busy => report.busy += 1,
                Outcome::AlreadyFresh => report.already_fresh += 1,
                Outcome::Left => report.left_for_next_run += 1,
            }
        }
        tracing::info!(
            found = report.found,
            refreshed = report.refreshed,
            failed = report.failed,
            needs_reauth = report.needs_reauth,
            busy = report.busy,
            left_for_next_run = report.left_for_next_run,
            shards_left_for_next_run = report.shards_left_for_next_run,
            most_overdue_seconds = report.most_overdue_seconds,
            "scheduled refresh run"
        );
        crate::telemetry::metric("RefreshRunLeftForNextRun", report.left_for_next_run as f64, "Count", &[]);
        crate::telemetry::metric("RefreshRunMostOverdueSeconds", report.most_overdue_seconds as f64, "Seconds", &[]);
        Ok(report)
    }

    async fn refresh_due(&self, seen: Grant, window: chrono::Duration) -> Outcome {
        let now = self.now();
        let taken = self.grants.acquire_lease(&seen.tenant_id, seen.provider, &seen.grant_id, &self.owner, self.settings.lease, now).await;
        let grant = match taken {
            Ok((_, g)) => g,
            Err(Error::Conflict(_)) => return Outcome::Busy,
            Err(e) => {
                tracing::warn!(code = %e.code(), error = %e, grant_id = %seen.grant_id, "could not take the lease");
                return Outcome::Failed(e.code().as_u16());
            }
        };
        if super::usable(&grant).is_err() || grant.due_at() > now + window {
            self.release(&grant).await;
            return Outcome::AlreadyFresh;
        }
        let tokens = match self.unseal(&grant).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(code = %e.code(), error = %e, tenant_id = %grant.tenant_id, grant_id = %grant.grant_id, "cannot unseal the grant's tokens");
                self.release(&grant).await;
                return Outcome::Failed(e.code().as_u16());
            }
        };
        match self.refresh_under_lease(grant, tokens).await {
            Ok(_) => Outcome::Refreshed,
            Err(Error::NeedsReauth { .. }) => Outcome::NeedsReauth,
            Err(e) => Outcome::Failed(e.code().as_u16()),
        }
    }
}
