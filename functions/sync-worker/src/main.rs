//! SQS-fed sync worker: SqsEvent in, SqsBatchResponse (partial batch failures) out.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::AwsClients;
use shared::{Config, RequestContext};

async fn handle(_clients: &AwsClients, _config: &Config, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let ctx = RequestContext::new(Some(&event.context.request_id));
    ctx.scope(async {
        // Until the worker is built every message is reported failed, so SQS keeps it (and
        // eventually moves it to the DLQ) instead of it being acknowledged and lost.
        let err = shared::Error::NotImplemented("sync worker");
        tracing::warn!(code = err.code().as_u16(), messages = event.payload.records.len(), "not implemented");
        let mut resp = SqsBatchResponse::default();
        for r in &event.payload.records {
            if let Some(id) = &r.message_id {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id.clone();
                resp.batch_item_failures.push(f);
            }
        }
        Ok(resp)
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::SYNC_WORKER).await;
    run(service_fn(|ev| handle(&clients, &config, ev))).await
}
