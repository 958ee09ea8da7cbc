//! SQS-fed sync worker: builds the dependencies once per container and serves batches.

use lambda_runtime::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::http_client::HttpClient;
use shared::refresh::TokenService;
use shared::worker::SyncDeps;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::SYNC_WORKER).await;
    let http = HttpClient::new(config.provider_timeout)?;
    let deps = SyncDeps::new(&config, &clients, TokenService::new(&config, &clients, http));
    run(service_fn(|ev| sync_worker::handle(&deps, ev))).await
}
