//! `Limits`: every limit the guard applies, with the providers' published values as defaults, the
//! overrides read from the environment, and the limit keys a call draws on.

use std::time::Duration;

use super::limiter::{self, LimitKey, RateParams};
use super::{BreakerSettings, RetryPolicy};
use crate::providers::Provider;
use crate::Config;

/// Every limit, with the providers' published values as defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The providers' "minute" (tests shrink it, as the sandbox can).
    pub minute: Duration,
    /// The providers' "day".
    pub day: Duration,
    /// Margin added to every window for jitter between our clocks and the provider's arrivals.
    pub safety: Duration,
    /// A call may reserve a rate-limit place this far ahead and sleep until it.
    pub horizon: Duration,
    /// Calls let through at once on an idle key (1: evenly spaced; see `limiter` for the maths).
    pub burst: u32,
    pub quickbooks_per_minute: u32,
    pub xero_per_minute: u32,
    pub xero_per_day: u32,
    pub xero_app_per_minute: u32,
    pub zoho_per_minute: u32,
    /// Zoho's plan limit per org: Free 1,000 … 10,000 (plan mapping unconfirmed).
    pub zoho_per_day: u32,
    /// Calls in flight per org; 0 means no limit.
    pub quickbooks_concurrency: u32,
    pub xero_concurrency: u32,
    /// Zoho's concurrency limit is documented for Inventory only (unconfirmed for Books): off.
    pub zoho_concurrency: u32,
    /// A slot's lease: the longest a call can take plus a margin; a dead worker's slot frees after it.
    pub slot_lease: Duration,
    /// The longest one attempt can take (the provider HTTP timeout): what must be left before a
    /// deadline for an attempt to start (see "Deadlines" in `resilience`).
    pub attempt_timeout: Duration,
    pub org_breaker: BreakerSettings,
    /// Provider-wide: needs more calls before it judges, so one org's trouble does not trip it.
    pub provider_breaker: BreakerSettings,
    pub retry: RetryPolicy,
    /// Most places one worker reserves in one write (see `limiter`, "Batches").
    pub max_batch: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            minute: Duration::from_secs(60),
            day: Duration::from_secs(86_400),
            safety: Duration::from_millis(600),
            horizon: Duration::from_secs(5),
            burst: 1,
            quickbooks_per_minute: 500,
            xero_per_minute: 60,
            xero_per_day: 5_000,
            xero_app_per_minute: 10_000,
            zoho_per_minute: 100,
            zoho_per_day: 1_000,
            quickbooks_concurrency: 10,
            xero_concurrency: 5,
            zoho_concurrency: 0,
            slot_lease: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(20),
            org_breaker: BreakerSettings::default(),
            provider_breaker: BreakerSettings { min_calls: 50, ..BreakerSettings::default() },
            retry: RetryPolicy::default(),
            max_batch: 8,
        }
    }
}

impl Limits {
    /// Defaults, the slot lease from the provider timeout, and the optional overrides
    /// `XERO_DAILY_LIMIT` (1,000 on Xero's Starter tier) and `ZOHO_DAILY_LIMIT` (the org's plan).
    pub fn from_config(config: &Config) -> Self {
        Self::from_lookup(config, |k| std::env::var(k).ok())
    }

    pub fn from_lookup(config: &Config, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = Limits::default();
        let mut l = Limits { slot_lease: config.provider_timeout + Duration::from_secs(10), attempt_timeout: config.provider_timeout, ..d };
        let num = |name: &str| -> Option<u32> {
            let raw = lookup(name)?;
            match raw.trim().parse::<u32>() {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    tracing::warn!(variable = name, "ignoring an invalid limit override");
                    None
                }
            }
        };
        if let Some(v) = num("XERO_DAILY_LIMIT") {
            l.xero_per_day = v;
        }
        if let Some(v) = num("ZOHO_DAILY_LIMIT") {
            l.zoho_per_day = v;
        }
        l
    }

    fn minute_params(&self, per_minute: u32) -> RateParams {
        RateParams::per_window(per_minute, self.minute, self.burst, self.safety, self.horizon)
    }

    /// The limit keys one call draws on (one: the org's; Xero's app-wide limit is kept as shares,
    /// see `lane`).
    pub fn keys(&self, provider: Provider, org_id: &str) -> Vec<LimitKey> {
        match provider {
            Provider::QuickBooks => vec![limiter::org_key(provider, org_id, self.minute_params(self.quickbooks_per_minute))],
            Provider::Xero => {
                vec![limiter::org_key(provider, org_id, self.minute_params(self.xero_per_minute).with_day(self.xero_per_day, self.day))]
            }
            Provider::Zoho => {
                vec![limiter::org_key(provider, org_id, self.minute_params(self.zoho_per_minute).with_day(self.zoho_per_day, self.day))]
            }
        }
    }

    /// How long an org's share of Xero's app-wide limit is held per renewal: a minute, or longer
    /// when the horizon is long against a shrunk minute, so renewals stay rare.
    pub fn share_lease(&self) -> Duration {
        self.minute.max(self.horizon * 6)
    }

    /// How many Xero orgs may hold a share of the app-wide limit at once.
    pub fn xero_app_shares(&self) -> u32 {
        (self.xero_app_per_minute / self.xero_per_minute.max(1)).max(1)
    }

    pub fn concurrency(&self, provider: Provider) -> u32 {
        match provider {
            Provider::QuickBooks => self.quickbooks_concurrency,
            Provider::Xero => self.xero_concurrency,
            Provider::Zoho => self.zoho_concurrency,
        }
    }
}
