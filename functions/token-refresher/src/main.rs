//! Scheduled refresh of grants whose access or refresh token expires soon.

// The run's future nests streams of refresh futures; its layout needs more than the default depth.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::http_client::HttpClient;
use shared::refresh::TokenService;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::TOKEN_REFRESHER).await;
    let http = HttpClient::new(config.provider_timeout)?;
    let deps = token_refresher::Deps::new(&config, TokenService::new(&config, &clients, http));
    run(service_fn(|ev| token_refresher::handle(&deps, ev))).await
}
