//! Real SQS queues in the tests: the test plays the Lambda event source mapping for the sync worker
//! (receive, run the batch, delete what was acknowledged) and reads what landed on the events queue
//! and the DLQ.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use chrono::{Duration, Utc};
use serde_json::Value;
use shared::events::AppEvent;
use shared::worker::batch::{handle_batch, Disposition, InMessage};
use shared::worker::SyncDeps;

use crate::TestEnv;

/// The queue's ARN, as the event source mapping passes it.
pub async fn queue_arn(env: &TestEnv, url: &str) -> String {
    let out = env.clients.sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await.unwrap();
    out.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// Whether every queue of `urls` is settled: nothing visible, in flight or delayed, so nothing can
/// arrive on it but from a new send. The local emulators count exactly (SQS's own counts are
/// approximate and may lag); this only lets the test's polling stop early, never decides what it
/// asserts. An engine that does not give the counts is never taken as settled.
pub async fn settled(env: &TestEnv, urls: &[String]) -> bool {
    for url in urls {
        let Ok(out) = env
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
        else {
            return false;
        };
        let attrs = out.attributes.unwrap_or_default();
        let count = |n: QueueAttributeName| attrs.get(&n).and_then(|v| v.parse::<u64>().ok());
        let counts = [
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ];
        if counts != [Some(0); 3] {
            return false;
        }
    }
    true
}

/// Receives and deletes everything on a queue (with its message attributes), until it is
/// [`settled`] or has been empty for two one-second polls in a row.
pub async fn drain(env: &TestEnv, url: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut empty = 0;
    let urls = [url.to_string()];
    while empty < 2 {
        let look = |wait| {
            env.clients
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .message_attribute_names("All")
                .send()
        };
        let mut msgs = look(0).await.unwrap().messages.unwrap_or_default();
        if msgs.is_empty() {
            if settled(env, &urls).await {
                break;
            }
            msgs = look(1).await.unwrap().messages.unwrap_or_default();
        }
        if msgs.is_empty() {
            empty += 1;
        }
        for m in msgs {
            env.clients.sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle.clone().unwrap()).send().await.unwrap();
            out.push(m);
        }
    }
    out
}

/// Every event on the events queue, each checked against the published schema; with its raw body.
pub async fn app_events(env: &TestEnv) -> Vec<(AppEvent, String)> {
    let schema: Value = serde_json::from_str(include_str!("../../schemas/app-event.v1.json")).unwrap();
    drain(env, &env.config.queues.events)
        .await
        .into_iter()
        .map(|m| {
            let body = m.body.unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            shared::events::check_against_schema(&schema, &v).unwrap_or_else(|e| panic!("{e}: {v}"));
            (serde_json::from_value(v).unwrap(), body)
        })
        .collect()
}

/// The batch the event source mapping hands the worker: each message with its source queue's ARN.
/// `counted`: with its receive count and first receipt time (the receive asked for them); without,
/// each is a first receipt.
pub fn batch(msgs: &[Message], arn: &str, counted: bool) -> Vec<InMessage> {
    fn attr(m: &Message, name: MessageSystemAttributeName, counted: bool) -> Option<&String> {
        m.attributes.as_ref().and_then(|a| a.get(&name)).filter(|_| counted)
    }
    msgs.iter()
        .map(|m| InMessage {
            message_id: m.message_id.clone().unwrap(),
            receipt_handle: m.receipt_handle.clone().unwrap(),
            body: m.body.clone().unwrap_or_default(),
            event_source_arn: arn.to_string(),
            receive_count: attr(m, MessageSystemAttributeName::ApproximateReceiveCount, counted).and_then(|c| c.parse().ok()).unwrap_or(1),
            first_received_ms: attr(m, MessageSystemAttributeName::ApproximateFirstReceiveTimestamp, counted).and_then(|c| c.parse().ok()),
        })
        .collect()
}

/// Deletes the messages of a batch that the worker acknowledged, as the event source mapping does.
pub async fn delete_acknowledged(env: &TestEnv, url: &str, batch: &[InMessage], results: &[(String, Disposition)]) {
    for (m, (_, d)) in batch.iter().zip(results) {
        if d.acknowledged() {
            env.clients.sqs.delete_message().queue_url(url).receipt_handle(&m.receipt_handle).send().await.unwrap();
        }
    }
}

/// How long an idle round of [`pump`] waits for a message on every queue at once. The worker's
/// shortest wait is 1 s (jittered by up to 10 %), so a job sent back for a moment is still taken
/// within one idle round.
const IDLE_WAIT_SECONDS: i32 = 2;

async fn receive(env: &TestEnv, url: &str, wait_seconds: i32, counted: bool) -> Vec<Message> {
    let mut receive = env.clients.sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(wait_seconds);
    if counted {
        receive = receive
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp);
    }
    receive.send().await.unwrap().messages.unwrap_or_default()
}

/// Plays the event source mapping on the queues `urls` (each with its ARN in `arns`): receive up to
/// 10, run the batch with 90 s to its deadline, delete the acknowledged ones; until the queues stay
/// empty for `idle` consecutive idle rounds (each a long poll of every queue at once, up to
/// [`IDLE_WAIT_SECONDS`], or none when they are [`settled`]). `counted` as in [`batch`]. Returns
/// each message received with what the batch made of it.
pub async fn pump(
    env: &TestEnv,
    deps: &SyncDeps,
    urls: &[String],
    arns: &[String],
    idle: u32,
    counted: bool,
) -> Vec<(InMessage, (String, Disposition))> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < idle {
        // A look at each queue without waiting finds what is already there; only when nothing is
        // does the round wait, on every queue at once (the test's time is mostly these waits).
        let mut received = Vec::new();
        for url in urls {
            received.push(receive(env, url, 0, counted).await);
        }
        if received.iter().all(Vec::is_empty) {
            // Nothing anywhere, not even in flight or delayed: a long poll would only wait.
            if settled(env, urls).await {
                empty += 1;
                continue;
            }
            received = futures::future::join_all(urls.iter().map(|url| receive(env, url, IDLE_WAIT_SECONDS, counted))).await;
        }
        let mut got_any = false;
        for ((msgs, url), arn) in received.into_iter().zip(urls).zip(arns) {
            if msgs.is_empty() {
                continue;
            }
            got_any = true;
            let ins = batch(&msgs, arn, counted);
            let results = handle_batch(deps, &ins, Utc::now() + Duration::seconds(90)).await;
            delete_acknowledged(env, url, &ins, &results).await;
            all.extend(ins.into_iter().zip(results));
        }
        empty = if got_any { 0 } else { empty + 1 };
    }
    all
}
