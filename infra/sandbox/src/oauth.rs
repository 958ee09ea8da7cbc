//! OAuth 2.0 for the three providers: authorize (consents at once), token (authorization_code and
//! refresh_token grants), revoke, and Xero's connections.
//!
//! Each provider's differences are kept where they matter to a client: how the client authenticates
//! (QuickBooks/Xero Basic, Zoho parameters), what the callback carries (realmId; nothing; location and
//! accounts-server), rotation (QuickBooks single-use, Xero rotation with a replaying grace period, Zoho
//! none) and how errors look (QuickBooks 400/401, Xero 400, Zoho HTTP 200 with an error field).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::data::Org;
use crate::http::{add_query, auth_token, basic_auth, json_value, parse_form, redirect};
use crate::model::{Entity, Provider};
use crate::state::*;

/// Zoho keeps at most this many refresh tokens per user and client; the next one evicts the oldest.
const ZOHO_MAX_REFRESH_TOKENS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    InvalidGrant(&'static str),
    InvalidClient,
    InvalidRequest(&'static str),
    UnsupportedGrantType,
    /// Zoho's token-issue limit: too many access tokens from one refresh token too quickly.
    TooManyRequests,
}

pub fn client_credentials(p: Provider) -> (&'static str, &'static str) {
    match p {
        Provider::Quickbooks => (QBO_CLIENT_ID, QBO_CLIENT_SECRET),
        Provider::Xero => (XERO_CLIENT_ID, XERO_CLIENT_SECRET),
        Provider::Zoho => (ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET),
    }
}

/// The provider's own way of saying no at its token endpoint.
pub fn oauth_error(p: Provider, e: &OAuthError) -> Response {
    let (code, desc) = match e {
        OAuthError::InvalidGrant(d) => ("invalid_grant", *d),
        OAuthError::InvalidClient => ("invalid_client", ""),
        OAuthError::InvalidRequest(d) => ("invalid_request", *d),
        OAuthError::UnsupportedGrantType => ("unsupported_grant_type", ""),
        OAuthError::TooManyRequests => ("Access Denied", "You have made too many requests continuously. Please try again after some time."),
    };
    match p {
        // Intuit: 401 for client authentication failures, 400 otherwise.
        Provider::Quickbooks => {
            let status = if *e == OAuthError::InvalidClient { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
            json_value(status, &json!({ "error": code }))
        }
        Provider::Xero => {
            let mut body = json!({ "error": code });
            if !desc.is_empty() {
                body["error_description"] = json!(desc);
            }
            json_value(StatusCode::BAD_REQUEST, &body)
        }
        // Zoho answers token errors with HTTP 200 and names a bad code or refresh token invalid_code.
        Provider::Zoho => {
            let code = if code == "invalid_grant" { "invalid_code" } else { code };
            let mut body = json!({ "error": code });
            if *e == OAuthError::TooManyRequests {
                body["error_description"] = json!(desc);
                body["status"] = json!("failure");
            }
            json_value(StatusCode::OK, &body)
        }
    }
}

// ---------------------------------------------------------------- authorize

pub async fn qbo_authorize(State(st): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    authorize(&st, Provider::Quickbooks, &q, None)
}

pub async fn xero_authorize(State(st): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    authorize(&st, Provider::Xero, &q, None)
}

pub async fn zoho_authorize(State(st): State<AppState>, Path(dc): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !ZOHO_DCS.contains(&dc.as_str()) {
        return (StatusCode::NOT_FOUND, "unknown data centre").into_response();
    }
    authorize(&st, Provider::Zoho, &q, Some(&dc))
}

/// Scopes a Xero app created on or after 2 March 2026 may no longer ask for.
const XERO_BROAD_ONLY: [&str; 3] = ["accounting.transactions", "accounting.transactions.read", "accounting.reports.read"];

fn authorize(st: &AppState, p: Provider, q: &HashMap<String, String>, path_dc: Option<&str>) -> Response {
    let (client_id, _) = client_credentials(p);
    // Bad client or redirect URI: real servers show an error page rather than redirect anywhere.
    if q.get("client_id").map(String::as_str) != Some(client_id) {
        return (StatusCode::BAD_REQUEST, "invalid_client: unknown client_id").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| url::Url::parse(r).is_ok()) else {
        return (StatusCode::BAD_REQUEST, "invalid_request: redirect_uri missing or not a URL").into_response();
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let with_state = |mut v: Vec<(&'static str, String)>| {
        if !state.is_empty() {
            v.push(("state", state.clone()));
        }
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        redirect(&add_query(redirect_uri, &pairs))
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return with_state(vec![("error", "unsupported_response_type".into())]);
    }
    if q.get("sandbox_deny").is_some_and(|v| v == "1" || v == "true") {
        return with_state(vec![("error", "access_denied".into())]);
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    if scope.trim().is_empty() {
        return with_state(vec![("error", "invalid_scope".into())]);
    }
    let challenge = match q.get("code_challenge") {
        Some(c) => {
            let method = q.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into());
            if method != "S256" && method != "plain" {
                return with_state(vec![("error", "invalid_request".into())]);
            }
            Some((c.clone(), method))
        }
        None => None,
    };

    let mut w = st.lock();
    if p == Provider::Xero && w.settings.xero_app_scopes == "granular" && scope.split_whitespace().any(|s| XERO_BROAD_ONLY.contains(&s)) {
        return with_state(vec![("error", "invalid_scope".into())]);
    }
    // `sandbox_scope` plays a consent that grants less than was asked (the token answer reports it).
    let scope = q.get("sandbox_scope").filter(|s| !s.trim().is_empty()).cloned().unwrap_or(scope);
    let now = w.now();
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    let (orgs, dc, user, with_refresh) = match p {
        Provider::Quickbooks => {
            let realm = q.get("sandbox_realm").cloned().unwrap_or_else(|| QBO_DEFAULT_REALM.to_string());
            ensure_org(&mut w, p, &realm, &format!("Sandbox Company {realm}"), None);
            extra.push(("realmId", realm.clone()));
            (vec![realm], None, "qbo-user".to_string(), true)
        }
        Provider::Xero => {
            let tenants: Vec<String> = match q.get("sandbox_tenants") {
                Some(list) => list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
                None => {
                    let mut all: Vec<String> = w.orgs(p).map(|o| o.id.clone()).collect();
                    all.sort();
                    all
                }
            };
            for t in &tenants {
                ensure_org(&mut w, p, t, &format!("Sandbox Org {}", t.chars().take(8).collect::<String>()), None);
            }
            // No refresh token without offline_access, as with the real Xero.
            let offline = scope.split_whitespace().any(|s| s == "offline_access");
            (tenants, None, q.get("sandbox_user").cloned().unwrap_or_else(|| "xero-user".into()), offline)
        }
        Provider::Zoho => {
            let dc = q.get("sandbox_dc").cloned().unwrap_or_else(|| path_dc.unwrap_or("us").to_string());
            if !ZOHO_DCS.contains(&dc.as_str()) {
                return with_state(vec![("error", "invalid_request".into())]);
            }
            let user = q.get("sandbox_user").cloned().unwrap_or_else(|| format!("zoho-user@{dc}"));
            // A refresh token needs access_type=offline, and only the first consent gets one unless
            // prompt=consent forces it.
            let offline = q.get("access_type").is_some_and(|v| v == "offline");
            let first = !w.grants.values().any(|g| g.provider == p && g.user == user && !g.revoked);
            let forced = q.get("prompt").is_some_and(|v| v == "consent");
            extra.push(("location", dc.clone()));
            extra.push(("accounts-server", format!("{}/zoho/accounts/{dc}", st.base_url())));
            (Vec::new(), Some(dc), user, offline && (first || forced))
        }
    };
    let code = match p {
        Provider::Quickbooks => format!("AB11{}", random_alnum(46)),
        Provider::Xero => random_b64url(32),
        Provider::Zoho => format!("1000.{}.{}", random_hex(16), random_hex(16)),
    };
    let ttl = w.ps(p).auth_code_ttl;
    w.codes.insert(
        code.clone(),
        AuthCode {
            provider: p,
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.clone(),
            scope,
            expires_at: now + Duration::seconds(ttl),
            used: false,
            challenge,
            orgs,
            dc,
            user,
            with_refresh,
        },
    );
    drop(w);
    let mut params = vec![("code", code)];
    if !state.is_empty() {
        params.push(("state", state.clone()));
    }
    params.extend(extra);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    redirect(&add_query(redirect_uri, &pairs))
}

/// Creates an org the first time a test names it, with a few records of each entity, so tests can
/// isolate themselves with fresh org ids.
pub fn ensure_org(w: &mut World, p: Provider, id: &str, name: &str, dc: Option<&str>) {
    if w.org(p, id).is_some() {
        return;
    }
    let now = w.now();
    let org: &mut Org = w.add_org(p, id, name, dc);
    for e in [Entity::Contact, Entity::Account, Entity::Invoice, Entity::Payment] {
        org.generate(e, now);
    }
}

// ---------------------------------------------------------------- token

pub async fn qbo_token(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&String::from_utf8_lossy(&body));
    // Intuit takes client credentials only as HTTP Basic.
    let client_ok =
        basic_auth(&headers).is_some_and(|(id, secret)| (id.as_str(), secret.as_str()) == client_credentials(Provider::Quickbooks));
    let res = if !client_ok { Err(OAuthError::InvalidClient) } else { token(&st, Provider::Quickbooks, &form, None, false) };
    // The hard expiry is reported only to a client that opts in.
    let wants_hard = headers
        .get("x-include-refresh-token-hard-expires-in")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    match res {
        Ok(mut v) => {
            if wants_hard {
                let w = st.lock();
                let hard = v["refresh_token"]
                    .as_str()
                    .and_then(|rt| w.refresh_tokens.get(rt))
                    .and_then(|e| w.grants.get(&e.grant))
                    .map(|g| qbo_hard_expiry(g.created, &w.settings));
                if let Some(at) = hard {
                    v["x_refresh_token_hard_expires_in"] = json!((at - w.now()).num_seconds().max(0));
                }
            }
            json_value(StatusCode::OK, &v)
        }
        Err(e) => oauth_error(Provider::Quickbooks, &e),
    }
}

pub async fn xero_token(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&String::from_utf8_lossy(&body));
    let (cid, csecret) = client_credentials(Provider::Xero);
    // Basic (the documented way) or client_secret_post; a PKCE client sends only client_id.
    let (authenticated, public) = match basic_auth(&headers) {
        Some((id, secret)) => (id == cid && secret == csecret, false),
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id == cid && secret == csecret, false),
            (Some(id), None) => (id == cid, true),
            _ => (false, false),
        },
    };
    let res = if !authenticated { Err(OAuthError::InvalidClient) } else { token(&st, Provider::Xero, &form, None, public) };
    match res {
        Ok(v) => json_value(StatusCode::OK, &v),
        Err(e) => oauth_error(Provider::Xero, &e),
    }
}

pub async fn zoho_token(State(st): State<AppState>, Path(dc): Path<String>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    // Zoho takes everything as query parameters or form fields (both work), never Basic.
    let mut params = parse_form(q.as_deref().unwrap_or(""));
    params.extend(parse_form(&String::from_utf8_lossy(&body)));
    let (cid, csecret) = client_credentials(Provider::Zoho);
    let client_ok =
        params.get("client_id").map(String::as_str) == Some(cid) && params.get("client_secret").map(String::as_str) == Some(csecret);
    let res = if !ZOHO_DCS.contains(&dc.as_str()) || !client_ok {
        Err(OAuthError::InvalidClient)
    } else {
        token(&st, Provider::Zoho, &params, Some(&dc), false)
    };
    match res {
        Ok(v) => json_value(StatusCode::OK, &v),
        Err(e) => oauth_error(Provider::Zoho, &e),
    }
}

fn token(st: &AppState, p: Provider, form: &HashMap<String, String>, dc: Option<&str>, public: bool) -> Result<Value, OAuthError> {
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(st, p, form, dc, public),
        Some("refresh_token") => refresh(st, p, form, dc, public),
        Some(_) => Err(OAuthError::UnsupportedGrantType),
        None => Err(OAuthError::InvalidRequest("grant_type is required")),
    }
}

fn pkce_ok(challenge: &(String, String), verifier: Option<&String>) -> bool {
    let Some(v) = verifier else { return false };
    match challenge.1.as_str() {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == challenge.0,
        _ => *v == challenge.0,
    }
}

fn exchange_code(st: &AppState, p: Provider, form: &HashMap<String, String>, dc: Option<&str>, public: bool) -> Result<Value, OAuthError> {
    let code = form.get("code").ok_or(OAuthError::InvalidRequest("code is required"))?;
    let mut w = st.lock();
    let now = w.now();
    let c = w.codes.get(code).filter(|c| c.provider == p).cloned().ok_or(OAuthError::InvalidGrant("unknown authorization code"))?;
    // A code taken to another data centre's accounts server is unknown there: Zoho says invalid_client.
    if p == Provider::Zoho && c.dc.as_deref() != dc {
        return Err(OAuthError::InvalidClient);
    }
    if c.used {
        return Err(OAuthError::InvalidGrant("authorization code already used"));
    }
    if now >= c.expires_at {
        return Err(OAuthError::InvalidGrant("authorization code expired"));
    }
    if form.get("redirect_uri") != Some(&c.redirect_uri) {
        return Err(OAuthError::InvalidGrant("redirect_uri does not match"));
    }
    match &c.challenge {
        Some(ch) if !pkce_ok(ch, form.get("code_verifier")) => return Err(OAuthError::InvalidGrant("code_verifier does not match")),
        None if public => return Err(OAuthError::InvalidClient),
        _ => {}
    }
    w.codes.get_mut(code).expect("present").used = true;
    if let Some(v) = form.get("code_verifier") {
        w.seen_verifiers.push(v.clone());
    }

    let grant_id = uuid::Uuid::new_v4().to_string();
    let seq = w.grants.len() as u64;
    let auth_event_id = uuid::Uuid::new_v4().to_string();
    let mut connections = Vec::new();
    if p == Provider::Xero {
        // Xero writes seven fractional digits and no zone: 2019-12-07T18:46:19.5165400
        let stamp = format!("{}.{:07}", now.format("%Y-%m-%dT%H:%M:%S"), now.timestamp_subsec_nanos() / 100);
        for t in &c.orgs {
            let name = w.org(p, t).map(|o| o.name.clone()).unwrap_or_default();
            connections.push(Connection {
                id: uuid::Uuid::new_v4().to_string(),
                auth_event_id: auth_event_id.clone(),
                tenant_id: t.clone(),
                tenant_type: "ORGANISATION".into(),
                tenant_name: name,
                created_date_utc: stamp.clone(),
                updated_date_utc: stamp.clone(),
            });
        }
    }
    if p == Provider::Zoho && c.with_refresh {
        evict_oldest_zoho_grant(&mut w, &c.user, &c.client_id);
    }
    w.grants.insert(
        grant_id.clone(),
        Grant {
            id: grant_id.clone(),
            provider: p,
            client_id: c.client_id.clone(),
            scope: c.scope.clone(),
            user: c.user.clone(),
            orgs: c.orgs.clone(),
            dc: c.dc.clone(),
            connections,
            auth_event_id,
            revoked: false,
            public_client: public,
            created: now,
            seq,
        },
    );
    Ok(issue(&mut w, st.base_url(), &grant_id, c.with_refresh))
}

fn evict_oldest_zoho_grant(w: &mut World, user: &str, client_id: &str) {
    let mut live: Vec<(u64, String)> = w
        .grants
        .values()
        .filter(|g| g.provider == Provider::Zoho && g.user == user && g.client_id == client_id && !g.revoked)
        .filter(|g| w.refresh_tokens.values().any(|r| r.grant == g.id))
        .map(|g| (g.seq, g.id.clone()))
        .collect();
    live.sort();
    while live.len() >= ZOHO_MAX_REFRESH_TOKENS {
        let (_, id) = live.remove(0);
        if let Some(g) = w.grants.get_mut(&id) {
            g.revoked = true;
        }
    }
}

fn refresh(st: &AppState, p: Provider, form: &HashMap<String, String>, dc: Option<&str>, public: bool) -> Result<Value, OAuthError> {
    let rt = form.get("refresh_token").ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
    let mut w = st.lock();
    let now = w.now();
    let entry = w.refresh_tokens.get(rt).cloned().ok_or(OAuthError::InvalidGrant("unknown refresh token"))?;
    let grant = w.grants.get(&entry.grant).cloned().ok_or(OAuthError::InvalidGrant("unknown refresh token"))?;
    if grant.provider != p {
        return Err(OAuthError::InvalidGrant("unknown refresh token"));
    }
    if p == Provider::Zoho && grant.dc.as_deref() != dc {
        return Err(OAuthError::InvalidClient);
    }
    if public && !grant.public_client {
        return Err(OAuthError::InvalidClient);
    }
    if grant.revoked {
        return Err(OAuthError::InvalidGrant("grant revoked"));
    }
    if entry.expires_at.is_some_and(|e| now >= e) {
        return Err(OAuthError::InvalidGrant("refresh token expired"));
    }
    if let Some(rot) = &entry.rotated {
        // Within the grace period the used token replays the answer it got the first time (Xero);
        // after it, or with no grace (QuickBooks treated as single-use), it is dead.
        let grace = w.ps(p).refresh_grace;
        if now < rot.at + Duration::seconds(grace) {
            *w.counters.refreshes.entry(grant.id.clone()).or_default() += 1;
            return Ok(rot.answer.clone());
        }
        return Err(OAuthError::InvalidGrant("refresh token already used"));
    }
    let answer = match p {
        Provider::Zoho => {
            let (limit, window) = (w.settings.zoho_token_issue_limit, w.settings.zoho_token_issue_window);
            let entry = w.refresh_tokens.get_mut(rt).expect("present");
            entry.issued.retain(|t| *t + Duration::seconds(window) > now);
            if entry.issued.len() >= limit as usize {
                *w.counters.rate_limited.entry(format!("zoho token issue {}", grant.id)).or_default() += 1;
                return Err(OAuthError::TooManyRequests);
            }
            entry.issued.push(now);
            issue(&mut w, st.base_url(), &grant.id, false)
        }
        _ => {
            let answer = issue(&mut w, st.base_url(), &grant.id, true);
            w.refresh_tokens.get_mut(rt).expect("present").rotated = Some(Rotated { at: now, answer: answer.clone() });
            answer
        }
    };
    *w.counters.refreshes.entry(grant.id.clone()).or_default() += 1;
    Ok(answer)
}

/// When a QuickBooks grant's refresh tokens stop working whatever their rolling expiry says.
fn qbo_hard_expiry(created: DateTime<Utc>, s: &crate::state::Settings) -> DateTime<Utc> {
    created + Duration::seconds(s.quickbooks_refresh_hard_ttl)
}

/// Mints an access token (and a refresh token when asked) for a grant, in the provider's answer shape.
fn issue(w: &mut World, base: &str, grant_id: &str, with_refresh: bool) -> Value {
    let now = w.now();
    let g = w.grants.get(grant_id).cloned().expect("grant exists");
    let s = w.ps(g.provider).clone();
    let expires_at = now + Duration::seconds(s.access_token_ttl);
    let access = match g.provider {
        Provider::Quickbooks => format!("eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..{}", random_b64url(96)),
        Provider::Xero => xero_jwt(&g, now, expires_at),
        Provider::Zoho => format!("1000.{}.{}", random_hex(16), random_hex(16)),
    };
    w.access_tokens.insert(access.clone(), AccessToken { grant: g.id.clone(), expires_at, revoked: false });
    let refresh = with_refresh.then(|| {
        let rt = match g.provider {
            Provider::Quickbooks => format!("AB11{}", random_alnum(46)),
            Provider::Xero => random_hex(32),
            Provider::Zoho => format!("1000.{}.{}", random_hex(16), random_hex(16)),
        };
        let mut expires_at = s.refresh_token_ttl.map(|t| now + Duration::seconds(t));
        if g.provider == Provider::Quickbooks {
            // The rolling 100 days never reach past the grant's hard cap.
            let hard = qbo_hard_expiry(g.created, &w.settings);
            expires_at = Some(expires_at.map_or(hard, |e| e.min(hard)));
        }
        w.refresh_tokens.insert(rt.clone(), RefreshToken { grant: g.id.clone(), expires_at, rotated: None, issued: Vec::new() });
        rt
    });
    let openid = g.scope.split_whitespace().any(|s| s == "openid");
    match g.provider {
        Provider::Quickbooks => {
            let mut v = json!({
                "token_type": "bearer",
                "access_token": access,
                "expires_in": s.access_token_ttl,
            });
            if let Some(rt) = refresh {
                v["refresh_token"] = json!(&rt);
                let left = w.refresh_tokens.get(&rt).and_then(|e| e.expires_at).map(|e| (e - now).num_seconds().max(0));
                v["x_refresh_token_expires_in"] = json!(left.unwrap_or(s.refresh_token_ttl.unwrap_or(8_726_400)));
            }
            if openid {
                v["id_token"] = json!(jwt(&json!({
                    "sub": stable_uuid(&g.user),
                    "aud": [g.client_id], "realmid": g.orgs.first(), "auth_time": g.created.timestamp(),
                    "iss": "https://oauth.platform.intuit.com/op/v1", "exp": (now + Duration::hours(1)).timestamp(), "iat": now.timestamp(),
                })));
            }
            v
        }
        Provider::Xero => {
            let mut v = json!({
                "access_token": access,
                "expires_in": s.access_token_ttl,
                "token_type": "Bearer",
                "scope": g.scope,
            });
            if let Some(rt) = refresh {
                v["refresh_token"] = json!(rt);
            }
            if openid {
                let sub = stable_uuid(&g.user);
                v["id_token"] = json!(jwt(&json!({
                    "nbf": now.timestamp(), "exp": (now + Duration::minutes(5)).timestamp(), "iss": "https://identity.xero.com",
                    "aud": g.client_id, "iat": now.timestamp(), "sub": sub, "auth_time": g.created.timestamp(),
                    "xero_userid": sub, "global_session_id": g.id, "preferred_username": format!("{}@example.com", g.user),
                    "email": format!("{}@example.com", g.user), "given_name": "Sandbox", "family_name": "User", "name": "Sandbox User",
                })));
            }
            v
        }
        Provider::Zoho => {
            let dc = g.dc.clone().unwrap_or_else(|| "us".into());
            let mut v = json!({
                "access_token": access,
                "scope": g.scope,
                "api_domain": format!("{base}/zoho/api/{dc}"),
                "token_type": "Bearer",
                "expires_in": s.access_token_ttl,
            });
            if let Some(rt) = refresh {
                v["refresh_token"] = json!(rt);
            }
            v
        }
    }
}

/// A uuid derived from a name, so a sandbox user keeps one id across grants.
fn stable_uuid(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// An unsigned-but-well-formed JWT: clients decode its payload, nobody verifies the signature.
fn jwt(claims: &Value) -> String {
    let header = json!({"alg": "RS256", "kid": "1CAF8E66772D6DC028D6726FD0261581570EFC19", "typ": "JWT"});
    format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()), random_b64url(256))
}

/// Xero access tokens are JWTs whose `authentication_event_id` claim selects this consent's tenants
/// in GET /connections.
fn xero_jwt(g: &Grant, now: DateTime<Utc>, exp: DateTime<Utc>) -> String {
    let sub = stable_uuid(&g.user);
    jwt(&json!({
        "nbf": now.timestamp(), "exp": exp.timestamp(), "iss": "https://identity.xero.com",
        "aud": "https://identity.xero.com/resources", "client_id": g.client_id, "sub": sub,
        "auth_time": g.created.timestamp(), "xero_userid": sub, "global_session_id": g.id,
        "sid": g.id, "jti": random_hex(16), "authentication_event_id": g.auth_event_id,
        "scope": g.scope.split_whitespace().collect::<Vec<_>>(),
    }))
}

// ---------------------------------------------------------------- revoke

/// Revokes the grant behind a refresh token, or (Zoho) just one access token.
pub fn revoke_token(w: &mut World, p: Provider, token: &str) -> Option<String> {
    if let Some(rt) = w.refresh_tokens.get(token) {
        let gid = rt.grant.clone();
        if let Some(g) = w.grants.get_mut(&gid).filter(|g| g.provider == p) {
            g.revoked = true;
            g.connections.clear();
            return Some(gid);
        }
        return None;
    }
    let gid = w.access_tokens.get(token)?.grant.clone();
    if w.grants.get(&gid).map(|g| g.provider) != Some(p) {
        return None;
    }
    if p == Provider::Zoho {
        w.access_tokens.get_mut(token).expect("present").revoked = true;
    } else {
        // Intuit and Xero disconnect the whole grant whichever token is presented.
        let g = w.grants.get_mut(&gid).expect("present");
        g.revoked = true;
        g.connections.clear();
    }
    Some(gid)
}

pub async fn qbo_revoke(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let client_ok =
        basic_auth(&headers).is_some_and(|(id, secret)| (id.as_str(), secret.as_str()) == client_credentials(Provider::Quickbooks));
    if !client_ok {
        return oauth_error(Provider::Quickbooks, &OAuthError::InvalidClient);
    }
    // Intuit's SDK sends JSON {"token": ...}; accept a form body too.
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
        .or_else(|| parse_form(&String::from_utf8_lossy(&body)).remove("token"));
    let Some(token) = token else {
        return oauth_error(Provider::Quickbooks, &OAuthError::InvalidRequest("token is required"));
    };
    revoke_token(&mut st.lock(), Provider::Quickbooks, &token);
    StatusCode::OK.into_response()
}

pub async fn xero_revoke(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&String::from_utf8_lossy(&body));
    let (cid, csecret) = client_credentials(Provider::Xero);
    let ok = match basic_auth(&headers) {
        Some((id, secret)) => id == cid && secret == csecret,
        None => form.get("client_id").map(String::as_str) == Some(cid),
    };
    if !ok {
        return oauth_error(Provider::Xero, &OAuthError::InvalidClient);
    }
    let Some(token) = form.get("token") else {
        return oauth_error(Provider::Xero, &OAuthError::InvalidRequest("token is required"));
    };
    revoke_token(&mut st.lock(), Provider::Xero, token);
    StatusCode::OK.into_response()
}

pub async fn zoho_revoke(State(st): State<AppState>, Path(dc): Path<String>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let mut params = parse_form(q.as_deref().unwrap_or(""));
    params.extend(parse_form(&String::from_utf8_lossy(&body)));
    let Some(token) = params.get("token") else {
        return json_value(StatusCode::OK, &json!({"error": "invalid_request"}));
    };
    let mut w = st.lock();
    // A token from another data centre is unknown at this accounts server.
    let in_dc = |w: &World, gid: &str| w.grants.get(gid).is_some_and(|g| g.dc.as_deref() == Some(dc.as_str()));
    let gid = w.refresh_tokens.get(token).map(|r| r.grant.clone()).or_else(|| w.access_tokens.get(token).map(|a| a.grant.clone()));
    if gid.is_some_and(|g| in_dc(&w, &g)) {
        revoke_token(&mut w, Provider::Zoho, token);
    }
    json_value(StatusCode::OK, &json!({"status": "success"}))
}

// ---------------------------------------------------------------- Xero connections

pub fn xero_unauthorized(detail: &str) -> Response {
    let body = json!({
        "Type": null, "Title": "Unauthorized", "Status": 401, "Detail": detail,
        "Instance": uuid::Uuid::new_v4().to_string(), "Extensions": {}
    });
    let mut r = json_value(StatusCode::UNAUTHORIZED, &body);
    r.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""));
    r
}

pub fn xero_token_detail(p: TokenProblem) -> String {
    match p {
        TokenProblem::Expired(at) => format!("TokenExpired: token expired at {}", at.format("%m/%d/%Y %H:%M:%S")),
        TokenProblem::Revoked => "AuthenticationUnsuccessful".into(),
        TokenProblem::Unknown => "AuthenticationUnsuccessful".into(),
    }
}

pub async fn xero_connections(State(st): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(token) = auth_token(&headers, "Bearer") else {
        return xero_unauthorized("AuthenticationUnsuccessful");
    };
    let w = st.lock();
    let g = match w.grant_for_access(Provider::Xero, token) {
        Ok(g) => g,
        Err(e) => return xero_unauthorized(&xero_token_detail(e)),
    };
    let list: Vec<&Connection> =
        g.connections.iter().filter(|c| q.get("authEventId").is_none_or(|id| id.eq_ignore_ascii_case(&c.auth_event_id))).collect();
    json_value(StatusCode::OK, &serde_json::to_value(list).expect("json"))
}

pub async fn xero_delete_connection(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(token) = auth_token(&headers, "Bearer") else {
        return xero_unauthorized("AuthenticationUnsuccessful");
    };
    let mut w = st.lock();
    let gid = match w.grant_for_access(Provider::Xero, token) {
        Ok(g) => g.id.clone(),
        Err(e) => return xero_unauthorized(&xero_token_detail(e)),
    };
    let g = w.grants.get_mut(&gid).expect("present");
    let before = g.connections.len();
    g.connections.retain(|c| !c.id.eq_ignore_ascii_case(&id));
    if g.connections.len() == before {
        return StatusCode::NOT_FOUND.into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}
