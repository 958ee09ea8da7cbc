//! The sync worker's library: jobs from the sync queues pull the providers' books into one
//! normalised model and push invoices and contacts to them, each job exactly once.
//!
//! - [`model`]: the normalised record and the per-provider normalisers (never panic on provider data).
//! - [`store`]: the sync table's access patterns (records, cursors, job records).
//! - [`calls`]: the single path of every provider call (scope, quota, guard, token, audit).
//! - [`worker`]: one job: claim, pull/push/webhook, write, advance, complete.
//! - [`batch`]: one SQS batch: per-message isolation, waits, parking, dead letters.
//! - [`parked`]: jobs waiting outside SQS for a reconnect or quota, released by the scheduler.
//! - [`initial`]: a new connection's first full copy, started once, announced once.
//! - [`schedule`]: scheduled incremental pulls from the sharded `sync_due` index.

pub mod batch;
pub mod calls;
pub mod initial;
pub mod model;
pub mod parked;
pub mod record_index;
pub mod schedule;
pub mod store;
pub mod worker;

pub use batch::{handle_batch, Disposition, InMessage};
pub use model::{Money, SyncRecord};
pub use store::SyncStore;
pub use worker::{run_job, Outcome, SyncDeps, WorkerSettings};
