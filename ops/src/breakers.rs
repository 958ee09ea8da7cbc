//! `ttya-ops breakers`: a provider's or an org's circuit breaker, shown or closed by hand.

use clap::Subcommand;
use shared::{Error, Provider, Result};

use crate::{parse, Ops};

#[derive(Debug, Subcommand)]
pub enum BreakerCmd {
    /// State, window counts and probes of a breaker.
    Show {
        provider: String,
        /// Optional with --org: a tenant connected to the org, checked to be connected (the breaker
        /// is the org's, shared by every tenant connected to it).
        #[arg(long, requires = "org")]
        tenant: Option<String>,
        /// The org's breaker instead of the provider-wide one.
        #[arg(long)]
        org: Option<String>,
    },
    /// Closes a breaker (after the provider's outage is over and its open time is too long to wait).
    /// An org's breaker closes for every tenant connected to the org.
    Reset {
        provider: String,
        #[arg(long, requires = "org")]
        tenant: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
}

pub(crate) async fn run(ops: &Ops, c: BreakerCmd) -> Result<String> {
    let guard = shared::resilience::ProviderGuard::new(&ops.config, ops.clients.dynamodb.clone());
    let (reset, provider, tenant, org) = match c {
        BreakerCmd::Show { provider, tenant, org } => (false, provider, tenant, org),
        BreakerCmd::Reset { provider, tenant, org } => (true, provider, tenant, org),
    };
    let provider: Provider = parse("provider", &provider)?;
    // The breaker is the org's; a tenant named with it must be connected to that org, so a typo
    // in the org id is not mistaken for a closed breaker of the tenant's org.
    if let (Some(t), Some(o)) = (tenant.as_deref(), org.as_deref()) {
        if ops.grants().get_connection(t, provider, o).await?.is_none() {
            return Err(Error::NotFound(format!("tenant {t} has no {provider} connection to org {o}")));
        }
    }
    let scope = org.as_deref();
    let name = match scope {
        Some(o) => format!("{provider} org {o} (shared by every tenant connected to it)"),
        None => format!("{provider} (provider-wide)"),
    };
    if reset {
        guard.reset_breaker(provider, scope).await?;
        return Ok(format!("breaker {name}: closed"));
    }
    let b = guard.breaker_state(provider, scope).await?;
    Ok(format!(
        "breaker {name}: {} (window: {} calls, {} failures; half-open probes {} of which {} succeeded)",
        b.state.as_str(),
        b.calls,
        b.failures,
        b.probes,
        b.probe_ok
    ))
}
