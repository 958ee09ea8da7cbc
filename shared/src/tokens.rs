//! An OAuth token set as we keep it (sealed) for one grant.

use chrono::{DateTime, Utc};

use crate::secret::SecretString;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// Absent only where a provider returns none (never for the three we support after a code exchange).
    pub refresh_token: Option<SecretString>,
    pub access_expires_at: DateTime<Utc>,
    /// Where the provider says (QuickBooks `x_refresh_token_expires_in`) or we know (Xero: 60 days unused).
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// Hard cap on the refresh token's life (QuickBooks `x_refresh_token_hard_expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_hard_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Zoho's `api_domain`: every API call of the grant goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_domain: Option<String>,
    /// Zoho's accounts server (data centre) the grant was issued by; refreshes go there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_server: Option<String>,
}

impl TokenSet {
    pub fn access_expires_within(&self, now: DateTime<Utc>, window: chrono::Duration) -> bool {
        self.access_expires_at <= now + window
    }
}
