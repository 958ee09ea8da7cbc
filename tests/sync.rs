//! The sync worker against moto and the provider sandbox: full and incremental pulls over pages for
//! every provider, exactly-once under redelivery and concurrency, resuming after a crash, pushes
//! retried after a timeout, a 429 storm, poison messages, quota, scopes.
//!
//! Each test runs its own sandbox, its own tenant and its own queues (sync, events, DLQ), so tests
//! in parallel never read each other's messages. Messages go through real SQS queues and the test
//! plays the Lambda event source mapping (receive, run the batch, delete what was acknowledged).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use integration_tests::harness::{enterprise_tenant, own_queue, sandboxed, unseeded, Sandboxed};
use integration_tests::jobs::app_job;
use integration_tests::queues::{app_events, queue_arn};
use integration_tests::sandbox_control::{org_id_for, seeded_ids};
use integration_tests::{audit, connect_sandbox, queues, sandbox_control, unique, TestEnv};
use serde_json::{json, Value};
use shared::events::AppEvent;
use shared::jobs::{Operation, Source, SyncJob};
use shared::providers::model::Entity as PEntity;
use shared::providers::AccountingProvider;
use shared::refresh::TokenService;
use shared::resilience::{Limits, ProviderGuard};
use shared::store::grants::{Grant, GrantStore};
use shared::tenancy::{Entity, Plan, Priority, Role, TenantStore};
use shared::worker::batch::{handle_batch, Disposition, InMessage};
use shared::worker::job::{run_job, Outcome};
use shared::worker::{SyncDeps, WorkerSettings};
use shared::Provider;

struct H {
    env: TestEnv,
    sb: sandbox::RunningSandbox,
    http: reqwest::Client,
    tenant: String,
    dlq: String,
}

async fn harness() -> H {
    harness_with(false).await
}

/// `own_grants`: a grants table of the test's own, for tests that run the sync scheduler (which
/// reads every connection in the table's `sync_due` index).
async fn harness_with(own_grants: bool) -> H {
    let Sandboxed { mut env, sb, http } = sandboxed(unseeded()).await;
    if own_grants {
        env.config.tables.grants = integration_tests::copy_grants_table(&env).await;
    }
    env.config.queues.events = own_queue(&env, "events").await;
    let dlq = own_queue(&env, "sync-dlq").await;
    let dlq_arn = queue_arn(&env, &dlq).await;
    let sqs = &env.clients.sqs;
    // The test's own sync queues, with a redrive policy to its own DLQ as in the template.
    for slot in [&mut env.config.queues.sync_high, &mut env.config.queues.sync_normal, &mut env.config.queues.sync_low] {
        let out = sqs
            .create_queue()
            .queue_name(unique("sync"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string(),
            )
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap();
        *slot = out.queue_url.unwrap();
    }
    let h = H { env, sb, http, tenant: unique("tenant"), dlq };
    enterprise_tenant(&h.env, &h.tenant).await;
    let tenant = h.tenants().get(&h.tenant).await.unwrap();
    for (user, role) in [(WRITER, Role::Member), (ADMIN, Role::Admin), (VIEWER, Role::Viewer)] {
        h.tenants().set_role(&tenant, user, role).await.unwrap();
    }
    h
}

/// The app's users in each test's tenant: a member keeps the books, an admin may also void and
/// delete, a viewer may not write.
const WRITER: &str = "user-member";
const ADMIN: &str = "user-admin";
const VIEWER: &str = "user-viewer";

/// A create of the provider's own JSON (the write request's escape hatch).
fn raw_create(payload: Value) -> Value {
    json!({"action": "create", "requested_by": WRITER, "raw": payload})
}

fn sandbox_name(p: Provider) -> &'static str {
    p.as_str()
}

impl H {
    fn tenants(&self) -> TenantStore {
        self.env.tenants()
    }

    fn service(&self, timeout: StdDuration) -> TokenService {
        self.env.token_service(timeout)
    }

    fn deps_with(&self, settings: WorkerSettings, timeout: StdDuration) -> SyncDeps {
        self.env.sync_deps(timeout).with_settings(settings)
    }

    fn deps(&self) -> SyncDeps {
        self.deps_with(WorkerSettings::default(), StdDuration::from_secs(10))
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        sandbox_control::control(&self.http, &self.sb, method, path, body).await
    }

    /// A fresh org holding `count` generated records of `entity`, stamped an hour in the past so a
    /// later incremental pass cannot see them again through its overlap window.
    async fn make_org(&self, provider: Provider, entity: &str, count: usize) -> (String, Vec<String>) {
        let (org, mut ids) = sandbox_control::make_org(&self.http, &self.sb, provider, &[(entity, count)]).await;
        (org, ids.remove(entity).unwrap())
    }

    /// Like `make_org`, but the records' updated times are spread (five per ten seconds of the
    /// sandbox's clock), as a real org's are: time-ordered paging has times to move along.
    async fn make_spread_org(&self, provider: Provider, entity: &str, count: usize) -> (String, Vec<String>) {
        let org = org_id_for(provider);
        self.control("POST", "clock", Some(json!({"advance_seconds": -3600}))).await;
        let (mut ids, mut moved) = (Vec::new(), 0);
        while ids.len() < count {
            let n = (count - ids.len()).min(5);
            let body = json!({"provider": sandbox_name(provider), "org_id": org, "dc": "us", "entity": entity, "count": n});
            let out = self.control("POST", "seed", Some(body)).await;
            ids.extend(seeded_ids(&out));
            self.control("POST", "clock", Some(json!({"advance_seconds": 10}))).await;
            moved += 10;
        }
        self.control("POST", "clock", Some(json!({"advance_seconds": 3600 - moved}))).await;
        (org, ids)
    }

    /// Runs one job through the queue and returns its stored result.
    async fn run_through_queue(&self, deps: &SyncDeps, job: &SyncJob) -> Value {
        self.send(&[job.to_json()]).await;
        done_result(&self.pump(deps, 1).await);
        let (status, result) = self.store().job_status(&self.tenant, &job.idempotency_key).await.unwrap().unwrap();
        assert_eq!(status, "COMPLETED");
        result.unwrap()
    }

    async fn seed(&self, provider: Provider, org: &str, entity: &str, count: usize) -> Vec<String> {
        let out = self
            .control("POST", "seed", Some(json!({"provider": sandbox_name(provider), "org_id": org, "entity": entity, "count": count})))
            .await;
        seeded_ids(&out)
    }

    /// Sandbox calls whose key ("METHOD /path") contains `needle`.
    async fn calls(&self, needle: &str) -> u64 {
        sandbox_control::calls(&self.http, &self.sb, needle).await
    }

    /// A real grant for `org`: consent at the sandbox, code exchange, sealed and stored like the
    /// connect flow does, with its connection.
    async fn connect(&self, provider: Provider, org: &str) -> Grant {
        let svc = self.service(StdDuration::from_secs(10));
        let store = self.env.grants();
        connect_sandbox(&self.http, &svc, &store, &self.tenant, provider, Some(org), &[], None).await.0
    }

    fn job(&self, provider: Provider, org: &str, operation: Operation, entity: Entity) -> SyncJob {
        app_job(&self.tenant, provider, org, operation, entity, Priority::Normal)
    }

    async fn send(&self, bodies: &[String]) {
        for b in bodies {
            self.env.clients.sqs.send_message().queue_url(&self.env.config.queues.sync_normal).message_body(b).send().await.unwrap();
        }
    }

    /// Plays the event source mapping on every sync queue: receive up to 10, run the batch, delete
    /// the acknowledged ones; until the queues stay empty for `idle` consecutive polls.
    async fn pump(&self, deps: &SyncDeps, idle: u32) -> Vec<(String, Disposition)> {
        let q = &self.env.config.queues;
        let urls = [q.sync_high.clone(), q.sync_normal.clone(), q.sync_low.clone()];
        let mut arns = Vec::new();
        for url in &urls {
            arns.push(queue_arn(&self.env, url).await);
        }
        queues::pump(&self.env, deps, &urls, &arns, idle, true).await.into_iter().map(|(_, r)| r).collect()
    }

    /// Pumps until a message comes back (a job the worker sent back for later), at most 60 s:
    /// what the batch made of the messages of that first round.
    async fn pump_until_any(&self, deps: &SyncDeps) -> Vec<(String, Disposition)> {
        let until = std::time::Instant::now() + StdDuration::from_secs(60);
        loop {
            let results = self.pump(deps, 1).await;
            if !results.is_empty() || std::time::Instant::now() > until {
                return results;
            }
        }
    }

    async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        queues::drain(&self.env, url).await
    }

    async fn events(&self) -> Vec<AppEvent> {
        app_events(&self.env).await.into_iter().map(|(e, _)| e).collect()
    }

    fn scheduler(&self) -> shared::sync::schedule::SyncScheduler {
        shared::sync::schedule::SyncScheduler::new(&self.env.config, &self.env.clients)
    }

    async fn run_scheduler(&self) -> shared::sync::schedule::RunReport {
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(60);
        let sched = self.scheduler();
        // Boxed: the run's future is large for a test thread's stack.
        Box::pin(sched.run(Utc::now(), deadline, &shared::sync::schedule::RunLimits::default())).await.unwrap()
    }

    fn parked(&self) -> shared::sync::parked::ParkedJobs {
        shared::sync::parked::ParkedJobs::new(
            self.env.clients.dynamodb.clone(),
            self.env.config.tables.sync.clone(),
            self.env.clients.sqs.clone(),
            shared::jobs::SyncQueues::from_config(&self.env.config),
        )
    }

    /// Messages on the sync queues, waiting or in flight.
    async fn sync_depth(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let q = &self.env.config.queues;
        let mut total = 0;
        for url in [&q.sync_high, &q.sync_normal, &q.sync_low] {
            let out = self
                .env
                .clients
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(A::ApproximateNumberOfMessagesDelayed)
                .send()
                .await
                .unwrap();
            let attrs = out.attributes.unwrap_or_default();
            for a in [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible, A::ApproximateNumberOfMessagesDelayed] {
                total += attrs.get(&a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        total
    }

    /// Puts the connection on the schedule as already copied (no initial sync from the scheduler).
    async fn enroll_copied(&self, provider: Provider, org: &str) {
        let t = self.tenants().get(&self.tenant).await.unwrap();
        self.scheduler().enroll(&t, provider, org, true, Utc::now()).await.unwrap();
        self.make_due(provider, org).await;
    }

    /// Due now rather than at its next slot, as if that slot had come.
    async fn make_due(&self, provider: Provider, org: &str) {
        self.env
            .clients
            .dynamodb
            .update_item()
            .table_name(&self.env.config.tables.grants)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", self.tenant)))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(shared::store::grants::connection_sk(provider, org)))
            .update_expression("SET next_sync_at = :now")
            .expression_attribute_values(":now", aws_sdk_dynamodb::types::AttributeValue::N((Utc::now().timestamp() - 5).to_string()))
            .send()
            .await
            .unwrap();
    }

    fn store(&self) -> shared::sync::SyncStore {
        self.env.sync_store()
    }

    async fn audit_calls(&self) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        audit::provider_calls(&self.env, &self.tenant).await
    }
}

fn done_result(d: &[(String, Disposition)]) {
    for (id, d) in d {
        assert_eq!(*d, Disposition::Done, "message {id}");
    }
}

async fn full_then_incremental(provider: Provider) {
    let h = harness().await;
    let (org, ids) = h.make_org(provider, "invoice", 1000).await;
    let grant = h.connect(provider, &org).await;
    let settings = WorkerSettings { page_size: Some(100), ..Default::default() };
    let deps = h.deps_with(settings.clone(), StdDuration::from_secs(10));

    let full = h.job(provider, &org, Operation::Pull, Entity::Invoice);
    h.send(&[full.to_json()]).await;
    let results = h.pump(&deps, 2).await;
    done_result(&results);

    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    let got: HashSet<&str> = stored.iter().map(|r| r.provider_id.as_str()).collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(stored.len(), 1000, "{provider}: one record per invoice");
    assert_eq!(got, want, "{provider}: exactly the sandbox's invoices");
    assert!(stored.iter().all(|r| r.amount.is_some() && r.raw_ref.starts_with(provider.as_str())), "{provider}: amounts normalised");
    let list_calls = h
        .calls(if provider == Provider::Zoho {
            "/invoices"
        } else if provider == Provider::Xero {
            "/Invoices"
        } else {
            "/query"
        })
        .await;
    assert!(list_calls >= 10, "{provider}: {list_calls} list calls for 1,000 records in pages of 100");
    let cursor = h.store().get_cursor(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap().unwrap();
    assert_eq!(cursor.cursor.position, 1, "the pass is over: the next starts at the first page");
    assert!(cursor.cursor.modified_since.is_some(), "the next pass is incremental");

    let events = h.events().await;
    let completed: Vec<&AppEvent> = events.iter().filter(|e| e.event_type.as_str() == "sync.completed").collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    assert_eq!(completed[0].data["counts"]["fetched"], 1000);
    assert_eq!(completed[0].correlation_id, full.correlation_id);

    // Every provider call left an audit record, and none carries a token.
    let audit = h.audit_calls().await;
    assert_eq!(audit.len() as u64, list_calls, "one audit record per provider call");
    let token = h.service(StdDuration::from_secs(10)).valid_access_token(&h.tenant, provider, &grant.grant_id).await.unwrap();
    for a in &audit {
        assert_eq!(a["status"].as_n().unwrap(), "200");
        for k in ["tenant_id", "provider", "operation", "method", "path", "latency_ms", "attempt", "correlation_id", "expires_at"] {
            assert!(a.contains_key(k), "audit record lacks {k}");
        }
        assert!(!format!("{a:?}").contains(token.tokens.access_token.expose()), "audit record carries the token");
    }

    // Incremental: five new records (and, for QuickBooks, one deletion, seen through CDC), nothing else.
    let new_ids = h.seed(provider, &org, "invoice", 5).await;
    if provider == Provider::QuickBooks {
        // The emitter applies the deletion before delivering; the delivery itself goes nowhere.
        let body = json!({"provider": "quickbooks", "target_url": "http://127.0.0.1:9/hook", "org_id": org, "entity": "invoice",
            "entity_id": ids[0], "operation": "delete"});
        h.http.post(format!("{}/_sandbox/webhooks/emit", h.sb.base_url)).json(&body).send().await.unwrap();
    }
    let inc = h.job(provider, &org, Operation::Pull, Entity::Invoice);
    h.send(&[inc.to_json()]).await;
    done_result(&h.pump(&deps, 2).await);
    let (status, result) = h.store().job_status(&h.tenant, &inc.idempotency_key).await.unwrap().unwrap();
    assert_eq!(status, "COMPLETED");
    let result = result.unwrap();
    assert_eq!(result["counts"]["fetched"], 5, "{provider}: the incremental pass reads only the changes: {result}");
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(stored.len(), 1005);
    if provider == Provider::QuickBooks {
        assert_eq!(result["counts"]["deleted"], 1, "{result}");
        assert!(stored.iter().any(|r| r.provider_id == ids[0] && r.deleted), "the deletion is a tombstone");
        assert_eq!(h.calls("/cdc").await, 1);
    }
    for id in &new_ids {
        assert!(stored.iter().any(|r| &r.provider_id == id));
    }
}

#[tokio::test]
async fn quickbooks_full_sync_of_1000_invoices_then_incremental() {
    full_then_incremental(Provider::QuickBooks).await;
}

#[tokio::test]
async fn xero_full_sync_of_1000_invoices_then_incremental() {
    full_then_incremental(Provider::Xero).await;
}

#[tokio::test]
async fn zoho_full_sync_of_1000_invoices_then_incremental() {
    full_then_incremental(Provider::Zoho).await;
}

#[tokio::test]
async fn the_same_job_twice_is_applied_once_and_two_workers_apply_it_once() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Zoho, "contact", 50).await;
    h.connect(Provider::Zoho, &org).await;
    let deps = h.deps();
    let job = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Contact);
    let mut again = job.clone();
    again.job_id = uuid::Uuid::new_v4().to_string();
    h.send(&[job.to_json()]).await;
    done_result(&h.pump(&deps, 1).await);
    h.send(&[again.to_json()]).await;
    done_result(&h.pump(&deps, 1).await);
    assert_eq!(h.calls("/contacts").await, 1, "the second delivery did not call the provider");
    let completed: Vec<AppEvent> = h.events().await.into_iter().filter(|e| e.event_type.as_str() == "sync.completed").collect();
    // The duplicate is announced again (its first announcement may have been lost), as the same
    // event: the app recognises the repeat by its id.
    assert_eq!(completed.len(), 2, "{completed:?}");
    assert_eq!(completed[0].event_id, completed[1].event_id, "a repeat keeps its event id");
    for k in ["idempotency_key", "counts", "pages", "cursor"] {
        assert_eq!(completed[0].data[k], completed[1].data[k], "a repeat tells the same: {k}");
    }

    // Two workers (two containers) on one job at the same moment.
    let job = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Account);
    let (a, b) = (h.deps(), h.deps());
    let deadline = Utc::now() + Duration::seconds(60);
    let (ra, rb) = tokio::join!(run_job(&a, &job, None, deadline), run_job(&b, &job, None, deadline));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let applied = outcomes.iter().filter(|o| matches!(o, Outcome::Done(_))).count();
    let others = outcomes.iter().filter(|o| matches!(o, Outcome::InProgress { .. } | Outcome::Duplicate(_))).count();
    assert_eq!((applied, others), (1, 1), "{outcomes:?}");
    assert_eq!(h.calls("/chartofaccounts").await, 1, "one worker called the provider");
    // The loser's retry finds the result.
    assert!(matches!(run_job(&b, &job, None, deadline).await.unwrap(), Outcome::Duplicate(_)));
}

#[tokio::test]
async fn a_crash_in_the_middle_of_pagination_resumes_from_the_cursor_without_duplicates() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::QuickBooks, "invoice", 1000).await;
    h.connect(Provider::QuickBooks, &org).await;
    let crash = WorkerSettings {
        page_size: Some(100),
        deadline_margin: StdDuration::ZERO,
        crash_after_page: Some(Arc::new(|pages| pages == 3)),
        ..Default::default()
    };
    let mut crashing = h.deps_with(crash, StdDuration::from_secs(1));
    // A provider timeout and limiter horizon that fit the short deadline below: the guard does
    // not start a call whose worst case would outlive it.
    let mut cfg = h.env.config.clone();
    cfg.provider_timeout = StdDuration::from_secs(1);
    crashing.guard = ProviderGuard::with_limits(
        h.env.clients.dynamodb.clone(),
        cfg.tables.resilience.clone(),
        Limits { horizon: StdDuration::from_secs(1), ..Limits::from_config(&cfg) },
    );
    let job = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    let msg = InMessage {
        message_id: "m-1".into(),
        receipt_handle: "r".into(),
        body: job.to_json(),
        event_source_arn: String::new(),
        receive_count: 1,
        first_received_ms: None,
    };
    // Room for three pages of 100 multi-line invoices on a loaded machine; the crash comes after the
    // third whatever the time (a deadline too short hands over instead, and the test means a crash).
    // 12 s was once too short beside the other lanes (the first job handed over, Done, at 4 calls).
    let deadline = Utc::now() + Duration::seconds(20);
    let sibling_job = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Account);
    let sibling = InMessage { message_id: "m-2".into(), body: sibling_job.to_json(), ..msg.clone() };
    let out = handle_batch(&crashing, &[msg.clone(), sibling], deadline).await;
    assert!(matches!(out[0].1, Disposition::Retry { .. }), "the panic is that message's failure: {out:?}");
    assert_eq!(out[1].1, Disposition::Done, "its sibling is unaffected");
    assert_eq!(h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap().0, "INPROGRESS");
    assert_eq!(h.calls("/query").await, 4, "three invoice pages and the sibling's one");

    // The dead worker's claim ends at its invocation's deadline; the redelivery then resumes.
    let wait = (deadline - Utc::now()).to_std().unwrap_or_default() + StdDuration::from_millis(200);
    tokio::time::sleep(wait).await;
    let deps = h.deps_with(WorkerSettings { page_size: Some(100), ..Default::default() }, StdDuration::from_secs(10));
    // Room for all eight pages on a loaded machine (with less, the pull hands the rest over to a
    // follow-up job, which this test does not run).
    let out = handle_batch(&deps, &[msg], Utc::now() + Duration::seconds(180)).await;
    assert_eq!(out[0].1, Disposition::Done);
    assert_eq!(h.calls("/query").await, 4 + 8, "pages 4 to 11 only: no page read twice");
    let stored = h.store().list_records(&h.tenant, Provider::QuickBooks, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(stored.len(), 1000);
    let got: HashSet<String> = stored.into_iter().map(|r| r.provider_id).collect();
    assert_eq!(got, ids.into_iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn a_long_pull_continues_in_a_follow_up_job_before_the_deadline() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Xero, "contact", 250).await;
    h.connect(Provider::Xero, &org).await;
    // A margin larger than the deadline left: one page per invocation, then a follow-up.
    let deps = h.deps_with(
        WorkerSettings { page_size: Some(100), deadline_margin: StdDuration::from_secs(3600), ..Default::default() },
        StdDuration::from_secs(10),
    );
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Contact);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&deps, 2).await;
    done_result(&results);
    assert_eq!(results.len(), 3, "the first job and two follow-ups");
    let stored = h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap();
    assert_eq!(stored.len(), 250);
    let events = h.events().await;
    let completed: Vec<&AppEvent> = events.iter().filter(|e| e.event_type.as_str() == "sync.completed").collect();
    assert_eq!(completed.len(), 1, "one completion for the whole lineage");
    assert!(completed[0].data["idempotency_key"].as_str().unwrap().starts_with(&format!("{}~c", job.idempotency_key)));
    // The app asked for one pull: the event counts all of it, not the last job's 50 records.
    let d = &completed[0].data;
    assert_eq!((d["counts"]["fetched"].as_u64(), d["counts"]["written"].as_u64()), (Some(250), Some(250)), "{d}");
    assert_eq!((d["pages"].as_u64(), d["jobs"].as_u64()), (Some(3), Some(3)), "{d}");
}

async fn push_after_timeout(provider: Provider) {
    let h = harness().await;
    let (org, contacts) = h.make_org(provider, "contact", 1).await;
    h.connect(provider, &org).await;
    h.control("POST", "config", Some(json!({"timeout_fault_seconds": 3}))).await;
    let (path, payload) = match provider {
        Provider::QuickBooks => (
            format!("/quickbooks/v3/company/{org}/invoice"),
            json!({"CustomerRef": {"value": contacts[0]}, "Line": [{"Amount": 120.5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]}),
        ),
        Provider::Xero => (
            "/xero/api.xro/2.0/Invoices".to_string(),
            json!({"Type": "ACCREC", "Contact": {"ContactID": contacts[0]}, "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 120.5}]}),
        ),
        Provider::Zoho => (
            "/zoho/api/us/books/v3/invoices".to_string(),
            json!({"customer_id": contacts[0], "line_items": [{"name": "x", "rate": 120.5, "quantity": 1}]}),
        ),
    };
    let method = if provider == Provider::Xero { "PUT" } else { "POST" };
    h.control(
        "POST",
        "faults",
        Some(json!({"provider": sandbox_name(provider), "path_prefix": path, "method": method, "kind": "timeout", "count": 1})),
    )
    .await;
    // The client gives up after 1 s; the sandbox holds the request 3 s and then creates the invoice.
    let deps = h.deps_with(WorkerSettings::default(), StdDuration::from_secs(1));
    let job = h.job(provider, &org, Operation::Push, Entity::Invoice);
    let mut body: Value = serde_json::to_value(&job).unwrap();
    body["payload"] = raw_create(payload);
    h.send(&[body.to_string()]).await;
    let first = h.pump(&deps, 1).await;
    // The guard retries a timed-out call within its budget (with the same idempotency key), so
    // the job may finish at once; otherwise it comes back as a retry.
    match first[0].1 {
        Disposition::Done => tokio::time::sleep(StdDuration::from_secs(4)).await,
        Disposition::Retry { code: 5003, .. } => {
            // Let the held request finish at the sandbox, then the message comes back.
            tokio::time::sleep(StdDuration::from_secs(4)).await;
            let deps = h.deps_with(WorkerSettings::default(), StdDuration::from_secs(5));
            let second = h.pump_until_any(&deps).await;
            done_result(&second);
        }
        _ => panic!("{first:?}"),
    }

    let svc = h.service(StdDuration::from_secs(5));
    let grant = GrantStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.grants.clone())
        .get_connection(&h.tenant, provider, &org)
        .await
        .unwrap()
        .unwrap()
        .grant_id;
    let client = svc.provider_client(provider).await.unwrap();
    let page = svc
        .with_token(&h.tenant, provider, &grant, |t| {
            let client = client.clone();
            let org = org.clone();
            async move { client.list(&t, &org, &shared::providers::Cursor::start(provider, PEntity::Invoice)).await }
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1, "{provider}: the retried push created one invoice, not two");
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].provider_id, page.records[0].id);
    assert_eq!(stored[0].amount.as_ref().map(|m| m.minor), Some(12050));
}

#[tokio::test]
async fn quickbooks_push_retried_after_a_timeout_leaves_one_invoice() {
    push_after_timeout(Provider::QuickBooks).await;
}

#[tokio::test]
async fn xero_push_retried_after_a_timeout_leaves_one_invoice() {
    push_after_timeout(Provider::Xero).await;
}

#[tokio::test]
async fn zoho_push_retried_after_a_timeout_leaves_one_invoice() {
    push_after_timeout(Provider::Zoho).await;
}

/// A record deleted at the provider between two pages of a pass must not shift a surviving record
/// past the page boundary (offset paging skipped the first records of the next page, and the next
/// pass's watermark excluded them for good).
async fn a_record_deleted_between_pages_hides_no_other(provider: Provider) {
    let h = harness().await;
    let (org, ids) = h.make_spread_org(provider, "invoice", 60).await;
    h.connect(provider, &org).await;
    // One page per invocation: each job hands over to a follow-up, so the test acts between pages.
    let deps = h.deps_with(
        WorkerSettings { page_size: Some(10), deadline_margin: StdDuration::from_secs(3600), ..Default::default() },
        StdDuration::from_secs(10),
    );
    let job = h.job(provider, &org, Operation::Pull, Entity::Invoice);
    match run_job(&deps, &job, None, Utc::now() + Duration::seconds(60)).await.unwrap() {
        Outcome::Done(r) => assert_eq!(r["continued"], true, "{r}"),
        o => panic!("{o:?}"),
    }
    // Three records of the first page are deleted at the provider before the second page is read.
    let out = h
        .control(
            "POST",
            "records/delete",
            Some(json!({"provider": sandbox_name(provider), "org_id": org, "entity": "invoice", "ids": ids[..3]})),
        )
        .await;
    assert_eq!(out["deleted"], 3);
    done_result(&h.pump(&deps, 2).await);
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    let got: HashSet<&str> = stored.iter().map(|r| r.provider_id.as_str()).collect();
    let missing: Vec<&String> = ids[3..].iter().filter(|id| !got.contains(id.as_str())).collect();
    assert!(missing.is_empty(), "{provider}: surviving records never stored: {missing:?}");
}

#[tokio::test]
async fn quickbooks_a_record_deleted_between_pages_hides_no_other() {
    a_record_deleted_between_pages_hides_no_other(Provider::QuickBooks).await;
}

#[tokio::test]
async fn xero_a_record_deleted_between_pages_hides_no_other() {
    a_record_deleted_between_pages_hides_no_other(Provider::Xero).await;
}

#[tokio::test]
async fn zoho_a_record_deleted_between_pages_hides_no_other() {
    a_record_deleted_between_pages_hides_no_other(Provider::Zoho).await;
}

/// A `full` job that crashed resumes its own pass from the stored cursor, not from page 1; and it
/// does not adopt a cursor another job left mid-pass.
#[tokio::test]
async fn a_full_job_resumes_its_own_pass_after_a_crash_and_no_one_elses() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::QuickBooks, "invoice", 1000).await;
    h.connect(Provider::QuickBooks, &org).await;
    let crashing = |at: u32| {
        let settings = WorkerSettings {
            page_size: Some(100),
            deadline_margin: StdDuration::ZERO,
            crash_after_page: Some(Arc::new(move |pages| pages == at)),
            ..Default::default()
        };
        // A provider timeout and limiter horizon that fit the short deadline below: the guard does
        // not start a call whose worst case would outlive it.
        let mut deps = h.deps_with(settings, StdDuration::from_secs(1));
        let mut cfg = h.env.config.clone();
        cfg.provider_timeout = StdDuration::from_secs(1);
        deps.guard = ProviderGuard::with_limits(
            h.env.clients.dynamodb.clone(),
            cfg.tables.resilience.clone(),
            Limits { horizon: StdDuration::from_secs(1), ..Limits::from_config(&cfg) },
        );
        deps
    };
    let msg = |job: &SyncJob| InMessage {
        message_id: job.job_id.clone(),
        receipt_handle: "r".into(),
        body: job.to_json(),
        event_source_arn: String::new(),
        receive_count: 1,
        first_received_ms: Some(Utc::now().timestamp_millis()),
    };
    // Another pull dies after two pages, leaving its cursor mid-pass.
    let other = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    let out = handle_batch(&crashing(2), &[msg(&other)], Utc::now() + Duration::seconds(60)).await;
    assert!(matches!(out[0].1, Disposition::Retry { .. }), "{out:?}");
    assert_eq!(h.calls("/query").await, 2);

    let mut full = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    full.cursor = Some("full".into());
    let deadline = Utc::now() + Duration::seconds(12);
    let out = handle_batch(&crashing(3), &[msg(&full)], deadline).await;
    assert!(matches!(out[0].1, Disposition::Retry { .. }), "{out:?}");
    assert_eq!(h.calls("/query").await, 2 + 3);

    let wait = (deadline - Utc::now()).to_std().unwrap_or_default() + StdDuration::from_millis(200);
    tokio::time::sleep(wait).await;
    let deps = h.deps_with(WorkerSettings { page_size: Some(100), ..Default::default() }, StdDuration::from_secs(10));
    // Room for all eight pages on a loaded machine, as in the crash test above.
    let out = handle_batch(&deps, &[msg(&full)], Utc::now() + Duration::seconds(180)).await;
    assert_eq!(out[0].1, Disposition::Done);
    // From page 1 it read pages 1-3 (not the other job's 3-5); the redelivery reads 4 to 11.
    assert_eq!(h.calls("/query").await, 2 + 3 + 8, "the full pass resumed where it crashed");
    let stored = h.store().list_records(&h.tenant, Provider::QuickBooks, &org, PEntity::Invoice).await.unwrap();
    let got: HashSet<String> = stored.into_iter().map(|r| r.provider_id).collect();
    assert_eq!(got, ids.into_iter().collect::<HashSet<_>>());
}

/// A cursor the worker did not write for this provider and entity is invalid input: dead-lettered
/// with its reason, and no provider call (it used to become a silent full re-read).
#[tokio::test]
async fn a_forged_or_foreign_cursor_is_refused_without_a_provider_call() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::QuickBooks, "invoice", 5).await;
    h.connect(Provider::QuickBooks, &org).await;
    let with_cursor = |c: String| {
        let mut j = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
        j.cursor = Some(c);
        j.to_json()
    };
    let other_entity = serde_json::to_string(&shared::providers::Cursor::start(Provider::QuickBooks, PEntity::Contact)).unwrap();
    let other_provider = serde_json::to_string(&shared::providers::Cursor::start(Provider::Xero, PEntity::Invoice)).unwrap();
    let mut injected: Value = serde_json::to_value(shared::providers::Cursor::start(Provider::QuickBooks, PEntity::Invoice)).unwrap();
    injected["after_id"] = json!("0' AND Id > '0");
    h.send(&[
        with_cursor("{not a cursor".into()),
        with_cursor(other_entity),
        with_cursor(other_provider),
        with_cursor(injected.to_string()),
    ])
    .await;
    let results = h.pump(&h.deps(), 1).await;
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|(_, d)| matches!(d, Disposition::DeadLettered { code: 4000, .. })), "{results:?}");
    assert_eq!(h.calls("/query").await, 0, "no provider call for a refused cursor");
    let dead = h.drain(&h.dlq).await;
    assert_eq!(dead.len(), 4);
    for m in &dead {
        let reason = m.message_attributes.as_ref().unwrap()["reason"].string_value.clone().unwrap();
        assert!(reason.contains("cursor"), "{reason}");
    }
}

/// QuickBooks treats a POST with Id and SyncToken as an update: a push carrying them is refused
/// before any provider call.
#[tokio::test]
async fn a_quickbooks_push_with_id_and_sync_token_is_refused_without_a_call() {
    let h = harness().await;
    let (org, contacts) = h.make_org(Provider::QuickBooks, "contact", 1).await;
    let invoices = h.seed(Provider::QuickBooks, &org, "invoice", 1).await;
    h.connect(Provider::QuickBooks, &org).await;
    h.control("DELETE", "counters", None).await;
    let mut job = h.job(Provider::QuickBooks, &org, Operation::Push, Entity::Invoice);
    job.idempotency_key = unique("push");
    h.send(&[push_body(
        &job,
        json!({"Id": invoices[0], "SyncToken": "0", "CustomerRef": {"value": contacts[0]},
        "Line": [{"Amount": 1.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]}),
    )])
    .await;
    done_result(&h.pump(&h.deps(), 1).await);
    let (_, r) = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap();
    let r = r.unwrap();
    assert_eq!((r["outcome"].as_str(), r["code"].as_str()), (Some("refused"), Some("validation_failed")), "{r}");
    assert_eq!(r["problems"][0]["field"], "raw");
    assert_eq!(h.calls("POST ").await, 0, "no provider call");
    let records = h.control("GET", &format!("records?provider=quickbooks&org_id={org}&entity=invoice"), None).await;
    assert_eq!(records["records"][0]["value"]["SyncToken"], "0", "the existing invoice is untouched");
}

/// The sandbox's records of one org and entity that are not deleted.
async fn live_records(h: &H, provider: &str, org: &str, entity: &str) -> Vec<Value> {
    let v = h.control("GET", &format!("records?provider={provider}&org_id={org}&entity={entity}"), None).await;
    v["records"].as_array().unwrap().iter().filter(|r| r["deleted"] == false).cloned().collect()
}

fn push_body(job: &SyncJob, payload: Value) -> String {
    write_body(job, raw_create(payload))
}

fn write_body(job: &SyncJob, request: Value) -> String {
    let mut body: Value = serde_json::to_value(job).unwrap();
    body["payload"] = request;
    body.to_string()
}

/// Zoho has no idempotency key: the worker tags its creates with a reference derived from the job
/// and looks for that, not for the app's reference_number (a PO number can repeat) or a contact's
/// name (which may belong to a contact we did not create).
#[tokio::test]
async fn zoho_push_dedupes_on_the_jobs_key_not_the_apps_reference_number() {
    let h = harness().await;
    let (org, contacts) = h.make_org(Provider::Zoho, "contact", 1).await;
    h.connect(Provider::Zoho, &org).await;
    let payload = json!({"customer_id": contacts[0], "reference_number": "PO-1", "line_items": [{"name": "x", "rate": 10, "quantity": 1}]});
    let push = |payload: &Value| {
        let mut job = h.job(Provider::Zoho, &org, Operation::Push, Entity::Invoice);
        job.idempotency_key = unique("push");
        (job.clone(), push_body(&job, payload.clone()))
    };
    let deps = h.deps();
    let (a, body_a) = push(&payload);
    let (b, body_b) = push(&payload);
    h.send(&[body_a]).await;
    done_result(&h.pump(&deps, 1).await);
    h.send(&[body_b]).await;
    done_result(&h.pump(&deps, 1).await);
    let result = |job: SyncJob| {
        let store = h.store();
        let tenant = h.tenant.clone();
        async move { store.job_status(&tenant, &job.idempotency_key).await.unwrap().unwrap().1.unwrap() }
    };
    let (ra, rb) = (result(a).await, result(b).await);
    assert_ne!(ra["provider_id"], rb["provider_id"], "a second push with the same PO number is a second invoice: {ra} {rb}");
    assert_eq!(rb["created"], true);
    let list = live_records(&h, "zoho", &org, "invoice").await;
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|r| r["value"]["reference_number"] == "PO-1"), "the app's reference_number is kept as sent");

    // A third push with the same PO number whose create times out at the client and happens
    // anyway: its retry finds its own invoice, so one more, not two.
    h.control("POST", "config", Some(json!({"timeout_fault_seconds": 3}))).await;
    h.control(
        "POST",
        "faults",
        Some(json!({"provider": "zoho", "path_prefix": "/zoho/api/us/books/v3/invoices", "method": "POST", "kind": "timeout", "count": 1})),
    )
    .await;
    let (_c, body_c) = push(&payload);
    h.send(&[body_c]).await;
    let first = h.pump(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(1)), 1).await;
    match first[0].1 {
        Disposition::Done => tokio::time::sleep(StdDuration::from_secs(4)).await,
        Disposition::Retry { code: 5003, .. } => {
            tokio::time::sleep(StdDuration::from_secs(4)).await;
            done_result(&h.pump_until_any(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(5))).await);
        }
        _ => panic!("{first:?}"),
    }
    assert_eq!(live_records(&h, "zoho", &org, "invoice").await.len(), 3, "the retried push created one invoice");

    // A contact push retried after a timeout finds the contact it created (by our reference)...
    h.control(
        "POST",
        "faults",
        Some(json!({"provider": "zoho", "path_prefix": "/zoho/api/us/books/v3/contacts", "method": "POST", "kind": "timeout", "count": 1})),
    )
    .await;
    let mut job = h.job(Provider::Zoho, &org, Operation::Push, Entity::Contact);
    job.idempotency_key = unique("push");
    h.send(&[push_body(&job, json!({"contact_name": "Zed Retried"}))]).await;
    let first = h.pump(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(1)), 1).await;
    if let Disposition::Retry { code: 5003, .. } = first[0].1 {
        tokio::time::sleep(StdDuration::from_secs(4)).await;
        done_result(&h.pump_until_any(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(5))).await);
    } else {
        assert_eq!(first[0].1, Disposition::Done, "{first:?}");
    }
    let zed: Vec<Value> =
        live_records(&h, "zoho", &org, "contact").await.into_iter().filter(|c| c["value"]["contact_name"] == "Zed Retried").collect();
    assert_eq!(zed.len(), 1);
    let (_, r) = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap();
    assert_eq!(r.unwrap()["provider_id"], zed[0]["id"], "the retry reports the contact it created");

    // ...but one whose name another contact already holds does not report that contact as its own.
    let contacts_now = h.control("GET", &format!("records?provider=zoho&org_id={org}&entity=contact"), None).await;
    let taken = contacts_now["records"][0]["value"]["contact_name"].as_str().unwrap().to_string();
    let mut job = h.job(Provider::Zoho, &org, Operation::Push, Entity::Contact);
    job.idempotency_key = unique("push");
    h.send(&[push_body(&job, json!({"contact_name": taken}))]).await;
    done_result(&h.pump(&deps, 1).await);
    let (_, r) = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap();
    let r = r.unwrap();
    assert_eq!((r["outcome"].as_str(), r["problems"][0]["code"].as_str()), (Some("refused"), Some("taken")), "{r}");
    assert!(r.get("provider_id").is_none(), "another's contact is not reported as this write's: {r}");
}

/// An amount that does not fit i64 minor units is stored flagged, and the job says so.
#[tokio::test]
async fn an_amount_too_large_for_minor_units_is_flagged_and_reported() {
    let h = harness().await;
    let (org, contacts) = h.make_org(Provider::QuickBooks, "contact", 1).await;
    h.connect(Provider::QuickBooks, &org).await;
    let mut job = h.job(Provider::QuickBooks, &org, Operation::Push, Entity::Invoice);
    job.idempotency_key = unique("push");
    h.send(&[push_body(
        &job,
        json!({"CustomerRef": {"value": contacts[0]}, "Line": [{"Amount": 9.5e18, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]}),
    )])
    .await;
    done_result(&h.pump(&h.deps(), 1).await);
    let pull = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    let result = h.run_through_queue(&h.deps(), &pull).await;
    assert_eq!(result["counts"]["flagged"], 1, "{result}");
    let stored = h.store().list_records(&h.tenant, Provider::QuickBooks, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(stored.len(), 1, "stored, not dropped");
    assert_eq!((stored[0].amount.clone(), stored[0].flags.clone()), (None, vec!["amount_unreadable".to_string()]));
    let events = h.events().await;
    let completed: Vec<&AppEvent> =
        events.iter().filter(|e| matches!(e.event_type.as_str(), "sync.completed" | "write.completed")).collect();
    assert_eq!(completed.len(), 2, "{events:?}");
    for e in completed {
        assert_eq!(e.data["counts"]["flagged"], 1, "{:?}", e.data);
        assert!(e.data["warnings"][0].as_str().unwrap().contains("amount_unreadable"), "{:?}", e.data);
    }
}

/// The incremental watermark follows the provider's clock: a provider behind us loses nothing, one
/// ahead of us is not re-read and rewritten every pass; and an unchanged record is not written again.
#[tokio::test]
async fn the_watermark_follows_a_skewed_provider_clock_and_unchanged_records_are_not_rewritten() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Zoho, "invoice", 20).await;
    h.connect(Provider::Zoho, &org).await;
    let deps = h.deps();
    let pull = |h: &H| h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
    let full = h.run_through_queue(&deps, &pull(&h)).await;
    assert_eq!(full["counts"]["written"], 20, "{full}");

    // Re-reading everything writes nothing: the records did not change.
    let mut again = pull(&h);
    again.cursor = Some("full".into());
    let again = h.run_through_queue(&deps, &again).await;
    assert_eq!((again["counts"]["fetched"].clone(), again["counts"]["written"].clone()), (json!(20), json!(0)), "{again}");

    // The provider's clock falls ten minutes behind ours; records changed there after this pass
    // must still be read by the next.
    h.control("POST", "clock", Some(json!({"advance_seconds": -600}))).await;
    h.run_through_queue(&deps, &pull(&h)).await;
    let behind = h.seed(Provider::Zoho, &org, "invoice", 3).await;
    let inc = h.run_through_queue(&deps, &pull(&h)).await;
    let stored = h.store().list_records(&h.tenant, Provider::Zoho, &org, PEntity::Invoice).await.unwrap();
    for id in &behind {
        assert!(stored.iter().any(|r| &r.provider_id == id), "a record changed on a clock behind ours was lost: {inc}");
    }

    // Now ten minutes ahead of ours: what one pass read, the next does not write again.
    h.control("POST", "clock", Some(json!({"advance_seconds": 1200}))).await;
    h.seed(Provider::Zoho, &org, "invoice", 2).await;
    // Past the watermark's overlap, so only a wrong clock can make the next pass see them again.
    tokio::time::sleep(StdDuration::from_secs(6)).await;
    let first = h.run_through_queue(&deps, &pull(&h)).await;
    assert_eq!(first["counts"]["written"], 2, "{first}");
    let second = h.run_through_queue(&deps, &pull(&h)).await;
    assert_eq!(second["counts"]["fetched"], 0, "a clock ahead of ours made the next pass re-read: {second}");
    assert_eq!(second["counts"]["written"], 0, "{second}");
}

#[tokio::test]
async fn a_429_storm_ends_with_every_job_done_and_none_lost() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Xero, "contact", 30).await;
    h.seed(Provider::Xero, &org, "invoice", 30).await;
    h.seed(Provider::Xero, &org, "payment", 5).await;
    h.connect(Provider::Xero, &org).await;
    h.control("POST", "faults", Some(json!({"provider": "xero", "kind": "429", "count": 12, "retry_after": 1}))).await;
    // Re-queue from the first wait on, so the storm exercises the path that keeps a waiting job
    // from ever reaching the redrive limit.
    let deps = h.deps_with(WorkerSettings { requeue_at_receive: 1, ..Default::default() }, StdDuration::from_secs(10));
    let jobs: Vec<SyncJob> = [Entity::Contact, Entity::Invoice, Entity::Account, Entity::Payment]
        .into_iter()
        .map(|e| h.job(Provider::Xero, &org, Operation::Pull, e))
        .collect();
    h.send(&jobs.iter().map(SyncJob::to_json).collect::<Vec<_>>()).await;
    let results = h.pump(&deps, 4).await;
    // The shared limiter absorbs the 429s (it holds the org back for their Retry-After): jobs wait
    // (2001 from our limiter, 2002 straight from the provider) instead of failing.
    let waited =
        results.iter().filter(|(_, d)| matches!(d, Disposition::Retry { code: 2001 | 2002, .. } | Disposition::Requeued { .. })).count();
    assert!(waited >= 1, "the storm made jobs wait: {results:?}");
    assert!(results.iter().any(|(_, d)| matches!(d, Disposition::Requeued { .. })), "a job near the redrive limit was re-queued");
    for j in &jobs {
        let (status, _) = h.store().job_status(&h.tenant, &j.idempotency_key).await.unwrap().expect("job record");
        assert_eq!(status, "COMPLETED", "{:?}", j.entity);
    }
    assert!(h.drain(&h.dlq).await.is_empty(), "nothing dead-lettered");
    assert_eq!(h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap().len(), 30);
    assert_eq!(h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Invoice).await.unwrap().len(), 30);
}

#[tokio::test]
async fn a_poison_message_lands_in_the_dlq_with_its_reason_while_its_siblings_succeed() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::QuickBooks, "contact", 5).await;
    h.connect(Provider::QuickBooks, &org).await;
    let good = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Contact);
    let mut v2: Value = serde_json::to_value(h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice)).unwrap();
    v2["version"] = 2.into();
    let mut bad_tenant = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    bad_tenant.tenant_id = "TENANT#x".into();
    let mut no_payload = h.job(Provider::QuickBooks, &org, Operation::Push, Entity::Invoice);
    no_payload.idempotency_key = unique("push");
    h.send(&[good.to_json(), "{not json".to_string(), v2.to_string(), bad_tenant.to_json(), no_payload.to_json()]).await;
    // The DLQ is found through the source queue's RedrivePolicy (deps has no DLQ URL configured).
    let results = h.pump(&h.deps(), 1).await;
    assert_eq!(results.len(), 5);
    assert_eq!(results.iter().filter(|(_, d)| *d == Disposition::Done).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|(_, d)| matches!(d, Disposition::DeadLettered { code: 4000, .. })).count(), 4, "{results:?}");
    let dead = h.drain(&h.dlq).await;
    assert_eq!(dead.len(), 4);
    for m in &dead {
        let attrs = m.message_attributes.as_ref().unwrap();
        assert_eq!(attrs["error_code"].string_value.as_deref(), Some("4000"));
        assert!(!attrs["reason"].string_value.as_deref().unwrap().is_empty());
    }
    let reasons: Vec<String> =
        dead.iter().map(|m| m.message_attributes.as_ref().unwrap()["reason"].string_value.clone().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("not JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("version")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("tenant_id")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("payload")), "{reasons:?}");
    assert_eq!(h.store().list_records(&h.tenant, Provider::QuickBooks, &org, PEntity::Contact).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_missing_scope_fails_at_once_naming_it_and_a_spent_quota_parks_the_job() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Xero, "invoice", 3).await;
    let mut g = h.connect(Provider::Xero, &org).await;
    // The grant was given contacts only.
    g.scopes = vec!["offline_access".into(), "accounting.contacts.read".into()];
    GrantStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.grants.clone()).put_grant(&g, &[]).await.unwrap();
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Invoice);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&h.deps(), 1).await;
    assert!(
        matches!(&results[0].1, Disposition::DeadLettered { code: 1009, reason } if reason.contains("accounting.invoices")),
        "{results:?}"
    );
    assert_eq!(h.calls("/Invoices").await, 0, "refused before any provider call");
    let failed: Vec<AppEvent> = h.events().await.into_iter().filter(|e| e.event_type.as_str() == "sync.failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["error_code"], 1009);
    // A fixed sentence for the code, not the error's own text (which names internals).
    assert_eq!(failed[0].data["message"], shared::ErrorCode::MissingScope.public_message());
    assert_eq!(h.drain(&h.dlq).await.len(), 1);

    // Quota: the month's calls are spent, so the next job waits in its queue (not the DLQ).
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.limits_override = Some(shared::tenancy::Limits { api_calls_per_month: 2, ..Plan::Enterprise.limits() });
    let t = tenants.update(&t, Utc::now()).await.unwrap();
    tenants.consume_api_calls(&t, 2, Utc::now()).await.unwrap();
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Contact);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&h.deps(), 1).await;
    assert_eq!(results[0].1, Disposition::Parked { code: 6002 }, "{results:?}");
    assert!(h.drain(&h.dlq).await.is_empty(), "parked, not dead-lettered");
    assert_eq!(
        h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().map(|s| s.0).as_deref(),
        Some(shared::sync::store::STATUS_RELEASED),
        "the claim was released for the retry"
    );
}

#[tokio::test]
async fn a_revoked_grant_parks_the_job_and_tells_the_app() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Xero, "invoice", 3).await;
    h.connect(Provider::Xero, &org).await;
    h.control("POST", "revoke", Some(json!({"provider": "xero"}))).await;
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Invoice);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&h.deps(), 1).await;
    assert_eq!(results[0].1, Disposition::Parked { code: 1008 }, "{results:?}");
    assert!(h.drain(&h.dlq).await.is_empty(), "parked, not dead-lettered");
    let events = h.events().await;
    let failed: Vec<&AppEvent> = events.iter().filter(|e| e.event_type.as_str() == "sync.failed").collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!((failed[0].data["error_code"].as_u64(), failed[0].data["parked"].as_bool()), (Some(1008), Some(true)));
    assert!(events.iter().any(|e| e.event_type.as_str() == "connection.needs_reauth"), "the refresher told the app too");
}

#[tokio::test]
async fn webhook_jobs_reread_the_record_and_deletions_become_tombstones() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::Zoho, "invoice", 2).await;
    h.connect(Provider::Zoho, &org).await;
    let mut updated = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
    updated.entity_id = Some(ids[0].clone());
    updated.change = Some(shared::jobs::Change::Updated);
    let mut deleted = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
    deleted.entity_id = Some(ids[1].clone());
    deleted.change = Some(shared::jobs::Change::Deleted);
    h.send(&[updated.to_json(), deleted.to_json()]).await;
    done_result(&h.pump(&h.deps(), 1).await);
    let store = h.store();
    let a = store.get_record(&h.tenant, Provider::Zoho, &org, PEntity::Invoice, &ids[0]).await.unwrap().unwrap();
    assert!(!a.deleted && a.amount.is_some());
    let b = store.get_record(&h.tenant, Provider::Zoho, &org, PEntity::Invoice, &ids[1]).await.unwrap().unwrap();
    assert!(b.deleted, "a deletion is kept as a tombstone");
    // Counters are kept by route template: one read in all, so the deleted record was not re-read.
    assert_eq!(h.calls("/invoices/{id}").await, 1);
}

/// Zoho stamps a change in whole seconds, so two updates of a record within one second are one body
/// from the webhook template we register: one delivery, one job. That job re-reads the record no
/// sooner than `ZOHO_REREAD_AFTER` after the delivery came in, when the second update has happened
/// too (it came within a second of the first, which came before the delivery).
#[tokio::test]
async fn a_zoho_webhook_job_rereads_its_record_only_after_its_changes_second_has_passed() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::Zoho, "invoice", 1).await;
    h.connect(Provider::Zoho, &org).await;
    let mut job = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
    job.entity_id = Some(ids[0].clone());
    job.change = Some(shared::jobs::Change::Updated);
    job.source = Source::Webhook;
    job.requested_at = Utc::now();
    let delivered = job.requested_at;
    assert_eq!(shared::worker::job::reread_not_before(&job), Some(delivered + Duration::milliseconds(1500)));
    h.send(&[job.to_json()]).await;
    done_result(&h.pump(&h.deps(), 1).await);
    // When the read was sent: its audit record is stamped at its answer, less its latency.
    let reads: Vec<chrono::DateTime<Utc>> = h
        .audit_calls()
        .await
        .iter()
        .filter(|i| i.get("path").and_then(|p| p.as_s().ok()).is_some_and(|p| p.ends_with(&format!("/{}", ids[0]))))
        .map(|i| {
            let sk = i["sk"].as_s().unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(sk.split('#').nth(1).unwrap()).unwrap().with_timezone(&Utc);
            at - Duration::milliseconds(i["latency_ms"].as_n().unwrap().parse::<i64>().unwrap())
        })
        .collect();
    assert_eq!(reads.len(), 1, "one re-read");
    assert!(reads[0] >= delivered + Duration::milliseconds(1490), "re-read at {} for a delivery at {delivered}", reads[0]);

    // Other providers' jobs, and Zoho jobs the app asked for, re-read at once.
    let mut other = job.clone();
    other.provider = Provider::Xero;
    assert_eq!(shared::worker::job::reread_not_before(&other), None);
    let mut asked = job;
    asked.source = Source::App;
    assert_eq!(shared::worker::job::reread_not_before(&asked), None);
}

/// The webhook receiver claims a delivery's nonce as pending (20 s) and sends; the worker that takes
/// one of the delivery's jobs extends the claim to the full window (so provider redeliveries stay
/// duplicates), conditioned on the claim id so a job of an older, lapsed claim cannot extend a
/// newer one.
#[tokio::test]
async fn a_webhook_job_confirms_its_delivery_nonce_when_the_worker_takes_it() {
    use shared::webhooks::nonce::{Claim, DEFAULT_WINDOW, PENDING_WINDOW};
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::Zoho, "invoice", 1).await;
    h.connect(Provider::Zoho, &org).await;
    let deps = h.deps();
    let now = Utc::now();
    let (ours, other) = (unique("delivery"), unique("delivery"));
    let claim = |key: String| {
        let nonces = deps.nonces.clone();
        async move {
            match nonces.claim(Provider::Zoho, &key, now, PENDING_WINDOW).await.unwrap() {
                Claim::Claimed(id) => id,
                Claim::Duplicate => panic!("fresh key"),
            }
        }
    };
    let ours_claim = claim(ours.clone()).await;
    let _other_claim = claim(other.clone()).await;
    let body = |key: &str, claim_id: &str| {
        let mut job = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
        job.entity_id = Some(ids[0].clone());
        job.change = Some(shared::jobs::Change::Updated);
        job.source = Source::Webhook;
        let mut v = serde_json::to_value(&job).unwrap();
        v["webhook_nonce"] = json!({"key": key, "claim_id": claim_id});
        v.to_string()
    };
    h.send(&[body(&ours, &ours_claim), body(&other, "a-claim-that-lapsed-long-ago")]).await;
    done_result(&h.pump(&deps, 1).await);

    let later = |secs: i64| now + Duration::seconds(secs);
    let retry = |key: String, at| {
        let nonces = deps.nonces.clone();
        async move { nonces.claim(Provider::Zoho, &key, at, PENDING_WINDOW).await.unwrap() }
    };
    // Ours: confirmed, so a redelivery past the pending window is still a duplicate...
    assert_eq!(retry(ours.clone(), later(PENDING_WINDOW.num_seconds() + 60)).await, Claim::Duplicate);
    // ...until the full window has passed.
    assert!(matches!(retry(ours, later(DEFAULT_WINDOW.num_seconds() + 60)).await, Claim::Claimed(_)));
    // The other: the job named another claim id, so its pending claim was not extended.
    assert!(matches!(retry(other, later(PENDING_WINDOW.num_seconds() + 60)).await, Claim::Claimed(_)));
}

/// The receiver routes by a copy of the tenant's settings that may lag a change: a webhook job for
/// an entity the tenant has since turned off is acknowledged and skipped, neither run nor
/// dead-lettered; the same job from the app is still refused as invalid.
#[tokio::test]
async fn a_webhook_job_for_an_entity_turned_off_since_is_skipped_not_dead_lettered() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::Zoho, "invoice", 1).await;
    h.connect(Provider::Zoho, &org).await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.retain(|e| *e != Entity::Invoice);
    tenants.update(&t, Utc::now()).await.unwrap();
    let mut webhook = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
    webhook.entity_id = Some(ids[0].clone());
    webhook.change = Some(shared::jobs::Change::Updated);
    webhook.source = Source::Webhook;
    h.send(&[webhook.to_json()]).await;
    let d = h.pump(&h.deps(), 1).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, Disposition::Done, "{d:?}");
    assert_eq!(h.calls("/invoices/{id}").await, 0, "the record is not read");
    assert!(h.store().get_record(&h.tenant, Provider::Zoho, &org, PEntity::Invoice, &ids[0]).await.unwrap().is_none());

    let pull = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
    h.send(&[pull.to_json()]).await;
    let d = h.pump(&h.deps(), 1).await;
    assert!(matches!(d[0].1, Disposition::DeadLettered { .. }), "{d:?}");
}

/// Provider-call audit records of the tenant: one per attempt sent to the provider.
async fn sent_calls(h: &H) -> u64 {
    h.audit_calls().await.len() as u64
}

#[tokio::test]
async fn calls_the_guard_refuses_cost_no_quota_and_every_call_sent_costs_one() {
    let h = harness().await;
    let tenants = h.tenants();
    let (org, _) = h.make_org(Provider::QuickBooks, "contact", 3).await;
    h.connect(Provider::QuickBooks, &org).await;
    let deps = h.deps();
    // The org's breaker opens (failures counted through the shared guard, as workers do).
    let mut open = false;
    for _ in 0..60 {
        let r = deps
            .guard
            .call(&h.tenant, Provider::QuickBooks, &org, "list", || async {
                Err::<(), _>(shared::Error::ProviderTransient { provider: Provider::QuickBooks, status: Some(503), message: "down".into() })
            })
            .await;
        if r.unwrap_err().code() == shared::ErrorCode::CircuitOpen {
            open = true;
            break;
        }
    }
    assert!(open, "the breaker opened");
    let used = tenants.api_calls_used(&h.tenant, Utc::now()).await.unwrap();
    // A storm of jobs against the open breaker: each is refused before calling, and costs nothing.
    let jobs: Vec<String> = (0..5).map(|_| h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Contact).to_json()).collect();
    h.send(&jobs).await;
    let results = h.pump(&deps, 1).await;
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|(_, d)| matches!(d, Disposition::Retry { code: 3001, .. })), "{results:?}");
    assert_eq!(h.calls("/query").await, 0, "nothing reached the provider");
    assert_eq!(sent_calls(&h).await, 0);
    assert_eq!(tenants.api_calls_used(&h.tenant, Utc::now()).await.unwrap(), used, "refused calls are not charged");

    // A call the guard retries is charged once per attempt that reached the provider.
    let (org2, _) = h.make_org(Provider::QuickBooks, "contact", 3).await;
    h.connect(Provider::QuickBooks, &org2).await;
    h.control("POST", "faults", Some(json!({"provider": "quickbooks", "kind": "500", "count": 1}))).await;
    h.send(&[h.job(Provider::QuickBooks, &org2, Operation::Pull, Entity::Contact).to_json()]).await;
    done_result(&h.pump(&deps, 1).await);
    assert_eq!(h.store().list_records(&h.tenant, Provider::QuickBooks, &org2, PEntity::Contact).await.unwrap().len(), 3);
    let sent = sent_calls(&h).await;
    // QuickBooks contacts are customers, then vendors: one more list call after the customers'.
    assert_eq!(sent, 3, "a 500, then the retry inside the guard, then the vendors' page");
    assert_eq!(tenants.api_calls_used(&h.tenant, Utc::now()).await.unwrap(), used + sent, "each call sent is charged once");
}

#[tokio::test]
async fn a_pull_returns_before_its_deadline_when_the_provider_hangs_and_loses_nothing() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Xero, "contact", 30).await;
    h.connect(Provider::Xero, &org).await;
    // The provider holds every contacts request for 3 s; the client gives up after 2 s. The guard's
    // worst case per attempt: 2 s, plus a 1 s horizon for a reserved place.
    h.control("POST", "config", Some(json!({"timeout_fault_seconds": 3}))).await;
    h.control("POST", "faults", Some(json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Contacts", "kind": "timeout", "count": 100})))
        .await;
    let mut cfg = h.env.config.clone();
    cfg.provider_timeout = StdDuration::from_secs(2);
    let mut deps =
        h.deps_with(WorkerSettings { deadline_margin: StdDuration::from_secs(2), ..Default::default() }, StdDuration::from_secs(2));
    deps.guard = ProviderGuard::with_limits(
        h.env.clients.dynamodb.clone(),
        cfg.tables.resilience.clone(),
        Limits { horizon: StdDuration::from_secs(1), ..Limits::from_config(&cfg) },
    );
    // 5.5 s: room for the first attempt, not for the guard's three (about 6.5 s with backoff).
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Contact);
    let started = std::time::Instant::now();
    let deadline = Utc::now() + Duration::milliseconds(5500);
    let r = run_job(&deps, &job, None, deadline).await;
    let took = started.elapsed();
    assert!(Utc::now() < deadline, "returned {took:?} after it started, past its 5.5 s deadline");
    let e = r.expect_err("no page could be read");
    assert!(e.is_retryable(), "the job comes back: {e}");
    assert!(h.calls("/Contacts").await >= 1, "the first attempt was made");
    // Nothing lost: no record, no cursor moved, the claim released for the retry.
    assert_eq!(
        h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().map(|s| s.0).as_deref(),
        Some(shared::sync::store::STATUS_RELEASED),
        "the claim was released for the retry"
    );
    assert!(h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap().is_empty());
    // The provider answers again: the retry reads everything.
    h.control("DELETE", "faults", None).await;
    let deps = h.deps();
    match run_job(&deps, &job, None, Utc::now() + Duration::seconds(90)).await.unwrap() {
        Outcome::Done(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap().len(), 30);
}

fn of_type<'a>(events: &'a [AppEvent], t: &str) -> Vec<&'a AppEvent> {
    events.iter().filter(|e| e.event_type.as_str() == t).collect()
}

#[tokio::test]
async fn a_job_waiting_for_a_reconnect_is_parked_outside_sqs_announced_once_and_runs_after_the_reconnect() {
    // Boxed: the whole case's future is too large for a test thread's stack in a debug build.
    Box::pin(a_job_waiting_for_a_reconnect_is_parked_outside_sqs_announced_once_and_runs_after_the_reconnect_case()).await;
}

async fn a_job_waiting_for_a_reconnect_is_parked_outside_sqs_announced_once_and_runs_after_the_reconnect_case() {
    let h = harness_with(true).await;
    let (org, ids) = h.make_org(Provider::Xero, "invoice", 3).await;
    h.connect(Provider::Xero, &org).await;
    h.enroll_copied(Provider::Xero, &org).await;
    h.control("POST", "revoke", Some(json!({"provider": "xero"}))).await;
    let deps = h.deps();
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Invoice);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&deps, 1).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1, Disposition::Parked { code: 1008 });
    // Not in SQS, neither waiting nor in flight: SQS would hand it back within 12 hours of its
    // first receipt whatever visibility was asked for.
    assert_eq!(h.sync_depth().await, 0, "the message was acknowledged");
    let parked = h.parked().list(&h.tenant, Provider::Xero, &org).await.unwrap();
    assert_eq!(parked.iter().map(|p| p.idempotency_key.as_str()).collect::<Vec<_>>(), vec![job.idempotency_key.as_str()]);

    // While the connection still needs re-authorisation nothing releases it or brings it back.
    let calls = h.calls("/Invoices").await;
    h.run_scheduler().await;
    assert!(h.pump(&deps, 3).await.is_empty(), "nothing came back before the cause cleared");
    assert_eq!(h.calls("/Invoices").await, calls, "no provider call (and no quota) spent while parked");
    let events = h.events().await;
    let failed = of_type(&events, "sync.failed");
    assert_eq!(failed.len(), 1, "announced once: {events:?}");
    assert_eq!((failed[0].data["error_code"].as_u64(), failed[0].data["parked"].as_bool()), (Some(1008), Some(true)));
    assert_eq!(failed[0].data["message"], shared::ErrorCode::NeedsReauth.public_message());

    // An admin connects again; the scheduler's next run releases the job and it runs.
    h.connect(Provider::Xero, &org).await;
    h.run_scheduler().await;
    let results = h.pump(&deps, 2).await;
    done_result(&results);
    let (status, _) = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().expect("job record");
    assert_eq!(status, "COMPLETED");
    assert!(h.parked().list(&h.tenant, Provider::Xero, &org).await.unwrap().is_empty(), "released");
    let stored: HashSet<String> = h
        .store()
        .list_records(&h.tenant, Provider::Xero, &org, PEntity::Invoice)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.provider_id)
        .collect();
    assert_eq!(stored, ids.into_iter().collect::<HashSet<_>>());
    let events = h.events().await;
    let completed: Vec<&AppEvent> =
        of_type(&events, "sync.completed").into_iter().filter(|e| e.data["idempotency_key"] == job.idempotency_key.as_str()).collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    assert!(of_type(&events, "sync.failed").is_empty(), "not announced again: {events:?}");
}

#[tokio::test]
async fn a_job_parked_for_the_quota_runs_once_it_is_raised_and_one_parked_too_long_is_dead_lettered() {
    // Boxed: the whole case's future is too large for a test thread's stack in a debug build.
    Box::pin(a_job_parked_for_the_quota_runs_once_it_is_raised_and_one_parked_too_long_is_dead_lettered_case()).await;
}

async fn a_job_parked_for_the_quota_runs_once_it_is_raised_and_one_parked_too_long_is_dead_lettered_case() {
    let h = harness_with(true).await;
    let (org, _) = h.make_org(Provider::Xero, "contact", 5).await;
    h.connect(Provider::Xero, &org).await;
    h.enroll_copied(Provider::Xero, &org).await;
    let tenants = h.tenants();
    let spend_all = || async {
        let mut t = tenants.get(&h.tenant).await.unwrap();
        let used = tenants.api_calls_used(&h.tenant, Utc::now()).await.unwrap();
        t.limits_override = Some(shared::tenancy::Limits { api_calls_per_month: used.max(1), ..Plan::Enterprise.limits() });
        let t = tenants.update(&t, Utc::now()).await.unwrap();
        if used == 0 {
            tenants.consume_api_calls(&t, 1, Utc::now()).await.unwrap();
        }
    };
    spend_all().await;
    let deps = h.deps();
    let job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Contact);
    h.send(&[job.to_json()]).await;
    let results = h.pump(&deps, 1).await;
    assert_eq!(results.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), vec![Disposition::Parked { code: 6002 }]);
    assert_eq!(h.sync_depth().await, 0, "the message was acknowledged");
    // Quota still spent: a scheduler run releases nothing.
    let report = h.run_scheduler().await;
    assert_eq!(report.skipped_quota_spent, 1, "{report:?}");
    assert!(h.pump(&deps, 3).await.is_empty(), "nothing came back while the quota is spent");
    let failed: Vec<AppEvent> = h.events().await.into_iter().filter(|e| e.event_type.as_str() == "sync.failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].data["error_code"].as_u64(), failed[0].data["parked"].as_bool()), (Some(6002), Some(true)));

    // A plan change raises the limit: the next run releases the job and it runs.
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.limits_override = None;
    tenants.update(&t, Utc::now()).await.unwrap();
    // The connection's next slot comes (the skipped run moved it there).
    h.make_due(Provider::Xero, &org).await;
    h.run_scheduler().await;
    let results = h.pump(&deps, 2).await;
    done_result(&results);
    assert_eq!(h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap().0, "COMPLETED");
    assert_eq!(h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap().len(), 5);
    let events = h.events().await;
    assert_eq!(of_type(&events, "sync.completed").iter().filter(|e| e.data["idempotency_key"] == job.idempotency_key.as_str()).count(), 1);
    assert!(of_type(&events, "sync.failed").is_empty(), "{events:?}");

    // A released job that has waited longer than the maximum and is blocked again: dead-lettered
    // with the reason, and the app told it will not run.
    spend_all().await;
    let old = h.job(Provider::Xero, &org, Operation::Pull, Entity::Account);
    let mut body: Value = serde_json::from_str(&old.to_json()).unwrap();
    body["parked_since"] = json!((Utc::now() - Duration::days(15)).to_rfc3339());
    h.send(&[body.to_string()]).await;
    let results = h.pump(&deps, 1).await;
    assert!(matches!(&results[0].1, Disposition::DeadLettered { code: 6002, reason } if reason.contains("parked since")), "{results:?}");
    assert!(h.parked().list(&h.tenant, Provider::Xero, &org).await.unwrap().is_empty());
    assert_eq!(h.drain(&h.dlq).await.len(), 1);
    let failed: Vec<AppEvent> = h.events().await.into_iter().filter(|e| e.event_type.as_str() == "sync.failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["parked"], false);
}

#[tokio::test]
async fn a_crash_between_completing_a_job_and_announcing_it_is_announced_by_the_redelivery_under_one_id() {
    let h = harness().await;
    let (org, _) = h.make_org(Provider::Zoho, "contact", 5).await;
    h.connect(Provider::Zoho, &org).await;
    let crashing = h.deps_with(WorkerSettings { crash_before_publish: true, ..Default::default() }, StdDuration::from_secs(10));
    let job = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Contact);
    let msg = InMessage {
        message_id: "m-1".into(),
        receipt_handle: "r".into(),
        body: job.to_json(),
        event_source_arn: String::new(),
        receive_count: 1,
        first_received_ms: None,
    };
    let out = handle_batch(&crashing, std::slice::from_ref(&msg), Utc::now() + Duration::seconds(60)).await;
    assert!(matches!(out[0].1, Disposition::Retry { .. }), "the crash fails the message: {out:?}");
    assert_eq!(h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap().0, "COMPLETED");
    assert!(of_type(&h.events().await, "sync.completed").is_empty(), "the crash came before the event");

    // SQS delivers it again: the job is not run again, but it is announced.
    let deps = h.deps();
    let out = handle_batch(&deps, std::slice::from_ref(&msg), Utc::now() + Duration::seconds(60)).await;
    assert_eq!(out[0].1, Disposition::Done);
    assert_eq!(h.calls("/contacts").await, 1, "the provider was read once");
    let first = h.events().await;
    let first = of_type(&first, "sync.completed");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].data["idempotency_key"], job.idempotency_key.as_str());
    assert_eq!(first[0].data["counts"]["fetched"], 5);
    // Any further repeat is the same event.
    handle_batch(&deps, std::slice::from_ref(&msg), Utc::now() + Duration::seconds(60)).await;
    let again = h.events().await;
    let again = of_type(&again, "sync.completed");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, first[0].event_id);
}

/// An app pull overtakes the initial pull between its pages (it moves the stored cursor, so the
/// initial pull stops as superseded) and hands its own rest to a follow-up job. The first copy
/// is not complete until a pass ends: `sync.initial_completed` must wait for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_copy_is_announced_once_and_only_when_a_pass_over_every_record_has_ended() {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities = vec![Entity::Contact];
    let t = tenants.update(&t, Utc::now()).await.unwrap();
    let (org, ids) = h.make_org(Provider::Xero, "contact", 250).await;
    h.connect(Provider::Xero, &org).await;
    let sqs = h.env.clients.sqs.clone();
    let initial = shared::initial_sync::InitialSync::new(
        h.env.clients.dynamodb.clone(),
        h.env.config.tables.grants.clone(),
        shared::jobs::JobQueue::new(sqs.clone(), shared::jobs::SyncQueues::from_config(&h.env.config)),
        shared::events::EventPublisher::new(sqs.clone(), h.env.config.queues.events.clone()),
    );
    let grants = GrantStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.grants.clone());
    let conn = grants.get_connection(&h.tenant, Provider::Xero, &org).await.unwrap().unwrap();
    assert_eq!(initial.start(&t, &conn, Utc::now()).await.unwrap(), shared::initial_sync::Started::Enqueued { jobs: 1 });
    let got = sqs.receive_message().queue_url(&h.env.config.queues.sync_low).wait_time_seconds(2).send().await.unwrap();
    let m = got.messages.unwrap().pop().expect("the initial pull");
    sqs.delete_message().queue_url(&h.env.config.queues.sync_low).receipt_handle(m.receipt_handle.unwrap()).send().await.unwrap();
    let initial_job = SyncJob::from_json(m.body.as_deref().unwrap()).unwrap();

    // After the initial pull's first page, the app's pull runs one page (101-200) and hands over.
    let app = Arc::new(h.deps_with(
        WorkerSettings { page_size: Some(100), deadline_margin: StdDuration::from_secs(3600), ..Default::default() },
        StdDuration::from_secs(10),
    ));
    let app_job = h.job(Provider::Xero, &org, Operation::Pull, Entity::Contact);
    let (hook_app, hook_job) = (app.clone(), app_job.clone());
    let between_pages: shared::worker::job::CrashPoint = Arc::new(move |pages| {
        if pages == 1 {
            let (d, j) = (hook_app.clone(), hook_job.clone());
            let out = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move { run_job(&d, &j, None, Utc::now() + Duration::seconds(60)).await })
            });
            assert!(matches!(out, Ok(Outcome::Done(ref r)) if r["continued"] == true), "{out:?}");
        }
        false
    });
    let init_deps = h.deps_with(
        WorkerSettings {
            page_size: Some(100),
            deadline_margin: StdDuration::ZERO,
            crash_after_page: Some(between_pages),
            ..Default::default()
        },
        StdDuration::from_secs(10),
    );
    let out = run_job(&init_deps, &initial_job, None, Utc::now() + Duration::seconds(60)).await.unwrap();
    assert!(matches!(&out, Outcome::Done(r) if r["superseded"] == true), "{out:?}");
    let stored = h.store().list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact).await.unwrap().len();
    assert_eq!(stored, 200, "records 201-250 wait for the app pull's follow-up");
    let events = h.events().await;
    assert!(of_type(&events, "sync.initial_completed").is_empty(), "announced before the copy was complete: {events:?}");

    // The queued work runs: the app pull's follow-up ends its pass, the initial pull continues
    // from the stored cursor and ends its own; then, and once, the first copy is announced.
    let deps = h.deps_with(WorkerSettings { page_size: Some(100), ..Default::default() }, StdDuration::from_secs(10));
    done_result(&h.pump(&deps, 2).await);
    let stored: HashSet<String> = h
        .store()
        .list_records(&h.tenant, Provider::Xero, &org, PEntity::Contact)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.provider_id)
        .collect();
    assert_eq!(stored, ids.into_iter().collect::<HashSet<_>>());
    let events = h.events().await;
    let first = of_type(&events, "sync.initial_completed");
    assert_eq!(first.len(), 1, "{events:?}");
    assert_eq!(first[0].data["entities"], json!(["contact"]));
}

/// The change feed (`records.changed`, `shared::sync::feed`): entries for exactly the records one job
/// stored changed, in schema-valid events, whatever the page size.
fn changes_in(events: &[AppEvent]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event_type.as_str() == "records.changed")
        .flat_map(|e| e.data["changes"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn ids_of(changes: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = changes.iter().map(|c| c["provider_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_change_feed_announces_each_stored_change_once_and_nothing_for_a_repeat() {
    let h = harness().await;
    let (org, mut ids) = h.make_org(Provider::Zoho, "invoice", 1000).await;
    h.connect(Provider::Zoho, &org).await;
    let deps = h.deps_with(WorkerSettings { page_size: Some(200), ..Default::default() }, StdDuration::from_secs(10));
    let pull = |h: &H| h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);

    // The first full pull: every record once, with its document and a version.
    h.run_through_queue(&deps, &pull(&h)).await;
    let first = changes_in(&h.events().await);
    ids.sort();
    assert_eq!(ids_of(&first), ids, "each of the 1,000 records announced once");
    for c in &first {
        assert_eq!(c["entity"], "invoice");
        assert_eq!(c["deleted"], false);
        assert!(c["version"].as_i64().is_some_and(|v| v > 1_600_000_000_000), "{c}");
        assert_eq!(c["doc"]["provider_id"], c["provider_id"], "the stored document travels with it: {c}");
    }

    // Three new records among 1,003: a full re-read announces exactly those three.
    let mut new = h.seed(Provider::Zoho, &org, "invoice", 3).await;
    new.sort();
    let mut again = pull(&h);
    again.cursor = Some("full".into());
    let result = h.run_through_queue(&deps, &again).await;
    assert_eq!(result["counts"]["fetched"], 1003, "{result}");
    assert_eq!(ids_of(&changes_in(&h.events().await)), new);

    // The same job delivered again after it completed: nothing new is announced.
    h.send(&[again.to_json()]).await;
    done_result(&h.pump(&deps, 1).await);
    assert!(changes_in(&h.events().await).is_empty(), "a repeated job announced records it did not change");

    // A deletion: a tombstone.
    let mut deleted = h.job(Provider::Zoho, &org, Operation::Webhook, Entity::Invoice);
    deleted.entity_id = Some(ids[0].clone());
    deleted.change = Some(shared::jobs::Change::Deleted);
    h.run_through_queue(&deps, &deleted).await;
    let tomb = changes_in(&h.events().await);
    assert_eq!(tomb.len(), 1, "{tomb:?}");
    assert_eq!((tomb[0]["provider_id"].as_str(), tomb[0]["deleted"].as_bool()), (Some(ids[0].as_str()), Some(true)));
}

/// A job that stored its changes and died before announcing them (here: the announcement failed)
/// leaves them marked; its retry finds the records unchanged, writes nothing, and announces them.
#[tokio::test]
async fn changes_stored_but_never_announced_are_announced_by_the_retry() {
    let h = harness().await;
    let (org, mut ids) = h.make_org(Provider::Zoho, "invoice", 30).await;
    h.connect(Provider::Zoho, &org).await;
    let job = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
    let mut broken = h.env.config.clone();
    broken.queues.events = format!("{}-gone", h.env.config.queues.events);
    let broken = SyncDeps::new(&broken, &h.env.clients, h.service(StdDuration::from_secs(10)));
    let deadline = Utc::now() + Duration::seconds(60);
    assert!(run_job(&broken, &job, None, deadline).await.is_err(), "the announcement cannot be sent");
    assert_eq!(h.store().list_records(&h.tenant, Provider::Zoho, &org, PEntity::Invoice).await.unwrap().len(), 30, "stored first");
    assert!(changes_in(&h.events().await).is_empty());

    let result = h.run_through_queue(&h.deps(), &job).await;
    assert_eq!(result["counts"]["written"], 0, "nothing changed since: {result}");
    ids.sort();
    assert_eq!(ids_of(&changes_in(&h.events().await)), ids, "the retry announced what the first run stored");

    // Announced once: a further re-read announces nothing.
    let mut again = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
    again.cursor = Some("full".into());
    h.run_through_queue(&h.deps(), &again).await;
    assert!(changes_in(&h.events().await).is_empty());
}

/// Freshness (`shared::sync::freshness`): each pull's end is kept per connection and entity (last
/// success, last change, last error), and the scheduler counts a connection whose copy is older than twice its
/// interval, until a pull makes it fresh again.
#[tokio::test]
async fn freshness_is_kept_per_entity_and_the_scheduler_counts_a_stale_copy() {
    Box::pin(freshness_case()).await;
}

async fn freshness_case() {
    use shared::providers::model::Entity as E;
    use shared::sync::freshness::{FreshnessStore, PULL_OK};
    let h = harness_with(true).await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities = vec![Entity::Invoice];
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = h.make_org(Provider::Zoho, "invoice", 5).await;
    h.connect(Provider::Zoho, &org).await;
    h.enroll_copied(Provider::Zoho, &org).await;
    let fresh = FreshnessStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.sync.clone(), h.env.config.tables.grants.clone());
    let before = Utc::now();
    h.run_through_queue(&h.deps(), &h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice)).await;
    let f = fresh.read(&h.tenant, Provider::Zoho, &org).await.unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].entity, E::Invoice);
    assert!(f[0].last_success_at.is_some_and(|t| t >= before - Duration::seconds(1)), "{f:?}");
    assert_eq!(f[0].last_change_at, f[0].last_success_at, "the pull stored changes");
    assert!(f[0].last_error_code.is_none());

    // Fresh: the scheduler finds no stale copy.
    h.make_due(Provider::Zoho, &org).await;
    let report = h.run_scheduler().await;
    assert_eq!((report.found, report.stale_connections), (1, 0), "{report:?}");
    // Its pull runs (whatever becomes of it: a later slot's job may share its key).
    h.pump(&h.deps(), 1).await;
    // The last successful pull three days ago (the enterprise interval is minutes): stale.
    let three_days_ago = (Utc::now() - Duration::days(3)).timestamp_millis().to_string();
    h.env
        .clients
        .dynamodb
        .update_item()
        .table_name(&h.env.config.tables.grants)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", h.tenant)))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(shared::store::grants::connection_sk(Provider::Zoho, &org)))
        .update_expression("SET #p.#e = :t")
        .expression_attribute_names("#p", PULL_OK)
        .expression_attribute_names("#e", "invoice")
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::N(three_days_ago))
        .send()
        .await
        .unwrap();
    h.make_due(Provider::Zoho, &org).await;
    let report = h.run_scheduler().await;
    assert_eq!(report.stale_connections, 1, "{report:?}");
    assert!(report.oldest_copy_seconds >= 3 * 86_400 - 60, "{report:?}");
    // A pull succeeds: fresh again.
    h.pump(&h.deps(), 1).await;
    h.run_through_queue(&h.deps(), &h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice)).await;
    h.make_due(Provider::Zoho, &org).await;
    let report = h.run_scheduler().await;
    assert_eq!(report.stale_connections, 0, "{report:?}");
    h.pump(&h.deps(), 1).await;

    // A pull the provider fails: the worker keeps the error beside the last success, which stays.
    let ok = fresh.read(&h.tenant, Provider::Zoho, &org).await.unwrap()[0].clone();
    h.control(
        "POST",
        "faults",
        Some(json!({"provider": "zoho", "path_prefix": "/zoho/api/us/books/v3/invoices", "kind": "malformed", "count": 20})),
    )
    .await;
    let failing_from = Utc::now();
    let mut failing = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
    failing.cursor = Some("full".into());
    h.send(&[failing.to_json()]).await;
    let outcomes = h.pump(&h.deps(), 1).await;
    assert!(outcomes.iter().all(|(_, d)| !matches!(d, Disposition::Done)), "{outcomes:?}");
    h.http.delete(format!("{}/_sandbox/faults", h.sb.base_url)).send().await.unwrap();
    let f = fresh.read(&h.tenant, Provider::Zoho, &org).await.unwrap();
    assert_eq!(f[0].last_error_code, Some(shared::ErrorCode::ProviderMalformed.as_u16()), "{f:?}");
    assert!(f[0].last_error_at.is_some_and(|t| t >= failing_from - Duration::seconds(1)), "{f:?}");
    assert_eq!((f[0].last_success_at, f[0].last_change_at), (ok.last_success_at, ok.last_change_at), "a failure moves neither");
}

/// Deletions no provider reports: a full pass's end turns the stored records it no longer listed
/// into tombstones, announced on the change feed; an incremental pass never does; and a pass that
/// would delete most of the copy deletes nothing and says why.
#[tokio::test]
async fn a_full_pass_tombstones_what_the_provider_no_longer_lists() {
    Box::pin(reconcile_case()).await;
}

async fn reconcile_case() {
    let h = harness().await;
    let (org, ids) = h.make_org(Provider::Zoho, "invoice", 30).await;
    h.connect(Provider::Zoho, &org).await;
    let full = |h: &H| {
        let mut j = h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice);
        j.cursor = Some("full".into());
        j
    };
    let first = h.run_through_queue(&h.deps(), &h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice)).await;
    assert_eq!((first["counts"]["written"].as_u64(), first["counts"].get("reconciled")), (Some(30), None), "{first}");
    h.events().await;
    // As if stored an hour ago (a pass never takes a record written around its own start for gone).
    let backdate = |h: &H| {
        let org = org.clone();
        let db = h.env.clients.dynamodb.clone();
        let table = h.env.config.tables.sync.clone();
        let tenant = h.tenant.clone();
        let ids = ids.clone();
        async move {
            for id in &ids {
                db.update_item()
                    .table_name(&table)
                    .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(shared::store::tenant_pk(&tenant)))
                    .key(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S(shared::sync::store::record_sk(
                            Provider::Zoho,
                            &org,
                            PEntity::Invoice,
                            id,
                        )),
                    )
                    .update_expression("SET synced_at = :t")
                    .condition_expression("attribute_exists(sk)")
                    .expression_attribute_values(
                        ":t",
                        aws_sdk_dynamodb::types::AttributeValue::S((Utc::now() - Duration::hours(1)).to_rfc3339()),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
    };
    backdate(&h).await;
    let out =
        h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": "invoice", "ids": ids[..3]}))).await;
    assert_eq!(out["deleted"], 3);

    // An incremental pass does not look for what is missing.
    let inc = h.run_through_queue(&h.deps(), &h.job(Provider::Zoho, &org, Operation::Pull, Entity::Invoice)).await;
    assert_eq!(inc["counts"]["deleted"], 0, "{inc}");

    // A full pass does: exactly the three, as tombstones, announced once.
    let r = h.run_through_queue(&h.deps(), &full(&h)).await;
    assert_eq!((r["counts"]["reconciled"].as_u64(), r["counts"]["deleted"].as_u64()), (Some(3), Some(3)), "{r}");
    let stored = h.store().list_records(&h.tenant, Provider::Zoho, &org, PEntity::Invoice).await.unwrap();
    let mut gone: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
    gone.sort();
    let mut want: Vec<&str> = ids[..3].iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(gone, want);
    assert_eq!(stored.len(), 30, "tombstones, not removals");
    let changes = changes_in(&h.events().await);
    assert_eq!(ids_of(&changes), want.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert!(changes.iter().all(|c| c["deleted"] == true), "{changes:?}");

    // Another full pass finds nothing new to delete.
    let again = h.run_through_queue(&h.deps(), &full(&h)).await;
    assert_eq!(again["counts"]["deleted"], 0, "{again}");

    // Most of the copy gone at once: nothing deleted, and the result says why.
    backdate(&h).await;
    let out =
        h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": "invoice", "ids": ids[3..28]}))).await;
    assert_eq!(out["deleted"], 25);
    let refused = h.run_through_queue(&h.deps(), &full(&h)).await;
    assert_eq!((refused["counts"]["reconcile_refused"].as_u64(), refused["counts"]["deleted"].as_u64()), (Some(25), Some(0)), "{refused}");
    assert!(refused["warnings"][0].as_str().unwrap().contains("none was deleted"), "{refused}");
    let live =
        h.store().list_records(&h.tenant, Provider::Zoho, &org, PEntity::Invoice).await.unwrap().iter().filter(|s| !s.deleted).count();
    assert_eq!(live, 27);
}

/// The `company` entity: each provider's organisation (QuickBooks CompanyInfo, Xero Organisation,
/// Zoho's organization among the user's) is pulled as one record of the org, and pulling it again
/// changes nothing.
#[tokio::test]
async fn each_providers_company_is_pulled_as_one_record() {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::Company);
    tenants.update(&t, Utc::now()).await.unwrap();
    for provider in Provider::ALL {
        let (org, _) = h.make_org(provider, "invoice", 1).await;
        h.connect(provider, &org).await;
        let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Company)).await;
        assert_eq!((r["counts"]["fetched"].as_u64(), r["counts"]["written"].as_u64()), (Some(1), Some(1)), "{provider}: {r}");
        let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Company).await.unwrap();
        assert_eq!(stored.len(), 1, "{provider}");
        let c = stored[0].company.clone().expect("a company");
        assert!(stored[0].name.is_some(), "{provider}: {:?}", stored[0]);
        match provider {
            // CompanyInfo carries no currency; its Id is the realm.
            Provider::QuickBooks => assert_eq!((stored[0].provider_id.as_str(), c.country.as_deref()), (org.as_str(), Some("US"))),
            Provider::Xero => assert_eq!(c.base_currency.as_deref(), Some("USD")),
            Provider::Zoho => {
                assert_eq!(stored[0].provider_id, org, "only this org of the user's organizations");
                assert_eq!((c.base_currency.as_deref(), c.fiscal_year_start_month), (Some("USD"), Some(1)));
            }
        }
        let again = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Company)).await;
        assert_eq!(again["counts"]["written"], 0, "{provider}: {again}");
    }
}

/// Bills (purchase invoices) of every provider: a full pull stores each as a bill with its supplier,
/// lines and totals equal to the provider's; the lines add up to the subtotal and with the tax to the
/// total; an incremental pull takes only what is new; Xero's sales invoices and bills (one
/// collection) never mix; Zoho's list summaries say their lines are missing and a read of the one
/// bill (a webhook's) brings them.
async fn bills_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::Bill);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("bill", 40), ("invoice", 10)]).await;
    let bill_ids = seeded.remove("bill").unwrap();
    h.connect(provider, &org).await;
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Bill)).await;
    assert_eq!(r["counts"]["written"], 40, "{provider}: {r}");
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap();
    assert_eq!(stored.len(), 40);
    let sandbox = h.control("GET", &format!("records?provider={}&org_id={org}&entity=bill", sandbox_name(provider)), None).await;
    let total_field = match provider {
        Provider::QuickBooks => "TotalAmt",
        Provider::Xero => "Total",
        Provider::Zoho => "total",
    };
    let totals: std::collections::HashMap<String, String> = sandbox["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["value"][total_field].to_string()))
        .collect();
    for s in &stored {
        assert!(bill_ids.contains(&s.provider_id), "{provider}: {} is a seeded bill", s.provider_id);
        let d = s.document.as_ref().expect("a bill has a document");
        assert_eq!(d.kind, shared::books::DocumentKind::Bill);
        let contact = d.contact.as_ref().and_then(|c| c.id.clone());
        assert!(contact.is_some() && contact == s.contact_id, "{provider}: the supplier is the contact: {d:?}");
        let total = d.total.as_ref().expect("a total");
        let want = shared::money::parse_minor(&totals[&s.provider_id], 2).unwrap();
        assert_eq!(total.minor, want, "{provider} {}: the provider's total", s.provider_id);
        assert_eq!(d.amount_due.as_ref().map(|m| m.minor), Some(want), "{provider}: unpaid bills owe their total");
        if provider == Provider::Zoho {
            assert!(!d.lines_complete && d.lines.is_empty(), "Zoho's list answers carry no lines");
            continue;
        }
        assert!(d.lines_complete && !d.lines.is_empty(), "{provider}: {d:?}");
        let sum: i64 = d.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).sum();
        let (sub, tax) = (d.subtotal.as_ref().unwrap().minor, d.tax.as_ref().unwrap().minor);
        assert_eq!(
            (sum, sub + tax),
            (sub, total.minor),
            "{provider} {}: lines make the subtotal, and with the tax the total",
            s.provider_id
        );
    }
    // Sales invoices are not bills, and bills are not sales invoices.
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Invoice)).await;
    let invoices = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    assert_eq!(invoices.len(), 10, "{provider}");
    assert!(invoices.iter().all(|i| i.document.as_ref().unwrap().kind == shared::books::DocumentKind::SalesInvoice));
    // Incremental: only the new ones.
    let more = h.seed(provider, &org, "bill", 3).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Bill)).await;
    assert_eq!(inc["counts"]["written"], 3, "{provider}: {inc}");
    if provider == Provider::Zoho {
        // The one bill read by id (as a webhook's job reads it) has its lines.
        let mut job = h.job(provider, &org, Operation::Webhook, Entity::Bill);
        job.entity_id = Some(more[0].clone());
        job.change = Some(shared::jobs::Change::Updated);
        h.run_through_queue(&h.deps(), &job).await;
        let one = h.store().get_record(&h.tenant, provider, &org, PEntity::Bill, &more[0]).await.unwrap().unwrap();
        let d = one.document.unwrap();
        assert!(d.lines_complete && !d.lines.is_empty(), "{d:?}");
        let sum: i64 = d.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).sum();
        assert_eq!(sum + d.tax.unwrap().minor, d.total.unwrap().minor);
    }
}

#[tokio::test]
async fn quickbooks_bills_with_lines() {
    Box::pin(bills_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bills_with_lines() {
    Box::pin(bills_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bills_with_lines() {
    Box::pin(bills_case(Provider::Zoho)).await;
}

// ---- writes in the common model (issue 24) ----------------------------------------------------

/// The provider API's calls (not OAuth, not the sandbox's control).
fn api_prefix(provider: Provider) -> &'static str {
    match provider {
        Provider::QuickBooks => "/quickbooks/v3/",
        Provider::Xero => "/xero/api.xro/",
        Provider::Zoho => "/zoho/api/",
    }
}

impl H {
    /// Runs one write request as a push job; its stored result.
    async fn write(&self, provider: Provider, org: &str, entity: Entity, request: Value) -> Value {
        let mut job = self.job(provider, org, Operation::Push, entity);
        job.idempotency_key = unique("write");
        self.send(&[write_body(&job, request)]).await;
        done_result(&self.pump(&self.deps(), 1).await);
        let (status, result) = self.store().job_status(&self.tenant, &job.idempotency_key).await.unwrap().unwrap();
        assert_eq!(status, "COMPLETED");
        result.unwrap()
    }

    /// The sandbox's copy of one record.
    async fn sandbox_record(&self, provider: Provider, org: &str, entity: &str, id: &str) -> Value {
        let v = self.control("GET", &format!("records?provider={}&org_id={org}&entity={entity}", sandbox_name(provider)), None).await;
        v["records"].as_array().unwrap().iter().find(|r| r["id"] == id).cloned().unwrap_or(Value::Null)
    }
}

fn invoice_record(provider: Provider, contact: &str, account_code: &str) -> Value {
    // QuickBooks sales lines take their account from the item; Xero and Zoho name the account.
    let account = json!({"code": account_code});
    let mut lines = json!([
        {"description": "Brake pads", "quantity": "4", "unit_price": "37.50", "account": account},
        {"description": "Labour", "amount": 12000, "account": account}
    ]);
    if provider == Provider::QuickBooks {
        for l in lines.as_array_mut().unwrap() {
            l.as_object_mut().unwrap().remove("account");
        }
    }
    let mut record =
        json!({"contact": {"id": contact}, "issue_date": "2026-11-29", "due_date": "2026-12-29", "lines": lines, "subtotal": 27000});
    if provider == Provider::Xero {
        // Approved: Xero voids only approved invoices.
        record["status"] = json!("open");
    }
    record
}

async fn writes_case(provider: Provider) {
    let h = harness().await;
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 3), ("account", 5)]).await;
    let contacts = seeded.remove("contact").unwrap();
    h.connect(provider, &org).await;
    // The books a write is checked against: the stored contacts and accounts.
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Contact)).await;
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    let accounts = h.store().list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let code = accounts.iter().find_map(|a| a.number.clone()).expect("a stored account with a code");
    h.control("DELETE", "counters", None).await;
    let api = api_prefix(provider);

    // A viewer may not write; a line's unknown account and an unknown contact are named; a dry run
    // answers the checks and the provider JSON. None of it costs a provider call.
    let create = |by: &str, record: Value| json!({"action": "create", "requested_by": by, "record": record});
    let r = h.write(provider, &org, Entity::Invoice, create(VIEWER, invoice_record(provider, &contacts[0], &code))).await;
    assert_eq!((r["outcome"].as_str(), r["code"].as_str()), (Some("refused"), Some("forbidden")), "{provider}: {r}");
    let mut bad = invoice_record(provider, "no-such-contact", &code);
    if provider != Provider::QuickBooks {
        bad["lines"][1]["account"] = json!({"code": "999"});
    }
    bad["subtotal"] = json!(26999);
    let r = h.write(provider, &org, Entity::Invoice, create(WRITER, bad)).await;
    assert_eq!((r["outcome"].as_str(), r["code"].as_str()), (Some("refused"), Some("validation_failed")), "{provider}: {r}");
    let problems: Vec<(String, String)> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["field"].as_str().unwrap().into(), p["code"].as_str().unwrap().into()))
        .collect();
    assert!(problems.contains(&("record.contact.id".into(), "unknown_contact".into())), "{provider}: {problems:?}");
    assert!(problems.contains(&("record.subtotal".into(), "subtotal_mismatch".into())), "{provider}: {problems:?}");
    if provider != Provider::QuickBooks {
        assert!(problems.contains(&("record.lines[1].account".into(), "unknown_account".into())), "{provider}: {problems:?}");
    }
    let mut dry = create(WRITER, invoice_record(provider, &contacts[0], &code));
    dry["dry_run"] = json!(true);
    let r = h.write(provider, &org, Entity::Invoice, dry).await;
    assert_eq!(r["outcome"], "valid", "{provider}: {r}");
    assert!(r["would_send"].is_object(), "{provider}: {r}");
    assert_eq!(h.calls(api).await, 0, "{provider}: refusals and dry runs make no provider call");

    // The create: one invoice at the provider whose lines and totals are the request's.
    let r = h.write(provider, &org, Entity::Invoice, create(WRITER, invoice_record(provider, &contacts[0], &code))).await;
    assert_eq!((r["outcome"].as_str(), r["created"].as_bool()), (Some("applied"), Some(true)), "{provider}: {r}");
    let id = r["provider_id"].as_str().unwrap().to_string();
    let version = r["version"].as_str().expect("a written record has a version").to_string();
    let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Invoice, &id).await.unwrap().expect("stored from the answer");
    let d = stored.document.as_ref().unwrap();
    assert_eq!(d.subtotal.as_ref().map(|m| m.minor), Some(27000), "{provider}: {d:?}");
    assert_eq!(stored.contact_id.as_deref(), Some(contacts[0].as_str()));
    if provider != Provider::Zoho {
        let amounts: Vec<i64> = d.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).collect();
        assert_eq!(amounts, [15000, 12000], "{provider}");
    }
    let events = h.events().await;
    let written: Vec<&AppEvent> = events.iter().filter(|e| e.event_type.as_str() == "write.completed").collect();
    assert!(written.iter().any(|e| e.data["provider_id"] == id.as_str() && e.data["outcome"] == "applied"), "{provider}: {events:?}");
    assert!(
        events.iter().any(|e| e.event_type.as_str() == "records.changed" && e.data.to_string().contains(&id)),
        "{provider}: the change feed reports the new invoice"
    );
    let failed = events.iter().filter(|e| e.event_type.as_str() == "write.failed").count();
    assert_eq!(failed, 2, "{provider}: the two refusals are announced");
    let trail =
        shared::audit::AuditLog::new(h.env.clients.dynamodb.clone(), h.env.config.tables.tenants.clone()).list(&h.tenant).await.unwrap();
    let writes: Vec<_> = trail.iter().filter(|a| a.event.starts_with("write.")).collect();
    assert!(writes.iter().any(|a| a.actor == WRITER && a.detail.as_deref().unwrap_or_default().contains(&id)), "{provider}: {writes:?}");
    assert!(
        writes.iter().any(|a| a.actor == VIEWER && a.detail.as_deref().unwrap_or_default().contains("refused")),
        "{provider}: {writes:?}"
    );

    // Zoho's last-modified time (the version) has one-second resolution: the provider's clock
    // moves on between changes, as it would between a person's edits.
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    // An update based on the current version changes the provider's record and the stored copy.
    let update = json!({"action": "update", "requested_by": WRITER, "provider_id": id, "version": version,
        "record": {"due_date": "2027-01-15"}});
    let r = h.write(provider, &org, Entity::Invoice, update.clone()).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let new_version = r["version"].as_str().unwrap().to_string();
    assert_ne!(new_version, version, "{provider}: the version moved");
    let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Invoice, &id).await.unwrap().unwrap();
    assert_eq!(stored.due_date.map(|d| d.to_string()).as_deref(), Some("2027-01-15"), "{provider}");
    // The same change based on the old version is a conflict carrying the current record; the
    // provider's record is not touched.
    let before = h.sandbox_record(provider, &org, "invoice", &id).await;
    let mut stale = update.clone();
    stale["record"]["due_date"] = json!("2027-02-01");
    let r = h.write(provider, &org, Entity::Invoice, stale).await;
    assert_eq!((r["outcome"].as_str(), r["code"].as_str()), (Some("conflict"), Some("conflict")), "{provider}: {r}");
    assert_eq!(r["current"]["version"], new_version.as_str(), "{provider}: the conflict carries the current record");
    assert_eq!(h.sandbox_record(provider, &org, "invoice", &id).await, before, "{provider}: a stale update writes nothing");

    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    // Voiding is for admins: a member is refused; an admin voids.
    let void = |by: &str| json!({"action": "void", "requested_by": by, "provider_id": id, "version": new_version});
    let r = h.write(provider, &org, Entity::Invoice, void(WRITER)).await;
    assert_eq!(r["code"], "forbidden", "{provider}: {r}");
    let r = h.write(provider, &org, Entity::Invoice, void(ADMIN)).await;
    if provider == Provider::Zoho {
        // A new Zoho invoice is a draft, and Zoho voids only sent ones: its refusal is the
        // answer, nothing changed, and the draft is deleted instead.
        assert_eq!((r["outcome"].as_str(), r["code"].as_str()), (Some("refused"), Some("provider_refused")), "{r}");
        let del = json!({"action": "delete", "requested_by": ADMIN, "provider_id": id, "version": new_version});
        let r = h.write(provider, &org, Entity::Invoice, del).await;
        assert_eq!(r["outcome"], "applied", "{r}");
        let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Invoice, &id).await.unwrap().unwrap();
        assert!(stored.deleted, "a deletion is a tombstone: {stored:?}");
    } else {
        assert_eq!(r["outcome"], "applied", "{provider}: {r}");
        let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Invoice, &id).await.unwrap().unwrap();
        let d = stored.document.as_ref().unwrap();
        assert!(
            d.status == shared::books::DocumentStatus::Void || d.total.as_ref().is_some_and(|t| t.minor == 0),
            "{provider}: voided: {:?} {:?}",
            d.status,
            d.total
        );
    }

    // A contact: created in the common model, then deleted (archived where the provider keeps
    // every contact).
    let r = h.write(provider, &org, Entity::Contact, create(WRITER, json!({"name": "Writes Ltd", "email": "ap@writes.example"}))).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let cid = r["provider_id"].as_str().unwrap().to_string();
    let cversion = r["version"].as_str().unwrap().to_string();
    let r = h
        .write(provider, &org, Entity::Contact, json!({"action": "delete", "requested_by": ADMIN, "provider_id": cid, "version": cversion}))
        .await;
    assert!(matches!(r["outcome"].as_str(), Some("applied")), "{provider}: {r}");
    let gone = h.store().get_record(&h.tenant, provider, &org, PEntity::Contact, &cid).await.unwrap().unwrap();
    assert!(
        gone.deleted || gone.status.as_deref().is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "archived" | "inactive")),
        "{provider}: {gone:?}"
    );
}

/// A deletion is stamped with our clock; the copy it replaces may carry a provider clock that runs
/// ahead (the sandbox's is moved on in the writes tests). The deletion still wins, with a version
/// after that copy's, so the change feed orders it last; a late live copy read before the deletion
/// does not bring the record back.
#[tokio::test]
async fn a_deletion_outranks_a_copy_stamped_ahead_by_the_providers_clock() {
    let h = harness().await;
    let store = h.store();
    let ahead = Utc::now() + Duration::seconds(30);
    let mut live = shared::sync::model::tombstone(Provider::Zoho, "org-skew", PEntity::Contact, "c-1", ahead).unwrap();
    (live.deleted, live.status) = (false, Some("active".into()));
    let w = store.put_records(&h.tenant, &[(live.clone(), Some("{}".into()))], "job-live", Utc::now()).await.unwrap();
    assert_eq!(w.written, 1);

    let gone = shared::sync::model::tombstone(Provider::Zoho, "org-skew", PEntity::Contact, "c-1", Utc::now()).unwrap();
    let w = store.put_records(&h.tenant, &[(gone.clone(), None)], "job-delete", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes.len()), (1, 1), "{w:?}");
    assert!(w.changes[0].deleted);
    assert_eq!(w.changes[0].version, ahead.timestamp_millis() + 1, "announced after the live copy's version");
    let stored = store.get_record(&h.tenant, Provider::Zoho, "org-skew", PEntity::Contact, "c-1").await.unwrap().unwrap();
    assert!(stored.deleted, "{stored:?}");

    // The same deletion again (a redelivered job) writes nothing; neither does the old live copy.
    let w = store.put_records(&h.tenant, &[(gone, None)], "job-delete-2", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes.len()), (0, 0), "{w:?}");
    let w = store.put_records(&h.tenant, &[(live, Some("{}".into()))], "job-late", Utc::now()).await.unwrap();
    assert_eq!(w.written, 0, "{w:?}");
    assert!(store.get_record(&h.tenant, Provider::Zoho, "org-skew", PEntity::Contact, "c-1").await.unwrap().unwrap().deleted);
}

/// A live copy of a record as the tests below write it: `status` and `version` set, at `at`.
fn live_copy(
    provider: Provider,
    org: &str,
    id: &str,
    at: Option<chrono::DateTime<Utc>>,
    status: &str,
    version: &str,
) -> shared::sync::model::SyncRecord {
    let mut r = shared::sync::model::tombstone(provider, org, PEntity::Contact, id, Utc::now()).unwrap();
    (r.deleted, r.updated_at, r.status, r.version) = (false, at, Some(status.into()), Some(version.into()));
    r
}

/// Zoho and QuickBooks stamp a change in whole seconds, so two changes of one record within a
/// second (a workflow rule updating what was just created) carry the same time. Each stored change
/// is still announced at a version of its own, higher than the last, and a repeat of either is not.
#[tokio::test]
async fn two_changes_within_one_provider_second_are_announced_at_two_versions() {
    let h = harness().await;
    let store = h.store();
    let second = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let t = second.timestamp_millis();
    let created = live_copy(Provider::Zoho, "org-second", "c-1", Some(second), "draft", "v");
    let w = store.put_records(&h.tenant, &[(created.clone(), Some("{}".into()))], "job-create", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, t), "{w:?}");

    // The rule's update, in the same second: stored, and announced after the first.
    let updated = live_copy(Provider::Zoho, "org-second", "c-1", Some(second), "sent", "v");
    let w = store.put_records(&h.tenant, &[(updated.clone(), Some("{}".into()))], "job-update", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes.len()), (1, 1), "{w:?}");
    assert_eq!(w.changes[0].version, t + 1, "a version of its own, after the first change's");
    let stored = store.get_record(&h.tenant, Provider::Zoho, "org-second", PEntity::Contact, "c-1").await.unwrap().unwrap();
    assert_eq!(stored.status.as_deref(), Some("sent"));

    // The same copy read again by another job is no change; redelivered to the job that stored it,
    // it is announced again at the version it was stored at (the app recognises the repeat).
    let w = store.put_records(&h.tenant, &[(updated.clone(), Some("{}".into()))], "job-pull", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes.len()), (0, 0), "{w:?}");
    let w = store.put_records(&h.tenant, &[(updated, Some("{}".into()))], "job-update", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes.len(), w.changes[0].version), (0, 1, t + 1), "{w:?}");

    // A change in a later second is announced at its own time again.
    let later = live_copy(Provider::Zoho, "org-second", "c-1", Some(second + Duration::seconds(1)), "paid", "v");
    let w = store.put_records(&h.tenant, &[(later, Some("{}".into()))], "job-later", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, t + 1000), "{w:?}");
}

/// Writers racing on one record within one provider second (a pull's page, webhook jobs) each get a
/// version of their own, and the highest announced is the copy that stays stored.
#[tokio::test]
async fn racing_writers_in_one_second_each_announce_their_own_version() {
    let h = harness().await;
    let store = h.store();
    let second = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let writes = (0..4).map(|i| {
        let store = store.clone();
        let tenant = h.tenant.clone();
        let copy = live_copy(Provider::Zoho, "org-race", "c-5", Some(second), &format!("status-{i}"), "v");
        async move { store.put_records(&tenant, &[(copy, Some("{}".into()))], &format!("job-{i}"), Utc::now()).await.unwrap() }
    });
    let results = futures::future::join_all(writes).await;
    let announced: Vec<(i64, String)> = results
        .iter()
        .flat_map(|w| w.changes.iter().map(|c| (c.version, c.doc["status"].as_str().unwrap_or_default().to_string())))
        .collect();
    assert_eq!(announced.len(), 4, "every copy stored and announced: {results:?}");
    let versions: HashSet<i64> = announced.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), 4, "no two share a version: {announced:?}");
    let (top, top_status) = announced.iter().max().unwrap().clone();
    assert_eq!(top, second.timestamp_millis() + 3, "{announced:?}");
    let stored = store.get_record(&h.tenant, Provider::Zoho, "org-race", PEntity::Contact, "c-5").await.unwrap().unwrap();
    assert_eq!(stored.status.as_deref(), Some(top_status.as_str()), "the highest version is the stored copy");
}

/// QuickBooks numbers every change of a record (SyncToken): within one second, a copy with a lower
/// number is an older copy read late and is not stored over the newer one; a higher one is stored
/// and announced after it.
#[tokio::test]
async fn quickbooks_sync_tokens_order_copies_within_one_second() {
    let h = harness().await;
    let store = h.store();
    let second = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let t = second.timestamp_millis();
    let third = live_copy(Provider::QuickBooks, "realm-second", "7", Some(second), "sent", "3");
    let w = store.put_records(&h.tenant, &[(third, Some("{}".into()))], "job-webhook", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, t), "{w:?}");

    let second_change = live_copy(Provider::QuickBooks, "realm-second", "7", Some(second), "draft", "2");
    let w = store.put_records(&h.tenant, &[(second_change, Some("{}".into()))], "job-pull", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.stale, w.changes.len()), (0, 1, 0), "{w:?}");
    let stored = store.get_record(&h.tenant, Provider::QuickBooks, "realm-second", PEntity::Contact, "7").await.unwrap().unwrap();
    assert_eq!((stored.status.as_deref(), stored.version.as_deref()), (Some("sent"), Some("3")));

    let fourth = live_copy(Provider::QuickBooks, "realm-second", "7", Some(second), "paid", "4");
    let w = store.put_records(&h.tenant, &[(fourth, Some("{}".into()))], "job-webhook-2", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, t + 1), "{w:?}");
}

/// A record the provider gives no updated time is announced at the time we store it; a worker
/// whose clock is behind the last writer's still announces its change after the last one.
#[tokio::test]
async fn a_change_stored_by_a_clock_behind_is_announced_after_the_last() {
    let h = harness().await;
    let store = h.store();
    let ahead = Utc::now() + Duration::seconds(5);
    let first = live_copy(Provider::Xero, "org-clock", "c-9", None, "active", "v");
    let w = store.put_records(&h.tenant, &[(first, Some("{}".into()))], "job-ahead", ahead).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, ahead.timestamp_millis()), "{w:?}");
    let next = live_copy(Provider::Xero, "org-clock", "c-9", None, "archived", "v");
    let w = store.put_records(&h.tenant, &[(next, Some("{}".into()))], "job-behind", Utc::now()).await.unwrap();
    assert_eq!((w.written, w.changes[0].version), (1, ahead.timestamp_millis() + 1), "{w:?}");
}

#[tokio::test]
async fn quickbooks_writes_in_the_common_model() {
    Box::pin(writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_writes_in_the_common_model() {
    Box::pin(writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_writes_in_the_common_model() {
    Box::pin(writes_case(Provider::Zoho)).await;
}

/// A change whose provider call times out at the client but lands at the provider is retried; the
/// retry recognises its own change (QuickBooks requestid and Xero Idempotency-Key replay it; Zoho
/// finds the write's reference on the record) instead of calling it a conflict or sending it twice.
async fn change_after_timeout(provider: Provider) {
    let h = harness().await;
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 1), ("account", 5)]).await;
    let contacts = seeded.remove("contact").unwrap();
    h.connect(provider, &org).await;
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Contact)).await;
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    let accounts = h.store().list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let code = accounts.iter().find_map(|a| a.number.clone()).unwrap();
    let r = h
        .write(
            provider,
            &org,
            Entity::Invoice,
            json!({"action": "create", "requested_by": WRITER, "record": invoice_record(provider, &contacts[0], &code)}),
        )
        .await;
    let (id, version) = (r["provider_id"].as_str().unwrap().to_string(), r["version"].as_str().unwrap().to_string());
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    h.control("POST", "config", Some(json!({"timeout_fault_seconds": 3}))).await;
    let (path, method) = match provider {
        Provider::QuickBooks => (format!("/quickbooks/v3/company/{org}/invoice"), "POST"),
        Provider::Xero => (format!("/xero/api.xro/2.0/Invoices/{id}"), "POST"),
        Provider::Zoho => (format!("/zoho/api/us/books/v3/invoices/{id}"), "PUT"),
    };
    // Every attempt of the first run times out (the guard's own retries too), so the job's retry
    // is what finds the change at the provider.
    h.control(
        "POST",
        "faults",
        Some(json!({"provider": sandbox_name(provider), "path_prefix": path, "method": method, "kind": "timeout", "count": 6})),
    )
    .await;
    let mut job = h.job(provider, &org, Operation::Push, Entity::Invoice);
    job.idempotency_key = unique("write");
    let request =
        json!({"action": "update", "requested_by": WRITER, "provider_id": id, "version": version, "record": {"due_date": "2027-03-31"}});
    h.send(&[write_body(&job, request)]).await;
    let first = h.pump(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(1)), 1).await;
    match first[0].1 {
        Disposition::Done => {}
        Disposition::Retry { .. } => {
            // The held request finishes at the provider; then the message comes back.
            tokio::time::sleep(StdDuration::from_secs(4)).await;
            done_result(&h.pump_until_any(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(5))).await);
        }
        _ => panic!("{provider}: {first:?}"),
    }
    let (_, r) = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap();
    let r = r.unwrap();
    assert!(matches!(r["outcome"].as_str(), Some("applied" | "already_applied")), "{provider}: {r}");
    if matches!(first[0].1, Disposition::Retry { .. }) {
        // QuickBooks and Xero answer the resent change with their first answer; Zoho's record
        // carries the write's reference, so the retry sends nothing.
        let want = if provider == Provider::Zoho { "already_applied" } else { "applied" };
        assert_eq!(r["outcome"], want, "{provider}: {r}");
    }
    let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Invoice, &id).await.unwrap().unwrap();
    assert_eq!(stored.due_date.map(|d| d.to_string()).as_deref(), Some("2027-03-31"), "{provider}");
    let at_provider = h.sandbox_record(provider, &org, "invoice", &id).await;
    assert!(at_provider.to_string().contains("2027-03-31"), "{provider}: {at_provider}");
}

#[tokio::test]
async fn quickbooks_change_retried_after_a_timeout_is_recognised() {
    Box::pin(change_after_timeout(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_change_retried_after_a_timeout_is_recognised() {
    Box::pin(change_after_timeout(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_change_retried_after_a_timeout_is_recognised() {
    Box::pin(change_after_timeout(Provider::Zoho)).await;
}

/// Marks every stored record of `entity` as written an hour ago, so a full pass may take the ones
/// the provider no longer lists for gone (it never does so for a record written around its start).
async fn backdate_all(h: &H, provider: Provider, org: &str, entity: PEntity) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let stored = h.store().list_records(&h.tenant, provider, org, entity).await.unwrap();
    for s in stored {
        h.env
            .clients
            .dynamodb
            .update_item()
            .table_name(&h.env.config.tables.sync)
            .key("pk", A::S(shared::store::tenant_pk(&h.tenant)))
            .key("sk", A::S(shared::sync::store::record_sk(provider, org, entity, &s.provider_id)))
            .update_expression("SET synced_at = :t")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":t", A::S((Utc::now() - Duration::hours(1)).to_rfc3339()))
            .send()
            .await
            .unwrap();
    }
}

/// Credit notes of every provider, sales and purchase in one entity: a full pull stores each with
/// its kind, contact, total and the credit left equal to the sandbox's; what a credit was applied
/// to (Xero Allocations; Zoho's on the single record) is the sandbox's, names seeded invoices and
/// bills, and adds up with the credit left to the total; on Xero an invoice's amount due plus the
/// credits applied to it is its total. An incremental pull takes only the new ones; a deletion
/// reaches the copy the way the provider reports it (QuickBooks CDC, Xero's DELETED status, Zoho:
/// gone from the list, found by a full pass).
async fn credit_notes_case(provider: Provider) {
    use shared::books::DocumentKind as K;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    for e in [Entity::CreditNote, Entity::Bill] {
        if !t.config.enabled_entities.contains(&e) {
            t.config.enabled_entities.push(e);
        }
    }
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, mut seeded) =
        sandbox_control::make_org(&h.http, &h.sb, provider, &[("invoice", 6), ("bill", 6), ("credit_note", 8), ("vendor_credit", 7)]).await;
    let sales: Vec<String> = seeded.remove("credit_note").unwrap();
    let purchase: Vec<String> = seeded.remove("vendor_credit").unwrap();
    // The scopes the connect flow asks for this tenant (Zoho's credit note and vendor credit
    // modules have their own, asked for because the tenant enabled credit notes).
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    if provider == Provider::Zoho {
        assert!(scopes.iter().any(|s| s == "ZohoBooks.debitnotes.ALL"), "{scopes:?}");
    }
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    let pull = |h: &H| h.job(provider, &org, Operation::Pull, Entity::CreditNote);
    let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(r["counts"]["written"], 15, "{provider}: {r}");

    let sandbox_of = |e: &'static str| {
        let (http, sb, org) = (h.http.clone(), &h.sb, org.clone());
        async move {
            let v = sandbox_control::control(
                &http,
                sb,
                "GET",
                &format!("records?provider={}&org_id={org}&entity={e}", sandbox_name(provider)),
                None,
            )
            .await;
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["id"].as_str().unwrap().to_string(), r["value"].clone()))
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    let mut sandbox = sandbox_of("credit_note").await;
    sandbox.extend(sandbox_of("vendor_credit").await);
    let (total_key, left_key) = match provider {
        Provider::QuickBooks => ("TotalAmt", "Balance"),
        Provider::Xero => ("Total", "RemainingCredit"),
        Provider::Zoho => ("total", "balance"),
    };
    let cents = |v: &Value| shared::money::parse_minor(&v.to_string(), 2).unwrap();
    let invoices = seeded.remove("invoice").unwrap();
    let bills = seeded.remove("bill").unwrap();
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::CreditNote).await.unwrap();
    assert_eq!(stored.len(), 15, "{provider}");
    let mut applied_to: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for s in &stored {
        let d = s.document.as_ref().expect("a credit note has a document");
        let want = &sandbox[&s.provider_id];
        let kind = if sales.contains(&s.provider_id) { K::SalesCredit } else { K::PurchaseCredit };
        assert!(kind == K::SalesCredit || purchase.contains(&s.provider_id), "{provider}: {} was seeded", s.provider_id);
        assert_eq!(d.kind, kind, "{provider} {}", s.provider_id);
        let contact = d.contact.as_ref().and_then(|c| c.id.clone());
        assert!(contact.is_some() && contact == s.contact_id, "{provider}: the customer or supplier is the contact: {d:?}");
        let total = d.total.as_ref().unwrap().minor;
        assert_eq!(total, cents(&want[total_key]), "{provider} {}: the provider's total", s.provider_id);
        let left = d.amount_due.as_ref().map(|m| m.minor);
        assert_eq!(left, Some(cents(&want[left_key])), "{provider} {}: the credit left", s.provider_id);
        let allocated: i64 = d.allocations.iter().map(|a| a.amount.as_ref().unwrap().minor).sum();
        match provider {
            // QuickBooks applies credits through payments: none on the credit note.
            Provider::QuickBooks => assert!(d.allocations.is_empty()),
            // Zoho's list summaries carry neither lines nor applications.
            Provider::Zoho => assert!(d.allocations.is_empty() && !d.lines_complete, "{provider}: {d:?}"),
            Provider::Xero => {
                let want: Vec<(String, i64)> = want["Allocations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["Invoice"]["InvoiceID"].as_str().unwrap().to_string(), cents(&a["Amount"])))
                    .collect();
                let got: Vec<(String, i64)> = d
                    .allocations
                    .iter()
                    .map(|a| (a.document.as_ref().unwrap().id.clone().unwrap(), a.amount.as_ref().unwrap().minor))
                    .collect();
                assert_eq!(got, want, "{provider} {}", s.provider_id);
                for (doc, amount) in got {
                    let seeded_kind = if kind == K::SalesCredit { &invoices } else { &bills };
                    assert!(seeded_kind.contains(&doc), "{provider}: applied to a seeded document: {doc}");
                    *applied_to.entry(doc).or_default() += amount;
                }
                assert_eq!(allocated + left.unwrap(), total, "{provider} {}: applied and left make the total", s.provider_id);
            }
        }
    }
    if provider == Provider::Xero {
        assert!(!applied_to.is_empty(), "some credit was applied");
        // The documents the credits were applied to owe their total less what was applied.
        for e in [Entity::Invoice, Entity::Bill] {
            h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
            for doc in h.store().list_records(&h.tenant, provider, &org, e.model()).await.unwrap() {
                let d = doc.document.unwrap();
                let credited = applied_to.get(&doc.provider_id).copied().unwrap_or(0);
                assert_eq!(d.amount_due.unwrap().minor + credited, d.total.unwrap().minor, "{e:?} {}", doc.provider_id);
            }
        }
    }
    if provider == Provider::Zoho {
        // A read of the one record (a webhook's) brings its lines and applications; a vendor
        // credit is found in the second module.
        for id in [&sales[0], &purchase[0]] {
            let mut job = h.job(provider, &org, Operation::Webhook, Entity::CreditNote);
            job.entity_id = Some(id.clone());
            job.change = Some(shared::jobs::Change::Updated);
            h.run_through_queue(&h.deps(), &job).await;
            let one = h.store().get_record(&h.tenant, provider, &org, PEntity::CreditNote, id).await.unwrap().unwrap();
            let d = one.document.unwrap();
            assert!(d.lines_complete && !d.lines.is_empty(), "{d:?}");
            let list = if id == &sales[0] { "invoices_credited" } else { "bills_credited" };
            let want: Vec<String> = sandbox[id][list]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a[if id == &sales[0] { "invoice_id" } else { "bill_id" }].as_str().unwrap().to_string())
                .collect();
            let got: Vec<String> = d.allocations.iter().map(|a| a.document.as_ref().unwrap().id.clone().unwrap()).collect();
            assert_eq!(got, want);
            assert!(!got.is_empty(), "the sandbox applies every generated credit while documents are open");
            let allocated: i64 = d.allocations.iter().map(|a| a.amount.as_ref().unwrap().minor).sum();
            assert_eq!(allocated + d.amount_due.unwrap().minor, d.total.unwrap().minor);
        }
    }

    // Incremental: only the new ones, of both kinds.
    h.seed(provider, &org, "credit_note", 2).await;
    h.seed(provider, &org, "vendor_credit", 1).await;
    let inc = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(inc["counts"]["written"], 3, "{provider}: {inc}");

    // Deletion, the way each provider reports it.
    let gone = [sales[1].clone(), purchase[1].clone()];
    match provider {
        Provider::QuickBooks => {
            for (e, id) in [("credit_note", &gone[0]), ("vendor_credit", &gone[1])] {
                let out = h
                    .control("POST", "records/delete", Some(json!({"provider": "quickbooks", "org_id": org, "entity": e, "ids": [id]})))
                    .await;
                assert_eq!(out["deleted"], 1);
            }
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["deleted"], 2, "CDC reports both kinds: {r}");
        }
        Provider::Xero => {
            // Xero keeps a deleted credit note, with its status DELETED (a voided one VOIDED).
            for (id, status) in [(&gone[0], "DELETED"), (&gone[1], "VOIDED")] {
                let mut v = sandbox[id].clone();
                v["Status"] = json!(status);
                let e = if id == &gone[0] { "credit_note" } else { "vendor_credit" };
                h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": e, "records": [v]}))).await;
            }
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["written"], 2, "{r}");
            let voided = h.store().get_record(&h.tenant, provider, &org, PEntity::CreditNote, &gone[1]).await.unwrap().unwrap();
            assert_eq!(voided.document.unwrap().status, shared::books::DocumentStatus::Void);
        }
        Provider::Zoho => {
            for (e, id) in [("credit_note", &gone[0]), ("vendor_credit", &gone[1])] {
                h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": e, "ids": [id]}))).await;
            }
            backdate_all(&h, provider, &org, PEntity::CreditNote).await;
            let mut full = pull(&h);
            full.cursor = Some("full".into());
            let r = h.run_through_queue(&h.deps(), &full).await;
            assert_eq!((r["counts"]["reconciled"].as_u64(), r["counts"]["deleted"].as_u64()), (Some(2), Some(2)), "{r}");
        }
    }
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::CreditNote).await.unwrap();
    let mut deleted: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
    deleted.sort();
    let mut want: Vec<&str> = if provider == Provider::Xero { vec![gone[0].as_str()] } else { gone.iter().map(String::as_str).collect() };
    want.sort();
    assert_eq!(deleted, want, "{provider}");
    assert_eq!(stored.len(), 18, "{provider}: tombstones, not removals");
}

#[tokio::test]
async fn quickbooks_credit_notes_with_allocations() {
    Box::pin(credit_notes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_credit_notes_with_allocations() {
    Box::pin(credit_notes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_credit_notes_with_allocations() {
    Box::pin(credit_notes_case(Provider::Zoho)).await;
}

/// Payments made (`bill_payment`) of every provider: a full pull stores each with direction made,
/// the supplier, the amount and the bill it paid equal to the sandbox's (Zoho's list summaries
/// leave the bills out; a read of the one payment brings them), and the bill owes nothing after;
/// payments received stay apart (Xero keeps both in one collection); an incremental pull takes
/// only the new ones; a deletion reaches the copy the way the provider reports it.
async fn bill_payments_case(provider: Provider) {
    use shared::books::PaymentDirection as D;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    for e in [Entity::BillPayment, Entity::Bill, Entity::Payment] {
        if !t.config.enabled_entities.contains(&e) {
            t.config.enabled_entities.push(e);
        }
    }
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("bill", 5), ("payment", 4), ("bill_payment", 8)]).await;
    let made = seeded.remove("bill_payment").unwrap();
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    let pull = |h: &H| h.job(provider, &org, Operation::Pull, Entity::BillPayment);
    let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(r["counts"]["written"], 8, "{provider}: {r}");

    let sandbox = h.control("GET", &format!("records?provider={}&org_id={org}&entity=bill_payment", sandbox_name(provider)), None).await;
    let sandbox: std::collections::HashMap<String, Value> =
        sandbox["records"].as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["value"].clone())).collect();
    let bills = h.control("GET", &format!("records?provider={}&org_id={org}&entity=bill", sandbox_name(provider)), None).await;
    let bill_totals: std::collections::HashMap<String, Value> = bills["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["value"][if provider == Provider::QuickBooks {
                    "TotalAmt"
                } else if provider == Provider::Xero {
                    "Total"
                } else {
                    "total"
                }]
                .clone(),
            )
        })
        .collect();
    let cents = |v: &Value| shared::money::parse_minor(&v.to_string(), 2).unwrap();
    let (amount_key, bill_of): (&str, fn(&Value) -> String) = match provider {
        Provider::QuickBooks => ("TotalAmt", |v| v["Line"][0]["LinkedTxn"][0]["TxnId"].as_str().unwrap().to_string()),
        Provider::Xero => ("Amount", |v| v["Invoice"]["InvoiceID"].as_str().unwrap().to_string()),
        Provider::Zoho => ("amount", |v| v["bills"][0]["bill_id"].as_str().unwrap().to_string()),
    };
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::BillPayment).await.unwrap();
    assert_eq!(stored.len(), 8);
    for s in &stored {
        assert!(made.contains(&s.provider_id), "{provider}: {} was seeded as a payment made", s.provider_id);
        let p = s.payment.as_ref().expect("a payment");
        let want = &sandbox[&s.provider_id];
        assert_eq!(p.direction, D::Made);
        let amount = p.amount.as_ref().unwrap().minor;
        assert_eq!(amount, cents(&want[amount_key]), "{provider} {}", s.provider_id);
        let contact = p.contact.as_ref().and_then(|c| c.id.clone());
        assert!(contact.is_some() && contact == s.contact_id, "{provider}: the supplier is the contact: {p:?}");
        assert!(p.bank_account.as_ref().and_then(|a| a.id.as_ref()).is_some(), "{provider}: {p:?}");
        if provider == Provider::Zoho {
            assert!(p.applied_to.is_empty(), "Zoho's list summaries leave the bills out");
            continue;
        }
        let bill = bill_of(want);
        assert_eq!(p.applied_to.len(), 1, "{provider}: {p:?}");
        let a = &p.applied_to[0];
        assert_eq!(a.document.as_ref().and_then(|d| d.id.as_deref()), Some(bill.as_str()));
        assert_eq!(a.amount.as_ref().map(|m| m.minor), Some(cents(&bill_totals[&bill])), "{provider}: the bill paid in full");
    }
    // The bills paid owe nothing; payments received are not payments made.
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Bill)).await;
    let paid: HashSet<String> = sandbox.values().map(bill_of).collect();
    for b in h.store().list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap() {
        let due = b.document.unwrap().amount_due.unwrap().minor;
        assert_eq!(due == 0, paid.contains(&b.provider_id), "{provider}: bill {} owes {due}", b.provider_id);
    }
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Payment)).await;
    assert_eq!(r["counts"]["written"], 4, "{provider}: payments received only: {r}");
    let received = h.store().list_records(&h.tenant, provider, &org, PEntity::Payment).await.unwrap();
    assert!(received.iter().all(|p| p.payment.as_ref().unwrap().direction == D::Received));
    if provider == Provider::Zoho {
        // The one payment read by id (as a webhook's job reads it) names the bill it paid.
        let mut job = h.job(provider, &org, Operation::Webhook, Entity::BillPayment);
        job.entity_id = Some(made[0].clone());
        job.change = Some(shared::jobs::Change::Updated);
        h.run_through_queue(&h.deps(), &job).await;
        let one = h.store().get_record(&h.tenant, provider, &org, PEntity::BillPayment, &made[0]).await.unwrap().unwrap();
        let p = one.payment.unwrap();
        let bill = bill_of(&sandbox[&made[0]]);
        assert_eq!(p.applied_to.len(), 1);
        assert_eq!(p.applied_to[0].document.as_ref().and_then(|d| d.id.as_deref()), Some(bill.as_str()));
        assert_eq!(p.applied_to[0].amount.as_ref().map(|m| m.minor), Some(cents(&bill_totals[&bill])));
    }

    // Incremental: only the new ones.
    h.seed(provider, &org, "bill_payment", 2).await;
    let inc = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(inc["counts"]["written"], 2, "{provider}: {inc}");

    // Deletion, the way each provider reports it.
    let gone = made[1].clone();
    match provider {
        Provider::QuickBooks => {
            h.control(
                "POST",
                "records/delete",
                Some(json!({"provider": "quickbooks", "org_id": org, "entity": "bill_payment", "ids": [gone]})),
            )
            .await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["deleted"], 1, "CDC reports it: {r}");
        }
        Provider::Xero => {
            // A deleted Xero payment stays listed with its status DELETED.
            let mut v = sandbox[&gone].clone();
            v["Status"] = json!("DELETED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "bill_payment", "records": [v]}))).await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["written"], 1, "{r}");
        }
        Provider::Zoho => {
            h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": "bill_payment", "ids": [gone]})))
                .await;
            backdate_all(&h, provider, &org, PEntity::BillPayment).await;
            let mut full = pull(&h);
            full.cursor = Some("full".into());
            let r = h.run_through_queue(&h.deps(), &full).await;
            assert_eq!((r["counts"]["reconciled"].as_u64(), r["counts"]["deleted"].as_u64()), (Some(1), Some(1)), "{r}");
        }
    }
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::BillPayment).await.unwrap();
    let deleted: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
    assert_eq!(deleted, vec![gone.as_str()], "{provider}");
    assert_eq!(stored.len(), 10);
}

#[tokio::test]
async fn quickbooks_bill_payments_with_what_they_paid() {
    Box::pin(bill_payments_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bill_payments_with_what_they_paid() {
    Box::pin(bill_payments_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bill_payments_with_what_they_paid() {
    Box::pin(bill_payments_case(Provider::Zoho)).await;
}

/// A payment received, written in the common model: checked against the stored invoice (the
/// customer's, owing at least what is applied) before any call, recorded at the provider (the
/// invoice owes less), then deleted (the invoice owes again).
async fn payment_writes_case(provider: Provider) {
    let h = harness().await;
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 1), ("account", 5), ("invoice", 2)]).await;
    let contact = seeded.remove("contact").unwrap().remove(0);
    h.connect(provider, &org).await;
    for e in [Entity::Contact, Entity::Account, Entity::Invoice] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let accounts = h.store().list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let bank = accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Business Bank"))).expect("the bank account");
    let invoices = h.store().list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap();
    let inv = invoices.iter().find(|i| i.contact_id.as_deref() == Some(contact.as_str())).expect("an invoice of the contact");
    let due = inv.document.as_ref().unwrap().amount_due.as_ref().unwrap().minor;
    assert!(due > 100, "{provider}: the seeded invoice owes something");
    let pay = |amount: i64| {
        json!({"action": "create", "requested_by": WRITER, "record": {
            "contact": {"id": contact}, "date": "2026-12-01", "amount": amount, "account": {"id": bank.provider_id},
            "applied_to": [{"document": {"id": inv.provider_id}, "amount": amount}]}})
    };
    h.control("DELETE", "counters", None).await;
    let r = h.write(provider, &org, Entity::Payment, pay(due + 1)).await;
    assert_eq!(r["code"], "validation_failed", "{provider}: {r}");
    assert_eq!(r["problems"][0]["code"], "exceeds_amount_due", "{provider}: {r}");
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: an overpayment costs no call");

    let part = due / 2;
    let r = h.write(provider, &org, Entity::Payment, pay(part)).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let pid = r["provider_id"].as_str().unwrap().to_string();
    let stored = h.store().get_record(&h.tenant, provider, &org, PEntity::Payment, &pid).await.unwrap().expect("stored");
    assert_eq!(stored.amount.as_ref().map(|m| m.minor), Some(part), "{provider}");
    let owed = |v: &Value| -> i64 {
        let field = match provider {
            Provider::QuickBooks => "Balance",
            Provider::Xero => "AmountDue",
            Provider::Zoho => "balance",
        };
        shared::money::parse_minor(&v["value"][field].to_string(), 2).unwrap()
    };
    let at = h.sandbox_record(provider, &org, "invoice", &inv.provider_id).await;
    assert_eq!(owed(&at), due - part, "{provider}: the invoice owes less: {at}");

    let version = r["version"].as_str().unwrap().to_string();
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let r = h
        .write(provider, &org, Entity::Payment, json!({"action": "delete", "requested_by": ADMIN, "provider_id": pid, "version": version}))
        .await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let gone = h.store().get_record(&h.tenant, provider, &org, PEntity::Payment, &pid).await.unwrap().unwrap();
    assert!(gone.deleted, "{provider}: {gone:?}");
    let at = h.sandbox_record(provider, &org, "invoice", &inv.provider_id).await;
    assert_eq!(owed(&at), due, "{provider}: the invoice owes it again: {at}");
}

#[tokio::test]
async fn quickbooks_payment_writes() {
    Box::pin(payment_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_payment_writes() {
    Box::pin(payment_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_payment_writes() {
    Box::pin(payment_writes_case(Provider::Zoho)).await;
}

/// A payment made (`bill_payment`), written in the common model: refused before any call when it
/// pays more than the bill owes, names an invoice instead of a bill, or pays a customer; recorded
/// at the provider from the bank account (the bill owes less; the stored copy is a payment made);
/// a retry of the same job does not pay twice; then deleted (the bill owes it again).
async fn bill_payment_writes_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Bill, Entity::BillPayment]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) =
        sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 2), ("account", 5), ("invoice", 1), ("bill", 2)]).await;
    // Zoho's vendor payments are a scope module of their own: asked for because the tenant enabled them.
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    for e in [Entity::Contact, Entity::Account, Entity::Invoice, Entity::Bill] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let store = h.store();
    let bills = store.list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap();
    let bill = bills
        .iter()
        .find(|b| {
            let d = b.document.as_ref().unwrap();
            d.status == shared::books::DocumentStatus::Open && d.amount_due.as_ref().is_some_and(|m| m.minor > 100)
        })
        .expect("an open bill that owes something");
    let due = bill.document.as_ref().unwrap().amount_due.as_ref().unwrap().minor;
    let supplier = bill.contact_id.clone().expect("the bill's supplier");
    let contacts = store.list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
    let customer = contacts
        .iter()
        .find(|c| c.contact.as_ref().is_some_and(|k| k.is_customer && !k.is_supplier))
        .expect("a customer")
        .provider_id
        .clone();
    let invoice = store.list_records(&h.tenant, provider, &org, PEntity::Invoice).await.unwrap().remove(0).provider_id;
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let bank = accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Business Bank"))).expect("the bank account");
    let pay = |contact: &str, document: &str, amount: i64| {
        json!({"action": "create", "requested_by": WRITER, "record": {
            "contact": {"id": contact}, "date": "2026-12-01", "amount": amount, "account": {"id": bank.provider_id},
            "reference": "Cheque 1042", "applied_to": [{"document": {"id": document}, "amount": amount}]}})
    };
    h.control("DELETE", "counters", None).await;
    for (request, field, code) in [
        (pay(&supplier, &bill.provider_id, due + 1), "record.applied_to[0].amount", "exceeds_amount_due"),
        (pay(&supplier, &invoice, 100), "record.applied_to[0].document.id", "unknown_document"),
        (pay(&customer, &bill.provider_id, 100), "record.contact.id", "wrong_contact_role"),
    ] {
        let r = h.write(provider, &org, Entity::BillPayment, request).await;
        assert_eq!(r["code"], "validation_failed", "{provider}: {r}");
        let found: Vec<(&str, &str)> =
            r["problems"].as_array().unwrap().iter().map(|p| (p["field"].as_str().unwrap(), p["code"].as_str().unwrap())).collect();
        assert!(found.contains(&(field, code)), "{provider}: {code} expected in {r}");
    }
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: refused before any call");

    let owed = |v: &Value| -> i64 {
        let field = match provider {
            Provider::QuickBooks => "Balance",
            Provider::Xero => "AmountDue",
            Provider::Zoho => "balance",
        };
        shared::money::parse_minor(&v["value"][field].to_string(), 2).unwrap()
    };
    let part = due / 2;
    let mut job = h.job(provider, &org, Operation::Push, Entity::BillPayment);
    job.idempotency_key = unique("bill-payment");
    h.send(&[write_body(&job, pay(&supplier, &bill.provider_id, part))]).await;
    done_result(&h.pump(&h.deps(), 1).await);
    let r = h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap().1.unwrap();
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let pid = r["provider_id"].as_str().unwrap().to_string();
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::BillPayment, &pid).await.unwrap().expect("stored");
    let p = stored.payment.as_ref().expect("a payment part");
    assert_eq!(p.direction, shared::books::PaymentDirection::Made, "{provider}");
    assert_eq!(p.amount.as_ref().map(|m| m.minor), Some(part), "{provider}");
    assert_eq!(stored.contact_id.as_deref(), Some(supplier.as_str()), "{provider}");
    assert_eq!(p.bank_account.as_ref().and_then(|a| a.id.as_deref()), Some(bank.provider_id.as_str()), "{provider}: {p:?}");
    let at = h.sandbox_record(provider, &org, "bill", &bill.provider_id).await;
    assert_eq!(owed(&at), due - part, "{provider}: the bill owes less: {at}");

    // The same job again (its message redelivered): recognised, not paid twice.
    h.send(&[write_body(&job, pay(&supplier, &bill.provider_id, part))]).await;
    h.pump(&h.deps(), 1).await;
    let at = h.sandbox_record(provider, &org, "bill", &bill.provider_id).await;
    assert_eq!(owed(&at), due - part, "{provider}: paid once: {at}");
    let made = sandbox_records(&h, provider, &org, "bill_payment").await;
    assert_eq!(made.iter().filter(|m| m["deleted"] != json!(true)).count(), 1, "{provider}: one payment made");

    let mut version = r["version"].as_str().unwrap().to_string();
    // Its reference is edited in place where the provider allows it (Xero does not: refused before
    // any call); what it pays is not (delete and record again).
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let edit = |record: Value, version: &str| json!({"action": "update", "requested_by": WRITER, "provider_id": pid, "version": version, "record": record});
    let r = h.write(provider, &org, Entity::BillPayment, edit(json!({"amount": 1}), &version)).await;
    assert_eq!(
        (r["code"].as_str(), r["problems"][0]["code"].as_str()),
        (Some("validation_failed"), Some("unsupported")),
        "{provider}: {r}"
    );
    let r = h.write(provider, &org, Entity::BillPayment, edit(json!({"reference": "Cheque 1043"}), &version)).await;
    if provider == Provider::Xero {
        assert_eq!(r["problems"][0]["field"], "action", "{provider}: {r}");
    } else {
        assert_eq!(r["outcome"], "applied", "{provider}: {r}");
        let at = h.sandbox_record(provider, &org, "bill_payment", &pid).await;
        let field = if provider == Provider::QuickBooks { "DocNumber" } else { "reference_number" };
        assert_eq!(at["value"][field], "Cheque 1043", "{provider}: {at}");
        version = r["version"].as_str().unwrap().to_string();
        let at = h.sandbox_record(provider, &org, "bill", &bill.provider_id).await;
        assert_eq!(owed(&at), due - part, "{provider}: an edited reference leaves the bill as it was: {at}");
    }
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    // QuickBooks voids a payment (it stays, at zero); the others delete it. Either way the bill owes
    // it again.
    let action = if provider == Provider::QuickBooks { "void" } else { "delete" };
    let r = h
        .write(
            provider,
            &org,
            Entity::BillPayment,
            json!({"action": action, "requested_by": ADMIN, "provider_id": pid, "version": version}),
        )
        .await;
    assert_eq!(r["outcome"], "applied", "{provider} {action}: {r}");
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::BillPayment, &pid).await.unwrap().unwrap();
    if provider == Provider::QuickBooks {
        assert!(!stored.deleted, "a void keeps the payment");
        assert_eq!(stored.payment.as_ref().and_then(|p| p.amount.as_ref()).map(|m| m.minor), Some(0), "{stored:?}");
    } else {
        assert!(stored.deleted, "{provider}");
    }
    let at = h.sandbox_record(provider, &org, "bill", &bill.provider_id).await;
    assert_eq!(owed(&at), due, "{provider}: the bill owes it again: {at}");
    // Every event it sent satisfies the published contract (the write events name this entity).
    let events = h.events().await;
    assert!(events.iter().any(|e| e.event_type.as_str() == "write.completed"), "{provider}: {events:?}");
}

#[tokio::test]
async fn quickbooks_bill_payment_writes() {
    Box::pin(bill_payment_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bill_payment_writes() {
    Box::pin(bill_payment_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bill_payment_writes() {
    Box::pin(bill_payment_writes_case(Provider::Zoho)).await;
}

/// Credit notes written in the common model, a customer's and a supplier's: a credit note without
/// its kind, or a supplier's credit for a customer, is refused before any call; each is made in the
/// provider's own collection (QuickBooks CreditMemo or VendorCredit, Xero CreditNotes by Type, Zoho
/// creditnotes or vendorcredits) with the totals the sandbox computes; the supplier's credit is
/// updated at its version (its lines replaced), then voided (Xero, Zoho) or deleted (QuickBooks).
async fn credit_note_writes_case(provider: Provider) {
    use shared::books::DocumentKind as K;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Bill, Entity::CreditNote]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 2), ("account", 5), ("bill", 1)]).await;
    // Zoho's vendor credits are the `debitnotes` scope module: asked for because the tenant enabled credit notes.
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    for e in [Entity::Contact, Entity::Account, Entity::Bill] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let store = h.store();
    let supplier = store.list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap().remove(0).contact_id.expect("a supplier");
    let contacts = store.list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
    let customer = contacts
        .iter()
        .find(|c| c.contact.as_ref().is_some_and(|k| k.is_customer && !k.is_supplier))
        .expect("a customer")
        .provider_id
        .clone();
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let expense =
        accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Office Expenses"))).expect("an expense account");
    let sales = accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Sales"))).expect("a sales account");
    let credit = |kind: Option<&str>, contact: &str| {
        let account = if kind == Some("sales") { &sales.provider_id } else { &expense.provider_id };
        let mut line = json!({"description": "Returned goods", "quantity": "3", "unit_price": "15.00", "account": {"id": account}});
        if provider == Provider::QuickBooks && kind == Some("sales") {
            // QuickBooks sales lines take their account from the item.
            line.as_object_mut().unwrap().remove("account");
        }
        let mut record =
            json!({"contact": {"id": contact}, "issue_date": "2026-12-02", "reference": "RMA-7", "lines": [line], "subtotal": 4500});
        if let Some(k) = kind {
            record["kind"] = json!(k);
        }
        if provider == Provider::QuickBooks {
            // QuickBooks has no reference field on these documents.
            record.as_object_mut().unwrap().remove("reference");
        }
        if provider == Provider::Xero && kind == Some("purchase") {
            // Approved, so it can be voided.
            record["status"] = json!("open");
        }
        json!({"action": "create", "requested_by": WRITER, "record": record})
    };
    h.control("DELETE", "counters", None).await;
    let r = h.write(provider, &org, Entity::CreditNote, credit(None, &supplier)).await;
    assert_eq!(
        (r["code"].as_str(), r["problems"][0]["field"].as_str()),
        (Some("validation_failed"), Some("record.kind")),
        "{provider}: {r}"
    );
    let r = h.write(provider, &org, Entity::CreditNote, credit(Some("purchase"), &customer)).await;
    assert_eq!(r["problems"][0]["code"], "wrong_contact_role", "{provider}: {r}");
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: refused before any call");

    // Where each lands at the provider, and its totals as the sandbox made them.
    let total_of = |v: &Value| -> i64 {
        let field = match provider {
            Provider::QuickBooks => "TotalAmt",
            Provider::Xero => "Total",
            Provider::Zoho => "total",
        };
        shared::money::parse_minor(&v["value"][field].to_string(), 2).unwrap()
    };
    let mut made = Vec::new();
    for (kind, contact, want, home) in
        [("purchase", &supplier, K::PurchaseCredit, "vendor_credit"), ("sales", &customer, K::SalesCredit, "credit_note")]
    {
        let r = h.write(provider, &org, Entity::CreditNote, credit(Some(kind), contact)).await;
        assert_eq!(r["outcome"], "applied", "{provider} {kind}: {r}");
        let id = r["provider_id"].as_str().unwrap().to_string();
        let at = h.sandbox_record(provider, &org, home, &id).await;
        assert!(at.is_object(), "{provider}: a {kind} credit is in the sandbox's {home}");
        let stored = store.get_record(&h.tenant, provider, &org, PEntity::CreditNote, &id).await.unwrap().expect("stored");
        let doc = stored.document.as_ref().expect("a document");
        assert_eq!(doc.kind, want, "{provider} {kind}");
        assert_eq!(stored.contact_id.as_deref(), Some(contact.as_str()), "{provider} {kind}");
        assert_eq!(doc.total.as_ref().map(|m| m.minor), Some(total_of(&at)), "{provider} {kind}: the sandbox's total");
        assert_eq!(doc.subtotal.as_ref().map(|m| m.minor), Some(4500), "{provider} {kind}");
        made.push((id, r["version"].as_str().unwrap().to_string(), home));
    }

    // The supplier's credit, changed at its version: its collection is the stored copy's.
    let (id, version, home) = made.swap_remove(0);
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let update = json!({"action": "update", "requested_by": WRITER, "provider_id": id, "version": version, "record": {
        "lines": [{"description": "Returned goods", "quantity": "5", "unit_price": "15.00", "account": {"id": expense.provider_id}}], "subtotal": 7500}});
    let r = h.write(provider, &org, Entity::CreditNote, update.clone()).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::CreditNote, &id).await.unwrap().unwrap();
    assert_eq!(stored.document.as_ref().unwrap().subtotal.as_ref().map(|m| m.minor), Some(7500), "{provider}");
    let version = r["version"].as_str().unwrap().to_string();
    // The old version again is a conflict, and writes nothing.
    let stale = h.write(provider, &org, Entity::CreditNote, update).await;
    assert_eq!(stale["outcome"], "conflict", "{provider}: {stale}");

    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let action = if provider == Provider::QuickBooks { "delete" } else { "void" };
    let r = h
        .write(provider, &org, Entity::CreditNote, json!({"action": action, "requested_by": ADMIN, "provider_id": id, "version": version}))
        .await;
    assert_eq!(r["outcome"], "applied", "{provider} {action}: {r}");
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::CreditNote, &id).await.unwrap().unwrap();
    let at = h.sandbox_record(provider, &org, home, &id).await;
    if provider == Provider::QuickBooks {
        assert!(stored.deleted, "{provider}: {stored:?}");
        assert_eq!(at["deleted"], true, "{provider}: {at}");
    } else {
        assert_eq!(stored.document.as_ref().unwrap().status, shared::books::DocumentStatus::Void, "{provider}: {stored:?}");
    }
    // Every event it sent satisfies the published contract (the write events name this entity).
    let events = h.events().await;
    assert!(events.iter().any(|e| e.event_type.as_str() == "write.completed"), "{provider}: {events:?}");
}

#[tokio::test]
async fn quickbooks_credit_note_writes() {
    Box::pin(credit_note_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_credit_note_writes() {
    Box::pin(credit_note_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_credit_note_writes() {
    Box::pin(credit_note_writes_case(Provider::Zoho)).await;
}

/// A manual journal written in the common model: one that does not balance is refused before any
/// call; a balanced one is posted with each line's side the provider's way (QuickBooks PostingType,
/// Xero signed LineAmount, Zoho debit_or_credit) and read back balanced; its lines are replaced at
/// its version; then it is voided (Xero) or deleted (QuickBooks, Zoho).
async fn journal_writes_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::Journal);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("account", 5)]).await;
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    let store = h.store();
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let bank = accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Business Bank"))).expect("the bank account");
    let expense =
        accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Office Expenses"))).expect("an expense account");
    let lines = |debit: i64, credit: i64| {
        json!([{"account": {"id": expense.provider_id}, "debit": debit, "description": "Accrued rent"},
               {"account": {"id": bank.provider_id}, "credit": credit, "description": "Accrued rent"}])
    };
    let create = |debit: i64, credit: i64| {
        let mut record = json!({"date": "2026-12-01", "narration": "December rent accrual", "lines": lines(debit, credit)});
        if provider == Provider::Xero {
            record["status"] = json!("posted");
        }
        json!({"action": "create", "requested_by": WRITER, "record": record})
    };
    h.control("DELETE", "counters", None).await;
    let r = h.write(provider, &org, Entity::Journal, create(12550, 12500)).await;
    assert_eq!((r["code"].as_str(), r["problems"][0]["code"].as_str()), (Some("validation_failed"), Some("unbalanced")), "{provider}: {r}");
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: refused before any call");

    let r = h.write(provider, &org, Entity::Journal, create(12550, 12550)).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let id = r["provider_id"].as_str().unwrap().to_string();
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::Journal, &id).await.unwrap().expect("stored");
    let j = stored.reference.journal.as_ref().expect("a journal part");
    assert_eq!(j.balanced, Some(true), "{provider}: {j:?}");
    assert_eq!(
        (j.total_debit.as_ref().map(|m| m.minor), j.total_credit.as_ref().map(|m| m.minor)),
        (Some(12550), Some(12550)),
        "{provider}"
    );
    let debit_line = j.lines.iter().find(|l| l.debit.is_some()).expect("a debit line");
    assert_eq!(debit_line.account.as_ref().and_then(|a| a.id.as_deref()), Some(expense.provider_id.as_str()), "{provider}: {j:?}");
    assert_eq!(sandbox_records(&h, provider, &org, "journal").await.len(), 1, "{provider}: one journal at the sandbox");

    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let version = r["version"].as_str().unwrap().to_string();
    let r = h
        .write(
            provider,
            &org,
            Entity::Journal,
            json!({"action": "update", "requested_by": WRITER, "provider_id": id, "version": version, "record": {"lines": lines(20000, 20000)}}),
        )
        .await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::Journal, &id).await.unwrap().unwrap();
    assert_eq!(stored.reference.journal.as_ref().unwrap().total_debit.as_ref().map(|m| m.minor), Some(20000), "{provider}");

    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let version = r["version"].as_str().unwrap().to_string();
    let action = if provider == Provider::Xero { "void" } else { "delete" };
    let r = h
        .write(provider, &org, Entity::Journal, json!({"action": action, "requested_by": ADMIN, "provider_id": id, "version": version}))
        .await;
    assert_eq!(r["outcome"], "applied", "{provider} {action}: {r}");
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::Journal, &id).await.unwrap().unwrap();
    if provider == Provider::Xero {
        assert_eq!(stored.status.as_deref(), Some("VOIDED"), "{provider}: {stored:?}");
    } else {
        assert!(stored.deleted, "{provider}: {stored:?}");
    }
    // Every event it sent satisfies the published contract (the write events name this entity).
    let events = h.events().await;
    assert!(events.iter().any(|e| e.event_type.as_str() == "write.completed"), "{provider}: {events:?}");
}

#[tokio::test]
async fn quickbooks_journal_writes() {
    Box::pin(journal_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_journal_writes() {
    Box::pin(journal_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_journal_writes() {
    Box::pin(journal_writes_case(Provider::Zoho)).await;
}

/// Zoho has no idempotency key: a create that timed out may have landed, so the job's retry looks
/// for its own record by reference before creating again. For a supplier's credit that lookup is
/// in `vendorcredits` (the second module of credit notes), and for a journal in `journals`: after a
/// timed-out first attempt that the sandbox completed anyway, each write leaves one record.
#[tokio::test]
async fn zoho_vendor_credit_and_journal_creates_retried_after_a_timeout_leave_one_each() {
    let provider = Provider::Zoho;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Bill, Entity::CreditNote, Entity::Journal]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("account", 5), ("bill", 1)]).await;
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    for e in [Entity::Contact, Entity::Account, Entity::Bill] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let store = h.store();
    let supplier = store.list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap().remove(0).contact_id.unwrap();
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let account =
        |prefix: &str| accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with(prefix))).unwrap().provider_id.clone();
    let (expense, bank) = (account("Office Expenses"), account("Business Bank"));
    h.control("POST", "config", Some(json!({"timeout_fault_seconds": 3}))).await;
    for (entity, module, record) in [
        (
            Entity::CreditNote,
            "vendor_credit",
            json!({"kind": "purchase", "contact": {"id": supplier}, "lines": [{"description": "Returned", "amount": 4500, "account": {"id": expense}}]}),
        ),
        (
            Entity::Journal,
            "journal",
            json!({"narration": "Accrual", "lines": [{"account": {"id": expense}, "debit": 9900}, {"account": {"id": bank}, "credit": 9900}]}),
        ),
    ] {
        let path = format!("/zoho/api/us/books/v3/{}", if entity == Entity::Journal { "journals" } else { "vendorcredits" });
        h.control(
            "POST",
            "faults",
            Some(json!({"provider": "zoho", "path_prefix": path, "method": "POST", "kind": "timeout", "count": 1})),
        )
        .await;
        let mut job = h.job(provider, &org, Operation::Push, entity);
        job.idempotency_key = unique("zoho-create");
        let request = json!({"action": "create", "requested_by": WRITER, "record": record});
        h.send(&[write_body(&job, request)]).await;
        // The client gives up after 1 s; the sandbox holds the request 3 s and then makes the record.
        let first = h.pump(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(1)), 1).await;
        assert!(matches!(first[0].1, Disposition::Retry { .. }), "{entity:?}: a Zoho create is not retried in place: {first:?}");
        tokio::time::sleep(StdDuration::from_secs(4)).await;
        done_result(&h.pump_until_any(&h.deps_with(WorkerSettings::default(), StdDuration::from_secs(5))).await);
        let (_, result) = store.job_status(&h.tenant, &job.idempotency_key).await.unwrap().unwrap();
        let result = result.unwrap();
        assert_eq!(result["outcome"], "already_applied", "{entity:?}: the retry found its own record: {result}");
        let live: Vec<Value> =
            sandbox_records(&h, provider, &org, module).await.into_iter().filter(|r| r["deleted"] != json!(true)).collect();
        assert_eq!(live.len(), 1, "{entity:?}: one record at Zoho, not two");
        assert_eq!(live[0]["id"], result["provider_id"], "{entity:?}");
    }
}

/// Money spent and received without an invoice, written in the common model: refused before any
/// call without a bank account or with an account the books do not have; an expense (QuickBooks
/// Purchase, Xero SPEND, Zoho expense) and a deposit (QuickBooks Deposit, Xero RECEIVE, Zoho
/// banktransactions) are made from and into the bank account with the sandbox's totals; then each
/// is deleted from its own collection.
async fn bank_transaction_writes_case(provider: Provider) {
    use shared::books::bank::BankKind as K;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Bill, Entity::BankTransaction]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 2), ("account", 5), ("bill", 1)]).await;
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    for e in [Entity::Contact, Entity::Account, Entity::Bill] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let store = h.store();
    let supplier = store.list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap().remove(0).contact_id.unwrap();
    let contacts = store.list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
    let customer = contacts
        .iter()
        .find(|c| c.contact.as_ref().is_some_and(|k| k.is_customer && !k.is_supplier))
        .expect("a customer")
        .provider_id
        .clone();
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let account =
        |prefix: &str| accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with(prefix))).unwrap().provider_id.clone();
    let (bank, expense, sales) = (account("Business Bank"), account("Office Expenses"), account("Sales"));
    let write = |kind: &str, contact: &str, line_account: &str, amount: i64| {
        let mut record = json!({"kind": kind, "bank_account": {"id": bank}, "contact": {"id": contact}, "date": "2026-12-03",
            "lines": [{"description": "Paid at the counter", "amount": amount, "account": {"id": line_account}}], "subtotal": amount});
        if !(provider == Provider::QuickBooks && kind == "receive") {
            record["reference"] = json!("RCPT-9");
        }
        json!({"action": "create", "requested_by": WRITER, "record": record})
    };
    h.control("DELETE", "counters", None).await;
    let mut no_bank = write("spend", &supplier, &expense, 4500);
    no_bank["record"].as_object_mut().unwrap().remove("bank_account");
    let r = h.write(provider, &org, Entity::BankTransaction, no_bank).await;
    assert_eq!(r["problems"][0]["field"], "record.bank_account", "{provider}: {r}");
    let r = h.write(provider, &org, Entity::BankTransaction, write("spend", &supplier, "no-such-account", 4500)).await;
    assert_eq!(r["problems"][0]["code"], "unknown_account", "{provider}: {r}");
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: refused before any call");

    let mut made = Vec::new();
    for (kind, contact, line_account, amount, want, home) in [
        ("spend", &supplier, &expense, 4500, if provider == Provider::Zoho { K::Expense } else { K::Spend }, "expense"),
        ("receive", &customer, &sales, 12000, K::Receive, "bank_transaction"),
    ] {
        let r = h.write(provider, &org, Entity::BankTransaction, write(kind, contact, line_account, amount)).await;
        assert_eq!(r["outcome"], "applied", "{provider} {kind}: {r}");
        let id = r["provider_id"].as_str().unwrap().to_string();
        let stored = store.get_record(&h.tenant, provider, &org, PEntity::BankTransaction, &id).await.unwrap().expect("stored");
        let t = stored.reference.bank_transaction.as_ref().expect("a bank transaction part");
        assert_eq!(t.kind, want, "{provider} {kind}: {t:?}");
        assert_eq!(t.bank_account.as_ref().and_then(|a| a.id.as_deref()), Some(bank.as_str()), "{provider} {kind}: {t:?}");
        assert_eq!(t.total.as_ref().map(|m| m.minor), Some(amount), "{provider} {kind}");
        let at = h.sandbox_record(provider, &org, home, &id).await;
        assert!(at.is_object(), "{provider}: the {kind} is the sandbox's {home}");
        made.push((id, r["version"].as_str().unwrap().to_string(), home));
    }

    // Each is changed at its version in its own collection (QuickBooks Purchase and Deposit, Zoho
    // expenses and banktransactions): new lines, and the total follows them.
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    let mut changed = Vec::new();
    for ((id, version, home), line_account) in made.into_iter().zip([&expense, &sales]) {
        let update = json!({"action": "update", "requested_by": WRITER, "provider_id": id, "version": version,
            "record": {"lines": [{"description": "Corrected", "amount": 15000, "account": {"id": line_account}}], "subtotal": 15000}});
        let r = h.write(provider, &org, Entity::BankTransaction, update).await;
        assert_eq!(r["outcome"], "applied", "{provider} {home}: {r}");
        let stored = store.get_record(&h.tenant, provider, &org, PEntity::BankTransaction, &id).await.unwrap().unwrap();
        let total = stored.reference.bank_transaction.as_ref().and_then(|t| t.total.as_ref()).map(|m| m.minor);
        assert_eq!(total, Some(15000), "{provider} {home}");
        changed.push((id, r["version"].as_str().unwrap().to_string(), home));
    }

    // Then each is deleted from its own collection; Xero keeps a deleted one with Status DELETED.
    h.control("POST", "clock", Some(json!({"advance_seconds": 2}))).await;
    for (id, version, home) in changed {
        let r = h
            .write(
                provider,
                &org,
                Entity::BankTransaction,
                json!({"action": "delete", "requested_by": ADMIN, "provider_id": id, "version": version}),
            )
            .await;
        assert_eq!(r["outcome"], "applied", "{provider} {home}: {r}");
        let stored = store.get_record(&h.tenant, provider, &org, PEntity::BankTransaction, &id).await.unwrap().unwrap();
        let at = h.sandbox_record(provider, &org, home, &id).await;
        if provider == Provider::Xero {
            assert_eq!(at["value"]["Status"], "DELETED", "{provider}: {at}");
        } else {
            assert!(stored.deleted, "{provider} {home}: {stored:?}");
            assert_eq!(at["deleted"], true, "{provider} {home}: {at}");
        }
    }
    // Every event it sent satisfies the published contract (the write events name this entity).
    let events = h.events().await;
    assert!(events.iter().any(|e| e.event_type.as_str() == "write.completed"), "{provider}: {events:?}");
}

/// A QuickBooks Deposit the tenant has not synced yet is deleted from Deposits, not Purchases: with
/// no stored copy to say which collection holds it, the worker reads it first.
#[tokio::test]
async fn quickbooks_deposit_not_yet_synced_is_deleted_from_its_own_collection() {
    let provider = Provider::QuickBooks;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::BankTransaction);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("account", 5)]).await;
    h.connect(provider, &org).await;
    let id = h.seed(provider, &org, "bank_transaction", 1).await.remove(0);
    assert!(h.store().get_record(&h.tenant, provider, &org, PEntity::BankTransaction, &id).await.unwrap().is_none(), "not synced");
    let version = h.sandbox_record(provider, &org, "bank_transaction", &id).await["value"]["SyncToken"].as_str().unwrap().to_string();
    let r = h
        .write(
            provider,
            &org,
            Entity::BankTransaction,
            json!({"action": "delete", "requested_by": ADMIN, "provider_id": id, "version": version}),
        )
        .await;
    assert_eq!(r["outcome"], "applied", "{r}");
    assert_eq!(h.sandbox_record(provider, &org, "bank_transaction", &id).await["deleted"], true);
    assert!(h.store().get_record(&h.tenant, provider, &org, PEntity::BankTransaction, &id).await.unwrap().unwrap().deleted);
}

#[tokio::test]
async fn quickbooks_bank_transaction_writes() {
    Box::pin(bank_transaction_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bank_transaction_writes() {
    Box::pin(bank_transaction_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bank_transaction_writes() {
    Box::pin(bank_transaction_writes_case(Provider::Zoho)).await;
}

/// The sandbox's own records of one org and entity (`/_sandbox/records`).
async fn sandbox_records(h: &H, provider: Provider, org: &str, entity: &str) -> Vec<Value> {
    let path = format!("records?provider={}&org_id={org}&entity={entity}", sandbox_name(provider));
    h.control("GET", &path, None).await["records"].as_array().unwrap().clone()
}

/// The tax codes the sandbox's lines name, read from its invoices and bills.
fn line_tax_codes(provider: Provider, doc: &Value) -> Vec<String> {
    let (lines, paths): (&str, &[&str]) = match provider {
        Provider::QuickBooks => (
            "Line",
            &[
                "/SalesItemLineDetail/TaxCodeRef/value",
                "/ItemBasedExpenseLineDetail/TaxCodeRef/value",
                "/AccountBasedExpenseLineDetail/TaxCodeRef/value",
            ],
        ),
        Provider::Xero => ("LineItems", &["/TaxType"]),
        Provider::Zoho => ("line_items", &["/tax_id"]),
    };
    let mut out = Vec::new();
    for l in doc[lines].as_array().into_iter().flatten() {
        out.extend(paths.iter().filter_map(|p| l.pointer(p).and_then(Value::as_str)).filter(|s| !s.is_empty()).map(str::to_string));
    }
    out
}

/// Tax rates of every provider: a full pull stores each of the sandbox's tax codes with its rate,
/// every tax code the seeded invoices' and bills' lines name is then found in the copy (as a
/// write's check will look it up), pulling again changes nothing, and an archived or deleted
/// code reaches the copy the way the provider reports it.
async fn tax_rates_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::TaxRate);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("tax_rate", 2), ("invoice", 4), ("bill", 4)]).await;
    h.connect(provider, &org).await;
    let theirs = sandbox_records(&h, provider, &org, "tax_rate").await;
    // QuickBooks' percentages are on its TaxRate records, by Id.
    let components: HashMap<String, Value> = if provider == Provider::QuickBooks {
        sandbox_records(&h, provider, &org, "tax_component")
            .await
            .into_iter()
            .map(|c| (c["id"].as_str().unwrap().to_string(), c["value"].clone()))
            .collect()
    } else {
        HashMap::new()
    };
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TaxRate)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(theirs.len() as u64), "{provider}: {r}");
    let store = h.store();
    for s in &theirs {
        let id = s["id"].as_str().unwrap();
        let ours = store.get_record(&h.tenant, provider, &org, PEntity::TaxRate, id).await.unwrap().expect("stored");
        let tr = ours.reference.tax_rate.expect("a tax rate");
        assert_eq!((tr.code.as_deref(), tr.active), (Some(id), Some(true)), "{provider}");
        let rate = match provider {
            // The sum of the code's sales rates in basis points (each applies to the net amount).
            Provider::QuickBooks => {
                let ids: Vec<&str> = s["value"]["SalesTaxRateList"]["TaxRateDetail"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["TaxRateRef"]["value"].as_str().unwrap())
                    .collect();
                let bp: i64 = ids.iter().map(|id| (components[*id]["RateValue"].as_f64().unwrap() * 100.0).round() as i64).sum();
                for (k, id) in ids.iter().enumerate() {
                    let theirs = components[*id]["RateValue"].as_f64().unwrap();
                    let ours: f64 = tr.components[k].rate.as_deref().expect("a component's rate").parse().unwrap();
                    assert_eq!(ours, theirs, "QuickBooks {id}: the TaxRate's RateValue");
                }
                (!ids.is_empty()).then(|| (bp as f64 / 100.0).to_string())
            }
            Provider::Xero => Some(s["value"]["EffectiveRate"].to_string()),
            Provider::Zoho => Some(s["value"]["tax_percentage"].to_string()),
        };
        assert_eq!(tr.rate, rate, "{provider} {id}: the sandbox's rate");
        if provider == Provider::QuickBooks && s["value"]["Name"] == "TAX" {
            assert_eq!(tr.components[0].id.as_deref(), Some("3"), "QuickBooks codes name their TaxRate");
        }
    }
    // Every line's tax code is in the copy, by code as a write checks it.
    let mut named = Vec::new();
    for entity in ["invoice", "bill"] {
        for d in sandbox_records(&h, provider, &org, entity).await {
            named.extend(line_tax_codes(provider, &d["value"]));
        }
    }
    assert!(!named.is_empty(), "{provider}: seeded lines name tax codes");
    for code in &named {
        let found = store.find_reference(&h.tenant, provider, &org, PEntity::TaxRate, code).await.unwrap();
        assert!(found.is_some(), "{provider}: line tax code {code} is a stored tax rate");
    }
    assert!(store.find_reference(&h.tenant, provider, &org, PEntity::TaxRate, "NO-SUCH").await.unwrap().is_none());

    // Again: nothing changed, nothing written.
    let again = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TaxRate)).await;
    assert_eq!(again["counts"]["written"], 0, "{provider}: {again}");

    // Archived (QuickBooks inactive, Xero ARCHIVED, Zoho inactive), and on Xero deleted by status.
    let generated: Vec<&Value> =
        theirs.iter().filter(|s| s["value"]["Name"] != "TAX" && s["value"]["Name"] != "NON").rev().take(2).collect();
    let (archive, delete) = (generated[0], generated[1]);
    let change = |v: &Value, archived: bool| {
        let mut v = v["value"].clone();
        match provider {
            Provider::QuickBooks => v["Active"] = json!(!archived),
            Provider::Xero => v["Status"] = json!(if archived { "ARCHIVED" } else { "DELETED" }),
            Provider::Zoho => v["status"] = json!(if archived { "inactive" } else { "active" }),
        }
        v
    };
    let mut records = vec![change(archive, true)];
    if provider == Provider::Xero {
        records.push(change(delete, false));
    }
    let body = json!({"provider": sandbox_name(provider), "org_id": org, "entity": "tax_rate", "records": records});
    h.control("POST", "seed", Some(body)).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TaxRate)).await;
    assert_eq!(inc["counts"]["written"].as_u64(), Some(records.len() as u64), "{provider}: {inc}");
    let a = store.get_record(&h.tenant, provider, &org, PEntity::TaxRate, archive["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((a.reference.tax_rate.unwrap().active, a.deleted), (Some(false), false), "{provider}: archived, not deleted");
    if provider == Provider::Xero {
        let id = delete["id"].as_str().unwrap();
        let d = store.get_record(&h.tenant, provider, &org, PEntity::TaxRate, id).await.unwrap().unwrap();
        assert!(d.deleted, "Xero DELETED is a deletion");
        assert!(store.find_reference(&h.tenant, provider, &org, PEntity::TaxRate, id).await.unwrap().is_none(), "not found for a write");
    }
}

/// QuickBooks tax codes' rates are joined from TaxRate records page by page: a pull of one code per
/// page, each page in its own job (a follow-up after every page, as when a Lambda invocation runs
/// out of time), stores every code with the rate of its TaxRate records.
#[tokio::test]
async fn quickbooks_tax_rates_are_joined_on_every_page_of_a_split_pull() {
    let provider = Provider::QuickBooks;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::TaxRate);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("tax_rate", 2)]).await;
    h.connect(provider, &org).await;
    let deps = h.deps_with(
        WorkerSettings { page_size: Some(1), deadline_margin: StdDuration::from_secs(3600), ..Default::default() },
        StdDuration::from_secs(10),
    );
    h.send(&[h.job(provider, &org, Operation::Pull, Entity::TaxRate).to_json()]).await;
    let results = h.pump(&deps, 2).await;
    done_result(&results);
    assert!(results.len() >= 4, "one job per code: {}", results.len());
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::TaxRate).await.unwrap();
    let rates: HashMap<String, Option<String>> =
        stored.iter().map(|r| (r.provider_id.clone(), r.reference.tax_rate.as_ref().and_then(|t| t.rate.clone()))).collect();
    assert_eq!(rates.len(), 4, "TAX, NON and two more: {rates:?}");
    assert_eq!(rates["TAX"].as_deref(), Some("8.25"), "TAX applies TaxRate 3 at the sandbox's rate");
    assert_eq!(rates["NON"], None, "an untaxed code has no rates");
    assert_eq!(rates.values().filter(|r| r.is_some()).count(), 3, "every taxable code has its rate: {rates:?}");
}

#[tokio::test]
async fn quickbooks_tax_rates() {
    Box::pin(tax_rates_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_tax_rates() {
    Box::pin(tax_rates_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_tax_rates() {
    Box::pin(tax_rates_case(Provider::Zoho)).await;
}

/// The account ids and codes the sandbox's lines name, read from its invoices and bills.
fn line_accounts(provider: Provider, doc: &Value) -> Vec<String> {
    let (lines, paths): (&str, &[&str]) = match provider {
        Provider::QuickBooks => ("Line", &["/AccountBasedExpenseLineDetail/AccountRef/value", "/SalesItemLineDetail/ItemAccountRef/value"]),
        Provider::Xero => ("LineItems", &["/AccountCode", "/AccountID"]),
        Provider::Zoho => ("line_items", &["/account_id"]),
    };
    let mut out = Vec::new();
    for l in doc[lines].as_array().into_iter().flatten() {
        out.extend(paths.iter().filter_map(|p| l.pointer(p).and_then(Value::as_str)).filter(|s| !s.is_empty()).map(str::to_string));
    }
    out
}

/// Accounts with type and class: a pull stores each of the sandbox's accounts with its code, the
/// provider's type word and the class it means, the bank flag and the status; every account the
/// seeded lines name is found in the copy by id or code (Xero lines name the code); an archived
/// account arrives inactive, and a Xero account deleted by status as deleted.
async fn accounts_case(provider: Provider) {
    let h = harness().await;
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("account", 5), ("invoice", 3), ("bill", 3)]).await;
    h.connect(provider, &org).await;
    let theirs = sandbox_records(&h, provider, &org, "account").await;
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(theirs.len() as u64), "{provider}: {r}");
    let store = h.store();
    for s in &theirs {
        let (id, v) = (s["id"].as_str().unwrap(), &s["value"]);
        let ours = store.get_record(&h.tenant, provider, &org, PEntity::Account, id).await.unwrap().expect("stored");
        let a = ours.reference.account.expect("an account's typed part");
        let (code, kind, class) = match provider {
            Provider::QuickBooks => (&v["AcctNum"], &v["AccountType"], v["Classification"].as_str().unwrap().to_ascii_lowercase()),
            Provider::Xero => (&v["Code"], &v["Type"], v["Class"].as_str().unwrap().to_ascii_lowercase()),
            Provider::Zoho => {
                let class = match v["account_type"].as_str().unwrap() {
                    "income" => "revenue",
                    "expense" => "expense",
                    "accounts_payable" => "liability",
                    _ => "asset",
                };
                (&v["account_code"], &v["account_type"], class.to_string())
            }
        };
        assert_eq!((a.code.as_deref(), a.account_type.as_deref()), (code.as_str(), kind.as_str()), "{provider} {id}");
        assert_eq!(serde_json::to_value(a.class).unwrap(), json!(class), "{provider} {id}: {v}");
        assert_eq!(a.bank, kind.as_str().is_some_and(|k| k.eq_ignore_ascii_case("bank")), "{provider} {id}");
        assert_eq!(a.active, Some(true), "{provider} {id}");
        assert_eq!(ours.number, a.code, "{provider}: the header's number is still the code");
        if provider == Provider::QuickBooks {
            assert_eq!(a.balance.map(|b| b.minor), Some(0), "QuickBooks sends CurrentBalance");
        }
    }
    let stored = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    assert!(stored.iter().any(|s| s.reference.account.as_ref().is_some_and(|a| a.bank)), "{provider}: the bank account is flagged");
    let mut named = Vec::new();
    for entity in ["invoice", "bill"] {
        for d in sandbox_records(&h, provider, &org, entity).await {
            named.extend(line_accounts(provider, &d["value"]));
        }
    }
    assert!(!named.is_empty(), "{provider}: seeded lines name accounts");
    for key in &named {
        let found = store.find_reference(&h.tenant, provider, &org, PEntity::Account, key).await.unwrap();
        assert!(found.is_some(), "{provider}: line account {key} is a stored account");
    }

    // Archived (QuickBooks and Zoho inactive, Xero ARCHIVED), and on Xero deleted by status.
    let (archive, delete) = (&theirs[theirs.len() - 1], &theirs[theirs.len() - 2]);
    let change = |s: &Value, archived: bool| {
        let mut v = s["value"].clone();
        match provider {
            Provider::QuickBooks => v["Active"] = json!(!archived),
            Provider::Xero => v["Status"] = json!(if archived { "ARCHIVED" } else { "DELETED" }),
            Provider::Zoho => v["is_active"] = json!(!archived),
        }
        v
    };
    let mut records = vec![change(archive, true)];
    if provider == Provider::Xero {
        records.push(change(delete, false));
    }
    let body = json!({"provider": sandbox_name(provider), "org_id": org, "entity": "account", "records": records});
    h.control("POST", "seed", Some(body)).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    assert_eq!(inc["counts"]["written"].as_u64(), Some(records.len() as u64), "{provider}: incremental: {inc}");
    let a = store.get_record(&h.tenant, provider, &org, PEntity::Account, archive["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((a.reference.account.unwrap().active, a.deleted), (Some(false), false), "{provider}: archived, not deleted");
    if provider == Provider::Xero {
        let id = delete["id"].as_str().unwrap();
        assert!(store.get_record(&h.tenant, provider, &org, PEntity::Account, id).await.unwrap().unwrap().deleted);
        assert!(store.find_reference(&h.tenant, provider, &org, PEntity::Account, id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn quickbooks_accounts_with_type_and_class() {
    Box::pin(accounts_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_accounts_with_type_and_class() {
    Box::pin(accounts_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_accounts_with_type_and_class() {
    Box::pin(accounts_case(Provider::Zoho)).await;
}

/// Marks stored records as written an hour ago, so a full pass may take them for gone (a pass never
/// does so for a record written around its own start).
async fn backdate_records(h: &H, provider: Provider, org: &str, entity: PEntity, ids: &[String]) {
    for id in ids {
        h.env
            .clients
            .dynamodb
            .update_item()
            .table_name(&h.env.config.tables.sync)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(shared::store::tenant_pk(&h.tenant)))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(shared::sync::store::record_sk(provider, org, entity, id)))
            .update_expression("SET synced_at = :t")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::S((Utc::now() - Duration::hours(1)).to_rfc3339()))
            .send()
            .await
            .unwrap();
    }
}

/// Items: a pull stores every item of the sandbox with its code, prices and accounts; every item
/// the seeded lines name is in the copy, and so are the accounts and tax codes each item posts
/// with; a changed price arrives with the next incremental pull; an item made inactive arrives
/// inactive (QuickBooks, Zoho), and a deleted one (Xero, Zoho) becomes a tombstone at a full pass.
async fn items_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Item, Entity::TaxRate]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("invoice", 4), ("bill", 4), ("item", 2)]).await;
    h.connect(provider, &org).await;
    for e in [Entity::Account, Entity::TaxRate] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let theirs = sandbox_records(&h, provider, &org, "item").await;
    assert_eq!(theirs.len(), 9, "{provider}: seven catalogue items and two more");
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Item)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(9), "{provider}: {r}");
    let store = h.store();
    let (code_f, sales_f, purchase_f): (&str, &str, &str) = match provider {
        Provider::QuickBooks => ("/Sku", "/UnitPrice", "/PurchaseCost"),
        Provider::Xero => ("/Code", "/SalesDetails/UnitPrice", "/PurchaseDetails/UnitPrice"),
        Provider::Zoho => ("/sku", "/rate", "/purchase_rate"),
    };
    for s in &theirs {
        let (id, v) = (s["id"].as_str().unwrap(), &s["value"]);
        let ours = store.get_record(&h.tenant, provider, &org, PEntity::Item, id).await.unwrap().expect("stored");
        let i = ours.reference.item.expect("an item's typed part");
        assert_eq!(i.code.as_deref(), v.pointer(code_f).and_then(Value::as_str), "{provider} {id}");
        assert_eq!(i.sales_price, v.pointer(sales_f).map(Value::to_string), "{provider} {id}: the sandbox's price");
        assert_eq!(i.purchase_price, v.pointer(purchase_f).map(Value::to_string), "{provider} {id}");
        assert_eq!(i.active, Some(true));
        for a in [&i.income_account, &i.expense_account].into_iter().flatten() {
            let key = a.id.as_deref().unwrap();
            let found = store.find_reference(&h.tenant, provider, &org, PEntity::Account, key).await.unwrap();
            assert!(found.is_some(), "{provider} {id}: its account {key} is in the copy");
        }
        for code in [&i.tax_code, &i.purchase_tax_code].into_iter().flatten() {
            assert!(store.find_reference(&h.tenant, provider, &org, PEntity::TaxRate, code).await.unwrap().is_some(), "{provider}: {code}");
        }
    }
    let item_path: &[&str] = match provider {
        Provider::QuickBooks => &["/SalesItemLineDetail/ItemRef/value", "/ItemBasedExpenseLineDetail/ItemRef/value"],
        Provider::Xero => &["/Item/ItemID"],
        Provider::Zoho => &["/item_id"],
    };
    let lines_key = match provider {
        Provider::QuickBooks => "Line",
        Provider::Xero => "LineItems",
        Provider::Zoho => "line_items",
    };
    let mut named = 0;
    for entity in ["invoice", "bill"] {
        for d in sandbox_records(&h, provider, &org, entity).await {
            for l in d["value"][lines_key].as_array().into_iter().flatten() {
                for id in item_path.iter().filter_map(|p| l.pointer(p).and_then(Value::as_str)).filter(|s| !s.is_empty()) {
                    named += 1;
                    let found = store.find_reference(&h.tenant, provider, &org, PEntity::Item, id).await.unwrap();
                    assert!(found.is_some(), "{provider}: line item {id} is a stored item");
                }
            }
        }
    }
    assert!(named > 0, "{provider}: seeded lines name items");

    // A new price, and (QuickBooks, Zoho) an item made inactive.
    let (priced, retired, gone) = (&theirs[0], &theirs[1], &theirs[2]);
    let mut v = priced["value"].clone();
    match provider {
        Provider::QuickBooks => v["UnitPrice"] = json!(123.45),
        Provider::Xero => v["SalesDetails"]["UnitPrice"] = json!(123.45),
        Provider::Zoho => v["rate"] = json!(123.45),
    }
    let mut records = vec![v];
    match provider {
        Provider::QuickBooks => {
            let mut r = retired["value"].clone();
            r["Active"] = json!(false);
            records.push(r);
        }
        Provider::Zoho => {
            let mut r = retired["value"].clone();
            r["status"] = json!("inactive");
            records.push(r);
        }
        Provider::Xero => {}
    }
    let body = json!({"provider": sandbox_name(provider), "org_id": org, "entity": "item", "records": records});
    h.control("POST", "seed", Some(body)).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Item)).await;
    assert_eq!(inc["counts"]["written"].as_u64(), Some(records.len() as u64), "{provider}: incremental: {inc}");
    let p = store.get_record(&h.tenant, provider, &org, PEntity::Item, priced["id"].as_str().unwrap()).await.unwrap().unwrap();
    let price = p.reference.item.unwrap();
    assert_eq!(price.sales_price.as_deref(), Some("123.45"), "{provider}");
    if provider != Provider::Xero {
        let r = store.get_record(&h.tenant, provider, &org, PEntity::Item, retired["id"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!((r.reference.item.unwrap().active, r.deleted), (Some(false), false), "{provider}: inactive, not deleted");
    }

    // Deleted at the provider (Xero and Zoho delete items; QuickBooks only makes them inactive):
    // the next full pass tombstones it.
    if provider != Provider::QuickBooks {
        let gone_id = gone["id"].as_str().unwrap().to_string();
        let out = h
            .control(
                "POST",
                "records/delete",
                Some(json!({"provider": sandbox_name(provider), "org_id": org, "entity": "item", "ids": [gone_id]})),
            )
            .await;
        assert_eq!(out["deleted"], 1);
        let ids: Vec<String> = theirs.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
        backdate_records(&h, provider, &org, PEntity::Item, &ids).await;
        let mut full = h.job(provider, &org, Operation::Pull, Entity::Item);
        full.cursor = Some("full".into());
        let f = h.run_through_queue(&h.deps(), &full).await;
        assert_eq!(f["counts"]["deleted"].as_u64(), Some(1), "{provider}: {f}");
        let d = store.get_record(&h.tenant, provider, &org, PEntity::Item, &gone_id).await.unwrap().unwrap();
        assert!(d.deleted, "{provider}");
        assert!(store.find_reference(&h.tenant, provider, &org, PEntity::Item, &gone_id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn quickbooks_items() {
    Box::pin(items_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_items() {
    Box::pin(items_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_items() {
    Box::pin(items_case(Provider::Zoho)).await;
}

/// Tracking categories: a pull stores each of the sandbox's categories with its options (a
/// QuickBooks Class as its own one option); each option is then found as a write would look up a
/// line's tracking; an archived category arrives inactive and its options are no longer found;
/// one deleted at the provider (Xero, Zoho) becomes a tombstone at the next full pass.
async fn tracking_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::TrackingCategory);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("tracking_category", 2)]).await;
    h.connect(provider, &org).await;
    let theirs = sandbox_records(&h, provider, &org, "tracking_category").await;
    assert_eq!(theirs.len(), 3, "{provider}: the org's own and two more");
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TrackingCategory)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(3), "{provider}: {r}");
    let store = h.store();
    let options_of = |v: &Value| -> Vec<(String, String)> {
        match provider {
            Provider::QuickBooks => vec![(v["Id"].as_str().unwrap().to_string(), v["FullyQualifiedName"].as_str().unwrap().to_string())],
            Provider::Xero => v["Options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["TrackingOptionID"].as_str().unwrap().to_string(), o["Name"].as_str().unwrap().to_string()))
                .collect(),
            Provider::Zoho => v["tag_options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["tag_option_id"].as_str().unwrap().to_string(), o["tag_option_name"].as_str().unwrap().to_string()))
                .collect(),
        }
    };
    for s in &theirs {
        let id = s["id"].as_str().unwrap();
        let ours = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, id).await.unwrap().expect("stored");
        let c = ours.reference.tracking_category.expect("a tracking category");
        let got: Vec<(String, String)> = c.options.iter().map(|o| (o.id.clone().unwrap(), o.name.clone().unwrap())).collect();
        assert_eq!(got, options_of(&s["value"]), "{provider} {id}: the sandbox's options");
        assert_eq!(c.active, Some(true));
        for (option, _) in &got {
            let found = store.find_tracking_option(&h.tenant, provider, &org, option).await.unwrap();
            assert_eq!(found.map(|f| f.provider_id), Some(id.to_string()), "{provider}: option {option} is found in its category");
        }
    }
    assert!(store.find_tracking_option(&h.tenant, provider, &org, "no-such-option").await.unwrap().is_none());
    let again = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TrackingCategory)).await;
    assert_eq!(again["counts"]["written"], 0, "{provider}: {again}");

    // Archived: QuickBooks and Zoho inactive, Xero ARCHIVED (listed because the client asks for
    // archived ones too).
    let archived = &theirs[1];
    let mut v = archived["value"].clone();
    match provider {
        Provider::QuickBooks => v["Active"] = json!(false),
        Provider::Xero => v["Status"] = json!("ARCHIVED"),
        Provider::Zoho => v["is_active"] = json!(false),
    }
    let body = json!({"provider": sandbox_name(provider), "org_id": org, "entity": "tracking_category", "records": [v]});
    h.control("POST", "seed", Some(body)).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TrackingCategory)).await;
    assert_eq!(inc["counts"]["written"], 1, "{provider}: {inc}");
    let id = archived["id"].as_str().unwrap();
    let a = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, id).await.unwrap().unwrap();
    assert_eq!((a.reference.tracking_category.unwrap().active, a.deleted), (Some(false), false), "{provider}");
    let option = options_of(&archived["value"])[0].0.clone();
    assert!(
        store.find_tracking_option(&h.tenant, provider, &org, &option).await.unwrap().is_none(),
        "{provider}: an archived category's option"
    );

    // Deleted at the provider (QuickBooks only makes classes inactive).
    if provider != Provider::QuickBooks {
        let gone = theirs[2]["id"].as_str().unwrap().to_string();
        let out = h
            .control(
                "POST",
                "records/delete",
                Some(json!({"provider": sandbox_name(provider), "org_id": org, "entity": "tracking_category", "ids": [gone]})),
            )
            .await;
        assert_eq!(out["deleted"], 1);
        let ids: Vec<String> = theirs.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
        backdate_records(&h, provider, &org, PEntity::TrackingCategory, &ids).await;
        let mut full = h.job(provider, &org, Operation::Pull, Entity::TrackingCategory);
        full.cursor = Some("full".into());
        let f = h.run_through_queue(&h.deps(), &full).await;
        assert_eq!(f["counts"]["deleted"].as_u64(), Some(1), "{provider}: {f}");
        assert!(store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &gone).await.unwrap().unwrap().deleted);
    }
}

/// QuickBooks Departments are tracking categories beside Classes: a full pull stores both, a
/// department keyed `department-<Id>` even where a class has the same Id (both records stay, each
/// with its own name), each department's option found as a line's tracking names it; an invoice
/// of a realm with departments carries its DepartmentRef on every line of its stored copy; a
/// department made inactive arrives inactive at the next incremental pull (which asks CDC for both
/// lists) and its option is no longer found.
#[tokio::test]
async fn quickbooks_departments() {
    let provider = Provider::QuickBooks;
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::TrackingCategory);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("tracking_category", 1), ("department", 2)]).await;
    h.connect(provider, &org).await;
    let classes = sandbox_records(&h, provider, &org, "tracking_category").await;
    let shared_id = classes[0]["id"].as_str().unwrap().to_string();
    let twin = json!({"Id": shared_id, "Name": "Harbour", "SubDepartment": false, "FullyQualifiedName": "Harbour", "Active": true});
    h.control("POST", "seed", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "department", "records": [twin]}))).await;
    let departments = sandbox_records(&h, provider, &org, "department").await;
    assert_eq!((classes.len(), departments.len()), (2, 3));

    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TrackingCategory)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(5), "two classes and three departments: {r}");
    let store = h.store();
    for d in &departments {
        let id = format!("department-{}", d["id"].as_str().unwrap());
        let ours = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &id).await.unwrap().expect("stored");
        let c = ours.reference.tracking_category.expect("a tracking category");
        let option = &c.options[0];
        assert_eq!((option.id.as_deref(), option.name.as_deref()), (Some(id.as_str()), d["value"]["FullyQualifiedName"].as_str()));
        let found = store.find_tracking_option(&h.tenant, provider, &org, &id).await.unwrap();
        assert_eq!(found.map(|f| f.provider_id), Some(id.clone()), "department option {id} is found");
    }
    let class = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &shared_id).await.unwrap().expect("the class");
    assert_eq!(class.name.as_deref(), classes[0]["value"]["FullyQualifiedName"].as_str(), "the class of the same Id is still the class");
    let found = store.find_tracking_option(&h.tenant, provider, &org, &shared_id).await.unwrap();
    assert_eq!(found.map(|f| f.provider_id), Some(shared_id.clone()));

    // A document of a realm with departments names the newest (the twin) in its header.
    let out = h.control("POST", "seed", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "invoice", "count": 1}))).await;
    let invoice_id = out["ids"][0].as_str().unwrap().to_string();
    let theirs = sandbox_records(&h, provider, &org, "invoice").await;
    let theirs = theirs.iter().find(|i| i["id"] == invoice_id.as_str()).unwrap();
    assert_eq!(theirs["value"]["DepartmentRef"]["value"], json!(shared_id));
    let inv = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Invoice)).await;
    assert!(inv["counts"]["written"].as_u64().unwrap() >= 1, "{inv}");
    let doc = store.get_record(&h.tenant, provider, &org, PEntity::Invoice, &invoice_id).await.unwrap().unwrap().document.unwrap();
    let twin_ref = shared::books::Ref { id: Some(format!("department-{shared_id}")), name: Some("Harbour".into()) };
    assert!(!doc.lines.is_empty());
    for l in &doc.lines {
        assert!(l.tracking.contains(&twin_ref), "every line is tracked by the department: {:?}", l.tracking);
    }

    // A Department webhook job (the receiver gives it the prefixed id) re-reads the department,
    // never the class of the same Id.
    let renamed =
        json!({"Id": shared_id, "Name": "Harbour East", "SubDepartment": false, "FullyQualifiedName": "Harbour East", "Active": true});
    h.control("POST", "seed", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "department", "records": [renamed]}))).await;
    let mut hook = h.job(provider, &org, Operation::Webhook, Entity::TrackingCategory);
    hook.entity_id = Some(format!("department-{shared_id}"));
    hook.change = Some(shared::jobs::Change::Updated);
    let w = h.run_through_queue(&h.deps(), &hook).await;
    assert_eq!(w["counts"]["written"], 1, "{w}");
    let dept = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &format!("department-{shared_id}")).await.unwrap();
    assert_eq!(dept.unwrap().name.as_deref(), Some("Harbour East"));
    let class = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &shared_id).await.unwrap().unwrap();
    assert_eq!(class.name.as_deref(), classes[0]["value"]["FullyQualifiedName"].as_str(), "the class is untouched");

    // Made inactive (QuickBooks does not delete departments): inactive in the copy, not deleted.
    let gone = &departments[0];
    let mut v = gone["value"].clone();
    v["Active"] = json!(false);
    h.control("POST", "seed", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "department", "records": [v]}))).await;
    let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::TrackingCategory)).await;
    assert_eq!(inc["counts"]["written"], 1, "{inc}");
    let id = format!("department-{}", gone["id"].as_str().unwrap());
    let a = store.get_record(&h.tenant, provider, &org, PEntity::TrackingCategory, &id).await.unwrap().unwrap();
    assert_eq!((a.reference.tracking_category.unwrap().active, a.deleted), (Some(false), false));
    assert!(store.find_tracking_option(&h.tenant, provider, &org, &id).await.unwrap().is_none(), "an inactive department's option");
}

#[tokio::test]
async fn quickbooks_tracking_categories() {
    Box::pin(tracking_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_tracking_categories() {
    Box::pin(tracking_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_tracking_categories() {
    Box::pin(tracking_case(Provider::Zoho)).await;
}

/// Journals: a pull stores each of the sandbox's manual journals with its lines as debits and
/// credits that balance and equal the sandbox's amounts, posting to accounts in the copy (Zoho's
/// list leaves the lines out; the single read brings them); a journal whose lines no longer
/// balance is stored and flagged; a deleted one becomes a tombstone the provider's way (QuickBooks
/// CDC, Xero DELETED status, Zoho at a full pass). Xero needs the manual journals scope.
async fn journals_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::Journal);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("journal", 5)]).await;
    let scopes: Vec<String> = match provider {
        Provider::Xero => shared::providers::xero::DEFAULT_SCOPES
            .iter()
            .map(|s| s.to_string())
            .chain(["accounting.manualjournals.read".to_string()])
            .collect(),
        _ => Vec::new(),
    };
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Account)).await;
    let theirs = sandbox_records(&h, provider, &org, "journal").await;
    assert_eq!(theirs.len(), 5);
    let r = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Journal)).await;
    assert_eq!(r["counts"]["written"].as_u64(), Some(5), "{provider}: {r}");
    let store = h.store();
    for s in &theirs {
        let (id, v) = (s["id"].as_str().unwrap(), &s["value"]);
        let mut ours = store.get_record(&h.tenant, provider, &org, PEntity::Journal, id).await.unwrap().expect("stored");
        if provider == Provider::Zoho {
            let j = ours.reference.journal.as_ref().unwrap();
            assert!(!j.lines_complete && j.balanced.is_none(), "Zoho's list has no lines: {j:?}");
            let mut job = h.job(provider, &org, Operation::Webhook, Entity::Journal);
            job.entity_id = Some(id.to_string());
            job.change = Some(shared::jobs::Change::Updated);
            h.run_through_queue(&h.deps(), &job).await;
            ours = store.get_record(&h.tenant, provider, &org, PEntity::Journal, id).await.unwrap().unwrap();
        }
        let j = ours.reference.journal.expect("a journal");
        assert_eq!((j.balanced, j.lines.len()), (Some(true), 2), "{provider} {id}: {j:?}");
        let amount = match provider {
            Provider::QuickBooks => v["TotalAmt"].to_string(),
            Provider::Xero => v["JournalLines"][0]["LineAmount"].to_string(),
            Provider::Zoho => v["total"].to_string(),
        };
        assert_eq!(j.total_debit.map(|m| m.minor), shared::money::parse_minor(&amount, 2), "{provider} {id}: the sandbox's amount");
        assert!(ours.flags.is_empty());
        for l in &j.lines {
            let key = l.account.as_ref().and_then(|a| a.id.clone()).expect("an account");
            assert!(store.find_reference(&h.tenant, provider, &org, PEntity::Account, &key).await.unwrap().is_some(), "{provider}: {key}");
        }
    }

    // Lines that no longer balance: stored as the provider keeps them, and flagged.
    let off = &theirs[0];
    let mut v = off["value"].clone();
    match provider {
        Provider::QuickBooks => v["Line"][1]["Amount"] = json!(1.0),
        Provider::Xero => v["JournalLines"][1]["LineAmount"] = json!(-1.0),
        Provider::Zoho => v["line_items"][1]["amount"] = json!(1.0),
    }
    let body = json!({"provider": sandbox_name(provider), "org_id": org, "entity": "journal", "records": [v]});
    h.control("POST", "seed", Some(body)).await;
    let off_id = off["id"].as_str().unwrap().to_string();
    if provider == Provider::Zoho {
        let mut job = h.job(provider, &org, Operation::Webhook, Entity::Journal);
        job.entity_id = Some(off_id.clone());
        job.change = Some(shared::jobs::Change::Updated);
        h.run_through_queue(&h.deps(), &job).await;
    } else {
        let inc = h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Journal)).await;
        assert_eq!(inc["counts"]["written"], 1, "{provider}: {inc}");
    }
    let o = store.get_record(&h.tenant, provider, &org, PEntity::Journal, &off_id).await.unwrap().unwrap();
    assert_eq!(o.reference.journal.unwrap().balanced, Some(false), "{provider}");
    assert_eq!(o.flags, vec!["journal_unbalanced".to_string()], "{provider}");

    // Deleted.
    let gone = theirs[1]["id"].as_str().unwrap().to_string();
    match provider {
        Provider::Xero => {
            let mut v = theirs[1]["value"].clone();
            v["Status"] = json!("DELETED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "journal", "records": [v]}))).await;
            h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Journal)).await;
        }
        Provider::QuickBooks => {
            h.control("POST", "records/delete", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "journal", "ids": [gone]})))
                .await;
            // CDC at the end of the incremental pass reports it.
            h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, Entity::Journal)).await;
        }
        Provider::Zoho => {
            h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": "journal", "ids": [gone]}))).await;
            let ids: Vec<String> = theirs.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
            backdate_records(&h, provider, &org, PEntity::Journal, &ids).await;
            let mut full = h.job(provider, &org, Operation::Pull, Entity::Journal);
            full.cursor = Some("full".into());
            h.run_through_queue(&h.deps(), &full).await;
        }
    }
    assert!(store.get_record(&h.tenant, provider, &org, PEntity::Journal, &gone).await.unwrap().unwrap().deleted, "{provider}");
}

#[tokio::test]
async fn quickbooks_journals() {
    Box::pin(journals_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_journals() {
    Box::pin(journals_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_journals() {
    Box::pin(journals_case(Provider::Zoho)).await;
}

/// Contacts of every provider as customers and suppliers: a full pull stores customers and
/// suppliers (QuickBooks: Customer and Vendor, read in one pass) with their roles, email, phone,
/// address and balances equal to the sandbox's; an incremental pull takes only the new ones of
/// either kind; a deletion reaches the copy the way the provider reports it (QuickBooks CDC of
/// customers and vendors; Zoho: gone from the list, found by a full pass; Xero archives, which the
/// record's status says).
async fn contacts_case(provider: Provider) {
    let h = harness().await;
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 6), ("vendor", 4)]).await;
    let customers = seeded.remove("contact").unwrap();
    let suppliers = seeded.remove("vendor").unwrap();
    h.connect(provider, &org).await;
    let pull = |h: &H| h.job(provider, &org, Operation::Pull, Entity::Contact);
    let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(r["counts"]["written"], 10, "{provider}: customers and suppliers: {r}");
    let sandbox_of = |e: &'static str| {
        let (http, sb, org) = (h.http.clone(), &h.sb, org.clone());
        async move {
            let v = sandbox_control::control(
                &http,
                sb,
                "GET",
                &format!("records?provider={}&org_id={org}&entity={e}", sandbox_name(provider)),
                None,
            )
            .await;
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["id"].as_str().unwrap().to_string(), r["value"].clone()))
                .collect::<std::collections::HashMap<_, _>>()
        }
    };
    let mut sandbox = sandbox_of("contact").await;
    sandbox.extend(sandbox_of("vendor").await);
    type Field = fn(&Value) -> Option<&str>;
    let (email, phone): (Field, Field) = match provider {
        Provider::QuickBooks => (|v| v["PrimaryEmailAddr"]["Address"].as_str(), |v| v["PrimaryPhone"]["FreeFormNumber"].as_str()),
        Provider::Xero => (|v| v["EmailAddress"].as_str(), |v| v["Phones"][0]["PhoneNumber"].as_str()),
        Provider::Zoho => (|v| v["email"].as_str(), |v| v["phone"].as_str()),
    };
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
    assert_eq!(stored.len(), 10);
    for s in &stored {
        let c = s.contact.as_ref().expect("a contact");
        let supplier = suppliers.contains(&s.provider_id);
        assert!(supplier || customers.contains(&s.provider_id), "{provider}: {} was seeded", s.provider_id);
        assert_eq!((c.is_customer, c.is_supplier), (!supplier, supplier), "{provider} {}: {c:?}", s.provider_id);
        let want = &sandbox[&s.provider_id];
        assert_eq!(c.emails.first().map(String::as_str), email(want), "{provider}");
        let (receivable, payable) = (c.receivable.as_ref().map(|m| m.minor), c.payable.as_ref().map(|m| m.minor));
        match provider {
            // Zoho's list summaries carry the email and balances, not the phone and addresses.
            Provider::Zoho => {
                assert!(c.addresses.is_empty() && c.phones.is_empty(), "{c:?}");
                let side = if supplier { payable } else { receivable };
                assert_eq!(side, Some(0), "{provider}: {c:?}");
            }
            _ => {
                assert_eq!(c.phones.first().map(String::as_str), phone(want), "{provider}");
                assert_eq!(c.addresses.len(), 1, "{provider}: {c:?}");
                if provider == Provider::QuickBooks {
                    // One balance, on the side the role says.
                    assert_eq!((receivable.is_some(), payable.is_some()), (!supplier, supplier), "{c:?}");
                    assert_eq!(receivable.or(payable), Some(0));
                }
            }
        }
    }
    if provider == Provider::Zoho {
        // The one contact read by id has its phone and address.
        let mut job = h.job(provider, &org, Operation::Webhook, Entity::Contact);
        job.entity_id = Some(suppliers[0].clone());
        job.change = Some(shared::jobs::Change::Updated);
        h.run_through_queue(&h.deps(), &job).await;
        let one = h.store().get_record(&h.tenant, provider, &org, PEntity::Contact, &suppliers[0]).await.unwrap().unwrap();
        let c = one.contact.unwrap();
        assert_eq!((c.phones.first().map(String::as_str), c.addresses.len()), (phone(&sandbox[&suppliers[0]]), 1));
    }

    // Incremental: only the new ones, of either kind.
    h.seed(provider, &org, "contact", 1).await;
    h.seed(provider, &org, "vendor", 2).await;
    let inc = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(inc["counts"]["written"], 3, "{provider}: {inc}");

    // Deletion, the way each provider reports it.
    match provider {
        Provider::QuickBooks => {
            for (e, id) in [("contact", &customers[1]), ("vendor", &suppliers[1])] {
                h.control("POST", "records/delete", Some(json!({"provider": "quickbooks", "org_id": org, "entity": e, "ids": [id]}))).await;
            }
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["deleted"], 2, "CDC reports customers and vendors: {r}");
        }
        Provider::Xero => {
            // Xero contacts are archived, not deleted: the record stays, its status says so.
            let mut v = sandbox[&suppliers[1]].clone();
            v["ContactStatus"] = json!("ARCHIVED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "vendor", "records": [v]}))).await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["written"], 1, "{r}");
            let one = h.store().get_record(&h.tenant, provider, &org, PEntity::Contact, &suppliers[1]).await.unwrap().unwrap();
            assert_eq!((one.status.as_deref(), one.deleted), (Some("ARCHIVED"), false));
        }
        Provider::Zoho => {
            for (e, id) in [("contact", &customers[1]), ("vendor", &suppliers[1])] {
                h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": e, "ids": [id]}))).await;
            }
            backdate_all(&h, provider, &org, PEntity::Contact).await;
            let mut full = pull(&h);
            full.cursor = Some("full".into());
            let r = h.run_through_queue(&h.deps(), &full).await;
            assert_eq!(r["counts"]["deleted"], 2, "{r}");
        }
    }
    if provider != Provider::Xero {
        let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
        let mut deleted: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
        deleted.sort();
        let mut want = vec![customers[1].as_str(), suppliers[1].as_str()];
        want.sort();
        assert_eq!(deleted, want, "{provider}");
    }
}

#[tokio::test]
async fn quickbooks_customers_and_suppliers() {
    Box::pin(contacts_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_customers_and_suppliers() {
    Box::pin(contacts_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_customers_and_suppliers() {
    Box::pin(contacts_case(Provider::Zoho)).await;
}

/// Purchase orders of every provider: a full pull stores each as a document of kind
/// purchase_order with its supplier and the sandbox's total, lines that add up (Zoho's list
/// summaries have none), open and owing nothing; an incremental pull takes only the new ones; a
/// deletion reaches the copy the way the provider reports it.
async fn purchase_orders_case(provider: Provider) {
    use shared::books::{DocumentKind, DocumentStatus};
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::PurchaseOrder);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, mut seeded) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("purchase_order", 12)]).await;
    let ids = seeded.remove("purchase_order").unwrap();
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    let pull = |h: &H| h.job(provider, &org, Operation::Pull, Entity::PurchaseOrder);
    let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(r["counts"]["written"], 12, "{provider}: {r}");
    let sandbox = h.control("GET", &format!("records?provider={}&org_id={org}&entity=purchase_order", sandbox_name(provider)), None).await;
    let sandbox: std::collections::HashMap<String, Value> =
        sandbox["records"].as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["value"].clone())).collect();
    let total_key = match provider {
        Provider::QuickBooks => "TotalAmt",
        Provider::Xero => "Total",
        Provider::Zoho => "total",
    };
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::PurchaseOrder).await.unwrap();
    assert_eq!(stored.len(), 12);
    for s in &stored {
        assert!(ids.contains(&s.provider_id));
        let d = s.document.as_ref().unwrap();
        assert_eq!((d.kind, d.status, d.amount_due.as_ref()), (DocumentKind::PurchaseOrder, DocumentStatus::Open, None), "{provider}");
        let contact = d.contact.as_ref().and_then(|c| c.id.clone());
        assert!(contact.is_some() && contact == s.contact_id, "{provider}: the supplier is the contact");
        let total = d.total.as_ref().unwrap().minor;
        assert_eq!(total, shared::money::parse_minor(&sandbox[&s.provider_id][total_key].to_string(), 2).unwrap(), "{provider}");
        if provider == Provider::Zoho {
            assert!(!d.lines_complete);
            continue;
        }
        let sum: i64 = d.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).sum();
        assert_eq!(sum + d.tax.as_ref().unwrap().minor, total, "{provider}: lines and tax make the total");
    }
    h.seed(provider, &org, "purchase_order", 2).await;
    let inc = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(inc["counts"]["written"], 2, "{provider}: {inc}");
    let gone = ids[0].clone();
    match provider {
        Provider::QuickBooks => {
            h.control(
                "POST",
                "records/delete",
                Some(json!({"provider": "quickbooks", "org_id": org, "entity": "purchase_order", "ids": [gone]})),
            )
            .await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["deleted"], 1, "CDC reports it: {r}");
        }
        Provider::Xero => {
            let mut v = sandbox[&gone].clone();
            v["Status"] = json!("DELETED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "purchase_order", "records": [v]}))).await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["written"], 1, "{r}");
        }
        Provider::Zoho => {
            h.control(
                "POST",
                "records/delete",
                Some(json!({"provider": "zoho", "org_id": org, "entity": "purchase_order", "ids": [gone]})),
            )
            .await;
            backdate_all(&h, provider, &org, PEntity::PurchaseOrder).await;
            let mut full = pull(&h);
            full.cursor = Some("full".into());
            let r = h.run_through_queue(&h.deps(), &full).await;
            assert_eq!(r["counts"]["deleted"], 1, "{r}");
        }
    }
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::PurchaseOrder).await.unwrap();
    let deleted: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
    assert_eq!(deleted, vec![gone.as_str()], "{provider}");
}

#[tokio::test]
async fn quickbooks_purchase_orders() {
    Box::pin(purchase_orders_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_purchase_orders() {
    Box::pin(purchase_orders_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_purchase_orders() {
    Box::pin(purchase_orders_case(Provider::Zoho)).await;
}

/// A bill written in the common model for each provider: its supplier is a stored supplier (a
/// customer is refused for a bill), its lines' accounts and tax codes are the org's (an unknown tax
/// code is refused once the tenant keeps tax rates), all before any call; then the bill is made.
async fn bill_writes_case(provider: Provider) {
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.extend([Entity::Bill, Entity::TaxRate]);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, _) = sandbox_control::make_org(&h.http, &h.sb, provider, &[("contact", 1), ("account", 5), ("bill", 1)]).await;
    h.connect(provider, &org).await;
    for e in [Entity::Contact, Entity::Account, Entity::TaxRate, Entity::Bill] {
        h.run_through_queue(&h.deps(), &h.job(provider, &org, Operation::Pull, e)).await;
    }
    let store = h.store();
    let bill = store.list_records(&h.tenant, provider, &org, PEntity::Bill).await.unwrap().remove(0);
    let supplier = bill.contact_id.clone().expect("the seeded bill's supplier");
    let contacts = store.list_records(&h.tenant, provider, &org, PEntity::Contact).await.unwrap();
    let customer = contacts
        .iter()
        .find(|c| c.contact.as_ref().is_some_and(|k| k.is_customer && !k.is_supplier))
        .expect("a customer")
        .provider_id
        .clone();
    let accounts = store.list_records(&h.tenant, provider, &org, PEntity::Account).await.unwrap();
    let expense =
        accounts.iter().find(|a| a.name.as_deref().is_some_and(|n| n.starts_with("Office Expenses"))).expect("an expense account");
    let tax_code = bill.document.as_ref().and_then(|d| d.lines.iter().find_map(|l| l.tax_code.clone()));
    let record = |contact: &str, tax: Option<&str>| {
        let mut line = json!({"description": "Paper", "quantity": "10", "unit_price": "4.50", "account": {"id": expense.provider_id}});
        if let Some(t) = tax {
            line["tax_code"] = json!(t);
        }
        json!({"action": "create", "requested_by": WRITER, "record": {"contact": {"id": contact}, "number": "B-100",
            "issue_date": "2026-12-01", "due_date": "2026-12-31", "lines": [line], "subtotal": 4500}})
    };
    h.control("DELETE", "counters", None).await;
    let r = h.write(provider, &org, Entity::Bill, record(&customer, Some("NOPE"))).await;
    let codes: Vec<&str> = r["problems"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"wrong_contact_role"), "{provider}: {r}");
    assert!(codes.contains(&"unknown_tax_code"), "{provider}: {r}");
    assert_eq!(h.calls(api_prefix(provider)).await, 0, "{provider}: refused before any call");
    let r = h.write(provider, &org, Entity::Bill, record(&supplier, tax_code.as_deref())).await;
    assert_eq!(r["outcome"], "applied", "{provider}: {r}");
    let id = r["provider_id"].as_str().unwrap();
    let stored = store.get_record(&h.tenant, provider, &org, PEntity::Bill, id).await.unwrap().unwrap();
    let d = stored.document.as_ref().unwrap();
    assert_eq!((d.kind, stored.contact_id.as_deref()), (shared::books::DocumentKind::Bill, Some(supplier.as_str())), "{provider}");
    assert_eq!(d.subtotal.as_ref().map(|m| m.minor), Some(4500), "{provider}: {d:?}");
}

#[tokio::test]
async fn quickbooks_bill_writes() {
    Box::pin(bill_writes_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bill_writes() {
    Box::pin(bill_writes_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bill_writes() {
    Box::pin(bill_writes_case(Provider::Zoho)).await;
}

/// Bank transactions and expenses of every provider, read from each of its collections in one
/// pass: a full pull stores every expense, deposit and transfer the sandbox has (and Xero's
/// transfer sides in BankTransactions) with its kind, its bank account among the org's bank
/// accounts, the sandbox's total in minor units and lines that add up to it; an incremental pull
/// takes only the new ones; a deletion reaches the copy the way the provider reports it.
async fn bank_transactions_case(provider: Provider) {
    use shared::books::bank::{BankKind, BankStatus};
    let h = harness().await;
    let tenants = h.tenants();
    let mut t = tenants.get(&h.tenant).await.unwrap();
    t.config.enabled_entities.push(Entity::BankTransaction);
    tenants.update(&t, Utc::now()).await.unwrap();
    let (org, mut seeded) =
        sandbox_control::make_org(&h.http, &h.sb, provider, &[("expense", 4), ("bank_transaction", 3), ("bank_transfer", 2)]).await;
    let expenses = seeded.remove("expense").unwrap();
    let transfers = seeded.remove("bank_transfer").unwrap();
    let scopes = shared::connect::scopes_for(&tenants.get(&h.tenant).await.unwrap(), provider);
    let svc = h.service(StdDuration::from_secs(10));
    connect_sandbox(&h.http, &svc, &h.env.grants(), &h.tenant, provider, Some(&org), &scopes, None).await;
    let pull = |h: &H| h.job(provider, &org, Operation::Pull, Entity::BankTransaction);
    let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
    // Xero lists each transfer's two sides in BankTransactions as well.
    let want = if provider == Provider::Xero { 13 } else { 9 };
    assert_eq!(r["counts"]["written"], want, "{provider}: {r}");
    let mut sandbox = std::collections::HashMap::new();
    for e in ["expense", "bank_transaction", "bank_transfer", "account"] {
        let out = h.control("GET", &format!("records?provider={}&org_id={org}&entity={e}", sandbox_name(provider)), None).await;
        for r in out["records"].as_array().unwrap() {
            sandbox.insert(r["id"].as_str().unwrap().to_string(), (e, r["value"].clone()));
        }
    }
    let banks: Vec<&String> = sandbox
        .iter()
        .filter(|(_, (e, v))| {
            *e == "account"
                && ["AccountType", "Type", "account_type"].iter().any(|k| matches!(v[*k].as_str(), Some("Bank" | "BANK" | "bank")))
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(banks.len(), 2, "{provider}: the business and savings accounts");
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::BankTransaction).await.unwrap();
    assert_eq!(stored.len(), want as usize);
    let mut kinds = std::collections::BTreeMap::new();
    for s in &stored {
        let (entity, v) = sandbox.get(&s.provider_id).unwrap_or_else(|| panic!("{provider}: {} is the sandbox's", s.provider_id));
        let b = s.reference.bank_transaction.as_ref().expect("a bank transaction");
        *kinds.entry(format!("{:?}", b.kind)).or_insert(0) += 1;
        assert_eq!(b.status, BankStatus::Posted, "{provider}");
        let total = ["TotalAmt", "Total", "total", "Amount", "amount"].iter().find_map(|k| v.get(*k)).unwrap();
        let total = shared::money::parse_minor(&total.to_string(), 2).unwrap();
        assert_eq!(b.total.as_ref().map(|m| m.minor), Some(total), "{provider}: {entity} {}", s.provider_id);
        let bank = b.bank_account.as_ref().and_then(|a| a.id.clone()).unwrap();
        assert!(banks.contains(&&bank), "{provider}: {entity} is in a bank account of the org");
        match b.kind {
            BankKind::Transfer if *entity == "bank_transfer" => {
                let to = b.to_account.as_ref().and_then(|a| a.id.clone()).unwrap();
                assert!(banks.contains(&&to) && to != bank, "{provider}: a transfer goes to the other bank account");
            }
            BankKind::Transfer => assert_eq!(provider, Provider::Xero, "only Xero lists a transfer's sides"),
            _ if provider == Provider::Zoho && *entity == "expense" => {
                assert!(!b.lines_complete, "Zoho's list summaries leave an expense's lines out");
                assert!(s.contact_id.is_some());
            }
            // Zoho's bank transactions have no lines: the amount and the two accounts.
            _ if provider == Provider::Zoho => assert!(b.lines.is_empty() && b.lines_complete && b.from_account.is_some()),
            _ => {
                let lines: i64 = b.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).sum();
                assert_eq!(lines + b.tax.as_ref().map_or(0, |t| t.minor), total, "{provider}: lines and tax make the total");
                // An expense names its supplier; a deposit names its payer on the line only.
                assert!(b.lines_complete && (*entity != "expense" || s.contact_id.is_some()), "{provider}: {entity}");
            }
        }
    }
    let (spend, receive) = match provider {
        Provider::Zoho => ("Expense", "Receive"),
        _ => ("Spend", "Receive"),
    };
    assert_eq!((kinds[spend], kinds[receive], kinds["Transfer"]), (4, 3, if provider == Provider::Xero { 6 } else { 2 }), "{provider}");
    h.seed(provider, &org, "expense", 2).await;
    let inc = h.run_through_queue(&h.deps(), &pull(&h)).await;
    assert_eq!(inc["counts"]["written"], 2, "{provider}: {inc}");
    let gone = expenses[0].clone();
    match provider {
        Provider::QuickBooks => {
            h.control("POST", "records/delete", Some(json!({"provider": "quickbooks", "org_id": org, "entity": "expense", "ids": [gone]})))
                .await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["deleted"], 1, "CDC reports it: {r}");
        }
        // Deleted in Xero is Status DELETED: a deleted transfer is listed only with includeDeleted,
        // which the pull asks for.
        Provider::Xero => {
            let mut v = sandbox[&gone].1.clone();
            v["Status"] = json!("DELETED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "expense", "records": [v]}))).await;
            let mut x = sandbox[&transfers[0]].1.clone();
            x["Status"] = json!("DELETED");
            h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "bank_transfer", "records": [x]}))).await;
            let r = h.run_through_queue(&h.deps(), &pull(&h)).await;
            assert_eq!(r["counts"]["written"], 2, "{r}");
        }
        Provider::Zoho => {
            h.control("POST", "records/delete", Some(json!({"provider": "zoho", "org_id": org, "entity": "expense", "ids": [gone]}))).await;
            backdate_all(&h, provider, &org, PEntity::BankTransaction).await;
            let mut full = pull(&h);
            full.cursor = Some("full".into());
            let r = h.run_through_queue(&h.deps(), &full).await;
            assert_eq!(r["counts"]["deleted"], 1, "{r}");
        }
    }
    let stored = h.store().list_records(&h.tenant, provider, &org, PEntity::BankTransaction).await.unwrap();
    let mut deleted: Vec<&str> = stored.iter().filter(|s| s.deleted).map(|s| s.provider_id.as_str()).collect();
    let mut want = vec![gone.as_str()];
    if provider == Provider::Xero {
        want.push(transfers[0].as_str());
    }
    deleted.sort();
    want.sort();
    assert_eq!(deleted, want, "{provider}");
}

#[tokio::test]
async fn quickbooks_bank_transactions() {
    Box::pin(bank_transactions_case(Provider::QuickBooks)).await;
}

#[tokio::test]
async fn xero_bank_transactions() {
    Box::pin(bank_transactions_case(Provider::Xero)).await;
}

#[tokio::test]
async fn zoho_bank_transactions() {
    Box::pin(bank_transactions_case(Provider::Zoho)).await;
}
