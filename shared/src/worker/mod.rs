//! The sync worker's job runner: it takes every job kind off the sync queues (pull, push, webhook
//! re-read, report, passthrough) and so stands above the flows it dispatches to (`sync`, `reports`,
//! `refresh` for on-demand tokens, `webhooks` for the delivery's nonce).
//!
//! - [`calls`]: the single path of every provider call (scope, quota, guard, token, audit).
//! - [`job`]: one job: claim, pull/push/webhook, write, advance, complete.
//! - [`report`]: report and passthrough jobs.
//! - [`batch`]: one SQS batch: per-message isolation, waits, parking, dead letters.
//! - [`zoho_hooks`]: Zoho webhooks for the enabled entities' modules, registered by a pull's first job.

pub mod batch;
pub mod calls;
pub mod job;
pub mod report;
pub mod write;
pub mod zoho_hooks;

pub use batch::{handle_batch, Disposition, InMessage};
pub use job::{run_job, validate, CrashPoint, JobCtx, Outcome, SyncDeps, WorkerSettings};
