//! Per-request bookkeeping for provider routes (call counters, injected faults) and the provider-shaped
//! answers for server errors, rate limits and bad tokens.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::{json, json_value, with_header};
use crate::model::{qbo_time, Provider};
use crate::oauth::{oauth_error, xero_unauthorized, OAuthError};
use crate::state::{AppState, FaultKind, LimitProblem, Limited, Quota};

/// Every provider answer carries a `Date` header from the sandbox's clock (which tests can skew),
/// as a real provider's comes from its own servers' clock, not the client's.
pub async fn provider_middleware(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = provider_answer(st.clone(), req, next).await;
    let now = st.lock().now();
    if let Ok(v) = axum::http::HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        resp.headers_mut().insert(axum::http::header::DATE, v);
    }
    resp
}

async fn provider_answer(st: AppState, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let template = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    let (fault, hold) = {
        let mut w = st.lock();
        w.count_call(format!("{method} {template}"));
        (w.take_fault(&method, &path), w.settings.timeout_fault_seconds)
    };
    let wants_json = req.headers().get_all("accept").iter().any(|v| v.to_str().is_ok_and(|s| s.contains("json")));
    let Some(fault) = fault else {
        // Concurrency is held for the whole answer, including the configured latency.
        let _place = match InFlight::enter(&st, &req) {
            Ok(place) => place,
            Err((p, limited)) => return rate_limited(p, &limited),
        };
        if let Some(ms) = _place.as_ref().map(|p| p.latency_ms).filter(|ms| *ms > 0) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let resp = next.run(req).await;
        return if wants_json || !xml_by_default(&path) { resp } else { xml_stub(resp, &path) };
    };
    let p = Provider::from_path(&path).unwrap_or(Provider::Quickbooks);
    match fault.kind {
        FaultKind::Timeout => {
            // Hold longer than any sane client timeout, then answer normally: a client that gave up
            // must cope with the work having happened anyway.
            // Run in its own task so a client hanging up does not cancel the work.
            let task = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(hold)).await;
                next.run(req).await
            });
            task.await.unwrap_or_else(|_| server_error(p))
        }
        FaultKind::ServerError => server_error(p),
        FaultKind::RateLimited => {
            let limited = Limited {
                problem: LimitProblem::Minute,
                retry_after: fault.retry_after.unwrap_or(60),
                quota: Quota { minute_remaining: Some(0), day_remaining: Some(0), app_minute_remaining: Some(0) },
            };
            rate_limited(p, &limited)
        }
        FaultKind::QboThrottleService | FaultKind::QboThrottleXml | FaultKind::QboThrottle403 | FaultKind::QboAuth
            if p != Provider::Quickbooks =>
        {
            if fault.kind == FaultKind::QboAuth {
                unauthorized(p)
            } else {
                let limited = Limited {
                    problem: LimitProblem::Minute,
                    retry_after: fault.retry_after.unwrap_or(60),
                    quota: Quota { minute_remaining: Some(0), day_remaining: Some(0), app_minute_remaining: Some(0) },
                };
                rate_limited(p, &limited)
            }
        }
        FaultKind::TokenError => {
            let code = fault.error.as_deref().unwrap_or("invalid_request");
            let body = json!({"error": code});
            // Zoho answers token errors with HTTP 200; the others with 400 (401 for Intuit's
            // client failures, which the plain 400 does not change for classification).
            let status = if p == Provider::Zoho { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            json_value(status, &body)
        }
        FaultKind::QboThrottleService => qbo_throttle(),
        FaultKind::QboThrottleXml => qbo_throttle_xml(StatusCode::TOO_MANY_REQUESTS),
        FaultKind::QboThrottle403 => qbo_throttle_xml(StatusCode::FORBIDDEN),
        FaultKind::QboAuth => qbo_unauthorized("Token expired"),
        FaultKind::Malformed => malformed(p, &path),
        FaultKind::InvalidGrant => {
            if is_token_endpoint(&path) {
                oauth_error(p, &OAuthError::InvalidGrant("injected fault"))
            } else {
                unauthorized(p)
            }
        }
    }
}

/// One in-flight place of an org's accounting-API call; given back on drop, so a client hanging up
/// mid-call frees it too.
struct InFlight {
    st: AppState,
    provider: Provider,
    org: String,
    latency_ms: u64,
}

impl InFlight {
    /// Ok(None) for routes that are not an org's accounting API (OAuth, connections, control).
    fn enter(st: &AppState, req: &Request) -> Result<Option<InFlight>, (Provider, Limited)> {
        let Some((provider, org)) = api_org(req) else { return Ok(None) };
        let mut w = st.lock();
        w.enter(provider, &org).map_err(|l| (provider, l))?;
        let latency_ms = w.ps(provider).latency_ms;
        Ok(Some(InFlight { st: st.clone(), provider, org, latency_ms }))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.st.lock().leave(self.provider, &self.org);
    }
}

/// The org an accounting-API request is for: the QuickBooks realm in the path, Xero's
/// `xero-tenant-id` header, Zoho's `organization_id` parameter.
fn api_org(req: &Request) -> Option<(Provider, String)> {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/quickbooks/v3/company/") {
        let realm = rest.split('/').next().filter(|r| !r.is_empty())?;
        return Some((Provider::Quickbooks, realm.to_string()));
    }
    if path.starts_with("/xero/api.xro/") {
        let t = req.headers().get("xero-tenant-id")?.to_str().ok()?.trim().to_ascii_lowercase();
        return (!t.is_empty()).then_some((Provider::Xero, t));
    }
    if path.starts_with("/zoho/api/") && path.contains("/books/") {
        let org = url::form_urlencoded::parse(req.uri().query()?.as_bytes()).find(|(k, _)| k == "organization_id")?.1.into_owned();
        return (!org.is_empty()).then_some((Provider::Zoho, org));
    }
    None
}

/// QuickBooks' and Xero's accounting APIs answer XML unless the request asks for JSON.
fn xml_by_default(path: &str) -> bool {
    path.starts_with("/quickbooks/v3/") || path.starts_with("/xero/api.xro/")
}

/// The sandbox does not render XML: a client that forgot `Accept: application/json` gets an XML
/// document it cannot parse as JSON, which is the failure it would meet against the real API.
fn xml_stub(resp: Response, path: &str) -> Response {
    let root = if path.starts_with("/quickbooks/") { "IntuitResponse" } else { "Response" };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><{root} status=\"{}\"><!-- provider sandbox: send Accept: application/json --></{root}>",
        resp.status().as_u16()
    );
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/xml; charset=utf-8"));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn is_token_endpoint(path: &str) -> bool {
    path.ends_with("/tokens/bearer") || path.ends_with("/connect/token") || path.ends_with("/oauth/v2/token")
}

pub fn intuit_tid() -> String {
    format!("1-{:08x}-{}", chrono::Utc::now().timestamp(), crate::state::random_hex(12))
}

/// QuickBooks' Fault envelope, with the `intuit_tid` header Intuit support asks for.
pub fn qbo_fault(status: StatusCode, kind: &str, code: &str, message: &str, detail: &str) -> Response {
    let body = json!({
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind},
        "time": qbo_time(chrono::Utc::now()),
    });
    with_header(json_value(status, &body), "intuit_tid", &intuit_tid())
}

/// The lower-case envelope Intuit's API gateway answers with (authentication and throttling are
/// decided there, before the QuickBooks service that writes `Fault`): `{"fault":{"error":[{"message",
/// "detail","code"}],"type"}}`. Seen in Intuit's own SDK fixtures and many client reports; the
/// absence of a `time` member is unconfirmed.
pub fn qbo_gateway_fault(status: StatusCode, kind: &str, code: &str, message: &str, detail: &str) -> Response {
    let body = json!({"fault": {"error": [{"message": message, "detail": detail, "code": code}], "type": kind}});
    with_header(json_value(status, &body), "intuit_tid", &intuit_tid())
}

/// 401 for a missing, expired or revoked access token: type AUTHENTICATION, code 3200.
pub fn qbo_unauthorized(detail: &str) -> Response {
    qbo_gateway_fault(
        StatusCode::UNAUTHORIZED,
        "AUTHENTICATION",
        "3200",
        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        detail,
    )
}

/// QuickBooks' throttle: a SERVICE fault, code 3001, no Retry-After. The code's spelling in the JSON
/// member ("3001" vs "003001", which the message carries) is unconfirmed; clients should match both.
pub fn qbo_throttle() -> Response {
    qbo_gateway_fault(
        StatusCode::TOO_MANY_REQUESTS,
        "SERVICE",
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
    )
}

/// The throttle as an XML document even when JSON was asked for, with 429 or (as reported of older
/// gateway behaviour, unconfirmed by Intuit's docs) 403.
pub fn qbo_throttle_xml(status: StatusCode) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<IntuitResponse xmlns=\"http://schema.intuit.com/finance/v3\" time=\"{}\"><Fault type=\"SERVICE\"><Error code=\"3001\"><Message>message=ThrottleExceeded; errorCode=003001; statusCode={}</Message><Detail>The request limit was reached.</Detail></Error></Fault></IntuitResponse>",
        qbo_time(chrono::Utc::now()),
        status.as_u16()
    );
    let r = (status, [(axum::http::header::CONTENT_TYPE, "application/xml")], body).into_response();
    with_header(r, "intuit_tid", &intuit_tid())
}

pub fn xero_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "Type": null, "Title": title, "Status": status.as_u16(), "Detail": detail,
        "Instance": uuid::Uuid::new_v4().to_string(), "Extensions": {}
    });
    json_value(status, &body)
}

pub fn zoho_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_value(status, &json!({"code": code, "message": message}))
}

pub fn server_error(p: Provider) -> Response {
    match p {
        Provider::Quickbooks => qbo_fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SystemFault",
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving your data.",
        ),
        Provider::Xero => xero_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred",
            "An error occurred in Xero. Check the API Status page http://status.developer.xero.com for current service status.",
        ),
        Provider::Zoho => zoho_error(StatusCode::INTERNAL_SERVER_ERROR, 1000, "Internal error"),
    }
}

/// Each provider's throttling answer: QuickBooks a Fault with no Retry-After, Xero Retry-After plus
/// X-Rate-Limit-Problem and the remaining-quota headers, Zoho code 44 with no Retry-After.
pub fn rate_limited(p: Provider, l: &Limited) -> Response {
    match p {
        Provider::Quickbooks => qbo_throttle(),
        Provider::Xero => {
            let r = (StatusCode::TOO_MANY_REQUESTS, axum::body::Body::empty()).into_response();
            let r = with_header(r, "retry-after", &l.retry_after.to_string());
            let r = with_header(r, "x-rate-limit-problem", l.problem.xero_name());
            xero_quota_headers(r, &l.quota)
        }
        Provider::Zoho => zoho_error(StatusCode::TOO_MANY_REQUESTS, 44, "Rate Limit Exceeded (API usage limit exceeded)"),
    }
}

pub fn xero_quota_headers(mut r: Response, q: &Quota) -> Response {
    if let Some(v) = q.day_remaining {
        r = with_header(r, "x-daylimit-remaining", &v.to_string());
    }
    if let Some(v) = q.minute_remaining {
        r = with_header(r, "x-minlimit-remaining", &v.to_string());
    }
    if let Some(v) = q.app_minute_remaining {
        r = with_header(r, "x-appminlimit-remaining", &v.to_string());
    }
    r
}

pub fn unauthorized(p: Provider) -> Response {
    match p {
        Provider::Quickbooks => qbo_unauthorized("Token expired or invalid"),
        Provider::Xero => xero_unauthorized("AuthenticationUnsuccessful"),
        Provider::Zoho => zoho_error(StatusCode::UNAUTHORIZED, 57, "You are not authorized to perform this operation"),
    }
}

/// A 200 whose JSON stops half-way, as a proxy cutting a response short would leave it.
fn malformed(p: Provider, path: &str) -> Response {
    let body = if is_token_endpoint(path) {
        "{\"access_token\":\"eyJhbGciOi".to_string()
    } else {
        match p {
            Provider::Quickbooks => "{\"QueryResponse\":{\"Invoice\":[{\"Id\":\"1\",\"Line\":[".to_string(),
            Provider::Xero => "{\"Id\":\"9c0f\",\"Status\":\"OK\",\"Invoices\":[{\"InvoiceID\":".to_string(),
            Provider::Zoho => "{\"code\":0,\"message\":\"success\",\"invoices\":[{\"invoice_id\":".to_string(),
        }
    };
    json(StatusCode::OK, body)
}

pub async fn not_found(uri: Uri) -> Response {
    match Provider::from_path(uri.path()) {
        Some(Provider::Quickbooks) => {
            qbo_fault(StatusCode::NOT_FOUND, "ValidationFault", "404", "Resource not found", &format!("no such resource: {}", uri.path()))
        }
        Some(Provider::Xero) => xero_error(StatusCode::NOT_FOUND, "NotFound", "The resource you're looking for cannot be found"),
        Some(Provider::Zoho) => zoho_error(StatusCode::NOT_FOUND, 5, "Invalid URL Passed"),
        None => json_value(StatusCode::NOT_FOUND, &json!({"error": "not_found", "path": uri.path()})),
    }
}
