//! The oauth-callback function's HTTP layer: `GET /connect/{provider}`, `GET /oauth/{provider}/callback`
//! and `POST /disconnect/{provider}`. It parses API Gateway (HTTP API v2) requests, calls
//! `shared::connect`, and renders redirects and errors. Everything else lives in `shared`.

use chrono::{DateTime, Utc};
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use shared::connect::{self, app_auth, CallbackOutcome, ConnectDeps};
use shared::{Error, Provider, RequestContext};

pub use shared::connect::ConnectDeps as Deps;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Connect(Provider),
    Callback(Provider),
    Disconnect(Provider),
}

/// The route from the path's last segments, so a stage or proxy prefix (`/prod/connect/xero`,
/// cargo lambda's `/lambda-url/oauth-callback/...`) does not matter.
fn route(path: &str) -> Result<(Route, &'static str), Error> {
    let segs: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(3).collect();
    let provider = |s: &str| s.parse::<Provider>().map_err(|_| Error::NotFound(format!("no such provider '{s}'")));
    match segs.as_slice() {
        ["callback", p, "oauth", ..] => Ok((Route::Callback(provider(p)?), "GET")),
        [p, "connect", ..] => Ok((Route::Connect(provider(p)?), "GET")),
        [p, "disconnect", ..] => Ok((Route::Disconnect(provider(p)?), "POST")),
        _ => Err(Error::NotFound("no such route".into())),
    }
}

/// Decoded query pairs: from API Gateway's parsed parameters, or the URI when a caller built the
/// request without them.
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    let params = req.query_string_parameters();
    if !params.is_empty() {
        return params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// The browser's cookies: lambda_http folds API Gateway v2's `cookies` array into `Cookie` headers.
fn cookie_headers(req: &Request) -> Vec<&str> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect()
}

fn correlation_id(req: &Request) -> Option<String> {
    shared::context::CORRELATION_HEADERS.iter().find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()).map(str::to_string))
}

pub async fn handle(deps: &ConnectDeps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    handle_at(deps, req, Utc::now()).await
}

/// `handle` with the clock passed in (tests move it).
pub async fn handle_at(deps: &ConnectDeps, req: Request, now: DateTime<Utc>) -> Result<Response<Body>, lambda_http::Error> {
    let ctx = RequestContext::new(correlation_id(&req).as_deref());
    let correlation = ctx.correlation_id.clone();
    // Boxed: the flow's future (SDK calls nested several deep) is large, and it should live on the
    // heap rather than on whichever stack polls it.
    let mut resp = ctx.scope(Box::pin(dispatch(deps, &req, now))).await?;
    resp.headers_mut().insert("x-correlation-id", correlation.parse()?);
    // Every answer of this function is per user and some carry one-time values.
    resp.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse()?);
    resp.headers_mut().insert(header::REFERRER_POLICY, "no-referrer".parse()?);
    Ok(resp)
}

async fn dispatch(deps: &ConnectDeps, req: &Request, now: DateTime<Utc>) -> Result<Response<Body>, lambda_http::Error> {
    let path = req.uri().path().to_string();
    let (route, method) = match route(&path) {
        Ok(r) => r,
        Err(e) => return error_response(req, &e),
    };
    if req.method().as_str() != method {
        return error_response(req, &Error::MethodNotAllowed(format!("{} {path}", req.method())));
    }
    let query = query_pairs(req);
    match route {
        Route::Connect(provider) => {
            let result = async {
                let signed = verify_app_request(deps, "GET", &format!("/connect/{}", provider.as_str()), &query, now).await?;
                shared::context::scoped(
                    |c| c.with_tenant(&signed.tenant_id).with_provider(provider),
                    connect::start(deps, provider, &signed, now),
                )
                .await
            }
            .await;
            match result {
                Ok(started) => {
                    let mut resp = redirect(started.url.as_str())?;
                    resp.headers_mut().append(header::SET_COOKIE, started.set_cookie.parse()?);
                    Ok(resp)
                }
                Err(e) => {
                    tracing::info!(code = %e.code(), provider = %provider, error = %e, "connect refused");
                    error_response(req, &e)
                }
            }
        }
        Route::Callback(provider) => match connect::callback(deps, provider, &query, &cookie_headers(req), now).await {
            CallbackOutcome::Redirect { location, clear_cookie, .. } => {
                let mut resp = redirect(location.as_str())?;
                resp.headers_mut().append(header::SET_COOKIE, clear_cookie.parse()?);
                Ok(resp)
            }
            CallbackOutcome::Reject(e) => {
                tracing::warn!(code = %e.code(), provider = %provider, error = %e, "callback rejected");
                shared::telemetry::metric(
                    "CallbackRejected",
                    1.0,
                    "Count",
                    &[("provider", provider.as_str()), ("code", &e.code().to_string())],
                );
                if e.http_status() >= 500 {
                    shared::telemetry::metric(
                        "ConnectServerFailed",
                        1.0,
                        "Count",
                        &[("provider", provider.as_str()), ("reason", &e.code().to_string())],
                    );
                }
                error_response(req, &e)
            }
        },
        Route::Disconnect(provider) => {
            let result = async {
                let signed = verify_app_request(deps, "POST", &format!("/disconnect/{}", provider.as_str()), &query, now).await?;
                shared::context::scoped(
                    |c| c.with_tenant(&signed.tenant_id).with_provider(provider),
                    connect::disconnect_request(deps, provider, &signed, now),
                )
                .await
            }
            .await;
            match result {
                Ok(d) => json_response(
                    StatusCode::OK,
                    &serde_json::json!({
                        "status": "disconnected",
                        "provider": provider.as_str(),
                        "grant_id": d.grant_id,
                        "org_ids": d.org_ids,
                        "revoked_at_provider": d.revoked_at_provider,
                        "changed": d.changed,
                    }),
                ),
                Err(e) => {
                    tracing::info!(code = %e.code(), provider = %provider, error = %e, "disconnect refused");
                    error_response(req, &e)
                }
            }
        }
    }
}

async fn verify_app_request(
    deps: &ConnectDeps,
    method: &str,
    path: &str,
    query: &[(String, String)],
    now: DateTime<Utc>,
) -> shared::Result<app_auth::SignedRequest> {
    let signing = deps.secrets.app_signing(&deps.config.secrets.app_signing).await?;
    app_auth::verify(method, path, query.iter().map(|(k, v)| (k.as_str(), v.as_str())), &signing.connect_keys, now.timestamp())
}

fn redirect(location: &str) -> Result<Response<Body>, lambda_http::Error> {
    Ok(Response::builder().status(StatusCode::FOUND).header(header::LOCATION, location).body(Body::Empty)?)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Result<Response<Body>, lambda_http::Error> {
    Ok(Response::builder().status(status).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string()))?)
}

/// The error as JSON for API callers, or a small page for a browser (the callback is reached by
/// users' browsers, and when the state is bad we have nowhere trustworthy to send them). Both carry
/// only what [`Error::public_message`] allows plus the correlation id: a 5xx's own text stays in
/// our logs.
fn error_response(req: &Request, e: &Error) -> Result<Response<Body>, lambda_http::Error> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let correlation = shared::context::current().map(|c| c.correlation_id).unwrap_or_default();
    let wants_html = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if !wants_html {
        return json_response(status, &e.to_public_body(&correlation));
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Connection failed</title></head><body>\
         <h1>The connection could not be completed</h1><p>{}</p><p>Error code {}. Reference {}. Please start again from the app.</p></body></html>",
        html_escape(&e.public_message()),
        e.code(),
        html_escape(&correlation)
    );
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'none'")
        .body(Body::from(page))?)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ignore_prefixes_and_reject_unknown_paths() {
        assert_eq!(route("/connect/xero").unwrap(), (Route::Connect(Provider::Xero), "GET"));
        assert_eq!(route("/prod/connect/quickbooks/").unwrap(), (Route::Connect(Provider::QuickBooks), "GET"));
        assert_eq!(route("/lambda-url/oauth-callback/oauth/zoho/callback").unwrap(), (Route::Callback(Provider::Zoho), "GET"));
        assert_eq!(route("/disconnect/zoho").unwrap(), (Route::Disconnect(Provider::Zoho), "POST"));
        for bad in ["/", "/connect", "/connect/sage", "/oauth/xero", "/oauth/xero/callbackx", "/webhooks/xero"] {
            assert!(route(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn html_errors_are_escaped() {
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
