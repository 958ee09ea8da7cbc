//! The committed sample events through the handler against the local stack: every poison message
//! is dead-lettered with its reason and acknowledged (none reported failed, so none is retried).

use aws_lambda_events::sqs::SqsEvent;
use integration_tests::aws;
use shared::http_client::HttpClient;
use shared::refresh::TokenService;
use shared::worker::{handle_batch, Disposition, SyncDeps};

#[tokio::test]
async fn the_poison_sample_is_dead_lettered_not_retried() {
    let mut env = aws().await;
    // sync.failed events go to a queue of this test's own, not the shared one other tests read.
    let q = env.clients.sqs.create_queue().queue_name(integration_tests::unique("events")).send().await.unwrap();
    env.config.queues.events = q.queue_url.unwrap();
    let http = HttpClient::new(std::time::Duration::from_secs(5)).unwrap();
    let deps = SyncDeps::new(&env.config, &env.clients, TokenService::new(&env.config, &env.clients, http));
    let event: SqsEvent = serde_json::from_str(include_str!("../../../events/sync-worker/poison.json")).unwrap();
    let messages: Vec<_> = event.records.iter().map(sync_worker::in_message).collect();
    assert_eq!(messages.len(), 4);
    // SQS's 12-hour visibility limit counts from the first receipt, which the event carries.
    assert!(messages.iter().all(|m| m.first_received_ms.is_some_and(|t| t > 1_500_000_000_000)), "{messages:?}");
    // The sample's queue ARN is the local stack's low queue: its RedrivePolicy names the DLQ.
    let results = handle_batch(&deps, &messages, chrono::Utc::now() + chrono::Duration::seconds(30)).await;
    for (id, d) in &results {
        assert!(matches!(d, Disposition::DeadLettered { code: 4000, .. }), "{id}: {d:?}");
    }
    assert!(sync_worker::response(&results).batch_item_failures.is_empty());
}

/// The batch, push and report samples name a tenant the local stack does not have: permanent, so each job is
/// dead-lettered with 6001 and acknowledged (what the emulator smoke expects: no failures).
#[tokio::test]
async fn jobs_of_an_unknown_tenant_are_dead_lettered_once() {
    let mut env = aws().await;
    // sync.failed events go to a queue of this test's own, not the shared one other tests read.
    let q = env.clients.sqs.create_queue().queue_name(integration_tests::unique("events")).send().await.unwrap();
    env.config.queues.events = q.queue_url.unwrap();
    let http = HttpClient::new(std::time::Duration::from_secs(5)).unwrap();
    let deps = SyncDeps::new(&env.config, &env.clients, TokenService::new(&env.config, &env.clients, http));
    for sample in [
        include_str!("../../../events/sync-worker/batch.json"),
        include_str!("../../../events/sync-worker/push.json"),
        include_str!("../../../events/sync-worker/report.json"),
    ] {
        let event: SqsEvent = serde_json::from_str(sample).unwrap();
        let messages: Vec<_> = event.records.iter().map(sync_worker::in_message).collect();
        let results = handle_batch(&deps, &messages, chrono::Utc::now() + chrono::Duration::seconds(30)).await;
        for (id, d) in &results {
            assert!(matches!(d, Disposition::DeadLettered { code: 6001, .. }), "{id}: {d:?}");
        }
        assert!(sync_worker::response(&results).batch_item_failures.is_empty());
    }
}
