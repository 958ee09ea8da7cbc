//! The library behind the four Lambda functions. Handlers parse an event, call one function of this
//! crate and map the result; everything testable lives here.

pub mod audit;
pub mod aws;
pub mod books;
pub mod config;
pub mod connect;
pub mod context;
pub mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod grant_tokens;
pub mod http_client;
pub mod initial_sync;
pub mod jobs;
pub mod money;
pub mod provider;
pub mod providers;
pub mod records;
pub mod refresh;
pub mod reports;
pub mod resilience;
pub mod secret;
pub mod secrets;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tenancy;
pub mod tokens;
pub mod vault;
pub mod webhooks;
pub mod worker;
pub mod writes;

pub use config::Config;
pub use context::RequestContext;
pub use error::{Error, ErrorCode, Result};
pub use provider::Provider;
pub use secret::SecretString;
pub use tokens::TokenSet;
