//! The SDK given the `aws` partition alone (`shared::aws::read_own_partition_only`) resolves every
//! commercial region's endpoints as it does with its own partitions file. A process of its own: the
//! function sets an environment variable, and each SDK crate reads its partitions once.

use aws_sdk_dynamodb::config::endpoint::{Params as DynamoParams, ResolveEndpoint as _};
use aws_sdk_sqs::config::endpoint::{Params as SqsParams, ResolveEndpoint as _};
use futures::FutureExt as _;

/// Each crate's endpoint URL for `region`, with the service's name taken out so the two compare.
fn dynamodb(region: &str, fips: bool, dual: bool) -> String {
    let p = DynamoParams::builder().region(region).use_fips(fips).use_dual_stack(dual).build().unwrap();
    let resolver = aws_sdk_dynamodb::config::endpoint::DefaultResolver::new();
    let e = resolver.resolve_endpoint(&p).now_or_never().expect("resolved at once").unwrap();
    e.url().replace("dynamodb", "SERVICE")
}

fn sqs(region: &str, fips: bool, dual: bool) -> String {
    let p = SqsParams::builder().region(region).use_fips(fips).use_dual_stack(dual).build().unwrap();
    let resolver = aws_sdk_sqs::config::endpoint::DefaultResolver::new();
    let e = resolver.resolve_endpoint(&p).now_or_never().expect("resolved at once").unwrap();
    e.url().replace("sqs", "SERVICE")
}

#[test]
fn one_partition_gives_the_sdks_own_endpoints_in_every_commercial_region() {
    // The regions of the `aws` partition in the SDK's own file (sdk-partitions.json 1.1).
    let regions = [
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    ];
    let variants = |r: &str, f: fn(&str, bool, bool) -> String| [f(r, false, false), f(r, true, false), f(r, false, true)];
    // SQS resolves with the SDK's own partitions (read before the variable is set), DynamoDB after.
    let own: Vec<String> = regions.iter().flat_map(|r| variants(r, sqs)).collect();
    let china_own = sqs("cn-north-1", false, false);

    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::remove_var("SMITHY_CLIENT_SDK_CUSTOM_PARTITION");
    assert!(shared::aws::read_own_partition_only(), "a commercial region gets the one-partition file");
    assert!(!shared::aws::read_own_partition_only(), "once: the variable is set now");

    let trimmed: Vec<String> = regions.iter().flat_map(|r| variants(r, dynamodb)).collect();
    assert_eq!(trimmed, own);
    assert_eq!(
        own[..3],
        ["https://SERVICE.af-south-1.amazonaws.com", "https://SERVICE-fips.af-south-1.amazonaws.com", "https://SERVICE.af-south-1.api.aws"]
    );
    // The file is the one in force: China, not in it, now falls back to the `aws` partition. That is
    // why a process outside the `aws` partition is left with the SDK's own file.
    assert_eq!(china_own, "https://SERVICE.cn-north-1.amazonaws.com.cn");
    assert_eq!(dynamodb("cn-north-1", false, false), "https://SERVICE.cn-north-1.amazonaws.com");
}
