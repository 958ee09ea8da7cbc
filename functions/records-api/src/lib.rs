//! The records-api function's HTTP layer: parses API Gateway (HTTP API v2) requests, calls
//! `shared::records::handle`, and answers JSON. Everything else lives in `shared::records`.

use chrono::{DateTime, Utc};
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use shared::records::{ApiRequest, RecordsApi};
use shared::RequestContext;

/// Decoded query pairs: from API Gateway's parsed parameters, or the URI when a caller built the
/// request without them. A repeated name stays repeated, so the signature check refuses it.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let params = req.query_string_parameters();
    if !params.is_empty() {
        return params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn correlation_id(req: &Request) -> Option<String> {
    shared::context::CORRELATION_HEADERS.iter().find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()).map(str::to_string))
}

pub async fn handle(api: &RecordsApi, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    handle_at(api, req, Utc::now()).await
}

/// `handle` with the clock passed in (tests move it).
pub async fn handle_at(api: &RecordsApi, req: Request, now: DateTime<Utc>) -> Result<Response<Body>, lambda_http::Error> {
    let ctx = RequestContext::new(correlation_id(&req).as_deref());
    let correlation = ctx.correlation_id.clone();
    let query = query_pairs(&req);
    let path = req.uri().path().to_string();
    let request = ApiRequest { method: req.method().as_str(), path: &path, query: &query };
    let result = ctx.scope(Box::pin(shared::records::handle(api, &request, now))).await;
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => {
            if e.http_status() >= 500 {
                tracing::error!(code = %e.code(), error = %e, correlation_id = %correlation, "records request failed");
            } else {
                tracing::info!(code = %e.code(), error = %e, correlation_id = %correlation, "records request refused");
            }
            (StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_public_body(&correlation))
        }
    };
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        // Tenant data, per user: never cached by a proxy.
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-correlation-id", correlation)
        .body(Body::from(body.to_string()))?)
}
