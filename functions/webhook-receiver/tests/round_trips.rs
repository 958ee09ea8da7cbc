//! How many AWS round trips a webhook delivery waits for, one after another: every SDK call is
//! recorded (start, end) by an interceptor, and the longest chain of calls each starting after the
//! previous one ended is the delivery's sequential depth. Concurrent calls overlap and count once.

mod support;

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use integration_tests::TestEnv;
use shared::aws::AwsClients;
use shared::Provider;
use support::*;

#[derive(Debug)]
struct CallIdx(usize);
impl Storable for CallIdx {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct Call {
    op: String,
    start: Instant,
    end: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Call>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "round-trip recorder"
    }
    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        let mut calls = self.0.lock().unwrap();
        cfg.interceptor_state().store_put(CallIdx(calls.len()));
        calls.push(Call { op, start: Instant::now(), end: None });
        Ok(())
    }
    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg.load::<Metadata>().map(|m| m.name().to_string());
        if let Some(i) = cfg.load::<CallIdx>() {
            let mut calls = self.0.lock().unwrap();
            calls[i.0].end = Some(Instant::now());
            if let Some(op) = op {
                calls[i.0].op = op;
            }
        }
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The longest chain of calls where each starts after the one before it ended.
fn sequential_depth(calls: &[Call]) -> usize {
    let mut sorted = calls.to_vec();
    sorted.sort_by_key(|c| c.start);
    let mut depth = vec![1usize; sorted.len()];
    for i in 0..sorted.len() {
        for j in 0..i {
            if sorted[j].end.is_some_and(|e| e <= sorted[i].start) {
                depth[i] = depth[i].max(depth[j] + 1);
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

async fn recorded_env(f: &Fixture, rec: &Recorder) -> TestEnv {
    let sdk = aws_config::load_from_env().await;
    let clients = AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(rec.clone()).build()),
        sqs: aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&sdk).interceptor(rec.clone()).build()),
        kms: aws_sdk_kms::Client::from_conf(aws_sdk_kms::config::Builder::from(&sdk).interceptor(rec.clone()).build()).into(),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&sdk).interceptor(rec.clone()).build(),
        ),
    };
    TestEnv { config: f.env.config.clone(), clients }
}

/// A connected QuickBooks realm and a receiver whose every AWS call is recorded.
async fn recorded_receiver() -> (Fixture, String, Recorder, shared::webhooks::Receiver) {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let rec = Recorder::default();
    let env = recorded_env(&f, &rec).await;
    let deps = receiver(&env, f.queues.clone(), 262_144, Arc::new(AtomicI64::new(0)));
    (f, realm, rec, deps)
}

fn ops(calls: &[Call]) -> Vec<&str> {
    calls.iter().map(|c| c.op.as_str()).collect()
}

#[tokio::test]
async fn a_cold_delivery_and_a_warm_one_each_wait_for_two_round_trips() {
    let (f, realm, rec, deps) = recorded_receiver().await;

    // Container init: the signing keys are read here, not on the first delivery.
    deps.warm().await;
    let init = rec.take();
    assert_eq!(ops(&init), vec!["GetSecretValue"], "init");

    let send = |entity_id: &'static str| {
        let body = qbo_legacy(&realm, &[("Invoice", entity_id, "Create", "2026-11-24T17:59:41.000Z")]);
        let deps = &deps;
        async move {
            let resp = webhook_receiver::handle(deps, qbo_signed(&body)).await.unwrap();
            assert_eq!(resp.status(), 200);
        }
    };

    // Cold: the connections index (whose items carry the tenant's routing copy, so no tenant read)
    // alongside the nonce claim; then SendMessageBatch. The claim's confirm is the worker's.
    send("1").await;
    let cold = rec.take();
    eprintln!("cold: {:?}", ops(&cold));
    assert!(!ops(&cold).contains(&"GetSecretValue"), "{:?}", ops(&cold));
    assert!(!ops(&cold).contains(&"GetItem"), "the tenant is not read: {:?}", ops(&cold));
    assert!(!ops(&cold).contains(&"UpdateItem"), "no confirm on the delivery path: {:?}", ops(&cold));
    assert_eq!(sequential_depth(&cold), 2, "{:?}", ops(&cold));

    // Warm: org and tenant come from the container's caches: the nonce claim, then SQS.
    send("2").await;
    let warm = rec.take();
    eprintln!("warm: {:?}", ops(&warm));
    assert_eq!(ops(&warm), vec!["PutItem", "SendMessageBatch"], "{:?}", ops(&warm));
    assert_eq!(sequential_depth(&warm), 2, "{:?}", ops(&warm));
    assert_eq!(f.drain_all().await.len(), 2);
}

/// Connections stored before the routing copy existed still route: the tenant is read (the old
/// cold path of three round trips) until the tenant's next update writes the copy.
#[tokio::test]
async fn a_connection_without_a_routing_copy_routes_by_reading_the_tenant() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect_unrouted(Provider::QuickBooks, &[&realm]).await;
    let rec = Recorder::default();
    let env = recorded_env(&f, &rec).await;
    let deps = receiver(&env, f.queues.clone(), 262_144, Arc::new(AtomicI64::new(0)));
    deps.warm().await;
    rec.take();
    let body = qbo_legacy(&realm, &[("Invoice", "9", "Create", "2026-11-24T17:59:41.000Z")]);
    assert_eq!(webhook_receiver::handle(&deps, qbo_signed(&body)).await.unwrap().status(), 200);
    let cold = rec.take();
    assert!(ops(&cold).contains(&"GetItem"), "{:?}", ops(&cold));
    assert_eq!(sequential_depth(&cold), 3, "{:?}", ops(&cold));
    assert_eq!(f.drain_all().await.len(), 1);
}

/// A tenant update reaches the copy (what `ttya-ops tenants set-config` does), a cold receiver
/// follows it, and an older copy never replaces a newer one.
#[tokio::test]
async fn a_tenant_update_reaches_the_routing_copy_and_a_stale_copy_never_wins() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let tenants = f.tenants();
    let before = tenants.get(&f.tenant_id).await.unwrap();
    let mut t = before.clone();
    t.config.enabled_entities.retain(|e| *e != shared::tenancy::Entity::Invoice);
    let t = tenants.update(&t, chrono::Utc::now()).await.unwrap();
    assert_eq!(f.grants.set_routing(&shared::tenancy::TenantRouting::of(&t)).await.unwrap(), 1);
    // A late writer holding the old version changes nothing.
    assert_eq!(f.grants.set_routing(&shared::tenancy::TenantRouting::of(&before)).await.unwrap(), 0);

    let rec = Recorder::default();
    let env = recorded_env(&f, &rec).await;
    let deps = receiver(&env, f.queues.clone(), 262_144, Arc::new(AtomicI64::new(0)));
    let body = qbo_legacy(&realm, &[("Invoice", "3", "Create", "2026-11-24T17:59:41.000Z")]);
    assert_eq!(webhook_receiver::handle(&deps, qbo_signed(&body)).await.unwrap().status(), 200);
    assert!(!ops(&rec.take()).contains(&"GetItem"), "routed by the copy");
    assert!(f.drain_all().await.is_empty(), "invoices are no longer synced: nothing enqueued");
}

/// main.rs starts the key read and then polls the runtime at once: a delivery that arrives while the
/// read is in flight waits for it rather than reading the keys a second time.
#[tokio::test]
async fn a_delivery_during_the_init_key_read_waits_for_it_and_reads_nothing_twice() {
    let (f, realm, rec, deps) = recorded_receiver().await;

    let prefetch = tokio::spawn({
        let deps = deps.clone();
        async move { deps.warm().await }
    });
    let body = qbo_legacy(&realm, &[("Invoice", "7", "Create", "2026-11-24T17:59:41.000Z")]);
    let resp = webhook_receiver::handle(&deps, qbo_signed(&body)).await.unwrap();
    assert_eq!(resp.status(), 200);
    prefetch.await.unwrap();
    let calls = rec.take();
    assert_eq!(ops(&calls).iter().filter(|op| **op == "GetSecretValue").count(), 1, "{:?}", ops(&calls));
    assert_eq!(f.drain_all().await.len(), 1);
}

#[test]
fn overlapping_calls_count_once() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let call = |s, e| Call { op: String::new(), start: at(s), end: Some(at(e)) };
    // a [0,10] and b [1,20] overlap; c [20,30] follows both; d [31,40] follows c.
    assert_eq!(sequential_depth(&[call(0, 10), call(1, 20), call(20, 30), call(31, 40)]), 3);
    assert_eq!(sequential_depth(&[call(0, 10), call(10, 20), call(20, 30)]), 3);
    assert_eq!(sequential_depth(&[call(0, 10), call(0, 10)]), 1);
}
