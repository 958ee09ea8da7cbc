//! Any bytes through signature verification and every provider's parser: no panic, and a body signed
//! with the right key is never rejected as a bad signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::webhooks::{parse, verify, verify_and_parse};
use shared::{ErrorCode, Provider, SecretString};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let provider = match selector % 3 {
        0 => Provider::QuickBooks,
        1 => Provider::Xero,
        _ => Provider::Zoho,
    };
    let key = SecretString::new("fuzz-key");
    // Arbitrary header values.
    let _ = verify::verify_hmac_base64(&key, None, body, std::str::from_utf8(body).ok());
    let _ = verify::zoho_signature_matches(&key, &[], body, &String::from_utf8_lossy(body));
    // Parsing as if the signature had verified.
    let _ = parse::parse(provider, body, Some("700000001"));
    let sig = verify::sign_base64("fuzz-key", body);
    if let Err(e) = verify_and_parse(provider, &key, None, body, Some(&sig)) {
        assert_ne!(e.code(), ErrorCode::InvalidSignature);
    }
});
