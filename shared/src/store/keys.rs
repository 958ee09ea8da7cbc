//! Key builders the stores and the flows share. The sync schedule's index partition (`sync_pk`) is
//! written by the grants store (a connection that becomes active joins the index) and read by the
//! scheduler (`crate::sync::schedule`).

use crate::Provider;

/// Partition keys of the `sync_due` index. 100,000 tenants' connections at hourly intervals are about 28
/// index updates a second; 16 keys keep each far below DynamoDB's per-partition limits.
pub const SYNC_SHARDS: u32 = 16;

/// FNV-1a (stable across Rust releases, unlike `DefaultHasher`) over the length-prefixed parts.
pub(crate) fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in (p.len() as u32).to_be_bytes().iter().chain(p.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

pub fn sync_shard(tenant_id: &str, provider: Provider, org_id: &str) -> u32 {
    (fnv64(&["shard", tenant_id, provider.as_str(), org_id]) % u64::from(SYNC_SHARDS)) as u32
}

pub fn sync_shard_pk(shard: u32) -> String {
    format!("SYNC#{shard:02}")
}

/// The index partition of a connection.
pub fn sync_pk(tenant_id: &str, provider: Provider, org_id: &str) -> String {
    sync_shard_pk(sync_shard(tenant_id, provider, org_id))
}
