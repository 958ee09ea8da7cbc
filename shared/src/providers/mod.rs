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

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(rename = "quickbooks")]
    QuickBooks,
    Xero,
    Zoho,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::QuickBooks, Provider::Xero, Provider::Zoho];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::QuickBooks => "quickbooks",
            Provider::Xero => "xero",
            Provider::Zoho => "zoho",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "quickbooks" | "qbo" => Ok(Provider::QuickBooks),
            "xero" => Ok(Provider::Xero),
            "zoho" | "zohobooks" | "zoho-books" => Ok(Provider::Zoho),
            other => Err(crate::Error::InvalidInput(format!("unknown provider '{other}'"))),
        }
    }
}
