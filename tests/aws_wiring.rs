//! One test per AWS service proving the wiring against the local stack (moto).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_sqs::types::QueueAttributeName;
use integration_tests::{aws, unique};

#[tokio::test]
async fn dynamodb_conditional_put_on_existing_item_fails_with_conditional_check_failed() {
    let env = aws().await;
    let db = &env.clients.dynamodb;
    let pk = AttributeValue::S(format!("TENANT#{}", unique("wiring")));
    let put = || {
        db.put_item()
            .table_name(&env.config.tables.ephemeral)
            .item("pk", pk.clone())
            .item("sk", AttributeValue::S("ITEM".into()))
            .condition_expression("attribute_not_exists(pk)")
    };
    put().send().await.expect("first put succeeds");
    let err = put().send().await.expect_err("second put must fail").into_service_error();
    assert!(err.is_conditional_check_failed_exception(), "got {err:?}");
}

#[tokio::test]
async fn provisioned_tables_have_ttl_on_expires_at() {
    let env = aws().await;
    let t = &env.config.tables;
    for table in [&t.tenants, &t.grants, &t.ephemeral, &t.resilience, &t.sync] {
        let out = env.clients.dynamodb.describe_time_to_live().table_name(table).send().await.unwrap();
        let d = out.time_to_live_description.expect("ttl description");
        assert_eq!(d.attribute_name.as_deref(), Some("expires_at"), "{table}");
        assert_eq!(d.time_to_live_status.map(|s| s.as_str().to_string()).as_deref(), Some("ENABLED"), "{table}");
    }
}

#[tokio::test]
async fn kms_decrypt_with_a_wrong_encryption_context_fails() {
    let env = aws().await;
    let kms = &env.clients.kms;
    let ctx = |tenant: &str| HashMap::from([("tenant_id".to_string(), tenant.to_string()), ("provider".to_string(), "xero".to_string())]);
    let out = kms
        .encrypt()
        .key_id(&env.config.kms_key_id)
        .plaintext(Blob::new(b"refresh-token".to_vec()))
        .set_encryption_context(Some(ctx("tenant-a")))
        .send()
        .await
        .unwrap();
    let blob = out.ciphertext_blob.unwrap();
    let ok = kms.decrypt().ciphertext_blob(blob.clone()).set_encryption_context(Some(ctx("tenant-a"))).send().await.unwrap();
    assert_eq!(ok.plaintext.unwrap().as_ref(), b"refresh-token");
    for wrong in [Some(ctx("tenant-b")), None] {
        let err =
            kms.decrypt().ciphertext_blob(blob.clone()).set_encryption_context(wrong).send().await.expect_err("wrong context must fail");
        let err = err.into_service_error();
        assert!(err.is_invalid_ciphertext_exception(), "got {err:?}");
    }
}

#[tokio::test]
async fn sqs_message_received_max_receive_count_times_lands_in_the_dlq() {
    let env = aws().await;
    let sqs = &env.clients.sqs;
    let name = unique("wiring");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"2"}}"#);
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message().queue_url(&queue).message_body("poison").send().await.unwrap();
    for _ in 0..2 {
        let got = sqs.receive_message().queue_url(&queue).wait_time_seconds(1).send().await.unwrap();
        assert_eq!(got.messages.unwrap_or_default().len(), 1, "received before the limit");
    }
    // The third receive finds the message gone: SQS moved it to the DLQ.
    let third = sqs.receive_message().queue_url(&queue).wait_time_seconds(1).send().await.unwrap();
    assert!(third.messages.unwrap_or_default().is_empty());
    let mut in_dlq = Vec::new();
    for _ in 0..5 {
        in_dlq = sqs.receive_message().queue_url(&dlq).wait_time_seconds(1).send().await.unwrap().messages.unwrap_or_default();
        if !in_dlq.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(in_dlq.len(), 1);
    assert_eq!(in_dlq[0].body.as_deref(), Some("poison"));
}

#[tokio::test]
async fn provisioned_sync_queues_redrive_to_the_dead_letter_queue() {
    let env = aws().await;
    let q = &env.config.queues;
    for url in [&q.sync_high, &q.sync_normal, &q.sync_low] {
        let attrs = env
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let policy: serde_json::Value =
            serde_json::from_str(attrs.get(&QueueAttributeName::RedrivePolicy).expect("redrive policy")).unwrap();
        assert!(
            policy["deadLetterTargetArn"].as_str().unwrap().ends_with("dlq")
                || policy["deadLetterTargetArn"].as_str().unwrap().contains("dead"),
            "{policy}"
        );
        assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
    }
}

#[tokio::test]
async fn secrets_manager_holds_the_provisioned_secrets_as_json() {
    let env = aws().await;
    let s = &env.config.secrets;
    for id in [&s.provider_credentials, &s.webhook_keys, &s.app_signing] {
        let out = env.clients.secrets.get_secret_value().secret_id(id).send().await.unwrap();
        let v: serde_json::Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
        assert!(v.is_object(), "{id} is a JSON object");
    }
}

fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<integration_tests::aws_rules::Refused>().is_some() {
            return true;
        }
        src = s.source();
    }
    false
}

/// The harness refuses what AWS refuses even where moto would accept it, and lets through what AWS
/// accepts: each limit is tried at its edge and one past it.
#[tokio::test]
async fn the_harness_refuses_what_aws_refuses_at_each_limit() {
    use aws_sdk_dynamodb::types::{Put, PutRequest, TransactWriteItem, WriteRequest};
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

    let env = aws().await;
    let db = &env.clients.dynamodb;
    let table = &env.config.tables.ephemeral;
    let tenant = unique("rules");
    let item = |i: usize| {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(format!("TENANT#{tenant}"))),
            ("sk".to_string(), AttributeValue::S(format!("ITEM#{i}"))),
        ])
    };
    // TransactWriteItems: 100 actions pass, 101 are refused; two actions on one item are refused.
    let puts = |n: usize| -> Vec<TransactWriteItem> {
        (0..n)
            .map(|i| TransactWriteItem::builder().put(Put::builder().table_name(table).set_item(Some(item(i))).build().unwrap()).build())
            .collect()
    };
    db.transact_write_items().set_transact_items(Some(puts(100))).send().await.expect("100 actions are allowed");
    let e = db.transact_write_items().set_transact_items(Some(puts(101))).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    let mut twice = puts(1);
    twice.extend(puts(1));
    let e = db.transact_write_items().set_transact_items(Some(twice)).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");

    // BatchWriteItem: 25 requests pass, 26 are refused.
    let writes = |n: usize| -> Vec<WriteRequest> {
        (0..n)
            .map(|i| WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item(1000 + i))).build().unwrap()).build())
            .collect()
    };
    db.batch_write_item().request_items(table, writes(25)).send().await.expect("25 requests are allowed");
    let e = db.batch_write_item().request_items(table, writes(26)).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");

    // An item over 400 KB.
    let mut big = item(5000);
    big.insert("blob".into(), AttributeValue::S("x".repeat(400 * 1024)));
    let e = db.put_item().table_name(table).set_item(Some(big)).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");

    // SQS: 10 entries pass, 11 are refused; a body of 256 KiB + 1 byte, a NUL character, a delay of
    // 901 s and a visibility of 43,201 s are refused.
    let sqs = &env.clients.sqs;
    let url = env.config.queues.sync_low.clone();
    let entries = |n: usize| -> Vec<SendMessageBatchRequestEntry> {
        (0..n).map(|i| SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body("{}").build().unwrap()).collect()
    };
    let q = unique("rules-q");
    let own = sqs.create_queue().queue_name(&q).send().await.unwrap().queue_url.unwrap();
    sqs.send_message_batch().queue_url(&own).set_entries(Some(entries(10))).send().await.expect("10 entries are allowed");
    let e = sqs.send_message_batch().queue_url(&own).set_entries(Some(entries(11))).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    sqs.send_message().queue_url(&own).message_body("x".repeat(256 * 1024)).send().await.expect("256 KiB is allowed");
    let e = sqs.send_message().queue_url(&own).message_body("x".repeat(256 * 1024 + 1)).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    let e = sqs.send_message().queue_url(&own).message_body("a\u{0}b").send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    let e = sqs.send_message().queue_url(&own).message_body("{}").delay_seconds(901).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    let e = sqs.change_message_visibility().queue_url(&url).receipt_handle("r").visibility_timeout(43_201).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");

    // A message's visibility ends at most 12 hours after its first receipt: 43,200 s asked a moment
    // after receiving it is refused (MiniStack accepts it; AWS and moto do not), what is left of
    // the 12 hours is allowed.
    let fresh = unique("rules-vis");
    let vis = sqs.create_queue().queue_name(&fresh).send().await.unwrap().queue_url.unwrap();
    sqs.send_message().queue_url(&vis).message_body("{}").send().await.unwrap();
    let got = sqs.receive_message().queue_url(&vis).wait_time_seconds(1).send().await.unwrap();
    let handle = got.messages()[0].receipt_handle().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let e = sqs.change_message_visibility().queue_url(&vis).receipt_handle(&handle).visibility_timeout(43_200).send().await.unwrap_err();
    assert!(refused(&e), "{e:?}");
    sqs.change_message_visibility()
        .queue_url(&vis)
        .receipt_handle(&handle)
        .visibility_timeout(43_000)
        .send()
        .await
        .expect("within 12 hours of the first receipt");
    sqs.delete_queue().queue_url(&vis).send().await.unwrap();
    sqs.delete_queue().queue_url(&own).send().await.unwrap();
}

/// DynamoDB ends a Query page at 1 MB of items with a LastEvaluatedKey (moto does not: the harness
/// cuts the page as AWS would). The harness's page holds at most 1 MB and following the keys reads
/// every item once, from the table and from an index; and the readers that once took only the first
/// page (the audit trail, an org's connections) now read them all.
#[tokio::test]
async fn query_pages_end_at_one_megabyte_and_the_readers_follow_them() {
    use shared::audit::{AuditLog, TokenEvent};
    use shared::store::grants::{connection_sk, org_key, GrantStore};
    use shared::store::tenant_pk;

    let env = aws().await;
    let db = &env.clients.dynamodb;
    let pad = "p".repeat(100 * 1024);

    // Raw: 25 items of 100 KB in one partition.
    let table = &env.config.tables.ephemeral;
    let tenant = unique("pages");
    for i in 0..25 {
        db.put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .item("sk", AttributeValue::S(format!("ITEM#{i:03}")))
            .item("pad", AttributeValue::S(pad.clone()))
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut start = None;
    let mut pages = 0;
    loop {
        let out = db
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        pages += 1;
        let items = out.items.unwrap_or_default();
        let bytes: usize = items.iter().map(integration_tests::aws_rules::item_size).sum();
        assert!(bytes <= integration_tests::aws_rules::DYNAMO_PAGE_MAX, "a page of {bytes} bytes");
        assert_eq!(out.count as usize, items.len());
        seen.extend(items.iter().map(|i| i["sk"].as_s().unwrap().clone()));
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert!(pages >= 3, "25 items of 100 KB come in at least 3 pages, not {pages}");
    let expected: Vec<String> = (0..25).map(|i| format!("ITEM#{i:03}")).collect();
    assert_eq!(seen, expected, "each item once, in order");

    // The audit trail: 15 records of about 100 KB each are all listed.
    let audit = AuditLog::new(db.clone(), env.config.tables.tenants.clone());
    let now = chrono::Utc::now();
    for i in 0..15 {
        let at = now + chrono::Duration::milliseconds(i);
        audit.record(&tenant, shared::Provider::Xero, "grant-1", TokenEvent::Refreshed, "test", Some(&pad), at).await.unwrap();
    }
    assert_eq!(audit.list(&tenant).await.unwrap().len(), 15, "every page of the audit trail");

    // An org's connections through the `org` index: 15 tenants on one org, each item padded.
    let org = unique("org");
    let grants = GrantStore::new(db.clone(), env.config.tables.grants.clone());
    for i in 0..15 {
        let t = format!("{tenant}-{i:02}");
        db.put_item()
            .table_name(&env.config.tables.grants)
            .item("pk", AttributeValue::S(tenant_pk(&t)))
            .item("sk", AttributeValue::S(connection_sk(shared::Provider::Xero, &org)))
            .item("kind", AttributeValue::S("connection".into()))
            .item("tenant_id", AttributeValue::S(t.clone()))
            .item("provider", AttributeValue::S("xero".into()))
            .item("org_id", AttributeValue::S(org.clone()))
            .item("org_key", AttributeValue::S(org_key(shared::Provider::Xero, &org)))
            .item("grant_id", AttributeValue::S(format!("grant-{i}")))
            .item("status", AttributeValue::S("needs_reauth".into()))
            .item("created_at", AttributeValue::S(now.to_rfc3339()))
            .item("updated_at", AttributeValue::S(now.to_rfc3339()))
            .item("pad", AttributeValue::S(pad.clone()))
            .send()
            .await
            .unwrap();
    }
    let conns = grants.connections_for_org_routed(shared::Provider::Xero, &org).await.unwrap();
    let mut tenants: Vec<String> = conns.iter().map(|(c, _)| c.tenant_id.clone()).collect();
    tenants.sort();
    assert_eq!(tenants, (0..15).map(|i| format!("{tenant}-{i:02}")).collect::<Vec<_>>(), "every page of the org index");
}
