//! `ttya-ops queues`: depths of every queue and dead-letter queue, dead letters shown with their
//! reason, and redrive.

use std::collections::{BTreeMap, HashSet};

use clap::Subcommand;
use shared::jobs::{SyncJob, SyncQueues};
use shared::{Error, Result};

use crate::Ops;

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// Visible, in-flight and delayed messages of every queue and dead-letter queue.
    Depths,
    /// Shows dead-lettered messages (left in place) with why they are there.
    Dlq {
        #[arg(long, default_value_t = 10)]
        max: usize,
    },
    /// Moves dead-lettered messages back to their queue (sync jobs by their priority).
    Redrive {
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
}

/// A queue of ours and its dead-letter queue, from the queue's own redrive policy.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: &'static str,
    pub url: String,
    pub dlq_url: Option<String>,
}

fn sqs_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + Send + Sync + 'static>(
    op: &str,
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> Error {
    let retryable = matches!(e, aws_sdk_sqs::error::SdkError::TimeoutError(_) | aws_sdk_sqs::error::SdkError::DispatchFailure(_));
    Error::Queue { message: format!("{op}: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)), retryable }
}

fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

pub async fn queue_infos(ops: &Ops) -> Result<Vec<QueueInfo>> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let q = &ops.config.queues;
    let sqs = &ops.clients.sqs;
    let mut out = Vec::new();
    for (name, url) in [("sync-high", &q.sync_high), ("sync-normal", &q.sync_normal), ("sync-low", &q.sync_low), ("events", &q.events)] {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", e))?;
        let dlq_arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|v| v["deadLetterTargetArn"].as_str().map(str::to_string));
        let dlq_url = match dlq_arn {
            Some(arn) => Some(
                sqs.get_queue_url()
                    .queue_name(queue_name(&arn))
                    .send()
                    .await
                    .map_err(|e| sqs_error("GetQueueUrl", e))?
                    .queue_url
                    .unwrap_or_default(),
            ),
            None => None,
        };
        out.push(QueueInfo { name, url: url.clone(), dlq_url });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
}

pub async fn depth(ops: &Ops, url: &str) -> Result<Depth> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = ops
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", e))?;
    let get = |k: A| out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Depth {
        visible: get(A::ApproximateNumberOfMessages),
        in_flight: get(A::ApproximateNumberOfMessagesNotVisible),
        delayed: get(A::ApproximateNumberOfMessagesDelayed),
    })
}

/// Why a message is in a DLQ, as far as the message itself can tell.
pub fn dlq_reason(body: &str, receives: u32, attributes: &BTreeMap<String, String>) -> String {
    let recorded: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base = match SyncJob::from_json(body) {
        Ok(_) => format!("failed {receives} deliveries"),
        // Not a sync job: app events end in their DLQ when the app does not consume them.
        Err(_) if serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| v.get("job_id").is_none() && v.get("type").is_some()) => {
            format!("not consumed after {receives} deliveries")
        }
        Err(e) => format!("poison: {} {e} ({receives} deliveries)", e.code()),
    };
    if recorded.is_empty() {
        base
    } else {
        format!("{base}; {}", recorded.join(" "))
    }
}

pub(crate) async fn run(ops: &Ops, cmd: QueueCmd) -> Result<String> {
    let infos = queue_infos(ops).await?;
    match cmd {
        QueueCmd::Depths => {
            let mut out = String::from("queue depths (visible / in flight / delayed)\n");
            let mut seen_dlq = HashSet::new();
            for q in &infos {
                let d = depth(ops, &q.url).await?;
                out.push_str(&format!("  {:<22} {} / {} / {}\n", q.name, d.visible, d.in_flight, d.delayed));
                if let Some(dlq) = &q.dlq_url {
                    if seen_dlq.insert(dlq.clone()) {
                        let d = depth(ops, dlq).await?;
                        out.push_str(&format!("  {:<22} {} / {} / {}\n", queue_name(dlq), d.visible, d.in_flight, d.delayed));
                    }
                }
            }
            Ok(out.trim_end().to_string())
        }
        QueueCmd::Dlq { max } => {
            let mut out = String::new();
            let mut seen = HashSet::new();
            for dlq in infos.iter().filter_map(|q| q.dlq_url.clone()) {
                if !seen.insert(dlq.clone()) {
                    continue;
                }
                let msgs = receive(ops, &dlq, max).await?;
                out.push_str(&format!("{} ({} shown)\n", queue_name(&dlq), msgs.len()));
                for m in &msgs {
                    out.push_str(&format!(
                        "  {}: {}\n    {}\n",
                        m.id,
                        dlq_reason(&m.body, m.receives, &m.attributes),
                        truncate(&m.body, 300)
                    ));
                }
                // Shown, not consumed: make them visible again right away.
                release(ops, &dlq, &msgs).await;
            }
            Ok(out.trim_end().to_string())
        }
        QueueCmd::Redrive { max } => {
            let sync = SyncQueues::from_config(&ops.config);
            let mut by_dlq: BTreeMap<String, Vec<&QueueInfo>> = BTreeMap::new();
            for q in &infos {
                if let Some(d) = &q.dlq_url {
                    by_dlq.entry(d.clone()).or_default().push(q);
                }
            }
            let (mut moved, mut kept) = (0usize, 0usize);
            for (dlq, sources) in by_dlq {
                while moved < max {
                    let msgs = receive(ops, &dlq, (max - moved).min(10)).await?;
                    if msgs.is_empty() {
                        break;
                    }
                    let mut skipped = Vec::new();
                    for m in msgs {
                        let target = match SyncJob::from_json(&m.body) {
                            Ok(job) if sources.iter().any(|q| q.name.starts_with("sync-")) => Some(sync.url(job.priority).to_string()),
                            _ if sources.len() == 1 && !sources[0].name.starts_with("sync-") => Some(sources[0].url.clone()),
                            _ => None,
                        };
                        let Some(target) = target else {
                            skipped.push(m);
                            continue;
                        };
                        // Send first, delete after: a crash in between duplicates a job, which its
                        // idempotency key makes harmless, rather than losing one.
                        ops.clients
                            .sqs
                            .send_message()
                            .queue_url(&target)
                            .message_body(&m.body)
                            .send()
                            .await
                            .map_err(|e| sqs_error("SendMessage", e))?;
                        ops.clients
                            .sqs
                            .delete_message()
                            .queue_url(&dlq)
                            .receipt_handle(&m.receipt)
                            .send()
                            .await
                            .map_err(|e| sqs_error("DeleteMessage", e))?;
                        moved += 1;
                    }
                    kept += skipped.len();
                    release(ops, &dlq, &skipped).await;
                    if !skipped.is_empty() {
                        // Poison left in place would come back on every receive: stop this DLQ.
                        break;
                    }
                }
            }
            Ok(format!("redrove {moved} messages; {kept} left in the dead-letter queues (not sync jobs: see `queues dlq`)"))
        }
    }
}

struct Received {
    id: String,
    body: String,
    receipt: String,
    receives: u32,
    attributes: BTreeMap<String, String>,
}

async fn receive(ops: &Ops, url: &str, max: usize) -> Result<Vec<Received>> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as S;
    let mut out = Vec::new();
    while out.len() < max {
        let got = ops
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((max - out.len()).min(10) as i32)
            .visibility_timeout(60)
            .message_system_attribute_names(S::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", e))?;
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let receives = m.attributes().and_then(|a| a.get(&S::ApproximateReceiveCount)).and_then(|v| v.parse().ok()).unwrap_or(0);
            let attributes = m
                .message_attributes()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            out.push(Received {
                id: m.message_id.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                receives,
                attributes,
            });
        }
    }
    Ok(out)
}

async fn release(ops: &Ops, url: &str, msgs: &[Received]) {
    for m in msgs {
        let _ = ops.clients.sqs.change_message_visibility().queue_url(url).receipt_handle(&m.receipt).visibility_timeout(0).send().await;
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
