//! End to end with the provider sandbox's signing emitter: the sandbox builds each provider's real
//! payload, signs it as the provider does and POSTs it over HTTP to the real handler (served here
//! behind a minimal HTTP-to-Lambda bridge), against moto. Also runs the sandbox's Xero
//! intent-to-receive check.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use lambda_http::RequestExt;
use shared::jobs::Change;
use shared::tenancy::Entity;
use shared::webhooks::Receiver;
use shared::Provider;
use support::*;

/// Serves `webhook_receiver::handle` over HTTP, the way API Gateway would call it.
async fn serve_handler(deps: Receiver) -> String {
    async fn bridge(
        State(deps): State<Arc<Receiver>>,
        method: http::Method,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let segment = uri.path().rsplit_once("/webhooks/").map(|(_, p)| p.to_string()).unwrap_or_default();
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned() {
            query.entry(k).or_default().push(v);
        }
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers.iter() {
            b = b.header(k, v);
        }
        let req = b
            .body(lambda_http::Body::Binary(body.to_vec()))
            .unwrap()
            .with_path_parameters(HashMap::from([("provider".to_string(), segment)]))
            .with_query_string_parameters(query);
        let resp = webhook_receiver::handle(&deps, req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (parts.status, parts.headers, body.to_vec()).into_response()
    }
    let app = axum::Router::new().fallback(bridge).with_state(Arc::new(deps));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

struct World {
    f: Fixture,
    sandbox: sandbox::RunningSandbox,
    receiver_url: String,
    http: reqwest::Client,
}

async fn world() -> World {
    let f = fixture().await;
    let receiver_url = serve_handler(f.deps.clone()).await;
    let sandbox = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
    shared::http_client::install_crypto_provider();
    World { f, sandbox, receiver_url, http: reqwest::Client::new() }
}

impl World {
    async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self.http.post(format!("{}{path}", self.sandbox.base_url)).json(&body).send().await.unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A fresh org in the sandbox, connected to the fixture's tenant.
    async fn org(&self, provider: Provider, org_id: &str) {
        self.control("/_sandbox/seed", serde_json::json!({"provider": provider.as_str(), "org_id": org_id})).await;
        self.f.connect(provider, &[org_id]).await;
    }

    async fn emit(&self, provider: Provider, org_id: &str, entity: &str, op: &str, format: Option<&str>) -> serde_json::Value {
        let mut req = serde_json::json!({
            "provider": provider.as_str(), "org_id": org_id, "entity": entity, "operation": op,
            "target_url": format!("{}/webhooks/{}", self.receiver_url, provider.as_str()),
        });
        if let Some(fmt) = format {
            req["format"] = fmt.into();
        }
        self.control("/_sandbox/webhooks/emit", req).await
    }
}

#[tokio::test]
async fn quickbooks_legacy_and_cloudevents_from_the_sandbox() {
    let w = world().await;
    let realm = numeric_org();
    w.org(Provider::QuickBooks, &realm).await;

    for (format, change) in [("legacy", Change::Created), ("cloudevents", Change::Created)] {
        let out = w.emit(Provider::QuickBooks, &realm, "invoice", "create", Some(format)).await;
        assert_eq!(out["status"], 200, "{format}: {out}");
        let jobs = w.f.drain_all().await;
        assert_eq!(jobs.len(), 1, "{format}: {jobs:?}");
        let j = &jobs[0].1;
        assert_eq!(
            (j.provider, j.entity, j.change, j.org_id.as_str()),
            (Provider::QuickBooks, Entity::Invoice, Some(change), realm.as_str())
        );
        assert!(j.entity_id.is_some());
        // The sandbox's signature is what the receiver verified: re-check it independently.
        let payload = out["payload"].as_str().unwrap();
        assert_eq!(out["signature"], shared::webhooks::verify::sign_base64(QBO_KEY, payload.as_bytes()));
        // Redelivering the exact bytes is a duplicate.
        let (status, body) = w.f.send(qbo_signed(payload)).await;
        assert_eq!(status, 200);
        assert!(body.contains("duplicate"), "{body}");
        assert!(w.f.drain_all().await.is_empty());
    }
    w.sandbox.shutdown().await;
}

/// A QuickBooks merge, in both formats, becomes one job: change=merged on the surviving customer,
/// naming the customer merged away (which no longer exists at the provider).
#[tokio::test]
async fn quickbooks_merges_from_the_sandbox_carry_both_ids() {
    let w = world().await;
    let realm = numeric_org();
    w.org(Provider::QuickBooks, &realm).await;
    for format in ["legacy", "cloudevents"] {
        let seeded = w
            .control("/_sandbox/seed", serde_json::json!({"provider": "quickbooks", "org_id": realm, "entity": "customer", "count": 2}))
            .await;
        let ids: Vec<String> = seeded["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        let out = w
            .control(
                "/_sandbox/webhooks/emit",
                serde_json::json!({"provider": "quickbooks", "org_id": realm, "entity": "customer", "operation": "merge",
                    "entity_id": ids[0], "merged_from": ids[1], "format": format,
                    "target_url": format!("{}/webhooks/quickbooks", w.receiver_url)}),
            )
            .await;
        assert_eq!(out["status"], 200, "{format}: {out}");
        let jobs = w.f.drain_all().await;
        assert_eq!(jobs.len(), 1, "{format}: {jobs:?}");
        let j = &jobs[0].1;
        assert_eq!(
            (j.entity, j.change, j.entity_id.as_deref(), j.merged_from.as_deref()),
            (Entity::Contact, Some(Change::Merged), Some(ids[0].as_str()), Some(ids[1].as_str())),
            "{format}"
        );
        let job_json = serde_json::to_value(j).unwrap();
        assert_eq!(job_json["merged_from"], ids[1].as_str());
    }
    w.sandbox.shutdown().await;
}

#[tokio::test]
async fn xero_events_and_intent_to_receive_from_the_sandbox() {
    let w = world().await;
    let tenant = org();
    w.org(Provider::Xero, &tenant).await;

    let itr = w
        .control(
            "/_sandbox/webhooks/xero/intent-to-receive",
            serde_json::json!({"target_url": format!("{}/webhooks/xero", w.receiver_url)}),
        )
        .await;
    assert_eq!(itr["passed"], true, "{itr}");

    let out = w.emit(Provider::Xero, &tenant, "contact", "create", None).await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "", "Xero wants an empty body");
    let jobs = w.f.drain_all().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0].1.provider, jobs[0].1.entity, jobs[0].1.org_id.as_str()), (Provider::Xero, Entity::Contact, tenant.as_str()));
    w.sandbox.shutdown().await;
}

#[tokio::test]
async fn zoho_default_payload_from_the_sandbox() {
    let w = world().await;
    let zorg = numeric_org();
    w.org(Provider::Zoho, &zorg).await;
    // Without a registration in the sandbox org the emitter posts the body with none of our headers:
    // rejected, nothing enqueued.
    let out = w.emit(Provider::Zoho, &zorg, "invoice", "create", None).await;
    assert_eq!(out["status"], 401, "{out}");
    assert!(w.f.drain_all().await.is_empty());
    // The same Zoho default payload as our registration delivers it (org in the URL, secret header).
    let payload = out["payload"].as_str().unwrap().to_string();
    let req =
        support::Req::post("zoho", payload).query("organization_id", &zorg).header("x-ttya-webhook-secret", &zoho_secret(&zorg)).build();
    let (status, body) = w.f.send(req).await;
    assert_eq!(status, 200, "{body}");
    let jobs = w.f.drain_all().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].1.provider, jobs[0].1.entity, jobs[0].1.org_id.as_str()), (Provider::Zoho, Entity::Invoice, zorg.as_str()));
    assert!(jobs[0].1.entity_id.is_some(), "the record id comes from Zoho's module payload");
    w.sandbox.shutdown().await;
}
