//! One code path for every provider call: circuit breaker → rate limiter → concurrency slot → call →
//! classify (→ retry within budget), all state in the resilience table so every worker, refresher
//! and callback shares one budget per provider and org. The breaker comes first so a refused call
//! spends no rate; the limiter reserves a place and the slot is taken while waiting for it, so the
//! call leaves at its reserved time give or take network jitter.
//!
//! ```text
//! guard.call(tenant, provider, org, "list invoices", || client.list(&tokens, org, &cursor)).await
//! ```
//!
//! Short waits (a reserved rate-limit place, a full slot, a backoff) are slept in-process within the
//! retry budget; longer ones come back as `Error::RateLimited` / `Error::CircuitOpen` with
//! `retry_after`, so an SQS consumer delays the message instead of holding a Lambda.
//!
//! # Deadlines
//!
//! A caller that must be done by a time (a Lambda's deadline, less what it needs afterwards) runs
//! its calls inside [`within_deadline`]. Before each attempt the guard checks that the attempt's
//! worst case (`Limits::attempt_timeout`, the provider timeout, plus the `horizon` a reserved place
//! may lie ahead) still fits before the deadline, and bounds every wait by what is left after it.
//! An attempt that cannot fit is not started: the call returns `Error::RateLimited` with a scope
//! ending in `:deadline` ([`is_deadline`]), retryable, so a pull hands over to a follow-up job and
//! anything else comes back as a retry. So a guarded call returns by the deadline whatever the
//! provider does (the guard's own DynamoDB calls aside). Not covered: a 401 answered by a token
//! refresh and a second send inside one attempt (`TokenService::with_token`) can take two provider
//! timeouts.
//!
//! # Cost: less than one DynamoDB call per permitted call
//!
//! Each worker (guard) keeps, per org it calls, a *lane*: the places it has reserved, the slot it
//! holds, the org breaker as last read and the outcomes not yet written. A call that finds a place
//! in hand costs nothing; otherwise one write to the org's item reserves a batch of places, renews
//! the slot, adds the held outcome counts and reads the breaker back (`lane`). The provider-wide
//! breaker is read at most once per `cache_for` per worker (with the held counts added in the same
//! write), and a failure is written at once. Xero's app-wide limit costs a write per org per half
//! share lease, not per call (`lane`, "shares"). The slot is kept across a worker's consecutive
//! calls and given back by [`ProviderGuard::flush`] at the end of a job (or when its lease ends).
//!
//! Keys (resilience table, see each module): `ORG#<provider>#<org>` / `RL` (the org's rate limit,
//! slots and breaker in one item); app-wide `APP#<provider>` / `APP` (the provider breaker, Xero's
//! app shares). No key holds a tenant: the providers count per org and app, so every tenant
//! connected to one org shares its budget, its slots and its breaker. The tenant a call is made
//! for only decides where a breaker transition's app event goes and what the logs say. Every item carries `expires_at` (epoch seconds, the table's TTL attribute),
//! pushed forward by each write, so state nobody has touched for [`ITEM_TTL`] goes away.

pub mod breaker;
pub mod deadline;
pub mod guard;
pub mod health;
pub mod lane;
pub mod limiter;
pub mod limits;
pub mod retry;
pub mod slots;

use std::time::Duration;

pub use breaker::{Admission, BreakerKey, BreakerSettings, BreakerSnapshot, BreakerState, Breakers, Outcome, Pending, Transition};
pub use deadline::{is_deadline, within_deadline};
pub use guard::{GuardStats, Guarded, ProviderGuard};
pub use health::{notify_transition, transition_event};
pub use limiter::{Cost, Decision, LimitKey, Limiter, RateParams};
pub use limits::Limits;
pub use retry::RetryPolicy;
pub use slots::{SlotDecision, Slots};

/// How long a resilience item lives untouched before DynamoDB's TTL may delete it: longer than any
/// state in it matters (a day window, a breaker's open time, a slot or share lease).
pub const ITEM_TTL: Duration = Duration::from_secs(3 * 86_400);

/// `expires_at` for a resilience item written at `now_us`: epoch seconds.
pub fn item_expiry(now_us: i64) -> i64 {
    now_us.div_euclid(1_000_000) + ITEM_TTL.as_secs() as i64
}
