//! GET /v1/tenants/{tenant}/connections and the connection's records (docs/records-api.md).
//! Builds the dependencies once per container and serves requests with `records_api::handle`.

use lambda_http::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::records::RecordsApi;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    // The app waits on the answer, as a browser waits on the connect flow.
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::OAUTH_CALLBACK).await;
    let api = RecordsApi::new(config, &clients);
    run(service_fn(|req| records_api::handle(&api, req))).await
}
