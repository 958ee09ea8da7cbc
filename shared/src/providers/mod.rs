//! The accounting providers we connect to, and one client per provider behind a common trait.

pub mod client;
mod core;
pub mod endpoints;
pub mod errors;
pub mod model;
pub mod oauth;
pub mod quickbooks;
pub mod raw;
pub mod xero;
pub mod zoho;
pub mod zoho_webhooks;

pub use client::{AccountingProvider, ProviderClient};
pub use endpoints::Endpoints;
pub use model::{AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Entity, Grant, Org, Page, RateLimitInfo, Record};
pub use oauth::{new_pkce, PkceCodeChallenge, PkceVerifier};
// The enum itself sits in the foundation (error.rs and http_client.rs name it).
pub use crate::provider::Provider;
