//! Which accounting provider: the one enum every layer names (errors, the HTTP client, stores,
//! flows). The providers' clients live in `providers/`.

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
