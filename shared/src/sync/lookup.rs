//! Reading stored reference data the way a write checks it: a line's account and tax code must be
//! records of the tenant's copy. By provider id it is one `GetItem` (`SyncStore::get_record`); by
//! code (an account's code, which Xero lines may name instead of its id) the org's records of the
//! entity are read and matched, as charts of accounts and tax codes are small (hundreds of records,
//! a few pages of one partition's query). An index on the code would replace this if they grow.

use crate::providers::model::Entity;
use crate::sync::model::SyncRecord;
use crate::sync::store::SyncStore;
use crate::{Provider, Result};

impl SyncStore {
    /// The live record of `entity` whose id or code (`number`: account code, tax code) is `key`:
    /// the id first, then the code. Tombstones do not count: a deleted account or tax code must not
    /// pass a write's check.
    pub async fn find_reference(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        entity: Entity,
        key: &str,
    ) -> Result<Option<SyncRecord>> {
        // Longer than any stored id: no record has it (and it would not make a valid key).
        if key.is_empty() || key.len() > crate::sync::model::MAX_ID_LEN {
            return Ok(None);
        }
        if let Some(r) = self.get_record(tenant_id, provider, org_id, entity, key).await? {
            return Ok((!r.deleted).then_some(r));
        }
        let all = self.list_records(tenant_id, provider, org_id, entity).await?;
        Ok(all.into_iter().find(|r| !r.deleted && r.number.as_deref() == Some(key)))
    }

    /// The live tracking category one of whose active options has the id `option_id` (what a
    /// line's tracking names: a Xero TrackingOptionID, a QuickBooks Class Id, a Zoho tag option),
    /// or `None`. Reads the org's categories: there are a handful.
    pub async fn find_tracking_option(
        &self,
        tenant_id: &str,
        provider: Provider,
        org_id: &str,
        option_id: &str,
    ) -> Result<Option<SyncRecord>> {
        if option_id.is_empty() {
            return Ok(None);
        }
        let all = self.list_records(tenant_id, provider, org_id, Entity::TrackingCategory).await?;
        Ok(all.into_iter().find(|r| {
            !r.deleted
                && r.reference.tracking_category.as_ref().is_some_and(|c| {
                    c.active != Some(false) && c.options.iter().any(|o| o.id.as_deref() == Some(option_id) && o.active != Some(false))
                })
        }))
    }
}
