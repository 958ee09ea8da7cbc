//! The sandbox's whole world: settings, clock, organisations, OAuth grants and tokens, rate-limit
//! windows, faults and counters. One mutex guards it; no handler holds it across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::Org;
use crate::model::{Entity, Provider};

/// Fixed identities of the seeded organisations (documented in the README; clients' tests use them).
pub const QBO_DEFAULT_REALM: &str = "9341452000000001";
pub const XERO_TENANT_1: &str = "4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61";
pub const XERO_TENANT_2: &str = "8b7e6d5c-4f3a-4e2b-8c1d-0a9b8c7d6e52";
pub const ZOHO_ORG_US: &str = "700000001";
pub const ZOHO_ORG_EU: &str = "700000002";
/// Zoho's data centres (shared/src/providers/endpoints.rs has the hosts; `ae` and `sg` serving
/// Zoho Books is unconfirmed).
pub const ZOHO_DCS: [&str; 11] = ["us", "eu", "in", "au", "jp", "ca", "sa", "uk", "cn", "ae", "sg"];

/// Default client credentials and webhook keys (the local secrets use the same values).
pub const QBO_CLIENT_ID: &str = "sandbox-qbo-client";
pub const QBO_CLIENT_SECRET: &str = "sandbox-qbo-secret";
pub const XERO_CLIENT_ID: &str = "sandbox-xero-client";
pub const XERO_CLIENT_SECRET: &str = "sandbox-xero-secret";
pub const ZOHO_CLIENT_ID: &str = "sandbox-zoho-client";
pub const ZOHO_CLIENT_SECRET: &str = "sandbox-zoho-secret";
pub const QBO_WEBHOOK_VERIFIER: &str = "sandbox-qbo-verifier";
pub const XERO_WEBHOOK_KEY: &str = "sandbox-xero-webhook-key";

/// Lifetimes and limits for one provider. Seconds throughout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProviderSettings {
    pub access_token_ttl: i64,
    /// None: refresh tokens never expire on their own (Zoho).
    pub refresh_token_ttl: Option<i64>,
    /// How long a rotated-away refresh token still works (Xero 30 min; QuickBooks treated as 0).
    pub refresh_grace: i64,
    pub auth_code_ttl: i64,
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limit_per_day: Option<u32>,
    /// Across all orgs of one client (Xero's app-minute limit).
    pub app_rate_limit_per_minute: Option<u32>,
    /// Length of the "minute" windows (per org and per app). 60 like the providers; tests shrink it
    /// so a whole window fits in a few seconds.
    #[serde(default = "default_minute_window")]
    pub minute_window_seconds: i64,
    /// Length of the "day" window. 86,400 like the providers; tests shrink it.
    #[serde(default = "default_day_window")]
    pub day_window_seconds: i64,
    /// Calls in flight at once per org (QuickBooks 10 per realm, Xero 5 per tenant); None: no limit.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// Added to every API answer, so calls overlap and the concurrency limit can bite.
    #[serde(default)]
    pub latency_ms: u64,
}

fn default_minute_window() -> i64 {
    60
}

fn default_day_window() -> i64 {
    86_400
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub quickbooks: ProviderSettings,
    pub xero: ProviderSettings,
    pub zoho: ProviderSettings,
    /// How long a `timeout` fault holds the response before answering.
    pub timeout_fault_seconds: u64,
    /// Master switch (the benchmark turns limits off; tests shrink them instead).
    pub rate_limits_enabled: bool,
    /// Zoho Accounts: at most this many access tokens per refresh token within
    /// `zoho_token_issue_window` seconds; more answers HTTP 200 "Access Denied" (Zoho Accounts
    /// token-validity docs: 10 per 10 minutes; the exact error body is unconfirmed).
    #[serde(default = "default_zoho_token_issue_limit")]
    pub zoho_token_issue_limit: u32,
    #[serde(default = "default_zoho_token_issue_window")]
    pub zoho_token_issue_window: i64,
    /// QuickBooks' hard cap on a grant's refresh tokens, from the first consent (Intuit blog
    /// 2025-11-12: five years; reported as `x_refresh_token_hard_expires_in` only when the token
    /// request carries `x-include-refresh-token-hard-expires-in: true`, a header name seen in
    /// Intuit's SDK releases but not in its API reference: unconfirmed).
    #[serde(default = "default_quickbooks_refresh_hard_ttl")]
    pub quickbooks_refresh_hard_ttl: i64,
    /// The scope vocabulary of the sandbox's Xero app: "granular" (an app created on or after
    /// 2 March 2026, which may not ask for `accounting.transactions` or `accounting.reports.read`)
    /// or "broad" (an older app, which may ask for either). Xero's answer to a refused scope is
    /// reported by integrators as `invalid_scope` or `unauthorized_client` on the redirect; the
    /// sandbox sends `invalid_scope` (unconfirmed).
    #[serde(default = "default_xero_app_scopes")]
    pub xero_app_scopes: String,
    /// Zoho Books' API calls per organisation per day, by subscription plan (Zoho Books KB "What is
    /// the per day API calls limit?": Free 1000, Standard 2000, Professional 5000, Premium, Elite and
    /// Ultimate 10000). Its own setting, separate from `rate_limit_per_day`. When the day resets
    /// (the sandbox: midnight UTC; Zoho probably the org's time zone) is unconfirmed.
    #[serde(default = "default_zoho_daily_limit_by_plan")]
    pub zoho_daily_limit_by_plan: std::collections::BTreeMap<String, u32>,
    /// The plan of an organisation not listed in `zoho_org_plans`.
    #[serde(default = "default_zoho_default_plan")]
    pub zoho_default_plan: String,
    /// Organisation id -> plan.
    #[serde(default)]
    pub zoho_org_plans: std::collections::BTreeMap<String, String>,
}

fn default_xero_app_scopes() -> String {
    "granular".into()
}

fn default_zoho_daily_limit_by_plan() -> std::collections::BTreeMap<String, u32> {
    [("free", 1000), ("standard", 2000), ("professional", 5000), ("premium", 10_000), ("elite", 10_000), ("ultimate", 10_000)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn default_zoho_default_plan() -> String {
    "premium".into()
}

fn default_quickbooks_refresh_hard_ttl() -> i64 {
    5 * 365 * 86_400
}

fn default_zoho_token_issue_limit() -> u32 {
    10
}

fn default_zoho_token_issue_window() -> i64 {
    600
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quickbooks: ProviderSettings {
                access_token_ttl: 3600,
                // x_refresh_token_expires_in: 101 days, rolling: each refresh restarts it.
                refresh_token_ttl: Some(8_726_400),
                refresh_grace: 0,
                auth_code_ttl: 300,
                rate_limit_per_minute: Some(500),
                rate_limit_per_day: None,
                app_rate_limit_per_minute: None,
                minute_window_seconds: 60,
                day_window_seconds: 86_400,
                // Intuit: 10 concurrent requests per realm and app.
                max_concurrent: Some(10),
                latency_ms: 0,
            },
            xero: ProviderSettings {
                access_token_ttl: 1800,
                // Expires when unused for 60 days.
                refresh_token_ttl: Some(60 * 86_400),
                refresh_grace: 1800,
                auth_code_ttl: 300,
                rate_limit_per_minute: Some(60),
                rate_limit_per_day: Some(5000),
                app_rate_limit_per_minute: Some(10_000),
                minute_window_seconds: 60,
                day_window_seconds: 86_400,
                // Xero: 5 calls in progress per tenant.
                max_concurrent: Some(5),
                latency_ms: 0,
            },
            zoho: ProviderSettings {
                access_token_ttl: 3600,
                refresh_token_ttl: None,
                refresh_grace: 0,
                auth_code_ttl: 120,
                rate_limit_per_minute: Some(100),
                // The Free plan's daily limit (paid plans 2,000-10,000; the mapping is unconfirmed).
                rate_limit_per_day: Some(1000),
                app_rate_limit_per_minute: None,
                minute_window_seconds: 60,
                day_window_seconds: 86_400,
                // Zoho's concurrency limit is documented for Inventory, unconfirmed for Books: off.
                max_concurrent: None,
                latency_ms: 0,
            },
            timeout_fault_seconds: 60,
            rate_limits_enabled: true,
            zoho_token_issue_limit: default_zoho_token_issue_limit(),
            zoho_token_issue_window: default_zoho_token_issue_window(),
            quickbooks_refresh_hard_ttl: default_quickbooks_refresh_hard_ttl(),
            xero_app_scopes: default_xero_app_scopes(),
            zoho_daily_limit_by_plan: default_zoho_daily_limit_by_plan(),
            zoho_default_plan: default_zoho_default_plan(),
            zoho_org_plans: Default::default(),
        }
    }
}

impl Settings {
    pub fn for_provider(&self, p: Provider) -> &ProviderSettings {
        match p {
            Provider::Quickbooks => &self.quickbooks,
            Provider::Xero => &self.xero,
            Provider::Zoho => &self.zoho,
        }
    }

    pub fn for_provider_mut(&mut self, p: Provider) -> &mut ProviderSettings {
        match p {
            Provider::Quickbooks => &mut self.quickbooks,
            Provider::Xero => &mut self.xero,
            Provider::Zoho => &mut self.zoho,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub id: String,
    #[serde(rename = "authEventId")]
    pub auth_event_id: String,
    #[serde(rename = "tenantId")]
    pub tenant_id: String,
    #[serde(rename = "tenantType")]
    pub tenant_type: String,
    #[serde(rename = "tenantName")]
    pub tenant_name: String,
    #[serde(rename = "createdDateUtc")]
    pub created_date_utc: String,
    #[serde(rename = "updatedDateUtc")]
    pub updated_date_utc: String,
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub provider: Provider,
    pub client_id: String,
    pub scope: String,
    pub user: String,
    /// QuickBooks: the one realm. Zoho: resolved live from `dc`. Xero: see `connections`.
    pub orgs: Vec<String>,
    pub dc: Option<String>,
    pub connections: Vec<Connection>,
    pub auth_event_id: String,
    pub revoked: bool,
    /// A Xero PKCE grant made without a client secret: refreshes present only client_id.
    pub public_client: bool,
    pub created: DateTime<Utc>,
    /// Order of creation (timestamps can tie).
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub grant: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub rotated: Option<Rotated>,
    /// When access tokens were minted from it (Zoho's token-issue limit counts these).
    pub issued: Vec<DateTime<Utc>>,
}

/// A refresh token that has been used: when, and the answer it got (replayed within the grace).
#[derive(Debug, Clone)]
pub struct Rotated {
    pub at: DateTime<Utc>,
    pub answer: Value,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub grant: String,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub provider: Provider,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    /// (challenge, method)
    pub challenge: Option<(String, String)>,
    pub orgs: Vec<String>,
    pub dc: Option<String>,
    pub user: String,
    pub with_refresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    #[serde(rename = "500")]
    ServerError,
    #[serde(rename = "timeout")]
    Timeout,
    #[serde(rename = "429")]
    RateLimited,
    #[serde(rename = "malformed")]
    Malformed,
    #[serde(rename = "invalid_grant")]
    InvalidGrant,
    // QuickBooks error shapes as Intuit's gateway sends them (other providers: the plain 429/401).
    /// 429 `{"fault":{"error":[..code "3001"..],"type":"SERVICE"}}`.
    #[serde(rename = "qbo_throttle_service")]
    QboThrottleService,
    /// 429 with an XML `<Fault type="SERVICE">` document, whatever the Accept header asked for.
    #[serde(rename = "qbo_throttle_xml")]
    QboThrottleXml,
    /// 403 with the XML throttle document (historical gateway behaviour).
    #[serde(rename = "qbo_throttle_403")]
    QboThrottle403,
    /// 401 `{"fault":{"error":[..code "3200"..],"type":"AUTHENTICATION"}}`.
    #[serde(rename = "qbo_auth")]
    QboAuth,
    /// A token endpoint error with the `error` code given in the fault (Zoho: HTTP 200; others 400).
    #[serde(rename = "token_error")]
    TokenError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub provider: Option<Provider>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    pub retry_after: Option<u64>,
    /// `token_error`: the OAuth `error` value to answer with.
    #[serde(default)]
    pub error: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: DateTime<Utc>,
    count: u32,
}

impl Window {
    fn roll(&mut self, now: DateTime<Utc>, len: i64) {
        if now - self.start >= Duration::seconds(len) || now < self.start {
            self.start = now;
            self.count = 0;
        }
    }

    fn retry_after(&self, now: DateTime<Utc>, len: i64) -> u64 {
        let left = (self.start + Duration::seconds(len) - now).num_milliseconds();
        ((left + 999) / 1000).max(1) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitProblem {
    Minute,
    Day,
    AppMinute,
    /// Too many calls in flight for the org.
    Concurrent,
}

impl LimitProblem {
    /// Xero's `X-Rate-Limit-Problem` value.
    pub fn xero_name(self) -> &'static str {
        match self {
            LimitProblem::Minute => "minute",
            LimitProblem::Day => "day",
            LimitProblem::AppMinute => "appminute",
            // Unconfirmed: Xero documents the concurrent limit but not this header value.
            LimitProblem::Concurrent => "concurrent",
        }
    }
}

/// Quota left after this call (for Xero's X-*Limit-Remaining headers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quota {
    pub minute_remaining: Option<u32>,
    pub day_remaining: Option<u32>,
    pub app_minute_remaining: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limited {
    pub problem: LimitProblem,
    pub retry_after: u64,
    pub quota: Quota,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub calls: HashMap<String, u64>,
    pub refreshes: HashMap<String, u64>,
    pub rate_limited: HashMap<String, u64>,
    /// Of `rate_limited`, the refusals for too many calls in flight.
    pub concurrency_limited: HashMap<String, u64>,
    /// The most calls in flight at once per `provider:org`.
    pub peak_in_flight: HashMap<String, u32>,
    pub faults_injected: u64,
    pub webhooks_emitted: u64,
}

pub struct World {
    pub settings: Settings,
    initial_settings: Settings,
    clock_offset: Duration,
    orgs: [HashMap<String, Org>; 3],
    pub grants: HashMap<String, Grant>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub codes: HashMap<String, AuthCode>,
    /// PKCE verifiers presented at code exchange, kept so a local run can check none reached a log.
    pub seen_verifiers: Vec<String>,
    pub faults: Vec<Fault>,
    pub counters: Counters,
    org_windows: HashMap<(Provider, String), (Window, Window)>,
    app_windows: HashMap<(Provider, String), Window>,
    in_flight: HashMap<(Provider, String), u32>,
    /// Zoho org -> (UTC day, calls that day).
    zoho_days: HashMap<String, (chrono::NaiveDate, u32)>,
}

impl World {
    pub fn new(settings: Settings, seed: bool) -> World {
        let mut w = World {
            initial_settings: settings.clone(),
            settings,
            clock_offset: Duration::zero(),
            orgs: Default::default(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            codes: HashMap::new(),
            seen_verifiers: Vec::new(),
            faults: Vec::new(),
            counters: Counters::default(),
            org_windows: HashMap::new(),
            app_windows: HashMap::new(),
            in_flight: HashMap::new(),
            zoho_days: HashMap::new(),
        };
        if seed {
            w.seed_defaults();
        }
        w
    }

    /// Back to the state at start: default orgs and records, no tokens, no faults, real clock.
    pub fn reset(&mut self) {
        *self = World::new(self.initial_settings.clone(), true);
    }

    fn seed_defaults(&mut self) {
        let now = self.now();
        self.add_org(Provider::Quickbooks, QBO_DEFAULT_REALM, "Sandbox Company_US_1", None);
        self.add_org(Provider::Xero, XERO_TENANT_1, "Demo Company (Global)", None);
        self.add_org(Provider::Xero, XERO_TENANT_2, "Sandbox Trading Ltd", None);
        self.add_org(Provider::Zoho, ZOHO_ORG_US, "Sandbox Books Inc", Some("us"));
        self.add_org(Provider::Zoho, ZOHO_ORG_EU, "Sandbox Books GmbH", Some("eu"));
        for p in Provider::ALL {
            for org in self.orgs[p.idx()].values_mut() {
                for _ in 0..3 {
                    org.generate(Entity::Contact, now);
                }
                for _ in 0..4 {
                    org.generate(Entity::Account, now);
                }
                for _ in 0..3 {
                    org.generate(Entity::Invoice, now);
                }
                for _ in 0..2 {
                    org.generate(Entity::Payment, now);
                }
            }
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    pub fn advance_clock(&mut self, seconds: i64) {
        self.clock_offset += Duration::seconds(seconds);
    }

    pub fn clock_offset_seconds(&self) -> i64 {
        self.clock_offset.num_seconds()
    }

    pub fn ps(&self, p: Provider) -> &ProviderSettings {
        self.settings.for_provider(p)
    }

    pub fn add_org(&mut self, p: Provider, id: &str, name: &str, dc: Option<&str>) -> &mut Org {
        let now = self.now();
        self.orgs[p.idx()].entry(id.to_string()).or_insert_with(|| Org::new(p, id, name, dc, now))
    }

    pub fn org(&self, p: Provider, id: &str) -> Option<&Org> {
        self.orgs[p.idx()].get(id)
    }

    pub fn org_mut(&mut self, p: Provider, id: &str) -> Option<&mut Org> {
        self.orgs[p.idx()].get_mut(id)
    }

    pub fn orgs(&self, p: Provider) -> impl Iterator<Item = &Org> {
        self.orgs[p.idx()].values()
    }

    /// Orgs a grant reaches right now (Zoho: every org of its data centre, including ones seeded later).
    pub fn grant_orgs(&self, g: &Grant) -> Vec<String> {
        match g.provider {
            Provider::Quickbooks => g.orgs.clone(),
            Provider::Xero => g.connections.iter().map(|c| c.tenant_id.clone()).collect(),
            Provider::Zoho => {
                let mut v: Vec<String> =
                    self.orgs[Provider::Zoho.idx()].values().filter(|o| o.dc.as_deref() == g.dc.as_deref()).map(|o| o.id.clone()).collect();
                v.sort();
                v
            }
        }
    }

    /// The live grant behind an access token, if the token is known, unexpired and not revoked.
    pub fn grant_for_access(&self, p: Provider, token: &str) -> Result<&Grant, TokenProblem> {
        let at = self.access_tokens.get(token).ok_or(TokenProblem::Unknown)?;
        let g = self.grants.get(&at.grant).ok_or(TokenProblem::Unknown)?;
        if g.provider != p {
            return Err(TokenProblem::Unknown);
        }
        if at.revoked || g.revoked {
            return Err(TokenProblem::Revoked);
        }
        if self.now() >= at.expires_at {
            return Err(TokenProblem::Expired(at.expires_at));
        }
        Ok(g)
    }

    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let provider = Provider::from_path(path);
        let i = self.faults.iter().position(|f| {
            f.count > 0
                && (f.provider.is_none() || f.provider == provider)
                && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                && f.path_prefix
                    .as_deref()
                    .is_none_or(|pre| path.starts_with(pre) || provider.is_some_and(|p| path[p.as_str().len() + 1..].starts_with(pre)))
        })?;
        let f = &mut self.faults[i];
        f.count -= 1;
        let out = f.clone();
        if f.count == 0 {
            self.faults.remove(i);
        }
        self.counters.faults_injected += 1;
        Some(out)
    }

    /// Counts one call against the org's windows (and the client's app-wide window). Calls refused
    /// for a limit do not count, as with the real providers.
    pub fn check_rate(&mut self, p: Provider, org: &str, client_id: &str) -> Result<Quota, Limited> {
        let now = self.now();
        let s = self.ps(p).clone();
        if !self.settings.rate_limits_enabled {
            return Ok(Quota::default());
        }
        let (minute, day) =
            self.org_windows.entry((p, org.to_string())).or_insert((Window { start: now, count: 0 }, Window { start: now, count: 0 }));
        let (mw, dw) = (s.minute_window_seconds.max(1), s.day_window_seconds.max(1));
        minute.roll(now, mw);
        day.roll(now, dw);
        let app = self.app_windows.entry((p, client_id.to_string())).or_insert(Window { start: now, count: 0 });
        app.roll(now, mw);
        let quota = |m: &Window, d: &Window, a: &Window, extra: u32| Quota {
            minute_remaining: s.rate_limit_per_minute.map(|l| l.saturating_sub(m.count + extra)),
            day_remaining: s.rate_limit_per_day.map(|l| l.saturating_sub(d.count + extra)),
            app_minute_remaining: s.app_rate_limit_per_minute.map(|l| l.saturating_sub(a.count + extra)),
        };
        let problem = if s.app_rate_limit_per_minute.is_some_and(|l| app.count >= l) {
            Some((LimitProblem::AppMinute, app.retry_after(now, mw)))
        } else if s.rate_limit_per_day.is_some_and(|l| day.count >= l) {
            Some((LimitProblem::Day, day.retry_after(now, dw)))
        } else if s.rate_limit_per_minute.is_some_and(|l| minute.count >= l) {
            Some((LimitProblem::Minute, minute.retry_after(now, mw)))
        } else {
            None
        };
        if let Some((problem, retry_after)) = problem {
            let q = quota(minute, day, app, 0);
            *self.counters.rate_limited.entry(format!("{}:{}", p.as_str(), org)).or_default() += 1;
            return Err(Limited { problem, retry_after, quota: q });
        }
        minute.count += 1;
        day.count += 1;
        app.count += 1;
        Ok(quota(minute, day, app, 0))
    }

    /// Takes one in-flight place for the org, or says the org is at its concurrency limit. Refused
    /// calls do not hold a place. Every `Ok` must be paired with one [`World::leave`].
    pub fn enter(&mut self, p: Provider, org: &str) -> Result<(), Limited> {
        let limit = if self.settings.rate_limits_enabled { self.ps(p).max_concurrent } else { None };
        let n = self.in_flight.entry((p, org.to_string())).or_default();
        if limit.is_some_and(|l| *n >= l) {
            *self.counters.rate_limited.entry(format!("{}:{}", p.as_str(), org)).or_default() += 1;
            *self.counters.concurrency_limited.entry(format!("{}:{}", p.as_str(), org)).or_default() += 1;
            return Err(Limited { problem: LimitProblem::Concurrent, retry_after: 1, quota: Quota::default() });
        }
        *n += 1;
        let n = *n;
        let peak = self.counters.peak_in_flight.entry(format!("{}:{}", p.as_str(), org)).or_default();
        *peak = (*peak).max(n);
        Ok(())
    }

    pub fn leave(&mut self, p: Provider, org: &str) {
        if let Some(n) = self.in_flight.get_mut(&(p, org.to_string())) {
            *n = n.saturating_sub(1);
        }
    }

    /// Zoho's per-plan daily call budget for an org: Err(seconds until the next UTC day) when spent.
    /// Refused calls do not count. Off with `rate_limits_enabled`, like the other limits.
    pub fn check_zoho_daily(&mut self, org: &str) -> Result<(), u64> {
        if !self.settings.rate_limits_enabled {
            return Ok(());
        }
        let now = self.now();
        let plan = self.settings.zoho_org_plans.get(org).unwrap_or(&self.settings.zoho_default_plan);
        let Some(limit) = self.settings.zoho_daily_limit_by_plan.get(plan).copied() else {
            return Ok(());
        };
        let today = now.date_naive();
        let day = self.zoho_days.entry(org.to_string()).or_insert((today, 0));
        if day.0 != today {
            *day = (today, 0);
        }
        if day.1 >= limit {
            *self.counters.rate_limited.entry(format!("zoho daily {org}")).or_default() += 1;
            let next = (today + Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            return Err((next - now).num_seconds().max(1) as u64);
        }
        day.1 += 1;
        Ok(())
    }

    pub fn count_call(&mut self, key: String) {
        *self.counters.calls.entry(key).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Revoked,
    Expired(DateTime<Utc>),
}

pub fn random_alnum(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn random_b64url(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

pub struct Shared {
    pub world: Mutex<World>,
    /// Where this sandbox is reachable (Zoho answers carry absolute accounts/API URLs).
    pub base_url: String,
}

impl AppState {
    pub fn lock(&self) -> MutexGuard<'_, World> {
        // A panic inside a handler must not wedge the whole sandbox for the rest of a test run.
        self.0.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn base_url(&self) -> &str {
        &self.0.base_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_refuses_over_limit_and_reopens_after_a_minute() {
        let mut s = Settings::default();
        s.xero.rate_limit_per_minute = Some(2);
        let mut w = World::new(s, false);
        assert_eq!(w.check_rate(Provider::Xero, "t", "c").unwrap().minute_remaining, Some(1));
        assert_eq!(w.check_rate(Provider::Xero, "t", "c").unwrap().minute_remaining, Some(0));
        let l = w.check_rate(Provider::Xero, "t", "c").unwrap_err();
        assert_eq!(l.problem, LimitProblem::Minute);
        assert!((1..=60).contains(&l.retry_after));
        // Another tenant has its own window.
        assert!(w.check_rate(Provider::Xero, "other", "c").is_ok());
        w.advance_clock(61);
        assert!(w.check_rate(Provider::Xero, "t", "c").is_ok());
    }

    #[test]
    fn faults_match_provider_and_prefix_and_run_out() {
        let mut w = World::new(Settings::default(), false);
        w.faults.push(Fault {
            provider: Some(Provider::Xero),
            path_prefix: Some("/api.xro/2.0/Invoices".into()),
            method: None,
            kind: FaultKind::ServerError,
            count: 2,
            retry_after: None,
            error: None,
        });
        assert!(w.take_fault("GET", "/xero/api.xro/2.0/Contacts").is_none());
        assert!(w.take_fault("GET", "/zoho/api/us/books/v3/invoices").is_none());
        assert!(w.take_fault("GET", "/xero/api.xro/2.0/Invoices").is_some());
        assert!(w.take_fault("GET", "/xero/api.xro/2.0/Invoices/abc").is_some());
        assert!(w.take_fault("GET", "/xero/api.xro/2.0/Invoices").is_none());
    }
}
