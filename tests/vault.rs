//! The sealed token vault against the local KMS (moto).

use chrono::Duration;
use integration_tests::{aws, unique};
use shared::vault::{CacheLimits, SealContext, SealedBlob, Vault};
use shared::{ErrorCode, Provider, SecretString, TokenSet};

fn tokens() -> TokenSet {
    // A fixed instant so two calls compare equal.
    let t0 = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    TokenSet {
        access_token: SecretString::new("at-0123456789"),
        refresh_token: Some(SecretString::new("rt-abcdefghij")),
        access_expires_at: t0 + Duration::minutes(30),
        refresh_expires_at: Some(t0 + Duration::days(60)),
        refresh_hard_expires_at: None,
        scopes: vec!["accounting.invoices".into()],
        api_domain: None,
        accounts_server: None,
    }
}

async fn vault(limits: CacheLimits) -> Vault {
    let env = aws().await;
    Vault::new(env.clients.kms.clone(), env.config.kms_key_id.clone(), limits)
}

fn flip(bytes: &mut [u8], index: usize) {
    bytes[index] ^= 0x01;
}

#[tokio::test]
async fn seal_unseal_round_trip_and_the_blob_hides_the_tokens() {
    let v = vault(CacheLimits::default()).await;
    let ctx = SealContext::new(unique("t"), Provider::Xero, unique("g"));
    let blob = v.seal_tokens(&ctx, &tokens()).await.unwrap();
    let json = blob.to_json();
    assert!(!json.contains("rt-abcdefghij") && !json.contains("at-0123456789"));
    let back = v.unseal_tokens(&ctx, &SealedBlob::from_json(&json).unwrap()).await.unwrap();
    assert_eq!(back, tokens());
    assert!(!format!("{back:?}").contains("rt-abcdefghij"), "Debug must redact");
    // Fresh nonce per seal: the same tokens never give the same ciphertext.
    let again = v.seal_tokens(&ctx, &tokens()).await.unwrap();
    assert_ne!(again.nonce, blob.nonce);
    assert_ne!(again.ciphertext, blob.ciphertext);
}

#[tokio::test]
async fn unseal_under_another_tenant_provider_or_grant_fails() {
    // Both with the cache (the AES-GCM AAD check) and without it (the KMS encryption context check).
    for limits in [CacheLimits::default(), CacheLimits::disabled()] {
        let v = vault(limits).await;
        let ctx = SealContext::new(unique("t"), Provider::QuickBooks, unique("g"));
        let blob = v.seal_tokens(&ctx, &tokens()).await.unwrap();
        let others = [
            SealContext::new(unique("other"), ctx.provider, ctx.grant_id.clone()),
            SealContext::new(ctx.tenant_id.clone(), Provider::Xero, ctx.grant_id.clone()),
            SealContext::new(ctx.tenant_id.clone(), ctx.provider, unique("g")),
        ];
        for other in others {
            let err = v.unseal_tokens(&other, &blob).await.expect_err("must not open for another context");
            assert_eq!(err.code(), ErrorCode::Crypto, "{err}");
            assert!(!err.to_string().contains("rt-abcdefghij"));
        }
        assert!(v.unseal_tokens(&ctx, &blob).await.is_ok());
    }
}

#[tokio::test]
async fn a_flipped_bit_anywhere_fails_cleanly() {
    for limits in [CacheLimits::default(), CacheLimits::disabled()] {
        let v = vault(limits).await;
        let ctx = SealContext::new(unique("t"), Provider::Zoho, unique("g"));
        let blob = v.seal_tokens(&ctx, &tokens()).await.unwrap();
        let mut cases: Vec<(&str, SealedBlob)> = Vec::new();
        for i in [0, blob.ciphertext.len() / 2, blob.ciphertext.len() - 1] {
            let mut b = blob.clone();
            flip(&mut b.ciphertext, i);
            cases.push(("ciphertext", b));
        }
        let mut b = blob.clone();
        flip(&mut b.nonce, 5);
        cases.push(("nonce", b));
        // The key id is part of the AAD.
        let mut b = blob.clone();
        let mut kid = b.key_id.clone().into_bytes();
        let last = kid.len() - 1;
        flip(&mut kid, last);
        b.key_id = String::from_utf8(kid).unwrap();
        cases.push(("aad (key id)", b));
        let mut b = blob.clone();
        let mid = b.wrapped_key.len() / 2;
        flip(&mut b.wrapped_key, mid);
        cases.push(("wrapped key", b));
        let mut b = blob.clone();
        b.nonce.truncate(8);
        cases.push(("short nonce", b));
        for (what, bad) in cases {
            let err = v.unseal_tokens(&ctx, &bad).await.expect_err(what);
            assert!(matches!(err.code(), ErrorCode::Crypto), "{what}: {err}");
        }
        // The AAD check proper: the right data key (cached) but another grant in the AAD.
        assert!(v.unseal_tokens(&ctx, &blob).await.is_ok());
    }
}

#[tokio::test]
async fn cached_keys_make_repeated_unseals_cost_at_most_one_kms_call() {
    let cached = vault(CacheLimits::default()).await;
    let ctx = SealContext::new(unique("t"), Provider::Xero, unique("g"));
    let blob = cached.seal_tokens(&ctx, &tokens()).await.unwrap();
    let fresh = vault(CacheLimits::default()).await;
    for _ in 0..1000 {
        fresh.unseal_tokens(&ctx, &blob).await.unwrap();
    }
    assert_eq!(fresh.kms_calls(), 1);
    let uncached = vault(CacheLimits::disabled()).await;
    for _ in 0..20 {
        uncached.unseal_tokens(&ctx, &blob).await.unwrap();
    }
    assert_eq!(uncached.kms_calls(), 20);
    // Use-count bound: a key is fetched again after max_uses.
    let bounded = vault(CacheLimits { max_uses: 10, ..CacheLimits::default() }).await;
    for _ in 0..25 {
        bounded.unseal_tokens(&ctx, &blob).await.unwrap();
    }
    assert_eq!(bounded.kms_calls(), 3);
}

#[tokio::test]
async fn lazy_and_explicit_reseal_move_tokens_to_the_new_key() {
    let env = aws().await;
    let new_key = env.clients.kms.create_key().description(unique("rotation")).send().await.unwrap().key_metadata.unwrap().key_id;
    let old_vault = Vault::new(env.clients.kms.clone(), env.config.kms_key_id.clone(), CacheLimits::default());
    let new_vault = Vault::new(env.clients.kms.clone(), new_key.clone(), CacheLimits::default());
    let ctx = SealContext::new(unique("t"), Provider::QuickBooks, unique("g"));
    let old_blob = old_vault.seal_tokens(&ctx, &tokens()).await.unwrap();

    let (read, resealed) = new_vault.unseal_tokens_current(&ctx, &old_blob).await.unwrap();
    assert_eq!(read, tokens());
    let resealed = resealed.expect("an old-key blob is re-sealed on read");
    assert!(resealed.key_id.ends_with(&format!("key/{new_key}")), "blobs name their key by ARN: {}", resealed.key_id);
    assert_eq!(new_vault.unseal_tokens(&ctx, &resealed).await.unwrap(), tokens());
    let (_, none) = new_vault.unseal_tokens_current(&ctx, &resealed).await.unwrap();
    assert!(none.is_none(), "a current-key blob is left alone");

    let explicit = old_vault.reseal(&ctx, &old_blob, &new_key).await.unwrap();
    assert!(explicit.key_id.ends_with(&format!("key/{new_key}")));
    assert_eq!(old_vault.unseal_tokens(&ctx, &explicit).await.unwrap(), tokens());
}

#[tokio::test]
async fn keys_are_compared_by_canonical_arn_not_by_the_configured_string() {
    let env = aws().await;
    let meta = env.clients.kms.create_key().description(unique("arn")).send().await.unwrap().key_metadata.unwrap();
    let (id, arn) = (meta.key_id, meta.arn.expect("moto returns the ARN"));
    let ctx = SealContext::new(unique("t"), Provider::Xero, unique("g"));
    let by_id = Vault::new(env.clients.kms.clone(), id.clone(), CacheLimits::default());
    let blob = by_id.seal_tokens(&ctx, &tokens()).await.unwrap();
    assert_eq!(blob.key_id, arn, "the blob records the ARN KMS answered with");
    // The same key configured by its ARN, or by its bare id in a fresh process: no re-seal.
    for configured in [arn.clone(), id.clone()] {
        let v = Vault::new(env.clients.kms.clone(), configured.clone(), CacheLimits::default());
        let (_, resealed) = v.unseal_tokens_current(&ctx, &blob).await.unwrap();
        assert!(resealed.is_none(), "configured as {configured}: same key, nothing to re-seal");
        assert_eq!(v.key_arn().as_deref(), Some(arn.as_str()), "learned from the Decrypt answer");
    }
    // Another key is another key, whatever the spelling.
    let other = env.clients.kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let v = Vault::new(env.clients.kms.clone(), other, CacheLimits::default());
    assert!(v.unseal_tokens_current(&ctx, &blob).await.unwrap().1.is_some());
}
