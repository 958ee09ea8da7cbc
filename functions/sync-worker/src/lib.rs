//! The sync worker: an SQS batch in, one `shared::worker::handle_batch` call, partial batch failures
//! out (the ids of the messages SQS should deliver again).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent};
use shared::worker::{handle_batch, InMessage, SyncDeps};
use shared::RequestContext;

pub async fn handle(deps: &SyncDeps, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let ctx = RequestContext::new(Some(&event.context.request_id));
    let deadline = deadline_of(&event.context);
    let messages: Vec<InMessage> = event.payload.records.iter().map(in_message).collect();
    ctx.scope(async {
        let results = handle_batch(deps, &messages, deadline).await;
        Ok(response(&results))
    })
    .await
}

/// The failed items of a batch: every message not acknowledged. A message without an id cannot be
/// reported; it is acknowledged by omission (SQS never sends one).
pub fn response(results: &[(String, shared::worker::Disposition)]) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    for (id, d) in results {
        if !d.acknowledged() && !id.is_empty() {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.clone();
            resp.batch_item_failures.push(f);
        }
    }
    resp
}

pub fn in_message(m: &SqsMessage) -> InMessage {
    InMessage {
        message_id: m.message_id.clone().unwrap_or_default(),
        receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        event_source_arn: m.event_source_arn.clone().unwrap_or_default(),
        receive_count: m.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
        // SQS counts a message's 12-hour visibility limit from here.
        first_received_ms: m.attributes.get("ApproximateFirstReceiveTimestamp").and_then(|t| t.parse().ok()),
    }
}

/// The invocation's deadline (the runtime gives epoch milliseconds).
pub fn deadline_of(ctx: &lambda_runtime::Context) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ctx.deadline as i64).unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::seconds(30))
}
