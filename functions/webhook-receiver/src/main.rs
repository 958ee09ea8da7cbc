//! POST /webhooks/{provider}: builds the dependencies once per container and serves requests.

use lambda_http::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::WEBHOOK_RECEIVER).await;
    let deps = webhook_receiver::deps_from_config(&config, &clients);
    // During init, not on the first delivery: Lambda's init phase runs at full CPU before the first
    // event, and a cold delivery then starts with its signing keys in hand.
    deps.warm().await;
    run(service_fn(|req| webhook_receiver::handle(&deps, req))).await
}
