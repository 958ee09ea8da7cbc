//! `ttya-ops records`: the synced copy's housekeeping.

use clap::Subcommand;
use shared::sync::record_index;
use shared::Result;

use crate::{tenant_ids, Ops};

#[derive(Debug, Subcommand)]
pub enum RecordsCmd {
    /// Adds the records API's index attributes to records stored before the indexes existed (run
    /// once after upgrading). Safe to repeat and to run beside the sync: it reads only records
    /// without them and leaves any a sync rewrote meanwhile as the sync wrote them.
    Reindex {
        /// One tenant; every tenant when omitted.
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub(crate) async fn run(ops: &Ops, c: RecordsCmd) -> Result<String> {
    match c {
        RecordsCmd::Reindex { tenant } => {
            let (mut indexed, mut skipped) = (0, 0);
            let tenants = tenant_ids(ops, tenant).await?;
            for t in &tenants {
                let done = record_index::backfill(&ops.clients.dynamodb, &ops.config.tables.sync, t).await?;
                indexed += done.indexed;
                skipped += done.skipped;
            }
            Ok(format!(
                "{} tenants: {indexed} records indexed, {skipped} skipped (rewritten by a sync meanwhile or unreadable)",
                tenants.len()
            ))
        }
    }
}
