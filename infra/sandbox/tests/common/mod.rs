//! Test support: start a sandbox in-process, speak HTTP to it, run each provider's OAuth dance.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sandbox::client::{request, HttpResponse};
use sandbox::{spawn, RunningSandbox, SandboxConfig};
use serde_json::{json, Value};

pub const QBO_REALM: &str = "9341452000000001";
pub const XERO_T1: &str = "4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61";
pub const XERO_T2: &str = "8b7e6d5c-4f3a-4e2b-8c1d-0a9b8c7d6e52";
pub const REDIRECT: &str = "http://localhost:9/callback";

pub async fn start() -> RunningSandbox {
    spawn(SandboxConfig::default()).await.expect("sandbox starts")
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl From<HttpResponse> for Resp {
    fn from(r: HttpResponse) -> Self {
        Resp { status: r.status, headers: r.headers, body: r.body }
    }
}

/// Sends a request; adds `Accept: application/json` unless the caller set an Accept header
/// (QuickBooks and Xero answer XML without it).
pub async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if !h.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
        h.push(("Accept".into(), "application/json".into()));
    }
    request(method, url, &h, body, Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{method} {url}: {e}")).into()
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    call("GET", url, headers, b"").await
}

pub async fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    call("POST", url, &h, body.to_string().as_bytes()).await
}

pub async fn post_form(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Resp {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    call("POST", url, &h, body.as_bytes()).await
}

/// POST to the control API; panics unless it answers 200.
pub async fn control(base: &str, path: &str, body: Value) -> Value {
    let r = post_json(&format!("{base}/_sandbox/{path}"), &[], &body).await;
    assert_eq!(r.status, 200, "control {path}: {}", r.text());
    r.json()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Follows an authorize URL and returns the callback's query parameters.
pub async fn authorize(url: &str) -> HashMap<String, String> {
    let r = get(url, &[]).await;
    assert_eq!(r.status, 302, "authorize: {}", r.text());
    let loc = r.header("location").expect("Location").to_string();
    let u = url::Url::parse(&loc).expect("redirect is a URL");
    assert!(loc.starts_with(REDIRECT), "redirects to the redirect_uri: {loc}");
    u.query_pairs().into_owned().collect()
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------- QuickBooks

pub fn qbo_auth_header() -> String {
    basic("sandbox-qbo-client", "sandbox-qbo-secret")
}

pub async fn qbo_code(base: &str, extra: &str) -> HashMap<String, String> {
    authorize(&format!(
        "{base}/quickbooks/connect/oauth2?client_id=sandbox-qbo-client&response_type=code&scope=com.intuit.quickbooks.accounting&redirect_uri={}&state=st-1{extra}",
        enc(REDIRECT)
    ))
    .await
}

pub async fn qbo_exchange(base: &str, code: &str) -> Resp {
    let auth = qbo_auth_header();
    post_form(
        &format!("{base}/quickbooks/oauth2/v1/tokens/bearer"),
        &[("Authorization", &auth), ("Accept", "application/json")],
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)],
    )
    .await
}

pub async fn qbo_refresh(base: &str, rt: &str) -> Resp {
    let auth = qbo_auth_header();
    post_form(
        &format!("{base}/quickbooks/oauth2/v1/tokens/bearer"),
        &[("Authorization", &auth)],
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

/// (access token, refresh token, realm)
pub async fn qbo_connect(base: &str) -> (String, String, String) {
    let cb = qbo_code(base, "").await;
    let r = qbo_exchange(base, &cb["code"]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (v["access_token"].as_str().unwrap().into(), v["refresh_token"].as_str().unwrap().into(), cb["realmId"].clone())
}

pub async fn qbo_query(base: &str, at: &str, realm: &str, q: &str) -> Resp {
    get(
        &format!("{base}/quickbooks/v3/company/{realm}/query?query={}&minorversion=75", enc(q)),
        &[("Authorization", &format!("Bearer {at}")), ("Accept", "application/json")],
    )
    .await
}

// ---------------------------------------------------------------- Xero

pub fn xero_auth_header() -> String {
    basic("sandbox-xero-client", "sandbox-xero-secret")
}

pub async fn xero_code(base: &str, scope: &str, extra: &str) -> HashMap<String, String> {
    authorize(&format!(
        "{base}/xero/identity/connect/authorize?client_id=sandbox-xero-client&response_type=code&scope={}&redirect_uri={}&state=st-x{extra}",
        enc(scope),
        enc(REDIRECT)
    ))
    .await
}

pub async fn xero_token(base: &str, form: &[(&str, &str)]) -> Resp {
    let auth = xero_auth_header();
    post_form(&format!("{base}/xero/identity/connect/token"), &[("Authorization", &auth)], form).await
}

/// Token answer JSON for a fresh consent to every seeded tenant.
pub async fn xero_connect(base: &str) -> Value {
    let cb = xero_code(
        base,
        "openid profile email offline_access accounting.invoices accounting.payments accounting.contacts accounting.settings",
        "",
    )
    .await;
    let r = xero_token(base, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub async fn xero_get(base: &str, at: &str, tenant: &str, path: &str, extra: &[(&str, &str)]) -> Resp {
    let bearer = format!("Bearer {at}");
    let mut h = vec![("Authorization", bearer.as_str()), ("xero-tenant-id", tenant), ("Accept", "application/json")];
    h.extend_from_slice(extra);
    get(&format!("{base}/xero/api.xro/2.0/{path}"), &h).await
}

pub async fn xero_put(base: &str, at: &str, tenant: &str, path: &str, body: &Value, extra: &[(&str, &str)]) -> Resp {
    let bearer = format!("Bearer {at}");
    let mut h = vec![
        ("Authorization", bearer.as_str()),
        ("xero-tenant-id", tenant),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
    ];
    h.extend_from_slice(extra);
    call("PUT", &format!("{base}/xero/api.xro/2.0/{path}"), &h, body.to_string().as_bytes()).await
}

/// Decodes a JWT's payload (no signature check: the sandbox's are not signed for real).
pub fn jwt_claims(token: &str) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

// ---------------------------------------------------------------- Zoho

pub async fn zoho_code(base: &str, extra: &str) -> HashMap<String, String> {
    authorize(&format!(
        "{base}/zoho/accounts/us/oauth/v2/auth?client_id=sandbox-zoho-client&response_type=code&scope=ZohoBooks.invoices.ALL,ZohoBooks.settings.ALL&redirect_uri={}&state=st-z&access_type=offline&prompt=consent{extra}",
        enc(REDIRECT)
    ))
    .await
}

/// Token endpoint with credentials as query parameters (Zoho's documented style).
pub async fn zoho_token(accounts_server: &str, params: &[(&str, &str)]) -> Resp {
    let mut all = vec![("client_id", "sandbox-zoho-client"), ("client_secret", "sandbox-zoho-secret")];
    all.extend_from_slice(params);
    let q: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(all).finish();
    call("POST", &format!("{accounts_server}/oauth/v2/token?{q}"), &[], b"").await
}

/// (token answer, accounts-server) for a consent in data centre `dc`.
pub async fn zoho_connect(base: &str, dc: &str) -> (Value, String) {
    let cb = zoho_code(base, &format!("&sandbox_dc={dc}")).await;
    let server = cb["accounts-server"].clone();
    let r = zoho_token(&server, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v.get("error").is_none(), "{v}");
    (v, server)
}

pub async fn zoho_get(api_domain: &str, at: &str, path: &str) -> Resp {
    get(&format!("{api_domain}/books/v3/{path}"), &[("Authorization", &format!("Zoho-oauthtoken {at}"))]).await
}

pub async fn zoho_post(api_domain: &str, at: &str, path: &str, body: &Value) -> Resp {
    post_json(&format!("{api_domain}/books/v3/{path}"), &[("Authorization", &format!("Zoho-oauthtoken {at}"))], body).await
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

pub fn j(v: Value) -> Value {
    json!(v)
}
