//! The OAuth `state`: a signed, short-lived, single-use value that ties a provider callback to the
//! connect request that started it.
//!
//! The string sent to the provider is `base64url(payload) "." base64url(HMAC-SHA256(state_key,
//! "ttya-oauth-state\0" || payload))` with payload = version (1 byte) || id (32 random bytes) ||
//! expiry (u64 BE unix seconds) || provider (1 byte) || tenant id (UTF-8). The signature and expiry are
//! checked before any storage access, so forged or stale values cost no database call. The server-side
//! half is an item in the ephemeral table (`TENANT#<tenant>` / `OAUTHSTATE#<hex id>`, TTL attribute
//! `expires_at`) holding the user, return URL and the PKCE verifier, sealed with the vault under
//! the context {tenant, provider, `oauthstate:<hex id>`} so a table read (a backup, an export, a
//! role that may read the table) does not yield a usable verifier; a callback consumes it with one
//! conditional DeleteItem, so a state works once, only before its expiry (TTL deletes late), and only
//! under the tenant it was minted for.
//!
//! Two more bindings close cross-user hijacks:
//! - the browser: `/connect` sets an HttpOnly, Secure, SameSite=Lax cookie holding a hash of the
//!   state ([`binding_cookie`]); the callback refuses a state whose browser does not present it. An
//!   admin of tenant A who hands A's consent link to a victim therefore cannot receive the victim's
//!   books: the victim's browser has no cookie for that state.
//! - the signed connect URL: its `jti` is claimed once in this table (`TENANT#<tenant>` /
//!   `CONNECTJTI#<kid>#<jti>`, TTL), so a leaked or logged URL cannot start a second connect.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::store::{dynamo_error, get_n, get_s, get_s_opt, is_conditional_failure, n, s, tenant_pk, Item};
use crate::vault::{SealContext, SealedBlob, Vault};
use crate::{Error, Provider, Result, SecretString};

type HmacSha256 = hmac::Hmac<Sha256>;

const VERSION: u8 = 1;
const DOMAIN: &[u8] = b"ttya-oauth-state\0";
const ID_LEN: usize = 32;
/// The longest state we accept before decoding anything (a tenant id is at most 64 bytes).
const MAX_STATE_LEN: usize = 256;

fn provider_byte(p: Provider) -> u8 {
    match p {
        Provider::QuickBooks => 1,
        Provider::Xero => 2,
        Provider::Zoho => 3,
    }
}

fn provider_from_byte(b: u8) -> Option<Provider> {
    Some(match b {
        1 => Provider::QuickBooks,
        2 => Provider::Xero,
        3 => Provider::Zoho,
        _ => return None,
    })
}

/// What a verified state string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateClaims {
    pub id: [u8; ID_LEN],
    pub tenant_id: String,
    pub provider: Provider,
    pub expires_at: i64,
}

impl StateClaims {
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// A fresh state for `tenant_id` and `provider`, valid until `expires_at`.
pub fn mint(key: &SecretString, tenant_id: &str, provider: Provider, expires_at: DateTime<Utc>) -> (String, StateClaims) {
    let mut id = [0u8; ID_LEN];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let claims = StateClaims { id, tenant_id: tenant_id.to_string(), provider, expires_at: expires_at.timestamp() };
    (encode(key, &claims), claims)
}

/// Encodes and signs claims (also used by tests to build validly signed but otherwise wrong states).
pub fn encode(key: &SecretString, c: &StateClaims) -> String {
    let mut payload = Vec::with_capacity(1 + ID_LEN + 8 + 1 + c.tenant_id.len());
    payload.push(VERSION);
    payload.extend_from_slice(&c.id);
    payload.extend_from_slice(&(c.expires_at as u64).to_be_bytes());
    payload.push(provider_byte(c.provider));
    payload.extend_from_slice(c.tenant_id.as_bytes());
    sign_payload(key, &payload)
}

/// `payload.tag`, for any payload bytes (the fuzz target signs hostile payloads with it).
pub(crate) fn sign_payload(key: &SecretString, payload: &[u8]) -> String {
    let tag = tag(key, payload).finalize().into_bytes();
    format!("{}.{}", B64URL.encode(payload), B64URL.encode(tag))
}

fn tag(key: &SecretString, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(payload);
    mac
}

/// Checks signature, format, provider and expiry. No storage access.
pub fn verify(key: &SecretString, state: &str, provider: Provider, now: DateTime<Utc>) -> Result<StateClaims> {
    let bad = |why: &str| Error::InvalidState(why.to_string());
    if state.is_empty() {
        return Err(bad("the callback carries no state"));
    }
    if state.len() > MAX_STATE_LEN {
        return Err(bad("state is too long"));
    }
    let (p64, t64) = state.split_once('.').ok_or_else(|| bad("state is malformed"))?;
    let payload = B64URL.decode(p64).map_err(|_| bad("state is malformed"))?;
    let sig = B64URL.decode(t64).map_err(|_| bad("state is malformed"))?;
    tag(key, &payload).verify_slice(&sig).map_err(|_| bad("state signature does not match"))?;
    // From here on the payload is ours: a mismatch below is a state used in the wrong place or too late.
    if payload.len() < 1 + ID_LEN + 8 + 1 + 1 || payload[0] != VERSION {
        return Err(bad("state has an unknown format"));
    }
    let mut id = [0u8; ID_LEN];
    id.copy_from_slice(&payload[1..1 + ID_LEN]);
    let exp = u64::from_be_bytes(payload[1 + ID_LEN..1 + ID_LEN + 8].try_into().expect("8 bytes")) as i64;
    let claimed = provider_from_byte(payload[1 + ID_LEN + 8]).ok_or_else(|| bad("state names an unknown provider"))?;
    let tenant_id = String::from_utf8(payload[1 + ID_LEN + 9..].to_vec()).map_err(|_| bad("state has an unknown format"))?;
    if claimed != provider {
        return Err(bad("state was issued for another provider"));
    }
    if exp <= now.timestamp() {
        return Err(bad("state has expired; start the connection again"));
    }
    Ok(StateClaims { id, tenant_id, provider: claimed, expires_at: exp })
}

/// Name of the cookie binding a state to the browser that started it. Per state (the first 8 bytes
/// of its id), so two connects started in parallel in one browser do not overwrite each other.
pub fn binding_cookie_name(claims: &StateClaims) -> String {
    format!("ttya_oauth_{}", hex::encode(&claims.id[..8]))
}

/// The cookie's value: SHA-256 of the state string, so the cookie alone is worth nothing.
pub fn binding_value(state: &str) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"ttya-oauth-binding\0");
    h.update(state.as_bytes());
    B64URL.encode(h.finalize())
}

/// `Set-Cookie` value for `/connect`: only sent back to the callback path, never readable by
/// scripts, never over plain HTTP, and still sent on the provider's top-level redirect back to us
/// (SameSite=Lax; Strict would drop it, as that navigation starts at the provider's site).
pub fn binding_cookie(state: &str, claims: &StateClaims, callback_path: &str, max_age_secs: i64) -> String {
    format!(
        "{}={}; Path={}; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        binding_cookie_name(claims),
        binding_value(state),
        callback_path,
        max_age_secs.max(0)
    )
}

/// `Set-Cookie` value that removes the binding cookie once the callback has used it.
pub fn clear_binding_cookie(claims: &StateClaims, callback_path: &str) -> String {
    format!("{}=; Path={}; Max-Age=0; HttpOnly; Secure; SameSite=Lax", binding_cookie_name(claims), callback_path)
}

/// Checks that the `Cookie` header(s) carry this state's binding. Constant-time comparison; every
/// failure is the same InvalidState.
pub fn check_binding<'a>(cookie_headers: impl IntoIterator<Item = &'a str>, state: &str, claims: &StateClaims) -> Result<()> {
    use subtle::ConstantTimeEq;
    let name = binding_cookie_name(claims);
    let want = binding_value(state);
    let presented = cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'));
    match presented {
        Some(v) if bool::from(v.as_bytes().ct_eq(want.as_bytes())) => Ok(()),
        _ => Err(Error::InvalidState("this connection was started in another browser; start it again from the app".into())),
    }
}

/// A `jti` of a signed connect URL: 16 to 64 of `[A-Za-z0-9_-]` (a UUID or 128 random bits).
pub fn valid_jti(jti: &str) -> bool {
    (16..=64).contains(&jti.len()) && jti.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The server-side half of a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub tenant_id: String,
    pub provider: Provider,
    pub user_id: String,
    pub return_url: String,
    /// PKCE code verifier, where the provider takes PKCE. Lives as long as the state (minutes).
    pub pkce_verifier: Option<SecretString>,
    pub expires_at: i64,
}

pub fn state_sk(id_hex: &str) -> String {
    format!("OAUTHSTATE#{id_hex}")
}

/// The seal context of a state's PKCE verifier: bound to the tenant, the provider and the state.
pub fn pkce_context(tenant_id: &str, provider: Provider, id_hex: &str) -> SealContext {
    SealContext::new(tenant_id, provider, format!("oauthstate:{id_hex}"))
}

#[derive(Clone, Debug)]
pub struct StateStore {
    db: aws_sdk_dynamodb::Client,
    table: String,
    vault: Vault,
}

impl StateStore {
    pub fn new(db: aws_sdk_dynamodb::Client, table: impl Into<String>, vault: Vault) -> Self {
        StateStore { db, table: table.into(), vault }
    }

    pub async fn put(&self, claims: &StateClaims, stored: &StoredState, now: DateTime<Utc>) -> Result<()> {
        let mut item = Item::new();
        item.insert("pk".into(), s(tenant_pk(&claims.tenant_id)));
        item.insert("sk".into(), s(state_sk(&claims.id_hex())));
        item.insert("kind".into(), s("oauth_state"));
        item.insert("provider".into(), s(stored.provider.as_str()));
        item.insert("user_id".into(), s(&stored.user_id));
        item.insert("return_url".into(), s(&stored.return_url));
        if let Some(v) = &stored.pkce_verifier {
            let ctx = pkce_context(&claims.tenant_id, stored.provider, &claims.id_hex());
            let sealed = self.vault.seal_bytes(&ctx, v.expose().as_bytes()).await?;
            item.insert("pkce_verifier_sealed".into(), s(sealed.to_json()));
        }
        item.insert("expires_at".into(), n(claims.expires_at));
        item.insert("created_at".into(), s(now.to_rfc3339()));
        // 256 random bits never collide in practice; the condition makes sure we would notice.
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| dynamo_error("PutItem(oauth state)", e))?;
        Ok(())
    }

    /// Takes the state out of the table: succeeds once, only before expiry, only for the tenant and
    /// provider it was minted for. Every failure is InvalidState, with no hint which check failed.
    pub async fn consume(&self, claims: &StateClaims, now: DateTime<Utc>) -> Result<StoredState> {
        let res = self
            .db
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(&claims.tenant_id)))
            .key("sk", s(state_sk(&claims.id_hex())))
            .condition_expression("attribute_exists(pk) AND expires_at > :now AND provider = :p")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":p", s(claims.provider.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        let item = match res {
            Ok(out) => out.attributes.ok_or_else(|| Error::InvalidState("state is unknown or already used".into()))?,
            Err(e) if is_conditional_failure(&e) => return Err(Error::InvalidState("state is unknown, expired or already used".into())),
            Err(e) => return Err(dynamo_error("DeleteItem(oauth state)", e)),
        };
        let provider: Provider = get_s(&item, "provider")?.parse()?;
        let pkce_verifier = match get_s_opt(&item, "pkce_verifier_sealed") {
            Some(json) => {
                let blob = SealedBlob::from_json(&json)?;
                let plain = self.vault.unseal_bytes(&pkce_context(&claims.tenant_id, provider, &claims.id_hex()), &blob).await?;
                let v = std::str::from_utf8(&plain).map_err(|_| Error::Crypto("sealed PKCE verifier is not UTF-8".into()))?;
                Some(SecretString::new(v))
            }
            None => None,
        };
        Ok(StoredState {
            tenant_id: claims.tenant_id.clone(),
            provider,
            user_id: get_s(&item, "user_id")?,
            return_url: get_s(&item, "return_url")?,
            pkce_verifier,
            expires_at: get_n(&item, "expires_at")?,
        })
    }

    /// Claims a signed connect URL's `jti` once, until `expires_at` (after which the signature's
    /// freshness check refuses the URL anyway). False when it was used before.
    pub async fn claim_jti(&self, tenant_id: &str, kid: &str, jti: &str, expires_at: i64, now: DateTime<Utc>) -> Result<bool> {
        let res = self
            .db
            .put_item()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant_id)))
            .item("sk", s(format!("CONNECTJTI#{kid}#{jti}")))
            .item("kind", s("connect_jti"))
            .item("expires_at", n(expires_at))
            .item("created_at", s(now.to_rfc3339()))
            // TTL deletes late, so an expired claim counts as absent here; the URL itself is refused
            // by the signature's freshness window long before that can matter.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(dynamo_error("PutItem(connect jti)", e)),
        }
    }

    /// Whether a state item is still stored (tests: a failed callback must not consume another's state).
    pub async fn exists(&self, tenant_id: &str, id_hex: &str) -> Result<bool> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", s(tenant_pk(tenant_id)))
            .key("sk", s(state_sk(id_hex)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("GetItem(oauth state)", e))?;
        Ok(out.item.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn key() -> SecretString {
        SecretString::new("state-key-for-tests")
    }

    #[test]
    fn minted_state_verifies_and_carries_its_claims() {
        let now = Utc::now();
        let (state, claims) = mint(&key(), "acme-1", Provider::Zoho, now + chrono::Duration::minutes(10));
        assert!(state.len() < 200, "{}", state.len());
        assert!(state.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'));
        let v = verify(&key(), &state, Provider::Zoho, now).unwrap();
        assert_eq!(v, claims);
        // Two mints never share an id.
        let (_, other) = mint(&key(), "acme-1", Provider::Zoho, now + chrono::Duration::minutes(10));
        assert_ne!(other.id, claims.id);
    }

    #[test]
    fn the_binding_cookie_matches_only_its_own_state() {
        let now = Utc::now();
        let (state, claims) = mint(&key(), "acme-1", Provider::Xero, now + chrono::Duration::minutes(10));
        let (other_state, other) = mint(&key(), "acme-1", Provider::Xero, now + chrono::Duration::minutes(10));
        let set = binding_cookie(&state, &claims, "/oauth/xero/callback", 600);
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax") && set.contains("Max-Age=600"));
        assert!(!set.contains(&state), "the cookie carries a hash, not the state");
        let pair = set.split(';').next().unwrap().to_string();
        assert!(check_binding([format!("a=b; {pair}; c=d").as_str()], &state, &claims).is_ok());
        assert!(check_binding(["a=b", pair.as_str()], &state, &claims).is_ok());
        // No cookie, another state's cookie, a cookie of the right name with the other state's hash.
        let other_pair = binding_cookie(&other_state, &other, "/", 1).split(';').next().unwrap().to_string();
        let wrong_value = format!("{}={}", binding_cookie_name(&claims), binding_value(&other_state));
        for (label, cookies) in [("none", vec![]), ("other state", vec![other_pair.as_str()]), ("wrong value", vec![wrong_value.as_str()])]
        {
            let e = check_binding(cookies, &state, &claims).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidState, "{label}");
        }
        assert!(
            valid_jti("0f8c2a9e-1d2b-4c3d-9e8f-7a6b5c4d3e2f")
                && !valid_jti("short")
                && !valid_jti(&"a".repeat(65))
                && !valid_jti("a b c d e f g h i j")
        );
    }

    #[test]
    fn forged_tampered_expired_and_misdirected_states_are_refused() {
        let now = Utc::now();
        let exp = now + chrono::Duration::minutes(10);
        let (state, claims) = mint(&key(), "acme-1", Provider::Xero, exp);
        let (p64, t64) = state.split_once('.').unwrap();

        // Another tenant's id swapped into the payload, old tag kept.
        let forged_tenant = encode(&SecretString::new("attacker-key"), &StateClaims { tenant_id: "acme-2".into(), ..claims.clone() });
        let swapped = format!("{}.{}", forged_tenant.split_once('.').unwrap().0, t64);
        let mut flipped = B64URL.decode(p64).unwrap();
        flipped[5] ^= 1;
        let cases = [
            ("empty", String::new()),
            ("no dot", p64.to_string()),
            ("not base64", "!!!.???".to_string()),
            ("signed with another key", forged_tenant.clone()),
            ("tenant swapped", swapped),
            ("bit flipped", format!("{}.{}", B64URL.encode(&flipped), t64)),
            ("tag truncated", format!("{p64}.{}", &t64[..20])),
            ("oversized", "a".repeat(300)),
        ];
        for (label, s) in cases {
            let err = verify(&key(), &s, Provider::Xero, now).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidState, "{label}");
            assert_eq!(err.http_status(), 400, "{label}");
        }
        assert!(verify(&key(), &state, Provider::QuickBooks, now).unwrap_err().to_string().contains("another provider"));
        assert!(verify(&key(), &state, Provider::Xero, exp).unwrap_err().to_string().contains("expired"));
        assert!(verify(&key(), &state, Provider::Xero, exp - chrono::Duration::seconds(1)).is_ok());
    }
}
