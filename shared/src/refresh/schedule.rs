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
    /// The failures by error code (what to look at first when `failed` is not 0).
    pub failures_by_code: std::collections::BTreeMap<u16, usize>,
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
    pub async fn run_scheduled(&self, window: chrono::Duration, deadline: Instant, limits: &RunLimits) -> Result<RunReport> {
        let now = self.now();
        let before = now + window;
        let mut due: Vec<Grant> = Vec::new();
        'read: for provider in Provider::ALL {
            for shard in (0..DUE_SHARDS).filter(|s| limits.shards.as_ref().is_none_or(|only| only.contains(s))) {
                let room = limits.max_grants.saturating_sub(due.len());
                if room == 0 {
                    break 'read;
                }
                due.extend(self.grants.due_in_shard(provider, shard, before, room).await?);
            }
        }
        // Most urgent first, so a run cut short by its deadline has done the ones that matter.
        due.sort_by_key(|g| g.due_at());
        let mut report = RunReport {
            found: due.len(),
            most_overdue_seconds: due.first().map(|g| (now - g.due_at()).num_seconds().max(0)).unwrap_or(0),
            ..Default::default()
        };
        let outcomes: Vec<Outcome> = futures::stream::iter(due)
            .map(|g| async move {
                if Instant::now() + limits.stop_before >= deadline {
                    return Outcome::Left;
                }
                self.refresh_due(g, window).await
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
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
