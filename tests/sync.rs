//! The sync worker against moto and the provider sandbox: full and incremental pulls over pages for
//! every provider, exactly-once under redelivery and concurrency, resuming after a crash, pushes
//! retried after a timeout, a 429 storm, poison messages, quota, scopes.
//!
//! Each test runs its own sandbox, its own tenant and its own queues (sync, events, DLQ), so tests
//! in parallel never read each other's messages. Messages go through real SQS queues and the test
//! plays the Lambda event source mapping (receive, run the batch, delete what was acknowledged).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use integration_tests::{aws, connect_sandbox, unique, TestEnv};
use reqwest::Url;
use serde_json::{json, Value};
use shared::events::AppEvent;
use shared::jobs::{Operation, Source, SyncJob, JOB_VERSION};
use shared::providers::model::Entity as PEntity;
use shared::providers::AccountingProvider;
use shared::refresh::TokenService;
use shared::store::grants::{Grant, GrantStore};
use shared::sync::batch::{handle_batch, Disposition, InMessage};
use shared::sync::worker::{run_job, Outcome};
use shared::sync::{SyncDeps, WorkerSettings};
use shared::tenancy::{Entity, Plan, Priority, Tenant, TenantConfig, TenantStore};
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
    shared::http_client::install_crypto_provider();
    let mut env = aws().await;
    if own_grants {
        env.config.tables.grants = integration_tests::copy_grants_table(&env).await;
    }
    let sb = sandbox::spawn(sandbox::SandboxConfig { seed: false, ..Default::default() }).await.expect("sandbox starts");
    env.config.provider_base_url = Some(Url::parse(&sb.base_url).unwrap());
    let sqs = &env.clients.sqs;
    let q = |name: String| async move { sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap() };
    env.config.queues.events = q(unique("events")).await;
    let dlq = q(unique("sync-dlq")).await;
    let dlq_arn = queue_arn(&env, &dlq).await;
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
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let h = H { env, sb, http, tenant: unique("tenant"), dlq };
    let cfg = TenantConfig { return_urls: vec!["https://app.example.com/integrations".into()], ..Default::default() };
    h.tenants().create(&Tenant::new(&h.tenant, "Acme", Plan::Enterprise, cfg, Utc::now())).await.unwrap();
    h
}

async fn queue_arn(env: &TestEnv, url: &str) -> String {
    let out = env
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    out.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone()
}

fn org_id_for(provider: Provider) -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    match provider {
        Provider::Xero => uuid::Uuid::new_v4().to_string(),
        Provider::QuickBooks => format!("9{:015}", n % 1_000_000_000_000_000),
        Provider::Zoho => format!("8{:010}", n % 10_000_000_000),
    }
}

fn sandbox_name(p: Provider) -> &'static str {
    p.as_str()
}

impl H {
    fn tenants(&self) -> TenantStore {
        TenantStore::new(self.env.clients.dynamodb.clone(), self.env.config.tables.tenants.clone())
    }

    fn service(&self, timeout: StdDuration) -> TokenService {
        let http = shared::http_client::HttpClient::new(timeout).unwrap();
        TokenService::new(&self.env.config, &self.env.clients, http)
    }

    fn deps_with(&self, settings: WorkerSettings, timeout: StdDuration) -> SyncDeps {
        SyncDeps::new(&self.env.config, &self.env.clients, self.service(timeout)).with_settings(settings)
    }

    fn deps(&self) -> SyncDeps {
        self.deps_with(WorkerSettings::default(), StdDuration::from_secs(10))
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_sandbox/{path}", self.sb.base_url);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "control {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// A fresh org holding `count` generated records of `entity`, stamped an hour in the past so a
    /// later incremental pass cannot see them again through its overlap window.
    async fn make_org(&self, provider: Provider, entity: &str, count: usize) -> (String, Vec<String>) {
        let org = org_id_for(provider);
        self.control("POST", "clock", Some(json!({"advance_seconds": -3600}))).await;
        let out = self
            .control(
                "POST",
                "seed",
                Some(json!({"provider": sandbox_name(provider), "org_id": org, "dc": "us", "entity": entity, "count": count})),
            )
            .await;
        self.control("POST", "clock", Some(json!({"advance_seconds": 3600}))).await;
        let ids = out["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        (org, ids)
    }

    async fn seed(&self, provider: Provider, org: &str, entity: &str, count: usize) -> Vec<String> {
        let out = self
            .control("POST", "seed", Some(json!({"provider": sandbox_name(provider), "org_id": org, "entity": entity, "count": count})))
            .await;
        out["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    }

    /// Sandbox calls whose key ("METHOD /path") contains `needle`.
    async fn calls(&self, needle: &str) -> u64 {
        let c = self.control("GET", "counters", None).await;
        c["calls"].as_object().unwrap().iter().filter(|(k, _)| k.contains(needle)).filter_map(|(_, v)| v.as_u64()).sum()
    }

    /// A real grant for `org`: consent at the sandbox, code exchange, sealed and stored like the
    /// connect flow does, with its connection.
    async fn connect(&self, provider: Provider, org: &str) -> Grant {
        let svc = self.service(StdDuration::from_secs(10));
        let store = GrantStore::new(self.env.clients.dynamodb.clone(), self.env.config.tables.grants.clone());
        connect_sandbox(&self.http, &svc, &store, &self.tenant, provider, Some(org), &[], None).await.0
    }

    fn job(&self, provider: Provider, org: &str, operation: Operation, entity: Entity) -> SyncJob {
        SyncJob {
            version: JOB_VERSION,
            job_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: self.tenant.clone(),
            provider,
            org_id: org.to_string(),
            operation,
            entity,
            entity_id: None,
            cursor: None,
            change: None,
            merged_from: None,
            priority: Priority::Normal,
            idempotency_key: unique("app"),
            correlation_id: unique("corr"),
            requested_at: Utc::now(),
            source: Source::App,
            totals_before: None,
        }
    }

    async fn send(&self, bodies: &[String]) {
        for b in bodies {
            self.env.clients.sqs.send_message().queue_url(&self.env.config.queues.sync_normal).message_body(b).send().await.unwrap();
        }
    }

    /// Plays the event source mapping on every sync queue: receive up to 10, run the batch, delete
    /// the acknowledged ones; until the queues stay empty for `idle` consecutive polls.
    async fn pump(&self, deps: &SyncDeps, idle: u32) -> Vec<(String, Disposition)> {
        let mut all = Vec::new();
        let mut empty = 0;
        let urls =
            [self.env.config.queues.sync_high.clone(), self.env.config.queues.sync_normal.clone(), self.env.config.queues.sync_low.clone()];
        while empty < idle {
            let mut got_any = false;
            for url in &urls {
                let out = self
                    .env
                    .clients
                    .sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
                    .send()
                    .await
                    .unwrap();
                let msgs = out.messages.unwrap_or_default();
                if msgs.is_empty() {
                    continue;
                }
                got_any = true;
                let arn = queue_arn(&self.env, url).await;
                let ins: Vec<InMessage> = msgs
                    .iter()
                    .map(|m| InMessage {
                        message_id: m.message_id.clone().unwrap(),
                        receipt_handle: m.receipt_handle.clone().unwrap(),
                        body: m.body.clone().unwrap_or_default(),
                        event_source_arn: arn.clone(),
                        receive_count: m
                            .attributes
                            .as_ref()
                            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(1),
                        first_received_ms: m
                            .attributes
                            .as_ref()
                            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateFirstReceiveTimestamp))
                            .and_then(|c| c.parse().ok()),
                    })
                    .collect();
                let results = handle_batch(deps, &ins, Utc::now() + Duration::seconds(90)).await;
                for (m, (_, d)) in ins.iter().zip(&results) {
                    if d.acknowledged() {
                        self.env.clients.sqs.delete_message().queue_url(url).receipt_handle(&m.receipt_handle).send().await.unwrap();
                    }
                }
                all.extend(results);
            }
            empty = if got_any { 0 } else { empty + 1 };
        }
        all
    }

    async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 2 {
            let r = self
                .env
                .clients
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() {
                empty += 1;
            }
            for m in msgs {
                self.env
                    .clients
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
                out.push(m);
            }
        }
        out
    }

    async fn events(&self) -> Vec<AppEvent> {
        let schema: Value = serde_json::from_str(include_str!("../schemas/app-event.v1.json")).unwrap();
        self.drain(&self.env.config.queues.events.clone())
            .await
            .into_iter()
            .map(|m| {
                let v: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
                shared::events::check_against_schema(&schema, &v).unwrap_or_else(|e| panic!("{e}: {v}"));
                serde_json::from_value(v).unwrap()
            })
            .collect()
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
        shared::sync::SyncStore::new(self.env.clients.dynamodb.clone(), self.env.config.tables.sync.clone())
    }

    async fn audit_calls(&self) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let out = self
            .env
            .clients
            .dynamodb
            .query()
            .table_name(&self.env.config.tables.tenants)
            .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{}", self.tenant)))
            .expression_attribute_values(":p", aws_sdk_dynamodb::types::AttributeValue::S("AUDIT#".into()))
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.get("event").and_then(|e| e.as_s().ok()).map(String::as_str) == Some("provider_call"))
            .collect()
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
    let crashing = h.deps_with(crash, StdDuration::from_secs(10));
    let job = h.job(Provider::QuickBooks, &org, Operation::Pull, Entity::Invoice);
    let msg = InMessage {
        message_id: "m-1".into(),
        receipt_handle: "r".into(),
        body: job.to_json(),
        event_source_arn: String::new(),
        receive_count: 1,
        first_received_ms: None,
    };
    let deadline = Utc::now() + Duration::seconds(4);
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
    let out = handle_batch(&deps, &[msg], Utc::now() + Duration::seconds(60)).await;
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
    body["payload"] = payload;
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
            let second = h.pump(&deps, 12).await;
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
    assert!(h.store().job_status(&h.tenant, &job.idempotency_key).await.unwrap().is_none(), "the claim was released for the retry");
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
    let initial = shared::sync::initial::InitialSync::new(
        h.env.clients.dynamodb.clone(),
        h.env.config.tables.grants.clone(),
        shared::jobs::JobQueue::new(sqs.clone(), shared::jobs::SyncQueues::from_config(&h.env.config)),
        shared::events::EventPublisher::new(sqs.clone(), h.env.config.queues.events.clone()),
    );
    let grants = GrantStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.grants.clone());
    let conn = grants.get_connection(&h.tenant, Provider::Xero, &org).await.unwrap().unwrap();
    assert_eq!(initial.start(&t, &conn, Utc::now()).await.unwrap(), shared::sync::initial::Started::Enqueued { jobs: 1 });
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
    let between_pages: shared::sync::worker::CrashPoint = Arc::new(move |pages| {
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
