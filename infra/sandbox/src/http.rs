//! Response and request helpers shared by the provider modules.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.into()).into_response()
}

pub fn json_value(status: StatusCode, v: &serde_json::Value) -> Response {
    json(status, serde_json::to_string(v).expect("json"))
}

pub fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
    r
}

pub fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response(),
    }
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The token after `scheme ` in Authorization (scheme compared case-insensitively).
pub fn auth_token<'a>(h: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = header_str(h, "authorization")?.trim();
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim()).filter(|t| !t.is_empty())
}

/// HTTP Basic credentials (client_id, client_secret).
pub fn basic_auth(h: &HeaderMap) -> Option<(String, String)> {
    let raw = auth_token(h, "Basic")?;
    let decoded = STANDARD.decode(raw).ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Form or query string parameters; later duplicates win, as most servers do.
pub fn parse_form(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// Appends query parameters to a redirect URI that may already carry some.
pub fn add_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_string();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(&url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
        out.push('=');
        out.push_str(&url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
    }
    out
}
