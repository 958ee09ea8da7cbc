//! The real handler (`webhook_receiver::handle`) against moto: signatures, rejections, dedupe, org
//! mapping and the jobs that land on the queues. Needs the local stack (scripts/test-all, or
//! `infra/local-aws.sh up && source .local/aws.env`).

mod support;

use base64::Engine;
use lambda_http::Body;
use shared::jobs::{Change, Operation, Source, JOB_VERSION};
use shared::tenancy::{Entity, Priority};
use shared::webhooks::{nonce, verify};
use shared::Provider;
use support::*;

#[tokio::test]
async fn quickbooks_event_notification_enqueues_one_job_per_changed_entity_once() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    // Shaped like Intuit's sample: several entities, one repeated, one we do not sync (Bill).
    let body = qbo_legacy(
        &realm,
        &[
            ("Invoice", "145", "Create", "2026-11-24T17:59:00.000Z"),
            ("Invoice", "145", "Update", "2026-11-24T17:59:41.000Z"),
            ("Customer", "58", "Create", "2026-11-24T17:59:12.000Z"),
            ("Bill", "7", "Create", "2026-11-24T17:59:12.000Z"),
        ],
    );
    let req = support::Req::post("quickbooks", body.clone())
        .header("intuit-signature", &verify::sign_base64(QBO_KEY, body.as_bytes()))
        .header("x-correlation-id", "corr-qbo-1")
        .build();
    let (status, resp) = f.send(req).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&resp).unwrap()["jobs"], 2);

    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 2, "one job per changed entity: {jobs:?}");
    for (queue, j) in &jobs {
        assert_eq!(*queue, Priority::High, "the tenant's priority picks the queue");
        assert_eq!(j.version, JOB_VERSION);
        assert_eq!(j.tenant_id, f.tenant_id);
        assert_eq!(j.provider, Provider::QuickBooks);
        assert_eq!(j.org_id, realm);
        assert_eq!(j.operation, Operation::Webhook);
        assert_eq!(j.source, Source::Webhook);
        assert_eq!(j.priority, Priority::High);
        assert_eq!(j.correlation_id, "corr-qbo-1");
        assert!(j.idempotency_key.starts_with("wh1:"));
    }
    let mut got: Vec<_> = jobs.iter().map(|(_, j)| (j.entity, j.entity_id.clone().unwrap(), j.change.unwrap())).collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got, vec![(Entity::Invoice, "145".to_string(), Change::Updated), (Entity::Contact, "58".to_string(), Change::Created)]);

    // Same delivery again (a retry inside the window): acknowledged, nothing enqueued.
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&resp).unwrap()["status"], "duplicate");
    assert!(f.drain_all().await.is_empty(), "a duplicate is never enqueued again");
}

#[tokio::test]
async fn quickbooks_cloudevents_and_previous_key_during_rotation() {
    let f = fixture_with(Options { priority: Priority::Low, ..Options::default() }).await;
    let realm = numeric_org();
    let other_realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    // Intuit's CloudEvents sample shape; one delivery mixing a connected and an unknown realm.
    let body = serde_json::json!([
        {"specversion":"1.0","id": uuid::Uuid::new_v4().to_string(),"source":"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
         "type":"qbo.invoice.created.v1","datacontenttype":"application/json","time":"2026-11-24T17:59:25.179851517Z",
         "intuitentityid":"95","intuitaccountid": realm,"data":{}},
        {"specversion":"1.0","id": uuid::Uuid::new_v4().to_string(),"source":"intuit.x","type":"qbo.payment.updated.v1",
         "datacontenttype":"application/json","time":"2026-11-24T17:59:26Z","intuitentityid":"96","intuitaccountid": other_realm,"data":{}}
    ])
    .to_string();
    // Signed with the previous verifier token: accepted while the rotation is in progress.
    let req = support::Req::post("quickbooks", body.clone())
        .header("content-type", "application/cloudevents-batch+json")
        .header("intuit-signature", &verify::sign_base64(QBO_OLD_KEY, body.as_bytes()))
        .build();
    let (status, resp) = f.send(req).await;
    assert_eq!(status, 200, "{resp}");
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 1, "the unknown realm is acknowledged but not enqueued: {jobs:?}");
    let (queue, j) = &jobs[0];
    assert_eq!(*queue, Priority::Low);
    assert_eq!((j.entity, j.entity_id.as_deref(), j.change), (Entity::Invoice, Some("95"), Some(Change::Created)));
    assert_eq!(j.org_id, realm);
}

#[tokio::test]
async fn xero_events_and_intent_to_receive() {
    let f = fixture_with(Options { priority: Priority::Normal, ..Options::default() }).await;
    let tenant = org();
    f.connect(Provider::Xero, &[&tenant]).await;

    // Intent to receive: empty events, correct signature => 200 with an empty body; wrong => 401, empty body.
    let itr = r#"{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"CWJLQXKOBYLKYFYHGXCK"}"#;
    let resp = webhook_receiver::handle(&f.deps, xero_signed(itr)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.body().is_empty(), "Xero wants an empty body");
    let bad = support::Req::post("xero", itr).header("x-xero-signature", &verify::sign_base64("not-the-key", itr.as_bytes())).build();
    let resp = webhook_receiver::handle(&f.deps, bad).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.body().is_empty());
    let unsigned = support::Req::post("xero", itr).build();
    assert_eq!(f.send(unsigned).await.0, 401, "empty events never short-circuit the signature check");

    let inv = uuid::Uuid::new_v4().to_string();
    let contact = uuid::Uuid::new_v4().to_string();
    let body = xero_events(&tenant, &[("INVOICE", &inv, "UPDATE"), ("CONTACT", &contact, "CREATE"), ("CREDITNOTE", "cn-1", "CREATE")]);
    let (status, resp_body) = f.send(xero_signed(&body)).await;
    assert_eq!((status, resp_body.as_str()), (200, ""));
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|(q, j)| *q == Priority::Normal && j.org_id == tenant && j.provider == Provider::Xero));
    let mut ids: Vec<_> = jobs.iter().map(|(_, j)| (j.entity, j.entity_id.clone().unwrap())).collect();
    ids.sort();
    let mut want = vec![(Entity::Invoice, inv), (Entity::Contact, contact)];
    want.sort();
    assert_eq!(ids, want);

    // Xero resends the same events with new entropy: still the same delivery.
    let resent = body.replace("KJHGFDSAQWERTYUIOPLM", "ZZZZZZZZZZZZZZZZZZZZ");
    assert_eq!(f.send(xero_signed(&resent)).await.0, 200);
    assert!(f.drain_all().await.is_empty());
}

#[tokio::test]
async fn rejections_get_their_status_and_nothing_is_enqueued() {
    let f = fixture_with(Options { max_body_bytes: 2048, ..Options::default() }).await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let body = qbo_legacy(&realm, &[("Invoice", "1", "Update", "2026-11-24T17:59:41.000Z")]);
    let sig = verify::sign_base64(QBO_KEY, body.as_bytes());

    let mut altered = body.clone().into_bytes();
    let pos = altered.iter().position(|b| *b == b'1').unwrap();
    altered[pos] = b'2';
    let oversized = qbo_legacy(&realm, &vec![("Invoice", "1", "Update", "2026-11-24T17:59:41.000Z"); 40]);
    assert!(oversized.len() > 2048);
    let malformed = format!("{}x", &body[..body.len() - 1]);

    let cases: Vec<(&str, lambda_http::Request, u16, u16)> = vec![
        (
            "bad signature",
            support::Req::post("quickbooks", body.clone())
                .header("intuit-signature", &verify::sign_base64("wrong", body.as_bytes()))
                .build(),
            401,
            4001,
        ),
        ("missing signature", support::Req::post("quickbooks", body.clone()).build(), 401, 4001),
        ("signature not base64", support::Req::post("quickbooks", body.clone()).header("intuit-signature", "%%%").build(), 401, 4001),
        (
            "truncated body",
            support::Req::post("quickbooks", &body.as_bytes()[..body.len() - 3]).header("intuit-signature", &sig).build(),
            401,
            4001,
        ),
        ("one altered byte", support::Req::post("quickbooks", altered).header("intuit-signature", &sig).build(), 401, 4001),
        (
            "oversized body",
            support::Req::post("quickbooks", oversized.clone())
                .header("intuit-signature", &verify::sign_base64(QBO_KEY, oversized.as_bytes()))
                .build(),
            413,
            4002,
        ),
        (
            "malformed JSON under a valid signature",
            support::Req::post("quickbooks", malformed.clone())
                .header("intuit-signature", &verify::sign_base64(QBO_KEY, malformed.as_bytes()))
                .build(),
            400,
            4000,
        ),
        (
            "valid JSON, wrong shape",
            support::Req::post("quickbooks", "{\"hello\":1}")
                .header("intuit-signature", &verify::sign_base64(QBO_KEY, b"{\"hello\":1}"))
                .build(),
            400,
            4000,
        ),
        ("GET", support::Req::post("quickbooks", body.clone()).method("GET").header("intuit-signature", &sig).build(), 405, 4005),
        (
            "text/plain",
            support::Req::post("quickbooks", body.clone()).header("content-type", "text/plain").header("intuit-signature", &sig).build(),
            415,
            4003,
        ),
        (
            "no content type",
            support::Req::post("quickbooks", body.clone()).without_header("content-type").header("intuit-signature", &sig).build(),
            415,
            4003,
        ),
        ("unknown provider", support::Req::post("sage", body.clone()).header("intuit-signature", &sig).build(), 404, 4004),
        (
            "xero key on a quickbooks delivery",
            support::Req::post("quickbooks", body.clone())
                .header("intuit-signature", &verify::sign_base64(XERO_KEY, body.as_bytes()))
                .build(),
            401,
            4001,
        ),
    ];
    for (name, req, want_status, want_code) in cases {
        let (status, resp) = f.send(req).await;
        assert_eq!(status, want_status, "{name}: {resp}");
        let v: serde_json::Value = serde_json::from_str(&resp).unwrap_or_else(|_| panic!("{name}: JSON error body, got {resp}"));
        assert_eq!(v["error"]["code"], want_code, "{name}");
        assert!(!resp.contains(QBO_KEY), "{name}: key material in the body");
    }
    assert!(f.drain_all().await.is_empty(), "nothing rejected is enqueued");

    // And the untouched delivery still goes through: the rejections claimed no nonce.
    assert_eq!(f.send(qbo_signed(&body)).await.0, 200);
    assert_eq!(f.drain_all().await.len(), 1);
}

#[tokio::test]
async fn replay_inside_the_window_is_a_duplicate_redelivery_after_expiry_is_processed_with_the_same_key() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let body = qbo_legacy(&realm, &[("Payment", "77", "Create", "2026-11-24T17:59:41.000Z")]);

    assert_eq!(f.send(qbo_signed(&body)).await.0, 200);
    let first = f.drain_all().await;
    assert_eq!(first.len(), 1);

    // Replay an hour later: inside the 24 h window.
    f.advance_clock(3600);
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200);
    assert!(resp.contains("duplicate"), "{resp}");
    assert!(f.drain_all().await.is_empty());

    // Past the window: the expired nonce item is still in the table (moto, like DynamoDB TTL, has not
    // deleted it), and the conditional put treats it as absent.
    f.advance_clock(nonce::DEFAULT_WINDOW.num_seconds());
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    let second = f.drain_all().await;
    assert_eq!(second.len(), 1, "processed again, exactly once");
    assert_ne!(second[0].1.job_id, first[0].1.job_id);
    assert_eq!(second[0].1.idempotency_key, first[0].1.idempotency_key, "the worker sees the same work and does it once");

    // The new claim started a new window.
    assert!(f.send(qbo_signed(&body)).await.1.contains("duplicate"));
    assert!(f.drain_all().await.is_empty());
}

#[tokio::test]
async fn unknown_org_is_acknowledged_not_enqueued_and_disabled_entities_are_skipped() {
    let f = fixture_with(Options { entities: vec![Entity::Invoice], ..Options::default() }).await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;

    let stranger = qbo_legacy(&numeric_org(), &[("Invoice", "1", "Create", "2026-11-24T17:59:41.000Z")]);
    let (status, resp) = f.send(qbo_signed(&stranger)).await;
    assert_eq!(status, 200);
    assert!(resp.contains("ignored"), "{resp}");

    let body = qbo_legacy(
        &realm,
        &[("Customer", "5", "Create", "2026-11-24T17:59:41.000Z"), ("Invoice", "6", "Void", "2026-11-24T17:59:41.000Z")],
    );
    assert_eq!(f.send(qbo_signed(&body)).await.0, 200);
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 1, "contacts are not enabled for this tenant: {jobs:?}");
    assert_eq!((jobs[0].1.entity, jobs[0].1.change), (Entity::Invoice, Some(Change::Voided)));
}

#[tokio::test]
async fn base64_bodies_from_api_gateway_are_verified_over_the_decoded_bytes() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let body = qbo_legacy(&realm, &[("Account", "33", "Update", "2026-11-24T17:59:41.000Z")]);
    // lambda_http hands a base64-encoded API Gateway body over as decoded bytes (Body::Binary).
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /webhooks/{provider}", "rawPath": "/webhooks/quickbooks", "rawQueryString": "",
        "headers": {"content-type": "application/json", "intuit-signature": verify::sign_base64(QBO_KEY, body.as_bytes())},
        "pathParameters": {"provider": "quickbooks"},
        "requestContext": {"accountId": "1", "apiId": "x", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "POST", "path": "/webhooks/quickbooks", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "POST /webhooks/{provider}", "stage": "$default", "time": "24/Nov/2026:18:00:00 +0000", "timeEpoch": 0},
        "body": base64::engine::general_purpose::STANDARD.encode(body.as_bytes()),
        "isBase64Encoded": true
    });
    let req = lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event");
    assert!(matches!(req.body(), Body::Binary(_)));
    assert_eq!(f.send(req).await.0, 200);
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1.entity, Entity::Account);
}

#[tokio::test]
async fn zoho_per_org_secret_in_our_header() {
    let f = fixture().await;
    let zorg = numeric_org();
    f.connect(Provider::Zoho, &[&zorg]).await;
    let body = format!(
        r#"{{"organization_id":"{zorg}","entity":"invoice","entity_id":"460000000012345","event":"updated","last_modified_time":"2026-11-24T17:59:41+0000"}}"#
    );
    let good = support::Req::post("zoho", body.clone())
        .query("organization_id", &zorg)
        .header("x-ttya-webhook-secret", &zoho_secret(&zorg))
        .build();
    let (status, resp) = f.send(good).await;
    assert_eq!(status, 200, "{resp}");
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].1.provider, jobs[0].1.entity, jobs[0].1.entity_id.as_deref()),
        (Provider::Zoho, Entity::Invoice, Some("460000000012345"))
    );
    assert_eq!(jobs[0].1.org_id, zorg);

    let other = numeric_org();
    f.connect(Provider::Zoho, &[&other]).await;
    let cases = vec![
        (
            "wrong secret",
            support::Req::post("zoho", body.clone()).query("organization_id", &zorg).header("x-ttya-webhook-secret", "nope").build(),
        ),
        ("no secret header", support::Req::post("zoho", body.clone()).query("organization_id", &zorg).build()),
        ("no organization", support::Req::post("zoho", body.clone()).header("x-ttya-webhook-secret", &zoho_secret(&zorg)).build()),
        // Another org's secret does not open this org.
        (
            "secret of another org",
            support::Req::post("zoho", body.clone())
                .query("organization_id", &zorg)
                .header("x-ttya-webhook-secret", &zoho_secret(&other))
                .build(),
        ),
    ];
    let mut answers = Vec::new();
    for (name, req) in cases {
        let (status, resp) = f.send(req).await;
        assert_eq!(status, 401, "{name}");
        answers.push((name, resp));
    }
    // An organisation nobody connected gets the very same answer as a wrong secret for a connected
    // one (no oracle for who is a customer).
    let stranger = numeric_org();
    let (status, resp) = f
        .send(
            support::Req::post("zoho", body.clone())
                .query("organization_id", &stranger)
                .header("x-ttya-webhook-secret", "whatever")
                .build(),
        )
        .await;
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["error"].as_object_mut().unwrap().remove("correlation_id");
        v
    };
    assert_eq!(status, 401, "{resp}");
    assert_eq!(strip(&resp), strip(&answers[0].1), "unknown org vs {}", answers[0].0);
    assert!(f.drain_all().await.is_empty());
}

#[tokio::test]
async fn a_failed_enqueue_answers_500_and_releases_the_nonce_so_the_retry_is_processed() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let body = qbo_legacy(&realm, &[("Invoice", "900", "Create", "2026-11-24T17:59:41.000Z")]);

    // Same tables and keys, but queues that do not exist.
    let missing = shared::jobs::SyncQueues {
        high: format!("{}-missing", f.queues.high),
        normal: format!("{}-missing", f.queues.normal),
        low: format!("{}-missing", f.queues.low),
    };
    let broken = receiver(&f.env, missing.clone(), 262_144, f.clock_offset.clone());
    let mut req = qbo_signed(&body);
    req.headers_mut().insert("x-correlation-id", "corr-enqueue-fail".parse().unwrap());
    let resp = webhook_receiver::handle(&broken, req).await.unwrap();
    assert_eq!(resp.status(), 500);
    // The caller is unauthenticated: code, fixed message and correlation id, no SDK error or queue URL.
    let text = String::from_utf8(resp.body().to_vec()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], 9004, "{text}");
    assert_eq!(v["error"]["message"], "internal error", "{text}");
    assert_eq!(v["error"]["correlation_id"], "corr-enqueue-fail");
    assert!(!text.contains(&missing.high) && !text.contains("missing") && !text.contains("SendMessage"), "{text}");

    // The provider retries: not a duplicate, it goes through once.
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("accepted"), "{resp}");
    assert_eq!(f.drain_all().await.len(), 1);
}

#[tokio::test]
async fn many_entities_span_several_batches_and_each_is_enqueued_once() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let ids: Vec<String> = (0..23).map(|i| format!("{}", 1000 + i)).collect();
    let ents: Vec<(&str, &str, &str, &str)> = ids.iter().map(|id| ("Invoice", id.as_str(), "Update", "2026-11-24T17:59:41.000Z")).collect();
    let body = qbo_legacy(&realm, &ents);
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    let mut got: Vec<String> = f.drain_all().await.into_iter().map(|(_, j)| j.entity_id.unwrap()).collect();
    got.sort();
    assert_eq!(got, ids, "23 entities => 23 jobs (3 SendMessageBatch calls), no more");
}

/// The sample events in events/webhook-receiver (used by `infra/lambda-local.sh smoke` and
/// `sam local invoke`) are valid API Gateway events, correctly signed with the local keys: each is
/// answered 200 (their orgs are not connected in a fresh stack, so they are acknowledged, not
/// enqueued), except Zoho's, whose per-org secret cannot match an org nobody connected: 401.
#[tokio::test]
async fn sample_events_are_accepted() {
    let f = fixture().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/webhook-receiver");
    let mut seen = 0;
    for (name, want) in [
        ("quickbooks.json", 200),
        ("quickbooks-cloudevents.json", 200),
        ("xero.json", 200),
        ("xero-intent-to-receive.json", 200),
        ("zoho.json", 401),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name} is not an API Gateway v2 event: {e}"));
        let (status, body) = f.send(req).await;
        assert_eq!(status, want, "{name}: {body}");
        seen += 1;
    }
    assert_eq!(seen, 5);
}

/// After a key rotation the container's cached keys are stale: the first delivery signed with the new
/// key makes the receiver re-read the secret once instead of failing until the cache expires.
#[tokio::test]
async fn a_rotated_key_is_picked_up_without_waiting_for_the_cache() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    // A secret of this test's own, so rotating it cannot disturb other tests.
    let sm = &f.env.clients.secrets;
    let name = integration_tests::unique("wh-keys");
    let doc = |cur: &str, prev: Option<&str>| serde_json::json!({"quickbooks": {"current": cur, "previous": prev}}).to_string();
    sm.create_secret().name(&name).secret_string(doc("key-one-aaaaaaaa", None)).send().await.unwrap();
    let mut deps = receiver(&f.env, f.queues.clone(), 262_144, f.clock_offset.clone());
    deps.keys = shared::webhooks::KeySource::Secrets {
        cache: std::sync::Arc::new(shared::secrets::SecretsCache::new(sm.clone(), shared::secrets::DEFAULT_TTL)),
        secret_id: name.clone(),
    };
    let signed = |key: &str, id: &str| {
        let body = qbo_legacy(&realm, &[("Invoice", id, "Update", "2026-11-24T17:59:41.000Z")]);
        support::Req::post("quickbooks", body.clone()).header("intuit-signature", &verify::sign_base64(key, body.as_bytes())).build()
    };
    let send = |req| {
        let deps = &deps;
        async move { webhook_receiver::handle(deps, req).await.unwrap().status().as_u16() }
    };
    assert_eq!(send(signed("key-one-aaaaaaaa", "1")).await, 200);
    sm.put_secret_value().secret_id(&name).secret_string(doc("key-two-bbbbbbbb", Some("key-one-aaaaaaaa"))).send().await.unwrap();
    assert_eq!(send(signed("key-two-bbbbbbbb", "2")).await, 200, "the new key works at once");
    assert_eq!(send(signed("key-one-aaaaaaaa", "3")).await, 200, "the previous key still works during the rotation");
    assert_eq!(send(signed("key-zzz", "4")).await, 401);
    assert_eq!(f.drain_all().await.len(), 3);
}

/// The function dies (timeout, crash) after claiming the nonce and before the jobs reach SQS. The
/// provider retries: while the first attempt could still be running the retry is a duplicate, but
/// once the short pending claim has lapsed the retry is processed, not dropped for 24 hours. Once
/// a job of the delivery is taken the claim covers the full window.
#[tokio::test]
async fn a_handler_killed_between_claim_and_send_does_not_turn_the_retry_into_a_duplicate() {
    let f = fixture().await;
    let realm = numeric_org();
    f.connect(Provider::QuickBooks, &[&realm]).await;
    let body = qbo_legacy(&realm, &[("Invoice", "4711", "Create", "2026-11-24T17:59:41.000Z")]);

    // An SQS endpoint that takes the connection and never answers: the handler hangs in the send.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reached, reached_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (_sock, _) = listener.accept().await.unwrap();
        let _ = reached.send(());
        std::future::pending::<()>().await;
    });
    let hanging = aws_sdk_sqs::Client::from_conf(f.env.clients.sqs.config().to_builder().endpoint_url(format!("http://{addr}")).build());
    let mut dying = receiver(&f.env, f.queues.clone(), 262_144, f.clock_offset.clone());
    dying.jobs = shared::jobs::JobQueue::new(hanging, f.queues.clone());
    let first = {
        let req = qbo_signed(&body);
        tokio::spawn(async move { webhook_receiver::handle(&dying, req).await.map(|r| r.status()) })
    };
    // The send has started, so the claim is written; now the function "dies".
    reached_rx.await.expect("the handler got as far as the SQS send");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    server.abort();

    // A retry while the first attempt could still be alive: not doubled.
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("duplicate"), "{resp}");
    assert!(f.drain_all().await.is_empty());

    // The provider's next retry, after the pending claim lapsed: processed.
    f.advance_clock(nonce::PENDING_WINDOW.num_seconds() + 1);
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("accepted"), "the retry of a delivery whose handler died must be processed: {resp}");
    let jobs = f.drain_all().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1.entity_id.as_deref(), Some("4711"));

    // That claim was confirmed when its job was taken (the worker's confirm; `drain` does the same):
    // it now holds for the whole window, not a few seconds.
    f.advance_clock(nonce::PENDING_WINDOW.num_seconds() * 3);
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200);
    assert!(resp.contains("duplicate"), "{resp}");
    assert!(f.drain_all().await.is_empty());
}

/// The nonce claim runs alongside the org lookups, so a delivery that turns out to have nothing to
/// enqueue has claimed its nonce too: it must release it, or the provider's redelivery after the org
/// is connected would be dropped as a duplicate.
#[tokio::test]
async fn a_delivery_with_nothing_to_do_does_not_count_as_seen() {
    let f = fixture().await;
    let realm = numeric_org();
    let body = qbo_legacy(&realm, &[("Invoice", "9", "Create", "2026-11-24T17:59:41.000Z")]);
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("ignored"), "{resp}");
    assert!(f.drain_all().await.is_empty());

    f.connect(Provider::QuickBooks, &[&realm]).await;
    let (status, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(f.drain_all().await.len(), 1, "the redelivery after the connect is processed: {resp}");
    let (_, resp) = f.send(qbo_signed(&body)).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&resp).unwrap()["status"], "duplicate");
}
