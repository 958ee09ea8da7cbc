//! AWS clients, built once per process from the default chain so `AWS_ENDPOINT_URL` can point every
//! one of them at a local server (moto) without code changes.
//!
//! Every client has operation and attempt timeouts suited to its caller ([`Timeouts`]): without
//! them an SDK call can hang until the Lambda itself times out, and the webhook receiver must answer
//! QuickBooks within 3 seconds whatever DynamoDB or SQS are doing.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// Timeouts for every AWS call of one caller. `operation` bounds a call with all its retries;
/// `attempt` one try, so a stuck connection is retried rather than waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

impl Timeouts {
    /// QuickBooks wants a webhook answered within 3 s (Xero 5 s): one AWS call never takes more
    /// than 1.5 s, leaving the rest for the other calls of the request and the cold start.
    pub const WEBHOOK_RECEIVER: Timeouts =
        Timeouts { connect: Duration::from_millis(500), attempt: Duration::from_millis(700), operation: Duration::from_millis(1500) };
    /// A user's browser is waiting on the connect flow.
    pub const OAUTH_CALLBACK: Timeouts =
        Timeouts { connect: Duration::from_secs(1), attempt: Duration::from_secs(2), operation: Duration::from_secs(5) };
    /// Background work: a slow call can wait, a hung one must not hold the invocation.
    pub const TOKEN_REFRESHER: Timeouts =
        Timeouts { connect: Duration::from_secs(1), attempt: Duration::from_secs(3), operation: Duration::from_secs(10) };
    pub const SYNC_WORKER: Timeouts =
        Timeouts { connect: Duration::from_secs(1), attempt: Duration::from_secs(3), operation: Duration::from_secs(10) };

    /// Tests and tools against the local emulator: moto serialises DynamoDB requests, so under a
    /// parallel test run one call can queue for seconds. Never for a deployed function.
    pub const LOCAL_EMULATOR: Timeouts =
        Timeouts { connect: Duration::from_secs(2), attempt: Duration::from_secs(30), operation: Duration::from_secs(60) };

    pub fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::SYNC_WORKER
    }
}

impl AwsClients {
    /// Clients with the default (background) timeouts.
    pub async fn from_env() -> Self {
        Self::from_env_with(Timeouts::default()).await
    }

    /// Clients whose every call is bounded by `timeouts`.
    pub async fn from_env_with(timeouts: Timeouts) -> Self {
        let conf = aws_config::from_env().timeout_config(timeouts.config()).load().await;
        Self::from_conf(&conf)
    }

    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(conf),
            sqs: aws_sdk_sqs::Client::new(conf),
            kms: aws_sdk_kms::Client::new(conf),
            secrets: aws_sdk_secretsmanager::Client::new(conf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_carries_its_callers_timeouts() {
        let c = AwsClients::from_env_with(Timeouts::WEBHOOK_RECEIVER).await;
        for tc in [
            c.dynamodb.config().timeout_config().cloned(),
            c.sqs.config().timeout_config().cloned(),
            c.kms.config().timeout_config().cloned(),
            c.secrets.config().timeout_config().cloned(),
        ] {
            let tc = tc.expect("a timeout config");
            assert_eq!(tc.operation_timeout(), Some(Duration::from_millis(1500)));
            assert_eq!(tc.operation_attempt_timeout(), Some(Duration::from_millis(700)));
            assert_eq!(tc.connect_timeout(), Some(Duration::from_millis(500)));
        }
        let all = [Timeouts::WEBHOOK_RECEIVER, Timeouts::OAUTH_CALLBACK, Timeouts::TOKEN_REFRESHER, Timeouts::SYNC_WORKER];
        for t in all {
            assert!(t.connect <= t.attempt && t.attempt <= t.operation, "{t:?}");
        }
        // Two of them together still leave QuickBooks' 3 s.
        assert!(Timeouts::WEBHOOK_RECEIVER.operation * 2 <= Duration::from_secs(3));
    }
}
