//! Vault benchmark: seal/unseal time per operation and KMS calls per 1,000 unseals, cache on and off.
//! KMS calls are counted by an SDK interceptor, so they are the requests the SDK really sent.
//! Needs the local stack: `scripts/bench vault` (or `infra/local-aws.sh up && source .local/aws.env`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{Provider, SecretString, TokenSet};

#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<AtomicU64>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }
    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, _: &mut ConfigBag) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: SecretString::new("a".repeat(1200)),
        refresh_token: Some(SecretString::new("r".repeat(50))),
        access_expires_at: chrono::Utc::now(),
        refresh_expires_at: None,
        refresh_hard_expires_at: None,
        scopes: vec!["accounting.invoices".into(), "accounting.contacts".into()],
        api_domain: None,
        accounts_server: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        eprintln!("vault bench needs the local stack: run scripts/bench");
        std::process::exit(2);
    }
    let key_id = std::env::var("KMS_KEY_ID").expect("KMS_KEY_ID");
    let sdk = aws_config::load_from_env().await;
    let counter = CallCounter::default();
    let kms = aws_sdk_kms::Client::from_conf(aws_sdk_kms::config::Builder::from(&sdk).interceptor(counter.clone()).build());
    let ctx = SealContext::new("bench-tenant", Provider::Xero, "bench-grant");
    let t = tokens();

    for (label, limits) in [("cache on", CacheLimits::default()), ("cache off", CacheLimits::disabled())] {
        let vault = Vault::new(kms.clone(), key_id.clone(), limits);
        let blob = vault.seal_tokens(&ctx, &t).await.unwrap();
        // Fresh vault so the unseals start cold, as in a new Lambda container.
        let reader = Vault::new(kms.clone(), key_id.clone(), limits);
        let before = counter.0.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..1000 {
            reader.unseal_tokens(&ctx, &blob).await.unwrap();
        }
        let elapsed = start.elapsed();
        let calls = counter.0.load(Ordering::Relaxed) - before;
        println!(
            "{label}: 1000 unseals of one grant: {calls} KMS calls, {:.1} µs per unseal (wall, incl. KMS round trips)",
            elapsed.as_secs_f64() * 1e6 / 1000.0
        );
    }

    // CPU cost with a warm key: no I/O happens on this path, so wall time on one thread is CPU time.
    let vault = Vault::new(kms.clone(), key_id.clone(), CacheLimits { max_uses: u32::MAX, ..CacheLimits::default() });
    let blob = vault.seal_tokens(&ctx, &t).await.unwrap();
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(vault.unseal_tokens(&ctx, &blob).await.unwrap());
    }
    println!(
        "unseal, cached key: {:.2} µs per op ({} bytes of ciphertext)",
        start.elapsed().as_secs_f64() * 1e6 / n as f64,
        blob.ciphertext.len()
    );
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(vault.seal_tokens(&ctx, &t).await.unwrap());
    }
    println!("seal, cached key: {:.2} µs per op", start.elapsed().as_secs_f64() * 1e6 / n as f64);
}
