//! Authentication of requests the main app sends to the connect endpoints: the app signs the URL.
//!
//! Scheme (docs/connect-auth.md has the worked example):
//! - query parameters `tenant`, `user`, `ts` (unix seconds), `kid` (key id), `sig`, plus the
//!   endpoint's own (`return_url` and the single-use `jti` for connect, checked by the connect flow;
//!   `grant_id` or `org_id` for disconnect);
//! - `sig` = lower-case hex of HMAC-SHA256(connect_keys[kid], canonical), where canonical is
//!   `METHOD "\n" PATH "\n" QUERY`: PATH is `/connect/<provider>` or `/disconnect/<provider>` (never
//!   the stage or proxy prefix), and QUERY is every parameter except `sig`, each name and value
//!   percent-encoded as RFC 3986 (everything but `A-Z a-z 0-9 - . _ ~`), sorted by name, joined as
//!   `name=value` with `&`;
//! - accepted while |now - ts| <= 300 s. Several `kid`s can be valid at once, so keys rotate without
//!   downtime. Each parameter may appear once.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::{Error, Result, SecretString};

type HmacSha256 = hmac::Hmac<Sha256>;

/// How far the app's clock and ours may disagree, and how long a signed URL stays usable.
pub const MAX_SKEW_SECS: i64 = 300;

/// A request that passed the signature check. `params` excludes `sig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub tenant_id: String,
    pub user_id: String,
    pub kid: String,
    pub ts: i64,
    pub params: BTreeMap<String, String>,
}

impl SignedRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters (the same rule as SigV4).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The string the app signs.
pub fn canonical_string(method: &str, path: &str, params: &BTreeMap<String, String>) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k.as_str() != "sig").map(|(k, v)| (encode_component(k), encode_component(v))).collect();
    pairs.sort();
    let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, query)
}

/// Signs like the main app does; used by tests, the docs example and local tooling.
pub fn sign(key: &SecretString, method: &str, path: &str, params: &BTreeMap<String, String>) -> String {
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(canonical_string(method, path, params).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signed request. `pairs` are the decoded query parameters as received (a repeated name
/// is refused rather than guessed at); `keys` maps kid to key.
pub fn verify<'a>(
    method: &str,
    path: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    keys: &BTreeMap<String, SecretString>,
    now_unix: i64,
) -> Result<SignedRequest> {
    let mut params = BTreeMap::new();
    for (k, v) in pairs {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::Unauthenticated(format!("parameter '{k}' appears more than once")));
        }
    }
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let sig = get("sig").ok_or_else(|| Error::Unauthenticated("the request is not signed (no sig)".into()))?;
    let kid = get("kid").ok_or_else(|| Error::Unauthenticated("kid is missing".into()))?.to_string();
    let ts: i64 =
        get("ts").and_then(|t| t.parse().ok()).ok_or_else(|| Error::Unauthenticated("ts is missing or not unix seconds".into()))?;
    let key = keys.get(&kid).ok_or_else(|| Error::Unauthenticated("unknown kid".into()))?;
    let sig_bytes = hex::decode(sig).map_err(|_| Error::Unauthenticated("sig is not hex".into()))?;
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(canonical_string(method, path, &params).as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&sig_bytes).map_err(|_| Error::Unauthenticated("signature does not match".into()))?;
    // Freshness is checked after the signature, so an unsigned caller learns nothing about our clock.
    // Saturating: `ts` is the caller's number (only signed, not sane), and i64::MIN would overflow.
    if now_unix.saturating_sub(ts).saturating_abs() > MAX_SKEW_SECS {
        return Err(Error::Unauthenticated("signed request is stale (ts outside ±300 s)".into()));
    }
    let tenant_id = get("tenant").ok_or_else(|| Error::Unauthenticated("tenant is missing".into()))?.to_string();
    if !crate::tenancy::valid_tenant_id(&tenant_id) {
        return Err(Error::Unauthenticated("tenant is not a valid tenant id".into()));
    }
    let user_id = get("user").ok_or_else(|| Error::Unauthenticated("user is missing".into()))?.to_string();
    params.remove("sig");
    Ok(SignedRequest { tenant_id, user_id, kid, ts, params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn keys() -> BTreeMap<String, SecretString> {
        BTreeMap::from([("k1".to_string(), SecretString::new("app-key-one")), ("k2".to_string(), SecretString::new("app-key-two"))])
    }

    fn params(ts: i64) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("tenant".to_string(), "acme-1".to_string()),
            ("user".to_string(), "user@acme.example".to_string()),
            ("return_url".to_string(), "https://app.example.com/integrations?tab=accounting&x=a b".to_string()),
            ("ts".to_string(), ts.to_string()),
            ("kid".to_string(), "k1".to_string()),
        ])
    }

    fn signed(ts: i64) -> Vec<(String, String)> {
        let mut p = params(ts);
        let sig = sign(&keys()["k1"], "GET", "/connect/xero", &p);
        p.insert("sig".into(), sig);
        p.into_iter().collect()
    }

    fn check(pairs: &[(String, String)], path: &str, now: i64) -> Result<SignedRequest> {
        verify("GET", path, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys(), now)
    }

    #[test]
    fn canonical_string_is_sorted_and_rfc3986_encoded() {
        let c = canonical_string("get", "/connect/xero", &params(1_700_000_000));
        assert_eq!(
            c,
            "GET\n/connect/xero\nkid=k1&return_url=https%3A%2F%2Fapp.example.com%2Fintegrations%3Ftab%3Daccounting%26x%3Da%20b\
             &tenant=acme-1&ts=1700000000&user=user%40acme.example"
        );
    }

    #[test]
    fn a_correctly_signed_request_is_accepted_within_the_window() {
        let now = 1_700_000_000;
        for skew in [-MAX_SKEW_SECS, 0, MAX_SKEW_SECS] {
            let r = check(&signed(now + skew), "/connect/xero", now).unwrap();
            assert_eq!(r.tenant_id, "acme-1");
            assert_eq!(r.user_id, "user@acme.example");
            assert_eq!(r.param("return_url"), Some("https://app.example.com/integrations?tab=accounting&x=a b"));
            assert!(r.param("sig").is_none());
        }
    }

    /// Found by fuzz/connect_inputs: a signed `ts` far in the past overflowed the skew check
    /// (a panic in debug builds, a wrapped comparison in release).
    #[test]
    fn extreme_signed_timestamps_are_stale_not_a_panic() {
        let now = 1_700_000_000;
        for ts in [i64::MIN, i64::MIN + 1, i64::MIN + now, i64::MAX, -now] {
            let err = check(&signed(ts), "/connect/xero", now).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthenticated, "{ts}: {err}");
        }
    }

    /// (label, query pairs, path)
    type Case = (&'static str, Vec<(String, String)>, &'static str);

    #[test]
    fn every_kind_of_bad_request_is_unauthenticated() {
        let now = 1_700_000_000;
        let good = signed(now);
        let mut cases: Vec<Case> = vec![
            ("stale", signed(now - MAX_SKEW_SECS - 1), "/connect/xero"),
            ("future", signed(now + MAX_SKEW_SECS + 1), "/connect/xero"),
            ("other provider path", good.clone(), "/connect/zoho"),
            ("unsigned", good.iter().filter(|(k, _)| k != "sig").cloned().collect(), "/connect/xero"),
        ];
        let tamper = |name: &str, value: &str| -> Vec<(String, String)> {
            good.iter().map(|(k, v)| if k == name { (k.clone(), value.to_string()) } else { (k.clone(), v.clone()) }).collect()
        };
        cases.push(("other tenant", tamper("tenant", "acme-2"), "/connect/xero"));
        cases.push(("other return url", tamper("return_url", "https://evil.example"), "/connect/xero"));
        cases.push(("other kid", tamper("kid", "k2"), "/connect/xero"));
        cases.push(("unknown kid", tamper("kid", "k9"), "/connect/xero"));
        cases.push(("sig not hex", tamper("sig", "zz"), "/connect/xero"));
        cases.push(("sig truncated", tamper("sig", &good.iter().find(|(k, _)| k == "sig").unwrap().1[..62]), "/connect/xero"));
        let mut extra = good.clone();
        extra.push(("scope".into(), "everything".into()));
        cases.push(("added parameter", extra, "/connect/xero"));
        let mut dup = good.clone();
        dup.push(("tenant".into(), "acme-1".into()));
        cases.push(("repeated parameter", dup, "/connect/xero"));
        for (label, pairs, path) in cases {
            let err = check(&pairs, path, now).unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unauthenticated, "{label}: {err}");
            assert_eq!(err.http_status(), 401, "{label}");
        }
    }

    /// The worked example of docs/connect-auth.md.
    #[test]
    fn the_documented_example_verifies() {
        let key = SecretString::new("local-connect-signing-key-0123456789abcdef");
        let mut p = BTreeMap::from([
            ("tenant".to_string(), "acme-1".to_string()),
            ("user".to_string(), "user-42".to_string()),
            ("return_url".to_string(), "https://app.example.com/settings/integrations?tab=accounting".to_string()),
            ("ts".to_string(), "1767225600".to_string()),
            ("kid".to_string(), "local".to_string()),
            ("jti".to_string(), "0f8c2a9e-1d2b-4c3d-9e8f-7a6b5c4d3e2f".to_string()),
        ]);
        assert_eq!(sign(&key, "GET", "/connect/xero", &p), "7e3b3f9b56eb75e1a4e830b7b81d12a162527b5f872b267866f3f5a62a87e6f2");
        p.remove("return_url");
        p.remove("jti");
        p.insert("grant_id".into(), "5f0c3a4e-8f7e-4a53-9d2b-1f6b2c3d4e5f".into());
        assert_eq!(sign(&key, "POST", "/disconnect/xero", &p), "2490d31d4a0f8adc09cc629018b457d7697fbfd0da47e0fe702fafce2e581fe3");
        p.insert("sig".into(), "2490d31d4a0f8adc09cc629018b457d7697fbfd0da47e0fe702fafce2e581fe3".into());
        let keys = BTreeMap::from([("local".to_string(), key)]);
        let r = verify("POST", "/disconnect/xero", p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys, 1_767_225_600 + 299).unwrap();
        assert_eq!(r.param("grant_id"), Some("5f0c3a4e-8f7e-4a53-9d2b-1f6b2c3d4e5f"));
    }

    #[test]
    fn a_second_key_can_sign_during_rotation() {
        let now = 1_700_000_000;
        let mut p = params(now);
        p.insert("kid".into(), "k2".into());
        let sig = sign(&keys()["k2"], "POST", "/disconnect/zoho", &p);
        p.insert("sig".into(), sig);
        let r = verify("POST", "/disconnect/zoho", p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys(), now).unwrap();
        assert_eq!(r.kid, "k2");
        // The same signature does not authorise the other method.
        assert!(verify("GET", "/disconnect/zoho", p.iter().map(|(k, v)| (k.as_str(), v.as_str())), &keys(), now).is_err());
    }
}
