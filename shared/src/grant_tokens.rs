//! Reading a grant's tokens: unseal, and re-seal under the current KMS key when the stored blob was
//! sealed under an older one (lazy key rotation), recording the re-seal in the audit trail.

use chrono::{DateTime, Utc};

use crate::audit::{AuditLog, TokenEvent};
use crate::store::grants::{Grant, GrantStore};
use crate::vault::{SealContext, Vault};
use crate::{Error, Result, TokenSet};

pub fn seal_context(grant: &Grant) -> SealContext {
    SealContext::new(grant.tenant_id.clone(), grant.provider, grant.grant_id.clone())
}

/// The grant's tokens. A blob under an old key is re-sealed and written back (guarded by the grant's
/// version); losing that race to a concurrent writer is harmless, since the other writer stored a
/// fresh blob itself, so the conflict is ignored and the tokens are still returned.
pub async fn read_tokens(store: &GrantStore, vault: &Vault, audit: &AuditLog, grant: &Grant, now: DateTime<Utc>) -> Result<TokenSet> {
    let blob = grant
        .sealed
        .as_ref()
        .ok_or_else(|| Error::TokenUnavailable(format!("grant {} holds no tokens ({})", grant.grant_id, grant.status.as_str())))?;
    let ctx = seal_context(grant);
    let (tokens, resealed) = vault.unseal_tokens_current(&ctx, blob).await?;
    if let Some(new_blob) = resealed {
        match store.replace_sealed(grant, &new_blob, now).await {
            Ok(_) => {
                let detail = format!("from {} to {}", blob.key_id, new_blob.key_id);
                audit
                    .record(&grant.tenant_id, grant.provider, &grant.grant_id, TokenEvent::Resealed, "system:vault", Some(&detail), now)
                    .await?;
                tracing::info!(grant_id = %grant.grant_id, "re-sealed tokens under the current key");
            }
            Err(Error::Conflict(_)) => {
                tracing::info!(grant_id = %grant.grant_id, "grant changed while re-sealing; left to the other writer")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(tokens)
}
