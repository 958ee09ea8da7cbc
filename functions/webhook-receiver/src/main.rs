//! POST /webhooks/{provider}: builds the dependencies once per container and serves requests.

use lambda_http::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::Config;

// One thread: Lambda hands an environment one event at a time, and the runtime's worker threads
// (one per core, with their start-up and cross-thread wake-ups) cost about 0.5 ms of CPU and
// 0.3 ms of a cold start's init for nothing (measured, issue 21). Nothing here blocks a thread: the
// handler's work between awaits is microseconds of hashing and JSON.
fn main() -> Result<(), Error> {
    // First, while this is the only thread: it may set an environment variable for the SDK.
    shared::aws::read_own_partition_only();
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::WEBHOOK_RECEIVER).await;
    let deps: &'static webhook_receiver::Deps = Box::leak(Box::new(webhook_receiver::deps_from_config(&config, &clients)));
    // The signing keys are read during init, alongside the runtime's first poll rather than before
    // it (on this one thread, while the runtime's start-up awaits): a cold delivery that arrives
    // while the read is in flight waits for that read (the secrets cache lets one fetch run at a
    // time), so it never reads them twice or starts without them. Where Lambda freezes the
    // environment at that poll (provisioned concurrency), a read caught in flight is bounded by the
    // client's 1.5 s operation timeout; the delivery then reads them itself.
    tokio::spawn(deps.warm());
    run(service_fn(move |req| webhook_receiver::handle(deps, req))).await
}
