//! The records API for the main app (docs/records-api.md): read-only access to a tenant's synced
//! records and connections, authenticated like the connect routes (`crate::connect::app_auth`).
//!
//! It reads what the sync flow writes, through indexes the record writer fills
//! (`crate::sync::record_index`), so it sits above the flows it reads (connect's request
//! signature, sync's records): see `infra/check_layers.py`.
//!
//! - [`query`]: routes, parameters and the one Query a page runs (pure; fuzzed).
//! - [`cursor`]: opaque page cursors, checked against the query and tenant that use them.
//! - [`reader`]: the sync table reads (Query per page, GetItem per record, raw JSON on request).
//! - [`api`]: one request: route, signature, tenant and role, then the read.

pub mod api;
pub mod cursor;
pub mod query;
pub mod reader;

pub use api::{handle, ApiRequest, RecordsApi};
pub use query::{ListParams, Route, MAX_LIMIT};
pub use reader::{Page, RecordView, RecordsReader};
