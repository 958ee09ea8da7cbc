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
    run(service_fn(|req| webhook_receiver::handle(&deps, req))).await
}
