//! Shared set-up for the integration tests: the local AWS (moto) that `scripts/test-all` starts, and
//! fresh names so tests run in parallel without seeing each other's data.

use shared::aws::AwsClients;
use shared::Config;

pub struct TestEnv {
    pub config: Config,
    pub clients: AwsClients,
}

/// Configuration and AWS clients for the local stack. Fails loudly (not skips) when the stack is
/// not up, so a missing moto is a red test rather than a silently green one.
pub async fn aws() -> TestEnv {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        panic!("AWS_ENDPOINT_URL is not set: run the tests through scripts/test-all, or `infra/local-aws.sh up && source .local/aws.env`");
    }
    let config = Config::from_env().expect("the local stack's environment (.local/aws.env) is complete");
    let clients = AwsClients::from_env().await;
    TestEnv { config, clients }
}

/// A fresh id for a test's tenants, grants and resource names.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
