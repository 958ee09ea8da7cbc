//! OAuth mechanics shared by the three clients, on top of the `oauth2` crate.
//!
//! `oauth2` builds the requests (client authentication, PKCE, form bodies) and parses standard token
//! and error bodies. What it cannot know about our providers is handled in the HTTP adapter it calls:
//! a 429 or 5xx from a token endpoint becomes our retryable error before `oauth2` tries to read it
//! as an OAuth error body, and Zoho's `200 {"error": "invalid_code"}` is turned into the 400 it means.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _, TokenUrl,
};
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::http_client::HttpClient;
use crate::providers::errors::{parse_retry_after, ApiResponse};
use crate::providers::model::{AuthorizeRequest, ClientCredentials};
use crate::providers::Provider;
use crate::secret::SecretString;
use crate::tokens::TokenSet;

pub use oauth2::{PkceCodeChallenge, PkceCodeVerifier as PkceVerifier};

/// Fields beyond RFC 6749 that our providers put in token responses.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExtraFields {
    /// QuickBooks: seconds the refresh token stays valid (rolling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_refresh_token_expires_in: Option<u64>,
    /// QuickBooks: seconds until the refresh token's hard 5-year cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_refresh_token_hard_expires_in: Option<u64>,
    /// Zoho: where every API call of the grant goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_domain: Option<String>,
}

impl ExtraTokenFields for ExtraFields {}

pub type TokenResponse = StandardTokenResponse<ExtraFields, BasicTokenType>;

pub type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Xero: a refresh token expires when unused for 60 days.
const XERO_REFRESH_IDLE: Duration = Duration::from_secs(60 * 24 * 3600);

pub fn new_pkce() -> (PkceCodeChallenge, PkceCodeVerifier) {
    PkceCodeChallenge::new_random_sha256()
}

pub(crate) fn build_client(creds: &ClientCredentials, authorize: &Url, token: &Url, auth_type: AuthType) -> OAuthClient {
    oauth2::Client::new(ClientId::new(creds.client_id.clone()))
        .set_client_secret(ClientSecret::new(creds.client_secret.expose().to_string()))
        .set_auth_uri(AuthUrl::from_url(authorize.clone()))
        .set_token_uri(TokenUrl::from_url(token.clone()))
        .set_auth_type(auth_type)
}

/// The provider's consent URL for `req`. `scope_separator` is " " per RFC 6749, "," for Zoho.
pub(crate) fn authorize_url(
    client: &OAuthClient,
    req: &AuthorizeRequest<'_>,
    default_scopes: &[&str],
    scope_separator: &str,
    pkce: bool,
    fixed_extra: &[(&str, &str)],
) -> Url {
    let scopes: Vec<String> =
        if req.scopes.is_empty() { default_scopes.iter().map(|s| s.to_string()).collect() } else { req.scopes.to_vec() };
    let state = req.state.to_string();
    let mut builder =
        client.authorize_url(move || CsrfToken::new(state)).set_redirect_uri(Cow::Owned(RedirectUrl::from_url(req.redirect_uri.clone())));
    if !scopes.is_empty() {
        builder = builder.add_scope(Scope::new(scopes.join(scope_separator)));
    }
    if let (true, Some(challenge)) = (pkce, req.pkce_challenge) {
        builder = builder.set_pkce_challenge(challenge.clone());
    }
    for (k, v) in fixed_extra {
        builder = builder.add_extra_param(*k, *v);
    }
    for (k, v) in req.extra {
        builder = builder.add_extra_param(k.as_str(), v.as_str());
    }
    builder.url().0
}

/// The HTTP function `oauth2` calls. Transport problems, throttling and server errors become our
/// errors here, so `oauth2` only ever sees answers that are meant to be OAuth bodies.
pub(crate) async fn send_token_request(
    http: &HttpClient,
    provider: Provider,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse> {
    let mut request: reqwest::Request =
        request.try_into().map_err(|e: reqwest::Error| Error::Internal(format!("{provider} token request: {}", e.without_url())))?;
    request.headers_mut().insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
    if provider == Provider::QuickBooks {
        // Asks Intuit to include x_refresh_token_hard_expires_in (the 5-year cap).
        request.headers_mut().insert("x-include-refresh-token-hard-expires-in", http::HeaderValue::from_static("true"));
    }
    let response = http.reqwest().execute(request).await.map_err(|e| http.transport_error(provider, e))?;
    let mut status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| http.transport_error(provider, e))?;

    if status.as_u16() == 429 {
        let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, Utc::now()));
        return Err(Error::ProviderRateLimited { provider, problem: "token endpoint".into(), retry_after });
    }
    if status.is_server_error() {
        return Err(Error::ProviderTransient { provider, status: Some(status.as_u16()), message: "token endpoint server error".into() });
    }
    if status.is_success() {
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let has_error = parsed.as_ref().map(|v| v.get("error").is_some() && v.get("access_token").is_none()).unwrap_or(false);
        if has_error {
            // Zoho reports a failed grant as 200 with an error body.
            status = http::StatusCode::BAD_REQUEST;
        }
    }
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers.iter() {
        builder = builder.header(name, value);
    }
    builder.body(body.to_vec()).map_err(|e| Error::Internal(format!("{provider} token response: {e}")))
}

/// The HTTP client handed to `oauth2`: a named type (not a closure) so the returned future is `Send`
/// for any borrow `oauth2` picks.
pub(crate) struct TokenHttp<'a> {
    http: &'a HttpClient,
    provider: Provider,
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send_token_request(self.http, self.provider, request))
    }
}

/// Maps what `oauth2` returns for a failed token request.
pub(crate) fn token_error(provider: Provider, e: RequestTokenError<Error, BasicErrorResponse>) -> Error {
    match e {
        RequestTokenError::Request(e) => e,
        RequestTokenError::ServerResponse(body) => {
            let name = body.error().as_ref().to_string();
            let reason = match body.error_description() {
                Some(d) if !d.is_empty() => format!("{name}: {}", d.chars().take(200).collect::<String>()),
                _ => name.clone(),
            };
            match body.error() {
                BasicErrorResponseType::InvalidGrant => Error::InvalidGrant { provider, reason },
                BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                    Error::ProviderAuth { provider, reason }
                }
                // Zoho's names for a bad or used grant/refresh token.
                BasicErrorResponseType::Extension(ext) if matches!(ext.as_str(), "invalid_code" | "invalid_token") => {
                    Error::InvalidGrant { provider, reason }
                }
                // Zoho's token-issue limit (10 access tokens per refresh token per 10 minutes)
                // answers HTTP 200 with `"error": "Access Denied"` and a "too many requests"
                // description: the grant is fine, we asked too often. (Zoho Accounts token-validity
                // docs; the exact body wording is unconfirmed, hence the loose match.)
                BasicErrorResponseType::Extension(ext) if provider == Provider::Zoho && is_zoho_throttle(ext, body.error_description()) => {
                    Error::ProviderRateLimited {
                        provider,
                        problem: "token issue limit".into(),
                        retry_after: Some(ZOHO_TOKEN_THROTTLE_WAIT),
                    }
                }
                // Zoho names a wrong client secret separately (Zoho's OAuth troubleshooting, Kaizen #4).
                BasicErrorResponseType::Extension(ext) if provider == Provider::Zoho && ext == "invalid_client_secret" => {
                    Error::ProviderAuth { provider, reason }
                }
                // Our request was wrong (redirect URI, scope, grant type): no retry helps, and the
                // grant is not to blame.
                BasicErrorResponseType::InvalidRequest
                | BasicErrorResponseType::InvalidScope
                | BasicErrorResponseType::UnsupportedGrantType => {
                    Error::ProviderPermanent { provider, status: None, message: format!("token endpoint: {reason}") }
                }
                BasicErrorResponseType::Extension(ext)
                    if provider == Provider::Zoho && matches!(ext.as_str(), "invalid_redirect_uri" | "invalid_oauthscope") =>
                {
                    Error::ProviderPermanent { provider, status: None, message: format!("token endpoint: {reason}") }
                }
                // Anything else Zoho says in its HTTP 200 error body is not a verdict on the grant or
                // our credentials (Zoho documents no other terminal token error): try again later.
                _ if provider == Provider::Zoho => {
                    Error::ProviderTransient { provider, status: None, message: format!("token endpoint: {reason}") }
                }
                _ => Error::ProviderPermanent { provider, status: None, message: format!("token endpoint: {reason}") },
            }
        }
        // The body may hold tokens even when it does not parse, so it is never quoted.
        RequestTokenError::Parse(e, _body) => {
            Error::ProviderMalformed { provider, message: format!("token response does not parse at '{}'", e.path()) }
        }
        RequestTokenError::Other(message) => Error::ProviderMalformed { provider, message: format!("token endpoint: {message}") },
    }
}

/// How long to leave a Zoho grant alone after its token-issue limit answered: a tenth of the
/// 10-minute window, so the retry lands once the oldest issue has aged out at worst after ten tries.
pub const ZOHO_TOKEN_THROTTLE_WAIT: Duration = Duration::from_secs(60);

fn is_zoho_throttle(error: &str, description: Option<&String>) -> bool {
    let e = error.to_ascii_lowercase();
    let d = description.map(|d| d.to_ascii_lowercase()).unwrap_or_default();
    e == "access denied" || e.contains("too many") || d.contains("too many requests")
}

/// Same families for token endpoints we call without `oauth2` (revocation).
pub(crate) fn token_endpoint_error(provider: Provider, resp: &ApiResponse) -> Error {
    let body = resp.json();
    let code = body.as_ref().and_then(|b| b.get("error")).and_then(Value::as_str).unwrap_or("").to_string();
    match (resp.status, code.as_str()) {
        (429, _) => Error::ProviderRateLimited {
            provider,
            problem: "token endpoint".into(),
            retry_after: resp.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, Utc::now())),
        },
        (s, _) if s >= 500 => Error::ProviderTransient { provider, status: Some(s), message: "token endpoint server error".into() },
        (_, "invalid_grant" | "invalid_code" | "invalid_token") => Error::InvalidGrant { provider, reason: code },
        (_, "invalid_client" | "unauthorized_client") | (401, _) => {
            Error::ProviderAuth { provider, reason: format!("HTTP {}: {code}", resp.status) }
        }
        (s, _) => Error::ProviderPermanent { provider, status: Some(s), message: format!("token endpoint: {code}") },
    }
}

pub(crate) async fn exchange_code(
    http: &HttpClient,
    provider: Provider,
    client: &OAuthClient,
    code: &str,
    redirect_uri: &Url,
    pkce_verifier: Option<&str>,
) -> Result<TokenResponse> {
    let mut req = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(redirect_uri.clone())));
    if let Some(v) = pkce_verifier {
        req = req.set_pkce_verifier(PkceVerifier::new(v.to_string()));
    }
    req.request_async(&TokenHttp { http, provider }).await.map_err(|e| token_error(provider, e))
}

pub(crate) async fn refresh(
    http: &HttpClient,
    provider: Provider,
    client: &OAuthClient,
    refresh_token: &SecretString,
) -> Result<TokenResponse> {
    let rt = RefreshToken::new(refresh_token.expose().to_string());
    client.exchange_refresh_token(&rt).request_async(&TokenHttp { http, provider }).await.map_err(|e| token_error(provider, e))
}

/// The longest token lifetime we record (100 years); longer answers are read as this.
const MAX_LIFETIME_SECS: u64 = 100 * 365 * 24 * 3600;

/// Our token set from a token response. `previous` supplies what a refresh response leaves out
/// (Zoho's refresh token, which does not rotate; scopes; QuickBooks' hard expiry if not repeated).
pub(crate) fn token_set(
    provider: Provider,
    resp: &TokenResponse,
    previous: Option<&TokenSet>,
    api_domain: Option<String>,
    accounts_server: Option<String>,
    now: DateTime<Utc>,
) -> Result<TokenSet> {
    let access = resp.access_token().secret();
    if access.is_empty() {
        return Err(Error::ProviderMalformed { provider, message: "token response has an empty access_token".into() });
    }
    let default_ttl = match provider {
        Provider::Xero => 1800,
        _ => 3600,
    };
    let ttl = resp.expires_in().unwrap_or(Duration::from_secs(default_ttl));
    // Lifetimes are provider numbers: capped at 100 years (QuickBooks' 5-year hard cap is the longest
    // real one), because chrono panics on a date past year 262143 (about 8e12 s from now).
    let secs = |d: Duration| chrono::Duration::seconds(d.as_secs().min(MAX_LIFETIME_SECS) as i64);
    let refresh_token = resp
        .refresh_token()
        .map(|r| SecretString::new(r.secret().clone()))
        .filter(|r| !r.is_empty())
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let extra = resp.extra_fields();
    let refresh_expires_at = match provider {
        Provider::QuickBooks => extra
            .x_refresh_token_expires_in
            .map(|s| now + secs(Duration::from_secs(s)))
            .or_else(|| previous.and_then(|p| p.refresh_expires_at)),
        Provider::Xero => Some(now + secs(XERO_REFRESH_IDLE)),
        Provider::Zoho => None,
    };
    let refresh_hard_expires_at = extra
        .x_refresh_token_hard_expires_in
        .map(|s| now + secs(Duration::from_secs(s)))
        .or_else(|| previous.and_then(|p| p.refresh_hard_expires_at));
    let scopes = match resp.scopes() {
        Some(s) if !s.is_empty() => s.iter().flat_map(|s| s.split([' ', ','])).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        _ => previous.map(|p| p.scopes.clone()).unwrap_or_default(),
    };
    Ok(TokenSet {
        access_token: SecretString::new(access.clone()),
        refresh_token,
        access_expires_at: now + secs(ttl),
        refresh_expires_at,
        refresh_hard_expires_at,
        scopes,
        api_domain: api_domain.or_else(|| previous.and_then(|p| p.api_domain.clone())),
        accounts_server: accounts_server.or_else(|| previous.and_then(|p| p.accounts_server.clone())),
    })
}

/// A claim of a JWT's payload, read without verifying the signature: we use it only to ask the
/// issuer's own API which tenants this consent added, never to decide what the bearer may do.
pub fn jwt_claim(token: &str, claim: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    match v.get(claim)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A revocation succeeded, or the token was already unusable (nothing left to revoke).
pub(crate) fn revoke_outcome(provider: Provider, resp: &ApiResponse) -> Result<()> {
    let body_error = resp.json().and_then(|b| b.get("error").and_then(Value::as_str).map(str::to_string));
    if (200..300).contains(&resp.status) && body_error.is_none() {
        return Ok(());
    }
    match token_endpoint_error(provider, resp) {
        Error::InvalidGrant { .. } => Ok(()),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use base64::Engine as _;

    fn creds() -> ClientCredentials {
        ClientCredentials { client_id: "cid".into(), client_secret: SecretString::new("csecret") }
    }

    fn parse(body: &str) -> TokenResponse {
        serde_json::from_str(body).unwrap()
    }

    /// A token endpoint's absurd lifetimes must not panic: chrono's `DateTime + TimeDelta` panics
    /// past year 262143, which `expires_in` of about 8e12 seconds or more reached.
    #[test]
    fn absurd_lifetimes_in_a_token_response_are_capped_not_a_panic() {
        let now = chrono::Utc::now();
        for n in ["9000000000000", "4611686018427387", "18446744073709551615"] {
            let r = parse(&format!(
                r#"{{"access_token":"a","token_type":"bearer","expires_in":{n},"refresh_token":"r",
                    "x_refresh_token_expires_in":{n},"x_refresh_token_hard_expires_in":{n}}}"#
            ));
            for p in Provider::ALL {
                let t = token_set(p, &r, None, None, None, now).unwrap();
                assert!(t.access_expires_at > now + chrono::Duration::days(365 * 50), "{p} {n}");
            }
        }
    }

    #[test]
    fn authorize_url_carries_state_scopes_pkce_and_extras() {
        let c = build_client(
            &creds(),
            &Url::parse("https://login.example/authorize").unwrap(),
            &Url::parse("https://login.example/token").unwrap(),
            AuthType::BasicAuth,
        );
        let (challenge, _verifier) = new_pkce();
        let redirect = Url::parse("https://api.example.com/oauth/xero/callback").unwrap();
        let extra = vec![("sandbox_deny".to_string(), "1".to_string())];
        let req = AuthorizeRequest { state: "st-1", redirect_uri: &redirect, scopes: &[], pkce_challenge: Some(&challenge), extra: &extra };
        let url = authorize_url(&c, &req, &["offline_access", "accounting.contacts"], " ", true, &[("prompt", "consent")]);
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "offline_access accounting.contacts");
        assert_eq!(q["redirect_uri"], redirect.as_str());
        assert_eq!(q["code_challenge"], challenge.as_str());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["prompt"], "consent");
        assert_eq!(q["sandbox_deny"], "1");
        assert!(!url.as_str().contains("csecret"));

        // Without PKCE support the challenge is left out; Zoho joins scopes with commas.
        let scopes = vec!["ZohoBooks.invoices.ALL".to_string(), "ZohoBooks.settings.READ".to_string()];
        let req = AuthorizeRequest { scopes: &scopes, extra: &[], ..req };
        let url = authorize_url(&c, &req, &[], ",", false, &[]);
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert!(!q.contains_key("code_challenge"));
        assert_eq!(q["scope"], "ZohoBooks.invoices.ALL,ZohoBooks.settings.READ");
    }

    #[test]
    fn quickbooks_token_response_gives_rolling_and_hard_refresh_expiry() {
        let now = Utc::now();
        let r = parse(
            r#"{"access_token":"at","refresh_token":"rt","token_type":"bearer","expires_in":3600,
                "x_refresh_token_expires_in":8726400,"x_refresh_token_hard_expires_in":157680000}"#,
        );
        let t = token_set(Provider::QuickBooks, &r, None, None, None, now).unwrap();
        assert_eq!(t.access_token.expose(), "at");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "rt");
        assert_eq!(t.access_expires_at, now + chrono::Duration::seconds(3600));
        assert_eq!(t.refresh_expires_at, Some(now + chrono::Duration::seconds(8726400)));
        assert_eq!(t.refresh_hard_expires_at, Some(now + chrono::Duration::seconds(157680000)));
    }

    #[test]
    fn zoho_refresh_keeps_the_old_refresh_token_and_domain() {
        let now = Utc::now();
        let first = parse(
            r#"{"access_token":"a1","refresh_token":"r1","api_domain":"https://www.zohoapis.eu","token_type":"Bearer","expires_in":3600}"#,
        );
        let t1 =
            token_set(Provider::Zoho, &first, None, Some("https://www.zohoapis.eu".into()), Some("https://accounts.zoho.eu".into()), now)
                .unwrap();
        let refreshed = parse(r#"{"access_token":"a2","token_type":"Bearer","expires_in":3600}"#);
        let t2 = token_set(Provider::Zoho, &refreshed, Some(&t1), None, None, now).unwrap();
        assert_eq!(t2.access_token.expose(), "a2");
        assert_eq!(t2.refresh_token.as_ref().unwrap().expose(), "r1");
        assert_eq!(t2.api_domain.as_deref(), Some("https://www.zohoapis.eu"));
        assert_eq!(t2.accounts_server.as_deref(), Some("https://accounts.zoho.eu"));
        assert_eq!(t2.refresh_expires_at, None);
    }

    #[test]
    fn xero_rotation_replaces_the_refresh_token_and_reads_scopes() {
        let now = Utc::now();
        let old = token_set(
            Provider::Xero,
            &parse(r#"{"access_token":"a1","refresh_token":"r1","token_type":"Bearer","expires_in":1800}"#),
            None,
            None,
            None,
            now,
        )
        .unwrap();
        let r = parse(
            r#"{"access_token":"a2","refresh_token":"r2","token_type":"Bearer","expires_in":1800,"scope":"offline_access accounting.contacts"}"#,
        );
        let t = token_set(Provider::Xero, &r, Some(&old), None, None, now).unwrap();
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "r2");
        assert_eq!(t.scopes, vec!["offline_access", "accounting.contacts"]);
        assert_eq!(t.access_expires_at, now + chrono::Duration::seconds(1800));
        assert_eq!(t.refresh_expires_at, Some(now + chrono::Duration::days(60)));
    }

    #[test]
    fn token_response_debug_does_not_leak() {
        let r = parse(r#"{"access_token":"at-secret","refresh_token":"rt-secret","token_type":"bearer"}"#);
        let t = token_set(Provider::QuickBooks, &r, None, None, None, Utc::now()).unwrap();
        let dbg = format!("{r:?} {t:?}");
        assert!(!dbg.contains("at-secret") && !dbg.contains("rt-secret"), "{dbg}");
    }

    #[test]
    fn oauth_error_bodies_map_to_our_codes() {
        let err = |body: &str| -> Error {
            let b: BasicErrorResponse = serde_json::from_str(body).unwrap();
            token_error(Provider::Xero, RequestTokenError::ServerResponse(b))
        };
        assert_eq!(err(r#"{"error":"invalid_grant"}"#).code(), ErrorCode::InvalidGrant);
        assert_eq!(err(r#"{"error":"invalid_code"}"#).code(), ErrorCode::InvalidGrant);
        assert_eq!(err(r#"{"error":"invalid_client"}"#).code(), ErrorCode::ProviderAuthFailed);
        let e = err(r#"{"error":"invalid_request","error_description":"missing redirect_uri"}"#);
        assert_eq!(e.code(), ErrorCode::ProviderPermanent);
        assert!(e.to_string().contains("missing redirect_uri"));
        assert!(!err(r#"{"error":"invalid_grant"}"#).is_retryable());
    }

    #[test]
    fn jwt_claims_are_read_from_the_payload() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!("{}.{}.sig", enc(r#"{"alg":"RS256"}"#), enc(r#"{"authentication_event_id":"evt-1","n":5}"#));
        assert_eq!(jwt_claim(&token, "authentication_event_id").as_deref(), Some("evt-1"));
        assert_eq!(jwt_claim(&token, "n").as_deref(), Some("5"));
        assert_eq!(jwt_claim(&token, "missing"), None);
        assert_eq!(jwt_claim("not-a-jwt", "authentication_event_id"), None);
        assert_eq!(jwt_claim("a.!!!.c", "authentication_event_id"), None);
    }

    #[test]
    fn revoking_a_dead_token_is_success() {
        let r = |status: u16, body: &str| ApiResponse { status, headers: http::HeaderMap::new(), body: body.to_string().into() };
        assert!(revoke_outcome(Provider::QuickBooks, &r(200, "")).is_ok());
        assert!(revoke_outcome(Provider::QuickBooks, &r(400, r#"{"error":"invalid_grant"}"#)).is_ok());
        assert_eq!(
            revoke_outcome(Provider::QuickBooks, &r(401, r#"{"error":"invalid_client"}"#)).unwrap_err().code(),
            crate::ErrorCode::ProviderAuthFailed
        );
        assert!(revoke_outcome(Provider::QuickBooks, &r(503, "")).unwrap_err().is_retryable());
        // Zoho's 200 with an error body is not a success.
        assert!(revoke_outcome(Provider::Zoho, &r(200, r#"{"error":"invalid_client"}"#)).is_err());
    }
}
