//! Scheduled incremental sync of every active connection whose interval has passed.

// The run's future nests streams of per-connection futures; its layout needs more than the default depth.
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, Error};
use shared::aws::AwsClients;
use shared::sync::schedule::SyncScheduler;
use shared::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    // Background work like the refresher's: a slow call can wait, a hung one must not hold the run.
    let clients = AwsClients::from_env_with(shared::aws::Timeouts::TOKEN_REFRESHER).await;
    let deps = sync_scheduler::Deps::new(SyncScheduler::new(&config, &clients));
    run(service_fn(|ev| sync_scheduler::handle(&deps, ev))).await
}
