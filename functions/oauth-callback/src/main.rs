//! GET /connect/{provider}, GET /oauth/{provider}/callback, POST /disconnect/{provider}.
//! Builds the dependencies once per container and serves requests with `oauth_callback::handle`.

use lambda_http::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::connect::ConnectDeps;
use shared::http_client::HttpClient;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::OAUTH_CALLBACK).await;
    let http = HttpClient::shared(&config)?.clone();
    let deps = ConnectDeps::new(config, &clients, http);
    run(service_fn(|req| oauth_callback::handle(&deps, req))).await
}
