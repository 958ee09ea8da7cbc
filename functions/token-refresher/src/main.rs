//! Scheduled refresh of grants whose access token expires soon.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::aws::AwsClients;
use shared::{Config, RequestContext};

async fn handle(
    _clients: &AwsClients,
    _config: &Config,
    event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
) -> Result<serde_json::Value, Error> {
    let ctx = RequestContext::new(event.payload.id.as_deref());
    ctx.scope(async {
        let err = shared::Error::NotImplemented("token refresher");
        tracing::warn!(code = err.code().as_u16(), "not implemented");
        Err(err.into())
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::TOKEN_REFRESHER).await;
    run(service_fn(|ev| handle(&clients, &config, ev))).await
}
