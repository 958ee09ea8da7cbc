//! Sync: jobs from the sync queues pull the providers' books into one normalised model and push
//! invoices and contacts to them, each job exactly once. The job runner that executes them (and
//! every other job kind) sits above the flows, in `crate::worker`; here is what it and the
//! scheduler stand on.
//!
//! - [`model`]: the normalised record and the per-provider normalisers (never panic on provider data).
//! - [`store`]: the sync table's access patterns (records, cursors, job records).
//! - [`parked`]: jobs waiting outside SQS for a reconnect or quota, released by the scheduler.
//! - a new connection's first full copy, started once, announced once, is `crate::initial_sync`
//!   (connect starts it, the scheduler restarts it, the worker marks it done).
//! - [`schedule`]: scheduled incremental pulls from the sharded `sync_due` index.
//! - [`reconcile`]: a full pass's end turns records the provider no longer lists into tombstones.

pub mod feed;
pub mod freshness;
pub mod lookup;
pub mod model;
pub mod parked;
pub mod reconcile;
pub mod record_index;
pub mod schedule;
pub mod store;

pub use model::{Money, SyncRecord};
pub use store::SyncStore;
