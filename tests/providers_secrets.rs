//! The Secrets Manager cache against the local stack (moto): the provisioned secrets parse, the
//! cache serves within its TTL and fetches again after it, and failures are clear without echoing
//! secret content.

use std::time::Duration;

use integration_tests::{aws, unique};
use shared::secrets::SecretsCache;
use shared::{ErrorCode, Provider};

async fn put_secret(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    client.create_secret().name(name).secret_string(value).send().await.expect("create secret");
}

#[tokio::test]
async fn provisioned_secrets_parse_into_credentials_keys_and_signing() {
    let env = aws().await;
    let cache = SecretsCache::new(env.clients.secrets.clone(), Duration::from_secs(300));
    let s = &env.config.secrets;
    for (provider, id) in
        [(Provider::QuickBooks, "sandbox-qbo-client"), (Provider::Xero, "sandbox-xero-client"), (Provider::Zoho, "sandbox-zoho-client")]
    {
        let c = cache.provider_credentials(&s.provider_credentials, provider).await.unwrap();
        assert_eq!(c.client_id, id);
        assert!(!c.client_secret.is_empty());
    }
    let q = cache.webhook_keys(&s.webhook_keys, Provider::QuickBooks).await.unwrap();
    assert_eq!(q.current.expose(), "sandbox-qbo-verifier");
    assert!(q.previous.is_some());
    let x = cache.webhook_keys(&s.webhook_keys, Provider::Xero).await.unwrap();
    assert_eq!((x.current.expose(), x.previous.is_none()), ("sandbox-xero-webhook-key", true));
    let a = cache.app_signing(&s.app_signing).await.unwrap();
    assert!(!a.connect_keys.is_empty() && !a.state_key.is_empty());
    assert!(!format!("{a:?} {q:?}").contains("sandbox-qbo-verifier"));
}

#[tokio::test]
async fn cached_value_is_served_until_the_ttl_then_fetched_again() {
    let env = aws().await;
    let sm = &env.clients.secrets;
    let name = unique("creds");
    put_secret(sm, &name, r#"{"xero":{"client_id":"v1","client_secret":"s1"}}"#).await;

    let long = SecretsCache::new(sm.clone(), Duration::from_secs(300));
    let short = SecretsCache::new(sm.clone(), Duration::from_millis(300));
    assert_eq!(long.provider_credentials(&name, Provider::Xero).await.unwrap().client_id, "v1");
    assert_eq!(short.provider_credentials(&name, Provider::Xero).await.unwrap().client_id, "v1");

    sm.put_secret_value().secret_id(&name).secret_string(r#"{"xero":{"client_id":"v2","client_secret":"s2"}}"#).send().await.unwrap();
    assert_eq!(long.provider_credentials(&name, Provider::Xero).await.unwrap().client_id, "v1", "within the TTL: cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(short.provider_credentials(&name, Provider::Xero).await.unwrap().client_id, "v2", "after the TTL: fetched again");
    long.invalidate(&name);
    assert_eq!(long.provider_credentials(&name, Provider::Xero).await.unwrap().client_id, "v2", "after invalidate: fetched again");
}

#[tokio::test]
async fn missing_and_invalid_secrets_are_config_errors_that_do_not_echo_content() {
    let env = aws().await;
    let sm = &env.clients.secrets;
    let cache = SecretsCache::new(sm.clone(), Duration::from_secs(300));

    let missing = unique("nope");
    let err = cache.provider_credentials(&missing, Provider::Xero).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains(&missing) && err.to_string().contains("PROVIDER_CREDENTIALS_SECRET_ID"), "{err}");

    let broken = unique("broken");
    put_secret(sm, &broken, r#"{"xero":{"client_id":"x","client_secret":"hunter2-very-secret""#).await;
    let err = cache.provider_credentials(&broken, Provider::Xero).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");

    let wrong_shape = unique("shape");
    put_secret(sm, &wrong_shape, r#"{"connect_keys":"hunter2-very-secret","state_key":"k"}"#).await;
    let err = cache.app_signing(&wrong_shape).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Config);
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");

    let no_provider = unique("partial");
    put_secret(sm, &no_provider, r#"{"quickbooks":{"current":"k"}}"#).await;
    let err = cache.webhook_keys(&no_provider, Provider::Xero).await.unwrap_err();
    assert!(err.to_string().contains("xero") && err.to_string().contains("WEBHOOK_KEYS_SECRET_ID"), "{err}");
}

#[tokio::test]
async fn an_unreachable_secrets_manager_is_a_retryable_error() {
    let _env = aws().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let conf = aws_config::load_from_env().await;
    let sm_conf = aws_sdk_secretsmanager::config::Builder::from(&conf)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let cache = SecretsCache::new(aws_sdk_secretsmanager::Client::from_conf(sm_conf), Duration::from_secs(300));
    let err = cache.provider_credentials("any", Provider::Zoho).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
