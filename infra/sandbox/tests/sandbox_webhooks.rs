//! The webhook emitter: payloads and signatures per provider, checked with an independent HMAC, and
//! Xero's intent-to-receive.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

type Hmac = hmac::Hmac<Sha256>;

#[derive(Clone, Debug)]
struct Received {
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A receiver that records every request and answers with `respond(headers, body)`.
async fn receiver(respond: fn(&HeaderMap, &[u8]) -> StatusCode) -> (String, Log) {
    let log: Log = Arc::default();
    let app = Router::new().fallback(any(move |State(log): State<Log>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let status = respond(&headers, &body);
        log.lock().unwrap().push(Received { uri: uri.to_string(), headers, body });
        status
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = app.with_state(log.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

fn ok(_: &HeaderMap, _: &[u8]) -> StatusCode {
    StatusCode::OK
}

fn independent_b64_hmac(key: &str, body: &[u8]) -> Vec<u8> {
    let mut m = <Hmac as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Xero's rule, checked by the test receiver: 200 with a valid signature, 401 otherwise, empty body.
fn xero_checker(h: &HeaderMap, body: &[u8]) -> StatusCode {
    let Some(sig) = h.get("x-xero-signature").and_then(|v| v.to_str().ok()) else { return StatusCode::UNAUTHORIZED };
    let Ok(raw) = STANDARD.decode(sig) else { return StatusCode::UNAUTHORIZED };
    let mut m = <Hmac as KeyInit>::new_from_slice(b"sandbox-xero-webhook-key").unwrap();
    m.update(body);
    if m.verify_slice(&raw).is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[tokio::test]
async fn quickbooks_legacy_and_cloudevents_are_signed_with_the_verifier_token() {
    let sb = start().await;
    let b = &sb.base_url;
    let (url, log) = receiver(ok).await;
    let v = control(
        b,
        "webhooks/emit",
        json!({"provider": "quickbooks", "target_url": format!("{url}/webhooks/quickbooks"), "entity": "Invoice", "operation": "Create"}),
    )
    .await;
    assert_eq!(v["status"], 200);
    let got = log.lock().unwrap()[0].clone();
    assert_eq!(got.uri, "/webhooks/quickbooks");
    let sig = STANDARD.decode(got.headers["intuit-signature"].to_str().unwrap()).unwrap();
    assert_eq!(sig, independent_b64_hmac("sandbox-qbo-verifier", &got.body));
    assert_ne!(sig, independent_b64_hmac("sandbox-qbo-client", &got.body), "not the client secret or id");
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    let n = &body["eventNotifications"][0];
    assert_eq!(n["realmId"], QBO_REALM);
    let ent = &n["dataChangeEvent"]["entities"][0];
    assert_eq!(ent["name"], "Invoice");
    assert_eq!(ent["operation"], "Create");
    assert!(ent["lastUpdated"].is_string());
    // The created invoice is readable through the API.
    let (at, _, realm) = qbo_connect(b).await;
    let r =
        get(&format!("{b}/quickbooks/v3/company/{realm}/invoice/{}", s(&ent["id"])), &[("Authorization", &format!("Bearer {at}"))]).await;
    assert_eq!(r.status, 200);

    let v = control(
        b,
        "webhooks/emit",
        json!({"provider": "quickbooks", "target_url": url, "entity": "Customer", "entity_id": "1", "operation": "Update", "format": "cloudevents"}),
    )
    .await;
    assert_eq!(v["status"], 200);
    let got = log.lock().unwrap()[1].clone();
    let sig = STANDARD.decode(got.headers["intuit-signature"].to_str().unwrap()).unwrap();
    assert_eq!(sig, independent_b64_hmac("sandbox-qbo-verifier", &got.body));
    let events: Value = serde_json::from_slice(&got.body).unwrap();
    let e = &events[0];
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["type"], "qbo.customer.updated.v1");
    assert_eq!(e["intuitaccountid"], QBO_REALM);
    assert_eq!(e["intuitentityid"], "1");
    assert_eq!(s(&e["id"]).len(), 36, "a uuid event id, the dedupe key");
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_events_are_signed_with_the_webhook_key_and_receiver_status_is_reported() {
    let sb = start().await;
    let b = &sb.base_url;
    let (url, log) = receiver(xero_checker).await;
    let v = control(
        b,
        "webhooks/emit",
        json!({"provider": "xero", "target_url": url, "org_id": XERO_T2, "entity": "Contact", "operation": "CREATE"}),
    )
    .await;
    assert_eq!(v["status"], 200, "the checker accepted the signature: {v}");
    let got = log.lock().unwrap()[0].clone();
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    let e = &body["events"][0];
    assert_eq!(e["eventCategory"], "CONTACT");
    assert_eq!(e["eventType"], "CREATE");
    assert_eq!(e["tenantId"], XERO_T2);
    assert_eq!(e["tenantType"], "ORGANISATION");
    assert!(s(&e["resourceUrl"]).ends_with(&format!("/Contacts/{}", s(&e["resourceId"]))));
    assert!(body["firstEventSequence"].as_u64().unwrap() >= 1);
    assert_eq!(s(&body["entropy"]).len(), 20);
    assert_eq!(v["signature"], got.headers["x-xero-signature"].to_str().unwrap());
    // Payments and accounts have no Xero webhooks.
    let r = post_json(
        &format!("{b}/_sandbox/webhooks/emit"),
        &[],
        &json!({"provider": "xero", "target_url": url, "entity": "Payment", "operation": "CREATE"}),
    )
    .await;
    assert_eq!(r.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_intent_to_receive_passes_a_correct_receiver_and_fails_a_lax_one() {
    let sb = start().await;
    let b = &sb.base_url;
    let (good, log) = receiver(xero_checker).await;
    let v = control(b, "webhooks/xero/intent-to-receive", json!({"target_url": good})).await;
    assert_eq!(v["passed"], true, "{v}");
    let results = v["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["signed_correctly"] == false && r["status"] == 401));
    assert!(results.iter().any(|r| r["signed_correctly"] == true && r["status"] == 200));
    for r in log.lock().unwrap().iter() {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["events"], json!([]));
        assert_eq!(body["firstEventSequence"], 0);
    }
    let (lax, _) = receiver(ok).await;
    let v = control(b, "webhooks/xero/intent-to-receive", json!({"target_url": lax})).await;
    assert_eq!(v["passed"], false, "answering 200 to a bad signature fails ITR");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_delivers_to_the_registration_with_its_headers_and_secret() {
    let sb = start().await;
    let b = &sb.base_url;
    let (url, log) = receiver(ok).await;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    let reg = zoho_post(
        &api,
        &at,
        "settings/webhooks?organization_id=700000001",
        &json!({"webhook_name": "tya", "url": format!("{url}/webhooks/zoho?tenant=t1"), "method": "POST", "entity": "invoice",
            "events": ["invoice_created"], "headers": [{"param_name": "X-Tya-Token", "param_value": "org-secret-1"}],
            "query_parameters": [{"param_name": "k", "param_value": "v2"}], "secret": "Abcdef123456XYZ"}),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.text());
    let hook_id = s(&reg.json()["webhook"]["webhook_id"]);
    let bad =
        zoho_post(&api, &at, "settings/webhooks?organization_id=700000001", &json!({"url": url, "entity": "invoice", "secret": "short"}))
            .await;
    assert_eq!(bad.status, 400);
    let emit = json!({"provider": "zoho", "org_id": "700000001", "entity": "invoice", "operation": "create"});
    // A registration alone delivers nothing: Zoho Books fires webhooks from workflow rules.
    assert_eq!(post_json(&format!("{b}/_sandbox/webhooks/emit"), &[], &emit).await.status, 404);
    assert!(log.lock().unwrap().is_empty());
    // Rules are checked: the module, the trigger, and that the action is a webhook of that module.
    let rule = |entity: &str, event: &str, action: &str| json!({"workflow_name": "tya", "entity": entity, "event": event, "actions": [{"action_type": "webhook", "action_id": action}]});
    for (body, why) in [
        (rule("banana", "on_create", &hook_id), "unknown module"),
        (rule("invoice", "whenever", &hook_id), "unknown trigger"),
        (rule("contact", "on_create", &hook_id), "webhook of another module"),
        (rule("invoice", "on_create", "999999"), "no such webhook"),
    ] {
        assert_eq!(zoho_post(&api, &at, "settings/workflows?organization_id=700000001", &body).await.status, 400, "{why}");
    }
    // A rule on edits does not fire for a create.
    let edit = zoho_post(&api, &at, "settings/workflows?organization_id=700000001", &rule("invoice", "on_edit", &hook_id)).await;
    assert_eq!(edit.status, 201, "{}", edit.text());
    assert_eq!(post_json(&format!("{b}/_sandbox/webhooks/emit"), &[], &emit).await.status, 404);
    let wf = zoho_post(&api, &at, "settings/workflows?organization_id=700000001", &rule("invoice", "on_create", &hook_id)).await;
    assert_eq!(wf.status, 201, "{}", wf.text());
    let wf_ids = [s(&edit.json()["workflow"]["workflow_id"]), s(&wf.json()["workflow"]["workflow_id"])];

    let v =
        control(b, "webhooks/emit", json!({"provider": "zoho", "org_id": "700000001", "entity": "invoice", "operation": "create"})).await;
    assert_eq!(v["status"], 200, "{v}");
    let got = log.lock().unwrap()[0].clone();
    assert_eq!(got.headers["x-tya-token"], "org-secret-1");
    let uri = url::Url::parse(&format!("http://x{}", got.uri)).unwrap();
    let mut q: Vec<(String, String)> = uri.query_pairs().into_owned().collect();
    assert!(q.contains(&("tenant".into(), "t1".into())) && q.contains(&("k".into(), "v2".into())));
    // Independent check of the documented scheme: sorted query name+value pairs, then the raw body.
    q.sort();
    let mut msg: Vec<u8> = q.iter().flat_map(|(k, v)| format!("{k}{v}").into_bytes()).collect();
    msg.extend_from_slice(&got.body);
    let mut m = <Hmac as KeyInit>::new_from_slice(b"Abcdef123456XYZ").unwrap();
    m.update(&msg);
    assert_eq!(got.headers["x-zoho-webhook-signature"].to_str().unwrap(), hex::encode(m.finalize().into_bytes()));
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    let id = s(&body["invoice"]["invoice_id"]);
    assert_eq!(zoho_get(&api, &at, &format!("invoices/{id}?organization_id=700000001")).await.status, 200);

    // A webhook a rule still uses cannot be deleted; the rules go first.
    let auth = format!("Zoho-oauthtoken {at}");
    let r =
        call("DELETE", &format!("{api}/books/v3/settings/webhooks/{hook_id}?organization_id=700000001"), &[("Authorization", &auth)], b"")
            .await;
    assert_eq!(r.status, 400, "{}", r.text());
    for id in &wf_ids {
        let r =
            call("DELETE", &format!("{api}/books/v3/settings/workflows/{id}?organization_id=700000001"), &[("Authorization", &auth)], b"")
                .await;
        assert_eq!(r.json()["code"], 0);
    }
    // After deleting the registration there is nowhere to deliver.
    let r = call(
        "DELETE",
        &format!("{api}/books/v3/settings/webhooks/{hook_id}?organization_id=700000001"),
        &[("Authorization", &format!("Zoho-oauthtoken {at}"))],
        b"",
    )
    .await;
    assert_eq!(r.json()["code"], 0);
    let r = post_json(
        &format!("{b}/_sandbox/webhooks/emit"),
        &[],
        &json!({"provider": "zoho", "org_id": "700000001", "entity": "invoice", "operation": "create"}),
    )
    .await;
    assert_eq!(r.status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn emitter_reports_a_failing_receiver() {
    let sb = start().await;
    let b = &sb.base_url;
    fn fail(_: &HeaderMap, _: &[u8]) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
    let (url, _) = receiver(fail).await;
    let v =
        control(b, "webhooks/emit", json!({"provider": "quickbooks", "target_url": url, "entity": "Payment", "operation": "Create"})).await;
    assert_eq!(v["status"], 503);
    let counters = get(&format!("{b}/_sandbox/counters"), &[]).await.json();
    assert_eq!(counters["webhooks_emitted"], 1);
    sb.shutdown().await;
}
