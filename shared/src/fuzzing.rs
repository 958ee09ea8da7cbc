//! Entry points for the cargo-fuzz targets in `fuzz/` into parsers that are private to the crate
//! (token responses, token-endpoint and revocation answers). Compiled only with the `fuzzing`
//! feature, which nothing but `fuzz/` enables, so the functions' public surface does not grow.

use chrono::{DateTime, Utc};

use crate::providers::errors::ApiResponse;
use crate::providers::oauth::{self, TokenResponse};
use crate::providers::Provider;
use crate::tokens::TokenSet;
use crate::{Error, Result};

/// A token endpoint's body as `oauth2` would read it: a token response becomes our token set; an
/// error body is classified as `oauth2` would hand it to us.
pub fn token_response(provider: Provider, body: &[u8], previous: Option<&TokenSet>, now: DateTime<Utc>) -> Result<TokenSet> {
    match serde_json::from_slice::<TokenResponse>(body) {
        Ok(resp) => {
            let api_domain = resp.extra_fields().api_domain.clone();
            oauth::token_set(provider, &resp, previous, api_domain, None, now)
        }
        Err(_) => match serde_json::from_slice::<oauth2::basic::BasicErrorResponse>(body) {
            Ok(e) => Err(oauth::token_error(provider, oauth2::RequestTokenError::ServerResponse(e))),
            Err(e) => Err(Error::ProviderMalformed { provider, message: format!("token response does not parse: {e}") }),
        },
    }
}

/// Revocation / token-endpoint answers outside `oauth2`.
pub fn token_endpoint_answer(provider: Provider, resp: &ApiResponse) -> (Error, Result<()>) {
    (oauth::token_endpoint_error(provider, resp), oauth::revoke_outcome(provider, resp))
}

/// A state string with a valid signature over any payload, so the checks after the signature are
/// reached with hostile bytes.
pub fn signed_state(key: &crate::SecretString, payload: &[u8]) -> String {
    crate::connect::state::sign_payload(key, payload)
}
