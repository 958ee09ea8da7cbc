//! Signature checks over the raw body bytes, in constant time.
//!
//! QuickBooks (`intuit-signature`) and Xero (`x-xero-signature`) both send
//! base64(HMAC-SHA256(key, raw body)); the key is the app's verifier token / webhook key used as the
//! literal string's bytes. During a key rotation the current and the previous key are both accepted.
//!
//! Zoho Books: no confirmed signature scheme. Our registration puts a random per-organisation secret
//! in the `x-ttya-webhook-secret` header; [`verify_shared_secret`] compares it in constant time. An
//! `X-Zoho-Webhook-Signature` header, if Zoho sends one, is checked by [`zoho_signature_matches`]
//! following Zoho Billing's documented scheme, but only reported, never required (unconfirmed for Books).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result, SecretString};

type HmacSha256 = Hmac<Sha256>;

/// Which of the configured keys verified the delivery (a delivery under the previous key after a
/// rotation window should have closed is worth a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length")
}

/// base64(HMAC-SHA256(key, body)): what QuickBooks and Xero put in their signature headers. Used by
/// tests, the benchmark and anything that needs to produce a delivery.
pub fn sign_base64(key: &str, body: &[u8]) -> String {
    let mut m = mac(key.as_bytes());
    m.update(body);
    STANDARD.encode(m.finalize().into_bytes())
}

/// Checks a base64 HMAC-SHA256 signature header against the current key, then the previous one.
/// A missing header, one that is not base64, or one that matches neither key is `InvalidSignature`.
/// The comparison is `Mac::verify_slice`, which is constant time.
pub fn verify_hmac_base64(current: &SecretString, previous: Option<&SecretString>, body: &[u8], header: Option<&str>) -> Result<KeyUsed> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(Error::InvalidSignature)?;
    // A SHA-256 MAC is 44 base64 characters; anything much longer is not a signature and is not decoded.
    if header.len() > 64 {
        return Err(Error::InvalidSignature);
    }
    let tag = STANDARD.decode(header).or_else(|_| STANDARD_NO_PAD.decode(header)).map_err(|_| Error::InvalidSignature)?;
    let check = |key: &SecretString| {
        let mut m = mac(key.expose().as_bytes());
        m.update(body);
        m.verify_slice(&tag).is_ok()
    };
    if !current.is_empty() && check(current) {
        return Ok(KeyUsed::Current);
    }
    match previous {
        Some(p) if !p.is_empty() && check(p) => Ok(KeyUsed::Previous),
        _ => Err(Error::InvalidSignature),
    }
}

/// Compares the secret presented in our own header with the one we registered. Both sides are hashed
/// first so the comparison is constant time and does not reveal the secret's length.
pub fn verify_shared_secret(expected: &SecretString, presented: Option<&str>) -> Result<()> {
    let presented = presented.ok_or(Error::InvalidSignature)?;
    if expected.is_empty() {
        return Err(Error::InvalidSignature);
    }
    let a = Sha256::digest(expected.expose().as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

/// Zoho Billing's documented webhook signature: HMAC-SHA256(secret, concatenation of every query
/// parameter as key+value sorted by key, then the raw body). Hex or base64. Unconfirmed for Zoho
/// Books, so the receiver logs the result and does not reject on it.
pub fn zoho_signature_matches(secret: &SecretString, query: &[(String, String)], body: &[u8], header: &str) -> bool {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    let mut m = mac(secret.expose().as_bytes());
    for (k, v) in pairs {
        m.update(k.as_bytes());
        m.update(v.as_bytes());
    }
    m.update(body);
    let header = header.trim();
    let tag = match hex::decode(header) {
        Ok(t) => t,
        Err(_) => match STANDARD.decode(header) {
            Ok(t) => t,
            Err(_) => return false,
        },
    };
    m.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vector from RFC 4231 test case 2, so the HMAC wiring is checked against an outside
    // reference rather than against itself.
    #[test]
    fn matches_rfc4231_vector() {
        let sig = sign_base64("Jefe", b"what do ya want for nothing?");
        let expected = hex::decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843").unwrap();
        assert_eq!(STANDARD.decode(sig).unwrap(), expected);
    }

    #[test]
    fn current_and_previous_keys_verify_others_do_not() {
        let cur = SecretString::new("sandbox-qbo-verifier");
        let prev = SecretString::new("sandbox-qbo-verifier-old");
        let body = br#"{"eventNotifications":[]}"#;
        assert_eq!(
            verify_hmac_base64(&cur, Some(&prev), body, Some(&sign_base64("sandbox-qbo-verifier", body))).unwrap(),
            KeyUsed::Current
        );
        assert_eq!(
            verify_hmac_base64(&cur, Some(&prev), body, Some(&sign_base64("sandbox-qbo-verifier-old", body))).unwrap(),
            KeyUsed::Previous
        );
        assert!(verify_hmac_base64(&cur, None, body, Some(&sign_base64("sandbox-qbo-verifier-old", body))).is_err());
        assert!(verify_hmac_base64(&cur, Some(&prev), body, Some(&sign_base64("other", body))).is_err());
        // Header surrounded by whitespace is still accepted (proxies sometimes pad); unpadded base64 too.
        let sig = sign_base64("sandbox-qbo-verifier", body);
        assert!(verify_hmac_base64(&cur, None, body, Some(&format!(" {sig} "))).is_ok());
        assert!(verify_hmac_base64(&cur, None, body, Some(sig.trim_end_matches('='))).is_ok());
    }

    #[test]
    fn missing_garbled_truncated_or_altered_signatures_fail() {
        let cur = SecretString::new("k");
        let body = b"{\"events\":[]}";
        let sig = sign_base64("k", body);
        for bad in [None, Some(""), Some("not base64!"), Some(&sig[..20]), Some(&*"A".repeat(200))] {
            assert_eq!(verify_hmac_base64(&cur, None, body, bad).unwrap_err().code(), crate::ErrorCode::InvalidSignature, "{bad:?}");
        }
        let mut altered = body.to_vec();
        altered[3] ^= 1;
        assert!(verify_hmac_base64(&cur, None, &altered, Some(&sig)).is_err());
        assert!(verify_hmac_base64(&cur, None, &body[..body.len() - 1], Some(&sig)).is_err());
        // An empty configured key never verifies anything, even a signature made with the empty key.
        let empty = SecretString::new("");
        assert!(verify_hmac_base64(&empty, None, body, Some(&sign_base64("", body))).is_err());
    }

    #[test]
    fn shared_secret_compare() {
        let s = SecretString::new("abc123secret");
        assert!(verify_shared_secret(&s, Some("abc123secret")).is_ok());
        assert!(verify_shared_secret(&s, Some("abc123secreT")).is_err());
        assert!(verify_shared_secret(&s, Some("abc123secret ")).is_err());
        assert!(verify_shared_secret(&s, None).is_err());
        assert!(verify_shared_secret(&SecretString::new(""), Some("")).is_err());
    }

    #[test]
    fn zoho_billing_style_signature_hex_or_base64() {
        let secret = SecretString::new("zsecret");
        let q = vec![("organization_id".to_string(), "700000001".to_string()), ("a".to_string(), "1".to_string())];
        let body = br#"{"invoice":{"invoice_id":"1"}}"#;
        let mut m = mac(b"zsecret");
        m.update(b"a1organization_id700000001");
        m.update(body);
        let tag = m.finalize().into_bytes();
        assert!(zoho_signature_matches(&secret, &q, body, &hex::encode(tag)));
        assert!(zoho_signature_matches(&secret, &q, body, &STANDARD.encode(tag)));
        assert!(!zoho_signature_matches(&secret, &q, b"{}", &hex::encode(tag)));
        assert!(!zoho_signature_matches(&secret, &q, body, "zz"));
    }
}
