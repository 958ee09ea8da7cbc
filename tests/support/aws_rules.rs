//! AWS's request limits, enforced in the test harness where the local emulator is kinder than AWS.
//!
//! Every DynamoDB and SQS client the integration tests hand to the code under test carries
//! [`AwsRules`], an SDK interceptor that refuses, before anything is sent, a request AWS would refuse
//! for its size or shape. The code then sees an error as it would on AWS, so a test that passes here
//! cannot pass only because the emulator let an oversized batch or message through. moto or MiniStack
//! already enforce some of these (item size, batch of 11, visibility over 12 h); they are checked here
//! too so the rule holds whichever emulator runs. SQS's 12 hours from a message's first receipt is
//! held here for MiniStack, which does not enforce it. The list is in docs/aws-rules.md.
//!
//! Limits (AWS documentation, service quotas that cannot be raised):
//! - DynamoDB: item 400 KB (names + values), BatchWriteItem 25 requests, BatchGetItem 100 keys,
//!   TransactWriteItems / TransactGetItems 100 actions, 4 MB per transaction, one action per item;
//!   a Query or Scan page holds at most 1 MB of items and then ends with a LastEvaluatedKey.
//! - SQS: message 256 KiB (body + attributes; the queues keep the default MaximumMessageSize),
//!   batch 10 entries and 256 KiB in all, unique batch ids, 10 message attributes, DelaySeconds
//!   0-900, visibility 0-43,200 s and at most 43,200 s from the message's first receipt, ReceiveMessage 1-10 messages and a wait of at most 20 s, and the
//!   body's characters (#x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF).

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextMut};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

pub const DYNAMO_ITEM_MAX: usize = 400 * 1024;
pub const DYNAMO_BATCH_WRITE_MAX: usize = 25;
pub const DYNAMO_BATCH_GET_MAX: usize = 100;
pub const DYNAMO_TRANSACT_MAX: usize = 100;
pub const DYNAMO_TRANSACT_BYTES_MAX: usize = 4 * 1024 * 1024;
pub const DYNAMO_PAGE_MAX: usize = 1024 * 1024;
pub const SQS_MESSAGE_MAX: usize = 256 * 1024;
pub const SQS_BATCH_MAX: usize = 10;
pub const SQS_ATTRIBUTES_MAX: usize = 10;
pub const SQS_DELAY_MAX: i32 = 900;
pub const SQS_VISIBILITY_MAX: i32 = 43_200;
/// Lambda: an event invoked synchronously (HTTP API routes, SQS event source mappings) and any
/// response at most 6 MB; an event invoked asynchronously (EventBridge Scheduler) at most 1 MB.
pub const LAMBDA_SYNC_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
pub const LAMBDA_ASYNC_PAYLOAD_MAX: usize = 1024 * 1024;

/// The interceptor; stateless, one per client.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsRules;

/// A request AWS refuses: the error the code under test sees (as a dispatch failure).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused as AWS would (test harness): {}", self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(msg: String) -> Result<(), BoxError> {
    Err(Box::new(Refused(msg)))
}

impl Intercept for AwsRules {
    fn name(&self) -> &'static str {
        "AwsRules"
    }

    fn read_before_execution(&self, context: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let input = context.input();
        // The page is cut after the answer arrives, when the input is gone: keep what names its keys.
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::query::QueryInput>() {
            cfg.interceptor_state().store_put(PageOf { index: i.index_name.clone() });
            return Ok(());
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::scan::ScanInput>() {
            cfg.interceptor_state().store_put(PageOf { index: i.index_name.clone() });
            return Ok(());
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::put_item::PutItemInput>() {
            return check_item("PutItem", i.item.as_ref());
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput>() {
            return check_batch_write(i);
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput>() {
            let keys: usize = i.request_items.as_ref().map(|m| m.values().map(|k| k.keys.len()).sum()).unwrap_or(0);
            if keys > DYNAMO_BATCH_GET_MAX {
                return refuse(format!("BatchGetItem of {keys} keys (AWS: at most {DYNAMO_BATCH_GET_MAX})"));
            }
            return Ok(());
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>() {
            return check_transact_write(i);
        }
        if let Some(i) = input.downcast_ref::<aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsInput>() {
            let n = i.transact_items.as_ref().map(Vec::len).unwrap_or(0);
            if n > DYNAMO_TRANSACT_MAX {
                return refuse(format!("TransactGetItems of {n} items (AWS: at most {DYNAMO_TRANSACT_MAX})"));
            }
            return Ok(());
        }
        check_sqs(input)
    }

    /// moto answers a Query or Scan with every matching item however large the page; AWS stops at
    /// 1 MB and hands back a LastEvaluatedKey. The page is cut here the same way, so code that reads
    /// only the first page loses items in the tests as it would on AWS. Sizes are those of the items
    /// returned: for a filtered or projected read AWS counts the whole items it read, so its pages can
    /// be shorter still (the code follows LastEvaluatedKey whatever a page holds).
    fn modify_before_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(output)) = context.output_or_error_mut() else { return Ok(()) };
        if let Some(o) = output.downcast_ref::<aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput>() {
            note_receipts(o.messages());
            return Ok(());
        }
        let Some(page) = cfg.load::<PageOf>().cloned() else { return Ok(()) };
        if let Some(o) = output.downcast_mut::<aws_sdk_dynamodb::operation::query::QueryOutput>() {
            if let Some(items) = o.items.as_mut() {
                if let Some(lek) = cut_page(items, page.index.as_deref()) {
                    o.count = items.len() as i32;
                    o.scanned_count = o.scanned_count.min(o.count);
                    o.last_evaluated_key = Some(lek);
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_dynamodb::operation::scan::ScanOutput>() {
            if let Some(items) = o.items.as_mut() {
                if let Some(lek) = cut_page(items, page.index.as_deref()) {
                    o.count = items.len() as i32;
                    o.scanned_count = o.scanned_count.min(o.count);
                    o.last_evaluated_key = Some(lek);
                }
            }
        }
        Ok(())
    }
}

/// The index a Query or Scan in flight reads (None: the table).
#[derive(Debug, Clone)]
struct PageOf {
    index: Option<String>,
}

impl Storable for PageOf {
    type Storer = StoreReplace<Self>;
}

/// Key attributes of each secondary index in template.yaml (a LastEvaluatedKey from an index carries
/// the index's keys and the table's `pk`/`sk`).
const INDEX_KEYS: &[(&str, &[&str])] = &[
    ("due", &["due_pk", "due_at"]),
    ("org", &["org_key", "pk"]),
    ("sync_due", &["sync_pk", "next_sync_at"]),
    ("records_by_modified", &["rx_scope", "rx_mod"]),
    ("records_by_due", &["rx_scope", "rx_due"]),
    ("records_by_issue", &["rx_scope", "rx_issue"]),
    ("records_by_status", &["rx_status", "rx_mod"]),
    ("records_by_contact", &["rx_contact", "rx_mod"]),
];

/// Keeps the items that fit in one 1 MB page; when some are left out, the LastEvaluatedKey of the
/// last one kept (the next page starts after it).
fn cut_page(items: &mut Vec<HashMap<String, AttributeValue>>, index: Option<&str>) -> Option<HashMap<String, AttributeValue>> {
    let mut total = 0usize;
    let mut keep = items.len();
    for (n, item) in items.iter().enumerate() {
        total += item_size(item);
        if total > DYNAMO_PAGE_MAX {
            keep = n;
            break;
        }
    }
    if keep == items.len() {
        return None;
    }
    items.truncate(keep.max(1));
    let last = items.last()?;
    let index_keys = index.and_then(|i| INDEX_KEYS.iter().find(|(n, _)| *n == i)).map(|(_, k)| *k).unwrap_or(&[]);
    Some(["pk", "sk"].iter().chain(index_keys).filter_map(|k| last.get(*k).map(|v| (k.to_string(), v.clone()))).collect())
}

/// DynamoDB's item size: each attribute's name plus its value (strings and binaries by length,
/// numbers at most 21 bytes, 1 byte for booleans and nulls, 3 bytes of overhead per list or map
/// plus 1 per element).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().min(21),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().min(21)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, e)| 1 + k.len() + value_size(e)).sum::<usize>(),
        _ => 0,
    }
}

fn check_item(op: &str, item: Option<&HashMap<String, AttributeValue>>) -> Result<(), BoxError> {
    let size = item.map(item_size).unwrap_or(0);
    if size > DYNAMO_ITEM_MAX {
        return refuse(format!("{op} of a {size}-byte item (AWS: at most {DYNAMO_ITEM_MAX})"));
    }
    Ok(())
}

fn check_batch_write(i: &aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput) -> Result<(), BoxError> {
    let Some(tables) = i.request_items.as_ref() else { return Ok(()) };
    let n: usize = tables.values().map(Vec::len).sum();
    if n > DYNAMO_BATCH_WRITE_MAX {
        return refuse(format!("BatchWriteItem of {n} requests (AWS: at most {DYNAMO_BATCH_WRITE_MAX})"));
    }
    for w in tables.values().flatten() {
        if let Some(p) = &w.put_request {
            check_item("BatchWriteItem", Some(&p.item))?;
        }
    }
    Ok(())
}

fn check_transact_write(i: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput) -> Result<(), BoxError> {
    let items = i.transact_items.as_deref().unwrap_or(&[]);
    if items.len() > DYNAMO_TRANSACT_MAX {
        return refuse(format!("TransactWriteItems of {} items (AWS: at most {DYNAMO_TRANSACT_MAX})", items.len()));
    }
    let mut total = 0usize;
    let mut seen = HashSet::new();
    for t in items {
        let (table, key, size) = if let Some(p) = &t.put {
            check_item("TransactWriteItems(Put)", Some(&p.item))?;
            let key: Vec<(String, String)> =
                ["pk", "sk"].iter().filter_map(|k| p.item.get(*k).map(|v| (k.to_string(), format!("{v:?}")))).collect();
            (p.table_name.clone(), key, item_size(&p.item))
        } else if let Some(u) = &t.update {
            (u.table_name.clone(), key_of(&u.key), item_size(&u.key))
        } else if let Some(d) = &t.delete {
            (d.table_name.clone(), key_of(&d.key), item_size(&d.key))
        } else if let Some(c) = &t.condition_check {
            (c.table_name.clone(), key_of(&c.key), item_size(&c.key))
        } else {
            continue;
        };
        total += size;
        if !seen.insert((table.clone(), key.clone())) {
            return refuse(format!("TransactWriteItems with two actions on one item of {table} (AWS: ValidationException)"));
        }
    }
    if total > DYNAMO_TRANSACT_BYTES_MAX {
        return refuse(format!("TransactWriteItems of {total} bytes (AWS: at most {DYNAMO_TRANSACT_BYTES_MAX})"));
    }
    Ok(())
}

fn key_of(key: &HashMap<String, AttributeValue>) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = key.iter().map(|(n, v)| (n.clone(), format!("{v:?}"))).collect();
    k.sort();
    k
}

/// SQS's message size: the body plus each attribute's name, type and value.
fn sqs_size(body: Option<&str>, attrs: Option<&HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>>) -> usize {
    let attrs: usize = attrs
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    k.len()
                        + v.data_type.len()
                        + v.string_value.as_deref().map(str::len).unwrap_or(0)
                        + v.binary_value.as_ref().map(|b| b.as_ref().len()).unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    body.map(str::len).unwrap_or(0) + attrs
}

fn valid_sqs_chars(body: &str) -> bool {
    body.chars()
        .all(|c| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}'))
}

fn check_message(
    op: &str,
    body: Option<&str>,
    attrs: Option<&HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>>,
    delay: Option<i32>,
) -> Result<usize, BoxError> {
    let body_str = body.unwrap_or_default();
    if body_str.is_empty() {
        refuse(format!("{op} with an empty body (AWS: MissingParameter)"))?;
    }
    if !valid_sqs_chars(body_str) {
        refuse(format!("{op} with a character SQS does not allow in a body (AWS: InvalidMessageContents)"))?;
    }
    let n_attrs = attrs.map(HashMap::len).unwrap_or(0);
    if n_attrs > SQS_ATTRIBUTES_MAX {
        refuse(format!("{op} with {n_attrs} message attributes (AWS: at most {SQS_ATTRIBUTES_MAX})"))?;
    }
    if let Some(d) = delay {
        if !(0..=SQS_DELAY_MAX).contains(&d) {
            refuse(format!("{op} with DelaySeconds {d} (AWS: 0 to {SQS_DELAY_MAX})"))?;
        }
    }
    let size = sqs_size(body, attrs);
    if size > SQS_MESSAGE_MAX {
        refuse(format!("{op} of a {size}-byte message (AWS: at most {SQS_MESSAGE_MAX})"))?;
    }
    Ok(size)
}

fn check_batch_ids<'a>(op: &str, ids: impl Iterator<Item = &'a str>, n: usize) -> Result<(), BoxError> {
    if n == 0 {
        return refuse(format!("{op} with no entries (AWS: EmptyBatchRequest)"));
    }
    if n > SQS_BATCH_MAX {
        return refuse(format!("{op} of {n} entries (AWS: at most {SQS_BATCH_MAX})"));
    }
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return refuse(format!("{op} with the id '{id}' twice (AWS: BatchEntryIdsNotDistinct)"));
        }
    }
    Ok(())
}

fn check_visibility(op: &str, v: Option<i32>) -> Result<(), BoxError> {
    match v {
        Some(v) if !(0..=SQS_VISIBILITY_MAX).contains(&v) => refuse(format!("{op} to {v} s (AWS: 0 to {SQS_VISIBILITY_MAX})")),
        _ => Ok(()),
    }
}

/// When each message this process received was first received (ms since the epoch), by receipt
/// handle and by message id. SQS ends a message's visibility at most 12 hours after its first
/// receipt whatever is asked later; moto refuses a ChangeMessageVisibility past that, MiniStack
/// accepts it, so the harness holds the rule for both. Process-wide because a handle received by
/// one client (the event source mapping the tests play) is changed by another (the worker's).
#[derive(Default)]
struct Receipts {
    by_handle: HashMap<String, i64>,
    by_message: HashMap<String, i64>,
}

static RECEIPTS: std::sync::Mutex<Option<Receipts>> = std::sync::Mutex::new(None);

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn note_receipts(messages: &[aws_sdk_sqs::types::Message]) {
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    let now = now_ms();
    let mut guard = RECEIPTS.lock().unwrap_or_else(|e| e.into_inner());
    let r = guard.get_or_insert_with(Receipts::default);
    for m in messages {
        let (Some(handle), Some(id)) = (m.receipt_handle(), m.message_id()) else { continue };
        // The emulator's own record when the receive asked for it; else the first time seen here.
        let reported = m.attributes().and_then(|a| a.get(&A::ApproximateFirstReceiveTimestamp)).and_then(|t| t.parse::<i64>().ok());
        let first = *r.by_message.entry(id.to_string()).or_insert(reported.unwrap_or(now));
        let first = reported.map_or(first, |t| t.min(first));
        r.by_handle.insert(handle.to_string(), first);
    }
}

/// Refuses a visibility that would keep the message hidden past 12 hours from its first receipt
/// (AWS: InvalidParameterValue, "Total VisibilityTimeout for the message is beyond the limit").
/// A handle this process never received is left to the emulator.
fn check_total_visibility(op: &str, handle: &str, v: Option<i32>) -> Result<(), BoxError> {
    let Some(v) = v else { return Ok(()) };
    let first = RECEIPTS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|r| r.by_handle.get(handle).copied());
    let Some(first) = first else { return Ok(()) };
    let now = now_ms();
    if now + i64::from(v) * 1000 > first + i64::from(SQS_VISIBILITY_MAX) * 1000 {
        let since = (now - first) / 1000;
        return refuse(format!(
            "{op} to {v} s, {since} s after the message's first receipt (AWS: at most {SQS_VISIBILITY_MAX} s from the first receipt)"
        ));
    }
    Ok(())
}

fn check_sqs(input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> Result<(), BoxError> {
    use aws_sdk_sqs::operation as op;
    if let Some(i) = input.downcast_ref::<op::send_message::SendMessageInput>() {
        return check_message("SendMessage", i.message_body.as_deref(), i.message_attributes.as_ref(), i.delay_seconds).map(|_| ());
    }
    if let Some(i) = input.downcast_ref::<op::send_message_batch::SendMessageBatchInput>() {
        let entries = i.entries.as_deref().unwrap_or(&[]);
        check_batch_ids("SendMessageBatch", entries.iter().map(|e| e.id.as_str()), entries.len())?;
        let mut total = 0;
        for e in entries {
            total += check_message("SendMessageBatch", Some(e.message_body.as_str()), e.message_attributes.as_ref(), e.delay_seconds)?;
        }
        if total > SQS_MESSAGE_MAX {
            return refuse(format!("SendMessageBatch of {total} bytes in all (AWS: at most {SQS_MESSAGE_MAX})"));
        }
        return Ok(());
    }
    if let Some(i) = input.downcast_ref::<op::change_message_visibility::ChangeMessageVisibilityInput>() {
        check_visibility("ChangeMessageVisibility", i.visibility_timeout)?;
        return check_total_visibility("ChangeMessageVisibility", i.receipt_handle.as_deref().unwrap_or_default(), i.visibility_timeout);
    }
    if let Some(i) = input.downcast_ref::<op::change_message_visibility_batch::ChangeMessageVisibilityBatchInput>() {
        let entries = i.entries.as_deref().unwrap_or(&[]);
        check_batch_ids("ChangeMessageVisibilityBatch", entries.iter().map(|e| e.id.as_str()), entries.len())?;
        for e in entries {
            check_visibility("ChangeMessageVisibilityBatch", e.visibility_timeout)?;
            check_total_visibility("ChangeMessageVisibilityBatch", &e.receipt_handle, e.visibility_timeout)?;
        }
        return Ok(());
    }
    if let Some(i) = input.downcast_ref::<op::delete_message_batch::DeleteMessageBatchInput>() {
        let entries = i.entries.as_deref().unwrap_or(&[]);
        return check_batch_ids("DeleteMessageBatch", entries.iter().map(|e| e.id.as_str()), entries.len());
    }
    if let Some(i) = input.downcast_ref::<op::receive_message::ReceiveMessageInput>() {
        if let Some(n) = i.max_number_of_messages.filter(|n| !(1..=10).contains(n)) {
            return refuse(format!("ReceiveMessage of {n} messages (AWS: 1 to 10)"));
        }
        if let Some(w) = i.wait_time_seconds.filter(|w| !(0..=20).contains(w)) {
            return refuse(format!("ReceiveMessage waiting {w} s (AWS: 0 to 20)"));
        }
        return check_visibility("ReceiveMessage", i.visibility_timeout);
    }
    Ok(())
}

/// The DynamoDB client of `conf`, refusing what AWS refuses.
pub fn dynamodb(conf: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(conf).interceptor(AwsRules).build())
}

/// The SQS client of `conf`, refusing what AWS refuses.
pub fn sqs(conf: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(conf).interceptor(AwsRules).build())
}
