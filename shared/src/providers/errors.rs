//! From a provider's HTTP answer to our error codes.
//!
//! The status code alone is not enough anywhere: QuickBooks can answer 200 with a `Fault`, Zoho
//! answers 200 with a non-zero `code`, and the rate-limit answers differ in what they tell us about
//! waiting. Families: auth (ProviderAuth, not retryable: the caller refreshes or reconnects), rate
//! limit (retryable, with the wait), transient (retryable), permanent (not retryable), not found.
//! Messages carry the provider's own description and its request id, never tokens.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::Value;

use crate::error::Error;
use crate::providers::model::RateLimitInfo;
use crate::providers::Provider;

/// Intuit's guidance for a 429, which carries no Retry-After.
pub const QUICKBOOKS_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Zoho's per-minute window; its 429 carries no Retry-After either.
pub const ZOHO_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Zoho's daily budget is spent: wait an hour before trying again (the reset time is not
/// announced; an hour bounds both the wasted calls and the delay after the reset).
pub const ZOHO_DAY_LIMIT_WAIT: Duration = Duration::from_secs(3600);
/// We never honour a wait longer than this from a header; the resilience layer parks longer outages.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Provider text we put into an error message is cut to this many characters.
const MAX_MESSAGE: usize = 500;

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A date in the past means
/// "now"; anything unparseable is ignored rather than trusted.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = value.parse().ok()?;
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The rate-limit headers of any response (Xero sends them on every one).
pub fn rate_limit_info(headers: &HeaderMap, now: DateTime<Utc>) -> RateLimitInfo {
    let num = |name: &str| header(headers, name).and_then(|v| v.parse::<u32>().ok());
    RateLimitInfo {
        day_remaining: num("x-daylimit-remaining"),
        minute_remaining: num("x-minlimit-remaining"),
        app_minute_remaining: num("x-appminlimit-remaining"),
        retry_after: header(headers, "retry-after").and_then(|v| parse_retry_after(v, now)),
        problem: header(headers, "x-rate-limit-problem").map(|p| p.to_ascii_lowercase()),
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_MESSAGE {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_MESSAGE).collect();
        out.push('…');
        out
    }
}

/// The body as text for a message when it is not the JSON we expected.
fn body_snippet(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".into();
    }
    clip(&String::from_utf8_lossy(body))
}

/// Families by status, for bodies that say nothing more specific.
fn by_status(provider: Provider, status: u16, message: String, retry_after: Option<Duration>, default_wait: Option<Duration>) -> Error {
    match status {
        401 | 403 => Error::ProviderAuth { provider, reason: format!("HTTP {status}: {message}") },
        404 | 410 => Error::NotFound(format!("{provider}: {message}")),
        408 | 500..=599 => Error::ProviderTransient { provider, status: Some(status), message },
        429 => Error::ProviderRateLimited { provider, problem: "rate limit".into(), retry_after: retry_after.or(default_wait) },
        _ => Error::ProviderPermanent { provider, status: Some(status), message },
    }
}

/// The first of several possible spellings of a key (QuickBooks' gateway uses lower case).
fn get_ci<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| v.get(*k))
}

fn str_ci(v: &Value, keys: &[&str]) -> Option<String> {
    match get_ci(v, keys)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The text between `<tag ...>` and `</tag>` (first occurrence), and the value of `attr` on that
/// opening tag. Enough of XML for Intuit's error documents; no entity decoding is needed for the
/// fields we classify on (type, code), and message text is only shown.
fn xml_element<'a>(doc: &'a str, tag: &str, attr: Option<&str>) -> Option<(Option<&'a str>, &'a str)> {
    let open = format!("<{tag}");
    let mut from = 0;
    let start = loop {
        let i = from + doc.get(from..)?.find(&open)?;
        // `<Fault` must not match `<FaultInfo`.
        match doc.as_bytes().get(i + open.len()) {
            Some(b'>' | b' ' | b'\t' | b'\r' | b'\n' | b'/') => break i,
            _ => from = i + open.len(),
        }
    };
    let head_end = start + doc.get(start..)?.find('>')?;
    let head = &doc[start..head_end];
    let attr_value = attr.and_then(|a| {
        let key = format!("{a}=\"");
        let at = head.find(&key)? + key.len();
        let len = head.get(at..)?.find('"')?;
        head.get(at..at + len)
    });
    if head.ends_with('/') {
        return Some((attr_value, ""));
    }
    let close = format!("</{tag}>");
    let body_start = head_end + 1;
    let body_len = doc.get(body_start..)?.find(&close).unwrap_or(doc.len() - body_start);
    Some((attr_value, doc.get(body_start..body_start + body_len).unwrap_or("")))
}

/// Intuit's XML error document (`<IntuitResponse><Fault type=".."><Error code=".."><Message>..`) as
/// the JSON shape the classifier reads. QuickBooks answers XML for some errors even when JSON was
/// asked for (throttles from the gateway, historically with 403), so this is not just for clients
/// that forgot the Accept header.
fn quickbooks_xml_fault(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('<') {
        return None;
    }
    let (kind, inner) = xml_element(text, "Fault", Some("type"))?;
    let mut errors = Vec::new();
    let mut rest = inner;
    while let Some((code, err)) = xml_element(rest, "Error", Some("code")) {
        let field = |t: &str| xml_element(err, t, None).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
        errors.push(serde_json::json!({"code": code.unwrap_or(""), "Message": field("Message"), "Detail": field("Detail")}));
        // Step past this element; an unterminated one ends the scan.
        let Some(pos) = rest.find("</Error>") else { break };
        rest = &rest[pos + "</Error>".len()..];
        if errors.len() >= 20 {
            break;
        }
    }
    Some(serde_json::json!({"Fault": {"type": kind.unwrap_or(""), "Error": errors}}))
}

/// QuickBooks: `Fault` (any status, including 200), gateway `fault`, the XML `<Fault>` document,
/// or a bare status.
pub fn quickbooks_error(resp: &ApiResponse, now: DateTime<Utc>) -> Option<Error> {
    let provider = Provider::QuickBooks;
    let body = resp.json().or_else(|| quickbooks_xml_fault(&resp.body));
    let fault = body.as_ref().and_then(|b| get_ci(b, &["Fault", "fault"]));
    let ok_status = (200..300).contains(&resp.status);
    if ok_status && fault.is_none() {
        return None;
    }
    let tid = resp.header("intuit_tid").map(|t| format!(" (intuit_tid {t})")).unwrap_or_default();
    let retry_after = resp.header("retry-after").and_then(|v| parse_retry_after(v, now));
    let Some(fault) = fault else {
        let message = format!("{}{tid}", body_snippet(&resp.body));
        // A throttle is a throttle whatever the status and body format (HTML/XML pages from the
        // gateway have been seen with 403): it must not send the grant to re-authorisation.
        if resp.status != 200 && String::from_utf8_lossy(&resp.body).contains("ThrottleExceeded") {
            return Some(Error::ProviderRateLimited {
                provider,
                problem: "throttle".into(),
                retry_after: retry_after.or(Some(QUICKBOOKS_THROTTLE_WAIT)),
            });
        }
        return Some(by_status(provider, resp.status, message, retry_after, Some(QUICKBOOKS_THROTTLE_WAIT)));
    };
    let kind = str_ci(fault, &["type", "Type"]).unwrap_or_default();
    let errors: Vec<&Value> = get_ci(fault, &["Error", "error"]).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let codes: Vec<String> = errors.iter().filter_map(|e| str_ci(e, &["code", "Code"])).collect();
    let text: Vec<String> = errors
        .iter()
        .map(|e| {
            let m = str_ci(e, &["Message", "message"]).unwrap_or_default();
            let d = str_ci(e, &["Detail", "detail"]).unwrap_or_default();
            let c = str_ci(e, &["code", "Code"]).unwrap_or_default();
            format!("[{c}] {m}{}", if d.is_empty() { String::new() } else { format!(": {d}") })
        })
        .collect();
    let message = clip(&format!("{kind} {}{tid}", text.join("; ")));
    let throttled = resp.status == 429
        || codes.iter().any(|c| c.trim_start_matches('0') == "3001")
        || text.iter().any(|t| t.contains("ThrottleExceeded"));
    if throttled {
        return Some(Error::ProviderRateLimited {
            provider,
            problem: "throttle".into(),
            retry_after: retry_after.or(Some(QUICKBOOKS_THROTTLE_WAIT)),
        });
    }
    let kind_lc = kind.to_ascii_lowercase();
    if resp.status == 401 || kind_lc.starts_with("authentication") {
        return Some(Error::ProviderAuth { provider, reason: message });
    }
    if resp.status == 403 || kind_lc.starts_with("authorization") {
        return Some(Error::ProviderAuth { provider, reason: message });
    }
    // 610: "Object Not Found".
    if resp.status == 404 || codes.iter().any(|c| c == "610") {
        return Some(Error::NotFound(format!("{provider}: {message}")));
    }
    if resp.status >= 500 || kind_lc == "systemfault" {
        return Some(Error::ProviderTransient { provider, status: Some(resp.status), message });
    }
    Some(Error::ProviderPermanent { provider, status: Some(resp.status), message })
}

/// Xero: problem JSON for 401, `ValidationException` for 400, 429 with its headers.
pub fn xero_error(resp: &ApiResponse, now: DateTime<Utc>) -> Option<Error> {
    let provider = Provider::Xero;
    if (200..300).contains(&resp.status) {
        return None;
    }
    let limits = rate_limit_info(&resp.headers, now);
    if resp.status == 429 {
        return Some(Error::ProviderRateLimited {
            provider,
            problem: limits.problem.unwrap_or_else(|| "unknown".into()),
            retry_after: limits.retry_after,
        });
    }
    let message = match resp.json() {
        Some(body) => {
            let mut parts = Vec::new();
            for k in ["Type", "Title", "Message", "Detail"] {
                if let Some(s) = body.get(k).and_then(Value::as_str) {
                    parts.push(s.to_string());
                }
            }
            // Validation messages sit on each element.
            if let Some(elements) = body.get("Elements").and_then(Value::as_array) {
                for e in elements {
                    for ve in e.get("ValidationErrors").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(m) = ve.get("Message").and_then(Value::as_str) {
                            parts.push(m.to_string());
                        }
                    }
                }
            }
            if parts.is_empty() {
                body_snippet(&resp.body)
            } else {
                clip(&parts.join(": "))
            }
        }
        None => body_snippet(&resp.body),
    };
    Some(by_status(provider, resp.status, message, limits.retry_after, None))
}

/// Zoho Books: `{"code": <non-zero>, "message": ..}` with any status, 429 with code 44.
pub fn zoho_error(resp: &ApiResponse, now: DateTime<Utc>) -> Option<Error> {
    let provider = Provider::Zoho;
    let body = resp.json();
    let code = body.as_ref().and_then(|b| b.get("code")).and_then(Value::as_i64);
    let ok_status = (200..300).contains(&resp.status);
    if ok_status && code.unwrap_or(0) == 0 && body.as_ref().and_then(|b| b.get("error")).is_none() {
        return None;
    }
    let retry_after = resp.header("retry-after").and_then(|v| parse_retry_after(v, now));
    let text = body
        .as_ref()
        .and_then(|b| b.get("message").or_else(|| b.get("error")))
        .and_then(Value::as_str)
        .map(clip)
        .unwrap_or_else(|| body_snippet(&resp.body));
    let message = match code {
        Some(c) => format!("code {c}: {text}"),
        None => text,
    };
    // 45 (unconfirmed code, modelled by the sandbox) or a message about the day: the org's per-plan
    // daily budget is spent, and retrying every minute until midnight would only spend calls on 429s.
    let daily = code == Some(45) || message.to_ascii_lowercase().contains("for the day");
    if resp.status == 429 && daily {
        return Some(Error::ProviderRateLimited {
            provider,
            problem: "day".into(),
            retry_after: retry_after.or(Some(ZOHO_DAY_LIMIT_WAIT)),
        });
    }
    if resp.status == 429 || code == Some(44) {
        return Some(Error::ProviderRateLimited {
            provider,
            problem: "api usage".into(),
            retry_after: retry_after.or(Some(ZOHO_THROTTLE_WAIT)),
        });
    }
    // 57: not authorised for the operation; 14: invalid OAuth token.
    if matches!(code, Some(57) | Some(14)) && resp.status != 404 {
        return Some(Error::ProviderAuth { provider, reason: message });
    }
    if ok_status {
        // 1000 is Zoho's "Internal error".
        if code == Some(1000) {
            return Some(Error::ProviderTransient { provider, status: Some(resp.status), message });
        }
        return Some(Error::ProviderPermanent { provider, status: Some(resp.status), message });
    }
    Some(by_status(provider, resp.status, message, retry_after, Some(ZOHO_THROTTLE_WAIT)))
}

pub fn provider_error(provider: Provider, resp: &ApiResponse, now: DateTime<Utc>) -> Option<Error> {
    match provider {
        Provider::QuickBooks => quickbooks_error(resp, now),
        Provider::Xero => xero_error(resp, now),
        Provider::Zoho => zoho_error(resp, now),
    }
}

/// The JSON body of a successful response, or ProviderMalformed.
pub fn success_json(provider: Provider, resp: &ApiResponse) -> Result<Value, Error> {
    serde_json::from_slice(&resp.body).map_err(|e| Error::ProviderMalformed {
        provider,
        message: format!("HTTP {} body is not JSON ({}): {}", resp.status, e.classify_name(), body_snippet(&resp.body)),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: Value) -> ApiResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        ApiResponse { status, headers: h, body: Bytes::from(serde_json::to_vec(&body).unwrap()) }
    }

    fn raw(status: u16, body: &str) -> ApiResponse {
        ApiResponse { status, headers: HeaderMap::new(), body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now()), Some(Duration::from_secs(30)));
        // A date in the past means retry now, not a negative wait.
        assert_eq!(parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("9999999999", now()), Some(MAX_RETRY_AFTER));
        for junk in ["", "-5", "soon", "1.5", "2026-03-01T12:00:30Z"] {
            assert_eq!(parse_retry_after(junk, now()), None, "{junk}");
        }
    }

    #[test]
    fn xero_rate_limit_headers_are_parsed() {
        let r =
            resp(200, &[("X-DayLimit-Remaining", "4990"), ("X-MinLimit-Remaining", "58"), ("X-AppMinLimit-Remaining", "9999")], json!({}));
        let info = rate_limit_info(&r.headers, now());
        assert_eq!((info.day_remaining, info.minute_remaining, info.app_minute_remaining), (Some(4990), Some(58), Some(9999)));
        assert_eq!(info.retry_after, None);
        let r = resp(429, &[("Retry-After", "17"), ("X-Rate-Limit-Problem", "Minute"), ("X-MinLimit-Remaining", "x")], json!({}));
        let info = rate_limit_info(&r.headers, now());
        assert_eq!(
            (info.retry_after, info.problem.as_deref(), info.minute_remaining),
            (Some(Duration::from_secs(17)), Some("minute"), None)
        );
    }

    fn check(e: Option<Error>, code: ErrorCode, retryable: bool) -> Error {
        let e = e.expect("an error");
        assert_eq!(e.code(), code, "{e:?}");
        assert_eq!(e.is_retryable(), retryable, "{e:?}");
        e
    }

    #[test]
    fn quickbooks_faults_map_by_type_and_code_even_on_200() {
        let fault =
            |t: &str, code: &str| json!({"Fault": {"Error": [{"Message": "m", "Detail": "d", "code": code}], "type": t}, "time": "x"});
        assert!(quickbooks_error(&resp(200, &[], json!({"QueryResponse": {}})), now()).is_none());
        let e = check(
            quickbooks_error(&resp(200, &[("intuit_tid", "tid-1")], fault("ValidationFault", "6000")), now()),
            ErrorCode::ProviderPermanent,
            false,
        );
        assert!(e.to_string().contains("tid-1"));
        check(quickbooks_error(&resp(400, &[], fault("ValidationFault", "2020")), now()), ErrorCode::ProviderPermanent, false);
        check(quickbooks_error(&resp(200, &[], fault("SystemFault", "10000")), now()), ErrorCode::ProviderTransient, true);
        check(quickbooks_error(&resp(401, &[], fault("AuthenticationFault", "100")), now()), ErrorCode::ProviderAuthFailed, false);
        check(quickbooks_error(&resp(403, &[], fault("AuthorizationFault", "120")), now()), ErrorCode::ProviderAuthFailed, false);
        check(quickbooks_error(&resp(400, &[], fault("ValidationFault", "610")), now()), ErrorCode::NotFound, false);
        // The gateway's lower-case shape.
        let gw = json!({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401", "detail": "Token expired", "code": "3200"}], "type": "AUTHENTICATION"}});
        check(quickbooks_error(&resp(401, &[], gw), now()), ErrorCode::ProviderAuthFailed, false);
        check(quickbooks_error(&raw(503, "<html>down</html>"), now()), ErrorCode::ProviderTransient, true);
        check(quickbooks_error(&raw(404, ""), now()), ErrorCode::NotFound, false);
    }

    #[test]
    fn quickbooks_throttle_suggests_sixty_seconds() {
        let body = json!({"Fault": {"Error": [{"Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429", "Detail": "", "code": "003001"}], "type": "SERVICE"}});
        let e = check(quickbooks_error(&resp(429, &[], body.clone()), now()), ErrorCode::ProviderRateLimited, true);
        assert_eq!(e.retry_after(), Some(QUICKBOOKS_THROTTLE_WAIT));
        // Throttle code inside a 200 and a bare 429 are the same family.
        check(quickbooks_error(&resp(200, &[], body), now()), ErrorCode::ProviderRateLimited, true);
        let e = check(quickbooks_error(&raw(429, ""), now()), ErrorCode::ProviderRateLimited, true);
        assert_eq!(e.retry_after(), Some(QUICKBOOKS_THROTTLE_WAIT));
    }

    fn xml(status: u16, body: &str) -> ApiResponse {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/xml".parse().unwrap());
        ApiResponse { status, headers: h, body: Bytes::from(body.to_string()) }
    }

    const XML_THROTTLE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-03-01T04:00:00.000-08:00">
<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
<Detail>The request limit was reached.</Detail></Error></Fault></IntuitResponse>"#;

    #[test]
    fn quickbooks_shapes_as_sent_are_classified() {
        // Lower-case gateway SERVICE fault with code 3001 is a throttle, on 429 and (historically) 403.
        let svc = json!({"fault": {"error": [{"message": "message=ThrottleExceeded; errorCode=003001; statusCode=429", "detail": "The request limit was reached.", "code": "3001"}], "type": "SERVICE"}});
        check(quickbooks_error(&resp(429, &[], svc.clone()), now()), ErrorCode::ProviderRateLimited, true);
        check(quickbooks_error(&resp(403, &[], svc), now()), ErrorCode::ProviderRateLimited, true);
        // XML even though JSON was asked for: 429 and 403 throttles never become ProviderAuth.
        let e = check(quickbooks_error(&xml(429, XML_THROTTLE), now()), ErrorCode::ProviderRateLimited, true);
        assert_eq!(e.retry_after(), Some(QUICKBOOKS_THROTTLE_WAIT));
        check(quickbooks_error(&xml(403, XML_THROTTLE), now()), ErrorCode::ProviderRateLimited, true);
        // Without a Fault element but naming the throttle (a gateway page).
        check(quickbooks_error(&raw(403, "<html><body>ThrottleExceeded</body></html>"), now()), ErrorCode::ProviderRateLimited, true);
        // XML authentication fault and authorisation fault.
        let auth = r#"<IntuitResponse><Fault type="AUTHENTICATION"><Error code="3200"><Message>message=AuthenticationFailed; errorCode=003200; statusCode=401</Message><Detail>Token expired</Detail></Error></Fault></IntuitResponse>"#;
        let e = check(quickbooks_error(&xml(401, auth), now()), ErrorCode::ProviderAuthFailed, false);
        assert!(e.to_string().contains("3200"), "{e}");
        let forbidden = r#"<IntuitResponse><Fault type="AuthorizationFault"><Error code="120"><Message>Authorization Failure</Message></Error></Fault></IntuitResponse>"#;
        check(quickbooks_error(&xml(403, forbidden), now()), ErrorCode::ProviderAuthFailed, false);
        // A validation fault in XML inside a 200 is still an error.
        let v = r#"<IntuitResponse><Fault type="ValidationFault"><Error code="4001"><Message>Invalid query</Message></Error></Fault></IntuitResponse>"#;
        check(quickbooks_error(&xml(200, v), now()), ErrorCode::ProviderPermanent, false);
        // Hostile XML does not panic.
        for junk in ["<Fault type=\"", "<Fault", "<Fault><Error code=\"3001", "<FaultX type=\"SERVICE\">", "<Fault/>", "<\u{e9}Fault"] {
            let _ = quickbooks_error(&xml(400, junk), now());
        }
        check(
            quickbooks_error(&xml(400, "<FaultX type=\"SERVICE\"><Error code=\"3001\"/></FaultX>"), now()),
            ErrorCode::ProviderPermanent,
            false,
        );
    }

    #[test]
    fn xero_errors_map_by_status_with_validation_messages() {
        assert!(xero_error(&resp(200, &[], json!({"Invoices": []})), now()).is_none());
        let v = json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
            "Elements": [{"ValidationErrors": [{"Message": "Email address must be valid."}]}]});
        let e = check(xero_error(&resp(400, &[], v), now()), ErrorCode::ProviderPermanent, false);
        assert!(e.to_string().contains("Email address must be valid."), "{e}");
        let u = json!({"Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"});
        let e = check(xero_error(&resp(401, &[], u), now()), ErrorCode::ProviderAuthFailed, false);
        assert!(e.to_string().contains("AuthenticationUnsuccessful"));
        check(xero_error(&resp(403, &[], json!({"Title": "Forbidden"})), now()), ErrorCode::ProviderAuthFailed, false);
        check(xero_error(&raw(404, "The resource you're looking for cannot be found"), now()), ErrorCode::NotFound, false);
        check(xero_error(&raw(500, ""), now()), ErrorCode::ProviderTransient, true);
        check(xero_error(&raw(503, "Organisation is offline"), now()), ErrorCode::ProviderTransient, true);
        let e = check(
            xero_error(&resp(429, &[("Retry-After", "42"), ("X-Rate-Limit-Problem", "day")], json!({})), now()),
            ErrorCode::ProviderRateLimited,
            true,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(42)));
        assert!(matches!(e, Error::ProviderRateLimited { ref problem, .. } if problem == "day"));
    }

    #[test]
    fn zoho_non_zero_codes_are_errors_whatever_the_status() {
        assert!(zoho_error(&resp(200, &[], json!({"code": 0, "message": "success"})), now()).is_none());
        assert!(zoho_error(&resp(201, &[], json!({"code": 0, "invoice": {}})), now()).is_none());
        check(
            zoho_error(&resp(200, &[], json!({"code": 1002, "message": "Invoice does not exist."})), now()),
            ErrorCode::ProviderPermanent,
            false,
        );
        check(zoho_error(&resp(400, &[], json!({"code": 1002, "message": "x"})), now()), ErrorCode::ProviderPermanent, false);
        check(zoho_error(&resp(404, &[], json!({"code": 1002, "message": "Invoice does not exist."})), now()), ErrorCode::NotFound, false);
        check(
            zoho_error(&resp(401, &[], json!({"code": 57, "message": "You are not authorized"})), now()),
            ErrorCode::ProviderAuthFailed,
            false,
        );
        check(zoho_error(&resp(200, &[], json!({"code": 1000, "message": "Internal error"})), now()), ErrorCode::ProviderTransient, true);
        check(zoho_error(&resp(500, &[], json!({"code": 1000, "message": "Internal error"})), now()), ErrorCode::ProviderTransient, true);
        check(zoho_error(&resp(200, &[], json!({"error": "invalid_code"})), now()), ErrorCode::ProviderPermanent, false);
        let e = check(
            zoho_error(&resp(429, &[], json!({"code": 44, "message": "Rate Limit Exceeded (API usage limit exceeded)"})), now()),
            ErrorCode::ProviderRateLimited,
            true,
        );
        assert_eq!(e.retry_after(), Some(ZOHO_THROTTLE_WAIT));
        check(zoho_error(&raw(502, "bad gateway"), now()), ErrorCode::ProviderTransient, true);
        // The per-plan daily budget spent: a rate limit with a long wait, named "day".
        let e = check(
            zoho_error(
                &resp(
                    429,
                    &[],
                    json!({"code": 45, "message": "Rate Limit Exceeded (API usage limit exceeded): the organization's API calls for the day are used up"}),
                ),
                now(),
            ),
            ErrorCode::ProviderRateLimited,
            true,
        );
        assert_eq!(e.retry_after(), Some(ZOHO_DAY_LIMIT_WAIT));
        assert!(matches!(e, Error::ProviderRateLimited { ref problem, .. } if problem == "day"));
    }

    #[test]
    fn malformed_success_bodies_are_reported_without_panicking() {
        let e = success_json(Provider::Xero, &raw(200, "{\"Invoices\": [")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ProviderMalformed);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("truncated"), "{e}");
        let long = "x".repeat(5000);
        let e = xero_error(&raw(400, &long), now()).unwrap();
        assert!(e.to_string().len() < 700);
    }
}
