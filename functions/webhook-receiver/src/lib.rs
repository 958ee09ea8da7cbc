//! POST /webhooks/{provider}: the Lambda side of [`shared::webhooks::Receiver`].
//!
//! This crate only translates between API Gateway (HTTP API v2, through lambda_http) and the receiver:
//! raw body bytes (lambda_http has already decoded a base64 body), headers, the `{provider}` path
//! parameter and the query string in; status and body out. Xero requires an empty body on both its
//! 200 and its 401, so Xero replies never carry one; the others get a small JSON body.

use std::sync::Arc;

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request, RequestExt, Response};
use shared::aws::AwsClients;
use shared::context::CORRELATION_HEADERS;
use shared::jobs::{JobQueue, SyncQueues};
use shared::secrets::SecretsCache;
use shared::store::grants::GrantStore;
use shared::tenancy::TenantStore;
use shared::vault::Vault;
use shared::webhooks::{self, Disposition, Inbound, KeySource, NonceStore, Receiver};
use shared::{Config, Provider, RequestContext};

/// Everything a request needs, built once per container in `main`.
pub type Deps = Receiver;

/// Production wiring from the configuration. Tests build a [`Receiver`] themselves to point it at
/// their own queues, keys or clock.
pub fn deps_from_config(config: &Config, clients: &AwsClients) -> Deps {
    let secrets = Arc::new(SecretsCache::new(clients.secrets.clone(), shared::secrets::DEFAULT_TTL));
    Receiver::new(
        KeySource::Secrets { cache: secrets, secret_id: config.secrets.webhook_keys.clone() },
        GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()),
        TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone()),
        Vault::from_config(clients.kms.clone(), config),
        NonceStore::new(clients.dynamodb.clone(), config.tables.ephemeral.clone()),
        JobQueue::new(clients.sqs.clone(), SyncQueues::from_config(config)),
        config.webhook_max_body_bytes,
        webhooks::nonce::DEFAULT_WINDOW,
        webhooks::system_clock(),
    )
}

/// The `{provider}` segment: API Gateway's path parameter, or the segment after `/webhooks/` when
/// the event has none (function URLs, the local emulator).
fn provider_segment(req: &Request) -> String {
    if let Some(p) = req.path_parameters_ref().and_then(|m| m.first("provider")) {
        return p.to_string();
    }
    let path = req.uri().path();
    path.rsplit_once("/webhooks/").map(|(_, rest)| rest.trim_end_matches('/').to_string()).unwrap_or_default()
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    match req.query_string_parameters_ref() {
        Some(q) => q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        None => req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default(),
    }
}

pub async fn handle(deps: &Deps, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    let correlation = CORRELATION_HEADERS.iter().find_map(|h| req.headers().get(*h).and_then(|v| v.to_str().ok()));
    let ctx = RequestContext::new(correlation);
    let correlation_id = ctx.correlation_id.clone();
    let segment = provider_segment(&req);
    let ctx = match segment.parse::<Provider>() {
        Ok(p) => ctx.with_provider(p),
        Err(_) => ctx,
    };
    ctx.scope(async {
        let query = query_pairs(&req);
        let inbound = Inbound {
            method: req.method().as_str(),
            provider: &segment,
            headers: req.headers(),
            query: &query,
            body: req.body().as_ref(),
            correlation_id: &correlation_id,
        };
        let reply = deps.receive(inbound).await;
        let status = reply.status();
        let mut builder = Response::builder().status(status).header("x-correlation-id", &correlation_id);
        let body = if reply.provider == Some(Provider::Xero) {
            // Xero: "empty body, no cookies" on every answer, including intent-to-receive.
            Body::Empty
        } else {
            builder = builder.header(CONTENT_TYPE, "application/json");
            let json = match &reply.outcome {
                Ok(a) => {
                    let (state, jobs) = match a.disposition {
                        Disposition::Enqueued { jobs, .. } => ("accepted", jobs),
                        Disposition::Duplicate => ("duplicate", 0),
                        Disposition::NoEvents => ("no_events", 0),
                        Disposition::NothingToDo => ("ignored", 0),
                    };
                    serde_json::json!({ "status": state, "jobs": jobs })
                }
                Err(e) => e.to_public_body(&correlation_id),
            };
            Body::from(json.to_string())
        };
        if status == 405 {
            builder = builder.header("allow", "POST");
        }
        Ok(builder.body(body)?)
    })
    .await
}
