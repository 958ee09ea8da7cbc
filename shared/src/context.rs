//! The request context: who we are working for and which request this is.
//!
//! A tokio task-local (the Rust counterpart of Node's AsyncLocalStorage). Handlers open a scope per
//! invocation; [`spawn`] carries the context into new tasks, and the log formatter reads it so every
//! log line carries `correlation_id`, `tenant_id` and `provider` without threading them by hand.

use std::future::Future;

use crate::Provider;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestContext {
    pub correlation_id: String,
    pub tenant_id: Option<String>,
    pub provider: Option<Provider>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// Header names (lower case) a correlation id may arrive in, most specific first.
pub const CORRELATION_HEADERS: [&str; 3] = ["x-correlation-id", "x-request-id", "x-amzn-trace-id"];

impl RequestContext {
    /// A context with the given correlation id, or a freshly minted one if none (or an unusable one)
    /// was supplied. Incoming ids are limited so a caller cannot stuff our logs.
    pub fn new(correlation_id: Option<&str>) -> Self {
        let correlation_id = correlation_id
            .map(str::trim)
            .filter(|c| !c.is_empty() && c.len() <= 128 && c.chars().all(|ch| ch.is_ascii_graphic()))
            .map(str::to_string)
            .unwrap_or_else(mint_correlation_id);
        RequestContext { correlation_id, tenant_id: None, provider: None }
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CONTEXT.scope(self, fut).await
    }
}

pub fn mint_correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The current context, if the caller runs inside a scope.
pub fn current() -> Option<RequestContext> {
    CONTEXT.try_with(|c| c.clone()).ok()
}

/// Reads the current context without cloning it.
pub fn with_current<R>(f: impl FnOnce(Option<&RequestContext>) -> R) -> R {
    let mut f = Some(f);
    match CONTEXT.try_with(|c| (f.take().expect("called once"))(Some(c))) {
        Ok(r) => r,
        Err(_) => (f.take().expect("called once"))(None),
    }
}

/// Runs `fut` in a new scope derived from the current one (for example with the tenant filled in
/// once it is known). Outside any scope it starts from a fresh context.
pub async fn scoped<F: Future>(update: impl FnOnce(RequestContext) -> RequestContext, fut: F) -> F::Output {
    let base = current().unwrap_or_else(|| RequestContext::new(None));
    update(base).scope(fut).await
}

/// `tokio::spawn` that carries the current context into the new task. Task-locals do not follow
/// `tokio::spawn` on their own; every spawn in this code base goes through here.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current() {
        Some(ctx) => tokio::spawn(CONTEXT.scope(ctx, fut)),
        None => tokio::spawn(fut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn context_follows_spawned_tasks_and_nested_spawns() {
        let ctx = RequestContext::new(Some("corr-1")).with_tenant("t-1").with_provider(Provider::Xero);
        let seen = ctx
            .clone()
            .scope(async {
                let inner = spawn(async {
                    let nested = spawn(async { current() }).await.unwrap();
                    (current(), nested)
                })
                .await
                .unwrap();
                inner
            })
            .await;
        assert_eq!(seen.0.as_ref(), Some(&ctx));
        assert_eq!(seen.1.as_ref(), Some(&ctx));
    }

    #[tokio::test]
    async fn plain_tokio_spawn_does_not_carry_it_and_concurrent_scopes_stay_apart() {
        let a = RequestContext::new(Some("a")).with_tenant("tenant-a");
        let b = RequestContext::new(Some("b")).with_tenant("tenant-b");
        let plain = a.clone().scope(async { tokio::spawn(async { current() }).await.unwrap() }).await;
        assert_eq!(plain, None, "only context::spawn propagates");

        let fa = a.clone().scope(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            spawn(async { current().unwrap().tenant_id }).await.unwrap()
        });
        let fb = b.clone().scope(async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            spawn(async { current().unwrap().tenant_id }).await.unwrap()
        });
        let (ra, rb) = tokio::join!(fa, fb);
        assert_eq!(ra.as_deref(), Some("tenant-a"));
        assert_eq!(rb.as_deref(), Some("tenant-b"));
    }

    #[tokio::test]
    async fn scoped_refines_the_current_context() {
        let out = RequestContext::new(Some("c-9")).scope(scoped(|c| c.with_tenant("t-9"), async { current().unwrap() })).await;
        assert_eq!(out.correlation_id, "c-9");
        assert_eq!(out.tenant_id.as_deref(), Some("t-9"));
        assert_eq!(current(), None);
    }

    #[test]
    fn unusable_correlation_ids_are_replaced() {
        assert_eq!(RequestContext::new(Some("abc-123")).correlation_id, "abc-123");
        for bad in [None, Some(""), Some("has space"), Some(&*"x".repeat(200))] {
            let c = RequestContext::new(bad);
            assert_eq!(c.correlation_id.len(), 36, "{bad:?} -> {}", c.correlation_id);
        }
    }
}
