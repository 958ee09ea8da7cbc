//! Randomised robustness test over verification and parsing, run by CI (the coverage-guided libFuzzer
//! target is fuzz/fuzz_targets/verify_parse.rs, run with scripts/fuzz). Valid signed payloads of every format
//! are mutated (bit flips, byte overwrites, truncation, insertion, deletion, splices between payloads,
//! random bytes, signature tampering) and run through `verify_and_parse`. Asserted for every input:
//! no panic, no mutated body verifies under the original signature, and a body signed with the right
//! key either parses or is rejected as invalid input - never anything else.
//!
//! `WEBHOOK_FUZZ_ITERATIONS` overrides the count (default 100,000); `WEBHOOK_FUZZ_SEED` replays a run.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::webhooks::{parse, verify, verify_and_parse};
use shared::{ErrorCode, Provider, SecretString};

const KEY: &str = "fuzz-key";

fn seeds() -> Vec<(Provider, Vec<u8>)> {
    vec![
        (Provider::QuickBooks, br#"{"eventNotifications":[{"realmId":"310687","dataChangeEvent":{"entities":[{"id":"1234","operation":"Create","name":"Account","lastUpdated":"2025-09-08T20:52:31.657Z"},{"id":"9","operation":"Merge","name":"Customer","lastUpdated":"2025-09-08T20:52:31.657Z"}]}}]}"#.to_vec()),
        (Provider::QuickBooks, br#"[{"specversion":"1.0","id":"88cd52aa-33b6-4351-9aa4-47572edbd068","source":"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.account.created.v1","datacontenttype":"application/json","time":"2025-09-10T21:31:25.179851517Z","intuitentityid":"1234","intuitaccountid":"310687","data":{}}]"#.to_vec()),
        (Provider::Xero, br#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","resourceId":"717f2bfc-c6d4-41fd-b238-3f2f0c0cf777","eventDateUtc":"2024-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"CONTACT","tenantId":"c2cc9b6e-9458-4c7d-93cc-f02b81b0594f","tenantType":"ORGANISATION"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}"#.to_vec()),
        (Provider::Xero, br#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"CWJLQXKOBYLKYFYHGXCK"}"#.to_vec()),
        (Provider::Zoho, br#"{"organization_id":"700000001","entity":"invoice","entity_id":"460000000012345","event":"updated","last_modified_time":"2026-11-24T17:59:41+0000"}"#.to_vec()),
        (Provider::Zoho, b"JSONString=%7B%22invoice%22%3A%7B%22invoice_id%22%3A%229%22%7D%7D".to_vec()),
    ]
}

fn mutate(rng: &mut StdRng, body: &[u8], others: &[(Provider, Vec<u8>)]) -> Vec<u8> {
    let mut b = body.to_vec();
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        match rng.gen_range(0..8) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            2 if !b.is_empty() => {
                let n = rng.gen_range(0..b.len());
                b.truncate(n);
            }
            3 => {
                let i = rng.gen_range(0..=b.len());
                let interesting: &[&[u8]] =
                    &[b"\"", b"{", b"}", b"[", b"]", b",", b":", b"null", b"\\u0000", b"\xff", b"1e999", b"-", b"\"\"", b"{\"a\":"];
                let ins = interesting[rng.gen_range(0..interesting.len())];
                b.splice(i..i, ins.iter().copied());
            }
            4 if !b.is_empty() => {
                let start = rng.gen_range(0..b.len());
                let end = rng.gen_range(start..=b.len().min(start + 16));
                b.drain(start..end);
            }
            5 => {
                let (_, other) = &others[rng.gen_range(0..others.len())];
                let cut_a = rng.gen_range(0..=b.len());
                let cut_b = rng.gen_range(0..=other.len());
                b.truncate(cut_a);
                b.extend_from_slice(&other[cut_b..]);
            }
            6 => {
                let n = rng.gen_range(0..64);
                b = (0..n).map(|_| rng.gen()).collect();
            }
            _ => {
                // Duplicate a slice (repeated keys, nested arrays).
                if !b.is_empty() {
                    let start = rng.gen_range(0..b.len());
                    let end = rng.gen_range(start..=b.len().min(start + 32));
                    let slice = b[start..end].to_vec();
                    let at = rng.gen_range(0..=b.len());
                    b.splice(at..at, slice);
                }
            }
        }
    }
    b
}

#[test]
fn mutated_payloads_never_panic_and_never_verify() {
    let iterations: usize = std::env::var("WEBHOOK_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seed: u64 = std::env::var("WEBHOOK_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let key = SecretString::new(KEY);
    let corpus = seeds();
    let mut stats = [0usize; 4]; // [rejected signature, parsed after re-signing, invalid input after re-signing, unchanged]
    let mut i = 0usize;
    // Counts mutated inputs: no-op mutations do not count towards the total.
    while stats[0] < iterations {
        i += 1;
        let (provider, original) = &corpus[i % corpus.len()];
        let sig = verify::sign_base64(KEY, original);
        let body = mutate(&mut rng, original, &corpus);
        if body == *original {
            stats[3] += 1;
            continue;
        }
        // 1. The mutated body under the original signature must not verify.
        let res = std::panic::catch_unwind(|| verify_and_parse(*provider, &key, None, &body, Some(&sig)));
        match res {
            Ok(Err(e)) => {
                assert_eq!(e.code(), ErrorCode::InvalidSignature, "seed {seed} iteration {i}: {e}");
                stats[0] += 1;
            }
            Ok(Ok(_)) => panic!("seed {seed} iteration {i}: a mutated body verified: {:?}", String::from_utf8_lossy(&body)),
            Err(_) => panic!("seed {seed} iteration {i}: panic in verify: {:?}", String::from_utf8_lossy(&body)),
        }
        // 2. Signed properly (a provider sending garbage), parsing never panics and fails only as input.
        let resigned = verify::sign_base64(KEY, &body);
        let res = std::panic::catch_unwind(|| verify_and_parse(*provider, &key, None, &body, Some(&resigned)));
        match res {
            Ok(Ok(d)) => {
                assert!(d.changes.len() <= d.events, "seed {seed} iteration {i}");
                stats[1] += 1;
            }
            Ok(Err(e)) => {
                assert_eq!(e.code(), ErrorCode::InvalidInput, "seed {seed} iteration {i}: {e}");
                stats[2] += 1;
            }
            Err(_) => panic!("seed {seed} iteration {i}: panic in parse: {:?}", String::from_utf8_lossy(&body)),
        }
        // Zoho parses with an org id from the URL.
        if *provider == Provider::Zoho {
            let _ = parse::parse(Provider::Zoho, &body, Some("700000001"));
        }
    }
    // Signature tampering on valid bodies.
    let mut tampered = 0;
    for (provider, body) in &corpus {
        let sig = verify::sign_base64(KEY, body);
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &sig).unwrap();
        for bit in 0..raw.len() * 8 {
            let mut r = raw.clone();
            r[bit / 8] ^= 1 << (bit % 8);
            let s = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &r);
            assert!(verify_and_parse(*provider, &key, None, body, Some(&s)).is_err());
            tampered += 1;
        }
    }
    let ran = stats[0];
    println!(
        "webhook fuzz: seed {seed}: {ran} mutated inputs (x2: original and re-signed signature) + {tampered} tampered signatures, no panic; \
         {} rejected by signature, {} re-signed parsed, {} re-signed rejected as invalid input, {} mutations were no-ops",
        stats[0], stats[1], stats[2], stats[3]
    );
    assert!(stats[3] < iterations / 10, "the mutator should change almost every input");
}
