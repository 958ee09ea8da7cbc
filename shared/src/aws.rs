//! AWS clients, built once per process from the default chain so `AWS_ENDPOINT_URL` can point every
//! one of them at a local server (moto) without code changes.
//!
//! Every client has operation and attempt timeouts suited to its caller ([`Timeouts`]): without
//! them an SDK call can hang until the Lambda itself times out, and the webhook receiver must answer
//! QuickBooks within 3 seconds whatever DynamoDB or SQS are doing.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: KmsClient,
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// The KMS client, built the first time it is used (it derefs to `aws_sdk_kms::Client`).
///
/// Building an SDK client costs about 0.2 ms of CPU (its service's endpoint partitions are parsed
/// and their regexes compiled when the client is made), and the webhook receiver, which builds its
/// clients in every cold start's init, uses KMS only for Zoho deliveries (issue 21). Clones share
/// the one client.
#[derive(Clone)]
pub struct KmsClient(Arc<KmsSource>);

enum KmsSource {
    Ready(aws_sdk_kms::Client),
    Lazy(Box<aws_config::SdkConfig>, OnceLock<aws_sdk_kms::Client>),
}

impl KmsClient {
    /// A client built from `conf` when first used.
    pub fn lazy(conf: &aws_config::SdkConfig) -> Self {
        KmsClient(Arc::new(KmsSource::Lazy(Box::new(conf.clone()), OnceLock::new())))
    }

    /// Whether the client has been built yet.
    pub fn is_built(&self) -> bool {
        match &*self.0 {
            KmsSource::Ready(_) => true,
            KmsSource::Lazy(_, cell) => cell.get().is_some(),
        }
    }
}

impl From<aws_sdk_kms::Client> for KmsClient {
    fn from(c: aws_sdk_kms::Client) -> Self {
        KmsClient(Arc::new(KmsSource::Ready(c)))
    }
}

impl std::ops::Deref for KmsClient {
    type Target = aws_sdk_kms::Client;

    fn deref(&self) -> &aws_sdk_kms::Client {
        match &*self.0 {
            KmsSource::Ready(c) => c,
            KmsSource::Lazy(conf, cell) => cell.get_or_init(|| aws_sdk_kms::Client::new(conf)),
        }
    }
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient").field("built", &self.is_built()).finish()
    }
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
        Self::from_conf(&sdk_config(timeouts).await)
    }

    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(conf),
            sqs: aws_sdk_sqs::Client::new(conf),
            kms: KmsClient::lazy(conf),
            secrets: aws_sdk_secretsmanager::Client::new(conf),
        }
    }
}

/// The default chain's configuration with `timeouts` and [`https_client`].
async fn sdk_config(timeouts: Timeouts) -> aws_config::SdkConfig {
    let mut loader = aws_config::from_env().timeout_config(timeouts.config()).http_client(https_client());
    if env_has_credentials() {
        // Lambda puts the function role's credentials in the environment, the default chain's
        // first source, so that is where the chain would find them; naming that source alone
        // spares every cold start building the rest of the chain (profile files, web identity,
        // ECS and IMDS clients): about 0.2 ms of CPU in a 3 ms init (issue 21). Anywhere else (a
        // profile, SSO, an instance role) the default chain is built as before.
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    if env_has_region() {
        // The same for the region (Lambda sets AWS_REGION): the default region chain's first source
        // is the environment, and building the chain builds an IMDS client and drops it unused,
        // about half of `aws-config`'s load in the webhook receiver's init (a profile, issue 21).
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    loader.load().await
}

/// Whether the default region chain's first source, the environment, holds a region in AWS_REGION
/// (what Lambda sets; the chain reads it before AWS_DEFAULT_REGION).
fn env_has_region() -> bool {
    std::env::var("AWS_REGION").is_ok_and(|s| !s.trim().is_empty())
}

/// Whether the default chain's first source, the environment, holds credentials (what its provider
/// requires: a key id and a secret, neither blank).
fn env_has_credentials() -> bool {
    let set = |v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
    set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY")
}

/// The SDK's variable naming a partitions file to read instead of its own (smithy-rs#3610).
const CUSTOM_PARTITION_VAR: &str = "SMITHY_CLIENT_SDK_CUSTOM_PARTITION";

/// The `aws` partition as the SDK's own partitions file describes it (sdk-partitions.json 1.1, as
/// aws-sdk-* 1.1xx embed it), without its list of regions: every region listed there matches the
/// pattern and none overrides the partition's outputs, so each endpoint comes out the same
/// (shared/tests/partition.rs compares them).
const AWS_PARTITION_ONLY: &str = r#"{"partitions":[{"id":"aws","outputs":{"dnsSuffix":"amazonaws.com","dualStackDnsSuffix":"api.aws","implicitGlobalRegion":"us-east-1","name":"aws","supportsDualStack":true,"supportsFIPS":true},"regionRegex":"^(us|eu|ap|sa|ca|me|af|il|mx)\\-\\w+\\-\\d+$","regions":{}}],"version":"1.1"}"#;

/// Whether the `aws` partition's pattern, `^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$`, takes
/// `region` (`\w` and `\d` are ASCII in the SDK's regex engine).
fn in_aws_partition(region: &str) -> bool {
    let mut parts = region.split('-');
    let (Some(area), Some(name), Some(number), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"].contains(&area)
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Has the SDK read only the `aws` partition, when this process runs in one of its regions.
///
/// Each SDK crate parses its whole partitions file (eight partitions: about 6 kB of JSON and eight
/// patterns to compile) when its first client is built: measured in the webhook receiver's init,
/// its three clients took 0.56 ms with the SDK's file and 0.32 ms with this one (issue 21). A
/// function in a commercial region needs the `aws` partition alone, and the SDK reads a partitions
/// file named by `SMITHY_CLIENT_SDK_CUSTOM_PARTITION` instead of its own; this writes that one
/// partition to an anonymous in-memory file and names it there. In any other partition, with no
/// region in the environment, or with the variable already set, it does nothing and the SDK reads
/// its own. Returns whether it did.
///
/// It sets an environment variable, which is sound only while no other thread can be reading the
/// environment: call it first in `main`, before a runtime or anything else starts a thread.
pub fn read_own_partition_only() -> bool {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    if std::env::var_os(CUSTOM_PARTITION_VAR).is_some() {
        return false;
    }
    // The region the SDK's default chain takes first (Lambda sets AWS_REGION).
    let region = std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION"));
    if !region.is_ok_and(|r| in_aws_partition(&r)) {
        return false;
    }
    // SAFETY: a valid NUL-terminated name and flags; a failure (negative) is handled below.
    let fd = unsafe { libc::memfd_create(c"ttya-sdk-partitions".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    // SAFETY: `fd` was just created here and nothing else owns it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    // The SDK panics on a file it cannot read or parse, so it is read back through that path first.
    let readable =
        file.write_all(AWS_PARTITION_ONLY.as_bytes()).is_ok() && std::fs::read_to_string(&path).is_ok_and(|s| s == AWS_PARTITION_ONLY);
    if !readable {
        return false;
    }
    // Open for the life of the process: each SDK crate opens the path when it builds its first
    // client, and the KMS client is built only when first used.
    std::mem::forget(file);
    std::env::set_var(CUSTOM_PARTITION_VAR, path);
    true
}

/// The five Amazon Trust Services roots, the issuers of every AWS service endpoint's certificate.
const AWS_ROOTS_PEM: &str = include_str!("aws_roots.pem");

/// The SDK's own HTTPS client (hyper + rustls on aws-lc), trusting the Amazon Trust Services roots
/// instead of the OS store. The default parses the whole OS bundle (about 140 roots) once per
/// client and again per connector: about 3 ms of every cold start on 2 cores, for four clients
/// that only ever talk to AWS endpoints. Amazon Trust Services asks custom trust stores to carry
/// all five of its roots (<https://www.amazontrust.com/repository/>), which is what this one is.
/// Setting `SSL_CERT_FILE` or `SSL_CERT_DIR` (an HTTPS `AWS_ENDPOINT_URL` behind a private CA, a
/// TLS-inspecting proxy) adds that store as well.
///
/// Every new client also has the HTTP client build a connector and drop it at once (the SDK's
/// `validate_base_client_config`, there so that the OS store is loaded at construction); it asks
/// for that one without connector settings, which no request does. Building it with TLS would parse
/// the trust store and build a TLS configuration once more per client for nothing: about 0.15 ms
/// of a cold start's init (three clients; issue 21). That throwaway connector is a plain one; a
/// request's connector, cached per settings, is always the TLS one.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    use aws_smithy_http_client::Connector;
    let os_store = ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|v| std::env::var_os(v).is_some());
    let trust = TrustStore::empty().with_native_roots(os_store).with_pem_certificate(AWS_ROOTS_PEM.as_bytes());
    let tls = TlsContext::builder().with_trust_store(trust).build().expect("a trust store is a valid TLS context");
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        match settings {
            None => builder.build_http(),
            Some(_) => builder.tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc)).tls_context(tls.clone()).build(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_store_is_exactly_the_five_amazon_trust_services_roots() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use sha2::{Digest, Sha256};
        let certs = CertificateDer::pem_slice_iter(AWS_ROOTS_PEM.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let fingerprints: Vec<String> = certs.iter().map(|c| hex::encode(Sha256::digest(c.as_ref()))).collect();
        // As published at https://www.amazontrust.com/repository/ (Amazon Root CA 1-4, Starfield
        // Services Root Certificate Authority - G2).
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
        let mut roots = rustls::RootCertStore::empty();
        assert_eq!(roots.add_parsable_certificates(certs), (5, 0), "every root parses as a trust anchor");
    }

    #[test]
    fn the_aws_partition_takes_the_commercial_regions_and_no_other() {
        for r in ["us-east-1", "eu-west-3", "ap-southeast-7", "mx-central-1", "il-central-1", "ca-west-1"] {
            assert!(in_aws_partition(r), "{r}");
        }
        let others = ["us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "cn-north-1", "eusc-de-east-1", "eu-isoe-west-1"];
        for r in others.into_iter().chain(["aws-global", "", "us-east-", "us--1", "xx-east-1", "us-east-1a", "us-east-1-"]) {
            assert!(!in_aws_partition(r), "{r}");
        }
        let v: serde_json::Value = serde_json::from_str(AWS_PARTITION_ONLY).unwrap();
        assert_eq!(v["partitions"][0]["regionRegex"], r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$");
    }

    /// The connector a request gets is the TLS one, though the throwaway one each new client
    /// builds is plain: an `https` endpoint is greeted with a TLS handshake record, not HTTP.
    #[tokio::test]
    async fn a_request_to_an_https_endpoint_starts_a_tls_handshake() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .http_client(https_client())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(format!("https://localhost:{port}"))
            .timeout_config(Timeouts::WEBHOOK_RECEIVER.config())
            .build();
        let client = aws_sdk_sqs::Client::from_conf(conf);
        let call = tokio::spawn(async move { client.list_queues().send().await });
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        let mut first = [0u8; 3];
        socket.read_exact(&mut first).await.unwrap();
        // 0x16: a TLS handshake record; 0x03 0x01: the record-layer version every ClientHello sends.
        assert_eq!(first, [0x16, 0x03, 0x01], "an https endpoint got a TLS ClientHello");
        drop(socket);
        assert!(call.await.unwrap().is_err(), "no TLS server here, so the call fails");
    }

    #[tokio::test]
    async fn every_client_carries_its_callers_timeouts() {
        let c = AwsClients::from_env_with(Timeouts::WEBHOOK_RECEIVER).await;
        let shared_kms = c.kms.clone();
        assert!(!c.kms.is_built(), "KMS is built when first used, not with the others");
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
        assert!(shared_kms.is_built(), "clones share the one client");
        let all = [Timeouts::WEBHOOK_RECEIVER, Timeouts::OAUTH_CALLBACK, Timeouts::TOKEN_REFRESHER, Timeouts::SYNC_WORKER];
        for t in all {
            assert!(t.connect <= t.attempt && t.attempt <= t.operation, "{t:?}");
        }
        // Credentials from the environment (the local stack's, as Lambda's) are the ones signed with.
        if env_has_credentials() {
            use aws_sdk_dynamodb::config::ProvideCredentials;
            let conf = sdk_config(Timeouts::WEBHOOK_RECEIVER).await;
            let creds = conf.credentials_provider().expect("a provider").provide_credentials().await.unwrap();
            assert_eq!(creds.access_key_id(), std::env::var("AWS_ACCESS_KEY_ID").unwrap());
        }
        // And the region from the environment, as the default chain would have found it.
        if let Ok(region) = std::env::var("AWS_REGION") {
            let conf = sdk_config(Timeouts::WEBHOOK_RECEIVER).await;
            assert_eq!(conf.region().map(|r| r.as_ref().to_string()), Some(region));
        }
        // Two of them together still leave QuickBooks' 3 s.
        assert!(Timeouts::WEBHOOK_RECEIVER.operation * 2 <= Duration::from_secs(3));
    }
}
