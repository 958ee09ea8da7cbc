//! The committed sample events through the handler against the local stack: every poison message
//! is dead-lettered with its reason and acknowledged (none reported failed, so none is retried).

use aws_lambda_events::sqs::SqsEvent;
use integration_tests::aws;
use integration_tests::harness::own_queue;
use shared::worker::{handle_batch, Disposition};

#[tokio::test]
async fn the_poison_sample_is_dead_lettered_not_retried() {
    let mut env = aws().await;
    // sync.failed events go to a queue of this test's own, not the shared one other tests read.
    env.config.queues.events = own_queue(&env, "events").await;
    let deps = env.sync_deps(std::time::Duration::from_secs(5));
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
    env.config.queues.events = own_queue(&env, "events").await;
    let deps = env.sync_deps(std::time::Duration::from_secs(5));
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

/// The largest batch SQS can hand the worker (template.yaml's BatchSize of 10, each message at the
/// queue's 256 KiB quota and made of characters JSON must escape) fits Lambda's 6 MB event quota; each
/// poison message among them still reaches the DLQ with its code (the dead-letter attributes fit
/// beside a body at the quota: the harness refuses a message over it, as SQS does), and the answer fits.
#[tokio::test]
async fn a_full_batch_of_messages_at_the_size_quota_is_dead_lettered_within_lambdas_quotas() {
    use integration_tests::aws_rules::{LAMBDA_SYNC_PAYLOAD_MAX, SQS_BATCH_MAX, SQS_MESSAGE_MAX};
    let mut env = aws().await;
    env.config.queues.events = own_queue(&env, "events").await;
    let deps = env.sync_deps(std::time::Duration::from_secs(5));
    let sample: SqsEvent = serde_json::from_str(include_str!("../../../events/sync-worker/poison.json")).unwrap();
    let mut event = sample.clone();
    event.records.clear();
    for i in 0..SQS_BATCH_MAX {
        let mut r = sample.records[0].clone();
        r.message_id = Some(format!("{}-{i}", integration_tests::unique("big")));
        r.body = Some(format!("{{not json {}", "\"".repeat(SQS_MESSAGE_MAX - 10)));
        event.records.push(r);
    }
    let size = serde_json::to_vec(&event).unwrap().len();
    assert!(size <= LAMBDA_SYNC_PAYLOAD_MAX, "a {size}-byte event");
    let messages: Vec<_> = event.records.iter().map(sync_worker::in_message).collect();
    let results = handle_batch(&deps, &messages, chrono::Utc::now() + chrono::Duration::seconds(60)).await;
    assert_eq!(results.len(), SQS_BATCH_MAX);
    for (id, d) in &results {
        assert!(matches!(d, Disposition::DeadLettered { code: 4000, .. }), "{id}: {d:?}");
    }
    let answer = serde_json::to_vec(&sync_worker::response(&results)).unwrap();
    assert!(answer.len() <= LAMBDA_SYNC_PAYLOAD_MAX);
}
