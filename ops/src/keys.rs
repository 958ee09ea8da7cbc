//! `ttya-ops keys`: re-sealing every stored token under a new KMS key.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use shared::store::grants::Grant;
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{Error, Result};

use crate::{tenant_ids, Ops};

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Re-seals every stored token under a new KMS key. Resumable: grants already under the new key
    /// and those listed in the checkpoint file are skipped.
    Reseal {
        /// The new KMS key (id, ARN or alias).
        #[arg(long)]
        new_key: String,
        #[arg(long, default_value = ".ttya-ops-reseal.checkpoint")]
        checkpoint: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    pub total: usize,
    pub resealed: usize,
    /// Already under the new key, or listed in the checkpoint.
    pub skipped: usize,
    /// Held by a refresher or changed meanwhile: run again to finish them.
    pub deferred: usize,
}

impl std::fmt::Display for ResealReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} grants with tokens: {} re-sealed, {} already done, {} deferred",
            self.total, self.resealed, self.skipped, self.deferred
        )?;
        if self.deferred > 0 {
            write!(f, " (leased or changed meanwhile: run the same command again)")?;
        }
        Ok(())
    }
}

fn checkpoint_key(g: &Grant, new_key: &str) -> String {
    format!("{new_key}\t{}\t{}\t{}", g.tenant_id, g.provider.as_str(), g.grant_id)
}

/// Re-seals every sealed grant under `new_key` through `GrantStore::replace_sealed` (which never
/// races a refresher: it requires the version read and no live lease). Each done grant is appended
/// to `checkpoint`, so an interrupted run resumes where it stopped; grants already under the new key
/// are skipped too, so even without the checkpoint a rerun only does what is left. The functions
/// must be deployed with the new key (KMS_KEY_ID) before or right after, or they will lazily re-seal
/// back under the old one.
pub async fn reseal(ops: &Ops, new_key: &str, checkpoint: &PathBuf) -> Result<ResealReport> {
    let store = ops.grants();
    let old = Vault::from_config(ops.clients.kms.clone(), &ops.config);
    // The key's ARN, whatever names it (id, ARN, alias): blobs record the ARN, and an alias cannot
    // be compared with them (Vault::is_current would call every blob current).
    let described = ops
        .clients
        .kms
        .describe_key()
        .key_id(new_key)
        .send()
        .await
        .map_err(|e| Error::Crypto(format!("DescribeKey {new_key}: {}", aws_sdk_kms::error::DisplayErrorContext(&e))))?;
    let new_key = described.key_metadata.and_then(|m| m.arn).ok_or_else(|| Error::Crypto(format!("KMS key {new_key} has no ARN")))?;
    let new_key = new_key.as_str();
    // A vault on the new key only to ask whether a blob is already under it.
    let new = Vault::new(ops.clients.kms.clone(), new_key, CacheLimits::default());
    let done: HashSet<String> = std::fs::read_to_string(checkpoint).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default();
    let mut ck = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(checkpoint)
        .map_err(|e| Error::Internal(format!("checkpoint {}: {e}", checkpoint.display())))?;
    let mut grants = Vec::new();
    for t in tenant_ids(ops, None).await? {
        grants.extend(store.list_grants(&t).await?.into_iter().filter(|g| g.sealed.is_some()));
    }
    let mut report = ResealReport { total: grants.len(), ..Default::default() };
    let started = std::time::Instant::now();
    for (i, g) in grants.iter().enumerate() {
        let key = checkpoint_key(g, new_key);
        let blob = g.sealed.as_ref().expect("filtered on sealed");
        if done.contains(&key) || new.is_current(blob) {
            report.skipped += 1;
        } else {
            let ctx = SealContext::new(&g.tenant_id, g.provider, &g.grant_id);
            let sealed = old.reseal(&ctx, blob, new_key).await?;
            match store.replace_sealed(g, &sealed, (ops.now)()).await {
                Ok(_) => {
                    report.resealed += 1;
                    let _ = writeln!(ck, "{key}");
                }
                Err(Error::Conflict(_)) => report.deferred += 1,
                Err(e) => return Err(e),
            }
        }
        progress(i + 1, grants.len(), started);
    }
    if !grants.is_empty() {
        eprintln!();
    }
    Ok(report)
}

/// One progress line, rewritten in place on a terminal.
fn progress(done: usize, total: usize, started: std::time::Instant) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
    let eta = if rate > 0.0 { ((total - done) as f64 / rate) as u64 } else { 0 };
    eprint!("\r[{}{}] {done}/{total} grants, {rate:.1}/s, eta {eta}s ", "#".repeat(filled), ".".repeat(width - filled));
    let _ = std::io::stderr().flush();
}
