//! Sealed token vault: envelope encryption with a KMS data key and AES-256-GCM.
//!
//! Each sealed blob carries its wrapped data key, nonce, ciphertext, KMS key id and a format version.
//! The tenant, provider and grant are bound twice: as the KMS encryption context (KMS refuses to unwrap
//! the data key under any other context) and as AES-GCM associated data (the ciphertext fails to
//! authenticate under any other grant even with the right data key). Plaintext data keys are cached
//! for a bounded age and use count, like the AWS Encryption SDK's caching materials manager, and are
//! zeroised when dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Provider, Result, TokenSet};

pub const FORMAT_VERSION: u8 = 1;

/// Who a sealed value belongs to. Every field goes into the KMS encryption context and the AAD.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SealContext {
    pub tenant_id: String,
    pub provider: Provider,
    pub grant_id: String,
}

impl SealContext {
    pub fn new(tenant_id: impl Into<String>, provider: Provider, grant_id: impl Into<String>) -> Self {
        SealContext { tenant_id: tenant_id.into(), provider, grant_id: grant_id.into() }
    }

    fn encryption_context(&self) -> HashMap<String, String> {
        HashMap::from([
            ("tenant_id".to_string(), self.tenant_id.clone()),
            ("provider".to_string(), self.provider.as_str().to_string()),
            ("grant_id".to_string(), self.grant_id.clone()),
        ])
    }

    /// Length-prefixed so no two different contexts produce the same bytes.
    fn aad(&self, key_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + key_id.len());
        out.extend_from_slice(b"ttya-vault");
        out.push(FORMAT_VERSION);
        for part in [self.tenant_id.as_str(), self.provider.as_str(), self.grant_id.as_str(), key_id] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The stored envelope. Serialised as JSON with base64 fields.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedBlob {
    pub v: u8,
    pub key_id: String,
    #[serde(with = "b64")]
    pub wrapped_key: Vec<u8>,
    #[serde(with = "b64")]
    pub nonce: Vec<u8>,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBlob")
            .field("v", &self.v)
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl SealedBlob {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain struct serialises")
    }

    pub fn from_json(s: &str) -> Result<Self> {
        let blob: SealedBlob = serde_json::from_str(s).map_err(|e| Error::Crypto(format!("sealed blob is not a valid envelope: {e}")))?;
        if blob.v != FORMAT_VERSION {
            return Err(Error::Crypto(format!("unsupported sealed blob version {}", blob.v)));
        }
        Ok(blob)
    }
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// A plaintext AES-256 data key. Never printed; zeroised on drop.
struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl DataKey {
    fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::Crypto("KMS returned a data key of the wrong length".into()))?;
        Ok(DataKey(Zeroizing::new(arr)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// A cached plaintext key is not used after this age. Zero disables the cache.
    pub max_age: Duration,
    /// A cached key is not used for more than this many seals or unseals.
    pub max_uses: u32,
    /// At most this many keys are held; the oldest goes first.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    /// Five minutes, 10,000 uses, 1,000 keys: a warm Lambda container calls KMS at most once per
    /// grant every five minutes, and a leaked container memory image holds at most minutes of keys.
    fn default() -> Self {
        CacheLimits { max_age: Duration::from_secs(300), max_uses: 10_000, max_entries: 1_000 }
    }
}

impl CacheLimits {
    pub fn disabled() -> Self {
        CacheLimits { max_age: Duration::ZERO, max_uses: 0, max_entries: 0 }
    }
    fn enabled(&self) -> bool {
        !self.max_age.is_zero() && self.max_uses > 0 && self.max_entries > 0
    }
}

struct CachedKey {
    key: Arc<DataKey>,
    wrapped: Vec<u8>,
    /// The canonical ARN of the KMS key that wrapped it (what KMS answered, not what we asked for).
    key_arn: String,
    created: Instant,
    uses: u32,
}

/// A data key with its wrapped form and the ARN of the KMS key that wrapped it.
#[derive(Clone)]
struct Material {
    key: Arc<DataKey>,
    wrapped: Vec<u8>,
    key_arn: String,
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum CacheId {
    /// Keys for sealing: one per (KMS key, context).
    Encrypt { key_id: String, ctx: SealContext },
    /// Keys for unsealing: one per wrapped key (and the context it was unwrapped under).
    Decrypt { wrapped: Vec<u8>, ctx: SealContext },
}

#[derive(Default)]
struct KeyCache {
    entries: HashMap<CacheId, CachedKey>,
}

impl KeyCache {
    fn take(&mut self, id: &CacheId, limits: &CacheLimits) -> Option<Material> {
        let fresh = match self.entries.get_mut(id) {
            Some(e) if e.created.elapsed() < limits.max_age && e.uses < limits.max_uses => {
                e.uses += 1;
                Some(Material { key: e.key.clone(), wrapped: e.wrapped.clone(), key_arn: e.key_arn.clone() })
            }
            Some(_) => None,
            None => return None,
        };
        if fresh.is_none() {
            self.entries.remove(id);
        }
        fresh
    }

    fn contains_fresh(&self, id: &CacheId, limits: &CacheLimits) -> bool {
        self.entries.get(id).is_some_and(|e| e.created.elapsed() < limits.max_age && e.uses < limits.max_uses)
    }

    fn put(&mut self, id: CacheId, m: Material, limits: &CacheLimits) {
        self.entries.retain(|_, e| e.created.elapsed() < limits.max_age && e.uses < limits.max_uses);
        while self.entries.len() >= limits.max_entries {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
        self.entries.insert(id, CachedKey { key: m.key, wrapped: m.wrapped, key_arn: m.key_arn, created: Instant::now(), uses: 1 });
    }
}

#[derive(Clone)]
pub struct Vault {
    kms: crate::aws::KmsClient,
    key_id: String,
    /// The canonical ARN behind `key_id` (which may be a bare id, an ARN or an alias), learned from
    /// the first GenerateDataKey answer. Blobs are compared by ARN, never by the configured string.
    key_arn: Arc<Mutex<Option<String>>>,
    limits: CacheLimits,
    cache: Arc<Mutex<KeyCache>>,
    kms_calls: Arc<AtomicU64>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("key_id", &self.key_id).field("limits", &self.limits).finish()
    }
}

impl Vault {
    pub fn new(kms: impl Into<crate::aws::KmsClient>, key_id: impl Into<String>, limits: CacheLimits) -> Self {
        Vault {
            kms: kms.into(),
            key_id: key_id.into(),
            key_arn: Default::default(),
            limits,
            cache: Default::default(),
            kms_calls: Default::default(),
        }
    }

    pub fn from_config(kms: impl Into<crate::aws::KmsClient>, config: &crate::Config) -> Self {
        let limits = CacheLimits { max_age: config.data_key_cache_max_age, max_uses: config.data_key_cache_max_uses, ..Default::default() };
        Self::new(kms, config.kms_key_id.clone(), limits)
    }

    /// The data-key cache. A panic while it was held (none is known; this is defence) poisons the
    /// mutex: the half-updated map is dropped rather than trusted, and the vault keeps working by
    /// asking KMS again, instead of every later seal and unseal in the container panicking.
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.entries.clear();
                self.cache.clear_poison();
                tracing::error!("vault data-key cache was poisoned by a panic; cleared");
                g
            }
        }
    }

    /// The KMS key new seals use.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// KMS calls this vault has made (GenerateDataKey + Decrypt).
    pub fn kms_calls(&self) -> u64 {
        self.kms_calls.load(Ordering::Relaxed)
    }

    /// The canonical ARN of the current key, once this vault has learned it.
    pub fn key_arn(&self) -> Option<String> {
        lock(&self.key_arn).clone()
    }

    /// Whether `blob` was sealed under the current KMS key. Compared by canonical ARN; while the ARN
    /// is not yet known (no seal in this process yet) only an exact or key-id match counts, and
    /// anything else is treated as current (no re-seal) rather than re-sealed on a guess.
    pub fn is_current(&self, blob: &SealedBlob) -> bool {
        if blob.key_id == self.key_id {
            return true;
        }
        match self.key_arn() {
            Some(arn) => blob.key_id == arn,
            // An alias names whatever key it points at today: unknowable without asking KMS, so
            // wait until a seal in this process has told us the ARN.
            None => same_key_family(&blob.key_id, &self.key_id) || self.key_id.starts_with("alias/") || self.key_id.contains(":alias/"),
        }
    }

    pub async fn seal_bytes(&self, ctx: &SealContext, plaintext: &[u8]) -> Result<SealedBlob> {
        self.seal_under(&self.key_id.clone(), ctx, plaintext).await
    }

    async fn seal_under(&self, key_id: &str, ctx: &SealContext, plaintext: &[u8]) -> Result<SealedBlob> {
        let Material { key, wrapped, key_arn } = self.encryption_key(key_id, ctx).await?;
        // The blob names the key by its ARN, so a later comparison does not depend on how the key
        // was configured (id, ARN or alias).
        let key_id = key_arn.as_str();
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_| Error::Crypto("bad data key".into()))?;
        let aad = ctx.aad(key_id);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        Ok(SealedBlob { v: FORMAT_VERSION, key_id: key_id.to_string(), wrapped_key: wrapped, nonce: nonce.to_vec(), ciphertext })
    }

    pub async fn unseal_bytes(&self, ctx: &SealContext, blob: &SealedBlob) -> Result<Zeroizing<Vec<u8>>> {
        if blob.v != FORMAT_VERSION {
            return Err(Error::Crypto(format!("unsupported sealed blob version {}", blob.v)));
        }
        if blob.nonce.len() != 12 {
            return Err(Error::Crypto("sealed blob has a malformed nonce".into()));
        }
        // Refused before KMS is asked: a damaged blob costs no KMS call and gets a clear error.
        if blob.wrapped_key.is_empty() {
            return Err(Error::Crypto("sealed blob has no wrapped key".into()));
        }
        if blob.ciphertext.len() < 16 {
            return Err(Error::Crypto("sealed blob is truncated (shorter than its tag)".into()));
        }
        let key = self.decryption_key(ctx, blob).await?;
        let cipher = Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_| Error::Crypto("bad data key".into()))?;
        let aad = ctx.aad(&blob.key_id);
        let plain = cipher.decrypt(Nonce::from_slice(&blob.nonce), Payload { msg: &blob.ciphertext, aad: &aad }).map_err(|_| {
            Error::Crypto("sealed blob failed authentication (tampered, or sealed for another tenant, provider or grant)".into())
        })?;
        Ok(Zeroizing::new(plain))
    }

    pub async fn seal_tokens(&self, ctx: &SealContext, tokens: &TokenSet) -> Result<SealedBlob> {
        let plain = Zeroizing::new(serde_json::to_vec(tokens).map_err(|e| Error::Internal(format!("token set serialisation: {e}")))?);
        self.seal_bytes(ctx, &plain).await
    }

    pub async fn unseal_tokens(&self, ctx: &SealContext, blob: &SealedBlob) -> Result<TokenSet> {
        let plain = self.unseal_bytes(ctx, blob).await?;
        serde_json::from_slice(&plain).map_err(|_| Error::Crypto("sealed token set is not valid JSON".into()))
    }

    /// Unseals, and when the blob was sealed under another KMS key than the current one, also returns
    /// it re-sealed under the current key so the caller can store it (lazy rotation on read).
    pub async fn unseal_tokens_current(&self, ctx: &SealContext, blob: &SealedBlob) -> Result<(TokenSet, Option<SealedBlob>)> {
        let tokens = self.unseal_tokens(ctx, blob).await?;
        if self.is_current(blob) {
            return Ok((tokens, None));
        }
        let resealed = self.seal_tokens(ctx, &tokens).await?;
        Ok((tokens, Some(resealed)))
    }

    /// Re-seals a blob under `new_key_id` (explicit key rotation).
    pub async fn reseal(&self, ctx: &SealContext, blob: &SealedBlob, new_key_id: &str) -> Result<SealedBlob> {
        let plain = self.unseal_bytes(ctx, blob).await?;
        self.seal_under(new_key_id, ctx, &plain).await
    }

    async fn encryption_key(&self, key_id: &str, ctx: &SealContext) -> Result<Material> {
        let id = CacheId::Encrypt { key_id: key_id.to_string(), ctx: ctx.clone() };
        if self.limits.enabled() {
            if let Some(hit) = self.lock_cache().take(&id, &self.limits) {
                return Ok(hit);
            }
        }
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let out = self
            .kms
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(ctx.encryption_context()))
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", e))?;
        let mut plain = out.plaintext.ok_or_else(|| Error::Crypto("KMS returned no plaintext key".into()))?.into_inner();
        let key = DataKey::from_slice(&plain);
        plain.zeroize();
        let key = Arc::new(key?);
        let wrapped = out.ciphertext_blob.ok_or_else(|| Error::Crypto("KMS returned no wrapped key".into()))?.into_inner();
        let key_arn = out.key_id.unwrap_or_else(|| key_id.to_string());
        if key_id == self.key_id {
            *lock(&self.key_arn) = Some(key_arn.clone());
        }
        let m = Material { key, wrapped, key_arn };
        if self.limits.enabled() {
            let mut cache = self.lock_cache();
            cache.put(id, m.clone(), &self.limits);
            // The same key can unwrap what it sealed without another Decrypt call.
            cache.put(CacheId::Decrypt { wrapped: m.wrapped.clone(), ctx: ctx.clone() }, m.clone(), &self.limits);
        }
        Ok(m)
    }

    async fn decryption_key(&self, ctx: &SealContext, blob: &SealedBlob) -> Result<Arc<DataKey>> {
        let id = CacheId::Decrypt { wrapped: blob.wrapped_key.clone(), ctx: ctx.clone() };
        if self.limits.enabled() {
            if let Some(m) = self.lock_cache().take(&id, &self.limits) {
                return Ok(m.key);
            }
        }
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let out = self
            .kms
            .decrypt()
            .key_id(&blob.key_id)
            .ciphertext_blob(Blob::new(blob.wrapped_key.clone()))
            .set_encryption_context(Some(ctx.encryption_context()))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", e))?;
        let mut plain = out.plaintext.ok_or_else(|| Error::Crypto("KMS returned no plaintext key".into()))?.into_inner();
        let key = DataKey::from_slice(&plain);
        plain.zeroize();
        let key = Arc::new(key?);
        let key_arn = out.key_id.unwrap_or_else(|| blob.key_id.clone());
        // A blob sealed under the configured key tells us that key's ARN without another call.
        if same_key_family(&blob.key_id, &self.key_id) || same_key_family(&key_arn, &self.key_id) {
            lock(&self.key_arn).get_or_insert_with(|| key_arn.clone());
        }
        if self.limits.enabled() {
            let m = Material { key: key.clone(), wrapped: blob.wrapped_key.clone(), key_arn };
            let mut cache = self.lock_cache();
            // A key unwrapped under the current KMS key also seals the grant's next blob (a refresh
            // re-seals right after unsealing), so a refresh costs one KMS call, not two. Only when
            // the current key's ARN is known, so a blob under an old key never seeds new seals.
            let current = lock(&self.key_arn).clone().is_some_and(|arn| arn == m.key_arn);
            let enc = CacheId::Encrypt { key_id: self.key_id.clone(), ctx: ctx.clone() };
            if current && !cache.contains_fresh(&enc, &self.limits) {
                cache.put(enc, m.clone(), &self.limits);
            }
            cache.put(id, m, &self.limits);
        }
        Ok(key)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the cache and the ARN
/// stay consistent (every update is a single insert), so carry on rather than panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether two key references may name the same key: equal, or one is an ARN ending in `key/<id>`
/// of the other.
fn same_key_family(a: &str, b: &str) -> bool {
    a == b || a.ends_with(&format!("key/{b}")) || b.ends_with(&format!("key/{a}"))
}

fn kms_error<E, R>(op: &str, e: aws_sdk_kms::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    use aws_sdk_kms::error::SdkError;
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown");
            let retryable =
                matches!(code, "KMSInternalException" | "DependencyTimeoutException" | "ThrottlingException" | "KeyUnavailableException");
            if retryable {
                Error::Storage { message: format!("KMS {op} failed: {code}"), retryable: true }
            } else {
                // InvalidCiphertextException is what a wrong encryption context produces.
                Error::Crypto(format!("KMS {op} refused: {code} (wrong tenant, provider or grant context, or a damaged wrapped key)"))
            }
        }
        _ => Error::Storage {
            message: format!("KMS {op} unreachable: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
            retryable: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_vault() -> Vault {
        // Never called: these tests only touch the cache.
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .build();
        Vault::new(aws_sdk_kms::Client::from_conf(conf), "alias/test", CacheLimits::default())
    }

    fn mat(key: Arc<DataKey>, wrapped: Vec<u8>) -> Material {
        Material { key, wrapped, key_arn: "alias/test".into() }
    }

    #[test]
    fn a_poisoned_cache_is_cleared_instead_of_panicking() {
        let vault = offline_vault();
        let ctx = SealContext::new("t", Provider::Xero, "g");
        let id = CacheId::Encrypt { key_id: "alias/test".into(), ctx };
        let key = Arc::new(DataKey::from_slice(&[7u8; 32]).unwrap());
        vault.lock_cache().put(id.clone(), mat(key, vec![1, 2, 3]), &vault.limits);
        let v2 = vault.clone();
        let _ = std::thread::spawn(move || {
            let _g = v2.cache.lock().unwrap();
            panic!("poison the cache lock (expected in this test)");
        })
        .join();
        assert!(vault.cache.is_poisoned());
        let mut cache = vault.lock_cache();
        assert!(cache.take(&id, &vault.limits).is_none(), "a poisoned cache is not trusted");
        drop(cache);
        assert!(!vault.cache.is_poisoned(), "and it works normally afterwards");
    }

    /// A vault whose cache already holds data key `k` (wrapped as `wrapped`) for sealing under `seal`
    /// and for unsealing under each of `open`: no KMS call is made, so only the AES-GCM AAD decides.
    fn primed(seal: &SealContext, open: &[&SealContext], wrapped: &[u8]) -> Vault {
        let vault = offline_vault();
        let key = Arc::new(DataKey::from_slice(&[42u8; 32]).unwrap());
        let mut cache = vault.lock_cache();
        cache.put(CacheId::Encrypt { key_id: "alias/test".into(), ctx: seal.clone() }, mat(key.clone(), wrapped.to_vec()), &vault.limits);
        for ctx in open {
            cache.put(
                CacheId::Decrypt { wrapped: wrapped.to_vec(), ctx: (*ctx).clone() },
                mat(key.clone(), wrapped.to_vec()),
                &vault.limits,
            );
        }
        drop(cache);
        vault
    }

    #[tokio::test]
    async fn the_aad_alone_refuses_another_tenant_provider_or_grant_under_the_same_data_key() {
        let mine = SealContext::new("tenant-a", Provider::Xero, "grant-1");
        let others = [
            SealContext::new("tenant-b", Provider::Xero, "grant-1"),
            SealContext::new("tenant-a", Provider::Xero, "grant-2"),
            SealContext::new("tenant-a", Provider::Zoho, "grant-1"),
        ];
        let mut open: Vec<&SealContext> = others.iter().collect();
        open.push(&mine);
        let vault = primed(&mine, &open, b"wrapped-key-bytes");
        let blob = vault.seal_bytes(&mine, b"refresh-token-secret").await.unwrap();
        assert_eq!(&vault.unseal_bytes(&mine, &blob).await.unwrap()[..], b"refresh-token-secret");
        for other in &others {
            let e = vault.unseal_bytes(other, &blob).await.unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Crypto, "{other:?}");
        }
        // A blob claiming another key id changes the AAD too.
        let relabelled = SealedBlob { key_id: "alias/other".into(), ..blob.clone() };
        let vault2 = primed(&mine, &[&mine], b"wrapped-key-bytes");
        assert!(vault2.unseal_bytes(&mine, &relabelled).await.is_err());
        assert_eq!(vault.kms_calls() + vault2.kms_calls(), 0, "KMS never took part");
    }

    #[tokio::test]
    async fn truncated_ciphertexts_and_empty_wrapped_keys_are_refused_without_kms() {
        let ctx = SealContext::new("tenant-a", Provider::QuickBooks, "grant-1");
        let vault = primed(&ctx, &[&ctx], b"wrapped");
        let blob = vault.seal_bytes(&ctx, b"a token long enough to matter").await.unwrap();
        let mut cases = vec![("empty wrapped key", SealedBlob { wrapped_key: vec![], ..blob.clone() })];
        for cut in [1, 16, blob.ciphertext.len() - 1, blob.ciphertext.len()] {
            let mut b = blob.clone();
            b.ciphertext.truncate(blob.ciphertext.len() - cut);
            cases.push(("truncated ciphertext", b));
        }
        for (label, b) in cases {
            let e = vault.unseal_bytes(&ctx, &b).await.unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Crypto, "{label}");
        }
        assert_eq!(vault.kms_calls(), 0);
    }

    #[test]
    fn cached_keys_expire_after_their_age_bound() {
        let vault = offline_vault();
        let limits = CacheLimits { max_age: std::time::Duration::from_millis(1), ..CacheLimits::default() };
        let id = CacheId::Encrypt { key_id: "alias/test".into(), ctx: SealContext::new("t", Provider::Xero, "g") };
        let mut cache = vault.lock_cache();
        cache.put(id.clone(), mat(Arc::new(DataKey::from_slice(&[7u8; 32]).unwrap()), vec![1]), &limits);
        assert!(cache.take(&id, &CacheLimits::default()).is_some(), "fresh under the default bound");
        // Wait past the 1 ms bound by watching the clock (no timed assertion: the bound is checked
        // only once the entry is provably older than it).
        let created = cache.entries[&id].created;
        while created.elapsed() <= limits.max_age {
            std::thread::yield_now();
        }
        assert!(cache.take(&id, &limits).is_none(), "older than max_age: not used");
        assert!(!cache.entries.contains_key(&id), "and evicted");
    }

    #[test]
    fn aad_differs_for_every_field_and_resists_concatenation_tricks() {
        let a = SealContext::new("ab", Provider::Xero, "c").aad("k");
        let b = SealContext::new("a", Provider::Xero, "bc").aad("k");
        assert_ne!(a, b);
        assert_ne!(SealContext::new("t", Provider::Xero, "g").aad("k1"), SealContext::new("t", Provider::Xero, "g").aad("k2"));
        assert_ne!(SealContext::new("t", Provider::Xero, "g").aad("k"), SealContext::new("t", Provider::Zoho, "g").aad("k"));
    }

    #[test]
    fn blob_round_trips_as_json_and_debug_hides_material() {
        let blob = SealedBlob { v: 1, key_id: "k".into(), wrapped_key: vec![1, 2], nonce: vec![0; 12], ciphertext: vec![9; 40] };
        let back = SealedBlob::from_json(&blob.to_json()).unwrap();
        assert_eq!(back, blob);
        assert!(!format!("{blob:?}").contains("wrapped"));
        let mut v2 = blob.clone();
        v2.v = 2;
        assert!(SealedBlob::from_json(&v2.to_json()).is_err());
        assert!(SealedBlob::from_json("{}").is_err());
    }

    #[test]
    fn cache_respects_age_and_uses() {
        let limits = CacheLimits { max_age: Duration::from_secs(60), max_uses: 3, max_entries: 2 };
        let mut c = KeyCache::default();
        let ctx = SealContext::new("t", Provider::Xero, "g");
        let id = CacheId::Encrypt { key_id: "k".into(), ctx: ctx.clone() };
        c.put(id.clone(), Material { key: Arc::new(DataKey(Zeroizing::new([7; 32]))), wrapped: vec![1], key_arn: "k".into() }, &limits);
        assert!(c.take(&id, &limits).is_some()); // use 2
        assert!(c.take(&id, &limits).is_some()); // use 3
        assert!(c.take(&id, &limits).is_none(), "fourth use exceeds max_uses");
        assert!(c.entries.is_empty());
        // max_entries evicts the oldest
        for i in 0..3u8 {
            let id = CacheId::Decrypt { wrapped: vec![i], ctx: ctx.clone() };
            c.put(id, Material { key: Arc::new(DataKey(Zeroizing::new([i; 32]))), wrapped: vec![i], key_arn: "k".into() }, &limits);
        }
        assert_eq!(c.entries.len(), 2);
        assert!(!c.entries.contains_key(&CacheId::Decrypt { wrapped: vec![0], ctx }));
        let aged = CacheLimits { max_age: Duration::ZERO, ..limits };
        assert!(!aged.enabled());
    }

    #[test]
    fn data_key_debug_is_redacted() {
        let k = DataKey(Zeroizing::new([0xAB; 32]));
        assert_eq!(format!("{k:?}"), "DataKey([REDACTED])");
    }
}
