//! Reports on demand and passthrough calls for the main app (issue 15).
//!
//! Both are sync jobs (`operation: report | passthrough`, schemas/sync-job.v1.json) run by the sync
//! worker (`crate::worker::report`): every provider call goes through `worker::calls::guarded_call` (quota, token with one
//! refresh on 401, audit, resilience guard), the result is stored under the tenant for
//! [`store::LIFETIME`], and an event (`report.ready`, `passthrough.ready`, or `report.failed` /
//! `passthrough.failed`) tells the app where to read it.

pub mod allow;
pub mod formats;
pub mod job;
pub mod model;
pub mod partial;
pub mod request;
pub mod store;

pub use job::{completion_event, event_type_for, failed_data, payload_key, validate};
pub use model::{Report, Row, Section, SectionClass};
pub use request::{Basis, PassthroughRequest, ReportKind, ReportRequest};
pub use store::{Location, ReportStore};
