//! AWS clients, built once per process from the default chain so `AWS_ENDPOINT_URL` can point every
//! one of them at a local server (moto) without code changes.

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub async fn from_env() -> Self {
        let conf = aws_config::load_from_env().await;
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
